//! Live RTSP streams: capture-to-record latency, how many 720p streams with
//! the object detector fit on this machine, what overload does to vigil,
//! and its memory over many reconnections.
//! The release binary (`target/release/vigil`) runs as a child process and
//! watches an RTSP server started in this process (gst-rtsp-server, a
//! shared media per mount, one mount per stream, serving an H.264 MP4 as it
//! is: nothing is re-encoded per client). Prints a Markdown section for BENCHMARKS.md.
//!
//!   cargo bench --bench live        (tests/bench/run.sh runs it)
//!
//! Environment (seconds; 0 leaves that measurement out):
//!   BENCH_LATENCY_SECS  (60)   the latency run
//!   BENCH_FIT_SECS      (45)   each run of N streams
//!   BENCH_FIT_MAX       (8)    the most streams tried
//!   BENCH_CAPACITY_SECS (30)   the detector's capacity, measured on the file
//!   BENCH_OVERLOAD_SECS (600)  the overloaded live run
//!   BENCH_RECONNECTS    (20)   server outages in the reconnection run
//!   BENCH_QUIET_SECS    (130)  each run of quiet streams
//!   BENCH_QUIET_STREAMS (20)   the quiet streams tried first
//!   VIGIL_CACHE  (~/.cache/vigil) the 720p clip is made once in its media/
//!
//! Runs, their pipelines and vigil's logs are left in bench-out/live/.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[path = "../support/rtsp.rs"]
mod support;

use support::{RtspServer, Serving, h264_picture};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// `[sync] hop` of every pipeline here, and the caption span.
const HOP_SECS: f64 = 1.0;
/// Analysis rate per stream when counting the streams that fit.
const FIT_FPS: u32 = 5;
/// Analysis rate of the overloaded stream: every frame of a 25 fps camera.
const OVERLOAD_FPS: u32 = 25;
/// Mounts for runs of several streams (`/cam1` … `/cam16`).
const MOUNTS: usize = 32;
/// vtest.avi lasts 79.5 s; the live clip is it N times over.
const VTEST_SECS: f64 = 79.5;
/// How long vigil may take to finish after SIGINT before it is killed.
const STOP_WAIT: Duration = Duration::from_secs(60);
/// RSS and /metrics are sampled this often in the overload run.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// A live stream queues at most 8 chunks (src/sync/queue.rs, LIVE_CHUNKS):
/// a bounded latency stays under that many hops and one more.
const LATENCY_BOUND_SECS: f64 = 9.0;
/// The p95 capture-to-record latency quiet streams must keep.
const QUIET_P95_SECS: f64 = 1.5;

fn main() {
    if let Err(e) = bench() {
        eprintln!("live bench: {e}");
        std::process::exit(1);
    }
}

