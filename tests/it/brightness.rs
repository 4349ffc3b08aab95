//! The brightness encoder, the encoder that lives in one file: `dark` events
//! where a generated picture goes black, closed by the picture's end.

use std::path::{Path, PathBuf};

use vigil::record::Phase;

use crate::clip::{self, Container, Media, SECOND};
use crate::run::{RunResult, end_secs, run_pipeline, secs};

const W: usize = 160;
const H: usize = 120;

/// A grey picture at 25 fps, black from `dark_from` until `dark_until`; the
/// picture ends at `video_until`, a quiet sound track at `duration`.
fn clip(dir: &Path, dark_from: u64, dark_until: u64, video_until: u64, duration: u64) -> PathBuf {
    let path = dir.join("dark.mkv");
    let mut picture = |_i: u64, t: u64| {
        let level = if (dark_from..dark_until).contains(&t) {
            4
        } else {
            120
        };
        vec![level; W * H * 3]
    };
    let sound = |_n: u64| 0.0f32;
    clip::write(
        Media {
            container: Container::MkvPcm,
            width: W,
            height: H,
            fps: 25,
            video_until,
            samples: duration / SECOND * 16_000,
            audio_offset: 0,
            audio_rate: 16_000,
            channels: 1,
            picture: Some(&mut picture),
            sound: Some(&sound),
        },
        &path,
    );
    path
}

fn run_dark(dir: &Path, source: &Path) -> RunResult {
    let text =
        "[encoders.brightness]\n[encoders.motion]\n\n[sinks.jsonl]\npath = \"events.jsonl\"\n";
    let r = run_pipeline(dir, text, source);
    r.assert_lifecycles_closed();
    r
}

#[test]
fn the_picture_going_black_is_one_dark_event_from_its_first_to_its_last_black_frame() {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = clip(dir.path(), 2 * SECOND, 5 * SECOND, 8 * SECOND, 8 * SECOND);
    let r = run_dark(dir.path(), &source);
    let (start, end) = (r.events("dark", Phase::Start), r.events("dark", Phase::End));
    assert_eq!((start.len(), end.len()), (1, 1), "{start:?} {end:?}");
    assert_eq!(secs(start[0].start), 2.0, "{:?}", start[0]);
    assert_eq!(end_secs(&end[0]), 5.0, "{:?}", end[0]);
    assert!(
        (end[0].score - (1.0 - 4.0 / 255.0)).abs() < 0.02,
        "{:?}",
        end[0]
    );
    assert!(end[0].details.get("until").is_none(), "{:?}", end[0]);
    // The other encoders run beside it: the cut to black and back is motion.
    assert!(!r.events("motion", Phase::Start).is_empty());
}

#[test]
fn a_dark_event_still_open_when_the_picture_ends_ends_with_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = clip(dir.path(), 3 * SECOND, 9 * SECOND, 5 * SECOND, 7 * SECOND);
    let r = run_dark(dir.path(), &source);
    let end = r.events("dark", Phase::End);
    assert_eq!(end.len(), 1, "{end:?}");
    assert_eq!(secs(end[0].start), 3.0, "{:?}", end[0]);
    assert_eq!(end_secs(&end[0]), 5.0, "{:?}", end[0]);
    assert_eq!(end[0].details["until"], "video_end", "{:?}", end[0]);
}
