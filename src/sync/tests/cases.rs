//! Unit cases with exact expected values.

use super::*;

// ---------------------------------------------------------------------------
// Unit tests with exact values
// ---------------------------------------------------------------------------

#[test]
fn three_seconds_of_audio_make_three_full_chunks() {
    let mut h = Harness::new(SECOND, false);
    h.push(&audio_only_topology());
    for k in 0..48 {
        h.audio(k * 1000 * NS_PER_SAMPLE, ramp(k * 1000, 1000));
    }
    // The chunk that ends where the audio ends waits for EOS, to know it is the last.
    assert_eq!(h.chunks.len(), 2);
    h.push(&Msg::Eos(Branch::Audio));
    assert!(h.sync.ended());
    let c = &h.chunks;
    assert_eq!(c.len(), 3);
    assert_eq!(
        c.iter().map(|c| c.flags.last).collect::<Vec<_>>(),
        [false, false, true]
    );
    for (k, chunk) in c.iter().enumerate() {
        let k = k as u64;
        assert_eq!(chunk.seq, k);
        assert_eq!(chunk.span.start.0, k * SECOND);
        assert_eq!(chunk.span.end.0, (k + 1) * SECOND);
        assert_eq!(chunk.first_sample, k * 16_000);
        assert_eq!(&chunk.audio[..], &ramp(k * 16_000, 16_000)[..]);
        assert!(chunk.frames.is_empty());
        assert!(!chunk.flags.audio_gap && !chunk.flags.audio_missing && !chunk.flags.video_missing);
        assert!(chunk.has_audio && !chunk.has_video);
    }
    let s = h.sync.stats();
    assert_eq!(s.audio_samples_in, 48_000);
    assert_eq!((s.audio_trimmed, s.audio_filled, s.chunks), (0, 0, 3));
}

#[test]
fn audio_only_stream_ends_with_a_short_last_chunk() {
    let (c, _) = run(
        SECOND,
        false,
        &[
            audio_only_topology(),
            Msg::Audio {
                pts: 0,
                samples: ramp(0, 40_000),
            },
            Msg::Eos(Branch::Audio),
        ],
    );
    check_spans(&c, SECOND, false, true).unwrap();
    assert_eq!(c.len(), 3);
    assert_eq!(c[2].span.end.0, 2_500 * MS);
    assert_eq!(c[2].audio.len(), 8_000);
    assert_eq!(all_audio(&c), ramp(0, 40_000));
}

#[test]
fn audio_starting_200ms_after_video_is_gap_filled_and_flagged() {
    let mut h = Harness::new(SECOND, false);
    h.push(&both_topology(false));
    // 5 fps video over [0, 3 s); audio over [200 ms, 3 s) in 100 ms blocks.
    for i in 0..15u64 {
        h.frame(i * 200 * MS, 200 * MS);
    }
    let mut n = 0;
    for k in 2..30u64 {
        h.audio(k * 100 * MS, ramp(n, 1_600));
        n += 1_600;
    }
    h.push(&Msg::Eos(Branch::Video));
    h.push(&Msg::Eos(Branch::Audio));
    h.finish();
    let c = &h.chunks;
    check_spans(c, SECOND, true, true).unwrap();
    assert_eq!(c.len(), 3);
    assert!(c[0].flags.audio_gap);
    assert!(!c[0].flags.audio_missing);
    assert!(c[0].audio[..3_200].iter().all(|&s| s == 0.0));
    assert_eq!(&c[0].audio[3_200..], &ramp(0, 12_800)[..]);
    for chunk in &c[1..] {
        assert_eq!(
            chunk.flags,
            ChunkFlags {
                last: chunk.flags.last,
                ..ChunkFlags::default()
            }
        );
    }
    assert_eq!(&c[1].audio[..], &ramp(12_800, 16_000)[..]);
    assert_eq!(&c[2].audio[..], &ramp(28_800, 16_000)[..]);
    let pts: Vec<u64> = (0..15).map(|i| i * 200 * MS).collect();
    check_frames(c, &pts).unwrap();
    assert_eq!(c[0].frames.len(), 5);
    assert_eq!(h.sync.stats().audio_filled, 3_200);
}

