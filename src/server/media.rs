//! `GET /media/{path}`: the snapshots and clips records name, served from
//! the output folder, with byte ranges (a player seeks in a clip by asking
//! for ranges). Only files under the media folders (`[snapshots] path`,
//! `[recording] path`) are served, by their path relative to the output
//! folder as records give it: no `..`, no `.`, no empty segment, no
//! symbolic link anywhere on the way (so that a link cannot lead out),
//! decoded before it is checked (an encoded slash is a slash).

use std::path::PathBuf;

use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

use super::{AppState, problem};
use crate::lock::Locked;

/// Where the media files are: the output folder, and the folders under it
/// that hold media (relative, as records name them).
#[derive(Clone, Debug, Default)]
pub struct MediaRoots {
    pub out_dir: PathBuf,
    pub folders: Vec<String>,
}

impl MediaRoots {
    /// The media folders of `config`'s snapshots and clips, under `out_dir`.
    pub fn of(config: &crate::config::PipelineConfig, out_dir: &std::path::Path) -> MediaRoots {
        let folders = [
            config.snapshots.as_ref().map(|s| s.path.clone()),
            config.recording.as_ref().map(|r| r.path.clone()),
        ]
        .into_iter()
        .flatten()
        .filter_map(|p| p.to_str().map(|s| s.trim_end_matches('/').to_string()))
        .collect();
        MediaRoots {
            out_dir: out_dir.to_path_buf(),
            folders,
        }
    }

    /// Whether `path` is under a media folder (a plain path or not).
    fn is_media(&self, path: &str) -> bool {
        self.folders.iter().any(|f| {
            path.strip_prefix(f.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
        })
    }

    /// The file `path` names, if it is a media file that may be served.
    fn file(&self, path: &str) -> Result<PathBuf, (StatusCode, &'static str)> {
        if !self.is_media(path) {
            return Err((
                StatusCode::NOT_FOUND,
                "not a media file: only snapshots and clips are served",
            ));
        }
        let file = crate::sink::retention::media::resolve(&self.out_dir, path).map_err(|_| {
            (
                StatusCode::BAD_REQUEST,
                "the path must be a plain path under a media folder (no `..`, no links)",
            )
        })?;
        match std::fs::symlink_metadata(&file) {
            Ok(m) if m.is_file() => Ok(file),
            _ => Err((StatusCode::NOT_FOUND, "no such media file")),
        }
    }
}

pub async fn get(
    State(s): State<AppState>,
    UrlPath(path): UrlPath<String>,
    request: Request,
) -> Response {
    let Some(roots) = s.media.locked().clone() else {
        return (
            StatusCode::NOT_FOUND,
            problem("this pipeline writes no snapshots or clips"),
        )
            .into_response();
    };
    let file = match roots.file(&path) {
        Ok(f) => f,
        // Not here: on a cluster, the node that ran the camera has it.
        Err((StatusCode::NOT_FOUND, why)) if roots.is_media(&path) => {
            let asked_here_only = request
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|kv| kv == "from=node"));
            return match (&s.cluster, asked_here_only) {
                (Some(handle), false) => {
                    let range = request.headers().get(header::RANGE).cloned();
                    from_other_nodes(&s, handle, &path, range).await
                }
                _ => (StatusCode::NOT_FOUND, problem(format!("{path}: {why}"))).into_response(),
            };
        }
        Err((code, why)) => return (code, problem(format!("{path}: {why}"))).into_response(),
    };
    // Its type from its extension (image/jpeg, video/mp4, video/x-matroska).
    match tower_http::services::ServeFile::new(&file)
        .oneshot(request)
        .await
    {
        Ok(mut r) => {
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("private, max-age=3600"),
            );
            r.into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            problem(format!("{path}: cannot read it: {e}")),
        )
            .into_response(),
    }
}

/// Headers of a node's media answer passed on as they are.
const PASSED_ON: [header::HeaderName; 7] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_RANGE,
    header::ACCEPT_RANGES,
    header::LAST_MODIFIED,
    header::ETAG,
    header::CACHE_CONTROL,
];

/// `path` from the first other live node of the cluster that has it
/// (asked `from=node`, with this request's range and this node's token),
/// streamed through: the snapshots and clips of a camera live on the node
/// that ran it, and the cluster's records and answers name them all.
async fn from_other_nodes(
    s: &AppState,
    handle: &crate::cluster::agent::Handle,
    path: &str,
    range: Option<header::HeaderValue>,
) -> Response {
    let view = match handle.view().await {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                problem(format!(
                    "{path}: not on this node, and the cluster cannot be read to ask the others: {e}"
                )),
            )
                .into_response();
        }
    };
    let http = match peer_client() {
        Ok(c) => c,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, problem(e)).into_response(),
    };
    let mut tried = Vec::new();
    for (node, beat) in view.nodes.iter().filter(|(n, _)| **n != view.node) {
        let Some(api) = &beat.api else { continue };
        let Ok(mut url) = reqwest::Url::parse(&crate::cluster::api_url(api)) else {
            continue;
        };
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .push("media")
                .extend(path.split('/'));
        }
        url.set_query(Some("from=node"));
        let mut asked = http.get(url);
        if let Some(range) = &range {
            asked = asked.header(header::RANGE, range);
        }
        if let Some(t) = &s.token {
            asked = asked.bearer_auth(t);
        }
        match asked.send().await {
            Ok(r) if r.status().is_success() => {
                let mut out = Response::builder().status(r.status());
                for h in &PASSED_ON {
                    if let Some(v) = r.headers().get(h) {
                        out = out.header(h, v);
                    }
                }
                let body = axum::body::Body::from_stream(r.bytes_stream());
                return out.body(body).unwrap_or_else(|e| {
                    (StatusCode::INTERNAL_SERVER_ERROR, problem(e.to_string())).into_response()
                });
            }
            Ok(r) => tried.push(format!("{node}: {}", r.status())),
            Err(e) => tried.push(format!("{node}: {e}")),
        }
    }
    let others = if tried.is_empty() {
        "no other node to ask".to_string()
    } else {
        format!("nor on the other nodes ({})", tried.join("; "))
    };
    (
        StatusCode::NOT_FOUND,
        problem(format!("{path}: no such media file here, {others}")),
    )
        .into_response()
}

/// The client a node asks the others with (their API over the cluster's
/// network; https trusted as `vigil` trusts a server).
fn peer_client() -> Result<reqwest::Client, String> {
    static CLIENT: std::sync::OnceLock<Result<reqwest::Client, String>> =
        std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let tls = crate::sink::tls::optional_client_config("the cluster's API", None)?;
            reqwest::Client::builder()
                .use_preconfigured_tls(tls)
                .connect_timeout(std::time::Duration::from_secs(5))
                .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| format!("cannot build the HTTP client: {e}"))
        })
        .clone()
}
