//! `/streams`: what runs (`GET`), attaching (`POST`) and detaching
//! (`DELETE /streams/{name}`) under `vigil serve`.
//!
//! The handlers never touch a stream: they hand the request to the thread
//! that owns the graph ([`Control`]) and wait for its answer, so a slow
//! camera or a slow join never holds the HTTP server, and the HTTP server
//! never holds a stream.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::api::{Attached, Detached, StreamEntry};
use super::{AppState, problem};
use crate::config::SourceConfig;
use crate::lock::Locked;
use crate::metrics::Metrics;
use crate::stream::StreamTable;

/// A request for the graph's owner.
pub enum Control {
    /// Attach `source`; `spec` is the request as given (kept, unexpanded,
    /// so that the stream is attached again after a restart).
    Attach {
        source: Box<SourceConfig>,
        spec: Value,
        reply: tokio::sync::oneshot::Sender<Result<(), ControlError>>,
    },
    Detach {
        name: String,
        reply: tokio::sync::oneshot::Sender<Result<(), ControlError>>,
    },
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlError {
    /// The request is wrong (400).
    Invalid(String),
    /// A stream of that name is attached already (409).
    Conflict(String),
    /// No stream of that name (404).
    NotFound(String),
    /// vigil could not do it (500).
    Failed(String),
    /// No pipeline runs now (503).
    Unavailable(String),
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let (code, message) = match self {
            ControlError::Invalid(m) => (StatusCode::BAD_REQUEST, m),
            ControlError::Conflict(m) => (StatusCode::CONFLICT, m),
            ControlError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ControlError::Failed(m) => (StatusCode::INTERNAL_SERVER_ERROR, m),
            ControlError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
        };
        (code, problem(message)).into_response()
    }
}

/// Each stream's rates over the last few seconds.
pub type Rates = Arc<Mutex<BTreeMap<String, Rate>>>;

/// A stream's rates over the last few seconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rate {
    /// Frames decoded and analysed a second.
    pub fps_in: f64,
    pub fps_out: f64,
    /// CPU seconds a second spent on it, in % of one core.
    pub cpu_percent: f64,
}

/// A stream's counters at one instant.
struct Sample {
    at: Instant,
    frames_in: u64,
    frames: u64,
    cpu_s: f64,
}

/// Seconds of history the rates are taken over.
const RATE_WINDOW: usize = 5;

/// Samples each stream's frame and CPU counters every second into `rates`.
pub async fn sample_rates(table: StreamTable, metrics: Arc<Metrics>, rates: Rates) {
    let mut history: BTreeMap<String, VecDeque<Sample>> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let streams = table.snapshot();
        history.retain(|name, _| streams.contains_key(name));
        let mut now = BTreeMap::new();
        for (name, st) in &streams {
            let h = history.entry(name.clone()).or_default();
            h.push_back(Sample {
                at: Instant::now(),
                frames_in: st.frames_in.load(Ordering::Relaxed),
                frames: st.frames.load(Ordering::Relaxed),
                cpu_s: metrics.cpu_seconds(name),
            });
            if h.len() > RATE_WINDOW + 1 {
                h.pop_front();
            }
            let rate = match (h.front(), h.back()) {
                (Some(a), Some(b)) if b.at > a.at => {
                    let dt = (b.at - a.at).as_secs_f64();
                    Rate {
                        fps_in: b.frames_in.saturating_sub(a.frames_in) as f64 / dt,
                        fps_out: b.frames.saturating_sub(a.frames) as f64 / dt,
                        cpu_percent: (b.cpu_s - a.cpu_s).max(0.0) / dt * 100.0,
                    }
                }
                _ => Rate::default(),
            };
            now.insert(name.clone(), rate);
        }
        *rates.locked() = now;
    }
}

/// `GET /streams`: each stream's state, rates, drops, last error, uptime;
/// with `from=cluster` on a node of a cluster, every node's, each naming
/// its node (a node that does not answer within 5 s is left out).
pub async fn list(State(s): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let mine = entries(&s);
    let whole = query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|kv| kv == "from=cluster"));
    if !whole {
        return Json(mine).into_response();
    }
    let view = match super::peers::view(&s).await {
        None => return Json(mine).into_response(),
        Some(Ok(v)) => v,
        Some(Err(e)) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                problem(format!("the cluster cannot be read: {e}")),
            )
                .into_response();
        }
    };
    let mut all: Vec<StreamEntry> = mine
        .into_iter()
        .map(|e| StreamEntry {
            node: Some(view.node.clone()),
            ..e
        })
        .collect();
    let listed = super::peers::ask_others(&s, &view, Duration::from_secs(5), |c| async move {
        c.streams().await
    })
    .await;
    for (node, listed) in listed {
        match listed {
            Ok(entries) => all.extend(entries.into_iter().map(|e| StreamEntry {
                node: Some(node.clone()),
                ..e
            })),
            Err(e) => tracing::debug!("node {node} did not list its streams: {e}"),
        }
    }
    Json(all).into_response()
}

