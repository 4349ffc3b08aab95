//! `vigil events`: records out of the store (or a cluster's JetStream, [`nats`]), filtered, in JSONL, JSON, CSV,
//! WebVTT or SubRip, streamed row by row (the table is never loaded whole).

use std::io::Write;
use std::path::Path;

use rusqlite::types::Value as Sql;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::record::Record;
use crate::sink::subtitles::{Format as Cues, cue_time};

pub mod nats;

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Json,
    Csv,
    Vtt,
    Srt,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "jsonl" => Format::Jsonl,
            "json" => Format::Json,
            "csv" => Format::Csv,
            "vtt" => Format::Vtt,
            "srt" => Format::Srt,
            _ => return Err(format!("`{s}`: expected jsonl, json, csv, vtt or srt")),
        })
    }
}

/// Which records: every filter given must hold.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// UTC bounds, RFC 3339 with milliseconds and `Z` (as records write it).
    pub since: Option<String>,
    pub until: Option<String>,
    pub stream: Option<String>,
    /// An event kind, or `caption` / `transcript`.
    pub kind: Option<String>,
    /// An event's label.
    pub label: Option<String>,
}

/// CSV columns, in order: every field of every record type.
pub const CSV_COLUMNS: &[&str] = &[
    "type",
    "run",
    "id",
    "stream",
    "event",
    "kind",
    "phase",
    "start",
    "end",
    "utc",
    "score",
    "labels",
    "track",
    "zone",
    "bbox",
    "snapshot",
    "text",
    "confidence",
    "details",
];

/// A time for `--since` / `--until`: RFC 3339, or relative to `now` as
/// `-2h`, `-30m`, `-1d` (also without the sign). Returns the UTC form
/// records are stored with.
pub fn parse_time(
    s: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> std::result::Result<String, String> {
    let fmt =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(fmt(t.with_timezone(&chrono::Utc)));
    }
    let ago = s.strip_prefix('-').unwrap_or(s);
    let d = humantime::parse_duration(ago).map_err(|_| {
        format!("`{s}`: expected RFC 3339 (2026-11-28T15:00:00Z) or a time ago (-2h, -30m, -1d)")
    })?;
    let d = chrono::Duration::from_std(d).map_err(|_| format!("`{s}`: too long ago"))?;
    now.checked_sub_signed(d)
        .map(fmt)
        .ok_or_else(|| format!("`{s}`: too long ago"))
}

/// `SELECT columns FROM records WHERE` `filter` holds, and its arguments.
fn select(columns: &str, filter: &Filter) -> (String, Vec<Sql>) {
    let mut sql = format!("SELECT {columns} FROM records WHERE 1 = 1");
    let mut args: Vec<Sql> = Vec::new();
    let mut add = |clause: &str, v: &Option<String>| {
        if let Some(v) = v {
            args.push(Sql::Text(v.clone()));
            sql.push_str(&format!(" AND {clause}?{}", args.len()));
        }
    };
    add("utc >= ", &filter.since);
    add("utc < ", &filter.until);
    add("stream = ", &filter.stream);
    add("label = ", &filter.label);
    if let Some(k) = &filter.kind {
        args.push(Sql::Text(k.clone()));
        let n = args.len();
        sql.push_str(&format!(" AND (kind = ?{n} OR type = ?{n})"));
    }
    (sql, args)
}

/// The records after store sequence `after` that pass `filter`, in store
/// order, at most `limit`: `(seq, type, json)`. For following the store live.
pub fn after(
    conn: &rusqlite::Connection,
    filter: &Filter,
    after: i64,
    limit: usize,
) -> rusqlite::Result<Vec<(i64, String, String)>> {
    let (mut sql, mut args) = select("seq, type, json", filter);
    args.push(Sql::Integer(after));
    sql.push_str(&format!(" AND seq > ?{} ORDER BY seq", args.len()));
    args.push(Sql::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
    sql.push_str(&format!(" LIMIT ?{}", args.len()));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?;
    rows.collect()
}

/// Writes the records of the store at `db` that pass `filter` to `out`.
/// Returns how many were written.
pub fn export(db: &Path, filter: &Filter, format: Format, out: &mut dyn Write) -> Result<u64> {
    if !db.exists() {
        return Err(Error::Store {
            path: db.to_path_buf(),
            message: "no such store: run vigil first, or name one with --db".into(),
        });
    }
    let conn = crate::sink::store::open(db)?;
    let store_err = |e: rusqlite::Error| Error::Store {
        path: db.to_path_buf(),
        message: format!("cannot read: {e}"),
    };
    let (mut sql, args) = select("json", filter);
    let cues = matches!(format, Format::Vtt | Format::Srt);
    if cues {
        sql.push_str(" AND type IN ('caption', 'transcript') ORDER BY start_ms, seq");
    } else {
        sql.push_str(" ORDER BY seq");
    }
    let mut stmt = conn.prepare(&sql).map_err(store_err)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(args))
        .map_err(store_err)?;
    let mut w = RecordWriter::start(format, out, db.display().to_string())?;
    while let Some(row) = rows.next().map_err(store_err)? {
        let json: String = row.get(0).map_err(store_err)?;
        w.record(&json)?;
    }
    w.finish()
}

