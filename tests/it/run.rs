//! Running the `vigil` binary and reading what it wrote.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;
use serde_json::Value;
use vigil::record::{CaptionRecord, EventRecord, Phase, Record, TranscriptRecord};
use vigil::time::Timestamp;

/// Runs `config` in this process, writing to `out`, counting into
/// `metrics` (read them with [`Metrics::render`](vigil::metrics::Metrics::render)).
#[track_caller]
pub fn run_in_process(
    config: &vigil::config::PipelineConfig,
    out: &Path,
    metrics: &std::sync::Arc<vigil::metrics::Metrics>,
) -> vigil::graph::RunReport {
    let options = vigil::graph::RunOptions {
        out_dir: out.to_path_buf(),
        start_time: None,
        printer: std::sync::Arc::new(|_| Ok(())),
    };
    vigil::graph::run(
        config,
        &options,
        metrics,
        &Default::default(),
        &std::sync::atomic::AtomicBool::new(false),
        &mut |_| {},
    )
    .expect("the run")
}

pub fn vigil() -> Command {
    crate::watchdog::arm();
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// What one run left behind.
pub struct RunResult {
    pub output: Output,
    pub out_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl RunResult {
    pub fn ok(&self) -> bool {
        self.output.status.success()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// The records of the run's event log.
    pub fn records(&self) -> Vec<Record> {
        read_records(&self.out_dir.join("events.jsonl"))
    }

    /// Event records of `kind` in `phase`.
    pub fn events(&self, kind: &str, phase: Phase) -> Vec<EventRecord> {
        self.records()
            .into_iter()
            .filter_map(|r| match r {
                Record::Event(e) if e.kind == kind && e.phase == phase => Some(e),
                _ => None,
            })
            .collect()
    }

    /// Every event that started ended exactly once, after it started, and
    /// every end belongs to a start.
    #[track_caller]
    pub fn assert_lifecycles_closed(&self) {
        if let Err(problem) = lifecycles_closed(&self.records()) {
            panic!("{problem}");
        }
    }

    /// Lines of stderr that vigil wrote as errors.
    pub fn error_lines(&self) -> Vec<String> {
        self.stderr()
            .lines()
            .filter(|l| l.starts_with("vigil:"))
            .map(str::to_string)
            .collect()
    }

    #[track_caller]
    pub fn assert_no_panic(&self) {
        let e = self.stderr();
        assert!(
            !e.contains("panicked") && !e.contains("RUST_BACKTRACE"),
            "vigil panicked:\n{e}"
        );
    }
}

/// Runs `vigil run ARGS… --out TMP`.
pub fn run(args: &[&str]) -> RunResult {
    let dir = tempfile::tempdir().expect("temp dir");
    let out_dir = dir.path().join("out");
    let output = vigil()
        .arg("run")
        .args(args)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .expect("run vigil");
    RunResult {
        output,
        out_dir,
        _dir: dir,
    }
}

/// Runs `pipeline` (TOML; its sources replaced by `source`) from a file in
/// `dir`; the run must succeed without a panic.
#[track_caller]
pub fn run_pipeline(dir: &Path, pipeline: &str, source: &Path) -> RunResult {
    let file = dir.join("p.toml");
    std::fs::write(&file, pipeline).expect("write the pipeline");
    let r = run(&[
        file.to_str().expect("utf-8"),
        "--source",
        source.to_str().expect("utf-8"),
    ]);
    assert!(r.ok(), "{}", r.stderr());
    r.assert_no_panic();
    r
}

/// Runs the built-in pipeline on `path`.
pub fn run_file(path: &Path) -> RunResult {
    run(&["--source", path.to_str().expect("utf-8 path")])
}

/// The records of an event log (none if there is no log); a line that is
/// not a record fails the test, naming the file and the line.
#[track_caller]
pub fn read_records(path: &Path) -> Vec<Record> {
    match parse_records(&std::fs::read_to_string(path).unwrap_or_default()) {
        Ok(records) => records,
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

/// The records of JSONL text, or which line is not a record and why: not
/// JSON, a field missing or of the wrong type (serde's error), or a field
/// the record format does not have.
pub fn parse_records(text: &str) -> Result<Vec<Record>, String> {
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            let bad =
                |e: &dyn std::fmt::Display| format!("line {}: not a record {l:?}: {e}", i + 1);
            let v: Value = serde_json::from_str(l).map_err(|e| bad(&e))?;
            let r = Record::deserialize(&v).map_err(|e| bad(&e))?;
            // serde skips fields a record does not have.
            let known = serde_json::to_value(&r).map_err(|e| bad(&e))?;
            let extra: Vec<&String> = v
                .as_object()
                .into_iter()
                .flat_map(|o| o.keys())
                .filter(|k| known.get(k.as_str()).is_none())
                .collect();
            if !extra.is_empty() {
                return Err(bad(&format_args!("fields not in the format: {extra:?}")));
            }
            Ok(r)
        })
        .collect()
}

/// JSON lines as plain JSON: export output, and the event logs that
/// delivery.rs and serve.rs still read so (they are to move to
/// [`read_records`]).
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    parse_jsonl(&std::fs::read_to_string(path).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The values of JSONL text, or which line is not JSON.
pub fn parse_jsonl(text: &str) -> Result<Vec<Value>, String> {
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("line {}: bad JSONL {l:?}: {e}", i + 1))
        })
        .collect()
}

/// The event records among `records`.
pub fn events(records: &[Record]) -> impl Iterator<Item = &EventRecord> {
    records.iter().filter_map(|r| match r {
        Record::Event(e) => Some(e),
        _ => None,
    })
}

/// The caption records among `records`.
pub fn captions(records: &[Record]) -> impl Iterator<Item = &CaptionRecord> {
    records.iter().filter_map(|r| match r {
        Record::Caption(c) => Some(c),
        _ => None,
    })
}

/// The transcript records among `records`.
pub fn transcripts(records: &[Record]) -> impl Iterator<Item = &TranscriptRecord> {
    records.iter().filter_map(|r| match r {
        Record::Transcript(t) => Some(t),
        _ => None,
    })
}

/// A record's id (`STREAM/N`).
pub fn id(r: &Record) -> &str {
    match r {
        Record::Event(e) => &e.id,
        Record::Caption(c) => &c.id,
        Record::Transcript(t) => &t.id,
    }
}

/// A record's run id.
pub fn run_id(r: &Record) -> &str {
    match r {
        Record::Event(e) => &e.run,
        Record::Caption(c) => &c.run,
        Record::Transcript(t) => &t.run,
    }
}

/// `records` with `run` and `utc` blanked: what two runs of the same media
/// must agree on.
pub fn without_run_and_utc(records: Vec<Record>) -> Vec<Record> {
    records
        .into_iter()
        .map(|mut r| {
            let (run, utc) = match &mut r {
                Record::Event(e) => (&mut e.run, &mut e.utc),
                Record::Caption(c) => (&mut c.run, &mut c.utc),
                Record::Transcript(t) => (&mut t.run, &mut t.utc),
            };
            run.clear();
            utc.clear();
            r
        })
        .collect()
}

/// A record's end, if it has one (an event's start and update do not).
pub fn end(r: &Record) -> Option<Timestamp> {
    match r {
        Record::Event(e) => e.end,
        Record::Caption(c) => Some(c.end),
        Record::Transcript(t) => Some(t.end),
    }
}

/// Every event of `records` that started ended exactly once, after it
/// started, and every end belongs to a start; else the first that did not.
pub fn lifecycles_closed(records: &[Record]) -> Result<(), String> {
    use std::collections::BTreeMap;
    let mut phases: BTreeMap<&str, Vec<Phase>> = BTreeMap::new();
    for e in events(records) {
        phases.entry(&e.event).or_default().push(e.phase);
    }
    for (id, p) in phases {
        let ends = p.iter().filter(|x| **x == Phase::End).count();
        if p.first() != Some(&Phase::Start) || ends != 1 || p.last() != Some(&Phase::End) {
            return Err(format!(
                "event {id}: phases {p:?}, expected start, updates, one end"
            ));
        }
    }
    Ok(())
}

/// Seconds of a record's time, as the record writes it.
pub fn secs(t: Timestamp) -> f64 {
    t.as_secs_f64_ms()
}

/// Seconds of an event's end, which it must have (it is an end).
#[track_caller]
pub fn end_secs(e: &EventRecord) -> f64 {
    match e.end {
        Some(t) => secs(t),
        None => panic!("no end: {e:?}"),
    }
}

/// The cache the tests run with (as the Makefile sets it).
pub fn cache() -> std::path::PathBuf {
    match std::env::var_os("VIGIL_CACHE").filter(|c| !c.is_empty()) {
        Some(c) => c.into(),
        None => std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/vigil"),
    }
}

/// Runs `pipeline` (TOML) on `source` with `cache` as VIGIL_CACHE: it must
/// fail before any media flows, with one `vigil:` line, which is returned.
#[track_caller]
pub fn fails_at_start(dir: &Path, cache: &Path, pipeline: &str, source: &Path) -> String {
    let file = dir.join("p.toml");
    std::fs::write(&file, pipeline).expect("write");
    let out = vigil()
        .env("VIGIL_CACHE", cache)
        .args(["run", file.to_str().unwrap_or_default(), "--source"])
        .arg(source)
        .arg("--out")
        .arg(dir.join("out"))
        .output()
        .expect("vigil");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<String> = err
        .lines()
        .filter(|l| l.starts_with("vigil:"))
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(!dir.join("out/events.jsonl").exists(), "nothing ran");
    lines[0].clone()
}

#[test]
fn a_line_that_is_not_a_record_is_named_with_why() {
    let good = r#"{"type":"caption","run":"r","id":"s/1","stream":"s","start":0.0,"end":1.5,"utc":"2026-01-01T00:00:00.000Z","text":"x"}"#;
    let records = parse_records(&format!("{good}\n{good}")).expect("records");
    assert_eq!(records.len(), 2);
    assert_eq!(
        captions(&records).map(|c| c.end).next(),
        Some(Timestamp(1_500_000_000))
    );
    let bad = |line: &str| parse_records(&format!("{good}\n{line}")).expect_err("not a record");
    let e = bad(&good.replace(r#","text":"x""#, ""));
    assert!(
        e.starts_with("line 2: ") && e.contains("missing field `text`"),
        "{e}"
    );
    let e = bad(&good.replace(r#""start":0.0"#, r#""start":"0""#));
    assert!(
        e.starts_with("line 2: ") && e.contains("invalid type"),
        "{e}"
    );
    let e = bad(&good.replace(r#""text":"x""#, r#""text":"x","txet":"y""#));
    assert!(e.starts_with("line 2: ") && e.contains("\"txet\""), "{e}");
    let e = bad(&good.replace(r#""type":"caption""#, r#""type":"captoin""#));
    assert!(
        e.starts_with("line 2: ") && e.contains("unknown variant"),
        "{e}"
    );
    let e = bad("{");
    assert!(e.starts_with("line 2: ") && e.contains("EOF"), "{e}");
}
