//! `vigil gc`: a pipeline's retention, applied on demand to an output
//! folder: the store's old records and the snapshots they name, rotated
//! logs beyond `keep`, and snapshots and clips no record names (orphans: left by a
//! crash between a store's commit and its deletions, by a store deleted by
//! hand, or by a sink that failed) once older than a grace period, so that
//! a snapshot whose record is still on its way is never taken for one.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::config::PipelineConfig;
use crate::error::{Error, Result};
use crate::sink::retention::media::{self, Deleted};
use crate::sink::store;

/// How `vigil gc` runs.
#[derive(Clone, Debug)]
pub struct GcOptions {
    /// Delete nothing; say what would go.
    pub dry_run: bool,
    /// Snapshots no record names are deleted only when older than this.
    pub grace: Duration,
}

/// What `vigil gc` deleted, or would.
#[derive(Debug, Default)]
pub struct GcReport {
    /// Records deleted from the store.
    pub store_records: u64,
    /// Snapshots they named.
    pub store_media: Deleted,
    /// Rotated logs beyond `keep`.
    pub logs: Deleted,
    /// Snapshots those logs named (when there is no store).
    pub log_media: Deleted,
    /// Continuous recording's segments, past the store's `max_age` or
    /// beyond the room its `max_size_mib` leaves.
    pub segments: Deleted,
    /// Snapshots no record names.
    pub orphans: Deleted,
    /// Empty snapshot folders removed.
    pub folders: u64,
    /// Why orphans were not looked for, when they were not.
    pub orphans_skipped: Option<String>,
}

/// Applies `config`'s retention to `out_dir`; `listed` is told each file
/// deleted (or, for a dry run, that would be) and its size.
pub fn gc(
    config: &PipelineConfig,
    out_dir: &Path,
    options: &GcOptions,
    listed: &mut dyn FnMut(&Path, u64),
) -> Result<GcReport> {
    let dry = options.dry_run;
    let mut report = GcReport::default();
    let sinks = &config.sinks;
    let store_path = sinks
        .store
        .as_ref()
        .map(|c| out_dir.join(&c.path))
        .filter(|p| p.is_file());
    let db = store_path.as_deref().map(store::open).transpose()?;
    if let (Some(db), Some(c), Some(path)) = (&db, &sinks.store, &store_path) {
        let keep = store::Retention::of(c);
        let failed = |e: rusqlite::Error| Error::Store {
            path: path.clone(),
            message: format!("cannot apply retention: {e}"),
        };
        let tx = db.unchecked_transaction().map_err(failed)?;
        let pruned = store::prune(&tx, keep, chrono::Utc::now()).map_err(failed)?;
        if dry {
            tx.rollback().map_err(failed)?;
        } else {
            tx.commit().map_err(failed)?;
            // A store from before incremental vacuum is rewritten once so
            // that freed pages go back to the disk from now on.
            if !store::releases_pages(db).map_err(failed)? {
                db.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")
                    .map_err(failed)?;
            }
            store::release_pages(db).map_err(failed)?;
        }
        report.store_records = pruned.rows;
        report.store_media = media::delete(
            out_dir,
            pruned.media.iter().map(|(p, _)| p.as_str()),
            dry,
            listed,
        );
        let segments = out_dir.join(crate::config::SEGMENTS);
        let budget = match keep.max_bytes {
            Some(max) => Some(
                max.saturating_sub(store::used_bytes(db).map_err(failed)?)
                    .saturating_sub(super::segments::partial_bytes(&segments)),
            ),
            None => None,
        };
        let older_than = keep.max_age.map(|a| {
            chrono::Utc::now()
                .timestamp_nanos_opt()
                .unwrap_or(i64::MAX)
                .saturating_sub(i64::try_from(a).unwrap_or(i64::MAX))
        });
        report.segments = super::segments::prune(&segments, older_than, budget, dry, listed);
    }
    let media_root = db.is_none().then_some(out_dir);
    for (log, keep, names_media) in logs(config, out_dir) {
        let root = media_root.filter(|_| names_media);
        let (logs, files) = super::prune_rotated(&log, keep, root, dry, listed).map_err(|e| {
            Error::io(
                format!("cannot delete old rotated files of {}", log.display()),
                e,
            )
        })?;
        report.logs += logs;
        report.log_media += files;
    }
    orphans(config, out_dir, db.as_ref(), options, &mut report, listed)?;
    Ok(report)
}

/// Every log the pipeline writes, the rotated files it keeps, and whether
/// its records name snapshots.
fn logs(config: &PipelineConfig, out_dir: &Path) -> Vec<(PathBuf, usize, bool)> {
    let sinks = &config.sinks;
    let mut v = Vec::new();
    if let Some(c) = &sinks.jsonl {
        v.push((out_dir.join(&c.path), c.keep, true));
    }
    let subtitles = [
        sinks.webvtt.as_ref().map(|c| (&c.path, c.keep)),
        sinks.srt.as_ref().map(|c| (&c.path, c.keep)),
    ];
    for (path, keep) in subtitles.into_iter().flatten() {
        let path = out_dir.join(path);
        // One file per stream when there are several.
        for s in &config.sources {
            v.push((
                crate::sink::subtitles::per_stream(&path, &s.name),
                keep,
                false,
            ));
        }
        v.push((path, keep, false));
    }
    v
}

