//! `vigil serve PIPELINE`: runs until stopped, with streams attached and
//! detached over the control API ([`crate::server`]) while the others run.
//!
//! One thread owns the [`Graph`]: the HTTP handlers send it [`Control`]
//! requests and wait for its answer. Streams come from the pipeline file
//! and from the API; those attached through the API are kept in
//! `OUT/attached.json` ([`attached`]) and attached again at the next start.
//! `SIGHUP` reads the pipeline file again: sources added, removed or changed
//! are attached or detached, the others keep running; a change to what the
//! streams share (encoders, fusion, rules, sinks…) restarts every stream
//! with the new pipeline, once its models have loaded.

pub mod attached;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::config::{PipelineConfig, SourceConfig};
use crate::error::{Error, Result};
use crate::graph::{Graph, RunOptions, RunReport};
use crate::lock::Locked;
use crate::metrics::Metrics;
use crate::server::{AppState, Control, ControlError};
use crate::stream::StreamTable;
use attached::Attached;

const NOT_RUNNING: &str = "no pipeline runs: a reload failed and the old pipeline could not start again either; fix the pipeline file and send SIGHUP (systemctl reload vigil)";

/// Where `vigil serve` listens without `--listen` or `[server] listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9090";

/// How to serve.
pub struct ServeOptions {
    pub pipeline: PathBuf,
    /// `--listen`, over the pipeline's `[server] listen`.
    pub listen: Option<SocketAddr>,
    pub run: RunOptions,
}

/// What the caller hands in: the metrics and stream table it shows, and
/// the flags its signal handlers set.
pub struct Signals<'a> {
    pub shutdown: &'a AtomicBool,
    pub reload: &'a AtomicBool,
}

/// Runs until `signals.shutdown` is set; returns how the last graph went.
pub fn serve(
    options: &ServeOptions,
    metrics: &Arc<Metrics>,
    table: &StreamTable,
    runtime: &tokio::runtime::Handle,
    signals: Signals,
) -> Result<RunReport> {
    let config = crate::encode::load_pipeline(&options.pipeline)?;
    let listen = match options.listen {
        Some(a) => a,
        None => match &config.server {
            Some(s) => s.listen,
            None => DEFAULT_LISTEN
                .parse()
                .map_err(|e| Error::Invalid(format!("{DEFAULT_LISTEN}: {e}")))?,
        },
    };
    let token = crate::server::token_for(listen, config.server.as_ref()).map_err(Error::Invalid)?;
    let attached = Attached::load(&options.run.out_dir.join("attached.json"))?;
    let graph = Graph::start(&config, &options.run, metrics, table)?;
    let (control_tx, control_rx) = crossbeam_channel::unbounded();
    let mut state = AppState::new(metrics.clone(), table.clone());
    state.control = Some(control_tx);
    state.token = token;
    *state.store.locked() = graph.store();
    *state.media.locked() = Some(crate::server::media::MediaRoots::of(
        &config,
        &options.run.out_dir,
    ));
    state.set_pipeline(&config);
    let mut daemon = Daemon {
        options,
        metrics,
        table,
        config,
        graph: Some(graph),
        attached,
        state: state.clone(),
    };
    daemon.attach_all();
    runtime.block_on(crate::server::bind(listen, state))?;
    eprintln!(
        "vigil serve: listening on http://{listen} · {} streams",
        daemon.graph().map_or(0, |g| g.sources().count())
    );
    daemon.run(&control_rx, &signals);
    drop(control_rx);
    let graph = daemon.graph.take();
    match graph {
        Some(mut g) => {
            g.stop_all();
            Ok(g.finish())
        }
        None => Err(Error::Invalid(
            "the pipeline could not be restarted after a reload".into(),
        )),
    }
}

struct Daemon<'a> {
    options: &'a ServeOptions,
    metrics: &'a Arc<Metrics>,
    table: &'a StreamTable,
    /// The pipeline as last loaded; its sources are the file's streams.
    config: PipelineConfig,
    graph: Option<Graph>,
    attached: Attached,
    state: AppState,
}

