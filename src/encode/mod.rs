//! Encoders: chunks in, features out, one per modality.
//!
//! An encoder is stateful per stream (motion keeps the previous frame, loudness
//! carries a partial window across chunks). Model-free encoders need no
//! weights; neural ones are built from a manifest in `models/`.

pub mod asr;
pub mod batch;
pub mod detector;
pub mod faces;
pub mod letterbox;
pub mod logmel;
pub mod loudness;
pub mod motion;
pub mod runtime;
pub mod sound;
pub mod vad;
pub mod whisper;
pub mod whisper_mel;

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;

use crate::config::{EncodersConfig, RuntimeConfig};
use crate::error::{Error, Result};
use crate::media::Chunk;
use crate::metrics::{Metrics, StageMetrics};
use crate::stream::StreamStatus;
use crate::sync::ChunkReceiver;
use crate::time::Timestamp;
use batch::Batcher;
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
}

/// One modality's analysis of a stream.
pub trait Encoder: Send {
    /// Names the encoder in errors and metrics.
    fn name(&self) -> &'static str;

    /// Analyses `chunks` (in order, of one stream) and returns one
    /// [`Features`] per chunk. An error ends the stream's analysis; what was
    /// returned before stays valid.
    fn encode(&mut self, chunks: &[&Chunk]) -> Result<Vec<Features>>;
}

/// A chunk with what every encoder found in it, for fusion.
#[derive(Debug)]
pub struct Encoded {
    pub chunk: Chunk,
    pub features: Vec<Features>,
}

/// The inference workers of a run, shared by every stream: one per batched
/// model. Dropped after the streams' encoders, it joins the workers.
#[derive(Default)]
pub struct Workers {
    detector: Option<Batcher>,
    faces: Option<Batcher>,
    sound: Option<Batcher>,
    vad: Option<Batcher>,
    asr: Option<asr::AsrWorker>,
}

/// One stream's encoders, and its speech cutter when speech is transcribed.
pub struct StreamEncoders {
    pub encoders: Vec<Box<dyn Encoder>>,
    pub asr: Option<asr::Cutter>,
}

impl Workers {
    /// Loads the models of `config`, one session each, sharing the
    /// runtime's thread budget among them.
    pub fn start(
        config: &EncodersConfig,
        runtime: &RuntimeConfig,
        metrics: &Arc<Metrics>,
    ) -> Result<Workers> {
        let sessions = usize::from(config.detector.is_some())
            + usize::from(config.faces.is_some())
            + usize::from(config.sound.is_some())
            + usize::from(config.vad.is_some())
            + usize::from(config.asr.is_some());
        let threads = runtime.per_session(sessions);
        let mut w = Workers::default();
        if let Some(a) = &config.asr {
            w.asr = Some(asr::AsrWorker::start(a, threads)?);
        }
        if let Some(v) = &config.vad {
            w.vad = Some(Batcher::spawn(
                vad::model(v, threads)?,
                v.batch,
                metrics.clone(),
            )?);
        }
        if let Some(d) = &config.detector {
            detector::check_classes(d)?;
            w.detector = Some(Batcher::spawn(
                detector::model(d, threads)?,
                d.batch,
                metrics.clone(),
            )?);
        }
        if let Some(f) = &config.faces {
            w.faces = Some(Batcher::spawn(
                faces::model(f, threads)?,
                f.batch,
                metrics.clone(),
            )?);
        }
        if let Some(s) = &config.sound {
            sound::targets(s, &sound::class_names()?)?;
            w.sound = Some(Batcher::spawn(
                sound::model(s, threads)?,
                s.batch,
                metrics.clone(),
            )?);
        }
        Ok(w)
    }

    /// The encoders a pipeline turns on, for one stream whose frames come at
    /// `fps`.
    pub fn build(&self, config: &EncodersConfig, fps: u32) -> Result<StreamEncoders> {
        let mut encoders: Vec<Box<dyn Encoder>> = Vec::new();
        if let Some(m) = &config.motion {
            encoders.push(Box::new(Motion::new(m.clone(), fps)));
        }
        if let Some(l) = &config.loudness {
            encoders.push(Box::new(Loudness::new(l.clone())));
        }
        if let (Some(v), Some(b)) = (&config.vad, &self.vad) {
            encoders.push(Box::new(vad::Vad::new(v.clone(), b.client())));
        }
        if let (Some(f), Some(b)) = (&config.faces, &self.faces) {
            encoders.push(Box::new(faces::Faces::new(f.clone(), b.client(), fps)));
        }
        if let (Some(d), Some(b)) = (&config.detector, &self.detector) {
            encoders.push(Box::new(detector::Detector::new(
                d.clone(),
                b.client(),
                fps,
            )?));
        }
        if let (Some(s), Some(b)) = (&config.sound, &self.sound) {
            encoders.push(Box::new(sound::Sound::new(s, b.client())?));
        }
        let asr = match (&config.asr, &self.asr) {
            (Some(a), Some(w)) => Some(asr::Cutter::new(a.clone(), w.handle())),
            _ => None,
        };
        Ok(StreamEncoders { encoders, asr })
    }
}

