//! The one [`StageMetrics`] set every stage reports (DESIGN.md, "Metrics").

use std::sync::Arc;

use prometheus::{
    CounterVec, Encoder, HistogramOpts, HistogramTimer, HistogramVec, IntCounterVec, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// All of vigil's metrics, in one registry.
pub struct Metrics {
    registry: Registry,
    received: IntCounterVec,
    sent: IntCounterVec,
    dropped: IntCounterVec,
    errors: IntCounterVec,
    queue_depth: IntGaugeVec,
    stage_seconds: HistogramVec,
    latency: HistogramVec,
    batch_size: HistogramVec,
    batch_seconds: HistogramVec,
    batch_queue: IntGaugeVec,
    zone_occupancy: IntGaugeVec,
    line_crossings: IntCounterVec,
    rule_events: IntCounterVec,
    detector_frames: IntCounterVec,
    recordings: IntCounterVec,
    cpu: CounterVec,
    delivered: IntCounterVec,
    delivery_retries: IntCounterVec,
    delivery_pending: IntGaugeVec,
    delivery_lag: HistogramVec,
    sink_up: IntGaugeVec,
    stream_state: IntGaugeVec,
    stream_frames_in: IntCounterVec,
    stream_frames: IntCounterVec,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // Metric names and labels are constants of this file: a failure is a bug.
    r.unwrap_or_else(|e| panic!("metric definition: {e}"))
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = must(IntCounterVec::new(Opts::new(name, help), labels));
            must(registry.register(Box::new(c.clone())));
            c
        };
        let received = counter(
            "vigil_received_total",
            "Items a stage took in.",
            &["stage", "stream"],
        );
        let sent = counter(
            "vigil_sent_total",
            "Items a stage passed on.",
            &["stage", "stream"],
        );
        let dropped = counter(
            "vigil_dropped_total",
            "Items a stage dropped, by reason.",
            &["stage", "stream", "reason"],
        );
        let errors = counter(
            "vigil_errors_total",
            "Errors in a stage, by kind.",
            &["stage", "stream", "kind"],
        );
        let line_crossings = counter(
            "vigil_line_crossings_total",
            "Tracked objects that crossed a line, by direction.",
            &["stream", "line", "direction"],
        );
        let rule_events = counter(
            "vigil_rule_events_total",
            "Rule events started.",
            &["stream", "rule", "severity"],
        );
        let detector_frames = counter(
            "vigil_detector_frames_total",
            "Frames due for object detection, by what the detector did: looked where it moved (motion), at objects due to be checked again (refresh), at the whole frame (full), or nothing (skipped).",
            &["stream", "reason"],
        );
        let recordings = counter(
            "vigil_recordings_total",
            "Files of [recording] finished (written) or lost (failed): event clips (clip) and continuous recording's segments (segment).",
            &["stream", "kind", "result"],
        );
        let delivered = counter(
            "vigil_delivered_total",
            "Records a live sink delivered and had acknowledged.",
            &["sink"],
        );
        let delivery_retries = counter(
            "vigil_delivery_retries_total",
            "Failed delivery attempts of a live sink (each is retried).",
            &["sink"],
        );
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = must(IntGaugeVec::new(Opts::new(name, help), labels));
            must(registry.register(Box::new(g.clone())));
            g
        };
        let delivery_pending = gauge(
            "vigil_delivery_pending",
            "Records in the store a live sink has not delivered yet.",
            &["sink"],
        );
        let sink_up = gauge(
            "vigil_sink_up",
            "1 while a sink works: a live sink's last attempt succeeded, the store writes.",
            &["sink"],
        );
        let delivery_lag = must(HistogramVec::new(
            HistogramOpts::new(
                "vigil_delivery_lag_seconds",
                "Wall time from a record's commit to the store to its acknowledgement by a live sink.",
            )
            .buckets(prometheus::exponential_buckets(0.001, 3.0, 12).unwrap_or_default()),
            &["sink"],
        ));
        must(registry.register(Box::new(delivery_lag.clone())));
        let zone_occupancy = must(IntGaugeVec::new(
            Opts::new("vigil_zone_occupancy", "Tracked objects in a zone."),
            &["stream", "zone"],
        ));
        must(registry.register(Box::new(zone_occupancy.clone())));
        let queue_depth = must(IntGaugeVec::new(
            Opts::new("vigil_queue_depth", "Items waiting at a stage's input."),
            &["stage", "stream"],
        ));
        must(registry.register(Box::new(queue_depth.clone())));
        let stage_seconds = must(HistogramVec::new(
            HistogramOpts::new("vigil_stage_seconds", "Time a stage spent on one item.")
                .buckets(prometheus::exponential_buckets(0.000_05, 4.0, 10).unwrap_or_default()),
            &["stage", "stream"],
        ));
        must(registry.register(Box::new(stage_seconds.clone())));
        let latency = must(HistogramVec::new(
            HistogramOpts::new(
                "vigil_latency_seconds",
                "Wall time from a chunk's capture (its arrival at sync) to its records.",
            )
            // Milliseconds when the encoders keep up; seconds (up to the
            // live queue's 8 chunks) when they do not: fine steps in both.
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0,
                13.0, 20.0, 30.0,
            ]),
            &["stream"],
        ));
        must(registry.register(Box::new(latency.clone())));
        let batch_size = must(HistogramVec::new(
            HistogramOpts::new(
                "vigil_batch_size",
                "Items in one model run of an inference worker (batched across streams).",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
            &["model"],
        ));
        must(registry.register(Box::new(batch_size.clone())));
        let batch_seconds = must(HistogramVec::new(
            HistogramOpts::new(
                "vigil_batch_seconds",
                "Time of one model run of an inference worker.",
            )
            .buckets(prometheus::exponential_buckets(0.000_5, 3.0, 10).unwrap_or_default()),
            &["model"],
        ));
        must(registry.register(Box::new(batch_seconds.clone())));
        let batch_queue = must(IntGaugeVec::new(
            Opts::new(
                "vigil_batch_queue_depth",
                "Requests waiting at an inference worker after it took a batch.",
            ),
            &["model"],
        ));
        must(registry.register(Box::new(batch_queue.clone())));
        let cpu = must(CounterVec::new(
            Opts::new(
                "vigil_cpu_seconds_total",
                "CPU time spent on a stream, by part: source (its GStreamer threads), sync, encode, models (its share of each shared model run, by items), fuse.",
            ),
            &["stream", "part"],
        ));
        must(registry.register(Box::new(cpu.clone())));
        let stream_state = gauge(
            "vigil_stream_state",
            "1 for the state each stream is in (connecting, running, stalled, reconnecting, degraded, failed, ended, stopped), 0 for the others; set at each scrape.",
            &["stream", "state"],
        );
        let stream_frames_in = counter(
            "vigil_stream_frames_in_total",
            "Frames decoded from a stream's source (before sampling to the analysis rate).",
            &["stream"],
        );
        let stream_frames = counter(
            "vigil_stream_frames_total",
            "Frames of a stream analysed.",
            &["stream"],
        );
        Arc::new(Metrics {
            registry,
            received,
            sent,
            dropped,
            errors,
            queue_depth,
            stage_seconds,
            latency,
            batch_size,
            batch_seconds,
            batch_queue,
            zone_occupancy,
            line_crossings,
            rule_events,
            detector_frames,
            recordings,
            cpu,
            delivered,
            delivery_retries,
            delivery_pending,
            delivery_lag,
            sink_up,
            stream_state,
            stream_frames_in,
            stream_frames,
        })
    }

    /// Every metric family vigil declares, with its label names (for
    /// checking dashboards and alert rules against what vigil exports).
    pub fn families(&self) -> Vec<(String, Vec<String>)> {
        use prometheus::core::Collector;
        let all: [&dyn Collector; 24] = [
            &self.received,
            &self.sent,
            &self.dropped,
            &self.errors,
            &self.queue_depth,
            &self.stage_seconds,
            &self.latency,
            &self.batch_size,
            &self.batch_seconds,
            &self.batch_queue,
            &self.zone_occupancy,
            &self.line_crossings,
            &self.rule_events,
            &self.detector_frames,
            &self.recordings,
            &self.cpu,
            &self.delivered,
            &self.delivery_retries,
            &self.delivery_pending,
            &self.delivery_lag,
            &self.sink_up,
            &self.stream_state,
            &self.stream_frames_in,
            &self.stream_frames,
        ];
        all.iter()
            .flat_map(|c| c.desc())
            .map(|d| (d.fq_name.clone(), d.variable_labels.clone()))
            .collect()
    }

    /// The streams as they stand (name, state, frames decoded, frames
    /// analysed), set at each scrape: streams gone are dropped.
    pub fn set_streams<'a>(&self, streams: impl Iterator<Item = (&'a str, &'a str, u64, u64)>) {
        const STATES: [&str; 8] = [
            "connecting",
            "running",
            "stalled",
            "reconnecting",
            "degraded",
            "failed",
            "ended",
            "stopped",
        ];
        self.stream_state.reset();
        self.stream_frames_in.reset();
        self.stream_frames.reset();
        for (stream, state, frames_in, frames) in streams {
            for s in STATES {
                self.stream_state
                    .with_label_values(&[stream, s])
                    .set(i64::from(s == state));
            }
            self.stream_frames_in
                .with_label_values(&[stream])
                .inc_by(frames_in);
            self.stream_frames
                .with_label_values(&[stream])
                .inc_by(frames);
        }
    }

    /// A live sink had `n` records acknowledged, committed `lags` seconds ago.
    pub fn delivered(&self, sink: &str, lags: impl Iterator<Item = f64>) {
        let mut n = 0;
        let h = self.delivery_lag.with_label_values(&[sink]);
        for lag in lags {
            h.observe(lag);
            n += 1;
        }
        self.delivered.with_label_values(&[sink]).inc_by(n);
    }

    pub fn delivery_retry(&self, sink: &str) {
        self.delivery_retries.with_label_values(&[sink]).inc();
    }

    pub fn delivery_pending(&self, sink: &str, n: i64) {
        self.delivery_pending.with_label_values(&[sink]).set(n);
    }

    /// Whether `sink` works (1) or not (0).
    pub fn sink_up(&self, sink: &str, up: bool) {
        self.sink_up.with_label_values(&[sink]).set(i64::from(up));
    }

    /// The handle one stage of one stream reports through.
    pub fn stage(self: &Arc<Self>, stage: &str, stream: &str) -> StageMetrics {
        let l = [stage, stream];
        let m = StageMetrics {
            metrics: self.clone(),
            stage: stage.into(),
            stream: stream.into(),
        };
        // Touch every series so that a stage shows its full set from the start.
        self.received.with_label_values(&l);
        self.sent.with_label_values(&l);
        self.queue_depth.with_label_values(&l);
        self.stage_seconds.with_label_values(&l);
        m
    }

    /// What a stream's scene and rules did, from the records fusion made.
    pub fn scene(&self, records: &[crate::record::Record]) {
        use crate::record::{Phase, Record};
        for r in records {
            let Record::Event(e) = r else { continue };
            if e.phase != Phase::Start {
                continue;
            }
            let place = e.zone.as_deref().unwrap_or("");
            let detail = |k: &str| e.details.get(k);
            match e.kind.as_str() {
                "zone_enter" | "zone_leave" => {
                    let n = detail("occupancy").and_then(|v| v.as_i64()).unwrap_or(0);
                    self.zone_occupancy
                        .with_label_values(&[e.stream.as_str(), place])
                        .set(n);
                }
                "line_cross" => {
                    let d = detail("direction").and_then(|v| v.as_str()).unwrap_or("");
                    self.line_crossings
                        .with_label_values(&[e.stream.as_str(), place, d])
                        .inc();
                }
                "rule" => {
                    let rule = e.labels.first().map_or("", String::as_str);
                    let severity = detail("severity").and_then(|v| v.as_str()).unwrap_or("");
                    self.rule_events
                        .with_label_values(&[e.stream.as_str(), rule, severity])
                        .inc();
                }
                _ => {}
            }
        }
    }

    /// Items and seconds `stage` spent on them, over every stream.
    pub fn stage_time(&self, stage: &str) -> (u64, f64) {
        use prometheus::core::Collector;
        let mut total = (0, 0.0);
        for family in self.stage_seconds.collect() {
            for m in family.get_metric() {
                if m.get_label()
                    .iter()
                    .any(|l| l.name() == "stage" && l.value() == stage)
                {
                    let h = m.get_histogram();
                    total.0 += h.get_sample_count();
                    total.1 += h.get_sample_sum();
                }
            }
        }
        total
    }

    pub fn observe_latency(&self, stream: &str, seconds: f64) {
        self.latency.with_label_values(&[stream]).observe(seconds);
    }

    /// One model run of an inference worker: `items` in `seconds`.
    pub fn batch_run(&self, model: &str, items: usize, seconds: f64) {
        self.batch_size
            .with_label_values(&[model])
            .observe(items as f64);
        self.batch_seconds
            .with_label_values(&[model])
            .observe(seconds);
    }

    /// Requests still waiting at a model's worker.
    pub fn batch_queue(&self, model: &str, depth: i64) {
        self.batch_queue.with_label_values(&[model]).set(depth);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let families = self.registry.gather();
        if TextEncoder::new().encode(&families, &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Current value of a counter, for summaries and tests.
    pub fn counter(&self, name: &str, stage: &str, stream: &str) -> u64 {
        let l = [stage, stream];
        match name {
            "received" => self.received.with_label_values(&l).get(),
            "sent" => self.sent.with_label_values(&l).get(),
            _ => 0,
        }
    }

    /// Sum of `vigil_dropped_total` over every stage, stream and reason.
    pub fn dropped_total(&self) -> u64 {
        sum_family(&self.registry, "vigil_dropped_total")
    }

    /// Sum of `vigil_dropped_total` of one stream, over stages and reasons.
    pub fn dropped_for(&self, stream: &str) -> u64 {
        self.registry
            .gather()
            .iter()
            .filter(|f| f.name() == "vigil_dropped_total")
            .flat_map(|f| f.get_metric().iter())
            .filter(|m| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == "stream" && l.value() == stream)
            })
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }

    /// Sum of `vigil_errors_total` over every stage, stream and kind.
    pub fn errors_total(&self) -> u64 {
        sum_family(&self.registry, "vigil_errors_total")
    }

    /// CPU seconds spent on `stream` so far, over every part.
    pub fn cpu_seconds(&self, stream: &str) -> f64 {
        series_of(&self.cpu, stream)
            .iter()
            .filter_map(|set| {
                let part = set.iter().find(|(k, _)| k == "part")?;
                self.cpu
                    .get_metric_with_label_values(&[stream, &part.1])
                    .ok()
                    .map(|c| c.get())
            })
            .sum()
    }

    /// Removes every series of `stream` (a stream detached for good), so that
    /// a daemon attaching and detaching cameras for months does not export
    /// the dead ones forever. A stream attached again under the name starts
    /// its counters from zero, which Prometheus reads as a reset.
    pub fn forget_stream(&self, stream: &str) {
        macro_rules! forget {
            ($($vec:ident),*) => {$(
                for set in series_of(&self.$vec, stream) {
                    let labels: std::collections::HashMap<&str, &str> =
                        set.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    let _ = self.$vec.remove(&labels);
                }
            )*};
        }
        forget!(
            received,
            sent,
            dropped,
            errors,
            queue_depth,
            stage_seconds,
            latency,
            zone_occupancy,
            line_crossings,
            rule_events,
            detector_frames,
            recordings,
            cpu
        );
    }
}