impl Filter {
    /// Whether the record `r` (as JSON) passes, as the store's query would
    /// have it: for records read from elsewhere (JetStream).
    pub fn matches(&self, r: &Value) -> bool {
        let text = |k: &str| r.get(k).and_then(Value::as_str);
        let utc = text("utc").unwrap_or_default();
        self.since.as_deref().is_none_or(|s| utc >= s)
            && self.until.as_deref().is_none_or(|u| utc < u)
            && self
                .stream
                .as_deref()
                .is_none_or(|s| text("stream") == Some(s))
            && self
                .kind
                .as_deref()
                .is_none_or(|k| text("kind") == Some(k) || text("type") == Some(k))
            && self.label.as_deref().is_none_or(|l| {
                r.get("labels")
                    .and_then(Value::as_array)
                    .is_some_and(|ls| ls.iter().any(|x| x.as_str() == Some(l)))
            })
    }
}

/// Writes records, one at a time, in an export format.
pub struct RecordWriter<'a> {
    format: Format,
    out: &'a mut dyn Write,
    /// Where the records come from, for errors.
    from: String,
    n: u64,
}

fn write_err(e: std::io::Error) -> Error {
    Error::io("cannot write the export", e)
}

impl<'a> RecordWriter<'a> {
    /// Starts the export (its header) to `out`; `from` names where the
    /// records come from, for errors.
    pub fn start(format: Format, out: &'a mut dyn Write, from: String) -> Result<RecordWriter<'a>> {
        match format {
            Format::Json => out.write_all(b"[").map_err(write_err)?,
            Format::Vtt => out.write_all(b"WEBVTT\n\n").map_err(write_err)?,
            Format::Csv => out.write_all(&csv_line(CSV_COLUMNS)?).map_err(write_err)?,
            _ => {}
        }
        Ok(RecordWriter {
            format,
            out,
            from,
            n: 0,
        })
    }

    fn bad(&self, e: impl std::fmt::Display) -> Error {
        Error::Store {
            path: self.from.clone().into(),
            message: format!("a stored record is not a record: {e}"),
        }
    }

    /// Writes one record (its JSON); events are left out of cues.
    pub fn record(&mut self, json: &str) -> Result<()> {
        self.n += 1;
        let n = self.n;
        let format = self.format;
        match format {
            Format::Jsonl => writeln!(self.out, "{json}").map_err(write_err)?,
            Format::Json => {
                let sep = if n == 1 { "\n" } else { ",\n" };
                write!(self.out, "{sep}{json}").map_err(write_err)?;
            }
            Format::Csv => {
                let value: Value = serde_json::from_str(json).map_err(|e| self.bad(e))?;
                self.out
                    .write_all(&csv_line(&csv_row(&value))?)
                    .map_err(write_err)?;
            }
            Format::Vtt | Format::Srt => {
                let record: Record = serde_json::from_str(json).map_err(|e| self.bad(e))?;
                let (start, end, text) = match &record {
                    Record::Caption(c) => (c.start, c.end, c.text.clone()),
                    Record::Transcript(t) => (t.start, t.end, t.text.clone()),
                    Record::Event(_) => {
                        self.n -= 1;
                        return Ok(());
                    }
                };
                let cue = if format == Format::Vtt {
                    Cues::WebVtt
                } else {
                    Cues::Srt
                };
                let name = if format == Format::Vtt {
                    format!("{}/{}", record.run(), record.id())
                } else {
                    n.to_string()
                };
                let text = text.replace("-->", "->").replace('\n', " ");
                write!(
                    self.out,
                    "{name}\n{} --> {}\n{text}\n\n",
                    cue_time(start, cue),
                    cue_time(end, cue)
                )
                .map_err(write_err)?;
            }
        }
        Ok(())
    }

    /// Ends the export; how many records it wrote.
    pub fn finish(self) -> Result<u64> {
        if self.format == Format::Json {
            self.out
                .write_all(if self.n == 0 { b"]\n" } else { b"\n]\n" })
                .map_err(write_err)?;
        }
        self.out.flush().map_err(write_err)?;
        Ok(self.n)
    }
}

/// One CSV line (RFC 4180 quoting), fields in order.
fn csv_line<S: AsRef<[u8]>>(fields: &[S]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(fields).map_err(|e| {
        Error::io(
            "cannot write the export",
            std::io::Error::other(e.to_string()),
        )
    })?;
    w.into_inner().map_err(|e| {
        Error::io(
            "cannot write the export",
            std::io::Error::other(e.to_string()),
        )
    })
}

/// One CSV row: strings as they are, numbers in their JSON form, arrays
/// and objects as JSON, missing fields empty.
fn csv_row(v: &Value) -> Vec<String> {
    CSV_COLUMNS
        .iter()
        .map(|c| match v.get(c) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_read_elsewhere_is_filtered_as_the_store_filters() {
        let r: Value = serde_json::from_str(
            r#"{"type":"event","kind":"object","stream":"cam1","utc":"2026-11-28T15:00:03.000Z","labels":["person","car"]}"#,
        )
        .unwrap();
        let f = |since: Option<&str>, until: Option<&str>, stream, kind, label| Filter {
            since: since.map(Into::into),
            until: until.map(Into::into),
            stream,
            kind,
            label,
        };
        assert!(f(None, None, None, None, None).matches(&r));
        assert!(f(Some("2026-11-28T15:00:03.000Z"), None, None, None, None).matches(&r));
        assert!(!f(Some("2026-11-28T15:00:03.001Z"), None, None, None, None).matches(&r));
        assert!(!f(None, Some("2026-11-28T15:00:03.000Z"), None, None, None).matches(&r));
        assert!(f(None, None, Some("cam1".into()), None, None).matches(&r));
        assert!(!f(None, None, Some("cam2".into()), None, None).matches(&r));
        assert!(f(None, None, None, Some("object".into()), None).matches(&r));
        assert!(f(None, None, None, Some("event".into()), None).matches(&r));
        assert!(!f(None, None, None, Some("caption".into()), None).matches(&r));
        assert!(f(None, None, None, None, Some("car".into())).matches(&r));
        assert!(!f(None, None, None, None, Some("dog".into())).matches(&r));
    }
    use crate::fuse::RecordMaker;
    use crate::record::Phase;
    use crate::sink::Sink;
    use crate::time::Timestamp;

    #[test]
    fn times_are_rfc3339_or_ago() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-28T15:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            parse_time("2026-11-28T16:00:00+01:00", now).unwrap(),
            "2026-11-28T15:00:00.000Z"
        );
        assert_eq!(parse_time("-2h", now).unwrap(), "2026-11-28T13:00:00.000Z");
        assert_eq!(parse_time("30m", now).unwrap(), "2026-11-28T14:30:00.000Z");
        assert!(
            parse_time("yesterday", now)
                .unwrap_err()
                .contains("RFC 3339")
        );
    }

