//! Bad input: one clear line, a non-zero exit, no panic, and what was
//! recorded before the failure is kept. Other streams keep running.

use std::io::Write;

use vigil::record::Phase;

use crate::clip::{self, ClipSpec, Container, SECOND};
use crate::run::{end, end_secs, events, read_records, run, run_file, secs, vigil};

/// vigil exited 1 with one `vigil:` line that says each of `needles`.
#[track_caller]
fn failed_saying(output: &std::process::Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("vigil:")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    for needle in needles {
        assert!(lines[0].contains(needle), "`{needle}` not in: {}", lines[0]);
    }
}

#[track_caller]
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
    let motion = r.events("motion", Phase::Start);
    assert_eq!(motion.len(), 1, "{:?}", r.records());
    assert_eq!(secs(motion[0].start), 3.0);
    assert_eq!(r.events("loud_sound", Phase::Start).len(), 1);
    // Every start still gets its end, and the failure is on record.
    assert_eq!(r.events("motion", Phase::End).len(), 1);
    assert_eq!(r.events("stream_error", Phase::Start).len(), 1);
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
            .events("motion", Phase::Start)
            .into_iter()
            .filter(|e| e.stream == stream)
            .collect();
        assert_eq!(motion.len(), 1, "{stream} recorded its motion");
    }
    let good_end = r
        .events("motion", Phase::End)
        .into_iter()
        .find(|e| e.stream == "good")
        .expect("good ends");
    assert_eq!(end_secs(&good_end), 6.0, "the good stream ran to its end");
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
        .events("motion", Phase::Start)
        .into_iter()
        .filter(|e| e.stream == "good")
        .collect();
    assert_eq!(good.len(), 1, "the good stream still ran");
}

/// A picture that never decodes (MPEG-4 part 2 in Matroska from GStreamer's
/// own muxer: the decoder fails to negotiate and stamps its frames 292
/// years on) grew vigil by 2 GB a second until the kernel killed it. Now
/// the sound is analysed alone and the run says why, in one line.
#[test]
fn a_picture_that_never_decodes_leaves_the_sound_analysed_and_says_why() {
    let dir = tempfile::tempdir().expect("tmp");
    let clip = clip::mpeg4_in_matroska(dir.path(), 11);
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        "[encoders.loudness]\nthreshold_db = -30.0\n[encoders.vad]\n[sinks.jsonl]\n",
    )
    .expect("write");
    let out = dir.path().join("out");
    // Under 2 GB of address space and 60 s: the old growth fails both.
    let script = format!(
        "ulimit -v 2097152; exec timeout 60 /usr/bin/time -f 'peak_rss_kib=%M' \"$0\" run \"{}\" --source \"{}\" --out \"{}\"",
        pipeline.display(),
        clip.display(),
        out.display()
    );
    let output = std::process::Command::new("sh")
        .args(["-c", &script, env!("CARGO_BIN_EXE_vigil")])
        .output()
        .expect("sh");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("vigil:")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    // Which the synchroniser meets first, the sound far ahead or the frames
    // stamped centuries on, depends on the threads; both say the picture.
    assert!(
        (lines[0].contains("video: every frame came with an impossible timestamp")
            || lines[0].contains("video: no frame was decoded"))
            && lines[0].contains("in Matroska")
            && lines[0].contains("the sound was analysed alone"),
        "{}",
        lines[0]
    );
    let peak: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak_rss_kib="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in {stderr}"));
    // Loudness and VAD took 160 MiB here; the bug took gigabytes.
    assert!(peak < 400 * 1024, "peak RSS {peak} KiB");
    let records = read_records(&out.join("events.jsonl"));
    let kinds: Vec<(&str, Phase)> = events(&records)
        .map(|e| (e.kind.as_str(), e.phase))
        .collect();
    assert!(kinds.contains(&("loud_sound", Phase::Start)), "{kinds:?}");
    assert!(kinds.contains(&("speech", Phase::End)), "{kinds:?}");
    let error = events(&records)
        .find(|e| e.kind == "stream_error" && e.phase == Phase::Start)
        .expect("a stream_error event");
    assert!(
        error
            .details
            .get("message")
            .and_then(|m| m.as_str())
            .is_some_and(|m| m.contains("video:")),
        "{error:?}"
    );
    // The sound was analysed to its end: 11 s, not 292 years.
    let last_end = records
        .iter()
        .filter_map(|r| end(r).map(secs))
        .fold(0.0, f64::max);
    assert!(
        (10.5..=11.5).contains(&last_end),
        "records end at {last_end}"
    );
}

