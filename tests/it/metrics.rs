//! `/metrics` answers while vigil runs, and its counters match the summary.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use vigil::config::PipelineConfig;
use vigil::graph::RunOptions;
use vigil::metrics::Metrics;
use vigil::stream::StreamTable;

use crate::clip::{self, ClipSpec, SECOND};
use crate::run::vigil;

use crate::live::free_port;

fn get(url: &str) -> Option<String> {
    ureq::get(url).call().ok()?.body_mut().read_to_string().ok()
}

/// The value of one series in Prometheus text, e.g. `vigil_sent_total{stage="sync",stream="x"}`.
fn value(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .map(|v| v.trim().parse::<f64>().unwrap_or(-1.0))
        })
        .unwrap_or_else(|| panic!("{series} not in:\n{text}")) as u64
}

/// `vigil run` on a generated 60 s clip (stream `cam`) with motion,
/// loudness and `extra` (pipeline TOML), its API on a free port.
pub struct ClipRun {
    pub child: std::process::Child,
    pub port: u16,
    _dir: tempfile::TempDir,
    _clip: clip::TempClip,
}

impl ClipRun {
    pub fn start(extra: &str) -> ClipRun {
        let clip = clip::temp(
            &ClipSpec {
                duration: 60 * SECOND,
                ..Default::default()
            },
            "long.mkv",
        );
        let dir = tempfile::tempdir().expect("tmp");
        let port = free_port();
        let pipeline = dir.path().join("p.toml");
        std::fs::write(
            &pipeline,
            format!(
                "[[sources]]\nname = \"cam\"\nuri = \"{}\"\n[encoders.motion]\n[encoders.loudness]\n{extra}\n[server]\nlisten = \"127.0.0.1:{port}\"\n",
                clip.path.display()
            ),
        )
        .expect("write");
        let child = vigil()
            .args(["run", pipeline.to_str().unwrap_or_default(), "--out"])
            .arg(dir.path().join("out"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn vigil");
        ClipRun {
            child,
            port,
            _dir: dir,
            _clip: clip,
        }
    }
}

#[test]
fn metrics_answer_during_a_cli_run() {
    let ClipRun {
        mut child,
        port,
        _dir,
        _clip,
    } = ClipRun::start("");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut answered = None;
    let series = "vigil_received_total{stage=\"sync\",stream=\"cam\"}";
    while Instant::now() < deadline && answered.is_none() {
        // Series appear once their stage has started, and count from there.
        answered = get(&format!("http://127.0.0.1:{port}/metrics")).filter(|t| {
            t.lines()
                .any(|l| l.starts_with(series) && !l.ends_with(" 0"))
        });
        if answered.is_none() {
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let health = get(&format!("http://127.0.0.1:{port}/healthz")).expect("/healthz answered");
    let out = child.wait_with_output().expect("vigil ends");
    assert!(
        out.status.success(),
        "{:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = answered.expect("/metrics answered while the run was going");
    assert!(value(&text, series) > 0, "{text}");
    assert!(
        // Running, or still connecting if its first frame was not forwarded yet.
        (health.contains("\"cam\":\"running\"") || health.contains("\"cam\":\"connecting\""))
            && health.contains("\"status\":\"ok\""),
        "{health}"
    );
}

#[test]
fn counters_match_the_summary() {
    let clip = clip::temp(&ClipSpec::default(), "count.mkv");
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let mut config = PipelineConfig::builtin();
    config.set_sources(&[clip.path.to_string_lossy().into_owned()]);
    config.sinks.stdout = None;
    let metrics = Metrics::new();
    let table: StreamTable = Default::default();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    runtime
        .block_on(vigil::server::bind(
            addr,
            vigil::server::AppState::new(metrics.clone(), table.clone()),
        ))
        .expect("server");
    let options = RunOptions {
        out_dir: PathBuf::from(dir.path()),
        start_time: None,
        printer: Arc::new(|_| Ok(())),
    };
    let report = vigil::graph::run(
        &config,
        &options,
        &metrics,
        &table,
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .expect("run");
    let text = get(&format!("http://127.0.0.1:{port}/metrics")).expect("/metrics");
    let s = &report.streams[0];
    let label = format!("stream=\"{}\"", s.name);
    assert_eq!(
        value(
            &text,
            &format!("vigil_sent_total{{stage=\"sync\",{label}}}")
        ),
        s.chunks
    );
    assert_eq!(
        value(
            &text,
            &format!("vigil_received_total{{stage=\"encode\",{label}}}")
        ),
        s.chunks
    );
    assert_eq!(
        value(
            &text,
            &format!("vigil_sent_total{{stage=\"sink\",{label}}}")
        ),
        report.sinks.records
    );
    assert_eq!(
        value(
            &text,
            &format!("vigil_sent_total{{stage=\"fuse\",{label}}}")
        ),
        report.sinks.records
    );
    assert_eq!(s.chunks, 6);
    assert_eq!(s.frames, 30);
    let lines = std::fs::read_to_string(dir.path().join("events.jsonl")).expect("log");
    assert_eq!(lines.lines().count() as u64, report.sinks.records);
    for stage in ["source", "sync", "encode", "fuse", "sink"] {
        let timed = value(
            &text,
            &format!("vigil_stage_seconds_count{{stage=\"{stage}\",{label}}}"),
        );
        assert!(timed > 0, "{stage} timed no item");
        let received = value(
            &text,
            &format!("vigil_received_total{{stage=\"{stage}\",{label}}}"),
        );
        assert!(received > 0, "{stage} received nothing");
    }
}
