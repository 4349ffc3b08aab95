//! HTTP while running: `/metrics` (Prometheus text), `/healthz`, the
//! streams (`GET`, and under `vigil serve` `POST` and `DELETE`:
//! [`streams`]), each stream's live picture ([`live`]), the records
//! (`/events`, `/events/live`: [`events`]), the snapshots and clips they
//! name (`/media/…`: [`media`]), and the web console that shows them all
//! (`/`: [`console`]); questions asked of the index of moments (`/search`:
//! [`search`]).
//!
//! It binds 127.0.0.1 unless told otherwise; bound anywhere else it refuses
//! to start without a bearer token, and with a token every request must
//! carry it (`Authorization: Bearer TOKEN`), or the cookie of a console
//! session opened with it ([`session`]). The console's own files carry no
//! data and need neither. The bodies it answers with are typed in [`api`],
//! which [`client`] reads them back with.

pub mod api;
pub mod client;
pub mod console;
pub mod events;
pub mod live;
pub mod media;
pub mod peers;
pub mod rules;
pub mod search;
pub mod session;
pub mod streams;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};

use crate::error::{Error, Result};
use crate::lock::Locked;
use crate::metrics::Metrics;
use crate::stream::StreamTable;

pub use crate::sink::store::StoreHandle;
pub use streams::{Control, ControlError};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub streams: StreamTable,
    /// Where attach and detach requests go (`vigil serve` only).
    pub control: Option<crossbeam_channel::Sender<Control>>,
    /// The store, when the pipeline has one (it may change on reload).
    pub store: Arc<Mutex<Option<StoreHandle>>>,
    /// Every request must carry it, when set.
    pub token: Option<Arc<str>>,
    /// Frames per second in and out of each stream, sampled each second.
    pub rates: streams::Rates,
    /// Why no pipeline runs, while none does (`vigil serve` restarting on a
    /// reload, or unable to start again): `/healthz` says so with a 503.
    pub down: Arc<Mutex<Option<String>>>,
    /// The output folder and its media folders, for `/media`.
    pub media: Arc<Mutex<Option<media::MediaRoots>>>,
    /// The console's signed-in browsers.
    pub sessions: Arc<session::Sessions>,
    /// The pipeline that runs (for the console's rule dry runs).
    pub pipeline: Arc<Mutex<Option<Arc<crate::config::PipelineConfig>>>>,
    /// Text models for `/search`, loaded on the first question.
    pub encoders: search::Encoders,
    /// On a node of a cluster: its way to the cluster's buckets.
    pub cluster: Option<crate::cluster::agent::Handle>,
}

impl AppState {
    pub fn new(metrics: Arc<Metrics>, streams: StreamTable) -> AppState {
        AppState {
            metrics,
            streams,
            control: None,
            store: Default::default(),
            token: None,
            rates: Default::default(),
            down: Default::default(),
            media: Default::default(),
            sessions: Default::default(),
            pipeline: Default::default(),
            encoders: Default::default(),
            cluster: None,
        }
    }

    /// Says why no pipeline runs (`None`: one runs).
    pub fn set_down(&self, why: Option<String>) {
        *self.down.locked() = why;
    }

    /// The pipeline now running.
    pub fn set_pipeline(&self, config: &crate::config::PipelineConfig) {
        *self.pipeline.locked() = Some(Arc::new(config.clone()));
    }

    pub fn store(&self) -> Option<StoreHandle> {
        self.store.locked().clone()
    }
}

/// The bearer token the server requires, and whether one is needed:
/// binding a non-loopback address without one is refused.
pub fn token_for(
    addr: SocketAddr,
    config: Option<&crate::config::ServerConfig>,
) -> std::result::Result<Option<Arc<str>>, String> {
    let token = match config {
        Some(c) => c.token().resolve("[server] token")?,
        None => None,
    };
    if token.is_none() && !addr.ip().is_loopback() {
        return Err(format!(
            "the API would listen on {addr}, which is not a loopback address, without a token: anyone who can reach it could attach streams and read the records; set [server] token_env or token_file (a long random string), or listen on 127.0.0.1"
        ));
    }
    Ok(token.map(Into::into))
}

