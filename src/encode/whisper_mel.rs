//! Whisper's log-mel front end: 16 kHz audio padded to 30 s → 80 × 3000.
//!
//! As Whisper's `log_mel_spectrogram`: a 400-point STFT every 160 samples
//! with a periodic Hann window, centred (the signal reflected by 200 samples
//! at both ends), the power spectrum, the last frame dropped; 80 mel bands
//! from librosa's `mel(sr=16000, n_fft=400, n_mels=80)` (Slaney scale and
//! area normalisation); `log10(max(mel, 1e-10))`, floored at 8 below the
//! maximum, then `(x + 4) / 4`.

use rustfft::FftPlanner;
use rustfft::num_complex::Complex;

pub const SAMPLES: usize = 480_000;
pub const FRAMES: usize = 3000;
pub const MELS: usize = 80;
const N_FFT: usize = 400;
const HOP: usize = 160;
const BINS: usize = N_FFT / 2 + 1;

fn hz_to_mel(f: f64) -> f64 {
    let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
    let min_log_mel = min_log_hz / f_sp;
    let log_step = 6.4f64.ln() / 27.0;
    if f >= min_log_hz {
        min_log_mel + (f / min_log_hz).ln() / log_step
    } else {
        f / f_sp
    }
}

fn mel_to_hz(m: f64) -> f64 {
    let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
    let min_log_mel = min_log_hz / f_sp;
    let log_step = 6.4f64.ln() / 27.0;
    if m >= min_log_mel {
        min_log_hz * (log_step * (m - min_log_mel)).exp()
    } else {
        f_sp * m
    }
}

/// librosa's Slaney mel filter bank, `[band][bin]`.
pub fn filters() -> Vec<[f32; BINS]> {
    let top = hz_to_mel(8000.0);
    let edges: Vec<f64> = (0..MELS + 2)
        .map(|i| mel_to_hz(top * i as f64 / (MELS + 1) as f64))
        .collect();
    (0..MELS)
        .map(|m| {
            let mut row = [0.0f32; BINS];
            let norm = 2.0 / (edges[m + 2] - edges[m]);
            for (k, v) in row.iter_mut().enumerate() {
                let f = 8000.0 * k as f64 / (BINS - 1) as f64;
                let lower = (f - edges[m]) / (edges[m + 1] - edges[m]);
                let upper = (edges[m + 2] - f) / (edges[m + 2] - edges[m + 1]);
                *v = (lower.min(upper).max(0.0) * norm) as f32;
            }
            row
        })
        .collect()
}

/// The log-mel of up to 30 s of 16 kHz audio (longer is cut), as
/// `[band * FRAMES + frame]`.
pub fn log_mel(samples: &[f32]) -> Vec<f32> {
    let mut audio = vec![0.0f32; SAMPLES];
    let n = samples.len().min(SAMPLES);
    audio[..n].copy_from_slice(&samples[..n]);
    // Reflect 200 samples at each end (numpy/torch "reflect": no repeat of the edge).
    let pad = N_FFT / 2;
    let mut padded = Vec::with_capacity(SAMPLES + 2 * pad);
    padded.extend((1..=pad).rev().map(|i| audio[i]));
    padded.extend_from_slice(&audio);
    padded.extend((SAMPLES - 1 - pad..SAMPLES - 1).rev().map(|i| audio[i]));
    let window: Vec<f32> = (0..N_FFT)
        .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / N_FFT as f64).cos()) as f32)
        .collect();
    let fft = FftPlanner::new().plan_fft_forward(N_FFT);
    let mut scratch = vec![Complex::default(); fft.get_inplace_scratch_len()];
    let mut buf = vec![Complex::default(); N_FFT];
    let bank = filters();
    let mut mel = vec![0.0f32; MELS * FRAMES];
    let mut power = [0.0f32; BINS];
    for frame in 0..FRAMES {
        let at = frame * HOP;
        for (k, b) in buf.iter_mut().enumerate() {
            *b = Complex::new(padded[at + k] * window[k], 0.0);
        }
        fft.process_with_scratch(&mut buf, &mut scratch);
        for (p, b) in power.iter_mut().zip(&buf) {
            *p = b.norm_sqr();
        }
        for (m, row) in bank.iter().enumerate() {
            let v: f32 = row.iter().zip(&power).map(|(w, p)| w * p).sum();
            mel[m * FRAMES + frame] = v.max(1e-10).log10();
        }
    }
    let max = mel.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for v in &mut mel {
        *v = ((*v).max(max - 8.0) + 4.0) / 4.0;
    }
    mel
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_is_flat_at_the_floor() {
        let mel = log_mel(&[]);
        assert_eq!(mel.len(), MELS * FRAMES);
        // log10(1e-10) = -10, the maximum; (-10 + 4) / 4 = -1.5 everywhere.
        assert!(mel.iter().all(|v| (v + 1.5).abs() < 1e-6));
    }

    /// Against numpy's implementation of Whisper's formula (the one the
    /// conversion check uses), on a known signal: fixture made by
    /// `models/whisper_frontend.py`.
    #[test]
    fn matches_the_reference_on_a_known_signal() {
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/whisper_logmel.json"))
                .expect("the fixture is JSON");
        let mel = log_mel(&crate::encode::logmel::known_signal());
        let frames = fixture["frames"].as_array().expect("frames");
        let mut worst = 0.0f64;
        for (f, row) in frames.iter().enumerate() {
            for (m, v) in row.as_array().expect("a frame").iter().enumerate() {
                let ours = mel[m * FRAMES + f] as f64;
                worst = worst.max((ours - v.as_f64().unwrap_or(f64::NAN)).abs());
            }
        }
        assert!(worst < 1e-3, "largest difference {worst}");
    }

    #[test]
    fn a_filter_peaks_where_its_band_is() {
        let bank = filters();
        // Band 0 starts at 0 Hz; every band has weight somewhere, and the
        // Slaney normalisation makes wide (high) bands lower.
        assert!(bank.iter().all(|r| r.iter().any(|&w| w > 0.0)));
        let peak = |m: usize| bank[m].iter().copied().fold(0.0f32, f32::max);
        assert!(peak(79) < peak(10));
    }
}