fn secs_var(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn bench() -> Res<()> {
    let latency_secs = secs_var("BENCH_LATENCY_SECS", 60);
    let fit_secs = secs_var("BENCH_FIT_SECS", 45);
    let fit_max = secs_var("BENCH_FIT_MAX", 8) as usize;
    let capacity_secs = secs_var("BENCH_CAPACITY_SECS", 30);
    let overload_secs = secs_var("BENCH_OVERLOAD_SECS", 600);
    let reconnects = secs_var("BENCH_RECONNECTS", 20) as usize;
    let quiet_secs = secs_var("BENCH_QUIET_SECS", 130);
    let quiet_streams = secs_var("BENCH_QUIET_STREAMS", 20) as usize;

    let b = Bench::new()?;
    // The clip must outlast the longest live run (the server starts it over
    // for every run) and the connection; the file run reads it faster than
    // real time, but stops after capacity_secs.
    let longest = latency_secs
        .max(fit_secs)
        .max(overload_secs)
        .max(capacity_secs * 2) as f64;
    let clip = Clip::get(&b, ((longest + 120.0) / VTEST_SECS).ceil().max(1.0) as u32)?;
    // (The reconnection run's server starts the clip over at each outage.)

    println!("## Live RTSP streams\n");
    println!(
        "`cargo bench --bench live` (`tests/bench/live.rs`): `target/release/vigil` runs as a \
         child process and watches an RTSP server started in the bench process \
         (gst-rtsp-server on 127.0.0.1, RTP over the RTSP connection, a shared media per \
         mount and one mount per stream, serving an H.264 MP4 as it is: nothing is \
         re-encoded; a \
         fresh server for each run, so each run's stream starts at the clip's start). Each run \
         is stopped with SIGINT, as Ctrl-C stops it. Runs, pipelines and vigil's logs are in \
         `bench-out/live/`.\n"
    );
    println!(
        "The stream: `{}`, vtest.avi (people walking, 768x576 at 10 fps) {} times over, \
         scaled to 1280x720 (pillarboxed) at 25 fps, {:.0} s, made once by:\n",
        b.show(&clip.path),
        clip.reps,
        clip.reps as f64 * VTEST_SECS
    );
    println!("```\n{}\n```\n", clip.command);

    if latency_secs > 0 {
        emit(&latency(&b, &clip, latency_secs)?);
    }
    if fit_secs > 0 && fit_max > 0 {
        emit(&fit(&b, &clip, fit_secs, fit_max)?);
    }
    if quiet_secs > 0 && quiet_streams > 0 {
        let quiet = QuietClip::get(&b)?;
        emit(&quiet_fit(&b, &quiet, quiet_secs, quiet_streams)?);
    }
    if overload_secs > 0 && capacity_secs > 0 {
        emit(&overload(&b, &clip, capacity_secs, overload_secs)?);
    }
    if reconnects > 0 {
        emit(&reconnections(&b, &clip, reconnects)?);
    }
    Ok(())
}

// --- the measurements -------------------------------------------------------

/// Capture-to-record latency of captions on one live stream.
fn latency(b: &Bench, clip: &Clip, secs: u64) -> Res<String> {
    b.progress(&format!("latency: one RTSP stream, motion, {secs} s"));
    let load = load_average();
    let server = RtspServer::start(&clip.path)?;
    let http = free_port()?;
    let toml = Pipeline {
        sources: vec![("cam".into(), server.url())],
        source_extra: "",
        fps: FIT_FPS,
        motion: true,
        detector: None,
        http,
    }
    .toml();
    let dir = b.run_dir("latency")?;
    let mut vigil = Vigil::spawn(b, &dir, &toml)?;
    vigil.wait_http(http)?;
    vigil.run_until(Duration::from_secs(secs))?;
    let metrics = scrape(http)?;
    vigil.stop()?;
    let sent_at = server.playing_at();
    drop(server);

    let captions = read_captions(&dir.join("out/events.db"))?;
    // Full spans only: the last caption, cut by SIGINT, is made at the stop.
    let captions: Vec<&Caption> = captions
        .iter()
        .filter(|c| (c.end - c.start - HOP_SECS).abs() < 1e-6)
        .collect();
    if captions.len() < 3 {
        return Err(format!(
            "latency run: {} captions in {}; see {}",
            captions.len(),
            b.show(&dir.join("out/events.db")),
            b.show(&vigil.log)
        )
        .into());
    }
    let by_utc: Vec<f64> = captions
        .iter()
        .map(|c| (c.stored_ns - c.utc_end_ns()) as f64 / 1e6)
        .collect();
    let by_send: Option<Vec<f64>> = sent_at.map(|w0| {
        captions
            .iter()
            .map(|c| (c.stored_ns - (w0 + (c.end * 1e9) as i64)) as f64 / 1e6)
            .collect()
    });
    let origin_after_send = sent_at.map(|w0| (captions[0].origin_ns() - w0) as f64 / 1e6);

    let target = HOP_SECS * 1e3 + 500.0;
    let (p50, p95, max) = (pct(&by_utc, 0.5), pct(&by_utc, 0.95), pct(&by_utc, 1.0));
    let mut s = String::new();
    s += "### Capture-to-record latency, one live stream\n\n";
    s += &b.machine(&load);
    s += &format!(
        "One RTSP source (the clip above), motion at {FIT_FPS} analysed frames/s (640 wide), \
         `hop` 1 s, one caption a second, the event store; {secs} s, then SIGINT.\n\n"
    );
    s += &b.command(&dir, &toml);
    s += &format!(
        "Latency of a caption: the store's `stored_ns` (wall clock at its commit) minus the \
         UTC of the end of the media it covers: its `utc` (the UTC of its `start`) plus `end` \
         − `start`. A live record's `utc` is the UTC vigil gives the stream's time zero \
         (`utc_origin`, fixed by the synchroniser: src/sync/synchroniser.rs) plus stream time \
         (the frames' PTS since the first frame). So the latency runs from when `utc` says the \
         media at the caption's end was there: the RTSP jitter buffer (`latency`, 200 ms by \
         default: rtspsrc holds each packet that long), depayloading and decoding, the wait \
         for the chunk to close (it leaves once an analysed frame at or past its end has \
         arrived: analysed frames come {:.0} ms apart, but the 25 fps clip has one exactly \
         at each chunk's end, so this wait is short here), the encoders, fusion, the caption and the store's \
         commit (synchronous = FULL). The second row dates the media independently, by when \
         the server sent it (its media went to PLAYING at W0; the frame at stream time t \
         left at W0 + t): from the camera's send to the commit.\n\n",
        1e3 / FIT_FPS as f64
    );
    s += "| dated by | captions | p50 ms | p95 ms | max ms |\n|---|---:|---:|---:|---:|\n";
    s += &format!(
        "| `utc` (+ end − start) | {} | {p50:.0} | {p95:.0} | {max:.0} |\n",
        by_utc.len()
    );
    match (&by_send, origin_after_send) {
        (Some(v), Some(o)) => {
            s += &format!(
                "| server's send (W0 + end) | {} | {:.0} | {:.0} | {:.0} |\n\n",
                v.len(),
                pct(v, 0.5),
                pct(v, 0.95),
                pct(v, 1.0)
            );
            s += &format!(
                "`utc_origin` is {o:.0} ms after the server's W0 (the first caption's `utc` \
                 against the server's clock): {}\n\n",
                if o.abs() <= 20.0 {
                    "`utc` dates the media as it left the server, so both rows count from \
                     the camera's send."
                } else if o > 0.0 {
                    "`utc` is that much late (vigil dated stream time zero after the first \
                     frame's delivery to it), and the first row leaves that much out."
                } else {
                    "`utc` is that much early, and the first row counts that much more."
                }
            );
        }
        _ => s += "\nThe server did not say when its media went to PLAYING.\n\n",
    }
    s += &format!(
        "Target p95 ≤ hop + 500 ms = {target:.0} ms: {:.0} ms: **{}**\n\n",
        p95,
        verdict(p95 <= target)
    );
    s += &format!(
        "`vigil_latency_seconds` (a chunk's arrival at the synchroniser to its records \
         leaving fusion) at the end: {}.\n",
        histogram_line(&metrics, "vigil_latency_seconds")
    );
    Ok(s)
}

/// How many 720p streams at 5 analysed frames/s with the detector keep up.
fn fit(b: &Bench, clip: &Clip, secs: u64, max: usize) -> Res<String> {
    let load = load_average();
    let mut rows = String::new();
    let mut fitting = 0;
    let mut first: Option<(PathBuf, String)> = None;
    let mut last_failed = None;
    for n in 1..=max {
        b.progress(&format!(
            "fit: {n} stream(s), detector at {FIT_FPS} fps, {secs} s"
        ));
        let StreamsRun {
            names,
            dir,
            toml,
            metrics,
            scraped_ns,
            wall,
            cpu,
            captions,
            ..
        } = run_streams(
            b,
            std::slice::from_ref(&clip.path),
            n,
            secs,
            &format!("fit-{n}"),
        )?;
        let frames = metrics.sum("vigil_batch_size_sum", &[("model", "nanodet")]);

        let mut fits_all = true;
        let mut cells = Vec::new();
        for name in &names {
            let st = StreamFit::of(name, &captions, &metrics, scraped_ns);
            fits_all &= st.fits();
            cells.push(st);
        }
        // Frames/s over the time the streams were watched: from the first frame.
        let watched = cells
            .iter()
            .filter_map(|c| c.since_origin)
            .fold(0.0, f64::max);
        let watched = if watched > 0.0 { watched } else { wall };
        let course: Vec<String> = cells
            .iter()
            .map(|c| format!("{:.0}", c.on_course() * 100.0))
            .collect();
        let lags: Vec<String> = cells
            .iter()
            .map(|c| c.lag().map_or("–".into(), |l| format!("{l:.1}")))
            .collect();
        let drops: Vec<String> = cells.iter().map(|c| c.drops_text()).collect();
        rows += &format!(
            "| {n} | {} | {} | {} | {:.1} ({}) | {:.0} | {} |\n",
            course.join(", "),
            lags.join(", "),
            drops.join(", "),
            frames / watched,
            n as u32 * FIT_FPS,
            cpu / wall * 100.0,
            if fits_all { "yes" } else { "**no**" }
        );
        if first.is_none() {
            first = Some((dir.clone(), toml.clone()));
        }
        if fits_all {
            fitting = n;
        } else {
            last_failed = Some(n);
            break;
        }
    }
    let mut s = String::new();
    s += "### Streams that fit: 720p at 5 analysed frames/s with the detector\n\n";
    s += &b.machine(&load);
    s += &format!(
        "N RTSP sources, all on the one 720p 25 fps stream (served once, shared), each at \
         {FIT_FPS} analysed frames/s (640 wide) with the detector (NanoDet) at {FIT_FPS} \
         frames/s and batched across streams; {secs} s each, for N = 1, 2, … until N does \
         not fit (at most {max}). The command for N = 1 (for N, N `[[sources]]` on the same \
         URL):\n\n"
    );
    if let Some((dir, toml)) = &first {
        s += &b.command(dir, toml);
    }
    s += &format!(
        "Per stream, read just before SIGINT: the chunks fused (`vigil_received_total` of \
         the fuse stage) against the stream time the captions covered by then (their \
         `stored_ns` before the scrape; one chunk a second of it), how far that stream time \
         was behind the wall clock since its first frame (stream time must keep up: at most \
         3 s behind, i.e. ≥ wall − connect time − 3 s), and `vigil_dropped_total` by reason. \
         A stream fits when its chunks are ≥ 90 % of what its stream time calls for, it kept \
         up, and nothing was dropped for backlog (`frame_backlog`, `chunk_backlog`). CPU is \
         vigil's utime + stime (/proc/PID/stat) over the run's wall time, in % of one core \
         ({} cores).\n\n",
        b.cores
    );
    s += "| N | on course % (per stream) | behind the wall clock s | drops | detector frames/s since the first frame (wanted) | vigil CPU % | fits |\n";
    s += "|---:|---|---|---|---:|---:|---|\n";
    s += &rows;
    s += "\n";
    s += &match (fitting, last_failed) {
        (0, _) => "**No stream fits**: even one 720p stream with the detector at 5 frames/s \
                   does not keep up on this machine.\n"
            .to_string(),
        (n, Some(_)) => format!("**{n} stream{} fit** on this machine.\n", plural(n)),
        (n, None) => format!(
            "**At least {n} stream{} fit** (every N tried fitted; BENCH_FIT_MAX = {max}).\n",
            plural(n)
        ),
    };
    Ok(s)
}

/// One run of N streams with the detector at [`FIT_FPS`], each on a mount
/// of its own of a fresh server for a file: what was read just before
/// SIGINT, and the captions stored.
struct StreamsRun {
    names: Vec<String>,
    dir: PathBuf,
    toml: String,
    metrics: Metrics,
    scraped_ns: i64,
    wall: f64,
    cpu: f64,
    peak_rss: f64,
    captions: Vec<Caption>,
}

/// Runs `n` streams for `secs` in the run folder `name`, stream `i` on
/// `files[i % files.len()]`.
fn run_streams(b: &Bench, files: &[PathBuf], n: usize, secs: u64, name: &str) -> Res<StreamsRun> {
    let server = RtspServer::serving(files, free_port()?)?;
    let http = free_port()?;
    let names: Vec<String> = (1..=n).map(|i| format!("cam{i}")).collect();
    let toml = Pipeline {
        sources: names
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), server.url_n(i + 1)))
            .collect(),
        source_extra: "",
        fps: FIT_FPS,
        motion: false,
        detector: Some(FIT_FPS),
        http,
    }
    .toml();
    let dir = b.run_dir(name)?;
    let mut vigil = Vigil::spawn(b, &dir, &toml)?;
    vigil.wait_http(http)?;
    vigil.run_until(Duration::from_secs(secs))?;
    let scraped_ns = now_ns();
    let text = get(http, "/metrics")?;
    // Kept beside the run, for a look at where the time went.
    std::fs::write(dir.join("metrics.txt"), &text)?;
    let metrics = Metrics::parse(&text);
    let wall = vigil.spawned.elapsed().as_secs_f64();
    let cpu = vigil.cpu_secs()?;
    let peak_rss = vigil.peak_rss_mib()?;
    vigil.stop()?;
    drop(server);
    let captions = read_captions(&dir.join("out/events.db"))?;
    Ok(StreamsRun {
        names,
        dir,
        toml,
        metrics,
        scraped_ns,
        wall,
        cpu,
        peak_rss,
        captions,
    })
}

