//! Motion-gated detection on a quiet camera: the detector looks seldom at
//! a still picture and finds the same people as when it looks at every
//! frame.

use std::path::Path;

use vigil::config::PipelineConfig;
use vigil::metrics::Metrics;
use vigil::record::{Phase, Record};

use crate::clip::{self, Container, Media, SECOND};
use crate::frames;
use crate::run::{read_records, run_in_process, secs};

/// Seconds of the quiet clip: the walkway frozen on one frame for 10 s,
/// 10 s of it playing (the visit), then frozen on its last frame.
const LENGTH: u64 = 30;

/// Writes the quiet clip (640×480, 10 fps, no sound) to `path`.
fn quiet_clip(path: &Path) {
    // Frames 0..100: frame 0; 100..200: frames 0..100; then frame 99.
    walkway_clip(path, |i| i.saturating_sub(100).min(99) as usize);
}

/// Writes `LENGTH` s of the walkway at 10 fps (640×480, no sound), its
/// `i`th frame being vtest.avi's `frame(i)`th (at 10 fps).
fn walkway_clip(path: &Path, frame: impl Fn(u64) -> usize) {
    let walkway = frames::decode(&clip::shared("vtest.avi"), 10, 640);
    assert!(
        walkway.len() >= 10 * LENGTH as usize,
        "{} frames of vtest.avi",
        walkway.len()
    );
    let mut picture = |i: u64, _t: u64| walkway[frame(i)].rgb.to_vec();
    clip::write(
        Media {
            container: Container::MkvPcm,
            width: 640,
            height: 480,
            fps: 10,
            video_until: LENGTH * SECOND,
            samples: 0,
            audio_offset: 0,
            audio_rate: 16_000,
            channels: 1,
            picture: Some(&mut picture),
            sound: None,
        },
        path,
    );
}

