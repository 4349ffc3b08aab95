//! MQTT transport: publishes records to an MQTT 3.1.1 broker with QoS 1 and
//! keeps a retained, Home Assistant friendly state topic per stream.
//!
//! Topics (`{stream}` has `/`, `+`, `#` replaced by `_`):
//! - `{prefix}/{stream}/events`, `.../captions`, `.../transcripts`: the record
//!   JSON unchanged, QoS 1, not retained (other record kinds go to `.../other`);
//! - `{prefix}/{stream}/state`: retained summary, published after each batch
//!   for every stream the batch touched;
//! - `{prefix}/status`: retained `online` on every (re)connect, `offline` on
//!   [`Transport::close`] and as the last will.
//!
//! Delivery: a connection is opened lazily by the first `deliver`. A background
//! task drives rumqttc's event loop (so keep-alive pings go out between
//! batches) and forwards connection events to the transport. `deliver`
//! publishes the batch, then waits until every publish (records, state and, on
//! a fresh connection, `online`) has been PubAck'ed. On any connection error or
//! timeout the client and event loop are dropped (no replay of stale inflight
//! messages by rumqttc) and the next `deliver` connects afresh. If a connection
//! that was idle since the previous batch turns out dead (broker restarted),
//! `deliver` reconnects once by itself within the same time bound.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, Incoming, LastWill,
    MqttOptions, QoS, TlsConfiguration,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::sink::outbox::{Failed, Outgoing, Transport};

/// Largest number of unacknowledged publishes rumqttc keeps in flight. One
/// batch is at most 100 records + 100 state topics + 1 status message.
const MAX_INFLIGHT: u16 = 512;
/// Capacity of the request channel between the client and the event loop.
const REQUEST_CAPACITY: usize = 256;
/// Largest packet we accept from the broker (only acks are expected).
const MAX_INCOMING_PACKET: usize = 1 << 20;
/// Largest packet we send: the MQTT limit (rumqttc's default is only 10 KiB).
const MAX_OUTGOING_PACKET: usize = 268_435_455;

/// Connection settings for [`MqttTransport`].
#[derive(Clone)]
pub struct MqttSettings {
    pub host: String,
    pub port: u16,
    /// TLS when set (client config already carries the root certificates).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub client_id: String,
    pub username: Option<String>,
    /// A secret: never logged, never put in an error.
    pub password: Option<String>,
    /// Topic prefix, "vigil" by default.
    pub prefix: String,
    pub keep_alive: Duration,
    /// Bound for connect + acks of one batch.
    pub timeout: Duration,
}

impl MqttSettings {
    /// Settings with defaults: no TLS, no credentials, client id
    /// `vigil-{pid}`, prefix `vigil`, keep-alive 30 s, timeout 10 s.
    pub fn new(host: impl Into<String>, port: u16) -> MqttSettings {
        MqttSettings {
            host: host.into(),
            port,
            tls: None,
            client_id: default_client_id(),
            username: None,
            password: None,
            prefix: "vigil".to_owned(),
            keep_alive: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }
}

/// `vigil-HOST-PID`: two vigils on one broker never take each other's
/// session, even in containers where every PID is 1 (hosts differ there).
fn default_client_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(40)
        .collect();
    if host.is_empty() {
        format!("vigil-{}", std::process::id())
    } else {
        format!("vigil-{host}-{}", std::process::id())
    }
}

impl fmt::Debug for MqttSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("prefix", &self.prefix)
            .field("keep_alive", &self.keep_alive)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What the event-loop driver task reports to the transport.
enum Note {
    /// A QoS 1 publish with this packet id was written to the network.
    Sent(u16),
    /// The broker acknowledged the publish with this packet id.
    Acked(u16),
    /// The DISCONNECT packet was written.
    Disconnected,
    /// The connection failed; the driver has stopped.
    Lost(ConnectionError),
}

/// One live connection: the client handle, the driver task owning the event
/// loop, and the driver's reports. Dropping it aborts the driver, which drops
/// the event loop and closes the socket without DISCONNECT (the broker then
/// publishes the last will).
struct Conn {
    client: AsyncClient,
    notes: mpsc::UnboundedReceiver<Note>,
    driver: JoinHandle<()>,
    /// Set while a deliver or close uses the connection; still set at the
    /// next call means that one was cancelled midway, leaving reports the
    /// ack counting cannot tell apart, so the connection is not reused.
    busy: bool,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Summary of one stream, published retained to `{prefix}/{stream}/state`.
#[derive(Clone, Debug, Default)]
struct StreamState {
    /// Active events by their `event` id: (kind, label).
    active: BTreeMap<String, (String, String)>,
    caption: Option<String>,
    transcript: Option<String>,
    utc: Option<String>,
}

/// Delivers records to an MQTT broker; see the module documentation.
pub struct MqttTransport {
    settings: MqttSettings,
    conn: Option<Conn>,
    states: HashMap<String, StreamState>,
    /// (acknowledged, expected) publishes of the current attempt, for errors.
    progress: (usize, usize),
}

impl MqttTransport {
    /// Creates the transport; it connects lazily on the first `deliver`.
    pub fn new(settings: MqttSettings) -> MqttTransport {
        MqttTransport {
            settings,
            conn: None,
            states: HashMap::new(),
            progress: (0, 0),
        }
    }