/// The label sets of `collector`'s series whose `stream` label is `stream`.
fn series_of(
    collector: &dyn prometheus::core::Collector,
    stream: &str,
) -> Vec<Vec<(String, String)>> {
    collector
        .collect()
        .iter()
        .flat_map(|f| f.get_metric().iter())
        .filter(|m| {
            m.get_label()
                .iter()
                .any(|l| l.name() == "stream" && l.value() == stream)
        })
        .map(|m| {
            m.get_label()
                .iter()
                .map(|l| (l.name().to_string(), l.value().to_string()))
                .collect()
        })
        .collect()
}

fn sum_family(registry: &Registry, name: &str) -> u64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| {
            f.get_metric()
                .iter()
                .map(|m| m.get_counter().get_value() as u64)
        })
        .sum()
}

/// What one stage of one stream reports: the same set for every stage.
#[derive(Clone)]
pub struct StageMetrics {
    metrics: Arc<Metrics>,
    stage: Arc<str>,
    stream: Arc<str>,
}

impl StageMetrics {
    fn labels(&self) -> [&str; 2] {
        [&self.stage, &self.stream]
    }

    pub fn received(&self) {
        self.received_n(1);
    }

    /// `n` of the stream's frames were due for detection, and the detector
    /// did `reason` with them.
    pub fn detector_frames(&self, reason: &str, n: u64) {
        self.metrics
            .detector_frames
            .with_label_values(&[&*self.stream, reason])
            .inc_by(n);
    }

