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
            let asked_here_only = super::peers::here_only(request.uri().query());
            return match (&s.cluster, asked_here_only) {
                (Some(_), false) => {
                    let range = request.headers().get(header::RANGE).cloned();
                    from_other_nodes(&s, &path, range).await
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

/// `path` from the first other live node of the cluster that has it
/// (with this request's range): the snapshots and clips of a camera live
/// on the node that ran it, and the cluster's records and answers name
/// them all.
async fn from_other_nodes(
    s: &AppState,
    path: &str,
    range: Option<header::HeaderValue>,
) -> Response {
    let view = match super::peers::view(s).await {
        Some(Ok(v)) => v,
        Some(Err(e)) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                problem(format!(
                    "{path}: not on this node, and the cluster cannot be read to ask the others: {e}"
                )),
            )
                .into_response();
        }
        None => {
            return (
                StatusCode::NOT_FOUND,
                problem(format!("{path}: no such media file")),
            )
                .into_response();
        }
    };
    let segments: Vec<&str> = std::iter::once("media").chain(path.split('/')).collect();
    let mut tried = Vec::new();
    for (node, api) in super::peers::others(&view) {
        match super::peers::forward(s, api, &segments, None, range.as_ref()).await {
            Ok(r) if r.status().is_success() => return r,
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
