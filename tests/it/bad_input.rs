//! Bad input: one clear line, a non-zero exit, no panic, and what was
//! recorded before the failure is kept. Other streams keep running.

use std::io::Write;

use crate::clip::{self, ClipSpec, Container, SECOND};
use crate::run::{run, run_file, secs, vigil};

fn expect_one_error(r: &crate::run::RunResult, needle: &str) -> String {
    r.assert_no_panic();
    assert!(!r.ok(), "vigil should have failed:\n{}", r.stderr());
    let lines = r.error_lines();
    assert_eq!(
        lines.len(),
        1,
        "expected one error line, got:\n{}",
        r.stderr()
    );
    assert!(
        lines[0].contains(needle),
        "error line {:?} does not say {needle:?}",
        lines[0]
    );
    lines[0].clone()
}

#[test]
fn a_missing_file() {
    let r = run_file(std::path::Path::new("/nonexistent/cam1.mp4"));
    let line = expect_one_error(&r, "no such file");
    assert!(
        line.contains("cam1") && line.contains("/nonexistent/cam1.mp4"),
        "{line}"
    );
}

#[test]
fn random_bytes_named_mp4() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("noise.mp4");
    // A fixed xorshift sequence: not media, and the same every run.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..65_536)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&path, bytes).expect("write");
    expect_one_error(&run_file(&path), "not a media file");
}

#[test]
fn a_zero_byte_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("empty.mp4");
    std::fs::write(&path, b"").expect("write");
    expect_one_error(&run_file(&path), "empty");
}

/// A 10 s fast-start MP4 (H.264, AAC; index at the front) cut in half:
/// the clip (which owns the directory) and the cut file's path.
fn cut_in_half() -> (clip::TempClip, std::path::PathBuf) {
    let spec = ClipSpec {
        container: Container::Mp4Aac,
        duration: 10 * SECOND,
        ..Default::default()
    };
    let clip = clip::temp(&spec, "whole.mp4");
    let bytes = std::fs::read(&clip.path).expect("read");
    let cut = clip.dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    (clip, cut)
}

#[test]
fn a_fast_start_mp4_cut_in_half_keeps_the_first_half() {
    let (_clip, cut) = cut_in_half();
    let r = run_file(&cut);
    expect_one_error(&r, "cut.mp4");
    // The picture changes at 3.0 s, the tone at 3.037 s: both in the first half.
    let motion = r.events("motion", "start");
    assert_eq!(motion.len(), 1, "{:?}", r.records());
    assert_eq!(secs(&motion[0]["start"]), 3.0);
    assert_eq!(r.events("loud_sound", "start").len(), 1);
    // Every start still gets its end, and the failure is on record.
    assert_eq!(r.events("motion", "end").len(), 1);
    assert_eq!(r.events("stream_error", "start").len(), 1);
    r.assert_lifecycles_closed();
}

#[test]
fn a_malformed_pipeline_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("bad.toml");
    let mut f = std::fs::File::create(&path).expect("create");
    writeln!(
        f,
        "[[sources]]\nname = \"cam1\"\nuri = \"x.mp4\"\nfps = \"five\""
    )
    .expect("write");
    for cmd in ["run", "check"] {
        let out = vigil().arg(cmd).arg(&path).output().expect("vigil");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<_> = err.lines().filter(|l| l.starts_with("vigil:")).collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(
            lines[0].contains("bad.toml: 4:7:"),
            "names file, line, column: {}",
            lines[0]
        );
        assert!(!err.contains("panicked"));
    }
}

#[test]
fn a_stream_failing_mid_file_does_not_stop_the_others() {
    let (_whole, cut) = cut_in_half();
    let good = clip::temp(&ClipSpec::default(), "good.mkv");
    let r = run(&[
        "--source",
        cut.to_str().unwrap_or_default(),
        "--source",
        good.path.to_str().unwrap_or_default(),
    ]);
    expect_one_error(&r, "stream 'cut'");
    r.assert_lifecycles_closed();
    for stream in ["cut", "good"] {
        let motion: Vec<_> = r
            .events("motion", "start")
            .into_iter()
            .filter(|e| e["stream"] == stream)
            .collect();
        assert_eq!(motion.len(), 1, "{stream} recorded its motion");
    }
    let good_end = r
        .events("motion", "end")
        .into_iter()
        .find(|e| e["stream"] == "good")
        .expect("good ends");
    assert_eq!(
        secs(&good_end["end"]),
        6.0,
        "the good stream ran to its end"
    );
}

#[test]
fn a_bad_stream_does_not_stop_the_others() {
    let clip = clip::temp(&ClipSpec::default(), "good.mkv");
    let r = run(&[
        "--source",
        "/nonexistent/bad.mkv",
        "--source",
        clip.path.to_str().unwrap_or_default(),
    ]);
    expect_one_error(&r, "stream 'bad'");
    let good: Vec<_> = r
        .events("motion", "start")
        .into_iter()
        .filter(|e| e["stream"] == "good")
        .collect();
    assert_eq!(good.len(), 1, "the good stream still ran");
}
