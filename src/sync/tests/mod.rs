//! Tests of the synchroniser: exact unit cases (`cases`), regressions of bugs
//! these tests found (`regressions`), and properties over random streams
//! (`props`). This file holds the harness they share.
//!
//! Every real audio sample carries a unique positive value (its input index + 1),
//! so silence (0.0) is told apart from audio, and a lost, duplicated or shifted
//! sample shows up as a wrong value at a position.

use std::sync::Arc;

use proptest::prelude::*;

mod cases;
mod props;
mod regressions;

use crate::media::{AudioBlock, Chunk, ChunkFlags, VideoFrame};
use crate::media::{Branch, Input};
use crate::sync::audio::JITTER_SAMPLES;
use crate::sync::synchroniser::TAIL_TOLERANCE;
use crate::sync::{SyncSettings, SyncStats, Synchroniser};
use crate::time::{
    AUDIO_RATE, MILLISECOND, SECOND, Timestamp, sample_to_time, time_to_sample,
    time_to_sample_nearest,
};

const MS: u64 = MILLISECOND;
const SKEW: u64 = 500 * MS;
/// 1e9 / 16000: exact, so `n * NS_PER_SAMPLE` is sample `n`'s time.
const NS_PER_SAMPLE: u64 = SECOND / AUDIO_RATE as u64;
const HOPS: [u64; 4] = [100 * MS, 250 * MS, SECOND, 1500 * MS];
const UTC: i64 = 1_700_000_000_000_000_000;

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// A message as the tests describe it; turned into an [`Input`] when pushed.
#[derive(Clone, Debug)]
enum Msg {
    Topology {
        video: bool,
        audio: bool,
        live: bool,
    },
    Frame {
        pts: u64,
        duration: u64,
    },
    Audio {
        pts: u64,
        samples: Vec<f32>,
    },
    Eos(Branch),
    /// The UTC of source time `pts`.
    Clock {
        pts: u64,
        utc: i64,
        ntp: bool,
    },
    /// A live source's outage over `[from, to)`.
    Outage {
        from: u64,
        to: u64,
    },
}

impl Msg {
    fn input(&self) -> Input {
        match self {
            Msg::Topology { video, audio, live } => Input::Topology {
                video: *video,
                audio: *audio,
                live: *live,
            },
            Msg::Frame { pts, duration } => Input::Frame(VideoFrame {
                pts: Timestamp(*pts),
                duration: *duration,
                width: 1,
                height: 1,
                rgb: vec![0u8; 3].into(),
                grey: None,
            }),
            Msg::Audio { pts, samples } => Input::Audio(AudioBlock {
                pts: Timestamp(*pts),
                samples: samples.clone(),
            }),
            Msg::Eos(b) => Input::Eos(*b),
            Msg::Clock { pts, utc, ntp } => Input::Clock {
                pts: Timestamp(*pts),
                utc: *utc,
                ntp: *ntp,
            },
            Msg::Outage { from, to } => Input::Outage {
                from: Timestamp(*from),
                to: Timestamp(*to),
            },
        }
    }
}

fn settings(hop: u64, live: bool) -> SyncSettings {
    SyncSettings {
        hop,
        max_skew: SKEW,
        // The properties hold for any interleaving: no branch is ever
        // taken as dead here (`cases` tests that on its own).
        dead_branch: 0,
        dead_branch_live: 0,
        live,
        start_time: None,
        fallback_utc: UTC,
    }
}

struct Harness {
    sync: Synchroniser,
    chunks: Vec<Chunk>,
}

impl Harness {
    fn new(hop: u64, live: bool) -> Self {
        Harness {
            sync: Synchroniser::new(Arc::from("t"), settings(hop, live)),
            chunks: Vec::new(),
        }
    }

    /// Pushes one message; returns how many chunks it released (polled
    /// until none more, as the stage's thread does).
    fn push(&mut self, msg: &Msg) -> usize {
        let before = self.chunks.len();
        self.sync.push(msg.input(), &mut self.chunks);
        self.drain();
        self.chunks.len() - before
    }

    fn drain(&mut self) {
        loop {
            let n = self.chunks.len();
            self.sync.poll(&mut self.chunks);
            if self.chunks.len() == n {
                break;
            }
        }
    }

    fn frame(&mut self, pts: u64, duration: u64) -> usize {
        self.push(&Msg::Frame { pts, duration })
    }

    fn audio(&mut self, pts: u64, samples: Vec<f32>) -> usize {
        self.push(&Msg::Audio { pts, samples })
    }

    fn finish(&mut self) -> usize {
        let before = self.chunks.len();
        self.sync.finish(&mut self.chunks);
        self.drain();
        self.chunks.len() - before
    }
}

/// Pushes every message, then `finish` unless the synchroniser has ended, as
/// the thread in `sync/mod.rs` does. (Calling `finish` after the end is
/// `regressions::finish_after_the_last_chunk_emits_nothing_more`.)
fn run(hop: u64, live: bool, msgs: &[Msg]) -> (Vec<Chunk>, SyncStats) {
    let mut h = Harness::new(hop, live);
    for m in msgs {
        h.push(m);
    }
    if !h.sync.ended() {
        h.finish();
    }
    (h.chunks, h.sync.stats())
}

/// Samples `[from, from + n)` with values `from + 1 ..= from + n`.
fn ramp(from: u64, n: u64) -> Vec<f32> {
    (from..from + n).map(|i| (i + 1) as f32).collect()
}

fn ts(t: u64) -> u64 {
    time_to_sample(Timestamp(t), AUDIO_RATE)
}

