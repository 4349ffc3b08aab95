//! The index of moments, in the event store beside the records it is made
//! of: `phrases` (each distinct sentence once, with its vector), their
//! full-text index `phrases_fts` (FTS5, BM25, Porter stems) and `moments`
//! (what happened when, naming its phrase).
//!
//! Triggers keep it in step with the records: a record deleted (retention,
//! `vigil gc`) takes its moment along, and a phrase no moment names goes
//! with its words (one an event's later record replaced goes once its
//! batch is indexed). Writing is idempotent: a moment is keyed by its event
//! (or record), and a record already seen changes nothing.

use rusqlite::{Connection, OptionalExtension, params};

use crate::encode::text::{TextEncoder, quantize};
use crate::error::Result;
use crate::search::moment::{self, Moment};
use crate::sink::outbox::{self, Outgoing};

/// The index's cursor in the store's `cursors`: records after it are not
/// indexed yet. Retention does not wait for it: a record deleted first
/// needs no moment.
pub const CURSOR: &str = crate::sink::store::INDEX_CURSOR;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS phrases (
    id     INTEGER PRIMARY KEY,
    text   TEXT NOT NULL UNIQUE,
    vector BLOB
);
CREATE VIRTUAL TABLE IF NOT EXISTS phrases_fts USING fts5(
    text, content = 'phrases', content_rowid = 'id', tokenize = 'porter unicode61'
);
CREATE TRIGGER IF NOT EXISTS phrases_in AFTER INSERT ON phrases BEGIN
    INSERT INTO phrases_fts (rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER IF NOT EXISTS phrases_out AFTER DELETE ON phrases BEGIN
    INSERT INTO phrases_fts (phrases_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TABLE IF NOT EXISTS moments (
    key        TEXT PRIMARY KEY,
    seq        INTEGER NOT NULL,
    phrase     INTEGER NOT NULL,
    stream     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    label      TEXT,
    start_ms   INTEGER NOT NULL,
    end_ms     INTEGER NOT NULL,
    utc_ms     INTEGER NOT NULL,
    utc_end_ms INTEGER NOT NULL,
    run        TEXT NOT NULL,
    record     TEXT NOT NULL,
    why        TEXT NOT NULL,
    snapshot   TEXT,
    clip       TEXT
);
CREATE INDEX IF NOT EXISTS moments_seq ON moments (seq);
DROP INDEX IF EXISTS moments_phrase;
DROP INDEX IF EXISTS moments_utc;
-- Covering: a question's filters are answered from these alone.
CREATE INDEX IF NOT EXISTS moments_of_phrase ON moments (phrase, utc_ms, utc_end_ms, stream);
CREATE INDEX IF NOT EXISTS moments_in_time ON moments (utc_ms, utc_end_ms, stream, phrase);
CREATE INDEX IF NOT EXISTS moments_of_stream ON moments (stream, utc_ms, utc_end_ms, phrase);
-- Facts kept by triggers: `longest_ms`, the longest moment ever indexed
-- (a window's moments start at most that long before it); `phrases_gone`
-- and `vectors_set`, counts that tell a server its kept vectors are stale.
CREATE TABLE IF NOT EXISTS index_facts (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS moments_longest AFTER INSERT ON moments
WHEN new.utc_end_ms - new.utc_ms >
     coalesce((SELECT value FROM index_facts WHERE name = 'longest_ms'), 0) BEGIN
    INSERT INTO index_facts (name, value) VALUES ('longest_ms', new.utc_end_ms - new.utc_ms)
        ON CONFLICT (name) DO UPDATE SET value = excluded.value;
END;
CREATE TRIGGER IF NOT EXISTS moments_longer AFTER UPDATE OF utc_ms, utc_end_ms ON moments
WHEN new.utc_end_ms - new.utc_ms >
     coalesce((SELECT value FROM index_facts WHERE name = 'longest_ms'), 0) BEGIN
    INSERT INTO index_facts (name, value) VALUES ('longest_ms', new.utc_end_ms - new.utc_ms)
        ON CONFLICT (name) DO UPDATE SET value = excluded.value;
END;
CREATE TRIGGER IF NOT EXISTS phrases_gone AFTER DELETE ON phrases BEGIN
    INSERT INTO index_facts (name, value) VALUES ('phrases_gone', 1)
        ON CONFLICT (name) DO UPDATE SET value = value + 1;
END;
CREATE TRIGGER IF NOT EXISTS vectors_set AFTER UPDATE OF vector ON phrases BEGIN
    INSERT INTO index_facts (name, value) VALUES ('vectors_set', 1)
        ON CONFLICT (name) DO UPDATE SET value = value + 1;
END;
CREATE TRIGGER IF NOT EXISTS moments_of_records AFTER DELETE ON records BEGIN
    DELETE FROM moments WHERE seq = old.seq;
END;
CREATE TRIGGER IF NOT EXISTS phrases_unused AFTER DELETE ON moments BEGIN
    DELETE FROM phrases WHERE id = old.phrase
        AND NOT EXISTS (SELECT 1 FROM moments WHERE phrase = old.phrase);
END;
";

/// Creates the index's tables in the store if need be, and its cursor,
/// at the start: a store that had no index gets its history indexed.
pub fn prepare(db: &Connection) -> rusqlite::Result<()> {
    db.execute_batch(SCHEMA)?;
    db.execute(
        "INSERT OR IGNORE INTO cursors (sink, seq) VALUES (?1, 0)",
        [CURSOR],
    )?;
    // An index made before `longest_ms` was kept: found once, by a scan.
    let known: bool = db.query_row(
        "SELECT EXISTS (SELECT 1 FROM index_facts WHERE name = 'longest_ms')",
        [],
        |r| r.get(0),
    )?;
    if !known {
        db.execute(
            "INSERT OR IGNORE INTO index_facts (name, value)
             SELECT 'longest_ms', coalesce(max(utc_end_ms - utc_ms), 0) FROM moments",
            [],
        )?;
    }
    Ok(())
}

/// The longest moment indexed, ms: the moments within a window start at
/// most this long before it.
pub fn longest_ms(db: &Connection) -> rusqlite::Result<i64> {
    db.query_row(
        "SELECT coalesce((SELECT value FROM index_facts WHERE name = 'longest_ms'), 0)",
        [],
        |r| r.get(0),
    )
}

/// What indexing a batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Indexed {
    /// Records read.
    pub records: u64,
    /// New sentences, each embedded once.
    pub phrases: u64,
}

/// Indexes `batch` (records in store order): one transaction, so that a
/// crash leaves the batch wholly in or out. Without an encoder the new
/// sentences get no vector (words only) until `vigil index` gives them one.
pub fn add(
    db: &mut Connection,
    encoder: Option<&mut TextEncoder>,
    batch: &[Outgoing],
) -> Result<Indexed> {
    let path = db_path(db);
    let store = |e: rusqlite::Error| crate::error::Error::Store {
        path: path.clone(),
        message: format!("cannot index records: {e}"),
    };
    let mut moments: Vec<(i64, Moment)> = Vec::new();
    for o in batch {
        match serde_json::from_str::<crate::record::Record>(&o.json) {
            Ok(r) => moments.extend(moment::of(&r).map(|m| (o.seq, m))),
            Err(e) => tracing::warn!(seq = o.seq, "index: record {} left out: {e}", o.id),
        }
    }
    // The sentences never seen before, embedded before the transaction.
    let mut new: Vec<&str> = Vec::new();
    {
        let mut known = db
            .prepare_cached("SELECT 1 FROM phrases WHERE text = ?1")
            .map_err(store)?;
        for (_, m) in &moments {
            if !new.contains(&m.text.as_str())
                && known
                    .query_row([&m.text], |_| Ok(()))
                    .optional()
                    .map_err(store)?
                    .is_none()
            {
                new.push(&m.text);
            }
        }
    }
    let vectors = match encoder {
        Some(enc) if !new.is_empty() => Some(enc.embed(&new)?),
        _ => None,
    };
    let tx = db.transaction().map_err(store)?;
    {
        let mut put = tx
            .prepare_cached("INSERT OR IGNORE INTO phrases (text, vector) VALUES (?1, ?2)")
            .map_err(store)?;
        for (i, text) in new.iter().enumerate() {
            let v = vectors.as_ref().map(|v| quantize(&v[i]));
            put.execute(params![text, v]).map_err(store)?;
        }
        let mut id_of = tx
            .prepare_cached("SELECT id FROM phrases WHERE text = ?1")
            .map_err(store)?;
        let mut upsert = tx
            .prepare_cached(
                // Only while its record is there: retention may have taken it
                // since it was read (and then there is nothing to find).
                "INSERT INTO moments (key, seq, phrase, stream, kind, label, start_ms, end_ms,
                     utc_ms, utc_end_ms, run, record, why, snapshot, clip)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15
                 WHERE EXISTS (SELECT 1 FROM records WHERE seq = ?2)
                 ON CONFLICT (key) DO UPDATE SET
                     seq = excluded.seq, phrase = excluded.phrase, label = excluded.label,
                     end_ms = excluded.end_ms, utc_end_ms = excluded.utc_end_ms,
                     record = excluded.record, why = excluded.why,
                     snapshot = coalesce(excluded.snapshot, snapshot),
                     clip = coalesce(excluded.clip, clip)
                 WHERE excluded.seq > moments.seq",
            )
            .map_err(store)?;
        let mut was = tx
            .prepare_cached("SELECT phrase FROM moments WHERE key = ?1")
            .map_err(store)?;
        let mut replaced: Vec<i64> = Vec::new();
        for (seq, m) in &moments {
            let phrase: i64 = id_of.query_row([&m.text], |r| r.get(0)).map_err(store)?;
            if let Some(old) = was
                .query_row([&m.key], |r| r.get::<_, i64>(0))
                .optional()
                .map_err(store)?
                .filter(|old| *old != phrase)
            {
                replaced.push(old);
            }
            upsert
                .execute(params![
                    m.key,
                    seq,
                    phrase,
                    m.stream,
                    m.kind,
                    m.label,
                    m.start_ms,
                    m.end_ms,
                    m.utc_ms,
                    m.utc_end_ms,
                    m.run,
                    m.record,
                    m.why,
                    m.snapshot,
                    m.clip
                ])
                .map_err(store)?;
        }
        let mut unused = tx
            .prepare_cached(
                "DELETE FROM phrases WHERE id = ?1
                 AND NOT EXISTS (SELECT 1 FROM moments WHERE phrase = ?1)",
            )
            .map_err(store)?;
        for old in replaced {
            unused.execute([old]).map_err(store)?;
        }
        // A new sentence of records deleted meanwhile.
        let mut id_of_new = tx
            .prepare_cached("SELECT id FROM phrases WHERE text = ?1")
            .map_err(store)?;
        for text in &new {
            if let Some(id) = id_of_new
                .query_row([text], |r| r.get::<_, i64>(0))
                .optional()
                .map_err(store)?
            {
                unused.execute([id]).map_err(store)?;
            }
        }
    }
    tx.commit().map_err(store)?;
    Ok(Indexed {
        records: batch.len() as u64,
        phrases: new.len() as u64,
    })
}

/// Gives a vector to every sentence that has none (indexed while the
/// model was missing); how many.
pub fn fill_vectors(db: &mut Connection, encoder: &mut TextEncoder) -> Result<u64> {
    let path = db_path(db);
    let store = |e: rusqlite::Error| crate::error::Error::Store {
        path: path.clone(),
        message: format!("cannot give the index its vectors: {e}"),
    };
    let mut done = 0;
    loop {
        let todo: Vec<(i64, String)> = {
            let mut q = db
                .prepare("SELECT id, text FROM phrases WHERE vector IS NULL LIMIT 256")
                .map_err(store)?;
            q.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(store)?
                .collect::<rusqlite::Result<_>>()
                .map_err(store)?
        };
        if todo.is_empty() {
            return Ok(done);
        }
        let texts: Vec<&str> = todo.iter().map(|(_, t)| t.as_str()).collect();
        let vectors = encoder.embed(&texts)?;
        let tx = db.transaction().map_err(store)?;
        for ((id, _), v) in todo.iter().zip(&vectors) {
            tx.execute(
                "UPDATE phrases SET vector = ?2 WHERE id = ?1",
                params![id, quantize(v)],
            )
            .map_err(store)?;
        }
        tx.commit().map_err(store)?;
        done += todo.len() as u64;
    }
}

/// Indexes every record after the index's cursor, moving it on, a batch
/// at a time; `progress` hears the records done and those left.
pub fn catch_up(
    db: &mut Connection,
    mut encoder: Option<&mut TextEncoder>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Indexed> {
    let path = db_path(db);
    let store = |e: rusqlite::Error| crate::error::Error::Store {
        path: path.clone(),
        message: format!("cannot read the records to index: {e}"),
    };
    prepare(db).map_err(store)?;
    let mut total = Indexed::default();
    let mut at = outbox::cursor(db, CURSOR).map_err(store)?;
    let left = |db: &Connection, at: i64| -> rusqlite::Result<u64> {
        db.query_row("SELECT count(*) FROM records WHERE seq > ?1", [at], |r| {
            r.get::<_, i64>(0)
        })
        .map(|n| u64::try_from(n).unwrap_or(0))
    };
    loop {
        let batch = outbox::fetch(db, at, 512).map_err(store)?;
        let Some(last) = batch.last().map(|o| o.seq) else {
            return Ok(total);
        };
        let done = add(db, encoder.as_deref_mut(), &batch)?;
        total.records += done.records;
        total.phrases += done.phrases;
        outbox::set_cursor(db, CURSOR, last).map_err(store)?;
        at = last;
        progress(total.records, left(db, at).map_err(store)?);
    }
}

/// Empties the index and puts its cursor back to the start: the next
/// [`catch_up`] indexes the whole store again.
pub fn clear(db: &mut Connection) -> rusqlite::Result<()> {
    prepare(db)?;
    let tx = db.transaction()?;
    tx.execute_batch(
        "DELETE FROM moments; DELETE FROM phrases;
         INSERT INTO phrases_fts (phrases_fts) VALUES ('delete-all');
         UPDATE index_facts SET value = 0 WHERE name = 'longest_ms';",
    )?;
    tx.execute("UPDATE cursors SET seq = 0 WHERE sink = ?1", [CURSOR])?;
    tx.commit()
}

/// How far the index is: moments, sentences, sentences without a vector,
/// and records not indexed yet.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Coverage {
    pub moments: u64,
    pub phrases: u64,
    pub without_vector: u64,
    pub records_behind: u64,
}

/// [`Coverage`] of the store's index.
pub fn coverage(db: &Connection) -> rusqlite::Result<Coverage> {
    let count = |sql: &str| -> rusqlite::Result<u64> {
        db.query_row(sql, [], |r| r.get::<_, i64>(0))
            .map(|n| u64::try_from(n).unwrap_or(0))
    };
    Ok(Coverage {
        moments: count("SELECT count(*) FROM moments")?,
        phrases: count("SELECT count(*) FROM phrases")?,
        without_vector: count("SELECT count(*) FROM phrases WHERE vector IS NULL")?,
        records_behind: count(
            "SELECT count(*) FROM records WHERE seq >
                 coalesce((SELECT seq FROM cursors WHERE sink = 'index'), 0)",
        )?,
    })
}

fn db_path(db: &Connection) -> std::path::PathBuf {
    db.path().map(std::path::PathBuf::from).unwrap_or_default()
}

/// Records stored after the index's cursor: not indexed yet.
pub fn coverage_behind(db: &Connection) -> rusqlite::Result<u64> {
    db.query_row(
        "SELECT count(*) FROM records WHERE seq >
             coalesce((SELECT seq FROM cursors WHERE sink = ?1), 0)",
        [CURSOR],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| u64::try_from(n).unwrap_or(0))
}
