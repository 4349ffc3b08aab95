//! Properties over random streams (proptest).

use super::*;

// ---------------------------------------------------------------------------
// Properties: files
// ---------------------------------------------------------------------------

/// Where an audio block starts, against where the previous one ended.
#[derive(Clone, Debug)]
enum Rel {
    Contiguous,
    /// Within `JITTER_SAMPLES` either way of the ideal position; contiguous
    /// unless earlier jitter already moved the track the other way.
    Jitter(i64),
    /// A gap of this many samples (more than twice the jitter tolerance).
    Gap(u64),
    /// An overlap of this many samples (ditto).
    Overlap(u64),
}

#[derive(Clone, Debug)]
struct VideoSpec {
    period: u64,
    /// Per frame: offset in thousandths of half a period, and whether the
    /// frame has a duration.
    frames: Vec<(u64, bool)>,
}

#[derive(Clone, Debug)]
struct FileCase {
    hop: u64,
    base: u64,
    video_offset: u64,
    audio_offset: u64,
    video: Option<VideoSpec>,
    audio: Option<Vec<(u64, Rel)>>,
    send_eos: bool,
    seed: u64,
}

/// What a file case must come out as.
#[derive(Debug, Default)]
struct Expected {
    /// Source PTS of stream time zero; `None` if there is no data at all.
    origin: Option<u64>,
    /// Frame PTS in stream time, in order.
    frames: Vec<u64>,
    /// The audio track: real samples and gap silence, from sample 0.
    track: Vec<f32>,
    /// Gap-filled ranges of `track`.
    gaps: Vec<(u64, u64)>,
    /// Input samples that must survive (all but trimmed overlaps), in order.
    kept: Vec<f32>,
    samples_in: u64,
    trimmed: u64,
    filled: u64,
    end: u64,
    audio_end: u64,
}

impl FileCase {
    fn topology(&self) -> Msg {
        Msg::Topology {
            video: self.video.is_some(),
            audio: self.audio.is_some(),
            live: false,
        }
    }

    /// Frame PTS and durations, in source time.
    fn frames(&self) -> Vec<(u64, u64)> {
        let Some(v) = &self.video else {
            return Vec::new();
        };
        v.frames
            .iter()
            .enumerate()
            .map(|(j, &(jit, has_duration))| {
                let pts = self.base
                    + self.video_offset
                    + j as u64 * v.period
                    + jit * (v.period / 2) / 1000;
                (pts, if has_duration { v.period } else { 0 })
            })
            .collect()
    }

    /// Audio blocks (source PTS, samples), with their intended relation.
    fn blocks(&self) -> Vec<(u64, Vec<f32>, Rel)> {
        let Some(spec) = &self.audio else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut ideal_next = 0u64;
        let mut value = 0u64;
        for (k, (len, rel)) in spec.iter().enumerate() {
            let rel = match rel {
                _ if k == 0 => Rel::Contiguous,
                Rel::Overlap(o) if *o > ideal_next => Rel::Contiguous,
                Rel::Jitter(j) if ideal_next as i64 + j < 0 => Rel::Contiguous,
                r => r.clone(),
            };
            let start = match rel {
                Rel::Contiguous => ideal_next,
                Rel::Jitter(j) => (ideal_next as i64 + j) as u64,
                Rel::Gap(g) => ideal_next + g,
                Rel::Overlap(o) => ideal_next - o,
            };
            let pts = self.base + self.audio_offset + start * NS_PER_SAMPLE;
            out.push((pts, ramp(value, *len), rel));
            value += len;
            ideal_next = ideal_next.max(start + len);
        }
        out
    }

    fn video_msgs(&self) -> Vec<Msg> {
        let mut m: Vec<Msg> = self
            .frames()
            .into_iter()
            .map(|(pts, duration)| Msg::Frame { pts, duration })
            .collect();
        if self.send_eos && self.video.is_some() {
            m.push(Msg::Eos(Branch::Video));
        }
        m
    }

    fn audio_msgs(&self) -> Vec<Msg> {
        let mut m: Vec<Msg> = self
            .blocks()
            .into_iter()
            .map(|(pts, samples, _)| Msg::Audio { pts, samples })
            .collect();
        if self.send_eos && self.audio.is_some() {
            m.push(Msg::Eos(Branch::Audio));
        }
        m
    }

