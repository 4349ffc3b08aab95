//! Loudness: RMS and peak level in dBFS per chunk and per 100 ms window, with
//! the onset of loud sound refined inside the window where it starts.

use crate::config::LoudnessConfig;
use crate::encode::kind::{self, Kind, Part};
use crate::encode::{Encoder, Features, dbfs};
use crate::error::Result;
use crate::media::Chunk;
use crate::time::{AUDIO_RATE, Timestamp, sample_to_time};

/// Loudness: levels over sliding windows.
pub const KIND: Kind = Kind {
    name: "loudness",
    manifests: &[],
    manifest: kind::no_model,
    section: None,
    on: |c| c.loudness.is_some(),
    off: |c| c.loudness = None,
    check: kind::nothing_to_check,
    start: kind::no_worker,
    build: |c, _, _| {
        Ok(c.loudness
            .as_ref()
            .map(|l| Part::Encoder(Box::new(Loudness::new(l.clone())))))
    },
};

/// Samples per level window (100 ms at 16 kHz).
pub const WINDOW: usize = AUDIO_RATE as usize / 10;
/// Samples per onset sub-window (10 ms at 16 kHz).
pub const SUB_WINDOW: usize = AUDIO_RATE as usize / 100;

/// Level of one 100 ms window of stream time.
#[derive(Clone, Debug, PartialEq)]
pub struct LevelWindow {
    pub start: Timestamp,
    pub end: Timestamp,
    pub rms_db: f32,
    pub peak_db: f32,
    /// RMS at or above the threshold.
    pub active: bool,
    /// Where loud sound began, when this window starts it.
    pub onset: Option<Timestamp>,
}

/// What loudness found in one chunk.
#[derive(Clone, Debug, PartialEq)]
pub struct LoudnessFeatures {
    pub rms_db: f32,
    pub peak_db: f32,
    /// Windows that ended in this chunk, in order.
    pub windows: Vec<LevelWindow>,
}

/// The loudness encoder of one stream.
pub struct Loudness {
    threshold_db: f32,
    /// Threshold as a linear amplitude.
    threshold: f32,
    /// Samples not yet in a complete window, starting at sample `pending_start`.
    pending: Vec<f32>,
    pending_start: u64,
    /// The last complete window's samples, for onsets that straddle windows.
    previous: Vec<f32>,
    previous_active: bool,
}

impl Loudness {
    pub fn new(config: LoudnessConfig) -> Self {
        Loudness {
            threshold_db: config.threshold_db,
            threshold: 10f32.powf(config.threshold_db / 20.0),
            pending: Vec::new(),
            pending_start: 0,
            previous: Vec::new(),
            previous_active: false,
        }
    }

    fn chunk(&mut self, chunk: &Chunk) -> LoudnessFeatures {
        let (rms, peak) = levels(&chunk.audio);
        if !chunk.has_audio {
            return LoudnessFeatures {
                rms_db: dbfs(rms),
                peak_db: dbfs(peak),
                windows: Vec::new(),
            };
        }
        if chunk.first_sample != self.pending_start + self.pending.len() as u64 {
            // Chunks were dropped (live backlog): start again on the grid.
            self.pending.clear();
            self.previous.clear();
            self.previous_active = false;
        }
        if self.pending.is_empty() {
            // Windows sit on the stream's 100 ms grid whatever the hop.
            let offset = (chunk.first_sample % WINDOW as u64) as usize;
            self.pending_start = chunk.first_sample - offset as u64;
            self.pending.resize(offset, 0.0);
        }
        self.pending.extend_from_slice(&chunk.audio);
        let mut windows = Vec::new();
        let complete = if chunk.flags.last {
            self.pending.len()
        } else {
            self.pending.len() / WINDOW * WINDOW
        };
        let pending = std::mem::take(&mut self.pending);
        for w in pending[..complete].chunks(WINDOW) {
            windows.push(self.window(w));
        }
        self.pending = pending[complete..].to_vec();
        LoudnessFeatures {
            rms_db: dbfs(rms),
            peak_db: dbfs(peak),
            windows,
        }
    }

    fn window(&mut self, samples: &[f32]) -> LevelWindow {
        let start_sample = self.pending_start;
        self.pending_start += samples.len() as u64;
        let (rms, peak) = levels(samples);
        let rms_db = dbfs(rms);
        let active = rms_db >= self.threshold_db;
        let onset = (active && !self.previous_active).then(|| self.onset(start_sample, samples));
        self.previous = samples.to_vec();
        self.previous_active = active;
        LevelWindow {
            start: sample_to_time(start_sample, AUDIO_RATE),
            end: sample_to_time(start_sample + samples.len() as u64, AUDIO_RATE),
            rms_db,
            peak_db: dbfs(peak),
            active,
            onset,
        }
    }

