//! One contract every live sink's [`Transport`] keeps, checked alike
//! against real far ends (`tests/support/brokers.rs`): an HTTP receiver
//! for the webhook, mosquitto for MQTT, nats-server with JetStream for
//! NATS. Records arrive intact and in order; a far end that is down gives
//! a prompt error saying where, which the outbox retries until everything
//! is delivered; wrong credentials are refused; no error shows a secret.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigil::config::{MqttConfig, NatsConfig, WebhookConfig};
use vigil::metrics::Metrics;
use vigil::sink::Sink;
use vigil::sink::outbox::{LiveConfig, LiveSink, Outbox, Outgoing, Transport};
use vigil::sink::store::{Retention, StoreSink};

use crate::brokers::{HttpReceiver, Mosquitto, MqttSubscriber, NatsServer};

/// The sinks' `timeout`: the bound on one attempt.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Delivery settings every far end's configuration ends with.
const DELIVERY: &str = "batch = 10\nretry_max = \"1s\"\ntimeout = \"2s\"\ndrain = \"30s\"\n";
const RIGHT: &str = "right-s3cret-4711";
const WRONG: &str = "wrong-s3cret-0815";

/// A far end as the contract sees it.
trait FarEnd {
    type Config: LiveConfig;
    /// The sink's configuration, with the right credentials or wrong ones.
    fn config(&self, right: bool) -> Self::Config;
    /// Secrets besides the credentials that no error may show.
    fn secrets(&self) -> Vec<String> {
        Vec::new()
    }
    /// Where it listens, as errors must name it.
    fn address(&self) -> String;
    fn up(&mut self);
    fn down(&mut self);
    /// Every record that arrived, in order (duplicates allowed).
    fn arrived(&self) -> Vec<Value>;
}

/// `RIGHT` and `WRONG` in files, for `*_file` settings.
fn secret_files(dir: &Path) -> (PathBuf, PathBuf) {
    let (right, wrong) = (dir.join("right"), dir.join("wrong"));
    std::fs::write(&right, format!("{RIGHT}\n")).expect("secret file");
    std::fs::write(&wrong, format!("{WRONG}\n")).expect("secret file");
    (right, wrong)
}

fn parse<C: serde::de::DeserializeOwned>(text: &str) -> C {
    toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Records of two streams and every kind, in store order.
fn records(run: &str, n: usize) -> Vec<Outgoing> {
    const KINDS: [&str; 3] = ["event", "caption", "transcript"];
    (0..n)
        .map(|i| {
            let stream = ["cam1", "mic/2"][i % 2];
            let kind = KINDS[i % 3];
            let id = format!("{stream}/{i}");
            let json = json!({"type": kind, "run": run, "id": id, "stream": stream,
                              "utc": "2026-01-01T00:00:00Z", "text": format!("\"{i}\", ünïcode ✓"),
                              "kind": "motion", "phase": "start", "event": id});
            Outgoing {
                seq: i as i64 + 1,
                run: run.into(),
                id,
                stream: stream.into(),
                kind_of: kind.into(),
                json: json.to_string(),
                stored_ns: None,
            }
        })
        .collect()
}

/// The first arrival of each record of `run`, in order.
fn firsts(arrived: &[Value], run: &str) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    arrived
        .iter()
        .filter(|v| v["run"] == run && seen.insert(v["id"].to_string()))
        .cloned()
        .collect()
}

/// Waits up to `limit` for `n` records of `run` to have arrived.
fn wait_arrived<F: FarEnd>(far: &F, run: &str, n: usize, limit: Duration) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let got = firsts(&far.arrived(), run);
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A failed attempt: prompt, says where, shows no secret.
#[track_caller]
fn check_failure<F: FarEnd>(far: &F, what: &str, took: Duration, result: Result<(), String>) {
    let Err(e) = result else {
        panic!("{what}: delivered");
    };
    eprintln!("{what}: {e} ({took:?})");
    assert!(took < TIMEOUT + Duration::from_secs(1), "{what}: {took:?}");
    assert!(e.contains(&far.address()), "{what}: says where: {e}");
    for secret in [RIGHT, WRONG]
        .into_iter()
        .map(String::from)
        .chain(far.secrets())
    {
        assert!(!e.contains(&secret), "{what}: shows a secret: {e}");
    }
}

/// The contract, for any transport.
fn contract<F: FarEnd>(mut far: F) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let attempt = |t: &mut <F::Config as LiveConfig>::Transport, batch: &[Outgoing]| {
        let start = Instant::now();
        let r = runtime.block_on(t.deliver(batch)).map_err(|e| e.0);
        (start.elapsed(), r)
    };

    // Delivered records arrive intact and in order.
    let sent = records("01CONTRACT", 25);
    let mut t = far.config(true).build().expect("the transport");
    for batch in sent.chunks(10) {
        let (_, r) = attempt(&mut t, batch);
        r.expect("delivered");
    }
    let want: Vec<Value> = sent
        .iter()
        .map(|r| serde_json::from_str(&r.json).expect("JSON"))
        .collect();
    let got = wait_arrived(&far, "01CONTRACT", want.len(), Duration::from_secs(10));
    assert_eq!(got, want, "every record, intact, in order");

    // Wrong credentials: refused, and the error shows neither secret.
    let mut refused = far.config(false).build().expect("the transport");
    let (took, r) = attempt(&mut refused, &sent[..1]);
    check_failure(&far, "wrong credentials", took, r);

    // The far end down: a prompt error, for a connection in use too.
    far.down();
    let (took, r) = attempt(&mut t, &sent[..1]);
    check_failure(&far, "down", took, r);
    runtime.block_on(t.close());
    drop(t);

    // The outbox retries until the far end is back, and everything of the
    // store arrives, in store order.
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("events.db");
    let name = F::Config::NAME.to_string();
    let mut store = StoreSink::open(&path, Retention::default(), std::slice::from_ref(&name))
        .expect("the store");
    let mut maker = vigil::fuse::RecordMaker::new("01OUTBOX".into(), "cam1".into());
    let stored: Vec<_> = (0..30u64)
        .map(|i| {
            let t = vigil::time::Timestamp(i * 1_000_000_000);
            maker.caption(t, t, format!("caption {i}"))
        })
        .collect();
    store.send(&stored).expect("stored");
    let sink = LiveSink::new(&far.config(true)).expect("the live sink");
    let outbox =
        Outbox::start(&path, vec![sink], &store.committed(), &Metrics::new()).expect("outbox");
    std::thread::sleep(Duration::from_millis(1500));
    far.up();
    let reports = outbox.finish();
    let r = &reports[0];
    assert_eq!(r.sink, name);
    assert_eq!((r.delivered, r.pending), (30, 0), "{r:?}");
    assert!(r.retries >= 1, "the outage was retried: {r:?}");
    assert_eq!(r.last_error, None);
    let want: Vec<Value> = stored
        .iter()
        .map(|r| serde_json::to_value(r).expect("JSON"))
        .collect();
    let got = wait_arrived(&far, "01OUTBOX", want.len(), Duration::from_secs(10));
    assert_eq!(got, want, "the store's records, in store order");
}

