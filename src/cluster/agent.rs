//! A node's part in the cluster: every third of a lease it beats, renews
//! the leases it holds, and works out from the buckets what to take, start,
//! stop and let go. The streams themselves run in the daemon's graph: the
//! agent sends it [`Order`]s and never touches the graph itself.
//!
//! While NATS cannot be reached the node keeps running what it holds (and
//! keeps storing its records); it renews and takes again once NATS is back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::sync::oneshot;

use super::buckets::{Beat, Buckets, Held, Lease, now_ms};
use super::place;
use crate::config::ClusterConfig;
use crate::error::{Error, Result};
use crate::lock::Locked;
use crate::sink::outbox::LiveConfig;

/// What the agent asks of the daemon.
pub enum Order {
    /// Run camera `name` with these source settings; the reply says
    /// whether it started.
    Start {
        name: String,
        spec: Value,
        /// Analyse from this moment on (a camera handed over: it connects
        /// now, and its frames before then are the old holder's to
        /// analyse); none: at once.
        from: Option<SystemTime>,
        /// The camera was not analysed since this: its holder died or was
        /// cut off. The new run records the gap.
        gap: Option<Gap>,
        reply: oneshot::Sender<std::result::Result<(), String>>,
    },
    /// Stop camera `name` (what it read is recorded), at `at` (a camera
    /// handed over) or at once.
    Stop {
        name: String,
        at: Option<SystemTime>,
    },
    /// The cameras the cluster wants now, wherever they run (sent when it
    /// changes).
    Wanted(Vec<String>),
}

/// Where a moved camera's gap began, and on which node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    /// The old holder's last renewal, ms since the Unix epoch.
    pub since_ms: i64,
    pub node: String,
}

fn at_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Rounds a camera that would not start is left alone before it is tried
/// again.
const RETRY_AFTER_ROUNDS: u32 = 10;

/// The buckets once connected, for the API's writes (attach and detach on
/// any node change the wanted set) and reads (the cluster's view).
#[derive(Clone, Default)]
pub struct Handle {
    buckets: Arc<Mutex<Option<Buckets>>>,
    node: Arc<str>,
    /// The view last read, and when.
    recent: Arc<Mutex<Option<(std::time::Instant, super::buckets::View)>>>,
}

impl Handle {
    fn buckets(&self) -> Result<Buckets> {
        self.buckets.locked().clone().ok_or_else(|| Error::Sink {
            sink: "cluster".into(),
            message: "NATS is not reached yet: try again in a moment".into(),
        })
    }

