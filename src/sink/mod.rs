//! Sinks: where records go. The local event log is written first and made
//! durable; the others follow in the order the pipeline lists them. The
//! live sinks (webhook, MQTT, NATS, spoken alerts: [`speak`]) are not among
//! them: they deliver from
//! the store on their own threads ([`outbox`]).

pub mod jsonl;
pub mod mqtt;
pub mod nats;
pub mod outbox;
pub mod retention;
pub mod speak;
pub mod stdout;
pub mod store;
pub mod subtitles;
pub mod tls;
pub mod webhook;

/// The far ends of the live sinks, for their tests: real servers
/// (`tests/support/brokers.rs`, shared with the integration tests).
#[cfg(test)]
#[path = "../../tests/support/brokers.rs"]
mod brokers;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Receiver;

use crate::config::{SinksConfig, SpeakConfig};
use crate::error::{Error, Result};
use crate::fuse::Batch;
use crate::metrics::Metrics;
use crate::record::Record;

/// Which file writer (or the terminal) a [`Sink`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkKind {
    /// The JSONL event log.
    Jsonl,
    /// The SQLite event store.
    Store,
    WebVtt,
    Srt,
    Stdout,
}

impl SinkKind {
    /// Its name in metrics, logs and errors.
    pub fn name(self) -> &'static str {
        match self {
            SinkKind::Jsonl => "jsonl",
            SinkKind::Store => "store",
            SinkKind::WebVtt => "webvtt",
            SinkKind::Srt => "srt",
            SinkKind::Stdout => "stdout",
        }
    }

    /// Whether it writes under the output folder: the disk guard stops it
    /// when the disk is nearly full.
    pub fn on_disk(self) -> bool {
        self != SinkKind::Stdout
    }

    /// Whether it is tried again after it failed: the event log is the
    /// record of last resort; any other sink that failed once is left
    /// alone, so that it neither slows down nor takes down the others.
    pub fn retried_after_failure(self) -> bool {
        self == SinkKind::Jsonl
    }
}

/// A destination for records, written on the sink thread. Every one
/// writes a file (or the terminal), so the calls are plain blocking ones;
/// the live sinks deliver from the store through [`outbox`] instead.
///
/// `send` takes the records one chunk of one stream completed, in order; it
/// returns once they are as durable as the sink promises. An error is counted
/// and reported; the records stay in the local log.
pub trait Sink: Send {
    fn kind(&self) -> SinkKind;
    fn send(&mut self, batch: &[Record]) -> Result<()>;
    fn flush(&mut self) -> Result<()>;
    /// Called about once a second whether or not records come, for work
    /// that does not wait on them (retention of what grows by itself).
    fn tick(&mut self) {}
}

/// How to print a line to the terminal without tearing progress bars; an
/// error (a closed pipe) fails the stdout sink, not the run.
pub type Printer = Arc<dyn Fn(String) -> std::io::Result<()> + Send + Sync>;

/// The sinks of a run: those fed batch by batch, and the live ones that
/// deliver from the store.
pub struct Built {
    pub sinks: Vec<Box<dyn Sink>>,
    pub live: Vec<outbox::LiveSink>,
    /// The store the live sinks read, and where it says what it committed.
    pub store: Option<(std::path::PathBuf, tokio::sync::watch::Receiver<i64>)>,
}

/// Builds the live sinks a pipeline lists: secrets are read and TLS set
/// up here, before anything runs; nothing connects yet. Media files
/// records name (snapshots MQTT publishes) are under `out_dir`; the MQTT
/// sink announces `discovery`'s streams to Home Assistant.
pub fn build_live(
    config: &SinksConfig,
    out_dir: &Path,
    discovery: Option<&mqtt::discovery::Catalog>,
) -> Result<Vec<outbox::LiveSink>> {
    let mut live = Vec::new();
    if let Some(c) = &config.webhook {
        live.push(outbox::LiveSink::new(c)?);
    }
    if let Some(c) = &config.mqtt {
        use outbox::LiveConfig;
        let mut c = c.clone();
        c.media_root = Some(out_dir.to_path_buf());
        let mut transport = c.build().map_err(Error::Invalid)?;
        if let Some(catalog) = discovery.filter(|_| c.discovery) {
            transport = transport.discovering(catalog.clone());
        }
        live.push(outbox::LiveSink {
            name: crate::config::MqttConfig::NAME.into(),
            transport: Box::new(transport),
            delivery: c.delivery(),
        });
    }
    if let Some(c) = &config.nats {
        live.push(outbox::LiveSink::new(c)?);
    }
    if let Some(c) = &config.speak {
        use outbox::LiveConfig;
        live.push(outbox::LiveSink {
            name: SpeakConfig::NAME.into(),
            transport: Box::new(
                c.build()
                    .map_err(Error::Invalid)?
                    .writing_under(out_dir, &c.dir),
            ),
            delivery: c.delivery(),
        });
    }
    Ok(live)
}