/// The models the pipeline's encoders need that are not installed, as
/// `(encoder, model)`.
pub fn missing_models(config: &EncodersConfig) -> Vec<(&'static str, String)> {
    let mut missing = Vec::new();
    let wanted = [
        ("vad", config.vad.is_some(), vad::MANIFEST),
        ("faces", config.faces.is_some(), faces::MANIFEST),
        ("detector", config.detector.is_some(), detector::MANIFEST),
        ("sound", config.sound.is_some(), sound::MANIFEST),
        ("asr", config.asr.is_some(), whisper::MANIFEST),
    ];
    for (encoder, on, manifest) in wanted {
        if !on {
            continue;
        }
        let m = runtime::Manifest::builtin(manifest);
        let labels_missing = m.labels_file().is_some_and(|p| !p.is_file());
        if !m.installed() || labels_missing {
            missing.push((encoder, m.name));
        } else if !runtime::library_path().is_file() {
            missing.push((encoder, "onnxruntime".into()));
        }
    }
    missing
}

/// Loads every model the pipeline needs once, so that a missing, corrupt or
/// mismatched one stops the run before any media flows.
pub fn check_models(config: &EncodersConfig) -> Result<()> {
    if let Some(v) = &config.vad {
        vad::model(v, 1)?;
    }
    if let Some(f) = &config.faces {
        faces::model(f, 1)?;
    }
    if let Some(d) = &config.detector {
        detector::check_classes(d)?;
        detector::model(d, 1)?;
    }
    if let Some(s) = &config.sound {
        sound::targets(s, &sound::class_names()?)?;
        sound::model(s, 1)?;
    }
    if let Some(a) = &config.asr {
        whisper::Whisper::load(1, a.provider)?;
    }
    Ok(())
}

/// Runs a stream's encoders on its own thread, chunk by chunk, in order.
pub fn spawn(
    stream: Arc<str>,
    mut encoders: StreamEncoders,
    input: ChunkReceiver,
    output: Sender<Encoded>,
    metrics: StageMetrics,
    status: Arc<StreamStatus>,
) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("encode-{stream}"))
        .spawn(move || {
            if let Err(e) = run(&mut encoders, &input, &output, &metrics) {
                metrics.error("encoder");
                // Before `output` closes, so that fusion sees the failure when it ends.
                status.fail(e.to_string());
            }
            drop(output);
        })
        .map_err(|e| Error::io("cannot start an encoder thread", e))
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
    pending: std::collections::VecDeque<asr::Pending>,
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

fn run(
    stage: &mut StreamEncoders,
    input: &ChunkReceiver,
    output: &Sender<Encoded>,
    metrics: &StageMetrics,
) -> Result<()> {
    let mut held: std::collections::VecDeque<Held> = std::collections::VecDeque::new();
    for chunk in input.iter() {
        metrics.received();
        metrics.queue_depth(input.len());
        let timer = metrics.timer();
        let mut features = Vec::with_capacity(stage.encoders.len());
        // A span wholly in a live source's outage has nothing to see or hear.
        if !chunk.flags.no_media {
            for encoder in stage.encoders.iter_mut() {
                features.append(&mut encoder.encode(&[&chunk])?);
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
        drop(timer);
        held.push_back(Held {
            chunk,
            features,
            pending: pending.into(),
            said: Vec::new(),
        });
        if !send_ready(&mut held, output, metrics, false)? {
            return Ok(());
        }
    }
    send_ready(&mut held, output, metrics, true)?;
    Ok(())
}

/// Sends held chunks, oldest first, while their transcripts are in; waits
/// for them when `all` or when too many are held. False once fusion is gone.
fn send_ready(
    held: &mut std::collections::VecDeque<Held>,
    output: &Sender<Encoded>,
    metrics: &StageMetrics,
    all: bool,
) -> Result<bool> {
    loop {
        let block = all || held.len() > MAX_HELD;
        let ready = match held.front_mut() {
            Some(front) => front.ready(block)?,
            None => false,
        };
        if !ready {
            break;
        }
        let Some(mut h) = held.pop_front() else { break };
        if !h.said.is_empty() {
            h.features.push(Features::Said(std::mem::take(&mut h.said)));
        }
        if output
            .send(Encoded {
                chunk: h.chunk,
                features: h.features,
            })
            .is_err()
        {
            return Ok(false);
        }
        metrics.sent();
    }
    Ok(true)
}

/// The logistic function: a logit to a probability.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Intersection over union of two boxes `[x, y, w, h]`.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let ix = ((a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0])).max(0.0);
    let iy = ((a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1])).max(0.0);
    let inter = ix * iy;
    let union = a[2] * a[3] + b[2] * b[3] - inter;
    if union > 0.0 { inter / union } else { 0.0 }
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
