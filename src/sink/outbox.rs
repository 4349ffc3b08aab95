//! Delivery from the event store to the live sinks, at least once.
//!
//! The store is the outbox: the pipeline only ever writes to it. Each live
//! sink runs on its own thread with its own connection to the store, reads
//! the records after its cursor (`cursors` table) in store order, hands
//! them to its [`Transport`] a batch at a time, and moves its cursor on
//! only once the far end acknowledged the batch. A failed attempt is
//! retried with exponential backoff and full jitter, forever while the run
//! lasts; nothing waits on it but that sink. What is not delivered when a
//! run ends (after `drain`) stays owed in the store, and the next run with
//! the same store delivers it first. A crash between acknowledgement and
//! cursor update sends a batch twice; (`run`, `id`) tells the copies apart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::watch;

use crate::config::Delivery;
use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// One stored record, as the outbox hands it to a transport, in store order.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// Store order.
    pub seq: i64,
    pub run: String,
    /// Unique within the run, e.g. `cam1/41`.
    pub id: String,
    pub stream: String,
    /// `event`, `caption` or `transcript`.
    pub kind_of: String,
    /// The record's JSON, whole.
    pub json: String,
    /// Wall clock of the commit to the store, ns since the epoch.
    pub stored_ns: Option<i64>,
}

/// Why a delivery failed; the message never holds a secret.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Failed(pub String);

/// How records leave for one kind of far end.
#[async_trait::async_trait]
pub trait Transport: Send {
    /// Delivers `batch` (in order). `Ok` only once the far end acknowledged
    /// every record; an `Err` within about the sink's `timeout` when it is
    /// down or silent. Called again with the same records after an error:
    /// duplicates are allowed, loss is not.
    async fn deliver(&mut self, batch: &[Outgoing]) -> std::result::Result<(), Failed>;
    /// Clean shutdown at the end of a run; best effort, bounded.
    async fn close(&mut self);
    /// Called about once a second while no records are owed, for what the
    /// far end is told besides records (Home Assistant discovery). An `Err`
    /// is logged; no record depends on it.
    async fn idle(&mut self) -> std::result::Result<(), Failed> {
        Ok(())
    }
}

/// How one live sink did over the run.
#[derive(Debug, Default, Clone)]
pub struct DeliveryReport {
    pub sink: String,
    pub delivered: u64,
    /// Records still owed, kept in the store for the next run.
    pub pending: u64,
    /// Failed attempts.
    pub retries: u64,
    /// Commit-to-acknowledgement time of the records delivered, ms.
    pub lag_p50_ms: Option<f64>,
    pub lag_p95_ms: Option<f64>,
    /// The last failure, if the sink failed at all.
    pub last_error: Option<String>,
}

/// A live sink's configuration (`[sinks.webhook]`, `[sinks.mqtt]`,
/// `[sinks.nats]`), which builds its running transport: secrets are read
/// and TLS set up there, before anything runs; nothing connects yet.
pub trait LiveConfig {
    /// The sink's name: its cursor in the store, its label in metrics.
    const NAME: &'static str;
    type Transport: Transport + 'static;
    /// The transport, or what is wrong with the configuration.
    fn build(&self) -> std::result::Result<Self::Transport, String>;
    fn delivery(&self) -> Delivery;
}

/// A live sink ready to run: its name (its cursor), transport and settings.
pub struct LiveSink {
    pub name: String,
    pub transport: Box<dyn Transport>,
    pub delivery: Delivery,
}

impl LiveSink {
    /// The live sink `config` describes.
    pub fn new<C: LiveConfig>(config: &C) -> Result<LiveSink> {
        Ok(LiveSink {
            name: C::NAME.into(),
            transport: Box::new(config.build().map_err(Error::Invalid)?),
            delivery: config.delivery(),
        })
    }
}

/// The running live sinks.
pub struct Outbox {
    finish: watch::Sender<bool>,
    threads: Vec<(String, JoinHandle<DeliveryReport>)>,
}