/// How many quiet 720p cameras (a visit every 40 s) with the gated
/// detector keep up, see every visit, and record promptly: `first` streams,
/// then fewer by 4 until they fit, or 4 more once when they do.
fn quiet_fit(b: &Bench, clip: &QuietClip, secs: u64, first: usize) -> Res<String> {
    let load = load_average();
    let mut rows = String::new();
    let mut tried: BTreeMap<usize, bool> = BTreeMap::new();
    let mut shown: Option<(PathBuf, String)> = None;
    let mut n = first.min(MOUNTS);
    let mut latencies_at: BTreeMap<usize, (f64, f64)> = BTreeMap::new();
    while n > 0 && !tried.contains_key(&n) {
        b.progress(&format!(
            "quiet fit: {n} stream(s), gated detector, {secs} s"
        ));
        let StreamsRun {
            names,
            dir,
            toml,
            metrics,
            scraped_ns,
            wall,
            cpu,
            peak_rss: rss,
            captions,
        } = run_streams(b, &clip.paths, n, secs, &format!("quiet-{n}"))?;
        let people = read_person_starts(&dir.join("out/events.db"))?;

        let mut fits_all = true;
        let (mut seen, mut due) = (0, 0);
        let mut alerts = Vec::new();
        let mut missed = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let st = StreamFit::of(name, &captions, &metrics, scraped_ns);
            fits_all &= st.fits();
            let mine: Vec<&PersonStart> = people.iter().filter(|p| &p.stream == name).collect();
            // The visits the stream's time has gone past, with time to confirm.
            let visits = &clip.visits[i % clip.visits.len()];
            for &(onset, end) in visits.iter().filter(|v| v.0 + 3.0 <= st.stream_secs) {
                due += 1;
                let first = mine
                    .iter()
                    .filter(|p| p.start >= onset - 1.0 && p.start <= end)
                    .min_by_key(|p| p.stored_ns);
                match first {
                    Some(p) => {
                        seen += 1;
                        alerts.push(
                            (p.stored_ns - (p.origin_ns() + (onset * 1e9) as i64)) as f64 / 1e9,
                        );
                    }
                    None => missed.push(format!("{name} at {onset:.0} s")),
                }
            }
        }
        let full: Vec<f64> = captions
            .iter()
            .filter(|c| (c.end - c.start - HOP_SECS).abs() < 1e-6 && c.stored_ns <= scraped_ns)
            .map(|c| (c.stored_ns - c.utc_end_ns()) as f64 / 1e9)
            .collect();
        let p95 = pct(&full, 0.95);
        let ok = fits_all && seen == due && due > 0 && p95 <= QUIET_P95_SECS;
        let frames = metrics.sum("vigil_detector_frames_total", &[]);
        let skipped = metrics.sum("vigil_detector_frames_total", &[("reason", "skipped")]);
        rows += &format!(
            "| {n} | {} | {seen} of {due}{} | {p95:.2} | {:.1} / {:.1} | {:.0} % | {:.0} | {rss:.0} | {} |\n",
            if fits_all { "yes" } else { "**no**" },
            if missed.is_empty() {
                String::new()
            } else {
                format!(" (missed: {})", missed.join(", "))
            },
            pct(&alerts, 0.5),
            pct(&alerts, 0.95),
            if frames > 0.0 {
                skipped / frames * 100.0
            } else {
                0.0
            },
            cpu / wall * 100.0,
            if ok { "yes" } else { "**no**" }
        );
        latencies_at.insert(n, (p95, pct(&alerts, 0.95)));
        if shown.is_none() {
            shown = Some((dir.clone(), toml.clone()));
        }
        tried.insert(n, ok);
        n = match (ok, tried.keys().next_back() == Some(&n)) {
            // Fitted, and the most tried yet: once more with 4 more.
            (true, true) if n == first.min(MOUNTS) => (n + 4).min(MOUNTS),
            (true, _) => break,
            (false, _) => n.saturating_sub(4),
        };
    }
    let fitting = tried.iter().filter(|(_, ok)| **ok).map(|(n, _)| *n).max();
    let mut s = String::new();
    s += "### Quiet cameras that fit: 720p, a visit every 40 s, the gated detector\n\n";
    s += &b.machine(&load);
    s += &format!(
        "The streams: `{}` …, the quiet clip of the gating benchmark (`tests/bench/gating.py \
         clip`: vtest.avi's walkway emptied, still for 30 s, then 10 s of real footage with \
         people, four times over, ending still; {:.0} s) scaled to 1280x720 at 25 fps, H.264 \
         in MP4, in {} versions that begin {} s into it (and wrap round), so that the \
         cameras' visits do not all come at once: stream i plays version i mod {}, from its \
         start. One mount per stream. N RTSP sources at \
         {FIT_FPS} analysed frames/s with the detector's defaults (`gating = \"motion\"`, \
         `precision = \"int8\"`), {secs} s a run: N = {} first, then 4 fewer until N fits, or \
         4 more once if it does. The command for the first N:\n\n",
        b.show(&clip.paths[0]),
        clip.secs,
        clip.paths.len(),
        QUIET_OFFSETS.map(|o| o.to_string()).join(", "),
        clip.paths.len(),
        first.min(MOUNTS)
    );
    if let Some((dir, toml)) = &shown {
        s += &b.command(dir, toml);
    }
    s += &format!(
        "A run fits when every stream keeps up (as in the busy case above: chunks ≥ 90 % of \
         its stream time, at most 3 s behind the wall clock, nothing dropped for backlog), \
         every visit its stream time went past (onset + 3 s) has a person track that starts \
         between 1 s before the onset and the visit's end, and the p95 capture-to-record \
         latency of the full captions (`stored_ns` − the UTC of the caption's end, as in the \
         latency section) is ≤ {QUIET_P95_SECS} s. The visit's alert: when the store committed \
         the person track's start record, after the visit's onset (UTC of the stream's time \
         zero + onset): the confirmation (3 frames) is in it. Skipped: the share of frames due \
         for detection that the gate skipped. CPU is vigil's over the run's wall time, in % \
         of one core ({} cores); RSS its peak.\n\n",
        b.cores
    );
    s += "| N | keep up | visits seen | caption latency p95 s | visit alert p50 / p95 s | skipped | vigil CPU % | peak RSS MiB | fits |\n";
    s += "|---:|---|---|---:|---:|---:|---:|---:|---|\n";
    s += &rows;
    s += "\n";
    s += &match fitting {
        Some(n) => format!(
            "**{n} quiet stream{} fit** on this machine (target ≥ 20): **{}**.\n",
            plural(n),
            verdict(n >= 20)
        ),
        None => "**No N tried fits** (target ≥ 20): **FAIL**.\n".to_string(),
    };
    Ok(s)
}