    /// The expected stream, built from the DESIGN's rules: stream time zero
    /// at the earliest first PTS, blocks placed at their nearest sample, a
    /// start more than `JITTER_SAMPLES` past the track's end is a gap, more
    /// than `JITTER_SAMPLES` before it an overlap, anything else contiguous.
    fn expected(&self) -> Result<Expected, TestCaseError> {
        let frames = self.frames();
        let blocks = self.blocks();
        let origin = frames
            .first()
            .map(|f| f.0)
            .into_iter()
            .chain(blocks.first().map(|b| b.0))
            .min();
        let mut e = Expected {
            origin,
            ..Expected::default()
        };
        let Some(origin) = origin else { return Ok(e) };
        let mut video_end = 0;
        for &(pts, duration) in &frames {
            let rel = pts - origin;
            e.frames.push(rel);
            video_end = video_end.max(rel + duration).max(rel + 1);
        }
        for (k, (pts, samples, rel)) in blocks.iter().enumerate() {
            let start = time_to_sample_nearest(Timestamp(pts - origin), AUDIO_RATE);
            let next = e.track.len() as u64;
            e.samples_in += samples.len() as u64;
            let skip = if start > next + JITTER_SAMPLES {
                prop_assert!(
                    k == 0 || matches!(rel, Rel::Gap(_) | Rel::Jitter(_)),
                    "block {} misread as a gap",
                    k
                );
                e.gaps.push((next, start));
                e.filled += start - next;
                e.track.resize(start as usize, 0.0);
                0
            } else if start + JITTER_SAMPLES < next {
                prop_assert!(
                    matches!(rel, Rel::Overlap(_) | Rel::Jitter(_)),
                    "block {} misread as an overlap",
                    k
                );
                (next - start).min(samples.len() as u64) as usize
            } else {
                prop_assert!(
                    matches!(rel, Rel::Contiguous | Rel::Jitter(_)) || k == 0,
                    "block {} misread as contiguous",
                    k
                );
                0
            };
            e.trimmed += skip as u64;
            e.track.extend_from_slice(&samples[skip..]);
            e.kept.extend_from_slice(&samples[skip..]);
        }
        e.audio_end = if self.audio.is_some() {
            sample_to_time(e.track.len() as u64, AUDIO_RATE).0
        } else {
            0
        };
        e.end = video_end.max(e.audio_end);
        Ok(e)
    }
}

fn rel() -> impl Strategy<Value = Rel> {
    let j = JITTER_SAMPLES as i64;
    let min = 2 * JITTER_SAMPLES + 1;
    prop_oneof![
        5 => Just(Rel::Contiguous),
        1 => (-j..=j).prop_map(Rel::Jitter),
        2 => (min..20_000).prop_map(Rel::Gap),
        2 => (min..6_000).prop_map(Rel::Overlap),
    ]
}

fn audio_spec() -> impl Strategy<Value = Vec<(u64, Rel)>> {
    prop::collection::vec((1u64..4_000, rel()), 0..40)
}

fn video_spec() -> impl Strategy<Value = VideoSpec> {
    (
        1u64..=60,
        prop::collection::vec((0u64..1_000, any::<bool>()), 0..60),
    )
        .prop_map(|(fps, frames)| VideoSpec {
            period: SECOND / fps,
            frames,
        })
}

fn first_pts_offset() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), 0..2 * SECOND, 0..10 * MS]
}

