//! Answers to a question: the sentences of the index ranked twice, by
//! their words (FTS5's BM25) and by their meaning (cosine of MiniLM
//! vectors), the two rankings fused by reciprocal rank (`1 / (60 + rank)`
//! summed), then the moments of the best sentences within the question's
//! filters, those next to each other on a stream merged into one answer.

use std::collections::HashMap;

use rusqlite::{Connection, params_from_iter, types::Value as Sql};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::search::question::Question;
use crate::search::vectors::Vectors;
use crate::search::window::Window;

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
    /// The node of a cluster whose store answered (set where a node asked
    /// the whole cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
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

/// The first half of answering: the question's window and its ranking
/// by words, which need no text model (`vigil ask` finds them while the
/// model loads).
pub struct ByWords {
    window: Window,
    terms: Vec<String>,
    /// Sentence ids, best first.
    ids: Vec<i64>,
}

/// Ranks the sentences of `question`'s window by its words (BM25), unless
/// `mode` weighs meaning alone.
pub fn by_words(db: &Connection, question: &Question, mode: Mode) -> Result<ByWords> {
    let failed = |e: rusqlite::Error| Error::Store {
        path: db.path().map(Into::into).unwrap_or_default(),
        message: format!("cannot search the index: {e}"),
    };
    let window = Window::of(db, &question.filters)?;
    let terms = terms(&question.words);
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
            if window.holds(db, id)? {
                by_words.push(id);
                if by_words.len() == DEPTH {
                    break;
                }
            }
        }
    }
    Ok(ByWords {
        window,
        terms,
        ids: by_words,
    })
}

/// Answers `question` from the index in `db`, `top` of them at most.
/// `meaning` is the vector of its words and the sentences' vectors to
/// weigh it against; without it, words only.
pub fn ask(
    db: &Connection,
    meaning: Option<(&[f32], &Vectors)>,
    question: &Question,
    mode: Mode,
    top: usize,
) -> Result<Vec<Answer>> {
    let words = by_words(db, question, mode)?;
    answer(db, words, meaning, question, mode, top)
}

/// Answers `question` ranked by `words` ([`by_words`]) and, given the
/// vectors, by meaning: [`ask`]'s second half.
pub fn answer(
    db: &Connection,
    words: ByWords,
    meaning: Option<(&[f32], &Vectors)>,
    question: &Question,
    mode: Mode,
    top: usize,
) -> Result<Vec<Answer>> {
    let failed = |e: rusqlite::Error| Error::Store {
        path: db.path().map(Into::into).unwrap_or_default(),
        message: format!("cannot search the index: {e}"),
    };
    let ByWords {
        window,
        terms,
        ids: by_words,
    } = words;
    let (filter, values) = window.condition();
    let top = top.max(1);
    let mut cosines: HashMap<i64, f32> = HashMap::new();
    let mut by_meaning: Vec<i64> = Vec::new();
    if mode != Mode::Words
        && let Some((query, vectors)) = meaning
    {
        for (c, id) in vectors.nearest(query, MEANING_FLOOR) {
            if window.holds(db, id)? {
                cosines.insert(id, c);
                by_meaning.push(id);
                if by_meaning.len() == DEPTH {
                    break;
                }
            }
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
                node: None,
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
