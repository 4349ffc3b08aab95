//! The synchroniser state machine: branch inputs in, [`Chunk`]s out, by watermark.
//!
//! Pure and single-threaded, so it can be tested exhaustively; the thread that
//! drives it from the source's channel lives in `sync/mod.rs`.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::media::{Branch, Chunk, ChunkFlags, Input, VideoFrame};
use crate::sync::audio::AudioTrack;
use crate::time::{
    AUDIO_RATE, MILLISECOND, Span, Timestamp, sample_to_time, time_to_sample,
    time_to_sample_nearest,
};

/// A tail shorter than this, where one branch ends before the other, is padded
/// without flagging it: containers rarely end both tracks on the same sample.
pub const TAIL_TOLERANCE: u64 = 100 * MILLISECOND;

/// How far (ns) a camera's clock may be from the pipeline's for its RTCP
/// sender reports to date the stream: 5 minutes.
const NTP_SANE: i128 = 300 * 1_000_000_000;

/// Data stamped further than this past everything the stream has shown is
/// taken as a broken timestamp, not a gap: dropped and counted. (A
/// decoder that failed to negotiate was seen stamping frames 292 years
/// ahead; filling that with silence never ends.) One hour of real gap is
/// still filled.
pub const MAX_JUMP: u64 = 3_600 * crate::time::SECOND;

/// Most chunks one call makes: the caller sends them on (waiting on a full
/// queue for a file) before asking for more, so that a long gap never
/// makes its chunks all at once.
pub const EMIT_BATCH: usize = 16;

/// How many times `max_skew` one branch of a file may run ahead of the
/// other before the lagging one is taken as dead, by default.
pub const DEAD_BRANCH_SKEWS: u64 = 20;

/// The synchroniser's settings, from the pipeline file.
#[derive(Clone, Debug)]
pub struct SyncSettings {
    /// Chunk length in nanoseconds.
    pub hop: u64,
    /// For live sources, how far one branch may lag before it is skipped.
    pub max_skew: u64,
    /// How far (stream time, ns) one branch of a file may run ahead of the
    /// other, which gives nothing usable, before that one is taken as
    /// broken and ended: the stream goes on with one branch, and fails at
    /// its end. 0: never.
    pub dead_branch: u64,
    /// The same for a live source (its `stall`): the stream is degraded
    /// until the branch gives data again. 0: never.
    pub dead_branch_live: u64,
    pub live: bool,
    /// UTC of stream time zero when the user gave it (`--start-time`).
    pub start_time: Option<i64>,
    /// UTC of stream time zero when nothing better is known (the run's start).
    pub fallback_utc: i64,
}

/// Counters the synchroniser keeps for metrics and the summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    pub frames_in: u64,
    pub frames_late: u64,
    pub audio_samples_in: u64,
    pub audio_trimmed: u64,
    pub audio_filled: u64,
    pub chunks: u64,
    /// Source PTS where the last chunk ended (origin + stream time), ns.
    pub end_pts: u64,
    /// Frames and audio blocks dropped for an impossible timestamp
    /// ([`MAX_JUMP`]).
    pub bad_timestamps: u64,
}

/// A branch that gives nothing usable while the other runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BranchProblem {
    pub branch: Branch,
    /// What was seen, without the branch's name ("no frame was decoded…").
    pub what: String,
    /// For a file: the branch was ended and the stream goes on without it.
    pub ended: bool,
}

#[derive(Debug, Default)]
struct BranchState {
    present: bool,
    first_pts: Option<u64>,
    eos: bool,
    /// Data kept (not dropped for its timestamp), and where the last of it
    /// ends (stream time): how far the branch really reaches.
    usable: u64,
    reach: Option<u64>,
    /// Data dropped for an impossible timestamp, and the first such
    /// timestamp (stream time).
    bad: u64,
    first_bad: Option<u64>,
    /// Why the branch gives nothing usable, while it does not.
    problem: Option<BranchProblem>,
}

