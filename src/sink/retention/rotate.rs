//! Log files rotated by size: `events.jsonl` becomes
//! `events.2026-12-04T17-30-00.123Z.jsonl`, named by the UTC of its first
//! record (`:` would not do in every file system), so that the rotated
//! files of a log sort by name in the order of their records. Two files
//! whose first records share a time (a file run again with the same
//! `--start-time`) are told apart by `-1`, `-2`… after the time.

use std::io;
use std::path::{Path, PathBuf};

/// What a stamp looks like: `0` a digit, anything else itself.
const STAMP: &str = "0000-00-00T00-00-00.000Z";

/// `2026-12-04T17:30:00.123Z` → `2026-12-04T17-30-00.123Z`; none when the
/// time is not in the records' form.
pub fn stamp(utc: &str) -> Option<String> {
    let s = utc.replace(':', "-");
    is_stamp(&s).then_some(s)
}

/// The stamp of the current time, for a log whose first record's time is
/// not known.
pub fn stamp_now() -> String {
    chrono::Utc::now()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        .replace(':', "-")
}

fn is_stamp(s: &str) -> bool {
    s.len() == STAMP.len()
        && s.bytes().zip(STAMP.bytes()).all(|(c, t)| match t {
            b'0' => c.is_ascii_digit(),
            t => c == t,
        })
}

/// The stem and extension a log's rotated files are named with.
fn parts(path: &Path) -> (String, Option<String>) {
    let stem = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let ext = path.extension().map(|e| e.to_string_lossy().into_owned());
    (stem, ext)
}

/// `dir/events.jsonl`, stamp, n → `dir/events.STAMP[-n].jsonl`.
pub fn rotated_name(path: &Path, stamp: &str, n: u32) -> PathBuf {
    let (stem, ext) = parts(path);
    let mut name = format!("{stem}.{stamp}");
    if n > 0 {
        name += &format!("-{n}");
    }
    if let Some(ext) = ext {
        name += &format!(".{ext}");
    }
    path.with_file_name(name)
}

/// The stamp and number of a rotated file of `path` named `name`.
fn rotated_key(path: &Path, name: &str) -> Option<(String, u32)> {
    let (stem, ext) = parts(path);
    let rest = name.strip_prefix(&stem)?.strip_prefix('.')?;
    let rest = match &ext {
        Some(ext) => rest.strip_suffix(ext.as_str())?.strip_suffix('.')?,
        None => rest,
    };
    let (s, n) = match rest.get(STAMP.len()..)? {
        "" => (rest, 0),
        more => {
            let digits = more.strip_prefix('-')?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (&rest[..STAMP.len()], digits.parse().ok()?)
        }
    };
    is_stamp(s).then(|| (s.to_string(), n))
}

/// The rotated files of `path`, oldest first (by their first records'
/// time). None when its folder does not exist.
pub fn rotated(path: &Path) -> io::Result<Vec<PathBuf>> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name();
        if let Some(key) = name.to_str().and_then(|n| rotated_key(path, n)) {
            found.push((key, entry.path()));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

/// Renames `path` to its rotated name for `stamp` (the first free one) and
/// makes the rename durable; returns the new name.
pub fn rotate(path: &Path, stamp: &str) -> io::Result<PathBuf> {
    let mut n = 0;
    let to = loop {
        let to = rotated_name(path, stamp, n);
        if std::fs::symlink_metadata(&to).is_err() {
            break to;
        }
        n += 1;
    };
    std::fs::rename(path, &to)?;
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(to)
}

/// The rotated files of `path` beyond the newest `keep`, oldest first.
pub fn surplus(path: &Path, keep: usize) -> io::Result<Vec<PathBuf>> {
    let mut all = rotated(path)?;
    let over = all.len().saturating_sub(keep);
    all.truncate(over);
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_files_are_named_by_their_first_record_and_sort_by_it() {
        let s = stamp("2026-12-04T17:30:00.123Z").unwrap_or_default();
        assert_eq!(s, "2026-12-04T17-30-00.123Z");
        assert_eq!(stamp("yesterday"), None);
        assert_eq!(stamp("2026-12-04T17:30:00Z"), None, "milliseconds always");
        assert!(is_stamp(&stamp_now()));
        let log = Path::new("/o/events.jsonl");
        assert_eq!(
            rotated_name(log, &s, 0),
            Path::new("/o/events.2026-12-04T17-30-00.123Z.jsonl")
        );
        assert_eq!(
            rotated_name(log, &s, 2),
            Path::new("/o/events.2026-12-04T17-30-00.123Z-2.jsonl")
        );
        assert_eq!(
            rotated_name(Path::new("log"), &s, 0),
            Path::new("log.2026-12-04T17-30-00.123Z")
        );
        let key = |n: &str| rotated_key(log, n);
        assert_eq!(
            key("events.2026-12-04T17-30-00.123Z.jsonl"),
            Some((s.clone(), 0))
        );
        assert_eq!(
            key("events.2026-12-04T17-30-00.123Z-12.jsonl"),
            Some((s.clone(), 12))
        );
        for not in [
            "events.jsonl",
            "events.cam1.jsonl",
            "events.2026-12-04T17-30-00.123Z-.jsonl",
            "events.2026-12-04T17-30-00.123Z.vtt",
            "other.2026-12-04T17-30-00.123Z.jsonl",
            "events.2026-12-04T17:30:00.123Z.jsonl",
        ] {
            assert_eq!(key(not), None, "{not}");
        }
    }

    #[test]
    fn rotation_never_overwrites_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let log = dir.path().join("events.jsonl");
        let stamps = [
            "2026-12-04T17-30-00.123Z",
            "2026-12-04T17-30-00.123Z",
            "2026-12-04T09-00-00.000Z",
            "2027-01-01T00-00-00.000Z",
        ];
        for (i, s) in stamps.iter().enumerate() {
            std::fs::write(&log, format!("{i}\n")).unwrap_or_else(|e| panic!("{e}"));
            rotate(&log, s).unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(!log.exists());
        let names: Vec<String> = rotated(&log)
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        assert_eq!(
            names,
            [
                "events.2026-12-04T09-00-00.000Z.jsonl",
                "events.2026-12-04T17-30-00.123Z.jsonl",
                "events.2026-12-04T17-30-00.123Z-1.jsonl",
                "events.2027-01-01T00-00-00.000Z.jsonl",
            ]
        );
        let over = surplus(&log, 1).unwrap_or_default();
        assert_eq!(over.len(), 3);
        assert!(over[2].ends_with("events.2026-12-04T17-30-00.123Z-1.jsonl"));
        assert!(surplus(&log, 10).unwrap_or_default().is_empty());
    }
}
