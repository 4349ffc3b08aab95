//! Pipeline files: what to watch, how to cut it into chunks, which encoders to
//! run, where records go. Parsed with serde (`deny_unknown_fields`); every value
//! is checked while parsing, so a mistake is reported with its file, line and
//! column before anything runs.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::time::Duration;

mod cluster;
pub mod labels;
mod models;
mod recording;
mod remote;
mod scene;
mod section;
mod values;
pub use cluster::ClusterConfig;
pub use models::{
    AsrConfig, BatchConfig, DetectorConfig, Gating, InputSide, Precision, Provider, ShapeFilter,
    SoundConfig,
};
pub use recording::{CLIP_KINDS, RecordingConfig, SEGMENTS};
pub use remote::{Delivery, MqttConfig, NatsConfig, SecretRef, SpeakConfig, WebhookConfig};
pub use scene::{
    EVENT_KINDS, Groups, LineConfig, PrivacyConfig, RuleConfig, SNAPSHOT_KINDS, Severity,
    SnapshotConfig, TrackerConfig, ZoneConfig,
};
pub use section::{Section, SectionReader, Sections, read_section};
use values::*;
pub use values::{Bounded, Bounds, Mib, bounds, expand, locate};

/// The built-in pipeline used by `vigil run --source URI…`: every encoder on.
pub const DEFAULT_PIPELINE: &str = include_str!("default_pipeline.toml");

/// A whole pipeline file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// The streams to watch.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    #[serde(default)]
    pub sync: SyncConfig,
    #[serde(default)]
    pub encoders: EncodersConfig,
    #[serde(default)]
    pub fusion: FusionConfig,
    /// Polygon zones on the picture, per stream.
    #[serde(default)]
    pub zones: Vec<ZoneConfig>,
    /// Counting lines on the picture, per stream.
    #[serde(default)]
    pub lines: Vec<LineConfig>,
    /// Rules over the modalities.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// JPEG snapshots of events (off without the table).
    pub snapshots: Option<SnapshotConfig>,
    /// Clips of events, as the source encoded them (off without the table).
    pub recording: Option<RecordingConfig>,
    #[serde(default)]
    pub privacy: PrivacyConfig,
    #[serde(default)]
    pub sinks: SinksConfig,
    /// The disk the output folder is on.
    #[serde(default)]
    pub disk: DiskConfig,
    /// Serves `/metrics` and `/healthz` while running.
    pub server: Option<ServerConfig>,
    /// `vigil serve` as a node of a cluster (cameras spread over the nodes
    /// through NATS JetStream).
    pub cluster: Option<ClusterConfig>,
    #[serde(default)]
    pub runtime: RuntimeConfig,
}

/// ONNX Runtime.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Threads for all model sessions together (default: the machine's
    /// cores); each session gets its share, at least one.
    #[serde(default, deserialize_with = "opt_threads")]
    pub threads: Option<usize>,
}

impl RuntimeConfig {
    /// Intra-op threads for each of `sessions` sessions.
    pub fn per_session(&self, sessions: usize) -> usize {
        let budget = self
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        (budget / sessions.max(1)).max(1)
    }
}

/// One stream.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Names the stream in records and metrics (letters, digits, `-`, `_`, `.`).
    #[serde(deserialize_with = "stream_name")]
    pub name: String,
    /// A file path or any GStreamer URI; `~` and `${VAR:-default}` are
    /// expanded, so a camera's password can come from the environment
    /// (`rtsp://admin:${CAM1_PASSWORD}@cam1/stream`). Messages, logs and
    /// metrics never show a URI's credentials.
    #[serde(deserialize_with = "expanded")]
    pub uri: String,
    /// RTSP: `tcp` (interleaved on the RTSP connection: the default, it
    /// passes NAT and firewalls) or `udp`.
    #[serde(default)]
    pub transport: RtspTransport,
    /// RTSP: the jitter buffer's latency.
    #[serde(default)]
    pub latency: Bounded<bounds::Latency>,
    /// A live source that sent nothing for this long is reconnected; a
    /// file that gave data and then nothing for three times as long, with
    /// no end and no error, fails.
    #[serde(default)]
    pub stall: Bounded<bounds::Stall>,
    /// Longest wait between two reconnection attempts (from 500 ms, doubling).
    #[serde(default)]
    pub retry_max: Bounded<bounds::SourceRetryMax>,
    /// Analysis frames per second, sampled by PTS.
    #[serde(default = "default_fps", deserialize_with = "fps")]
    pub fps: u32,
    /// Analysis frame width; the height follows the picture's aspect unless set.
    #[serde(default = "default_width", deserialize_with = "frame_side")]
    pub width: u32,
    #[serde(default, deserialize_with = "opt_frame_side")]
    pub height: Option<u32>,
    /// Threads each video decoder may use (0: the decoder's choice, one a
    /// core). By default 1 for cameras (live protocols): one thread keeps up
    /// with a camera, for less CPU than several (1200 frames of 1080p H.264:
    /// 3.1 s of CPU against 4.0), and its time is counted as the stream's
    /// (`vigil_cpu_seconds_total`); 0 for files, read as fast as they go.
    #[serde(
        default,
        deserialize_with = "opt_decode_threads",
        skip_serializing_if = "Option::is_none"
    )]
    pub decode_threads: Option<u32>,
    /// https:// and rtsps://: PEM certificates of the authorities to trust
    /// for this source instead of the system's (a camera or server with a
    /// private CA).
    #[serde(
        default,
        deserialize_with = "remote::opt_path",
        skip_serializing_if = "Option::is_none"
    )]
    pub ca_file: Option<PathBuf>,
    /// The side of the detector's input for this stream, instead of
    /// `[encoders.detector] input`: 320 for a near camera costs about 40 %
    /// less detector time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detector_input: Option<InputSide>,
    /// Parts of the picture where change is not motion (a tree in the
    /// wind, a road, a clock): polygons of `[x, y]` corners normalised to
    /// 0–1. Motion events, captions and the detector's gate ignore them.
    #[serde(
        default,
        deserialize_with = "scene::polygons",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub motion_mask: Vec<Vec<[f32; 2]>>,
    /// Parts of the picture where no object is reported: a detection whose
    /// anchor (the bottom centre of its box) is in one of these polygons is
    /// dropped (a poster of a person, cars parked beyond the fence).
    #[serde(
        default,
        deserialize_with = "scene::polygons",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub object_mask: Vec<Vec<[f32; 2]>>,
}

