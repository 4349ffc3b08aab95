//! Bugs the property tests found, each fixed, kept as exact cases.

use super::*;

// ---------------------------------------------------------------------------
// Regressions: bugs these tests found, fixed in the synchroniser
// ---------------------------------------------------------------------------

#[test]
fn finish_after_the_last_chunk_emits_nothing_more() {
    // One frame without a duration, and an audio branch without samples: the
    // stream is [0, 1 ns). Its last chunk pads audio to sample 1 (62.5 us),
    // which moves the stream's end, and the next call emits [1 ns, 62.5 us).
    let mut h = Harness::new(100 * MS, false);
    h.push(&both_topology(false));
    h.frame(SECOND, 0);
    h.push(&Msg::Eos(Branch::Video));
    h.push(&Msg::Eos(Branch::Audio));
    assert_eq!(h.chunks.len(), 1);
    assert!(h.chunks[0].flags.last);
    assert_eq!(h.chunks[0].span.end.0, 1);
    assert!(h.sync.ended());
    h.finish();
    assert_eq!(
        h.chunks.len(),
        1,
        "a chunk after the last: {:?}",
        h.chunks[1].span
    );
}

#[test]
fn finish_after_the_last_chunk_emits_nothing_more_with_audio() {
    // Video [0, 1 s + 10 ns) with audio [0, 1 s): the last chunk ends 10 ns past
    // 1 s and pads audio to sample 16001; finish() then emits [1 s + 10 ns, 1.0000625 s).
    let mut h = Harness::new(SECOND, false);
    h.push(&both_topology(false));
    h.frame(0, SECOND + 10);
    h.audio(0, ramp(0, 16_000));
    h.push(&Msg::Eos(Branch::Video));
    h.push(&Msg::Eos(Branch::Audio));
    assert_eq!(h.chunks.len(), 2);
    assert!(h.chunks[1].flags.last);
    h.finish();
    assert_eq!(
        h.chunks.len(),
        2,
        "a chunk after the last: {:?}",
        h.chunks.last().map(|c| c.span)
    );
}

#[test]
fn live_audio_complete_to_a_boundary_is_not_flagged_missing() {
    // Live, hop 1 s: audio in 100 ms blocks up to exactly 2 s, then a stall;
    // video goes on. Chunk [1 s, 2 s) has all of its audio, but since
    // `audio_ready` wants a sample *past* the end it leaves as audio_missing.
    let mut h = Harness::new(SECOND, true);
    h.push(&both_topology(true));
    for i in 0..=25u64 {
        h.frame(i * 100 * MS, 100 * MS);
        if i < 20 {
            h.audio(i * 100 * MS, ramp(i * 1_600, 1_600));
        }
    }
    assert_eq!(h.chunks.len(), 2);
    let c1 = &h.chunks[1];
    assert_eq!(
        &c1.audio[..],
        &ramp(16_000, 16_000)[..],
        "all of the audio is there"
    );
    assert!(
        !c1.flags.audio_missing,
        "complete audio flagged audio_missing"
    );
}

#[test]
fn long_audio_tail_is_flagged_with_100ms_hop() {
    // Audio [0, 1 s), video [0, 2 s): chunks 10..20 have no audio at all.
    let msgs = audio_ends_first(16_000, 20, 100 * MS);
    let (c, _) = run(100 * MS, false, &msgs);
    check_spans(&c, 100 * MS, true, true).unwrap();
    assert_eq!(c.len(), 20);
    assert!(c[10..].iter().all(|c| c.audio.iter().all(|&s| s == 0.0)));
    let missing: Vec<bool> = c.iter().map(|c| c.flags.audio_missing).collect();
    let want: Vec<bool> = (0..20).map(|i| i >= 10).collect();
    assert_eq!(missing, want, "1 s of silence padded without any flag");
}

#[test]
fn start_of_long_audio_tail_is_flagged() {
    // Audio [0, 950 ms), video [0, 3 s): the tail is 2.05 s, not a short one,
    // but chunk 0's 50 ms of padding carries no flag.
    let msgs = audio_ends_first(15_200, 15, 200 * MS);
    let (c, _) = run(SECOND, false, &msgs);
    check_spans(&c, SECOND, true, true).unwrap();
    assert!(c[0].audio[15_200..].iter().all(|&s| s == 0.0));
    assert!(c[1].flags.audio_missing && c[2].flags.audio_missing);
    assert!(
        c[0].flags.audio_missing || c[0].flags.audio_gap,
        "50 ms of silence in chunk 0 is not flagged"
    );
}

