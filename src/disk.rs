//! The disk the output folder is on: how much of it is free, and what may
//! still be written there. The sinks look at the free space (at most once
//! a second) and set the level; the snapshot writers of every stream read
//! it from the one [`DiskGate`] they share.
//!
//! Below `min_free` media (snapshots) stop first: they are the bulk of
//! what is written and the least needed. Below half of it records stop
//! too, so that what is left goes to the rest of the machine; they are
//! counted as dropped, not held in memory: a disk that stays full would
//! otherwise turn into a process that runs out of memory, and records held
//! would be lost at a crash all the same. Each level is left again only
//! once free space is back above its mark by a margin, so that a disk on
//! the edge does not flap.

use std::path::Path;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// The largest margin above a mark before writing resumes.
const MAX_MARGIN: u64 = 256 << 20;

/// Free bytes for an unprivileged writer on the file system of `dir` (or
/// of its nearest existing folder above).
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let mut at = dir;
    while std::fs::symlink_metadata(at).is_err() {
        match at.parent() {
            Some(p) if !p.as_os_str().is_empty() => at = p,
            _ => {
                at = Path::new(".");
                break;
            }
        }
    }
    let path = std::ffi::CString::new(at.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: all-zero is a valid `statvfs` (plain integers).
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and outlives the call; `s` is a
    // valid place for the result.
    if unsafe { libc::statvfs(path.as_ptr(), &mut s) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ by platform
    Ok((s.f_bavail as u64).saturating_mul(s.f_frsize as u64))
}

/// What may be written, from all to nothing but the warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    /// Everything.
    Ok = 0,
    /// Records, not media.
    MediaStopped = 1,
    /// Neither.
    RecordsStopped = 2,
}

impl Level {
    fn from_u8(v: u8) -> Level {
        match v {
            0 => Level::Ok,
            1 => Level::MediaStopped,
            _ => Level::RecordsStopped,
        }
    }
}

/// The marks, in bytes free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// Below: media stop.
    pub media: u64,
    /// Below: records stop.
    pub records: u64,
    /// How far above its mark free space must be for a level to be left.
    pub margin: u64,
}

impl Thresholds {
    /// For `min_free` bytes: media stop below it, records below half of
    /// it; each resumes an eighth of it (at most 256 MiB) above its mark.
    pub fn new(min_free: u64) -> Thresholds {
        Thresholds {
            media: min_free,
            records: min_free / 2,
            margin: (min_free / 8).min(MAX_MARGIN),
        }
    }

    /// The level after `now` once `free` bytes are free: worse at once,
    /// better only past the margin.
    pub fn next(&self, now: Level, free: u64) -> Level {
        let at = |mark: u64, margin: u64| free >= mark.saturating_add(margin);
        let worst = if !at(self.records, 0) {
            Level::RecordsStopped
        } else if !at(self.media, 0) {
            Level::MediaStopped
        } else {
            Level::Ok
        };
        if worst >= now {
            return worst;
        }
        let better = if at(self.media, self.margin) {
            Level::Ok
        } else if at(self.records, self.margin) {
            Level::MediaStopped
        } else {
            Level::RecordsStopped
        };
        better.min(now)
    }
}

/// What the writers of media and records are allowed now; shared by the
/// sinks, which set it, and the snapshot writers.
#[derive(Debug, Default)]
pub struct DiskGate {
    level: AtomicU8,
    media_skipped: AtomicU64,
    /// Bytes of clips and segments being written, not yet finished: the
    /// store's size limit counts them.
    writing: AtomicU64,
}

impl DiskGate {
    pub fn level(&self) -> Level {
        Level::from_u8(self.level.load(Ordering::Relaxed))
    }

    pub fn set(&self, level: Level) {
        self.level.store(level as u8, Ordering::Relaxed);
    }

    /// Whether a media file may be written; counts the one that may not.
    pub fn media_allowed(&self) -> bool {
        let ok = self.level() == Level::Ok;
        if !ok {
            self.media_skipped.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Media files not written for want of space, since the start.
    pub fn media_skipped(&self) -> u64 {
        self.media_skipped.load(Ordering::Relaxed)
    }

    /// `n` more bytes went into a file being written.
    pub fn writing(&self, n: u64) {
        self.writing.fetch_add(n, Ordering::Relaxed);
    }

    /// A file of `n` bytes written so far was finished (or given up).
    pub fn written(&self, n: u64) {
        let _ = self
            .writing
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
                Some(w.saturating_sub(n))
            });
    }

    /// Bytes in files still being written.
    pub fn unfinished(&self) -> u64 {
        self.writing.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn levels_fall_at_once_and_rise_past_the_margin() {
        let t = Thresholds::new(1024 * MIB);
        assert_eq!(
            (t.media, t.records, t.margin),
            (1024 * MIB, 512 * MIB, 128 * MIB)
        );
        use Level::*;
        let walk = |frees: &[u64]| {
            let mut level = Ok;
            frees
                .iter()
                .map(|f| {
                    level = t.next(level, f * MIB);
                    level
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            walk(&[
                2000, 1024, 1023, 1100, 1152, 600, 511, 600, 639, 640, 1151, 1152
            ]),
            [
                Ok,
                Ok,
                MediaStopped,
                MediaStopped,
                Ok,
                MediaStopped,
                RecordsStopped,
                RecordsStopped,
                RecordsStopped,
                MediaStopped,
                MediaStopped,
                Ok
            ]
        );
        // Straight from nothing to all.
        assert_eq!(walk(&[100, 5000]), [RecordsStopped, Ok]);
        // The margin is at most 256 MiB.
        assert_eq!(Thresholds::new(100_000 * MIB).margin, 256 * MIB);
        // Off: nothing is ever below zero.
        assert_eq!(Thresholds::new(0).next(Ok, 0), Ok);
    }

    #[test]
    fn free_space_is_measured_on_the_disk_of_the_nearest_folder() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let here = free_bytes(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(here > 0);
        let later = free_bytes(&dir.path().join("not/yet")).unwrap_or_else(|e| panic!("{e}"));
        // The same disk, give or take what others wrote meanwhile.
        assert!(here.abs_diff(later) < 1 << 30, "{here} vs {later}");
    }

    #[test]
    fn the_gate_counts_media_it_turns_away() {
        let g = DiskGate::default();
        assert!(g.media_allowed());
        g.set(Level::MediaStopped);
        assert!(!g.media_allowed() && !g.media_allowed());
        assert_eq!(g.media_skipped(), 2);
        g.set(Level::Ok);
        assert!(g.media_allowed());
    }
}