impl BranchState {
    fn settled(&self) -> bool {
        !self.present || self.eos || self.first_pts.is_some()
    }
    fn ended(&self) -> bool {
        !self.present || self.eos
    }
}

/// Turns one stream's frames and audio into contiguous, sample-exact chunks.
pub struct Synchroniser {
    settings: SyncSettings,
    stream: Arc<str>,
    topology_known: bool,
    video: BranchState,
    audio: BranchState,
    /// Source PTS of stream time zero, once known.
    origin: Option<u64>,
    utc_origin: Option<i64>,
    /// The source time ↔ UTC pair the live UTC comes from.
    clock: Option<(u64, i64, bool)>,
    /// Said once that the camera's clock is not believed.
    warned_clock: bool,
    creation_time: Option<i64>,
    pending: Vec<Input>,
    /// Spans a live source was disconnected, in stream time.
    outages: Vec<Span>,
    /// Where the latest outage ended (stream time): data after it is not
    /// taken for a jump.
    outage_end: u64,
    /// Zeros, shared by the chunks of an outage.
    silence: Arc<[f32]>,
    frames: VecDeque<VideoFrame>,
    /// Highest frame PTS seen (stream time).
    video_wm: Option<Timestamp>,
    /// End of the last frame (PTS + duration).
    video_end: Timestamp,
    track: AudioTrack,
    /// Where the audio branch ended, in samples, once it has.
    audio_end: Option<u64>,
    /// Where the stream ends, once every branch has.
    end_fixed: Option<Timestamp>,
    seq: u64,
    next_start: Timestamp,
    done: bool,
    stats: SyncStats,
}

impl Synchroniser {
    pub fn new(stream: Arc<str>, settings: SyncSettings) -> Self {
        Synchroniser {
            settings,
            stream,
            topology_known: false,
            video: BranchState::default(),
            audio: BranchState::default(),
            origin: None,
            clock: None,
            warned_clock: false,
            utc_origin: None,
            creation_time: None,
            pending: Vec::new(),
            outages: Vec::new(),
            outage_end: 0,
            silence: Arc::from(Vec::new()),
            frames: VecDeque::new(),
            video_wm: None,
            video_end: Timestamp::ZERO,
            track: AudioTrack::new(),
            audio_end: None,
            end_fixed: None,
            seq: 0,
            next_start: Timestamp::ZERO,
            done: false,
            stats: SyncStats::default(),
        }
    }

    pub fn stats(&self) -> SyncStats {
        SyncStats {
            audio_trimmed: self.track.trimmed + self.track.trimmed_before_origin,
            audio_filled: self.track.filled,
            end_pts: self.origin.unwrap_or(0) + self.next_start.0,
            ..self.stats
        }
    }

    /// Source PTS of stream time zero, once fixed.
    pub fn origin(&self) -> Option<u64> {
        self.origin
    }

    /// Whether the source is live (its queues drop rather than wait).
    pub fn is_live(&self) -> bool {
        self.settings.live
    }

    /// A branch that gives nothing usable while the other runs on, if any.
    pub fn problem(&self) -> Option<&BranchProblem> {
        self.video.problem.as_ref().or(self.audio.problem.as_ref())
    }

    /// Whether every branch has ended (or failed) and everything was emitted.
    pub fn ended(&self) -> bool {
        self.done
            || (self.origin.is_none()
                && self.topology_known
                && self.video.ended()
                && self.audio.ended())
    }

    /// Feeds one input; appends every chunk that became complete to `out`.
    pub fn push(&mut self, input: Input, out: &mut Vec<Chunk>) {
        if self.done {
            return;
        }
        if let Input::Undecodable { branch, what } = input {
            let ended = !self.settings.live;
            self.branch_mut(branch).problem = Some(BranchProblem {
                branch,
                what,
                ended,
            });
            return;
        }
        if self.origin.is_none() {
            self.observe(&input);
            self.pending.push(input);
            self.check_silent_branches();
            if self.origin_settled() {
                self.fix_origin();
                for input in std::mem::take(&mut self.pending) {
                    self.apply(input);
                }
            }
        } else {
            self.observe(&input);
            self.apply(input);
        }
        self.check_branches();
        self.emit_ready(out);
    }