#[test]
fn live_audio_before_origin_is_trimmed_not_shifted() {
    // Live: video from source time 10 s; audio has not started when the video
    // spans more than max_skew, so the origin is fixed at 10 s by video alone.
    let base = 10 * SECOND;
    let mut h = Harness::new(SECOND, true);
    h.push(&both_topology(true));
    for i in 0..=6u64 {
        h.frame(base + i * 100 * MS, 100 * MS);
    }
    assert_eq!(h.sync.origin(), Some(base));
    // Then audio arrives, starting 100 ms before the origin: its first 1600
    // samples lie before stream time 0.
    h.audio(base - 100 * MS, ramp(0, 4_800));
    h.audio(base + 200 * MS, ramp(4_800, 16_000));
    for i in 7..=15u64 {
        h.frame(base + i * 100 * MS, 100 * MS);
    }
    assert_eq!(h.chunks.len(), 1);
    let c0 = &h.chunks[0];
    // Sample 1600 of the first block is at source time 10 s = stream time 0.
    assert_eq!(c0.audio[0], 1_601.0, "audio is 100 ms late against video");
    assert_eq!(&c0.audio[..], &ramp(1_600, 16_000)[..]);
}

#[test]
fn chunks_wholly_in_an_outage_carry_no_media_and_share_their_silence() {
    // Live, hop 1 s: 3 s of data, a 10 s outage, then 3 s more.
    let mut h = Harness::new(SECOND, true);
    h.push(&both_topology(true));
    let data = |h: &mut Harness, from: u64, to: u64| {
        for t in (from..to).step_by(100) {
            h.frame(t * MS, 100 * MS);
            h.audio(t * MS, ramp(0, 1600));
        }
    };
    data(&mut h, 0, 3000);
    h.push(&Msg::Outage {
        from: 3 * SECOND,
        to: 13 * SECOND,
    });
    data(&mut h, 13_000, 16_000);
    h.finish();
    let outage: Vec<&Chunk> = h
        .chunks
        .iter()
        .filter(|c| c.span.start.0 >= 3 * SECOND && c.span.end.0 <= 13 * SECOND)
        .collect();
    assert_eq!(outage.len(), 10);
    for c in &outage {
        assert!(c.flags.reconnecting && c.flags.no_media, "{:?}", c.flags);
        assert!(c.frames.is_empty());
        assert_eq!(c.audio.len(), 16_000, "exact samples still");
        assert!(c.audio.iter().all(|&x| x == 0.0));
        assert!(Arc::ptr_eq(&c.audio, &outage[0].audio), "one buffer");
        assert!(!c.flags.names().contains(&"no_media"));
    }
    for c in h
        .chunks
        .iter()
        .filter(|c| c.span.end.0 <= 3 * SECOND || c.span.start.0 >= 13 * SECOND)
    {
        assert!(
            !c.flags.no_media && !c.flags.reconnecting,
            "{:?} {:?}",
            c.span,
            c.flags
        );
        assert!(!c.frames.is_empty());
    }
}

#[test]
fn live_utc_comes_from_the_clock_then_from_the_camera() {
    // Live, origin at source time 5 s. The pipeline clock dates the first
    // frame; the camera's sender reports, once they come, win; later pairs
    // of either kind change nothing.
    let mut h = Harness::new(SECOND, true);
    h.push(&Msg::Topology {
        video: true,
        audio: false,
        live: true,
    });
    h.push(&Msg::Clock {
        pts: 5 * SECOND,
        utc: UTC,
        ntp: false,
    });
    for i in 0..20u64 {
        h.frame(5 * SECOND + i * 100 * MS, 100 * MS);
    }
    assert!(!h.chunks.is_empty());
    assert_eq!(
        h.chunks[0].utc_origin, UTC,
        "stream time 0 is the first frame's utc"
    );
    // The camera's clock is 1.5 s ahead: its frame at 7 s says UTC + 3.5 s.
    h.push(&Msg::Clock {
        pts: 7 * SECOND,
        utc: UTC + 3_500 * MS as i64,
        ntp: true,
    });
    h.push(&Msg::Clock {
        pts: 7 * SECOND,
        utc: UTC + 99 * SECOND as i64,
        ntp: false,
    });
    for i in 20..40u64 {
        h.frame(5 * SECOND + i * 100 * MS, 100 * MS);
    }
    let last = h.chunks.last().map_or(0, |c| c.utc_origin);
    assert_eq!(last, UTC + 1_500 * MS as i64);
}
