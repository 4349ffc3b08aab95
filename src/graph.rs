//! Wires a validated pipeline into running stages, waits for them, and drains
//! everything on the way out: source → sync → encode → fuse → sink.
//!
//! A [`Graph`] holds what every stream shares (the models' inference
//! workers, the sinks, the live sinks' outbox) and the streams themselves,
//! which can be attached and detached while the others run: `vigil run`
//! attaches the pipeline's sources and waits for them to end; `vigil serve`
//! attaches and detaches them on request. Starting a stream only spawns its
//! threads (its source connects on its own supervisor thread), and a
//! stream's threads are joined on a thread of their own once its fusion has
//! ended, so neither ever waits on another stream.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};

use crate::config::{PipelineConfig, SourceConfig};
use crate::error::{Error, Result};
use crate::fuse::{Batch, Fuser};
use crate::lock::Locked;
use crate::metrics::Metrics;
use crate::sink::{Printer, SinkReport};
use crate::source::SourceSettings;
use crate::stream::{StreamState, StreamStatus, StreamTable};
use crate::sync::SyncSettings;

/// Messages a source may queue before its callbacks block (back-pressure),
/// at most; fewer for large frames ([`source_queue`]).
const SOURCE_QUEUE: usize = 64;
/// Bytes of frames a source may queue: 6 frames of 640×480. Frames are
/// most of a stream's memory, and a few in hand keep the synchroniser busy.
const SOURCE_QUEUE_BYTES: u64 = 6 * 640 * 480 * 3;

/// How many messages a source of `width` × `height` (4:3 when unknown)
/// frames may queue: [`SOURCE_QUEUE`], fewer so that its frames stay
/// within [`SOURCE_QUEUE_BYTES`], never fewer than 4.
fn source_queue(width: u32, height: Option<u32>) -> usize {
    let w = u64::from(width.max(1));
    let h = height.map_or(w * 3 / 4, u64::from).max(1);
    let n = SOURCE_QUEUE_BYTES / (w * h * 3);
    usize::try_from(n)
        .unwrap_or(SOURCE_QUEUE)
        .clamp(4, SOURCE_QUEUE)
}
/// Chunks queued between stages of one stream (with their frames).
const CHUNK_QUEUE: usize = 2;
/// Packets a live source's recorder may fall behind by (about a minute of
/// 25 fps video with its sound) before the source drops them.
const LIVE_PACKETS: usize = 4096;
/// Record batches queued for the sinks: small, so that records reach the
/// durable log within about a chunk (fusion waits when the log is slow).
const SINK_QUEUE: usize = 16;
/// Detached streams whose figures the final report keeps (the latest).
const GONE_KEPT: usize = 1024;

/// How to run, beyond the pipeline file.
pub struct RunOptions {
    pub out_dir: PathBuf,
    /// UTC of stream time zero for every stream (`--start-time`), ns since the epoch.
    pub start_time: Option<i64>,
    pub printer: Printer,
}

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
    let mut graph = Graph::start(config, options, metrics, table)?;
    for source in &config.sources {
        graph.attach(source)?;
    }
    tracing::debug!("every stream started");
    while graph.active() > 0 {
        tick(table);
        if shutdown.load(Ordering::Relaxed) {
            graph.stop_all();
        }
        graph.poll(Duration::from_millis(100));
    }
    tick(table);
    Ok(graph.finish())
}

/// How long a fusion thread that said it is done may take to return
/// before the graph polls again.
const DONE_TO_RETURN: Duration = Duration::from_millis(50);

/// How long a stream whose fusion ended (every record and clip of it out)
/// may take to tear its media down before it is left to finish on its
/// own: an RTSP client can wait long on a camera that stopped answering,
/// and `vigil serve` must still stop (or detach it) in time.
const TEARDOWN_WAIT: Duration = Duration::from_secs(10);

