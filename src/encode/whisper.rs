//! Whisper speech to text on ONNX Runtime: one segment of up to 30 s in,
//! timed text out.
//!
//! The graphs come from `models/whisper.py` (an encoder that also gives the
//! decoder's cross-attention keys and values, and a decoder step with a
//! self-attention cache). Decoding is greedy with timestamp tokens and
//! Whisper's own rules: blank and non-speech tokens suppressed, timestamps
//! increasing and paired, a timestamp forced when timestamps together are
//! likelier than any word. Whisper's guards against hallucination decide
//! what comes out: a segment the model thinks is not speech (no-speech
//! probability over 0.6 with an average log-probability under -1) gives
//! nothing; a result too repetitive (gzip compression ratio over 2.4) or
//! too unsure (average log-probability under -1) is decoded again at a
//! higher temperature (0.2, 0.4 … 1.0), and when none passes, nothing is
//! returned rather than a guess. Audio that stays under -60 dBFS is not
//! decoded at all.

use std::io::Write;

use ort::session::Session;
use ort::value::{Tensor, TensorValueType};
use tokenizers::Tokenizer;

use crate::config::Provider;
use crate::encode::runtime::{self, Manifest};
use crate::encode::whisper_mel::{self, FRAMES, MELS};
use crate::error::{Error, Result};
use crate::time::{AUDIO_RATE, MILLISECOND};

/// The model's manifest.
pub const MANIFEST: &str = include_str!("../../models/whisper_tiny_en.toml");

const EOT: u32 = 50256;
const SOT: u32 = 50257;
const NO_SPEECH: u32 = 50361;
const NO_TIMESTAMPS: u32 = 50362;
const TIMESTAMP_BEGIN: u32 = 50363;
/// Decoder layers, heads and head width of tiny.en.
const LAYERS: usize = 4;
const HEADS: usize = 6;
const HEAD: usize = 64;
/// At most this many tokens per segment (half the text context).
const SAMPLE_LEN: usize = 224;
/// The first timestamp may not be later than 1 s (50 steps of 20 ms).
const MAX_INITIAL_TIMESTAMP: u32 = 50;

/// Whisper's thresholds.
#[derive(Clone, Debug)]
pub struct Guards {
    pub temperatures: Vec<f32>,
    pub compression_ratio: f32,
    pub logprob: f32,
    pub no_speech: f32,
    /// Audio whose loudest 100 ms stays under this (dBFS RMS) is not decoded.
    pub quiet_db: f32,
}

impl Default for Guards {
    fn default() -> Self {
        Guards {
            temperatures: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            compression_ratio: 2.4,
            logprob: -1.0,
            no_speech: 0.6,
            quiet_db: -60.0,
        }
    }
}

/// Timed text from one segment of audio; times from its first sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Piece {
    pub start: u64,
    pub end: u64,
    pub text: String,
}

/// What decoding one segment gave, with the figures the guards judge.
#[derive(Clone, Debug)]
pub struct Transcript {
    pub pieces: Vec<Piece>,
    pub avg_logprob: f32,
    pub no_speech_prob: f32,
    pub compression_ratio: f32,
    pub temperature: f32,
}

