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

/// 30 s of H.264 (10 fps, 320x240, a keyframe every second) with AAC
/// sound: black, but for a moving ball over 12–15 s, 19–21 s and 27–28 s;
/// silent, but for a tone over 20–21 s.
fn ball_visits(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("visits.mp4");
    let seg = |pattern: &str, frames: u32| {
        format!(
            "videotestsrc num-buffers={frames} pattern={pattern} \
             ! video/x-raw,width=320,height=240,framerate=10/1 ! c. "
        )
    };
    let segments: String = [
        ("black", 120),
        ("ball", 30),
        ("black", 40),
        ("ball", 20),
        ("black", 60),
        ("ball", 10),
        ("black", 20),
    ]
    .iter()
    .map(|(p, n)| seg(p, *n))
    .collect();
    launch(&format!(
        "concat name=c ! x264enc key-int-max=10 speed-preset=ultrafast ! queue ! mp4mux name=m \
         ! filesink location=\"{}\" {segments} \
         concat name=a ! audioconvert ! avenc_aac ! queue ! m. \
         audiotestsrc num-buffers=1000 samplesperbuffer=960 volume=0 ! {pcm} ! a. \
         audiotestsrc num-buffers=50 samplesperbuffer=960 volume=0.5 ! {pcm} ! a. \
         audiotestsrc num-buffers=450 samplesperbuffer=960 volume=0 ! {pcm} ! a.",
        path.display(),
        pcm = "audio/x-raw,rate=48000,channels=1,format=F32LE",
    ));
    path
}

const CLIPS: &str = r#"
[encoders.motion]
[encoders.loudness]
[recording]
kinds = ["motion", "loud_sound"]
pre_roll = "2s"
post_roll = "3s"
[sinks.jsonl]
[sinks.store]
"#;