/// Binds `addr` now (so that a taken port is an error before anything runs)
/// and serves on the current tokio runtime until the process ends.
pub async fn bind(addr: SocketAddr, state: AppState) -> Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        Error::io(
            format!("[server] cannot listen on {addr}; is another vigil running?"),
            e,
        )
    })?;
    tokio::spawn(streams::sample_rates(
        state.streams.clone(),
        state.metrics.clone(),
        state.rates.clone(),
    ));
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz_route))
        .route("/livez", get(livez))
        .route("/streams", get(streams::list).post(streams::attach))
        .route("/streams/{name}", delete(streams::detach))
        .route("/cluster", get(cluster_view))
        .route("/events", get(events::query))
        .route("/events/live", get(events::live))
        .route("/media/{*path}", get(media::get))
        .route("/rules/try", axum::routing::post(rules::try_rule))
        .route("/search", get(search::search))
        .route("/streams/{name}/live", get(live::frame))
        .route("/streams/{name}/live.jpg", get(live::picture))
        .route(
            "/session",
            get(session::state)
                .post(session::open)
                .delete(session::close),
        )
        .route("/", get(console::index))
        .route("/console/{file}", get(console::file))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ))
        .layer(axum::middleware::from_fn(console::harden))
        .with_state(state);
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("the HTTP server stopped: {e}");
        }
    }))
}

/// Refuses a request without the token (when there is one). Without a
/// token the server is on loopback, and only requests naming a loopback
/// host are served: a web page the user visits cannot reach the API by
/// pointing a name of its own at 127.0.0.1 (DNS rebinding).
async fn require_token(State(s): State<AppState>, request: Request, next: Next) -> Response {
    let Some(token) = &s.token else {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !loopback_host(host) {
            return (
                StatusCode::FORBIDDEN,
                problem(format!(
                    "Host `{host}` is not a loopback address: without a token the API answers only 127.0.0.1, [::1] or localhost"
                )),
            )
                .into_response();
        }
        return next.run(request).await;
    };
    // The console's files, and whether this browser is signed in.
    let path = request.uri().path();
    if request.method() == axum::http::Method::GET
        && (console::is_console(path) || path == "/session")
    {
        return next.run(request).await;
    }
    if session::cookie(request.headers()).is_some_and(|id| s.sessions.valid(id)) {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_at_checked(7)?;
            scheme
                .eq_ignore_ascii_case("bearer ")
                .then_some(rest.trim())
        });
    if given.is_some_and(|g| same(g.as_bytes(), token.as_bytes())) {
        return next.run(request).await;
    }
    // Health for probes (Docker's HEALTHCHECK, Kubernetes), which carry no
    // token: the status alone, not the streams.
    if request.method() == axum::http::Method::GET && matches!(path, "/healthz" | "/livez") {
        let mut request = request;
        request.extensions_mut().insert(Anonymous);
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        problem("a bearer token is required: send `Authorization: Bearer TOKEN`"),
    )
        .into_response()
}

/// Compares in time independent of where the first difference is, and of
/// the lengths (the digests are compared).
fn same(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// `127.0.0.1:9090`, `[::1]:9090`, `localhost:9090` (the port optional).
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A JSON error body: `{"error": "..."}` ([`api::Problem`]).
/// `GET /cluster`: every camera of the cluster with the node holding it,
/// and the live nodes; 404 off a cluster.
async fn cluster_view(State(s): State<AppState>) -> Response {
    let Some(handle) = &s.cluster else {
        return (
            StatusCode::NOT_FOUND,
            problem("this vigil serve is not a node of a cluster (see --cluster)"),
        )
            .into_response();
    };
    match handle.view().await {
        Ok(view) => Json(view).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, problem(e.to_string())).into_response(),
    }
}

pub fn problem(message: impl Into<String>) -> Json<api::Problem> {
    Json(api::Problem {
        error: message.into(),
    })
}