/// A file whose picture no decoder here takes (the H.264 decoders ranked
/// out, as on a machine without them): decodebin leaves the track out and
/// went on with the sound without a word. Now the run says so and fails,
/// and the sound's events are kept.
#[test]
fn a_picture_no_decoder_takes_is_named_and_the_sound_still_analysed() {
    let clip = clip::temp(
        &ClipSpec {
            container: Container::Mp4Aac,
            ..Default::default()
        },
        "h264.mp4",
    );
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("out");
    let output = vigil()
        .args(["run", "--source"])
        .arg(&clip.path)
        .arg("--out")
        .arg(&out)
        .env("GST_PLUGIN_FEATURE_RANK", clip::NO_H264_DECODER)
        .output()
        .expect("run vigil");
    failed_saying(
        &output,
        &[
            "video: no decoder on this machine takes its format (video/x-h264)",
            "the sound was analysed alone",
        ],
    );
    let records = read_records(&out.join("events.jsonl"));
    assert!(
        events(&records).any(|e| e.kind == "loud_sound" && e.phase == Phase::Start),
        "the tone at 3 s is heard"
    );
    assert!(
        events(&records).any(|e| e.kind == "stream_error" && e.phase == Phase::Start),
        "a stream_error event"
    );
}

/// A file that stops giving data mid-way with no end and no error (here a
/// pipe whose writer goes quiet; a hung network disk is the same) used to
/// hold the run for ever. Now it fails after 3 × `stall`, says where it
/// stopped, keeps what came before, and the run ends although GStreamer's
/// read never returns.
#[test]
fn a_file_that_stops_mid_way_without_an_end_fails_and_keeps_what_came() {
    let dir = tempfile::tempdir().expect("tmp");
    let fifo = dir.path().join("pipe.wav");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    // A WAV header for 60 s, then 5 s of it (a tone over 1–2 s), then
    // silence on the pipe until the test ends.
    let (quit_tx, quit_rx) = std::sync::mpsc::channel::<()>();
    let path = fifo.clone();
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open the pipe");
        let rate = 16_000u32;
        let bytes = rate * 60 * 2;
        let mut wav = Vec::new();
        wav.extend_from_slice(b"RIFF");
        wav.extend_from_slice(&(36 + bytes).to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt ");
        wav.extend_from_slice(&16u32.to_le_bytes());
        wav.extend_from_slice(&1u16.to_le_bytes());
        wav.extend_from_slice(&1u16.to_le_bytes());
        wav.extend_from_slice(&rate.to_le_bytes());
        wav.extend_from_slice(&(rate * 2).to_le_bytes());
        wav.extend_from_slice(&2u16.to_le_bytes());
        wav.extend_from_slice(&16u16.to_le_bytes());
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&bytes.to_le_bytes());
        for i in 0..rate * 5 {
            let tone = (rate..2 * rate).contains(&i);
            let v = if tone {
                let phase = (i % 36) as f64 / 36.0 * std::f64::consts::TAU;
                (phase.sin() * 16_000.0) as i16
            } else {
                0
            };
            wav.extend_from_slice(&v.to_le_bytes());
        }
        // The reader may give up: a broken pipe is fine.
        let _ = f.write_all(&wav);
        let _ = f.flush();
        let _ = quit_rx.recv_timeout(std::time::Duration::from_secs(120));
    });
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            "[[sources]]\nname = \"pipe\"\nuri = \"{}\"\nstall = \"2s\"\n\
             [encoders.loudness]\nthreshold_db = -30.0\nmin_duration = \"0s\"\n[sinks.jsonl]\n",
            fifo.display()
        ),
    )
    .expect("write");
    let out = dir.path().join("out");
    let started = std::time::Instant::now();
    let output = vigil()
        .arg("run")
        .arg(&pipeline)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run vigil");
    let took = started.elapsed();
    let _ = quit_tx.send(());
    let _ = writer.join();
    assert!(
        took < std::time::Duration::from_secs(60),
        "the run ended while the pipe stayed open ({took:?})"
    );
    failed_saying(
        &output,
        &[
            "nothing more came out of it after",
            "of media for 6s, with no end and no error",
        ],
    );
    let records = read_records(&out.join("events.jsonl"));
    assert!(
        events(&records).any(|e| e.kind == "loud_sound" && e.phase == Phase::End),
        "the tone before the stop is kept: {records:?}"
    );
}
