//! Streams with video only, audio only, odd audio formats, and both: chunks
//! come out whole, contiguous and unflagged.

use std::path::Path;
use std::sync::Arc;

use crossbeam_channel::bounded;
use vigil::media::Chunk;
use vigil::metrics::Metrics;
use vigil::source::{Source, SourceSettings};
use vigil::stream::StreamStatus;
use vigil::sync::SyncSettings;
use vigil::time::{AUDIO_RATE, SECOND, time_to_sample};

use crate::clip::{self, ClipSpec};

/// Source and synchroniser alone: every chunk of `path`, and the failure if any.
fn chunks(path: &Path) -> (Vec<Chunk>, Option<String>) {
    vigil::source::init().expect("GStreamer");
    let metrics = Metrics::new();
    let status = Arc::new(StreamStatus::default());
    let name: Arc<str> = Arc::from("t");
    let sync_status = status.clone();
    let (src_tx, src_rx) = bounded(64);
    let (chunk_tx, chunk_rx) = vigil::sync::chunk_queue();
    let settings = SyncSettings {
        hop: SECOND,
        max_skew: SECOND / 2,
        dead_branch: 10 * SECOND,
        dead_branch_live: 10 * SECOND,
        live: false,
        start_time: None,
        fallback_utc: 0,
    };
    let sync = vigil::sync::spawn(
        name.clone(),
        settings,
        src_rx,
        chunk_tx,
        &metrics,
        sync_status,
    )
    .expect("sync thread");
    let uri = vigil::source::resolve_uri(path.to_str().expect("utf-8")).expect("uri");
    let source = Source::start(
        SourceSettings {
            name,
            uri,
            fps: (5, 1),
            width: Some(160),
            height: None,
            thumbnail_width: None,
            rtsp_tcp: true,
            rtsp_latency_ms: 200,
            pace_window: 5 * SECOND,
            ca_file: None,
            decode_threads: None,
            packets: None,
        },
        src_tx,
        Arc::new(StreamStatus::default()),
        metrics.stage("source", "t"),
    )
    .expect("source");
    let chunks: Vec<Chunk> = chunk_rx.iter().collect();
    sync.join().expect("sync joined");
    source.join(true);
    (chunks, status.failure())
}

/// Spans contiguous from 0, audio exact, frames inside their span, no flags.
#[track_caller]
fn assert_whole(chunks: &[Chunk], duration_ms: u64, has_video: bool, has_audio: bool) {
    assert!(!chunks.is_empty());
    let mut at = 0;
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c.seq, i as u64);
        assert_eq!(c.span.start.0, at, "chunk {i} does not follow on");
        let last = i + 1 == chunks.len();
        assert_eq!(c.flags.last, last);
        if !last {
            assert_eq!(c.span.duration(), SECOND, "chunk {i} is not one hop");
        }
        assert!(!c.flags.any_gap(), "chunk {i} flagged: {:?}", c.flags);
        assert_eq!((c.has_video, c.has_audio), (has_video, has_audio));
        let samples =
            time_to_sample(c.span.end, AUDIO_RATE) - time_to_sample(c.span.start, AUDIO_RATE);
        assert_eq!(
            c.audio.len() as u64,
            if has_audio { samples } else { 0 },
            "chunk {i} audio"
        );
        for f in &c.frames {
            assert!(
                c.span.contains(f.pts),
                "frame at {} outside chunk {i}",
                f.pts
            );
        }
        at = c.span.end.0;
    }
    let end_ms = at / 1_000_000;
    assert!(
        end_ms.abs_diff(duration_ms) <= 1,
        "stream ends at {end_ms} ms, expected {duration_ms}"
    );
}

#[test]
fn video_only_vtest() {
    let (chunks, failure) = chunks(&clip::shared("vtest.avi"));
    assert_eq!(failure, None);
    assert_whole(&chunks, 79_500, true, false);
    assert_eq!(chunks.len(), 80);
    // 10 fps sampled at 5 fps: frames at 0.0, 0.2, … 79.4 s.
    let frames: usize = chunks.iter().map(|c| c.frames.len()).sum();
    assert_eq!(frames, 398);
    assert!(chunks[..79].iter().all(|c| c.frames.len() == 5));
    assert_eq!(
        (chunks[0].frames[0].width, chunks[0].frames[0].height),
        (160, 120)
    );
}

#[test]
fn audio_only_jfk() {
    let (chunks, failure) = chunks(&clip::shared("jfk.wav"));
    assert_eq!(failure, None);
    assert_whole(&chunks, 11_000, false, true);
    let total: usize = chunks.iter().map(|c| c.audio.len()).sum();
    assert_eq!(total, 176_000);
    assert!(chunks.iter().all(|c| c.frames.is_empty()));
}

#[test]
fn stereo_at_22050_is_resampled_to_16k_mono() {
    let spec = ClipSpec {
        video: false,
        audio_rate: 22_050,
        channels: 2,
        tone_at: 0,
        duration: 4 * SECOND,
        ..Default::default()
    };
    let clip = clip::temp(&spec, "stereo22k.mkv");
    let (chunks, failure) = chunks(&clip.path);
    assert_eq!(failure, None);
    assert_whole(&chunks, 4_000, false, true);
    // A 0.5-peak sine: RMS 0.354 in every chunk, on both channels mixed to one.
    for c in &chunks {
        let rms = (c.audio.iter().map(|x| x * x).sum::<f32>() / c.audio.len() as f32).sqrt();
        assert!((rms - 0.3536).abs() < 0.01, "chunk {} RMS {rms}", c.seq);
    }
}

#[test]
fn container_with_both() {
    let clip = clip::temp(&ClipSpec::default(), "both.mkv");
    let (chunks, failure) = chunks(&clip.path);
    assert_eq!(failure, None);
    assert_whole(&chunks, 6_000, true, true);
    assert!(
        chunks.iter().all(|c| c.frames.len() == 5),
        "5 frames a chunk at 5 fps"
    );
    // The tone starts at 3.037 s: sample 48592 is the first non-zero one.
    let audio: Vec<f32> = chunks
        .iter()
        .flat_map(|c| c.audio.iter().copied())
        .collect();
    let first = audio.iter().position(|x| x.abs() > 0.01).unwrap_or(0);
    assert!(
        first.abs_diff(48_592) <= 16,
        "tone starts at sample {first}"
    );
}
