//! `vigil attach`, `vigil detach` and `vigil streams`: requests to the
//! control API of a running `vigil serve`.

use anyhow::{Context, Result};

use vigil::server::api::AttachRequest;
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
    let answer = api_call(args.api.client()?.streams())?;
    println!(
        "{:<14} {:<12} {:>7} {:>7} {:>6} {:>8} {:>9}  last error",
        "stream", "state", "fps in", "fps out", "cpu %", "dropped", "uptime"
    );
    for s in answer {
        println!(
            "{:<14} {:<12} {:>7.1} {:>7.1} {:>6.1} {:>8} {:>8}s  {}",
            s.name,
            s.state,
            s.fps_in,
            s.fps_out,
            s.cpu_percent,
            s.dropped,
            s.uptime_s,
            s.last_error.as_deref().unwrap_or("")
        );
    }
    Ok(0)
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
