//! The disk guard: at most once a second the sinks look at the free space
//! on the output folder's disk and set the [`DiskGate`] that says what may
//! be written. Below the mark, the oldest segments of continuous recording
//! are deleted first: only when none is left do media stop. Each change of level is one record of a `disk_low` event
//! (start, updates, end), a system record of the stream [`SYSTEM_STREAM`]
//! that every sink writes whatever the level: it is what tells the
//! records' gap.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, json};

use crate::disk::{DiskGate, Level, Thresholds};
use crate::fuse::RecordMaker;
use crate::record::{Phase, Record};
use crate::time::Timestamp;

/// The stream system records (not of any one stream) carry: no stream
/// name may start with `@`, so their ids are vigil's own.
pub const SYSTEM_STREAM: &str = "@vigil";
/// How often free space is measured, at most.
pub const EVERY: Duration = Duration::from_secs(1);

const MIB: u64 = 1 << 20;

/// Watches the free space under one folder.
pub struct DiskGuard {
    dir: PathBuf,
    marks: Thresholds,
    gate: Arc<DiskGate>,
    maker: RecordMaker,
    started: Instant,
    checked: Option<Instant>,
    /// The open `disk_low` event: its id, onset, and the media skipped
    /// before it.
    open: Option<(String, Timestamp, u64)>,
    episodes: u64,
    /// Records dropped in the open event.
    dropped: u64,
    free: u64,
    /// The record of the first measurement, made before any stream runs.
    first: Option<Record>,
}

impl DiskGuard {
    /// Keeps `min_free` bytes free under `dir`, for the records of `run`;
    /// measures at once, so that the gate is set before any snapshot.
    pub fn new(dir: PathBuf, min_free: u64, run: Arc<str>, gate: Arc<DiskGate>) -> DiskGuard {
        let mut maker = RecordMaker::new(run, SYSTEM_STREAM.into());
        maker.utc_origin = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
        let mut guard = DiskGuard {
            dir,
            marks: Thresholds::new(min_free),
            gate,
            maker,
            started: Instant::now(),
            checked: None,
            open: None,
            episodes: 0,
            dropped: 0,
            free: 0,
            first: None,
        };
        guard.first = guard.poll(Instant::now());
        guard
    }

    pub fn level(&self) -> Level {
        self.gate.level()
    }

    /// `n` records not written for want of space.
    pub fn dropped(&mut self, n: u64) {
        self.dropped += n;
    }

    /// Measures the free space if a second has passed since the last time;
    /// the `disk_low` record to write when the level changed.
    pub fn poll(&mut self, now: Instant) -> Option<Record> {
        if let Some(r) = self.first.take() {
            return Some(r);
        }
        if self.checked.is_some_and(|t| now.duration_since(t) < EVERY) {
            return None;
        }
        self.checked = Some(now);
        let free = match crate::disk::free_bytes(&self.dir) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(
                    "cannot measure the free space under {}: {e}",
                    self.dir.display()
                );
                return None;
            }
        };
        let free = self.make_room(free);
        self.free = free;
        let was = self.gate.level();
        let level = self.marks.next(was, free);
        if level == was {
            return None;
        }
        self.gate.set(level);
        let at = self.at(now);
        Some(match (was, level) {
            (Level::Ok, _) => {
                self.episodes += 1;
                let id = format!("{SYSTEM_STREAM}/disk_low/{}", self.episodes);
                self.open = Some((id, at, self.gate.media_skipped()));
                self.dropped = 0;
                tracing::warn!("{}", self.say(level));
                self.record(Phase::Start, level, None)
            }
            (_, Level::Ok) => {
                tracing::warn!("{}", self.say(level));
                self.record(Phase::End, level, Some(at))
            }
            _ => {
                tracing::warn!("{}", self.say(level));
                self.record(Phase::Update, level, None)
            }
        })
    }

    /// With `free` bytes free, below the mark media stop at: the oldest
    /// segments of continuous recording go first, until free space is back
    /// above it by the margin (or none is left). The bytes free after.
    fn make_room(&mut self, free: u64) -> u64 {
        let want = self.marks.media.saturating_add(self.marks.margin);
        if free >= self.marks.media {
            return free;
        }
        let root = self.dir.join(crate::config::SEGMENTS);
        let done = crate::sink::retention::segments::free(&root, want - free);
        if done.files == 0 {
            return free;
        }
        tracing::warn!(
            segments = done.files,
            mib = done.bytes / MIB,
            "only {} MiB free under {}: the oldest segments of continuous recording deleted",
            free / MIB,
            self.dir.display()
        );
        crate::disk::free_bytes(&self.dir).unwrap_or(free.saturating_add(done.bytes))
    }

    /// The end of the open `disk_low` event when the sinks stop with it.
    pub fn finish(&mut self) -> Option<Record> {
        self.open.as_ref()?;
        let at = self.at(Instant::now());
        let level = self.gate.level();
        let r = self.record(Phase::End, level, Some(at));
        self.open = None;
        Some(r)
    }

    fn at(&self, now: Instant) -> Timestamp {
        Timestamp(u64::try_from(now.duration_since(self.started).as_nanos()).unwrap_or(u64::MAX))
    }

    fn say(&self, level: Level) -> String {
        let free = self.free / MIB;
        let min = self.marks.media / MIB;
        match level {
            Level::Ok => format!(
                "{free} MiB free under {}: writing snapshots and records again",
                self.dir.display()
            ),
            Level::MediaStopped => format!(
                "only {free} MiB free under {} (min_free_mib {min}): snapshots stop until space is freed",
                self.dir.display()
            ),
            Level::RecordsStopped => format!(
                "only {free} MiB free under {} (under half of min_free_mib {min}): records stop too, counted as dropped, until space is freed",
                self.dir.display()
            ),
        }
    }

    fn record(&mut self, phase: Phase, level: Level, end: Option<Timestamp>) -> Record {
        let (id, onset, skipped_before) = self
            .open
            .clone()
            .unwrap_or_else(|| (format!("{SYSTEM_STREAM}/disk_low/0"), Timestamp::ZERO, 0));
        if phase == Phase::End {
            self.open = None;
        }
        let mut details = Map::new();
        details.insert("free_mib".into(), json!(self.free / MIB));
        details.insert("min_free_mib".into(), json!(self.marks.media / MIB));
        let stopped: &[&str] = match level {
            Level::Ok => &[],
            Level::MediaStopped => &["snapshots"],
            Level::RecordsStopped => &["snapshots", "records"],
        };
        details.insert("stopped".into(), json!(stopped));
        details.insert("records_dropped".into(), json!(self.dropped));
        details.insert(
            "snapshots_skipped".into(),
            json!(self.gate.media_skipped().saturating_sub(skipped_before)),
        );
        let mut r = self
            .maker
            .event(&id, "disk_low", phase, onset, end, 1.0, None, details);
        if let Record::Event(e) = &mut r {
            e.labels = stopped.iter().map(|s| s.to_string()).collect();
        }
        r
    }
}
