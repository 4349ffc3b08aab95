//! The event store: every record in SQLite (WAL), indexed by stream, kind,
//! label and time, with the record format's version, so that records can
//! be queried and exported (`vigil events`) and, later, delivered from it.
//!
//! One row per record; the record's JSON is kept whole (`json`) beside the
//! columns it is looked up by. A batch is one transaction, committed with
//! `synchronous = FULL` before `send` returns: a crash loses at most the
//! batch in flight. (`run`, `id`) is unique, so a batch written twice is
//! stored once.
//!
//! The store is also the outbox of the live sinks (webhook, MQTT, NATS):
//! each reads the records after its row in `cursors` and moves the row on
//! once the far end acknowledged them. Retention never deletes a record a
//! configured live sink still owes. `stored_ns` (wall clock at commit)
//! measures delivery lag.
//!
//! The media files records name (snapshots) are listed in `media`, with
//! their size, once per file: retention counts them in the store's size
//! and deletes a file with the last record that names it, after the rows
//! are committed (a crash in between leaves a file no record names, which
//! `vigil gc` finds; never a record naming a file deleted).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};
use crate::record::{Record, VIGIL_SCHEMA};
use crate::sink::{Sink, SinkKind};

/// The store's own layout; `vigil_schema` (the record format) is kept
/// beside it.
const LAYOUT: u32 = 3;

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
    stored_ns INTEGER,
    clip     TEXT,
    UNIQUE (run, id)
);
CREATE INDEX IF NOT EXISTS records_stream ON records (stream, start_ms);
CREATE INDEX IF NOT EXISTS records_kind ON records (kind, start_ms);
CREATE INDEX IF NOT EXISTS records_label ON records (label, start_ms);
CREATE INDEX IF NOT EXISTS records_utc ON records (utc);
CREATE TABLE IF NOT EXISTS cursors (sink TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS media (path TEXT PRIMARY KEY, bytes INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS records_snapshot ON records (snapshot) WHERE snapshot IS NOT NULL;
";

/// What [`SCHEMA`] adds once the `clip` column is there (an older store
/// gets it first).
const CLIP_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS records_clip ON records (clip) WHERE clip IS NOT NULL;";

/// Whether some record still names `media.path`: the columns that hold
/// what [`Record::media`] gives.
const STILL_NAMED: &str = "(EXISTS (SELECT 1 FROM records WHERE records.snapshot = media.path)
     OR EXISTS (SELECT 1 FROM records WHERE records.clip = media.path))";

/// The cursor of the index of moments (`search::index` keeps it):
/// retention does not wait for it, since a record deleted before it was
/// indexed needs no moment.
pub const INDEX_CURSOR: &str = "index";

/// Batches between two retention passes.
const PRUNE_EVERY: u64 = 64;
/// … or sooner, once this share of the size limit was written since the
/// last pass (snapshots weigh far more than records).
const PRUNE_SHARE: u64 = 16;
/// While the store is over its size, this fraction of its rows (at most
/// `PRUNE_STEP` of them) is deleted at a time.
const PRUNE_FRACTION: i64 = 20;
const PRUNE_STEP: i64 = 5000;

/// The event store the records go to, as the server reads it.
#[derive(Clone)]
pub struct StoreHandle {
    pub path: std::path::PathBuf,
    /// The last sequence number committed, changed at each commit (when
    /// the store is written in this process: else it is looked at each second).
    pub committed: Option<tokio::sync::watch::Receiver<i64>>,
}

/// Pages (of 4 KiB) the write-ahead log grows to before a checkpoint.
const WAL_PAGES: i64 = 256;
/// What the write-ahead log is cut back to after a checkpoint.
const WAL_BYTES: i64 = 1 << 20;

/// Gives the pages retention freed back to the disk (a store made with
/// `auto_vacuum = INCREMENTAL`; on an older one, nothing).
pub fn release_pages(db: &Connection) -> rusqlite::Result<()> {
    // It frees a page a step: every step is taken.
    let mut q = db.prepare("PRAGMA incremental_vacuum")?;
    let mut rows = q.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}

/// Whether the store gives freed pages back (see [`release_pages`]);
/// `vigil gc` converts one that does not.
pub fn releases_pages(db: &Connection) -> rusqlite::Result<bool> {
    db.query_row("PRAGMA auto_vacuum", [], |r| r.get::<_, i64>(0))
        .map(|mode| mode == 2)
}

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
    // Pages freed by retention go back to the disk (a new store; `vigil
    // gc` converts an older one), and the write-ahead log is checkpointed
    // and cut back at 1 MiB: the files stay near `max_size_mib`.
    db.pragma_update(None, "auto_vacuum", "INCREMENTAL")
        .map_err(|e| err("cannot set auto_vacuum", e))?;
    db.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| err("cannot turn on WAL", e))?;
    db.pragma_update(None, "wal_autocheckpoint", WAL_PAGES)
        .map_err(|e| err("cannot set the checkpoint interval", e))?;
    db.pragma_update(None, "journal_size_limit", WAL_BYTES)
        .map_err(|e| err("cannot limit the write-ahead log", e))?;
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
        // Layout 1 lacked the commit time, and 2 the clip.
        Some(Ok(old @ (1 | 2))) => {
            let mut upgrade = String::from("BEGIN;");
            for (column, kind) in [("stored_ns", "INTEGER"), ("clip", "TEXT")] {
                let has: bool = db
                    .query_row(
                        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('records') WHERE name = ?1)",
                        [column],
                        |r| r.get(0),
                    )
                    .map_err(|e| err("cannot read its columns", e))?;
                if !has {
                    upgrade.push_str(&format!("ALTER TABLE records ADD COLUMN {column} {kind};"));
                }
            }
            upgrade.push_str(&format!(
                "UPDATE meta SET value = '{LAYOUT}' WHERE key = 'layout'; COMMIT;"
            ));
            db.execute_batch(&upgrade)
                .map_err(|e| err(&format!("cannot upgrade it from layout {old}"), e))?;
        }
        Some(v) => {
            return Err(Error::Store {
                path: path.to_path_buf(),
                message: format!(
                    "its layout is {v:?}, this vigil knows {LAYOUT}: use another --db or the vigil that wrote it"
                ),
            });
        }
    }
    db.execute_batch(CLIP_INDEX)
        .map_err(|e| err("cannot create the tables", e))?;
    Ok(db)
}