/// The detector's capacity on the file, then a live stream that asks more
/// of it than that.
fn overload(b: &Bench, clip: &Clip, capacity_secs: u64, secs: u64) -> Res<String> {
    let load = load_average();
    // As many streams as the live run (3: together 75 frames/s, more than
    // this machine's detector does), so that decoding weighs on both.
    let n: usize = std::env::var("BENCH_OVERLOAD_STREAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    // Capacity: the same clip as files, which vigil reads as fast as it can.
    b.progress(&format!(
        "overload: detector capacity on {n} files, {capacity_secs} s"
    ));
    let http = free_port()?;
    let file_toml = Pipeline {
        sources: (1..=n)
            .map(|i| (format!("file{i}"), clip.path.display().to_string()))
            .collect(),
        source_extra: "",
        fps: OVERLOAD_FPS,
        motion: false,
        detector: Some(OVERLOAD_FPS),
        http,
    }
    .toml();
    let file_dir = b.run_dir("capacity")?;
    let mut vigil = Vigil::spawn(b, &file_dir, &file_toml)?;
    vigil.wait_http(http)?;
    // From the first frames analysed on, so that loading the model is left out.
    let (t0, f0) = vigil.wait_frames(http, Duration::from_secs(120))?;
    vigil.run_for(Duration::from_secs(capacity_secs))?;
    let f1 = scrape(http)?.sum("vigil_batch_size_sum", &[("model", "nanodet")]);
    let capacity = (f1 - f0) / t0.elapsed().as_secs_f64();
    let file_cpu = vigil.cpu_secs()? / vigil.spawned.elapsed().as_secs_f64() * 100.0;
    vigil.stop()?;

    // Live, overloaded: enough streams that what they offer is more than
    // the detector's capacity (one 25 fps stream may not be, on a quiet machine).
    b.progress(&format!(
        "overload: {n} RTSP streams, detector at {OVERLOAD_FPS} fps each, {secs} s"
    ));
    let server = RtspServer::start(&clip.path)?;
    let http = free_port()?;
    let toml = Pipeline {
        sources: (1..=n)
            .map(|i| (format!("cam{i}"), server.url_n(i)))
            .collect(),
        source_extra: "",
        fps: OVERLOAD_FPS,
        motion: false,
        detector: Some(OVERLOAD_FPS),
        http,
    }
    .toml();
    let dir = b.run_dir("overload")?;
    let mut vigil = Vigil::spawn(b, &dir, &toml)?;
    vigil.wait_http(http)?;
    let total = Duration::from_secs(secs);
    // (seconds since spawn, RSS MiB, detector frames so far)
    let mut samples: Vec<(f64, f64, f64)> = Vec::new();
    // (seconds since spawn, seconds the detector ran so far)
    let mut busy: Vec<(f64, f64)> = Vec::new();
    loop {
        let at = vigil.spawned.elapsed();
        let m = scrape(http)?;
        let frames = m.sum("vigil_batch_size_sum", &[("model", "nanodet")]);
        busy.push((
            at.as_secs_f64(),
            m.sum("vigil_batch_seconds_sum", &[("model", "nanodet")]),
        ));
        samples.push((at.as_secs_f64(), vigil.rss_mib()?, frames));
        if at >= total {
            break;
        }
        vigil.run_until(total.min(at + SAMPLE_EVERY))?;
    }
    let metrics = scrape(http)?;
    let wall = vigil.spawned.elapsed().as_secs_f64();
    let cpu = vigil.cpu_secs()? / wall * 100.0;
    vigil.stop()?;
    drop(server);
    let captions = read_captions(&dir.join("out/events.db"))?;

    // Processed frames/s from the first sample with frames analysed to the end.
    let end = samples.last().copied().unwrap_or_default();
    let start = samples
        .iter()
        .copied()
        .find(|s| s.2 > 0.0)
        .unwrap_or_default();
    let processed = if end.0 > start.0 {
        (end.2 - start.2) / (end.0 - start.0)
    } else {
        0.0
    };
    let ratio = processed / capacity.max(1e-9);
    // The detector's worker: the share of wall time it spent running the
    // model, from the first sample with frames analysed to the end.
    let busy_share = match (busy.iter().find(|b| b.1 > 0.0), busy.last()) {
        (Some(a), Some(z)) if z.0 > a.0 => (z.1 - a.1) / (z.0 - a.0),
        _ => 0.0,
    };
    let drops = metrics.by_label("vigil_dropped_total", "reason");
    let dropped: f64 = drops.values().fold(0.0, |a, n| a + n);
    let rss_1min = samples
        .iter()
        .find(|s| s.0 >= 60.0)
        .or(samples.last())
        .map_or(0.0, |s| s.1);
    let rss_end = end.1;
    let rss_max = samples.iter().map(|s| s.1).fold(0.0, f64::max);
    let flat = rss_1min > 0.0 && (rss_end - rss_1min).abs() <= 0.10 * rss_1min;
    let p95_bucket = metrics.quantile_bound("vigil_latency_seconds", 0.95);
    let bounded = p95_bucket.is_some_and(|b| b <= LATENCY_BOUND_SECS);
    let caption_latency: Vec<f64> = captions
        .iter()
        .filter(|c| (c.end - c.start - HOP_SECS).abs() < 1e-6)
        .map(|c| (c.stored_ns - c.utc_end_ns()) as f64 / 1e9)
        .collect();
    let stream_secs = captions.iter().map(|c| c.end).fold(0.0, f64::max);

    let mut s = String::new();
    s += "### Overload: live streams the detector cannot keep up with\n\n";
    s += &b.machine(&load);
    s += &format!(
        "{n} RTSP sources, each at {OVERLOAD_FPS} analysed frames/s (every frame of the 25 fps \
         stream, 640 wide) with the detector at {OVERLOAD_FPS} frames/s: together more than \
         the detector can do. First its capacity: the same pipeline on the same clip as {n} \
         files (files are read as fast as the machine goes, nothing dropped; live, every \
         frame is decoded before most are dropped, files decode only what the detector \
         takes), detector frames \
         (`vigil_batch_size_sum{{model=\"nanodet\"}}`) per second of wall time over \
         {capacity_secs} s from the first frames analysed (model loading left out):\n\n"
    );
    s += &b.command(&file_dir, &file_toml);
    s += &format!(
        "Then live for {secs} s: vigil's RSS (/proc/PID/status VmRSS) and /metrics every \
         {} s, /metrics again just before SIGINT:\n\n",
        SAMPLE_EVERY.as_secs()
    );
    s += &b.command(&dir, &toml);
    s += "| what | result | target |\n|---|---:|---|\n";
    s += &format!(
        "| detector capacity, {n} files (frames/s; vigil CPU {file_cpu:.0} %) | {capacity:.1} | |\n"
    );
    s += &format!(
        "| frames offered live ({n} × {OVERLOAD_FPS}/s over {stream_secs:.0} s of stream time) | {:.0} | more than capacity (else this is no overload): {} |\n",
        n as f64 * OVERLOAD_FPS as f64 * stream_secs,
        if n as f64 * OVERLOAD_FPS as f64 > capacity {
            "yes"
        } else {
            "**no**"
        }
    );
    s += &format!(
        "| detector frames/s while overloaded (vigil CPU {cpu:.0} %) | {processed:.1} ({ratio:.2} of capacity) | ≥ 0.90 of capacity: **{}** |\n",
        verdict(ratio >= 0.9)
    );
    s += &format!(
        "| the detector's worker busy (Σ `vigil_batch_seconds` / wall time) | {:.0} % | kept busy |\n",
        busy_share * 100.0
    );
    s += &format!(
        "| dropped (`vigil_dropped_total`) | {:.0} ({}) | > 0: **{}** |\n",
        dropped,
        if drops.is_empty() {
            "none".to_string()
        } else {
            drops
                .iter()
                .map(|(r, n)| format!("{r} {n:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        },
        verdict(dropped > 0.0)
    );
    s += &format!(
        "| RSS MiB at 1 min / at the end / max | {rss_1min:.0} / {rss_end:.0} / {rss_max:.0} | flat (end within 10 % of 1 min): **{}** |\n",
        verdict(flat)
    );
    s += &format!(
        "| `vigil_latency_seconds` p95 | {} | bounded (≤ {LATENCY_BOUND_SECS:.0} s: the live queue holds 8 chunks): **{}** |\n",
        p95_bucket.map_or("none".into(), |b| format!("≤ {b:.3} s (bucket)")),
        verdict(bounded)
    );
    if !caption_latency.is_empty() {
        s += &format!(
            "| caption latency from the store (dated by `utc`, as in the latency section), p50 / p95 / max s | {:.2} / {:.2} / {:.2} | |\n",
            pct(&caption_latency, 0.5),
            pct(&caption_latency, 0.95),
            pct(&caption_latency, 1.0)
        );
    }
    s += &format!(
        "\nRSS every {} s (MiB): {}.\n\n`vigil_latency_seconds` at the end: {}.\n",
        SAMPLE_EVERY.as_secs(),
        samples
            .iter()
            .map(|s| format!("{:.0}", s.1))
            .collect::<Vec<_>>()
            .join(", "),
        histogram_line(&metrics, "vigil_latency_seconds")
    );
    if secs < 60 {
        s += "\n(The run was shorter than a minute: the 1-minute RSS is the last sample.)\n";
    }
    Ok(s)
}

/// vigil's memory over many reconnections: the RTSP server goes down and
/// comes back `cycles` times while 3 streams with the detector watch it.
fn reconnections(b: &Bench, clip: &Clip, cycles: usize) -> Res<String> {
    const STREAMS: usize = 3;
    const UP: Duration = Duration::from_secs(20);
    const DOWN: Duration = Duration::from_secs(5);
    let load = load_average();
    b.progress(&format!(
        "reconnections: {STREAMS} RTSP streams, the server down {} s every {} s, {cycles} times",
        DOWN.as_secs(),
        (UP + DOWN).as_secs()
    ));
    let port = free_port()?;
    let mut server = Some(RtspServer::start_on(&clip.path, port)?);
    let url = |i: usize| format!("rtsp://127.0.0.1:{port}/cam{i}");
    let http = free_port()?;
    let toml = Pipeline {
        sources: (1..=STREAMS).map(|i| (format!("cam{i}"), url(i))).collect(),
        source_extra: "stall = \"3s\"\nretry_max = \"2s\"\n",
        fps: FIT_FPS,
        motion: false,
        detector: Some(FIT_FPS),
        http,
    }
    .toml();
    let dir = b.run_dir("reconnect")?;
    let mut vigil = Vigil::spawn(b, &dir, &toml)?;
    vigil.wait_http(http)?;
    vigil.wait_frames(http, Duration::from_secs(120))?;
    // Every stream running again: /healthz names each with its state.
    let all_running =
        |text: &str| (1..=STREAMS).all(|i| text.contains(&format!("\"cam{i}\":\"running\"")));
    // (cycle, RSS MiB at the end of the time up, seconds until all ran again)
    let mut samples: Vec<(usize, f64, f64)> = Vec::new();
    let mut rss_before = 0.0;
    for cycle in 0..=cycles {
        if cycle > 0 {
            drop(server.take());
            vigil.run_for(DOWN)?;
            server = Some(RtspServer::start_on(&clip.path, port)?);
        }
        let back = Instant::now();
        let deadline = back + Duration::from_secs(60);
        while !all_running(&get(http, "/healthz").unwrap_or_default()) {
            vigil.check_alive()?;
            if Instant::now() > deadline {
                return Err(format!(
                    "cycle {cycle}: the streams were not all running 60 s after the server came back: {}",
                    get(http, "/healthz").unwrap_or_default()
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let took = back.elapsed().as_secs_f64();
        vigil.run_for(UP.saturating_sub(back.elapsed()))?;
        let rss = vigil.rss_mib()?;
        if cycle == 0 {
            rss_before = rss;
        } else {
            samples.push((cycle, rss, took));
        }
        b.progress(&format!("reconnections: cycle {cycle}: RSS {rss:.0} MiB"));
    }
    let metrics = scrape(http)?;
    vigil.stop()?;
    drop(server);
    // Each lost pipeline is counted once, by what lost it (stall, eos,
    // network…), and retried.
    let reconnects = metrics.sum("vigil_errors_total", &[("stage", "source")]);
    let gaps = count_gap_events(&dir.join("out/events.db"))?;

    let rss_at = |cycle: usize| {
        samples
            .iter()
            .find(|s| s.0 >= cycle)
            .or(samples.last())
            .map_or(0.0, |s| s.1)
    };
    let half = (cycles / 2).max(1);
    let (first, mid, last) = (rss_at(1), rss_at(half), rss_at(cycles));
    let per_cycle_late = (last - mid) / (cycles - half).max(1) as f64;
    let per_cycle_early = (mid - rss_before) / half as f64;
    // A leak grows the same with every reconnection; retention by the
    // allocator levels off. Flat: the second half adds less than 1 MiB a
    // reconnection (3 streams each), against what each reconnection's
    // pipelines would hold if nothing were freed (tens of MiB).
    let flat = per_cycle_late < 1.0;
    let back_max = samples.iter().map(|s| s.2).fold(0.0, f64::max);

    let mut s = String::new();
    s += "### Memory over reconnections\n\n";
    s += &b.machine(&load);
    s += &format!(
        "{STREAMS} RTSP streams at {FIT_FPS} analysed frames/s with the detector (which fit). \
         The server is stopped for {} s and started again on the same port every {} s, \
         {cycles} times; each time every stream loses its connection, waits (from 500 ms, \
         `retry_max` 2 s) and builds a new GStreamer pipeline. vigil's RSS (VmRSS) is read \
         at the end of each {}-s stretch with the server up, once every stream is running \
         again:\n\n",
        DOWN.as_secs(),
        (UP + DOWN).as_secs(),
        UP.as_secs()
    );
    s += &b.command(&dir, &toml);
    s += "| what | result | target |\n|---|---:|---|\n";
    s += &format!(
        "| reconnection attempts (`vigil_errors_total{{stage=\"source\"}}`, every kind) | {reconnects:.0} | ≥ {} ({STREAMS} streams × {cycles}) |\n",
        STREAMS * cycles
    );
    s += &format!(
        "| `stream_gap` events (one per stream and outage) | {gaps} | {} |\n",
        STREAMS * cycles
    );
    s += &format!("| longest wait until every stream ran again | {back_max:.1} s | |\n");
    s += &format!(
        "| RSS MiB before the first outage / after 1 / after {half} / after {cycles} | {rss_before:.0} / {first:.0} / {mid:.0} / {last:.0} | |\n"
    );
    s += &format!(
        "| RSS growth per outage, first {half} / last {} | {per_cycle_early:.1} / {per_cycle_late:.1} MiB | levels off (last half < 1 MiB an outage): **{}** |\n",
        cycles - half,
        verdict(flat)
    );
    s += &format!(
        "\nRSS after each outage (MiB): {}.\n",
        samples
            .iter()
            .map(|s| format!("{:.0}", s.1))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(s)
}

/// The `stream_gap` events in the store (their start records).
fn count_gap_events(db: &Path) -> Res<usize> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM records WHERE kind = 'stream_gap' AND phase = 'start'",
        [],
        |r| r.get(0),
    )?;
    Ok(usize::try_from(n).unwrap_or(0))
}

// --- per-stream figures of a fit run ---------------------------------------

struct StreamFit {
    /// Stream time the captions stored before the scrape covered, s.
    stream_secs: f64,
    /// Wall seconds from the stream's first frame (its `utc_origin`) to the scrape.
    since_origin: Option<f64>,
    chunks: f64,
    drops: BTreeMap<String, f64>,
}

impl StreamFit {
    fn of(name: &str, captions: &[Caption], metrics: &Metrics, scraped_ns: i64) -> StreamFit {
        let mine: Vec<&Caption> = captions
            .iter()
            .filter(|c| c.stream == name && c.stored_ns <= scraped_ns)
            .collect();
        let stream_secs = mine.iter().map(|c| c.end).fold(0.0, f64::max);
        let origin = mine.iter().map(|c| c.origin_ns()).min();
        let drops = metrics
            .by_label_where("vigil_dropped_total", "reason", &[("stream", name)])
            .into_iter()
            .filter(|(_, n)| *n > 0.0)
            .collect();
        StreamFit {
            stream_secs,
            since_origin: origin.map(|o| (scraped_ns - o) as f64 / 1e9),
            chunks: metrics.sum(
                "vigil_received_total",
                &[("stage", "fuse"), ("stream", name)],
            ),
            drops,
        }
    }

    fn on_course(&self) -> f64 {
        if self.stream_secs <= 0.0 {
            return 0.0;
        }
        self.chunks / (self.stream_secs / HOP_SECS)
    }

    /// How far stream time was behind the wall clock since the first frame.
    fn lag(&self) -> Option<f64> {
        self.since_origin.map(|w| w - self.stream_secs)
    }

    fn backlog_drops(&self) -> f64 {
        ["frame_backlog", "chunk_backlog"]
            .iter()
            .filter_map(|r| self.drops.get(*r))
            .fold(0.0, |a, n| a + n)
    }

    fn fits(&self) -> bool {
        self.on_course() >= 0.9
            && self.lag().is_some_and(|l| l <= 3.0)
            && self.backlog_drops() == 0.0
    }

    fn drops_text(&self) -> String {
        if self.drops.is_empty() {
            return "0".into();
        }
        self.drops
            .iter()
            .map(|(r, n)| format!("{r} {n:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

// --- the bench's surroundings ----------------------------------------------

struct Bench {
    repo: PathBuf,
    vigil: PathBuf,
    work: PathBuf,
    cache: PathBuf,
    cpu: String,
    cores: String,
}

impl Bench {
    fn new() -> Res<Bench> {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let vigil = repo.join("target/release/vigil");
        if !vigil.is_file() {
            return Err(format!(
                "{} not found: build it first (cargo build --release, or make bench)",
                vigil.display()
            )
            .into());
        }
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let cache = match std::env::var_os("VIGIL_CACHE").filter(|c| !c.is_empty()) {
            Some(c) => PathBuf::from(c),
            None => home
                .ok_or("neither VIGIL_CACHE nor HOME is set")?
                .join(".cache/vigil"),
        };
        let work = repo.join("bench-out/live");
        if work.exists() {
            std::fs::remove_dir_all(&work)?;
        }
        std::fs::create_dir_all(&work)?;
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let cores = Command::new("nproc")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "?".into());
        Ok(Bench {
            repo,
            vigil,
            work,
            cache,
            cpu,
            cores,
        })
    }

    fn progress(&self, what: &str) {
        eprintln!("live bench: {what}");
    }

    fn run_dir(&self, name: &str) -> Res<PathBuf> {
        let dir = self.work.join(name);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// A path as the report shows it: under the repository, $VIGIL_CACHE or
    /// the repository's parent, never this machine's layout.
    fn show(&self, p: &Path) -> String {
        if let Ok(r) = p.strip_prefix(&self.cache) {
            return format!("$VIGIL_CACHE/{}", r.display());
        }
        if let Ok(r) = p.strip_prefix(&self.repo) {
            return r.display().to_string();
        }
        if let Some(parent) = self.repo.parent()
            && let Ok(r) = p.strip_prefix(parent)
        {
            return format!("../{}", r.display());
        }
        p.display().to_string()
    }

    fn machine(&self, load: &str) -> String {
        format!(
            "Machine: {}, {} cores (`nproc`); load average before: {load}.\n\n",
            self.cpu, self.cores
        )
    }

    /// The command line of a run and its pipeline file.
    fn command(&self, dir: &Path, toml: &str) -> String {
        format!(
            "```\n./target/release/vigil run {} --out {}\n```\n\n`{}`:\n\n```toml\n{}```\n\n",
            self.show(&dir.join("pipeline.toml")),
            self.show(&dir.join("out")),
            self.show(&dir.join("pipeline.toml")),
            self.show_text(toml)
        )
    }

    fn show_text(&self, text: &str) -> String {
        let mut t = text.replace(&self.cache.display().to_string(), "$VIGIL_CACHE");
        if let Some(parent) = self.repo.parent() {
            t = t.replace(&self.repo.display().to_string(), ".");
            t = t.replace(&parent.display().to_string(), "..");
        }
        t
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

fn free_port() -> Res<u16> {
    Ok(support::free_port()?)
}

/// Nearest-rank percentile of `v` (q in 0–1); NaN when empty.
fn pct(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

// --- the clip -----------------------------------------------------------------

struct Clip {
    path: PathBuf,
    reps: u32,
    /// How it was made, as the report shows it.
    command: String,
}

impl Clip {
    /// vtest.avi `reps` times over at 1280x720, 25 fps, H.264 in MP4: a
    /// cached one with at least as many repetitions, or made now.
    fn get(b: &Bench, reps: u32) -> Res<Clip> {
        let media = b.cache.join("media");
        std::fs::create_dir_all(&media)?;
        let vtest = [
            b.repo.join("../shared/media/vtest.avi"),
            PathBuf::from("/usr/share/doc/opencv-doc/examples/data/vtest.avi"),
        ]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or("vtest.avi not found (../shared/media or opencv-doc; run deploy/setup.sh)")?;
        let vtest = vtest.canonicalize()?;
        let name = |k: u32| format!("live-720p-x{k}.mp4");
        let cached = std::fs::read_dir(&media)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                let k: u32 = n
                    .strip_prefix("live-720p-x")?
                    .strip_suffix(".mp4")?
                    .parse()
                    .ok()?;
                (k >= reps && e.metadata().is_ok_and(|m| m.len() > 0)).then_some(k)
            })
            .min();
        let reps = cached.unwrap_or(reps);
        let path = media.join(name(reps));
        let tmp = media.join(format!("{}.tmp.{}.mp4", name(reps), std::process::id()));
        let mut args: Vec<String> = [
            "-q",
            "-e",
            "concat",
            "name=c",
            "!",
            "videoconvert",
            "!",
            "videoscale",
            "!",
            "videorate",
            "!",
            "video/x-raw,width=1280,height=720,framerate=25/1,pixel-aspect-ratio=1/1",
            "!",
            "x264enc",
            "speed-preset=ultrafast",
            "tune=zerolatency",
            "key-int-max=25",
            "!",
            "h264parse",
            "!",
            "mp4mux",
            "!",
            "filesink",
        ]
        .map(String::from)
        .to_vec();
        let shown_args = |out: &str, src: &str| -> String {
            let mut t = format!(
                "gst-launch-1.0 -q -e concat name=c ! videoconvert ! videoscale ! videorate ! \\\n  \
                 video/x-raw,width=1280,height=720,framerate=25/1,pixel-aspect-ratio=1/1 ! \\\n  \
                 x264enc speed-preset=ultrafast tune=zerolatency key-int-max=25 ! h264parse ! \\\n  \
                 mp4mux ! filesink location={out}"
            );
            for _ in 0..reps {
                t += &format!(" \\\n  filesrc location={src} ! decodebin ! c.");
            }
            t
        };
        let command = shown_args(&b.show(&path), &b.show(&vtest));
        if cached.is_none() {
            b.progress(&format!("making {} (once)", b.show(&path)));
            args.push(format!("location={}", tmp.display()));
            for _ in 0..reps {
                args.extend([
                    "filesrc".to_string(),
                    format!("location={}", vtest.display()),
                    "!".into(),
                    "decodebin".into(),
                    "!".into(),
                    "c.".into(),
                ]);
            }
            let out = Command::new("gst-launch-1.0")
                .args(&args)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("gst-launch-1.0 (deploy/setup.sh installs it): {e}"))?;
            if !out.status.success() || !tmp.is_file() {
                let _ = std::fs::remove_file(&tmp);
                return Err(format!(
                    "could not make {}: {}{}",
                    b.show(&path),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                )
                .into());
            }
            std::fs::rename(&tmp, &path)?;
        }
        Ok(Clip {
            path,
            reps,
            command,
        })
    }
}

/// Where the versions of the quiet clip begin, s into it: visits come
/// every 40 s, so at any moment about a quarter of the versions has one.
const QUIET_OFFSETS: [u32; 8] = [0, 5, 10, 15, 20, 25, 30, 35];

/// The quiet clip of the gating benchmark at 720p for RTSP, in versions
/// that begin at [`QUIET_OFFSETS`], and when their visits are.
struct QuietClip {
    paths: Vec<PathBuf>,
    secs: f64,
    /// Each version's visits, (onset, end) in s of it.
    visits: Vec<Vec<(f64, f64)>>,
}

impl QuietClip {
    /// Each version made once into the cache by `tests/bench/gating.py
    /// clip` (in the bench's Python venv, which the gating section makes)
    /// and x264.
    fn get(b: &Bench) -> Res<QuietClip> {
        let mut clip = QuietClip {
            paths: Vec::new(),
            secs: 0.0,
            visits: Vec::new(),
        };
        for offset in QUIET_OFFSETS {
            let (path, seconds) = QuietClip::version(b, offset)?;
            let mut visits: Vec<(f64, f64)> = Vec::new();
            for (i, &present) in seconds.iter().enumerate() {
                let before = i > 0 && seconds[i - 1];
                if present && !before {
                    visits.push((i as f64, i as f64));
                }
                if present && let Some(v) = visits.last_mut() {
                    v.1 = (i + 1) as f64;
                }
            }
            clip.secs = seconds.len() as f64;
            clip.paths.push(path);
            clip.visits.push(visits);
        }
        Ok(clip)
    }

    /// The version beginning `offset` s in, and per second whether people
    /// are in view.
    fn version(b: &Bench, offset: u32) -> Res<(PathBuf, Vec<bool>)> {
        let media = b.cache.join("media");
        std::fs::create_dir_all(&media)?;
        let path = media.join(format!("live-quiet-720p-s{offset}.mp4"));
        let truth = path.with_extension("truth.txt");
        if !path.is_file() || !truth.is_file() {
            let python = b.cache.join("bench-venv/bin/python");
            if !python.is_file() {
                return Err(format!(
                    "{} is missing: the gating section of tests/bench/run.sh makes it \
                     (or BENCH_QUIET_SECS=0 leaves this run out)",
                    b.show(&python)
                )
                .into());
            }
            let vtest = b.repo.join("../shared/media/vtest.avi").canonicalize()?;
            let avi = media.join(format!("live-quiet.{}.avi", std::process::id()));
            b.progress(&format!("making {} (once)", b.show(&path)));
            let out = Command::new(&python)
                .arg(b.repo.join("tests/bench/gating.py"))
                .args(["clip".as_ref(), vtest.as_os_str(), avi.as_os_str()])
                .arg(offset.to_string())
                .output()?;
            if !out.status.success() {
                let why = String::from_utf8_lossy(&out.stderr);
                return Err(format!("gating.py clip: {why}").into());
            }
            let tmp = media.join(format!("live-quiet.{}.mp4", std::process::id()));
            let caps = "video/x-raw,width=1280,height=720,framerate=25/1,pixel-aspect-ratio=1/1";
            let out = Command::new("gst-launch-1.0")
                .args(["-q", "-e", "filesrc"])
                .arg(format!("location={}", avi.display()))
                .args([
                    "!",
                    "decodebin",
                    "!",
                    "videoconvert",
                    "!",
                    "videoscale",
                    "!",
                ])
                .args([
                    "videorate",
                    "!",
                    caps,
                    "!",
                    "x264enc",
                    "speed-preset=ultrafast",
                ])
                .args(["tune=zerolatency", "key-int-max=25", "!", "h264parse", "!"])
                .args(["mp4mux", "!", "filesink"])
                .arg(format!("location={}", tmp.display()))
                .output()?;
            let _ = std::fs::remove_file(&avi);
            if !out.status.success() || !tmp.is_file() {
                let _ = std::fs::remove_file(&tmp);
                let why = String::from_utf8_lossy(&out.stderr);
                return Err(format!("could not make {}: {why}", b.show(&path)).into());
            }
            std::fs::rename(avi.with_extension("truth.txt"), &truth)?;
            std::fs::rename(&tmp, &path)?;
        }
        let seconds = std::fs::read_to_string(&truth)?
            .lines()
            .map(|l| l.trim() == "1")
            .collect();
        Ok((path, seconds))
    }
}

// --- vigil as a child process ----------------------------------------------

/// The pipelines run here: sources, analysis rate, encoders, the event store
/// and the metrics server.
struct Pipeline {
    sources: Vec<(String, String)>,
    /// More lines for each `[[sources]]` table.
    source_extra: &'static str,
    fps: u32,
    motion: bool,
    detector: Option<u32>,
    http: u16,
}

impl Pipeline {
    fn toml(&self) -> String {
        let mut t = String::new();
        for (name, uri) in &self.sources {
            t += &format!(
                "[[sources]]\nname = \"{name}\"\nuri = \"{uri}\"\nfps = {}\n{}\n",
                self.fps, self.source_extra
            );
        }
        t += "[sync]\nhop = \"1s\"\n\n";
        if self.motion {
            t += "[encoders.motion]\n\n";
        }
        if let Some(fps) = self.detector {
            t += &format!("[encoders.detector]\nfps = {fps}\n\n");
        }
        t += "[fusion]\ncaption_span = \"1s\"\n\n";
        t += "[sinks.store]\npath = \"events.db\"\n\n";
        t += &format!("[server]\nlisten = \"127.0.0.1:{}\"\n", self.http);
        t
    }
}

/// A running `vigil run`; stopped with SIGINT (then killed) when dropped.
struct Vigil {
    child: Option<Child>,
    pid: u32,
    spawned: Instant,
    log: PathBuf,
}

impl Vigil {
    /// Writes `toml` to DIR/pipeline.toml and runs vigil on it with
    /// `--out DIR/out`, its output to DIR/vigil.log.
    fn spawn(b: &Bench, dir: &Path, toml: &str) -> Res<Vigil> {
        let pipeline = dir.join("pipeline.toml");
        std::fs::write(&pipeline, toml)?;
        let log = dir.join("vigil.log");
        let out = File::create(&log)?;
        let err = out.try_clone()?;
        let child = Command::new(&b.vigil)
            .current_dir(&b.repo)
            .arg("run")
            .arg(&pipeline)
            .arg("--out")
            .arg(dir.join("out"))
            .env("VIGIL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", b.vigil.display()))?;
        Ok(Vigil {
            pid: child.id(),
            child: Some(child),
            spawned: Instant::now(),
            log,
        })
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// An error if vigil has already exited.
    fn check_alive(&mut self) -> Res<()> {
        let Some(child) = self.child.as_mut() else {
            return Err("vigil was already stopped".into());
        };
        if let Some(status) = child.try_wait()? {
            self.child = None;
            return Err(format!(
                "vigil exited early ({status}); the end of {}:\n{}",
                self.log.display(),
                self.log_tail()
            )
            .into());
        }
        Ok(())
    }

    /// Waits until vigil's HTTP server answers /healthz.
    fn wait_http(&mut self, port: u16) -> Res<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            self.check_alive()?;
            if get(port, "/healthz").is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("vigil's server on port {port} did not answer in 60 s").into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the detector has analysed frames: (when, how many).
    fn wait_frames(&mut self, port: u16, limit: Duration) -> Res<(Instant, f64)> {
        let deadline = Instant::now() + limit;
        loop {
            self.check_alive()?;
            let frames = scrape(port)?.sum("vigil_batch_size_sum", &[("model", "nanodet")]);
            if frames > 0.0 {
                return Ok((Instant::now(), frames));
            }
            if Instant::now() > deadline {
                return Err(format!("the detector analysed nothing in {limit:?}").into());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Lets vigil run until `at` after its start; an error if it ends before.
    fn run_until(&mut self, at: Duration) -> Res<()> {
        while self.spawned.elapsed() < at {
            self.check_alive()?;
            let left = at.saturating_sub(self.spawned.elapsed());
            std::thread::sleep(left.min(Duration::from_millis(500)));
        }
        self.check_alive()
    }

    /// Lets vigil run `d` longer.
    fn run_for(&mut self, d: Duration) -> Res<()> {
        let at = self.spawned.elapsed() + d;
        self.run_until(at)
    }

    /// CPU seconds vigil has used (utime + stime).
    fn cpu_secs(&self) -> Res<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        // After the command name in parentheses: state is field 3, utime 14, stime 15.
        let rest = stat
            .rsplit_once(')')
            .map(|(_, r)| r)
            .ok_or("unreadable /proc/PID/stat")?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| -> Res<f64> {
            Ok(f.get(i).ok_or("short /proc/PID/stat")?.parse::<u64>()? as f64)
        };
        // SAFETY: sysconf only reads a configuration value.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let hz = if hz > 0 { hz as f64 } else { 100.0 };
        Ok((ticks(11)? + ticks(12)?) / hz)
    }

    /// Resident set size, MiB.
    fn rss_mib(&self) -> Res<f64> {
        self.status_mib("VmRSS:")
    }

    /// Its peak RSS so far.
    fn peak_rss_mib(&self) -> Res<f64> {
        self.status_mib("VmHWM:")
    }

    /// A size in /proc/PID/status, in MiB.
    fn status_mib(&self, field: &str) -> Res<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no {field} in /proc/PID/status"))?;
        Ok(kb / 1024.0)
    }

    fn interrupt(&self) {
        // SAFETY: kill sends a signal to our own child, whose pid we hold
        // (it has not been reaped: `child` is still Some).
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGINT);
        }
    }

    /// SIGINT, as Ctrl-C; killed if it has not ended within STOP_WAIT. An
    /// error if it had to be killed or did not exit with 0.
    fn stop(&mut self) -> Res<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            return Err("vigil was already stopped".into());
        };
        self.interrupt();
        let deadline = Instant::now() + STOP_WAIT;
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    return Err(format!(
                        "vigil exited with {status} after SIGINT; the end of {}:\n{}",
                        self.log.display(),
                        self.log_tail()
                    )
                    .into());
                }
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "vigil did not end within {STOP_WAIT:?} of SIGINT and was killed; see {}",
                    self.log.display()
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Vigil {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(None)) {
            self.interrupt();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

// --- /metrics ----------------------------------------------------------------

fn get(port: u16, path: &str) -> Res<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut response = agent
        .get(&format!("http://127.0.0.1:{port}{path}"))
        .call()?;
    Ok(response.body_mut().read_to_string()?)
}

fn scrape(port: u16) -> Res<Metrics> {
    Ok(Metrics::parse(&get(port, "/metrics")?))
}

/// One line of Prometheus text: `name{labels} value`.
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// Prometheus text, as samples.
struct Metrics {
    samples: Vec<Sample>,
}

impl Metrics {
    fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (head, value) = match line.rsplit_once(' ') {
                Some(x) => x,
                None => continue,
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            let (name, labels) = match head.split_once('{') {
                Some((n, rest)) => (n, parse_labels(rest.trim_end_matches('}'))),
                None => (head, Vec::new()),
            };
            samples.push(Sample {
                name: name.trim().to_string(),
                labels,
                value,
            });
        }
        Metrics { samples }
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        filter: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && filter
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
    }

    /// The sum of `name` over the samples whose labels include `filter`.
    fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        // fold, not sum: an empty f64 sum is -0, which prints as "-0".
        self.matching(name, filter).fold(0.0, |a, s| a + s.value)
    }

    /// `name` summed by the value of `label`.
    fn by_label(&self, name: &str, label: &str) -> BTreeMap<String, f64> {
        self.by_label_where(name, label, &[])
    }

    fn by_label_where(
        &self,
        name: &str,
        label: &str,
        filter: &[(&str, &str)],
    ) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for s in self.matching(name, filter) {
            if let Some((_, l)) = s.labels.iter().find(|(k, _)| k == label) {
                *out.entry(l.clone()).or_insert(0.0) += s.value;
            }
        }
        out
    }

    /// Cumulative buckets of histogram `name`, all series together: (le, count).
    fn buckets(&self, name: &str) -> Vec<(f64, f64)> {
        let mut by_le: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for s in self.matching(&format!("{name}_bucket"), &[]) {
            let le = s
                .labels
                .iter()
                .find(|(k, _)| k == "le")
                .map(|(_, l)| {
                    if l == "+Inf" {
                        f64::INFINITY
                    } else {
                        l.parse().unwrap_or(f64::NAN)
                    }
                })
                .unwrap_or(f64::NAN);
            if le.is_nan() {
                continue;
            }
            let e = by_le.entry(le.to_bits()).or_insert((le, 0.0));
            e.1 += s.value;
        }
        let mut b: Vec<(f64, f64)> = by_le.into_values().collect();
        b.sort_by(|x, y| x.0.total_cmp(&y.0));
        b
    }

    /// The upper bound of the bucket holding quantile q; None when empty.
    fn quantile_bound(&self, name: &str, q: f64) -> Option<f64> {
        let b = self.buckets(name);
        let total = b.last()?.1;
        if total <= 0.0 {
            return None;
        }
        b.iter().find(|(_, c)| *c >= q * total).map(|(le, _)| *le)
    }
}

fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(if n == 'n' { '\n' } else { n });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((key.trim_start_matches(',').trim().to_string(), value));
        rest = &after[end..];
    }
    out
}

/// count, mean and bucket bounds of p50 and p95 of a histogram.
fn histogram_line(m: &Metrics, name: &str) -> String {
    let count = m.sum(&format!("{name}_count"), &[]);
    if count <= 0.0 {
        return "no observations".into();
    }
    let mean = m.sum(&format!("{name}_sum"), &[]) / count;
    let bound = |q: f64| {
        m.quantile_bound(name, q)
            .map_or("?".into(), |b| format!("≤ {b:.3} s"))
    };
    format!(
        "{count:.0} chunks, mean {:.0} ms, p50 {}, p95 {} (bucket bounds)",
        mean * 1e3,
        bound(0.5),
        bound(0.95)
    )
}

// --- the event store ---------------------------------------------------------

struct Caption {
    stream: String,
    /// Stream time, s.
    start: f64,
    end: f64,
    /// `utc` (the UTC of `start`), ns since the epoch.
    utc_ns: i64,
    stored_ns: i64,
}

impl Caption {
    /// UTC of the end of the media the caption covers, ns.
    fn utc_end_ns(&self) -> i64 {
        self.utc_ns + ((self.end - self.start) * 1e9).round() as i64
    }

    /// UTC of the stream's time zero, ns.
    fn origin_ns(&self) -> i64 {
        self.utc_ns - (self.start * 1e9).round() as i64
    }
}

/// The start record of a person track.
struct PersonStart {
    stream: String,
    /// Stream time, s.
    start: f64,
    utc_ns: i64,
    stored_ns: i64,
}

impl PersonStart {
    /// UTC of the stream's time zero, ns.
    fn origin_ns(&self) -> i64 {
        self.utc_ns - (self.start * 1e9).round() as i64
    }
}

/// The records of `kind` (`caption`, `event`…) the store committed, as
/// (JSON, `stored_ns`), in the order they were stored.
fn stored(db: &Path, kind: &str) -> Res<Vec<(String, i64)>> {
    if !db.is_file() {
        return Err(format!("no event store at {}", db.display()).into());
    }
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut stmt = conn.prepare(
        "SELECT json, stored_ns FROM records WHERE type = ?1 AND stored_ns IS NOT NULL ORDER BY seq",
    )?;
    let rows = stmt.query_map([kind], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn read_person_starts(db: &Path) -> Res<Vec<PersonStart>> {
    let mut out = Vec::new();
    for (json, stored_ns) in stored(db, "event")? {
        let r: vigil::record::Record = serde_json::from_str(&json)?;
        let vigil::record::Record::Event(e) = r else {
            continue;
        };
        if e.kind != "object"
            || e.phase != vigil::record::Phase::Start
            || !e.labels.iter().any(|l| l == "person")
        {
            continue;
        }
        let utc_ns = chrono::DateTime::parse_from_rfc3339(&e.utc)?
            .timestamp_nanos_opt()
            .ok_or("event `utc` out of range")?;
        out.push(PersonStart {
            stream: e.stream,
            start: e.start.nanos() as f64 / 1e9,
            utc_ns,
            stored_ns,
        });
    }
    Ok(out)
}

fn read_captions(db: &Path) -> Res<Vec<Caption>> {
    let mut out = Vec::new();
    for (json, stored_ns) in stored(db, "caption")? {
        let v: serde_json::Value = serde_json::from_str(&json)?;
        let field = |k: &str| {
            v.get(k)
                .ok_or_else(|| format!("caption without `{k}`: {json}"))
        };
        let utc = field("utc")?
            .as_str()
            .ok_or("caption `utc` is not a string")?;
        let utc_ns = chrono::DateTime::parse_from_rfc3339(utc)?
            .timestamp_nanos_opt()
            .ok_or("caption `utc` out of range")?;
        out.push(Caption {
            stream: field("stream")?.as_str().unwrap_or_default().to_string(),
            start: field("start")?
                .as_f64()
                .ok_or("caption `start` is not a number")?,
            end: field("end")?
                .as_f64()
                .ok_or("caption `end` is not a number")?,
            utc_ns,
            stored_ns,
        });
    }
    Ok(out)
}

// --- the RTSP server -----------------------------------------------------------

/// The RTSP server of `tests/support/rtsp.rs`, serving a file's H.264
/// picture at `/cam` and `/cam1` … `/cam32` for runs of several streams:
/// each mount's media is shared, and has one client here (gst-rtsp-server
/// 1.22 can abort on an assertion, gst_rtsp_media_get_rates, when many
/// clients set up one shared media at once).
impl RtspServer {
    fn start(file: &Path) -> Res<RtspServer> {
        RtspServer::start_on(file, free_port()?)
    }

    /// On this port (a server started again where its clients look for it).
    fn start_on(file: &Path, port: u16) -> Res<RtspServer> {
        RtspServer::serving(&[file.to_path_buf()], port)
    }

    /// `files` in turn: `/cam` and `/cam1` the first, `/cam2` the second…
    fn serving(files: &[PathBuf], port: u16) -> Res<RtspServer> {
        let file = |i: usize| h264_picture(&files[i % files.len().max(1)]);
        let mounts = std::iter::once(("/cam".to_string(), file(0)))
            .chain((1..=MOUNTS).map(|i| (format!("/cam{i}"), file(i - 1))))
            .collect();
        Ok(RtspServer::serve(Serving {
            mounts,
            port,
            tls: None,
            shared: true,
        })?)
    }

    fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/cam", self.port)
    }

    /// Stream `i` (from 1) of a run of several: a mount of its own.
    fn url_n(&self, i: usize) -> String {
        format!("rtsp://127.0.0.1:{}/cam{}", self.port, i.min(MOUNTS))
    }
}

/// Prints a finished section at once, so that a later failure keeps it.
fn emit(section: &str) {
    println!("{section}");
    let _ = std::io::stdout().flush();
}
