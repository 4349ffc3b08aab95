//! Media files records name (snapshots; clips to come), deleted with the
//! last record that names them, and never anything outside the output
//! folder.
//!
//! A record names its files by a path relative to the output folder. Only
//! a path of plain names is followed (no `..`, not absolute), and none of
//! the folders on the way nor the file itself may be a symbolic link: a
//! record that names anything else is left alone, whatever it says.

use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

/// Folders above a snapshot that may be removed once empty: its run's and
/// its stream's (`snapshots/STREAM/RUN/x.jpg`, see `fuse::pictures`).
const EMPTY_FOLDERS: usize = 2;

/// Why a named path is not followed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unsafe {
    #[error("`{0}` is not a relative path of plain names under the output folder")]
    Escapes(String),
    #[error("`{0}` goes through a symbolic link")]
    Link(String),
}

/// The file `relative` names under `root`, when it stays there: `Ok` also
/// when it (or a folder on the way) does not exist.
pub fn resolve(root: &Path, relative: &str) -> Result<PathBuf, Unsafe> {
    let rel = Path::new(relative);
    let plain = relative
        .split('/')
        .all(|s| !s.is_empty() && s != "." && s != "..");
    if !plain || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(Unsafe::Escapes(relative.to_string()));
    }
    let mut at = root.to_path_buf();
    for c in rel.components() {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => return Err(Unsafe::Link(relative.to_string())),
            Ok(_) => {}
            // Nothing further down exists either.
            Err(_) => break,
        }
    }
    Ok(root.join(rel))
}

/// Files deleted (or, for a dry run, that would be) and their bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deleted {
    pub files: u64,
    pub bytes: u64,
}

impl std::ops::AddAssign for Deleted {
    fn add_assign(&mut self, o: Deleted) {
        self.files += o.files;
        self.bytes += o.bytes;
    }
}

/// Deletes the media files `relative` names under `root` (a file already
/// gone is fine), then their run's and stream's folders where left empty.
/// With `dry_run`, deletes nothing and counts what would go; `listed` is
/// told each file.
pub fn delete<'a>(
    root: &Path,
    relative: impl IntoIterator<Item = &'a str>,
    dry_run: bool,
    listed: &mut dyn FnMut(&Path, u64),
) -> Deleted {
    let mut done = Deleted::default();
    for rel in relative {
        let path = match resolve(root, rel) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("retention: a record names {e}: left alone");
                continue;
            }
        };
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        listed(&path, meta.len());
        if !dry_run {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => {
                    tracing::warn!("retention: cannot delete {}: {e}", path.display());
                    continue;
                }
            }
            remove_empty_folders(root, &path);
        }
        done += Deleted {
            files: 1,
            bytes: meta.len(),
        };
    }
    done
}

/// Removes the folders above `file` (up to [`EMPTY_FOLDERS`], never `root`)
/// that are empty. A folder that is not empty, or that a snapshot is being
/// written to, stays (`remove_dir` only removes an empty one; a snapshot
/// writer makes its folder again).
fn remove_empty_folders(root: &Path, file: &Path) {
    let mut dir = file.parent();
    for _ in 0..EMPTY_FOLDERS {
        let Some(d) = dir.filter(|d| d.starts_with(root) && *d != root) else {
            return;
        };
        if std::fs::remove_dir(d).is_err() {
            return;
        }
        dir = d.parent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_under_the_root_are_followed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path();
        assert_eq!(
            resolve(root, "snapshots/cam/r/a.jpg"),
            Ok(root.join("snapshots/cam/r/a.jpg"))
        );
        for bad in [
            "",
            "/etc/passwd",
            "../x.jpg",
            "snapshots/../../x.jpg",
            "a/./b.jpg",
            "a//b.jpg",
            "a/",
        ] {
            assert!(
                matches!(resolve(root, bad), Err(Unsafe::Escapes(_))),
                "{bad}"
            );
        }
        // A folder that is a link leads elsewhere, even if the path reads well.
        let outside = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(outside.path().join("a.jpg"), b"x").unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(outside.path(), root.join("snapshots"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            resolve(root, "snapshots/a.jpg"),
            Err(Unsafe::Link(_))
        ));
        let n = delete(root, ["snapshots/a.jpg"], false, &mut |_, _| {});
        assert_eq!(n, Deleted::default());
        assert!(
            outside.path().join("a.jpg").exists(),
            "nothing outside goes"
        );
    }

    #[test]
    fn files_go_and_then_their_empty_folders_but_never_the_root() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path();
        let run = root.join("snapshots/cam/run1");
        std::fs::create_dir_all(&run).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(run.join("a.jpg"), b"12345").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(run.join("b.jpg"), b"123").unwrap_or_else(|e| panic!("{e}"));
        let mut seen = Vec::new();
        let dry = delete(root, ["snapshots/cam/run1/a.jpg"], true, &mut |p, n| {
            seen.push((p.to_path_buf(), n))
        });
        assert_eq!(dry, Deleted { files: 1, bytes: 5 });
        assert_eq!(seen, [(run.join("a.jpg"), 5)]);
        assert!(run.join("a.jpg").exists(), "a dry run deletes nothing");
        let n = delete(
            root,
            ["snapshots/cam/run1/a.jpg", "snapshots/cam/run1/gone.jpg"],
            false,
            &mut |_, _| {},
        );
        assert_eq!(n, Deleted { files: 1, bytes: 5 });
        assert!(run.exists(), "b.jpg is still there");
        delete(root, ["snapshots/cam/run1/b.jpg"], false, &mut |_, _| {});
        assert!(
            !root.join("snapshots/cam").exists(),
            "run and stream folders go"
        );
        assert!(root.join("snapshots").exists(), "the snapshot folder stays");
    }
}
