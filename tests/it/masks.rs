//! Masks: parts of a stream's picture where change is not motion
//! (`motion_mask`) or where no object is reported (`object_mask`).

use std::path::Path;

use vigil::record::Phase;

use crate::clip::{self, ClipSpec};
use crate::run::{RunResult, run_pipeline, secs};

/// Runs `encoders` on `source` as the stream `cam`, with `masks` (source
/// keys) set.
fn run_masked(dir: &Path, source: &Path, masks: &str, encoders: &str) -> RunResult {
    let text = format!(
        "[[sources]]\nname = \"cam\"\nuri = \"{}\"\n{masks}\n{encoders}\n[sinks.jsonl]\npath = \"events.jsonl\"\n",
        source.display()
    );
    let r = run_pipeline(dir, &text, source);
    r.assert_lifecycles_closed();
    r
}

/// The generated clip's white square moves from 3 s on, in the band of
/// rows 60–124 of 240 (0.25–0.52 of the height), across the whole width.
/// Masked there, it is no motion; masked elsewhere, it is the motion it is
/// unmasked, at the same time.
#[test]
fn motion_in_a_masked_area_fires_nothing_and_the_same_motion_outside_fires() {
    let clip = clip::temp(
        &ClipSpec {
            audio: false,
            ..ClipSpec::default()
        },
        "moving.mkv",
    );
    let motion = |masks: &str| {
        let dir = tempfile::tempdir().expect("temp dir");
        let r = run_masked(dir.path(), &clip.path, masks, "[encoders.motion]");
        r.events("motion", Phase::Start)
            .iter()
            .map(|e| secs(e.start))
            .collect::<Vec<f64>>()
    };
    let unmasked = motion("");
    assert!(!unmasked.is_empty(), "the square's motion is seen");
    assert!((unmasked[0] - 3.0).abs() < 0.3, "{unmasked:?}");
    let band = "motion_mask = [[[0, 0.2], [1, 0.2], [1, 0.6], [0, 0.6]]]";
    assert_eq!(motion(band), Vec::<f64>::new(), "masked where it moves");
    let below = "motion_mask = [[[0, 0.6], [1, 0.6], [1, 1], [0, 1]]]";
    assert_eq!(motion(below), unmasked, "masked where nothing moves");
}

/// chelsea.png: one cat filling much of the photo, its box's bottom centre
/// in the lower half. An object mask over the lower half drops it; one
/// over the top strip does not.
#[test]
fn an_object_whose_anchor_is_masked_is_not_reported() {
    let photo = clip::shared("chelsea.png");
    let cats = |masks: &str| {
        let dir = tempfile::tempdir().expect("temp dir");
        let r = run_masked(dir.path(), &photo, masks, "[encoders.detector]");
        r.events("object", Phase::Start)
            .into_iter()
            .filter(|e| e.labels.first().is_some_and(|l| l == "cat"))
            .count()
    };
    assert_eq!(cats(""), 1);
    assert_eq!(
        cats("object_mask = [[[0, 0.5], [1, 0.5], [1, 1], [0, 1]]]"),
        0
    );
    assert_eq!(
        cats("object_mask = [[[0, 0], [1, 0], [1, 0.2], [0, 0.2]]]"),
        1
    );
}