/// Deletes the snapshots and clips no record names, older than the grace
/// period, then the folders left empty.
fn orphans(
    config: &PipelineConfig,
    out_dir: &Path,
    db: Option<&rusqlite::Connection>,
    options: &GcOptions,
    report: &mut GcReport,
    listed: &mut dyn FnMut(&Path, u64),
) -> Result<()> {
    // What names media files: the store, else the event log (read once).
    let names = match (db, &config.sinks.jsonl) {
        (Some(db), _) => Names::Store(db),
        (None, Some(c)) => {
            let log = out_dir.join(&c.path);
            let rotated = super::rotate::rotated(&log).unwrap_or_default();
            Names::Log(
                rotated
                    .iter()
                    .chain([&log])
                    .flat_map(|p| super::named_in_log(p))
                    .collect(),
            )
        }
        (None, None) => {
            report.orphans_skipped = Some(
                "the pipeline keeps neither a store nor an event log to say which snapshots are wanted"
                    .into(),
            );
            return Ok(());
        }
    };
    let mut sweep = Sweep {
        out_dir,
        names,
        options,
        listed,
    };
    let snapshots = config.snapshots.clone().unwrap_or_default().path;
    let clips = config.recording.clone().unwrap_or_default().path;
    for (folder, what, suffixes) in [
        (snapshots, "snapshot", &[".jpg", ".jpg.tmp"][..]),
        (
            clips,
            "clip",
            &[".mp4", ".mkv", ".mp4.part", ".mkv.part"][..],
        ),
    ] {
        let media = Orphans {
            folder: &folder,
            what,
            suffixes,
        };
        media.delete(&mut sweep, report)?;
    }
    Ok(())
}

/// What says which media files records name.
enum Names<'a> {
    Store(&'a rusqlite::Connection),
    Log(HashSet<String>),
}

/// An orphan sweep of one output folder.
struct Sweep<'a> {
    out_dir: &'a Path,
    names: Names<'a>,
    options: &'a GcOptions,
    listed: &'a mut dyn FnMut(&Path, u64),
}

impl Sweep<'_> {
    /// Whether a record names the media file `rel`.
    fn named(&self, rel: &str) -> Result<bool> {
        match &self.names {
            Names::Log(set) => Ok(set.contains(rel)),
            Names::Store(db) => store::names_media(db, rel).map_err(|e| Error::Store {
                path: self.out_dir.to_path_buf(),
                message: format!("cannot look up {rel}: {e}"),
            }),
        }
    }
}

/// Media files of one kind: where they are and how they are named.
struct Orphans<'a> {
    folder: &'a Path,
    what: &'a str,
    suffixes: &'a [&'a str],
}

impl Orphans<'_> {
    fn delete(&self, sweep: &mut Sweep<'_>, report: &mut GcReport) -> Result<()> {
        let (out_dir, options) = (sweep.out_dir, sweep.options);
        let folder = self.folder;
        let Some(rel) = folder
            .to_str()
            .filter(|r| media::resolve(out_dir, r).is_ok())
        else {
            report.orphans_skipped = Some(format!(
                "the {} folder `{}` is not a plain folder under the output folder",
                self.what,
                folder.display()
            ));
            return Ok(());
        };
        let root = out_dir.join(rel);
        if !root.is_dir() {
            return Ok(());
        }
        let old_enough = |m: &std::fs::Metadata| {
            m.modified()
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age >= options.grace)
        };
        let mut stack = vec![root.clone()];
        let mut folders = Vec::new();
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir)
                .map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
            for entry in entries.flatten() {
                let path = entry.path();
                // Never followed: a link is neither a folder nor a file here.
                let Ok(meta) = std::fs::symlink_metadata(&path) else {
                    continue;
                };
                if meta.is_dir() {
                    stack.push(path.clone());
                    folders.push(path);
                    continue;
                }
                let is_media = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| self.suffixes.iter().any(|s| n.ends_with(s)));
                if !meta.is_file() || !is_media || !old_enough(&meta) {
                    continue;
                }
                let Some(rel) = path.strip_prefix(out_dir).ok().and_then(|r| r.to_str()) else {
                    continue;
                };
                if !sweep.named(rel)? {
                    report.orphans +=
                        media::delete(out_dir, [rel], options.dry_run, &mut *sweep.listed);
                }
            }
        }
        if !options.dry_run {
            // Deepest first, so that a stream's folder empties with its runs'.
            folders.sort_by_key(|f| std::cmp::Reverse(f.components().count()));
            for f in folders {
                let empty = std::fs::read_dir(&f).is_ok_and(|mut d| d.next().is_none());
                let old = std::fs::symlink_metadata(&f).is_ok_and(|m| old_enough(&m));
                if empty && old && std::fs::remove_dir(&f).is_ok() {
                    report.folders += 1;
                }
            }
        }
        Ok(())
    }
}
