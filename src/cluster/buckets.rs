//! The cluster's state in three JetStream key-value buckets:
//!
//! - `vigil_cameras`: the cameras wanted, name → source settings (what
//!   `vigil attach` sends), written by any node;
//! - `vigil_nodes`: each live node's heartbeat, name → its capacity; the
//!   bucket's age limit is the heartbeat's time to live, so a node that
//!   stops beating drops out by itself;
//! - `vigil_leases`: camera → the node running it. A lease is taken by
//!   creating the key (which fails if it is there), renewed by updating it
//!   at the revision last seen (which fails if anyone else wrote it
//!   since), and runs out with the bucket's age limit when its holder stops
//!   renewing. So two nodes never hold one camera, and a dead node's
//!   cameras come free one lease period after its last renewal.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const CAMERAS: &str = "vigil_cameras";
pub const NODES: &str = "vigil_nodes";
pub const LEASES: &str = "vigil_leases";

fn failed(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
    Error::Sink {
        sink: "cluster".into(),
        message: format!("{what}: {e}"),
    }
}

/// A node's heartbeat.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beat {
    pub capacity: u32,
    /// Where its API listens, for `vigil streams` to say.
    #[serde(default)]
    pub api: Option<String>,
    /// Cameras it could not start lately, with why: every node places
    /// them as if it were not there until it tries again.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub refused: BTreeMap<String, String>,
}

/// What a lease says: who holds the camera, since when, and (while a
/// camera is handed from one node to another) who had it and when the
/// hand-over happens.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub node: String,
    /// When the holder last renewed it, ms since the Unix epoch: where the
    /// camera's gap begins if the holder dies.
    #[serde(default)]
    pub renewed_ms: i64,
    /// The node it was handed over from ([`Buckets::hand_on`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// When `from` stops analysing and `node` starts, ms since the Unix
    /// epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<i64>,
}

impl Held {
    /// Held by `node`, renewed now.
    pub fn by(node: &str) -> Held {
        Held {
            node: node.into(),
            renewed_ms: now_ms(),
            from: None,
            at_ms: None,
        }
    }

    /// Handed by `from` to `to`, who analyses from `at_ms` on.
    pub fn handed(from: &str, to: &str, at_ms: i64) -> Held {
        Held {
            from: Some(from.into()),
            at_ms: Some(at_ms),
            ..Held::by(to)
        }
    }

    /// The same, renewed now.
    pub fn renewed(&self) -> Held {
        Held {
            renewed_ms: now_ms(),
            ..self.clone()
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The cluster as a node sees it (`GET /cluster`, `vigil streams`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// The node answering.
    pub node: String,
    /// The live nodes' heartbeats.
    pub nodes: BTreeMap<String, Beat>,
    /// Every camera wanted, with the node that holds it (none while no
    /// node does).
    pub cameras: Vec<CameraView>,
}

/// One camera of [`View`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraView {
    pub name: String,
    pub node: Option<String>,
    /// Where that node's API listens.
    pub api: Option<String>,
    /// The live nodes that could not start it lately: node → why.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub refused: BTreeMap<String, String>,
}

/// A lease as read: what it says, at which revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub held: Held,
    pub revision: u64,
}

/// The three buckets, opened (and made if missing).
#[derive(Clone)]
pub struct Buckets {
    pub cameras: kv::Store,
    pub nodes: kv::Store,
    pub leases: kv::Store,
}

/// Opens the bucket `name`, or makes it: one value a key, entries older
/// than `max_age` (zero: none) dropped.
///
/// The bucket's stream is made here as a key-value bucket's is (ADR-8:
/// `KV_NAME` on `$KV.NAME.>`, rollups allowed, deletes denied, direct
/// gets), not by async-nats's `create_key_value`, which first asks for the
/// account's limits in a form older servers (Debian's 2.9) do not answer.
/// A bucket made by another node with another age limit is used as it is,
/// and said.
async fn bucket(
    js: &jetstream::Context,
    name: &str,
    description: &str,
    max_age: Duration,
    replicas: usize,
) -> Result<kv::Store> {
    let config = jetstream::stream::Config {
        name: format!("KV_{name}"),
        description: Some(description.into()),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age,
        storage: jetstream::stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: replicas.max(1),
        discard: jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    };
    let mut stream = js
        .get_or_create_stream(config)
        .await
        .map_err(|e| failed(format!("cannot open or make the bucket {name}"), e))?;
    if let Ok(info) = stream.info().await
        && info.config.max_age != max_age
    {
        tracing::warn!(
            bucket = %name,
            "its age limit is {:?}, not the {max_age:?} this node was given: the bucket's holds",
            info.config.max_age
        );
    }
    js.get_key_value(name)
        .await
        .map_err(|e| failed(format!("cannot open the bucket {name}"), e))
}

impl Buckets {
    /// Opens the buckets on `js`: leases that run out after `lease`,
    /// heartbeats after `heartbeat_ttl`.
    pub async fn open(
        js: &jetstream::Context,
        lease: Duration,
        heartbeat_ttl: Duration,
        replicas: usize,
    ) -> Result<Buckets> {
        let cameras = bucket(
            js,
            CAMERAS,
            "vigil: the cameras wanted, name → source",
            Duration::ZERO,
            replicas,
        )
        .await?;
        let nodes = bucket(
            js,
            NODES,
            "vigil: live nodes' heartbeats",
            heartbeat_ttl,
            replicas,
        )
        .await?;
        let leases = bucket(
            js,
            LEASES,
            "vigil: which node runs which camera",
            lease,
            replicas,
        )
        .await?;
        Ok(Buckets {
            cameras,
            nodes,
            leases,
        })
    }

