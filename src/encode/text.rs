//! Sentences as vectors: all-MiniLM-L6-v2 (int8 weights) turns a moment's
//! sentence, or a question, into a unit vector of [`DIMS`] numbers whose
//! dot product with another says how close their meanings are. The index
//! of moments keeps them (as [`quantize`]d bytes) for `vigil ask`.
//!
//! Input: WordPiece ids of the lower-cased text (at most [`MAX_TOKENS`]
//! with `[CLS]` and `[SEP]`), its attention mask and token types (zeros);
//! output: a vector per token, mean-pooled over the mask, L2-normalised.

use ndarray::Array2;
use ort::session::Session;
use ort::value::Tensor;
use tokenizers::Tokenizer;

use crate::encode::runtime::{self, Manifest};
use crate::error::{Error, Result};

/// The model's manifest (`models/minilm.toml`).
pub const MANIFEST: &str = include_str!("../../models/minilm.toml");
/// Its tokenizer's (`models/minilm_tokenizer.toml`), installed beside it.
pub const TOKENIZER_MANIFEST: &str = include_str!("../../models/minilm_tokenizer.toml");
/// Both, for `vigil models`.
pub const MANIFESTS: &[&str] = &[MANIFEST, TOKENIZER_MANIFEST];

/// Numbers in a sentence's vector.
pub const DIMS: usize = 384;
/// Tokens of a sentence looked at; the rest is cut (the model was trained
/// on up to 128 word pieces).
pub const MAX_TOKENS: usize = 128;
/// Sentences per run of the model.
const BATCH: usize = 32;

/// How the encoder will be used: its session is made for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// Many sentences over a long life (the indexer, the server): the graph
    /// optimised once (200 ms), 6 ms a sentence.
    Many,
    /// A question or two and gone (`vigil ask`): loads in 50 ms, 60 ms a
    /// sentence.
    Once,
}

/// The text encoder, loaded.
pub struct TextEncoder {
    session: Session,
    tokenizer: Tokenizer,
}

fn failed(message: String) -> Error {
    Error::Model {
        model: "minilm".into(),
        message,
    }
}

impl TextEncoder {
    /// Loads the model and its tokenizer from the cache (`make setup`).
    pub fn load(usage: Use) -> Result<TextEncoder> {
        let manifest = Manifest::builtin(MANIFEST);
        let words = Manifest::builtin(TOKENIZER_MANIFEST);
        if !words.installed() {
            return Err(words.missing());
        }
        // The tokenizer (30 ms) is read while the session loads.
        let path = words.file();
        let (session, tokenizer) = std::thread::scope(|scope| {
            let tokenizer = scope.spawn(|| Tokenizer::from_file(&path));
            let session = match usage {
                Use::Many => runtime::session(&manifest, 1, Default::default()),
                // The one question is embedded on both cores.
                Use::Once => runtime::quick_session(&manifest, 2),
            };
            (session, tokenizer.join())
        });
        let session = session?;
        let mut tokenizer = tokenizer
            .map_err(|_| failed("its tokenizer's thread stopped unexpectedly".into()))?
            .map_err(|e| {
                failed(format!(
                    "{}: {e}; run `bash models/fetch.sh minilm_tokenizer` to fetch it again",
                    path.display()
                ))
            })?;
        // Padded here to the longest sentence of a batch, not to 128.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| failed(format!("cannot set its truncation: {e}")))?;
        Ok(TextEncoder { session, tokenizer })
    }

    /// Whether both files are in the cache.
    pub fn installed() -> bool {
        MANIFESTS.iter().all(|m| Manifest::builtin(m).installed())
    }