#[test]
fn stream_time_zero_is_the_earliest_first_pts() {
    // Audio starts at source time 5 s, video at 5.3 s: zero is 5 s.
    let base = 5 * SECOND;
    let mut h = Harness::new(SECOND, false);
    h.push(&both_topology(false));
    h.frame(base + 300 * MS, 0);
    h.frame(base + 700 * MS, 0);
    h.frame(base + 1_100 * MS, 0);
    h.audio(base, ramp(0, 24_000));
    h.push(&Msg::Eos(Branch::Video));
    h.push(&Msg::Eos(Branch::Audio));
    assert_eq!(h.sync.origin(), Some(base));
    let c = &h.chunks;
    check_spans(c, SECOND, true, true).unwrap();
    assert_eq!(c.len(), 2);
    assert_eq!(c[1].span.end.0, 1_500 * MS);
    check_frames(c, &[300 * MS, 700 * MS, 1_100 * MS]).unwrap();
    assert_eq!(all_audio(c), ramp(0, 24_000));
    assert!(
        c.iter()
            .all(|c| !c.flags.audio_gap && !c.flags.audio_missing)
    );

    // Video first at 10 s, audio from 10.5 s: zero is 10 s, 8000 samples of gap.
    let base = 10 * SECOND;
    let mut h = Harness::new(SECOND, false);
    h.push(&both_topology(false));
    h.audio(base + 500 * MS, ramp(0, 24_000));
    for i in 0..10u64 {
        h.frame(base + i * 200 * MS, 200 * MS);
    }
    h.push(&Msg::Eos(Branch::Audio));
    h.push(&Msg::Eos(Branch::Video));
    assert_eq!(h.sync.origin(), Some(base));
    let c = &h.chunks;
    check_spans(c, SECOND, true, true).unwrap();
    assert_eq!(c.len(), 2);
    assert!(c[0].flags.audio_gap && !c[1].flags.audio_gap);
    assert!(c[0].audio[..8_000].iter().all(|&s| s == 0.0));
    assert_eq!(&c[0].audio[8_000..], &ramp(0, 8_000)[..]);
    assert_eq!(&c[1].audio[..], &ramp(8_000, 16_000)[..]);
    assert_eq!(c[0].frames.len(), 5);
    assert_eq!(c[0].frames[0].pts, Timestamp::ZERO);
}

#[test]
fn video_only_stream() {
    let mut msgs = vec![Msg::Topology {
        video: true,
        audio: false,
        live: false,
    }];
    for i in 0..13u64 {
        msgs.push(Msg::Frame {
            pts: i * 200 * MS,
            duration: 200 * MS,
        });
    }
    msgs.push(Msg::Eos(Branch::Video));
    let (c, stats) = run(SECOND, false, &msgs);
    check_spans(&c, SECOND, true, false).unwrap();
    assert_eq!(c.len(), 3);
    assert_eq!(c[2].span.end.0, 2_600 * MS);
    assert_eq!(
        c.iter().map(|c| c.frames.len()).collect::<Vec<_>>(),
        [5, 5, 3]
    );
    assert!(c.iter().all(|c| c.audio.is_empty()));
    assert!(c.iter().all(|c| c.flags
        == ChunkFlags {
            last: c.flags.last,
            ..ChunkFlags::default()
        }));
    assert_eq!((stats.frames_in, stats.frames_late), (13, 0));
}

#[test]
fn frame_on_a_chunk_boundary_belongs_to_the_next_chunk() {
    let mut h = Harness::new(SECOND, false);
    h.push(&Msg::Topology {
        video: true,
        audio: false,
        live: false,
    });
    assert_eq!(h.frame(0, 0), 0);
    assert_eq!(h.frame(SECOND - 1, 0), 0);
    // The watermark reaching the end releases chunk 0, without the new frame.
    assert_eq!(h.frame(SECOND, 0), 1);
    assert_eq!(h.chunks[0].frames.len(), 2);
    h.push(&Msg::Eos(Branch::Video));
    assert_eq!(h.chunks.len(), 2);
    assert_eq!(h.chunks[1].frames[0].pts.0, SECOND);
    assert_eq!(h.chunks[1].span.end.0, SECOND + 1);
}