    /// Runs `op` on the buckets, again (up to three tries, half a second
    /// apart) while NATS fails: a server of a NATS cluster going away
    /// leaves the connection reconnecting to another for a moment.
    async fn retried<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: Fn(Buckets) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut tries = 0;
        loop {
            tries += 1;
            match op(self.buckets()?).await {
                Err(e) if tries < 3 => {
                    tracing::debug!("cluster: {e}; trying again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                done => return done,
            }
        }
    }

    /// Wants camera `name` run somewhere in the cluster; refused when a
    /// camera of that name is wanted already.
    ///
    /// A try that failed may have been written all the same, its answer
    /// lost while the connection moved: the same settings found by a later
    /// try are this call's own, not a conflict.
    pub async fn want(&self, name: &str, spec: &Value) -> Result<bool> {
        let tried = AtomicBool::new(false);
        self.retried(|b| {
            let again = tried.swap(true, Ordering::Relaxed);
            async move {
                if b.add(name, spec).await? {
                    return Ok(true);
                }
                Ok(again && b.camera(name).await?.as_ref() == Some(spec))
            }
        })
        .await
    }

    /// No longer wants camera `name`; whether it was wanted (or, after a
    /// try that failed, is no longer: that try may have deleted it).
    pub async fn unwant(&self, name: &str) -> Result<bool> {
        let tried = AtomicBool::new(false);
        self.retried(|b| {
            let again = tried.swap(true, Ordering::Relaxed);
            async move { Ok(b.unwant(name).await? || again) }
        })
        .await
    }

    /// [`view`](Self::view), as read at most `max_age` ago: the console
    /// asks where a camera runs each second for each picture it shows.
    pub async fn view_within(&self, max_age: Duration) -> Result<super::buckets::View> {
        if let Some((at, v)) = self.recent.locked().clone()
            && at.elapsed() < max_age
        {
            return Ok(v);
        }
        let v = self.view().await?;
        *self.recent.locked() = Some((std::time::Instant::now(), v.clone()));
        Ok(v)
    }

    /// Every camera of the cluster with the node that holds it.
    pub async fn view(&self) -> Result<super::buckets::View> {
        let node = self.node.clone();
        self.retried(|b| {
            let node = node.clone();
            async move { b.view(&node).await }
        })
        .await
    }
}

/// The agent of this node.
pub struct Agent {
    config: ClusterConfig,
    /// `[sinks.nats]`, whose credentials and TLS the cluster uses.
    sink: Option<crate::config::NatsConfig>,
    node: String,
    api: Option<String>,
    orders: crossbeam_channel::Sender<Order>,
    handle: Handle,
    /// Cameras this node runs: their lease as written, at which revision.
    held: BTreeMap<String, (Held, u64)>,
    /// Every lease as last read: where a camera's gap starts when its
    /// holder is gone (its lease ran out, so it can no longer be read).
    seen: BTreeMap<String, Lease>,
    /// Cameras that would not start here: the rounds left before another
    /// try, and why (said in the heartbeat, so that the others place them
    /// elsewhere meanwhile).
    failed: BTreeMap<String, (u32, String)>,
    /// Whether the last round reached NATS (to say so once when it changes).
    reached: Option<bool>,
    /// After NATS was lost, free cameras are not taken for three leases,
    /// so that every node can first lease again what it runs.
    settle_until: Option<tokio::time::Instant>,
    /// When this node last moved cameras to itself.
    last_moves: Option<tokio::time::Instant>,
    /// The wanted set last told (`Order::Wanted`).
    told: Option<Vec<String>>,
}

impl Agent {
    /// The agent of node `config`, sending its orders to `orders`; `api`
    /// is where this node's API listens (said in its heartbeat).
    pub fn new(
        config: &ClusterConfig,
        sink: Option<crate::config::NatsConfig>,
        api: Option<String>,
        orders: crossbeam_channel::Sender<Order>,
    ) -> Result<Agent> {
        let node = config.node_name().map_err(Error::Invalid)?;
        Ok(Agent {
            config: config.clone(),
            sink,
            node: node.clone(),
            api,
            orders,
            handle: Handle {
                buckets: Default::default(),
                node: node.as_str().into(),
                recent: Default::default(),
            },
            held: BTreeMap::new(),
            seen: BTreeMap::new(),
            failed: BTreeMap::new(),
            reached: None,
            settle_until: None,
            last_moves: None,
            told: None,
        })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// The API's way to the buckets.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    fn lease(&self) -> Duration {
        self.config.lease.into()
    }

    /// Runs until `stop` is set, a round every third of a lease.
    pub async fn run(mut self, stop: Arc<AtomicBool>) {
        let every = self.lease() / 3;
        let mut buckets = None;
        while !stop.load(Ordering::Relaxed) {
            let started = tokio::time::Instant::now();
            if buckets.is_none() {
                buckets = self.connect().await;
            }
            if let Some(b) = &buckets {
                let went = self.round(b).await;
                self.said(went.as_ref().err());
            }
            tokio::time::sleep_until(started + every).await;
        }
        // Going away on purpose: the cameras are free at once.
        if let Some(b) = &buckets {
            for (camera, (_, rev)) in std::mem::take(&mut self.held) {
                self.stop(&camera, None);
                let _ = b.release(&camera, rev).await;
            }
            let _ = b.nodes.delete(&self.node).await;
        }
    }

