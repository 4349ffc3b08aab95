//! Wires a validated pipeline into running stages, waits for them, and drains
//! everything on the way out: source → sync → encode → fuse → sink.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;

use crate::config::{PipelineConfig, SourceConfig};
use crate::error::Result;
use crate::fuse::{Batch, Fuser};
use crate::metrics::Metrics;
use crate::sink::{Printer, SinkReport};
use crate::source::SourceSettings;
use crate::stream::{StreamState, StreamStatus};
use crate::sync::{SyncOutcome, SyncSettings};

/// Messages a source may queue before its callbacks block (back-pressure).
const SOURCE_QUEUE: usize = 64;
/// Chunks queued between stages of one stream.
const CHUNK_QUEUE: usize = 4;
/// Record batches queued for the sinks: small, so that records reach the
/// durable log within about a chunk (fusion waits when the log is slow).
const SINK_QUEUE: usize = 16;

/// How to run, beyond the pipeline file.
pub struct RunOptions {
    pub out_dir: PathBuf,
    /// UTC of stream time zero for every stream (`--start-time`), ns since the epoch.
    pub start_time: Option<i64>,
    pub printer: Printer,
}

/// The streams of a run, as the server and the progress display see them.
pub type StreamTable = Arc<Mutex<BTreeMap<String, Arc<StreamStatus>>>>;

/// How one stream went.
#[derive(Debug)]
pub struct StreamReport {
    pub name: String,
    pub failure: Option<String>,
    pub chunks: u64,
    pub frames: u64,
    pub audio_samples: u64,
    /// Stream time processed, ns.
    pub media: u64,
}

/// How the run went.
#[derive(Debug)]
pub struct RunReport {
    pub run: String,
    pub streams: Vec<StreamReport>,
    pub sinks: SinkReport,
    /// How each live sink delivered.
    pub deliveries: Vec<crate::sink::outbox::DeliveryReport>,
    pub wall: Duration,
    pub dropped: u64,
}

struct Running {
    name: String,
    status: Arc<StreamStatus>,
    source: Option<crate::source::supervise::Supervised>,
    /// Where to tell the synchroniser to stop (Ctrl-C).
    stop: Option<crossbeam_channel::Sender<crate::source::SourceMessage>>,
    sync: Option<JoinHandle<SyncOutcome>>,
    encode: Option<JoinHandle<()>>,
    fuse: Option<JoinHandle<()>>,
}