#[test]
fn frames_out_of_order_within_a_chunk_come_out_in_pts_order() {
    let mut h = Harness::new(SECOND, false);
    h.push(&Msg::Topology {
        video: true,
        audio: false,
        live: false,
    });
    for ms in [0, 300, 100, 200, 1_100] {
        h.frame(ms * MS, 0);
    }
    assert_eq!(h.chunks.len(), 1);
    h.push(&Msg::Eos(Branch::Video));
    check_spans(&h.chunks, SECOND, true, false).unwrap();
    check_frames(&h.chunks, &[0, 100 * MS, 200 * MS, 300 * MS, 1_100 * MS]).unwrap();
    assert_eq!(h.sync.stats().frames_late, 0);
}

#[test]
fn overlaps_are_trimmed_and_gaps_filled_sample_exact() {
    let hop = SECOND;
    let mut h = Harness::new(hop, false);
    h.push(&audio_only_topology());
    // [0, 10000), then [9000, 12000) overlapping by 1000, then a gap of 2000
    // and [14000, 40000).
    h.audio(0, ramp(0, 10_000));
    h.audio(9_000 * NS_PER_SAMPLE, ramp(10_000, 3_000));
    h.audio(14_000 * NS_PER_SAMPLE, ramp(13_000, 26_000));
    h.push(&Msg::Eos(Branch::Audio));
    let c = &h.chunks;
    check_spans(c, hop, false, true).unwrap();
    let audio = all_audio(c);
    assert_eq!(audio.len(), 40_000);
    assert_eq!(&audio[..10_000], &ramp(0, 10_000)[..]);
    assert_eq!(&audio[10_000..12_000], &ramp(11_000, 2_000)[..]);
    assert!(audio[12_000..14_000].iter().all(|&s| s == 0.0));
    assert_eq!(&audio[14_000..], &ramp(13_000, 26_000)[..]);
    assert_eq!(
        c.iter().map(|c| c.flags.audio_gap).collect::<Vec<_>>(),
        [true, false, false]
    );
    let s = h.sync.stats();
    assert_eq!((s.audio_trimmed, s.audio_filled), (1_000, 2_000));
}

#[test]
fn short_audio_tail_is_padded_without_a_flag() {
    // Video to 3 s, audio to 2.95 s: 50 ms of padding, no flag.
    let mut msgs = vec![both_topology(false)];
    for i in 0..15u64 {
        msgs.push(Msg::Frame {
            pts: i * 200 * MS,
            duration: 200 * MS,
        });
    }
    msgs.push(Msg::Audio {
        pts: 0,
        samples: ramp(0, 47_200),
    });
    msgs.push(Msg::Eos(Branch::Audio));
    msgs.push(Msg::Eos(Branch::Video));
    let (c, _) = run(SECOND, false, &msgs);
    check_spans(&c, SECOND, true, true).unwrap();
    assert_eq!(c.len(), 3);
    assert!(c.iter().all(|c| c.flags
        == ChunkFlags {
            last: c.flags.last,
            ..ChunkFlags::default()
        }));
    let audio = all_audio(&c);
    assert_eq!(&audio[..47_200], &ramp(0, 47_200)[..]);
    assert!(audio[47_200..].iter().all(|&s| s == 0.0));
}

#[test]
fn long_audio_tail_is_flagged_missing() {
    // Audio stops at 1 s, video goes on to 3 s: chunks 1 and 2 have no audio.
    let msgs = audio_ends_first(16_000, 15, 200 * MS);
    let (c, _) = run(SECOND, false, &msgs);
    check_spans(&c, SECOND, true, true).unwrap();
    assert_eq!(
        c.iter().map(|c| c.flags.audio_missing).collect::<Vec<_>>(),
        [false, true, true]
    );
    assert!(c.iter().all(|c| !c.flags.audio_gap));
    assert!(c[1..].iter().all(|c| c.audio.iter().all(|&s| s == 0.0)));
}

