//! Ctrl-C ends every stream as if its media had ended: exit 0, every event
//! closed, the last caption written.

use std::time::{Duration, Instant};

use vigil::record::Phase;

use crate::clip::{self, ClipSpec, Container, SECOND};
use crate::run::{captions, events, read_records, secs, vigil};

#[test]
fn interrupt_drains_and_closes_every_event() {
    // Long enough that vigil is still reading it when interrupted; H.264 in
    // MP4, whose demuxer pulls from the file (an EOS event does not stop it).
    let clip = clip::temp(
        &ClipSpec {
            container: Container::Mp4Aac,
            duration: 120 * SECOND,
            ..Default::default()
        },
        "long.mp4",
    );
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("out");
    let child = vigil()
        .args([
            "run",
            "--source",
            clip.path.to_str().unwrap_or_default(),
            "--out",
        ])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn vigil");
    let log = out.join("events.jsonl");
    // Wait for the first records: the motion event has started by then.
    let deadline = Instant::now() + Duration::from_secs(30);
    while events(&read_records(&log)).all(|e| e.kind != "motion") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let output = child.wait_with_output().expect("vigil ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("stopping"), "vigil says it stops: {stderr}");
    let records = read_records(&log);
    let end = events(&records)
        .filter(|e| e.kind == "motion" && e.phase == Phase::End)
        .map(|e| e.end.map_or(f64::MAX, secs))
        .next()
        .expect("the motion event got its end");
    assert!(
        end < 299.0,
        "interrupted before the media ended (end at {end} s)"
    );
    assert!(captions(&records).next().is_some(), "captions written");
}