    /// Connects to NATS and opens the buckets; none (said) while it cannot.
    /// With `[sinks.nats]` in the pipeline, its credentials and TLS are
    /// used; else those in the URL (a token, or user and password).
    async fn connect(&mut self) -> Option<Buckets> {
        let mut servers = Vec::new();
        let mut login = None;
        for part in self
            .config
            .url
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (bare, userinfo) = crate::sink::nats::split_userinfo(part);
            login = login.or(userinfo);
            servers.push(bare);
        }
        let options = match &self.sink {
            Some(sink) => match sink.build() {
                Ok(t) => t.connect_options().await,
                Err(e) => Err(e),
            },
            None => Ok(match login {
                Some((user, Some(password))) => {
                    async_nats::ConnectOptions::with_user_and_password(user, password)
                }
                Some((token, None)) => async_nats::ConnectOptions::with_token(token),
                None => async_nats::ConnectOptions::new(),
            }),
        };
        let options = match options {
            Ok(o) => o,
            Err(e) => {
                self.said(Some(&Error::Sink {
                    sink: "cluster".into(),
                    message: format!("cannot use the credentials of [sinks.nats]: {e}"),
                }));
                return None;
            }
        }
        .name(format!("vigil-cluster-{}", self.node))
        .connection_timeout(self.lease() / 3)
        .request_timeout(Some(self.lease() / 3))
        .max_reconnects(None)
        // Back within a sixth of a lease of NATS returning (the default
        // waits up to 4 s between tries): a node late to reconnect finds
        // the others taking the cameras it runs.
        .reconnect_delay_callback({
            let most = self.lease() / 6;
            move |attempts| (Duration::from_millis(100) * attempts as u32).min(most)
        });
        // The first connection is not retried by the client: a failure is
        // said with its cause (a certificate not trusted, a refused
        // login…), and the next round tries again.
        let opened = async {
            let client = options
                .connect(servers.clone())
                .await
                .map_err(|e| {
                    let e = e.to_string();
                    let hint = if e.contains("certificate") {
                        "; give [sinks.nats] the ca_file of the authority that signed NATS's certificate"
                    } else {
                        ""
                    };
                    Error::Sink {
                        sink: "cluster".into(),
                        message: format!(
                            "cannot connect to NATS at {}: {e}{hint}",
                            servers.join(",")
                        ),
                    }
                })?;
            let js = async_nats::jetstream::new(client);
            let lease = self.lease();
            Buckets::open(&js, lease, lease, self.config.replicas).await
        };
        match tokio::time::timeout(self.lease(), opened).await {
            Ok(Ok(b)) => {
                *self.handle.buckets.locked() = Some(b.clone());
                Some(b)
            }
            Ok(Err(e)) => {
                self.said(Some(&e));
                None
            }
            Err(_) => {
                self.said(Some(&Error::Sink {
                    sink: "cluster".into(),
                    message: "NATS did not answer within a lease".into(),
                }));
                None
            }
        }
    }

    /// Says when NATS is lost or found again, once each time.
    fn said(&mut self, error: Option<&Error>) {
        let reached = error.is_none();
        if self.reached != Some(reached) {
            match error {
                None => {
                    tracing::info!(node = %self.node, "cluster: NATS reached; {} cameras held", self.held.len())
                }
                Some(e) => {
                    tracing::warn!(node = %self.node, "cluster: {e}; the {} cameras held run on", self.held.len())
                }
            }
        }
        self.reached = Some(reached);
    }

    fn stop(&self, camera: &str, at: Option<SystemTime>) {
        let _ = self.orders.send(Order::Stop {
            name: camera.into(),
            at,
        });
    }

    /// The gap of `camera` before this node runs it: since its last
    /// holder's last renewal, when that was another node (or this one
    /// before a restart).
    fn gap_of(&self, camera: &str) -> Option<Gap> {
        self.seen.get(camera).map(|l| Gap {
            since_ms: l.held.renewed_ms,
            node: l.held.node.clone(),
        })
    }

    /// Asks the daemon to run `camera`; whether it started.
    async fn start(
        &mut self,
        camera: &str,
        spec: &Value,
        from: Option<SystemTime>,
        gap: Option<Gap>,
    ) -> bool {
        let (reply, answer) = oneshot::channel();
        let sent = self.orders.send(Order::Start {
            name: camera.into(),
            spec: spec.clone(),
            from,
            gap,
            reply,
        });
        let why = match (sent, answer.await) {
            (Ok(()), Ok(Ok(()))) => return true,
            (Ok(()), Ok(Err(why))) => why,
            _ => "the pipeline is shutting down".into(),
        };
        self.refuse(camera, why);
        false
    }

    /// Whether `camera` (with settings `spec`) surely cannot start here,
    /// as far as can be known without starting it (its settings, its file,
    /// its CA file); if so it is refused, before its lease is touched.
    fn cannot_start(&mut self, camera: &str, spec: &Value) -> bool {
        let checked = serde_json::from_value::<crate::config::SourceConfig>(spec.clone())
            .map_err(|e| format!("its settings: {e}"))
            .and_then(|s| crate::source::preflight(&s));
        match checked {
            Ok(_) => false,
            Err(why) => {
                self.refuse(camera, why);
                true
            }
        }
    }

