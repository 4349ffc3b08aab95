//! The event store: every record in SQLite (WAL), indexed by stream, kind,
//! label and time, with the record format's version, so that records can
//! be queried and exported (`vigil events`) and, later, delivered from it.
//!
//! One row per record; the record's JSON is kept whole (`json`) beside the
//! columns it is looked up by. A batch is one transaction, committed with
//! `synchronous = FULL` before `send` returns: a crash loses at most the
//! batch in flight. (`run`, `id`) is unique, so a batch written twice is
//! stored once.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};
use crate::record::{Record, VIGIL_SCHEMA};
use crate::sink::Sink;

/// The store's own layout; `vigil_schema` (the record format) is kept
/// beside it.
const LAYOUT: u32 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    run      TEXT NOT NULL,
    id       TEXT NOT NULL,
    type     TEXT NOT NULL,
    stream   TEXT NOT NULL,
    kind     TEXT,
    event    TEXT,
    phase    TEXT,
    label    TEXT,
    start_ms INTEGER NOT NULL,
    end_ms   INTEGER,
    utc      TEXT NOT NULL,
    snapshot TEXT,
    json     TEXT NOT NULL,
    UNIQUE (run, id)
);
CREATE INDEX IF NOT EXISTS records_stream ON records (stream, start_ms);
CREATE INDEX IF NOT EXISTS records_kind ON records (kind, start_ms);
CREATE INDEX IF NOT EXISTS records_label ON records (label, start_ms);
CREATE INDEX IF NOT EXISTS records_utc ON records (utc);
";

/// Opens (creating if need be) the store at `path`, checking its version.
pub fn open(path: &Path) -> Result<Connection> {
    let err = |what: &str, e: rusqlite::Error| Error::Store {
        path: path.to_path_buf(),
        message: format!("{what}: {e}"),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("cannot create the folder of {}", path.display()), e))?;
    }
    let db = Connection::open(path).map_err(|e| err("cannot open", e))?;
    db.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| err("cannot set a busy timeout", e))?;
    db.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| err("cannot turn on WAL", e))?;
    db.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| err("cannot set synchronous", e))?;
    db.execute_batch(SCHEMA)
        .map_err(|e| err("cannot create the tables", e))?;
    let stored: Option<String> = db
        .query_row("SELECT value FROM meta WHERE key = 'layout'", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(|e| err("cannot read its version", e))?;
    match stored.map(|v| v.parse::<u32>()) {
        None => {
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('layout', ?1), ('vigil_schema', ?2)",
                params![LAYOUT.to_string(), VIGIL_SCHEMA.to_string()],
            )
            .map_err(|e| err("cannot write its version", e))?;
        }
        Some(Ok(LAYOUT)) => {}
        Some(v) => {
            return Err(Error::Store {
                path: path.to_path_buf(),
                message: format!(
                    "its layout is {v:?}, this vigil knows {LAYOUT}: use another --db or the vigil that wrote it"
                ),
            });
        }
    }
    Ok(db)
}

/// Writes every record into the store.
pub struct StoreSink {
    path: PathBuf,
    db: Connection,
}

impl StoreSink {
    pub fn open(path: &Path) -> Result<StoreSink> {
        Ok(StoreSink {
            path: path.to_path_buf(),
            db: open(path)?,
        })
    }

    fn write(&mut self, batch: &[Record]) -> rusqlite::Result<()> {
        let tx = self.db.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO records
                 (run, id, type, stream, kind, event, phase, label, start_ms, end_ms, utc, snapshot, json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?;
            for r in batch {
                let row = Row::of(r);
                let json = serde_json::to_string(r)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                insert.execute(params![
                    row.run,
                    row.id,
                    row.kind_of,
                    r.stream(),
                    row.kind,
                    row.event,
                    row.phase,
                    row.label,
                    ms(r.start()),
                    row.end.map(ms),
                    row.utc,
                    row.snapshot,
                    json
                ])?;
            }
        }
        tx.commit()
    }
}

fn ms(t: crate::time::Timestamp) -> i64 {
    i64::try_from(t.millis_rounded()).unwrap_or(i64::MAX)
}

