//! `vigil clip`: a stretch of a file's video cut out as it was encoded.

use std::path::Path;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::run::vigil;

/// Runs a gst-launch line to its end.
fn launch(line: &str) {
    gst::init().expect("GStreamer");
    let p = gst::parse::launch(line).expect("pipeline");
    p.set_state(gst::State::Playing).expect("playing");
    let bus = p.bus().expect("bus");
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{line}: {}", e.error()),
            _ => {}
        }
    }
    p.set_state(gst::State::Null).expect("null");
}

/// The encoded video packets of an MP4 at `path`, as (time from the
/// first, key frame?, bytes), as the file holds them (demuxed, not parsed:
/// a parser would add what it finds missing).
fn packets(path: &Path) -> Vec<(u64, bool, Vec<u8>)> {
    packets_of(path, "video/x-h264", None)
}

/// The packets of `kind` (caps) of an MP4, their times from `origin` (by
/// default the first's).
fn packets_of(path: &Path, kind: &str, origin: Option<u64>) -> Vec<(u64, bool, Vec<u8>)> {
    gst::init().expect("GStreamer");
    let line = format!(
        "filesrc location=\"{}\" ! qtdemux ! {kind} ! appsink name=sink sync=false",
        path.display()
    );
    let p = gst::parse::launch(&line)
        .expect("pipeline")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline");
    let sink = p
        .by_name("sink")
        .and_then(|s| s.downcast::<gst_app::AppSink>().ok())
        .expect("appsink");
    p.set_state(gst::State::Playing).expect("playing");
    let mut out = Vec::new();
    let mut first = origin;
    while let Ok(s) = sink.pull_sample() {
        let b = s.buffer().expect("buffer");
        let at = b.dts_or_pts().expect("a time").nseconds();
        let origin = *first.get_or_insert(at);
        let key = !b.flags().contains(gst::BufferFlags::DELTA_UNIT);
        out.push((at - origin, key, b.map_readable().expect("map").to_vec()));
    }
    p.set_state(gst::State::Null).expect("null");
    out
}

/// `vigil clip --from FROM --to TO --source SOURCE --out OUT`.
fn run_clip(source: &Path, from: &str, to: &str, out: &Path) -> std::process::Output {
    vigil()
        .args(["clip", "--from", from, "--to", to, "--source"])
        .arg(source)
        .arg("--out")
        .arg(out)
        .output()
        .expect("vigil")
}

#[test]
fn a_stretch_is_cut_from_the_keyframe_before_without_re_encoding() {
    let dir = tempfile::tempdir().expect("tmp");
    let source = dir.path().join("k.mp4");
    // 20 s at 10 fps, a keyframe every second.
    launch(&format!(
        "videotestsrc num-buffers=200 pattern=ball ! video/x-raw,width=320,height=240,framerate=10/1 \
         ! x264enc key-int-max=10 speed-preset=ultrafast ! mp4mux ! filesink location=\"{}\"",
        source.display()
    ));
    let out = dir.path().join("cut.mkv");
    let o = run_clip(&source, "10.3", "13", &out);
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // H.264 goes into MP4, whatever extension was asked for.
    let clip = dir.path().join("cut.mp4");
    assert!(
        said.contains("30 frames from 10.000s (the keyframe at or before 10.300s) to 12.900s"),
        "{said}"
    );
    let cut = packets(&clip);
    assert_eq!(cut.len(), 30);
    assert!(cut[0].1, "the clip starts on a keyframe");
    assert_eq!(cut[0].0, 0, "its first frame is its time 0");
    // The packets are the source's own, byte for byte: 10.0 s to 12.9 s.
    let all = packets(&source);
    let want: Vec<_> = all
        .iter()
        .filter(|(t, _, _)| (10_000_000_000..13_000_000_000).contains(t))
        .collect();
    assert_eq!(want.len(), 30);
    for (k, (a, b)) in cut.iter().zip(&want).enumerate() {
        assert_eq!(a.2, b.2, "packet {k} differs");
        assert_eq!(a.0 + 10_000_000_000, b.0, "packet {k}'s time");
    }
    // It plays: every frame decodes.
    let frames = crate::frames::decode(&clip, 10, 320);
    assert_eq!(frames.len(), 30, "decoded frames");
    // What cannot be cut says why.
    for (from, to, needle) in [
        ("30", "40", "its video ends before 30.000s"),
        ("5", "4", "is not after its start"),
        ("x", "4", "--from x: expected seconds"),
    ] {
        let o = run_clip(&source, from, to, &dir.path().join("bad.mp4"));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(needle),
            "{from}-{to}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    // With sound (AAC): the sound of the same stretch goes along, its
    // packets the file's own too.
    let with_sound = dir.path().join("ka.mp4");
    launch(&format!(
        "videotestsrc num-buffers=200 pattern=ball ! video/x-raw,width=320,height=240,framerate=10/1 \
         ! x264enc key-int-max=10 speed-preset=ultrafast ! queue ! mp4mux name=m ! filesink location=\"{}\" \
         audiotestsrc num-buffers=940 samplesperbuffer=1024 ! audio/x-raw,rate=48000,channels=1 \
         ! avenc_aac ! queue ! m.",
        with_sound.display()
    ));
    let out = dir.path().join("sound.mp4");
    let o = run_clip(&with_sound, "10.3", "13", &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (video, sound) = (
        packets_of(&out, "video/x-h264", Some(0)),
        packets_of(&out, "audio/mpeg", Some(0)),
    );
    assert_eq!(video.len(), 30);
    let first = sound.first().expect("sound in the clip").0;
    let last = sound.last().expect("sound").0;
    // AAC frames are 1024 samples (21.3 ms at 48 kHz).
    assert!(
        first < 22_000_000,
        "the sound starts with the picture: {first} ns"
    );
    assert!(
        last > 2_950_000_000 && last < 3_000_000_000,
        "and ends with it: {last} ns"
    );
    let all = packets_of(&with_sound, "audio/mpeg", Some(0));
    // The clip's sound is the file's from its first packet at or after the
    // keyframe (10.0 s); the muxer starts each track at 0, so the sound is
    // within one AAC frame of the picture.
    let start = all
        .iter()
        .position(|(t, _, _)| *t >= 10_000_000_000)
        .expect("the file has sound after 10 s");
    assert!(all.len() - start >= sound.len());
    for (k, (a, b)) in sound.iter().zip(&all[start..]).enumerate() {
        assert_eq!(a.2, b.2, "sound packet {k} differs");
    }
    // A file of sound alone is said to be one, at once.
    let o = run_clip(
        &crate::clip::shared("jfk.wav"),
        "1",
        "2",
        &dir.path().join("sound.mp4"),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("it has no video"),
        "{err}"
    );
}