async fn metrics_text(State(s): State<AppState>) -> impl IntoResponse {
    let streams = s.streams.snapshot();
    s.metrics.set_streams(streams.iter().map(|(name, st)| {
        (
            name.as_str(),
            st.state().as_str(),
            st.frames_in.load(std::sync::atomic::Ordering::Relaxed),
            st.frames.load(std::sync::atomic::Ordering::Relaxed),
        )
    }));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

/// A request let through without the token (a health probe): answered
/// without what the token guards.
#[derive(Clone, Copy)]
struct Anonymous;

/// `GET /livez`: 200 while the server answers and a pipeline runs (503
/// while none does), whatever the streams' states: what a liveness probe
/// asks, so that one failed camera does not restart the process.
async fn livez(State(s): State<AppState>) -> impl IntoResponse {
    match s.down.locked().clone() {
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, problem(why)).into_response(),
        None => (StatusCode::OK, "ok\n").into_response(),
    }
}

/// 200 with each stream's state while no stream has failed, 503 otherwise;
/// without the token (a probe), the status alone.
async fn healthz_route(
    state: State<AppState>,
    anonymous: Option<axum::Extension<Anonymous>>,
) -> impl IntoResponse {
    let (code, Json(mut health)) = healthz(state).await;
    if anonymous.is_some() {
        health.streams = Default::default();
    }
    (code, Json(health))
}

async fn healthz(State(s): State<AppState>) -> (StatusCode, Json<api::Health>) {
    if let Some(why) = s.down.locked().clone() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(api::Health {
                reason: Some(why),
                status: "down".into(),
                streams: Default::default(),
            }),
        );
    }
    let streams = s.streams.snapshot();
    let mut failed = false;
    let states = streams
        .iter()
        .map(|(name, st)| {
            let state = st.state();
            failed |= matches!(
                state,
                crate::stream::StreamState::Failed | crate::stream::StreamState::Degraded
            );
            (name.clone(), state.as_str().to_string())
        })
        .collect();
    let code = if failed {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let status = if failed { "degraded" } else { "ok" };
    (
        code,
        Json(api::Health {
            reason: None,
            status: status.into(),
            streams: states,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn healthz_says_when_no_pipeline_runs() {
        let state = AppState::new(Metrics::new(), Default::default());
        let answer = |s: AppState| async move {
            let r = healthz(State(s)).await.into_response();
            let code = r.status();
            let body = axum::body::to_bytes(r.into_body(), 1 << 16)
                .await
                .unwrap_or_default();
            (code, String::from_utf8_lossy(&body).to_string())
        };
        let (code, body) = answer(state.clone()).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        state.set_down(Some("restarting".into()));
        let (code, body) = answer(state.clone()).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body.contains("\"down\"") && body.contains("restarting"),
            "{body}"
        );
        state.set_down(None);
        assert_eq!(answer(state.clone()).await.0, StatusCode::OK);
        // A running stream whose picture gives nothing is degraded.
        let st = Arc::new(crate::stream::StreamStatus::new("cam.mkv"));
        st.set_state(crate::stream::StreamState::Running);
        state.streams.insert("cam".into(), st.clone());
        st.set_degraded(Some("cam.mkv: video: no frame was decoded".into()));
        let (code, body) = answer(state.clone()).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body.contains("\"status\":\"degraded\"") && body.contains("\"cam\":\"degraded\""),
            "{body}"
        );
        st.set_degraded(None);
        let (_, body) = answer(state).await;
        assert!(body.contains("\"cam\":\"running\""), "{body}");
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secret", b"secreT"));
        assert!(!same(b"secret", b"secret2"));
        assert!(!same(b"", b"x"));
    }

    #[test]
    fn only_loopback_hosts_pass_without_a_token() {
        for ok in [
            "127.0.0.1:9090",
            "127.0.0.1",
            "localhost:9090",
            "LOCALHOST",
            "[::1]:9090",
        ] {
            assert!(loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example:9090",
            "10.0.0.1:9090",
            "",
            "[::2]:1",
            "localhost.evil.com",
        ] {
            assert!(!loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn a_token_is_required_off_loopback() {
        let off: SocketAddr = "0.0.0.0:9090".parse().unwrap();
        let on: SocketAddr = "127.0.0.1:9090".parse().unwrap();
        let v6: SocketAddr = "[::1]:9090".parse().unwrap();
        assert!(token_for(off, None).unwrap_err().contains("token_env"));
        assert_eq!(token_for(on, None), Ok(None));
        assert_eq!(token_for(v6, None), Ok(None));
    }
}