// ---------------------------------------------------------------- webhook

struct Webhook {
    receiver: HttpReceiver,
    dir: tempfile::TempDir,
}

impl Webhook {
    /// The path, as Slack's or Discord's webhooks, is a secret.
    const PATH: &str = "/hook/path-s3cret-1234";

    fn new() -> Webhook {
        let gate = Arc::new(|r: &crate::brokers::Request| {
            r.header("authorization") == Some(&format!("Bearer {RIGHT}"))
        });
        Webhook {
            receiver: HttpReceiver::with_gate(gate),
            dir: tempfile::tempdir().expect("tmp"),
        }
    }
}

impl FarEnd for Webhook {
    type Config = WebhookConfig;

    fn config(&self, right: bool) -> WebhookConfig {
        let (r, w) = secret_files(self.dir.path());
        let bearer = if right { r } else { w };
        parse(&format!(
            "url = \"{}\"\nbearer_file = \"{}\"\n{DELIVERY}",
            self.receiver.url(Webhook::PATH),
            bearer.display()
        ))
    }

    fn secrets(&self) -> Vec<String> {
        vec![Webhook::PATH.into()]
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.receiver.port)
    }

    fn up(&mut self) {
        self.receiver.up();
    }

    fn down(&mut self) {
        self.receiver.down();
    }

    fn arrived(&self) -> Vec<Value> {
        self.receiver.records()
    }
}

#[test]
fn webhook_keeps_the_transport_contract() {
    contract(Webhook::new());
}

// ---------------------------------------------------------------- MQTT

struct Mqtt {
    broker: Mosquitto,
    subscriber: MqttSubscriber,
    dir: tempfile::TempDir,
}

impl Mqtt {
    fn new() -> Mqtt {
        // Sessions are kept across a clean stop: the subscriber misses
        // nothing published while it reconnects.
        let mut broker =
            Mosquitto::configure(crate::brokers::free_port(), "allow_anonymous false\n");
        broker.keep_sessions();
        broker.require_password("vigil", RIGHT);
        broker.up();
        let subscriber = MqttSubscriber::new(broker.port, "vigil/#", Some(("vigil", RIGHT)));
        Mqtt {
            broker,
            subscriber,
            dir: tempfile::tempdir().expect("tmp"),
        }
    }
}

impl FarEnd for Mqtt {
    type Config = MqttConfig;

    fn config(&self, right: bool) -> MqttConfig {
        let (r, w) = secret_files(self.dir.path());
        let password = if right { r } else { w };
        parse(&format!(
            "url = \"{}\"\nusername = \"vigil\"\npassword_file = \"{}\"\n{DELIVERY}",
            self.broker.url(),
            password.display()
        ))
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.broker.port)
    }

    fn up(&mut self) {
        self.broker.up();
    }

    fn down(&mut self) {
        self.broker.stop();
    }

    fn arrived(&self) -> Vec<Value> {
        self.subscriber
            .messages()
            .into_iter()
            .filter(|m| !m.topic.ends_with("/state") && !m.topic.ends_with("/status"))
            .filter_map(|m| serde_json::from_str(&m.payload).ok())
            .collect()
    }
}

#[test]
fn mqtt_keeps_the_transport_contract() {
    contract(Mqtt::new());
}

// ---------------------------------------------------------------- NATS

struct Nats {
    server: NatsServer,
    dir: tempfile::TempDir,
}

impl FarEnd for Nats {
    type Config = NatsConfig;

    fn config(&self, right: bool) -> NatsConfig {
        let (r, w) = secret_files(self.dir.path());
        let token = if right { r } else { w };
        parse(&format!(
            "url = \"{}\"\ntoken_file = \"{}\"\n{DELIVERY}",
            self.server.url(),
            token.display()
        ))
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.server.port)
    }

    fn up(&mut self) {
        self.server.up();
    }

    fn down(&mut self) {
        self.server.kill();
    }

    fn arrived(&self) -> Vec<Value> {
        self.server
            .messages("VIGIL", Some(RIGHT))
            .into_iter()
            .filter_map(|m| serde_json::from_str(&m.payload).ok())
            .collect()
    }
}

#[test]
fn nats_keeps_the_transport_contract() {
    contract(Nats {
        server: NatsServer::start(&["--auth", RIGHT]),
        dir: tempfile::tempdir().expect("tmp"),
    });
}
