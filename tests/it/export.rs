//! The event store and `vigil events`: a real run's records come back out
//! of the store in every format, every field intact.

use serde_json::Value;
use vigil::record::Record;

use crate::clip;
use crate::run::{
    RunResult, captions, events as event_records, read_jsonl, run_file, secs, transcripts, vigil,
};

/// `vigil events --db … ARGS`, its stdout.
fn events(r: &RunResult, args: &[&str]) -> String {
    let out = vigil()
        .arg("events")
        .arg("--db")
        .arg(r.out_dir.join("events.db"))
        .args(args)
        .output()
        .expect("vigil events");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A CSV field back to its JSON value.
fn field(column: &str, text: &str) -> Option<Value> {
    if text.is_empty() {
        return None;
    }
    Some(match column {
        "start" | "end" | "score" | "labels" | "track" | "bbox" | "confidence" | "details" => {
            serde_json::from_str(text).unwrap_or_else(|e| panic!("{column} {text:?}: {e}"))
        }
        _ => Value::String(text.to_string()),
    })
}

/// Cue times and texts of a WebVTT or SubRip file.
fn cues(text: &str) -> Vec<(String, String, String)> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut lines = block.lines().skip_while(|l| !l.contains(" --> "));
            let times = lines.next()?;
            let (a, b) = times.split_once(" --> ")?;
            Some((
                a.replace(',', "."),
                b.replace(',', "."),
                lines.collect::<Vec<_>>().join("\n"),
            ))
        })
        .collect()
}

fn hms(secs: f64) -> String {
    let ms = (secs * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

#[test]
fn every_format_gives_back_every_record_of_a_real_run() {
    // Speech (a transcript with commas), sound events, captions.
    let r = run_file(&clip::shared("jfk.wav"));
    assert!(r.ok(), "{}", r.stderr());
    let records = r.records();
    assert!(transcripts(&records).next().is_some());
    assert!(captions(&records).next().is_some());
    assert!(event_records(&records).next().is_some());
    // The log as JSON, to compare with what comes out of the store.
    let log = read_jsonl(&r.out_dir.join("events.jsonl"));

    // JSONL and JSON: the same records, in the same order.
    let jsonl: Vec<Value> = events(&r, &[])
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(jsonl, log);
    let json: Vec<Value> =
        serde_json::from_str(&events(&r, &["--format", "json"])).expect("a JSON array");
    assert_eq!(json, log);

    // CSV: a header, then every field of every record.
    let csv_text = events(&r, &["--format", "csv"]);
    let mut rd = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = rd
        .headers()
        .expect("a header")
        .iter()
        .map(String::from)
        .collect();
    let rows: Vec<csv::StringRecord> = rd.records().map(|x| x.expect("a row")).collect();
    assert_eq!(rows.len(), log.len());
    for (row, record) in rows.iter().zip(&log) {
        let mut back = serde_json::Map::new();
        for (column, text) in header.iter().zip(row.iter()) {
            if let Some(v) = field(column, text) {
                back.insert(column.clone(), v);
            }
        }
        let mut want = record.as_object().expect("an object").clone();
        want.retain(|_, v| !v.is_null());
        assert_eq!(Value::Object(back), Value::Object(want));
    }

    // Subtitles: captions and transcripts, times to the millisecond.
    let mut spoken: Vec<(f64, f64, &str)> = records
        .iter()
        .filter_map(|x| match x {
            Record::Caption(c) => Some((secs(c.start), secs(c.end), c.text.as_str())),
            Record::Transcript(t) => Some((secs(t.start), secs(t.end), t.text.as_str())),
            Record::Event(_) => None,
        })
        .collect();
    spoken.sort_by(|a, b| a.0.partial_cmp(&b.0).expect("times"));
    for format in ["vtt", "srt"] {
        let text = events(&r, &["--format", format]);
        let got = cues(&text);
        assert_eq!(got.len(), spoken.len(), "{format}:\n{text}");
        for (cue, &(start, end, said)) in got.iter().zip(&spoken) {
            assert_eq!(cue.0, hms(start), "{format}");
            assert_eq!(cue.1, hms(end), "{format}");
            assert_eq!(cue.2, said, "{format}");
        }
    }

    // Filters.
    let transcripts = events(&r, &["--kind", "transcript"]);
    let said = crate::run::transcripts(&records).count();
    assert_eq!(transcripts.lines().count(), said);
    assert!(transcripts.contains("fellow Americans"), "{transcripts}");
    let speech = events(&r, &["--kind", "speech", "--stream", "jfk"]);
    assert!(speech.lines().count() >= 2, "{speech}");
    assert!(events(&r, &["--stream", "nobody"]).is_empty());
    assert!(events(&r, &["--since", "-1d"]).lines().count() == log.len());
    assert!(events(&r, &["--until", "2000-01-01T00:00:00Z"]).is_empty());
}

#[test]
fn a_missing_store_or_a_bad_time_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = vigil()
        .args(["events", "--db"])
        .arg(dir.path().join("none.db"))
        .output()
        .expect("vigil");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no such store"), "{err}");
    let out = vigil()
        .args(["events", "--since", "yesterday"])
        .output()
        .expect("vigil");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--since"), "{err}");
}