    /// Makes the chunks that are ready but were held back by
    /// [`EMIT_BATCH`]; the caller calls it until it adds none.
    pub fn poll(&mut self, out: &mut Vec<Chunk>) {
        if !self.done {
            self.emit_ready(out);
        }
    }

    /// Ends the stream (EOS on every branch, or an error): flushes what is left.
    pub fn finish(&mut self, out: &mut Vec<Chunk>) {
        if self.done {
            return;
        }
        self.topology_known = true;
        self.video.eos = true;
        self.audio.eos = true;
        if self.origin.is_none() {
            if self.video.first_pts.is_none() && self.audio.first_pts.is_none() {
                self.done = true;
                return;
            }
            self.fix_origin();
            for input in std::mem::take(&mut self.pending) {
                self.apply(input);
            }
        }
        // A branch that gave nothing usable while the other did.
        self.check_branches();
        // Done once the last chunk is out (`poll` makes what this leaves).
        self.emit_ready(out);
    }

    /// Records what decides the origin: topology, first PTS, EOS.
    fn observe(&mut self, input: &Input) {
        match input {
            Input::Topology { video, audio, live } => {
                self.topology_known = true;
                self.settings.live |= *live;
                self.video.present |= *video;
                self.audio.present |= *audio;
            }
            Input::Frame(f) => {
                self.video.present = true;
                self.video.first_pts.get_or_insert(f.pts.0);
            }
            Input::Audio(b) => {
                self.audio.present = true;
                self.audio.first_pts.get_or_insert(b.pts.0);
            }
            Input::CreationTime(t) => self.creation_time = Some(*t),
            Input::Clock { pts, utc, ntp } => {
                // The sender's clock wins over ours; the first of each kind
                // counts. A camera whose clock was never set (off by more
                // than NTP_SANE from ours) is not believed.
                let sane = match (self.clock, *ntp) {
                    (Some((p0, u0, false)), true) => {
                        let ours = i128::from(u0) + (i128::from(pts.0) - i128::from(p0));
                        let off = (i128::from(*utc) - ours).abs();
                        if off > NTP_SANE && !self.warned_clock {
                            self.warned_clock = true;
                            tracing::warn!(
                                stream = %self.stream,
                                "the camera's clock is {} s off ours: its RTCP sender reports are ignored (set the camera's clock, or its NTP server)",
                                off / 1_000_000_000
                            );
                        }
                        off <= NTP_SANE
                    }
                    _ => true,
                };
                let better = sane && self.clock.is_none_or(|(_, _, had)| *ntp && !had);
                if better {
                    self.clock = Some((pts.0, *utc, *ntp));
                    if self.origin.is_some() && self.settings.live {
                        let before = self.utc_origin;
                        self.utc_origin = self.clock_origin();
                        if let (true, Some(b), Some(a)) = (*ntp, before, self.utc_origin) {
                            tracing::info!(
                                stream = %self.stream,
                                "utc now from the camera's RTCP sender reports ({:+} ms from the pipeline clock)",
                                (a - b) / 1_000_000
                            );
                        }
                    }
                }
            }
            Input::VideoExtent(_) | Input::Outage { .. } | Input::Undecodable { .. } => {}
            Input::Eos(Branch::Video) => self.video.eos = true,
            Input::Eos(Branch::Audio) => self.audio.eos = true,
        }
    }

    fn pair(&self, branch: Branch) -> (&BranchState, &BranchState) {
        match branch {
            Branch::Video => (&self.video, &self.audio),
            Branch::Audio => (&self.audio, &self.video),
        }
    }

