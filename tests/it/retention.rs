//! Bounded disk: snapshots deleted with their records, logs rotated by
//! size, the disk guard on the real free space, and `vigil gc`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use vigil::record::{EventRecord, Phase, Record};

use crate::clip::{self, Container, Media, SECOND};
use crate::live::{RtspServer, free_port, h264_clip, interrupt};
use crate::run::{events, id, read_records, run_pipeline, vigil};

const W: usize = 320;
const H: usize = 240;
const MIB: u64 = 1 << 20;

/// `secs` of a textured still picture (noise, so that its JPEGs weigh
/// something) on which a square shows for one second out of every three,
/// somewhere else each time: two motion events each time.
fn blinking_clip(dir: &Path, secs: u64) -> PathBuf {
    let mut seed = 0x2545_f491_u32;
    let background: Vec<u8> = (0..W * H * 3)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            (seed >> 24) as u8
        })
        .collect();
    let mut picture = |_i: u64, t: u64| {
        let mut rgb = background.clone();
        let k = t / (3 * SECOND);
        if t % (3 * SECOND) < SECOND {
            let (x0, y0) = ((k as usize * 47) % (W - 80), (k as usize * 31) % (H - 80));
            for y in y0..y0 + 80 {
                for x in x0..x0 + 80 {
                    rgb[(y * W + x) * 3..(y * W + x) * 3 + 3].copy_from_slice(&[250, 20, 20]);
                }
            }
        }
        rgb
    };
    let path = dir.join("blink.mkv");
    clip::write(
        Media {
            container: Container::MkvPcm,
            width: W,
            height: H,
            fps: 10,
            video_until: secs * SECOND,
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

/// Every file under `dir` whose name ends with `suffix`, relative to `base`.
fn files_under(base: &Path, dir: &Path, suffix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(suffix) {
                let rel = p.strip_prefix(base).expect("under base");
                found.insert(rel.to_string_lossy().into_owned());
            }
        }
    }
    found
}

/// The snapshots a list of records names.
fn snapshots(records: &[Record]) -> BTreeSet<String> {
    events(records).filter_map(|e| e.snapshot.clone()).collect()
}

fn free_mib(dir: &Path) -> u64 {
    vigil::disk::free_bytes(dir).expect("statvfs") / MIB
}

