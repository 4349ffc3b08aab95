//! The far ends of the live sinks, as real servers on 127.0.0.1: mosquitto,
//! nats-server with JetStream (Debian packages `mosquitto`, `nats-server`),
//! and an HTTP receiver in this process. Shared (included with `#[path]`)
//! by `tests/it`, `tests/bench` and the MQTT and NATS unit tests, so it
//! uses no vigil API. Every helper is blocking and may be called from
//! async tests too: what needs a runtime runs on a thread of its own.
// Each user takes a part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A TCP port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits until something listens on `port`, or panics saying `what`.
#[track_caller]
fn wait_listening(what: &str, port: u16, log: Option<&Path>) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start: {}",
            log.and_then(|l| std::fs::read_to_string(l).ok())
                .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `/usr/sbin/NAME` when there (not every PATH has it), else `NAME`.
fn program(name: &str) -> PathBuf {
    let sbin = Path::new("/usr/sbin").join(name);
    if sbin.exists() {
        sbin
    } else {
        PathBuf::from(name)
    }
}

/// Sends `sig` (`-STOP`, `-CONT`, `-TERM`…) to `child`.
#[track_caller]
fn signal(child: Option<&Child>, sig: &str) {
    let pid = child.expect("running").id().to_string();
    let ok = Command::new("kill")
        .args([sig, &pid])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig} {pid} failed");
}

/// Runs `f` on a runtime of its own, on a thread of its own.
fn on_own_runtime<T: Send>(f: impl std::future::Future<Output = T> + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(f)
        })
        .join()
        .expect("the helper thread")
    })
}

// ---------------------------------------------------------------- MQTT

/// A mosquitto broker on a loopback port; killed on drop.
pub struct Mosquitto {
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub conf: PathBuf,
    child: Option<Child>,
}

impl Mosquitto {
    /// Anonymous, nothing kept on disk, on a free port; started.
    pub fn start() -> Mosquitto {
        Mosquitto::on(free_port())
    }

    /// The same on `port`.
    pub fn on(port: u16) -> Mosquitto {
        let mut m = Mosquitto::configure(port, "allow_anonymous true\npersistence false\n");
        m.up();
        m
    }

    /// Anonymous, keeping sessions across a clean stop; started.
    pub fn persistent() -> Mosquitto {
        let mut m = Mosquitto::configure(free_port(), "allow_anonymous true\n");
        m.keep_sessions();
        m.up();
        m
    }

    /// Only `user` with `password` may connect; started.
    pub fn with_password(user: &str, password: &str) -> Mosquitto {
        let mut m = Mosquitto::configure(free_port(), "allow_anonymous false\npersistence false\n");
        m.require_password(user, password);
        m.up();
        m
    }

    /// Sessions (a subscriber's queue) are saved on a clean stop and
    /// outlive a restart (before `up`).
    pub fn keep_sessions(&self) {
        self.add_conf(&format!(
            "persistence true\npersistence_location {}/\nmax_queued_messages 100000\n",
            self.dir.path().display()
        ));
    }

    /// Only `user` with `password` may connect (before `up`).
    pub fn require_password(&self, user: &str, password: &str) {
        let file = self.dir.path().join("passwd");
        let ok = Command::new(program("mosquitto_passwd"))
            .arg("-b")
            .arg("-c")
            .arg(&file)
            .arg(user)
            .arg(password)
            .status()
            .expect("mosquitto_passwd");
        assert!(ok.success());
        self.add_conf(&format!("password_file {}\n", file.display()));
    }

    /// A broker on `port` with `extra` configuration lines; not started.
    pub fn configure(port: u16, extra: &str) -> Mosquitto {
        let dir = tempfile::tempdir().expect("tmp");
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nuser root\n{extra}"),
        )
        .expect("mosquitto.conf");
        Mosquitto {
            port,
            dir,
            conf,
            child: None,
        }
    }

    /// Appends configuration lines (before `up`).
    pub fn add_conf(&self, lines: &str) {
        let mut conf = std::fs::read_to_string(&self.conf).expect("mosquitto.conf");
        conf.push_str(lines);
        std::fs::write(&self.conf, conf).expect("mosquitto.conf");
    }

    /// Starts it and waits until it listens.
    pub fn up(&mut self) {
        assert!(self.child.is_none(), "mosquitto already running");
        let log = self.dir.path().join("log");
        let child = Command::new(program("mosquitto"))
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("mosquitto (Debian package mosquitto)");
        self.child = Some(child);
        wait_listening("mosquitto", self.port, Some(&log));
    }

    /// Stops it cleanly (it saves its sessions).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    #[track_caller]
    pub fn signal(&self, sig: &str) {
        signal(self.child.as_ref(), sig);
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = Command::new("kill")
                .args([
                    "-CONT",
                    &self.child.as_ref().map_or(0, Child::id).to_string(),
                ])
                .status();
        }
        self.kill();
    }
}

