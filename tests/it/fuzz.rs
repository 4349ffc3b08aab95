//! Damaged media: small clips in six containers (and one that never decodes), broken by a seeded
//! generator (byte flips, truncations, header swaps, zeroed ranges), each
//! run through the `vigil` binary under a 4 GiB address-space limit and a
//! 30 s timeout. Every case must end in time with exit 0 or 1, without a
//! panic, with a well-formed event log whose events all close, and, for a
//! file cut late, with the records made before the cut.
//!
//! The cases follow from one seed (printed; `VIGIL_FUZZ_SEED` changes it)
//! and each case has its own (`VIGIL_FUZZ_CASE=ID` runs the cases whose id
//! contains ID). A failing case's input and stderr are kept under
//! `target/tmp/fuzz-failures/`. The clips are generated afresh each run, so
//! their bytes can differ in a muxer's creation date, never in length: a
//! seed damages the same offsets every run.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use vigil::record::Phase;

use crate::clip::{self, ClipSpec, Container, SECOND};
use crate::run::{events, lifecycles_closed, parse_records};

const SEED: u64 = 0x7669_6769_6c00_0015;
/// Damaged cases of each kind made from each clip.
const PER_KIND: usize = 5;
const ADDRESS_SPACE: u64 = 4 << 30;
const TIMEOUT: Duration = Duration::from_secs(30);
/// Cases run at once: the suite must fit a 2-core machine.
const WORKERS: usize = 2;
/// A truncation that keeps at least this share of the file keeps the
/// picture change and the tone (at 1 s of 4 s), so their events.
const LATE_CUT: f64 = 0.75;

/// Cases that fail because of a bug in `src/` being fixed: a case id (or
/// the start of one) and the bug. They are run and reported, but do not
/// fail the suite; one that passes is reported too (a race passes most
/// times), so that the entry goes with the fix.
const KNOWN_FAILURES: &[(&str, &str)] = &[];

const PIPELINE: &str = r#"
[encoders.motion]
[encoders.loudness]

[sinks.jsonl]
path = "events.jsonl"
"#;

/// A clip the cases are made from.
struct Clip {
    name: &'static str,
    bytes: Vec<u8>,
    /// It has a picture (so motion) as well as sound.
    video: bool,
    /// Its picture never decodes.
    broken_picture: bool,
    /// Damaged cases are made from it (else it runs undamaged only).
    damaged: bool,
}

/// Makes the clips in `dir`: four seconds, 320x240 at 10 fps, the picture
/// changing and the tone starting at 1 s.
fn clips(dir: &Path) -> Vec<Clip> {
    let make = |name, container: Container, damaged| {
        let spec = ClipSpec {
            container,
            duration: 4 * SECOND,
            video: container.has_video(),
            fps: 10,
            change_at: SECOND,
            tone_at: SECOND,
            ..Default::default()
        };
        let path = dir.join(name);
        clip::make(&spec, &path);
        Clip {
            name,
            bytes: std::fs::read(&path).expect("read clip"),
            // The picture of MPEG-4 in Matroska from GStreamer's own
            // muxer never decodes: no motion, and a run that fails.
            video: spec.video && container != Container::MkvMpeg4,
            broken_picture: container == Container::MkvMpeg4,
            damaged,
        }
    };
    vec![
        // First: its picture never decodes (the synchroniser ends that
        // branch; it once grew without bound).
        make("mkv-mpeg4", Container::MkvMpeg4, false),
        make("mp4", Container::Mp4Aac, true),
        make("mkv-mjpeg", Container::MkvPcm, true),
        make("avi-mpeg4", Container::AviMpeg4, true),
        make("ts", Container::TsH264, true),
        make("wav", Container::Wav, true),
        make("mp3", Container::Mp3, true),
    ]
}

/// SplitMix64: small, seedable, the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Clean,
    Flip,
    Truncate,
    HeaderSwap,
    Zero,
}

impl Kind {
    const DAMAGE: [Kind; 4] = [Kind::Flip, Kind::Truncate, Kind::HeaderSwap, Kind::Zero];

    fn name(self) -> &'static str {
        match self {
            Kind::Clean => "clean",
            Kind::Flip => "flip",
            Kind::Truncate => "truncate",
            Kind::HeaderSwap => "header-swap",
            Kind::Zero => "zero",
        }
    }
}