    fn prefix(&self) -> String {
        clean_prefix(&self.settings.prefix)
    }

    fn status_topic(&self) -> String {
        join_topic(&self.prefix(), "status")
    }

    fn record_topic(&self, rec: &Outgoing) -> String {
        let leaf = match rec.kind_of.as_str() {
            "event" => "events",
            "caption" => "captions",
            "transcript" => "transcripts",
            _ => "other",
        };
        join_topic(
            &self.prefix(),
            &format!("{}/{leaf}", topic_segment(&rec.stream)),
        )
    }

    fn state_topic(&self, stream: &str) -> String {
        join_topic(&self.prefix(), &format!("{}/state", topic_segment(stream)))
    }

    /// Folds one record into its stream's state. Idempotent for replays of
    /// the same records (start inserts, end removes, texts are overwritten).
    fn apply(&mut self, rec: &Outgoing) {
        let st = self.states.entry(rec.stream.clone()).or_default();
        let v: Value = match serde_json::from_str(&rec.json) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(id = %rec.id, "record is not valid JSON, state not updated: {e}");
                return;
            }
        };
        if let Some(utc) = v.get("utc").and_then(Value::as_str) {
            st.utc = Some(utc.to_owned());
        }
        let text = || v.get("text").and_then(Value::as_str).map(str::to_owned);
        match rec.kind_of.as_str() {
            "event" => {
                let key = v
                    .get("event")
                    .and_then(Value::as_str)
                    .unwrap_or(&rec.id)
                    .to_owned();
                let kind = v.get("kind").and_then(Value::as_str).unwrap_or("event");
                let label = v
                    .get("labels")
                    .and_then(Value::as_array)
                    .and_then(|labels| labels.first())
                    .and_then(Value::as_str)
                    .unwrap_or(kind);
                match v.get("phase").and_then(Value::as_str) {
                    Some("start") | Some("update") => {
                        st.active.insert(key, (kind.to_owned(), label.to_owned()));
                    }
                    Some("end") => {
                        st.active.remove(&key);
                    }
                    _ => {}
                }
            }
            "caption" => {
                if let Some(t) = text() {
                    st.caption = Some(t);
                }
            }
            "transcript" => {
                if let Some(t) = text() {
                    st.transcript = Some(t);
                }
            }
            _ => {}
        }
    }

    fn state_json(&self, stream: &str) -> String {
        let empty = StreamState::default();
        let st = self.states.get(stream).unwrap_or(&empty);
        let active: BTreeSet<&str> = st.active.values().map(|(_, l)| l.as_str()).collect();
        let mut events: BTreeMap<&str, u64> = BTreeMap::new();
        for (kind, _) in st.active.values() {
            *events.entry(kind.as_str()).or_default() += 1;
        }
        json!({
            "stream": stream,
            "active": active,
            "events": events,
            "caption": st.caption,
            "transcript": st.transcript,
            "utc": st.utc,
        })
        .to_string()
    }

    /// Drops the connection if its driver reported a failure while idle;
    /// returns whether a live connection remains.
    fn check_idle_conn(&mut self) -> bool {
        let mut dead = false;
        if let Some(conn) = self.conn.as_mut() {
            if conn.busy {
                tracing::debug!("previous MQTT delivery was cancelled; reconnecting");
                dead = true;
            }
            while !dead {
                match conn.notes.try_recv() {
                    Ok(Note::Lost(e)) => {
                        tracing::info!(
                            "{}",
                            describe(&self.settings, &e, "connection lost while idle")
                        );
                        dead = true;
                    }
                    Ok(_) => {}
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => dead = true,
                }
            }
        }
        if dead {
            self.conn = None;
        }
        self.conn.is_some()
    }

    /// Connects (TCP/TLS + CONNECT/CONNACK) and starts the driver task.
    async fn connect(&self) -> Result<Conn, Failed> {
        let s = &self.settings;
        let mut opts = MqttOptions::new(s.client_id.clone(), s.host.clone(), s.port);
        let keep_alive = if s.keep_alive.is_zero() {
            Duration::ZERO
        } else {
            s.keep_alive
                .clamp(Duration::from_secs(1), Duration::from_secs(u16::MAX.into()))
        };
        opts.set_keep_alive(keep_alive)
            .set_clean_session(true)
            .set_inflight(MAX_INFLIGHT)
            .set_max_packet_size(MAX_INCOMING_PACKET, MAX_OUTGOING_PACKET)
            .set_last_will(LastWill::new(
                self.status_topic(),
                "offline",
                QoS::AtLeastOnce,
                true,
            ));
        match (&s.username, &s.password) {
            (Some(user), password) => {
                opts.set_credentials(user.clone(), password.clone().unwrap_or_default());
            }
            (None, Some(_)) => {
                tracing::warn!("MQTT password is set without a user name; it is not sent");
            }
            (None, None) => {}
        }
        if let Some(tls) = &s.tls {
            opts.set_transport(rumqttc::Transport::tls_with_config(
                TlsConfiguration::Rustls(tls.clone()),
            ));
        }
        let (client, mut eventloop) = AsyncClient::new(opts, REQUEST_CAPACITY);
        let mut net = eventloop.network_options();
        let secs = s.timeout.as_secs_f64().ceil().max(1.0) as u64;
        net.set_connection_timeout(secs);
        // Small publishes and acks: without this, Nagle's algorithm and
        // delayed ACKs hold each burst for about 40 ms.
        net.set_tcp_nodelay(true);
        eventloop.set_network_options(net);

        match eventloop.poll().await {
            Ok(Event::Incoming(Incoming::ConnAck(ack)))
                if ack.code == ConnectReturnCode::Success => {}
            Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                return Err(self.failed(format!(
                    "MQTT broker {} refused the connection: {}",
                    addr(s),
                    refusal(ack.code)
                )));
            }
            Ok(other) => {
                return Err(self.failed(format!(
                    "MQTT broker {} answered the connect with {other:?} instead of CONNACK",
                    addr(s)
                )));
            }
            Err(e) => return Err(self.failed(describe(s, &e, "connecting failed"))),
        }
        tracing::info!(broker = %addr(s), tls = s.tls.is_some(), "connected to MQTT broker");

        let (tx, notes) = mpsc::unbounded_channel();
        let driver = tokio::spawn(drive(eventloop, tx));
        Ok(Conn {
            client,
            notes,
            driver,
            busy: false,
        })
    }

    /// Wraps a message, removing the password should it ever appear in it.
    fn failed(&self, msg: String) -> Failed {
        Failed(redact(msg, self.settings.password.as_deref()))
    }

    /// One attempt: connect if needed, publish everything, wait for all acks.
    async fn attempt(&mut self, pubs: &[(String, String, bool)]) -> Result<(), Failed> {
        let mut expected = pubs.len();
        let fresh = self.conn.is_none();
        if fresh {
            let conn = self.connect().await?;
            self.conn = Some(conn);
            expected += 1;
        }
        self.progress = (0, expected);
        let status = self.status_topic();
        let Some(conn) = self.conn.as_mut() else {
            return Err(self.failed(format!(
                "MQTT broker {}: not connected",
                addr(&self.settings)
            )));
        };
        conn.busy = true;
        let mut requests: Vec<(String, Vec<u8>, bool)> = Vec::with_capacity(expected);
        if fresh {
            requests.push((status, b"online".to_vec(), true));
        }
        for (topic, payload, retain) in pubs {
            requests.push((topic.clone(), payload.as_bytes().to_vec(), *retain));
        }
        for (topic, payload, retain) in requests {
            if conn
                .client
                .publish(topic, QoS::AtLeastOnce, retain, payload)
                .await
                .is_err()
            {
                // The driver stopped: its report says why.
                break;
            }
        }

        let mut outstanding: HashSet<u16> = HashSet::new();
        let mut sent = 0usize;
        let mut acked = 0usize;
        while sent < expected || !outstanding.is_empty() {
            match conn.notes.recv().await {
                Some(Note::Sent(pkid)) => {
                    sent += 1;
                    outstanding.insert(pkid);
                }
                Some(Note::Acked(pkid)) => {
                    if outstanding.remove(&pkid) {
                        acked += 1;
                        self.progress = (acked, expected);
                    }
                }
                Some(Note::Disconnected) => {}
                Some(Note::Lost(e)) => {
                    let msg = describe(
                        &self.settings,
                        &e,
                        &format!("connection lost after {acked} of {expected} acknowledgements"),
                    );
                    return Err(Failed(redact(msg, self.settings.password.as_deref())));
                }
                None => {
                    let msg = format!(
                        "MQTT broker {}: connection lost after {acked} of {expected} acknowledgements",
                        addr(&self.settings)
                    );
                    return Err(Failed(msg));
                }
            }
        }
        conn.busy = false;
        Ok(())
    }

    /// Publishes, reconnecting once if an idle connection turned out dead.
    async fn publish_all(&mut self, pubs: &[(String, String, bool)]) -> Result<(), Failed> {
        let reused = self.check_idle_conn();
        match self.attempt(pubs).await {
            Err(e) if reused => {
                tracing::info!("{e}; reconnecting");
                self.conn = None;
                self.attempt(pubs).await
            }
            other => other,
        }
    }

    async fn close_inner(conn: &mut Conn, status: String) -> bool {
        if conn.busy {
            return false;
        }
        conn.busy = true;
        if conn
            .client
            .publish(status, QoS::AtLeastOnce, true, b"offline".to_vec())
            .await
            .is_err()
        {
            return false;
        }
        let mut pkid = None;
        loop {
            match conn.notes.recv().await {
                Some(Note::Sent(p)) => pkid = Some(p),
                Some(Note::Acked(p)) if Some(p) == pkid => break,
                Some(Note::Acked(_)) | Some(Note::Disconnected) => {}
                Some(Note::Lost(_)) | None => return false,
            }
        }
        if conn.client.disconnect().await.is_err() {
            return false;
        }
        loop {
            match conn.notes.recv().await {
                Some(Note::Disconnected) => return true,
                Some(Note::Lost(_)) | None => return false,
                Some(_) => {}
            }
        }
    }
}

