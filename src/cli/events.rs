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
    let n = match &out {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut w = std::io::BufWriter::new(file);
            vigil::export::export(&db, &filter, format, &mut w)?
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            vigil::export::export(&db, &filter, format, &mut w)?
        }
    };
    if let Some(path) = out {
        eprintln!("{n} records written to {}", path.display());
    }
    Ok(0)
}