#[test]
fn finish_without_eos_flushes_the_same_chunks() {
    let mut msgs = vec![both_topology(false)];
    for i in 0..12u64 {
        msgs.push(Msg::Frame {
            pts: i * 250 * MS,
            duration: 250 * MS,
        });
    }
    msgs.push(Msg::Audio {
        pts: 0,
        samples: ramp(0, 47_000),
    });
    let (without, _) = run(SECOND, false, &msgs);
    msgs.push(Msg::Eos(Branch::Video));
    msgs.push(Msg::Eos(Branch::Audio));
    let (with, _) = run(SECOND, false, &msgs);
    check_spans(&without, SECOND, true, true).unwrap();
    assert_eq!(view(&without), view(&with));
    assert_eq!(without.len(), 3);
}

#[test]
fn nothing_comes_out_before_the_topology_of_a_file() {
    let mut h = Harness::new(100 * MS, false);
    for i in 0..20u64 {
        assert_eq!(h.frame(i * 100 * MS, 100 * MS), 0);
    }
    assert_eq!(h.sync.origin(), None);
    h.push(&Msg::Topology {
        video: true,
        audio: false,
        live: false,
    });
    assert_eq!(h.sync.origin(), Some(0));
    assert_eq!(h.chunks.len(), 19);
}

#[test]
fn live_lagging_audio_is_flagged_missing_and_late_audio_trimmed() {
    let hop = SECOND;
    let mut h = Harness::new(hop, true);
    h.push(&both_topology(true));
    // Video every 100 ms to 3.0 s; audio in 100 ms blocks, stalling at 1.2 s.
    for i in 0..=30u64 {
        let released = h.frame(i * 100 * MS, 100 * MS);
        // Chunk 0 goes when both watermarks pass 1 s; chunk 1 [1 s, 2 s) waits
        // for audio until video is max_skew past its end (2.5 s), then goes anyway.
        let want = match i {
            25 => 1,
            _ => 0,
        };
        assert_eq!(released, want, "frame {i}");
        if i < 12 {
            let released = h.audio(i * 100 * MS, ramp(i * 1_600, 1_600));
            assert_eq!(released, usize::from(i == 10), "audio block {i}");
        }
    }
    assert_eq!(h.chunks.len(), 2);
    let c1 = &h.chunks[1];
    assert!(c1.flags.audio_missing);
    assert!(!c1.flags.audio_gap && !c1.flags.video_missing);
    assert_eq!(&c1.audio[..3_200], &ramp(16_000, 3_200)[..]);
    assert!(c1.audio[3_200..].iter().all(|&s| s == 0.0));
    assert_eq!(c1.audio.len(), 16_000);
    assert_eq!(c1.frames.len(), 10);
    // The stalled audio arrives at last: [1.2 s, 2 s) was already sent and is trimmed.
    for k in 12..31u64 {
        let released = h.audio(k * 100 * MS, ramp(k * 1_600, 1_600));
        // Chunk 2 goes once a sample past 3 s has come, with block 30.
        assert_eq!(released, usize::from(k == 30), "late block {k}");
    }
    let c2 = &h.chunks[2];
    assert_eq!(c2.flags, ChunkFlags::default());
    assert_eq!(&c2.audio[..], &ramp(32_000, 16_000)[..]);
    assert_eq!(h.sync.stats().audio_trimmed, 12_800);
    h.push(&Msg::Eos(Branch::Audio));
    h.push(&Msg::Eos(Branch::Video));
    let c = &h.chunks;
    check_spans(c, hop, true, true).unwrap();
    assert_eq!(c.len(), 4);
    assert_eq!(c[3].span.end.0, 3_100 * MS);
    assert_eq!(&c[3].audio[..], &ramp(48_000, 1_600)[..]);
    let audio = all_audio(c);
    let real: Vec<f32> = audio.iter().copied().filter(|&s| s != 0.0).collect();
    assert_eq!(real.len() as u64 + 12_800, 31 * 1_600);
    assert!(
        real.windows(2).all(|w| w[0] < w[1]),
        "a sample is duplicated"
    );
}

