//! Search: one index over everything seen, heard and said, and questions
//! asked of it (`vigil ask`, `GET /search`).
//!
//! Every caption, transcript and event becomes a [`moment::Moment`]: a
//! short sentence with its stream, time span, evidence and media. The
//! [`index`] keeps them in the event store beside their records (SQLite
//! FTS5 for words, MiniLM vectors for meaning), written by the
//! [`indexer`] as records are committed, off the pipeline's path, and
//! deleted with their records. A question is [`question::understand`]ood
//! (its time and stream words become filters) and [`rank::ask`]ed: BM25
//! and cosine rankings fused, adjacent moments merged into answers.

pub mod index;
pub mod indexer;
pub mod moment;
pub mod question;
pub mod rank;
pub mod vectors;
pub mod window;

use std::path::Path;

use rusqlite::Connection;

use crate::encode::text::TextEncoder;
use crate::error::{Error, Result};
pub use rank::{Answer, Answers, Mode};
pub use vectors::{Kept, Vectors};

/// What `vigil ask` and `/search` take besides the question.
#[derive(Clone, Debug)]
pub struct Ask {
    pub question: String,
    /// Only this stream (beside any the question names).
    pub stream: Option<String>,
    /// Wall clock bounds, ms since the epoch (beside the question's).
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub top: usize,
    pub mode: Mode,
    /// The asker's clock: "yesterday" and "after 10 pm" are on it.
    pub now: chrono::DateTime<chrono::FixedOffset>,
}

/// The names of the streams with records in the store (each found by the
/// index on `stream`, not by reading every record).
fn streams(db: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut q = db.prepare_cached(
        "WITH RECURSIVE s(name) AS (
             SELECT min(stream) FROM records
             UNION ALL
             SELECT (SELECT min(stream) FROM records WHERE stream > s.name) FROM s
             WHERE s.name IS NOT NULL)
         SELECT name FROM s WHERE name IS NOT NULL",
    )?;
    let rows = q.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// Opens the store at `path` to be asked: it must be there.
pub fn open(path: &Path) -> Result<Connection> {
    if !path.exists() {
        return Err(Error::Store {
            path: path.to_path_buf(),
            message: "no such store: run vigil first, or name one with --db".into(),
        });
    }
    let db = crate::sink::store::open(path)?;
    index::prepare(&db).map_err(|e| Error::Store {
        path: path.to_path_buf(),
        message: format!("cannot add the index of moments: {e}"),
    })?;
    Ok(db)
}

/// The question understood against the store (its streams), with the
/// request's own filters added, and what the asker should be told.
fn understand(db: &Connection, ask: &Ask) -> Result<(question::Question, Vec<String>)> {
    let failed = |e: rusqlite::Error| Error::Store {
        path: db.path().map(Into::into).unwrap_or_default(),
        message: format!("cannot read the index: {e}"),
    };
    let names = streams(db).map_err(failed)?;
    let mut q = question::understand(&ask.question, ask.now, &names);
    let mut notes = Vec::new();
    if let Some(s) = &ask.stream {
        if q.filters.stream.as_ref().is_some_and(|n| n != s) {
            notes.push(format!(
                "the question names {}, --stream {s}: asked of {s}",
                q.filters.stream.as_deref().unwrap_or("")
            ));
        }
        if q.filters.stream.is_none() {
            q.understood.push(format!("on {s}"));
        }
        q.filters.stream = Some(s.clone());
    }
    if let Some(t) = ask.since_ms {
        q.filters.since_ms = Some(q.filters.since_ms.map_or(t, |s| s.max(t)));
    }
    if let Some(t) = ask.until_ms {
        q.filters.until_ms = Some(q.filters.until_ms.map_or(t, |u| u.min(t)));
    }
    let behind = index::coverage_behind(db).map_err(failed)?;
    if behind > 0 {
        notes.push(format!(
            "{behind} records are not indexed yet (the indexer is on its way, or run `vigil index`)"
        ));
    }
    Ok((q, notes))
}

/// Whether the question is weighed by meaning: the mode asks for it, and
/// it has words left once its time and stream words are taken out.
fn by_meaning(ask: &Ask, q: &question::Question) -> bool {
    ask.mode != Mode::Words && !q.words.trim().is_empty()
}

fn answers(
    db: &Connection,
    ask: &Ask,
    q: question::Question,
    meaning: Option<(&[f32], &Vectors)>,
    words: Option<rank::ByWords>,
    mut notes: Vec<String>,
) -> Result<Answers> {
    let mode = if meaning.is_none() && ask.mode != Mode::Words && by_meaning(ask, &q) {
        notes.push(
            "by words only: the text model (minilm) is not installed; run `make setup`".into(),
        );
        Mode::Words
    } else {
        ask.mode
    };
    let words = match words {
        Some(w) if mode == ask.mode => w,
        _ => rank::by_words(db, &q, mode)?,
    };
    let answers = rank::answer(db, words, meaning, &q, mode, ask.top)?;
    Ok(Answers {
        question: ask.question.clone(),
        understood: q.understood,
        words: q.words,
        mode,
        answers,
        notes,
    })
}

/// Answers `ask` from the store `db` (see [`open`]); `encoder` embeds the
/// question (none: by words only, and the answers say so). `kept`: the
/// sentences' vectors kept between questions, or none to read them now.
pub fn ask(
    db: &Connection,
    encoder: Option<&mut TextEncoder>,
    kept: Option<&Kept>,
    ask: &Ask,
) -> Result<Answers> {
    let (q, notes) = understand(db, ask)?;
    let mut meaning = None;
    if by_meaning(ask, &q)
        && let Some(enc) = encoder
    {
        let v = enc.embed(&[q.words.as_str()])?.pop().unwrap_or_default();
        let vectors = match kept {
            Some(k) => k.current(db)?,
            None => std::sync::Arc::new(Vectors::read(db)?),
        };
        meaning = Some((v, vectors));
    }
    let meaning = meaning.as_ref().map(|(v, m)| (v.as_slice(), &**m));
    answers(db, ask, q, meaning, None, notes)
}

/// Asks the store at `path` once (`vigil ask`): the text model loads and
/// embeds the question on one thread while the sentences' vectors are read
/// and the words ranked on this one.
pub fn ask_store(path: &Path, ask: &Ask) -> Result<Answers> {
    let db = open(path)?;
    let (q, notes) = understand(&db, ask)?;
    if !by_meaning(ask, &q) || !TextEncoder::installed() {
        return answers(&db, ask, q, None, None, notes);
    }
    let words = q.words.clone();
    let embedding = std::thread::Builder::new()
        .name("ask-embed".into())
        .spawn(move || -> Result<Vec<f32>> {
            let mut enc = TextEncoder::load(crate::encode::text::Use::Once)?;
            Ok(enc.embed(&[words.as_str()])?.pop().unwrap_or_default())
        })
        .map_err(|e| Error::io("cannot start a thread for the text model", e))?;
    let vectors = Vectors::read(&db)?;
    let words = rank::by_words(&db, &q, ask.mode)?;
    let v = embedding.join().map_err(|_| Error::Model {
        model: "minilm".into(),
        message: "its thread stopped unexpectedly".into(),
    })??;
    answers(&db, ask, q, Some((&v, &vectors)), Some(words), notes)
}
