//! `POST /rules/try`: a rule tried on what a stream recorded (the
//! console's dry run): when would it have fired? The rule is checked as
//! the pipeline file's would be, against the running pipeline's zones,
//! lines and sounds, then run over the stored records of the window
//! ([`crate::fuse::rules::replay`]).

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{AppState, problem};
use crate::config::RuleConfig;
use crate::export::Filter;
use crate::lock::Locked;
use crate::record::Record;

/// Records read at most for one try.
const MOST: usize = 200_000;

/// The body: the rule's keys as in the pipeline file, its stream and the
/// window (`since` defaults to `-1h`, `until` to now).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TryRule {
    pub stream: String,
    pub when: String,
    #[serde(default)]
    pub within: Option<String>,
    #[serde(default)]
    pub min_duration: Option<String>,
    #[serde(default)]
    pub cooldown: Option<String>,
    #[serde(default)]
    pub since: Option<String>,
    #[serde(default)]
    pub until: Option<String>,
}

/// One time the rule would have fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Firing {
    /// UTC, RFC 3339.
    pub start: String,
    /// How long it held (seconds); `None`: still at the window's end.
    pub length: Option<f64>,
    /// What made each term hold, as the rule's event says it: `[{"term",
    /// "says"}]` (its facts' times count from the window's start, so they
    /// are left out).
    pub evidence: serde_json::Value,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tried {
    pub stream: String,
    pub since: String,
    pub until: String,
    /// Records read, and the facts rebuilt from them.
    pub records: usize,
    pub facts: usize,
    pub fired: Vec<Firing>,
}

/// Each term of an evidence list and what it says.
fn evidence(list: Option<&serde_json::Value>) -> serde_json::Value {
    let terms = list.and_then(|l| l.as_array()).into_iter().flatten();
    serde_json::Value::Array(
        terms
            .map(|t| serde_json::json!({"term": t["term"], "says": t["says"]}))
            .collect(),
    )
}

fn bad(message: String) -> Response {
    (StatusCode::BAD_REQUEST, problem(message)).into_response()
}

pub async fn try_rule(
    State(s): State<AppState>,
    body: Result<Json<TryRule>, JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return bad(format!("the body: {e}")),
    };
    let Some(pipeline) = s.pipeline.locked().clone() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            problem("no pipeline runs now"),
        )
            .into_response();
    };
    let Some(store) = s.store() else {
        return (
            StatusCode::NOT_FOUND,
            problem("the pipeline has no [sinks.store]: there are no records to try a rule on"),
        )
            .into_response();
    };
    // The rule, checked as the pipeline file's are (its only rule).
    let mut rule = serde_json::json!({"name": "dry_run", "when": req.when});
    for (key, value) in [
        ("within", &req.within),
        ("min_duration", &req.min_duration),
        ("cooldown", &req.cooldown),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.trim().is_empty()) {
            rule[key] = serde_json::Value::String(v.trim().to_string());
        }
    }
    let rule: RuleConfig = match serde_json::from_value(rule) {
        Ok(r) => r,
        Err(e) => return bad(format!("the rule: {e}")),
    };
    let mut config = (*pipeline).clone();
    config.rules = vec![rule];
    if let Err(e) = config.validate() {
        return bad(e);
    }
    let now = chrono::Utc::now();
    let parse = |t: Option<&str>, name: &str| -> Result<Option<(String, i64)>, String> {
        let Some(t) = t.filter(|t| !t.trim().is_empty()) else {
            return Ok(None);
        };
        let text = crate::export::parse_time(t.trim(), now).map_err(|e| format!("{name}: {e}"))?;
        let ns = chrono::DateTime::parse_from_rfc3339(&text)
            .ok()
            .and_then(|d| d.timestamp_nanos_opt())
            .ok_or_else(|| format!("{name}: `{t}` is out of range"))?;
        Ok(Some((text, ns)))
    };
    let at = |d: chrono::DateTime<chrono::Utc>| {
        (
            d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            d.timestamp_nanos_opt().unwrap_or(0),
        )
    };
    let (since, until) = match (
        parse(req.since.as_deref(), "since"),
        parse(req.until.as_deref(), "until"),
    ) {
        (Ok(a), Ok(b)) => (
            a.unwrap_or_else(|| at(now - chrono::Duration::hours(1))),
            b.unwrap_or_else(|| at(now)),
        ),
        (Err(e), _) | (_, Err(e)) => return bad(e),
    };
    if since.1 >= until.1 {
        return bad("since must come before until".into());
    }
    let filter = Filter {
        since: Some(since.0.clone()),
        until: Some(until.0.clone()),
        stream: Some(req.stream.clone()),
        kind: None,
        label: None,
    };
    let stream = req.stream.clone();
    let tried = tokio::task::spawn_blocking(move || -> Result<Tried, (StatusCode, String)> {
        let failed = |e: String| (StatusCode::INTERNAL_SERVER_ERROR, e);
        let conn = crate::sink::store::open(&store.path).map_err(|e| failed(e.to_string()))?;
        let mut records = Vec::new();
        let mut cursor = 0;
        loop {
            let rows = crate::export::after(&conn, &filter, cursor, 10_000)
                .map_err(|e| failed(e.to_string()))?;
            let Some(last) = rows.last() else { break };
            cursor = last.0;
            for (_, _, json) in rows {
                if let Ok(r) = serde_json::from_str::<Record>(&json) {
                    records.push(r);
                }
            }
            if records.len() > MOST {
                return Err((
                    StatusCode::BAD_REQUEST,
                    format!(
                        "more than {MOST} records of `{stream}` in the window: try a shorter one"
                    ),
                ));
            }
        }
        let (from, to) = (since.1, until.1);
        let trial = crate::fuse::rules::replay::replay(&config, &stream, &records, from, to);
        let window = u64::try_from(to.saturating_sub(from)).unwrap_or(u64::MAX);
        let fired = trial
            .records
            .iter()
            .filter_map(|r| match r {
                Record::Event(e) if e.phase == crate::record::Phase::Start => Some(e),
                _ => None,
            })
            .map(|start| {
                let length = trial.records.iter().find_map(|r| match r {
                    Record::Event(e)
                        if e.event == start.event && e.phase == crate::record::Phase::End =>
                    {
                        e.end
                    }
                    _ => None,
                });
                Firing {
                    start: start.utc.clone(),
                    // Closed by the window's end is still holding.
                    length: length
                        .filter(|end| end.0 < window)
                        .map(|end| (end.0.saturating_sub(start.start.0) / 1_000_000) as f64 / 1e3),
                    evidence: evidence(start.details.get("evidence")),
                }
            })
            .collect();
        Ok(Tried {
            stream,
            since: since.0,
            until: until.0,
            records: records.len(),
            facts: trial.facts,
            fired,
        })
    })
    .await;
    match tried {
        Ok(Ok(t)) => Json(t).into_response(),
        Ok(Err((code, e))) => (code, problem(e)).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, problem(e.to_string())).into_response(),
    }
}