impl SourceConfig {
    /// The stream `name` of `uri`, with every other setting at its default
    /// (the URI taken as written: no expansion, no check).
    pub fn new(name: String, uri: String) -> SourceConfig {
        SourceConfig {
            name,
            uri,
            transport: Default::default(),
            latency: Default::default(),
            stall: Default::default(),
            retry_max: Default::default(),
            fps: default_fps(),
            width: default_width(),
            height: None,
            decode_threads: None,
            ca_file: None,
            detector_input: None,
            motion_mask: Vec::new(),
            object_mask: Vec::new(),
        }
    }
}

/// How RTSP media travels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RtspTransport {
    #[default]
    Tcp,
    Udp,
}

/// The synchroniser.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Chunk length (100 ms to 10 s).
    #[serde(default)]
    pub hop: Bounded<bounds::Hop>,
    /// How far a live branch may lag before a chunk leaves without it.
    #[serde(default = "default_max_skew")]
    pub max_skew: Duration,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            hop: Bounded::default(),
            max_skew: default_max_skew(),
        }
    }
}

/// Which encoders run; a section present means the encoder is on.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EncodersConfig {
    pub motion: Option<MotionConfig>,
    pub loudness: Option<LoudnessConfig>,
    /// Voice activity (Silero VAD; needs its model, `make setup`).
    pub vad: Option<VadConfig>,
    /// Faces (BlazeFace, short range; needs its model, `make setup`).
    pub faces: Option<FacesConfig>,
    /// Objects (NanoDet, COCO-80; needs its model, `make setup`).
    pub detector: Option<DetectorConfig>,
    /// Sound events (YAMNet, AudioSet; needs its model, `make setup`).
    pub sound: Option<SoundConfig>,
    /// Speech to text (Whisper tiny.en) on what `vad` hears.
    pub asr: Option<AsrConfig>,
    /// The sections of encoders declared outside this struct, each read by
    /// its own encoder (see [`PipelineConfig::parse_with`]).
    #[serde(flatten, skip_deserializing)]
    pub more: Sections,
}

impl PipelineConfig {
    /// The object classes (the detector model's) and groups that zones,
    /// lines and rules may name.
    pub fn object_labels(&self) -> std::result::Result<labels::ObjectLabels, String> {
        let classes = match &self.encoders.detector {
            Some(d) => labels::classes_of(&d.model)?,
            None => labels::coco_classes(),
        };
        labels::ObjectLabels::of(classes, &self.fusion.groups)
    }
}

impl EncodersConfig {
    /// With the paths of its files (the face gallery) resolved against the
    /// output folder `out`.
    pub fn resolved(&self, out: &Path) -> EncodersConfig {
        let mut c = self.clone();
        if let Some(i) = c.faces.as_mut().and_then(|f| f.identity.as_mut()) {
            i.gallery = out.join(&i.gallery);
        }
        c
    }
}

/// Faces: `face` events while a face is in the picture.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FacesConfig {
    /// Score at or above which a detection is a face.
    #[serde(default = "default_face_threshold", deserialize_with = "fraction")]
    pub threshold: f32,
    /// Overlap above which two detections are one face.
    #[serde(default = "default_face_iou", deserialize_with = "fraction")]
    pub iou: f32,
    #[serde(default)]
    pub min_duration: Duration,
    #[serde(default = "default_loud_cooldown")]
    pub cooldown: Duration,
    #[serde(default)]
    pub provider: models::Provider,
    #[serde(default)]
    pub batch: BatchConfig,
    /// Who each face is, against the face gallery; off unless the section
    /// is there (faces are biometric data).
    pub identity: Option<IdentityConfig>,
}