#[test]
fn snapshots_go_with_their_records_and_the_store_keeps_its_size() {
    let dir = tempfile::tempdir().expect("tmp");
    let clip = blinking_clip(dir.path(), 90);
    let r = run_pipeline(
        dir.path(),
        r#"
[encoders.motion]
cooldown = "500ms"
[snapshots]
kinds = ["motion"]
[sinks.jsonl]
# A store of 256 KiB, to make retention delete: the index of moments, with
# its tables (about 48 KiB empty), is left out of this one.
[sinks.store]
max_size_mib = 0.25
index = false
"#,
        &clip,
    );
    let written = snapshots(&r.records());
    assert!(written.len() >= 40, "{} snapshots written", written.len());
    let db = rusqlite::Connection::open(r.out_dir.join("events.db")).expect("the store");
    let stored: BTreeSet<String> = db
        .prepare("SELECT DISTINCT snapshot FROM records WHERE snapshot IS NOT NULL")
        .expect("query")
        .query_map([], |row| row.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("snapshots");
    let on_disk = files_under(&r.out_dir, &r.out_dir.join("snapshots"), ".jpg");
    assert!(
        on_disk.len() < written.len() / 2,
        "retention deleted snapshots: {} of {} left",
        on_disk.len(),
        written.len()
    );
    assert!(!on_disk.is_empty(), "the newest records keep theirs");
    assert_eq!(
        on_disk, stored,
        "every JPEG left is named by a stored record, and each exists"
    );
    let used = vigil::sink::store::used_bytes(&db).expect("size");
    assert!(
        used <= MIB / 4,
        "the store with its snapshots: {used} bytes"
    );
    let files: u64 = on_disk
        .iter()
        .map(|f| std::fs::metadata(r.out_dir.join(f)).map_or(0, |m| m.len()))
        .sum();
    assert!(files < used, "snapshots are counted in the store's size");
}

#[test]
fn the_event_log_rotates_between_records_and_keeps_the_newest() {
    let dir = tempfile::tempdir().expect("tmp");
    let clip = blinking_clip(dir.path(), 60);
    // No store: the log is what names the snapshots, which go with it.
    let r = run_pipeline(
        dir.path(),
        r#"
[encoders.motion]
cooldown = "500ms"
[fusion]
caption_span = "1s"
[snapshots]
kinds = ["motion"]
[sinks.jsonl]
max_size_mib = 0.01
keep = 2
[sinks.webvtt]
max_size_mib = 0.002
keep = 100
"#,
        &clip,
    );
    let log = r.out_dir.join("events.jsonl");
    let rotated = vigil::sink::retention::rotate::rotated(&log).expect("listed");
    assert_eq!(rotated.len(), 2, "{rotated:?}");
    let mut ids = Vec::new();
    let mut kept = Vec::new();
    for f in rotated.iter().chain([&log]) {
        let text = std::fs::read_to_string(f).expect("read");
        assert!(
            text.len() as u64 <= MIB / 100,
            "{}: {} bytes",
            f.display(),
            text.len()
        );
        let records = read_records(f);
        assert!(!records.is_empty(), "{}", f.display());
        if f != &log {
            let name = f.file_name().and_then(|n| n.to_str()).expect("a name");
            let utc = records[0].utc().replace(':', "-");
            assert_eq!(name, format!("events.{utc}.jsonl"));
        }
        ids.extend(records.iter().map(|x| {
            id(x)
                .strip_prefix("blink/")
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{x:?}"))
        }));
        kept.extend(records);
    }
    // The summary says how many records the run made.
    let made: u64 = r
        .stderr()
        .lines()
        .find_map(|l| l.strip_prefix("records ")?.split(' ').next()?.parse().ok())
        .expect("a records line");
    let first = ids[0];
    assert!(first > 1, "the oldest rotated files were deleted");
    assert_eq!(
        ids,
        (first..=made).collect::<Vec<_>>(),
        "consecutive ids across the kept files, up to the last record"
    );
    let on_disk = files_under(&r.out_dir, &r.out_dir.join("snapshots"), ".jpg");
    assert!(!on_disk.is_empty());
    let named = snapshots(&kept);
    let unnamed: Vec<&String> = on_disk.difference(&named).collect();
    assert!(
        unnamed.is_empty(),
        "snapshots of deleted logs left: {unnamed:?}"
    );
    // Every rotated WebVTT file is one.
    let vtt = r.out_dir.join("captions.vtt");
    let vtts = vigil::sink::retention::rotate::rotated(&vtt).expect("listed");
    assert!(vtts.len() >= 3, "{vtts:?}");
    for f in vtts.iter().chain([&vtt]) {
        let text = std::fs::read_to_string(f).expect("read");
        assert!(text.starts_with("WEBVTT\n\n"), "{}:\n{text}", f.display());
        assert!(text.contains(" --> "), "{}", f.display());
    }
}

#[test]
fn below_min_free_snapshots_stop_and_a_disk_low_event_says_so() {
    let dir = tempfile::tempdir().expect("tmp");
    let clip = blinking_clip(dir.path(), 30);
    // Just above what is free: snapshots stop, records (above half) go on.
    let min_free = free_mib(dir.path()) + 2048;
    let r = run_pipeline(
        dir.path(),
        &format!(
            "[encoders.motion]\ncooldown = \"500ms\"\n[snapshots]\nkinds = [\"motion\"]\n\
             [sinks.jsonl]\n[disk]\nmin_free_mib = {min_free}\n"
        ),
        &clip,
    );
    let records = r.records();
    let motion = r.events("motion", Phase::Start);
    assert!(
        motion.len() >= 10,
        "records go on: {} motion events",
        motion.len()
    );
    assert!(
        motion.iter().all(|m| m.snapshot.is_none()),
        "no snapshot named"
    );
    assert!(
        !r.out_dir.join("snapshots").exists()
            || files_under(&r.out_dir, &r.out_dir.join("snapshots"), ".jpg").is_empty()
    );
    let low: Vec<&EventRecord> = events(&records).filter(|x| x.kind == "disk_low").collect();
    assert_eq!(
        low.len(),
        2,
        "one start, one end at the end of the run: {low:?}"
    );
    assert_eq!(low[0].phase, Phase::Start);
    assert_eq!(low[0].stream, "@vigil");
    assert_eq!(low[0].details["stopped"], serde_json::json!(["snapshots"]));
    assert_eq!(low[0].details["min_free_mib"], min_free);
    assert_eq!(low[1].phase, Phase::End);
    assert_eq!(low[1].event, low[0].event);
    assert_eq!(
        low[1].details["snapshots_skipped"].as_u64(),
        Some(motion.len() as u64),
        "every snapshot left out is counted"
    );
    assert!(r.stderr().contains("snapshots stop"), "{}", r.stderr());
}

#[test]
fn far_below_min_free_records_stop_too_and_are_counted_as_dropped() {
    let dir = tempfile::tempdir().expect("tmp");
    let clip = blinking_clip(dir.path(), 20);
    let min_free = 3 * free_mib(dir.path());
    let mut config = vigil::config::PipelineConfig::parse(
        &format!(
            "[[sources]]\nname = \"cam\"\nuri = \"{}\"\n[encoders.motion]\ncooldown = \"500ms\"\n\
             [fusion]\ncaption_span = \"1s\"\n[snapshots]\nkinds = [\"motion\"]\n\
             [sinks.jsonl]\n[sinks.store]\n[disk]\nmin_free_mib = {min_free}\n",
            clip.display()
        ),
        Path::new("p.toml"),
    )
    .expect("the pipeline");
    config.sources[0].fps = 5;
    let out = dir.path().join("out");
    let metrics = vigil::metrics::Metrics::new();
    let report = crate::run::run_in_process(&config, &out, &metrics);
    assert!(report.sinks.errors.is_empty(), "{:?}", report.sinks.errors);
    let text = metrics.render();
    let dropped: u64 = text
        .lines()
        .find(|l| {
            l.starts_with("vigil_dropped_total{")
                && l.contains("reason=\"disk_full\"")
                && l.contains("stream=\"cam\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no disk_full drops in:\n{text}"));
    assert!(dropped >= 20, "{dropped} records dropped");
    for sink in ["jsonl", "store", "snapshots"] {
        assert!(
            text.contains(&format!("vigil_sink_up{{sink=\"{sink}\"}} 0")),
            "{sink} is down:\n{text}"
        );
    }
    // Only the warning made it to disk, in the log and the store alike.
    let log = read_records(&out.join("events.jsonl"));
    let low: Vec<&EventRecord> = events(&log).collect();
    assert_eq!(low.len(), log.len(), "only events: {log:?}");
    let kinds: Vec<(&str, Phase)> = low.iter().map(|x| (x.kind.as_str(), x.phase)).collect();
    assert_eq!(
        kinds,
        [("disk_low", Phase::Start), ("disk_low", Phase::End)]
    );
    assert_eq!(
        low[0].details["stopped"],
        serde_json::json!(["snapshots", "records"])
    );
    assert_eq!(low[1].details["records_dropped"], dropped);
    let db = rusqlite::Connection::open(out.join("events.db")).expect("store");
    let n: i64 = db
        .query_row("SELECT count(*) FROM records", [], |row| row.get(0))
        .expect("count");
    assert_eq!(n, 2);
    assert!(!out.join("snapshots").exists());
}

/// The value of `series` in Prometheus text.
fn metric(text: &str, series: &str) -> Option<i64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn when_space_returns_snapshots_resume() {
    let dir = tempfile::tempdir().expect("tmp");
    let free = free_mib(dir.path());
    assert!(
        free >= 8 * 1024,
        "this test moves the free space across a mark with a 4 GiB file: it needs 8 GiB free, {free} MiB are"
    );
    let server = RtspServer::start(&h264_clip(dir.path()));
    // 2 GiB under what is free now: a 4 GiB file takes it below the mark.
    let min_free = free - 2048;
    let port = free_port();
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            "[[sources]]\nname = \"yard\"\nuri = \"rtsp://127.0.0.1:{}/cam\"\n[encoders.motion]\n\
             [snapshots]\nkinds = [\"motion\"]\n[sinks.jsonl]\n[disk]\nmin_free_mib = {min_free}\n\
             [server]\nlisten = \"127.0.0.1:{port}\"\n",
            server.port
        ),
    )
    .expect("pipeline");
    let out = dir.path().join("out");
    let child = vigil()
        .arg("run")
        .arg(&pipeline)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vigil");
    let snapshots_up = || {
        ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
            .call()
            .ok()?
            .body_mut()
            .read_to_string()
            .ok()
            .and_then(|t| metric(&t, "vigil_sink_up{sink=\"snapshots\"}"))
    };
    let wait_for = |want: i64, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while snapshots_up() != Some(want) {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for(1, "vigil runs with snapshots on");
    let filler = dir.path().join("filler");
    {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::create(&filler).expect("filler");
        // SAFETY: a valid open descriptor; plain integers.
        let rc = unsafe { libc::posix_fallocate(f.as_raw_fd(), 0, 4 << 30) };
        assert_eq!(rc, 0, "fallocate 4 GiB");
    }
    wait_for(0, "snapshots stop once the disk is low");
    std::fs::remove_file(&filler).expect("remove the filler");
    wait_for(1, "snapshots resume once space is back");
    interrupt(&child);
    let output = child.wait_with_output().expect("vigil ends");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let log = read_records(&out.join("events.jsonl"));
    let low: Vec<&EventRecord> = events(&log).filter(|x| x.kind == "disk_low").collect();
    let phases: Vec<Phase> = low.iter().map(|x| x.phase).collect();
    assert_eq!(phases, [Phase::Start, Phase::End], "{low:?}");
    assert_eq!(low[0].details["stopped"], serde_json::json!(["snapshots"]));
    assert_eq!(low[1].details["stopped"], serde_json::json!([]));
}

#[test]
fn gc_lists_then_deletes_orphans_and_old_rotated_logs() {
    let dir = tempfile::tempdir().expect("tmp");
    let clip = blinking_clip(dir.path(), 30);
    let pipeline = r#"
[encoders.motion]
cooldown = "500ms"
[snapshots]
kinds = ["motion"]
[sinks.jsonl]
max_size_mib = 0.01
keep = 1
[sinks.store]
"#;
    let r = run_pipeline(dir.path(), pipeline, &clip);
    let out = &r.out_dir;
    let p = dir.path().join("p.toml");
    let hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
    // An orphan of a crash, two hours old; and a young one, within the grace.
    let crashed = out.join("snapshots/cam9/01OLDRUN");
    std::fs::create_dir_all(&crashed).expect("mkdir");
    let orphan = crashed.join("motion-1.jpg");
    std::fs::write(&orphan, vec![7u8; 5000]).expect("orphan");
    std::fs::File::options()
        .write(true)
        .open(&orphan)
        .and_then(|f| f.set_modified(hours_ago))
        .expect("age it");
    let young = crashed.join("motion-2.jpg");
    std::fs::write(&young, b"young").expect("young");
    // Rotated logs beyond keep, as a run with a larger keep left them.
    let log = out.join("events.jsonl");
    let mut old_logs = Vec::new();
    for (i, stamp) in ["2020-01-01T00-00-00.000Z", "2020-01-02T00-00-00.000Z"]
        .iter()
        .enumerate()
    {
        let f = out.join(format!("events.{stamp}.jsonl"));
        std::fs::write(&f, format!("{{\"n\":{i}}}\n")).expect("old log");
        old_logs.push(f);
    }
    let before = vigil::sink::retention::rotate::rotated(&log).expect("listed");
    assert!(before.len() >= 3, "{before:?}");
    let stored_before = files_under(out, &out.join("snapshots"), ".jpg");

    let gc = |args: &[&str]| {
        let o = vigil()
            .arg("gc")
            .arg(&p)
            .arg("--out")
            .arg(out)
            .args(args)
            .output()
            .expect("vigil gc");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).expect("utf-8")
    };
    let dry = gc(&["--dry-run"]);
    assert!(
        dry.contains(&format!("would delete {} (5000 bytes)", orphan.display())),
        "{dry}"
    );
    assert!(!dry.contains(&young.display().to_string()), "{dry}");
    for f in &old_logs {
        assert!(dry.contains(&f.display().to_string()), "{dry}");
    }
    assert!(
        dry.contains("orphans: would delete 1 snapshots and clips no record names (4.9 KiB)"),
        "{dry}"
    );
    assert!(
        orphan.exists() && old_logs.iter().all(|f| f.exists()),
        "a dry run deletes nothing"
    );

    let done = gc(&[]);
    assert!(
        done.contains("orphans: deleted 1 snapshots and clips no record names"),
        "{done}"
    );
    assert!(!orphan.exists(), "the orphan went");
    assert!(young.exists(), "a snapshot younger than the grace stays");
    let after = vigil::sink::retention::rotate::rotated(&log).expect("listed");
    assert_eq!(after.len(), 1, "keep = 1: {after:?}");
    assert!(old_logs.iter().all(|f| !f.exists()));
    assert_eq!(
        files_under(out, &out.join("snapshots/blink"), ".jpg"),
        stored_before
            .into_iter()
            .filter(|f| f.starts_with("snapshots/blink/"))
            .collect(),
        "snapshots records name are kept"
    );
    // Nothing left to do.
    let again = gc(&[]);
    assert!(again.contains("total: deleted 0 B"), "{again}");
}