    fn branch_mut(&mut self, branch: Branch) -> &mut BranchState {
        match branch {
            Branch::Video => &mut self.video,
            Branch::Audio => &mut self.audio,
        }
    }

    /// What to say of `branch`, which gave nothing usable, (`lag`: while the
    /// other ran this far past its last usable data).
    fn nothing_usable(&self, branch: Branch, lag: Option<u64>) -> String {
        let (this, _) = self.pair(branch);
        let (unit, other) = match branch {
            Branch::Video => ("frame", "the sound"),
            Branch::Audio => ("sound", "the picture"),
        };
        if let Some(bad) = this.first_bad
            && this.usable == 0
        {
            return format!(
                "every {unit} came with an impossible timestamp (the first at {}, more than {} past {other}): the decoder is broken or the timestamps corrupt",
                Timestamp(bad),
                Timestamp(MAX_JUMP)
            );
        }
        match (lag, this.reach) {
            (Some(lag), Some(reach)) => format!(
                "no {unit} came after {} while {other} ran {} further: the decoder stopped",
                Timestamp(reach),
                Timestamp(lag)
            ),
            (Some(lag), None) => format!(
                "no {unit} was decoded while {other} ran {}: the decoder could not negotiate a format, or the stream is corrupt",
                Timestamp(lag)
            ),
            (None, _) => format!(
                "no {unit} was decoded: the decoder could not negotiate a format, or the stream is corrupt"
            ),
        }
    }

    /// Data of `branch` over `[start, end)` (stream time) arrived: whether it
    /// is usable (not [`MAX_JUMP`] past everything seen). Keeps the branch's
    /// reach and counts.
    fn admit(&mut self, branch: Branch, start: u64, end: u64) -> bool {
        let seen = [self.video.reach, self.audio.reach]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(0)
            .max(self.next_start.0)
            .max(self.outage_end);
        let state = self.branch_mut(branch);
        if start > seen.saturating_add(MAX_JUMP) {
            state.bad += 1;
            state.first_bad.get_or_insert(start);
            return false;
        }
        state.usable += 1;
        state.reach = Some(state.reach.map_or(end, |r| r.max(end)));
        true
    }

    /// Finds a branch that gives nothing usable: one that ended without
    /// usable data while the other had some, or that lags the other by
    /// more than `dead_branch`. A file's is ended (the stream goes on with
    /// the other alone); a live one's is reported until it gives data.
    fn check_branches(&mut self) {
        if self.origin.is_none() {
            return;
        }
        let live = self.settings.live;
        let limit = if live {
            self.settings.dead_branch_live
        } else {
            self.settings.dead_branch
        };
        for branch in [Branch::Video, Branch::Audio] {
            let (this, other) = self.pair(branch);
            if !this.present || !other.present {
                continue;
            }
            let lag = other
                .reach
                .unwrap_or(0)
                .saturating_sub(this.reach.unwrap_or(0));
            let behind = limit > 0 && lag > limit;
            let what = match &this.problem {
                // A live branch that gives data again is well.
                Some(_) if live && !behind => {
                    self.branch_mut(branch).problem = None;
                    continue;
                }
                Some(_) => continue,
                None if this.eos => {
                    if this.usable > 0 || other.usable == 0 {
                        continue;
                    }
                    self.nothing_usable(branch, None)
                }
                // A file's branch that ended is no sign: the demuxer may
                // deliver one track well ahead of the other near the end.
                None if behind && (live || !other.eos) => self.nothing_usable(branch, Some(lag)),
                None => continue,
            };
            let state = self.branch_mut(branch);
            state.problem = Some(BranchProblem {
                branch,
                what,
                ended: !live,
            });
            // A file's branch is ended: the other goes on alone.
            if !live {
                state.eos = true;
            }
        }
    }

