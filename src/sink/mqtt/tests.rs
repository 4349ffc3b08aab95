//! The MQTT transport against a real mosquitto
//! (`tests/support/brokers.rs`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::MqttTransport;
use super::topics::Topics;
use crate::config::{Bounded, MqttConfig};
use crate::sink::outbox::{LiveConfig, Outgoing, Transport};

use crate::sink::brokers::{Mosquitto, free_port};

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

/// `[sinks.mqtt]` for a broker on `port`.
fn config(port: u16, timeout: Duration) -> MqttConfig {
    let mut c: MqttConfig = toml::from_str(&format!("url = \"mqtt://127.0.0.1:{port}\"")).unwrap();
    c.client_id = Some(format!("vigil-test-{port}"));
    c.timeout = Bounded::new(crate::time::Duration::from_nanos(timeout.as_nanos() as u64));
    c.keep_alive = Bounded::new(crate::time::Duration::from_secs(10));
    c
}

fn transport(config: &MqttConfig) -> MqttTransport {
    config.build().unwrap()
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
    let broker = Mosquitto::start();
    let mut sub = Sub::new(broker.port, "vigil/#").await;
    let recs = scenario();
    let mut t = transport(&config(broker.port, Duration::from_secs(10)));
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
               "utc": last_utc("cam1"), "zones": {}, "lines": {}, "rules": []})
    );
    assert_eq!(
        find("vigil/mic_2/state"),
        json!({"stream": "mic/2", "active": ["loud"], "events": {"loud": 2},
               "caption": null, "transcript": "open the gate",
               "utc": last_utc("mic/2"), "zones": {}, "lines": {}, "rules": []})
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
    let mut t = transport(&config(port, timeout));

    // Broker down: fails quickly and says where.
    let start = Instant::now();
    let err = t.deliver(&recs[..50]).await.unwrap_err();
    assert!(start.elapsed() < timeout + Duration::from_secs(1));
    assert!(err.0.contains(&format!("127.0.0.1:{port}")), "{err}");
    eprintln!("broker down: {err}");

    // Broker up on the same port: the same batch goes through.
    let mut broker = Mosquitto::on(port);
    t.deliver(&recs[..50]).await.unwrap();

    // Broker restarted between batches: the next deliver reconnects.
    broker.kill();
    broker.up();
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
    let cancelled = tokio::time::timeout(Duration::from_millis(300), t.deliver(&recs[200..])).await;
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
    let port = free_port();
    let mut broker = Mosquitto::configure(port, "allow_anonymous true\npersistence false\n");
    let d = broker.dir.path().to_owned();
    let sh = |cmd: &str| {
        let out = std::process::Command::new("sh")
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
    for ca in ["ca", "other-ca"] {
        sh(&format!(
            "openssl req -x509 -newkey rsa:2048 -nodes -keyout {ca}.key -out {ca}.crt -days 2 -subj /CN=vigil-test-{ca} \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign",
        ));
    }
    sh(
        "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1",
    );
    sh(
        "printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > ext.cnf && \
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile ext.cnf",
    );
    for (k, f) in [
        ("cafile", "ca.crt"),
        ("certfile", "server.crt"),
        ("keyfile", "server.key"),
    ] {
        broker.add_conf(&format!("{k} {}\n", d.join(f).display()));
    }
    broker.up();
    let recs = scenario();

    // Another CA: an error that says TLS, promptly.
    let mut c = config(port, Duration::from_secs(3));
    c.url = format!("mqtts://127.0.0.1:{port}");
    c.ca_file = Some(d.join("other-ca.crt"));
    let err = transport(&c).deliver(&recs[..5]).await.unwrap_err();
    eprintln!("unknown CA: {err}");
    assert!(err.0.contains("TLS"), "{err}");

    c.ca_file = Some(d.join("ca.crt"));
    let mut t = transport(&c);
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
    let broker = Mosquitto::start();
    let recs = scenario();
    let mut sub = Sub::new(broker.port, "vigil/status").await;

    // 1. Client host hangs: no packets, sockets stay open. The broker
    // publishes the will after 1.5 x keep-alive.
    let (proxy, frozen) = freezing_proxy(broker.port).await;
    let mut c = config(proxy, Duration::from_secs(3));
    c.keep_alive = Bounded::new(crate::time::Duration::from_secs(2));
    let mut t = transport(&c);
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
    let mut t = transport(&config(broker.port, Duration::from_secs(3)));
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
    let broker = Mosquitto::with_password("user", "pass-w0rd");
    let recs = scenario();
    let password = broker.dir.path().join("password");

    std::fs::write(&password, "wrong-s3cret\n").unwrap();
    let mut c = config(broker.port, Duration::from_secs(3));
    c.username = Some("user".to_owned());
    c.password_file = Some(password.clone());
    let mut t = transport(&c);
    let err = t.deliver(&recs[..5]).await.unwrap_err();
    eprintln!("wrong password: {err}");
    assert!(err.0.contains("refused"), "{err}");
    assert!(
        err.0.contains(&format!("127.0.0.1:{}", broker.port)),
        "{err}"
    );
    assert!(!err.0.contains("wrong-s3cret"), "{err}");

    let mut anon = config(broker.port, Duration::from_secs(3));
    anon.client_id = Some("anon".to_owned());
    let err = transport(&anon).deliver(&recs[..5]).await.unwrap_err();
    eprintln!("anonymous: {err}");
    assert!(err.0.contains("refused"), "{err}");

    std::fs::write(&password, "pass-w0rd\n").unwrap();
    let mut t = transport(&c);
    t.deliver(&recs[..5]).await.unwrap();
    t.close().await;
}

#[test]
fn topics_are_sanitized() {
    let t = Topics::new("home/vigil/");
    let r = Outgoing {
        seq: 0,
        run: "r".into(),
        id: "x".into(),
        stream: "a/b+c#d".into(),
        kind_of: "transcript".into(),
        json: "{}".into(),
        stored_ns: None,
    };
    assert_eq!(t.record(&r), "home/vigil/a_b_c_d/transcripts");
    assert_eq!(t.state("a/b"), "home/vigil/a_b/state");
    assert_eq!(t.status(), "home/vigil/status");
    // A node of a cluster has a status of its own.
    let n = Topics::new("vigil").on_node(Some("node/1"));
    assert_eq!(n.status(), "vigil/status/node_1");
    assert_eq!(n.state("a"), "vigil/a/state");
}