/// First wait after a failure; doubled each time up to `retry_max`.
const RETRY_FIRST: Duration = Duration::from_millis(250);
/// How often an idle sink looks at the store even without being told.
const IDLE_POLL: Duration = Duration::from_secs(1);

impl Outbox {
    /// Starts one thread per live sink, delivering from the store at
    /// `store` as records are committed (`committed` holds the last seq).
    pub fn start(
        store: &Path,
        sinks: Vec<LiveSink>,
        committed: &watch::Receiver<i64>,
        metrics: &Arc<Metrics>,
    ) -> Result<Outbox> {
        let (finish, finishing) = watch::channel(false);
        let mut threads = Vec::new();
        for sink in sinks {
            let worker = Worker {
                db: crate::sink::store::open(store)?,
                path: store.to_path_buf(),
                name: sink.name.clone(),
                delivery: sink.delivery,
                metrics: metrics.clone(),
            };
            let committed = committed.clone();
            let finishing = finishing.clone();
            let name = sink.name.clone();
            let mut transport = sink.transport;
            let thread = std::thread::Builder::new()
                .name(format!("deliver-{name}"))
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(r) => r,
                        Err(e) => {
                            return DeliveryReport {
                                sink: worker.name.clone(),
                                last_error: Some(format!("cannot start its runtime: {e}")),
                                ..Default::default()
                            };
                        }
                    };
                    let report =
                        runtime.block_on(worker.run(transport.as_mut(), committed, finishing));
                    drop(transport);
                    // Name lookups still running in the blocking pool must
                    // not hold up the end of the run.
                    runtime.shutdown_timeout(Duration::from_secs(1));
                    report
                })
                .map_err(|e| Error::io(format!("cannot start the {name} sink thread"), e))?;
            threads.push((name, thread));
        }
        Ok(Outbox { finish, threads })
    }

    /// Tells every live sink the run is over, lets each deliver what it
    /// still owes for up to its `drain`, and reports.
    pub fn finish(mut self) -> Vec<DeliveryReport> {
        self.finish.send_replace(true);
        std::mem::take(&mut self.threads)
            .into_iter()
            .map(|(name, t)| {
                t.join().unwrap_or_else(|_| DeliveryReport {
                    sink: name,
                    last_error: Some("its thread stopped unexpectedly".into()),
                    ..Default::default()
                })
            })
            .collect()
    }
}

impl Drop for Outbox {
    /// An outbox dropped without [`Outbox::finish`] (a run that failed to
    /// start) still lets its threads drain and end on their own.
    fn drop(&mut self) {
        self.finish.send_replace(true);
    }
}

struct Worker {
    db: Connection,
    path: PathBuf,
    name: String,
    delivery: Delivery,
    metrics: Arc<Metrics>,
}

impl Worker {
    fn store_error(&self, what: &str, e: rusqlite::Error) -> String {
        format!("event store {}: {what}: {e}", self.path.display())
    }

