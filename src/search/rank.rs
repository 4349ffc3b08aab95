//! Answers to a question: the sentences of the index ranked twice, by
//! their words (FTS5's BM25) and by their meaning (cosine of MiniLM
//! vectors), the two rankings fused by reciprocal rank (`1 / (60 + rank)`
//! summed), then the moments of the best sentences within the question's
//! filters, those next to each other on a stream merged into one answer.

use std::collections::HashMap;

use rusqlite::{Connection, params_from_iter, types::Value as Sql};
use serde::{Deserialize, Serialize};

use crate::encode::text::{DIMS, cosine};
use crate::error::{Error, Result};
use crate::search::question::{Filters, Question};

/// Which rankings answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Both, fused (the default).
    #[default]
    Hybrid,
    /// Words alone (BM25).
    Words,
    /// Meaning alone (vectors).
    Meaning,
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Mode, String> {
        match s {
            "hybrid" => Ok(Mode::Hybrid),
            "words" => Ok(Mode::Words),
            "meaning" => Ok(Mode::Meaning),
            other => Err(format!("`{other}`: expected hybrid, words or meaning")),
        }
    }
}

/// The constant of reciprocal rank fusion (Cormack et al., 2009).
const RRF_K: f64 = 60.0;
/// Sentences each ranking hands on.
const DEPTH: usize = 100;
/// Below this cosine a sentence is not near the question at all.
const MEANING_FLOOR: f32 = 0.2;
/// Moments of one stream this close (ms) are one answer …
const ADJACENT_MS: i64 = 1_000;
/// … as long as the answer stays this short.
const LONGEST_MS: i64 = 10_000;

/// Words that say nothing about what happened.
const STOP: &[&str] = &[
    "a", "about", "all", "an", "and", "any", "anyone", "are", "as", "at", "be", "been", "by",
    "can", "did", "do", "does", "during", "every", "find", "for", "from", "had", "has", "have",
    "how", "i", "in", "is", "it", "me", "of", "on", "or", "show", "some", "that", "the", "there",
    "this", "time", "times", "to", "was", "were", "what", "when", "where", "which", "while", "who",
    "with",
];

/// One answer: a stretch of one stream and why it matched.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Answer {
    pub stream: String,
    /// Stream time, seconds (ms precision), as records give it.
    pub start: f64,
    pub end: f64,
    /// Wall clock of its start and end (RFC 3339, ms).
    pub utc: String,
    pub utc_end: String,
    /// The fused score of its best moment.
    pub score: f64,
    /// What happened, a sentence per moment (distinct, best first).
    pub said: Vec<String>,
    /// The kinds of its moments (`rule`, `transcript`, `sound` …).
    pub kinds: Vec<String>,
    /// The question's words found in them.
    pub words: Vec<String>,
    /// The best cosine between the question and its sentences.
    pub meaning: Option<f32>,
    /// Evidence: rule facts, tracks, classes.
    pub why: Vec<String>,
    pub snapshot: Option<String>,
    pub clip: Option<String>,
    pub run: String,
    /// The records it was made of (`id`s).
    pub records: Vec<String>,
    #[serde(skip)]
    utc_ms: i64,
    #[serde(skip)]
    utc_end_ms: i64,
}

/// A question's answers, best first.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Answers {
    pub question: String,
    /// The filters taken from it, in words.
    pub understood: Vec<String>,
    /// The words matched.
    pub words: String,
    pub mode: Mode,
    pub answers: Vec<Answer>,
    /// What the asker should know (records not indexed yet, no vectors).
    pub notes: Vec<String>,
}

struct Hit {
    score: f64,
    text: String,
    kind: String,
    stream: String,
    start_ms: i64,
    end_ms: i64,
    utc_ms: i64,
    utc_end_ms: i64,
    run: String,
    record: String,
    why: String,
    snapshot: Option<String>,
    clip: Option<String>,
    meaning: Option<f32>,
}

