//! The face gallery: who vigil can name, and the unknown faces it kept to
//! be named later. One SQLite file (`faces.db` beside the event store by
//! default), made readable by its owner only (mode 0600): face embeddings
//! are biometric data. Nothing exports it; `vigil events` reads the event
//! store, never this file.
//!
//! Each row is one face: an L2-normalised embedding of the model that made
//! it (its name is kept, and an embedding of another model is never
//! compared), and a name, or none for an unknown face. `vigil faces
//! enroll` adds named rows; a running pipeline adds unknown ones (at most
//! `max_unknown`, the oldest forgotten first) and reads new rows as they
//! come (SQLite's `data_version` says when another process wrote).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS faces (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    name      TEXT,
    model     TEXT NOT NULL,
    embedding BLOB NOT NULL,
    source    TEXT NOT NULL,
    added_utc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS faces_name ON faces (name);
";

/// One face of the gallery.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub id: i64,
    /// None: an unknown face, kept to be named.
    pub name: Option<String>,
    /// Unit length.
    pub embedding: Vec<f32>,
    /// Where it came from: an image file, or `STREAM@SECONDS`.
    pub source: String,
    pub added_utc: String,
}

/// The nearest face of the gallery to an embedding.
#[derive(Clone, Debug, PartialEq)]
pub struct Nearest {
    pub id: i64,
    pub name: Option<String>,
    /// L2 distance between unit embeddings: 0 (same) to 2 (opposite).
    pub distance: f32,
}

/// An open gallery.
pub struct Gallery {
    path: PathBuf,
    db: Connection,
    /// The model whose embeddings this gallery compares.
    model: String,
}

