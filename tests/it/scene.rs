//! Tracks, zones, lines, rules and captions on media with known truth.

use std::path::Path;

use vigil::record::{EventRecord, Phase, Record};

use crate::clip::{self, Container, Media, SECOND};
use crate::frames;
use crate::run::{self, RunResult, captions, events, secs};

/// Runs `pipeline` (TOML, without sources) on `source`; every event it
/// starts ends.
#[track_caller]
fn run_pipeline(dir: &Path, pipeline: &str, source: &Path) -> RunResult {
    let r = run::run_pipeline(dir, pipeline, source);
    r.assert_lifecycles_closed();
    r
}

/// Crops `[x0, y0, cw, ch]` out of an RGB image `sw` wide and scales it
/// (nearest neighbour) to `dw` × `dh`.
#[allow(clippy::too_many_arguments)]
fn crop_scale(
    src: &[u8],
    sw: usize,
    x0: usize,
    y0: usize,
    cw: usize,
    ch: usize,
    dw: usize,
    dh: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(dw * dh * 3);
    for y in 0..dh {
        let sy = y0 + y * ch / dh;
        for x in 0..dw {
            let sx = x0 + x * cw / dw;
            let i = (sy * sw + sx) * 3;
            out.extend_from_slice(&src[i..i + 3]);
        }
    }
    out
}

const W: usize = 640;
const H: usize = 400;
const PW: usize = 110;
const PH: usize = 156;

/// The grass in front of the walkway of `vtest.avi` (no one on it), and
/// the astronaut of `astronaut.png` (a person from the waist up).
fn cut_outs() -> (Vec<u8>, Vec<u8>) {
    let walkway = frames::decode(&clip::shared("vtest.avi"), 1, 640);
    let f = &walkway[0];
    assert_eq!((f.width, f.height), (640, 480));
    let background = crop_scale(&f.rgb, 640, 0, 270, 320, 200, W, H);
    let astronaut = frames::decode(&clip::shared("astronaut.png"), 1, 512);
    let a = &astronaut[0];
    let person = crop_scale(&a.rgb, 512, 30, 0, 360, 512, PW, PH);
    (background, person)
}

/// The walk: from `LEFT` to `RIGHT` (fractions of the width) and back.
const LEFT: f32 = 0.25;
const RIGHT: f32 = 0.85;
/// Fraction of the width a second.
const PACE: f32 = (RIGHT - LEFT) / 4.0;

/// Where the person's centre is at `t`: still at `LEFT` until 1 s, walks
/// right to `RIGHT` by 5 s, stays, walks back left from 7 s to 11 s, stays.
fn walk_x(t: u64) -> f32 {
    let s = t as f32 / SECOND as f32;
    match s {
        s if s < 1.0 => LEFT,
        s if s < 5.0 => LEFT + PACE * (s - 1.0),
        s if s < 7.0 => RIGHT,
        s if s < 11.0 => RIGHT - PACE * (s - 7.0),
        _ => LEFT,
    }
}

/// When (seconds) the walk reaches `x` going right, and going left.
fn walk_reaches(x: f32) -> (f64, f64) {
    (
        1.0 + f64::from((x - LEFT) / PACE),
        7.0 + f64::from((RIGHT - x) / PACE),
    )
}

fn walking_clip(dir: &Path) -> std::path::PathBuf {
    let (background, person) = cut_outs();
    let bottom = H * 9 / 10;
    let mut picture = |_i: u64, t: u64| {
        let mut rgb = background.clone();
        let cx = (walk_x(t) * W as f32) as usize;
        let x0 = cx - PW / 2;
        for y in 0..PH {
            let row = (bottom - PH + y) * W;
            let d = (row + x0) * 3;
            rgb[d..d + PW * 3].copy_from_slice(&person[y * PW * 3..(y + 1) * PW * 3]);
        }
        rgb
    };
    let path = dir.join("walk.mkv");
    clip::write(
        Media {
            container: Container::MkvPcm,
            width: W,
            height: H,
            fps: 10,
            video_until: 14 * SECOND,
            samples: 0,
            audio_offset: 0,
            audio_rate: 16_000,
            channels: 1,
            picture: Some(&mut picture),
            sound: None,
        },
        &path,
    );
    path
}

fn starts<'a>(records: &'a [Record], kind: &str) -> Vec<&'a EventRecord> {
    events(records)
        .filter(|e| e.kind == kind && e.phase == Phase::Start)
        .collect()
}

/// The first label of an event, or "".
fn label(e: &EventRecord) -> &str {
    e.labels.first().map_or("", String::as_str)
}

#[test]
fn a_person_walking_across_crosses_the_line_twice_and_enters_the_zone_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clip = walking_clip(dir.path());
    let pipeline = r#"
[encoders.detector]
fps = 5
classes = ["person"]