    /// Before the origin: a file's branch that has given nothing at all
    /// while the other's data spans more than `dead_branch` is ended, so
    /// that the other's is not held for ever.
    fn check_silent_branches(&mut self) {
        let limit = self.settings.dead_branch;
        if self.settings.live || limit == 0 || !self.topology_known {
            return;
        }
        if self.pending_span() <= limit {
            return;
        }
        for branch in [Branch::Video, Branch::Audio] {
            let (this, other) = self.pair(branch);
            if this.present && !this.eos && this.first_pts.is_none() && other.first_pts.is_some() {
                let what = self.nothing_usable(branch, Some(self.pending_span()));
                let state = self.branch_mut(branch);
                state.problem = Some(BranchProblem {
                    branch,
                    what,
                    ended: true,
                });
                state.eos = true;
            }
        }
    }

    fn origin_settled(&self) -> bool {
        let any = self.video.first_pts.is_some() || self.audio.first_pts.is_some();
        if !any {
            return false;
        }
        if self.topology_known && self.video.settled() && self.audio.settled() {
            return true;
        }
        // A live branch that never starts must not hold the other back forever.
        self.settings.live && self.pending_span() > self.settings.max_skew
    }

    fn pending_span(&self) -> u64 {
        let mut lo = u64::MAX;
        let mut hi = 0;
        for input in &self.pending {
            let pts = match input {
                Input::Frame(f) => f.pts.0,
                Input::Audio(b) => b.pts.0 + sample_to_time(b.samples.len() as u64, AUDIO_RATE).0,
                _ => continue,
            };
            lo = lo.min(pts);
            hi = hi.max(pts);
        }
        hi.saturating_sub(lo)
    }

    fn fix_origin(&mut self) {
        let origin = [self.video.first_pts, self.audio.first_pts]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(0);
        self.origin = Some(origin);
        if self.settings.live {
            // Stream time zero of a live source is about now: the first
            // buffer has just arrived. (--start-time and creation times are
            // for files.)
            // The pipeline clock or the camera's reports say when the
            // buffers were captured; without them, it is now.
            self.utc_origin = self.clock_origin().or(Some(
                chrono::Utc::now()
                    .timestamp_nanos_opt()
                    .unwrap_or(self.settings.fallback_utc),
            ));
        }
    }

    /// UTC of stream time zero from the clock pair, once the origin is fixed.
    fn clock_origin(&self) -> Option<i64> {
        let (pts, utc, _) = self.clock?;
        let origin = self.origin?;
        let since = i64::try_from(pts).ok()? - i64::try_from(origin).ok()?;
        utc.checked_sub(since)
    }

    fn utc_origin(&mut self) -> i64 {
        *self.utc_origin.get_or_insert(
            self.settings
                .start_time
                .or(self.creation_time)
                .unwrap_or(self.settings.fallback_utc),
        )
    }

