//! Sinks: where records go. The local event log is written first and made
//! durable; the others follow in the order the pipeline lists them.

pub mod jsonl;
pub mod stdout;
pub mod store;
pub mod subtitles;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Receiver;

use crate::config::SinksConfig;
use crate::error::{Error, Result};
use crate::fuse::Batch;
use crate::metrics::Metrics;
use crate::record::Record;

/// A destination for records.
///
/// `send` takes the records one chunk of one stream completed, in order; it
/// returns once they are as durable as the sink promises. An error is counted
/// and reported; the records stay in the local log.
#[async_trait::async_trait]
pub trait Sink: Send {
    fn name(&self) -> &'static str;
    async fn send(&mut self, batch: &[Record]) -> Result<()>;
    async fn flush(&mut self) -> Result<()>;
}

/// How to print a line to the terminal without tearing progress bars; an
/// error (a closed pipe) fails the stdout sink, not the run.
pub type Printer = Arc<dyn Fn(String) -> std::io::Result<()> + Send + Sync>;

/// Builds the sinks a pipeline lists, writing files under `out_dir`.
pub fn build(
    config: &SinksConfig,
    out_dir: &Path,
    streams: &[String],
    printer: Printer,
) -> Result<Vec<Box<dyn Sink>>> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if let Some(c) = &config.jsonl {
        sinks.push(Box::new(jsonl::JsonlSink::open(&out_dir.join(&c.path))?));
    }
    if let Some(c) = &config.store {
        let keep = store::Retention {
            max_age: c.max_age,
            max_bytes: c.max_size_mib.map(|m| m.saturating_mul(1 << 20)),
        };
        sinks.push(Box::new(store::StoreSink::open(
            &out_dir.join(&c.path),
            keep,
        )?));
    }
    if let Some(c) = &config.webvtt {
        sinks.push(Box::new(subtitles::SubtitleSink::create(
            subtitles::Format::WebVtt,
            &out_dir.join(&c.path),
            streams,
        )?));
    }
    if let Some(c) = &config.srt {
        sinks.push(Box::new(subtitles::SubtitleSink::create(
            subtitles::Format::Srt,
            &out_dir.join(&c.path),
            streams,
        )?));
    }
    if let Some(c) = &config.stdout {
        sinks.push(Box::new(stdout::StdoutSink::new(
            c.captions,
            streams.len() > 1,
            printer,
        )));
    }
    Ok(sinks)
}

/// What the sinks wrote, for the summary.
#[derive(Debug, Default)]
pub struct SinkReport {
    /// Records by `kind_label` (`caption`, `event:motion`…).
    pub by_kind: BTreeMap<String, u64>,
    pub records: u64,
    /// One line per sink that failed.
    pub errors: Vec<String>,
}

/// Runs every sink on one thread, batch by batch, until all fusers are done.
pub fn spawn(
    mut sinks: Vec<Box<dyn Sink>>,
    input: Receiver<Batch>,
    metrics: Arc<Metrics>,
) -> Result<JoinHandle<SinkReport>> {
    std::thread::Builder::new()
        .name("sinks".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    return SinkReport {
                        errors: vec![format!("cannot start the sink runtime: {e}")],
                        ..Default::default()
                    };
                }
            };
            runtime.block_on(run(&mut sinks, input, metrics))
        })
        .map_err(|e| Error::io("cannot start the sink thread", e))
}

async fn run(
    sinks: &mut [Box<dyn Sink>],
    input: Receiver<Batch>,
    metrics: Arc<Metrics>,
) -> SinkReport {
    let mut report = SinkReport::default();
    let mut stage = HashMap::new();
    let mut failed = vec![false; sinks.len()];
    for batch in input.iter() {
        let m = stage
            .entry(batch.stream.clone())
            .or_insert_with(|| metrics.stage("sink", &batch.stream));
        m.received_n(batch.records.len() as u64);
        m.queue_depth(input.len());
        let timer = m.timer();
        for (i, sink) in sinks.iter_mut().enumerate() {
            // A sink other than the log that failed once is left alone: it
            // must not slow down or take down the others.
            if failed[i] && sink.name() != "jsonl" {
                continue;
            }
            if let Err(e) = sink.send(&batch.records).await {
                m.error(sink.name());
                if !failed[i] {
                    failed[i] = true;
                    report.errors.push(e.to_string());
                }
            }
        }
        drop(timer);
        m.sent_n(batch.records.len() as u64);
        for r in &batch.records {
            *report.by_kind.entry(r.kind_label()).or_default() += 1;
        }
        report.records += batch.records.len() as u64;
    }
    for (i, sink) in sinks.iter_mut().enumerate() {
        if failed[i] {
            continue;
        }
        if let Err(e) = sink.flush().await {
            report.errors.push(e.to_string());
        }
    }
    report
}
