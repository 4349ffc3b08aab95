//! The part of the index a question's filters leave (a stream, a stretch
//! of wall clock), and which sentences have a moment in it.
//!
//! A narrow window is read whole from a covering index, giving the set of
//! its sentences; a wide one (most of the store) is asked of each sentence
//! as the rankings reach it, since nearly every sentence is in it. Either
//! way the moments of a window are a range of an index: a moment ending in
//! it starts at most the longest moment's length before it.

use std::collections::HashSet;

use rusqlite::{Connection, params_from_iter, types::Value as Sql};

use crate::error::{Error, Result};
use crate::search::index;
use crate::search::question::Filters;

/// Moments, estimated, above which a window is checked sentence by
/// sentence rather than read whole (about 50 ms of reading on a 2-core
/// machine).
const READ_WHOLE_MOST: f64 = 250_000.0;

/// Which sentences a window holds.
enum Holds {
    /// No filters: every one.
    Every,
    /// Those with a moment in it, read whole.
    These(HashSet<i64>),
    /// Ask the index, one sentence at a time.
    Ask,
}

/// The index seen through a question's filters.
pub struct Window {
    filters: Filters,
    longest_ms: i64,
    holds: Holds,
}

impl Window {
    /// The window of `filters` over the index in `db`.
    pub fn of(db: &Connection, filters: &Filters) -> Result<Window> {
        let failed = |e: rusqlite::Error| Error::Store {
            path: db.path().map(Into::into).unwrap_or_default(),
            message: format!("cannot read the index: {e}"),
        };
        let mut w = Window {
            filters: filters.clone(),
            longest_ms: index::longest_ms(db).map_err(failed)?,
            holds: Holds::Every,
        };
        if *filters == Filters::default() {
            return Ok(w);
        }
        if estimate(db, filters).map_err(failed)? > READ_WHOLE_MOST {
            w.holds = Holds::Ask;
            return Ok(w);
        }
        let (condition, values) = w.condition();
        let by = if filters.stream.is_some() {
            "moments_of_stream"
        } else {
            "moments_in_time"
        };
        let mut q = db
            .prepare_cached(&format!(
                "SELECT phrase FROM moments m INDEXED BY {by} WHERE {condition}"
            ))
            .map_err(failed)?;
        let mut rows = q.query(params_from_iter(values.iter())).map_err(failed)?;
        let mut these = HashSet::new();
        while let Some(row) = rows.next().map_err(failed)? {
            these.insert(row.get::<_, i64>(0).map_err(failed)?);
        }
        w.holds = Holds::These(these);
        Ok(w)
    }

    /// Whether it has no filters.
    pub fn is_everything(&self) -> bool {
        matches!(self.holds, Holds::Every)
    }

    /// The SQL condition and values of the window on `moments` (aliased
    /// `m`): each bound a range of an index.
    pub fn condition(&self) -> (String, Vec<Sql>) {
        let f = &self.filters;
        let mut sql = String::from("1");
        let mut values = Vec::new();
        if let Some(s) = &f.stream {
            sql.push_str(" AND m.stream = ?");
            values.push(Sql::Text(s.clone()));
        }
        if let Some(t) = f.since_ms {
            sql.push_str(" AND m.utc_ms >= ? AND m.utc_end_ms >= ?");
            values.push(Sql::Integer(t.saturating_sub(self.longest_ms)));
            values.push(Sql::Integer(t));
        }
        if let Some(t) = f.until_ms {
            sql.push_str(" AND m.utc_ms < ?");
            values.push(Sql::Integer(t));
        }
        (sql, values)
    }

    /// Whether the sentence `phrase` has a moment in the window.
    pub fn holds(&self, db: &Connection, phrase: i64) -> Result<bool> {
        match &self.holds {
            Holds::Every => Ok(true),
            Holds::These(these) => Ok(these.contains(&phrase)),
            Holds::Ask => {
                let failed = |e: rusqlite::Error| Error::Store {
                    path: db.path().map(Into::into).unwrap_or_default(),
                    message: format!("cannot read the index: {e}"),
                };
                let (condition, values) = self.condition();
                let mut q = db
                    .prepare_cached(&format!(
                        "SELECT EXISTS (SELECT 1 FROM moments m INDEXED BY moments_of_phrase
                                        WHERE m.phrase = ? AND {condition})"
                    ))
                    .map_err(failed)?;
                let mut args = vec![Sql::Integer(phrase)];
                args.extend(values);
                q.query_row(params_from_iter(args), |r| r.get(0))
                    .map_err(failed)
            }
        }
    }
}