#[test]
fn live_lagging_video_is_flagged_missing_and_late_frames_dropped() {
    let hop = SECOND;
    let mut h = Harness::new(hop, true);
    h.push(&both_topology(true));
    for i in 0..=8u64 {
        h.frame(i * 100 * MS, 100 * MS);
    }
    for k in 0..16u64 {
        let released = h.audio(k * 100 * MS, ramp(k * 1_600, 1_600));
        // Audio reaches 1.5 s = chunk 0's end + max_skew with block 14.
        assert_eq!(released, usize::from(k == 14), "audio block {k}");
    }
    let c0 = &h.chunks[0];
    assert!(c0.flags.video_missing && !c0.flags.audio_missing && !c0.flags.audio_gap);
    assert_eq!(c0.frames.len(), 9);
    assert_eq!(&c0.audio[..], &ramp(0, 16_000)[..]);
    // A frame for the span already sent is dropped and counted.
    h.frame(900 * MS, 100 * MS);
    assert_eq!(h.sync.stats().frames_late, 1);
    h.frame(SECOND, 100 * MS);
    h.push(&Msg::Eos(Branch::Video));
    h.push(&Msg::Eos(Branch::Audio));
    check_spans(&h.chunks, hop, true, true).unwrap();
    check_frames(
        &h.chunks,
        &(0..=8)
            .map(|i| i * 100 * MS)
            .chain([SECOND])
            .collect::<Vec<_>>(),
    )
    .unwrap();
}

#[test]
fn live_branch_that_never_starts_does_not_hold_the_stream() {
    let mut h = Harness::new(SECOND, true);
    h.push(&both_topology(true));
    for i in 0..=30u64 {
        h.frame(7 * SECOND + i * 100 * MS, 100 * MS);
    }
    assert_eq!(h.sync.origin(), Some(7 * SECOND));
    // Video at 3.0 s: chunks [0, 1) and [1, 2) are more than 500 ms behind.
    assert_eq!(h.chunks.len(), 2);
    for c in &h.chunks {
        assert!(c.flags.audio_missing && !c.flags.audio_gap);
        assert!(c.audio.iter().all(|&s| s == 0.0));
        assert_eq!(c.audio.len(), 16_000);
        assert_eq!(c.frames.len(), 10);
    }
}

// ---------------------------------------------------------------------------
// Branches that give nothing usable (issue: a clip whose picture never
// decodes grew by 2 GB a second)
// ---------------------------------------------------------------------------

/// A harness whose branches are taken as dead after `dead` ns of lag.
fn dead_after(dead: u64, live: bool) -> Harness {
    let mut h = Harness::new(SECOND, live);
    h.sync = Synchroniser::new(
        Arc::from("t"),
        SyncSettings {
            dead_branch: dead,
            dead_branch_live: dead,
            ..settings(SECOND, live)
        },
    );
    h
}

/// Sound at 16 kHz from `from` s to `to` s, in blocks of 1000 samples.
fn sound(h: &mut Harness, from: u64, to: u64) {
    for k in from * 16..to * 16 {
        h.audio(k * 1000 * NS_PER_SAMPLE, ramp(k * 1000, 1000));
    }
}

#[test]
fn frames_stamped_centuries_ahead_are_dropped_and_the_sound_goes_on_alone() {
    let mut h = dead_after(10 * SECOND, false);
    h.push(&both_topology(false));
    // The decoder that failed to negotiate stamped its frames 2^63 ns on.
    let bad = 1u64 << 63;
    for i in 0..30 {
        h.frame(bad + i * 200 * MS, 200 * MS);
    }
    sound(&mut h, 0, 6);
    h.push(&Msg::Eos(Branch::Video));
    h.push(&Msg::Eos(Branch::Audio));
    assert!(h.sync.ended());
    // Six chunks of sound, not 292 years of them.
    assert_eq!(h.chunks.len(), 6);
    assert!(h.chunks.iter().all(|c| c.frames.is_empty()));
    assert_eq!(h.chunks[5].span.end.0, 6 * SECOND);
    assert!(h.chunks[5].flags.last);
    assert_eq!(h.sync.stats().bad_timestamps, 30);
    let p = h.sync.problem().expect("a problem with the picture");
    assert_eq!(p.branch, Branch::Video);
    assert!(p.ended);
    assert!(p.what.contains("impossible timestamp"), "{}", p.what);
}

