//! Model files and settings that cannot work stop a pipeline at start with
//! one clear line; `vigil models verify` tells what the cache holds.

use std::path::{Path, PathBuf};

use crate::clip;
use crate::run::{self, cache, vigil};

/// Runs `pipeline` on chelsea.png; see [`run::fails_at_start`].
#[track_caller]
fn fails_at_start(dir: &Path, cache: &Path, pipeline: &str) -> String {
    run::fails_at_start(dir, cache, pipeline, &clip::shared("chelsea.png"))
}

/// A cache in `dir` holding ONNX Runtime and nothing else yet.
fn bare_cache(dir: &Path) -> PathBuf {
    let bad = dir.join("cache");
    std::fs::create_dir_all(bad.join("models")).expect("mkdir");
    std::fs::create_dir_all(bad.join("ort")).expect("mkdir");
    let lib = "ort/libonnxruntime.so.1.31.1";
    std::fs::copy(cache().join(lib), bad.join(lib)).expect("ONNX Runtime (make setup)");
    bad
}

#[test]
fn another_model_in_the_detectors_place_is_named_at_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = bare_cache(dir.path());
    // A real, valid ONNX file, but YAMNet's, under NanoDet's names.
    for (file, precision, model) in [
        ("nanodet_int8.onnx", "int8", "nanodet_int8"),
        ("nanodet.onnx", "f32", "nanodet"),
    ] {
        std::fs::copy(
            cache().join("models/yamnet.onnx"),
            bad.join("models").join(file),
        )
        .expect("yamnet (make setup)");
        let pipeline = format!("[encoders.detector]\nprecision = \"{precision}\"\n");
        let line = fails_at_start(dir.path(), &bad, &pipeline);
        assert!(
            line.contains(&format!("model '{model}'"))
                && line.contains("no input `image`")
                && line.contains("models fetch"),
            "{line}"
        );
    }
}

#[test]
fn a_truncated_sound_model_is_named_at_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = bare_cache(dir.path());
    std::fs::copy(
        cache().join("models/yamnet_class_map.csv"),
        bad.join("models/yamnet_class_map.csv"),
    )
    .expect("labels (make setup)");
    let model = std::fs::read(cache().join("models/yamnet.onnx")).expect("yamnet (make setup)");
    std::fs::write(bad.join("models/yamnet.onnx"), &model[..model.len() / 2]).expect("write");
    let line = fails_at_start(dir.path(), &bad, "[encoders.sound]\n");
    assert!(
        line.contains("model 'yamnet'") && line.contains("cannot load"),
        "{line}"
    );
}

#[test]
fn an_unknown_sound_class_or_object_class_is_named_at_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let line = fails_at_start(
        dir.path(),
        &cache(),
        "[encoders.sound]\nclasses = [\"siren\", \"unicorn\"]\n",
    );
    assert!(
        line.contains("`unicorn`") && line.contains("group"),
        "{line}"
    );
    let line = fails_at_start(
        dir.path(),
        &cache(),
        "[encoders.detector]\nclasses = [\"person\", \"dragon\"]\n",
    );
    assert!(
        line.contains("`dragon` is not a class of the model"),
        "{line}"
    );
}

#[test]
fn cuda_asked_of_a_cpu_runtime_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let line = fails_at_start(
        dir.path(),
        &cache(),
        "[encoders.detector]\nprovider = \"cuda\"\n",
    );
    assert!(
        line.contains("model 'nanodet_int8'")
            && line.contains("without CUDA")
            && line.contains("provider = \"cpu\""),
        "{line}"
    );
}

#[test]
fn verify_checks_every_model_including_converted_ones() {
    let out = vigil().args(["models", "verify"]).output().expect("vigil");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for name in [
        "onnxruntime",
        "silero_vad",
        "blazeface",
        "nanodet",
        "nanodet_int8",
        "yamnet",
    ] {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().next() == Some(name) && l.contains(": ok")),
            "{name}: {text}"
        );
    }
    assert!(text.contains("converted"), "{text}");
}

/// A model of one's own in `dir`: NanoDet's YOLOv8-layout export as
/// `mine.onnx`, its classes renamed (`person` is `human`), with `manifest`
/// (its `labels` line added) and `labels` beside it.
fn own_model(dir: &Path, manifest: &str, labels: &[String]) {
    std::fs::copy(
        cache().join("models/nanodet_yolo.onnx"),
        dir.join("mine.onnx"),
    )
    .expect("nanodet_yolo (make setup)");
    std::fs::write(dir.join("mine.txt"), labels.join("\n")).expect("labels");
    std::fs::write(
        dir.join("mine.toml"),
        format!("name = \"mine\"\nlabels = \"mine.txt\"\n{manifest}"),
    )
    .expect("manifest");
}

