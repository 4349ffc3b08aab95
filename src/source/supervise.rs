//! Supervision of a live source: when a camera drops, stops sending
//! (stalls) or ends its stream, its pipeline is torn down and started
//! again with exponential backoff and jitter, for as long as the run
//! lasts. Stream time goes on across the outage (each new pipeline's
//! timestamps are shifted by the wall time since the first one started),
//! and the synchroniser is told the outage's span, so the chunks over it
//! are flagged `reconnecting` and fusion makes one `stream_gap` event of
//! it. Files are not supervised: their end is their end, their errors
//! final. One stream's supervisor touches nothing of another's.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};

use super::{Source, SourceSettings};
use crate::media::{Failure, FailureKind, Input, SourceMessage};
use crate::metrics::StageMetrics;
use crate::stream::{StreamState, StreamStatus};
use crate::time::Timestamp;

/// How a live source is kept up.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// No data for this long from a source that was sending: reconnect.
    pub stall: Duration,
    /// Longest wait between two attempts.
    pub backoff_max: Duration,
    /// Errors are retried (a network source); else only a live source's
    /// end or stall is.
    pub retry_errors: bool,
    /// Media that arrives before this moment is dropped: the source is
    /// connected ahead of the moment its analysis starts (a camera a
    /// cluster hands from one node to another, make-before-break).
    pub from: Option<std::time::SystemTime>,
}

/// First wait before reconnecting; doubled after each failed attempt.
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
/// A live source quiet this long is said to be stalled (until `stall`
/// passes and it is reconnected, or data comes back).
const STALLED: Duration = Duration::from_secs(2);

/// A file that has given data and then nothing for this many `stall`s,
/// with no end and no error, is stuck.
const FILE_STALLS: u32 = 3;
/// Messages between a pipeline and its supervisor, which only relays them
/// to the stream's queue: a few, since each may hold a frame.
const QUEUE: usize = 4;

/// The supervisor of one stream: joins like a [`Source`].
pub struct Supervised {
    thread: Option<JoinHandle<()>>,
    stop: Sender<()>,
}

impl Supervised {
    /// Runs `settings`' pipeline, forwarding what it sends to `tx`, and
    /// reconnects it when it is live and fails, stalls or ends.
    pub fn start(
        settings: SourceSettings,
        tx: Sender<SourceMessage>,
        status: Arc<StreamStatus>,
        metrics: StageMetrics,
        policy: Policy,
    ) -> std::io::Result<Supervised> {
        let (stop, stopped) = bounded(1);
        let thread = std::thread::Builder::new()
            .name(format!("supervise-{}", settings.name))
            .spawn(move || supervise(settings, tx, status, metrics, policy, stopped))?;
        Ok(Supervised {
            thread: Some(thread),
            stop,
        })
    }

