//! Continuous recording's segments (`OUT/segments/STREAM/UTC.mp4`, see
//! [`crate::recording::segments`]) under the store's retention and the
//! disk guard: segments older than `max_age` go, and the oldest go first
//! (before any record or clip) when the store's `max_size_mib` or the
//! disk's `min_free_mib` needs room. Segments are the bulk of what a
//! recording NVR writes and the least needed: an event's clip keeps what
//! mattered.

use std::path::Path;

use crate::recording::segments::{Segment, list_all};
use crate::sink::retention::media::Deleted;

/// Bytes of segments still being written (`.part`), which no retention
/// can delete but which take room.
pub fn partial_bytes(root: &Path) -> u64 {
    let Ok(streams) = std::fs::read_dir(root) else {
        return 0;
    };
    streams
        .flatten()
        .filter_map(|s| std::fs::read_dir(s.path()).ok())
        .flat_map(|files| files.flatten())
        .filter(|f| f.file_name().to_string_lossy().ends_with(".part"))
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Deletes `segments` from the front (oldest first) while `more` says so
/// (with `dry_run`, only counts them); `listed` is told each.
fn delete_oldest(
    segments: &[Segment],
    dry_run: bool,
    listed: &mut dyn FnMut(&Path, u64),
    mut more: impl FnMut(&Deleted) -> bool,
) -> Deleted {
    let mut done = Deleted::default();
    for s in segments {
        if !more(&done) {
            break;
        }
        listed(&s.path, s.bytes);
        let gone = if dry_run {
            Ok(())
        } else {
            std::fs::remove_file(&s.path)
        };
        match gone {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!("retention: cannot delete {}: {e}", s.path.display());
                continue;
            }
        }
        done += Deleted {
            files: 1,
            bytes: s.bytes,
        };
    }
    done
}

/// Applies the store's retention to the segments under `root`: those that
/// started before `older_than` (UTC, nanoseconds) go, then the oldest
/// while the finished ones take more than `budget` bytes (the caller takes
/// what is being written off it). With `dry_run`, only counts them; `listed` is told each.
pub fn prune(
    root: &Path,
    older_than: Option<i64>,
    budget: Option<u64>,
    dry_run: bool,
    listed: &mut dyn FnMut(&Path, u64),
) -> Deleted {
    let all = list_all(root);
    if all.is_empty() {
        return Deleted::default();
    }
    let mut done = Deleted::default();
    if let Some(cut) = older_than {
        let old = all.iter().take_while(|s| s.utc < cut).count();
        done += delete_oldest(&all[..old], dry_run, listed, |_| true);
    }
    if let Some(budget) = budget {
        let left = &all[done.files as usize..];
        let mut used: u64 = left.iter().map(|s| s.bytes).sum::<u64>();
        done += delete_oldest(left, dry_run, listed, |d| {
            let over = used.saturating_sub(d.bytes) > budget;
            if !over {
                used = used.saturating_sub(d.bytes);
            }
            over
        });
    }
    done
}

/// Deletes the oldest segments under `root` until `wanted` bytes are
/// freed (or none is left): the disk guard's first resort.
pub fn free(root: &Path, wanted: u64) -> Deleted {
    delete_oldest(&list_all(root), false, &mut |_, _| {}, |d| d.bytes < wanted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::segments::name;

    /// A segment of `bytes` bytes of `stream` starting `at` seconds.
    fn segment(root: &Path, stream: &str, at: i64, bytes: usize) {
        let dir = root.join(stream);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(
            dir.join(format!("{}.mp4", name(at * 1_000_000_000))),
            vec![0u8; bytes],
        )
        .expect("write");
    }

    fn left(root: &Path) -> Vec<(String, i64)> {
        list_all(root)
            .into_iter()
            .map(|s| {
                let stream = s.path.parent().and_then(|p| p.file_name()).expect("stream");
                (stream.to_string_lossy().into_owned(), s.utc / 1_000_000_000)
            })
            .collect()
    }

    #[test]
    fn old_segments_go_then_the_oldest_of_any_stream_while_over_budget() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        for t in 0..5 {
            segment(root, "a", 1000 + t * 60, 100);
            segment(root, "b", 1030 + t * 60, 100);
        }
        // Being written: counted, never deleted.
        std::fs::write(root.join("a/x.mp4.part"), vec![0u8; 50]).expect("part");
        std::fs::write(root.join("a/notes.txt"), b"kept").expect("other");
        // Older than 1100 s: a@1000, b@1030, a@1060, b@1090.
        let mut seen = 0;
        let d = prune(root, Some(1100 * 1_000_000_000), None, true, &mut |_, _| {
            seen += 1
        });
        assert_eq!((d.files, seen, left(root).len()), (4, 4, 10), "a dry run");
        let d = prune(
            root,
            Some(1100 * 1_000_000_000),
            None,
            false,
            &mut |_, _| {},
        );
        assert_eq!(
            d,
            Deleted {
                files: 4,
                bytes: 400
            }
        );
        assert_eq!(left(root).len(), 6);
        // 6 × 100 finished, within 420 less the 50 being written: the
        // three oldest go.
        let budget = 420 - partial_bytes(root);
        let d = prune(root, None, Some(budget), false, &mut |_, _| {});
        assert_eq!(
            d,
            Deleted {
                files: 3,
                bytes: 300
            }
        );
        assert_eq!(
            left(root),
            vec![("b".into(), 1210), ("a".into(), 1240), ("b".into(), 1270)]
        );
        assert!(root.join("a/x.mp4.part").exists() && root.join("a/notes.txt").exists());
        // Within it already: nothing.
        assert_eq!(
            prune(root, None, Some(budget), false, &mut |_, _| {}),
            Deleted::default()
        );
        // The disk guard frees what it asks for, oldest first.
        assert_eq!(
            free(root, 150),
            Deleted {
                files: 2,
                bytes: 200
            }
        );
        assert_eq!(left(root), vec![("b".into(), 1270)]);
        assert_eq!(partial_bytes(root), 50);
    }
}