/// Applies the store's retention once more at the very end of a run: the
/// index of moments and the live sinks write to the store after its sink
/// closed (the indexer's moments count in its size).
pub fn final_retention(config: &SinksConfig, out_dir: &Path) -> Result<()> {
    match &config.store {
        Some(c) if c.max_age.is_some() || c.max_size_mib.is_some() => {
            let path = out_dir.join(&c.path);
            store::StoreSink::open_with_media(&path, store::Retention::of(c), &[], Some(out_dir))
                .map(drop)
        }
        _ => Ok(()),
    }
}

/// Builds the sinks a pipeline lists, writing files under `out_dir`.
pub fn build(
    config: &SinksConfig,
    out_dir: &Path,
    streams: &[String],
    printer: Printer,
    disk: &Arc<crate::disk::DiskGate>,
    discovery: Option<&mqtt::discovery::Catalog>,
) -> Result<Built> {
    let live = build_live(config, out_dir, discovery)?;
    let names: Vec<String> = live.iter().map(|l| l.name.clone()).collect();
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    let mut outbox_store = None;
    if let Some(c) = &config.jsonl {
        let mut log = jsonl::JsonlSink::open(&out_dir.join(&c.path))?;
        if let Some(r) = c.rotation() {
            // Without a store, the log is what says which snapshots are
            // still wanted.
            log = log.rotate(r, config.store.is_none().then_some(out_dir));
        }
        sinks.push(Box::new(log));
    }
    if let Some(c) = &config.store {
        let keep = store::Retention::of(c);
        let path = out_dir.join(&c.path);
        let store = store::StoreSink::open_with_media(&path, keep, &names, Some(out_dir))?
            .counting_unfinished(disk.clone());
        outbox_store = Some((path, store.committed()));
        sinks.push(Box::new(store));
    }
    let subtitles = [
        (
            subtitles::Format::WebVtt,
            config.webvtt.as_ref().map(|c| (&c.path, c.rotation())),
        ),
        (
            subtitles::Format::Srt,
            config.srt.as_ref().map(|c| (&c.path, c.rotation())),
        ),
    ];
    for (format, c) in subtitles {
        let Some((path, rotation)) = c else { continue };
        let mut s = subtitles::SubtitleSink::create(format, &out_dir.join(path), streams)?;
        if let Some(r) = rotation {
            s = s.rotate(r);
        }
        sinks.push(Box::new(s));
    }
    if let Some(c) = &config.stdout {
        sinks.push(Box::new(stdout::StdoutSink::new(
            c.captions,
            streams.len() > 1,
            printer,
        )));
    }
    if !live.is_empty() && outbox_store.is_none() {
        return Err(Error::Invalid(
            "the live sinks deliver from the event store: add [sinks.store]".into(),
        ));
    }
    Ok(Built {
        sinks,
        live,
        store: outbox_store,
    })
}

/// What the sinks wrote, for the summary.
#[derive(Debug, Default)]
pub struct SinkReport {
    /// Records by `kind_label` (`caption`, `event:motion`…).
    pub by_kind: BTreeMap<String, u64>,
    pub records: u64,
    /// One line per sink that failed.
    pub errors: Vec<String>,
}

/// Runs every sink on one thread, batch by batch, until all fusers are done;
/// with a `guard`, the sinks that write to disk stop while it is nearly full.
pub fn spawn(
    sinks: Vec<Box<dyn Sink>>,
    input: Receiver<Batch>,
    metrics: Arc<Metrics>,
    guard: Option<retention::guard::DiskGuard>,
) -> Result<JoinHandle<SinkReport>> {
    std::thread::Builder::new()
        .name("sinks".into())
        .spawn(move || SinkSet::new(sinks, metrics).run(input, guard))
        .map_err(|e| Error::io("cannot start the sink thread", e))
}

