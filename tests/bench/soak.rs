//! Soak: `vigil serve` for BENCH_SOAK_SECS (default 1800) with snapshots on,
//! `[sinks.store] max_size_mib = 5` and rotating logs, fed without pause:
//! two streams at a time, each a file with motion every few seconds,
//! attached again as soon as it ends (files run as fast as the machine
//! allows, so this is many hours of camera time). Samples the output
//! folder's size over time against a bound, and counts at the end the
//! snapshots no stored record names (must be 0). Prints a Markdown section
//! for BENCHMARKS.md.
//!
//!   cargo bench --bench soak        (tests/bench/run.sh runs it, unless
//!                                    BENCH_SKIP_SOAK=1)
//!
//! With BENCH_SOAK_MODE=recording (issue 19), the same under a 1 GiB cap
//! with recording on: vtest.avi as 1280x720 H.264 at 4 Mb/s (people walk
//! the whole time: every moment is in a motion clip), `[recording]`
//! clips of motion and continuous 10 s segments, `[sinks.store]
//! max_size_mib = 900`: the output folder, files still being written
//! included, must stay under 1 GiB (1024 MiB), and every clip left must
//! be named by a stored record.
//!
//! Environment: BENCH_SOAK_SECS (1800); BENCH_SOAK_MODE (snapshots or
//! recording); VIGIL_CACHE (~/.cache/vigil), where the clip is made once
//! (media/soak-blink.mkv, media/soak-720p.mp4). The run's folder, pipeline
//! and log are left in bench-out/soak/ (bench-out/soak-recording/).

#[allow(dead_code)]
#[path = "../it/clip.rs"]
mod clip;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const MIB: f64 = 1048576.0;
/// The store's limit, records and the snapshots they name.
const STORE_MIB: f64 = 5.0;
/// What the store's files hold beyond its limit: the write-ahead log (cut
/// back to 1 MiB at each checkpoint, up to 1 MiB more before one) and the
/// records written between two retention passes.
const STORE_SLACK_MIB: f64 = 1.5;
/// The event log's rotation.
const JSONL_MIB: f64 = 0.5;
const JSONL_KEEP: u64 = 2;
/// Each stream's WebVTT file's rotation.
const VTT_MIB: f64 = 0.125;
const VTT_KEEP: u64 = 2;
/// Stream names used in turn: one subtitle file each.
const NAMES: [&str; 2] = ["cam0", "cam1"];
const CLIP_SECS: u64 = 60;
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Recording mode: the disk the output folder must stay within, and the
/// store's limit, which leaves room for what is still being written (a
/// clip and a segment per stream) and for what comes between two
/// retention passes.
const DISK_MIB: f64 = 1024.0;
const RECORDING_STORE_MIB: f64 = 900.0;

/// What a soak runs.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Snapshots under a 5 MiB store.
    Snapshots,
    /// Clips and continuous recording under a 1 GiB disk.
    Recording,
}

fn main() {
    if let Err(e) = bench() {
        eprintln!("soak bench: {e}");
        std::process::exit(1);
    }
}

/// The output folder may hold: the store's records and snapshots within
/// its limit (freed pages go back to the disk) and its slack; each log's
/// live file and kept rotated files. The bound is twice the
/// store's limit; this one is below it.
fn bound_mib() -> f64 {
    STORE_MIB
        + STORE_SLACK_MIB
        + (JSONL_KEEP + 1) as f64 * JSONL_MIB
        + NAMES.len() as f64 * (VTT_KEEP + 1) as f64 * VTT_MIB
}