    /// `n` files of `kind` (`clip`, `segment`) that `[recording]`
    /// finished (`written`) or lost (`failed`).
    pub fn recordings(&self, kind: &str, result: &str, n: u64) {
        if n > 0 {
            self.metrics
                .recordings
                .with_label_values(&[&*self.stream, kind, result])
                .inc_by(n);
        }
    }

    /// `ns` nanoseconds of CPU spent on the stream by `part` (the stage's
    /// name when None).
    pub fn cpu(&self, part: Option<&str>, ns: u64) {
        if ns == 0 {
            return;
        }
        self.metrics
            .cpu
            .with_label_values(&[&*self.stream, part.unwrap_or(&self.stage)])
            .inc_by(ns as f64 / 1e9);
    }

    pub fn received_n(&self, n: u64) {
        self.metrics
            .received
            .with_label_values(&self.labels())
            .inc_by(n);
    }

    pub fn sent(&self) {
        self.sent_n(1);
    }

    pub fn sent_n(&self, n: u64) {
        self.metrics
            .sent
            .with_label_values(&self.labels())
            .inc_by(n);
    }

    pub fn dropped(&self, reason: &str, n: u64) {
        self.metrics
            .dropped
            .with_label_values(&[&self.stage, &self.stream, reason])
            .inc_by(n);
    }