/// Runs `config` until every stream has ended (or `shutdown` is set, which
/// ends every stream as if its media had ended). `tick` is called about ten
/// times a second with the stream table, for progress displays.
pub fn run(
    config: &PipelineConfig,
    options: &RunOptions,
    metrics: &Arc<Metrics>,
    table: &StreamTable,
    shutdown: &AtomicBool,
    tick: &mut dyn FnMut(&StreamTable),
) -> Result<RunReport> {
    let started = Instant::now();
    let run_id: Arc<str> = ulid::Ulid::new().to_string().into();
    let fallback_utc = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    crate::source::init()?;
    // Loads every model before any media flows: a missing or mismatched one
    // stops the run here. Dropped at the end, after the streams' encoders.
    let workers = crate::encode::Workers::start(&config.encoders, &config.runtime, metrics)?;
    let built = crate::sink::build(
        &config.sinks,
        &options.out_dir,
        &config
            .sources
            .iter()
            .map(|s| s.name.clone())
            .collect::<Vec<_>>(),
        options.printer.clone(),
    )?;
    let outbox = match &built.store {
        Some((path, committed)) if !built.live.is_empty() => Some(
            crate::sink::outbox::Outbox::start(path, built.live, committed, metrics)?,
        ),
        _ => None,
    };
    let (batch_tx, batch_rx) = bounded::<Batch>(SINK_QUEUE);
    let sink_thread = crate::sink::spawn(built.sinks, batch_rx, metrics.clone())?;

    let (done_tx, done_rx) = crossbeam_channel::unbounded::<Arc<str>>();
    let mut running = Vec::new();
    for source in &config.sources {
        let status = Arc::new(StreamStatus::new(crate::source::redact_uri(&source.uri)));
        lock(table).insert(source.name.clone(), status.clone());
        let mut r = Running {
            name: source.name.clone(),
            status: status.clone(),
            source: None,
            stop: None,
            sync: None,
            encode: None,
            fuse: None,
        };
        let settings = SyncSettings {
            hop: config.sync.hop,
            max_skew: config.sync.max_skew,
            live: false,
            start_time: options.start_time,
            fallback_utc,
        };
        let wiring = Wiring {
            run_id: &run_id,
            metrics,
            batch_tx: &batch_tx,
            done_tx: &done_tx,
            workers: &workers,
            out_dir: &options.out_dir,
        };
        if let Err(reason) = start_stream(&mut r, source, config, settings, &wiring) {
            status.fail(reason.clone());
            let mut fuser = Fuser::new(run_id.clone(), source.name.as_str().into(), config);
            fuser.set_utc_origin(options.start_time.unwrap_or(fallback_utc));
            let records = fuser.finish(Some(&reason));
            let _ = batch_tx.send(Batch {
                stream: source.name.as_str().into(),
                records,
            });
        }
        running.push(r);
    }
    drop(batch_tx);

    tracing::debug!("every stream started");
    let mut stopping = false;
    let mut ended: Vec<Arc<str>> = Vec::new();
    loop {
        tick(table);
        if !stopping && shutdown.load(Ordering::Relaxed) {
            stopping = true;
            for r in running.iter_mut() {
                r.status.stop_requested.store(true, Ordering::Relaxed);
                if let Some(stop) = r.stop.take() {
                    let _ = stop.send(crate::source::SourceMessage::Stop);
                }
            }
        }
        for r in running.iter_mut() {
            let said_done = ended.iter().any(|n| **n == *r.name);
            if r.fuse
                .as_ref()
                .is_some_and(|f| said_done || f.is_finished())
            {
                tracing::debug!(stream = %r.name, "fusion ended; joining the stream");
                finish_stream(r);
                tracing::debug!(stream = %r.name, "stream joined");
            }
        }
        if running.iter().all(|r| r.fuse.is_none()) {
            break;
        }
        // Woken as soon as a stream's fusion ends (its thread is then about
        // to exit, so joining it does not wait), else ten times a second.
        ended.clear();
        if let Ok(name) = done_rx.recv_timeout(Duration::from_millis(100)) {
            ended.push(name);
            ended.extend(done_rx.try_iter());
        }
    }
    tick(table);
    let sinks = sink_thread.join().unwrap_or_else(|_| SinkReport {
        errors: vec![
            "the sink thread stopped unexpectedly: the event log may lack the last records".into(),
        ],
        ..Default::default()
    });
    tracing::debug!("sinks joined");
    // The live sinks deliver what they still owe, each for up to its drain.
    let deliveries = outbox.map(|o| o.finish()).unwrap_or_default();
    let streams = running
        .iter()
        .map(|r| StreamReport {
            name: r.name.clone(),
            failure: r.status.failure(),
            chunks: r.status.chunks.load(Ordering::Relaxed),
            frames: r.status.frames.load(Ordering::Relaxed),
            audio_samples: r.status.audio_samples.load(Ordering::Relaxed),
            media: r.status.media_done.load(Ordering::Relaxed),
        })
        .collect();
    Ok(RunReport {
        run: run_id.to_string(),
        streams,
        sinks,
        deliveries,
        wall: started.elapsed(),
        dropped: metrics.dropped_total(),
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What every stream is wired to.
struct Wiring<'a> {
    run_id: &'a Arc<str>,
    metrics: &'a Arc<Metrics>,
    batch_tx: &'a crossbeam_channel::Sender<Batch>,
    done_tx: &'a crossbeam_channel::Sender<Arc<str>>,
    workers: &'a crate::encode::Workers,
    out_dir: &'a std::path::Path,
}

fn start_stream(
    r: &mut Running,
    source: &SourceConfig,
    config: &PipelineConfig,
    sync_settings: SyncSettings,
    w: &Wiring,
) -> std::result::Result<(), String> {
    let (run_id, metrics) = (w.run_id, w.metrics);
    let name: Arc<str> = source.name.as_str().into();
    let uri = crate::source::resolve_uri(&source.uri)?;
    crate::source::check_input(&uri)?;
    let (src_tx, src_rx) = bounded(SOURCE_QUEUE);
    let (chunk_tx, chunk_rx) = crate::sync::chunk_queue();
    let (enc_tx, enc_rx) = bounded(CHUNK_QUEUE);
    let err = |e: crate::error::Error| e.to_string();
    r.sync = Some(
        crate::sync::spawn(
            name.clone(),
            sync_settings,
            src_rx,
            chunk_tx,
            metrics.stage("sync", &name),
            r.status.clone(),
        )
        .map_err(err)?,
    );
    let encoders = w.workers.build(&config.encoders, source.fps).map_err(err)?;
    r.encode = Some(
        crate::encode::spawn(
            name.clone(),
            encoders,
            chunk_rx,
            enc_tx,
            metrics.stage("encode", &name),
            r.status.clone(),
        )
        .map_err(err)?,
    );
    let mut fuser = Fuser::new(run_id.clone(), name.clone(), config);
    if let Some(s) = &config.snapshots {
        let lag = fuser.lag();
        fuser.take_pictures(crate::fuse::pictures::Pictures::new(
            w.out_dir,
            &name,
            w.run_id,
            s,
            config.privacy.blur_faces,
            lag,
        ));
    }
    r.fuse = Some(
        crate::fuse::spawn(
            fuser,
            r.status.clone(),
            enc_rx,
            w.batch_tx.clone(),
            metrics.stage("fuse", &name),
            w.done_tx.clone(),
        )
        .map_err(err)?,
    );
    let settings = SourceSettings {
        name: name.clone(),
        uri,
        fps: (source.fps, 1),
        width: Some(source.width),
        height: source.height,
        thumbnail_width: config.encoders.motion.as_ref().map(|m| m.scale_width),
        rtsp_tcp: source.transport == crate::config::RtspTransport::Tcp,
        rtsp_latency_ms: u32::try_from(source.latency / 1_000_000).unwrap_or(u32::MAX),
    };
    r.status.set_state(StreamState::Running);
    r.stop = Some(src_tx.clone());
    let policy = crate::source::supervise::Policy {
        stall: Duration::from_nanos(source.stall),
        backoff_max: Duration::from_nanos(source.retry_max),
        // A network source's errors are worth another try; a file's are not.
        retry_errors: !settings.uri.starts_with("file://"),
    };
    match crate::source::supervise::Supervised::start(
        settings,
        src_tx.clone(),
        r.status.clone(),
        metrics.stage("source", &name),
        policy,
    ) {
        Ok(s) => r.source = Some(s),
        // The stream's own threads are running: they record the failure,
        // so that its records come from one fuser only.
        Err(e) => {
            let _ = src_tx.send(crate::source::SourceMessage::Failed(e.to_string()));
        }
    }
    Ok(())
}

/// Joins a stream's threads once its fusion has finished.
fn finish_stream(r: &mut Running) {
    r.stop = None;
    if let Some(f) = r.fuse.take() {
        let _ = f.join();
    }
    if let Some(e) = r.encode.take() {
        let _ = e.join();
    }
    if let Some(s) = r.sync.take() {
        let _ = s.join();
    }
    if let Some(s) = r.source.take() {
        s.join(true);
    }
    r.status.set_state(StreamState::Ended);
}
