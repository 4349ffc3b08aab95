//! `vigil events`: records out of the event store, filtered, to stdout or
//! a file.

use anyhow::{Context, Result};

use super::args::EventsArgs;

pub fn events(args: EventsArgs) -> Result<i32> {
    let EventsArgs {
        db,
        since,
        until,
        stream,
        kind,
        label,
        format,
        out,
        nats,
        nats_stream,
        nats_prefix,
    } = args;
    let now = chrono::Utc::now();
    let time = |t: Option<String>, flag: &str| {
        t.map(|t| vigil::export::parse_time(&t, now))
            .transpose()
            .map_err(|e| anyhow::anyhow!("--{flag} {e}"))
    };
    let filter = vigil::export::Filter {
        since: time(since, "since")?,
        until: time(until, "until")?,
        stream,
        kind,
        label,
    };
    let nats = nats
        .map(|url| vigil::export::nats::config_for(&url, &nats_stream, &nats_prefix))
        .transpose()?;
    let write = |w: &mut dyn std::io::Write| -> Result<u64> {
        Ok(match &nats {
            Some(config) => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the NATS client")?
                .block_on(vigil::export::nats::export(config, &filter, format, w))?,
            None => vigil::export::export(&db, &filter, format, w)?,
        })
    };
    let n = match &out {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            write(&mut std::io::BufWriter::new(file))?
        }
        None => {
            let stdout = std::io::stdout();
            write(&mut std::io::BufWriter::new(stdout.lock()))?
        }
    };
    if let Some(path) = out {
        eprintln!("{n} records written to {}", path.display());
    }
    Ok(0)
}
