//! Model files and settings that cannot work stop a pipeline at start with
//! one clear line; `vigil models verify` tells what the cache holds.

use std::path::{Path, PathBuf};

use crate::clip;
use crate::run::vigil;

/// The cache the tests run with (as the Makefile sets it).
fn cache() -> PathBuf {
    match std::env::var_os("VIGIL_CACHE").filter(|c| !c.is_empty()) {
        Some(c) => c.into(),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/vigil"),
    }
}

/// Runs `pipeline` (TOML) on chelsea.png with `cache`: it must fail before
/// any media flows, with one `vigil:` line, which is returned.
fn fails_at_start(dir: &Path, cache: &Path, pipeline: &str) -> String {
    let file = dir.join("p.toml");
    std::fs::write(&file, pipeline).expect("write");
    let out = vigil()
        .env("VIGIL_CACHE", cache)
        .args(["run", file.to_str().unwrap_or_default(), "--source"])
        .arg(clip::shared("chelsea.png"))
        .arg("--out")
        .arg(dir.join("out"))
        .output()
        .expect("vigil");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<String> = err
        .lines()
        .filter(|l| l.starts_with("vigil:"))
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(!dir.join("out/events.jsonl").exists(), "nothing ran");
    lines[0].clone()
}

#[test]
fn another_model_in_the_detectors_place_is_named_at_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("cache");
    std::fs::create_dir_all(bad.join("models")).expect("mkdir");
    std::fs::create_dir_all(bad.join("ort")).expect("mkdir");
    let lib = "ort/libonnxruntime.so.1.31.1";
    std::fs::copy(cache().join(lib), bad.join(lib)).expect("ONNX Runtime (make setup)");
    // A real, valid ONNX file, but YAMNet's, under NanoDet's name.
    std::fs::copy(
        cache().join("models/yamnet.onnx"),
        bad.join("models/nanodet_416.onnx"),
    )
    .expect("yamnet (make setup)");
    let line = fails_at_start(dir.path(), &bad, "[encoders.detector]\n");
    assert!(
        line.contains("model 'nanodet'")
            && line.contains("no input `image`")
            && line.contains("models fetch"),
        "{line}"
    );
}

#[test]
fn a_truncated_sound_model_is_named_at_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("cache");
    std::fs::create_dir_all(bad.join("models")).expect("mkdir");
    std::fs::create_dir_all(bad.join("ort")).expect("mkdir");
    let lib = "ort/libonnxruntime.so.1.31.1";
    std::fs::copy(cache().join(lib), bad.join(lib)).expect("ONNX Runtime (make setup)");
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
        line.contains("model 'nanodet'")
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
        "yamnet",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(name) && l.contains(": ok")),
            "{name}: {text}"
        );
    }
    assert!(text.contains("converted"), "{text}");
}