/// One message a subscriber got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    pub topic: String,
    pub payload: String,
    /// The payload as it came (a JPEG is not text).
    pub bytes: Vec<u8>,
    pub retain: bool,
}

/// A subscriber on a thread of its own, with a persistent session (its
/// queue outlives a broker restart), reconnecting on its own.
pub struct MqttSubscriber {
    got: Arc<Mutex<Vec<Published>>>,
    /// Tells its thread to end (at its next event or reconnect).
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl MqttSubscriber {
    /// Subscribes to `filter` (QoS 1), logged in as `login` (user,
    /// password) if given, and returns once the broker said so.
    pub fn new(port: u16, filter: &str, login: Option<(&str, &str)>) -> MqttSubscriber {
        use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let id = format!(
            "vigil-test-checker-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let got: Arc<Mutex<Vec<Published>>> = Arc::default();
        let sink = got.clone();
        let stop: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let stopped = stop.clone();
        let filter = filter.to_string();
        let login = login.map(|(u, p)| (u.to_string(), p.to_string()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut options = MqttOptions::new(id, "127.0.0.1", port);
                options.set_clean_session(false);
                options.set_keep_alive(Duration::from_secs(5));
                options.set_max_packet_size(1 << 20, 1 << 20);
                if let Some((user, password)) = login {
                    options.set_credentials(user, password);
                }
                let (client, mut events) = AsyncClient::new(options, 1000);
                client
                    .subscribe(filter, QoS::AtLeastOnce)
                    .await
                    .expect("subscribe");
                let mut ready = Some(ready_tx);
                while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                    match events.poll().await {
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            if let Some(r) = ready.take() {
                                let _ = r.send(());
                            }
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let m = Published {
                                topic: p.topic.clone(),
                                payload: String::from_utf8_lossy(&p.payload).into_owned(),
                                bytes: p.payload.to_vec(),
                                retain: p.retain,
                            };
                            sink.lock().unwrap_or_else(|e| e.into_inner()).push(m);
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                }
            });
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the subscriber subscribed");
        MqttSubscriber { got, stop }
    }

    /// Everything received so far, in order.
    pub fn messages(&self) -> Vec<Published> {
        self.got.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn count(&self) -> usize {
        self.got.lock().map(|g| g.len()).unwrap_or(0)
    }
}

/// Publishes `payload` to `topic`, retained, QoS 1, and returns once the
/// broker acknowledged it.
pub fn publish_retained(port: u16, topic: &str, payload: &[u8]) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    on_own_runtime(async move {
        let id = format!("vigil-test-publisher-{}", std::process::id());
        let (client, mut events) = AsyncClient::new(MqttOptions::new(id, "127.0.0.1", port), 10);
        client
            .publish(topic, QoS::AtLeastOnce, true, payload.to_vec())
            .await
            .expect("publish");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let event = tokio::time::timeout_at(deadline, events.poll())
                .await
                .expect("the broker acknowledges within 10 s");
            if let Ok(Event::Incoming(Packet::PubAck(_))) = event {
                break;
            }
        }
        let _ = client.disconnect().await;
    });
}

impl Drop for MqttSubscriber {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------- NATS

/// A nats-server with JetStream on a loopback port; killed on drop.
pub struct NatsServer {
    pub port: u16,
    /// Where JetStream keeps its streams (kept across restarts).
    pub dir: tempfile::TempDir,
    extra: Vec<String>,
    child: Option<Child>,
}

/// One message of a JetStream stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub subject: String,
    /// The `Nats-Msg-Id` header.
    pub msg_id: String,
    pub payload: String,
}

impl NatsServer {
    /// On a free port, with `extra` arguments (`--auth`, `--tls`…); started.
    pub fn start(extra: &[&str]) -> NatsServer {
        let mut n = NatsServer::configure(free_port(), extra);
        n.up();
        n
    }