/// One attached stream: its threads, until they are joined.
struct Running {
    /// The run its records carry.
    run: Arc<str>,
    config: SourceConfig,
    status: Arc<StreamStatus>,
    /// Where to tell the synchroniser to stop.
    stop: Option<Sender<crate::media::SourceMessage>>,
    threads: Option<Threads>,
    /// Joining the threads, once fusion ended, since when.
    reaper: Option<(JoinHandle<()>, Instant)>,
    /// Detached: forgotten (and taken out of the table) once joined.
    detached: bool,
    /// Joined: nothing of it runs any more.
    done: bool,
    /// Frames before this moment are not analysed (a camera handed over
    /// from another node of a cluster, which analyses them).
    from: Option<std::time::SystemTime>,
}

/// How a cluster's camera is started on this node ([`Graph::attach_with`]).
#[derive(Clone, Debug, Default)]
pub struct Handover {
    /// Analyse from this moment on; frames before it are dropped.
    pub from: Option<std::time::SystemTime>,
    /// It was not analysed since then: recorded as a `stream_gap`.
    pub gap: Option<MovedGap>,
}

/// A camera's gap while it moved between nodes: from the old node's last
/// renewal of its lease to now.
#[derive(Clone, Debug)]
pub struct MovedGap {
    /// ms since the Unix epoch.
    pub since_ms: i64,
    pub from_node: String,
    pub to_node: String,
}

impl MovedGap {
    /// Its `stream_gap` event, start and end, in a run of its own (stream
    /// time 0 is where the gap began, so that `utc` says so).
    fn records(&self, stream: &str, until_ns: i64) -> Vec<crate::record::Record> {
        use crate::record::Phase;
        let since_ns = self.since_ms.saturating_mul(1_000_000);
        let span =
            crate::time::Timestamp(u64::try_from(until_ns.saturating_sub(since_ns)).unwrap_or(0));
        let mut maker = crate::fuse::RecordMaker::new(
            Arc::from(ulid::Ulid::new().to_string()),
            Arc::from(stream),
        );
        maker.utc_origin = since_ns;
        let mut details = serde_json::Map::new();
        details.insert("from_node".into(), self.from_node.clone().into());
        details.insert("to_node".into(), self.to_node.clone().into());
        details.insert(
            "reason".into(),
            format!(
                "node {} stopped renewing the camera's lease; node {} took it over",
                self.from_node, self.to_node
            )
            .into(),
        );
        let event = format!("{stream}/stream_gap/moved");
        let zero = crate::time::Timestamp::ZERO;
        [(Phase::Start, None), (Phase::End, Some(span))]
            .into_iter()
            .map(|(phase, end)| {
                let mut r = maker.event(
                    &event,
                    "stream_gap",
                    phase,
                    zero,
                    end,
                    1.0,
                    None,
                    details.clone(),
                );
                if let crate::record::Record::Event(e) = &mut r {
                    e.labels = vec!["moved".into()];
                }
                r
            })
            .collect()
    }
}

#[derive(Default)]
struct Threads {
    source: Option<crate::source::supervise::Supervised>,
    sync: Option<JoinHandle<()>>,
    encode: Option<JoinHandle<()>>,
    fuse: Option<JoinHandle<()>>,
}

/// The running streams and what they share.
pub struct Graph {
    config: PipelineConfig,
    run_id: Arc<str>,
    /// What the disk guard lets the snapshot writers write.
    disk: Arc<crate::disk::DiskGate>,
    start_time: Option<i64>,
    out_dir: PathBuf,
    metrics: Arc<Metrics>,
    table: StreamTable,
    /// Dropped in `finish`, after every stream's encoders.
    workers: Option<crate::encode::Workers>,
    batch_tx: Option<Sender<Batch>>,
    sink_thread: Option<JoinHandle<SinkReport>>,
    outbox: Option<crate::sink::outbox::Outbox>,
    store: Option<crate::sink::store::StoreHandle>,
    /// The streams the MQTT sink announces to Home Assistant, if it does.
    discovery: Option<crate::sink::mqtt::discovery::Catalog>,
    /// Fusion threads say here that they ended; reapers, that they joined.
    done_tx: Sender<Arc<str>>,
    done_rx: Receiver<Arc<str>>,
    reaped_tx: Sender<()>,
    reaped_rx: Receiver<()>,
    streams: Vec<Running>,
    /// Every name attached so far.
    named: std::collections::HashSet<String>,
    /// Reports of streams detached and forgotten.
    gone: Vec<StreamReport>,
    started: Instant,
}