/// Face identity: `[encoders.faces.identity]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// The gallery (SQLite, mode 0600), relative to the output folder like
    /// the event store; `vigil faces` enrolls into it.
    #[serde(default = "default_gallery_path")]
    pub gallery: PathBuf,
    /// The L2 distance between unit embeddings (0–2) at or under which a
    /// face is an enrolled one (or an unknown one already kept).
    #[serde(
        default = "default_max_face_distance",
        deserialize_with = "face_distance"
    )]
    pub max_distance: f32,
    /// Unknown faces kept to be named later, the oldest forgotten first;
    /// 0 keeps none.
    #[serde(default = "default_max_unknown")]
    pub max_unknown: usize,
    /// Faces smaller than this many frame pixels across are not
    /// identified (too few pixels to tell people apart).
    #[serde(default = "default_min_face_pixels")]
    pub min_size: u32,
    #[serde(default)]
    pub provider: models::Provider,
    #[serde(default)]
    pub batch: BatchConfig,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            gallery: default_gallery_path(),
            max_distance: default_max_face_distance(),
            max_unknown: default_max_unknown(),
            min_size: default_min_face_pixels(),
            provider: Default::default(),
            batch: BatchConfig::default(),
        }
    }
}

impl FacesConfig {
    pub fn timing(&self) -> EventTiming {
        EventTiming {
            min_duration: self.min_duration,
            cooldown: self.cooldown,
        }
    }
}

impl Default for FacesConfig {
    fn default() -> Self {
        FacesConfig {
            threshold: default_face_threshold(),
            iou: default_face_iou(),
            min_duration: Duration::ZERO,
            cooldown: default_loud_cooldown(),
            provider: Default::default(),
            batch: BatchConfig::default(),
            identity: None,
        }
    }
}

/// Voice activity: `speech` events.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VadConfig {
    /// Speech probability at which speech starts (it ends 0.15 below).
    #[serde(default = "default_vad_threshold", deserialize_with = "fraction")]
    pub threshold: f32,
    /// Speech shorter than this is not an event.
    #[serde(default = "default_min_speech")]
    pub min_speech: Duration,
    /// Pauses shorter than this do not end the event.
    #[serde(default = "default_min_silence")]
    pub min_silence: Duration,
    #[serde(default)]
    pub provider: models::Provider,
    /// A window is a fraction of a millisecond of work: by default the
    /// worker batches what has queued up and never waits for more.
    #[serde(default = "BatchConfig::no_wait")]
    pub batch: BatchConfig,
}

impl VadConfig {
    pub fn timing(&self) -> EventTiming {
        EventTiming {
            min_duration: self.min_speech,
            cooldown: self.min_silence,
        }
    }
}

impl Default for VadConfig {
    fn default() -> Self {
        VadConfig {
            threshold: default_vad_threshold(),
            min_speech: default_min_speech(),
            min_silence: default_min_silence(),
            provider: Default::default(),
            batch: BatchConfig::no_wait(),
        }
    }
}

/// When an event starts and ends (DESIGN.md, "Fusion and records").
#[derive(Clone, Copy, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EventTiming {
    /// How long the condition must hold before the `start` record is made.
    pub min_duration: Duration,
    /// How long it must stop holding before the `end` record is made.
    pub cooldown: Duration,
}

/// Frame differencing on a downscaled grey image.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MotionConfig {
    /// Fraction of the image that must change for a frame to count as motion.
    #[serde(default = "default_motion_threshold", deserialize_with = "fraction")]
    pub threshold: f32,
    /// Grey-level difference (0–255) for a pixel to count as changed.
    #[serde(default = "default_pixel_threshold", deserialize_with = "grey_level")]
    pub pixel_threshold: u8,
    /// Width of the grey image the difference is taken on.
    #[serde(default = "default_motion_width", deserialize_with = "frame_side")]
    pub scale_width: u32,
    #[serde(default)]
    pub min_duration: Duration,
    #[serde(default = "default_motion_cooldown")]
    pub cooldown: Duration,
}

impl MotionConfig {
    pub fn timing(&self) -> EventTiming {
        EventTiming {
            min_duration: self.min_duration,
            cooldown: self.cooldown,
        }
    }
}

impl Default for MotionConfig {
    fn default() -> Self {
        MotionConfig {
            threshold: default_motion_threshold(),
            pixel_threshold: default_pixel_threshold(),
            scale_width: default_motion_width(),
            min_duration: Duration::ZERO,
            cooldown: default_motion_cooldown(),
        }
    }
}

/// RMS and peak level in dBFS.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoudnessConfig {
    /// RMS level (dBFS, over 100 ms) above which sound counts as loud.
    #[serde(default = "default_loud_db", deserialize_with = "dbfs")]
    pub threshold_db: f32,
    #[serde(default)]
    pub min_duration: Duration,
    #[serde(default = "default_loud_cooldown")]
    pub cooldown: Duration,
}

impl LoudnessConfig {
    pub fn timing(&self) -> EventTiming {
        EventTiming {
            min_duration: self.min_duration,
            cooldown: self.cooldown,
        }
    }
}

impl Default for LoudnessConfig {
    fn default() -> Self {
        LoudnessConfig {
            threshold_db: default_loud_db(),
            min_duration: Duration::ZERO,
            cooldown: default_loud_cooldown(),
        }
    }
}

/// Fusion: captions, tracking, object groups.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FusionConfig {
    /// Length of one caption (1 s to 60 s).
    #[serde(default)]
    pub caption_span: Bounded<bounds::CaptionSpan>,
    #[serde(default)]
    pub tracker: TrackerConfig,
    /// Object groups (`vehicle`, `animal`, …) added or redefined: name →
    /// COCO class names.
    #[serde(default)]
    pub groups: Groups,
}