    /// The unit vector of each text, in order.
    pub fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for group in texts.chunks(BATCH) {
            out.extend(self.embed_batch(group)?);
        }
        Ok(out)
    }

    fn embed_batch(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut ids = Vec::with_capacity(texts.len());
        for t in texts {
            let e = self
                .tokenizer
                .encode(*t, true)
                .map_err(|e| failed(format!("cannot tokenise {t:?}: {e}")))?;
            ids.push(e.get_ids().to_vec());
        }
        let n = texts.len();
        let width = ids.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut input = Array2::<i64>::zeros((n, width));
        let mut mask = Array2::<i64>::zeros((n, width));
        for (row, seq) in ids.iter().enumerate() {
            for (col, &id) in seq.iter().enumerate() {
                input[(row, col)] = i64::from(id);
                mask[(row, col)] = 1;
            }
        }
        let types = Array2::<i64>::zeros((n, width));
        let err = runtime::inference_failed("minilm");
        let outputs = self
            .session
            .run(ort::inputs![
                "input_ids" => Tensor::from_array(input).map_err(err)?,
                "attention_mask" => Tensor::from_array(mask).map_err(err)?,
                "token_type_ids" => Tensor::from_array(types).map_err(err)?,
            ])
            .map_err(err)?;
        let (shape, hidden) = outputs["last_hidden_state"]
            .try_extract_tensor::<f32>()
            .map_err(err)?;
        if shape.len() != 3 || shape[0] as usize != n || shape[2] as usize != DIMS {
            return Err(failed(format!(
                "last_hidden_state has shape {shape:?}, expected [{n}, T, {DIMS}]"
            )));
        }
        let t = shape[1] as usize;
        Ok(ids
            .iter()
            .enumerate()
            .map(|(row, seq)| {
                let mut v = vec![0f32; DIMS];
                for tok in 0..seq.len().min(t) {
                    let at = (row * t + tok) * DIMS;
                    for (x, h) in v.iter_mut().zip(&hidden[at..at + DIMS]) {
                        *x += h;
                    }
                }
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                if norm > 0.0 {
                    v.iter_mut().for_each(|x| *x /= norm);
                }
                v
            })
            .collect())
    }
}

/// A unit vector as one signed byte a number (×127): a quarter of the
/// room, and cosines within about 0.01 of the exact ones.
pub fn quantize(v: &[f32]) -> Vec<u8> {
    v.iter()
        .map(|x| (x * 127.0).round().clamp(-127.0, 127.0) as i8 as u8)
        .collect()
}

/// The cosine of a unit vector and a [`quantize`]d one.
pub fn cosine(query: &[f32], stored: &[u8]) -> f32 {
    // Sixteen sums side by side, which the compiler keeps in vector
    // registers: a sentence weighed in a few dozen instructions.
    const LANES: usize = 16;
    let mut sums = [0f32; LANES];
    let (q16, q_rest) = query.split_at(query.len() - query.len() % LANES);
    for (q, s) in q16.chunks_exact(LANES).zip(stored.chunks_exact(LANES)) {
        for ((sum, q), s) in sums.iter_mut().zip(q).zip(s) {
            *sum += q * f32::from(*s as i8);
        }
    }
    let rest: f32 = q_rest
        .iter()
        .zip(stored.get(q16.len()..).unwrap_or(&[]))
        .map(|(q, &b)| q * f32::from(b as i8))
        .sum();
    (sums.iter().sum::<f32>() + rest) / 127.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantized_cosines_stay_close_to_the_exact_ones() {
        let unit = |seed: u32| -> Vec<f32> {
            let mut x = seed;
            let v: Vec<f32> = (0..DIMS)
                .map(|_| {
                    x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (x >> 8) as f32 / (1u32 << 24) as f32 - 0.5
                })
                .collect();
            let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
            v.into_iter().map(|a| a / n).collect()
        };
        for (a, b) in [(1, 2), (3, 3), (5, 9)] {
            let (a, b) = (unit(a), unit(b));
            let exact: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((cosine(&a, &quantize(&b)) - exact).abs() < 0.01);
        }
    }

    #[test]
    fn sentences_close_in_meaning_are_close_in_vectors() {
        let mut m = TextEncoder::load(Use::Many).expect("minilm loads");
        let v = m
            .embed(&[
                "a siren is heard",
                "an ambulance goes by with its siren on",
                "two cars are parked",
            ])
            .expect("embeds");
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        assert!((dot(&v[0], &v[0]) - 1.0).abs() < 1e-4);
        assert!(dot(&v[0], &v[1]) > dot(&v[0], &v[2]) + 0.1);
        // The quick session gives the same vectors.
        let mut q = TextEncoder::load(Use::Once).expect("minilm loads");
        let w = q.embed(&["a siren is heard"]).expect("embeds");
        assert!(dot(&v[0], &w[0]) > 0.999);
    }
}
