//! Objects with the real NanoDet model on media with known content.

use std::collections::BTreeMap;

use vigil::config::{DetectorConfig, Gating, InputSide, Precision, SourceConfig};
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
    detect_at(frames, config, None)
}

/// A stream at 25 fps whose detector input is `side` (the section's when
/// `None`).
fn stream(side: Option<u32>) -> SourceConfig {
    SourceConfig {
        fps: 25,
        detector_input: side.map(|s| InputSide::new(s).expect("a side the model takes")),
        ..SourceConfig::new("cam".into(), "file.mp4".into())
    }
}

/// As [`detect`], at the input `side`.
fn detect_at(
    frames: &[vigil::media::VideoFrame],
    config: DetectorConfig,
    side: Option<u32>,
) -> Vec<FrameObjects> {
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
    let mut d = Detector::new(config, batcher.client(), &stream(side)).expect("a detector");
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

    /// Adds `a`'s counts to these.
    fn add(&mut self, a: &Agreement) {
        self.reference += a.reference;
        self.other += a.other;
        self.found += a.found;
        self.kept += a.kept;
        self.pairs += a.pairs;
        self.iou += a.iou;
        self.same_class += a.same_class;
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
        all.add(&a);
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

/// What one pass of `Agreement::of` over each file adds up to, printed and
/// returned: (found, kept, mean IoU, same class).
fn agreement_over(
    files: &[&str],
    what: &str,
    frames_of: impl Fn(&str) -> Vec<vigil::media::VideoFrame>,
    reference: impl Fn(&[vigil::media::VideoFrame]) -> Vec<FrameObjects>,
    other: impl Fn(&[vigil::media::VideoFrame]) -> Vec<FrameObjects>,
) -> (Agreement, [f64; 4]) {
    let mut all = Agreement::default();
    for file in files {
        let frames = frames_of(file);
        let a = Agreement::of(&reference(&frames), &other(&frames));
        eprintln!("{what}, {file}: {a:?}");
        all.add(&a);
    }
    let shares = [
        Agreement::share(all.found, all.reference),
        Agreement::share(all.kept, all.other),
        all.iou / all.pairs.max(1) as f64,
        Agreement::share(all.same_class, all.pairs),
    ];
    eprintln!(
        "{what}: found {:.3} of {} detections, {:.3} of its {} are the reference's; mean IoU {:.3}, same class {:.3}",
        shares[0], all.reference, shares[1], all.other, shares[2], shares[3]
    );
    (all, shares)
}

/// A near camera's input at 320 (`detector_input = 320`) against the
/// model's own 416. Near: the walkway of vtest.avi seen twice as close (the
/// middle 640 × 480 of its frames scaled to 1280 wide, so people are twice
/// the size) and the three photos, whose subject fills much of the picture:
/// what 416 finds, 320 finds at the same place with the same class. Far
/// (the walkway as filmed, the street montage): printed, for the README's
/// advice; 320 is not for them.
#[test]
fn a_near_camera_at_320_finds_what_416_finds() {
    let near = |file: &str| -> Vec<vigil::media::VideoFrame> {
        if file == "vtest.avi" {
            frames::decode(&clip::shared(file), 5, 1280)
                .iter()
                .map(|f| frames::crop(f, 320, 240, 640, 480))
                .collect()
        } else {
            frames::decode(&clip::shared(file), 5, 640)
        }
    };
    for precision in PRECISIONS {
        let what = format!("near, 320 against 416, {precision:?}");
        let (all, [found, kept, mean_iou, same_class]) = agreement_over(
            &[
                "vtest.avi",
                "astronaut.png",
                "chelsea.png",
                "motorcycle_left.png",
            ],
            &what,
            near,
            |f| detect(f, at(precision)),
            |f| detect_at(f, at(precision), Some(320)),
        );
        // Measured: found and kept 0.96-0.97, mean IoU 0.91, same class 1.
        assert!(all.reference >= 1000, "{all:?}");
        assert!(found >= 0.93, "{precision:?}: {all:?}");
        assert!(kept >= 0.93, "{precision:?}: {all:?}");
        assert!(mean_iou >= 0.88, "{precision:?}: {all:?}");
        assert!(same_class >= 0.98, "{precision:?}: {all:?}");
    }
    // Measured: found 0.85 on the walkway, 0.57 on the street montage.
    agreement_over(
        &["vtest.avi", "bikes.mp4"],
        "far, 320 against 416, Int8",
        |file| frames::decode(&clip::shared(file), 5, 640),
        |f| detect(f, at(Precision::Int8)),
        |f| detect_at(f, at(Precision::Int8), Some(320)),
    );
}

/// Streams of 416 and of 320 share one worker: their frames are batched by
/// side, and each stream gets what it gets alone.
#[test]
fn streams_of_two_sides_share_one_worker() {
    let frames = frames::decode(&clip::shared("bikes.mp4"), 5, 640);
    let config = DetectorConfig {
        gating: Gating::Off,
        batch: vigil::config::BatchConfig {
            max_batch: 8,
            ..vigil::config::BatchConfig::default()
        },
        ..DetectorConfig::default()
    };
    let alone = |side| detect_at(&frames, config.clone(), side);
    let (big, small) = (alone(None), alone(Some(320)));
    let batcher = Batcher::spawn(
        detector::model(&config, 2).expect("the detector loads (make setup)"),
        config.batch,
        Metrics::new(),
    )
    .expect("a worker");
    let refs: Vec<_> = frames.iter().collect();
    let together: Vec<Vec<FrameObjects>> = std::thread::scope(|s| {
        let runs: Vec<_> = [None, Some(320), None, Some(320)]
            .into_iter()
            .map(|side| {
                let (client, config, refs) = (batcher.client(), config.clone(), &refs);
                s.spawn(move || {
                    let mut d = Detector::new(config, client, &stream(side)).expect("a detector");
                    refs.chunks(5)
                        .flat_map(|c| d.detect(c).expect("inference"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("a stream's thread"))
            .collect()
    });
    assert_ne!(big, small, "the sides see differently");
    for (k, got) in together.iter().enumerate() {
        let want = if k % 2 == 0 { &big } else { &small };
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert_eq!(
                g.objects.len(),
                w.objects.len(),
                "stream {k} at {:?}",
                g.pts
            );
            for (a, b) in g.objects.iter().zip(&w.objects) {
                assert_eq!(a.label, b.label);
                assert!((a.score - b.score).abs() < 1e-4, "{a:?} {b:?}");
                assert!(a.bbox.iou(b.bbox) > 0.999, "{a:?} {b:?}");
            }
        }
    }
}

/// `filters` drop what cannot be the class in this picture: on the walkway
/// people stand (taller than wide) and take 0.2–2 % of the picture, so a
/// filter that wants wide ones, or tiny ones, leaves no person, and one
/// that fits them keeps nearly all.
#[test]
fn shape_filters_drop_what_cannot_be_the_class() {
    let frames = frames::decode(&clip::shared("vtest.avi"), 5, 640);
    let frames = &frames[..100];
    let people = |filter: Option<vigil::config::ShapeFilter>| -> usize {
        let config = DetectorConfig {
            filters: filter
                .map(|f| [("person".to_string(), f)].into_iter().collect())
                .unwrap_or_default(),
            ..DetectorConfig::default()
        };
        detect(frames, config)
            .iter()
            .flat_map(|f| &f.objects)
            .filter(|o| o.label == "person")
            .count()
    };
    let all = people(None);
    assert!(all >= 300, "{all} people in 100 frames");
    let wide = vigil::config::ShapeFilter {
        min_ratio: Some(1.5),
        ..Default::default()
    };
    assert_eq!(people(Some(wide)), 0, "no person is wider than tall here");
    let tiny = vigil::config::ShapeFilter {
        max_area: Some(0.0005),
        ..Default::default()
    };
    assert_eq!(people(Some(tiny)), 0, "no person is that small here");
    let fits = vigil::config::ShapeFilter {
        min_area: Some(0.001),
        max_area: Some(0.1),
        min_ratio: Some(0.1),
        max_ratio: Some(1.2),
    };
    let kept = people(Some(fits));
    assert!(kept * 100 >= all * 95, "{kept} of {all} kept");
}

/// A YOLOv8-layout export runs through the same encoder: `nanodet_yolo` is
/// the float NanoDet with its box decoding done inside the graph
/// (`models/yolo_from_nanodet.py`), answering `[batch, 84, anchors]` as a
/// YOLOv8 export does; decoded as its family, it finds what the float
/// model decoded as NanoDet finds, at the same place with the same scores.
#[test]
fn a_yolo_export_decodes_as_its_family() {
    let yolo = DetectorConfig {
        model: "nanodet_yolo".into(),
        ..DetectorConfig::default()
    };
    let (all, [found, kept, mean_iou, same_class]) = agreement_over(
        &[
            "vtest.avi",
            "bikes.mp4",
            "chelsea.png",
            "motorcycle_left.png",
        ],
        "YOLOv8 layout against NanoDet's",
        |file| frames::decode(&clip::shared(file), 5, 640),
        |f| detect(f, at(Precision::F32)),
        |f| detect(f, yolo.clone()),
    );
    assert!(all.reference >= 1000, "{all:?}");
    assert!(found >= 0.995 && kept >= 0.995, "{all:?}");
    assert!(mean_iou >= 0.999 && same_class == 1.0, "{all:?}");
}
