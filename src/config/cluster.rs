//! `[cluster]`: this `vigil serve` as one node of a cluster whose cameras
//! are spread over its nodes through NATS JetStream (see
//! `src/cluster/`).

use serde::{Deserialize, Serialize};

use crate::time::Duration;

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The NATS servers, comma-separated (`nats://a:4222,nats://b:4222`).
    pub url: String,
    /// This node's name, unique in the cluster (default: the host name).
    #[serde(default)]
    pub node: Option<String>,
    /// Cameras it can run relative to the other nodes (1–1000).
    #[serde(default = "default_capacity")]
    pub capacity: u32,
    /// How long a camera stays held by a node that stopped renewing (dead,
    /// or cut off): taken over after this. Renewed every third of it.
    #[serde(default = "default_lease")]
    pub lease: Duration,
    /// Copies JetStream keeps of the cluster's buckets (1–5; 3 on a
    /// three-server NATS cluster).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// Cameras moved to the node they belong on (one that joined) per
    /// lease period, cluster-wide; 0: running cameras are never moved.
    #[serde(default = "default_max_moves")]
    pub max_moves: usize,
    /// Where the other nodes reach this node's API (`http://HOST:PORT`),
    /// said in its heartbeat: `vigil streams`, searches and media of the
    /// whole cluster go there. Default: `[server] listen`, or, where that
    /// is every address (`0.0.0.0`), this machine's address on its way to
    /// NATS.
    #[serde(default)]
    pub api: Option<String>,
}

fn default_capacity() -> u32 {
    1
}
fn default_lease() -> Duration {
    Duration::from_secs(15)
}
fn default_replicas() -> usize {
    1
}
fn default_max_moves() -> usize {
    2
}

impl ClusterConfig {
    /// A cluster on `url` with the defaults (`vigil serve --cluster`).
    pub fn on(url: &str) -> ClusterConfig {
        ClusterConfig {
            url: url.into(),
            node: None,
            capacity: default_capacity(),
            lease: default_lease(),
            replicas: default_replicas(),
            max_moves: default_max_moves(),
            api: None,
        }
    }

    pub fn check(&self) -> Result<(), String> {
        if self.url.split(',').all(|u| u.trim().is_empty()) {
            return Err("url: name the NATS servers (`nats://host:4222`)".into());
        }
        if let Some(n) = &self.node {
            valid_node(n)?;
        }
        if !(1..=1000).contains(&self.capacity) {
            return Err(format!("capacity: {} is outside 1–1000", self.capacity));
        }
        if self.lease < Duration::from_secs(3) {
            return Err(format!(
                "lease: {} is too short; 3s at least (it is renewed every third of it)",
                self.lease
            ));
        }
        if self.max_moves > 1000 {
            return Err(format!("max_moves: {} is over 1000", self.max_moves));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(format!("replicas: {} is outside 1–5", self.replicas));
        }
        if let Some(api) = &self.api {
            let ok = url::Url::parse(api).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && !matches!(u.host_str(), Some("0.0.0.0" | "[::]"))
            });
            if !ok {
                return Err(format!(
                    "api: `{api}` is not where others can reach this node: give http://HOST:PORT"
                ));
            }
        }
        Ok(())
    }

    /// This node's name: `node`, else the host's name.
    pub fn node_name(&self) -> Result<String, String> {
        let name = match &self.node {
            Some(n) => n.clone(),
            None => std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .map_err(|e| format!("node: not given, and the host name cannot be read: {e}"))?,
        };
        valid_node(&name)?;
        Ok(name)
    }
}

/// A node's name is a key of the cluster's buckets.
fn valid_node(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "node `{name}`: letters, digits, `-` and `_` only (it is a key in JetStream)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_table_is_checked() {
        let c: ClusterConfig =
            toml::from_str("url = \"nats://a:4222\"\nnode = \"n1\"\nlease = \"6s\"")
                .expect("parsed");
        assert_eq!(c.check(), Ok(()));
        assert_eq!(c.node_name().as_deref(), Ok("n1"));
        assert_eq!(c.lease, Duration::from_secs(6));
        let bad = |toml_text: &str| {
            toml::from_str::<ClusterConfig>(toml_text)
                .map_err(|e| e.to_string())
                .and_then(|c| c.check())
                .expect_err("refused")
        };
        assert!(bad("url = \"\"").contains("url"));
        assert!(bad("url = \"nats://a\"\nnode = \"a.b\"").contains("node"));
        assert!(bad("url = \"nats://a\"\nlease = \"1s\"").contains("lease"));
        assert!(bad("url = \"nats://a\"\ncapacity = 0").contains("capacity"));
        assert!(bad("url = \"nats://a\"\nleases = \"5s\"").contains("unknown field"));
        assert!(
            ClusterConfig::on("nats://a").node_name().is_ok(),
            "the host's name"
        );
    }
}