/// How long and how much the store keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Nanoseconds of `utc` age.
    pub max_age: Option<u64>,
    /// Bytes of pages in use.
    pub max_bytes: Option<u64>,
}

impl Retention {
    /// What `[sinks.store]` keeps.
    pub fn of(c: &crate::config::StoreConfig) -> Retention {
        Retention {
            max_age: c.max_age.map(crate::time::Duration::nanos),
            max_bytes: c.max_size_mib.map(crate::config::Mib::bytes),
        }
    }
}

/// What a retention pass deleted from the store.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Records.
    pub rows: u64,
    /// The media files no record names any more (relative to the output
    /// folder) and their bytes as stored: to delete once this is committed.
    pub media: Vec<(String, u64)>,
}

/// Deletes what `keep` does not keep, oldest first, but never a record
/// some live sink has not acknowledged (past its cursor), whether or not
/// this run delivers to it: a sink left out of a pipeline for a while
/// still gets what it is owed when it comes back. `vigil cursors --forget`
/// releases a sink for good. The size counted is the pages in use plus
/// the media files the records name. Run it in a transaction: the files
/// it returns go once that is committed (or, rolled back, it is a dry run).
pub fn prune(
    db: &Connection,
    keep: Retention,
    now: chrono::DateTime<chrono::Utc>,
) -> rusqlite::Result<Pruned> {
    // Records after the lowest cursor are still owed to a sink (the
    // index's aside: a record deleted needs no moment).
    let owed: Option<i64> = db.query_row(
        "SELECT min(seq) FROM cursors WHERE sink != ?1",
        [INDEX_CURSOR],
        |r| r.get(0),
    )?;
    let bound = owed.map_or(i64::MAX, |s| s.saturating_add(1));
    let mut done = Pruned::default();
    if let Some(age) = keep.max_age {
        let age = chrono::Duration::nanoseconds(i64::try_from(age).unwrap_or(i64::MAX));
        if let Some(cut) = now.checked_sub_signed(age) {
            let cut = cut.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            done.rows += db.execute(
                "DELETE FROM records WHERE utc < ?1 AND seq < ?2",
                params![cut, bound],
            )? as u64;
            done.media.extend(unnamed_media(db)?);
        }
    }
    if let Some(max) = keep.max_bytes {
        while used_bytes(db)? > max {
            let span: i64 = db.query_row(
                "SELECT coalesce(max(seq) - min(seq), 0) FROM records",
                [],
                |r| r.get(0),
            )?;
            let step = (span / PRUNE_FRACTION).clamp(1, PRUNE_STEP);
            let n = db.execute(
                "DELETE FROM records WHERE seq IN
                 (SELECT seq FROM records WHERE seq < ?1 ORDER BY seq LIMIT ?2)",
                params![bound, step],
            )?;
            done.media.extend(unnamed_media(db)?);
            if n == 0 {
                break;
            }
            done.rows += n as u64;
        }
    }
    Ok(done)
}

