//! Batching across streams: a batch of N gives what N runs of batch 1 give,
//! and for files the grouping never changes the records.

use vigil::config::VadConfig;
use vigil::config::{BatchConfig, DetectorConfig, FacesConfig, SoundConfig};
use vigil::encode::batch::{BatchModel, Batcher, ItemInputs};
use vigil::encode::{detector, faces, sound, vad};
use vigil::metrics::Metrics;

use crate::clip;
use crate::run::vigil;

/// Deterministic inputs in a model's usual range.
fn inputs(n: usize, len: usize, lo: f32, hi: f32) -> Vec<Vec<f32>> {
    let mut state = 12345u64;
    (0..n)
        .map(|_| {
            (0..len)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    lo + (hi - lo) * ((state >> 40) as f32 / (1u64 << 24) as f32)
                })
                .collect()
        })
        .collect()
}

/// The largest difference between outputs at `max_batch` and at batch 1.
fn batched_vs_single(make: impl Fn() -> BatchModel, items: Vec<ItemInputs>) -> f32 {
    let run = |max_batch: usize| {
        let b = Batcher::spawn(
            make(),
            BatchConfig {
                max_batch,
                ..BatchConfig::no_wait()
            },
            Metrics::new(),
        )
        .expect("a worker");
        b.client().infer_each(items.clone()).expect("inference")
    };
    let (together, alone) = (run(items.len()), run(1));
    assert_eq!(together.len(), items.len());
    let mut worst = 0.0f32;
    for (a, b) in together.iter().zip(&alone) {
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x.len(), y.len());
            for (p, q) in x.iter().zip(y) {
                worst = worst.max((p - q).abs());
            }
        }
    }
    worst
}

#[test]
fn a_batch_of_n_gives_what_n_single_runs_give() {
    let one = |v: Vec<Vec<f32>>| v.into_iter().map(|x| vec![x]).collect::<Vec<_>>();
    let d = batched_vs_single(
        || detector::model(&DetectorConfig::default(), 2).expect("nanodet (make setup)"),
        one(inputs(4, 3 * 416 * 416, -2.0, 2.0)),
    );
    let f = batched_vs_single(
        || faces::model(&FacesConfig::default(), 2).expect("blazeface (make setup)"),
        one(inputs(5, 128 * 128 * 3, -1.0, 1.0)),
    );
    let s = batched_vs_single(
        || sound::model(&SoundConfig::default(), 2).expect("yamnet (make setup)"),
        one(inputs(6, 96 * 64, -7.0, 2.0)),
    );
    // Silero: each item has its own samples and its own recurrent state,
    // whose batch dimension is the second.
    let v = batched_vs_single(
        || vad::model(&VadConfig::default(), 2).expect("silero_vad (make setup)"),
        inputs(8, 576, -0.5, 0.5)
            .into_iter()
            .zip(inputs(8, 256, -1.0, 1.0))
            .map(|(x, state)| vec![x, state])
            .collect(),
    );
    eprintln!(
        "largest difference, batch N vs N × 1: nanodet {d:e}, blazeface {f:e}, yamnet {s:e}, silero {v:e}"
    );
    for (model, diff) in [
        ("nanodet", d),
        ("blazeface", f),
        ("yamnet", s),
        ("silero_vad", v),
    ] {
        assert!(diff <= 1e-5, "{model}: {diff}");
    }
}

#[test]
fn batching_across_streams_does_not_change_the_records() {
    let dir = tempfile::tempdir().expect("tmp");
    let run = |max_batch: usize, out: &str| {
        let pipeline = dir.path().join(format!("{out}.toml"));
        std::fs::write(
            &pipeline,
            format!(
                r#"
[[sources]]
name = "walk"
uri = "{vtest}"
[[sources]]
name = "street"
uri = "{bikes}"
[[sources]]
name = "park"
uri = "{park}"
[[sources]]
name = "call"
uri = "{call}"
[encoders.detector]
batch = {{ max_batch = {max_batch}, max_wait = "20ms" }}
[encoders.faces]
batch = {{ max_batch = {max_batch} }}
[encoders.sound]
batch = {{ max_batch = {max_batch} }}
[encoders.vad]
batch = {{ max_batch = {max_batch} }}
[sinks.jsonl]
path = "events.jsonl"
"#,
                vtest = clip::shared("vtest.avi").display(),
                bikes = clip::shared("bikes.mp4").display(),
                park = clip::shared("soundscape_20200501_22050.wav").display(),
                call = clip::shared("sample.wav").display(),
            ),
        )
        .expect("write");
        let o = vigil()
            .arg("run")
            .arg(&pipeline)
            .arg("--out")
            .arg(dir.path().join(out))
            .output()
            .expect("vigil");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let mut records = crate::run::without_run_and_utc(crate::run::read_records(
            &dir.path().join(out).join("events.jsonl"),
        ));
        // Streams interleave in the shared log as they go; each stream's own
        // records keep their order.
        records.sort_by_key(|r| r.stream().to_string());
        records
    };
    let batched = run(8, "batched");
    let single = run(1, "single");
    let of = |kind: &str| {
        crate::run::events(&batched)
            .filter(|e| e.kind == kind)
            .count()
    };
    eprintln!("{} objects, {} sounds", of("object"), of("sound"));
    assert!(
        of("object") >= 10 && of("sound") >= 4,
        "too few records to compare"
    );
    assert_eq!(batched, single);
}

/// Mean of a histogram in Prometheus text: `NAME_sum{…} / NAME_count{…}`.
fn mean(text: &str, name: &str, labels: &str) -> f64 {
    let get = |suffix: &str| {
        let series = format!("{name}_{suffix}{{{labels}}}");
        text.lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{series} not in:\n{text}"))
    };
    get("sum") / get("count")
}

#[test]
fn streams_share_batches_and_metrics_show_their_sizes() {
    let dir = tempfile::tempdir().expect("tmp");
    let bikes = clip::shared("bikes.mp4").to_string_lossy().into_owned();
    let text = format!(
        r#"
[[sources]]
name = "a"
uri = "{bikes}"
[[sources]]
name = "b"
uri = "{bikes}"
[[sources]]
name = "c"
uri = "{bikes}"
[encoders.detector]
batch = {{ max_batch = 16, max_wait = "200ms" }}
[sinks.jsonl]
path = "events.jsonl"
"#
    );
    let config = vigil::config::PipelineConfig::parse(&text, std::path::Path::new("p.toml"))
        .expect("a valid pipeline");
    let metrics = Metrics::new();
    let report = crate::run::run_in_process(&config, dir.path(), &metrics);
    assert!(report.streams.iter().all(|s| s.failure.is_none()));
    let text = metrics.render();
    // One stream alone has at most 2 frames at the worker at a time: more
    // per run means frames of several streams ran together.
    let size = mean(&text, "vigil_batch_size", "model=\"nanodet\"");
    eprintln!("mean nanodet batch over 3 streams: {size:.1}");
    assert!(size > 3.0, "mean batch {size}");
    assert!(text.contains("vigil_batch_queue_depth{model=\"nanodet\"}"));
}