    pub fn error(&self, kind: &str) {
        self.metrics
            .errors
            .with_label_values(&[&self.stage, &self.stream, kind])
            .inc();
    }

    pub fn queue_depth(&self, n: usize) {
        self.metrics
            .queue_depth
            .with_label_values(&self.labels())
            .set(n as i64);
    }

    /// Observes the stage's time for one item when dropped.
    pub fn timer(&self) -> HistogramTimer {
        self.metrics
            .stage_seconds
            .with_label_values(&self.labels())
            .start_timer()
    }

    pub fn latency(&self, seconds: f64) {
        self.metrics.observe_latency(&self.stream, seconds);
    }

    /// Zone occupancy, line crossings and rule events of fusion's records.
    pub fn scene(&self, records: &[crate::record::Record]) {
        self.metrics.scene(records);
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::Metrics;

    /// Fails unless `stage` of `stream` shows the whole StageMetrics set.
    pub fn assert_stage_reports(metrics: &Metrics, stage: &str, stream: &str) {
        let text = metrics.render();
        for name in [
            "vigil_received_total",
            "vigil_sent_total",
            "vigil_queue_depth",
            "vigil_stage_seconds_count",
        ] {
            let needle = format!("{name}{{stage=\"{stage}\",stream=\"{stream}\"}}");
            assert!(
                text.contains(&needle),
                "{stage}/{stream} does not report {name}:\n{text}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_stream_is_in_one_state_and_a_stream_gone_leaves_no_series() {
        let m = Metrics::new();
        m.set_streams([("cam1", "running", 50, 10), ("cam2", "reconnecting", 7, 2)].into_iter());
        let text = m.render();
        for line in [
            r#"vigil_stream_state{state="running",stream="cam1"} 1"#,
            r#"vigil_stream_state{state="reconnecting",stream="cam1"} 0"#,
            r#"vigil_stream_state{state="reconnecting",stream="cam2"} 1"#,
            r#"vigil_stream_frames_in_total{stream="cam1"} 50"#,
            r#"vigil_stream_frames_total{stream="cam2"} 2"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
        let ones = text
            .lines()
            .filter(|l| {
                l.starts_with("vigil_stream_state{") && l.contains("cam1") && l.ends_with(" 1")
            })
            .count();
        assert_eq!(ones, 1);
        m.set_streams([("cam1", "running", 60, 12)].into_iter());
        let text = m.render();
        assert!(!text.contains("cam2"), "{text}");
        assert!(text.contains(r#"vigil_stream_frames_in_total{stream="cam1"} 60"#));
        // Every family declared, with its labels.
        let families = m.families();
        assert!(
            families
                .iter()
                .any(|(n, l)| n == "vigil_stream_state" && l == &["stream", "state"])
        );
        assert_eq!(families.len(), 24);
    }

    #[test]
    fn a_detached_stream_leaves_no_series() {
        let m = Metrics::new();
        for stream in ["door", "yard"] {
            let s = m.stage("source", stream);
            s.received();
            s.dropped("frame_backlog", 2);
            s.error("reconnect");
            s.queue_depth(3);
            s.latency(0.2);
            drop(s.timer());
        }
        m.forget_stream("door");
        let text = m.render();
        assert!(!text.contains("stream=\"door\""), "{text}");
        test_util::assert_stage_reports(&m, "source", "yard");
        assert_eq!(m.dropped_for("yard"), 2);
        // Attached again: its counters start over.
        m.stage("source", "door").received();
        assert_eq!(m.counter("received", "source", "door"), 1);
    }

    #[test]
    fn recordings_are_counted_by_kind_and_result() {
        let m = Metrics::new();
        let s = m.stage("fuse", "door");
        s.recordings("clip", "written", 2);
        s.recordings("segment", "written", 5);
        s.recordings("segment", "failed", 0);
        let text = m.render();
        for line in [
            r#"vigil_recordings_total{kind="clip",result="written",stream="door"} 2"#,
            r#"vigil_recordings_total{kind="segment",result="written",stream="door"} 5"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(!text.contains(r#"result="failed""#), "{text}");
        m.forget_stream("door");
        assert!(!m.render().contains("stream=\"door\""));
    }

    #[test]
    fn a_stage_reports_the_whole_set() {
        let m = Metrics::new();
        let s = m.stage("sync", "cam1");
        s.received();
        s.sent_n(2);
        drop(s.timer());
        test_util::assert_stage_reports(&m, "sync", "cam1");
        assert_eq!(m.stage_time("sync").0, 1);
        assert_eq!(m.stage_time("fuse").0, 0);
        assert_eq!(m.counter("sent", "sync", "cam1"), 2);
    }

    #[test]
    fn scene_records_count_crossings_occupancy_and_rules() {
        use crate::fuse::RecordMaker;
        use crate::record::Phase;
        use crate::time::Timestamp;
        let mut maker = RecordMaker::new("run".into(), "cam1".into());
        let mut event = |kind: &str, zone: &str, details: serde_json::Value| {
            let mut r = maker.event(
                "e",
                kind,
                Phase::Start,
                Timestamp::ZERO,
                None,
                1.0,
                None,
                details.as_object().cloned().unwrap_or_default(),
            );
            if let crate::record::Record::Event(e) = &mut r {
                e.zone = Some(zone.into());
                e.labels = vec!["alarm".into()];
            }
            r
        };
        let records = vec![
            event("line_cross", "gate", serde_json::json!({"direction": "in"})),
            event("line_cross", "gate", serde_json::json!({"direction": "in"})),
            event("zone_enter", "door", serde_json::json!({"occupancy": 2})),
            event("rule", "door", serde_json::json!({"severity": "high"})),
        ];
        let m = Metrics::new();
        m.scene(&records);
        let text = m.render();
        for line in [
            r#"vigil_line_crossings_total{direction="in",line="gate",stream="cam1"} 2"#,
            r#"vigil_zone_occupancy{stream="cam1",zone="door"} 2"#,
            r#"vigil_rule_events_total{rule="alarm",severity="high",stream="cam1"} 1"#,
        ] {
            assert!(text.contains(line), "{line} not in:\n{text}");
        }
    }
}