[[lines]]
name = "middle"
from = [0.5, 0.0]
to = [0.5, 1.0]

[[zones]]
name = "right"
polygon = [[0.65, 0.0], [1.0, 0.0], [1.0, 1.0], [0.65, 1.0]]
labels = ["people"]

[snapshots]

[sinks.jsonl]
path = "events.jsonl"
"#;
    let r = run_pipeline(dir.path(), pipeline, &clip);
    let records = r.records();
    let people = starts(&records, "object");
    assert_eq!(people.len(), 1, "one person, one track: {people:?}");
    let crossings: Vec<(String, f64)> = starts(&records, "line_cross")
        .iter()
        .map(|e| {
            (
                e.details["direction"].as_str().unwrap_or("").to_string(),
                secs(e.start),
            )
        })
        .collect();
    eprintln!("crossings {crossings:?}");
    // Walking down the line from `from` to `to`, the right-hand side is
    // the picture's left: going right is `out`, coming back is `in`.
    let dirs: Vec<&str> = crossings.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(dirs, ["out", "in"]);
    let (right, left) = walk_reaches(0.5);
    // Each is timed at the first analysed frame past the line.
    assert!(
        (0.0..=0.2 + 1e-3).contains(&(crossings[0].1 - right)),
        "{crossings:?}"
    );
    assert!(
        (0.0..=0.2 + 1e-3).contains(&(crossings[1].1 - left)),
        "{crossings:?}"
    );

    let enter = starts(&records, "zone_enter");
    let leave = starts(&records, "zone_leave");
    assert_eq!((enter.len(), leave.len()), (1, 1), "{enter:?} {leave:?}");
    let (into, out_of) = walk_reaches(0.65);
    let (t_in, t_out) = (secs(enter[0].start), secs(leave[0].start));
    eprintln!("zone: enter {t_in} (truth {into:.3}), leave {t_out} (truth {out_of:.3})");
    assert!((t_in - into).abs() <= 0.2 + 1e-3, "enter {t_in} vs {into}");
    assert!(
        (t_out - out_of).abs() <= 0.2 + 1e-3,
        "leave {t_out} vs {out_of}"
    );
    assert_eq!(enter[0].zone.as_deref(), Some("right"));
    assert_eq!(enter[0].track, people[0].track);
    let dwell = leave[0].details["dwell"].as_f64().unwrap_or(0.0);
    assert!((dwell - (out_of - into)).abs() < 0.4, "dwell {dwell}");

    // Every start has its snapshot, and the track its best frame.
    for e in events(&records) {
        let snap = e.snapshot.as_deref().unwrap_or_else(|| panic!("{e:?}"));
        let jpeg = std::fs::read(r.out_dir.join(snap)).expect("the snapshot exists");
        assert_eq!(&jpeg[..2], &[0xff, 0xd8], "a JPEG");
    }
    let end = events(&records)
        .find(|e| e.kind == "object" && e.phase == Phase::End)
        .expect("the track ends");
    assert!(end.snapshot.as_deref().unwrap_or("").ends_with(".best.jpg"));
}

/// The walkway of `vtest.avi` with a line across it, as one run for the
/// tests below.
fn walkway(dir: &Path) -> Vec<Record> {
    let pipeline = r#"
[encoders.motion]

[encoders.detector]
fps = 5
classes = ["person", "car", "truck"]

[[lines]]
name = "across"
from = [0.45, 0.2]
to = [0.45, 0.75]
labels = ["person"]

[sinks.jsonl]
path = "events.jsonl"
"#;
    run_pipeline(dir, pipeline, &clip::shared("vtest.avi")).records()
}

#[test]
fn the_walkway_is_crossed_both_ways_by_tracks_that_do_not_churn() {
    let dir = tempfile::tempdir().expect("temp dir");
    let records = walkway(dir.path());
    let crossings = starts(&records, "line_cross");
    let count = |d: &str| {
        crossings
            .iter()
            .filter(|e| e.details["direction"] == d)
            .count()
    };
    let (ins, outs) = (count("in"), count("out"));
    let tracks: Vec<f64> = events(&records)
        .filter(|e| e.kind == "object" && e.phase == Phase::End && label(e) == "person")
        .map(|e| e.details["dwell"].as_f64().unwrap_or(0.0))
        .collect();
    let minutes = 79.5 / 60.0;
    let mean = tracks.iter().sum::<f64>() / tracks.len().max(1) as f64;
    eprintln!(
        "vtest.avi: {ins} crossings in, {outs} out; {} person tracks, {:.1} per minute, mean length {mean:.1} s",
        tracks.len(),
        tracks.len() as f64 / minutes
    );
    assert!(ins >= 5 && outs >= 5, "{ins} in, {outs} out");
    // 2 to 8 people are in view at any time, walking through in 10 to 30 s.
    assert!(
        tracks.len() as f64 / minutes <= 40.0,
        "{} tracks: ids churn",
        tracks.len()
    );
    assert!(mean >= 8.0, "mean track {mean:.1} s: ids churn");
    // Each crossing names its track, which exists.
    for c in &crossings {
        assert!(
            events(&records).any(|e| e.kind == "object" && e.track == c.track),
            "{c:?}"
        );
    }
}

