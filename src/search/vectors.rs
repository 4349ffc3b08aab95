//! The sentences' vectors, read from the index into memory to be weighed
//! against a question: every sentence's, one scan of a contiguous buffer.
//! `vigil ask` reads them once, while its text model loads; a server keeps
//! them between questions ([`Kept`]) and reads only what is new.

use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use crate::encode::text::{DIMS, cosine};
use crate::error::{Error, Result};
use crate::lock::Locked;

/// Vectors of sentences, by sentence id.
#[derive(Debug, Default, Clone)]
pub struct Vectors {
    ids: Vec<i64>,
    /// [`DIMS`] bytes a sentence, in the order of `ids`.
    data: Vec<u8>,
}

impl Vectors {
    /// Every sentence's vector in the index in `db`.
    pub fn read(db: &Connection) -> Result<Vectors> {
        let mut v = Vectors::default();
        v.read_after(db, 0)?;
        Ok(v)
    }

    /// Adds the vectors of sentences with ids above `after`.
    fn read_after(&mut self, db: &Connection, after: i64) -> Result<()> {
        let failed = |e: rusqlite::Error| Error::Store {
            path: db.path().map(Into::into).unwrap_or_default(),
            message: format!("cannot read the index's vectors: {e}"),
        };
        let mut q = db
            .prepare_cached(
                "SELECT id, vector FROM phrases WHERE id > ?1 AND vector IS NOT NULL ORDER BY id",
            )
            .map_err(failed)?;
        let mut rows = q.query([after]).map_err(failed)?;
        while let Some(row) = rows.next().map_err(failed)? {
            let blob = row.get_ref(1).map_err(failed)?.as_blob().unwrap_or(&[]);
            if blob.len() == DIMS {
                self.ids.push(row.get(0).map_err(failed)?);
                self.data.extend_from_slice(blob);
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Every sentence's cosine with `query` (a unit vector of [`DIMS`]),
    /// those of at least `floor`, best first.
    pub fn nearest(&self, query: &[f32], floor: f32) -> Vec<(f32, i64)> {
        if query.len() != DIMS {
            return Vec::new();
        }
        let mut scored: Vec<(f32, i64)> = self
            .ids
            .iter()
            .zip(self.data.chunks_exact(DIMS))
            .map(|(id, v)| (cosine(query, v), *id))
            .filter(|(c, _)| *c >= floor)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        scored
    }
}

/// What tells kept vectors from stale ones: sentences deleted and vectors
/// given since (counted by the index's triggers), and the highest id read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    gone: i64,
    set: i64,
    last: i64,
}

fn mark(db: &Connection) -> rusqlite::Result<(i64, i64)> {
    db.query_row(
        "SELECT coalesce((SELECT value FROM index_facts WHERE name = 'phrases_gone'), 0),
                coalesce((SELECT value FROM index_facts WHERE name = 'vectors_set'), 0)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Vectors kept between questions by a server asking one store: read in
/// full once; after that only the sentences added since, unless one was
/// deleted or given a vector meanwhile (then in full again).
#[derive(Clone, Default)]
pub struct Kept(Arc<Mutex<Option<Read>>>);

/// Vectors as read, and what they were read at.
type Read = (Mark, Arc<Vectors>);

impl Kept {
    /// The index's vectors now. Reads under the lock (no model runs here),
    /// so that two questions do not read the same thing twice.
    pub fn current(&self, db: &Connection) -> Result<Arc<Vectors>> {
        let failed = |e: rusqlite::Error| Error::Store {
            path: db.path().map(Into::into).unwrap_or_default(),
            message: format!("cannot read the index's vectors: {e}"),
        };
        let (gone, set) = mark(db).map_err(failed)?;
        let mut kept = self.0.locked();
        let fresh = match kept.take() {
            Some((m, v)) if m.gone == gone && m.set == set => {
                let mut new = Vectors::default();
                new.read_after(db, m.last)?;
                if new.is_empty() {
                    v
                } else {
                    let mut v = Arc::unwrap_or_clone(v);
                    v.ids.append(&mut new.ids);
                    v.data.append(&mut new.data);
                    Arc::new(v)
                }
            }
            _ => Arc::new(Vectors::read(db)?),
        };
        let last = fresh.ids.last().copied().unwrap_or(0);
        *kept = Some((Mark { gone, set, last }, Arc::clone(&fresh)));
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(axis: usize) -> Vec<f32> {
        (0..DIMS).map(|i| f32::from(u8::from(i == axis))).collect()
    }

    fn put(db: &Connection, id: i64, axis: Option<usize>) {
        let v = axis.map(|a| crate::encode::text::quantize(&unit(a)));
        db.execute(
            "INSERT INTO phrases (id, text, vector) VALUES (?1, 'sentence ' || ?1, ?2)",
            rusqlite::params![id, v],
        )
        .expect("a phrase");
    }

    #[test]
    fn kept_vectors_read_what_is_new_and_all_again_after_a_change() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let db = crate::sink::store::open(&dir.path().join("events.db")).expect("a store");
        crate::search::index::prepare(&db).expect("the index");
        put(&db, 1, Some(0));
        put(&db, 2, Some(1));
        let kept = Kept::default();
        let first = kept.current(&db).expect("read");
        assert_eq!(first.len(), 2);
        // Nothing new: the same vectors, not read again.
        assert!(Arc::ptr_eq(&first, &kept.current(&db).expect("read")));
        // A new sentence, and one without a vector yet.
        put(&db, 3, Some(2));
        put(&db, 4, None);
        let v = kept.current(&db).expect("read");
        assert_eq!(v.len(), 3);
        assert_eq!(v.nearest(&unit(2), 0.5), [(1.0, 3)]);
        // Given its vector later: read.
        db.execute(
            "UPDATE phrases SET vector = ?1 WHERE id = 4",
            [crate::encode::text::quantize(&unit(3))],
        )
        .expect("a vector");
        let v = kept.current(&db).expect("read");
        assert_eq!(v.len(), 4);
        assert_eq!(v.nearest(&unit(3), 0.5), [(1.0, 4)]);
        // Deleted: gone from the kept ones too.
        db.execute("DELETE FROM phrases WHERE id = 1", [])
            .expect("deleted");
        let v = kept.current(&db).expect("read");
        assert_eq!(v.len(), 3);
        assert!(v.nearest(&unit(0), 0.5).is_empty());
        assert_eq!(Vectors::read(&db).expect("read").len(), 3);
    }
}