    /// Gives up `camera` here for a while, saying why; the heartbeat tells
    /// the others, which place it as if this node were not there.
    fn refuse(&mut self, camera: &str, why: String) {
        tracing::error!(node = %self.node, camera, "cluster: the camera cannot run here ({why}); left to the other nodes for {RETRY_AFTER_ROUNDS} rounds");
        self.failed.insert(camera.into(), (RETRY_AFTER_ROUNDS, why));
    }

    /// Takes `camera` if it is free and starts it.
    async fn take(&mut self, b: &Buckets, camera: &str, spec: &Value) -> Result<()> {
        if self.failed.contains_key(camera) || self.cannot_start(camera, spec) {
            return Ok(());
        }
        if let Some(rev) = b.take(camera, &self.node).await? {
            let gap = self.gap_of(camera);
            if self.start(camera, spec, None, gap).await {
                tracing::info!(node = %self.node, camera, "cluster: took the camera");
                self.held.insert(camera.into(), (Held::by(&self.node), rev));
            } else {
                b.release(camera, rev).await?;
            }
        }
        Ok(())
    }

    /// Keeps the lease of `camera` (held as `held` at `rev`): renewed;
    /// else, if it ran out while NATS was away and no one took it, taken
    /// again; else the camera stops (at the hand-over's moment when a node
    /// it belongs on took it over).
    async fn keep(&mut self, b: &Buckets, camera: &str, held: Held, rev: u64) -> Result<()> {
        // A hand-over is written in the lease until the old holder surely
        // read it; then it is dropped.
        let mut held = held;
        if held
            .at_ms
            .is_some_and(|at| now_ms() > at + lease_ms(self.lease()))
        {
            held.from = None;
            held.at_ms = None;
        }
        if let Some(r) = b.renew(camera, &held, rev).await? {
            self.held.insert(camera.into(), (held, r));
            return Ok(());
        }
        match b.lease(camera).await? {
            None => {
                if let Some(r) = b.take(camera, &self.node).await? {
                    tracing::info!(node = %self.node, camera, "cluster: its lease ran out while NATS was away; leased again");
                    self.held.insert(camera.into(), (Held::by(&self.node), r));
                    return Ok(());
                }
                tracing::warn!(node = %self.node, camera, "cluster: lease lost; stopping the camera");
                self.stop(camera, None);
            }
            Some(l) if l.held.from.as_deref() == Some(self.node.as_str()) => {
                let at = l.held.at_ms.map(at_ms);
                tracing::info!(node = %self.node, camera, to = %l.held.node, "cluster: handed over; stopping the camera at the hand-over");
                self.stop(camera, at);
            }
            Some(l) => {
                tracing::warn!(node = %self.node, camera, holder = %l.held.node, "cluster: lease lost; stopping the camera");
                self.stop(camera, None);
            }
        }
        self.held.remove(camera);
        Ok(())
    }