    /// The first 10 ms sub-window (searched from the previous window on) whose
    /// RMS reaches the threshold, then inside it the first sample that does.
    fn onset(&self, start_sample: u64, samples: &[f32]) -> Timestamp {
        let from = start_sample - self.previous.len() as u64;
        let joined: Vec<f32> = self.previous.iter().chain(samples).copied().collect();
        let mut at = start_sample;
        for (i, sub) in joined.chunks(SUB_WINDOW).enumerate() {
            if dbfs(levels(sub).0) >= self.threshold_db {
                let first = sub
                    .iter()
                    .position(|x| x.abs() >= self.threshold)
                    .unwrap_or(0);
                at = from + (i * SUB_WINDOW + first) as u64;
                break;
            }
        }
        sample_to_time(at, AUDIO_RATE)
    }
}

/// RMS and peak amplitude.
fn levels(samples: &[f32]) -> (f32, f32) {
    if samples.is_empty() {
        return (0.0, 0.0);
    }
    let (mut sum, mut peak) = (0f64, 0f32);
    for &x in samples {
        sum += (x as f64) * (x as f64);
        peak = peak.max(x.abs());
    }
    (((sum / samples.len() as f64).sqrt()) as f32, peak)
}

impl Encoder for Loudness {
    fn name(&self) -> &'static str {
        "loudness"
    }

    fn encode(&mut self, chunks: &[&Chunk]) -> Result<Vec<Features>> {
        Ok(chunks
            .iter()
            .map(|c| Features::Loudness(self.chunk(c)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::media::ChunkFlags;
    use crate::time::{MILLISECOND, SECOND, Span};

    fn chunks_of(audio: &[f32], hop: usize) -> Vec<Chunk> {
        audio
            .chunks(hop)
            .enumerate()
            .map(|(i, a)| Chunk {
                stream: Arc::from("t"),
                seq: i as u64,
                span: Span::new(
                    sample_to_time((i * hop) as u64, AUDIO_RATE),
                    sample_to_time((i * hop + a.len()) as u64, AUDIO_RATE),
                ),
                frames: vec![],
                audio: a.to_vec().into(),
                first_sample: (i * hop) as u64,
                flags: ChunkFlags {
                    last: (i + 1) * hop >= audio.len(),
                    ..Default::default()
                },
                utc_origin: 0,
                pts_origin: 0,
                has_audio: true,
                has_video: false,
                video_end: None,
                audio_end: None,
                made_at: std::time::Instant::now(),
            })
            .collect()
    }

    fn tone_from(start: usize, total: usize) -> Vec<f32> {
        (0..total)
            .map(|n| {
                if n < start {
                    0.0
                } else {
                    0.5 * (2.0 * std::f32::consts::PI * 1000.0 * (n - start) as f32 / 16000.0).sin()
                }
            })
            .collect()
    }

    #[test]
    fn onset_off_the_grid_is_found_to_the_sample() {
        // 1 kHz tone from 3.037 s; hop 1 s.
        let audio = tone_from(48_592, 5 * 16_000);
        let mut l = Loudness::new(LoudnessConfig::default());
        let mut onsets = vec![];
        for c in chunks_of(&audio, 16_000) {
            let f = l.chunk(&c);
            onsets.extend(f.windows.iter().filter_map(|w| w.onset));
        }
        assert_eq!(onsets.len(), 1);
        let err = onsets[0].0.abs_diff(3_037 * MILLISECOND);
        assert!(err < MILLISECOND, "onset {} off by {err} ns", onsets[0]);
    }

    #[test]
    fn windows_follow_the_grid_across_odd_hops() {
        let audio = tone_from(0, 16_000 * 2);
        let mut l = Loudness::new(LoudnessConfig::default());
        let mut windows = vec![];
        for c in chunks_of(&audio, 2_400) {
            windows.extend(l.chunk(&c).windows);
        }
        assert_eq!(windows.len(), 20);
        assert!(windows.iter().all(|w| w.end.0 - w.start.0 == SECOND / 10));
        // 0.5 amplitude sine: RMS -9 dBFS, peak -6 dBFS.
        assert!((windows[5].rms_db + 9.03).abs() < 0.1, "{:?}", windows[5]);
        assert!((windows[5].peak_db + 6.02).abs() < 0.1);
    }
}