impl Daemon<'_> {
    fn graph(&self) -> Option<&Graph> {
        self.graph.as_ref()
    }

    /// Attaches the pipeline's sources, then the kept ones.
    fn attach_all(&mut self) {
        let Some(graph) = self.graph.as_mut() else {
            return;
        };
        for s in &self.config.sources {
            if let Err(e) = graph.attach(s) {
                tracing::error!(stream = %s.name, "cannot attach: {e}");
            }
        }
        for (name, parsed) in self.attached.sources() {
            match parsed {
                Ok(s) if self.config.sources.iter().any(|f| f.name == s.name) => {
                    tracing::warn!(
                        stream = %name,
                        "an attached stream has the name of a source of the pipeline file: the file's is running; detach and attach it under another name"
                    );
                }
                Ok(s) => {
                    if let Err(e) = graph.attach(&s) {
                        tracing::error!(stream = %name, "cannot attach it again: {e}");
                    }
                }
                Err(e) => tracing::error!(
                    stream = %name,
                    "cannot attach it again: {e}; it stays in attached.json until detached"
                ),
            }
        }
    }

    fn run(&mut self, control: &Receiver<Control>, signals: &Signals) {
        while !signals.shutdown.load(Ordering::Relaxed) {
            if signals.reload.swap(false, Ordering::Relaxed) {
                self.reload();
            }
            match control.recv_timeout(Duration::from_millis(100)) {
                Ok(request) => self.handle(request),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if let Some(g) = self.graph.as_mut() {
                g.poll(Duration::ZERO);
            }
        }
    }

    fn handle(&mut self, request: Control) {
        match request {
            Control::Attach {
                source,
                spec,
                reply,
            } => {
                let _ = reply.send(self.attach(&source, spec));
            }
            Control::Detach { name, reply } => {
                let _ = reply.send(self.detach(&name));
            }
        }
    }

    fn attach(
        &mut self,
        source: &SourceConfig,
        spec: serde_json::Value,
    ) -> std::result::Result<(), ControlError> {
        let Some(graph) = self.graph.as_mut() else {
            return Err(ControlError::Unavailable(NOT_RUNNING.into()));
        };
        if graph.is_attached(&source.name) {
            return Err(ControlError::Conflict(format!(
                "a stream named `{}` is already attached: detach it first, or choose another name",
                source.name
            )));
        }
        // A file that is not there, or not media, is the request's fault:
        // refused now rather than attached, failed and kept.
        crate::source::resolve_uri(&source.uri)
            .and_then(|uri| crate::source::check_input(&uri))
            .map_err(|e| ControlError::Invalid(crate::secret::scrub_url(&e, &source.uri)))?;
        graph
            .attach(source)
            .map_err(|e| ControlError::Invalid(e.to_string()))?;
        if let Err(e) = self.attached.add(spec) {
            graph.detach(&source.name);
            return Err(ControlError::Failed(format!(
                "{e}; the stream was detached again, since it would not come back after a restart"
            )));
        }
        tracing::info!(stream = %source.name, "attached");
        Ok(())
    }

    fn detach(&mut self, name: &str) -> std::result::Result<(), ControlError> {
        let Some(graph) = self.graph.as_mut() else {
            return Err(ControlError::Unavailable(NOT_RUNNING.into()));
        };
        if !graph.detach(name) {
            return Err(ControlError::NotFound(format!(
                "no stream named `{name}` is attached"
            )));
        }
        // A source of the pipeline file stays detached until the next
        // reload or restart, which attach what the file says.
        self.config.sources.retain(|s| s.name != name);
        self.attached.remove(name).map_err(|e| {
            ControlError::Failed(format!(
                "detached, but {e}: it will be attached again at the next start"
            ))
        })?;
        tracing::info!(stream = %name, "detached");
        Ok(())
    }

    /// `SIGHUP`: applies the pipeline file as it is now.
    fn reload(&mut self) {
        let new = match crate::encode::load_pipeline(&self.options.pipeline) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("reload: {e}; the pipeline runs on as it was");
                eprintln!("vigil serve: reload refused: {e}");
                return;
            }
        };
        if json(&new.server) != json(&self.config.server) {
            tracing::warn!("reload: [server] changed; restart vigil serve to apply it");
        }
        if shared(&new) != shared(&self.config) {
            self.restart(new);
            return;
        }
        let Some(graph) = self.graph.as_mut() else {
            return;
        };
        let (mut stopped, mut started) = (0, 0);
        for old in &self.config.sources {
            let same = new.sources.iter().find(|s| s.name == old.name);
            if same.is_none_or(|s| json(s) != json(old)) && graph.detach(&old.name) {
                stopped += 1;
            }
        }
        for s in &new.sources {
            let old = self.config.sources.iter().find(|o| o.name == s.name);
            if old.is_some_and(|o| json(o) == json(s)) && graph.is_attached(&s.name) {
                continue;
            }
            match graph.attach(s) {
                Ok(()) => started += 1,
                Err(e) => tracing::error!(stream = %s.name, "reload: cannot attach: {e}"),
            }
        }
        self.config = new;
        self.state.set_pipeline(&self.config);
        eprintln!(
            "vigil serve: reloaded {}: {stopped} stream(s) stopped, {started} started, the others untouched",
            self.options.pipeline.display()
        );
    }

    /// What the streams share changed: every stream restarts on the new
    /// pipeline. Its models load first; if they cannot, the old one goes on.
    fn restart(&mut self, new: PipelineConfig) {
        if let Err(e) = crate::encode::check_models(&new.encoders) {
            tracing::error!("reload: {e}; the pipeline runs on as it was");
            eprintln!("vigil serve: reload refused: {e}");
            return;
        }
        eprintln!("vigil serve: the shared pipeline changed: restarting every stream on it");
        self.state.set_down(Some(
            "restarting: the pipeline file changed what every stream shares".into(),
        ));
        if let Some(mut old) = self.graph.take() {
            old.stop_all();
            let _ = old.finish();
        }
        self.table.clear();
        let started = Graph::start(&new, &self.options.run, self.metrics, self.table);
        let graph = match started {
            Ok(g) => {
                self.config = new;
                g
            }
            Err(e) => {
                tracing::error!("reload: {e}; going back to the pipeline as it was");
                eprintln!("vigil serve: reload failed: {e}; going back to the pipeline as it was");
                match Graph::start(&self.config, &self.options.run, self.metrics, self.table) {
                    Ok(g) => g,
                    Err(e) => {
                        tracing::error!("cannot restart the old pipeline either: {e}");
                        self.state.set_down(Some(format!("{NOT_RUNNING} ({e})")));
                        return;
                    }
                }
            }
        };
        *self.state.store.locked() = graph.store();
        *self.state.media.locked() = Some(crate::server::media::MediaRoots::of(
            &self.config,
            &self.options.run.out_dir,
        ));
        self.state.set_pipeline(&self.config);
        self.graph = Some(graph);
        self.attach_all();
        self.state.set_down(None);
    }
}

fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// The pipeline without its sources and server: what every stream shares.
fn shared(c: &PipelineConfig) -> serde_json::Value {
    let mut c = c.clone();
    c.sources.clear();
    c.server = None;
    json(&c)
}
