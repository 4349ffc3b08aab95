//! Voice activity with Silero VAD: a speech probability every 32 ms, its
//! recurrent state carried across chunks of one stream. The model runs on
//! the shared inference worker: windows of several streams run together,
//! each with its own state (the state's batch dimension is its second).

use crate::config::VadConfig;
use crate::encode::batch::{BatchClient, BatchModel, Port};
use crate::encode::kind::{self, Kind, Part};
use crate::encode::runtime::{self, Manifest};
use crate::encode::{Encoder, Features};
use crate::error::Result;
use crate::media::Chunk;
use crate::time::{AUDIO_RATE, Timestamp, sample_to_time};

/// The model's manifest.
pub const MANIFEST: &str = include_str!("../../models/silero_vad.toml");

/// Voice activity (Silero VAD).
pub const KIND: Kind = Kind {
    name: "vad",
    manifests: &[MANIFEST],
    manifest: |_| vec![MANIFEST],
    section: None,
    on: |c| c.vad.is_some(),
    off: |c| {
        c.vad = None;
        // Speech to text works on what VAD hears.
        c.asr = None;
    },
    check: |c| c.vad.as_ref().map_or(Ok(()), |v| model(v, 1).map(drop)),
    start: |c, threads, metrics| {
        kind::batcher(c.vad.as_ref(), threads, metrics, model, |v| v.batch)
    },
    build: |c, w, _| {
        Ok(match (&c.vad, kind::batch_worker(w)) {
            (Some(v), Some(b)) => Some(Part::Encoder(Box::new(Vad::new(v.clone(), b.client())))),
            _ => None,
        })
    },
};
/// New samples per window (32 ms at 16 kHz).
pub const WINDOW: usize = 512;
/// Samples of the previous window the model sees again.
const CONTEXT: usize = 64;
/// Size of the recurrent state, `[2, 1, 128]`.
const STATE: usize = 2 * 128;

/// What the model said about one window.
#[derive(Clone, Debug, PartialEq)]
pub struct VoiceWindow {
    pub start: Timestamp,
    pub end: Timestamp,
    /// Speech probability, 0–1.
    pub probability: f32,
    /// Speaking, after hysteresis: on at `threshold`, off below it minus 0.15.
    pub speaking: bool,
}

/// The model for the inference worker.
pub fn model(config: &VadConfig, threads: usize) -> Result<BatchModel> {
    let (session, pool) =
        runtime::pooled_session(&Manifest::builtin(MANIFEST), threads, config.provider)?;
    Ok(BatchModel {
        name: "silero_vad",
        session,
        pool,
        inputs: vec![
            Port::first("input", vec![CONTEXT + WINDOW]),
            Port {
                name: "state".into(),
                item_shape: vec![2, 128],
                batch_axis: 1,
            },
        ],
        scalars: vec![("sr", AUDIO_RATE as i64)],
        outputs: vec![
            Port::first("output", Vec::new()),
            Port {
                name: "stateN".into(),
                item_shape: Vec::new(),
                batch_axis: 1,
            },
        ],
    })
}

/// The VAD encoder of one stream.
pub struct Vad {
    client: BatchClient,
    config: VadConfig,
    state: Vec<f32>,
    context: [f32; CONTEXT],
    pending: Vec<f32>,
    /// Sample index of `pending[0]`.
    pending_start: u64,
    speaking: bool,
}

impl Vad {
    pub fn new(config: VadConfig, client: BatchClient) -> Vad {
        Vad {
            client,
            config,
            state: vec![0.0; STATE],
            context: [0.0; CONTEXT],
            pending: Vec::new(),
            pending_start: 0,
            speaking: false,
        }
    }

    fn reset(&mut self, at: u64) {
        self.state.iter_mut().for_each(|x| *x = 0.0);
        self.context = [0.0; CONTEXT];
        self.pending.clear();
        self.pending_start = at;
        self.speaking = false;
    }

    /// Speech probability of the next 512 samples (with the 64 before them).
    fn probability(&mut self, samples: &[f32]) -> Result<f32> {
        let mut input = Vec::with_capacity(CONTEXT + WINDOW);
        input.extend_from_slice(&self.context);
        input.extend_from_slice(samples);
        self.context
            .copy_from_slice(&input[input.len() - CONTEXT..]);
        let mut out = self
            .client
            .infer_each(vec![vec![input, self.state.clone()]])?;
        let (p, state) = match out.pop() {
            Some(mut o) if o.len() == 2 => {
                let state = o.pop().unwrap_or_default();
                (o.pop().unwrap_or_default(), state)
            }
            _ => (Vec::new(), Vec::new()),
        };
        if state.len() == STATE {
            self.state.copy_from_slice(&state);
        }
        Ok(p.first().copied().unwrap_or(0.0))
    }

    fn chunk(&mut self, chunk: &Chunk) -> Result<Vec<VoiceWindow>> {
        if !chunk.has_audio {
            return Ok(Vec::new());
        }
        if chunk.first_sample != self.pending_start + self.pending.len() as u64 {
            // Chunks were dropped (live backlog): the state no longer follows.
            self.reset(chunk.first_sample);
        }
        self.pending.extend_from_slice(&chunk.audio);
        if chunk.flags.last && !self.pending.len().is_multiple_of(WINDOW) {
            let padded = self.pending.len().next_multiple_of(WINDOW);
            self.pending.resize(padded, 0.0);
        }
        let mut out = Vec::new();
        let whole = self.pending.len() / WINDOW * WINDOW;
        let pending = std::mem::take(&mut self.pending);
        for w in pending[..whole].chunks(WINDOW) {
            let p = self.probability(w)?;
            let off = (self.config.threshold - 0.15).max(0.01);
            self.speaking = if self.speaking {
                p >= off
            } else {
                p >= self.config.threshold
            };
            let start = self.pending_start;
            self.pending_start += WINDOW as u64;
            out.push(VoiceWindow {
                start: sample_to_time(start, AUDIO_RATE),
                end: sample_to_time(start + WINDOW as u64, AUDIO_RATE),
                probability: p,
                speaking: self.speaking,
            });
        }
        self.pending = pending[whole..].to_vec();
        Ok(out)
    }
}

impl Encoder for Vad {
    fn name(&self) -> &'static str {
        "vad"
    }

    fn encode(&mut self, chunks: &[&Chunk]) -> Result<Vec<Features>> {
        chunks
            .iter()
            .map(|c| self.chunk(c).map(Features::Voice))
            .collect()
    }

    fn model_cpu_ns(&self) -> u64 {
        self.client.cpu_ns()
    }
}