    fn apply(&mut self, input: Input) {
        let origin = self.origin.unwrap_or(0);
        match input {
            Input::Frame(mut f) => {
                self.stats.frames_in += 1;
                // A live branch that started before the origin was fixed without it.
                if f.pts.0 < origin {
                    self.stats.frames_late += 1;
                    return;
                }
                f.pts = Timestamp(f.pts.0 - origin);
                if f.pts < self.next_start {
                    self.stats.frames_late += 1;
                    return;
                }
                if !self.admit(Branch::Video, f.pts.0, f.pts.0.saturating_add(f.duration)) {
                    self.stats.bad_timestamps += 1;
                    return;
                }
                self.video_wm = Some(self.video_wm.map_or(f.pts, |w| w.max(f.pts)));
                self.video_end = self.video_end.max(f.pts.saturating_add(f.duration));
                let at = self.frames.partition_point(|q| q.pts <= f.pts);
                self.frames.insert(at, f);
            }
            Input::Audio(b) => {
                self.stats.audio_samples_in += b.samples.len() as u64;
                // Samples before the origin (a live branch that started late to
                // be seen) belong to no chunk: trimmed, like any overlap.
                let skip = if b.pts.0 < origin {
                    time_to_sample_nearest(Timestamp(origin - b.pts.0), AUDIO_RATE)
                        .min(b.samples.len() as u64)
                } else {
                    0
                };
                let rel = Timestamp(b.pts.0.saturating_sub(origin));
                let len = sample_to_time(b.samples.len() as u64, AUDIO_RATE).0;
                if !self.admit(Branch::Audio, rel.0, rel.0.saturating_add(len)) {
                    self.stats.bad_timestamps += 1;
                    return;
                }
                self.track.trimmed_before_origin += skip;
                let start = time_to_sample_nearest(rel, AUDIO_RATE);
                self.track.push(start, &b.samples[skip as usize..]);
            }
            Input::VideoExtent(end) => {
                let end = Timestamp(end.0.saturating_sub(origin));
                // Only past frames that reached sync: never before a chunk already out.
                if self.video_wm.is_some() && end > self.next_start {
                    self.video_end = self.video_end.max(end);
                }
            }
            Input::Outage { from, to } => {
                let (from, to) = (from.0.saturating_sub(origin), to.0.saturating_sub(origin));
                if to > from {
                    self.outages.push(Span::new(Timestamp(from), Timestamp(to)));
                }
                // A camera back after a long outage is not a jump.
                self.outage_end = self.outage_end.max(to);
            }
            Input::Topology { .. }
            | Input::CreationTime(_)
            | Input::Clock { .. }
            | Input::Eos(_)
            | Input::Undecodable { .. } => {}
        }
    }

    fn video_ready(&self, end: Timestamp) -> bool {
        self.video.ended() || self.video_wm.is_some_and(|w| w >= end)
    }

    /// Audio is ready past `end` once a sample after it arrived (or the branch
    /// ended), so that the chunk that ends the stream is known to be the last.
    fn audio_ready(&self, end: Timestamp) -> bool {
        self.audio.ended() || self.track.next() > time_to_sample(end, AUDIO_RATE)
    }

    /// Audio holds every sample up to `end`.
    fn audio_complete(&self, end: Timestamp) -> bool {
        self.track.next() >= time_to_sample(end, AUDIO_RATE)
    }

    /// Where the audio branch ended (before any tail padding), in samples.
    fn audio_end(&mut self) -> Option<u64> {
        if !(self.audio.present && self.audio.eos) {
            return None;
        }
        Some(*self.audio_end.get_or_insert(self.track.next()))
    }

    /// Whether a chunk ending at `end`, which pads past the end of the audio,
    /// can tell yet if that tail is longer than [`TAIL_TOLERANCE`].
    fn tail_known(&mut self, end: Timestamp) -> bool {
        match self.audio_end() {
            Some(a) if a < time_to_sample(end, AUDIO_RATE) && !self.video.ended() => self
                .video_wm
                .is_some_and(|w| w.0 > sample_to_time(a, AUDIO_RATE).0 + TAIL_TOLERANCE),
            _ => true,
        }
    }

    /// How far the stream runs past the end of its audio, as far as known.
    fn tail(&mut self) -> u64 {
        let Some(a) = self.audio_end() else { return 0 };
        let known = match self.end_fixed {
            Some(e) => e,
            None => self.video_wm.unwrap_or(Timestamp::ZERO),
        };
        known.0.saturating_sub(sample_to_time(a, AUDIO_RATE).0)
    }

    /// Where the stream ends, once every branch has ended.
    fn stream_end(&mut self) -> Timestamp {
        if let Some(e) = self.end_fixed {
            return e;
        }
        let audio_end = if self.audio.present {
            sample_to_time(self.audio_end().unwrap_or(self.track.next()), AUDIO_RATE)
        } else {
            Timestamp::ZERO
        };
        let end = self.video_end.max(audio_end).max(
            self.video_wm
                .map_or(Timestamp::ZERO, |w| w.saturating_add(1)),
        );
        *self.end_fixed.insert(end)
    }

    fn watermark(&self, branch: Branch) -> Timestamp {
        match branch {
            Branch::Video => self.video_wm.unwrap_or(Timestamp::ZERO),
            Branch::Audio => sample_to_time(self.track.next(), AUDIO_RATE),
        }
    }