/// Bytes the store counts against its size: pages in use, and the media
/// files its records name.
pub fn used_bytes(db: &Connection) -> rusqlite::Result<u64> {
    let pages: i64 = db.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = db.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let size: i64 = db.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let media: i64 = db.query_row("SELECT coalesce(sum(bytes), 0) FROM media", [], |r| {
        r.get(0)
    })?;
    Ok(u64::try_from((pages - free) * size + media).unwrap_or(0))
}

/// Takes the media files no record names any more out of `media`.
fn unnamed_media(db: &Connection) -> rusqlite::Result<Vec<(String, u64)>> {
    let mut q = db.prepare_cached(&format!(
        "DELETE FROM media WHERE NOT {STILL_NAMED} RETURNING path, bytes"
    ))?;
    let rows = q.query_map([], |r| {
        Ok((r.get(0)?, u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0)))
    })?;
    rows.collect()
}

/// Whether some record in the store names the media file `path`.
pub fn names_media(db: &Connection, path: &str) -> rusqlite::Result<bool> {
    db.query_row(
        "SELECT EXISTS (SELECT 1 FROM records WHERE snapshot = ?1 OR clip = ?1)",
        [path],
        |r| r.get(0),
    )
}

/// Gives each live sink in `sinks` a cursor if it has none: a sink seen
/// for the first time is owed the records stored from now on.
pub fn register_cursors(db: &Connection, sinks: &[String]) -> rusqlite::Result<()> {
    for sink in sinks {
        db.execute(
            "INSERT OR IGNORE INTO cursors (sink, seq)
             VALUES (?1, (SELECT coalesce(max(seq), 0) FROM records))",
            [sink],
        )?;
    }
    Ok(())
}

/// Every live sink's cursor: name, last seq acknowledged, records owed.
pub fn cursors(db: &Connection, path: &Path) -> Result<Vec<(String, i64, u64)>> {
    let read = || -> rusqlite::Result<Vec<(String, i64, u64)>> {
        let mut q = db.prepare(
            "SELECT sink, seq, (SELECT count(*) FROM records WHERE records.seq > cursors.seq)
             FROM cursors ORDER BY sink",
        )?;
        let rows = q.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
            ))
        })?;
        rows.collect()
    };
    read().map_err(|e| Error::Store {
        path: path.to_path_buf(),
        message: format!("cannot read the cursors: {e}"),
    })
}

