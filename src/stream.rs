//! What every stage may know of a stream while it runs: progress and failure.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::geometry::{BBox, Point};
use crate::lock::Locked;
use crate::media::{Chunk, VideoFrame};

/// Where a stream is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamState {
    Starting,
    Running,
    Ended,
    Failed,
    /// A live source lost its connection and is being reconnected.
    Reconnecting,
    /// A live source sent nothing for a while; it is reconnected if that
    /// lasts `stall`.
    Stalled,
    /// Stopped on request (detached, or the run was stopped).
    Stopped,
    /// Running, but one branch gives nothing usable (a picture that never
    /// decodes): the other is analysed alone. [`StreamStatus::degraded`]
    /// says why.
    Degraded,
}

impl StreamState {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamState::Starting => "connecting",
            StreamState::Running => "running",
            StreamState::Ended => "ended",
            StreamState::Failed => "failed",
            StreamState::Reconnecting => "reconnecting",
            StreamState::Stalled => "stalled",
            StreamState::Stopped => "stopped",
            StreamState::Degraded => "degraded",
        }
    }
}

/// What the media's container and codecs call themselves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaNames {
    pub container: Option<String>,
    pub video: Option<String>,
    pub audio: Option<String>,
}

impl MediaNames {
    /// "MPEG-4 Video in Matroska", or what of it is known.
    pub fn describe(&self, video: bool) -> Option<String> {
        let codec = if video { &self.video } else { &self.audio };
        match (codec, &self.container) {
            (Some(c), Some(k)) => Some(format!("{c} in {k}")),
            (Some(c), None) => Some(c.clone()),
            (None, Some(k)) => Some(k.clone()),
            (None, None) => None,
        }
    }
}

/// Now, in ns since the Unix epoch.
fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Shared status of one stream.
#[derive(Debug, Default)]
pub struct StreamStatus {
    /// What the stream reads, as the user wrote it (for messages).
    pub source: String,
    state: AtomicU8,
    /// Media duration when known (files), nanoseconds; 0 when unknown.
    pub duration: AtomicU64,
    /// The duration was read from a local file, not estimated by a demuxer
    /// pushed from the network (MPEG-TS over HTTP is guessed from its bit
    /// rate): only such a duration tells a truncated file.
    pub duration_exact: AtomicBool,
    /// Stream time fused so far, nanoseconds.
    pub media_done: AtomicU64,
    pub chunks: AtomicU64,
    pub frames: AtomicU64,
    pub audio_samples: AtomicU64,
    /// Video frames the source delivered (before any drop).
    pub frames_in: AtomicU64,
    /// When the stream was attached, ns since the Unix epoch.
    pub attached_at: AtomicU64,
    /// The user asked the stream to stop (Ctrl-C): an early end is expected.
    pub stop_requested: AtomicBool,
    failure: Mutex<Option<String>>,
    /// The last problem met, even one recovered from (a lost connection).
    last_error: Mutex<Option<String>>,
    /// Why the stream is degraded (one branch gives nothing usable), while
    /// it is.
    degraded: Mutex<Option<String>>,
    /// What the container and codecs call themselves (GStreamer's tags),
    /// for messages: container, video codec, audio codec.
    media_names: Mutex<MediaNames>,
    /// A live source's outage under way: the source time of the last data
    /// before it, and when that data came.
    outage: Mutex<Option<(u64, std::time::Instant)>>,
    /// When someone last looked at the stream's live picture (ns since the
    /// Unix epoch; 0: never): only then is a frame kept for it.
    watched_at: AtomicU64,
    /// The latest analysed frame and what was on it, while watched.
    view: Mutex<Option<Arc<LiveView>>>,
}

/// How long a look at the live picture keeps frames coming for it.
pub const WATCH_FOR: u64 = 10 * crate::time::SECOND;

/// A stream's latest analysed frame, with the tracks, zones and lines of
/// that moment, for whoever watches it live (the console). Kept only while
/// someone watches ([`StreamStatus::watch`]): an unwatched stream keeps no
/// pixels past its analysis.
#[derive(Debug)]
pub struct LiveView {
    /// Counts the views of the stream, from 1.
    pub seq: u64,
    pub frame: VideoFrame,
    /// UTC of the frame, ns since the Unix epoch.
    pub utc: i64,
    pub tracks: Vec<LiveTrack>,
    /// Each zone, with how many tracks are in it.
    pub zones: Vec<LiveShape>,
    /// Each counting line (its two points: from, to).
    pub lines: Vec<LiveShape>,
    /// Faces to blur before the picture is shown (privacy).
    pub blur: Vec<BBox>,
    /// The picture as a JPEG, made once by the first who asks.
    pub jpeg: std::sync::OnceLock<Vec<u8>>,
}

/// A zone or line of a [`LiveView`].
#[derive(Clone, Debug)]
pub struct LiveShape {
    pub name: String,
    pub points: Vec<Point>,
    /// The labels it follows (empty: all).
    pub labels: Vec<String>,
    /// Tracks in it (zones).
    pub occupancy: usize,
}

/// A confirmed track on a [`LiveView`].
#[derive(Clone, Debug)]
pub struct LiveTrack {
    pub id: u64,
    pub label: &'static str,
    pub score: f32,
    pub bbox: BBox,
    /// Detected in that frame (false: the box is predicted).
    pub matched: bool,
}

impl StreamStatus {
    pub fn new(source: impl Into<String>) -> Self {
        StreamStatus {
            source: source.into(),
            attached_at: AtomicU64::new(now_ns()),
            ..Default::default()
        }
    }

