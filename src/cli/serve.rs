//! `vigil serve`: the pipeline's streams and those attached over the API,
//! until SIGTERM or Ctrl-C; SIGHUP reloads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};

use vigil::graph::RunOptions;
use vigil::metrics::Metrics;
use vigil::stream::StreamTable;

use super::args::ServeArgs;
use super::summary::print_summary;

pub fn serve(args: ServeArgs) -> Result<i32> {
    let ServeArgs {
        pipeline,
        listen,
        out,
        cluster,
        node,
    } = args;
    let metrics = Metrics::new();
    let table: StreamTable = Default::default();
    let shutdown = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    on_signals(&runtime, shutdown.clone(), reload.clone());
    let options = vigil::daemon::ServeOptions {
        pipeline,
        listen,
        cluster,
        node,
        run: RunOptions {
            out_dir: out.clone(),
            start_time: None,
            printer: Arc::new(|line: String| {
                use std::io::Write;
                writeln!(std::io::stdout().lock(), "{line}")
            }),
        },
    };
    let report = vigil::daemon::serve(
        &options,
        &metrics,
        &table,
        runtime.handle(),
        vigil::daemon::Signals {
            shutdown: &shutdown,
            reload: &reload,
        },
    )?;
    print_summary(&report, &out, &metrics);
    Ok(if report.sinks.errors.is_empty() { 0 } else { 1 })
}

/// SIGTERM or Ctrl-C stops (finishing what was read; a second aborts),
/// SIGHUP asks for a reload.
fn on_signals(
    runtime: &tokio::runtime::Runtime,
    shutdown: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
) {
    runtime.spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            tracing::error!("cannot install the signal handlers");
            return;
        };
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {
                    reload.store(true, Ordering::Relaxed);
                    continue;
                }
            }
            if shutdown.swap(true, Ordering::Relaxed) {
                std::process::exit(130);
            }
            eprintln!("vigil serve: stopping: finishing what was read (again to abort)");
        }
    });
}
