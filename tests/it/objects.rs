//! Objects with the real NanoDet model on media with known content.

use std::collections::BTreeMap;

use vigil::config::{DetectorConfig, Gating};
use vigil::encode::batch::Batcher;
use vigil::encode::detector::{self, Detector, FrameObjects};
use vigil::metrics::Metrics;
use vigil::record::Phase;

use crate::clip;
use crate::frames;
use crate::run::run_file;

/// Runs the detector at default thresholds over every frame, whole (no
/// gating: these tests are of the model and its decoding).
fn detect(frames: &[vigil::media::VideoFrame], config: DetectorConfig) -> Vec<FrameObjects> {
    let config = DetectorConfig {
        gating: Gating::Off,
        ..config
    };
    let batcher = Batcher::spawn(
        detector::model(&config, 2).expect("the detector loads (make setup)"),
        config.batch,
        Metrics::new(),
    )
    .expect("a worker");
    let mut d = Detector::new(config, batcher.client(), 25).expect("a detector");
    let refs: Vec<_> = frames.iter().collect();
    refs.chunks(5)
        .flat_map(|c| d.detect(c).expect("inference"))
        .collect()
}

fn labels(found: &[FrameObjects]) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for f in found {
        for o in &f.objects {
            *m.entry(o.label).or_default() += 1;
        }
    }
    m
}

#[test]
fn vtest_has_people_throughout_and_few_phantoms() {
    let frames = frames::decode(&clip::shared("vtest.avi"), 5, 640);
    assert!(frames.len() >= 390, "{} frames", frames.len());
    let found = detect(&frames, DetectorConfig::default());
    let with_person = found
        .iter()
        .filter(|f| f.objects.iter().any(|o| o.label == "person"))
        .count();
    let share = with_person as f64 / found.len() as f64;
    let counts = labels(&found);
    eprintln!(
        "vtest: person in {with_person}/{} frames; {counts:?}",
        found.len()
    );
    assert!(share >= 0.9, "a person in {:.1}% of frames", share * 100.0);
    // ../shared/media/README.md: pedestrians, a parked van and car.
    const IN_SCENE: [&str; 9] = [
        "person", "car", "truck", "bus", "bicycle", "handbag", "backpack", "umbrella", "suitcase",
    ];
    let total: usize = counts.values().sum();
    let phantoms: usize = counts
        .iter()
        .filter(|(l, _)| !IN_SCENE.contains(l))
        .map(|(_, n)| n)
        .sum();
    assert!(
        phantoms as f64 <= 0.02 * total as f64,
        "{phantoms} of {total} detections are of classes not in the scene: {counts:?}"
    );
}

#[test]
fn bikes_has_cars_and_people() {
    let frames = frames::decode(&clip::shared("bikes.mp4"), 5, 640);
    let counts = labels(&detect(&frames, DetectorConfig::default()));
    eprintln!("bikes: {counts:?}");
    assert!(counts.get("car").copied().unwrap_or(0) >= 3, "{counts:?}");
    assert!(
        counts.get("person").copied().unwrap_or(0) >= 3,
        "{counts:?}"
    );
}

#[test]
fn a_motorcycle_and_a_cat_are_named() {
    for (file, label) in [
        ("motorcycle_left.png", "motorcycle"),
        ("chelsea.png", "cat"),
    ] {
        let frames = frames::decode(&clip::shared(file), 1, 640);
        assert_eq!(frames.len(), 1, "{file}");
        let found = detect(&frames, DetectorConfig::default());
        let best = found[0]
            .objects
            .iter()
            .max_by(|a, b| a.score.total_cmp(&b.score))
            .unwrap_or_else(|| panic!("{file}: nothing found"));
        assert_eq!(best.label, label, "{file}: {:?}", found[0].objects);
        // The subject fills much of the photo.
        assert!(best.bbox.area() > 0.2, "{file}: {:?}", best);
    }
}

#[test]
fn a_photo_as_a_stream_gives_an_object_event() {
    let r = run_file(&clip::shared("chelsea.png"));
    assert!(r.ok(), "{}", r.stderr());
    r.assert_lifecycles_closed();
    let cats: Vec<_> = r
        .events("object", Phase::Start)
        .into_iter()
        .filter(|e| e.labels.first().is_some_and(|l| l == "cat"))
        .collect();
    assert_eq!(cats.len(), 1, "{:?}", r.events("object", Phase::Start));
    assert!(cats[0].event.contains("/object/cat/"));
}
