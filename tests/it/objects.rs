//! Objects with the real NanoDet model on media with known content.

use std::collections::BTreeMap;

use vigil::config::{DetectorConfig, Gating, Precision};
use vigil::encode::batch::Batcher;
use vigil::encode::detector::{self, Detection, Detector, FrameObjects};
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

/// The default settings with the model of `precision`.
fn at(precision: Precision) -> DetectorConfig {
    DetectorConfig {
        precision,
        ..DetectorConfig::default()
    }
}

/// Both models: the tests of what the detector finds hold for either.
const PRECISIONS: [Precision; 2] = [Precision::Int8, Precision::F32];

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
    for precision in PRECISIONS {
        let found = detect(&frames, at(precision));
        let with_person = found
            .iter()
            .filter(|f| f.objects.iter().any(|o| o.label == "person"))
            .count();
        let share = with_person as f64 / found.len() as f64;
        let counts = labels(&found);
        eprintln!(
            "vtest, {precision:?}: person in {with_person}/{} frames; {counts:?}",
            found.len()
        );
        assert!(
            share >= 0.9,
            "{precision:?}: a person in {:.1}% of frames",
            share * 100.0
        );
        // ../shared/media/README.md: pedestrians, a parked van and car.
        const IN_SCENE: [&str; 9] = [
            "person", "car", "truck", "bus", "bicycle", "handbag", "backpack", "umbrella",
            "suitcase",
        ];
        let total: usize = counts.values().sum();
        let phantoms: usize = counts
            .iter()
            .filter(|(l, _)| !IN_SCENE.contains(l))
            .map(|(_, n)| n)
            .sum();
        assert!(
            phantoms as f64 <= 0.02 * total as f64,
            "{precision:?}: {phantoms} of {total} detections are of classes not in the scene: {counts:?}"
        );
    }
}

#[test]
fn bikes_has_cars_and_people() {
    let frames = frames::decode(&clip::shared("bikes.mp4"), 5, 640);
    for precision in PRECISIONS {
        let counts = labels(&detect(&frames, at(precision)));
        eprintln!("bikes, {precision:?}: {counts:?}");
        let count = |label: &str| counts.get(label).copied().unwrap_or(0);
        assert!(count("car") >= 3, "{precision:?}: {counts:?}");
        assert!(count("person") >= 3, "{precision:?}: {counts:?}");
    }
}

#[test]
fn a_motorcycle_and_a_cat_are_named() {
    for (file, label) in [
        ("motorcycle_left.png", "motorcycle"),
        ("chelsea.png", "cat"),
    ] {
        let frames = frames::decode(&clip::shared(file), 1, 640);
        assert_eq!(frames.len(), 1, "{file}");
        for precision in PRECISIONS {
            let found = detect(&frames, at(precision));
            let best = found[0]
                .objects
                .iter()
                .max_by(|a, b| a.score.total_cmp(&b.score))
                .unwrap_or_else(|| panic!("{file}, {precision:?}: nothing found"));
            assert_eq!(
                best.label, label,
                "{file}, {precision:?}: {:?}",
                found[0].objects
            );
            // The subject fills much of the photo.
            assert!(best.bbox.area() > 0.2, "{file}, {precision:?}: {:?}", best);
        }
    }
}

/// How one model's detections agree with another's, frame by frame.
#[derive(Debug, Default)]
struct Agreement {
    /// Detections of the reference and of the other model.
    reference: usize,
    other: usize,
    /// Reference detections the other finds (same class, IoU ≥ 0.5).
    found: usize,
    /// The other's detections the reference has.
    kept: usize,
    /// Reference detections with an other box at IoU ≥ 0.5 of any class:
    /// their IoU summed, and how many are of the same class.
    pairs: usize,
    iou: f64,
    same_class: usize,
}

impl Agreement {
    fn of(reference: &[FrameObjects], other: &[FrameObjects]) -> Agreement {
        assert_eq!(reference.len(), other.len());
        let mut a = Agreement::default();
        let same = |d: &Detection, os: &[Detection]| {
            os.iter()
                .any(|o| o.label == d.label && o.bbox.iou(d.bbox) >= 0.5)
        };
        for (r, o) in reference.iter().zip(other) {
            a.reference += r.objects.len();
            a.other += o.objects.len();
            a.found += r.objects.iter().filter(|d| same(d, &o.objects)).count();
            a.kept += o.objects.iter().filter(|d| same(d, &r.objects)).count();
            for d in &r.objects {
                let best = o
                    .objects
                    .iter()
                    .map(|x| (x.bbox.iou(d.bbox), x.label))
                    .max_by(|x, y| x.0.total_cmp(&y.0));
                if let Some((iou, label)) = best.filter(|b| b.0 >= 0.5) {
                    a.pairs += 1;
                    a.iou += f64::from(iou);
                    a.same_class += usize::from(label == d.label);
                }
            }
        }
        a
    }

    fn share(n: usize, of: usize) -> f64 {
        n as f64 / of.max(1) as f64
    }
}

/// The int8 model against the float one on the shared media's clips and
/// photos, every frame whole at 5 fps: what the float model finds, the int8
/// model finds at the same place with the same class, and little else.
#[test]
fn the_int8_model_finds_what_the_float_model_finds() {
    let mut all = Agreement::default();
    for file in [
        "vtest.avi",
        "bikes.mp4",
        "astronaut.png",
        "chelsea.png",
        "motorcycle_left.png",
    ] {
        let frames = frames::decode(&clip::shared(file), 5, 640);
        let a = Agreement::of(
            &detect(&frames, at(Precision::F32)),
            &detect(&frames, at(Precision::Int8)),
        );
        eprintln!("{file}: {a:?}");
        if a.reference >= 20 {
            let found = Agreement::share(a.found, a.reference);
            assert!(found >= 0.75, "{file}: {a:?}");
        }
        all.reference += a.reference;
        all.other += a.other;
        all.found += a.found;
        all.kept += a.kept;
        all.pairs += a.pairs;
        all.iou += a.iou;
        all.same_class += a.same_class;
    }
    let found = Agreement::share(all.found, all.reference);
    let kept = Agreement::share(all.kept, all.other);
    let mean_iou = all.iou / all.pairs.max(1) as f64;
    let same_class = Agreement::share(all.same_class, all.pairs);
    eprintln!(
        "int8 against f32: found {found:.3} of {} float detections, {kept:.3} of its {} are the \
         float model's; mean IoU {mean_iou:.3}, same class {same_class:.3}",
        all.reference, all.other
    );
    assert!(all.reference >= 1000, "{all:?}");
    assert!(found >= 0.95, "{all:?}");
    assert!(kept >= 0.93, "{all:?}");
    assert!(mean_iou >= 0.9, "{all:?}");
    assert!(same_class >= 0.97, "{all:?}");
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
