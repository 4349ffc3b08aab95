//! Voice activity with the real Silero VAD model on recordings with known speech.

use vigil::record::Phase;

use crate::clip;
use crate::run::{cache, end_secs, run_file, secs, vigil};

fn speech(path: &std::path::Path) -> Vec<(f64, f64)> {
    let r = run_file(path);
    assert!(r.ok(), "{}", r.stderr());
    r.assert_lifecycles_closed();
    r.events("speech", Phase::End)
        .iter()
        .map(|e| (secs(e.start), end_secs(e)))
        .collect()
}

#[test]
fn jfk_speaks_from_the_start_to_the_end() {
    // "And so my fellow Americans … for your country.", 11.0 s.
    let s = speech(&clip::shared("jfk.wav"));
    assert!(s.len() >= 2, "{s:?}");
    let (first, last) = (s[0], s[s.len() - 1]);
    assert!((0.2..=0.6).contains(&first.0), "speech starts at {first:?}");
    assert!((10.0..=11.0).contains(&last.1), "speech ends at {last:?}");
    let spoken: f64 = s.iter().map(|(a, b)| b - a).sum();
    assert!(spoken > 6.0, "{spoken} s of speech in {s:?}");
}

#[test]
fn no_speech_before_the_first_words_of_the_call() {
    // sample.wav: a phone call; no speech before 6.68 s (sample.stm).
    let s = speech(&clip::shared("sample.wav"));
    assert!(!s.is_empty());
    assert!((6.5..=7.2).contains(&s[0].0), "first speech at {:?}", s[0]);
}

/// Total length of `[a, b)` intervals after merging overlaps.
fn covered(mut spans: Vec<(f64, f64)>) -> f64 {
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut total = 0.0;
    let mut current: Option<(f64, f64)> = None;
    for (a, b) in spans {
        current = match current {
            Some((x, y)) if a <= y => Some((x, y.max(b))),
            Some((x, y)) => {
                total += y - x;
                Some((a, b))
            }
            None => Some((a, b)),
        };
    }
    total + current.map_or(0.0, |(x, y)| y - x)
}

fn intersection(a: &[(f64, f64)], b: &[(f64, f64)]) -> f64 {
    let mut parts = Vec::new();
    for x in a {
        for y in b {
            let (s, e) = (x.0.max(y.0), x.1.min(y.1));
            if e > s {
                parts.push((s, e));
            }
        }
    }
    covered(parts)
}

#[test]
fn vad_covers_the_spoken_time_of_the_call_and_little_else() {
    // sample.stm: start and end of every utterance.
    let truth: Vec<(f64, f64)> = std::fs::read_to_string(clip::shared("sample.stm"))
        .expect("sample.stm")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.get(3)?.parse().ok()?, f.get(4)?.parse().ok()?))
        })
        .collect();
    assert!(truth.len() >= 10);
    let vad = speech(&clip::shared("sample.wav"));
    let spoken = covered(truth.clone());
    let hit = intersection(&vad, &truth);
    let extra = covered(vad.clone()) - hit;
    eprintln!("sample.wav: spoken {spoken:.2} s, VAD covers {hit:.2} s, extra {extra:.2} s");
    assert!(
        hit >= 0.9 * spoken,
        "VAD covers {hit:.2} of {spoken:.2} s: {vad:?}"
    );
    assert!(
        extra <= 0.1 * spoken,
        "VAD adds {extra:.2} s to {spoken:.2} s: {vad:?}"
    );
}

#[test]
fn a_pipeline_naming_a_missing_model_stops_before_any_media() {
    let dir = tempfile::tempdir().expect("tmp");
    let line = vad_pipeline_fails(dir.path(), &dir.path().join("empty-cache"));
    assert!(
        line.contains("silero_vad") && line.contains("make setup"),
        "{line}"
    );
}

/// Runs a pipeline naming `vad` on jfk.wav with `cache`: it must fail before
/// any media flows; its one error line.
fn vad_pipeline_fails(dir: &std::path::Path, cache: &std::path::Path) -> String {
    crate::run::fails_at_start(dir, cache, "[encoders.vad]\n", &clip::shared("jfk.wav"))
}

#[test]
fn the_builtin_pipeline_skips_each_missing_model_with_one_warning() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = vigil()
        .env("VIGIL_CACHE", dir.path().join("empty-cache"))
        .args(["run", "--source"])
        .arg(clip::shared("jfk.wav"))
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .expect("vigil");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let warnings: Vec<_> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    // One warning per encoder whose model is missing, each naming the fix.
    assert_eq!(warnings.len(), 5, "{err}");
    for (w, encoder) in warnings
        .iter()
        .zip(["'vad'", "'faces'", "'detector'", "'sound'", "'asr'"])
    {
        assert!(w.contains(encoder) && w.contains("make setup"), "{w}");
    }
}

#[test]
fn a_corrupt_model_is_caught_by_verify_and_at_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("cache");
    std::fs::create_dir_all(bad.join("models")).expect("mkdir");
    std::fs::create_dir_all(bad.join("ort")).expect("mkdir");
    let lib = "ort/libonnxruntime.so.1.31.1";
    std::fs::copy(cache().join(lib), bad.join(lib))
        .expect("ONNX Runtime is installed (make setup)");
    let model = std::fs::read(cache().join("models/silero_vad.onnx"))
        .expect("silero_vad is installed (make setup)");
    std::fs::write(
        bad.join("models/silero_vad.onnx"),
        &model[..model.len() / 3],
    )
    .expect("write");

    let verify = vigil()
        .env("VIGIL_CACHE", &bad)
        .args(["models", "verify"])
        .output()
        .expect("vigil");
    assert!(!verify.status.success());
    let text = String::from_utf8_lossy(&verify.stdout);
    assert!(
        text.contains("onnxruntime") && text.contains(": ok"),
        "{text}"
    );
    assert!(
        text.contains("silero_vad") && text.contains("sha256 differs"),
        "{text}"
    );

    let line = vad_pipeline_fails(dir.path(), &bad);
    assert!(
        line.contains("model 'silero_vad'") && line.contains("models/fetch.sh"),
        "{line}"
    );
}
