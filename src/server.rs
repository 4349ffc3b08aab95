//! HTTP while running: `/metrics` (Prometheus text) and `/healthz`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::error::{Error, Result};
use crate::graph::StreamTable;
use crate::metrics::Metrics;

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    streams: StreamTable,
}

/// Binds `addr` now (so that a taken port is an error before anything runs)
/// and serves on the current tokio runtime until the process ends.
pub async fn bind(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    streams: StreamTable,
) -> Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        Error::io(
            format!("[server] cannot listen on {addr}; is another vigil running?"),
            e,
        )
    })?;
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .with_state(AppState { metrics, streams });
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("the HTTP server stopped: {e}");
        }
    }))
}

async fn metrics_text(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

/// 200 with each stream's state while no stream has failed, 503 otherwise.
async fn healthz(State(s): State<AppState>) -> impl IntoResponse {
    let streams = s.streams.lock().map(|t| t.clone()).unwrap_or_default();
    let mut failed = false;
    let body: serde_json::Map<String, serde_json::Value> = streams
        .iter()
        .map(|(name, st)| {
            let state = st.state();
            failed |= state == crate::stream::StreamState::Failed;
            (name.clone(), serde_json::Value::from(state.as_str()))
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
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "status": status, "streams": body }).to_string(),
    )
}
