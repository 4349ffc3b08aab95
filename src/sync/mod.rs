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
use std::thread::JoinHandle;

use crossbeam_channel::Receiver;

use crate::error::{Error, Result};
use crate::metrics::StageMetrics;
use crate::source::SourceMessage;
use crate::stream::StreamStatus;
pub use queue::{ChunkReceiver, ChunkSender, chunk_queue};
pub use synchroniser::{Branch, Input, SyncSettings, SyncStats, Synchroniser};

/// How a stream's synchroniser ended.
#[derive(Debug)]
pub struct SyncOutcome {
    pub stats: SyncStats,
    /// The source's error, if it failed; chunks before it were all sent.
    pub failure: Option<String>,
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
                metrics,
                &status,
            );
            if outcome.failure.is_none() {
                outcome.failure = truncated(&status, outcome.stats.end_pts);
            }
            if outcome.failure.is_none()
                && outcome.stats.chunks == 0
                && !status
                    .stop_requested
                    .load(std::sync::atomic::Ordering::Relaxed)
            {
                outcome.failure = Some(format!(
                    "{}: no audio or video could be decoded from it; nothing to analyse",
                    status.source
                ));
            }
            // Before `output` closes, so that fusion sees the failure when it ends.
            if let Some(reason) = &outcome.failure {
                status.fail(reason.clone());
            }
            drop(output);
            outcome
        })
        .map_err(|e| Error::io("cannot start the synchroniser thread", e))
}

/// Media that ends well before the duration its container declares was cut
/// short: the decoders often stop without an error, so it is checked here.
fn truncated(status: &StreamStatus, end: u64) -> Option<String> {
    if status
        .stop_requested
        .load(std::sync::atomic::Ordering::Relaxed)
        || !status
            .duration_exact
            .load(std::sync::atomic::Ordering::Relaxed)
    {
        return None;
    }
    let declared = status.duration.load(std::sync::atomic::Ordering::Relaxed);
    let tolerance = (declared / 50).max(crate::time::SECOND);
    (declared > 0 && end + tolerance < declared).then(|| {
        format!(
            "{}: the media ends at {} but its container says it lasts {}: the file is truncated; what was read was kept",
            status.source,
            crate::time::Timestamp(end),
            crate::time::Timestamp(declared)
        )
    })
}

fn run(
    mut sync: Synchroniser,
    input: Receiver<SourceMessage>,
    output: &ChunkSender,
    metrics: StageMetrics,
    status: &StreamStatus,
) -> SyncOutcome {
    let mut ready = Vec::new();
    let mut failure = None;
    loop {
        match input.recv() {
            Ok(SourceMessage::Input(msg)) => {
                metrics.received();
                if matches!(msg, Input::Frame(_)) {
                    status
                        .frames_in
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
                            from: crate::time::Timestamp(from),
                            to: crate::time::Timestamp(to),
                        },
                        &mut ready,
                    );
                    sync.push(Input::VideoExtent(crate::time::Timestamp(to)), &mut ready);
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
        for chunk in ready.drain(..) {
            let Ok(drops) = output.send(chunk, sync.is_live()) else {
                // Downstream is gone (it failed); nothing more can be delivered.
                return SyncOutcome {
                    stats: sync.stats(),
                    failure: failure.or(Some("the encoders stopped".into())),
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
        if sync.ended() {
            break;
        }
    }
    let stats = sync.stats();
    if stats.frames_late > 0 {
        metrics.dropped("late_frame", stats.frames_late);
    }
    SyncOutcome { stats, failure }
}
