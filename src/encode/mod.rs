//! Encoders: chunks in, features out, one per modality.
//!
//! An encoder is stateful per stream (motion keeps the previous frame, loudness
//! carries a partial window across chunks). Model-free encoders need no
//! weights; neural ones are built from a manifest in `models/`.

pub mod asr;
pub mod batch;
pub mod brightness;
pub mod detector;
pub mod face_id;
pub mod faces;
pub mod gate;
pub mod kind;
pub mod letterbox;
pub mod logmel;
pub mod loudness;
pub mod motion;
pub mod runtime;
pub mod sound;
pub mod text;
pub mod vad;
pub mod whisper;
pub mod whisper_mel;

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;

use crate::config::{EncodersConfig, EventTiming, RuntimeConfig, SourceConfig};
use crate::error::Result;
use crate::geometry::BBox;
use crate::media::{Branch, Chunk, Pixels};
use crate::metrics::Metrics;
use crate::stage::{Context, Flow, Stage, spawn_stage};
use crate::stream::StreamStatus;
use crate::sync::ChunkReceiver;
use crate::time::Timestamp;
pub use kind::{ENCODERS, Kind, Part, Worker, load_pipeline, parse_pipeline};
pub use loudness::{LevelWindow, Loudness, LoudnessFeatures};
pub use motion::{Motion, MotionSample};

/// What an encoder found in one chunk.
#[derive(Clone, Debug)]
pub enum Features {
    Motion(Vec<MotionSample>),
    Loudness(LoudnessFeatures),
    Voice(Vec<vad::VoiceWindow>),
    Faces(Vec<faces::FrameFaces>),
    Objects(Vec<detector::FrameObjects>),
    Sound(Vec<sound::SoundWindow>),
    /// What was said in speech segments that ended in this chunk.
    Said(Vec<asr::Said>),
    /// What an encoder outside the built-in modalities observed.
    Signal(Signal),
}

/// What an encoder outside the built-in modalities observed in one chunk:
/// fusion makes `kind` events of it, open while the condition holds (the
/// encoder's own thresholds decide), timed by `timing` like every event.
#[derive(Clone, Debug)]
pub struct Signal {
    /// The events' kind; an encoder's name is a good one.
    pub kind: &'static str,
    pub timing: EventTiming,
    /// The branch it analyses: its end closes an open event.
    pub branch: Branch,
    pub samples: Vec<SignalSample>,
}

/// One observation of a [`Signal`], over `start..end`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SignalSample {
    pub start: Timestamp,
    pub end: Timestamp,
    /// Whether the condition held.
    pub active: bool,
    /// How strongly, 0 to 1: the event's score is the highest seen.
    pub score: f32,
    /// Where in the picture, as fractions of it.
    pub bbox: Option<BBox>,
}

/// One modality's analysis of a stream.
pub trait Encoder: Send {
    /// Names the encoder in errors and metrics.
    fn name(&self) -> &'static str;

    /// Analyses `chunks` (in order, of one stream) and returns one
    /// [`Features`] per chunk. An error ends the stream's analysis; what was
    /// returned before stays valid.
    fn encode(&mut self, chunks: &[&Chunk]) -> Result<Vec<Features>>;

    /// CPU time a shared model worker has spent on this encoder's work so
    /// far, nanoseconds (0 for an encoder that runs no model).
    fn model_cpu_ns(&self) -> u64 {
        0
    }
}

/// A chunk with what every encoder found in it, for fusion.
#[derive(Debug)]
pub struct Encoded {
    pub chunk: Chunk,
    pub features: Vec<Features>,
}

/// The inference workers of a run, shared by every stream: one per model.
/// Dropped after the streams' encoders, it joins the workers.
#[derive(Default)]
pub struct Workers {
    workers: Vec<(&'static str, Worker)>,
}

/// One stream's encoders, and its speech cutter when speech is transcribed.
pub struct StreamEncoders {
    pub encoders: Vec<Box<dyn Encoder>>,
    pub asr: Option<asr::Cutter>,
    /// Whether fusion needs the frames' pixels after encoding (snapshots).
    /// When not, they are let go as soon as the encoders are done, so that
    /// the frames queued for fusion and held for transcripts weigh nothing.
    pub keep_pixels: bool,
}

/// The encoders `config` turns on, in table order.
pub fn enabled(config: &EncodersConfig) -> impl Iterator<Item = &'static Kind> + '_ {
    ENCODERS.iter().copied().filter(|k| (k.on)(config))
}

impl Workers {
    /// Loads the models of `config`, one session each, sharing the
    /// runtime's thread budget among them.
    pub fn start(
        config: &EncodersConfig,
        runtime: &RuntimeConfig,
        metrics: &Arc<Metrics>,
    ) -> Result<Workers> {
        // One session a model: faces with identity run two.
        let sessions = enabled(config)
            .filter(|k| k.has_model())
            .map(|k| (k.manifest)(config).len().max(1))
            .sum();
        let threads = runtime.per_session(sessions);
        let mut workers = Vec::new();
        for k in enabled(config) {
            if let Some(w) = (k.start)(config, threads, metrics)? {
                workers.push((k.name, w));
            }
        }
        Ok(Workers { workers })
    }

