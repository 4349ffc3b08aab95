//! `GET /search?q=QUESTION[&stream=][&since=][&until=][&top=][&mode=]`:
//! the question asked of the index of moments ([`crate::search`]), as
//! `vigil ask --json` answers it. The text model is loaded on the first
//! question and kept; a model in use is taken out of the pool, never run
//! under a lock.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{AppState, problem};
use crate::encode::text::{TextEncoder, Use};
use crate::lock::Locked;
use crate::search::{Answer, Answers, Ask, Kept, Mode};

/// Answers at most, whatever `top` asks.
const MOST: usize = 100;

/// How long a node waits for another's answers (a node cut off would
/// otherwise hold every question asked of the cluster).
const PEER_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Text encoders not in use, for the questions to come, and the
/// sentences' vectors kept between them.
#[derive(Clone, Default)]
pub struct Encoders(Arc<Mutex<Vec<TextEncoder>>>, Kept);

impl Encoders {
    /// One not in use, or a new one; none without the model.
    fn take(&self) -> Result<Option<TextEncoder>, String> {
        if let Some(e) = self.0.locked().pop() {
            return Ok(Some(e));
        }
        if !TextEncoder::installed() {
            return Ok(None);
        }
        TextEncoder::load(Use::Many)
            .map(Some)
            .map_err(|e| e.to_string())
    }

    fn give_back(&self, e: TextEncoder) {
        self.0.locked().push(e);
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    pub q: String,
    #[serde(default)]
    pub stream: Option<String>,
    #[serde(default)]
    pub since: Option<String>,
    #[serde(default)]
    pub until: Option<String>,
    #[serde(default)]
    pub top: Option<usize>,
    #[serde(default)]
    pub mode: Option<String>,
    /// Ask as if it were this time (RFC 3339; `vigil ask --now`).
    #[serde(default)]
    pub now: Option<String>,
    /// On a node of a cluster: `cluster` (default) asks every live node's
    /// store too, `node` this node's alone.
    #[serde(default)]
    pub from: Option<String>,
}

fn bad(message: String) -> Response {
    (StatusCode::BAD_REQUEST, problem(message)).into_response()
}

pub async fn search(
    State(s): State<AppState>,
    query: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match query {
        Ok(q) => q,
        Err(e) => return bad(format!("the query: {e}")),
    };
    if q.q.trim().is_empty() {
        return bad("q: ask something (`/search?q=siren near people`)".into());
    }
    let whole_cluster = match q.from.as_deref() {
        None | Some("cluster") => s.cluster.is_some(),
        Some("node") => false,
        Some(other) => return bad(format!("from: `{other}` is neither `cluster` nor `node`")),
    };
    let Some(store) = s.store() else {
        return (
            StatusCode::NOT_FOUND,
            problem("the pipeline has no [sinks.store]: there is nothing to search"),
        )
            .into_response();
    };
    let mode = match q.mode.as_deref().map(str::parse::<Mode>).transpose() {
        Ok(m) => m.unwrap_or_default(),
        Err(e) => return bad(format!("mode: {e}")),
    };
    let asked_at = match q.now.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => match chrono::DateTime::parse_from_rfc3339(t) {
            Ok(t) => t,
            Err(e) => return bad(format!("now: `{t}`: {e}")),
        },
        None => chrono::Local::now().fixed_offset(),
    };
    let now = asked_at.with_timezone(&chrono::Utc);
    let ms = |t: Option<&str>, name: &str| -> Result<Option<i64>, String> {
        let Some(t) = t.filter(|t| !t.trim().is_empty()) else {
            return Ok(None);
        };
        let text = crate::export::parse_time(t.trim(), now).map_err(|e| format!("{name}: {e}"))?;
        chrono::DateTime::parse_from_rfc3339(&text)
            .map(|d| Some(d.timestamp_millis()))
            .map_err(|e| format!("{name}: {e}"))
    };
    let (since_ms, until_ms) = match (
        ms(q.since.as_deref(), "since"),
        ms(q.until.as_deref(), "until"),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return bad(e),
    };
    let top = q.top.unwrap_or(5).clamp(1, MOST);
    let ask = Ask {
        question: q.q.clone(),
        stream: q.stream.clone().filter(|s| !s.is_empty()),
        since_ms,
        until_ms,
        top,
        mode,
        now: asked_at,
    };
    let pool = s.encoders.clone();
    let answered = tokio::task::spawn_blocking(move || -> Result<_, String> {
        let db = crate::search::open(&store.path).map_err(|e| e.to_string())?;
        let mut encoder = match mode {
            Mode::Words => None,
            _ => pool.take()?,
        };
        let answers = crate::search::ask(&db, encoder.as_mut(), Some(&pool.1), &ask)
            .map_err(|e| e.to_string());
        if let Some(e) = encoder {
            pool.give_back(e);
        }
        answers
    })
    .await;
    match answered {
        Ok(Ok(a)) => match (&s.cluster, whole_cluster) {
            (Some(handle), true) => {
                let asked = Asked {
                    query: &q,
                    now: asked_at,
                    top,
                };
                Json(cluster_answers(&s, handle, a, asked).await).into_response()
            }
            _ => Json(a).into_response(),
        },
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, problem(e)).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            problem(format!("the search stopped: {e}")),
        )
            .into_response(),
    }
}

/// A question as this node was asked it, for the others.
struct Asked<'a> {
    query: &'a SearchQuery,
    now: chrono::DateTime<chrono::FixedOffset>,
    top: usize,
}

/// The whole cluster's answers: `mine` and those of every other live node
/// (asked `from=node`, at the same `now`, concurrently), best first, each
/// naming its node. Scores are each node's own rank fusion, so the best
/// answers of every node come first, by how well they match there; a node
/// that does not answer is said in the notes.
async fn cluster_answers(
    s: &AppState,
    handle: &crate::cluster::agent::Handle,
    mut mine: Answers,
    asked: Asked<'_>,
) -> Answers {
    let view = match handle.view().await {
        Ok(v) => v,
        Err(e) => {
            mine.notes.push(format!(
                "the cluster cannot be read ({e}): these are this node's answers alone"
            ));
            return mine;
        }
    };
    for a in &mut mine.answers {
        a.node = Some(view.node.clone());
    }
    let q = asked.query;
    let mut query: Vec<(&str, String)> = vec![
        ("q", q.q.clone()),
        ("top", asked.top.to_string()),
        ("now", asked.now.to_rfc3339()),
        ("from", "node".into()),
    ];
    for (key, value) in [
        ("stream", &q.stream),
        ("since", &q.since),
        ("until", &q.until),
        ("mode", &q.mode),
    ] {
        if let Some(v) = value {
            query.push((key, v.clone()));
        }
    }
    let answered = super::peers::ask_others(s, &view, PEER_WAIT, |c| {
        let query = &query;
        async move { c.search(query).await }
    })
    .await;
    for (node, answers) in answered {
        match answers {
            Ok(theirs) => {
                mine.answers
                    .extend(theirs.answers.into_iter().map(|mut a: Answer| {
                        a.node = Some(node.clone());
                        a
                    }));
                mine.notes.extend(
                    theirs
                        .notes
                        .into_iter()
                        .map(|n| format!("node {node}: {n}")),
                );
            }
            Err(e) => mine.notes.push(format!(
                "node {node} did not answer ({e}): the moments of the cameras it ran are missing"
            )),
        }
    }
    mine.answers
        .sort_by(|a, b| b.score.total_cmp(&a.score).then(a.utc.cmp(&b.utc)));
    mine.answers.truncate(asked.top);
    mine
}