    /// Every key of `store` with its value, deleted keys left out.
    async fn all(store: &kv::Store, what: &str) -> Result<BTreeMap<String, kv::Entry>> {
        let mut keys = store
            .keys()
            .await
            .map_err(|e| failed(format!("cannot list the {what}"), e))?;
        let mut names = Vec::new();
        while let Some(k) = keys.next().await {
            names.push(k.map_err(|e| failed(format!("cannot list the {what}"), e))?);
        }
        let mut out = BTreeMap::new();
        for name in names {
            let entry = store
                .entry(name.clone())
                .await
                .map_err(|e| failed(format!("cannot read {what} {name}"), e))?;
            if let Some(e) = entry.filter(|e| e.operation == kv::Operation::Put) {
                out.insert(name, e);
            }
        }
        Ok(out)
    }

    /// The cameras wanted: name → source settings.
    pub async fn cameras(&self) -> Result<BTreeMap<String, serde_json::Value>> {
        let mut out = BTreeMap::new();
        for (name, e) in Self::all(&self.cameras, "cameras").await? {
            match serde_json::from_slice(&e.value) {
                Ok(v) => {
                    out.insert(name, v);
                }
                Err(err) => {
                    tracing::warn!(camera = %name, "its settings in {CAMERAS} are not JSON: {err}; left out")
                }
            }
        }
        Ok(out)
    }