/// The sinks of a run, which of them failed, their counters and what they
/// wrote: the sink thread's state.
struct SinkSet {
    sinks: Vec<Box<dyn Sink>>,
    failed: Vec<bool>,
    metrics: Arc<Metrics>,
    /// The `sink` stage's counters, per stream.
    stage: HashMap<Arc<str>, crate::metrics::StageMetrics>,
    report: SinkReport,
}

impl SinkSet {
    fn new(sinks: Vec<Box<dyn Sink>>, metrics: Arc<Metrics>) -> SinkSet {
        SinkSet {
            failed: vec![false; sinks.len()],
            sinks,
            metrics,
            stage: HashMap::new(),
            report: SinkReport::default(),
        }
    }

    fn run(
        mut self,
        input: Receiver<Batch>,
        mut guard: Option<retention::guard::DiskGuard>,
    ) -> SinkReport {
        for sink in &self.sinks {
            self.metrics.sink_up(sink.kind().name(), true);
        }
        if guard.is_some() {
            self.metrics.sink_up("snapshots", true);
        }
        loop {
            // The guard looks at the disk even while no records come.
            let batch = match input.recv_timeout(retention::guard::EVERY) {
                Ok(b) => Some(b),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            };
            if let Some(g) = guard.as_mut()
                && let Some(warning) = g.poll(std::time::Instant::now())
            {
                self.set_disk_level(g.level());
                self.deliver(&[warning], true);
            }
            for (sink, failed) in self.sinks.iter_mut().zip(&self.failed) {
                if !failed {
                    sink.tick();
                }
            }
            let Some(batch) = batch else { continue };
            let m = self.stage_of(&batch.stream);
            m.received_n(batch.records.len() as u64);
            m.queue_depth(input.len());
            let on_disk = guard
                .as_ref()
                .is_none_or(|g| g.level() < crate::disk::Level::RecordsStopped);
            if !on_disk {
                m.dropped("disk_full", batch.records.len() as u64);
                if let Some(g) = guard.as_mut() {
                    g.dropped(batch.records.len() as u64);
                }
            }
            self.deliver(&batch.records, on_disk);
        }
        if let Some(warning) = guard.as_mut().and_then(|g| g.finish()) {
            self.deliver(&[warning], true);
        }
        for (sink, failed) in self.sinks.iter_mut().zip(&self.failed) {
            if *failed {
                continue;
            }
            if let Err(e) = sink.flush() {
                self.report.errors.push(e.to_string());
            }
        }
        self.report
    }

    fn stage_of(&mut self, stream: &str) -> &crate::metrics::StageMetrics {
        let metrics = &self.metrics;
        self.stage
            .entry(Arc::from(stream))
            .or_insert_with(|| metrics.stage("sink", stream))
    }

    /// Says in `vigil_sink_up` which sinks the disk guard stopped or let go on.
    fn set_disk_level(&self, level: crate::disk::Level) {
        use crate::disk::Level;
        self.metrics.sink_up("snapshots", level == Level::Ok);
        for (sink, failed) in self.sinks.iter().zip(&self.failed) {
            if sink.kind().on_disk() && !failed {
                self.metrics
                    .sink_up(sink.kind().name(), level < Level::RecordsStopped);
            }
        }
    }

    /// Sends one stream's records to every sink (only those not on disk
    /// unless `on_disk`), in order.
    fn deliver(&mut self, records: &[crate::record::Record], on_disk: bool) {
        let Some(stream) = records.first().map(|r| r.stream()) else {
            return;
        };
        let m = self.stage_of(stream).clone();
        let timer = m.timer();
        for (sink, failed) in self.sinks.iter_mut().zip(self.failed.iter_mut()) {
            let kind = sink.kind();
            if *failed && !kind.retried_after_failure() {
                continue;
            }
            if !on_disk && kind.on_disk() {
                continue;
            }
            if let Err(e) = sink.send(records) {
                m.error(kind.name());
                if !*failed {
                    *failed = true;
                    self.metrics.sink_up(kind.name(), false);
                    tracing::error!(
                        "{e}; the {} sink is degraded and left alone for the rest of the run",
                        kind.name()
                    );
                    self.report.errors.push(e.to_string());
                }
            }
        }
        drop(timer);
        m.sent_n(records.len() as u64);
        for r in records {
            *self.report.by_kind.entry(r.kind_label()).or_default() += 1;
        }
        self.report.records += records.len() as u64;
    }
}
