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

use crate::cluster::agent::{self, Agent, Order};
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
    /// `--cluster`, over the pipeline's `[cluster] url`.
    pub cluster: Option<String>,
    /// `--node`, over the pipeline's `[cluster] node`.
    pub node: Option<String>,
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
    let mut config = crate::encode::load_pipeline(&options.pipeline)?;
    cluster_flags(&mut config, options)?;
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
    // A node of a cluster: its agent, on the runtime, says what to run.
    let stop_agent = Arc::new(AtomicBool::new(false));
    let cluster = match &config.cluster {
        Some(c) => {
            let (orders, from_agent) = crossbeam_channel::unbounded();
            let agent = Agent::new(
                c,
                config.sinks.nats.clone(),
                Some(crate::cluster::advertised_api(c, listen)),
                orders,
            )?;
            eprintln!(
                "vigil serve: node {} of the cluster on {}",
                agent.node(),
                crate::secret::scrub_url(&c.url, &c.url)
            );
            let handle = agent.handle();
            let node = agent.node().to_string();
            runtime.spawn(agent.run(stop_agent.clone()));
            Some(Cluster {
                handle,
                orders: from_agent,
                held: Default::default(),
                stops: Vec::new(),
                wanted: None,
                node,
            })
        }
        None => None,
    };
    let graph = Graph::start(&config, &options.run, metrics, table)?;
    let (control_tx, control_rx) = crossbeam_channel::unbounded();
    let mut state = AppState::new(metrics.clone(), table.clone());
    state.control = Some(control_tx);
    state.token = token;
    state.cluster = cluster.as_ref().map(|c| c.handle.clone());
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
        cluster,
        runtime: runtime.clone(),
    };
    daemon.attach_all();
    runtime.block_on(crate::server::bind(listen, state))?;
    eprintln!(
        "vigil serve: listening on http://{listen} · {} streams",
        daemon.graph().map_or(0, |g| g.sources().count())
    );
    daemon.run(&control_rx, &signals);
    drop(control_rx);
    stop_agent.store(true, Ordering::Relaxed);
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
    /// Set on a node of a cluster.
    cluster: Option<Cluster>,
    runtime: tokio::runtime::Handle,
}

/// A node's link to its cluster agent.
struct Cluster {
    handle: agent::Handle,
    orders: Receiver<Order>,
    /// The cameras it runs for the cluster (run again after a restart).
    held: std::collections::BTreeMap<String, SourceConfig>,
    /// Cameras handed over to another node, stopped at the hand-over.
    stops: Vec<(std::time::SystemTime, String)>,
    /// Every camera the cluster wants, as last read: what Home Assistant
    /// is told of, whichever node runs them.
    wanted: Option<Vec<String>>,
    /// This node's name.
    node: String,
}