#[async_trait::async_trait]
impl Transport for MqttTransport {
    async fn deliver(&mut self, batch: &[Outgoing]) -> Result<(), Failed> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut pubs: Vec<(String, String, bool)> = Vec::with_capacity(batch.len() * 2);
        let mut touched: BTreeSet<&str> = BTreeSet::new();
        for rec in batch {
            pubs.push((self.record_topic(rec), rec.json.clone(), false));
            self.apply(rec);
            touched.insert(rec.stream.as_str());
        }
        for stream in touched {
            pubs.push((self.state_topic(stream), self.state_json(stream), true));
        }

        let limit = self.settings.timeout;
        let deadline = Instant::now() + limit;
        match tokio::time::timeout_at(deadline, self.publish_all(&pubs)).await {
            Ok(Ok(())) => {
                tracing::debug!(records = batch.len(), "delivered to MQTT broker");
                Ok(())
            }
            Ok(Err(e)) => {
                self.conn = None;
                tracing::warn!("{e}");
                Err(e)
            }
            Err(_) => {
                self.conn = None;
                let (acked, expected) = self.progress;
                let msg = if expected == 0 {
                    format!(
                        "MQTT broker {}: no connection within {limit:?}",
                        addr(&self.settings)
                    )
                } else {
                    format!(
                        "MQTT broker {}: timed out after {limit:?} with {acked} of {expected} publishes acknowledged",
                        addr(&self.settings)
                    )
                };
                tracing::warn!("{msg}");
                Err(Failed(msg))
            }
        }
    }

    async fn close(&mut self) {
        let status = self.status_topic();
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let clean =
            tokio::time::timeout(self.settings.timeout, Self::close_inner(&mut conn, status))
                .await
                .unwrap_or(false);
        if clean {
            tracing::info!(broker = %addr(&self.settings), "disconnected from MQTT broker");
        } else {
            tracing::warn!(broker = %addr(&self.settings), "MQTT close was not clean");
        }
        drop(conn);
    }
}