fn file_case() -> impl Strategy<Value = FileCase> {
    let branches = prop_oneof![
        4 => (video_spec(), audio_spec()).prop_map(|(v, a)| (Some(v), Some(a))),
        1 => video_spec().prop_map(|v| (Some(v), None)),
        1 => audio_spec().prop_map(|a| (None, Some(a))),
    ];
    (
        prop::sample::select(HOPS.to_vec()),
        prop_oneof![Just(0u64), 0..100_000 * SECOND],
        first_pts_offset(),
        first_pts_offset(),
        branches,
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(
            |(hop, base, video_offset, audio_offset, (video, audio), send_eos, seed)| FileCase {
                hop,
                base,
                video_offset,
                audio_offset,
                video,
                audio,
                send_eos,
                seed,
            },
        )
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Keep the tree clean: no regression files next to the sources.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// All the checks of a file case against its expectation.
fn check_file(
    case: &FileCase,
    e: &Expected,
    chunks: &[Chunk],
    stats: SyncStats,
) -> Result<(), TestCaseError> {
    let (has_video, has_audio) = (case.video.is_some(), case.audio.is_some());
    if e.origin.is_none() {
        prop_assert!(chunks.is_empty(), "chunks from a stream without data");
        return Ok(());
    }
    check_spans(chunks, case.hop, has_video, has_audio)?;
    let end = chunks.last().map_or(0, |c| c.span.end.0);
    prop_assert_eq!(end, e.end, "the stream ends where its last branch does");
    check_frames(chunks, &e.frames)?;

    let audio = all_audio(chunks);
    if has_audio {
        // Sample-exact: the expected track, then padding silence.
        prop_assert_eq!(audio.len() as u64, ts(e.end));
        prop_assert_eq!(
            &audio[..e.track.len()],
            &e.track[..],
            "audio differs from the expected track"
        );
        prop_assert!(
            audio[e.track.len()..].iter().all(|&s| s == 0.0),
            "padding is not silence"
        );
        // Nothing lost, nothing duplicated, bar the trimmed overlaps.
        let real: Vec<f32> = audio.iter().copied().filter(|&s| s != 0.0).collect();
        prop_assert_eq!(real, e.kept.clone());
        let zeros = audio.iter().filter(|&&s| s == 0.0).count() as u64;
        prop_assert_eq!(zeros, e.filled + (ts(e.end) - e.track.len() as u64));
    } else {
        prop_assert!(audio.is_empty());
    }

    let track_len = e.track.len() as u64;
    let tail = e.end - e.audio_end;
    for c in chunks {
        let (s0, s1) = (ts(c.span.start.0), ts(c.span.end.0));
        let f = c.flags;
        prop_assert!(!f.video_missing, "chunk {}: video_missing in a file", c.seq);
        if !has_audio {
            prop_assert!(!f.audio_gap && !f.audio_missing);
            continue;
        }
        let in_gap = e.gaps.iter().any(|&(g0, g1)| g0 < s1 && g1 > s0);
        prop_assert_eq!(
            f.audio_gap,
            in_gap && !f.audio_missing,
            "chunk {}: audio_gap",
            c.seq
        );
        let padded = s1.saturating_sub(track_len.max(s0));
        if f.audio_missing {
            prop_assert!(
                padded > 0,
                "chunk {}: audio_missing with all its audio",
                c.seq
            );
            prop_assert!(
                tail >= TAIL_TOLERANCE,
                "chunk {}: audio_missing for a {} ns tail",
                c.seq,
                tail
            );
        }
        // A whole chunk (longer than the tolerance) past the end of the audio
        // is flagged. (Hop 100 ms: `regressions::long_audio_tail_is_flagged_with_100ms_hop`.)
        if s0 >= track_len && c.span.duration() > TAIL_TOLERANCE {
            prop_assert!(
                f.audio_missing,
                "chunk {}: no audio at all, not flagged",
                c.seq
            );
        }
    }

    prop_assert_eq!(stats.frames_in, e.frames.len() as u64);
    prop_assert_eq!(stats.frames_late, 0);
    prop_assert_eq!(stats.audio_samples_in, e.samples_in);
    prop_assert_eq!(stats.audio_trimmed, e.trimmed);
    prop_assert_eq!(stats.audio_filled, e.filled);
    prop_assert_eq!(stats.chunks, chunks.len() as u64);
    Ok(())
}

proptest! {
    #![proptest_config(config(64))]

    /// Files: every sample and frame exactly once in the right place, gaps
    /// filled and flagged, overlaps trimmed, spans exact and contiguous, for
    /// a random interleaving of the branches.
    #[test]
    fn file_streams_come_out_whole_and_exact(case in file_case()) {
        let e = case.expected()?;
        let msgs = interleave(case.topology(), &case.video_msgs(), &case.audio_msgs(), case.seed);
        let (chunks, stats) = run(case.hop, false, &msgs);
        check_file(&case, &e, &chunks, stats)?;
    }

    /// Files: the same per-branch sequences give the same chunks whatever the
    /// interleaving (random, video first, audio first, topology last).
    #[test]
    fn file_output_does_not_depend_on_interleaving(case in file_case(), other_seed in any::<u64>()) {
        case.expected()?;
        let (video, audio) = (case.video_msgs(), case.audio_msgs());
        let orders = [
            interleave(case.topology(), &video, &audio, case.seed),
            interleave(case.topology(), &video, &audio, other_seed),
            [vec![case.topology()], video.clone(), audio.clone()].concat(),
            [vec![case.topology()], audio.clone(), video.clone()].concat(),
            [video.clone(), audio.clone(), vec![case.topology()]].concat(),
        ];
        let (first, _) = run(case.hop, false, &orders[0]);
        let want = view(&first);
        for (i, order) in orders.iter().enumerate().skip(1) {
            let (chunks, _) = run(case.hop, false, order);
            prop_assert_eq!(&view(&chunks), &want, "order {} differs", i);
        }
    }
}

// ---------------------------------------------------------------------------
// Properties: branches that end at slightly different times
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct TailCase {
    hop: u64,
    base: u64,
    period_ms: u64,
    frames: u64,
    /// How much audio differs from video at the end, in samples; negative: shorter.
    tail_samples: i64,
    block_sizes: Vec<u64>,
    seed: u64,
}

fn tail_case() -> impl Strategy<Value = TailCase> {
    // Under 100 ms either way: 1600 samples.
    let max = (TAIL_TOLERANCE / NS_PER_SAMPLE) as i64 - 1;
    (
        prop::sample::select(HOPS.to_vec()),
        prop_oneof![Just(0u64), 0..100_000 * SECOND],
        prop::sample::select(vec![20u64, 33, 40, 50, 100, 200]),
        5u64..40,
        -max..=max,
        prop::collection::vec(1u64..4_000, 1..200),
        any::<u64>(),
    )
        .prop_map(
            |(hop, base, period_ms, frames, tail_samples, block_sizes, seed)| TailCase {
                hop,
                base,
                period_ms,
                frames,
                tail_samples,
                block_sizes,
                seed,
            },
        )
}

proptest! {
    #![proptest_config(config(64))]

    /// Audio ending up to 100 ms before or after video: no flag, nothing lost.
    #[test]
    fn short_tails_are_not_flagged(case in tail_case()) {
        let period = case.period_ms * MS;
        let video_end = case.frames * period;
        let total = (ts(video_end) as i64 + case.tail_samples).max(1) as u64;
        let audio_end = sample_to_time(total, AUDIO_RATE).0;
        let end = video_end.max(audio_end);

        let video: Vec<Msg> = (0..case.frames)
            .map(|i| Msg::Frame { pts: case.base + i * period, duration: period })
            .chain([Msg::Eos(Branch::Video)])
            .collect();
        let mut audio = Vec::new();
        let mut at = 0;
        for &n in case.block_sizes.iter().cycle() {
            if at >= total {
                break;
            }
            let n = n.min(total - at);
            audio.push(Msg::Audio { pts: case.base + at * NS_PER_SAMPLE, samples: ramp(at, n) });
            at += n;
        }
        audio.push(Msg::Eos(Branch::Audio));
        let msgs = interleave(both_topology(false), &video, &audio, case.seed);
        let (chunks, stats) = run(case.hop, false, &msgs);

        check_spans(&chunks, case.hop, true, true)?;
        prop_assert_eq!(chunks.last().map(|c| c.span.end.0), Some(end));
        for c in &chunks {
            prop_assert_eq!(c.flags, ChunkFlags { last: c.flags.last, ..ChunkFlags::default() }, "chunk {}", c.seq);
        }
        let audio = all_audio(&chunks);
        prop_assert_eq!(&audio[..total as usize], &ramp(0, total)[..]);
        prop_assert!(audio[total as usize..].iter().all(|&s| s == 0.0));
        let want: Vec<u64> = (0..case.frames).map(|i| i * period).collect();
        check_frames(&chunks, &want)?;
        prop_assert_eq!((stats.audio_trimmed, stats.audio_filled), (0, 0));
    }
}

// ---------------------------------------------------------------------------
// Properties: live streams whose audio stalls
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct LiveCase {
    hop: u64,
    base: u64,
    period_ms: u64,
    frames: u64,
    /// Blocks starting at or after this time (ms, stream time) stall ...
    stall_at_ms: u64,
    /// ... until this much later.
    stall_ms: u64,
    seed: u64,
}

fn live_case() -> impl Strategy<Value = LiveCase> {
    (
        prop::sample::select(HOPS.to_vec()),
        prop_oneof![Just(0u64), 0..100_000 * SECOND],
        prop::sample::select(vec![20u64, 40, 50, 100, 200]),
        (
            3_000u64..8_000,
            0u64..8_000,
            prop_oneof![Just(0u64), 0..5_000u64],
        ),
        any::<u64>(),
    )
        .prop_map(
            |(hop, base, period_ms, (length_ms, stall_at_ms, stall_ms), seed)| LiveCase {
                hop,
                base,
                period_ms,
                frames: length_ms / period_ms,
                stall_at_ms,
                stall_ms,
                seed,
            },
        )
}

proptest! {
    #![proptest_config(config(64))]

    /// Live: chunks keep coming while audio stalls, flagged `audio_missing`
    /// and silent where audio had not come; the late audio is trimmed, never
    /// duplicated; nothing else is lost.
    #[test]
    fn live_stalled_audio_is_flagged_and_trimmed(case in live_case()) {
        let mut rng = Rng(case.seed);
        let period = case.period_ms * MS;
        let length = case.frames * period;
        let total = ts(length);
        let stall_at = case.stall_at_ms * MS;
        let stall_until = stall_at + case.stall_ms * MS;

        // (arrival, message, rebased video PTS), each branch in its own order.
        let mut video = Vec::new();
        let mut arrival = 0;
        for i in 0..case.frames {
            let pts = i * period;
            arrival = (pts + rng.below(50 * MS)).max(arrival);
            video.push((arrival, Msg::Frame { pts: case.base + pts, duration: period }, Some(pts)));
        }
        let mut audio = Vec::new();
        let mut arrival = 0;
        let mut at = 0;
        let mut first_stalled = None;
        while at < total {
            let n = (1 + rng.below(3_999)).min(total - at);
            let start = sample_to_time(at, AUDIO_RATE).0;
            let mut arr = sample_to_time(at + n, AUDIO_RATE).0 + rng.below(50 * MS);
            if start >= stall_at && start < stall_until {
                first_stalled.get_or_insert(start);
                arr = arr.max(stall_until);
            }
            arrival = arr.max(arrival);
            audio.push((arrival, Msg::Audio { pts: case.base + start, samples: ramp(at, n) }, None));
            at += n;
        }
        // Merge by arrival time.
        let mut msgs = Vec::with_capacity(video.len() + audio.len());
        let (mut v, mut a) = (video.into_iter().peekable(), audio.into_iter().peekable());
        loop {
            let take_video = match (v.peek(), a.peek()) {
                (Some(x), Some(y)) => x.0 <= y.0,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            msgs.extend(if take_video { v.next() } else { a.next() });
        }

        let mut h = Harness::new(case.hop, true);
        h.push(&both_topology(true));
        let mut video_wm = None;
        for (_, msg, pts) in &msgs {
            h.push(msg);
            if let Some(p) = pts {
                video_wm = Some(*p);
            }
            // Liveness: the next chunk is never held while video is more than
            // max_skew past its end.
            if let (Some(w), Some(_)) = (video_wm, h.sync.origin()) {
                let next_end = (h.chunks.len() as u64 + 1) * case.hop;
                prop_assert!(w < next_end + SKEW, "chunk {} held with video at {}", h.chunks.len(), w);
            }
        }
        h.push(&Msg::Eos(Branch::Audio));
        h.push(&Msg::Eos(Branch::Video));
        h.finish();
        prop_assert_eq!(h.sync.origin(), Some(case.base));
        let chunks = &h.chunks;
        let stats = h.sync.stats();

        check_spans(chunks, case.hop, true, true)?;
        let end = chunks.last().map_or(0, |c| c.span.end.0);
        // Jitter tolerance may leave the track up to JITTER_SAMPLES long.
        prop_assert!(end >= length && ts(end) <= total + JITTER_SAMPLES, "end {} for {}", end, length);
        check_frames(chunks, &(0..case.frames).map(|i| i * period).collect::<Vec<_>>())?;
        prop_assert_eq!(stats.frames_late, 0);

        let mut pos = 0u64;
        let mut last_value = 0.0f32;
        let mut real = 0u64;
        for c in chunks {
            prop_assert!(!c.flags.video_missing && !c.flags.audio_gap, "chunk {}: {:?}", c.seq, c.flags);
            // (An audio_missing chunk may have all its audio when the stall
            // starts exactly on its end: `regressions::live_audio_complete_to_a_boundary_is_not_flagged_missing`.)
            for &s in c.audio.iter() {
                if s == 0.0 {
                    prop_assert!(c.flags.audio_missing, "chunk {}: silence at {} unflagged", c.seq, pos);
                } else {
                    prop_assert!(s > last_value, "sample {} duplicated or out of order at {}", s, pos);
                    let ideal = s as u64 - 1;
                    prop_assert!(ideal.abs_diff(pos) <= JITTER_SAMPLES, "sample {} at {}", s, pos);
                    last_value = s;
                    real += 1;
                }
                pos += 1;
            }
        }
        prop_assert_eq!(stats.audio_samples_in, total);
        prop_assert_eq!(real + stats.audio_trimmed, total, "samples lost besides the trimmed ones");

        // A stall long enough must have produced an `audio_missing` chunk: the
        // chunk holding the first stalled block ends by `b + hop`, and video
        // reaches that end + max_skew (+ a frame, + arrival jitter) before the
        // audio resumes.
        if let Some(b) = first_stalled {
            let overdue = b + case.hop + SKEW + period + 50 * MS;
            if overdue < stall_until && b + case.hop + SKEW < length - period {
                prop_assert!(chunks.iter().any(|c| c.flags.audio_missing), "stall at {} to {} never flagged", b, stall_until);
            }
        }
    }
}
