//! A stream's live picture for the console: `GET /streams/{name}/live`
//! (what is on the latest analysed frame, as JSON) and
//! `GET /streams/{name}/live.jpg` (the frame, faces blurred when privacy
//! asks). Asking marks the stream watched: its encoders then keep the last
//! frame of each chunk for [`crate::stream::WATCH_FOR`], and nobody pays
//! for pictures nobody looks at.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{AppState, problem};
use crate::geometry::Point;
use crate::stream::{LiveView, StreamStatus};

/// JPEG quality of the live picture.
const QUALITY: u8 = 75;

/// The body of `GET /streams/{name}/live`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveFrame {
    pub stream: String,
    /// Counts the stream's frames shown; `live.jpg?seq=N` names this one.
    pub seq: u64,
    /// Stream time of the frame, seconds.
    pub pts: f64,
    /// UTC of the frame, RFC 3339.
    pub utc: String,
    pub width: u32,
    pub height: u32,
    pub tracks: Vec<LiveTrack>,
    pub zones: Vec<LiveZone>,
    pub lines: Vec<LiveLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveTrack {
    pub id: u64,
    pub label: String,
    pub score: f32,
    /// `[x, y, w, h]`, normalised to the frame.
    pub bbox: [f32; 4],
    /// Detected in this frame (false: predicted).
    pub matched: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveZone {
    pub name: String,
    pub polygon: Vec<Point>,
    pub labels: Vec<String>,
    /// Tracks in the zone.
    pub occupancy: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveLine {
    pub name: String,
    pub from: Point,
    pub to: Point,
    pub labels: Vec<String>,
}

impl LiveFrame {
    fn of(stream: &str, v: &LiveView) -> LiveFrame {
        LiveFrame {
            stream: stream.to_string(),
            seq: v.seq,
            pts: (v.frame.pts.0 / 1_000_000) as f64 / 1e3,
            utc: chrono::DateTime::from_timestamp_nanos(v.utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            width: v.frame.width,
            height: v.frame.height,
            tracks: v
                .tracks
                .iter()
                .map(|t| LiveTrack {
                    id: t.id,
                    label: t.label.to_string(),
                    score: crate::record::round4(t.score),
                    bbox: [t.bbox.x, t.bbox.y, t.bbox.w, t.bbox.h],
                    matched: t.matched,
                })
                .collect(),
            zones: v
                .zones
                .iter()
                .map(|z| LiveZone {
                    name: z.name.clone(),
                    polygon: z.points.clone(),
                    labels: z.labels.clone(),
                    occupancy: z.occupancy,
                })
                .collect(),
            lines: v
                .lines
                .iter()
                .filter_map(|l| match l.points[..] {
                    [from, to] => Some(LiveLine {
                        name: l.name.clone(),
                        from,
                        to,
                        labels: l.labels.clone(),
                    }),
                    _ => None,
                })
                .collect(),
        }
    }
}

/// A camera of the cluster that another node runs: its answer from that
/// node (none for a stream of this node's, off a cluster, or asked
/// `from=node`).
async fn elsewhere(s: &AppState, name: &str, what: &str, query: Option<&str>) -> Option<Response> {
    if s.streams.get(name).is_some() || super::peers::here_only(query) {
        return None;
    }
    let view = super::peers::view(s).await?.ok()?;
    let api = view
        .cameras
        .iter()
        .find(|c| c.name == name && c.node.as_deref() != Some(view.node.as_str()))?
        .api
        .clone()?;
    Some(
        super::peers::forward(s, &api, &["streams", name, what], query, None)
            .await
            .unwrap_or_else(|e| {
                (
                    StatusCode::BAD_GATEWAY,
                    problem(format!(
                        "`{name}` runs on another node, which did not answer: {e}"
                    )),
                )
                    .into_response()
            }),
    )
}

/// The stream, marked watched, and its latest view; or the answer that
/// says why there is none.
fn watched(s: &AppState, name: &str) -> Result<std::sync::Arc<LiveView>, Box<Response>> {
    let Some(status): Option<std::sync::Arc<StreamStatus>> = s.streams.get(name) else {
        return Err(Box::new(
            (
                StatusCode::NOT_FOUND,
                problem(format!("no stream `{name}`: GET /streams lists them")),
            )
                .into_response(),
        ));
    };
    status.watch();
    status.view().ok_or_else(|| {
        Box::new(
            (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            problem(format!(
                "no picture of `{name}` yet: frames are kept once someone watches, from its next analysed chunk (state: {})",
                status.state().as_str()
            )),
        )
            .into_response(),
        )
    })
}

/// `GET /streams/{name}/live`.
pub async fn frame(
    State(s): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(r) = elsewhere(&s, &name, "live", query.as_deref()).await {
        return r;
    }
    match watched(&s, &name) {
        Ok(v) => (
            [(header::CACHE_CONTROL, "no-store")],
            Json(LiveFrame::of(&name, &v)),
        )
            .into_response(),
        Err(r) => *r,
    }
}

/// `GET /streams/{name}/live.jpg`: the latest frame (whatever `?seq=` it
/// was asked with: the header `X-Vigil-Seq` says which it is).
pub async fn picture(
    State(s): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(r) = elsewhere(&s, &name, "live.jpg", query.as_deref()).await {
        return r;
    }
    let v = match watched(&s, &name) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let jpeg = match v.jpeg.get() {
        Some(j) => j.clone(),
        None => {
            let view = v.clone();
            let made = tokio::task::spawn_blocking(move || {
                let f = &view.frame;
                crate::fuse::snapshot::render(&f.rgb, f.width, f.height, &[], &view.blur, QUALITY)
                    .map(|j| view.jpeg.get_or_init(|| j).clone())
                    .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
            match made {
                Ok(j) => j,
                Err(why) => {
                    return (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        problem(format!("the picture of `{name}` could not be made: {why}")),
                    )
                        .into_response();
                }
            }
        }
    };
    (
        [
            (header::CONTENT_TYPE, "image/jpeg".to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
            (
                header::HeaderName::from_static("x-vigil-seq"),
                v.seq.to_string(),
            ),
        ],
        jpeg,
    )
        .into_response()
}