fn bench() -> Res<()> {
    let secs: u64 = std::env::var("BENCH_SOAK_SECS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1800);
    let mode = match std::env::var("BENCH_SOAK_MODE").as_deref() {
        Ok("recording") => Mode::Recording,
        Ok("snapshots") | Err(_) => Mode::Snapshots,
        Ok(other) => return Err(format!("BENCH_SOAK_MODE={other}: snapshots or recording").into()),
    };
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let vigil = repo.join("target/release/vigil");
    if !vigil.is_file() {
        return Err(format!("{} not found: cargo build --release first", vigil.display()).into());
    }
    let cache = match std::env::var_os("VIGIL_CACHE").filter(|c| !c.is_empty()) {
        Some(c) => PathBuf::from(c),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/vigil"),
    };
    let clip = match mode {
        Mode::Snapshots => cache.join("media/soak-blink.mkv"),
        Mode::Recording => cache.join("media/soak-720p.mp4"),
    };
    if !clip.is_file() {
        std::fs::create_dir_all(clip.parent().unwrap_or(Path::new(".")))?;
        let tmp = clip.with_extension("tmp.mkv");
        match mode {
            Mode::Snapshots => blinking_clip(&tmp),
            Mode::Recording => walkway_720p(&repo, &tmp)?,
        }
        std::fs::rename(&tmp, &clip)?;
    }
    let work = repo.join(match mode {
        Mode::Snapshots => "bench-out/soak",
        Mode::Recording => "bench-out/soak-recording",
    });
    let _ = std::fs::remove_dir_all(&work);
    let out = work.join("out");
    std::fs::create_dir_all(&out)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let pipeline = work.join("soak.toml");
    let (store_mib, media) = match mode {
        Mode::Snapshots => (STORE_MIB, "[snapshots]\nkinds = [\"motion\"]\n"),
        Mode::Recording => (
            RECORDING_STORE_MIB,
            "[snapshots]\nkinds = [\"motion\"]\n\
             [recording]\nkinds = [\"motion\"]\ncontinuous = true\nsegment = \"10s\"\n",
        ),
    };
    std::fs::write(
        &pipeline,
        format!(
            "[encoders.motion]\ncooldown = \"500ms\"\n[fusion]\ncaption_span = \"1s\"\n\
             {media}\
             [sinks.jsonl]\nmax_size_mib = {JSONL_MIB}\nkeep = {JSONL_KEEP}\n\
             [sinks.store]\nmax_size_mib = {store_mib}\n\
             [sinks.webvtt]\nmax_size_mib = {VTT_MIB}\nkeep = {VTT_KEEP}\n\
             [server]\nlisten = \"127.0.0.1:{port}\"\n"
        ),
    )?;
    let log = std::fs::File::create(work.join("vigil.log"))?;
    let mut child = Command::new(&vigil)
        .arg("serve")
        .arg(&pipeline)
        .arg("--out")
        .arg(&out)
        .env("VIGIL_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    let result = soak(&child, port, &clip, &out, secs);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = wait(&mut child, Duration::from_secs(60))?;
    let samples = result?;
    if !status.success() {
        return Err(
            format!("vigil serve ended with {status}; see bench-out/soak/vigil.log").into(),
        );
    }
    match mode {
        Mode::Snapshots => report(&samples, &out, secs),
        Mode::Recording => report_recording(&samples, &out, secs),
    }
}

struct Sample {
    at: f64,
    bytes: u64,
    jpegs: usize,
    attached: u64,
    /// Recording mode: bytes of clips and of segments.
    clips: u64,
    segments: u64,
}

fn soak(child: &Child, port: u16, clip: &Path, out: &Path, secs: u64) -> Res<Vec<Sample>> {
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while ureq::get(&format!("{base}/healthz")).call().is_err() {
        if started.elapsed() > Duration::from_secs(60) {
            return Err(format!("vigil serve (pid {}) does not answer", child.id()).into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let uri = clip.to_str().ok_or("clip path is not UTF-8")?;
    let mut attached = 0u64;
    let mut samples = Vec::new();
    let mut next_sample = Instant::now();
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let streams: serde_json::Value = serde_json::from_str(
            &ureq::get(&format!("{base}/streams"))
                .call()?
                .body_mut()
                .read_to_string()?,
        )?;
        for name in NAMES {
            let state = streams
                .as_array()
                .into_iter()
                .flatten()
                .find(|s| s["name"] == name)
                .and_then(|s| s["state"].as_str().map(str::to_string));
            match state.as_deref() {
                None => {
                    let body = serde_json::json!({"name": name, "uri": uri}).to_string();
                    ureq::post(&format!("{base}/streams"))
                        .header("Content-Type", "application/json")
                        .send(body.as_str())?;
                    attached += 1;
                }
                Some("ended" | "failed" | "stopped") => {
                    ureq::delete(&format!("{base}/streams/{name}")).call()?;
                }
                Some(_) => {}
            }
        }
        if Instant::now() >= next_sample {
            next_sample += SAMPLE_EVERY;
            let (bytes, jpegs) = measure(out);
            let s = Sample {
                at: started.elapsed().as_secs_f64(),
                bytes,
                jpegs: jpegs.len(),
                attached,
                clips: measure(&out.join("clips")).0,
                segments: measure(&out.join("segments")).0,
            };
            eprintln!(
                "soak: {:>6.0} s  {:>7.2} MiB ({:.1} MiB clips, {:.1} MiB segments)  {:>5} JPEGs  {} files attached",
                s.at,
                s.bytes as f64 / MIB,
                s.clips as f64 / MIB,
                s.segments as f64 / MIB,
                s.jpegs,
                s.attached
            );
            samples.push(s);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(samples)
}

/// Bytes of every file under `dir`, and the JPEGs among them (relative).
fn measure(dir: &Path) -> (u64, Vec<String>) {
    let mut bytes = 0;
    let mut jpegs = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.is_dir() {
                stack.push(p);
                continue;
            }
            bytes += m.len();
            if p.extension().is_some_and(|x| x == "jpg")
                && let Ok(rel) = p.strip_prefix(dir)
            {
                jpegs.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    (bytes, jpegs)
}

fn wait(child: &mut Child, limit: Duration) -> Res<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err("vigil serve did not stop within a minute of SIGTERM".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn report(samples: &[Sample], out: &Path, secs: u64) -> Res<()> {
    let (bytes, jpegs) = measure(out);
    let db = rusqlite::Connection::open(out.join("events.db"))?;
    let named: HashSet<String> = db
        .prepare("SELECT DISTINCT snapshot FROM records WHERE snapshot IS NOT NULL")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let orphans = jpegs.iter().filter(|j| !named.contains(*j)).count();
    let missing = named.iter().filter(|n| !out.join(n).is_file()).count();
    let records: i64 = db.query_row("SELECT count(*) FROM records", [], |r| r.get(0))?;
    let first: Option<String> = db.query_row("SELECT min(utc) FROM records", [], |r| r.get(0))?;
    let peak = samples
        .iter()
        .map(|s| s.bytes)
        .chain([bytes])
        .max()
        .unwrap_or(0);
    let bound = bound_mib();
    let size_ok = (peak as f64 / MIB) < bound;
    let twice_ok = (peak as f64 / MIB) < 2.0 * STORE_MIB;
    let verdict = |ok: bool| if ok { "**PASS**" } else { "**FAIL**" };
    let attached = samples.last().map_or(0, |s| s.attached);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_secs();
    println!("## Soak: bounded disk\n");
    println!(
        "`cargo bench --bench soak` (BENCH_SOAK_SECS={secs}): `vigil serve` with snapshots of every \
         motion event, `[sinks.store] max_size_mib = {STORE_MIB}`, `[sinks.jsonl] max_size_mib = {JSONL_MIB}, \
         keep = {JSONL_KEEP}`, `[sinks.webvtt] max_size_mib = {VTT_MIB}, keep = {VTT_KEEP}`, 1 s captions; \
         two streams at a time, each a {CLIP_SECS} s 320x240 file with motion every 3 s, attached again as \
         soon as it ends ({attached} attachments). Measured at unix time {now}.\n"
    );
    println!(
        "Bound on the output folder: {STORE_MIB} MiB + {STORE_SLACK_MIB} MiB (store: records and snapshots \
         within the limit, the write-ahead log and what is written between retention passes) + {} × {JSONL_MIB} MiB (events.jsonl and {JSONL_KEEP} rotated) + \
         {} × {} × {VTT_MIB} MiB (a WebVTT file and {VTT_KEEP} rotated per stream) = {bound:.2} MiB.\n",
        JSONL_KEEP + 1,
        NAMES.len(),
        VTT_KEEP + 1
    );
    println!("| wall s | output folder MiB | JPEGs | files attached |\n|---:|---:|---:|---:|");
    let step = (samples.len() / 12).max(1);
    for s in samples.iter().step_by(step) {
        println!(
            "| {:.0} | {:.2} | {} | {} |",
            s.at,
            s.bytes as f64 / MIB,
            s.jpegs,
            s.attached
        );
    }
    println!(
        "| end | {:.2} | {} | {attached} |\n",
        bytes as f64 / MIB,
        jpegs.len()
    );
    println!(
        "- peak {:.2} MiB against the bound {bound:.2} MiB: {}",
        peak as f64 / MIB,
        verdict(size_ok)
    );
    println!(
        "- peak {:.2} MiB against twice the store's limit, {:.2} MiB, everything in the folder counted: {}",
        peak as f64 / MIB,
        2.0 * STORE_MIB,
        verdict(twice_ok)
    );
    println!(
        "- JPEGs no stored record names at the end: {orphans} (must be 0): {}",
        verdict(orphans == 0)
    );
    println!(
        "- stored records naming a missing JPEG: {missing}; records kept: {records}, oldest utc {}",
        first.unwrap_or_default()
    );
    Ok(())
}

/// Recording mode's report: the output folder against 1 GiB.
fn report_recording(samples: &[Sample], out: &Path, secs: u64) -> Res<()> {
    let (bytes, _) = measure(out);
    let db = rusqlite::Connection::open(out.join("events.db"))?;
    let named: HashSet<String> = db
        .prepare("SELECT DISTINCT clip FROM records WHERE clip IS NOT NULL")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let (_, clips) = files_with(out, "clips", ".mp4");
    let orphans = clips.iter().filter(|c| !named.contains(*c)).count();
    let (segment_bytes, segments) = files_with(out, "segments", ".mp4");
    let peak = samples
        .iter()
        .map(|s| s.bytes)
        .chain([bytes])
        .max()
        .unwrap_or(0);
    let written_clips = samples.iter().map(|s| s.clips).max().unwrap_or(0);
    let verdict = |ok: bool| if ok { "**PASS**" } else { "**FAIL**" };
    let attached = samples.last().map_or(0, |s| s.attached);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_secs();
    println!("## Soak: recording under a 1 GiB disk\n");
    println!(
        "`BENCH_SOAK_MODE=recording cargo bench --bench soak` (BENCH_SOAK_SECS={secs}): `vigil serve` \
         with `[recording] kinds = [\"motion\"], continuous = true, segment = \"10s\"`, snapshots of \
         motion, `[sinks.store] max_size_mib = {RECORDING_STORE_MIB}` (the rest of the {DISK_MIB} MiB \
         is for the clip and the segment each stream is still writing, and what comes between two \
         retention passes); two streams at a time, each vtest.avi as 1280x720 H.264 at 4 Mb/s \
         (79.5 s, people walk the whole time), attached again as soon as it ends ({attached} \
         attachments; files run as fast as the machine reads them). Measured at unix time {now}.\n"
    );
    println!(
        "| wall s | output folder MiB | clips MiB | segments MiB | files attached |\n|---:|---:|---:|---:|---:|"
    );
    let step = (samples.len() / 12).max(1);
    for s in samples.iter().step_by(step) {
        println!(
            "| {:.0} | {:.1} | {:.1} | {:.1} | {} |",
            s.at,
            s.bytes as f64 / MIB,
            s.clips as f64 / MIB,
            s.segments as f64 / MIB,
            s.attached
        );
    }
    println!(
        "| end | {:.1} | {:.1} | {:.1} | {attached} |\n",
        bytes as f64 / MIB,
        measure(&out.join("clips")).0 as f64 / MIB,
        segment_bytes as f64 / MIB
    );
    println!(
        "- peak {:.1} MiB, everything in the folder counted (files being written too), against {DISK_MIB} MiB: {}",
        peak as f64 / MIB,
        verdict((peak as f64 / MIB) < DISK_MIB)
    );
    println!(
        "- clips no stored record names at the end: {orphans} of {} (must be 0): {}",
        clips.len(),
        verdict(orphans == 0)
    );
    println!(
        "- segments left at the end: {} ({:.1} MiB), the oldest deleted first; clips at most {:.1} MiB at once",
        segments.len(),
        segment_bytes as f64 / MIB,
        written_clips as f64 / MIB
    );
    Ok(())
}

/// The files under `out/folder` whose names end with `suffix`: their
/// bytes, and their paths relative to `out`.
fn files_with(out: &Path, folder: &str, suffix: &str) -> (u64, Vec<String>) {
    let mut bytes = 0;
    let mut found = Vec::new();
    let mut stack = vec![out.join(folder)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(suffix)
                && let Ok(rel) = p.strip_prefix(out)
            {
                bytes += e.metadata().map_or(0, |m| m.len());
                found.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    (bytes, found)
}

/// vtest.avi (people walking, 79.5 s) as 1280x720 H.264 at 4 Mb/s in MP4.
fn walkway_720p(repo: &Path, path: &Path) -> Res<()> {
    let vtest = [
        repo.join("../shared/media/vtest.avi"),
        PathBuf::from("/usr/share/doc/opencv-doc/examples/data/vtest.avi"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .ok_or("vtest.avi not found (../shared/media or opencv-doc; run deploy/setup.sh)")?;
    let ok = Command::new("gst-launch-1.0")
        .args(["-q", "-e", "filesrc"])
        .arg(format!("location={}", vtest.display()))
        .args([
            "!",
            "decodebin",
            "!",
            "videoconvert",
            "!",
            "videoscale",
            "!",
        ])
        .args(["video/x-raw,width=1280,height=720", "!", "x264enc"])
        .args([
            "speed-preset=veryfast",
            "bitrate=4000",
            "key-int-max=20",
            "!",
        ])
        .args(["h264parse", "!", "mp4mux", "!", "filesink"])
        .arg(format!("location={}", path.display()))
        .status()?;
    if !ok.success() {
        return Err(format!("could not make {}", path.display()).into());
    }
    Ok(())
}

/// A textured still (noise) on which a square shows for one second out of
/// every three: two motion events, one snapshot each.
fn blinking_clip(path: &Path) {
    const W: usize = 320;
    const H: usize = 240;
    let mut seed = 0x9e37_79b9_u32;
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
        let k = t / (3 * clip::SECOND);
        if t % (3 * clip::SECOND) < clip::SECOND {
            let (x0, y0) = ((k as usize * 47) % (W - 80), (k as usize * 31) % (H - 80));
            for y in y0..y0 + 80 {
                for x in x0..x0 + 80 {
                    rgb[(y * W + x) * 3..(y * W + x) * 3 + 3].copy_from_slice(&[250, 20, 20]);
                }
            }
        }
        rgb
    };
    clip::write(
        clip::Media {
            container: clip::Container::MkvPcm,
            width: W,
            height: H,
            fps: 10,
            video_until: CLIP_SECS * clip::SECOND,
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