/// Removes `sink`'s cursor; false when it had none.
pub fn forget_cursor(db: &Connection, sink: &str, path: &Path) -> Result<bool> {
    db.execute("DELETE FROM cursors WHERE sink = ?1", [sink])
        .map(|n| n > 0)
        .map_err(|e| Error::Store {
            path: path.to_path_buf(),
            message: format!("cannot remove the cursor of {sink}: {e}"),
        })
}

/// The highest `seq` stored, 0 when none.
pub fn last_seq(db: &Connection) -> rusqlite::Result<i64> {
    db.query_row("SELECT coalesce(max(seq), 0) FROM records", [], |r| {
        r.get(0)
    })
}

/// Writes every record into the store.
pub struct StoreSink {
    path: PathBuf,
    db: Connection,
    keep: Retention,
    /// The output folder the records' media files are under, when known:
    /// then they are measured and deleted with their records.
    media_root: Option<PathBuf>,
    batches: u64,
    /// Bytes of records and new media files written since the last
    /// retention pass.
    written: u64,
    /// The highest `seq` committed, for the live sinks to wait on.
    committed: tokio::sync::watch::Sender<i64>,
    /// When retention last ran.
    pruned_at: Option<std::time::Instant>,
    /// Where the recorders say how much they are still writing.
    disk: Option<std::sync::Arc<crate::disk::DiskGate>>,
}