    fn emit_ready(&mut self, out: &mut Vec<Chunk>) {
        if self.origin.is_none() {
            return;
        }
        for _ in 0..EMIT_BATCH {
            let start = self.next_start;
            let mut end = start.saturating_add(self.settings.hop);
            let mut flags = ChunkFlags::default();
            let video_ready = self.video_ready(end);
            let audio_ready = self.audio_ready(end);
            if self.video.ended() && self.audio.ended() {
                let stream_end = self.stream_end();
                if start >= stream_end {
                    self.done = true;
                    return;
                }
                if end >= stream_end {
                    end = stream_end;
                    flags.last = true;
                }
            } else if !(video_ready && audio_ready) {
                if !self.settings.live {
                    return;
                }
                let skew_limit = end.saturating_add(self.settings.max_skew);
                if !video_ready && audio_ready && self.watermark(Branch::Audio) >= skew_limit {
                    flags.video_missing = true;
                } else if !audio_ready && video_ready && self.watermark(Branch::Video) >= skew_limit
                {
                    flags.audio_missing = !self.audio_complete(end);
                } else {
                    return;
                }
            } else if !self.tail_known(end) {
                return;
            }
            let chunk = self.make_chunk(Span::new(start, end), flags);
            out.push(chunk);
            if flags.last {
                self.done = true;
                return;
            }
        }
    }

    /// `n` samples of silence, shared.
    fn silence(&mut self, n: usize) -> Arc<[f32]> {
        if self.silence.len() != n {
            self.silence = Arc::from(vec![0.0; n]);
        }
        self.silence.clone()
    }

    fn make_chunk(&mut self, span: Span, mut flags: ChunkFlags) -> Chunk {
        flags.reconnecting = self
            .outages
            .iter()
            .any(|o| o.start < span.end && span.start < o.end);
        let in_outage = self
            .outages
            .iter()
            .any(|o| o.start <= span.start && span.end <= o.end);
        self.outages.retain(|o| o.end > span.end);
        let mut frames = Vec::new();
        while self.frames.front().is_some_and(|f| f.pts < span.end) {
            if let Some(f) = self.frames.pop_front() {
                frames.push(f);
            }
        }
        let s0 = time_to_sample(span.start, AUDIO_RATE);
        let s1 = time_to_sample(span.end, AUDIO_RATE);
        let audio: Arc<[f32]> = if self.audio.present {
            if self.audio.ended() {
                let tail = self.tail();
                if self.track.pad_to(s1) > 0 && tail > TAIL_TOLERANCE {
                    flags.audio_missing = true;
                }
            }
            if in_outage && frames.is_empty() {
                // Silence shared by every chunk of the outage: a long one
                // costs no memory per chunk.
                flags.no_media = true;
                flags.audio_gap |= self.track.skip(s0, s1) && !flags.audio_missing;
                self.silence((s1 - s0) as usize)
            } else {
                let (samples, gap) = self.track.take(s0, s1);
                flags.audio_gap |= gap && !flags.audio_missing;
                samples.into()
            }
        } else {
            flags.no_media = in_outage && frames.is_empty();
            Arc::from(Vec::new())
        };
        let chunk = Chunk {
            stream: self.stream.clone(),
            seq: self.seq,
            span,
            frames,
            audio,
            first_sample: s0,
            flags,
            utc_origin: self.utc_origin(),
            pts_origin: self.origin.unwrap_or(0),
            has_audio: self.audio.present,
            has_video: self.video.present,
            video_end: (self.video.present && self.video.eos).then_some(self.video_end),
            audio_end: self.audio_end().map(|a| sample_to_time(a, AUDIO_RATE)),
            made_at: std::time::Instant::now(),
        };
        self.seq += 1;
        self.stats.chunks += 1;
        self.next_start = span.end;
        chunk
    }
}