    #[test]
    fn csv_keeps_commas_quotes_and_newlines() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("events.db");
        let mut maker = RecordMaker::new("run".into(), "cam".into());
        let text = "one, \"two\"\nthree";
        let records = vec![
            maker.caption(Timestamp(0), Timestamp(5_000_000_000), text.into()),
            maker.event(
                "cam/motion/1",
                "motion",
                Phase::Start,
                Timestamp(1_000_000_000),
                None,
                0.5,
                Some(crate::geometry::BBox::new(0.1, 0.2, 0.3, 0.4)),
                Default::default(),
            ),
        ];
        let mut sink =
            crate::sink::store::StoreSink::open(&db, crate::sink::store::Retention::default(), &[])
                .unwrap();
        sink.send(&records).unwrap();
        let mut out = Vec::new();
        let n = export(&db, &Filter::default(), Format::Csv, &mut out).unwrap();
        assert_eq!(n, 2);
        let mut rd = csv::Reader::from_reader(&out[..]);
        assert_eq!(
            rd.headers().unwrap().iter().collect::<Vec<_>>(),
            CSV_COLUMNS
        );
        let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
        assert_eq!(&rows[0][16], text);
        assert_eq!(&rows[1][14], "[0.1,0.2,0.3,0.4]");
        // Filters.
        let only = Filter {
            kind: Some("motion".into()),
            ..Default::default()
        };
        let mut out = Vec::new();
        assert_eq!(export(&db, &only, Format::Jsonl, &mut out).unwrap(), 1);
        let mut out = Vec::new();
        assert_eq!(
            export(&db, &Filter::default(), Format::Srt, &mut out).unwrap(),
            1
        );
        let srt = String::from_utf8(out).unwrap();
        assert!(
            srt.starts_with("1\n00:00:00,000 --> 00:00:05,000\none, \"two\" three\n"),
            "{srt}"
        );
    }
}
