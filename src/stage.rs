//! One driver for the stages of a stream: synchroniser, encoders, fusion.
//!
//! A stage says what it does with one input ([`Stage::push`]), what it
//! gives when asked again ([`Stage::poll`]), what it flushes when its input
//! ends ([`Stage::finish`]) and what it found wrong with the stream when it
//! stops ([`Stage::close`]). [`spawn_stage`] owns the rest, the same for
//! every stage: its thread, its channels, its [`StageMetrics`] steps
//! (received, queue depth, timer, sent, errors) and the rule that a failure
//! is marked on the stream *before* the stage's output closes, so that the
//! next stage sees it when its input ends.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::error::{Error, Result};
use crate::media::Failure;
use crate::metrics::{Metrics, StageMetrics};
use crate::stream::StreamStatus;

/// Whether a stage wants more input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    More,
    /// Done: what it holds is flushed by [`Stage::finish`] and its input
    /// is left alone (a stop request).
    End,
}

/// How a stage's work ended, for [`Stage::close`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Its input ended (or it said [`Flow::End`]) and all it made was sent.
    Finished,
    /// The next stage is gone: nothing more could be delivered.
    DownstreamGone,
    /// It failed; the error is already marked on the stream.
    Failed,
}

/// What a stage sees besides its input: its metrics and its stream.
pub struct Context {
    pub stream: Arc<str>,
    pub metrics: StageMetrics,
    pub status: Arc<StreamStatus>,
}

/// One stage of one stream, driven by [`spawn_stage`].
pub trait Stage: Send + 'static {
    type In: Send + 'static;
    type Out: Send + 'static;

    /// The stage's name: its metrics' `stage` label and its thread's name.
    const NAME: &'static str;
    /// The error kind counted when it fails.
    const ERROR_KIND: &'static str = "stage";

    /// Handles one input, appending what it completes to `out`.
    fn push(&mut self, input: Self::In, out: &mut Vec<Self::Out>, cx: &Context) -> Result<Flow>;

    /// What became ready since (time passed, work finished elsewhere); called
    /// after each push's output is sent, until it gives nothing.
    fn poll(&mut self, _out: &mut Vec<Self::Out>, _cx: &Context) -> Result<()> {
        Ok(())
    }

    /// The input ended: everything still held.
    fn finish(&mut self, out: &mut Vec<Self::Out>, cx: &Context) -> Result<()>;

    /// Whether `input` is data, counted as received (not a control message).
    fn counts(_input: &Self::In) -> bool {
        true
    }

    /// How many items `out` counts as sent (fusion's batches count records).
    fn weight(_out: &Self::Out) -> u64 {
        1
    }

    /// The stage stops; returns what it found wrong with the stream, which
    /// is marked on it before the output closes.
    fn close(self, _end: End, _cx: &Context) -> Option<Failure>
    where
        Self: Sized,
    {
        None
    }
}

/// Where a stage's input comes from.
pub trait Inlet<T>: Send + 'static {
    /// The next input, waiting for one; `None` once the sender is gone.
    fn next(&self) -> Option<T>;
    /// How many wait.
    fn depth(&self) -> usize;
}

/// The next stage is gone.
#[derive(Debug, PartialEq, Eq)]
pub struct Gone;

/// Where a stage's output goes.
pub trait Outlet<T>: Send + 'static {
    /// Sends `item`, waiting for room or dropping what the queue's policy
    /// drops (counted on `metrics`).
    fn put(&self, item: T, metrics: &StageMetrics) -> std::result::Result<(), Gone>;
}

impl<T: Send + 'static> Inlet<T> for Receiver<T> {
    fn next(&self) -> Option<T> {
        self.recv().ok()
    }

    fn depth(&self) -> usize {
        self.len()
    }
}

impl<T: Send + 'static> Outlet<T> for Sender<T> {
    fn put(&self, item: T, _metrics: &StageMetrics) -> std::result::Result<(), Gone> {
        self.send(item).map_err(|_| Gone)
    }
}

/// Runs `stage` of stream `stream` on its own thread, input to output.
pub fn spawn_stage<S: Stage>(
    stage: S,
    stream: Arc<str>,
    input: impl Inlet<S::In>,
    output: impl Outlet<S::Out>,
    metrics: &Arc<Metrics>,
    status: Arc<StreamStatus>,
) -> Result<JoinHandle<()>> {
    let cx = Context {
        metrics: metrics.stage(S::NAME, &stream),
        stream: stream.clone(),
        status,
    };
    std::thread::Builder::new()
        .name(format!("{}-{stream}", S::NAME))
        .spawn(move || drive(stage, &input, output, &cx))
        .map_err(|e| {
            Error::io(
                format!("cannot start the {} thread of {stream}", S::NAME),
                e,
            )
        })
}

fn drive<S: Stage>(
    mut stage: S,
    input: &impl Inlet<S::In>,
    output: impl Outlet<S::Out>,
    cx: &Context,
) {
    let end = match pump(&mut stage, input, &output, cx) {
        Ok(end) => end,
        Err(e) => {
            cx.metrics.error(S::ERROR_KIND);
            cx.status.fail(e.to_string());
            End::Failed
        }
    };
    if let Some(failure) = stage.close(end, cx) {
        cx.status.fail(failure.message);
    }
    // Only now: the next stage sees the failure when its input ends.
    drop(output);
}