impl Gallery {
    /// Opens (or creates, mode 0600) the gallery at `path`, for the
    /// embeddings of `model`.
    pub fn open(path: &Path, model: &str) -> Result<Gallery> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::io(format!("cannot create the folder of {}", path.display()), e)
            })?;
        }
        owner_only(path)?;
        let err = |what: &str, e: rusqlite::Error| Error::Store {
            path: path.to_path_buf(),
            message: format!("face gallery: {what}: {e}"),
        };
        let db = Connection::open(path).map_err(|e| err("cannot open", e))?;
        db.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| err("cannot set a busy timeout", e))?;
        // A rollback journal (not WAL): no side files that outlive a
        // write, and the journal SQLite makes takes the file's own mode.
        db.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| err("cannot set synchronous", e))?;
        db.execute_batch(SCHEMA)
            .map_err(|e| err("cannot create its tables", e))?;
        Ok(Gallery {
            path: path.to_path_buf(),
            db,
            model: model.to_string(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, what: &str, e: rusqlite::Error) -> Error {
        Error::Store {
            path: self.path.clone(),
            message: format!("face gallery: {what}: {e}"),
        }
    }

    /// Every face of this gallery's model, oldest first.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        let mut q = self
            .db
            .prepare(
                "SELECT id, name, embedding, source, added_utc FROM faces
                 WHERE model = ?1 ORDER BY id",
            )
            .map_err(|e| self.err("cannot read", e))?;
        let rows = q
            .query_map([&self.model], |r| {
                Ok(Entry {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    embedding: from_blob(&r.get::<_, Vec<u8>>(2)?),
                    source: r.get(3)?,
                    added_utc: r.get(4)?,
                })
            })
            .map_err(|e| self.err("cannot read", e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err("cannot read", e))
    }

    /// Adds a face (`name` None: unknown); its id.
    pub fn add(&mut self, name: Option<&str>, embedding: &[f32], source: &str) -> Result<i64> {
        let utc = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.db
            .execute(
                "INSERT INTO faces (name, model, embedding, source, added_utc)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![name, self.model, to_blob(embedding), source, utc],
            )
            .map_err(|e| self.err("cannot add a face", e))?;
        Ok(self.db.last_insert_rowid())
    }

    /// Names the face `id` (an unknown one, or renames); false if there is
    /// no such face.
    pub fn name(&mut self, id: i64, name: &str) -> Result<bool> {
        let n = self
            .db
            .execute(
                "UPDATE faces SET name = ?1 WHERE id = ?2",
                params![name, id],
            )
            .map_err(|e| self.err("cannot name a face", e))?;
        Ok(n > 0)
    }

    /// Forgets every face called `name`; how many.
    pub fn forget_name(&mut self, name: &str) -> Result<usize> {
        self.db
            .execute("DELETE FROM faces WHERE name = ?1", [name])
            .map_err(|e| self.err("cannot forget", e))
    }

    /// Forgets the face `id`; whether there was one.
    pub fn forget_id(&mut self, id: i64) -> Result<bool> {
        let n = self
            .db
            .execute("DELETE FROM faces WHERE id = ?1", [id])
            .map_err(|e| self.err("cannot forget", e))?;
        Ok(n > 0)
    }

    /// Forgets the oldest unknown faces beyond the newest `keep`; how many.
    pub fn trim_unknown(&mut self, keep: usize) -> Result<usize> {
        self.db
            .execute(
                "DELETE FROM faces WHERE name IS NULL AND id NOT IN
                 (SELECT id FROM faces WHERE name IS NULL ORDER BY id DESC LIMIT ?1)",
                [keep as i64],
            )
            .map_err(|e| self.err("cannot trim the unknown faces", e))
    }

    /// A number that changes when another connection wrote to the file.
    pub fn version(&self) -> Result<i64> {
        self.db
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .optional()
            .map(|v| v.unwrap_or(0))
            .map_err(|e| self.err("cannot read its version", e))
    }
}

/// The face of `entries` nearest to `embedding` (unit length), among the
/// named ones (`named`) or the unknown ones.
pub fn nearest(entries: &[Entry], embedding: &[f32], named: bool) -> Option<Nearest> {
    entries
        .iter()
        .filter(|e| e.name.is_some() == named && e.embedding.len() == embedding.len())
        .map(|e| Nearest {
            id: e.id,
            name: e.name.clone(),
            distance: distance(&e.embedding, embedding),
        })
        .min_by(|a, b| a.distance.total_cmp(&b.distance))
}

/// L2 distance between two embeddings.
pub fn distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

/// `v` scaled to unit length (left as it is if it has none).
pub fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 1e-12 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

fn to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_blob(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Makes `path` (created empty if missing) readable and writable by its
/// owner only.
fn owner_only(path: &Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io = |e| Error::io(format!("face gallery {}", path.display()), e);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            "the face gallery was readable by others (mode {:o}): made owner-only",
            mode & 0o777
        );
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        normalised(v.to_vec())
    }

    #[test]
    fn faces_are_added_named_found_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g/faces.db");
        let mut g = Gallery::open(&path, "m").unwrap();
        let ann = g
            .add(Some("ann"), &unit(&[1.0, 0.0, 0.0]), "ann.png")
            .unwrap();
        let who = g.add(None, &unit(&[0.0, 1.0, 0.0]), "cam@3.0").unwrap();
        // Another model's embeddings are not this gallery's.
        Gallery::open(&path, "other")
            .unwrap()
            .add(Some("bob"), &unit(&[0.0, 0.0, 1.0]), "bob.png")
            .unwrap();
        let e = g.entries().unwrap();
        assert_eq!(e.len(), 2);
        let n = nearest(&e, &unit(&[0.9, 0.1, 0.0]), true).unwrap();
        assert_eq!((n.id, n.name.as_deref()), (ann, Some("ann")));
        assert!(n.distance < 0.2, "{n:?}");
        assert_eq!(nearest(&e, &unit(&[0.0, 1.0, 0.0]), false).unwrap().id, who);
        assert!(g.name(who, "carl").unwrap());
        assert!(nearest(&g.entries().unwrap(), &[0.0, 1.0, 0.0], false).is_none());
        assert_eq!(g.forget_name("carl").unwrap(), 1);
        assert!(g.forget_id(ann).unwrap());
        assert!(g.entries().unwrap().is_empty());
    }

    #[test]
    fn the_file_is_its_owners_alone_and_unknown_faces_are_capped() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("faces.db");
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut g = Gallery::open(&path, "m").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let v0 = g.version().unwrap();
        for k in 0..5 {
            g.add(None, &unit(&[1.0, k as f32]), "cam").unwrap();
        }
        g.add(Some("ann"), &unit(&[1.0, 0.0]), "ann.png").unwrap();
        assert_eq!(g.trim_unknown(2).unwrap(), 3);
        let e = g.entries().unwrap();
        assert_eq!(e.iter().filter(|e| e.name.is_none()).count(), 2);
        assert_eq!(e.iter().filter(|e| e.name.is_some()).count(), 1);
        // The newest unknown ones are kept.
        assert!(e.iter().any(|e| e.embedding == unit(&[1.0, 4.0])));
        // Writes of another connection change the version this one reads.
        Gallery::open(&path, "m")
            .unwrap()
            .add(Some("x"), &[1.0], "x")
            .unwrap();
        assert_ne!(g.version().unwrap(), v0);
    }
}
