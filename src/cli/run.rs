//! `vigil run`: a pipeline over its sources, to the end of the files or
//! until Ctrl-C, with progress and a summary.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};

use vigil::config::{PipelineConfig, ServerConfig};
use vigil::graph::RunOptions;
use vigil::lock::Locked;
use vigil::metrics::Metrics;
use vigil::stream::StreamTable;

use super::args::RunArgs;
use super::pipeline::load_pipeline;
use super::progress::Progress;
use super::summary::{print_failures, print_summary};

pub fn run(args: RunArgs) -> Result<i32> {
    let RunArgs {
        pipeline,
        sources,
        out,
        start_time,
    } = args;
    let config = load_pipeline(pipeline, &sources)?;
    let start_time = start_time
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(&t)
                .ok()
                .and_then(|d| d.timestamp_nanos_opt())
                .with_context(|| {
                    format!("--start-time {t}: expected RFC 3339, e.g. 2026-11-28T15:00:00Z")
                })
        })
        .transpose()?;

    let metrics = Metrics::new();
    let table: StreamTable = Default::default();
    let shutdown = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    if let Some(server) = &config.server {
        runtime.block_on(vigil::server::bind(
            server.listen,
            api_state(&config, server, &out, &metrics, &table)?,
        ))?;
    }
    stop_on_ctrl_c(&runtime, shutdown.clone());

    let progress = Progress::new();
    let options = RunOptions {
        out_dir: out.clone(),
        start_time,
        printer: progress.printer(),
    };
    let report = vigil::graph::run(&config, &options, &metrics, &table, &shutdown, &mut |t| {
        progress.tick(t)
    })?;
    progress.clear();
    print_summary(&report, &out, &metrics);
    Ok(print_failures(&report))
}

/// What the HTTP server of a run serves: its metrics, its streams, its store.
fn api_state(
    config: &PipelineConfig,
    server: &ServerConfig,
    out: &Path,
    metrics: &Arc<Metrics>,
    table: &StreamTable,
) -> Result<vigil::server::AppState> {
    let mut state = vigil::server::AppState::new(metrics.clone(), table.clone());
    state.token =
        vigil::server::token_for(server.listen, Some(server)).map_err(anyhow::Error::msg)?;
    *state.store.locked() = config
        .sinks
        .store
        .as_ref()
        .map(|c| vigil::sink::store::StoreHandle {
            path: out.join(&c.path),
            committed: None,
        });
    *state.media.locked() = Some(vigil::server::media::MediaRoots::of(config, out));
    state.set_pipeline(config);
    Ok(state)
}

/// The first Ctrl-C lets the run finish what was read; the second aborts.
fn stop_on_ctrl_c(runtime: &tokio::runtime::Runtime, shutdown: Arc<AtomicBool>) {
    runtime.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("vigil: stopping: finishing what was read (Ctrl-C again to abort)");
            shutdown.store(true, Ordering::Relaxed);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
}