    async fn round(&mut self, b: &Buckets) -> Result<()> {
        if self.reached == Some(false) {
            // The first try since NATS was lost: other nodes may take a
            // while longer to reconnect, and JetStream to elect its
            // streams' leaders. Free cameras are left alone from now (not
            // from the end of this round, which may already take some).
            self.settle_until = Some(tokio::time::Instant::now() + self.lease() * 3);
        }
        for (left, _) in self.failed.values_mut() {
            *left = left.saturating_sub(1);
        }
        self.failed.retain(|_, (left, _)| *left > 0);
        b.beat(
            &self.node,
            &Beat {
                capacity: self.config.capacity,
                api: self.api.clone(),
                refused: self
                    .failed
                    .iter()
                    .map(|(c, (_, why))| (c.clone(), why.clone()))
                    .collect(),
            },
        )
        .await?;
        // What this node holds, renewed; lost leases stop their camera.
        for (camera, (held, rev)) in self.held.clone() {
            self.keep(b, &camera, held, rev).await?;
        }
        let nodes: Vec<place::Node> = b
            .nodes()
            .await?
            .into_iter()
            .map(|(name, beat)| place::Node {
                name,
                capacity: beat.capacity,
                refused: beat.refused.into_keys().collect(),
            })
            .collect();
        let wanted = b.cameras().await?;
        let leases = b.leases().await?;
        let holders: BTreeMap<String, String> = leases
            .iter()
            .map(|(c, l)| (c.clone(), l.held.node.clone()))
            .collect();
        let names: Vec<String> = wanted.keys().cloned().collect();
        if self.told.as_ref() != Some(&names)
            && self.orders.send(Order::Wanted(names.clone())).is_ok()
        {
            self.told = Some(names.clone());
        }
        let plan = place::plan(&names, &holders, &nodes, self.config.max_moves);
        // No longer wanted: stopped and let go.
        for (camera, node) in &plan.unwanted {
            if *node == self.node {
                self.stop(camera, None);
                if let Some((_, rev)) = self.held.remove(camera) {
                    b.release(camera, rev).await?;
                }
            }
        }
        // Leases naming this node that it does not run (it restarted
        // within a lease): run again, with the gap since its last renewal.
        for (camera, lease) in &leases {
            if lease.held.node == self.node
                && !self.held.contains_key(camera)
                && let Some(spec) = wanted.get(camera)
                && !self.failed.contains_key(camera)
                && !self.cannot_start(camera, spec)
                && let Some(rev) = b
                    .renew(camera, &Held::by(&self.node), lease.revision)
                    .await?
            {
                let gap = Some(Gap {
                    since_ms: lease.held.renewed_ms,
                    node: self.node.clone(),
                });
                if self.start(camera, spec, None, gap).await {
                    self.held
                        .insert(camera.clone(), (Held::by(&self.node), rev));
                } else {
                    b.release(camera, rev).await?;
                }
            }
        }
        let settling = self
            .settle_until
            .is_some_and(|t| tokio::time::Instant::now() < t);
        if !settling {
            self.take_free(b, &plan, &nodes, &wanted).await?;
            self.move_here(b, &plan, &leases, &wanted).await?;
        }
        // Remembered after taking, so that a camera whose lease ran out
        // since the last round still has its holder's last renewal.
        for (camera, lease) in leases {
            self.seen.insert(camera, lease);
        }
        self.seen.retain(|c, _| wanted.contains_key(c));
        Ok(())
    }

    /// Takes the free cameras that belong here, and those of a node that
    /// is gone (free once its lease runs out).
    async fn take_free(
        &mut self,
        b: &Buckets,
        plan: &place::Plan,
        nodes: &[place::Node],
        wanted: &BTreeMap<String, Value>,
    ) -> Result<()> {
        let mine = |camera: &str| place::owner(camera, nodes).is_some_and(|n| n.name == self.node);
        let mut to_take: Vec<String> = plan
            .start
            .iter()
            .filter(|(_, to)| *to == self.node)
            .map(|(c, _)| c.clone())
            .collect();
        to_take.extend(plan.orphaned.iter().filter(|c| mine(c)).cloned());
        for camera in to_take {
            if let Some(spec) = wanted.get(&camera) {
                self.take(b, &camera, spec).await?;
            }
        }
        Ok(())
    }

    /// Moves here the cameras the plan moves here (a few a lease period),
    /// make-before-break: this node takes the lease naming a moment half a
    /// lease ahead and connects at once; the old holder reads the lease at
    /// its next renewal (within a third of a lease) and stops at that
    /// moment, when this node starts analysing.
    async fn move_here(
        &mut self,
        b: &Buckets,
        plan: &place::Plan,
        leases: &BTreeMap<String, Lease>,
        wanted: &BTreeMap<String, Value>,
    ) -> Result<()> {
        let now = tokio::time::Instant::now();
        if self
            .last_moves
            .is_some_and(|t| now.duration_since(t) < self.lease())
        {
            return Ok(());
        }
        let lease_ms = lease_ms(self.lease());
        for (camera, from, to) in &plan.moves {
            if *to != self.node || self.failed.contains_key(camera) {
                continue;
            }
            let (Some(spec), Some(lease)) = (wanted.get(camera), leases.get(camera)) else {
                continue;
            };
            if self.cannot_start(camera, spec) {
                continue;
            }
            self.last_moves = Some(now);
            let at = now_ms() + lease_ms / 2;
            let Some(rev) = b
                .hand_on(camera, from, &self.node, at, lease.revision)
                .await?
            else {
                continue;
            };
            let held = Held::handed(from, &self.node, at);
            if self.start(camera, spec, Some(at_ms(at)), None).await {
                tracing::info!(node = %self.node, camera, from = %from, "cluster: moving the camera here");
                self.held.insert(camera.clone(), (held, rev));
            } else {
                b.release(camera, rev).await?;
            }
        }
        Ok(())
    }
}

fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)
}