/// This process's streams.
fn entries(s: &AppState) -> Vec<StreamEntry> {
    let streams = s.streams.snapshot();
    let rates = s.rates.locked().clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let body: Vec<StreamEntry> = streams
        .iter()
        .map(|(name, st)| {
            let rate = rates.get(name).copied().unwrap_or_default();
            let uptime = now.saturating_sub(st.attached_at.load(Ordering::Relaxed));
            StreamEntry {
                name: name.clone(),
                uri: st.source.clone(),
                state: st.state().as_str().to_string(),
                fps_in: round2(rate.fps_in),
                fps_out: round2(rate.fps_out),
                cpu_percent: round2(rate.cpu_percent),
                cpu_s: round2(s.metrics.cpu_seconds(name)),
                frames_in: st.frames_in.load(Ordering::Relaxed),
                frames: st.frames.load(Ordering::Relaxed),
                chunks: st.chunks.load(Ordering::Relaxed),
                dropped: s.metrics.dropped_for(name),
                media_s: st.media_done.load(Ordering::Relaxed) as f64 / 1e9,
                uptime_s: uptime / 1_000_000_000,
                last_error: st.last_error(),
                reason: st.failure().or_else(|| st.degraded()),
                node: None,
            }
        })
        .collect();
    body
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `POST /streams`: attach the stream the body describes (a source table
/// of the pipeline file, as JSON: `{"name": "cam1", "uri": "rtsp://…"}`).
pub async fn attach(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(control) = s.control.clone() else {
        return not_serving();
    };
    // A web page can send text/plain anywhere without asking first; JSON
    // it cannot, so this also keeps other sites' pages out.
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !json {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            problem("send the stream as JSON, with `Content-Type: application/json`"),
        )
            .into_response();
    }
    let spec: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return ControlError::Invalid(
                "the body must be a JSON object: {\"name\": \"cam1\", \"uri\": \"rtsp://…\"}"
                    .into(),
            )
            .into_response();
        }
        Err(e) => {
            return ControlError::Invalid(format!("the body is not JSON: {e}")).into_response();
        }
    };
    if let Some(var) = spec
        .get("uri")
        .and_then(Value::as_str)
        .and_then(foreign_variable)
    {
        return ControlError::Invalid(format!(
            "`${{{var}}}`: a stream attached over the API may name only variables starting with {API_VARS} (its URI is shown to whoever can reach the API, and would carry any other secret of the server's environment)"
        ))
        .into_response();
    }
    let source: SourceConfig = match serde_json::from_value(spec.clone()) {
        Ok(s) => s,
        Err(e) => {
            let uri = spec.get("uri").and_then(Value::as_str).unwrap_or_default();
            let message = crate::secret::scrub_url(&e.to_string(), uri);
            return ControlError::Invalid(message).into_response();
        }
    };
    let name = source.name.clone();
    let (reply, answer) = tokio::sync::oneshot::channel();
    if control
        .send(Control::Attach {
            source: Box::new(source),
            spec,
            reply,
        })
        .is_err()
    {
        return stopping();
    }
    match answer.await {
        Ok(Ok(())) => (
            StatusCode::CREATED,
            [(axum::http::header::LOCATION, format!("/streams/{name}"))],
            Json(Attached { attached: name }),
        )
            .into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(_) => stopping(),
    }
}

/// `DELETE /streams/{name}`: stop the stream (what it read is recorded)
/// and forget it, also across restarts.
pub async fn detach(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    let Some(control) = s.control.clone() else {
        return not_serving();
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    if control
        .send(Control::Detach {
            name: name.clone(),
            reply,
        })
        .is_err()
    {
        return stopping();
    }
    match answer.await {
        Ok(Ok(())) => Json(Detached { detached: name }).into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(_) => stopping(),
    }
}

/// The variables a URI attached over the API may use.
pub const API_VARS: &str = "VIGIL_CAM_";

/// The first `${VAR}` in `uri` that is not one of [`API_VARS`].
fn foreign_variable(uri: &str) -> Option<String> {
    let mut rest = uri;
    while let Some(at) = rest.find("${") {
        rest = &rest[at + 2..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.starts_with(API_VARS) {
            return Some(name);
        }
    }
    None
}

fn not_serving() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(axum::http::header::ALLOW, "GET")],
        problem("this is `vigil run`: streams are attached and detached under `vigil serve`"),
    )
        .into_response()
}

fn stopping() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        problem("vigil is stopping"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::foreign_variable;

    #[test]
    fn api_uris_may_name_only_camera_variables() {
        assert_eq!(foreign_variable("rtsp://u:${VIGIL_CAM_DOOR_PW}@h/s"), None);
        assert_eq!(foreign_variable("rtsp://h/s"), None);
        assert_eq!(
            foreign_variable("http://evil/${VIGIL_CAM_X}/${MQTT_PASSWORD}"),
            Some("MQTT_PASSWORD".into())
        );
        assert_eq!(foreign_variable("http://h/${HOME:-x}"), Some("HOME".into()));
    }
}