    /// The settings camera `name` is wanted with, if it is.
    pub async fn camera(&self, name: &str) -> Result<Option<serde_json::Value>> {
        let e = self
            .cameras
            .get(name)
            .await
            .map_err(|e| failed(format!("cannot read camera {name}"), e))?;
        Ok(e.and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Wants camera `name` run with `spec` (its source settings).
    pub async fn want(&self, name: &str, spec: &serde_json::Value) -> Result<()> {
        let body = serde_json::to_vec(spec).map_err(|e| failed("cannot write a camera", e))?;
        self.cameras
            .put(name, body.into())
            .await
            .map_err(|e| failed(format!("cannot write camera {name} to {CAMERAS}"), e))?;
        Ok(())
    }

    /// Wants camera `name` run with `spec` unless a camera of that name is
    /// wanted already (then false, and nothing written).
    pub async fn add(&self, name: &str, spec: &serde_json::Value) -> Result<bool> {
        let body = serde_json::to_vec(spec).map_err(|e| failed("cannot write a camera", e))?;
        match self.cameras.create(name, body.into()).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(failed(
                format!("cannot write camera {name} to {CAMERAS}"),
                e,
            )),
        }
    }

    /// No longer wants camera `name`; whether it was wanted.
    pub async fn unwant(&self, name: &str) -> Result<bool> {
        let was = self
            .cameras
            .entry(name)
            .await
            .map_err(|e| failed(format!("cannot read camera {name}"), e))?
            .is_some_and(|e| e.operation == kv::Operation::Put);
        if was {
            self.cameras
                .delete(name)
                .await
                .map_err(|e| failed(format!("cannot delete camera {name} from {CAMERAS}"), e))?;
        }
        Ok(was)
    }

    /// Says `node` is alive, with what it can take.
    pub async fn beat(&self, node: &str, beat: &Beat) -> Result<()> {
        let body = serde_json::to_vec(beat).map_err(|e| failed("cannot write a heartbeat", e))?;
        self.nodes
            .put(node, body.into())
            .await
            .map_err(|e| failed(format!("cannot write the heartbeat of {node}"), e))?;
        Ok(())
    }

    /// The cluster as node `node` sees it.
    pub async fn view(&self, node: &str) -> Result<View> {
        let nodes = self.nodes().await?;
        let leases = self.leases().await?;
        let cameras = self
            .cameras()
            .await?
            .into_keys()
            .map(|name| {
                let holder = leases.get(&name).map(|l| l.held.node.clone());
                let api = holder
                    .as_ref()
                    .and_then(|n| nodes.get(n))
                    .and_then(|b| b.api.clone());
                let refused = nodes
                    .iter()
                    .filter_map(|(n, b)| b.refused.get(&name).map(|why| (n.clone(), why.clone())))
                    .collect();
                CameraView {
                    name,
                    node: holder,
                    api,
                    refused,
                }
            })
            .collect();
        Ok(View {
            node: node.into(),
            nodes,
            cameras,
        })
    }

    /// The live nodes (a heartbeat within its time to live).
    pub async fn nodes(&self) -> Result<BTreeMap<String, Beat>> {
        let mut out = BTreeMap::new();
        for (name, e) in Self::all(&self.nodes, "nodes").await? {
            if let Ok(b) = serde_json::from_slice(&e.value) {
                out.insert(name, b);
            }
        }
        Ok(out)
    }

    /// Every lease held: camera → holder.
    pub async fn leases(&self) -> Result<BTreeMap<String, Lease>> {
        let mut out = BTreeMap::new();
        for (camera, e) in Self::all(&self.leases, "leases").await? {
            if let Ok(held) = serde_json::from_slice::<Held>(&e.value) {
                out.insert(
                    camera,
                    Lease {
                        held,
                        revision: e.revision,
                    },
                );
            }
        }
        Ok(out)
    }

    /// The lease of `camera`, if anyone holds it.
    pub async fn lease(&self, camera: &str) -> Result<Option<Lease>> {
        let entry = self
            .leases
            .entry(camera)
            .await
            .map_err(|e| failed(format!("cannot read the lease of {camera}"), e))?;
        Ok(entry
            .filter(|e| e.operation == kv::Operation::Put)
            .and_then(|e| {
                serde_json::from_slice::<Held>(&e.value)
                    .ok()
                    .map(|held| Lease {
                        held,
                        revision: e.revision,
                    })
            }))
    }

    fn body(held: &Held) -> Result<Vec<u8>> {
        serde_json::to_vec(held).map_err(|e| failed("cannot write a lease", e))
    }

    /// Takes the lease of `camera` for `node` if no one holds it: its
    /// revision, or none when someone does.
    pub async fn take(&self, camera: &str, node: &str) -> Result<Option<u64>> {
        match self
            .leases
            .create(camera, Self::body(&Held::by(node))?.into())
            .await
        {
            Ok(rev) => Ok(Some(rev)),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(failed(format!("cannot take the lease of {camera}"), e)),
        }
    }

    /// Renews the lease of `camera`, held as `held` at `revision`: the new
    /// revision, or none when it was lost (ran out, taken, or handed on).
    pub async fn renew(&self, camera: &str, held: &Held, revision: u64) -> Result<Option<u64>> {
        match self
            .leases
            .update(camera, Self::body(&held.renewed())?.into(), revision)
            .await
        {
            Ok(rev) => Ok(Some(rev)),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(failed(format!("cannot renew the lease of {camera}"), e)),
        }
    }

    /// Hands the lease of `camera`, held by `from` at `revision`, to `to`
    /// from `at_ms` on (written by `to`, which has the camera from now on;
    /// `from` reads it at its next renewal and stops at `at_ms`): the new
    /// revision, or none when it was not held at that revision.
    pub async fn hand_on(
        &self,
        camera: &str,
        from: &str,
        to: &str,
        at_ms: i64,
        revision: u64,
    ) -> Result<Option<u64>> {
        self.renew(camera, &Held::handed(from, to, at_ms), revision)
            .await
    }

    /// Lets the lease of `camera` held at `revision` go at once; whether
    /// it was still held at that revision.
    pub async fn release(&self, camera: &str, revision: u64) -> Result<bool> {
        match self
            .leases
            .delete_expect_revision(camera, Some(revision))
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == kv::DeleteErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(failed(format!("cannot release the lease of {camera}"), e)),
        }
    }
}
