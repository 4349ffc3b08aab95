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
    assert!(line.contains("`dragon` is not a COCO class"), "{line}");
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
