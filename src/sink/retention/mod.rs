//! Retention: what keeps the output folder from growing without end.
//!
//! - The store's retention (`[sinks.store] max_age`, `max_size_mib`,
//!   [`crate::sink::store::prune`]) deletes the media files its records
//!   name with the last record naming them ([`media`]), and counts them in
//!   its size.
//! - The logs (`events.jsonl`, `captions.vtt`, `captions.srt`) rotate by
//!   size and keep their newest rotated files ([`rotate`]). Without a
//!   store, the snapshots a deleted rotated `events.jsonl` names go with it.
//! - Continuous recording's segments go by the store's `max_age`, and
//!   first, oldest first, when its `max_size_mib` or the disk guard needs
//!   room ([`segments`]).
//! - Free space on the disk is watched ([`crate::disk`], [`guard`]): the
//!   oldest segments go first, then media stop, then records, and a
//!   `disk_low` event says so.
//! - `vigil gc` applies all of it on demand, and deletes snapshots no
//!   record names ([`gc`]).

pub mod gc;
pub mod guard;
pub mod media;
pub mod rotate;
pub mod segments;

use std::path::Path;

/// Deletes the rotated files of the log `path` beyond the newest `keep`;
/// when `media_root` is given (the log is what names the snapshots), the
/// media files their records name go too. With `dry_run` nothing is
/// deleted. Returns the log files and the media files deleted.
pub fn prune_rotated(
    path: &Path,
    keep: usize,
    media_root: Option<&Path>,
    dry_run: bool,
    listed: &mut dyn FnMut(&Path, u64),
) -> std::io::Result<(media::Deleted, media::Deleted)> {
    let mut logs = media::Deleted::default();
    let mut files = media::Deleted::default();
    for old in rotate::surplus(path, keep)? {
        if let Some(root) = media_root {
            let named = named_in_log(&old);
            files += media::delete(root, named.iter().map(String::as_str), dry_run, listed);
        }
        let bytes = std::fs::symlink_metadata(&old).map_or(0, |m| m.len());
        listed(&old, bytes);
        if !dry_run {
            match std::fs::remove_file(&old) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        logs += media::Deleted { files: 1, bytes };
    }
    Ok((logs, files))
}

/// The media files the records of a JSONL log name (lines that are not
/// records are skipped: a line cut by a crash).
pub fn named_in_log(path: &Path) -> Vec<String> {
    use std::io::BufRead;
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let mut named = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let Ok(line) = line else { break };
        // Most lines name nothing: only those that may are parsed.
        if !line.contains("\"snapshot\":\"") {
            continue;
        }
        if let Ok(r) = serde_json::from_str::<crate::record::Record>(&line) {
            named.extend(r.media().map(str::to_string));
        }
    }
    named
}