impl Graph {
    /// Loads every model and opens every sink; no stream runs yet.
    pub fn start(
        config: &PipelineConfig,
        options: &RunOptions,
        metrics: &Arc<Metrics>,
        table: &StreamTable,
    ) -> Result<Graph> {
        let started = Instant::now();
        crate::source::init()?;
        // Loads every model before any media flows: a missing or mismatched
        // one stops the run here.
        let workers = crate::encode::Workers::start(
            &config.encoders.resolved(&options.out_dir),
            &config.runtime,
            metrics,
        )?;
        let disk = Arc::new(crate::disk::DiskGate::default());
        let discovery = crate::sink::mqtt::discovery::Catalog::for_pipeline(config);
        // On a node of a cluster, MQTT's status is the node's own.
        let mut sinks = config.sinks.clone();
        if let (Some(m), Some(c)) = (sinks.mqtt.as_mut(), &config.cluster) {
            m.node = c.node_name().ok();
        }
        let mut built = crate::sink::build(
            &sinks,
            &options.out_dir,
            &config
                .sources
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>(),
            options.printer.clone(),
            &disk,
            discovery.as_ref(),
        )?;
        let store = built
            .store
            .as_ref()
            .map(|(path, committed)| crate::sink::store::StoreHandle {
                path: path.clone(),
                committed: Some(committed.clone()),
            });
        if let Some((path, _)) = &built.store
            && config.sinks.store.as_ref().is_some_and(|s| s.index)
        {
            built.live.push(crate::search::indexer::live_sink(path)?);
        }
        let outbox = match &built.store {
            Some((path, committed)) if !built.live.is_empty() => Some(
                crate::sink::outbox::Outbox::start(path, built.live, committed, metrics)?,
            ),
            _ => None,
        };
        let run_id: Arc<str> = ulid::Ulid::new().to_string().into();
        let guard = (config.disk.min_free_mib > 0).then(|| {
            crate::sink::retention::guard::DiskGuard::new(
                options.out_dir.clone(),
                config.disk.min_free_mib.saturating_mul(1 << 20),
                run_id.clone(),
                disk.clone(),
            )
        });
        let (batch_tx, batch_rx) = bounded::<Batch>(SINK_QUEUE);
        let sink_thread = crate::sink::spawn(built.sinks, batch_rx, metrics.clone(), guard)?;
        let (done_tx, done_rx) = unbounded();
        let (reaped_tx, reaped_rx) = unbounded();
        Ok(Graph {
            config: config.clone(),
            run_id,
            disk,
            start_time: options.start_time,
            out_dir: options.out_dir.clone(),
            metrics: metrics.clone(),
            table: table.clone(),
            workers: Some(workers),
            batch_tx: Some(batch_tx),
            sink_thread: Some(sink_thread),
            outbox,
            store,
            discovery,
            done_tx,
            done_rx,
            reaped_tx,
            reaped_rx,
            streams: Vec::new(),
            named: Default::default(),
            gone: Vec::new(),
            started,
        })
    }

    /// The streams announced to Home Assistant, when the MQTT sink does
    /// discovery: every stream attached is announced; the caller says which
    /// are no longer wanted ([`Catalog::withdraw`]), since a stream detached
    /// may only have moved to another node.
    ///
    /// [`Catalog::withdraw`]: crate::sink::mqtt::discovery::Catalog::withdraw
    pub fn discovery(&self) -> Option<&crate::sink::mqtt::discovery::Catalog> {
        self.discovery.as_ref()
    }

    /// The run's id, in every record's `run`.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The event store the records go to, when the pipeline has one.
    pub fn store(&self) -> Option<crate::sink::store::StoreHandle> {
        self.store.clone()
    }

    /// Whether a stream of that name is attached (running or ended, not
    /// detached).
    pub fn is_attached(&self, name: &str) -> bool {
        self.streams
            .iter()
            .any(|r| !r.detached && r.config.name == name)
    }