    /// On `port`; not started.
    pub fn configure(port: u16, extra: &[&str]) -> NatsServer {
        NatsServer {
            port,
            dir: tempfile::tempdir().expect("tmp"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        }
    }

    /// Starts it (on the same port and store) and waits until it listens.
    pub fn up(&mut self) {
        assert!(self.child.is_none(), "nats-server already running");
        let child = Command::new(program("nats-server"))
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (Debian package nats-server)");
        self.child = Some(child);
        wait_listening("nats-server", self.port, None);
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    #[track_caller]
    pub fn signal(&self, sig: &str) {
        signal(self.child.as_ref(), sig);
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Every message of the JetStream `stream`, in stream order; none when
    /// the stream does not exist. `auth`: a token the server asks for.
    pub fn messages(&self, stream: &str, token: Option<&str>) -> Vec<Stored> {
        let url = self.url();
        on_own_runtime(async move {
            let options = match token {
                Some(t) => async_nats::ConnectOptions::with_token(t.to_string()),
                None => async_nats::ConnectOptions::new(),
            };
            let client = options.connect(url).await.expect("connect to nats-server");
            let js = async_nats::jetstream::new(client);
            let Ok(mut st) = js.get_stream(stream).await else {
                return Vec::new();
            };
            let state = st.info().await.expect("stream info").state.clone();
            let mut out = Vec::new();
            if state.messages == 0 {
                return out;
            }
            for seq in state.first_sequence..=state.last_sequence {
                let m = st.get_raw_message(seq).await.expect("message");
                out.push(Stored {
                    subject: m.subject.to_string(),
                    msg_id: m
                        .headers
                        .get("Nats-Msg-Id")
                        .map(|v| v.as_str().to_string())
                        .unwrap_or_default(),
                    payload: String::from_utf8_lossy(&m.payload).into_owned(),
                });
            }
            assert_eq!(out.len() as u64, state.messages);
            out
        })
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = Command::new("kill")
                .args([
                    "-CONT",
                    &self.child.as_ref().map_or(0, Child::id).to_string(),
                ])
                .status();
        }
        self.kill();
    }
}

// ---------------------------------------------------------------- HTTP

/// One request the HTTP receiver took.
#[derive(Clone, Debug)]
pub struct Request {
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_lowercase()).map(String::as_str)
    }
}

/// Whether the receiver takes a request (204) or refuses it (401).
pub type Gate = Arc<dyn Fn(&Request) -> bool + Send + Sync>;

/// An HTTP receiver on a fixed loopback port answering every request (any
/// path): 204 when `gate` takes it, 401 when not. It can go down (every
/// socket closed at once, as in a crash) and come back on the same port.
pub struct HttpReceiver {
    pub port: u16,
    gate: Gate,
    taken: Arc<Mutex<Vec<Request>>>,
    refused: Arc<Mutex<usize>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl HttpReceiver {
    /// Taking every request; started.
    pub fn start() -> HttpReceiver {
        HttpReceiver::with_gate(Arc::new(|_| true))
    }

    /// Taking what `gate` takes; started.
    pub fn with_gate(gate: Gate) -> HttpReceiver {
        let mut r = HttpReceiver {
            port: free_port(),
            gate,
            taken: Arc::default(),
            refused: Arc::default(),
            runtime: None,
        };
        r.up();
        r
    }

    pub fn up(&mut self) {
        assert!(self.runtime.is_none(), "the receiver is already up");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = std::net::TcpListener::bind(("127.0.0.1", self.port))
            .expect("bind the receiver's port");
        listener.set_nonblocking(true).expect("non-blocking");
        let (gate, taken, refused) = (self.gate.clone(), self.taken.clone(), self.refused.clone());
        let app = axum::Router::new().fallback(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (gate, taken, refused) = (gate.clone(), taken.clone(), refused.clone());
                async move {
                    let request = Request {
                        headers: headers
                            .iter()
                            .map(|(k, v)| {
                                (
                                    k.as_str().to_lowercase(),
                                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                )
                            })
                            .collect(),
                        body: body.to_vec(),
                    };
                    if gate(&request) {
                        taken
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(request);
                        axum::http::StatusCode::NO_CONTENT
                    } else {
                        *refused.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                        axum::http::StatusCode::UNAUTHORIZED
                    }
                }
            },
        );
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let _ = axum::serve(listener, app).await;
        });
        self.runtime = Some(runtime);
    }

    pub fn down(&mut self) {
        if let Some(r) = self.runtime.take() {
            r.shutdown_background();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The requests taken so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.taken.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The records taken so far: each body is a JSON array of them.
    pub fn records(&self) -> Vec<serde_json::Value> {
        self.taken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .flat_map(|r| {
                serde_json::from_slice::<Vec<serde_json::Value>>(&r.body).unwrap_or_default()
            })
            .collect()
    }

    /// How many requests were refused.
    pub fn refused(&self) -> usize {
        *self.refused.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for HttpReceiver {
    fn drop(&mut self) {
        self.down();
    }
}