/// How often the store applies its retention at the least, records or
/// not: continuous recording's segments and clips grow by themselves.
const PRUNE_AT_LEAST_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl StoreSink {
    /// Opens the store for the live sinks `owed_to` (registering their
    /// cursors) and applies retention once.
    pub fn open(path: &Path, keep: Retention, owed_to: &[String]) -> Result<StoreSink> {
        Self::open_with_media(path, keep, owed_to, None)
    }

    /// [`StoreSink::open`], for records whose media files are under
    /// `media_root` (the output folder): retention counts them and deletes
    /// them with the last record that names them.
    pub fn open_with_media(
        path: &Path,
        keep: Retention,
        owed_to: &[String],
        media_root: Option<&Path>,
    ) -> Result<StoreSink> {
        let db = open(path)?;
        let failed = |what: &str, e: rusqlite::Error| Error::Store {
            path: path.to_path_buf(),
            message: format!("{what}: {e}"),
        };
        register_cursors(&db, owed_to).map_err(|e| failed("cannot register the live sinks", e))?;
        if let Some(max) = keep.max_bytes {
            // The write-ahead log counts on disk too: checkpointed (and cut
            // back) every sixteenth of the limit rather than every 4 MiB.
            let page: i64 = db
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .map_err(|e| failed("cannot read its page size", e))?;
            let pages = (i64::try_from(max / 16).unwrap_or(i64::MAX) / page.max(1)).clamp(16, 1000);
            db.pragma_update(None, "wal_autocheckpoint", pages)
                .and_then(|()| db.pragma_update(None, "journal_size_limit", pages * page))
                .map_err(|e| failed("cannot bound its write-ahead log", e))?;
        }
        let last = last_seq(&db).map_err(|e| failed("cannot read it", e))?;
        let mut s = StoreSink {
            path: path.to_path_buf(),
            db,
            keep,
            media_root: media_root.map(Path::to_path_buf),
            batches: 0,
            written: 0,
            committed: tokio::sync::watch::Sender::new(last),
            pruned_at: None,
            disk: None,
        };
        s.list_media()
            .map_err(|e| failed("cannot list the media files its records name", e))?;
        s.prune()?;
        Ok(s)
    }

    /// Counts, against its size, the clips and segments the recorders
    /// sharing `disk` are still writing.
    pub fn counting_unfinished(mut self, disk: std::sync::Arc<crate::disk::DiskGate>) -> StoreSink {
        self.disk = Some(disk);
        self
    }

    /// Lists in `media` the files records name that it lacks (a store
    /// written before it had the table).
    fn list_media(&mut self) -> rusqlite::Result<()> {
        let Some(root) = self.media_root.clone() else {
            return Ok(());
        };
        let tx = self.db.transaction()?;
        let missing: Vec<String> = {
            let mut q = tx.prepare(
                "SELECT DISTINCT snapshot FROM records WHERE snapshot IS NOT NULL
                 AND snapshot NOT IN (SELECT path FROM media)
                 UNION SELECT DISTINCT clip FROM records WHERE clip IS NOT NULL
                 AND clip NOT IN (SELECT path FROM media)",
            )?;
            q.query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?
        };
        for path in missing {
            tx.execute(
                "INSERT OR IGNORE INTO media (path, bytes) VALUES (?1, ?2)",
                params![path, media_size(&root, &path)],
            )?;
        }
        tx.commit()
    }

    /// Sizes the media files listed before they were there: a clip is
    /// named from its event's start and finished after its end.
    fn size_finished_media(&mut self) -> rusqlite::Result<()> {
        let Some(root) = self.media_root.clone() else {
            return Ok(());
        };
        let unsized_: Vec<String> = self
            .db
            .prepare_cached("SELECT path FROM media WHERE bytes = 0 LIMIT 1000")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for path in unsized_ {
            let bytes = media_size(&root, &path);
            if bytes > 0 {
                self.db.execute(
                    "UPDATE media SET bytes = ?2 WHERE path = ?1",
                    params![path, bytes],
                )?;
                self.written += u64::try_from(bytes).unwrap_or(0);
            }
        }
        Ok(())
    }

    /// Where the live sinks learn that records were committed.
    pub fn committed(&self) -> tokio::sync::watch::Receiver<i64> {
        self.committed.subscribe()
    }

    /// Applies retention to continuous recording's segments: they take
    /// what room the records and their media leave.
    fn prune_segments(&mut self) {
        let Some(root) = &self.media_root else { return };
        let root = root.join(crate::config::SEGMENTS);
        if self.keep == Retention::default() || !root.is_dir() {
            return;
        }
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
        let older_than = self
            .keep
            .max_age
            .map(|a| now.saturating_sub(i64::try_from(a).unwrap_or(i64::MAX)));
        // Clips and segments being written take room too.
        let unfinished = self.disk.as_ref().map_or(0, |d| d.unfinished());
        let budget = match self.keep.max_bytes.map(|max| (max, used_bytes(&self.db))) {
            None => None,
            Some((max, Ok(used))) => Some(max.saturating_sub(used).saturating_sub(unfinished)),
            Some((_, Err(e))) => {
                tracing::warn!(path = %self.path.display(), "event store retention: cannot measure the store: {e}");
                return;
            }
        };
        let done = crate::sink::retention::segments::prune(
            &root,
            older_than,
            budget,
            false,
            &mut |_, _| {},
        );
        if done.files > 0 {
            tracing::info!(
                segments = done.files,
                bytes = done.bytes,
                "event store retention: the oldest segments of continuous recording deleted"
            );
        }
    }

    fn prune(&mut self) -> Result<()> {
        self.pruned_at = Some(std::time::Instant::now());
        if self.keep == Retention::default() {
            return Ok(());
        }
        self.prune_segments();
        if let Err(e) = self.size_finished_media() {
            tracing::warn!(path = %self.path.display(), "event store: cannot size media files: {e}");
        }
        // Retention failing is not the store failing: records are still
        // written, and the next pass tries again.
        // What is still being written takes its room first.
        let unfinished = self.disk.as_ref().map_or(0, |d| d.unfinished());
        let keep = Retention {
            max_bytes: self.keep.max_bytes.map(|m| m.saturating_sub(unfinished)),
            ..self.keep
        };
        let pass = |db: &mut Connection| -> rusqlite::Result<Pruned> {
            let tx = db.transaction()?;
            let done = prune(&tx, keep, chrono::Utc::now())?;
            tx.commit()?;
            if done.rows > 0 {
                release_pages(db)?;
            }
            Ok(done)
        };
        match pass(&mut self.db) {
            Ok(done) if done.rows == 0 && done.media.is_empty() => {}
            Ok(done) => {
                let files = match &self.media_root {
                    Some(root) => crate::sink::retention::media::delete(
                        root,
                        done.media.iter().map(|(p, _)| p.as_str()),
                        false,
                        &mut |_, _| {},
                    ),
                    None => Default::default(),
                };
                tracing::info!(
                    path = %self.path.display(),
                    deleted = done.rows,
                    media_files = files.files,
                    media_bytes = files.bytes,
                    "event store retention"
                )
            }
            Err(e) => tracing::warn!(
                path = %self.path.display(),
                "event store retention: cannot delete old records: {}",
                explain(&self.db, &e)
            ),
        }
        Ok(())
    }

    fn write(&mut self, batch: &[Record]) -> rusqlite::Result<()> {
        let tx = self.db.transaction()?;
        {
            let mut media =
                tx.prepare_cached("INSERT OR IGNORE INTO media (path, bytes) VALUES (?1, ?2)")?;
            for path in batch.iter().flat_map(Record::media) {
                let bytes = self
                    .media_root
                    .as_deref()
                    .map_or(0, |root| media_size(root, path));
                if media.execute(params![path, bytes])? > 0 {
                    self.written += u64::try_from(bytes).unwrap_or(0);
                }
            }
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO records
                 (run, id, type, stream, kind, event, phase, label, start_ms, end_ms, utc, snapshot, json, stored_ns, clip)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )?;
            let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
            for r in batch {
                let row = Row::of(r);
                let json = serde_json::to_string(r)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                self.written += json.len() as u64;
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
                    json,
                    now,
                    row.clip
                ])?;
            }
        }
        tx.commit()?;
        // The live sinks also look by themselves every second.
        if let Ok(last) = last_seq(&self.db) {
            self.committed.send_replace(last);
        }
        Ok(())
    }
}

