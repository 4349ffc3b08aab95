//! The synchroniser stage: a source's frames and audio in, [`Chunk`](crate::media::Chunk)s out.
//!
//! One thread per stream drains the source's channel at all times (stalling
//! one branch while waiting for the other would deadlock the demuxer) and
//! sends each chunk on as soon as every active branch's watermark has passed
//! its end. See `DESIGN.md`, "Chunks".

pub mod audio;
pub mod queue;
pub mod synchroniser;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use crossbeam_channel::Receiver;

use crate::error::Result;
use crate::media::{Branch, Chunk, Failure, FailureKind, Input, SourceMessage};
use crate::metrics::Metrics;
use crate::stage::{Context, End, Flow, Stage, spawn_stage};
use crate::stream::StreamStatus;
use crate::time::Timestamp;
pub use queue::{ChunkReceiver, ChunkSender, Paced, chunk_queue};
pub use synchroniser::{BranchProblem, DEAD_BRANCH_SKEWS, SyncSettings, SyncStats, Synchroniser};

/// Runs the synchroniser of one stream on its own thread.
pub fn spawn(
    stream: Arc<str>,
    settings: SyncSettings,
    input: Receiver<SourceMessage>,
    output: ChunkSender,
    metrics: &Arc<Metrics>,
    status: Arc<StreamStatus>,
) -> Result<JoinHandle<()>> {
    let stage = SyncStage {
        sync: Synchroniser::new(stream.clone(), settings),
        failure: None,
        reported: None,
        branch_failure: None,
        bad_timestamps: 0,
    };
    spawn_stage(stage, stream, input, output, metrics, status)
}

/// The synchroniser as a [`Stage`]: source messages in, chunks out.
struct SyncStage {
    sync: Synchroniser,
    /// The source's error, if it failed; chunks before it were all sent.
    failure: Option<Failure>,
    /// The branch problem last reported, and the first one of a file (its
    /// failure when it ends).
    reported: Option<BranchProblem>,
    branch_failure: Option<Failure>,
    bad_timestamps: u64,
}

impl Stage for SyncStage {
    type In = SourceMessage;
    type Out = Paced;
    const NAME: &'static str = "sync";

    fn counts(input: &SourceMessage) -> bool {
        matches!(input, SourceMessage::Input(_))
    }

    fn push(&mut self, msg: SourceMessage, out: &mut Vec<Paced>, cx: &Context) -> Result<Flow> {
        let mut ready = Vec::new();
        match msg {
            SourceMessage::Input(msg) => {
                if matches!(msg, Input::Frame(_)) {
                    cx.status.frames_in.fetch_add(1, Ordering::Relaxed);
                }
                self.sync.push(msg, &mut ready);
            }
            // Ended where it is: what was read is flushed as the last chunks;
            // the source's callbacks then find the channel closed and stop.
            SourceMessage::Stop => {
                // Stopped while its camera is down: the outage lasted until now.
                if let Some((from, to)) = cx.status.outage_until_now() {
                    self.sync.push(
                        Input::Outage {
                            from: Timestamp(from),
                            to: Timestamp(to),
                        },
                        &mut ready,
                    );
                    self.sync
                        .push(Input::VideoExtent(Timestamp(to)), &mut ready);
                }
                self.sync.finish(&mut ready)
            }
            SourceMessage::Failed(reason) => {
                self.failure = Some(reason);
                self.sync.finish(&mut ready);
            }
        }
        self.pace(ready, out);
        self.observe(cx);
        Ok(if self.sync.ended() {
            Flow::End
        } else {
            Flow::More
        })
    }

    /// A long gap makes many chunks: they leave a batch at a time, each
    /// waiting for room in the queue (files), so none pile up here.
    fn poll(&mut self, out: &mut Vec<Paced>, _cx: &Context) -> Result<()> {
        let mut ready = Vec::new();
        self.sync.poll(&mut ready);
        self.pace(ready, out);
        Ok(())
    }