    async fn run(
        self,
        transport: &mut dyn Transport,
        mut committed: watch::Receiver<i64>,
        mut finishing: watch::Receiver<bool>,
    ) -> DeliveryReport {
        let mut report = DeliveryReport {
            sink: self.name.clone(),
            ..Default::default()
        };
        let mut cursor = match cursor(&self.db, &self.name) {
            Ok(c) => c,
            Err(e) => {
                let message = self.store_error("cannot read the cursor", e);
                tracing::error!(sink = %self.name, "{message}");
                report.last_error = Some(message);
                report.pending = owed(&self.db, 0).unwrap_or(0);
                return report;
            }
        };
        self.warn_of_a_gap(cursor);
        let timeout = Duration::from_nanos(self.delivery.timeout);
        let drain = Duration::from_nanos(self.delivery.drain);
        let retry_max = Duration::from_nanos(self.delivery.retry_max);
        let mut deadline: Option<Instant> = None;
        let mut failures = 0u32;
        let mut down_since: Option<Instant> = None;
        let mut store_failed = false;
        let mut idle_failed = false;
        let mut lags: Vec<f64> = Vec::new();
        let mut writing = true;
        let mut counted: Option<Instant> = None;
        self.metrics.sink_up(&self.name, true);
        loop {
            if deadline.is_none() && *finishing.borrow_and_update() {
                deadline = Some(Instant::now() + drain);
            }
            // The gauge is a count over the owed rows: at most once a second.
            if counted.is_none_or(|t| t.elapsed() >= IDLE_POLL) {
                counted = Some(Instant::now());
                if let Ok(n) = owed(&self.db, cursor) {
                    self.metrics
                        .delivery_pending(&self.name, i64::try_from(n).unwrap_or(i64::MAX));
                }
            }
            let batch = match fetch(&self.db, cursor, self.delivery.batch) {
                Ok(b) => b,
                Err(e) => {
                    // The store is busy or broken: say so once, then wait as
                    // for a failed delivery.
                    let message = self.store_error("cannot read records", e);
                    if !store_failed {
                        tracing::error!(sink = %self.name, "{message}");
                    }
                    store_failed = true;
                    report.last_error = Some(message);
                    if deadline.is_some() {
                        break;
                    }
                    tokio::time::sleep(IDLE_POLL).await;
                    continue;
                }
            };
            if batch.is_empty() {
                if deadline.is_some() {
                    break;
                }
                let bound = timeout + Duration::from_secs(1);
                match tokio::time::timeout(bound, transport.idle()).await {
                    Ok(Ok(())) => idle_failed = false,
                    Ok(Err(e)) if !idle_failed => {
                        idle_failed = true;
                        tracing::warn!(sink = %self.name, "{e}");
                    }
                    Ok(Err(e)) => tracing::debug!(sink = %self.name, "{e}"),
                    Err(_) => tracing::debug!(sink = %self.name, "idle work timed out"),
                }
                tokio::select! {
                    // The store's writer is gone once the run's records are
                    // all stored: then only the finish signal matters.
                    r = committed.changed(), if writing => writing = r.is_ok(),
                    r = finishing.changed() => {
                        if r.is_err() {
                            // The outbox was dropped without `finish`.
                            deadline = Some(Instant::now() + drain);
                        }
                    }
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                }
                continue;
            }
            // One attempt, bounded by the sink's timeout and, once the run is
            // over, by what is left of the drain.
            let mut bound = timeout + Duration::from_secs(1);
            if let Some(d) = deadline {
                bound = bound.min(d.saturating_duration_since(Instant::now()));
            }
            let attempt = tokio::time::timeout(bound, transport.deliver(&batch))
                .await
                .unwrap_or_else(|_| {
                    Err(Failed(format!(
                        "no acknowledgement within {}",
                        humantime::format_duration(bound)
                    )))
                });
            match attempt {
                Ok(()) => {
                    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
                    let batch_lags: Vec<f64> = batch
                        .iter()
                        .filter_map(|r| r.stored_ns)
                        .map(|t| (now - t).max(0) as f64 / 1e9)
                        .collect();
                    self.metrics
                        .delivered(&self.name, batch_lags.iter().copied());
                    lags.extend(batch_lags);
                    report.delivered += batch.len() as u64;
                    if let Some(last) = batch.last() {
                        cursor = last.seq;
                    }
                    if let Err(e) = set_cursor(&self.db, &self.name, cursor) {
                        // Delivered all the same; a restart would send it again.
                        tracing::warn!(sink = %self.name, "{}", self.store_error("cannot move the cursor", e));
                    }
                    if let Some(since) = down_since.take() {
                        tracing::info!(
                            sink = %self.name,
                            "delivering again after {} ({failures} failed attempts)",
                            humantime::format_duration(Duration::from_secs(since.elapsed().as_secs()))
                        );
                        self.metrics.sink_up(&self.name, true);
                    }
                    failures = 0;
                }
                Err(Failed(message)) => {
                    report.retries += 1;
                    self.metrics.delivery_retry(&self.name);
                    if down_since.is_none() {
                        down_since = Some(Instant::now());
                        self.metrics.sink_up(&self.name, false);
                        tracing::warn!(
                            sink = %self.name,
                            "cannot deliver: {message}; retrying, the records stay in the store"
                        );
                    } else {
                        tracing::debug!(sink = %self.name, "still cannot deliver: {message}");
                    }
                    report.last_error = Some(message);
                    failures = failures.saturating_add(1);
                    let wait = crate::backoff::backoff(RETRY_FIRST, failures, retry_max);
                    let until = tokio::time::Instant::now() + wait;
                    let until = match deadline {
                        Some(d) => until.min(tokio::time::Instant::from_std(d)),
                        None => until,
                    };
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => {}
                        // The run ended: the drain deadline starts now.
                        r = finishing.changed(), if deadline.is_none() => {
                            if r.is_err() {
                                deadline = Some(Instant::now() + drain);
                            }
                        }
                    }
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
        }
        // A clean goodbye (MQTT's offline status), briefly once past the drain.
        let close = if deadline.is_some_and(|d| Instant::now() >= d) {
            timeout.min(Duration::from_secs(2))
        } else {
            timeout
        };
        tokio::time::timeout(close, transport.close()).await.ok();
        report.pending = owed(&self.db, cursor).unwrap_or(0);
        self.metrics.delivery_pending(
            &self.name,
            i64::try_from(report.pending).unwrap_or(i64::MAX),
        );
        if report.pending == 0 && down_since.is_none() && !store_failed {
            report.last_error = None;
        }
        lags.sort_by(f64::total_cmp);
        report.lag_p50_ms = percentile(&lags, 0.50).map(|s| s * 1e3);
        report.lag_p95_ms = percentile(&lags, 0.95).map(|s| s * 1e3);
        report
    }

    /// Records between the cursor and the oldest stored one were deleted
    /// before this sink had them (an older vigil's retention, or a cursor
    /// forgotten and made again): say so, since they cannot be sent.
    fn warn_of_a_gap(&self, cursor: i64) {
        let oldest: rusqlite::Result<Option<i64>> =
            self.db
                .query_row("SELECT min(seq) FROM records", [], |r| r.get(0));
        if let Ok(Some(oldest)) = oldest
            && oldest > cursor + 1
            && cursor > 0
        {
            tracing::warn!(
                sink = %self.name,
                "records {}..{} were deleted from the store before this sink delivered them",
                cursor + 1,
                oldest - 1
            );
        }
    }
}

fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted.get(i.min(sorted.len() - 1)).copied()
}

