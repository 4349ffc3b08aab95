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
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;

use super::buckets::{Beat, Buckets};
use super::place;
use crate::config::ClusterConfig;
use crate::error::{Error, Result};
use crate::lock::Locked;

/// What the agent asks of the daemon.
pub enum Order {
    /// Run camera `name` with these source settings; the reply says
    /// whether it started.
    Start {
        name: String,
        spec: Value,
        reply: oneshot::Sender<std::result::Result<(), String>>,
    },
    /// Stop camera `name` (what it read is recorded).
    Stop { name: String },
}

/// Rounds a camera that would not start is left alone before it is tried
/// again.
const RETRY_AFTER_ROUNDS: u32 = 10;

/// The buckets once connected, for the API's writes (attach and detach on
/// any node change the wanted set).
#[derive(Clone, Default)]
pub struct Handle(Arc<Mutex<Option<Buckets>>>);

impl Handle {
    fn buckets(&self) -> Result<Buckets> {
        self.0.locked().clone().ok_or_else(|| Error::Sink {
            sink: "cluster".into(),
            message: "NATS is not reached yet: try again in a moment".into(),
        })
    }

    /// Wants camera `name` run somewhere in the cluster; refused when a
    /// camera of that name is wanted already.
    pub async fn want(&self, name: &str, spec: &Value) -> Result<bool> {
        self.buckets()?.add(name, spec).await
    }

    /// No longer wants camera `name`; whether it was wanted.
    pub async fn unwant(&self, name: &str) -> Result<bool> {
        self.buckets()?.unwant(name).await
    }
}

/// The agent of this node.
pub struct Agent {
    config: ClusterConfig,
    node: String,
    api: Option<String>,
    orders: crossbeam_channel::Sender<Order>,
    handle: Handle,
    /// Cameras this node runs, with their lease's revision.
    held: BTreeMap<String, u64>,
    /// Cameras that would not start, and the rounds left before another try.
    failed: BTreeMap<String, u32>,
    /// Whether the last round reached NATS (to say so once when it changes).
    reached: Option<bool>,
}

impl Agent {
    /// The agent of node `config`, sending its orders to `orders`; `api`
    /// is where this node's API listens (said in its heartbeat).
    pub fn new(
        config: &ClusterConfig,
        api: Option<String>,
        orders: crossbeam_channel::Sender<Order>,
    ) -> Result<Agent> {
        let node = config.node_name().map_err(Error::Invalid)?;
        Ok(Agent {
            config: config.clone(),
            node,
            api,
            orders,
            handle: Handle::default(),
            held: BTreeMap::new(),
            failed: BTreeMap::new(),
            reached: None,
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
            for (camera, rev) in std::mem::take(&mut self.held) {
                self.stop(&camera);
                let _ = b.release(&camera, rev).await;
            }
            let _ = b.nodes.delete(&self.node).await;
        }
    }

    /// Connects to NATS and opens the buckets; none (said) while it cannot.
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
        let options = match login {
            Some((user, Some(password))) => {
                async_nats::ConnectOptions::with_user_and_password(user, password)
            }
            Some((token, None)) => async_nats::ConnectOptions::with_token(token),
            None => async_nats::ConnectOptions::new(),
        }
        .name(format!("vigil-cluster-{}", self.node))
        .connection_timeout(self.lease() / 3)
        .request_timeout(Some(self.lease() / 3))
        .retry_on_initial_connect();
        let opened = async {
            let client = options
                .connect(servers.clone())
                .await
                .map_err(|e| Error::Sink {
                    sink: "cluster".into(),
                    message: format!("cannot connect to NATS at {}: {e}", servers.join(",")),
                })?;
            let js = async_nats::jetstream::new(client);
            let lease = self.lease();
            Buckets::open(&js, lease, lease, self.config.replicas).await
        };
        match tokio::time::timeout(self.lease(), opened).await {
            Ok(Ok(b)) => {
                *self.handle.0.locked() = Some(b.clone());
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

    fn stop(&self, camera: &str) {
        let _ = self.orders.send(Order::Stop {
            name: camera.into(),
        });
    }

    /// Asks the daemon to run `camera`; whether it started.
    async fn start(&mut self, camera: &str, spec: &Value) -> bool {
        let (reply, answer) = oneshot::channel();
        let sent = self.orders.send(Order::Start {
            name: camera.into(),
            spec: spec.clone(),
            reply,
        });
        let started = sent.is_ok() && matches!(answer.await, Ok(Ok(())));
        if !started {
            tracing::error!(node = %self.node, camera, "cluster: the camera would not start here; let go");
            self.failed.insert(camera.into(), RETRY_AFTER_ROUNDS);
        }
        started
    }

    /// Takes `camera` if it is free and starts it.
    async fn take(&mut self, b: &Buckets, camera: &str, spec: &Value) -> Result<()> {
        if self.failed.contains_key(camera) {
            return Ok(());
        }
        if let Some(rev) = b.take(camera, &self.node).await? {
            if self.start(camera, spec).await {
                tracing::info!(node = %self.node, camera, "cluster: took the camera");
                self.held.insert(camera.into(), rev);
            } else {
                b.release(camera, rev).await?;
            }
        }
        Ok(())
    }

    async fn round(&mut self, b: &Buckets) -> Result<()> {
        for left in self.failed.values_mut() {
            *left = left.saturating_sub(1);
        }
        self.failed.retain(|_, left| *left > 0);
        b.beat(
            &self.node,
            &Beat {
                capacity: self.config.capacity,
                api: self.api.clone(),
            },
        )
        .await?;
        // What this node holds, renewed; lost leases stop their camera.
        for (camera, rev) in self.held.clone() {
            match b.renew(&camera, &self.node, rev).await? {
                Some(r) => {
                    self.held.insert(camera, r);
                }
                None => {
                    tracing::warn!(node = %self.node, camera, "cluster: lease lost; stopping the camera");
                    self.stop(&camera);
                    self.held.remove(&camera);
                }
            }
        }
        let nodes: Vec<place::Node> = b
            .nodes()
            .await?
            .into_iter()
            .map(|(name, beat)| place::Node {
                name,
                capacity: beat.capacity,
            })
            .collect();
        let wanted = b.cameras().await?;
        let leases = b.leases().await?;
        let holders: BTreeMap<String, String> = leases
            .iter()
            .map(|(c, l)| (c.clone(), l.node.clone()))
            .collect();
        let names: Vec<String> = wanted.keys().cloned().collect();
        let plan = place::plan(&names, &holders, &nodes, 0);
        // No longer wanted: stopped and let go.
        for (camera, node) in &plan.unwanted {
            if *node == self.node {
                self.stop(camera);
                if let Some(rev) = self.held.remove(camera) {
                    b.release(camera, rev).await?;
                }
            }
        }
        // Leases naming this node that it does not run (it restarted
        // within a lease): run again.
        for (camera, lease) in &leases {
            if lease.node == self.node
                && !self.held.contains_key(camera)
                && let Some(spec) = wanted.get(camera)
                && let Some(rev) = b.renew(camera, &self.node, lease.revision).await?
            {
                if self.start(camera, spec).await {
                    self.held.insert(camera.clone(), rev);
                } else {
                    b.release(camera, rev).await?;
                }
            }
        }
        // Free cameras that belong here, and those of a node that is gone
        // (free once its lease runs out).
        let mine = |camera: &str| place::owner(camera, &nodes).is_some_and(|n| n.name == self.node);
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
}