/// Drives the event loop until the connection fails or the transport goes
/// away, forwarding the events the transport needs.
async fn drive(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<Note>) {
    loop {
        let note = match eventloop.poll().await {
            Ok(Event::Outgoing(rumqttc::Outgoing::Publish(pkid))) => Note::Sent(pkid),
            Ok(Event::Incoming(Incoming::PubAck(ack))) => Note::Acked(ack.pkid),
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => Note::Disconnected,
            Ok(_) => continue,
            Err(e) => {
                // Stop here: polling again would reconnect and replay inflight
                // publishes behind the transport's back.
                let _ = tx.send(Note::Lost(e));
                return;
            }
        };
        if tx.send(note).is_err() {
            return;
        }
    }
}

fn addr(s: &MqttSettings) -> String {
    if s.host.contains(':') {
        format!("[{}]:{}", s.host, s.port)
    } else {
        format!("{}:{}", s.host, s.port)
    }
}

fn refusal(code: ConnectReturnCode) -> &'static str {
    match code {
        ConnectReturnCode::Success => "no reason given",
        ConnectReturnCode::RefusedProtocolVersion => "unacceptable protocol version",
        ConnectReturnCode::BadClientId => "client identifier rejected",
        ConnectReturnCode::ServiceUnavailable => "server unavailable",
        ConnectReturnCode::BadUserNamePassword => "bad user name or password",
        ConnectReturnCode::NotAuthorized => "not authorized (check user name and password)",
    }
}

/// Says what went wrong and where, for a connection error.
fn describe(s: &MqttSettings, e: &ConnectionError, what: &str) -> String {
    let at = addr(s);
    let msg = match e {
        ConnectionError::ConnectionRefused(code) => {
            format!(
                "MQTT broker {at} refused the connection: {}",
                refusal(*code)
            )
        }
        ConnectionError::NetworkTimeout => format!("MQTT broker {at}: {what}: timed out"),
        ConnectionError::FlushTimeout => format!("MQTT broker {at}: {what}: sending timed out"),
        ConnectionError::Io(io) => format!("MQTT broker {at}: {what}: {io}"),
        ConnectionError::Tls(tls) => format!("MQTT broker {at}: {what}: TLS: {tls}"),
        other => format!("MQTT broker {at}: {what}: {other}"),
    };
    redact(msg, s.password.as_deref())
}

/// Removes the password from a message (defence in depth: rumqttc's errors
/// do not echo credentials).
fn redact(msg: String, password: Option<&str>) -> String {
    crate::secret::scrub(&msg, &password.into_iter().collect::<Vec<_>>())
}

/// A stream name as one topic level: no level separator or wildcards.
fn topic_segment(name: &str) -> String {
    if name.is_empty() {
        return "_".to_owned();
    }
    name.chars()
        .map(|c| match c {
            '/' | '+' | '#' | '\0' => '_',
            c => c,
        })
        .collect()
}

/// The configured prefix without wildcards or trailing slashes.
fn clean_prefix(prefix: &str) -> String {
    prefix
        .trim_end_matches('/')
        .chars()
        .map(|c| match c {
            '+' | '#' | '\0' => '_',
            c => c,
        })
        .collect()
}