    /// The encoders a pipeline turns on, for the stream `source`.
    pub fn build(&self, config: &EncodersConfig, source: &SourceConfig) -> Result<StreamEncoders> {
        let mut stream = StreamEncoders {
            encoders: Vec::new(),
            asr: None,
            keep_pixels: true,
        };
        for k in enabled(config) {
            let worker = self
                .workers
                .iter()
                .find_map(|(name, w)| (*name == k.name).then_some(w));
            match (k.build)(config, worker, source)? {
                Some(Part::Encoder(e)) => stream.encoders.push(e),
                Some(Part::Cutter(c)) => stream.asr = Some(c),
                None => {}
            }
        }
        Ok(stream)
    }
}

/// The names of the encoders `config` turns on, in the order they run.
pub fn names(config: &EncodersConfig) -> Vec<&'static str> {
    enabled(config).map(|k| k.name).collect()
}

/// Turns the encoder `name` off, and what cannot work without it; false if
/// there is no such encoder.
pub fn turn_off(config: &mut EncodersConfig, name: &str) -> bool {
    kind::kind(name).map(|k| (k.off)(config)).is_some()
}

/// The models the pipeline's encoders need that are not installed, as
/// `(encoder, model)`.
pub fn missing_models(config: &EncodersConfig) -> Vec<(&'static str, String)> {
    let mut missing = Vec::new();
    for (k, manifest) in
        enabled(config).flat_map(|k| (k.manifest)(config).into_iter().map(move |m| (k, m)))
    {
        let m = runtime::Manifest::builtin(manifest);
        let labels_missing = m.labels_file().is_some_and(|p| !p.is_file());
        if !m.installed() || labels_missing {
            missing.push((k.name, m.name));
        } else if !runtime::library_path().is_file() {
            missing.push((k.name, "onnxruntime".into()));
        }
    }
    missing
}

/// Loads every model the pipeline needs once, so that a missing, corrupt or
/// mismatched one stops the run before any media flows.
pub fn check_models(config: &EncodersConfig) -> Result<()> {
    enabled(config).try_for_each(|k| (k.check)(config))
}

/// Runs a stream's encoders on its own thread, chunk by chunk, in order.
pub fn spawn(
    stream: Arc<str>,
    encoders: StreamEncoders,
    input: ChunkReceiver,
    output: Sender<Encoded>,
    metrics: &Arc<Metrics>,
    status: Arc<StreamStatus>,
) -> Result<JoinHandle<()>> {
    let stage = EncodeStage {
        encoders,
        held: VecDeque::new(),
        models_charged: 0,
    };
    spawn_stage(stage, stream, input, output, metrics, status)
}

/// Chunks whose transcripts may still be on their way at most; then the
/// stream waits for the oldest (a bound on memory, not a stall: recognition
/// runs far faster than real time).
const MAX_HELD: usize = 32;

/// A chunk encoded but not sent: the speech segments it closed are still
/// being transcribed.
struct Held {
    chunk: Chunk,
    features: Vec<Features>,
    pending: VecDeque<asr::Pending>,
    said: Vec<asr::Said>,
}

impl Held {
    /// Whether every transcript of the chunk is in (waiting for them when
    /// `block`).
    fn ready(&mut self, block: bool) -> Result<bool> {
        while let Some(p) = self.pending.front() {
            let answer = if block {
                self.pending.pop_front().map(asr::Pending::wait)
            } else {
                let a = p.try_take();
                if a.is_some() {
                    self.pending.pop_front();
                }
                a
            };
            match answer {
                Some(said) => self.said.extend(said?),
                None => return Ok(false),
            }
        }
        Ok(true)
    }
}

/// A stream's encoders as a [`Stage`]: chunks in, encoded chunks out, in
/// order, each once its transcripts are in.
struct EncodeStage {
    encoders: StreamEncoders,
    held: VecDeque<Held>,
    /// The shared model workers' CPU time charged to the stream so far.
    models_charged: u64,
}

impl Stage for EncodeStage {
    type In = Chunk;
    type Out = Encoded;
    const NAME: &'static str = "encode";
    const ERROR_KIND: &'static str = "encoder";