fn all_audio(chunks: &[Chunk]) -> Vec<f32> {
    chunks
        .iter()
        .flat_map(|c| c.audio.iter().copied())
        .collect()
}

/// A small deterministic generator (SplitMix64) for interleavings and jitter.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Merges the two branches' messages at random, each keeping its own order;
/// `topology` goes at a random position.
fn interleave(topology: Msg, video: &[Msg], audio: &[Msg], seed: u64) -> Vec<Msg> {
    let mut rng = Rng(seed);
    let bias = rng.below(101);
    let (mut v, mut a) = (video.iter(), audio.iter());
    let (mut nv, mut na) = (video.len(), audio.len());
    let mut out = Vec::with_capacity(nv + na + 1);
    while nv + na > 0 {
        let take_video = na == 0 || (nv > 0 && rng.below(100) < bias);
        if take_video {
            out.extend(v.next().cloned());
            nv -= 1;
        } else {
            out.extend(a.next().cloned());
            na -= 1;
        }
    }
    let at = rng.below(out.len() as u64 + 1) as usize;
    out.insert(at, topology);
    out
}

/// A chunk minus what may differ between runs (`made_at`), for comparisons.
#[derive(Debug, PartialEq)]
struct View {
    seq: u64,
    span: (u64, u64),
    frames: Vec<(u64, u64)>,
    audio: Vec<u32>,
    first_sample: u64,
    flags: ChunkFlags,
    has_audio: bool,
    has_video: bool,
    utc_origin: i64,
}

fn view(chunks: &[Chunk]) -> Vec<View> {
    chunks
        .iter()
        .map(|c| View {
            seq: c.seq,
            span: (c.span.start.0, c.span.end.0),
            frames: c.frames.iter().map(|f| (f.pts.0, f.duration)).collect(),
            audio: c.audio.iter().map(|s| s.to_bits()).collect(),
            first_sample: c.first_sample,
            flags: c.flags,
            has_audio: c.has_audio,
            has_video: c.has_video,
            utc_origin: c.utc_origin,
        })
        .collect()
}

/// Spans contiguous from 0, `hop` long but the last, `last` on the last only,
/// `seq` counting, audio exactly the span's samples.
fn check_spans(
    chunks: &[Chunk],
    hop: u64,
    has_video: bool,
    has_audio: bool,
) -> Result<(), TestCaseError> {
    prop_assert!(!chunks.is_empty(), "no chunks");
    let mut at = 0;
    for (i, c) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        prop_assert_eq!(c.seq, i as u64);
        prop_assert_eq!(c.span.start.0, at, "chunk {} does not follow on", i);
        prop_assert!(c.span.end > c.span.start, "chunk {} is empty", i);
        if last {
            prop_assert!(c.flags.last, "the last chunk ({}) lacks `last`", i);
            prop_assert!(c.span.duration() <= hop);
        } else {
            prop_assert!(
                !c.flags.last,
                "chunk {} of {} is flagged last",
                i,
                chunks.len()
            );
            prop_assert_eq!(c.span.duration(), hop, "chunk {} is not a hop long", i);
        }
        let (s0, s1) = (ts(c.span.start.0), ts(c.span.end.0));
        prop_assert_eq!(c.first_sample, s0);
        let want = if has_audio { (s1 - s0) as usize } else { 0 };
        prop_assert_eq!(c.audio.len(), want, "chunk {} audio length", i);
        prop_assert_eq!(c.has_audio, has_audio);
        prop_assert_eq!(c.has_video, has_video);
        // Files date stream time zero from the settings (UTC, in 2023); live
        // sources from the wall clock when their first buffer came (now).
        let year = 365 * 86_400 * SECOND as i64;
        prop_assert!(
            c.utc_origin == UTC || c.utc_origin > UTC + year,
            "utc origin {}",
            c.utc_origin
        );
        prop_assert_eq!(
            c.utc_origin,
            chunks[0].utc_origin,
            "one origin for the stream"
        );
        prop_assert!(!c.flags.frames_dropped && !c.flags.audio_dropped);
        at = c.span.end.0;
    }
    Ok(())
}

/// Every frame in the chunk whose span holds its PTS, once, in order.
fn check_frames(chunks: &[Chunk], want: &[u64]) -> Result<(), TestCaseError> {
    let mut got = Vec::new();
    for c in chunks {
        for f in &c.frames {
            prop_assert!(
                c.span.contains(f.pts),
                "frame {} in chunk {} [{}, {})",
                f.pts.0,
                c.seq,
                c.span.start.0,
                c.span.end.0
            );
            got.push(f.pts.0);
        }
    }
    prop_assert_eq!(got, want.to_vec());
    Ok(())
}

fn audio_only_topology() -> Msg {
    Msg::Topology {
        video: false,
        audio: true,
        live: false,
    }
}

fn both_topology(live: bool) -> Msg {
    Msg::Topology {
        video: true,
        audio: true,
        live,
    }
}

/// Both branches; `samples` of audio from 0, then its end, then `frames`
/// frames `step` apart from 0, then the video's end: an audio branch that
/// stops while the picture goes on.
fn audio_ends_first(samples: u64, frames: u64, step: u64) -> Vec<Msg> {
    let mut msgs = vec![
        both_topology(false),
        Msg::Audio {
            pts: 0,
            samples: ramp(0, samples),
        },
        Msg::Eos(Branch::Audio),
    ];
    for i in 0..frames {
        msgs.push(Msg::Frame {
            pts: i * step,
            duration: step,
        });
    }
    msgs.push(Msg::Eos(Branch::Video));
    msgs
}
