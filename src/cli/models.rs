//! `vigil models`: what is installed, verifying it, fetching it.

use std::path::Path;

use anyhow::{Context, Result, bail};

use super::args::ModelsAction;

pub fn models(action: ModelsAction) -> Result<i32> {
    use vigil::encode::runtime::{Installed, manifests};
    match action {
        ModelsAction::List => {
            for m in manifests() {
                let state = if m.installed() {
                    "installed"
                } else {
                    "missing"
                };
                println!(
                    "{:<12} {:<8} {:<10} {}=={} ({}) {}",
                    m.name,
                    m.kind,
                    state,
                    m.source.package,
                    m.source.version,
                    m.source.registry,
                    m.file().display()
                );
            }
            Ok(0)
        }
        ModelsAction::Verify => {
            let mut bad = 0;
            for m in manifests() {
                let state = m
                    .verify()
                    .with_context(|| format!("cannot read {}", m.file().display()))?;
                let loads = || {
                    vigil::encode::runtime::session(&m, 1, Default::default())
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                };
                let converted;
                let word = match state {
                    Installed::Verified => "ok",
                    Installed::Converted => match loads() {
                        Ok(()) => {
                            "ok (converted; no fixed sha256: loaded and checked against its manifest)"
                        }
                        Err(e) => {
                            converted = e;
                            &converted
                        }
                    },
                    Installed::Missing => "missing: run `vigil models fetch`",
                    Installed::Corrupt => {
                        "sha256 differs from the manifest: delete it and run `vigil models fetch`"
                    }
                };
                if !matches!(state, Installed::Verified | Installed::Converted)
                    || word.starts_with("model")
                {
                    bad += 1;
                }
                println!("{:<12} {}: {word}", m.name, m.file().display());
            }
            Ok(if bad == 0 { 0 } else { 1 })
        }
        ModelsAction::Fetch => {
            let script = Path::new("models/fetch.sh");
            if !script.is_file() {
                bail!(
                    "models/fetch.sh not found: run `vigil models fetch` from the vigil repository"
                );
            }
            let status = std::process::Command::new("bash")
                .arg(script)
                .status()
                .context("cannot run models/fetch.sh")?;
            Ok(status.code().unwrap_or(1))
        }
    }
}
