//! YAMNet's log-mel front end, streaming: 16 kHz mono in, one 64-band frame
//! every 10 ms out.
//!
//! Exactly as YAMNet computes its features (`features.py` of the model):
//! 25 ms frames (400 samples) every 10 ms (160), a periodic Hann window, the
//! magnitude (not the power) of a 512-point FFT, 64 triangular mel bands
//! from 125 to 7500 Hz on the HTK mel scale (1127·ln(1 + f/700)) built as
//! TensorFlow's `linear_to_mel_weight_matrix` builds them (triangles in mel,
//! the DC bin's weights zero), then `ln(mel + 0.001)`.

use std::sync::Arc;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

pub const WINDOW: usize = 400;
pub const HOP: usize = 160;
pub const FFT: usize = 512;
pub const BANDS: usize = 64;
const BINS: usize = FFT / 2 + 1;
const LOW_HZ: f64 = 125.0;
const HIGH_HZ: f64 = 7500.0;
const RATE: f64 = 16_000.0;
const LOG_OFFSET: f32 = 0.001;

fn hz_to_mel(hz: f64) -> f64 {
    1127.0 * (1.0 + hz / 700.0).ln()
}

/// TensorFlow's `linear_to_mel_weight_matrix(64, 257, 16000, 125, 7500)`,
/// as `[bin][band]`.
pub fn mel_weights() -> Vec<[f32; BANDS]> {
    let nyquist = RATE / 2.0;
    let (lo, hi) = (hz_to_mel(LOW_HZ), hz_to_mel(HIGH_HZ));
    let edges: Vec<f64> = (0..BANDS + 2)
        .map(|i| lo + (hi - lo) * i as f64 / (BANDS + 1) as f64)
        .collect();
    let mut w = vec![[0.0f32; BANDS]; BINS];
    // Bin 0 (DC) keeps zero weights.
    for (bin, row) in w.iter_mut().enumerate().skip(1) {
        let mel = hz_to_mel(nyquist * bin as f64 / (BINS - 1) as f64);
        for (band, v) in row.iter_mut().enumerate() {
            let (l, c, u) = (edges[band], edges[band + 1], edges[band + 2]);
            let lower = (mel - l) / (c - l);
            let upper = (u - mel) / (u - c);
            *v = lower.min(upper).max(0.0) as f32;
        }
    }
    w
}

/// The periodic Hann window of 400 samples.
pub fn hann() -> Vec<f32> {
    (0..WINDOW)
        .map(|n| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / WINDOW as f64).cos()) as f32)
        .collect()
}

/// Streaming log-mel frames.
pub struct LogMel {
    fft: Arc<dyn Fft<f32>>,
    window: Vec<f32>,
    weights: Vec<[f32; BANDS]>,
    /// Samples not yet consumed by a whole frame.
    pending: Vec<f32>,
    buffer: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
}

impl Default for LogMel {
    fn default() -> Self {
        Self::new()
    }
}

impl LogMel {
    pub fn new() -> Self {
        let fft = FftPlanner::new().plan_fft_forward(FFT);
        let scratch = vec![Complex::default(); fft.get_inplace_scratch_len()];
        LogMel {
            fft,
            window: hann(),
            weights: mel_weights(),
            pending: Vec::new(),
            buffer: vec![Complex::default(); FFT],
            scratch,
        }
    }

    /// Forgets buffered samples (a discontinuity).
    pub fn reset(&mut self) {
        self.pending.clear();
    }

    /// Takes samples; returns the frames they complete, in order.
    pub fn push(&mut self, samples: &[f32]) -> Vec<[f32; BANDS]> {
        self.pending.extend_from_slice(samples);
        let mut frames = Vec::new();
        let mut at = 0;
        while at + WINDOW <= self.pending.len() {
            frames.push(self.frame(at));
            at += HOP;
        }
        self.pending.drain(..at);
        frames
    }

    fn frame(&mut self, at: usize) -> [f32; BANDS] {
        let samples = &self.pending[at..at + WINDOW];
        for (k, b) in self.buffer.iter_mut().enumerate() {
            *b = Complex::new(
                if k < WINDOW {
                    samples[k] * self.window[k]
                } else {
                    0.0
                },
                0.0,
            );
        }
        self.fft
            .process_with_scratch(&mut self.buffer, &mut self.scratch);
        let mut mel = [0.0f32; BANDS];
        for (bin, row) in self.weights.iter().enumerate() {
            let magnitude = self.buffer[bin].norm();
            if magnitude == 0.0 {
                continue;
            }
            for (m, w) in mel.iter_mut().zip(row) {
                *m += magnitude * w;
            }
        }
        mel.map(|m| (m + LOG_OFFSET).ln())
    }
}