#[test]
fn a_picture_that_never_decodes_is_ended_once_the_sound_is_far_ahead() {
    let mut h = dead_after(3 * SECOND, false);
    h.push(&both_topology(false));
    // No frame at all: the sound is held (nothing can be cut without the
    // picture) until it leads by more than 3 s; then it goes on alone.
    sound(&mut h, 0, 3);
    assert_eq!(h.chunks.len(), 0);
    assert_eq!(h.sync.problem(), None);
    sound(&mut h, 3, 5);
    let p = h.sync.problem().cloned().expect("the picture is dead");
    assert_eq!(p.branch, Branch::Video);
    assert!(p.what.contains("no frame was decoded"), "{}", p.what);
    assert!(h.chunks.len() >= 3, "{} chunks", h.chunks.len());
    h.push(&Msg::Eos(Branch::Audio));
    assert!(h.sync.ended());
    assert_eq!(h.chunks.len(), 5);
    assert!(h.chunks.iter().all(|c| !c.flags.video_missing));
}

#[test]
fn a_picture_that_ends_without_a_frame_is_reported_at_its_end() {
    let mut h = dead_after(10 * SECOND, false);
    h.push(&both_topology(false));
    h.push(&Msg::Eos(Branch::Video));
    sound(&mut h, 0, 2);
    h.push(&Msg::Eos(Branch::Audio));
    assert_eq!(h.chunks.len(), 2);
    let p = h.sync.problem().expect("a problem with the picture");
    assert!(p.ended && p.what.contains("no frame was decoded"), "{p:?}");
}

#[test]
fn a_live_picture_that_stops_degrades_the_stream_until_it_comes_back() {
    let mut h = dead_after(2 * SECOND, true);
    h.push(&both_topology(true));
    for k in 0..16 {
        h.audio(k * 1000 * NS_PER_SAMPLE, ramp(k * 1000, 1000));
        if k % 3 == 0 {
            h.frame(k * 1000 * NS_PER_SAMPLE, 200 * MS);
        }
    }
    assert_eq!(h.sync.problem(), None);
    // Sound alone for 3 s: the picture is said to be missing, not ended.
    for k in 16..64 {
        h.audio(k * 1000 * NS_PER_SAMPLE, ramp(k * 1000, 1000));
    }
    let p = h.sync.problem().cloned().expect("degraded");
    assert!(!p.ended);
    assert!(p.what.contains("no frame came after"), "{}", p.what);
    // Frames again: well again.
    h.frame(64 * 1000 * NS_PER_SAMPLE, 200 * MS);
    assert_eq!(h.sync.problem(), None);
}

#[test]
fn a_long_gap_leaves_a_batch_at_a_time() {
    let mut h = Harness::new(SECOND, false);
    h.push(&audio_only_topology());
    h.audio(0, ramp(0, 16_000));
    // 100 s on: 100 chunks of silence, made a batch at a time.
    let mut out = Vec::new();
    h.sync.push(
        Msg::Audio {
            pts: 100 * SECOND,
            samples: ramp(16_000, 16_000),
        }
        .input(),
        &mut out,
    );
    assert_eq!(out.len(), crate::sync::synchroniser::EMIT_BATCH);
    h.sync.poll(&mut out);
    assert_eq!(out.len(), 2 * crate::sync::synchroniser::EMIT_BATCH);
    h.chunks.extend(out);
    h.push(&Msg::Eos(Branch::Audio));
    assert_eq!(h.chunks.len(), 101);
    assert!(h.chunks[50].flags.audio_gap);
}

#[test]
fn a_camera_back_after_hours_is_not_a_jump() {
    let mut h = Harness::new(SECOND, true);
    h.push(&both_topology(true));
    sound(&mut h, 0, 2);
    h.frame(0, 200 * MS);
    // Down for two hours: the supervisor says so before the first data.
    let back = 2 * 3_600 * SECOND;
    h.push(&Msg::Outage {
        from: 2 * SECOND,
        to: back,
    });
    h.frame(back, 200 * MS);
    h.audio(back, ramp(0, 16_000));
    assert_eq!(h.sync.stats().bad_timestamps, 0);
    // The same jump without an outage is a broken timestamp.
    let mut h = Harness::new(SECOND, true);
    h.push(&both_topology(true));
    sound(&mut h, 0, 2);
    h.frame(0, 200 * MS);
    h.frame(back, 200 * MS);
    assert_eq!(h.sync.stats().bad_timestamps, 1);
}