/// Where records go. File paths are relative to the output directory. Without a
/// `[sinks]` table every sink is on; with one, only those it lists.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SinksConfig {
    #[serde(default)]
    pub jsonl: Option<JsonlConfig>,
    #[serde(default)]
    pub store: Option<StoreConfig>,
    #[serde(default)]
    pub webvtt: Option<WebVttConfig>,
    #[serde(default)]
    pub srt: Option<SrtConfig>,
    #[serde(default)]
    pub stdout: Option<StdoutConfig>,
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
    #[serde(default)]
    pub mqtt: Option<MqttConfig>,
    #[serde(default)]
    pub nats: Option<NatsConfig>,
    #[serde(default)]
    pub speak: Option<SpeakConfig>,
}

impl Default for SinksConfig {
    fn default() -> Self {
        SinksConfig {
            jsonl: Some(JsonlConfig::default()),
            store: Some(StoreConfig::default()),
            webvtt: Some(WebVttConfig::default()),
            srt: Some(SrtConfig::default()),
            stdout: Some(StdoutConfig::default()),
            webhook: None,
            mqtt: None,
            nats: None,
            speak: None,
        }
    }
}

/// Free space vigil leaves on the output folder's disk.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DiskConfig {
    /// Below this many MiB free, snapshots stop; below half of it, records
    /// stop too (counted as dropped). Both resume once free space is back
    /// above the mark by an eighth of it (at most 256 MiB). 0: off.
    #[serde(default = "default_min_free_mib", deserialize_with = "min_free_mib")]
    pub min_free_mib: u64,
}

impl Default for DiskConfig {
    fn default() -> Self {
        DiskConfig {
            min_free_mib: default_min_free_mib(),
        }
    }
}

/// Rotation of a log file by size: `events.jsonl` becomes
/// `events.<first record's utc>.jsonl` once it holds `max_size_mib`, and the
/// oldest rotated files beyond `keep` are deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    pub max_bytes: u64,
    pub keep: usize,
}

/// Every record, one JSON object per line, fsynced at least once per chunk.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JsonlConfig {
    #[serde(default = "default_jsonl_path")]
    pub path: PathBuf,
    /// Rotate the file once it holds this many MiB (fractions allowed);
    /// none: never.
    #[serde(
        default,
        deserialize_with = "opt_mib",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_size_mib: Option<Mib>,
    /// Rotated files kept; older ones are deleted.
    #[serde(default = "default_keep", deserialize_with = "keep")]
    pub keep: usize,
}

impl JsonlConfig {
    pub fn rotation(&self) -> Option<Rotation> {
        rotation(self.max_size_mib, self.keep)
    }
}

fn rotation(max: Option<Mib>, keep: usize) -> Option<Rotation> {
    max.map(|m| Rotation {
        max_bytes: m.bytes(),
        keep,
    })
}

impl Default for JsonlConfig {
    fn default() -> Self {
        JsonlConfig {
            path: default_jsonl_path(),
            max_size_mib: None,
            keep: default_keep(),
        }
    }
}

/// Captions as WebVTT cues.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebVttConfig {
    #[serde(default = "default_vtt_path")]
    pub path: PathBuf,
    /// Rotate the file once it holds this many MiB; none: never.
    #[serde(
        default,
        deserialize_with = "opt_mib",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_size_mib: Option<Mib>,
    /// Rotated files kept.
    #[serde(default = "default_keep", deserialize_with = "keep")]
    pub keep: usize,
}

impl WebVttConfig {
    pub fn rotation(&self) -> Option<Rotation> {
        rotation(self.max_size_mib, self.keep)
    }
}

impl Default for WebVttConfig {
    fn default() -> Self {
        WebVttConfig {
            path: default_vtt_path(),
            max_size_mib: None,
            keep: default_keep(),
        }
    }
}

/// Every record in SQLite, for queries and `vigil events`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
    /// Records older than this (by `utc`) are deleted; none: kept.
    #[serde(default)]
    pub max_age: Option<Duration>,
    /// The oldest records are deleted, with the snapshots they name, while
    /// the records and those snapshots take more than this many MiB
    /// (fractions allowed); none: no limit.
    #[serde(
        default,
        deserialize_with = "opt_mib",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_size_mib: Option<Mib>,
    /// Keeps the index of moments (`vigil ask`, `/search`) up to date as
    /// records are committed, on its own thread (default on).
    #[serde(default = "default_true")]
    pub index: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: default_store_path(),
            max_age: None,
            max_size_mib: None,
            index: true,
        }
    }
}

/// Captions as SubRip (`.srt`) cues.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SrtConfig {
    #[serde(default = "default_srt_path")]
    pub path: PathBuf,
    /// Rotate the file once it holds this many MiB; none: never.
    #[serde(
        default,
        deserialize_with = "opt_mib",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_size_mib: Option<Mib>,
    /// Rotated files kept.
    #[serde(default = "default_keep", deserialize_with = "keep")]
    pub keep: usize,
}

impl SrtConfig {
    pub fn rotation(&self) -> Option<Rotation> {
        rotation(self.max_size_mib, self.keep)
    }
}

impl Default for SrtConfig {
    fn default() -> Self {
        SrtConfig {
            path: default_srt_path(),
            max_size_mib: None,
            keep: default_keep(),
        }
    }
}

/// Human-readable lines on standard output.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {
    /// Also print captions (events are always printed).
    #[serde(default)]
    pub captions: bool,
}