#[test]
fn captions_of_the_walkway_tell_people_walking_without_repeating_themselves() {
    let dir = tempfile::tempdir().expect("temp dir");
    let records = walkway(dir.path());
    let captions: Vec<&str> = captions(&records).map(|c| c.text.as_str()).collect();
    for c in &captions {
        eprintln!("{c}");
    }
    assert!(captions.len() >= 15, "{captions:?}");
    let walking = captions
        .iter()
        .filter(|c| c.contains("people") && c.contains(" walk"))
        .count();
    assert!(
        walking * 2 >= captions.len(),
        "people walking in most: {captions:?}"
    );
    assert!(
        captions.iter().any(|c| c.contains("left")) && captions.iter().any(|c| c.contains("right"))
    );
    for pair in captions.windows(2) {
        assert_ne!(pair[0], pair[1], "a caption repeats the one before");
    }
    // The parked cars are news once.
    let cars = captions
        .iter()
        .filter(|c| c.contains("cars stay put"))
        .count();
    assert!(cars <= 1, "the parked cars are told {cars} times");
}

#[test]
fn a_siren_over_people_fires_the_rule_and_over_an_empty_scene_does_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Picture: the walkway for 20 s, then 20 s of empty (black) frames.
    let walkway = frames::decode(&clip::shared("vtest.avi"), 10, 640);
    let black = vec![0u8; 640 * 480 * 3];
    let mut picture = |i: u64, _t: u64| {
        walkway
            .get(i as usize)
            .filter(|_| i < 200)
            .map_or_else(|| black.clone(), |f| f.rgb.to_vec())
    };
    // Sound: the soundscape (siren 2.0–7.0 s) at 3 s, over the people,
    // and at 24 s, over the empty stretch: sirens at 5–10 s and 26–31 s.
    let scape = frames::audio(&clip::shared("soundscape_20200501_22050.wav"));
    let sound = |n: u64| {
        let t = n * SECOND / 16_000;
        [3 * SECOND, 24 * SECOND]
            .iter()
            .find_map(|&at| {
                t.checked_sub(at)
                    .map(|d| (d * 16_000 / SECOND) as usize)
                    .and_then(|k| scape.get(k))
            })
            .copied()
            .unwrap_or(0.0)
    };
    let path = dir.path().join("siren.mkv");
    clip::write(
        Media {
            container: Container::MkvPcm,
            width: 640,
            height: 480,
            fps: 10,
            video_until: 40 * SECOND,
            samples: 40 * 16_000,
            audio_offset: 0,
            audio_rate: 16_000,
            channels: 1,
            picture: Some(&mut picture),
            sound: Some(&sound),
        },
        &path,
    );
    let pipeline = r#"
[encoders.detector]
fps = 5
classes = ["person"]

[encoders.sound]
classes = ["speech"]

[[rules]]
name = "siren_near_people"
when = "sound(siren) and object(person)"
cooldown = "2s"
severity = "high"

[sinks.jsonl]
path = "events.jsonl"
"#;
    let r = run_pipeline(dir.path(), pipeline, &path);
    let records = r.records();
    let sirens: Vec<f64> = starts(&records, "sound")
        .iter()
        .filter(|e| label(e) == "siren")
        .map(|e| secs(e.start))
        .collect();
    eprintln!("sirens heard from {sirens:?}");
    assert!(
        sirens.iter().any(|&s| s > 20.0),
        "the second siren is heard too: {sirens:?}"
    );
    let fired = starts(&records, "rule");
    let onsets: Vec<f64> = fired.iter().map(|e| secs(e.start)).collect();
    eprintln!("rule fired at {onsets:?}");
    assert_eq!(fired.len(), 1, "once, for the first siren: {onsets:?}");
    assert!(
        (onsets[0] - 5.0).abs() <= 0.75,
        "onset {} vs the siren at 5.0",
        onsets[0]
    );
    let e = fired[0];
    assert_eq!(
        e.labels.first().map(String::as_str),
        Some("siren_near_people")
    );
    assert_eq!(e.details["severity"], "high");
    let evidence = e.details["evidence"].as_array().expect("evidence");
    assert!(evidence.iter().any(|x| x["term"] == "sound(siren)"));
    assert!(evidence.iter().any(|x| x["term"] == "object(person)"));
    assert!(e.track.is_some(), "{e:?}");
    // The caption said at once.
    assert!(
        captions(&records).any(|c| c.text.starts_with("high alert siren_near_people")),
        "no alert caption"
    );
}