/// Each motion or loud sound event's clip and its start, from start and
/// end records alike.
fn clips_of(records: &[vigil::record::Record]) -> Vec<(String, vigil::record::Phase, String, u64)> {
    records
        .iter()
        .filter_map(|r| match r {
            vigil::record::Record::Event(e) if e.kind == "motion" || e.kind == "loud_sound" => {
                Some((
                    e.event.clone(),
                    e.phase,
                    e.clip.clone().expect("a motion event names its clip"),
                    e.clip_start.expect("and where it starts").0,
                ))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn event_clips_keep_pre_and_post_roll_and_overlapping_events_share_one() {
    use vigil::record::Phase;
    let dir = tempfile::tempdir().expect("tmp");
    let source = ball_visits(dir.path());
    let run = |name: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).expect("dir");
        crate::run::run_pipeline(&d, CLIPS, &source)
    };
    let first = run("a");
    let clips = clips_of(&first.records());
    let events: Vec<&str> = clips
        .iter()
        .filter(|c| c.1 == Phase::Start && c.0.contains("/motion/"))
        .map(|c| c.0.as_str())
        .collect();
    assert_eq!(events.len(), 3, "three visits, three events: {clips:?}");
    let records = first.records();
    let tone = crate::run::events(&records)
        .find(|e| e.kind == "loud_sound" && e.phase == Phase::End)
        .expect("the tone is a loud sound");
    // At 20.0 s, but for the AAC encoder's priming (2112 samples, 44 ms).
    assert!(
        tone.start.0.abs_diff(20_000_000_000) <= 50_000_000,
        "the tone at {}",
        tone.start
    );
    // Start and end records name the same clip. The second visit begins
    // (19 s) within the first clip's post-roll plus its own pre-roll
    // (15.2 + 3 ≥ 19 − 2): one clip for both, from the keyframe at 10 s
    // (12 − 2) to 21.2 + 3 s; the third (27 s) has its own, from 25 s.
    let clip_of = |event: &str| {
        let named: Vec<_> = clips.iter().filter(|c| c.0 == event).collect();
        assert_eq!(named.len(), 2, "{event}: {named:?}");
        assert_eq!(
            named[0].2, named[1].2,
            "{event}: start and end name one clip"
        );
        (named[0].2.clone(), named[0].3)
    };
    let (one, one_start) = clip_of(events[0]);
    assert_eq!(clip_of(events[1]), (one.clone(), one_start));
    // The tone (20 s) is heard within the second visit: the same clip.
    assert_eq!(clip_of(&tone.event), (one.clone(), one_start));
    let (three, three_start) = clip_of(events[2]);
    assert_ne!(one, three);
    assert_eq!(one_start, 10_000_000_000, "from the keyframe at 10 s");
    assert_eq!(three_start, 25_000_000_000);
    assert!(
        one.ends_with(".mp4") && one.starts_with("clips/visits/"),
        "{one}"
    );
    let all = packets_of(&source, "video/x-h264", Some(0));
    let sound = packets_of(&source, "audio/mpeg", Some(0));
    // Where a clip ends: the post-roll after the last of its events.
    let ends = |clip: &str| {
        crate::run::events(&records)
            .filter(|e| e.clip.as_deref() == Some(clip))
            .filter_map(|e| e.end)
            .max()
            .expect("its events end")
            .0
            + 3_000_000_000
    };
    assert_eq!(
        ends(&one),
        24_200_000_000,
        "the second visit ends last, at 21.2 s"
    );
    // (clip, its first frame, the end of its post-roll, or the file's)
    for (clip, from, to) in [
        (&one, one_start, ends(&one)),
        (&three, three_start, ends(&three).min(30_000_000_000)),
    ] {
        let path = first.out_dir.join(clip);
        let got = packets_of(&path, "video/x-h264", Some(0));
        let want: Vec<_> = all
            .iter()
            .filter(|(t, _, _)| (from..to).contains(t))
            .collect();
        assert_eq!(got.len(), want.len(), "{clip}: frames {from}..{to}");
        assert!(got[0].1, "{clip} starts on a keyframe");
        for (k, (a, b)) in got.iter().zip(&want).enumerate() {
            assert_eq!(a.2, b.2, "{clip}: packet {k} is the source's own");
            assert_eq!(a.0 + from, b.0, "{clip}: packet {k}'s time");
        }
        // The sound of the same stretch, the file's own packets.
        let heard = packets_of(&path, "audio/mpeg", Some(0));
        let start = sound
            .iter()
            .position(|(t, _, _)| *t >= from)
            .expect("sound after the clip's start");
        assert!(heard.len() > 100, "{clip}: {} sound packets", heard.len());
        for (k, (a, b)) in heard.iter().zip(&sound[start..]).enumerate() {
            assert_eq!(a.2, b.2, "{clip}: sound packet {k}");
        }
        // It plays: every frame decodes, and a player sees its length.
        let frames = crate::frames::decode(&path, 10, 320);
        assert_eq!(frames.len(), want.len(), "{clip}: decoded frames");
        let length = discovered_duration(&path);
        assert!(
            length.abs_diff(to - from) <= 100_000_000,
            "{clip}: {length} ns long, for {from}..{to}"
        );
    }
    // The store names the clips, and lists them as media of its records.
    let db = rusqlite::Connection::open(first.out_dir.join("events.db")).expect("store");
    let stored: Vec<String> = db
        .prepare("SELECT DISTINCT clip FROM records WHERE clip IS NOT NULL ORDER BY clip")
        .expect("query")
        .query_map([], |r| r.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("clips");
    assert_eq!(stored, vec![one.clone(), three.clone()]);
    let media: i64 = db
        .query_row(
            "SELECT count(*) FROM media WHERE path IN (?1, ?2)",
            [&one, &three],
            |r| r.get(0),
        )
        .expect("media");
    assert_eq!(media, 2);
    // A file's clips are cut from the file itself: another run gives the
    // same packets.
    let second = run("b");
    let again = clips_of(&second.records());
    assert_eq!(again.len(), clips.len());
    for ((_, _, a, sa), (_, _, b, sb)) in clips.iter().zip(&again) {
        assert_eq!(sa, sb);
        for kind in ["video/x-h264", "audio/mpeg"] {
            let (x, y) = (
                packets_of(&first.out_dir.join(a), kind, Some(0)),
                packets_of(&second.out_dir.join(b), kind, Some(0)),
            );
            assert_eq!(x, y, "{a} and {b}: {kind} packets");
        }
    }
}

#[test]
fn a_live_camera_s_clip_is_its_packets_and_is_finished_when_the_camera_drops() {
    use std::time::Duration;

    use crate::live::{RtspServer, free_port, h264_clip, interrupt};
    use crate::run::{events, read_records};

    let dir = tempfile::tempdir().expect("tmp");
    let clip = h264_clip(dir.path());
    let server = RtspServer::start(&clip);
    let pipeline = dir.path().join("live.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
[[sources]]
name = "door"
uri = "rtsp://127.0.0.1:{}/cam"
latency = "100ms"
retry_max = "1s"

[encoders.motion]
min_duration = "0s"

[recording]
kinds = ["motion"]
pre_roll = "2s"
post_roll = "1s"

[fusion]
caption_span = "2s"

[sinks.jsonl]
"#,
            server.port
        ),
    )
    .expect("pipeline");
    let _ = free_port;
    let out = dir.path().join("out");
    let child = spawn_live(&pipeline, &out);
    let log = out.join("events.jsonl");
    // People walk all the time: one motion event, its clip under way.
    wait_for_captions(&log, 4, "captions from the live stream");
    // The camera goes away in the middle of the clip.
    drop(server);
    std::thread::sleep(Duration::from_secs(3));
    interrupt(&child);
    let output = child.wait_with_output().expect("vigil ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let records = read_records(&log);
    let motion: Vec<_> = events(&records).filter(|e| e.kind == "motion").collect();
    let start = motion.first().expect("a motion event");
    let named = start
        .clip
        .clone()
        .expect("its clip is named from its start record");
    let from = start.clip_start.expect("and where it starts");
    assert!(
        named.starts_with("clips/door/") && named.ends_with(".mp4"),
        "{named}"
    );
    assert!(
        from <= start.start,
        "the clip starts at or before the event"
    );
    // The stream's end finished it: there, whole, nothing left half written.
    let path = out.join(&named);
    assert!(path.is_file(), "{}: {stderr}", path.display());
    let parts: Vec<_> = walk(&out.join("clips"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".part"))
        .collect();
    assert!(parts.is_empty(), "{parts:?}");
    // The camera's own H.264 (not re-encoded: the profile x264's ultrafast
    // preset writes), from a keyframe, every frame of about 8 s at 10 fps.
    let got = packets_of(&path, "video/x-h264", Some(0));
    assert!(got[0].1, "the clip starts on a keyframe");
    // Every frame the camera sent until it went away: 10 a second, none
    // missing, over the time the stream was up (the event ends later, where
    // the stream ended, after the outage).
    let span = (got.last().expect("frames").0 - got[0].0) as f64 / 1e9;
    let end = motion
        .iter()
        .filter_map(|e| e.end)
        .max()
        .expect("the event ended with the stream");
    assert!(
        span >= 5.0 && span <= (end.0 - from.0) as f64 / 1e9,
        "{span:.1} s of clip"
    );
    assert_eq!(got.len(), (span * 10.0).round() as usize + 1, "{span:.1} s");
    let frames = crate::frames::decode(&path, 10, 384);
    assert_eq!(frames.len(), got.len(), "every frame of the clip decodes");
    let caps = discover_caps(&path);
    assert!(caps.contains("constrained-baseline"), "{caps}");
}

/// `vigil run PIPELINE --out OUT` in the background, its log at info on
/// its standard error (piped).
fn spawn_live(pipeline: &Path, out: &Path) -> std::process::Child {
    vigil()
        .arg("run")
        .arg(pipeline)
        .arg("--out")
        .arg(out)
        .env("VIGIL_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn vigil")
}

/// Waits (a minute at most) for `n` captions in the event log `log`.
fn wait_for_captions(log: &Path, n: usize, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while crate::run::captions(&crate::run::read_records(log)).count() < n {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// How long `gst-discoverer-1.0` says a file is, in ns.
fn discovered_duration(path: &Path) -> u64 {
    let o = std::process::Command::new("gst-discoverer-1.0")
        .arg(path)
        .output()
        .expect("gst-discoverer-1.0");
    let text = String::from_utf8_lossy(&o.stdout);
    let value = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Duration: "))
        .unwrap_or_else(|| panic!("no duration: {text}"));
    // H:MM:SS.nnnnnnnnn
    let mut parts = value.split(':');
    let (h, m, s) = (
        parts
            .next()
            .and_then(|p| p.parse::<u64>().ok())
            .expect("hours"),
        parts
            .next()
            .and_then(|p| p.parse::<u64>().ok())
            .expect("minutes"),
        parts
            .next()
            .and_then(|p| p.parse::<f64>().ok())
            .expect("seconds"),
    );
    (h * 3600 + m * 60) * 1_000_000_000 + (s * 1e9).round() as u64
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The caps of the H.264 an MP4 holds, as a string.
fn discover_caps(path: &Path) -> String {
    gst::init().expect("GStreamer");
    let p = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! qtdemux ! video/x-h264 ! h264parse ! fakesink name=sink",
        path.display()
    ))
    .expect("pipeline")
    .downcast::<gst::Pipeline>()
    .expect("a pipeline");
    p.set_state(gst::State::Paused).expect("paused");
    let _ = p.state(gst::ClockTime::from_seconds(10));
    let caps = p
        .by_name("sink")
        .and_then(|s| s.static_pad("sink"))
        .and_then(|pad| pad.current_caps())
        .map(|c| c.to_string())
        .unwrap_or_default();
    p.set_state(gst::State::Null).expect("null");
    caps
}

const CONTINUOUS: &str = r#"
[encoders.motion]
[recording]
kinds = ["motion"]
continuous = true
segment = "10s"
[sinks.jsonl]
[sinks.store]
"#;

/// `vigil clip --stream STREAM --segments DIR --from FROM --to TO --out OUT`.
fn clip_stream(segments: &Path, stream: &str, from: &str, to: &str, out: &Path) -> String {
    let o = vigil()
        .args([
            "clip",
            "--stream",
            stream,
            "--from",
            from,
            "--to",
            to,
            "--segments",
        ])
        .arg(segments)
        .arg("--out")
        .arg(out)
        .output()
        .expect("vigil");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{stdout}{stderr}");
    stdout.into_owned()
}

#[test]
fn continuous_recording_is_every_packet_in_utc_named_segments_that_clips_cut_across() {
    use vigil::recording::segments;
    let dir = tempfile::tempdir().expect("tmp");
    let source = ball_visits(dir.path());
    let pipeline = dir.path().join("p.toml");
    std::fs::write(&pipeline, CONTINUOUS).expect("pipeline");
    let out = dir.path().join("out");
    let o = vigil()
        .arg("run")
        .arg(&pipeline)
        .arg("--source")
        .arg(&source)
        .arg("--out")
        .arg(&out)
        .args(["--start-time", "2026-12-06T08:00:00Z"])
        .output()
        .expect("vigil");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Three segments of 10 s (a keyframe every second), named by the UTC
    // of their first frame.
    let folder = out.join("segments/visits");
    let found = segments::list(&folder);
    let names: Vec<String> = found
        .iter()
        .map(|s| {
            s.path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        names,
        [
            "20261206T080000.000000000Z.mp4",
            "20261206T080010.000000000Z.mp4",
            "20261206T080020.000000000Z.mp4"
        ]
    );
    // Together they are the file's packets, every one, as encoded, with
    // the sound of each stretch.
    let all = packets_of(&source, "video/x-h264", Some(0));
    let mut joined = Vec::new();
    let origin = found[0].utc;
    for s in &found {
        let got = packets_of(&s.path, "video/x-h264", None);
        assert!(got[0].1, "{}: starts on a keyframe", s.path.display());
        let at = (s.utc - origin) as u64;
        joined.extend(got.into_iter().map(|(t, k, b)| (t + at, k, b)));
        let length = discovered_duration(&s.path);
        assert!(
            length.abs_diff(10_000_000_000) <= 100_000_000,
            "{}: {length} ns",
            s.path.display()
        );
        assert!(packets_of(&s.path, "audio/mpeg", None).len() > 400);
    }
    assert_eq!(joined.len(), all.len(), "no packet lost between segments");
    // The very first keyframe of the file, as read, carries the parameter
    // sets (SPS, PPS) in-band too (the parser puts them there at a
    // stream's start; they are in the MP4's header as well): the same
    // picture, byte for byte, but for those.
    assert_eq!(
        without_parameter_sets(&joined[0].2),
        without_parameter_sets(&all[0].2)
    );
    assert!(
        joined[1..] == all[1..],
        "the segments hold the source's own packets"
    );
    // A stretch across two segments, cut from them without re-encoding:
    // from the keyframe at or before 8.5 s to 23 s.
    let cut = dir.path().join("cut.mp4");
    let said = clip_stream(
        &out.join("segments"),
        "visits",
        "2026-12-06T08:00:08.5Z",
        "2026-12-06T08:00:23Z",
        &cut,
    );
    assert!(
        said.contains("150 frames from 2026-12-06T08:00:08.000Z")
            && said.contains("from 3 segment(s)"),
        "{said}"
    );
    let got = packets_of(&cut, "video/x-h264", Some(0));
    let want: Vec<_> = all
        .iter()
        .filter(|(t, _, _)| (8_000_000_000..23_000_000_000).contains(t))
        .map(|(t, k, b)| (t - 8_000_000_000, *k, b.clone()))
        .collect();
    // The source's packets from 8 s to 23 s (each segment's first with
    // the parameter sets in-band, as read).
    assert_eq!(got.len(), want.len());
    for (k, (a, b)) in got.iter().zip(&want).enumerate() {
        assert_eq!((a.0, a.1), (b.0, b.1), "packet {k}");
        assert_eq!(
            without_parameter_sets(&a.2),
            without_parameter_sets(&b.2),
            "packet {k}"
        );
    }
    assert_eq!(crate::frames::decode(&cut, 10, 320).len(), 150, "it plays");
    assert!(discovered_duration(&cut).abs_diff(15_000_000_000) <= 100_000_000);
    assert!(
        packets_of(&cut, "audio/mpeg", None).len() > 600,
        "with sound"
    );
    // Asked of the wrong stream, or before any recording, it says why.
    let o = vigil()
        .args(["clip", "--stream", "nope", "--from", "2026-12-06T08:00:01Z"])
        .args(["--to", "2026-12-06T08:00:02Z", "--segments"])
        .arg(out.join("segments"))
        .arg("--out")
        .arg(dir.path().join("x.mp4"))
        .output()
        .expect("vigil");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && stderr.contains("no recording there"),
        "{stderr}"
    );
    // The store's retention covers segments: `vigil gc` with a `max_age`
    // they are past deletes them, oldest first by the size limit too.
    let gc = dir.path().join("gc.toml");
    std::fs::write(&gc, "[sinks.store]\nmax_size_mib = 0.01\n").expect("pipeline");
    let o = vigil()
        .arg("gc")
        .arg(&gc)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("vigil gc");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("recording: deleted 3 segments"), "{stdout}");
    assert!(segments::list(&folder).is_empty());
}

/// An H.264 packet of length-prefixed NAL units (MP4's form) without its
/// parameter sets (SPS, PPS): the NAL units left.
fn without_parameter_sets(packet: &[u8]) -> Vec<Vec<u8>> {
    let mut nals = Vec::new();
    let mut at = 0;
    while at + 4 <= packet.len() {
        let n = u32::from_be_bytes([packet[at], packet[at + 1], packet[at + 2], packet[at + 3]])
            as usize;
        let nal = &packet[at + 4..(at + 4 + n).min(packet.len())];
        if !nal.first().is_some_and(|h| matches!(h & 0x1f, 7 | 8)) {
            nals.push(nal.to_vec());
        }
        at += 4 + n;
    }
    assert_eq!(at, packet.len(), "length-prefixed NAL units");
    nals
}

#[test]
fn a_live_camera_s_continuous_recording_has_no_hole_but_its_outage() {
    use std::time::{Duration, Instant};

    use vigil::record::Phase;
    use vigil::recording::segments;

    use crate::live::{RtspServer, free_port, h264_clip, interrupt};
    use crate::run::{captions, events, read_records};

    let dir = tempfile::tempdir().expect("tmp");
    let clip = h264_clip(dir.path());
    let port = free_port();
    let server = RtspServer::start_on(&clip, port);
    let pipeline = dir.path().join("live.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
[[sources]]
name = "door"
uri = "rtsp://127.0.0.1:{port}/cam"
latency = "100ms"
retry_max = "1s"

[encoders.motion]

[recording]
kinds = []
continuous = true
segment = "2s"

[fusion]
caption_span = "2s"

[sinks.jsonl]
"#
        ),
    )
    .expect("pipeline");
    let out = dir.path().join("out");
    let child = spawn_live(&pipeline, &out);
    let log = out.join("events.jsonl");
    let wait_for = |what: &str, done: &dyn Fn(&[vigil::record::Record]) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(&read_records(&log)) {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for("captions from the live stream", &|r| {
        captions(r).count() >= 4
    });
    // The camera goes away for 4 s, and comes back.
    drop(server);
    std::thread::sleep(Duration::from_secs(4));
    let _server = RtspServer::start_on(&clip, port);
    wait_for("the outage's end", &|r| {
        events(r).any(|e| e.kind == "stream_gap" && e.phase == Phase::End)
    });
    let back = captions(&read_records(&log)).count();
    wait_for("captions after the outage", &|r| {
        captions(r).count() >= back + 4
    });
    interrupt(&child);
    let output = child.wait_with_output().expect("vigil ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let records = read_records(&log);
    let gap = events(&records)
        .find(|e| e.kind == "stream_gap" && e.phase == Phase::End)
        .expect("the outage is said");
    let outage = gap.end.expect("it ended").0 - gap.start.0;
    // Finished segments only, none left half written.
    let parts: Vec<_> = walk(&out.join("segments"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".part"))
        .collect();
    assert!(parts.is_empty(), "{parts:?}");
    let found = segments::list(&out.join("segments/door"));
    assert!(found.len() >= 6, "{found:?}");
    // Each segment takes up where the one before ended (within a frame at
    // 10 fps), but once: across the outage.
    let mut holes = Vec::new();
    for pair in found.windows(2) {
        let got = packets_of(&pair[0].path, "video/x-h264", None);
        assert!(got[0].1, "{}: starts on a keyframe", pair[0].path.display());
        let ends = pair[0].utc + (got.last().expect("frames").0 + 100_000_000) as i64;
        let hole = pair[1].utc - ends;
        assert!(
            hole > -50_000_000,
            "{}: overlaps by {hole} ns",
            pair[1].path.display()
        );
        if hole > 150_000_000 {
            holes.push(hole as u64);
        }
    }
    assert_eq!(holes.len(), 1, "one hole, the outage's: {holes:?}");
    // No longer than the outage as the records tell it, and the wait for
    // the first keyframe after it (1 s at most).
    assert!(
        holes[0] <= outage + 1_100_000_000 && holes[0] >= 2_000_000_000,
        "a hole of {} ns for an outage of {outage} ns",
        holes[0]
    );
    // A stretch across the outage is cut from the segments, the hole said.
    let (first, last) = (&found[0], &found[found.len() - 1]);
    let at = |utc: i64| vigil::record::utc_string(utc, vigil::time::Timestamp::ZERO);
    let said = clip_stream(
        &out.join("segments"),
        "door",
        &at(first.utc + 500_000_000),
        &at(last.utc),
        &dir.path().join("across.mp4"),
    );
    assert!(said.contains("nothing recorded for"), "{said}");
    assert!(crate::frames::decode(&dir.path().join("across.mp4"), 10, 384).len() > 50);
}

#[test]
fn a_camera_that_sends_raw_pictures_is_recorded_by_a_re_encode_said_in_the_log() {
    use crate::live::RtspServer;
    // Raw video over RTP, and MJPEG (no JPEG parser is plugged by default).
    for server in [RtspServer::start_raw(), RtspServer::start_mjpeg()] {
        raw_camera_clip(server);
    }
}

/// Records `server`'s camera, whose pictures have no parser: its clip is
/// H.264 made here.
fn raw_camera_clip(server: crate::live::RtspServer) {
    use crate::live::interrupt;
    use crate::run::{events, read_records};

    let dir = tempfile::tempdir().expect("tmp");
    let pipeline = dir.path().join("raw.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
[[sources]]
name = "raw"
uri = "rtsp://127.0.0.1:{}/cam"
latency = "100ms"

[encoders.motion]
min_duration = "0s"

[recording]
kinds = ["motion"]
pre_roll = "1s"
post_roll = "1s"

[fusion]
caption_span = "2s"

[sinks.jsonl]
"#,
            server.port
        ),
    )
    .expect("pipeline");
    let out = dir.path().join("out");
    let child = spawn_live(&pipeline, &out);
    let log = out.join("events.jsonl");
    wait_for_captions(&log, 4, "captions from the raw stream");
    interrupt(&child);
    let output = child.wait_with_output().expect("vigil ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("the source gives its pictures unencoded"),
        "the re-encode is said: {stderr}"
    );
    let records = read_records(&log);
    let start = events(&records)
        .find(|e| e.kind == "motion")
        .expect("the ball moves");
    let named = start.clip.clone().expect("its clip");
    let path = out.join(&named);
    assert!(named.ends_with(".mp4") && path.is_file(), "{named}");
    // H.264 made here, at the analysis rate (5 fps by default), every
    // frame of it decodes.
    let caps = discover_caps(&path);
    assert!(caps.contains("video/x-h264"), "{caps}");
    let got = packets_of(&path, "video/x-h264", Some(0));
    assert!(got[0].1, "the clip starts on a keyframe");
    let span = (got.last().expect("frames").0 - got[0].0) as f64 / 1e9;
    assert!(span >= 3.0, "{span:.1} s");
    assert!(
        (got.len() as f64 - (span * 5.0 + 1.0)).abs() <= 2.0,
        "{} frames over {span:.1} s",
        got.len()
    );
    // It plays (decoded at 5 fps: within a frame of its packets).
    let decoded = crate::frames::decode(&path, 5, 320).len();
    assert!(decoded.abs_diff(got.len()) <= 1, "{decoded} frames decoded");
}