fn pump<S: Stage>(
    stage: &mut S,
    input: &impl Inlet<S::In>,
    output: &impl Outlet<S::Out>,
    cx: &Context,
) -> Result<End> {
    let mut out = Vec::new();
    while let Some(item) = input.next() {
        if S::counts(&item) {
            cx.metrics.received();
        }
        cx.metrics.queue_depth(input.depth());
        let timer = cx.metrics.timer();
        let flow = stage.push(item, &mut out, cx)?;
        drop(timer);
        let delivered = deliver(stage, &mut out, output, cx)?;
        cx.metrics.cpu(None, crate::cpu::since_last());
        if !delivered {
            return Ok(End::DownstreamGone);
        }
        if flow == Flow::End {
            break;
        }
    }
    stage.finish(&mut out, cx)?;
    let delivered = deliver(stage, &mut out, output, cx)?;
    cx.metrics.cpu(None, crate::cpu::since_last());
    Ok(if delivered {
        End::Finished
    } else {
        End::DownstreamGone
    })
}

/// Sends `out`, then what [`Stage::poll`] gives, until it gives nothing.
/// False once the next stage is gone.
fn deliver<S: Stage>(
    stage: &mut S,
    out: &mut Vec<S::Out>,
    output: &impl Outlet<S::Out>,
    cx: &Context,
) -> Result<bool> {
    loop {
        for item in out.drain(..) {
            let n = S::weight(&item);
            if output.put(item, &cx.metrics).is_err() {
                return Ok(false);
            }
            cx.metrics.sent_n(n);
        }
        stage.poll(out, cx)?;
        if out.is_empty() {
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::{bounded, unbounded};

    /// Doubles numbers; fails on 13; holds the last one until its input ends.
    struct Doubler {
        held: Option<u32>,
    }

    impl Stage for Doubler {
        type In = u32;
        type Out = u32;
        const NAME: &'static str = "double";
        const ERROR_KIND: &'static str = "unlucky";

        fn push(&mut self, n: u32, out: &mut Vec<u32>, _cx: &Context) -> Result<Flow> {
            if n == 13 {
                return Err(Error::Invalid("unlucky 13".into()));
            }
            out.extend(self.held.replace(n * 2));
            Ok(if n == 99 { Flow::End } else { Flow::More })
        }

        fn finish(&mut self, out: &mut Vec<u32>, _cx: &Context) -> Result<()> {
            out.extend(self.held.take());
            Ok(())
        }

        fn close(self, end: End, _cx: &Context) -> Option<Failure> {
            (end == End::DownstreamGone)
                .then(|| Failure::new(crate::media::FailureKind::Other, "nobody listens"))
        }
    }

    /// Runs a `Doubler` over `inputs`: what it sent, the stream's failure
    /// (as it was when the output closed, if `listen`), and the metrics.
    fn run(inputs: &[u32], listen: bool) -> (Vec<u32>, Option<String>, String) {
        let metrics = Metrics::new();
        let status = Arc::new(StreamStatus::new("cam"));
        let (in_tx, in_rx) = unbounded();
        let (out_tx, out_rx) = bounded(1);
        for &n in inputs {
            in_tx.send(n).unwrap();
        }
        drop(in_tx);
        let probe = status.clone();
        let listener = listen.then(|| {
            std::thread::spawn(move || {
                let got: Vec<u32> = out_rx.iter().collect();
                (got, probe.failure())
            })
        });
        let h = spawn_stage(
            Doubler { held: None },
            "cam".into(),
            in_rx,
            out_tx,
            &metrics,
            status.clone(),
        )
        .unwrap();
        h.join().unwrap();
        let (got, failure) = match listener {
            Some(l) => l.join().unwrap(),
            None => (Vec::new(), status.failure()),
        };
        (got, failure, metrics.render())
    }

    #[test]
    fn a_stage_is_driven_to_its_end_and_counted() {
        let (got, failure, text) = run(&[1, 2, 3], true);
        assert_eq!(got, [2, 4, 6]);
        assert_eq!(failure, None);
        assert!(
            text.contains(r#"vigil_received_total{stage="double",stream="cam"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"vigil_sent_total{stage="double",stream="cam"} 3"#),
            "{text}"
        );
    }

    #[test]
    fn a_failure_is_marked_before_the_output_closes() {
        let (got, failure, text) = run(&[1, 2, 13, 4], true);
        assert_eq!(
            got,
            [2],
            "nothing after the error; the held 4 is not flushed"
        );
        assert_eq!(
            failure.as_deref(),
            Some("invalid configuration: unlucky 13"),
            "seen when the output closed"
        );
        assert!(text.contains(r#"kind="unlucky""#), "{text}");
    }

    #[test]
    fn a_stage_that_says_end_is_flushed_and_leaves_its_input() {
        let (got, _, _) = run(&[1, 99, 5], true);
        assert_eq!(got, [2, 198]);
    }

    #[test]
    fn a_gone_output_is_reported_by_close() {
        let (_, failure, _) = run(&[1, 2, 3, 4, 5], false);
        assert_eq!(failure.as_deref(), Some("nobody listens"));
    }
}