/// The columns a record is looked up by.
struct Row<'a> {
    run: &'a str,
    id: &'a str,
    kind_of: &'static str,
    kind: Option<&'a str>,
    event: Option<&'a str>,
    phase: Option<&'static str>,
    label: Option<&'a str>,
    end: Option<crate::time::Timestamp>,
    utc: &'a str,
    snapshot: Option<&'a str>,
}

impl<'a> Row<'a> {
    fn of(r: &'a Record) -> Row<'a> {
        use crate::record::Phase;
        match r {
            Record::Event(e) => Row {
                run: &e.run,
                id: &e.id,
                kind_of: "event",
                kind: Some(&e.kind),
                event: Some(&e.event),
                phase: Some(match e.phase {
                    Phase::Start => "start",
                    Phase::Update => "update",
                    Phase::End => "end",
                }),
                label: e.labels.first().map(String::as_str),
                end: e.end,
                utc: &e.utc,
                snapshot: e.snapshot.as_deref(),
            },
            Record::Caption(c) => Row {
                run: &c.run,
                id: &c.id,
                kind_of: "caption",
                kind: None,
                event: None,
                phase: None,
                label: None,
                end: Some(c.end),
                utc: &c.utc,
                snapshot: None,
            },
            Record::Transcript(t) => Row {
                run: &t.run,
                id: &t.id,
                kind_of: "transcript",
                kind: None,
                event: None,
                phase: None,
                label: None,
                end: Some(t.end),
                utc: &t.utc,
                snapshot: None,
            },
        }
    }
}

#[async_trait::async_trait]
impl Sink for StoreSink {
    fn name(&self) -> &'static str {
        "store"
    }

    async fn send(&mut self, batch: &[Record]) -> Result<()> {
        self.write(batch).map_err(|e| Error::Store {
            path: self.path.clone(),
            message: format!("cannot store {} records: {e}", batch.len()),
        })
    }

    async fn flush(&mut self) -> Result<()> {
        self.db
            .execute_batch("PRAGMA wal_checkpoint(PASSIVE)")
            .map_err(|e| Error::Store {
                path: self.path.clone(),
                message: format!("cannot checkpoint: {e}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuse::RecordMaker;
    use crate::record::Phase;
    use crate::time::Timestamp;

    fn records() -> Vec<Record> {
        let mut maker = RecordMaker::new("run1".into(), "cam".into());
        let mut e = maker.event(
            "cam/object/person/1",
            "object",
            Phase::Start,
            Timestamp(1_500_000_000),
            None,
            0.9,
            None,
            Default::default(),
        );
        if let Record::Event(x) = &mut e {
            x.labels = vec!["person".into()];
        }
        vec![
            e,
            maker.caption(Timestamp(0), Timestamp(5_000_000_000), "A, \"b\"".into()),
            maker.transcript(Timestamp(1), Timestamp(2), "hello".into(), 0.5),
        ]
    }

    #[tokio::test]
    async fn records_are_stored_once_with_their_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let mut s = StoreSink::open(&path).unwrap();
        let batch = records();
        s.send(&batch).await.unwrap();
        s.send(&batch).await.unwrap();
        s.flush().await.unwrap();
        let db = open(&path).unwrap();
        let n: i64 = db
            .query_row("SELECT count(*) FROM records", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3, "a batch sent twice is stored once");
        let (kind, label, start): (String, String, i64) = db
            .query_row(
                "SELECT kind, label, start_ms FROM records WHERE type = 'event'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            (kind.as_str(), label.as_str(), start),
            ("object", "person", 1500)
        );
        let json: String = db
            .query_row("SELECT json FROM records WHERE type = 'caption'", [], |r| {
                r.get(0)
            })
            .unwrap();
        let back: Record = serde_json::from_str(&json).unwrap();
        assert_eq!(back, batch[1]);
        let schema: String = db
            .query_row(
                "SELECT value FROM meta WHERE key = 'vigil_schema'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(schema, VIGIL_SCHEMA.to_string());
    }

    #[test]
    fn a_store_of_another_layout_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        drop(open(&path).unwrap());
        let db = Connection::open(&path).unwrap();
        db.execute("UPDATE meta SET value = '99' WHERE key = 'layout'", [])
            .unwrap();
        drop(db);
        let e = open(&path).unwrap_err().to_string();
        assert!(e.contains("layout") && e.contains("99"), "{e}");
    }
}