    /// Stops the source (at once when `abandon`, else when its media ends).
    pub fn join(mut self, abandon: bool) {
        if abandon {
            let _ = self.stop.try_send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        let _ = self.stop.try_send(());
    }
}

/// Why a pipeline stopped.
enum Ended {
    /// For good: the media ended, the stream was stopped, or it failed and
    /// is not to be reconnected. Everything was forwarded.
    Done,
    /// A live source dropped: reconnect, saying why.
    Lost(Failure),
}

fn supervise(
    settings: SourceSettings,
    tx: Sender<SourceMessage>,
    status: Arc<StreamStatus>,
    metrics: StageMetrics,
    policy: Policy,
    stopped: Receiver<()>,
) {
    let first_start = Instant::now();
    let mut failures = 0u32;
    // Source time of the last data forwarded, and of the outage under way.
    let mut last_pts: Option<u64> = None;
    let mut outage: Option<(u64, String)> = None;
    let mut live = false;
    let mut last_data_at = Instant::now();
    loop {
        let offset = u64::try_from(first_start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        // The first pipeline keeps its own times; later ones are shifted to
        // follow on in stream time.
        let offset = if last_pts.is_some() || outage.is_some() {
            offset
        } else {
            0
        };
        if let Some(tap) = &settings.packets {
            tap.offset
                .store(offset, std::sync::atomic::Ordering::Relaxed);
        }
        let (pipe_tx, pipe_rx) = bounded(QUEUE);
        let ended = match Source::start(settings.clone(), pipe_tx, status.clone(), metrics.clone())
        {
            Ok(source) => {
                let mut run = Run {
                    rx: &pipe_rx,
                    tx: &tx,
                    stopped: &stopped,
                    status: &status,
                    offset,
                    live,
                    seen_data: false,
                    last_data: Instant::now(),
                    last_pts: &mut last_pts,
                    outage: &mut outage,
                    policy,
                    metrics: &metrics,
                };
                let ended = run.forward();
                live = run.live;
                // A pipeline that sent data worked: the backoff starts over.
                if run.seen_data {
                    last_data_at = run.last_data;
                    failures = 0;
                }
                // Whatever the pipeline still had to say was forwarded. Its
                // streaming threads may be blocked sending more: closing the
                // channel first releases them, so that it can stop.
                drop(pipe_rx);
                stop_within(source, &settings.name);
                super::release_freed_memory();
                ended
            }
            Err(e) if last_pts.is_some() || outage.is_some() => {
                Ended::Lost(Failure::new(FailureKind::Other, e.to_string()))
            }
            Err(e) => {
                let failure = Failure::new(FailureKind::Other, e.to_string());
                metrics.error(failure.kind.as_str());
                let _ = tx.send(SourceMessage::Failed(failure));
                Ended::Done
            }
        };
        let Ended::Lost(Failure {
            kind,
            message: reason,
        }) = ended
        else {
            return;
        };
        if status.stop_requested.load(Ordering::Relaxed) {
            return;
        }
        status.set_last_error(reason.clone());
        if outage.is_none() {
            tracing::warn!(stream = %settings.name, "{reason}; reconnecting");
            outage = Some((last_pts.unwrap_or(0), reason));
            // Stopped before it is back, the stream still records the outage.
            status.set_outage(Some((last_pts.unwrap_or(0), last_data_at)));
        }
        status.set_state(StreamState::Reconnecting);
        // One per lost pipeline, by what lost it: each is retried.
        metrics.error(kind.as_str());
        failures = failures.saturating_add(1);
        let wait = crate::backoff::backoff(BACKOFF_FIRST, failures, policy.backoff_max);
        // Waits, unless told to stop.
        if stopped.recv_timeout(wait).is_ok() {
            return;
        }
    }
}

/// How long a pipeline may take to stop before it is left behind.
const STOP_LIMIT: Duration = Duration::from_secs(5);

/// Stops `source`, waiting at most [`STOP_LIMIT`]: a streaming thread in a
/// read that does not return (a pipe whose writer went quiet, a hung
/// network disk) would hold the stream, and the run, for ever. Such a
/// pipeline is left to stop on its own, in a thread of its own.
fn stop_within(source: Source, name: &str) {
    let (done_tx, done_rx) = bounded::<()>(1);
    let spawned = std::thread::Builder::new()
        .name(format!("stop-{name}"))
        .spawn(move || {
            source.join(true);
            let _ = done_tx.send(());
        });
    // No thread to spare: the source was dropped with the closure, which
    // stops it here.
    if spawned.is_err() {
        return;
    }
    if done_rx.recv_timeout(STOP_LIMIT).is_err() {
        tracing::warn!(
            stream = %name,
            "its pipeline did not stop within {}: a read that does not return; it is left to stop on its own",
            humantime::format_duration(STOP_LIMIT)
        );
    }
}

/// One pipeline's life, forwarding its messages.
struct Run<'a> {
    rx: &'a Receiver<SourceMessage>,
    tx: &'a Sender<SourceMessage>,
    stopped: &'a Receiver<()>,
    status: &'a StreamStatus,
    offset: u64,
    live: bool,
    seen_data: bool,
    last_data: Instant,
    last_pts: &'a mut Option<u64>,
    outage: &'a mut Option<(u64, String)>,
    policy: Policy,
    metrics: &'a StageMetrics,
}

impl Run<'_> {
    fn forward(&mut self) -> Ended {
        let mut eos_branches = 0;
        let mut branches = 0;
        loop {
            if self.stopped.try_recv().is_ok() {
                return Ended::Done;
            }
            // Before the first data a slow connection may take a while; a
            // stall is only a stall once the source was sending. A file is
            // read as fast as the machine allows: silent three times as
            // long, with no end and no error, it is stuck.
            let wait = match (self.live, self.seen_data) {
                (true, true) => self.policy.stall,
                (false, true) => self.policy.stall.saturating_mul(FILE_STALLS),
                (_, false) => self.policy.stall.max(Duration::from_secs(20)),
            };
            // Told to stop, it stops at once (a file that ended waits here
            // for that): not at the next timeout.
            let next = crossbeam_channel::select! {
                recv(self.stopped) -> _ => return Ended::Done,
                recv(self.rx) -> m => m.map_err(|_| RecvTimeoutError::Disconnected),
                default(wait.min(Duration::from_millis(200))) => Err(RecvTimeoutError::Timeout),
            };
            let msg = match next {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    let quiet = self.last_data.elapsed();
                    if self.live && self.seen_data && quiet >= STALLED {
                        self.status.set_state(StreamState::Stalled);
                    }
                    if quiet >= wait && self.live {
                        return Ended::Lost(Failure::new(
                            FailureKind::Stall,
                            format!("no data for {}", humantime::format_duration(wait)),
                        ));
                    }
                    if quiet >= wait && !self.live {
                        // GStreamer was seen (about 1 run in 100 of an MP4
                        // header on an AVI body) to neither read a file nor
                        // say why; a file on a disk that hangs, or a pipe
                        // whose writer stops, stops mid-way the same: nothing
                        // would ever end it.
                        let failure = match *self.last_pts {
                            Some(pts) if self.seen_data => Failure::new(
                                FailureKind::Stall,
                                format!(
                                    "nothing more came out of it after {} of media for {}, with no end and no error from GStreamer; what came before is kept",
                                    Timestamp(pts),
                                    humantime::format_duration(wait)
                                ),
                            ),
                            _ => Failure::new(
                                FailureKind::Decode,
                                format!(
                                    "nothing came out of it in {} and GStreamer gave no reason; check that it is a media file and plays elsewhere",
                                    humantime::format_duration(wait)
                                ),
                            ),
                        };
                        if self.policy.retry_errors {
                            return Ended::Lost(failure);
                        }
                        self.metrics.error(failure.kind.as_str());
                        let _ = self.tx.send(SourceMessage::Failed(failure));
                        return Ended::Done;
                    }
                    continue;
                }
                // The pipeline's threads are gone: its media ended.
                Err(RecvTimeoutError::Disconnected) => {
                    return if self.live {
                        Ended::Lost(ended_its_stream())
                    } else {
                        Ended::Done
                    };
                }
            };
            match msg {
                SourceMessage::Input(input) => {
                    let input = match input {
                        Input::Topology { video, audio, live } => {
                            self.live = live;
                            branches = usize::from(video) + usize::from(audio);
                            Input::Topology { video, audio, live }
                        }
                        Input::Eos(branch) => {
                            eos_branches += 1;
                            if self.live {
                                // A live source's end is a drop: the stream
                                // goes on with the next connection.
                                if eos_branches >= branches.max(1) {
                                    return Ended::Lost(ended_its_stream());
                                }
                                continue;
                            }
                            Input::Eos(branch)
                        }
                        Input::Frame(_) | Input::Audio(_) if self.before_start() => continue,
                        Input::Frame(mut f) => {
                            f.pts = self.shift(f.pts);
                            self.data(f.pts);
                            Input::Frame(f)
                        }
                        Input::Audio(mut b) => {
                            b.pts = self.shift(b.pts);
                            self.data(b.pts);
                            Input::Audio(b)
                        }
                        Input::VideoExtent(t) => Input::VideoExtent(self.shift(t)),
                        Input::Clock { pts, utc, ntp } => Input::Clock {
                            pts: self.shift(pts),
                            utc,
                            ntp,
                        },
                        other => other,
                    };
                    if self.tx.send(SourceMessage::Input(input)).is_err() {
                        return Ended::Done;
                    }
                }
                SourceMessage::Failed(reason) if self.live || self.policy.retry_errors => {
                    return Ended::Lost(reason);
                }
                SourceMessage::Failed(failure) => {
                    // Final: counted once, here, by its kind.
                    self.metrics.error(failure.kind.as_str());
                    let _ = self.tx.send(SourceMessage::Failed(failure));
                    return Ended::Done;
                }
                other => {
                    let _ = self.tx.send(other);
                    return Ended::Done;
                }
            }
        }
    }

    /// Data arriving now is before the analysis starts ([`Policy::from`]):
    /// it counts as data for stalls, and is dropped.
    fn before_start(&mut self) -> bool {
        let before = self
            .policy
            .from
            .is_some_and(|t| std::time::SystemTime::now() < t);
        if before {
            self.seen_data = true;
            self.last_data = Instant::now();
        }
        before
    }

    fn shift(&self, t: Timestamp) -> Timestamp {
        Timestamp(t.0.saturating_add(self.offset))
    }

    /// Data arrived at `pts`: the outage (if any) ends here.
    fn data(&mut self, pts: Timestamp) {
        if matches!(
            self.status.state(),
            StreamState::Starting | StreamState::Stalled
        ) {
            self.status.set_state(StreamState::Running);
        }
        if let Some((from, reason)) = self.outage.take() {
            tracing::info!(reason = %reason, "reconnected");
            let _ = self.tx.send(SourceMessage::Input(Input::Outage {
                from: Timestamp(from),
                to: pts,
            }));
            self.status.set_state(StreamState::Running);
            self.status.set_outage(None);
        }
        self.seen_data = true;
        self.last_data = Instant::now();
        *self.last_pts = Some(self.last_pts.map_or(pts.0, |p| p.max(pts.0)));
    }
}

fn ended_its_stream() -> Failure {
    Failure::new(FailureKind::Eos, "the source ended its stream")
}