/// The records of a detector-only run on `source` with `gating`, and what
/// the detector did with the frames due, by reason.
fn run(dir: &Path, source: &Path, gating: &str) -> (Vec<Record>, Vec<(String, u64)>) {
    let out = dir.join(gating);
    let text = format!(
        "[encoders.detector]\nfps = 5\nclasses = [\"person\"]\ngating = \"{gating}\"\n[sinks.jsonl]\n"
    );
    let mut config = PipelineConfig::parse(&text, Path::new("gating.toml")).expect("pipeline");
    config.set_sources(&[source.to_string_lossy().into_owned()]);
    let metrics = Metrics::new();
    run_in_process(&config, &out, &metrics);
    let text = metrics.render();
    let looks = ["motion", "refresh", "full", "skipped"]
        .iter()
        .map(|reason| {
            let n = text
                .lines()
                .filter(|l| {
                    l.starts_with("vigil_detector_frames_total")
                        && l.contains(&format!("reason=\"{reason}\""))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>();
            (reason.to_string(), n as u64)
        })
        .collect();
    (read_records(&out.join("events.jsonl")), looks)
}

/// For each second of the clip, whether a person track covers its middle.
fn presence(records: &[Record]) -> Vec<bool> {
    let spans: Vec<(f64, f64)> = records
        .iter()
        .filter_map(|r| match r {
            Record::Event(e)
                if e.kind == "object"
                    && e.phase == Phase::End
                    && e.labels.iter().any(|l| l == "person") =>
            {
                Some((secs(e.start), e.end.map_or(f64::MAX, secs)))
            }
            _ => None,
        })
        .collect();
    (0..LENGTH)
        .map(|s| {
            let t = s as f64 + 0.5;
            spans.iter().any(|&(a, b)| a <= t && t < b)
        })
        .collect()
}

fn tracks(records: &[Record]) -> usize {
    records
        .iter()
        .filter(|r| matches!(r, Record::Event(e) if e.kind == "object" && e.phase == Phase::Start))
        .count()
}

#[test]
fn a_quiet_camera_is_looked_at_seldom_and_its_people_are_still_found() {
    let dir = tempfile::tempdir().expect("tmp");
    let clip = dir.path().join("quiet.mkv");
    quiet_clip(&clip);
    let (gated, looks) = run(dir.path(), &clip, "motion");
    let (every, all) = run(dir.path(), &clip, "off");
    eprintln!("gated: {looks:?}; off: {all:?}");
    let count = |looks: &[(String, u64)], reason: &str| {
        looks
            .iter()
            .find(|(r, _)| r == reason)
            .map_or(0, |(_, n)| *n)
    };
    // 30 s at 5 fps.
    let due: u64 = looks.iter().map(|(_, n)| n).sum();
    assert_eq!(due, 5 * LENGTH, "{looks:?}");
    assert_eq!(count(&all, "full"), 5 * LENGTH, "gating off: {all:?}");
    // 20 of the 30 s are still: most frames are not looked at; the whole
    // frame about every 10 s (and when most of it changes); the people
    // standing in the frozen picture are as they were when found, so they
    // are not looked at again in between (held, not lost).
    let skipped = count(&looks, "skipped");
    assert!(skipped >= 3 * LENGTH, "skipped {skipped}: {looks:?}");
    assert!(count(&looks, "motion") >= 30, "the visit moves: {looks:?}");
    assert!(count(&looks, "refresh") <= 5, "{looks:?}");
    let (on, off) = (presence(&gated), presence(&every));
    let agree = on.iter().zip(&off).filter(|(a, b)| a == b).count();
    eprintln!(
        "presence gated {on:?}\npresence off   {off:?}\ntracks gated {} off {}",
        tracks(&gated),
        tracks(&every)
    );
    assert!(
        off.iter().all(|&p| p),
        "people are in every second of the walkway"
    );
    assert!(
        agree as u64 >= LENGTH - 1,
        "person presence agrees in {agree} of {LENGTH} s"
    );
    // Held where they stood, the people of the frozen picture keep their
    // tracks: no more tracks than looking at every frame.
    assert!(
        tracks(&gated) <= tracks(&every) + 2,
        "tracks gated {} vs off {}",
        tracks(&gated),
        tracks(&every)
    );
}

/// The CPU seconds `/metrics` charges `stream`, by part.
fn cpu_parts(text: &str, stream: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| {
            l.starts_with("vigil_cpu_seconds_total{") && l.contains(&format!("stream=\"{stream}\""))
        })
        .filter_map(|l| {
            let part = l.split("part=\"").nth(1)?.split('"').next()?.to_string();
            Some((part, l.rsplit(' ').next()?.parse::<f64>().ok()?))
        })
        .collect()
}

#[test]
fn each_camera_is_charged_the_cpu_it_costs() {
    let dir = tempfile::tempdir().expect("tmp");
    let (still, walk) = (dir.path().join("still.mkv"), dir.path().join("walk.mkv"));
    walkway_clip(&still, |_| 0);
    walkway_clip(&walk, |i| i as usize);
    let text = format!(
        "[[sources]]\nname = \"still\"\nuri = \"{}\"\n[[sources]]\nname = \"walk\"\nuri = \"{}\"\n\
         [encoders.detector]\nfps = 5\n[sinks.jsonl]\n",
        still.display(),
        walk.display()
    );
    let config = PipelineConfig::parse(&text, Path::new("cpu.toml")).expect("pipeline");
    let metrics = Metrics::new();
    let report = run_in_process(&config, &dir.path().join("out"), &metrics);
    assert!(report.streams.iter().all(|s| s.failure.is_none()));
    let text = metrics.render();
    let (still, walk) = (cpu_parts(&text, "still"), cpu_parts(&text, "walk"));
    eprintln!("cpu s still {still:?}\ncpu s walk  {walk:?}");
    let part = |parts: &[(String, f64)], name: &str| {
        parts
            .iter()
            .find(|(p, _)| p == name)
            .map_or(0.0, |(_, s)| *s)
    };
    for parts in [&still, &walk] {
        for name in ["source", "sync", "encode", "models", "fuse"] {
            assert!(part(parts, name) > 0.0, "{name}: {parts:?}");
        }
    }
    // The still camera is looked at seldom (its people are as they were:
    // the whole frame every 10 s); the walkway whenever it moves, 5 times a
    // second.
    assert!(
        part(&walk, "models") > 2.0 * part(&still, "models"),
        "models: walk {walk:?} still {still:?}"
    );
    let total = |parts: &[(String, f64)]| parts.iter().map(|(_, s)| s).sum::<f64>();
    assert!((metrics.cpu_seconds("walk") - total(&walk)).abs() < 1e-6);
}