struct Case {
    id: String,
    kind: Kind,
    /// What was done to the clip, in words.
    damage: String,
    bytes: Vec<u8>,
    /// The clip has a picture (so motion) as well as sound.
    video: bool,
    /// Its picture never decodes: undamaged, it must exit 1 saying so,
    /// its sound analysed alone.
    broken_picture: bool,
    /// Cut late enough that the records of the part before must be there.
    cut_late: bool,
}

/// The case of `kind` made from `clips[base]` with `seed`; header swaps
/// take their header from one of `donors`.
fn damage(clips: &[Clip], donors: &[usize], base: usize, kind: Kind, seed: u64) -> Case {
    let clip = &clips[base];
    let mut rng = Rng(seed);
    let mut bytes = clip.bytes.clone();
    let len = bytes.len();
    let mut cut_late = false;
    let damage = match kind {
        Kind::Clean => "none".to_string(),
        Kind::Flip => {
            let n = 1 + rng.below(16);
            for _ in 0..n {
                let at = rng.below(len);
                bytes[at] ^= 1 + rng.below(255) as u8;
            }
            format!("{n} bytes flipped")
        }
        Kind::Truncate => {
            // Half the cuts fall in the last quarter, where records must survive.
            let at = if rng.next() & 1 == 1 {
                len * 3 / 4 + rng.below(len / 4)
            } else {
                rng.below(len)
            };
            bytes.truncate(at);
            cut_late = at as f64 >= LATE_CUT * len as f64;
            format!("cut at {at} of {len} bytes")
        }
        Kind::HeaderSwap => {
            let others: Vec<usize> = donors.iter().copied().filter(|&d| d != base).collect();
            let donor = &clips[others[rng.below(others.len())]];
            let n = (16 + rng.below(4096)).min(donor.bytes.len()).min(len);
            bytes[..n].copy_from_slice(&donor.bytes[..n]);
            format!("first {n} bytes from {}", donor.name)
        }
        Kind::Zero => {
            let at = rng.below(len);
            let n = 1 + rng.below((len - at).min(64 << 10));
            bytes[at..at + n].fill(0);
            format!("{n} bytes zeroed at {at}")
        }
    };
    let id = match kind {
        Kind::Clean => format!("{}/clean", clip.name),
        _ => format!("{}/{}/{seed:016x}", clip.name, kind.name()),
    };
    Case {
        id,
        kind,
        damage,
        bytes,
        video: clip.video,
        broken_picture: clip.broken_picture,
        cut_late,
    }
}

/// Damaged cases run on every seed: inputs that once failed (see
/// KNOWN_FAILURES), by clip, kind and seed.
const PINNED: &[(&str, Kind, u64)] = &[("avi-mpeg4", Kind::HeaderSwap, 0x8d6e_91ec_aff1_8397)];

/// Every case, in a fixed order, from `seed`. A clip's cases of one kind
/// follow from the seed, the clip's name and the kind alone, so changing
/// PER_KIND or the clips keeps the other cases' ids.
fn cases(clips: &[Clip], seed: u64) -> Vec<Case> {
    let donors: Vec<usize> = (0..clips.len()).filter(|&i| clips[i].damaged).collect();
    let mut cases = Vec::new();
    for (base, clip) in clips.iter().enumerate() {
        cases.push(damage(clips, &donors, base, Kind::Clean, 0));
        if !clip.damaged {
            continue;
        }
        for kind in Kind::DAMAGE {
            let name = clip
                .name
                .bytes()
                .fold(0u64, |h, b| h.rotate_left(8) ^ b as u64);
            let mut rng = Rng(seed ^ name ^ (kind as u64) << 56);
            for _ in 0..PER_KIND {
                cases.push(damage(clips, &donors, base, kind, rng.next()));
            }
        }
    }
    for &(name, kind, seed) in PINNED {
        let base = clips.iter().position(|c| c.name == name).expect("a clip");
        cases.push(damage(clips, &donors, base, kind, seed));
    }
    cases
}

/// How one run of vigil ended.
struct Outcome {
    /// The exit code, or the signal that ended it.
    exit: Result<i32, i32>,
    timed_out: bool,
    wall: Duration,
    peak_rss_kib: u64,
    stderr: String,
}

