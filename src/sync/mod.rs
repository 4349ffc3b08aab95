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

use crate::error::{Error, Result};
use crate::media::{Branch, Failure, FailureKind, Input, SourceMessage};
use crate::metrics::StageMetrics;
use crate::stream::StreamStatus;
use crate::time::Timestamp;
pub use queue::{ChunkReceiver, ChunkSender, chunk_queue};
pub use synchroniser::{BranchProblem, DEAD_BRANCH_SKEWS, SyncSettings, SyncStats, Synchroniser};

/// How a stream's synchroniser ended.
#[derive(Debug)]
pub struct SyncOutcome {
    pub stats: SyncStats,
    /// The source's error, if it failed; chunks before it were all sent.
    pub failure: Option<Failure>,
}

/// Runs the synchroniser of one stream on its own thread.
pub fn spawn(
    stream: Arc<str>,
    settings: SyncSettings,
    input: Receiver<SourceMessage>,
    output: ChunkSender,
    metrics: StageMetrics,
    status: Arc<StreamStatus>,
) -> Result<JoinHandle<SyncOutcome>> {
    std::thread::Builder::new()
        .name(format!("sync-{stream}"))
        .spawn(move || {
            let mut outcome = run(
                Synchroniser::new(stream, settings),
                input,
                &output,
                &metrics,
                &status,
            );
            if outcome.failure.is_none() {
                outcome.failure = truncated(&status, outcome.stats.end_pts);
            }
            if outcome.failure.is_none()
                && outcome.stats.chunks == 0
                && !status.stop_requested.load(Ordering::Relaxed)
            {
                outcome.failure = Some(Failure::new(
                    FailureKind::Decode,
                    format!(
                        "{}: no audio or video could be decoded from it; nothing to analyse",
                        status.source
                    ),
                ));
            }
            // Before `output` closes, so that fusion sees the failure when it ends.
            if let Some(failure) = &outcome.failure {
                status.fail(failure.message.clone());
            }
            drop(output);
            outcome
        })
        .map_err(|e| Error::io("cannot start the synchroniser thread", e))
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

fn run(
    mut sync: Synchroniser,
    input: Receiver<SourceMessage>,
    output: &ChunkSender,
    metrics: &StageMetrics,
    status: &StreamStatus,
) -> SyncOutcome {
    let mut ready = Vec::new();
    let mut failure: Option<Failure> = None;
    // The branch problem last reported, and the first one of a file (its
    // failure when it ends).
    let mut reported: Option<BranchProblem> = None;
    let mut branch_failure: Option<Failure> = None;
    let mut bad_timestamps = 0;
    loop {
        match input.recv() {
            Ok(SourceMessage::Input(msg)) => {
                metrics.received();
                if matches!(msg, Input::Frame(_)) {
                    status.frames_in.fetch_add(1, Ordering::Relaxed);
                }
                let timer = metrics.timer();
                sync.push(msg, &mut ready);
                drop(timer);
            }
            // Ended where it is: what was read is flushed as the last chunks;
            // the source's callbacks then find the channel closed and stop.
            Ok(SourceMessage::Stop) => {
                // Stopped while its camera is down: the outage lasted until now.
                if let Some((from, to)) = status.outage_until_now() {
                    sync.push(
                        Input::Outage {
                            from: Timestamp(from),
                            to: Timestamp(to),
                        },
                        &mut ready,
                    );
                    sync.push(Input::VideoExtent(Timestamp(to)), &mut ready);
                }
                sync.finish(&mut ready)
            }
            Ok(SourceMessage::Failed(reason)) => {
                failure = Some(reason);
                sync.finish(&mut ready);
            }
            // The source went away without saying why: flush what there is.
            Err(_) => sync.finish(&mut ready),
        }
        metrics.queue_depth(input.len());
        let stats = sync.stats();
        if stats.bad_timestamps > bad_timestamps {
            metrics.dropped("bad_timestamp", stats.bad_timestamps - bad_timestamps);
            bad_timestamps = stats.bad_timestamps;
        }
        if sync.problem() != reported.as_ref() {
            reported = sync.problem().cloned();
            match &reported {
                Some(p) => {
                    let message = branch_message(status, p);
                    tracing::warn!(stream = %status.source, "{message}");
                    metrics.error(FailureKind::Decode.as_str());
                    if p.ended && branch_failure.is_none() {
                        branch_failure = Some(Failure::new(FailureKind::Decode, message.clone()));
                    }
                    status.set_degraded(Some(message));
                }
                None => status.set_degraded(None),
            }
        }
        // A long gap makes many chunks: they leave a batch at a time, each
        // waiting for room in the queue (files), so none pile up here.
        loop {
            for chunk in ready.drain(..) {
                let Ok(drops) = output.send(chunk, sync.is_live()) else {
                    // Downstream is gone (it failed); nothing more can be delivered.
                    return SyncOutcome {
                        stats: sync.stats(),
                        failure: failure.or(Some(Failure::new(
                            FailureKind::Other,
                            "the encoders stopped",
                        ))),
                    };
                };
                if drops.frames > 0 {
                    metrics.dropped("frame_backlog", drops.frames);
                }
                if drops.chunks > 0 {
                    metrics.dropped("chunk_backlog", drops.chunks);
                }
                metrics.sent();
            }
            sync.poll(&mut ready);
            if ready.is_empty() {
                break;
            }
        }
        if sync.ended() {
            break;
        }
    }
    let stats = sync.stats();
    if stats.frames_late > 0 {
        metrics.dropped("late_frame", stats.frames_late);
    }
    SyncOutcome {
        stats,
        failure: failure.or(branch_failure),
    }
}