/// The signal of the front ends' fixtures (`models/*_frontend.py`): 0.1 s
/// of two tones and a chirp.
#[cfg(test)]
pub(crate) fn known_signal() -> Vec<f32> {
    let pi2 = 2.0 * std::f64::consts::PI;
    (0..1600)
        .map(|n| {
            let n = n as f64;
            (0.4 * (pi2 * 440.0 * n / 16000.0).sin()
                + 0.2 * (pi2 * 3000.0 * n / 16000.0).sin()
                + 0.1 * (pi2 * (200.0 + 20.0 * n / 16.0) * n / 16000.0).sin()) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_is_the_log_offset() {
        let mut lm = LogMel::new();
        let frames = lm.push(&vec![0.0; WINDOW + 2 * HOP]);
        assert_eq!(frames.len(), 3);
        for f in frames {
            assert!(f.iter().all(|v| (v - LOG_OFFSET.ln()).abs() < 1e-6));
        }
    }

    #[test]
    fn frames_do_not_depend_on_how_samples_arrive() {
        let signal: Vec<f32> = (0..5000)
            .map(|n| (n as f32 * 0.05).sin() * 0.3 + ((n * 7919) % 13) as f32 * 0.01)
            .collect();
        let whole = LogMel::new().push(&signal);
        let mut lm = LogMel::new();
        let mut parts = Vec::new();
        for piece in signal.chunks(333) {
            parts.extend(lm.push(piece));
        }
        assert_eq!(whole.len(), (5000 - WINDOW) / HOP + 1);
        assert_eq!(whole, parts);
    }

    /// A pure tone puts its energy in the bands around its frequency; the
    /// value follows from first principles: the magnitude at the tone's bin
    /// of a Hann-windowed sine of amplitude A is A·N/4 (N = 400 samples),
    /// spread over neighbouring bins by the window; the band's value is the
    /// triangle-weighted sum of those magnitudes.
    #[test]
    fn a_tone_lands_in_its_band_with_the_expected_energy() {
        // 1000 Hz = bin 32 exactly (16000 / 512 = 31.25 Hz per bin).
        let f = 1000.0f64;
        let a = 0.5f64;
        let signal: Vec<f32> = (0..WINDOW)
            .map(|n| (a * (2.0 * std::f64::consts::PI * f * n as f64 / RATE).sin()) as f32)
            .collect();
        let frame = LogMel::new().push(&signal)[0];
        let best = (0..BANDS)
            .max_by(|&x, &y| frame[x].total_cmp(&frame[y]))
            .unwrap_or(0);
        // The band whose centre is nearest 1000 Hz in mel.
        let (lo, hi) = (hz_to_mel(LOW_HZ), hz_to_mel(HIGH_HZ));
        let centre = |b: usize| lo + (hi - lo) * (b + 1) as f64 / (BANDS + 1) as f64;
        let nearest = (0..BANDS)
            .min_by(|&x, &y| {
                (centre(x) - hz_to_mel(f))
                    .abs()
                    .total_cmp(&(centre(y) - hz_to_mel(f)).abs())
            })
            .unwrap_or(0);
        assert!(
            best.abs_diff(nearest) <= 1,
            "best {best}, nearest {nearest}"
        );
        // Upper bound: all of the tone's magnitude (sum over bins ≤ A·N/2
        // for the Hann main lobe: 1/4 at the peak, 1/8 at each side, in a
        // zero-padded FFT a little more spread) weighted by at most 1.
        let peak = a * WINDOW as f64 / 4.0;
        let value = (frame[best] as f64).exp() - LOG_OFFSET as f64;
        assert!(
            value > 0.3 * peak && value < 2.5 * peak,
            "{value} vs {peak}"
        );
        // Far bands see only leakage: orders of magnitude less.
        let far = (frame[0] as f64).exp();
        assert!(far < value / 100.0, "{far} vs {value}");
    }

    /// Against TensorFlow's own `stft` and `linear_to_mel_weight_matrix`
    /// (the fixture is made by `models/yamnet_frontend.py`).
    #[test]
    fn matches_tensorflow_on_a_known_signal() {
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/yamnet_logmel.json"))
                .expect("the fixture is JSON");
        let ours = LogMel::new().push(&known_signal());
        let theirs = fixture["frames"].as_array().expect("frames");
        assert_eq!(ours.len(), theirs.len());
        // Compared as mel energies: relative 0.1 %, plus an absolute 1e-5
        // for the bands near the floor, where single-precision FFT round-off
        // of the leakage is all there is (the fixture's own is 1e-6).
        let mut worst = 0.0f64;
        for (a, b) in ours.iter().zip(theirs) {
            for (x, y) in a.iter().zip(b.as_array().expect("a frame")) {
                let (x, y) = ((*x as f64).exp(), y.as_f64().unwrap_or(f64::NAN).exp());
                worst = worst.max((x - y).abs() / (1e-5 + 1e-3 * y));
            }
        }
        assert!(worst <= 1.0, "worst difference {worst} of the tolerance");
    }

    #[test]
    fn weights_match_tensorflow_at_known_points() {
        let w = mel_weights();
        assert!(w[0].iter().all(|&v| v == 0.0), "DC carries nothing");
        // 125 Hz (bin 4) is the first band's lower edge: weight 0 there.
        assert!(w[4][0].abs() < 1e-6);
        // Each band rises from 0 to 1 at its centre: every band's peak is
        // close to 1 and no weight exceeds 1.
        for band in 0..BANDS {
            let peak = w.iter().map(|r| r[band]).fold(0.0f32, f32::max);
            assert!(peak <= 1.0 + 1e-6 && peak > 0.5, "band {band}: {peak}");
        }
        // Above 7500 Hz (bin 240) nothing.
        assert!(w[241].iter().all(|&v| v == 0.0));
    }
}