    fn push(&mut self, chunk: Chunk, _out: &mut Vec<Encoded>, cx: &Context) -> Result<Flow> {
        let stage = &mut self.encoders;
        let mut features = Vec::with_capacity(stage.encoders.len());
        // A span wholly in a live source's outage has nothing to see or hear.
        if !chunk.flags.no_media {
            for encoder in stage.encoders.iter_mut() {
                features.append(&mut encoder.encode(&[&chunk])?);
            }
        }
        count_looks(&features, cx);
        let models: u64 = stage.encoders.iter().map(|e| e.model_cpu_ns()).sum();
        cx.metrics
            .cpu(Some("models"), models.saturating_sub(self.models_charged));
        self.models_charged = self.models_charged.max(models);
        let mut chunk = chunk;
        if !stage.keep_pixels {
            // Someone watching the stream live gets the chunk's last frame.
            let keep = usize::from(cx.status.watched());
            let n = chunk.frames.len().saturating_sub(keep);
            for frame in &mut chunk.frames[..n] {
                frame.rgb = Pixels::empty();
                frame.grey = None;
            }
        }
        let pending = match &mut stage.asr {
            Some(cutter) => {
                let windows: Vec<vad::VoiceWindow> = features
                    .iter()
                    .filter_map(|f| match f {
                        Features::Voice(w) => Some(w.clone()),
                        _ => None,
                    })
                    .flatten()
                    .collect();
                cutter.push(&chunk, &windows)?
            }
            None => Vec::new(),
        };
        self.held.push_back(Held {
            chunk,
            features,
            pending: pending.into(),
            said: Vec::new(),
        });
        Ok(Flow::More)
    }

    /// Held chunks, oldest first, while their transcripts are in; waits for
    /// them when too many are held.
    fn poll(&mut self, out: &mut Vec<Encoded>, _cx: &Context) -> Result<()> {
        self.release(out, false)
    }

    fn finish(&mut self, out: &mut Vec<Encoded>, _cx: &Context) -> Result<()> {
        self.release(out, true)
    }
}

/// Counts what the detector did with each frame due, by reason.
fn count_looks(features: &[Features], cx: &Context) {
    for f in features {
        if let Features::Objects(frames) = f {
            for o in frames {
                cx.metrics.detector_frames(o.look.as_str(), 1);
            }
        }
    }
}

impl EncodeStage {
    /// Moves held chunks whose transcripts are in to `out`, oldest first;
    /// waits for them when `all` or when too many are held.
    fn release(&mut self, out: &mut Vec<Encoded>, all: bool) -> Result<()> {
        loop {
            let block = all || self.held.len() > MAX_HELD;
            let ready = match self.held.front_mut() {
                Some(front) => front.ready(block)?,
                None => false,
            };
            if !ready {
                return Ok(());
            }
            let Some(mut h) = self.held.pop_front() else {
                return Ok(());
            };
            if !h.said.is_empty() {
                h.features.push(Features::Said(std::mem::take(&mut h.said)));
            }
            out.push(Encoded {
                chunk: h.chunk,
                features: h.features,
            });
        }
    }
}

/// The logistic function: a logit to a probability.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Level in dBFS of a linear amplitude, floored at -120 dB.
pub fn dbfs(amplitude: f32) -> f32 {
    if amplitude <= 1e-6 {
        -120.0
    } else {
        (20.0 * amplitude.log10()).max(-120.0)
    }
}

/// A time-ordered observation an encoder makes: the condition held or not.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observation {
    pub at: Timestamp,
    pub active: bool,
    /// When the condition started, if the encoder knows it more exactly than `at`.
    pub onset: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk() -> Chunk {
        Chunk::test_second("t", 0, 1)
    }

    /// What fusion gets of one chunk's frames, keeping pixels or not.
    fn encoded(keep_pixels: bool, watched: bool) -> Vec<(u32, u32, usize)> {
        let metrics = Metrics::new();
        let cx = Context {
            stream: Arc::from("t"),
            metrics: metrics.stage("encode", "t"),
            status: Arc::new(StreamStatus::default()),
        };
        if watched {
            cx.status.watch();
        }
        let mut stage = EncodeStage {
            encoders: StreamEncoders {
                encoders: Vec::new(),
                asr: None,
                keep_pixels,
            },
            held: VecDeque::new(),
            models_charged: 0,
        };
        let mut out = Vec::new();
        assert!(stage.push(chunk(), &mut out, &cx).is_ok());
        assert!(stage.finish(&mut out, &cx).is_ok());
        out.iter()
            .flat_map(|e| e.chunk.frames.iter())
            .map(|f| (f.width, f.height, f.rgb.len()))
            .collect()
    }

    #[test]
    fn pixels_go_after_encoding_unless_fusion_pictures_them() {
        assert_eq!(encoded(true, false), [(2, 2, 12)]);
        // Size and time stay, for fusion's geometry; the pixels are gone.
        assert_eq!(encoded(false, false), [(2, 2, 0)]);
        // Watched live, the chunk's last frame keeps them for the picture.
        assert_eq!(encoded(false, true), [(2, 2, 12)]);
    }
}