/// The size of the media file `path` names under `root`; 0 when it is not
/// there (or not safely there).
fn media_size(root: &Path, path: &str) -> i64 {
    crate::sink::retention::media::resolve(root, path)
        .ok()
        .and_then(|p| std::fs::symlink_metadata(p).ok())
        .filter(|m| m.is_file())
        .map_or(0, |m| i64::try_from(m.len()).unwrap_or(i64::MAX))
}

/// An SQLite error with its cause when the operating system gave one: a
/// full disk or a file-size limit says so, and what to do.
fn explain(db: &Connection, e: &rusqlite::Error) -> String {
    use rusqlite::ffi;
    let Some(code) = e.sqlite_error_code() else {
        return e.to_string();
    };
    if !matches!(
        code,
        rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::SystemIoFailure
    ) {
        return e.to_string();
    }
    // SAFETY: the handle is this open connection's; sqlite3_system_errno
    // only reads the errno SQLite saved for its last failed call.
    let errno = unsafe { ffi::sqlite3_system_errno(db.handle()) };
    match errno {
        libc::EFBIG => format!(
            "{e}: the file reached the file-size limit (ulimit -f); raise it or set [sinks.store] max_size_mib"
        ),
        libc::ENOSPC | libc::EDQUOT => {
            format!("{e}: the disk is full; free space or set [sinks.store] max_size_mib")
        }
        0 if code == rusqlite::ErrorCode::DiskFull => {
            format!("{e}: free space or set [sinks.store] max_size_mib")
        }
        0 => e.to_string(),
        n => format!("{e}: {}", std::io::Error::from_raw_os_error(n)),
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
    clip: Option<&'a str>,
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
                clip: e.clip.as_deref(),
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
                clip: None,
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
                clip: None,
            },
        }
    }
}

impl Sink for StoreSink {
    fn kind(&self) -> SinkKind {
        SinkKind::Store
    }

    fn tick(&mut self) {
        if self
            .pruned_at
            .is_none_or(|t| t.elapsed() >= PRUNE_AT_LEAST_EVERY)
        {
            // A whole pass: clips finished since the last one are sized
            // (and counted) now, not only when enough records came.
            if let Err(e) = self.prune() {
                tracing::warn!(path = %self.path.display(), "event store retention: {e}");
            }
        }
    }