/// The HTTP server.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on, e.g. `127.0.0.1:9090`.
    #[serde(deserialize_with = "socket_addr")]
    pub listen: std::net::SocketAddr,
    /// The bearer token every request must carry, from this environment
    /// variable; required when `listen` is not a loopback address.
    #[serde(default)]
    pub token_env: Option<String>,
    /// … or from this file.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

impl ServerConfig {
    pub fn token(&self) -> remote::SecretRef {
        remote::SecretRef {
            env: self.token_env.clone(),
            file: self.token_file.clone(),
        }
    }
}

impl PipelineConfig {
    /// Reads, parses and validates a pipeline file; `sections` reads the
    /// encoder sections no typed field names (see [`Self::parse_with`]).
    pub fn load_with(path: &Path, sections: &[(&str, SectionReader)]) -> Result<PipelineConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse_with(&text, path, sections)
    }

    /// Parses and validates pipeline text with the built-in encoders only;
    /// `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<PipelineConfig> {
        Self::parse_with(text, path, &[])
    }

    /// Parses and validates pipeline text; `path` names it in errors. The
    /// `[encoders.NAME]` sections that `sections` names are read by their
    /// reader into [`EncodersConfig::more`]; an error in one keeps its line
    /// and column like any other.
    pub fn parse_with(
        text: &str,
        path: &Path,
        sections: &[(&str, SectionReader)],
    ) -> Result<PipelineConfig> {
        let fail = |e: toml::de::Error| Error::Config {
            path: path.to_path_buf(),
            message: locate(text, e.span(), e.message()),
        };
        let mut doc = toml::de::DeTable::parse(text).map_err(fail)?;
        let mut taken = Vec::new();
        if let Some(toml::de::DeValue::Table(encoders)) =
            doc.get_mut().get_mut("encoders").map(|v| v.get_mut())
        {
            for (name, read) in sections {
                if let Some(value) = encoders.remove(*name) {
                    taken.push((*name, *read, value));
                }
            }
        }
        let mut config =
            PipelineConfig::deserialize(toml::de::Deserializer::from(doc)).map_err(fail)?;
        for (name, read, value) in taken {
            let section = read(toml::de::ValueDeserializer::from(value)).map_err(fail)?;
            config.encoders.more.insert(name, section);
        }
        // A model of the user's own is found beside the pipeline file.
        if let Some(d) = config.encoders.detector.as_mut()
            && labels::is_own_model(&d.model)
            && Path::new(&d.model).is_relative()
            && let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty())
        {
            d.model = dir.join(&d.model).to_string_lossy().into_owned();
        }
        config.check().map_err(|p| Error::Config {
            path: path.to_path_buf(),
            message: match p.find.locate(text) {
                Some(at) => locate(text, Some(at..at), &p.message),
                None => p.message,
            },
        })?;
        let heard = scene::rule_sounds(&config);
        if let Some(s) = config.encoders.sound.as_mut() {
            s.classes.extend(heard);
        }
        Ok(config)
    }

    /// The built-in default pipeline.
    pub fn builtin() -> PipelineConfig {
        // The text is part of the binary and covered by a unit test.
        let mut config: PipelineConfig =
            toml::from_str(DEFAULT_PIPELINE).unwrap_or_else(|e| panic!("built-in pipeline: {e}"));
        if let Err(p) = config.check() {
            panic!("built-in pipeline: {}", p.message);
        }
        config
    }

    /// Checks what serde cannot see field by field, and parses the rules.
    pub fn validate(&mut self) -> std::result::Result<(), String> {
        self.check().map_err(|p| p.message)
    }

    /// What serde cannot see field by field, with where to look in the
    /// file; each rule's `when` is parsed here, once.
    fn check(&mut self) -> std::result::Result<(), Problem> {
        if self.encoders.asr.is_some() && self.encoders.vad.is_none() {
            return Err(Problem {
                message:
                    "[encoders.asr] transcribes the speech voice activity finds: add [encoders.vad]"
                        .into(),
                find: Find::Key("[encoders.asr]"),
            });
        }
        let mut seen = HashSet::new();
        for s in &self.sources {
            if !seen.insert(s.name.as_str()) {
                return Err(Problem {
                    message: format!(
                        "two sources are named `{}`: stream names must be unique",
                        s.name
                    ),
                    find: Find::Value("name", s.name.clone(), 2),
                });
            }
        }
        let (span, hop) = (self.fusion.caption_span, self.sync.hop);
        if !span.nanos().is_multiple_of(hop.nanos()) {
            return Err(Problem {
                message: format!(
                    "caption_span ({span}) must be a whole number of [sync] hops ({hop})"
                ),
                find: Find::Key("caption_span"),
            });
        }
        let rules = scene::check(self)?;
        for (rule, expr) in self.rules.iter_mut().zip(rules) {
            rule.expr = Some(expr);
        }
        let sinks = &self.sinks;
        if sinks.jsonl.is_none()
            && sinks.store.is_none()
            && sinks.webvtt.is_none()
            && sinks.srt.is_none()
            && sinks.stdout.is_none()
        {
            return Err(Problem {
                message: "[sinks] lists no sink, so nothing would be recorded: add [sinks.jsonl]"
                    .into(),
                find: Find::Key("[sinks]"),
            });
        }
        if let Some(Err(message)) = self.cluster.as_ref().map(ClusterConfig::check) {
            return Err(Problem {
                message: format!("[cluster] {message}"),
                find: Find::Key("[cluster]"),
            });
        }
        let remote = [
            ("[sinks.webhook]", sinks.webhook.as_ref().map(|c| c.check())),
            ("[sinks.mqtt]", sinks.mqtt.as_ref().map(|c| c.check())),
            ("[sinks.nats]", sinks.nats.as_ref().map(|c| c.check())),
            ("[sinks.speak]", sinks.speak.as_ref().map(|c| c.check())),
        ];
        for (table, checked) in remote {
            if let Some(Err(message)) = checked {
                return Err(Problem {
                    message: format!("{table} {message}"),
                    find: Find::Key(table),
                });
            }
            if checked.is_some() && sinks.store.is_none() {
                return Err(Problem {
                    message: format!(
                        "{table} delivers from the event store, which this pipeline turns off: add [sinks.store]"
                    ),
                    find: Find::Key(table),
                });
            }
        }
        let files = [
            ("[sinks.jsonl]", sinks.jsonl.as_ref().map(|s| &s.path)),
            ("[sinks.store]", sinks.store.as_ref().map(|s| &s.path)),
            ("[sinks.webvtt]", sinks.webvtt.as_ref().map(|s| &s.path)),
            ("[sinks.srt]", sinks.srt.as_ref().map(|s| &s.path)),
        ];
        for (i, (a, pa)) in files.iter().enumerate() {
            for (b, pb) in &files[i + 1..] {
                if let (Some(pa), Some(pb)) = (pa, pb)
                    && pa == pb
                {
                    return Err(Problem {
                        message: format!(
                            "{a} and {b} both write `{}`: one would overwrite the other",
                            pa.display()
                        ),
                        find: Find::Key(b),
                    });
                }
            }
        }
        Ok(())
    }

    /// Replaces the sources by the given URIs, named after their file stems.
    pub fn set_sources(&mut self, uris: &[String]) {
        let template = self.sources.first().cloned();
        let mut names = HashSet::new();
        self.sources = uris
            .iter()
            .map(|uri| {
                let base = stem_name(uri);
                let mut name = base.clone();
                let mut n = 2;
                while !names.insert(name.clone()) {
                    name = format!("{base}-{n}");
                    n += 1;
                }
                match &template {
                    // Every other setting of the pipeline's first source.
                    Some(t) => SourceConfig {
                        name,
                        uri: uri.clone(),
                        ..t.clone()
                    },
                    None => SourceConfig::new(name, uri.clone()),
                }
            })
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn parse(text: &str) -> std::result::Result<PipelineConfig, String> {
        PipelineConfig::parse(text, Path::new("p.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn the_shipped_pipelines_are_valid() {
        for (name, text) in [
            ("demo.toml", include_str!("../../pipelines/demo.toml")),
            (
                "surveillance.toml",
                include_str!("../../pipelines/surveillance.toml"),
            ),
        ] {
            let p = PipelineConfig::parse(text, Path::new(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!p.rules.is_empty(), "{name} shows rules");
        }
    }

    #[test]
    fn a_rule_is_parsed_once_when_the_pipeline_is_validated() {
        let text = "[encoders.loudness]\n[sinks.jsonl]\n[[rules]]\nname = \"bang\"\nwhen = \"loud(min_db=-20)\"\n";
        let p = PipelineConfig::parse(text, Path::new("p.toml")).unwrap();
        let expr = p.rules[0].expr.as_ref().expect("parsed");
        assert_eq!(
            expr,
            &crate::rule_language::parse("loud(min_db=-20)").unwrap()
        );
        // Not validated: nothing parsed, and fusion leaves the rule out.
        let raw: PipelineConfig = toml::from_str(text).unwrap();
        assert!(raw.rules[0].expr.is_none());
    }

    #[test]
    fn decode_threads_are_from_0_to_64_and_unset_by_default() {
        let src = |extra: &str| {
            parse(&format!(
                "[[sources]]\nname = \"a\"\nuri = \"rtsp://cam/s\"\n{extra}[encoders.motion]\n[sinks.jsonl]\n"
            ))
            .map(|p| p.sources[0].decode_threads)
        };
        assert_eq!(src(""), Ok(None));
        assert_eq!(src("decode_threads = 0\n"), Ok(Some(0)));
        assert_eq!(src("decode_threads = 4\n"), Ok(Some(4)));
        let e = src("decode_threads = 65\n").unwrap_err();
        assert!(e.contains("expected 0 to 64"), "{e}");
    }

    #[test]
    fn a_detector_input_side_is_a_multiple_of_32_per_stream_or_for_all() {
        let src = |extra: &str, section: &str| {
            parse(&format!(
                "[[sources]]\nname = \"a\"\nuri = \"x.mp4\"\n{extra}[encoders.detector]\n{section}[sinks.jsonl]\n"
            ))
            .map(|p| {
                let d = p.encoders.detector.expect("a detector");
                (d.input.pixels(), p.sources[0].detector_input.map(|s| s.pixels()))
            })
        };
        assert_eq!(src("", ""), Ok((416, None)));
        assert_eq!(src("detector_input = 320\n", ""), Ok((416, Some(320))));
        assert_eq!(src("", "input = 512\n"), Ok((512, None)));
        for bad in ["300", "0", "672", "128"] {
            let e = src(&format!("detector_input = {bad}\n"), "").unwrap_err();
            assert!(
                e.contains(&format!("detector input side {bad}"))
                    && e.contains("multiple of 32 from 160 to 640")
                    && e.contains("4:18"),
                "{e}"
            );
        }
        let e = src("", "input = 100\n").unwrap_err();
        assert!(e.contains("multiple of 32"), "{e}");
    }

    #[test]
    fn masks_are_lists_of_polygons_checked_as_zones_are() {
        let src = |extra: &str| {
            parse(&format!(
                "[[sources]]\nname = \"a\"\nuri = \"x.mp4\"\n{extra}[encoders.motion]\n[sinks.jsonl]\n"
            ))
            .map(|p| (p.sources[0].motion_mask.clone(), p.sources[0].object_mask.clone()))
        };
        assert_eq!(src(""), Ok((vec![], vec![])));
        let (motion, objects) = src(
            "motion_mask = [[[0, 0], [0.5, 0], [0.5, 0.5]], [[0.6, 0.6], [1, 0.6], [1, 1], [0.6, 1]]]\nobject_mask = [[[0, 0], [1, 0], [1, 0.2]]]\n",
        )
        .unwrap();
        assert_eq!((motion.len(), objects.len()), (2, 1));
        assert_eq!(motion[1][2], [1.0, 1.0]);
        let e = src("motion_mask = [[[0, 0], [1, 1]]]\n").unwrap_err();
        assert!(
            e.contains("polygon 1: a polygon needs at least 3 corners"),
            "{e}"
        );
        let e = src("object_mask = [[[0, 0], [1, 0], [1, 1]], [[0, 0], [2, 0], [1, 1]]]\n")
            .unwrap_err();
        assert!(e.contains("polygon 2") && e.contains("4:15"), "{e}");
    }

    #[test]
    fn shape_filters_are_read_per_class_and_checked() {
        let p = parse(
            "[encoders.detector]\nfilters = { person = { min_area = 0.001, max_ratio = 1.0 }, car = { max_area = 0.5 } }\n[sinks.jsonl]\n",
        )
        .unwrap();
        let f = &p.encoders.detector.as_ref().unwrap().filters;
        assert_eq!(f["person"].min_area, Some(0.001));
        assert_eq!(f["person"].max_ratio, Some(1.0));
        assert_eq!(f["person"].max_area, None);
        assert!(f["person"].admits(0.01, 0.4));
        assert!(!f["person"].admits(0.0005, 0.4), "too small");
        assert!(!f["person"].admits(0.01, 1.5), "too wide");
        assert!(f["car"].admits(0.4, 3.0) && !f["car"].admits(0.6, 3.0));
        let e =
            parse("[encoders.detector]\nfilters = { person = { min_area = 2 } }\n").unwrap_err();
        assert!(e.contains("expected 0 to 1"), "{e}");
        let e =
            parse("[encoders.detector]\nfilters = { person = { min_ratio = 0 } }\n").unwrap_err();
        assert!(e.contains("ratio 0 is out of range"), "{e}");
        let e = parse("[encoders.detector]\nfilters = { person = { area = 0.1 } }\n").unwrap_err();
        assert!(e.contains("unknown field `area`"), "{e}");
        let bad = crate::config::ShapeFilter {
            min_area: Some(0.2),
            max_area: Some(0.1),
            ..Default::default()
        };
        let e = bad.check("person").unwrap_err();
        assert!(e.contains("min_area 0.2 is over max_area 0.1"), "{e}");
    }

    #[test]
    fn the_detector_runs_one_frame_at_a_time_unless_told() {
        let batch = |text: &str| parse(text).map(|p| p.encoders.detector.map(|d| d.batch));
        let one = batch("[encoders.detector]\n[sinks.jsonl]\n")
            .unwrap()
            .unwrap();
        assert_eq!(one.max_batch, 1);
        let waits = batch("[encoders.detector]\nbatch = { max_wait = \"5ms\" }\n[sinks.jsonl]\n")
            .unwrap()
            .unwrap();
        assert_eq!(waits.max_batch, 1);
        assert_eq!(waits.max_wait.get(), Duration::from_millis(5));
        let told = batch("[encoders.detector]\nbatch = { max_batch = 4 }\n[sinks.jsonl]\n")
            .unwrap()
            .unwrap();
        assert_eq!(told.max_batch, 4);
        let e =
            batch("[encoders.detector]\nbatch = { max_batch = 0 }\n[sinks.jsonl]\n").unwrap_err();
        assert!(e.contains("expected 1 to 64"), "{e}");
        let e = batch("[encoders.detector]\nbatch = { size = 4 }\n[sinks.jsonl]\n").unwrap_err();
        assert!(e.contains("unknown field `size`"), "{e}");
        // Other models still batch 8 by default.
        let faces = parse("[encoders.faces]\n[sinks.jsonl]\n").unwrap();
        assert_eq!(faces.encoders.faces.map(|f| f.batch.max_batch), Some(8));
    }

    #[test]
    fn builtin_pipeline_parses_and_enables_every_encoder() {
        let mut p = PipelineConfig::builtin();
        assert!(p.encoders.motion.is_some() && p.encoders.loudness.is_some());
        assert!(p.validate().is_ok());
    }

    #[test]
    fn recording_is_off_unless_asked_and_checked_when_it_is() {
        assert!(parse("").expect("empty").recording.is_none());
        let r = parse("[recording]\n")
            .expect("defaults")
            .recording
            .expect("on");
        assert_eq!(
            (r.pre_roll.nanos(), r.post_roll.nanos(), r.max_clip.nanos()),
            (
                5 * crate::time::SECOND,
                5 * crate::time::SECOND,
                300 * crate::time::SECOND
            )
        );
        assert_eq!(r.path, Path::new("clips"));
        assert!(r.kinds.iter().any(|k| k == "object"));
        let e = parse("[recording]\nkinds = [\"objects\"]\n").unwrap_err();
        assert!(
            e.contains("[recording] kinds: `objects` is not a kind of event"),
            "{e}"
        );
        let e = parse("[recording]\npre_roll = \"2m\"\n").unwrap_err();
        assert!(e.contains("2:12") && e.contains("pre_roll"), "{e}");
        let e = parse("[recording]\ncontinuous = true\nsegment = \"1s\"\n").unwrap_err();
        assert!(e.contains("3:11") && e.contains("segment"), "{e}");
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = parse("[[sources]]\nname = \"a\"\nuri = \"x.mp4\"\nfsp = 5\n").unwrap_err();
        assert!(e.starts_with("p.toml: 4:1: unknown field `fsp`"), "{e}");
        let e = parse("[[sources]]\nname = \"a\"\nuri = \"x\"\nfps = 0\n").unwrap_err();
        assert!(e.contains("4:7") && e.contains("expected 1 to 60"), "{e}");
        let e = parse("[sync]\nhop = \"fast\"\n").unwrap_err();
        assert!(e.contains("2:7") && e.contains("invalid duration"), "{e}");
    }

    #[test]
    fn encoder_sections_outside_the_struct_are_read_by_their_reader() {
        #[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
        #[serde(deny_unknown_fields)]
        struct Toy {
            level: u8,
        }
        let readers: &[(&str, SectionReader)] = &[("toy", read_section::<Toy>)];
        let text = "[encoders.motion]\n[encoders.toy]\nlevel = 7\n";
        let p = PipelineConfig::parse_with(text, Path::new("p.toml"), readers).unwrap();
        assert_eq!(p.encoders.more.get::<Toy>("toy"), Some(&Toy { level: 7 }));
        assert!(p.encoders.motion.is_some());
        let json = serde_json::to_value(&p.encoders).unwrap();
        assert_eq!(json["toy"], serde_json::json!({ "level": 7 }));
        // A built-in pipeline serialises as before: no trace of `more`.
        let builtin = serde_json::to_value(&PipelineConfig::builtin().encoders).unwrap();
        assert!(builtin.get("more").is_none() && builtin.get("toy").is_none());

        // Errors inside the section keep their line and column.
        let e = PipelineConfig::parse_with(
            "[encoders.toy]\nlevel = 300\n",
            Path::new("p.toml"),
            readers,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("p.toml: 2:9:"), "{e}");
        let e =
            PipelineConfig::parse_with("[encoders.toy]\nlvl = 1\n", Path::new("p.toml"), readers)
                .unwrap_err()
                .to_string();
        assert!(e.starts_with("p.toml: 2:1: unknown field `lvl`"), "{e}");
        // A section nobody reads is still refused.
        let e = parse("[encoders.toy]\nlevel = 1\n").unwrap_err();
        assert!(
            e.contains("1:11") && e.contains("unknown field `toy`"),
            "{e}"
        );
    }

    #[test]
    fn the_thread_budget_is_shared_by_the_sessions() {
        let p = parse("[runtime]\nthreads = 4\n").unwrap();
        assert_eq!(p.runtime.per_session(2), 2);
        assert_eq!(p.runtime.per_session(8), 1, "at least one each");
        let e = parse("[runtime]\nthreads = 0\n").unwrap_err();
        assert!(e.contains("2:11") && e.contains("expected 1 to 256"), "{e}");
    }

    #[test]
    fn duplicate_stream_names_are_refused() {
        let e = parse("[[sources]]\nname=\"a\"\nuri=\"x\"\n[[sources]]\nname=\"a\"\nuri=\"y\"\n")
            .unwrap_err();
        assert!(e.contains("two sources are named `a`"), "{e}");
    }

    #[test]
    fn sources_from_the_command_line_are_named_after_stems() {
        let mut p = PipelineConfig::builtin();
        p.set_sources(&[
            "/m/cam one.mp4".into(),
            "file:///x/cam one.mkv".into(),
            "rtsp://h/live".into(),
        ]);
        let names: Vec<_> = p.sources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["cam_one", "cam_one-2", "live"]);
    }

    #[test]
    fn durations_and_env_expand() {
        let p = parse("[sync]\nhop = \"500ms\"\n[fusion]\ncaption_span = \"10s\"\n").unwrap();
        assert_eq!(p.sync.hop.get(), Duration::from_millis(500));
        assert_eq!(p.fusion.caption_span.get(), Duration::from_secs(10));
        assert_eq!(
            expand("${VIGIL_NO_SUCH_VAR:-/a}/b").ok().as_deref(),
            Some("/a/b")
        );
    }
}
