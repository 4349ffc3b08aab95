//! The connection to the broker: connect, publish, count the acks,
//! reconnect, say goodbye.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, Incoming, LastWill,
    MqttOptions, QoS, TlsConfiguration,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::config::Broker;
use super::discovery::{Catalog, Discovery, Step};
use super::state::States;
use super::topics::Topics;
use crate::config::MqttConfig;
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
    /// A retained message (not empty) on this topic: a discovery config
    /// already on the broker when the connection subscribed.
    Retained(String),
}

/// How long after subscribing the retained discovery configs are taken as
/// all there: brokers send them right after the subscription's ack.
const RETAINED_SETTLE: Duration = Duration::from_secs(1);
/// How long discovery waits to connect again by itself after it failed
/// while no records came.
const IDLE_RETRY: Duration = Duration::from_secs(10);

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
    /// Which connection of the transport this is.
    serial: u64,
    /// Every discovery config and value was published on it.
    announced: bool,
    /// When it subscribed to the discovery configs.
    since: Instant,
    /// Discovery configs found retained on the broker.
    retained: BTreeSet<String>,
    /// Those no stream wants were cleared.
    swept: bool,
}

impl Conn {
    fn note(&mut self, note: &Note) {
        if let Note::Retained(topic) = note
            && !self.swept
        {
            self.retained.insert(topic.clone());
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Delivers records to an MQTT broker; see the module documentation.
pub struct MqttTransport {
    config: MqttConfig,
    broker: Broker,
    pub(super) topics: Topics,
    conn: Option<Conn>,
    /// Connections opened so far.
    serial: u64,
    states: States,
    /// Home Assistant discovery, when on.
    discovery: Option<Discovery>,
    /// No discovery-only connection before this (one failed).
    idle_after: Option<Instant>,
    /// (acknowledged, expected) publishes of the current attempt, for errors.
    progress: (usize, usize),
}

impl MqttTransport {
    /// Creates the transport (see [`LiveConfig::build`](crate::sink::outbox::LiveConfig::build));
    /// it connects lazily on the first `deliver`.
    pub(super) fn new(config: MqttConfig, broker: Broker) -> MqttTransport {
        MqttTransport {
            topics: Topics::new(&config.prefix).on_node(config.node.as_deref()),
            config,
            broker,
            conn: None,
            serial: 0,
            states: States::default(),
            discovery: None,
            idle_after: None,
            progress: (0, 0),
        }
    }

    /// Announces `catalog`'s streams to Home Assistant (`discovery = true`).
    pub fn discovering(mut self, catalog: Catalog) -> MqttTransport {
        self.discovery = Some(Discovery::new(
            catalog,
            &self.config.prefix,
            &self.config.discovery_prefix,
        ));
        self
    }

    /// What discovery should publish now, with the connection it was
    /// worked out for.
    fn discovery_step(&self) -> Option<(Step, Option<u64>, bool)> {
        let d = self.discovery.as_ref()?;
        let conn = self.conn.as_ref();
        let fresh = conn.is_none_or(|c| !c.announced);
        let sweep = conn.filter(|c| {
            c.announced && !c.swept && c.since.elapsed() >= RETAINED_SETTLE && d.settled()
        });
        let empty = BTreeSet::new();
        let stale = sweep.map_or(&empty, |c| &c.retained);
        let step = d.step(&self.states, fresh, stale);
        Some((step, conn.map(|c| c.serial), sweep.is_some()))
    }

    /// The broker took `step`'s publishes on the current connection.
    async fn discovery_done(&mut self, step: Step, serial: Option<u64>, swept: bool) {
        if step.swept > 0 {
            tracing::info!(
                configs = step.swept,
                "Home Assistant: cleared what an earlier run announced for streams no longer watched"
            );
        }
        if let Some(d) = self.discovery.as_mut() {
            d.done(step);
        }
        let filter = self
            .discovery
            .as_ref()
            .map(|d| d.announcer().config_filter());
        if let Some(conn) = self.conn.as_mut() {
            // Worked out for another connection (it reconnected midway):
            // the next step publishes everything again.
            if serial.is_none() || serial == Some(conn.serial) {
                conn.announced = true;
            }
            if serial == Some(conn.serial) && swept {
                conn.swept = true;
                conn.retained.clear();
                if let Some(f) = filter {
                    let _ = conn.client.unsubscribe(f).await;
                }
            }
        }
    }

    /// Bound for connect + acks of one batch.
    fn timeout(&self) -> Duration {
        Duration::from_nanos(self.config.timeout.nanos())
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
                            describe(&self.broker, &e, "connection lost while idle")
                        );
                        dead = true;
                    }
                    Ok(note) => conn.note(&note),
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
    async fn connect(&mut self) -> Result<Conn, Failed> {
        let s = &self.broker;
        let mut opts = MqttOptions::new(s.client_id.clone(), s.host.clone(), s.port);
        let keep_alive = Duration::from_nanos(self.config.keep_alive.nanos());
        let keep_alive = if keep_alive.is_zero() {
            Duration::ZERO
        } else {
            keep_alive.clamp(Duration::from_secs(1), Duration::from_secs(u16::MAX.into()))
        };
        opts.set_keep_alive(keep_alive)
            .set_clean_session(true)
            .set_inflight(MAX_INFLIGHT)
            .set_max_packet_size(MAX_INCOMING_PACKET, MAX_OUTGOING_PACKET)
            .set_last_will(LastWill::new(
                self.topics.status(),
                "offline",
                QoS::AtLeastOnce,
                true,
            ));
        match (&self.config.username, &s.password) {
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
        let secs = self.timeout().as_secs_f64().ceil().max(1.0) as u64;
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
                    s.addr(),
                    refusal(ack.code)
                )));
            }
            Ok(other) => {
                return Err(self.failed(format!(
                    "MQTT broker {} answered the connect with {other:?} instead of CONNACK",
                    s.addr()
                )));
            }
            Err(e) => return Err(self.failed(describe(s, &e, "connecting failed"))),
        }
        tracing::info!(broker = %s.addr(), tls = s.tls.is_some(), "connected to MQTT broker");

        let (tx, notes) = mpsc::unbounded_channel();
        let driver = tokio::spawn(drive(eventloop, tx));
        // The configs an earlier run left: those no stream wants go once
        // the catalog is settled.
        if let Some(d) = &self.discovery
            && client
                .subscribe(d.announcer().config_filter(), QoS::AtMostOnce)
                .await
                .is_err()
        {
            return Err(self.failed(format!(
                "MQTT broker {}: the connection closed at once",
                s.addr()
            )));
        }
        self.serial += 1;
        Ok(Conn {
            client,
            notes,
            driver,
            busy: false,
            serial: self.serial,
            announced: false,
            since: Instant::now(),
            retained: BTreeSet::new(),
            swept: false,
        })
    }

    /// Wraps a message, removing the password should it ever appear in it.
    fn failed(&self, msg: String) -> Failed {
        Failed(redact(msg, self.broker.password.as_deref()))
    }

    /// One attempt: connect if needed, publish everything, wait for all acks.
    async fn attempt(&mut self, pubs: &[(String, Vec<u8>, bool)]) -> Result<(), Failed> {
        let mut expected = pubs.len();
        let fresh = self.conn.is_none();
        if fresh {
            let conn = self.connect().await?;
            self.conn = Some(conn);
            expected += 1;
        }
        self.progress = (0, expected);
        let status = self.topics.status();
        let Some(conn) = self.conn.as_mut() else {
            return Err(self.failed(format!("MQTT broker {}: not connected", self.broker.addr())));
        };
        conn.busy = true;
        let mut requests: Vec<(String, Vec<u8>, bool)> = Vec::with_capacity(expected);
        if fresh {
            requests.push((status, b"online".to_vec(), true));
        }
        for (topic, payload, retain) in pubs {
            requests.push((topic.clone(), payload.clone(), *retain));
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
                Some(note @ Note::Retained(_)) => conn.note(&note),
                Some(Note::Lost(e)) => {
                    let msg = describe(
                        &self.broker,
                        &e,
                        &format!("connection lost after {acked} of {expected} acknowledgements"),
                    );
                    return Err(Failed(redact(msg, self.broker.password.as_deref())));
                }
                None => {
                    let msg = format!(
                        "MQTT broker {}: connection lost after {acked} of {expected} acknowledgements",
                        self.broker.addr()
                    );
                    return Err(Failed(msg));
                }
            }
        }
        conn.busy = false;
        Ok(())
    }

    /// Publishes, reconnecting once if an idle connection turned out dead.
    async fn publish_all(&mut self, pubs: &[(String, Vec<u8>, bool)]) -> Result<(), Failed> {
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

    /// The snapshot an event record names, as JPEG bytes, retained on its
    /// stream's snapshot topic and its label's (a picture retention has
    /// deleted since is left out).
    fn snapshot(&self, rec: &Outgoing, pubs: &mut Vec<(String, Vec<u8>, bool)>) {
        let Some(root) = self
            .config
            .media_root
            .as_deref()
            .filter(|_| self.config.snapshots)
        else {
            return;
        };
        if rec.kind_of != "event" {
            return;
        }
        #[derive(serde::Deserialize)]
        struct Named {
            snapshot: Option<String>,
            #[serde(default)]
            labels: Vec<String>,
        }
        let Ok(Named {
            snapshot: Some(path),
            labels,
        }) = serde_json::from_str::<Named>(&rec.json)
        else {
            return;
        };
        let Ok(file) = crate::sink::retention::media::resolve(root, &path) else {
            return;
        };
        let Ok(jpeg) = std::fs::read(&file) else {
            return;
        };
        for label in labels.iter().map(|l| Some(l.as_str())).chain([None]) {
            pubs.push((self.topics.snapshot(&rec.stream, label), jpeg.clone(), true));
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
                Some(Note::Acked(_)) | Some(Note::Disconnected) | Some(Note::Retained(_)) => {}
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
        let mut pubs: Vec<(String, Vec<u8>, bool)> = Vec::with_capacity(batch.len() * 2);
        let mut touched: BTreeSet<&str> = BTreeSet::new();
        for rec in batch {
            pubs.push((
                self.topics.record(rec),
                rec.json.clone().into_bytes(),
                false,
            ));
            self.states.apply(rec);
            touched.insert(rec.stream.as_str());
            self.snapshot(rec, &mut pubs);
        }
        for stream in touched {
            pubs.push((
                self.topics.state(stream),
                self.states.json(stream).into_bytes(),
                true,
            ));
        }
        self.check_idle_conn();
        let step = self.discovery_step();
        if let Some((step, _, _)) = &step {
            pubs.extend(step.pubs.iter().cloned());
        }

        let limit = self.timeout();
        let deadline = Instant::now() + limit;
        match tokio::time::timeout_at(deadline, self.publish_all(&pubs)).await {
            Ok(Ok(())) => {
                tracing::debug!(records = batch.len(), "delivered to MQTT broker");
                if let Some((step, serial, swept)) = step {
                    self.discovery_done(step, serial, swept).await;
                }
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
                        self.broker.addr()
                    )
                } else {
                    format!(
                        "MQTT broker {}: timed out after {limit:?} with {acked} of {expected} publishes acknowledged",
                        self.broker.addr()
                    )
                };
                tracing::warn!("{msg}");
                Err(Failed(msg))
            }
        }
    }

    /// Publishes what discovery has to say while no records come: streams
    /// attached or detached, stale configs cleared.
    async fn idle(&mut self) -> Result<(), Failed> {
        if self.discovery.is_none() || self.idle_after.is_some_and(|t| Instant::now() < t) {
            return Ok(());
        }
        self.check_idle_conn();
        let Some((step, serial, swept)) = self.discovery_step() else {
            return Ok(());
        };
        if step.pubs.is_empty() {
            return Ok(());
        }
        let limit = self.timeout();
        let published = tokio::time::timeout(limit, self.publish_all(&step.pubs))
            .await
            .unwrap_or_else(|_| {
                Err(Failed(format!(
                    "MQTT broker {}: Home Assistant discovery timed out after {limit:?}",
                    self.broker.addr()
                )))
            });
        match published {
            Ok(()) => {
                self.idle_after = None;
                self.discovery_done(step, serial, swept).await;
                Ok(())
            }
            Err(e) => {
                self.conn = None;
                self.idle_after = Some(Instant::now() + IDLE_RETRY);
                Err(e)
            }
        }
    }

    async fn close(&mut self) {
        let status = self.topics.status();
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let clean = tokio::time::timeout(self.timeout(), Self::close_inner(&mut conn, status))
            .await
            .unwrap_or(false);
        if clean {
            tracing::info!(broker = %self.broker.addr(), "disconnected from MQTT broker");
        } else {
            tracing::warn!(broker = %self.broker.addr(), "MQTT close was not clean");
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
            Ok(Event::Incoming(Incoming::Publish(p))) if p.retain && !p.payload.is_empty() => {
                Note::Retained(p.topic)
            }
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
fn describe(s: &Broker, e: &ConnectionError, what: &str) -> String {
    let at = s.addr();
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
