//! What is printed after a run, on stderr: the totals, and what went wrong.

use std::path::Path;
use std::time::Duration;

use vigil::graph::RunReport;
use vigil::metrics::Metrics;

/// The run's totals: streams, records, stage time, deliveries, speed.
pub fn print_summary(r: &RunReport, out: &Path, metrics: &Metrics) {
    let media: u64 = r.streams.iter().map(|s| s.media).sum();
    let chunks: u64 = r.streams.iter().map(|s| s.chunks).sum();
    let frames: u64 = r.streams.iter().map(|s| s.frames).sum();
    let audio: u64 = r.streams.iter().map(|s| s.audio_samples).sum();
    let wall = r.wall.max(Duration::from_millis(1)).as_secs_f64();
    let failed = r.streams.iter().filter(|s| s.failure.is_some()).count();
    eprintln!("── vigil run {} ──", r.run);
    eprintln!(
        "streams {} ({} failed) · chunks {chunks} · frames {frames} · audio {:.1} s · media {:.1} s",
        r.streams.len(),
        failed,
        audio as f64 / vigil::time::AUDIO_RATE as f64,
        media as f64 / 1e9
    );
    let kinds: Vec<String> = r
        .sinks
        .by_kind
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    eprintln!(
        "records {} ({})",
        r.sinks.records,
        if kinds.is_empty() {
            "none".into()
        } else {
            kinds.join(", ")
        }
    );
    let stages: Vec<String> = ["encode", "fuse"]
        .iter()
        .map(|stage| {
            let (n, secs) = metrics.stage_time(stage);
            format!(
                "{stage} {secs:.2} s ({:.2} ms a chunk)",
                secs * 1e3 / n.max(1) as f64
            )
        })
        .collect();
    eprintln!("stage time: {}", stages.join(" · "));
    for d in &r.deliveries {
        let lag = match (d.lag_p50_ms, d.lag_p95_ms) {
            (Some(p50), Some(p95)) => format!(" · lag p50 {p50:.0} ms, p95 {p95:.0} ms"),
            _ => String::new(),
        };
        eprintln!(
            "{}: delivered {} · pending {} · failed attempts {}{lag}",
            d.sink, d.delivered, d.pending, d.retries
        );
    }
    eprintln!(
        "drops {} · wall {:.2} s · {:.1}× real time · written to {}",
        r.dropped,
        wall,
        media as f64 / 1e9 / wall,
        out.display()
    );
}

/// What went wrong, on stderr: failed streams, sink errors (exit code 1),
/// and records a live sink has not delivered yet (not an error). Gives
/// the exit code.
pub fn print_failures(report: &RunReport) -> i32 {
    let mut code = 0;
    for s in &report.streams {
        if let Some(reason) = &s.failure {
            eprintln!("vigil: stream '{}' failed: {reason}", s.name);
            code = 1;
        }
    }
    for e in &report.sinks.errors {
        eprintln!("vigil: {e}");
        code = 1;
    }
    for d in report.deliveries.iter().filter(|d| d.pending > 0) {
        // Not an error: the store keeps them and the next run sends them first.
        eprintln!(
            "vigil: {}: {} records not delivered yet{}; they stay in the event store and go first on the next run",
            d.sink,
            d.pending,
            d.last_error
                .as_ref()
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default()
        );
    }
    code
}