impl Transcript {
    pub fn text(&self) -> String {
        self.pieces
            .iter()
            .map(|p| p.text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Whisper tiny.en, loaded.
pub struct Whisper {
    encoder: Session,
    decoder: Session,
    tokenizer: Tokenizer,
    suppress: Vec<u32>,
    suppress_begin: Vec<u32>,
    pub guards: Guards,
}

fn model_error(message: String) -> Error {
    Error::Model {
        model: "whisper_tiny_en".into(),
        message,
    }
}

impl Whisper {
    pub fn load(threads: usize, provider: Provider) -> Result<Whisper> {
        let manifest = Manifest::builtin(MANIFEST);
        let encoder = runtime::session(&manifest, threads, provider)?;
        let decoder = runtime::decoder_session(&manifest, "decoder.onnx", threads, provider)?;
        let fix = |what: &str, e: String| {
            model_error(format!(
                "{what}: {e}; run `vigil models fetch` to fetch it again"
            ))
        };
        let tokenizer_path = manifest.beside("tokenizer.json");
        let tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| fix(&tokenizer_path.display().to_string(), e.to_string()))?;
        let config_path = manifest.beside("config.json");
        let config: serde_json::Value = std::fs::read_to_string(&config_path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
            .map_err(|e| fix(&config_path.display().to_string(), e))?;
        let ids = |key: &str| -> Vec<u32> {
            config[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_u64())
                        .map(|v| v as u32)
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(Whisper {
            encoder,
            decoder,
            tokenizer,
            suppress: ids("suppress_ids"),
            suppress_begin: ids("suppress_ids_begin"),
            guards: Guards::default(),
        })
    }

    /// Transcribes up to 30 s of 16 kHz mono audio. Nothing when the guards
    /// say it is not speech, or no temperature gives a believable text.
    pub fn transcribe(&mut self, samples: &[f32]) -> Result<Option<Transcript>> {
        // Near-digital silence: Whisper answers it with a confident "you"
        // (no-speech probability 0.95, but an average log-probability of
        // -0.7, which its own rule lets through). Nothing to hear here.
        if loudest_window_db(samples) < self.guards.quiet_db {
            return Ok(None);
        }
        let err = runtime::inference_failed("whisper_tiny_en");
        let mel = whisper_mel::log_mel(samples);
        let mut outputs = self
            .encoder
            .run(ort::inputs!["mel" => Tensor::from_array(([1usize, MELS, FRAMES], mel)).map_err(err)?])
            .map_err(err)?;
        // The encoder's own tensors go to the decoder as they are: no copy
        // of the 18 MB of keys and values.
        let mut cross = Vec::with_capacity(2 * LAYERS);
        for n in 0..LAYERS {
            for kind in ["k", "v"] {
                let name = format!("cross_{kind}_{n}");
                let value = outputs
                    .remove(&name)
                    .ok_or_else(|| model_error(format!("the encoder gave no `{name}`")))?
                    .downcast::<TensorValueType<f32>>()
                    .map_err(err)?;
                cross.push((name, value));
            }
        }
        drop(outputs);
        let duration =
            samples.len().min(whisper_mel::SAMPLES) as u64 * 1_000_000_000 / AUDIO_RATE as u64;
        let temperatures = self.guards.temperatures.clone();
        for (k, &t) in temperatures.iter().enumerate() {
            let decoded = self.decode(&cross, t, 0x5eed_0000 + k as u64)?;
            let text = self.text(&decoded.tokens)?;
            let ratio = compression_ratio(&text);
            let avg = decoded.sum_logprob / (decoded.tokens.len() + 1) as f32;
            let transcript = Transcript {
                pieces: self.pieces(&decoded.tokens, duration)?,
                avg_logprob: avg,
                no_speech_prob: decoded.no_speech_prob,
                compression_ratio: ratio,
                temperature: t,
            };
            let g = &self.guards;
            if transcript.no_speech_prob > g.no_speech && avg < g.logprob {
                return Ok(None); // silence, or not speech
            }
            let believable = ratio <= g.compression_ratio && avg >= g.logprob;
            if believable {
                return Ok(Some(transcript).filter(|t| !t.pieces.is_empty()));
            }
        }
        // No temperature gave a believable text: say nothing.
        Ok(None)
    }

    fn text(&self, tokens: &[u32]) -> Result<String> {
        let words: Vec<u32> = tokens.iter().copied().filter(|&t| t < EOT).collect();
        self.tokenizer
            .decode(&words, true)
            .map(|s| s.trim().to_string())
            .map_err(|e| model_error(format!("cannot decode tokens: {e}")))
    }

    /// Splits sampled tokens at their timestamps into timed pieces.
    fn pieces(&self, tokens: &[u32], duration: u64) -> Result<Vec<Piece>> {
        let at = |t: u32| (t - TIMESTAMP_BEGIN) as u64 * 20 * MILLISECOND;
        let mut out = Vec::new();
        let mut start: Option<u64> = None;
        let mut words: Vec<u32> = Vec::new();
        for &t in tokens {
            if t >= TIMESTAMP_BEGIN {
                if words.is_empty() {
                    start = Some(at(t));
                } else {
                    let text = self.text(&words)?;
                    if !text.is_empty() {
                        out.push(Piece {
                            start: start.unwrap_or(0),
                            end: at(t).min(duration),
                            text,
                        });
                    }
                    words.clear();
                    start = Some(at(t));
                }
            } else if t < EOT {
                words.push(t);
            }
        }
        if !words.is_empty() {
            let text = self.text(&words)?;
            if !text.is_empty() {
                out.push(Piece {
                    start: start.unwrap_or(0),
                    end: duration,
                    text,
                });
            }
        }
        Ok(out)
    }

    fn decode(
        &mut self,
        cross: &[(String, Tensor<f32>)],
        temperature: f32,
        seed: u64,
    ) -> Result<Decoded> {
        let err = runtime::inference_failed("whisper_tiny_en");
        let mut rng = XorShift(seed | 1);
        let mut past: Vec<Vec<f32>> = vec![Vec::new(); 2 * LAYERS];
        let mut past_len = 0usize;
        let mut input: Vec<i64> = vec![SOT as i64];
        let mut sampled: Vec<u32> = Vec::new();
        let mut sum_logprob = 0.0f32;
        let mut no_speech_prob = 0.0f32;
        for step in 0..SAMPLE_LEN {
            let mut inputs: Vec<(String, ort::session::SessionInputValue<'_>)> = Vec::new();
            let n_new = input.len();
            inputs.push((
                "tokens".into(),
                Tensor::from_array(([1usize, n_new], input.clone()))
                    .map_err(err)?
                    .into(),
            ));
            for n in 0..LAYERS {
                for (j, kind) in ["k", "v"].iter().enumerate() {
                    let data = std::mem::take(&mut past[2 * n + j]);
                    let t =
                        Tensor::from_array(([1usize, HEADS, past_len, HEAD], data)).map_err(err)?;
                    inputs.push((format!("past_{kind}_{n}"), t.into()));
                }
            }
            for (name, value) in cross {
                inputs.push((name.clone(), value.into()));
            }
            let outputs = self.decoder.run(inputs).map_err(err)?;
            let (shape, all) = outputs
                .get("logits")
                .ok_or_else(|| model_error("the decoder gave no `logits`".into()))?
                .try_extract_tensor::<f32>()
                .map_err(err)?;
            let vocab = shape.last().copied().unwrap_or(0).max(0) as usize;
            let mut logits = all[all.len() - vocab..].to_vec();
            for n in 0..LAYERS {
                for (j, kind) in ["k", "v"].iter().enumerate() {
                    let name = format!("present_{kind}_{n}");
                    let (_, data) = outputs
                        .get(&name)
                        .ok_or_else(|| model_error(format!("the decoder gave no `{name}`")))?
                        .try_extract_tensor::<f32>()
                        .map_err(err)?;
                    past[2 * n + j] = data.to_vec();
                }
            }
            past_len += n_new;
            drop(outputs);
            if step == 0 {
                no_speech_prob = softmax_at(&logits, NO_SPEECH as usize);
            }
            self.filter(&mut logits, &sampled);
            let logprobs = log_softmax(&logits);
            let next = if temperature == 0.0 {
                argmax(&logits)
            } else {
                sample(&logits, temperature, &mut rng)
            };
            sum_logprob += logprobs[next];
            if next as u32 == EOT {
                break;
            }
            sampled.push(next as u32);
            input = vec![next as i64];
        }
        Ok(Decoded {
            tokens: sampled,
            sum_logprob,
            no_speech_prob,
        })
    }

    /// Whisper's logit filters: suppressed tokens, and the timestamp rules.
    fn filter(&self, logits: &mut [f32], sampled: &[u32]) {
        let ninf = f32::NEG_INFINITY;
        if sampled.is_empty() {
            for &t in &self.suppress_begin {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = ninf;
                }
            }
        }
        for &t in self.suppress.iter().chain(&[NO_TIMESTAMPS]) {
            if let Some(l) = logits.get_mut(t as usize) {
                *l = ninf;
            }
        }
        let ts = TIMESTAMP_BEGIN as usize;
        let last_ts = sampled.last().is_some_and(|&t| t >= TIMESTAMP_BEGIN);
        let penultimate_ts = sampled.len() < 2 || sampled[sampled.len() - 2] >= TIMESTAMP_BEGIN;
        if last_ts {
            if penultimate_ts {
                logits[ts..].iter_mut().for_each(|l| *l = ninf);
            } else {
                logits[..EOT as usize].iter_mut().for_each(|l| *l = ninf);
            }
        }
        if let Some(&prev) = sampled.iter().rev().find(|&&t| t >= TIMESTAMP_BEGIN) {
            let floor = (if last_ts && !penultimate_ts {
                prev
            } else {
                prev + 1
            } as usize)
                .min(logits.len());
            logits[ts..floor].iter_mut().for_each(|l| *l = ninf);
        }
        if sampled.is_empty() {
            logits[..ts].iter_mut().for_each(|l| *l = ninf);
            let last_allowed = ts + MAX_INITIAL_TIMESTAMP as usize;
            logits[last_allowed + 1..]
                .iter_mut()
                .for_each(|l| *l = ninf);
        }
        // A timestamp when timestamps together are likelier than any word.
        let lp = log_softmax(logits);
        let ts_mass = log_sum_exp(&lp[ts..]);
        let best_text = lp[..ts].iter().copied().fold(ninf, f32::max);
        if ts_mass > best_text {
            logits[..ts].iter_mut().for_each(|l| *l = ninf);
        }
    }
}

struct Decoded {
    tokens: Vec<u32>,
    sum_logprob: f32,
    no_speech_prob: f32,
}

/// RMS level in dBFS of the loudest 100 ms of `samples`.
fn loudest_window_db(samples: &[f32]) -> f32 {
    let window = (AUDIO_RATE / 10) as usize;
    let loudest = samples
        .chunks(window)
        .map(|w| (w.iter().map(|x| x * x).sum::<f32>() / w.len() as f32).sqrt())
        .fold(0.0f32, f32::max);
    crate::encode::dbfs(loudest)
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |a, (i, &x)| if x > a.1 { (i, x) } else { a },
        )
        .0
}

fn log_sum_exp(v: &[f32]) -> f32 {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return max;
    }
    max + v.iter().map(|x| (x - max).exp()).sum::<f32>().ln()
}

fn log_softmax(v: &[f32]) -> Vec<f32> {
    let z = log_sum_exp(v);
    v.iter().map(|x| x - z).collect()
}

fn softmax_at(v: &[f32], i: usize) -> f32 {
    v.get(i).map_or(0.0, |x| (x - log_sum_exp(v)).exp())
}

/// A token drawn from softmax(logits / temperature).
fn sample(logits: &[f32], temperature: f32, rng: &mut XorShift) -> usize {
    let scaled: Vec<f32> = logits.iter().map(|l| l / temperature).collect();
    let z = log_sum_exp(&scaled);
    let mut u = rng.unit();
    for (i, s) in scaled.iter().enumerate() {
        let p = (s - z).exp();
        if u < p {
            return i;
        }
        u -= p;
    }
    argmax(logits)
}

/// A small deterministic generator: the same file always decodes the same.
struct XorShift(u64);

impl XorShift {
    fn unit(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Bytes of `text` over bytes of its zlib compression, as Whisper judges
/// repetitive output.
pub fn compression_ratio(text: &str) -> f32 {
    if text.is_empty() {
        return 0.0;
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let compressed = z
        .write_all(text.as_bytes())
        .and_then(|_| z.finish())
        .map(|v| v.len())
        .unwrap_or(text.len());
    text.len() as f32 / compressed.max(1) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetition_compresses_well() {
        let plain = compression_ratio(
            "And so my fellow Americans, ask not what your country can do for you.",
        );
        let looped = compression_ratio(&"thank you. ".repeat(30));
        assert!(plain < 2.0, "{plain}");
        assert!(looped > 2.4, "{looped}");
    }

    #[test]
    fn log_softmax_sums_to_one() {
        let lp = log_softmax(&[1.0, 2.0, 3.0, f32::NEG_INFINITY]);
        let total: f32 = lp.iter().map(|x| x.exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert_eq!(argmax(&lp), 2);
    }
}