    pub fn chunk_done(&self, chunk: &Chunk) {
        self.media_done.store(chunk.span.end.0, Ordering::Relaxed);
        self.chunks.fetch_add(1, Ordering::Relaxed);
        self.frames
            .fetch_add(chunk.frames.len() as u64, Ordering::Relaxed);
        self.audio_samples
            .fetch_add(chunk.audio.len() as u64, Ordering::Relaxed);
    }

    /// Someone looks at the live picture: keep frames for it for
    /// [`WATCH_FOR`].
    pub fn watch(&self) {
        self.watched_at.store(now_ns(), Ordering::Relaxed);
    }

    /// Whether someone looked at the live picture lately.
    pub fn watched(&self) -> bool {
        let at = self.watched_at.load(Ordering::Relaxed);
        at != 0 && now_ns().saturating_sub(at) < WATCH_FOR
    }

    /// The next view (`None`: nobody watches; the last one is let go).
    pub fn set_view(&self, view: Option<LiveView>) {
        *self.view.locked() = view.map(Arc::new);
    }

    /// The latest view, while the stream is watched.
    pub fn view(&self) -> Option<Arc<LiveView>> {
        self.view.locked().clone()
    }

    /// Records the first failure of the stream.
    pub fn fail(&self, reason: String) {
        self.set_last_error(reason.clone());
        let mut f = self.failure.locked();
        f.get_or_insert(reason);
        self.set_state(StreamState::Failed);
    }

    /// A live source lost its connection after data at source time `from`,
    /// which came at `at`; `None`: it is back.
    pub fn set_outage(&self, outage: Option<(u64, std::time::Instant)>) {
        *self.outage.locked() = outage;
    }

    /// The outage under way, as the source time span it covers until now.
    pub fn outage_until_now(&self) -> Option<(u64, u64)> {
        let o = *self.outage.locked();
        o.map(|(from, at)| {
            let since = u64::try_from(at.elapsed().as_nanos()).unwrap_or(u64::MAX);
            (from, from.saturating_add(since))
        })
    }

    /// Notes a problem, recovered from or not, for `GET /streams`.
    pub fn set_last_error(&self, reason: String) {
        *self.last_error.locked() = Some(reason);
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.locked().clone()
    }

    /// Marks the stream degraded with `reason`, or (`None`) no longer.
    pub fn set_degraded(&self, reason: Option<String>) {
        if let Some(r) = &reason {
            self.set_last_error(r.clone());
        }
        *self.degraded.locked() = reason;
    }

    /// Why the stream is degraded, while it is.
    pub fn degraded(&self) -> Option<String> {
        self.degraded.locked().clone()
    }

    /// Notes a tag GStreamer read from the media (the first of each kind).
    pub fn note_media_names(&self, names: MediaNames) {
        let mut n = self.media_names.locked();
        n.container = n.container.take().or(names.container);
        n.video = n.video.take().or(names.video);
        n.audio = n.audio.take().or(names.audio);
    }

    pub fn media_names(&self) -> MediaNames {
        self.media_names.locked().clone()
    }

    /// The stream's state; a running stream with a branch that gives
    /// nothing usable is [`StreamState::Degraded`].
    pub fn state(&self) -> StreamState {
        let raw = self.raw_state();
        if raw == StreamState::Running && self.degraded().is_some() {
            return StreamState::Degraded;
        }
        raw
    }

    fn raw_state(&self) -> StreamState {
        match self.state.load(Ordering::Relaxed) {
            0 => StreamState::Starting,
            1 => StreamState::Running,
            2 => StreamState::Ended,
            4 => StreamState::Reconnecting,
            5 => StreamState::Stalled,
            6 => StreamState::Stopped,
            _ => StreamState::Failed,
        }
    }

    /// Moves to `state`; a failed stream stays failed.
    pub fn set_state(&self, state: StreamState) {
        let v = match state {
            StreamState::Starting => 0,
            StreamState::Running => 1,
            StreamState::Ended => 2,
            StreamState::Failed => 3,
            StreamState::Reconnecting => 4,
            StreamState::Stalled => 5,
            StreamState::Stopped => 6,
            // Degraded is running with a reason: see `set_degraded`.
            StreamState::Degraded => 1,
        };
        let _ = self
            .state
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                (old != 3).then_some(v)
            });
    }

    pub fn failure(&self) -> Option<String> {
        self.failure.locked().clone()
    }
}

/// The streams a process runs, by name: filled by the graph that runs
/// them, read by the server and the progress display that show them.
#[derive(Clone, Default)]
pub struct StreamTable(Arc<Mutex<BTreeMap<String, Arc<StreamStatus>>>>);

impl StreamTable {
    fn table(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<StreamStatus>>> {
        self.0.locked()
    }

    pub fn insert(&self, name: String, status: Arc<StreamStatus>) {
        self.table().insert(name, status);
    }

    pub fn remove(&self, name: &str) {
        self.table().remove(name);
    }

    /// Takes `name` out if it is still `status` (a stream of the same name
    /// may have been attached since); says whether it did.
    pub fn remove_if_same(&self, name: &str, status: &Arc<StreamStatus>) -> bool {
        let mut t = self.table();
        let same = t.get(name).is_some_and(|s| Arc::ptr_eq(s, status));
        if same {
            t.remove(name);
        }
        same
    }

    pub fn clear(&self) {
        self.table().clear();
    }

    /// The stream called `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<Arc<StreamStatus>> {
        self.table().get(name).cloned()
    }

    /// The streams as they are now, by name.
    pub fn snapshot(&self) -> BTreeMap<String, Arc<StreamStatus>> {
        self.table().clone()
    }
}
