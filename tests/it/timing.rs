//! Event onsets land where the media says, to the frame and within 10 ms of sound.

use vigil::record::Phase;

use crate::clip::{self, ClipSpec, Container, MS, SECOND};
use crate::run::{end_secs, run_file, secs};

fn onsets(spec: &ClipSpec, name: &str) -> (f64, f64) {
    let clip = clip::temp(spec, name);
    let r = run_file(&clip.path);
    assert!(r.ok(), "vigil failed:\n{}", r.stderr());
    let motion = r.events("motion", Phase::Start);
    let loud = r.events("loud_sound", Phase::Start);
    assert_eq!(motion.len(), 1, "one motion event: {motion:?}");
    assert_eq!(loud.len(), 1, "one loud sound: {loud:?}");
    assert_eq!(r.events("motion", Phase::End).len(), 1);
    assert_eq!(r.events("loud_sound", Phase::End).len(), 1);
    r.assert_lifecycles_closed();
    let found = (secs(motion[0].start), secs(loud[0].start));
    eprintln!(
        "{name}: motion starts at {} s, loud_sound at {} s",
        found.0, found.1
    );
    found
}

#[test]
fn pcm_in_matroska_motion_on_the_frame_and_sound_within_10ms() {
    let (motion, loud) = onsets(&ClipSpec::default(), "pcm.mkv");
    assert_eq!(motion, 3.0, "motion must start on the frame at 3.0 s");
    assert!(
        (loud - 3.037).abs() <= 0.010,
        "loud_sound at {loud}, expected 3.037 ± 0.010"
    );
}

#[test]
fn aac_in_mp4_sound_within_30ms() {
    let spec = ClipSpec {
        container: Container::Mp4Aac,
        ..Default::default()
    };
    let (motion, loud) = onsets(&spec, "aac.mp4");
    assert_eq!(motion, 3.0);
    assert!(
        (loud - 3.037).abs() <= 0.030,
        "loud_sound at {loud}, expected 3.037 ± 0.030"
    );
}

#[test]
fn a_late_sound_track_shows_its_offset() {
    let spec = ClipSpec {
        audio_offset: 200 * MS,
        ..Default::default()
    };
    let (motion, loud) = onsets(&spec, "late.mkv");
    assert_eq!(motion, 3.0);
    let offset = loud - motion - 0.037;
    assert!(
        (offset - 0.200).abs() <= 0.010,
        "offset {offset:.3} s, expected 0.200 ± 0.010"
    );
}

#[test]
fn an_event_ends_with_the_branch_it_was_seen_in() {
    // The picture (moving from 3.0 s) ends at 5.0 s; the tone runs to 8.0 s.
    let spec = ClipSpec {
        duration: 8 * SECOND,
        video_until: Some(5 * SECOND),
        ..Default::default()
    };
    let clip = clip::temp(&spec, "short_video.mkv");
    let r = run_file(&clip.path);
    assert!(r.ok(), "{}", r.stderr());
    r.assert_lifecycles_closed();
    let motion = r.events("motion", Phase::End);
    assert_eq!(motion.len(), 1);
    assert_eq!(end_secs(&motion[0]), 5.0, "{:?}", motion[0]);
    assert_eq!(motion[0].details["until"], "video_end");
    let loud = r.events("loud_sound", Phase::End);
    assert_eq!(end_secs(&loud[0]), 8.0);
    assert_eq!(loud[0].details["until"], "stream_end");
}

#[test]
fn captions_say_what_moved_where_how_loud_and_what_changed() {
    let clip = clip::temp(&ClipSpec::default(), "captions.mkv");
    let r = run_file(&clip.path);
    assert!(r.ok(), "{}", r.stderr());
    let vtt = std::fs::read_to_string(r.out_dir.join("captions.vtt")).unwrap_or_default();
    assert!(vtt.starts_with("WEBVTT\n\n"), "{vtt}");
    let cues: Vec<&str> = vtt
        .split("\n\n")
        .skip(1)
        .filter(|c| !c.is_empty())
        .collect();
    // Two captions for the 6 s clip: [0, 5) with the change, then [5, 6).
    assert_eq!(cues.len(), 2, "{vtt}");
    assert!(
        cues[0].contains("00:00:00.000 --> 00:00:05.000"),
        "{}",
        cues[0]
    );
    // The square appears at x 20–80, y 60–120 of 320×240: the left third,
    // the middle band.
    assert!(
        cues[0].contains("Motion starts at 3.0 s on the left"),
        "{}",
        cues[0]
    );
    assert!(
        cues[0].contains("a loud sound at 3.037 s (peak -6 dBFS)"),
        "{}",
        cues[0]
    );
    assert!(
        cues[1].contains("00:00:05.000 --> 00:00:06.000"),
        "{}",
        cues[1]
    );
    assert!(
        cues[1].contains("Motion goes on until the stream ends at 6.0 s"),
        "{}",
        cues[1]
    );
    assert!(
        cues[1].contains("sound is loud (-9 dBFS, peak -6)"),
        "{}",
        cues[1]
    );
}