/// Where `sink` stands: the last seq it had acknowledged.
pub fn cursor(db: &Connection, sink: &str) -> rusqlite::Result<i64> {
    let at: Option<i64> = db
        .query_row("SELECT seq FROM cursors WHERE sink = ?1", [sink], |r| {
            r.get(0)
        })
        .optional()?;
    match at {
        Some(at) => Ok(at),
        None => {
            crate::sink::store::register_cursors(db, &[sink.to_string()])?;
            cursor(db, sink)
        }
    }
}

/// Moves `sink`'s cursor on to `seq` (never back).
pub fn set_cursor(db: &Connection, sink: &str, seq: i64) -> rusqlite::Result<()> {
    db.execute(
        "UPDATE cursors SET seq = ?2 WHERE sink = ?1 AND seq < ?2",
        params![sink, seq],
    )?;
    Ok(())
}

/// Records after `after`, in store order, at most `limit`.
pub fn fetch(db: &Connection, after: i64, limit: usize) -> rusqlite::Result<Vec<Outgoing>> {
    let mut q = db.prepare_cached(
        "SELECT seq, run, id, stream, type, json, stored_ns FROM records
         WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = q.query_map(
        params![after, i64::try_from(limit).unwrap_or(i64::MAX)],
        |r| {
            Ok(Outgoing {
                seq: r.get(0)?,
                run: r.get(1)?,
                id: r.get(2)?,
                stream: r.get(3)?,
                kind_of: r.get(4)?,
                json: r.get(5)?,
                stored_ns: r.get(6)?,
            })
        },
    )?;
    rows.collect()
}

fn owed(db: &Connection, after: i64) -> rusqlite::Result<u64> {
    db.query_row(
        "SELECT count(*) FROM records WHERE seq > ?1",
        [after],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| u64::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails its first `fail` attempts (or all, when `fail` is None), then
    /// takes everything; remembers the seqs of each accepted batch.
    struct Flaky {
        fail: Option<usize>,
        accepted: Arc<std::sync::Mutex<Vec<Vec<i64>>>>,
    }

    #[async_trait::async_trait]
    impl Transport for Flaky {
        async fn deliver(&mut self, batch: &[Outgoing]) -> std::result::Result<(), Failed> {
            match &mut self.fail {
                None => return Err(Failed("down".into())),
                Some(n) if *n > 0 => {
                    *n -= 1;
                    return Err(Failed("refused".into()));
                }
                Some(_) => {}
            }
            let seqs = batch.iter().map(|r| r.seq).collect();
            self.accepted.lock().unwrap().push(seqs);
            Ok(())
        }
        async fn close(&mut self) {}
    }

    fn store_with(path: &Path, n: u64) -> crate::sink::store::StoreSink {
        use crate::sink::Sink;
        let mut store = crate::sink::store::StoreSink::open(
            path,
            crate::sink::store::Retention::default(),
            &["t".to_string()],
        )
        .unwrap();
        let mut maker = crate::fuse::RecordMaker::new("r".into(), "cam".into());
        let records: Vec<_> = (0..n)
            .map(|i| {
                let t = crate::time::Timestamp(i * 1_000_000_000);
                maker.caption(t, t, format!("caption {i}"))
            })
            .collect();
        store.send(&records).unwrap();
        store
    }

    fn live(
        fail: Option<usize>,
        drain_ms: u64,
    ) -> (LiveSink, Arc<std::sync::Mutex<Vec<Vec<i64>>>>) {
        let accepted = Arc::default();
        let sink = LiveSink {
            name: "t".into(),
            transport: Box::new(Flaky {
                fail,
                accepted: Arc::clone(&accepted),
            }),
            delivery: Delivery {
                batch: 10,
                retry_max: 1_000_000_000,
                drain: drain_ms * 1_000_000,
                timeout: 1_000_000_000,
            },
        };
        (sink, accepted)
    }

    #[tokio::test]
    async fn retries_until_acknowledged_then_moves_the_cursor_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let store = store_with(&path, 25);
        let (sink, accepted) = live(Some(2), 30_000);
        let outbox = Outbox::start(&path, vec![sink], &store.committed(), &Metrics::new()).unwrap();
        let reports = tokio::task::spawn_blocking(move || outbox.finish())
            .await
            .unwrap();
        let r = &reports[0];
        assert_eq!((r.delivered, r.pending, r.retries), (25, 0, 2), "{r:?}");
        assert_eq!(r.last_error, None);
        let seqs: Vec<i64> = accepted.lock().unwrap().concat();
        assert_eq!(
            seqs,
            (1..=25).collect::<Vec<_>>(),
            "each once, in store order"
        );
        let db = crate::sink::store::open(&path).unwrap();
        assert_eq!(cursor(&db, "t").unwrap(), 25);
    }

    #[tokio::test]
    async fn a_sink_down_at_the_end_leaves_its_records_owed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let store = store_with(&path, 25);
        let (sink, _) = live(None, 300);
        let outbox = Outbox::start(&path, vec![sink], &store.committed(), &Metrics::new()).unwrap();
        let t = Instant::now();
        let reports = tokio::task::spawn_blocking(move || outbox.finish())
            .await
            .unwrap();
        assert!(t.elapsed() < Duration::from_secs(3), "drain is bounded");
        let r = &reports[0];
        assert_eq!((r.delivered, r.pending), (0, 25), "{r:?}");
        assert_eq!(r.last_error.as_deref(), Some("down"));
        let db = crate::sink::store::open(&path).unwrap();
        assert_eq!(cursor(&db, "t").unwrap(), 0, "nothing acknowledged");
    }

    #[test]
    fn percentiles_of_lags() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.95), Some(95.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
