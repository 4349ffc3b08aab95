//! `/events`: the records in the event store, with the filters of
//! `vigil events` (`since`, `until`, `stream`, `kind`, `label`, `format`),
//! streamed row by row; `/events/live`: the records as they are committed,
//! as Server-Sent Events (`id` is the store sequence, so a client that
//! reconnects with `Last-Event-ID` misses nothing the store still holds).

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{AppState, StoreHandle, problem};
use crate::export::{Filter, Format};
use crate::lock::Locked;

/// Query parameters: those of `vigil events`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// RFC 3339, or a time ago (`-2h`).
    pub since: Option<String>,
    pub until: Option<String>,
    pub stream: Option<String>,
    /// An event kind, or `caption` / `transcript`.
    pub kind: Option<String>,
    pub label: Option<String>,
    /// `jsonl` (default), `json`, `csv`, `vtt` or `srt` (`/events` only).
    pub format: Option<String>,
    /// `/events/live`: start after this store sequence (as `Last-Event-ID`).
    pub after: Option<i64>,
    /// `/events` on a node of a cluster: `cluster` (default) reads every
    /// node's records from JetStream, `node` this node's store.
    pub from: Option<String>,
}

impl EventsQuery {
    fn filter(&self) -> Result<Filter, String> {
        let now = chrono::Utc::now();
        let time = |t: &Option<String>, name: &str| {
            t.as_deref()
                .map(|t| crate::export::parse_time(t, now))
                .transpose()
                .map_err(|e| format!("{name}: {e}"))
        };
        Ok(Filter {
            since: time(&self.since, "since")?,
            until: time(&self.until, "until")?,
            stream: self.stream.clone(),
            kind: self.kind.clone(),
            label: self.label.clone(),
        })
    }
}

/// Chunks of the export on their way to the client.
const BODY_QUEUE: usize = 16;

/// Where a node of a cluster reads the whole cluster's records: its
/// `[sinks.nats]`; none off a cluster, or asked for its own (`from=node`).
fn cluster_records(
    s: &AppState,
    q: &Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Option<crate::config::NatsConfig>, Box<Response>> {
    let from = q.as_ref().ok().and_then(|q| q.from.clone());
    let nats = s
        .pipeline
        .locked()
        .as_ref()
        .filter(|p| p.cluster.is_some())
        .and_then(|p| p.sinks.nats.clone());
    match from.as_deref() {
        None | Some("cluster") => Ok(nats),
        Some("node") => Ok(None),
        Some(other) => Err(Box::new(
            (
                StatusCode::BAD_REQUEST,
                problem(format!("from: `{other}` is neither `cluster` nor `node`")),
            )
                .into_response(),
        )),
    }
}

/// `GET /events`.
pub async fn query(
    State(s): State<AppState>,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Response {
    let nats = match cluster_records(&s, &q) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let (q, store, filter) = match nats {
        Some(_) => match q {
            Ok(Query(q)) => match q.filter() {
                Ok(f) => (q, None, f),
                Err(m) => return (StatusCode::BAD_REQUEST, problem(m)).into_response(),
            },
            Err(e) => return (StatusCode::BAD_REQUEST, problem(e.body_text())).into_response(),
        },
        None => match prepare(&s, q) {
            Ok((q, store, f)) => (q, Some(store), f),
            Err(r) => return *r,
        },
    };
    let format: Format = match q.format.as_deref().unwrap_or("jsonl").parse() {
        Ok(f) => f,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, problem(format!("format: {e}"))).into_response();
        }
    };
    let content_type = match format {
        Format::Jsonl => "application/x-ndjson",
        Format::Json => "application/json",
        Format::Csv => "text/csv; charset=utf-8",
        Format::Vtt => "text/vtt; charset=utf-8",
        Format::Srt => "application/x-subrip; charset=utf-8",
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(BODY_QUEUE);
    match (nats, store) {
        (Some(nats), _) => from_jetstream(nats, filter, format, tx),
        (None, Some(store)) => from_store(store, filter, format, tx),
        (None, None) => {}
    }
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    (
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(body),
    )
        .into_response()
}

/// The store's records into `tx`, on a blocking task.
fn from_store(
    store: StoreHandle,
    filter: Filter,
    format: Format,
    tx: tokio::sync::mpsc::Sender<Bytes>,
) {
    tokio::task::spawn_blocking(move || {
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, Sender(tx));
        if let Err(e) = crate::export::export(&store.path, &filter, format, &mut out) {
            // The status went out with the first bytes: the body is cut
            // short, and the reason logged.
            tracing::warn!("GET /events: {e}");
        }
        let _ = std::io::Write::flush(&mut out);
    });
}