impl Daemon<'_> {
    fn graph(&self) -> Option<&Graph> {
        self.graph.as_ref()
    }

    /// Attaches the pipeline's sources, then the kept ones.
    fn attach_all(&mut self) {
        if let Some(c) = &self.cluster {
            // What it ran for the cluster before a restart runs on.
            if let Some(graph) = self.graph.as_mut() {
                for s in c.held.values() {
                    if let Err(e) = graph.attach(s) {
                        tracing::error!(stream = %s.name, "cannot run it again: {e}");
                    }
                }
                if let (Some(d), Some(names)) = (graph.discovery(), &c.wanted) {
                    d.set(names.iter().cloned());
                }
            }
            // The file's sources are wanted in the cluster (if no camera of
            // that name is), and run wherever they are placed. They go as
            // the file writes them: `${VAR}` unexpanded, so that no secret
            // of this node's environment reaches the bucket.
            let handle = c.handle.clone();
            let sources = match raw_sources(&self.options.pipeline) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("cluster: {e}; the file's sources are not added");
                    Vec::new()
                }
            };
            self.runtime.spawn(async move {
                for (name, spec) in sources {
                    for _ in 0..60 {
                        match handle.want(&name, &spec).await {
                            Ok(_) => break,
                            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
                        }
                    }
                }
            });
            return;
        }
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
        // Every stream wanted is attached now: Home Assistant may forget
        // the others an earlier run announced.
        if let Some(d) = graph.discovery() {
            d.settle();
        }
    }

    fn run(&mut self, control: &Receiver<Control>, signals: &Signals) {
        while !signals.shutdown.load(Ordering::Relaxed) {
            if signals.reload.swap(false, Ordering::Relaxed) {
                self.reload();
            }
            self.follow_agent();
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

    /// Carries out what the cluster agent ordered.
    fn follow_agent(&mut self) {
        let Some(orders) = self.cluster.as_ref().map(|c| c.orders.clone()) else {
            return;
        };
        while let Ok(order) = orders.try_recv() {
            match order {
                Order::Start {
                    name,
                    spec,
                    from,
                    gap,
                    reply,
                } => {
                    let node = self.cluster.as_ref().map(|c| c.node.clone());
                    let handover = crate::graph::Handover {
                        from,
                        gap: gap.zip(node).map(|(g, to_node)| crate::graph::MovedGap {
                            since_ms: g.since_ms,
                            from_node: g.node,
                            to_node,
                        }),
                    };
                    let started = self.start_held(&name, spec, handover);
                    if let Err(e) = &started {
                        tracing::error!(stream = %name, "cannot run the camera here: {e}");
                    }
                    let _ = reply.send(started);
                }
                Order::Stop { name, at: Some(at) } => {
                    if let Some(c) = self.cluster.as_mut() {
                        c.held.remove(&name);
                        c.stops.push((at, name));
                    }
                }
                Order::Stop { name, at: None } => self.stop_held(&name),
                Order::Wanted(names) => {
                    if let Some(d) = self.graph.as_ref().and_then(Graph::discovery) {
                        d.set(names.iter().cloned());
                    }
                    if let Some(c) = self.cluster.as_mut() {
                        c.wanted = Some(names);
                    }
                }
            }
        }
        let now = std::time::SystemTime::now();
        let due: Vec<String> = match self.cluster.as_mut() {
            Some(c) => {
                let (due, later) = std::mem::take(&mut c.stops)
                    .into_iter()
                    .partition(|(at, _)| *at <= now);
                c.stops = later;
                due.into_iter().map(|(_, n)| n).collect()
            }
            None => Vec::new(),
        };
        for name in due {
            self.stop_held(&name);
        }
    }

    /// Stops camera `name`, which the cluster moved or let go.
    fn stop_held(&mut self, name: &str) {
        if let Some(c) = self.cluster.as_mut() {
            c.held.remove(name);
            c.stops.retain(|(_, n)| n != name);
        }
        if let Some(g) = self.graph.as_mut()
            && g.detach(name)
        {
            tracing::info!(stream = %name, "stopped: the cluster moved it or let it go");
        }
    }

    /// Runs camera `name` held by this node's lease.
    fn start_held(
        &mut self,
        name: &str,
        spec: serde_json::Value,
        handover: crate::graph::Handover,
    ) -> std::result::Result<(), String> {
        let source: SourceConfig = serde_json::from_value(spec).map_err(|e| e.to_string())?;
        if source.name != name {
            return Err(format!(
                "its settings name another stream, `{}`",
                source.name
            ));
        }
        let graph = self.graph.as_mut().ok_or_else(|| NOT_RUNNING.to_string())?;
        if !graph.is_attached(name) {
            graph
                .attach_with(&source, handover)
                .map_err(|e| e.to_string())?;
            // It cannot run here (its file, its CA file…): let go, for
            // the cluster to place it on another node. Its failure is
            // recorded.
            if let Some(why) = graph.failure(name) {
                graph.detach(name);
                return Err(why);
            }
        }
        // Kept either way, to run again after a restart of the graph; a
        // stop due for it (handed away, then back) is off.
        if let Some(c) = self.cluster.as_mut() {
            c.held.insert(name.to_string(), source);
            c.stops.retain(|(_, n)| n != name);
        }
        tracing::info!(stream = %name, "running it for the cluster");
        Ok(())
    }

    fn handle(&mut self, request: Control) {
        if let Some(c) = &self.cluster {
            // On a node, attach and detach change the cluster's wanted set.
            let handle = c.handle.clone();
            match request {
                Control::Attach {
                    source,
                    spec,
                    reply,
                } => {
                    self.runtime.spawn(async move {
                        let r = match handle.want(&source.name, &spec).await {
                            Ok(true) => Ok(()),
                            Ok(false) => Err(ControlError::Conflict(format!(
                                "a camera named `{}` is in the cluster already: detach it first, or choose another name",
                                source.name
                            ))),
                            Err(e) => Err(ControlError::Unavailable(e.to_string())),
                        };
                        let _ = reply.send(r);
                    });
                }
                Control::Detach { name, reply } => {
                    self.runtime.spawn(async move {
                        let r = match handle.unwant(&name).await {
                            Ok(true) => Ok(()),
                            Ok(false) => Err(ControlError::NotFound(format!(
                                "no camera named `{name}` is in the cluster"
                            ))),
                            Err(e) => Err(ControlError::Unavailable(e.to_string())),
                        };
                        let _ = reply.send(r);
                    });
                }
            }
            return;
        }
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
        if let Some(d) = graph.discovery() {
            d.withdraw(name);
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
        let loaded = crate::encode::load_pipeline(&self.options.pipeline).and_then(|mut c| {
            cluster_flags(&mut c, self.options)?;
            Ok(c)
        });
        let new = match loaded {
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
        if json(&new.cluster) != json(&self.config.cluster) {
            tracing::warn!("reload: [cluster] changed; restart vigil serve to apply it");
        }
        if shared(&new) != shared(&self.config) {
            self.restart(new);
            return;
        }
        if self.cluster.is_some() {
            // A node runs what the cluster places on it: the file's new
            // sources are wanted in the cluster, and that is all.
            self.config = new;
            self.state.set_pipeline(&self.config);
            self.attach_all();
            eprintln!(
                "vigil serve: reloaded {}: its sources are wanted in the cluster",
                self.options.pipeline.display()
            );
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
            if let (None, Some(d)) = (same, graph.discovery()) {
                d.withdraw(&old.name);
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

/// The `[[sources]]` of the pipeline file at `path` as written (names and
/// tables, nothing expanded).
fn raw_sources(
    path: &std::path::Path,
) -> std::result::Result<Vec<(String, serde_json::Value)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let Some(toml::Value::Array(sources)) = table.get("sources") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for s in sources {
        let spec = serde_json::to_value(s).map_err(|e| e.to_string())?;
        if let Some(name) = spec.get("name").and_then(serde_json::Value::as_str) {
            out.push((name.to_string(), spec));
        }
    }
    Ok(out)
}

/// `--cluster` and `--node` over the pipeline's `[cluster]`.
fn cluster_flags(config: &mut PipelineConfig, options: &ServeOptions) -> Result<()> {
    if let Some(url) = &options.cluster {
        match config.cluster.as_mut() {
            Some(c) => c.url = url.clone(),
            None => config.cluster = Some(crate::config::ClusterConfig::on(url)),
        }
    }
    if let Some(node) = &options.node {
        let Some(c) = config.cluster.as_mut() else {
            return Err(Error::Invalid(
                "--node names this node in a cluster: give --cluster (or [cluster]) too".into(),
            ));
        };
        c.node = Some(node.clone());
    }
    if let Some(c) = &config.cluster {
        c.check()
            .and_then(|()| c.node_name().map(|_| ()))
            .map_err(|e| Error::Invalid(format!("cluster: {e}")))?;
    }
    Ok(())
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
