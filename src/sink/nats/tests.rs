//! The NATS transport against a real nats-server with JetStream
//! (`tests/support/brokers.rs`).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use std::time::Instant as StdInstant;

use super::auth::{NatsAuth, split_userinfo};
use super::{NatsTransport, msg_id, subject};
use crate::config::{Bounded, NatsConfig};
use crate::sink::outbox::{Failed, LiveConfig, Outgoing, Transport};

use crate::sink::brokers::{NatsServer, free_port};

const T: Duration = Duration::from_secs(2);

/// `[sinks.nats]` for the server(s) at `url`.
fn config(url: &str) -> NatsConfig {
    let mut c: NatsConfig = toml::from_str(&format!("url = \"{url}\"")).unwrap();
    c.timeout = Bounded::new(crate::time::Duration::from_nanos(T.as_nanos() as u64));
    c
}

fn transport(config: &NatsConfig) -> NatsTransport {
    config.build().unwrap()
}

/// A file holding `secret`, for `*_file` settings.
fn secret_file(dir: &Path, name: &str, secret: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, secret).unwrap();
    path
}

fn records(run: &str, stream: &str, from: i64, n: i64) -> Vec<Outgoing> {
    const KINDS: [&str; 3] = ["event", "caption", "transcript"];
    (from..from + n)
        .map(|i| Outgoing {
            seq: i,
            run: run.to_string(),
            id: format!("{stream}/{i}"),
            stream: stream.to_string(),
            kind_of: KINDS[(i % 3) as usize].to_string(),
            json: format!(r#"{{"stream":"{stream}","n":{i}}}"#),
            stored_ns: None,
        })
        .collect()
}

/// Everything in the stream VIGIL, in stream order: (subject, Nats-Msg-Id, payload).
fn read_back(server: &NatsServer) -> Vec<(String, String, String)> {
    server
        .messages("VIGIL", None)
        .into_iter()
        .map(|m| (m.subject, m.msg_id, m.payload))
        .collect()
}

fn expect_once(stored: &[(String, String, String)], recs: &[Outgoing]) {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for (_, id, _) in stored {
        *count.entry(id.as_str()).or_default() += 1;
    }
    for r in recs {
        assert_eq!(
            count.get(msg_id(r).as_str()),
            Some(&1),
            "record {}",
            msg_id(r)
        );
    }
    assert_eq!(stored.len(), recs.len());
}

#[test]
fn subjects_and_urls() {
    assert_eq!(subject("vigil", "cam1", "event"), "vigil.cam1.event");
    assert_eq!(
        subject("vigil", "a.b*c>d e", "caption"),
        "vigil.a_b_c_d_e.caption"
    );
    assert_eq!(subject("vigil", "", "event"), "vigil._.event");
    let (bare, auth) = split_userinfo("nats://bob:s%40cret@host:4222");
    assert_eq!(bare, "nats://host:4222");
    assert_eq!(auth, Some(("bob".to_string(), Some("s@cret".to_string()))));
    let (bare, auth) = split_userinfo("tls://tok@host");
    assert_eq!(bare, "tls://host");
    assert_eq!(auth, Some(("tok".to_string(), None)));
    assert_eq!(split_userinfo("host:4222"), ("host:4222".to_string(), None));
    let t = transport(&config(" nats://u:pw1234@a:1 , nats://b:2,"));
    assert_eq!(t.servers, vec!["nats://a:1", "nats://b:2"]);
    assert_eq!(t.scrub("x pw1234 y".to_string()), "x *** y");
    let dbg = format!(
        "{:?}",
        NatsAuth::UserPassword {
            user: "u".into(),
            password: "hunter2".into()
        }
    );
    assert!(!dbg.contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_in_order_from_two_streams() {
    let server = NatsServer::start(&[]);
    let mut t = transport(&config(&server.url()));

    // 250 records from two streams, interleaved in store order.
    let a = records("01RUN", "cam1", 0, 125);
    let b = records("01RUN", "mic.2", 0, 125);
    let all: Vec<Outgoing> = a.into_iter().zip(b).flat_map(|(x, y)| [x, y]).collect();
    for batch in [&all[..100], &all[100..200], &all[200..]] {
        t.deliver(batch).await.expect("deliver");
    }
    t.close().await;

    let stored = read_back(&server);
    assert_eq!(stored.len(), 250);
    expect_once(&stored, &all);
    for (rec, (subj, id, payload)) in all.iter().zip(&stored) {
        let stream = if rec.stream == "mic.2" {
            "mic_2"
        } else {
            "cam1"
        };
        assert_eq!(subj, &format!("vigil.{stream}.{}", rec.kind_of));
        assert_eq!(id, &format!("01RUN/{}", rec.id));
        assert_eq!(payload, &rec.json);
    }
    // Order per stream.
    for name in ["cam1", "mic.2"] {
        let ids: Vec<&str> = stored
            .iter()
            .filter(|(_, id, _)| id.starts_with(&format!("01RUN/{name}/")))
            .map(|(_, id, _)| id.as_str())
            .collect();
        let want: Vec<String> = (0..125).map(|i| format!("01RUN/{name}/{i}")).collect();
        assert_eq!(ids, want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivery_is_deduplicated() {
    let server = NatsServer::start(&[]);
    let mut t = transport(&config(&server.url()));
    let batch = records("01DUP", "cam1", 0, 40);
    t.deliver(&batch).await.expect("first");
    t.deliver(&batch).await.expect("second");
    t.deliver(&batch[10..30]).await.expect("third");
    t.close().await;
    let stored = read_back(&server);
    expect_once(&stored, &batch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_and_back() {
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let mut server = NatsServer::configure(port, &[]);
    let mut t = transport(&config(&url));
    let a = records("01DOWN", "cam1", 0, 30);
    let b = records("01DOWN", "cam1", 30, 30);
    let c = records("01DOWN", "cam1", 60, 30);

    // Nothing listening yet.
    let err = fails_promptly(t.deliver(&a), "server is down").await;
    assert!(err.0.contains(&url), "{err}");

    server.up();
    t.deliver(&a).await.expect("deliver a");

    // Killed while connected.
    server.kill();
    for _ in 0..3 {
        let err = fails_promptly(t.deliver(&b), "server was killed").await;
        assert!(err.0.contains(&url), "{err}");
    }

    // Back on the same port and store.
    server.up();
    t.deliver(&b).await.expect("deliver b after restart");
    t.deliver(&c).await.expect("deliver c");

    // Killed and restarted between two deliveries: the client may still be
    // reconnecting on its own; either way the next delivery must not hang,
    // and one soon after must succeed.
    server.kill();
    server.up();
    let start = StdInstant::now();
    let mut ok = false;
    for _ in 0..5 {
        let one = StdInstant::now();
        let r = t.deliver(&c).await;
        eprintln!("restarted: {:?}: {r:?}", one.elapsed());
        assert!(
            one.elapsed() < T + Duration::from_secs(1),
            "{:?}",
            one.elapsed()
        );
        if r.is_ok() {
            ok = true;
            break;
        }
    }
    assert!(ok, "no success within {:?}", start.elapsed());
    t.close().await;

    let stored = read_back(&server);
    let all: Vec<Outgoing> = a.iter().chain(&b).chain(&c).cloned().collect();
    expect_once(&stored, &all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stops_answering() {
    let server = NatsServer::start(&[]);
    let mut t = transport(&config(&server.url()));
    let a = records("01STOP", "cam1", 0, 20);
    let b = records("01STOP", "cam1", 20, 20);
    t.deliver(&a).await.expect("deliver a");

    server.signal("-STOP");
    for _ in 0..4 {
        fails_promptly(t.deliver(&b), "server is stopped").await;
    }
    server.signal("-CONT");
    let mut ok = false;
    for _ in 0..5 {
        if t.deliver(&b).await.is_ok() {
            ok = true;
            break;
        }
    }
    assert!(ok, "no success after SIGCONT");
    t.close().await;
    let stored = read_back(&server);
    let all: Vec<Outgoing> = a.iter().chain(&b).cloned().collect();
    expect_once(&stored, &all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = "right-token-8412";
    let bad = "wrong-token-1337";
    let server = NatsServer::start(&["--auth", good]);
    let batch = records("01AUTH", "cam1", 0, 5);

    let mut c = config(&server.url());
    c.token_file = Some(secret_file(dir.path(), "bad", bad));
    let mut t = transport(&c);
    let start = StdInstant::now();
    let err = t.deliver(&batch).await.expect_err("wrong token");
    eprintln!("auth: {err}");
    assert!(start.elapsed() < T + Duration::from_secs(1));
    assert!(!err.0.contains(bad) && !err.0.contains(good), "{err}");
    assert!(err.0.contains(&server.url()), "{err}");

    // The token in the URL is taken as auth and never shown.
    let with_userinfo = format!("nats://{bad}@127.0.0.1:{}", server.port);
    let mut t = transport(&config(&with_userinfo));
    let err = t.deliver(&batch).await.expect_err("wrong token in URL");
    eprintln!("auth url: {err}");
    assert!(!err.0.contains(bad), "{err}");

    c.token_file = Some(secret_file(dir.path(), "good", good));
    let mut t = transport(&c);
    t.deliver(&batch).await.expect("right token");
    t.close().await;

    let mut t = transport(&config(&format!("nats://{good}@127.0.0.1:{}", server.port)));
    t.deliver(&batch).await.expect("right token in URL");
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_stream_is_reported() {
    let server = NatsServer::start(&[]);
    let mut c = config(&server.url());
    c.create_stream = false;
    let err = transport(&c)
        .deliver(&records("01NONE", "cam1", 0, 1))
        .await
        .expect_err("no stream");
    assert_eq!(
        err.0,
        format!(
            "JetStream stream VIGIL does not exist on {}; create it or set create_stream = true",
            server.url()
        )
    );
}

/// A CA and a server certificate for 127.0.0.1, made with the openssl CLI.
fn make_certs(dir: &Path) -> bool {
    let script = r#"set -e
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout ca.key -out ca.pem -days 2 -subj /CN=vigil-test-ca
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout other.key -out other.pem -days 2 -subj /CN=vigil-test-other-ca
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout srv.key -out srv.csr -subj /CN=localhost
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext.cnf
openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -out srv.pem -days 2 -extfile ext.cnf
"#;
    Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls() {
    let certs = tempfile::tempdir().expect("tempdir");
    // openssl comes with ca-certificates (deploy/setup.sh installs it).
    assert!(
        make_certs(certs.path()),
        "openssl made the test certificates"
    );
    let cert = certs.path().join("srv.pem");
    let key = certs.path().join("srv.key");
    let server = NatsServer::start(&[
        "--tls",
        "--tlscert",
        cert.to_str().expect("path"),
        "--tlskey",
        key.to_str().expect("path"),
    ]);

    let batch = records("01TLS", "cam1", 0, 5);
    let mut c = config(&server.url());
    c.tls = true;
    c.ca_file = Some(certs.path().join("ca.pem"));
    let mut t = transport(&c);
    t.deliver(&batch).await.expect("deliver over TLS");
    t.close().await;

    // Trusting another CA only fails, in time.
    c.ca_file = Some(certs.path().join("other.pem"));
    let mut t = transport(&c);
    let start = StdInstant::now();
    let err = t.deliver(&batch).await.expect_err("untrusted server");
    eprintln!("tls untrusted: {err}");
    assert!(start.elapsed() < T + Duration::from_secs(1));
}

/// The error `delivery` ends in, which must come within the timeout and a
/// second.
async fn fails_promptly(
    delivery: impl std::future::Future<Output = Result<(), Failed>>,
    why: &str,
) -> Failed {
    let start = StdInstant::now();
    let err = delivery.await.expect_err(why);
    eprintln!("{why}: {:?}: {err}", start.elapsed());
    assert!(
        start.elapsed() < T + Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_is_bounded() {
    let server = NatsServer::start(&[]);
    let mut t = transport(&config(&server.url()));
    t.deliver(&records("01CLOSE", "cam1", 0, 3))
        .await
        .expect("deliver");
    server.signal("-STOP");
    let start = StdInstant::now();
    t.close().await;
    assert!(
        start.elapsed() < T + Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    server.signal("-CONT");
    // Closing twice, or with nothing open, is a no-op.
    t.close().await;
}