    /// Why stream `name` failed to start, if it did (it is attached, and
    /// ended at once).
    pub fn failure(&self, name: &str) -> Option<String> {
        let r = self
            .streams
            .iter()
            .find(|r| !r.detached && r.config.name == name)?;
        (r.status.state() == StreamState::Failed)
            .then(|| r.status.failure())
            .flatten()
    }

    /// The pipeline the streams share (encoders, fusion, sinks).
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// The configuration of each stream attached and not yet forgotten.
    pub fn sources(&self) -> impl Iterator<Item = &SourceConfig> {
        self.streams
            .iter()
            .filter(|r| !r.detached)
            .map(|r| &r.config)
    }

    /// Streams whose threads are not all joined yet.
    pub fn active(&self) -> usize {
        self.streams.iter().filter(|r| !r.done).count()
    }

    /// Starts a stream. A name already attached is refused; a source that
    /// cannot start is recorded as the stream's failure (its records say
    /// why), not returned.
    pub fn attach(&mut self, source: &SourceConfig) -> Result<()> {
        self.attach_with(source, Handover::default())
    }

    /// Starts a stream as [`attach`](Self::attach) does, from a moment on
    /// and with a gap before it, as a cluster hands it over.
    pub fn attach_with(&mut self, source: &SourceConfig, handover: Handover) -> Result<()> {
        if self.is_attached(&source.name) {
            return Err(Error::Invalid(format!(
                "a stream named `{}` is already attached: detach it first, or choose another name",
                source.name
            )));
        }
        // Its fields were checked when it was read; zones, lines and rules
        // may name streams not attached yet, so the pipeline's own check
        // (every stream named is a source) does not apply here.
        //
        // A name attached before in this run starts a run of its own: its
        // record ids start again, and (`run`, `id`) must stay unique.
        let run = if self.named.insert(source.name.clone()) {
            self.run_id.clone()
        } else {
            Arc::from(ulid::Ulid::new().to_string())
        };
        let status = Arc::new(StreamStatus::new(crate::secret::redact_url(&source.uri)));
        self.table.insert(source.name.clone(), status.clone());
        if let Some(d) = &self.discovery {
            d.announce(&source.name);
        }
        let mut r = Running {
            run: run.clone(),
            config: source.clone(),
            status: status.clone(),
            stop: None,
            threads: Some(Threads::default()),
            reaper: None,
            detached: false,
            done: false,
            from: handover.from,
        };
        if let (Some(gap), Some(tx)) = (&handover.gap, &self.batch_tx) {
            let until = handover.from.map_or_else(now_utc, |t| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            });
            let _ = tx.send(Batch {
                stream: source.name.as_str().into(),
                records: gap.records(&source.name, until),
            });
        }
        if let Err(reason) = self.start_stream(&mut r) {
            status.fail(reason.clone());
            let mut fuser = Fuser::new(run, source.name.as_str().into(), &self.config);
            fuser.set_utc_origin(self.start_time.unwrap_or_else(now_utc));
            let records = fuser.finish(Some(&reason));
            if let Some(tx) = &self.batch_tx {
                let _ = tx.send(Batch {
                    stream: source.name.as_str().into(),
                    records,
                });
            }
            r.threads = None;
            r.done = true;
            status.set_state(StreamState::Failed);
        }
        self.streams.push(r);
        Ok(())
    }

    /// Ends a stream as if its media had ended (what was read is fused and
    /// recorded), then forgets it. False when no stream has that name.
    pub fn detach(&mut self, name: &str) -> bool {
        let Some(r) = self
            .streams
            .iter_mut()
            .find(|r| !r.detached && r.config.name == name)
        else {
            return false;
        };
        r.detached = true;
        stop(r);
        if let Some(d) = &self.discovery {
            d.leave(name);
        }
        if r.done {
            self.table.remove(name);
        }
        true
    }

    /// Ends every stream as if its media had ended.
    pub fn stop_all(&mut self) {
        for r in self.streams.iter_mut() {
            stop(r);
        }
    }

    /// Waits up to `wait` for a stream's fusion to end, then hands the
    /// threads of every stream whose fusion ended to a reaper, and forgets
    /// detached streams once joined.
    pub fn poll(&mut self, wait: Duration) {
        let mut done: Vec<Arc<str>> = Vec::new();
        crossbeam_channel::select! {
            recv(self.done_rx) -> name => done.extend(name),
            recv(self.reaped_rx) -> _ => {}
            default(wait) => {}
        }
        done.extend(self.done_rx.try_iter());
        while self.reaped_rx.try_recv().is_ok() {}
        // A fusion says it is done as the last thing its thread does: wait
        // the moment it takes to return, not for the next poll. (By name,
        // a stream restarted under it may be running too: only a finished
        // thread is reaped.)
        let deadline = Instant::now() + DONE_TO_RETURN;
        while !done.is_empty() && Instant::now() < deadline {
            let returned = self.streams.iter().any(|r| {
                done.iter().any(|n| **n == *r.config.name)
                    && r.threads
                        .as_ref()
                        .and_then(|t| t.fuse.as_ref())
                        .is_some_and(|f| f.is_finished())
            });
            if returned {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        for r in self.streams.iter_mut() {
            let fused = r
                .threads
                .as_ref()
                .and_then(|t| t.fuse.as_ref())
                .is_some_and(|f| f.is_finished());
            if fused && r.reaper.is_none() {
                let threads = Arc::new(Mutex::new(r.threads.take()));
                let (status, reaped) = (r.status.clone(), self.reaped_tx.clone());
                r.stop = None;
                let joined = {
                    let threads = threads.clone();
                    let name = r.config.name.clone();
                    move || {
                        tracing::debug!(stream = %name, "fusion ended; joining the stream");
                        if let Some(t) = threads.locked().take() {
                            join(t);
                        }
                        status.set_state(if status.stop_requested.load(Ordering::Relaxed) {
                            StreamState::Stopped
                        } else {
                            StreamState::Ended
                        });
                        let _ = reaped.send(());
                    }
                };
                let spawned = std::thread::Builder::new()
                    .name(format!("reap-{}", r.config.name))
                    .spawn(joined.clone());
                match spawned {
                    Ok(h) => r.reaper = Some((h, Instant::now())),
                    Err(e) => {
                        // Joined here then: slower for the others, never stuck.
                        tracing::warn!("cannot start a thread to join a stream: {e}");
                        joined();
                        r.done = true;
                    }
                }
            }
            if r.reaper.as_ref().is_some_and(|(h, _)| h.is_finished()) {
                if let Some((h, _)) = r.reaper.take() {
                    let _ = h.join();
                }
                r.done = true;
            } else if r
                .reaper
                .as_ref()
                .is_some_and(|(_, since)| since.elapsed() > TEARDOWN_WAIT)
            {
                // Its records are all out: only its media is still being
                // torn down. Not waited for any longer (the thread goes on).
                tracing::warn!(
                    stream = %r.config.name,
                    "its media did not stop within {TEARDOWN_WAIT:?} of its last record; left to stop on its own"
                );
                r.reaper = None;
                r.status
                    .set_state(if r.status.stop_requested.load(Ordering::Relaxed) {
                        StreamState::Stopped
                    } else {
                        StreamState::Ended
                    });
                r.done = true;
            }
        }
        let table = &self.table;
        let gone = &mut self.gone;
        let metrics = &self.metrics;
        self.streams.retain(|r| {
            let forget = r.detached && r.done;
            if forget {
                // A stream of the same name may have been attached since.
                if table.remove_if_same(&r.config.name, &r.status) {
                    metrics.forget_stream(&r.config.name);
                }
                // A daemon's detached streams: the last ones are reported.
                if gone.len() >= GONE_KEPT {
                    gone.remove(0);
                }
                gone.push(report(r));
            }
            !forget
        });
    }

    /// Waits for every stream to end (they must have been stopped or be
    /// ending), then for the sinks and the live sinks' drain.
    pub fn finish(mut self) -> RunReport {
        while self.active() > 0 {
            self.poll(Duration::from_millis(100));
        }
        drop(self.batch_tx.take());
        let sinks = self
            .sink_thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_else(|| SinkReport {
                errors: vec![
                    "the sink thread stopped unexpectedly: the event log may lack the last records"
                        .into(),
                ],
                ..Default::default()
            });
        tracing::debug!("sinks joined");
        // The live sinks deliver what they still owe, each for up to its drain.
        let deliveries = self.outbox.take().map(|o| o.finish()).unwrap_or_default();
        if self.config.sinks.store.as_ref().is_some_and(|s| s.index)
            && let Err(e) = crate::sink::final_retention(&self.config.sinks, &self.out_dir)
        {
            tracing::warn!("the store's last retention pass failed: {e}");
        }
        drop(self.workers.take());
        let mut streams = std::mem::take(&mut self.gone);
        streams.extend(self.streams.iter().map(report));
        RunReport {
            run: self.run_id.to_string(),
            streams,
            sinks,
            deliveries,
            wall: self.started.elapsed(),
            dropped: self.metrics.dropped_total(),
        }
    }

    fn start_stream(&self, r: &mut Running) -> std::result::Result<(), String> {
        let source = &r.config;
        let config = &self.config;
        let metrics = &self.metrics;
        let name: Arc<str> = source.name.as_str().into();
        let uri = crate::source::preflight(source)?;
        let (Some(batch_tx), Some(workers), Some(threads)) =
            (&self.batch_tx, &self.workers, r.threads.as_mut())
        else {
            return Err("the pipeline is shutting down".into());
        };
        let sync_settings = SyncSettings {
            hop: config.sync.hop.nanos(),
            max_skew: config.sync.max_skew.nanos(),
            dead_branch: config
                .sync
                .max_skew
                .nanos()
                .saturating_mul(crate::sync::DEAD_BRANCH_SKEWS),
            dead_branch_live: source.stall.nanos(),
            live: false,
            start_time: self.start_time,
            // A file attached while others run starts now, not when they did.
            fallback_utc: now_utc(),
        };
        let (src_tx, src_rx) = bounded(source_queue(source.width, source.height));
        let (chunk_tx, chunk_rx) = crate::sync::chunk_queue();
        let (enc_tx, enc_rx) = bounded(CHUNK_QUEUE);
        let err = |e: crate::error::Error| e.to_string();
        threads.sync = Some(
            crate::sync::spawn(
                name.clone(),
                sync_settings,
                src_rx,
                chunk_tx,
                metrics,
                r.status.clone(),
            )
            .map_err(err)?,
        );
        let mut encoders = workers.build(&config.encoders, source).map_err(err)?;
        encoders.keep_pixels = config.snapshots.is_some();
        threads.encode = Some(
            crate::encode::spawn(
                name.clone(),
                encoders,
                chunk_rx,
                enc_tx,
                metrics,
                r.status.clone(),
            )
            .map_err(err)?,
        );
        let mut fuser = Fuser::new(r.run.clone(), name.clone(), config);
        if let Some(s) = &config.snapshots {
            let lag = fuser.lag();
            fuser.take_pictures(
                crate::fuse::pictures::Pictures::new(
                    &self.out_dir,
                    &name,
                    &r.run,
                    s,
                    config.privacy,
                    lag,
                )
                .gated(self.disk.clone()),
            );
        }
        let mut packets = None;
        if let Some(rc) = &config.recording {
            let relative = rc.path.join(&*name).join(&*r.run);
            let settings = crate::recording::ClipSettings {
                folder: self.out_dir.join(&relative),
                relative,
                pre_roll: rc.pre_roll.nanos(),
                post_roll: rc.post_roll.nanos(),
                max_clip: rc.max_clip.nanos(),
                lag: fuser.lag(),
            };
            // A file's clips are cut from the file itself; a live source's
            // from the packets it gives.
            let feed = match crate::source::uri::file_path(&uri) {
                Some(path) => crate::recording::Feed::File(
                    crate::recording::FileFeed::open(&path).map_err(err)?,
                ),
                None => {
                    let (tx, feed) = crate::recording::Feed::live(LIVE_PACKETS);
                    packets = Some(crate::source::tap::PacketTap {
                        tx,
                        offset: Default::default(),
                        dropped: Default::default(),
                    });
                    feed
                }
            };
            let mut recorder =
                crate::recording::Recorder::new(settings, feed).gated(self.disk.clone());
            if rc.continuous {
                recorder = recorder.continuous(crate::recording::SegmentSettings {
                    folder: self.out_dir.join(crate::config::SEGMENTS).join(&*name),
                    length: rc.segment.nanos(),
                });
            }
            fuser.take_clips(crate::fuse::clips::Clips::new(recorder, rc));
        }
        threads.fuse = Some(
            crate::fuse::spawn(
                fuser,
                r.status.clone(),
                enc_rx,
                batch_tx.clone(),
                metrics,
                self.done_tx.clone(),
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
            rtsp_latency_ms: u32::try_from(source.latency.nanos() / 1_000_000).unwrap_or(u32::MAX),
            ca_file: source.ca_file.clone(),
            decode_threads: source.decode_threads,
            packets,
            // Half the synchroniser's dead-branch window: a branch that is
            // alive never lags far enough to be taken for dead.
            pace_window: config
                .sync
                .max_skew
                .nanos()
                .saturating_mul(crate::sync::DEAD_BRANCH_SKEWS)
                / 2,
        };
        // Running from its first data on (the supervisor says so).
        r.stop = Some(src_tx.clone());
        let policy = crate::source::supervise::Policy {
            stall: Duration::from_nanos(source.stall.nanos()),
            backoff_max: Duration::from_nanos(source.retry_max.nanos()),
            // A network source's errors are worth another try; a file's are not.
            retry_errors: !settings.uri.starts_with("file://"),
            from: r.from,
        };
        match crate::source::supervise::Supervised::start(
            settings,
            src_tx.clone(),
            r.status.clone(),
            metrics.stage("source", &name),
            policy,
        ) {
            Ok(s) => threads.source = Some(s),
            // The stream's own threads are running: they record the failure,
            // so that its records come from one fuser only.
            Err(e) => {
                let _ = src_tx.send(crate::media::SourceMessage::Failed(
                    crate::media::Failure::new(crate::media::FailureKind::Other, e.to_string()),
                ));
            }
        }
        Ok(())
    }
}

impl Drop for Graph {
    /// A graph dropped without `finish` (an error on the way) still stops
    /// its streams, so that no thread outlives it feeding nothing.
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn stop(r: &mut Running) {
    r.status.stop_requested.store(true, Ordering::Relaxed);
    if let Some(stop) = r.stop.take() {
        // The queue may be full (a file, read faster than it is analysed):
        // then a thread of its own waits to say it, not the caller.
        if let Err(crossbeam_channel::TrySendError::Full(m)) =
            stop.try_send(crate::media::SourceMessage::Stop)
        {
            let _ = std::thread::Builder::new()
                .name("stop".into())
                .spawn(move || stop.send(m));
        }
    }
}

fn report(r: &Running) -> StreamReport {
    let s = &r.status;
    StreamReport {
        name: r.config.name.clone(),
        failure: s.failure(),
        chunks: s.chunks.load(Ordering::Relaxed),
        frames: s.frames.load(Ordering::Relaxed),
        audio_samples: s.audio_samples.load(Ordering::Relaxed),
        media: s.media_done.load(Ordering::Relaxed),
    }
}

fn now_utc() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

/// Joins a stream's threads once its fusion has finished. The source goes
/// first: fusion may have ended on its own (its sink gone) while a live
/// source waits for its camera, and the stages between unwind once the
/// source is gone.
fn join(t: Threads) {
    if let Some(s) = t.source {
        s.join(true);
    }
    if let Some(s) = t.sync {
        let _ = s.join();
    }
    if let Some(e) = t.encode {
        let _ = e.join();
    }
    if let Some(f) = t.fuse {
        let _ = f.join();
    }
}

#[cfg(test)]
mod queue_tests {
    use super::*;

    #[test]
    fn large_frames_get_a_shorter_source_queue() {
        assert_eq!(source_queue(640, None), 6);
        assert_eq!(source_queue(320, Some(240)), 24);
        assert_eq!(source_queue(160, Some(120)), 64);
        assert_eq!(source_queue(1280, Some(720)), 4);
        assert_eq!(source_queue(3840, None), 4);
    }
}