#[test]
fn the_disk_guard_deletes_the_oldest_segments_before_it_stops_anything() {
    use vigil::recording::segments;
    let dir = tempfile::tempdir().expect("tmp");
    let clip = blinking_clip(dir.path(), 5);
    let out = dir.path().join("out");
    // Five segments of continuous recording, 100 MiB each, a minute apart.
    let folder = out.join("segments/door");
    std::fs::create_dir_all(&folder).expect("dir");
    let names: Vec<PathBuf> = (0..5i64)
        .map(|k| {
            folder.join(format!(
                "{}.mp4",
                segments::name((1_796_000_000 + 60 * k) * SECOND as i64)
            ))
        })
        .collect();
    let block = vec![7u8; MIB as usize];
    for path in &names {
        use std::io::Write;
        let mut f = std::fs::File::create(path).expect("segment");
        for _ in 0..100 {
            f.write_all(&block).expect("write");
        }
        f.sync_all().expect("sync");
    }
    // 40 MiB short of the mark: with the margin (an eighth of it, at most
    // 256 MiB), 296 MiB to free: the three oldest go, and nothing stops.
    let min_free = free_mib(dir.path()) + 40;
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            "[encoders.motion]\n[snapshots]\nkinds = [\"motion\"]\n[sinks.jsonl]\n\
             [disk]\nmin_free_mib = {min_free}\n"
        ),
    )
    .expect("pipeline");
    let o = vigil()
        .arg("run")
        .arg(&pipeline)
        .arg("--source")
        .arg(&clip)
        .arg("--out")
        .arg(&out)
        .env("VIGIL_LOG", "info")
        .output()
        .expect("vigil");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("the oldest segments of continuous recording deleted"),
        "{stderr}"
    );
    let left: Vec<bool> = names.iter().map(|p| p.exists()).collect();
    assert_eq!(left[..3], [false, false, false], "the three oldest went");
    assert!(left[4], "the newest stays");
    let records = read_records(&out.join("events.jsonl"));
    assert!(
        !events(&records).any(|e| e.kind == "disk_low"),
        "room was made: nothing stopped"
    );
    assert!(events(&records).any(|e| e.kind == "motion" && e.snapshot.is_some()));
}