/// The YOLOv8 export's manifest, with `input` and `family` as given.
fn yolo_manifest(input: &str, family: &str) -> String {
    format!(
        "[detector]\nfamily = \"{family}\"\ncolour = \"bgr\"\nmean = [103.53, 116.28, 123.675]\nstd = [57.375, 57.12, 58.395]\n\
         [[inputs]]\nname = \"{input}\"\ntype = \"f32\"\nshape = [\"batch\", 3, 416, 416]\n\
         [[outputs]]\nname = \"output0\"\ntype = \"f32\"\nshape = [\"batch\", 84, 3549]\n"
    )
}

fn renamed_coco() -> Vec<String> {
    vigil::config::labels::coco_classes()
        .iter()
        .map(|c| if *c == "person" { "human" } else { c }.to_string())
        .collect()
}

#[test]
fn a_model_of_your_own_runs_with_its_manifest_and_labels() {
    let dir = tempfile::tempdir().expect("tmp");
    own_model(
        dir.path(),
        &yolo_manifest("images", "yolov8"),
        &renamed_coco(),
    );
    // The path is relative to the pipeline file; rules name its classes.
    let pipeline = "[encoders.detector]\nmodel = \"mine.onnx\"\nthresholds = { human = 0.4 }\n\
                    [[rules]]\nname = \"someone\"\nwhen = \"object(human)\"\n\
                    [sinks.jsonl]\npath = \"events.jsonl\"\n";
    let r = run::run_pipeline(dir.path(), pipeline, &clip::shared("astronaut.png"));
    let objects = r.events("object", vigil::record::Phase::Start);
    let labels: Vec<String> = objects.iter().flat_map(|e| e.labels.clone()).collect();
    assert!(labels.contains(&"human".to_string()), "{labels:?}");
    assert!(!labels.contains(&"person".to_string()), "{labels:?}");
    let rules = r.events("rule", vigil::record::Phase::Start);
    assert_eq!(rules.len(), 1, "{rules:?}");
    // A class the model does not have is refused before anything runs.
    let line = fails_at_start(
        dir.path(),
        &cache(),
        "[encoders.detector]\nmodel = \"mine.onnx\"\n[[rules]]\nname = \"x\"\nwhen = \"object(person)\"\n",
    );
    assert!(line.contains("`person` is neither"), "{line}");
}

#[test]
fn a_model_of_your_own_with_a_wrong_manifest_is_refused_at_start_naming_the_mismatch() {
    let pipeline = "[encoders.detector]\nmodel = \"mine.onnx\"\n";
    let mut short = renamed_coco();
    short.pop();
    for (manifest, labels, needles) in [
        // An input the model does not have.
        (
            yolo_manifest("image", "yolov8"),
            renamed_coco(),
            vec![
                "no input `image`",
                "[\"images\"]",
                "mine.toml: fix the manifest",
            ],
        ),
        // A class missing from the labels.
        (
            yolo_manifest("images", "yolov8"),
            short,
            vec!["its labels name 79 classes", "holds 80"],
        ),
        // The wrong family for the outputs.
        (
            yolo_manifest("images", "nanodet"),
            renamed_coco(),
            vec!["labels name 80 classes", "holds 3549"],
        ),
        // A key the manifest does not take.
        (
            format!("threshold = 0.5\n{}", yolo_manifest("images", "yolov8")),
            renamed_coco(),
            vec!["mine.toml", "unknown field `threshold`"],
        ),
    ] {
        let dir = tempfile::tempdir().expect("tmp");
        own_model(dir.path(), &manifest, &labels);
        let line = fails_at_start(dir.path(), &cache(), pipeline);
        for n in needles {
            assert!(line.contains(n), "`{n}` in: {line}");
        }
    }
    // No manifest at all.
    let dir = tempfile::tempdir().expect("tmp");
    own_model(
        dir.path(),
        &yolo_manifest("images", "yolov8"),
        &renamed_coco(),
    );
    std::fs::remove_file(dir.path().join("mine.toml")).expect("rm");
    let line = fails_at_start(dir.path(), &cache(), pipeline);
    assert!(
        line.contains("mine.toml") && line.contains("cannot read its manifest"),
        "{line}"
    );
}