/// The words of `text` worth matching, lower-cased, once each.
pub fn terms(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in text
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .map(|w| w.trim_matches('\'').to_lowercase())
    {
        if !w.is_empty() && !STOP.contains(&w.as_str()) && !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

/// Whether two words are one, roughly: equal, or the shorter (of four
/// letters or more) begins the longer ("bark", "barking"; "cross",
/// "crossing"), its first five letters at most.
fn same_word(a: &str, b: &str) -> bool {
    if a == b {
        return a.len() >= 2;
    }
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    short.len() >= 4 && long.starts_with(short.get(..5).unwrap_or(short))
}

/// The SQL condition and values of `filters` on `moments` (aliased `m`).
fn condition(filters: &Filters) -> (String, Vec<Sql>) {
    let mut sql = String::from("1");
    let mut values = Vec::new();
    if let Some(s) = &filters.stream {
        sql.push_str(" AND m.stream = ?");
        values.push(Sql::Text(s.clone()));
    }
    if let Some(t) = filters.since_ms {
        sql.push_str(" AND m.utc_end_ms >= ?");
        values.push(Sql::Integer(t));
    }
    if let Some(t) = filters.until_ms {
        sql.push_str(" AND m.utc_ms < ?");
        values.push(Sql::Integer(t));
    }
    (sql, values)
}

/// The vectors of the sentences a question may be answered with (those
/// with a moment within its filters), read before the question's own
/// vector is known: `vigil ask` reads them while the text model loads.
pub struct Vectors {
    ids: Vec<i64>,
    /// [`DIMS`] bytes a sentence, in the order of `ids`.
    data: Vec<u8>,
}

/// Reads [`Vectors`] for `filters` from the index in `db`: every
/// sentence's, or with filters those of the moments within them.
pub fn vectors(db: &Connection, filters: &Filters) -> Result<Vectors> {
    let failed = |e: rusqlite::Error| Error::Store {
        path: db.path().map(Into::into).unwrap_or_default(),
        message: format!("cannot read the index's vectors: {e}"),
    };
    let (filter, values) = condition(filters);
    let sql = if *filters == Filters::default() {
        "SELECT id, vector FROM phrases WHERE vector IS NOT NULL".to_string()
    } else {
        format!(
            "SELECT DISTINCT p.id, p.vector FROM moments m JOIN phrases p ON p.id = m.phrase
             WHERE p.vector IS NOT NULL AND {filter}"
        )
    };
    let mut q = db.prepare_cached(&sql).map_err(failed)?;
    let mut rows = q.query(params_from_iter(values.iter())).map_err(failed)?;
    let mut v = Vectors {
        ids: Vec::new(),
        data: Vec::new(),
    };
    while let Some(row) = rows.next().map_err(failed)? {
        let blob = row.get_ref(1).map_err(failed)?.as_blob().unwrap_or(&[]);
        if blob.len() == DIMS {
            v.ids.push(row.get(0).map_err(failed)?);
            v.data.extend_from_slice(blob);
        }
    }
    Ok(v)
}

/// Answers `question` from the index in `db`, `top` of them at most.
/// `meaning` is the vector of its words and those of the sentences to
/// weigh it against ([`vectors`], read with the same filters); without
/// it, words only.
pub fn ask(
    db: &Connection,
    meaning: Option<(&[f32], &Vectors)>,
    question: &Question,
    mode: Mode,
    top: usize,
) -> Result<Vec<Answer>> {
    let failed = |e: rusqlite::Error| Error::Store {
        path: db.path().map(Into::into).unwrap_or_default(),
        message: format!("cannot search the index: {e}"),
    };
    let (filter, values) = condition(&question.filters);
    let terms = terms(&question.words);
    let top = top.max(1);
    // Whether a sentence has a moment within the question's filters.
    let unfiltered = question.filters == Filters::default();
    let mut exists = db
        .prepare_cached(&format!(
            "SELECT EXISTS (SELECT 1 FROM moments m WHERE m.phrase = ? AND {filter})"
        ))
        .map_err(failed)?;
    let mut within = |id: i64| -> Result<bool> {
        if unfiltered {
            return Ok(true);
        }
        let mut args = vec![Sql::Integer(id)];
        args.extend(values.iter().cloned());
        exists
            .query_row(params_from_iter(args), |r| r.get::<_, bool>(0))
            .map_err(failed)
    };
    // Each ranking: sentence ids, best first.
    let mut by_words: Vec<i64> = Vec::new();
    if mode != Mode::Meaning && !terms.is_empty() {
        let query = terms
            .iter()
            .map(|t| format!("\"{}\"", t.replace('"', "")))
            .collect::<Vec<_>>()
            .join(" OR ");
        let mut q = db
            .prepare_cached(
                "SELECT rowid FROM phrases_fts WHERE phrases_fts MATCH ?1 ORDER BY rank LIMIT 2000",
            )
            .map_err(failed)?;
        let ids: Vec<i64> = q
            .query_map([&query], |r| r.get(0))
            .map_err(failed)?
            .collect::<rusqlite::Result<_>>()
            .map_err(failed)?;
        for id in ids {
            if within(id)? {
                by_words.push(id);
                if by_words.len() == DEPTH {
                    break;
                }
            }
        }
    }
    let mut cosines: HashMap<i64, f32> = HashMap::new();
    let mut by_meaning: Vec<i64> = Vec::new();
    if mode != Mode::Words
        && let Some((query, vectors)) = meaning
        && query.len() == DIMS
    {
        let mut scored: Vec<(f32, i64)> = vectors
            .ids
            .iter()
            .zip(vectors.data.chunks_exact(DIMS))
            .map(|(id, v)| (cosine(query, v), *id))
            .filter(|(c, _)| *c >= MEANING_FLOOR)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.truncate(DEPTH);
        for (c, id) in scored {
            cosines.insert(id, c);
            by_meaning.push(id);
        }
    }
    // Fused.
    let mut fused: HashMap<i64, f64> = HashMap::new();
    for list in [&by_words, &by_meaning] {
        for (rank, id) in list.iter().enumerate() {
            *fused.entry(*id).or_default() += 1.0 / (RRF_K + rank as f64 + 1.0);
        }
    }
    let mut phrases: Vec<(i64, f64)> = fused.into_iter().collect();
    phrases.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let only_filters = terms.is_empty() && question.words.trim().is_empty();
    let mut hits: Vec<Hit> = Vec::new();
    let columns = "p.text, m.kind, m.stream, m.start_ms, m.end_ms, m.utc_ms, m.utc_end_ms,
                   m.run, m.record, m.why, m.snapshot, m.clip, m.phrase";
    let hit = |score: f64, r: &rusqlite::Row| -> rusqlite::Result<Hit> {
        Ok(Hit {
            score,
            text: r.get(0)?,
            kind: r.get(1)?,
            stream: r.get(2)?,
            start_ms: r.get(3)?,
            end_ms: r.get(4)?,
            utc_ms: r.get(5)?,
            utc_end_ms: r.get(6)?,
            run: r.get(7)?,
            record: r.get(8)?,
            why: r.get(9)?,
            snapshot: r.get(10)?,
            clip: r.get(11)?,
            meaning: None,
        })
    };
    if only_filters {
        // Nothing to match: what happened in the filters, latest first.
        let mut q = db
            .prepare_cached(&format!(
                "SELECT {columns} FROM moments m JOIN phrases p ON p.id = m.phrase
                 WHERE {filter} ORDER BY m.utc_ms DESC LIMIT ?"
            ))
            .map_err(failed)?;
        let mut args = values.clone();
        args.push(Sql::Integer(i64::try_from(top * 8).unwrap_or(i64::MAX)));
        let rows = q
            .query_map(params_from_iter(args), |r| hit(1.0, r))
            .map_err(failed)?;
        hits = rows.collect::<rusqlite::Result<_>>().map_err(failed)?;
    } else {
        let mut q = db
            .prepare_cached(&format!(
                "SELECT {columns} FROM moments m JOIN phrases p ON p.id = m.phrase
                 WHERE m.phrase = ? AND {filter} ORDER BY m.utc_ms DESC LIMIT ?"
            ))
            .map_err(failed)?;
        for (n, (id, score)) in phrases.iter().enumerate() {
            if n >= top && hits.len() >= top * 8 {
                break;
            }
            let mut args = vec![Sql::Integer(*id)];
            args.extend(values.iter().cloned());
            args.push(Sql::Integer(i64::try_from(top * 8).unwrap_or(i64::MAX)));
            let rows = q
                .query_map(params_from_iter(args), |r| hit(*score, r))
                .map_err(failed)?;
            for h in rows {
                let mut h = h.map_err(failed)?;
                h.meaning = cosines.get(id).copied();
                hits.push(h);
            }
        }
    }
    Ok(merge(hits, &terms, top))
}

/// Moments next to each other on a stream made one answer; the best
/// `top`, best first (then latest first).
fn merge(mut hits: Vec<Hit>, terms: &[String], top: usize) -> Vec<Answer> {
    hits.sort_by(|a, b| {
        (a.stream.as_str(), a.utc_ms, a.utc_end_ms).cmp(&(
            b.stream.as_str(),
            b.utc_ms,
            b.utc_end_ms,
        ))
    });
    let mut groups: Vec<Vec<Hit>> = Vec::new();
    for h in hits {
        match groups.last_mut() {
            Some(g)
                if g[0].stream == h.stream && {
                    let (from, to) = g.iter().fold((i64::MAX, i64::MIN), |(a, b), x| {
                        (a.min(x.utc_ms), b.max(x.utc_end_ms))
                    });
                    // Next to it, and the answer no longer than LONGEST_MS: a
                    // long moment (speech going on for a minute) stays alone
                    // rather than swallow the short ones it spans.
                    h.utc_ms <= to + ADJACENT_MS && h.utc_end_ms.max(to) - from <= LONGEST_MS
                } =>
            {
                g.push(h)
            }
            _ => groups.push(vec![h]),
        }
    }
    let mut answers: Vec<Answer> = groups
        .into_iter()
        .filter_map(|mut g| {
            g.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.utc_ms.cmp(&b.utc_ms)));
            let best = g.first()?;
            let utc_ms = g.iter().map(|h| h.utc_ms).min()?;
            let utc_end_ms = g.iter().map(|h| h.utc_end_ms).max()?;
            let mut a = Answer {
                stream: best.stream.clone(),
                start: g.iter().map(|h| h.start_ms).min()? as f64 / 1000.0,
                end: g.iter().map(|h| h.end_ms).max()? as f64 / 1000.0,
                utc: utc_text(utc_ms),
                utc_end: utc_text(utc_end_ms),
                score: best.score,
                said: Vec::new(),
                kinds: Vec::new(),
                words: Vec::new(),
                meaning: g.iter().filter_map(|h| h.meaning).reduce(f32::max),
                why: Vec::new(),
                snapshot: g.iter().find_map(|h| h.snapshot.clone()),
                clip: g.iter().find_map(|h| h.clip.clone()),
                run: best.run.clone(),
                records: g.iter().map(|h| h.record.clone()).collect(),
                utc_ms,
                utc_end_ms,
            };
            for h in &g {
                if !a.said.contains(&h.text) {
                    a.said.push(h.text.clone());
                }
                if !a.kinds.contains(&h.kind) {
                    a.kinds.push(h.kind.clone());
                }
                if !h.why.is_empty() && !a.why.contains(&h.why) && a.why.len() < 5 {
                    a.why.push(h.why.clone());
                }
            }
            let words: Vec<String> = a.said.iter().flat_map(|s| self::terms(s)).collect();
            a.words = terms
                .iter()
                .filter(|t| words.iter().any(|w| same_word(t, w)))
                .cloned()
                .collect();
            Some(a)
        })
        .collect();
    answers.sort_by(|a, b| b.score.total_cmp(&a.score).then(b.utc_ms.cmp(&a.utc_ms)));
    answers.truncate(top);
    answers
}

fn utc_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_words_lose_what_says_nothing() {
        assert_eq!(
            terms("When did someone mention the door?"),
            ["someone", "mention", "door"]
        );
        assert!(same_word("barking", "bark"));
        assert!(same_word("door", "door"));
        assert!(!same_word("car", "cart"));
        assert!(!same_word("a", "a"));
    }
}