    fn send(&mut self, batch: &[Record]) -> Result<()> {
        self.write(batch).map_err(|e| {
            let cause = explain(&self.db, &e);
            Error::Store {
                path: self.path.clone(),
                message: format!(
                    "cannot store {} record{}: {cause}",
                    batch.len(),
                    if batch.len() == 1 { "" } else { "s" }
                ),
            }
        })?;
        self.batches += 1;
        let share = self.keep.max_bytes.map_or(u64::MAX, |m| m / PRUNE_SHARE);
        if self.batches.is_multiple_of(PRUNE_EVERY) || self.written >= share {
            self.written = 0;
            self.prune()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        // A run ends with the store within its limits.
        self.prune()?;
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

    #[test]
    fn segments_get_the_room_left_by_the_store_and_by_what_is_being_written() {
        let dir = tempfile::tempdir().expect("tmp");
        let out = dir.path();
        let folder = out.join(crate::config::SEGMENTS).join("cam");
        std::fs::create_dir_all(&folder).expect("dir");
        for k in 0..4i64 {
            let name = crate::recording::segments::name((1_796_000_000 + 60 * k) * 1_000_000_000);
            std::fs::write(folder.join(format!("{name}.mp4")), vec![0u8; 1 << 20]).expect("write");
        }
        let keep = Retention {
            max_age: None,
            max_bytes: Some(8 << 20),
        };
        let disk = std::sync::Arc::new(crate::disk::DiskGate::default());
        let mut store = StoreSink::open_with_media(&out.join("events.db"), keep, &[], Some(out))
            .expect("store")
            .counting_unfinished(disk.clone());
        let left = || crate::recording::segments::list(&folder).len();
        assert_eq!(left(), 4, "4 MiB and the store's pages fit in 8 MiB");
        // A clip of 5.5 MiB being written: two segments make room for it.
        disk.writing(11 << 19);
        store.prune_segments();
        assert_eq!(left(), 2);
        // Finished (and, for this test, gone): nothing more goes.
        disk.written(11 << 19);
        assert_eq!(disk.unfinished(), 0);
        store.prune_segments();
        assert_eq!(left(), 2);
    }

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

    #[test]
    fn records_are_stored_once_with_their_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let mut s = StoreSink::open(&path, Retention::default(), &[]).unwrap();
        let batch = records();
        s.send(&batch).unwrap();
        s.send(&batch).unwrap();
        s.flush().unwrap();
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
    fn retention_deletes_the_oldest_but_not_what_a_sink_still_owes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let mut s = StoreSink::open(&path, Retention::default(), &[]).unwrap();
        let mut maker = RecordMaker::new("run1".into(), "cam".into());
        // 2000 captions of about 1 KiB each, an hour apart in UTC.
        maker.utc_origin = 1_700_000_000_000_000_000;
        for i in 0..2000u64 {
            let c = maker.caption(
                Timestamp(i * 3_600_000_000_000),
                Timestamp(i * 3_600_000_000_000 + 1),
                "x".repeat(1000),
            );
            s.send(&[c]).unwrap();
        }
        let count = |db: &Connection| -> i64 {
            db.query_row("SELECT count(*) FROM records", [], |r| r.get(0))
                .unwrap()
        };
        let now =
            chrono::DateTime::from_timestamp_nanos(maker.utc_origin + 2000 * 3_600_000_000_000);
        // A sink has acknowledged up to seq 1500: older ones may go.
        s.db.execute("INSERT INTO cursors (sink, seq) VALUES ('mqtt', 1500)", [])
            .unwrap();
        let by_age = Retention {
            max_age: Some(100 * 3_600_000_000_000),
            max_bytes: None,
        };
        let n = prune(&s.db, by_age, now).unwrap().rows;
        assert_eq!(count(&s.db), 2000 - n as i64);
        let oldest: i64 =
            s.db.query_row("SELECT min(seq) FROM records", [], |r| r.get(0))
                .unwrap();
        assert_eq!(
            oldest, 1501,
            "kept from the first record the sink still owes"
        );
        // Now everything is acknowledged; 100 hours are kept.
        s.db.execute("UPDATE cursors SET seq = 2000", []).unwrap();
        prune(&s.db, by_age, now).unwrap();
        assert_eq!(count(&s.db), 100);
        // By size: under 96 KiB of pages (the empty tables and indexes
        // take 15 pages of 4 KiB).
        let by_size = Retention {
            max_age: None,
            max_bytes: Some(96 * 1024),
        };
        prune(&s.db, by_size, now).unwrap();
        let left = count(&s.db);
        assert!(left > 0 && left < 64, "{left} left");
        let newest: i64 =
            s.db.query_row("SELECT max(seq) FROM records", [], |r| r.get(0))
                .unwrap();
        assert_eq!(newest, 2000, "the newest are kept");
        let listed = cursors(&s.db, &path).unwrap();
        assert_eq!(listed, vec![("mqtt".to_string(), 2000, 0)]);
        assert!(forget_cursor(&s.db, "mqtt", &path).unwrap());
        assert!(!forget_cursor(&s.db, "mqtt", &path).unwrap());
    }

    #[test]
    fn pages_retention_frees_go_back_to_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let keep = Retention {
            max_age: None,
            max_bytes: Some(256 * 1024),
        };
        let mut s = StoreSink::open(&path, Retention::default(), &[]).unwrap();
        let mut maker = RecordMaker::new("run1".into(), "cam".into());
        // About 4 MiB of captions, with no retention.
        for i in 0..4000u64 {
            let c = maker.caption(Timestamp(i), Timestamp(i + 1), "x".repeat(1000));
            s.send(&[c]).unwrap();
        }
        s.flush().unwrap();
        drop(s);
        let on_disk = || -> u64 {
            ["events.db", "events.db-wal"]
                .iter()
                .filter_map(|f| std::fs::metadata(dir.path().join(f)).ok())
                .map(|m| m.len())
                .sum()
        };
        assert!(on_disk() > 4 << 20, "{} bytes", on_disk());
        // Retention on: the store keeps 256 KiB of records, and its files
        // shrink to about that (plus at most the cut-back log).
        let mut s = StoreSink::open(&path, keep, &[]).unwrap();
        s.flush().unwrap();
        drop(s);
        let db = open(&path).unwrap();
        assert!(releases_pages(&db).unwrap());
        db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        drop(db);
        let size = on_disk();
        assert!(size < 512 * 1024, "{size} bytes on disk for 256 KiB kept");
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

    #[test]
    fn a_layout_1_store_is_upgraded_and_new_sinks_start_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let mut s = StoreSink::open(&path, Retention::default(), &[]).unwrap();
        s.send(&records()).unwrap();
        drop(s);
        // As layout 1 was: no commit time, no clip.
        let db = Connection::open(&path).unwrap();
        db.execute_batch(
            "DROP INDEX records_clip;
             ALTER TABLE records DROP COLUMN clip;
             ALTER TABLE records DROP COLUMN stored_ns;
             UPDATE meta SET value = '1' WHERE key = 'layout';",
        )
        .unwrap();
        drop(db);
        let s = StoreSink::open(&path, Retention::default(), &["nats".into()]).unwrap();
        let layout: String =
            s.db.query_row("SELECT value FROM meta WHERE key = 'layout'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(layout, "3");
        let clips: i64 =
            s.db.query_row("SELECT count(clip) FROM records", [], |r| r.get(0))
                .unwrap();
        assert_eq!(clips, 0, "its records name no clip");
        let (cursor, last): (i64, i64) =
            s.db.query_row(
                "SELECT seq, (SELECT max(seq) FROM records) FROM cursors WHERE sink = 'nats'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            cursor, last,
            "a new sink is owed what is stored from now on"
        );
        assert_eq!(*s.committed().borrow(), last);
    }
}