/// Runs `vigil run PIPELINE --source FILE --out OUT` under the address-space
/// limit, killing it at the timeout; its peak RSS from `wait4`.
fn run_vigil(pipeline: &Path, source: &Path, out: &Path, stderr: &Path) -> Outcome {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vigil"));
    command
        .arg("run")
        .arg(pipeline)
        .arg("--source")
        .arg(source)
        .arg("--out")
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(stderr).expect("stderr file"));
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the
    // parent; the closure runs in the child between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: ADDRESS_SPACE,
                rlim_max: ADDRESS_SPACE,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let child = command.spawn().expect("spawn vigil");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data, all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut timed_out = false;
    loop {
        // SAFETY: pid is our own child, not yet reaped (std never waits for
        // it: the Child is dropped without wait); status and usage are ours.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(r >= 0, "wait4: {}", std::io::Error::last_os_error());
        if r == pid {
            break;
        }
        if started.elapsed() > TIMEOUT && !timed_out {
            timed_out = true;
            // SAFETY: signals our own, unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let wall = started.elapsed();
    drop(child);
    let exit = if libc::WIFEXITED(status) {
        Ok(libc::WEXITSTATUS(status))
    } else {
        Err(libc::WTERMSIG(status))
    };
    Outcome {
        exit,
        timed_out,
        wall,
        peak_rss_kib: usage.ru_maxrss as u64,
        stderr: std::fs::read_to_string(stderr).unwrap_or_default(),
    }
}

/// What is wrong with how `case` ended, if anything.
fn problems(case: &Case, o: &Outcome, out: &Path) -> Vec<String> {
    let mut p = Vec::new();
    if o.timed_out {
        p.push(format!(
            "still running after {} s: killed",
            TIMEOUT.as_secs()
        ));
    }
    match o.exit {
        Ok(0 | 1) => {}
        Ok(code) => p.push(format!("exit {code} (expected 0 or 1)")),
        Err(signal) => p.push(format!("killed by signal {signal}")),
    }
    if o.exit == Ok(1) && !o.stderr.lines().any(|l| l.starts_with("vigil:")) {
        p.push("exit 1 without a `vigil:` line saying why".into());
    }
    if let Some(line) = o.stderr.lines().find(|l| l.contains("panicked at")) {
        p.push(format!("panicked: {line}"));
    }
    if o.peak_rss_kib * 1024 > ADDRESS_SPACE {
        p.push(format!("peak RSS {} MiB", o.peak_rss_kib / 1024));
    }
    let log = out.join("events.jsonl");
    let records = match std::fs::read_to_string(&log) {
        Ok(text) => parse_records(&text).unwrap_or_else(|e| {
            p.push(format!("events.jsonl: {e}"));
            Vec::new()
        }),
        Err(_) => Vec::new(),
    };
    if let Err(e) = lifecycles_closed(&records) {
        p.push(format!("events.jsonl: {e}"));
    }
    let started = |kind: &str| events(&records).any(|e| e.kind == kind && e.phase == Phase::Start);
    if case.kind == Kind::Clean && case.broken_picture {
        if o.exit != Ok(1) || !o.stderr.contains("video: ") {
            p.push("a clip whose picture never decodes did not exit 1 saying `video: …`".into());
        }
        if !started("loud_sound") {
            p.push("a clip whose picture never decodes gave no loud_sound event".into());
        }
    } else if case.kind == Kind::Clean {
        if o.exit != Ok(0) {
            p.push("an undamaged clip did not exit 0".into());
        }
        if !started("loud_sound") || (case.video && !started("motion")) {
            p.push("an undamaged clip gave no motion or loud_sound event".into());
        }
    }
    if case.cut_late && !started("loud_sound") && !started("motion") {
        p.push(format!(
            "cut after {:.0}% of the file, yet no event of the part before",
            LATE_CUT * 100.0
        ));
    }
    p
}

struct Report {
    id: String,
    kind: Kind,
    damage: String,
    outcome: Outcome,
    problems: Vec<String>,
}

fn run_case(case: &Case, pipeline: &Path) -> Report {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = dir.path().join("case.bin");
    std::fs::write(&source, &case.bytes).expect("write case");
    let out = dir.path().join("out");
    let stderr = dir.path().join("stderr.txt");
    let outcome = run_vigil(pipeline, &source, &out, &stderr);
    let problems = problems(case, &outcome, &out);
    if !problems.is_empty() {
        keep(case, &outcome);
    }
    Report {
        id: case.id.clone(),
        kind: case.kind,
        damage: case.damage.clone(),
        outcome,
        problems,
    }
}

/// Keeps a failing case's input and stderr for a rerun.
fn keep(case: &Case, o: &Outcome) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("fuzz-failures")
        .join(case.id.replace('/', "_"));
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(dir.join("input"), &case.bytes);
        let _ = std::fs::write(dir.join("stderr.txt"), &o.stderr);
    }
}

