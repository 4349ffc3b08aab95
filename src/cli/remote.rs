//! `vigil attach`, `vigil detach` and `vigil streams`: requests to the
//! control API of a running `vigil serve`.

use anyhow::{Context, Result};

use vigil::server::api::{AttachRequest, StreamEntry};
use vigil::server::client::Client;

use super::args::{ApiArgs, AttachArgs, DetachArgs, StreamsArgs};

impl ApiArgs {
    fn client(&self) -> Result<Client> {
        client(&self.server, self.token_file.as_deref())
    }
}

/// A client of the server at `server`, with the token of `token_file`
/// (else of VIGIL_TOKEN).
pub fn client(server: &str, token_file: Option<&std::path::Path>) -> Result<Client> {
    let token = match token_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the token file {}", f.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
        ),
        None => std::env::var("VIGIL_TOKEN").ok().filter(|t| !t.is_empty()),
    };
    Client::new(server, token).map_err(anyhow::Error::msg)
}

pub fn attach(args: AttachArgs) -> Result<i32> {
    let AttachArgs {
        uri,
        name,
        fps,
        transport,
        set,
        api,
    } = args;
    // A local path means this machine's file: made absolute here,
    // since the server may run elsewhere (under systemd, in /).
    let uri = if uri.contains("://") {
        uri
    } else {
        std::path::absolute(&uri)
            .with_context(|| format!("cannot make {uri} an absolute path"))?
            .display()
            .to_string()
    };
    let mut spec = AttachRequest::new(name, uri);
    if let Some(fps) = fps {
        spec.set("fps", fps.into());
    }
    if let Some(t) = transport {
        spec.set("transport", t.into());
    }
    for kv in set {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--set {kv}: expected KEY=VALUE"))?;
        let value = if k == "ca_file" {
            // A file of this machine, like a local path for the uri.
            std::path::absolute(v)
                .with_context(|| format!("cannot make {v} an absolute path"))?
                .display()
                .to_string()
                .into()
        } else {
            // Numbers and booleans as such, anything else as text.
            serde_json::from_str(v).unwrap_or_else(|_| v.into())
        };
        spec.set(k, value);
    }
    let answer = api_call(api.client()?.attach(&spec))?;
    println!("attached {}", answer.attached);
    Ok(0)
}

pub fn detach(args: DetachArgs) -> Result<i32> {
    let DetachArgs { name, api } = args;
    api_call(api.client()?.detach(&name))?;
    println!("detached {name}");
    Ok(0)
}

pub fn streams(args: StreamsArgs) -> Result<i32> {
    let client = args.api.client()?;
    let (local, cluster) = api_call(async {
        let local = client.streams().await?;
        let cluster = client.cluster().await?;
        Ok((local, cluster))
    })?;
    let Some(view) = cluster else {
        print_streams(&local);
        return Ok(0);
    };
    // A node of a cluster: every camera, each from the node holding it.
    let mut on: std::collections::BTreeMap<String, Vec<StreamEntry>> = Default::default();
    on.insert(view.node.clone(), local);
    for (node, beat) in &view.nodes {
        if on.contains_key(node) {
            continue;
        }
        let Some(api) = &beat.api else { continue };
        let entries = client
            .at(&vigil::cluster::api_url(api))
            .map_err(anyhow::Error::msg)
            .and_then(|c| api_call(async move { c.streams().await }));
        match entries {
            Ok(e) => {
                on.insert(node.clone(), e);
            }
            Err(e) => eprintln!("node {node} at {api}: {e}"),
        }
    }
    let mut rows = Vec::new();
    for camera in &view.cameras {
        let node = camera.node.clone().unwrap_or_else(|| "-".into());
        let entry = on
            .get(&node)
            .and_then(|es| es.iter().find(|e| e.name == camera.name))
            .cloned()
            .unwrap_or_else(|| StreamEntry {
                name: camera.name.clone(),
                state: if camera.node.is_some() {
                    "?"
                } else if camera.refused.is_empty() {
                    "unplaced"
                } else {
                    "refused"
                }
                .into(),
                ..Default::default()
            });
        // Nodes that could not start it lately, and why.
        let refused: Vec<String> = camera
            .refused
            .iter()
            .map(|(node, why)| format!("{node}: {why}"))
            .collect();
        let entry = if refused.is_empty() || entry.reason.is_some() {
            entry
        } else {
            StreamEntry {
                reason: Some(format!("refused by {}", refused.join("; "))),
                ..entry
            }
        };
        rows.push((node, entry));
    }
    println!(
        "{} nodes, {} cameras (asked node {})",
        view.nodes.len(),
        view.cameras.len(),
        view.node
    );
    print_rows(&rows);
    Ok(0)
}

fn print_streams(entries: &[StreamEntry]) {
    let rows: Vec<(String, StreamEntry)> =
        entries.iter().map(|e| (String::new(), e.clone())).collect();
    print_rows(&rows);
}

/// The table of `vigil streams`; a node column when any row has a node.
fn print_rows(rows: &[(String, StreamEntry)]) {
    let nodes = rows.iter().any(|(n, _)| !n.is_empty());
    let node_col = |n: &str| {
        if nodes {
            format!("{n:<10} ")
        } else {
            String::new()
        }
    };
    println!(
        "{:<14} {}{:<12} {:>7} {:>7} {:>6} {:>8} {:>9}  why / last error",
        "stream",
        node_col("node"),
        "state",
        "fps in",
        "fps out",
        "cpu %",
        "dropped",
        "uptime"
    );
    for (node, s) in rows {
        println!(
            "{:<14} {}{:<12} {:>7.1} {:>7.1} {:>6.1} {:>8} {:>8}s  {}",
            s.name,
            node_col(node),
            s.state,
            s.fps_in,
            s.fps_out,
            s.cpu_percent,
            s.dropped,
            s.uptime_s,
            s.reason
                .as_deref()
                .or(s.last_error.as_deref())
                .unwrap_or("")
        );
    }
}

/// Runs a request to the control API.
pub fn api_call<T>(
    f: impl std::future::Future<Output = std::result::Result<T, String>>,
) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(f)
        .map_err(anyhow::Error::msg)
}
