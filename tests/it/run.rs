//! Running the `vigil` binary and reading what it wrote.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn vigil() -> Command {
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

    pub fn records(&self) -> Vec<Value> {
        read_jsonl(&self.out_dir.join("events.jsonl"))
    }

    /// Event records of `kind` in `phase`.
    pub fn events(&self, kind: &str, phase: &str) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|r| r["type"] == "event" && r["kind"] == kind && r["phase"] == phase)
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

/// Runs the built-in pipeline on `path`.
pub fn run_file(path: &Path) -> RunResult {
    run(&["--source", path.to_str().expect("utf-8 path")])
}

pub fn read_jsonl(path: &Path) -> Vec<Value> {
    parse_jsonl(&std::fs::read_to_string(path).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The records of JSONL text, or which line is not JSON.
pub fn parse_jsonl(text: &str) -> Result<Vec<Value>, String> {
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("line {}: bad JSONL {l:?}: {e}", i + 1))
        })
        .collect()
}

/// Every event of `records` that started ended exactly once, after it
/// started, and every end belongs to a start; else the first that did not.
pub fn lifecycles_closed(records: &[Value]) -> Result<(), String> {
    use std::collections::BTreeMap;
    let mut phases: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in records.iter().filter(|r| r["type"] == "event") {
        let id = r["event"].as_str().unwrap_or_default();
        phases
            .entry(id)
            .or_default()
            .push(r["phase"].as_str().unwrap_or_default());
    }
    for (id, p) in phases {
        let ends = p.iter().filter(|x| **x == "end").count();
        if p.first() != Some(&"start") || ends != 1 || p.last() != Some(&"end") {
            return Err(format!(
                "event {id}: phases {p:?}, expected start, updates, one end"
            ));
        }
    }
    Ok(())
}

/// Seconds of a record field.
pub fn secs(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
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