/// Moments in the window of `filters`, roughly: the index's moments times
/// the share of its time span the window covers, over the streams if one
/// is named. Each number is read from an index's ends, not counted.
fn estimate(db: &Connection, filters: &Filters) -> rusqlite::Result<f64> {
    let (first, last, rows): (Option<i64>, Option<i64>, Option<i64>) = db.query_row(
        "SELECT (SELECT min(utc_ms) FROM moments), (SELECT max(utc_ms) FROM moments),
                (SELECT max(rowid) FROM moments) - (SELECT min(rowid) FROM moments) + 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let (Some(first), Some(last), Some(rows)) = (first, last, rows) else {
        return Ok(0.0);
    };
    let from = filters.since_ms.unwrap_or(first).max(first);
    let to = filters.until_ms.unwrap_or(last).min(last);
    let span = (last - first).max(1);
    let share = ((to - from).max(0) as f64 / span as f64).min(1.0);
    let streams = if filters.stream.is_some() {
        let n: i64 = db.query_row(
            "WITH RECURSIVE s(name) AS (
                 SELECT min(stream) FROM moments
                 UNION ALL
                 SELECT (SELECT min(stream) FROM moments WHERE stream > s.name) FROM s
                 WHERE s.name IS NOT NULL)
             SELECT count(name) FROM s",
            [],
            |r| r.get(0),
        )?;
        n.max(1) as f64
    } else {
        1.0
    };
    Ok(rows as f64 * share / streams)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store whose index holds `moments`: (phrase, stream, utc_ms,
    /// utc_end_ms).
    fn index_of(moments: &[(i64, &str, i64, i64)]) -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let db = crate::sink::store::open(&dir.path().join("events.db")).expect("a store");
        index::prepare(&db).expect("the index");
        for (n, (phrase, stream, from, to)) in moments.iter().enumerate() {
            db.execute(
                "INSERT OR IGNORE INTO phrases (id, text) VALUES (?1, 'sentence ' || ?1)",
                [phrase],
            )
            .expect("a phrase");
            db.execute(
                "INSERT INTO moments (key, seq, phrase, stream, kind, start_ms, end_ms, utc_ms,
                     utc_end_ms, run, record, why)
                 VALUES (?1, ?1, ?2, ?3, 'caption', 0, 0, ?4, ?5, 'r', 'x', '')",
                rusqlite::params![n as i64, phrase, stream, from, to],
            )
            .expect("a moment");
        }
        (dir, db)
    }

    fn held(w: &Window, db: &Connection) -> Vec<i64> {
        (1..=5)
            .filter(|p| w.holds(db, *p).expect("asked"))
            .collect()
    }

    #[test]
    fn a_window_holds_the_sentences_of_its_moments_read_whole_or_asked() {
        let (_dir, db) = index_of(&[
            (1, "cam1", 1_000, 2_000),
            // An hour long: it began long before the window, and ends in it.
            (2, "cam1", 0, 3_600_000),
            (3, "cam2", 5_000_000, 5_001_000),
            (4, "cam1", 9_000_000, 9_001_000),
            (5, "cam2", 3_500_000, 3_500_500),
        ]);
        assert_eq!(index::longest_ms(&db).expect("read"), 3_600_000);
        let filters = Filters {
            stream: None,
            since_ms: Some(3_000_000),
            until_ms: Some(6_000_000),
        };
        let mut w = Window::of(&db, &filters).expect("a window");
        assert!(
            matches!(w.holds, Holds::These(_)),
            "a small store is read whole"
        );
        assert_eq!(held(&w, &db), [2, 3, 5]);
        w.holds = Holds::Ask;
        assert_eq!(held(&w, &db), [2, 3, 5]);
        let on_cam1 = Filters {
            stream: Some("cam1".into()),
            ..filters
        };
        let mut w = Window::of(&db, &on_cam1).expect("a window");
        assert_eq!(held(&w, &db), [2]);
        w.holds = Holds::Ask;
        assert_eq!(held(&w, &db), [2]);
        let everything = Window::of(&db, &Filters::default()).expect("a window");
        assert!(everything.is_everything());
        assert_eq!(held(&everything, &db), [1, 2, 3, 4, 5]);
    }

    #[test]
    fn the_estimate_follows_the_share_of_time_and_streams() {
        let moments: Vec<(i64, &str, i64, i64)> = (0..100)
            .map(|i| {
                (
                    1,
                    if i % 2 == 0 { "a" } else { "b" },
                    i * 1_000,
                    i * 1_000 + 10,
                )
            })
            .collect();
        let (_dir, db) = index_of(&moments);
        let half = Filters {
            stream: None,
            since_ms: Some(49_500),
            until_ms: None,
        };
        let n = estimate(&db, &half).expect("estimated");
        assert!((45.0..=55.0).contains(&n), "{n}");
        let quarter = Filters {
            stream: Some("a".into()),
            ..half
        };
        let n = estimate(&db, &quarter).expect("estimated");
        assert!((20.0..=30.0).contains(&n), "{n}");
    }
}