fn known_failure(id: &str) -> Option<&'static str> {
    KNOWN_FAILURES
        .iter()
        .find(|(prefix, _)| id.starts_with(prefix))
        .map(|(_, why)| *why)
}

/// One line of counts: cases, exits, slowest, highest RSS.
fn tally<'a>(reports: impl Iterator<Item = &'a Report>) -> String {
    let (mut n, mut zero, mut one, mut other) = (0, 0, 0, 0);
    let (mut slowest, mut rss) = (Duration::ZERO, 0);
    for r in reports {
        n += 1;
        match r.outcome.exit {
            Ok(0) => zero += 1,
            Ok(1) => one += 1,
            _ => other += 1,
        }
        slowest = slowest.max(r.outcome.wall);
        rss = rss.max(r.outcome.peak_rss_kib);
    }
    let other = match other {
        0 => String::new(),
        k => format!(", {k} other"),
    };
    format!(
        "{n} cases, {zero} exit 0, {one} exit 1{other}, slowest {:.1} s, max RSS {} MiB",
        slowest.as_secs_f64(),
        rss.div_ceil(1024)
    )
}

#[test]
fn damaged_media_ends_in_time_within_memory_and_keeps_its_records() {
    let started = Instant::now();
    let seed = match std::env::var("VIGIL_FUZZ_SEED") {
        Ok(s) => u64::from_str_radix(s.trim_start_matches("0x"), 16)
            .unwrap_or_else(|e| panic!("VIGIL_FUZZ_SEED={s}: not hex: {e}")),
        Err(_) => SEED,
    };
    let only = std::env::var("VIGIL_FUZZ_CASE").ok();
    let dir = tempfile::tempdir().expect("temp dir");
    let made = clips(dir.path());
    let pipeline = dir.path().join("fuzz.toml");
    std::fs::write(&pipeline, PIPELINE).expect("write pipeline");
    let cases: Vec<Case> = cases(&made, seed)
        .into_iter()
        .filter(|c| only.as_ref().is_none_or(|o| c.id.contains(o.as_str())))
        .collect();
    assert!(!cases.is_empty(), "no case id contains {only:?}");
    println!(
        "fuzz: seed {seed:016x} (VIGIL_FUZZ_SEED changes it; VIGIL_FUZZ_CASE=ID runs the cases whose id contains ID)"
    );

    let next = AtomicUsize::new(0);
    let reports = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| {
                while let Some(case) = cases.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let report = run_case(case, &pipeline);
                    reports.lock().expect("reports").push(report);
                }
            });
        }
    });
    let mut reports = reports.into_inner().expect("reports");
    reports.sort_by(|a, b| a.id.cmp(&b.id));

    let mut by_kind: BTreeMap<Kind, Vec<&Report>> = BTreeMap::new();
    for r in &reports {
        by_kind.entry(r.kind).or_default().push(r);
    }
    let kinds: Vec<String> = by_kind
        .iter()
        .map(|(k, rs)| format!("{} {}", k.name(), rs.len()))
        .collect();
    let all = tally(reports.iter());
    let (n, rest) = all.split_once(" cases").expect("a tally");
    println!("fuzz: {n} cases ({}){rest}", kinds.join(", "));
    for (kind, rs) in &by_kind {
        println!("fuzz:   {:<11} {}", kind.name(), tally(rs.iter().copied()));
    }

    let mut failures = Vec::new();
    for r in &reports {
        match (known_failure(&r.id), r.problems.is_empty()) {
            (None, true) => {}
            (None, false) => failures.push(format!(
                "{} ({}): {}",
                r.id,
                r.damage,
                r.problems.join("; ")
            )),
            (Some(why), false) => println!(
                "fuzz: known failure {} ({}): {} [{why}]",
                r.id,
                r.damage,
                r.problems.join("; ")
            ),
            (Some(_), true) => println!(
                "fuzz: known failure {} passed this time: if its bug is fixed, take it off KNOWN_FAILURES",
                r.id
            ),
        }
    }
    println!("fuzz: {:.0} s in all", started.elapsed().as_secs_f64());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed (seed {seed:016x}; inputs kept under {}/fuzz-failures):\n{}",
        failures.len(),
        reports.len(),
        env!("CARGO_TARGET_TMPDIR"),
        failures.join("\n")
    );
}