fn join_topic(prefix: &str, rest: &str) -> String {
    if prefix.is_empty() {
        rest.to_owned()
    } else {
        format!("{prefix}/{rest}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const MOSQUITTO: &str = "/usr/sbin/mosquitto";

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// A mosquitto process on a loopback port; killed on drop.
    struct Broker {
        port: u16,
        conf: PathBuf,
        dir: tempfile::TempDir,
        child: Option<Child>,
    }

    impl Broker {
        fn start(port: u16) -> Broker {
            let mut b = Broker::configure(port, "allow_anonymous true\n");
            b.spawn();
            b
        }

        fn configure(port: u16, extra: &str) -> Broker {
            let dir = tempfile::tempdir().unwrap();
            let conf = dir.path().join("mosquitto.conf");
            std::fs::write(
                &conf,
                format!("listener {port} 127.0.0.1\npersistence false\nuser root\n{extra}"),
            )
            .unwrap();
            Broker {
                port,
                conf,
                dir,
                child: None,
            }
        }

        fn with_password(port: u16, user: &str, password: &str) -> Broker {
            let mut b = Broker::configure(port, "allow_anonymous false\n");
            let file = b.dir.path().join("passwd");
            let ok = Command::new("mosquitto_passwd")
                .arg("-b")
                .arg("-c")
                .arg(&file)
                .arg(user)
                .arg(password)
                .status()
                .unwrap();
            assert!(ok.success());
            let mut conf = std::fs::read_to_string(&b.conf).unwrap();
            conf.push_str(&format!("password_file {}\n", file.display()));
            std::fs::write(&b.conf, conf).unwrap();
            b.spawn();
            b
        }

        fn spawn(&mut self) {
            let log = std::fs::File::create(self.dir.path().join("log")).unwrap();
            let child = Command::new(MOSQUITTO)
                .arg("-c")
                .arg(&self.conf)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            self.child = Some(child);
            let start = std::time::Instant::now();
            while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                assert!(
                    start.elapsed() < Duration::from_secs(5),
                    "mosquitto did not start: {}",
                    std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }

        /// SIGKILL, as a crash.
        fn kill(&mut self) {
            if let Some(mut c) = self.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }

        fn signal(&self, sig: &str) {
            let pid = self.child.as_ref().unwrap().id().to_string();
            assert!(
                Command::new("kill")
                    .arg(sig)
                    .arg(pid)
                    .status()
                    .unwrap()
                    .success()
            );
        }
    }

    impl Drop for Broker {
        fn drop(&mut self) {
            if self.child.is_some() {
                self.signal("-CONT");
            }
            self.kill();
        }
    }

    /// A subscriber on its own connection; yields (topic, payload, retain).
    struct Sub {
        rx: mpsc::UnboundedReceiver<(String, String, bool)>,
        task: JoinHandle<()>,
    }

    impl Drop for Sub {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl Sub {
        async fn new(port: u16, filter: &str) -> Sub {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let id = format!("sub-{}", N.fetch_add(1, Ordering::SeqCst));
            let mut opts = MqttOptions::new(id, "127.0.0.1", port);
            opts.set_keep_alive(Duration::from_secs(5))
                .set_max_packet_size(1 << 20, 1 << 20);
            let (client, mut el) = AsyncClient::new(opts, 100);
            client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
            let (tx, mut rx) = mpsc::unbounded_channel();
            let task = tokio::spawn(async move {
                let _client = client;
                loop {
                    match el.poll().await {
                        Ok(Event::Incoming(Incoming::SubAck(_))) => {
                            let _ = tx.send(("$suback".to_owned(), String::new(), false));
                        }
                        Ok(Event::Incoming(Incoming::Publish(p))) => {
                            let payload = String::from_utf8(p.payload.to_vec()).unwrap();
                            let _ = tx.send((p.topic, payload, p.retain));
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            });
            let first = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(first.0, "$suback");
            Sub { rx, task }
        }

        /// Messages received until `quiet` passes without one.
        async fn drain(&mut self, quiet: Duration) -> Vec<(String, String, bool)> {
            let mut out = Vec::new();
            while let Ok(Some(m)) = tokio::time::timeout(quiet, self.rx.recv()).await {
                out.push(m);
            }
            out
        }

        /// Waits up to `limit` for a message on `topic` with `payload`.
        async fn wait_for(&mut self, topic: &str, payload: &str, limit: Duration) -> bool {
            let deadline = Instant::now() + limit;
            while let Ok(Some(m)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
                if m.0 == topic && m.1 == payload {
                    return true;
                }
            }
            false
        }
    }

    fn settings(port: u16, timeout: Duration) -> MqttSettings {
        let mut s = MqttSettings::new("127.0.0.1", port);
        s.client_id = format!("vigil-test-{port}");
        s.timeout = timeout;
        s.keep_alive = Duration::from_secs(10);
        s
    }

    fn utc(i: usize) -> String {
        format!("2026-01-01T00:{:02}:{:02}Z", i / 60, i % 60)
    }

    /// Makes store-ordered records from (stream, kind_of, partial JSON).
    fn records(parts: Vec<(&str, &str, Value)>) -> Vec<Outgoing> {
        let mut counters: HashMap<String, usize> = HashMap::new();
        parts
            .into_iter()
            .enumerate()
            .map(|(i, (stream, kind_of, mut v))| {
                let n = counters.entry(stream.to_owned()).or_default();
                *n += 1;
                let id = format!("{stream}/{n}");
                v["type"] = json!(kind_of);
                v["run"] = json!("01JTESTRUN");
                v["id"] = json!(id);
                v["stream"] = json!(stream);
                v["utc"] = json!(utc(i));
                Outgoing {
                    seq: i as i64,
                    run: "01JTESTRUN".to_owned(),
                    id,
                    stream: stream.to_owned(),
                    kind_of: kind_of.to_owned(),
                    json: v.to_string(),
                    stored_ns: None,
                }
            })
            .collect()
    }

    fn event(stream: &str, event: &str, kind: &str, phase: &str, labels: &[&str]) -> Value {
        json!({"event": format!("{stream}/{event}"), "kind": kind, "phase": phase,
               "labels": labels, "start": 1.0, "end": null})
    }

    /// 250 records over two streams, interleaved.
    fn scenario() -> Vec<Outgoing> {
        let mut cam: Vec<(&str, &str, Value)> = Vec::new();
        for k in 0..40 {
            cam.push((
                "cam1",
                "event",
                event(
                    "cam1",
                    &format!("motion/{k}"),
                    "motion",
                    "start",
                    &["motion"],
                ),
            ));
            cam.push((
                "cam1",
                "caption",
                json!({"start": 0.0, "end": 5.0, "text": format!("caption {k}")}),
            ));
            cam.push((
                "cam1",
                "event",
                event("cam1", &format!("motion/{k}"), "motion", "end", &["motion"]),
            ));
        }
        cam.push((
            "cam1",
            "event",
            event("cam1", "person/1", "object", "start", &["person"]),
        ));
        cam.push((
            "cam1",
            "event",
            event("cam1", "motion/99", "motion", "start", &[]),
        ));
        cam.push((
            "cam1",
            "event",
            event("cam1", "motion/98", "motion", "start", &["car"]),
        ));
        cam.push((
            "cam1",
            "event",
            event("cam1", "motion/98", "motion", "update", &["car"]),
        ));
        cam.push((
            "cam1",
            "caption",
            json!({"start": 0.0, "end": 5.0, "text": "nothing"}),
        ));
        cam.push((
            "cam1",
            "caption",
            json!({"start": 5.0, "end": 9.0, "text": "a person walks left"}),
        ));
        let mut mic: Vec<(&str, &str, Value)> = Vec::new();
        for k in 0..40 {
            mic.push((
                "mic/2",
                "transcript",
                json!({"start": 0.0, "end": 1.0, "text": format!("words {k}"), "confidence": 0.5}),
            ));
            mic.push((
                "mic/2",
                "event",
                event("mic/2", &format!("loud/{k}"), "loud", "start", &["loud"]),
            ));
            mic.push((
                "mic/2",
                "event",
                event("mic/2", &format!("loud/{k}"), "loud", "end", &["loud"]),
            ));
        }
        mic.push((
            "mic/2",
            "transcript",
            json!({"start": 0.0, "end": 1.0, "text": "open the gate", "confidence": 0.81}),
        ));
        mic.push((
            "mic/2",
            "event",
            event("mic/2", "loud/77", "loud", "start", &["loud"]),
        ));
        mic.push((
            "mic/2",
            "event",
            event("mic/2", "loud/78", "loud", "start", &["loud"]),
        ));
        mic.push((
            "mic/2",
            "event",
            event("mic/2", "loud/999", "loud", "end", &["loud"]),
        ));
        let mut parts = Vec::new();
        let (mut a, mut b) = (cam.into_iter(), mic.into_iter());
        loop {
            let (x, y) = (a.next(), b.next());
            if x.is_none() && y.is_none() {
                break;
            }
            parts.extend(x);
            parts.extend(y);
        }
        let recs = records(parts);
        assert_eq!(recs.len(), 250);
        recs
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn delivers_records_state_and_status() {
        let broker = Broker::start(free_port());
        let mut sub = Sub::new(broker.port, "vigil/#").await;
        let recs = scenario();
        let mut t = MqttTransport::new(settings(broker.port, Duration::from_secs(10)));
        for batch in recs.chunks(100) {
            t.deliver(batch).await.unwrap();
        }

        let got = sub.drain(Duration::from_millis(500)).await;
        let topic = |r: &Outgoing| format!("vigil/{}/{}s", r.stream.replace('/', "_"), r.kind_of);
        let mut want: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in &recs {
            want.entry(topic(r)).or_default().push(r.json.clone());
        }
        let mut have: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (t, p, _) in &got {
            if !t.ends_with("/state") && t != "vigil/status" {
                have.entry(t.clone()).or_default().push(p.clone());
            }
        }
        assert_eq!(
            want.keys().collect::<Vec<_>>(),
            vec![
                "vigil/cam1/captions",
                "vigil/cam1/events",
                "vigil/mic_2/events",
                "vigil/mic_2/transcripts"
            ]
        );
        assert_eq!(have, want, "every record on its topic, in order");
        assert_eq!(got.iter().filter(|m| m.0 == "vigil/cam1/state").count(), 3);
        assert!(got.iter().any(|m| m.0 == "vigil/status" && m.1 == "online"));

        // Retained messages, as a fresh subscriber (e.g. Home Assistant) sees them.
        let mut fresh = Sub::new(broker.port, "vigil/#").await;
        let retained = fresh.drain(Duration::from_millis(500)).await;
        let find = |topic: &str| -> Value {
            let m = retained
                .iter()
                .find(|m| m.0 == topic)
                .unwrap_or_else(|| panic!("no retained {topic}: {retained:?}"));
            assert!(m.2, "{topic} is retained");
            serde_json::from_str(&m.1).unwrap_or(Value::String(m.1.clone()))
        };
        assert_eq!(retained.len(), 3, "{retained:?}");
        assert_eq!(find("vigil/status"), json!("online"));
        let last_utc = |stream: &str| {
            let r = recs.iter().rev().find(|r| r.stream == stream).unwrap();
            utc(r.seq as usize)
        };
        assert_eq!(
            find("vigil/cam1/state"),
            json!({"stream": "cam1", "active": ["car", "motion", "person"],
                   "events": {"motion": 2, "object": 1},
                   "caption": "a person walks left", "transcript": null,
                   "utc": last_utc("cam1")})
        );
        assert_eq!(
            find("vigil/mic_2/state"),
            json!({"stream": "mic/2", "active": ["loud"], "events": {"loud": 2},
                   "caption": null, "transcript": "open the gate",
                   "utc": last_utc("mic/2")})
        );

        // A clean close leaves "offline" retained.
        t.close().await;
        let mut after = Sub::new(broker.port, "vigil/status").await;
        let status = after.drain(Duration::from_millis(300)).await;
        assert_eq!(
            status,
            vec![("vigil/status".to_owned(), "offline".to_owned(), true)]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn broker_down_restarted_and_stalled() {
        let port = free_port();
        let timeout = Duration::from_secs(2);
        let recs = scenario();
        let mut t = MqttTransport::new(settings(port, timeout));

        // Broker down: fails quickly and says where.
        let start = Instant::now();
        let err = t.deliver(&recs[..50]).await.unwrap_err();
        assert!(start.elapsed() < timeout + Duration::from_secs(1));
        assert!(err.0.contains(&format!("127.0.0.1:{port}")), "{err}");
        eprintln!("broker down: {err}");

        // Broker up on the same port: the same batch goes through.
        let mut broker = Broker::start(port);
        t.deliver(&recs[..50]).await.unwrap();

        // Broker restarted between batches: the next deliver reconnects.
        broker.kill();
        broker.spawn();
        let mut sub = Sub::new(port, "vigil/#").await;
        t.deliver(&recs[50..100]).await.unwrap();
        let got = sub.drain(Duration::from_millis(300)).await;
        assert!(got.iter().any(|m| m.0 == "vigil/status" && m.1 == "online"));
        let n = got
            .iter()
            .filter(|m| !m.0.ends_with("/state") && m.0 != "vigil/status")
            .count();
        assert_eq!(n, 50);

        // Broker stops answering (SIGSTOP): Err within the timeout, no hang.
        broker.signal("-STOP");
        let start = Instant::now();
        let err = t.deliver(&recs[100..200]).await.unwrap_err();
        let took = start.elapsed();
        eprintln!("broker stalled: {err} ({took:?})");
        assert!(took < timeout + Duration::from_secs(1), "{took:?}");
        broker.signal("-CONT");
        t.deliver(&recs[100..200]).await.unwrap();

        // A deliver cancelled midway by the caller: the next one must not
        // count stale acks; it reconnects and delivers everything.
        broker.signal("-STOP");
        let cancelled =
            tokio::time::timeout(Duration::from_millis(300), t.deliver(&recs[200..])).await;
        assert!(cancelled.is_err());
        broker.signal("-CONT");
        let mut sub = Sub::new(port, "vigil/+/events").await;
        t.deliver(&recs[200..]).await.unwrap();
        let got = sub.drain(Duration::from_millis(300)).await;
        let want = recs[200..].iter().filter(|r| r.kind_of == "event").count();
        assert!(got.len() >= want, "{} < {want}", got.len());
        t.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tls() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = free_port();
        let mut broker = Broker::configure(port, "allow_anonymous true\n");
        let d = broker.dir.path().to_owned();
        let sh = |cmd: &str| {
            let out = Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .current_dir(&d)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{cmd}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        sh(
            "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=vigil-test-ca \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign",
        );
        sh(
            "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1",
        );
        sh(
            "printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > ext.cnf && \
            openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile ext.cnf",
        );
        let mut conf = std::fs::read_to_string(&broker.conf).unwrap();
        for (k, f) in [
            ("cafile", "ca.crt"),
            ("certfile", "server.crt"),
            ("keyfile", "server.key"),
        ] {
            conf.push_str(&format!("{k} {}\n", d.join(f).display()));
        }
        std::fs::write(&broker.conf, conf).unwrap();
        broker.spawn();

        use rustls::pki_types::{CertificateDer, pem::PemObject};
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(d.join("ca.crt")).unwrap())
            .unwrap();
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let recs = scenario();

        // Unknown CA: an error that says TLS, promptly.
        let mut s = settings(port, Duration::from_secs(3));
        s.tls = Some(Arc::new(
            rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        ));
        let err = MqttTransport::new(s.clone())
            .deliver(&recs[..5])
            .await
            .unwrap_err();
        eprintln!("unknown CA: {err}");
        assert!(err.0.contains("TLS"), "{err}");

        s.tls = Some(Arc::new(config));
        let mut t = MqttTransport::new(s);
        t.deliver(&recs[..100]).await.unwrap();
        t.close().await;
    }

    /// TCP proxy that can freeze: stops forwarding but keeps both sockets
    /// open, as a client whose host hangs or loses its network.
    async fn freezing_proxy(to: u16) -> (u16, Arc<AtomicBool>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = Arc::new(AtomicBool::new(false));
        let f = frozen.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await else {
                    continue;
                };
                let (ir, iw) = inbound.into_split();
                let (or, ow) = outbound.into_split();
                tokio::spawn(pump(ir, ow, f.clone()));
                tokio::spawn(pump(or, iw, f.clone()));
            }
        });
        (port, frozen)
    }

    async fn pump(
        mut r: tokio::net::tcp::OwnedReadHalf,
        mut w: tokio::net::tcp::OwnedWriteHalf,
        frozen: Arc<AtomicBool>,
    ) {
        let mut buf = vec![0u8; 16384];
        loop {
            let n = match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if frozen.load(Ordering::SeqCst) || w.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        if frozen.load(Ordering::SeqCst) {
            // hold both halves open, silently
            std::future::pending::<()>().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn last_will_on_crash() {
        let broker = Broker::start(free_port());
        let recs = scenario();
        let mut sub = Sub::new(broker.port, "vigil/status").await;

        // 1. Client host hangs: no packets, sockets stay open. The broker
        // publishes the will after 1.5 x keep-alive.
        let (proxy, frozen) = freezing_proxy(broker.port).await;
        let mut s = settings(proxy, Duration::from_secs(3));
        s.keep_alive = Duration::from_secs(2);
        let mut t = MqttTransport::new(s);
        t.deliver(&recs[..10]).await.unwrap();
        assert!(
            sub.wait_for("vigil/status", "online", Duration::from_secs(2))
                .await
        );
        // Idle for > 2 x keep-alive: the driver's pings keep us online.
        let idle = sub.drain(Duration::from_secs(5)).await;
        assert!(idle.is_empty(), "status changed while idle: {idle:?}");
        frozen.store(true, Ordering::SeqCst);
        let start = Instant::now();
        assert!(
            sub.wait_for("vigil/status", "offline", Duration::from_secs(15))
                .await,
            "no last will after the client froze"
        );
        eprintln!("will after freeze: {:?}", start.elapsed());
        drop(t);

        // 2. Process dies (transport dropped without close): the socket
        // closes without DISCONNECT and the broker publishes the will at once.
        let mut t = MqttTransport::new(settings(broker.port, Duration::from_secs(3)));
        t.deliver(&recs[10..20]).await.unwrap();
        assert!(
            sub.wait_for("vigil/status", "online", Duration::from_secs(2))
                .await
        );
        drop(t);
        assert!(
            sub.wait_for("vigil/status", "offline", Duration::from_secs(3))
                .await
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn auth_refused_and_accepted() {
        let broker = Broker::with_password(free_port(), "user", "pass-w0rd");
        let recs = scenario();

        let mut s = settings(broker.port, Duration::from_secs(3));
        s.username = Some("user".to_owned());
        s.password = Some("wrong-s3cret".to_owned());
        let mut t = MqttTransport::new(s.clone());
        let err = t.deliver(&recs[..5]).await.unwrap_err();
        eprintln!("wrong password: {err}");
        assert!(err.0.contains("refused"), "{err}");
        assert!(
            err.0.contains(&format!("127.0.0.1:{}", broker.port)),
            "{err}"
        );
        assert!(!err.0.contains("wrong-s3cret"), "{err}");
        assert!(!format!("{s:?}").contains("wrong-s3cret"));

        let mut anon = settings(broker.port, Duration::from_secs(3));
        anon.client_id = "anon".to_owned();
        let err = MqttTransport::new(anon)
            .deliver(&recs[..5])
            .await
            .unwrap_err();
        eprintln!("anonymous: {err}");
        assert!(err.0.contains("refused"), "{err}");

        s.password = Some("pass-w0rd".to_owned());
        let mut t = MqttTransport::new(s);
        t.deliver(&recs[..5]).await.unwrap();
        t.close().await;
    }

    #[test]
    fn topics_are_sanitized() {
        let mut s = settings(1, Duration::from_secs(1));
        s.prefix = "home/vigil/".to_owned();
        let t = MqttTransport::new(s);
        let r = Outgoing {
            seq: 0,
            run: "r".into(),
            id: "x".into(),
            stream: "a/b+c#d".into(),
            kind_of: "transcript".into(),
            json: "{}".into(),
            stored_ns: None,
        };
        assert_eq!(t.record_topic(&r), "home/vigil/a_b_c_d/transcripts");
        assert_eq!(t.state_topic("a/b"), "home/vigil/a_b/state");
        assert_eq!(t.status_topic(), "home/vigil/status");
    }
}