/// The cluster's records out of JetStream into `tx`: read on a thread
/// with a runtime of its own (the writer blocks while the client is slow),
/// relayed to the body by a blocking task.
fn from_jetstream(
    nats: crate::config::NatsConfig,
    filter: Filter,
    format: Format,
    tx: tokio::sync::mpsc::Sender<Bytes>,
) {
    let (relay_tx, relay_rx) = std::sync::mpsc::sync_channel::<Bytes>(BODY_QUEUE);
    let read = move || {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => return tracing::warn!("GET /events: cannot start a NATS client: {e}"),
        };
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, Relay(relay_tx));
        if let Err(e) = runtime.block_on(crate::export::nats::export(
            &nats, &filter, format, &mut out,
        )) {
            tracing::warn!("GET /events: {e}");
        }
        let _ = std::io::Write::flush(&mut out);
    };
    if let Err(e) = std::thread::Builder::new()
        .name("events-jetstream".into())
        .spawn(read)
    {
        tracing::warn!("GET /events: cannot start a thread: {e}");
        return;
    }
    tokio::task::spawn_blocking(move || {
        while let Ok(b) = relay_rx.recv() {
            if tx.blocking_send(b).is_err() {
                break;
            }
        }
    });
}

/// Writes to the relay of [`from_jetstream`], waiting while it is full.
struct Relay(std::sync::mpsc::SyncSender<Bytes>);

impl std::io::Write for Relay {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .send(Bytes::copy_from_slice(buf))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes into the response body, waiting while the client is slow.
struct Sender(tokio::sync::mpsc::Sender<Bytes>);

impl std::io::Write for Sender {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The query, the store and the filter of a request to `/events` or
/// `/events/live`, or the answer that says what is wrong.
fn prepare(
    s: &AppState,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<(EventsQuery, StoreHandle, Filter), Box<Response>> {
    let bad = |m: String| Box::new((StatusCode::BAD_REQUEST, problem(m)).into_response());
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    let store = need_store(s)?;
    let filter = q.filter().map_err(bad)?;
    Ok((q, store, filter))
}

fn need_store(s: &AppState) -> Result<StoreHandle, Box<Response>> {
    let missing = |m: String| Box::new((StatusCode::NOT_FOUND, problem(m)).into_response());
    let store = s.store().ok_or_else(|| {
        missing("this pipeline keeps no event store: add [sinks.store] to query records".into())
    })?;
    if !store.path.exists() {
        return Err(missing(format!(
            "the event store {} is not there (yet): nothing was recorded",
            store.path.display()
        )));
    }
    Ok(store)
}

/// Records read from the store at a time for a live client.
const LIVE_BATCH: usize = 256;

/// `GET /events/live`: every record committed from now on (or after
/// `Last-Event-ID` / `?after=`), passing the filters, as an SSE stream.
pub async fn live(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Response {
    let (q, store, filter) = match prepare(&s, q) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or(q.after);
    let path = store.path.clone();
    let opened = tokio::task::spawn_blocking(move || -> Result<_, String> {
        let conn = crate::sink::store::open(&path).map_err(|e| e.to_string())?;
        let start = match resume {
            Some(seq) => seq,
            None => crate::sink::store::last_seq(&conn).map_err(|e| e.to_string())?,
        };
        Ok((conn, start))
    })
    .await;
    let (conn, start) = match opened {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return (StatusCode::INTERNAL_SERVER_ERROR, problem(e)).into_response(),
        Err(e) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, problem(e.to_string())).into_response();
        }
    };
    let follow = Follow {
        conn: Some(conn),
        filter,
        cursor: start,
        pending: Default::default(),
        committed: store.committed,
        errors: 0,
    };
    let events = futures_util::stream::unfold(follow, |mut f| async move {
        f.next().await.map(|e| (Ok::<_, Infallible>(e), f))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// One live client's place in the store.
struct Follow {
    /// Moved to a blocking thread for each read, and back.
    conn: Option<rusqlite::Connection>,
    filter: Filter,
    cursor: i64,
    pending: std::collections::VecDeque<(i64, String, String)>,
    committed: Option<tokio::sync::watch::Receiver<i64>>,
    /// Reads failed in a row; the stream ends after LIVE_ERRORS.
    errors: u32,
}

/// Failed reads in a row after which a live client is let go (it may
/// reconnect with `Last-Event-ID`).
const LIVE_ERRORS: u32 = 30;

impl Follow {
    /// The next record to send; None ends the stream (the store is gone).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some((seq, kind, json)) = self.pending.pop_front() {
                return Some(Event::default().id(seq.to_string()).event(kind).data(json));
            }
            let conn = self.conn.take()?;
            let (filter, cursor) = (self.filter.clone(), self.cursor);
            let read = tokio::task::spawn_blocking(move || {
                let rows = crate::export::after(&conn, &filter, cursor, LIVE_BATCH);
                (conn, rows)
            })
            .await
            .ok()?;
            self.conn = Some(read.0);
            match read.1 {
                Ok(rows) if !rows.is_empty() => {
                    self.errors = 0;
                    self.cursor = rows.last().map_or(self.cursor, |r| r.0);
                    self.pending.extend(rows);
                }
                Ok(_) => {
                    self.errors = 0;
                    // Nothing new: wait for the next commit (or look again
                    // in a second, for commits not signalled).
                    let second = Duration::from_secs(1);
                    match self.committed.as_mut() {
                        Some(c) => {
                            if let Ok(Err(_)) = tokio::time::timeout(second, c.changed()).await {
                                // The store was closed (a reload): look each second.
                                self.committed = None;
                            }
                        }
                        None => tokio::time::sleep(second).await,
                    }
                }
                Err(e) => {
                    self.errors += 1;
                    tracing::warn!("GET /events/live: cannot read the store: {e}");
                    if self.errors >= LIVE_ERRORS {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}