    /// The source went away without saying why: flush what there is.
    fn finish(&mut self, out: &mut Vec<Paced>, cx: &Context) -> Result<()> {
        if !self.sync.ended() {
            let mut ready = Vec::new();
            self.sync.finish(&mut ready);
            self.pace(ready, out);
            self.observe(cx);
        }
        Ok(())
    }

    fn close(self, end: End, cx: &Context) -> Option<Failure> {
        let stats = self.sync.stats();
        if stats.frames_late > 0 {
            cx.metrics.dropped("late_frame", stats.frames_late);
        }
        let mut failure = self.failure.or(self.branch_failure);
        if end == End::DownstreamGone {
            failure = failure.or(Some(Failure::new(
                FailureKind::Other,
                "the encoders stopped",
            )));
        }
        let status = &cx.status;
        failure = failure.or_else(|| truncated(status, stats.end_pts));
        if failure.is_none() && stats.chunks == 0 && !status.stop_requested.load(Ordering::Relaxed)
        {
            failure = Some(Failure::new(
                FailureKind::Decode,
                format!(
                    "{}: no audio or video could be decoded from it; nothing to analyse",
                    status.source
                ),
            ));
        }
        failure
    }
}

impl SyncStage {
    fn pace(&self, ready: Vec<Chunk>, out: &mut Vec<Paced>) {
        let live = self.sync.is_live();
        out.extend(ready.into_iter().map(|chunk| Paced { chunk, live }));
    }

    /// Counts timestamps dropped and says when a branch goes bad or comes back.
    fn observe(&mut self, cx: &Context) {
        let stats = self.sync.stats();
        if stats.bad_timestamps > self.bad_timestamps {
            cx.metrics
                .dropped("bad_timestamp", stats.bad_timestamps - self.bad_timestamps);
            self.bad_timestamps = stats.bad_timestamps;
        }
        if self.sync.problem() == self.reported.as_ref() {
            return;
        }
        self.reported = self.sync.problem().cloned();
        let status = &cx.status;
        match &self.reported {
            Some(p) => {
                let message = branch_message(status, p);
                tracing::warn!(stream = %status.source, "{message}");
                cx.metrics.error(FailureKind::Decode.as_str());
                if p.ended && self.branch_failure.is_none() {
                    self.branch_failure = Some(Failure::new(FailureKind::Decode, message.clone()));
                }
                status.set_degraded(Some(message));
            }
            None => status.set_degraded(None),
        }
    }
}

/// Media that ends well before the duration its container declares was cut
/// short: the decoders often stop without an error, so it is checked here.
fn truncated(status: &StreamStatus, end: u64) -> Option<Failure> {
    if status.stop_requested.load(Ordering::Relaxed)
        || !status.duration_exact.load(Ordering::Relaxed)
    {
        return None;
    }
    let declared = status.duration.load(Ordering::Relaxed);
    let tolerance = (declared / 50).max(crate::time::SECOND);
    (declared > 0 && end + tolerance < declared).then(|| {
        Failure::new(
            FailureKind::Decode,
            format!(
                "{}: the media ends at {} but its container says it lasts {}: the file is truncated; what was read was kept",
                status.source,
                Timestamp(end),
                Timestamp(declared)
            ),
        )
    })
}

/// The one line that says what is wrong with a branch of the stream:
/// `cam1.mkv: video: no frame was decoded: … (MPEG-4 Video in Matroska); the
/// sound was analysed alone`.
fn branch_message(status: &StreamStatus, problem: &BranchProblem) -> String {
    let (name, other) = match problem.branch {
        Branch::Video => ("video", "the sound"),
        Branch::Audio => ("audio", "the picture"),
    };
    let media = status
        .media_names()
        .describe(problem.branch == Branch::Video)
        .map_or(String::new(), |m| format!(" ({m})"));
    let after = if problem.ended {
        format!("{other} was analysed alone")
    } else {
        format!("{other} is analysed alone until it comes back")
    };
    format!(
        "{}: {name}: {}{media}; {after}",
        status.source, problem.what
    )
}
