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
    let walkway = frames::decode(&clip::shared("vtest.avi"), 10, 640);
    assert!(
        walkway.len() >= 100,
        "{} frames of vtest.avi",
        walkway.len()
    );
    let mut picture = |i: u64, _t: u64| {
        // Frames 0..100: frame 0; 100..200: frames 0..100; then frame 99.
        let k = i.saturating_sub(100).min(99) as usize;
        walkway[k].rgb.to_vec()
    };
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
    // standing in the frozen picture are looked at again every second.
    let skipped = count(&looks, "skipped");
    assert!(skipped >= 2 * LENGTH, "skipped {skipped}: {looks:?}");
    assert!(count(&looks, "motion") >= 30, "the visit moves: {looks:?}");
    assert!(count(&looks, "refresh") >= 10, "{looks:?}");
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
