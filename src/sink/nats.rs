//! NATS JetStream transport.
//!
//! Every record becomes one JetStream message on the subject
//! `{prefix}.{stream}.{kind_of}`: payload = the record JSON unchanged, header
//! `Nats-Msg-Id` = `{run}/{id}`, so the server drops redeliveries that arrive
//! within the stream's duplicate window. A batch is published in one go and
//! `deliver` returns Ok only once every message has its PubAck (an ack that
//! says `duplicate` counts as success).
//!
//! Bounds: one `deliver` (connecting and checking the stream included, when it
//! has to) returns within `timeout` plus a little scheduling slack; `close`
//! likewise.
//!
//! What async-nats does on its own, and how this transport deals with it:
//! * Once connected, the client reconnects in a background task, forever by
//!   default, with a backoff of up to 4 s between attempts. While it is
//!   disconnected, publishes are not rejected: they wait in the client's
//!   command queue (2048 commands) and are written after the reconnect; their
//!   acks simply never come in time, so `deliver` fails on the ack timeout.
//!   Those queued copies may still reach the stream later; `Nats-Msg-Id`
//!   makes the server drop them when they arrive within the duplicate window
//!   (2 minutes for a stream created here).
//! * This transport does not lean on that: when a delivery fails and the
//!   client is not connected (or `DROP_AFTER_FAILURES` deliveries in a row
//!   failed), or when a delivery starts on a client that is not connected, it
//!   drops the client and connects afresh on the next `deliver`, which fails
//!   fast while the server is down. A dropped client's background task ends
//!   once its queue is closed and it is connected, or after `MAX_RECONNECTS`
//!   attempts, so none lives forever.
//! * async-nats ignores user:password in the URL (0.51); this transport takes
//!   it as credentials when `auth` is `NatsAuth::None` and never passes it on.

use std::fmt;
use std::future::IntoFuture;
use std::path::PathBuf;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::context::{GetStreamErrorKind, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, ErrorCode, stream};
use async_nats::{Client, ConnectOptions};
use tokio::time::{Instant, timeout_at};

use crate::sink::outbox::{Failed, Outgoing, Transport};

/// Reconnect attempts the client's background task makes before it gives up
/// (the next `deliver` then connects afresh).
const MAX_RECONNECTS: usize = 60;
/// Failed deliveries in a row after which the client is dropped even though it
/// believes it is connected (a server that stopped answering).
const DROP_AFTER_FAILURES: u32 = 3;
/// Duplicate window of a stream this transport creates.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// How to authenticate to the NATS server.
#[derive(Clone)]
pub enum NatsAuth {
    None,
    /// Secret.
    Token(String),
    /// `password` is secret.
    UserPassword {
        user: String,
        password: String,
    },
    /// `.creds` file (JWT + nkey seed).
    CredentialsFile(PathBuf),
}

impl fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NatsAuth::None => f.write_str("None"),
            NatsAuth::Token(_) => f.write_str("Token(***)"),
            NatsAuth::UserPassword { user, .. } => f
                .debug_struct("UserPassword")
                .field("user", user)
                .field("password", &"***")
                .finish(),
            NatsAuth::CredentialsFile(path) => {
                f.debug_tuple("CredentialsFile").field(path).finish()
            }
        }
    }
}

/// Settings of a [`NatsTransport`].
#[derive(Clone, Debug)]
pub struct NatsSettings {
    /// "nats://127.0.0.1:4222" or "tls://..."; may list several, comma-separated.
    pub url: String,
    /// When set: require TLS and use this client config.
    pub tls: Option<rustls::ClientConfig>,
    pub auth: NatsAuth,
    /// JetStream stream name, "VIGIL" by default.
    pub stream: String,
    /// Create the stream (subjects `["{prefix}.>"]`) if it does not exist.
    pub create_stream: bool,
    /// Subject prefix, "vigil" by default.
    pub prefix: String,
    /// Bound for connecting and for the acks of one batch.
    pub timeout: Duration,
}

impl NatsSettings {
    /// Settings with the defaults: no TLS, no auth, stream "VIGIL" (created if
    /// missing), prefix "vigil", timeout 10 s.
    pub fn new(url: impl Into<String>) -> NatsSettings {
        NatsSettings {
            url: url.into(),
            tls: None,
            auth: NatsAuth::None,
            stream: "VIGIL".to_string(),
            create_stream: true,
            prefix: "vigil".to_string(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// The subject a record goes to: `{prefix}.{stream}.{kind_of}`, with the
/// characters a subject token cannot carry (`.`, `*`, `>`, whitespace,
/// control characters) replaced by `_` in `stream` and `kind_of`.
pub fn subject(prefix: &str, stream: &str, kind_of: &str) -> String {
    format!("{prefix}.{}.{}", token(stream), token(kind_of))
}

fn token(s: &str) -> String {
    if s.is_empty() {
        return "_".to_string();
    }
    s.chars()
        .map(|c| match c {
            '.' | '*' | '>' => '_',
            c if c.is_whitespace() || c.is_control() => '_',
            c => c,
        })
        .collect()
}

/// The `Nats-Msg-Id` of a record: `{run}/{id}` (control characters, which a
/// header cannot carry, replaced by `_`).
pub fn msg_id(rec: &Outgoing) -> String {
    format!("{}/{}", rec.run, rec.id)
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect()
}

struct Conn {
    client: Client,
    js: jetstream::Context,
}

/// Delivers records to a NATS JetStream stream; see the module docs.
pub struct NatsTransport {
    settings: NatsSettings,
    /// Server URLs without userinfo, as handed to async-nats.
    servers: Vec<String>,
    /// `servers`, joined for messages.
    shown: String,
    /// Userinfo found in the URLs: (user or token, password).
    url_auth: Option<(String, Option<String>)>,
    /// Strings scrubbed from every error message.
    secrets: Vec<String>,
    conn: Option<Conn>,
    failures: u32,
    warned_other_stream: bool,
}

impl NatsTransport {
    /// Connects lazily, on the first `deliver`.
    pub fn new(settings: NatsSettings) -> NatsTransport {
        let mut servers = Vec::new();
        let mut url_auth = None;
        for part in settings.url.split(',').map(str::trim) {
            if part.is_empty() {
                continue;
            }
            let (bare, userinfo) = split_userinfo(part);
            if url_auth.is_none() {
                url_auth = userinfo;
            }
            servers.push(bare);
        }
        let mut secrets = Vec::new();
        match &settings.auth {
            NatsAuth::Token(t) => secrets.push(t.clone()),
            NatsAuth::UserPassword { password, .. } => secrets.push(password.clone()),
            NatsAuth::None | NatsAuth::CredentialsFile(_) => {}
        }
        if let Some((user, password)) = &url_auth {
            // Without a password the user part is a token.
            match password {
                Some(p) => secrets.push(p.clone()),
                None => secrets.push(user.clone()),
            }
        }
        secrets.retain(|s| !s.is_empty());
        let shown = servers.join(",");
        NatsTransport {
            settings,
            servers,
            shown,
            url_auth,
            secrets,
            conn: None,
            failures: 0,
            warned_other_stream: false,
        }
    }

    fn scrub(&self, msg: String) -> String {
        crate::secret::scrub(&msg, &self.secrets)
    }

    async fn connect_options(&self) -> Result<ConnectOptions, String> {
        let opts = match &self.settings.auth {
            NatsAuth::None => match &self.url_auth {
                Some((user, Some(password))) => {
                    ConnectOptions::with_user_and_password(user.clone(), password.clone())
                }
                Some((token, None)) => ConnectOptions::with_token(token.clone()),
                None => ConnectOptions::new(),
            },
            NatsAuth::Token(token) => ConnectOptions::with_token(token.clone()),
            NatsAuth::UserPassword { user, password } => {
                ConnectOptions::with_user_and_password(user.clone(), password.clone())
            }
            NatsAuth::CredentialsFile(path) => ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|e| format!("cannot use NATS credentials file {}: {e}", path.display()))?,
        };
        let t = self.settings.timeout;
        let mut opts = opts
            .name("vigil")
            .connection_timeout(t)
            .request_timeout(Some(t))
            .ping_interval(t.clamp(Duration::from_secs(5), Duration::from_secs(60)))
            .max_reconnects(MAX_RECONNECTS);
        if let Some(tls) = &self.settings.tls {
            opts = opts.require_tls(true).tls_client_config(tls.clone());
        }
        Ok(opts)
    }

    async fn connect(&self) -> Result<Conn, String> {
        if self.servers.is_empty() {
            return Err("no NATS server URL configured".to_string());
        }
        let t = self.settings.timeout;
        let client = self
            .connect_options()
            .await?
            .connect(self.servers.clone())
            .await
            .map_err(|e| format!("cannot connect to NATS at {}: {e}", self.shown))?;
        let js = jetstream::ContextBuilder::new()
            .timeout(t)
            .ack_timeout(t)
            .build(client.clone());
        self.ensure_stream(&js).await?;
        tracing::info!(servers = %self.shown, stream = %self.settings.stream, "connected to NATS");
        Ok(Conn { client, js })
    }

    async fn ensure_stream(&self, js: &jetstream::Context) -> Result<(), String> {
        let name = &self.settings.stream;
        let shown = &self.shown;
        if self.settings.create_stream {
            let config = stream::Config {
                name: name.clone(),
                subjects: vec![format!("{}.>", self.settings.prefix)],
                storage: stream::StorageType::File,
                duplicate_window: DUPLICATE_WINDOW,
                ..Default::default()
            };
            js.get_or_create_stream(config).await.map_err(|e| {
                format!("cannot get or create JetStream stream {name} on NATS at {shown}: {e}")
            })?;
            return Ok(());
        }
        match js.get_stream(name).await {
            Ok(_) => Ok(()),
            Err(e) => match e.kind() {
                GetStreamErrorKind::JetStream(je)
                    if je.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                {
                    Err(format!(
                        "JetStream stream {name} does not exist on {shown}; \
                         create it or set create_stream = true"
                    ))
                }
                _ => Err(format!(
                    "cannot look up JetStream stream {name} on NATS at {shown}: {e}"
                )),
            },
        }
    }

    fn drop_conn(&mut self, why: &str) {
        if self.conn.take().is_some() {
            tracing::info!(servers = %self.shown, why, "dropping NATS connection; reconnecting on next delivery");
        }
    }

    fn connected(&self) -> bool {
        self.conn
            .as_ref()
            .is_some_and(|c| c.client.connection_state() == State::Connected)
    }

    async fn try_deliver(&mut self, batch: &[Outgoing], deadline: Instant) -> Result<(), String> {
        let t = self.settings.timeout;
        if self.conn.is_some() && !self.connected() {
            self.drop_conn("client is not connected");
        }
        if self.conn.is_none() {
            let conn = timeout_at(deadline, self.connect()).await.map_err(|_| {
                format!("connecting to NATS at {} timed out after {t:?}", self.shown)
            })??;
            self.conn = Some(conn);
        }
        let js = match &self.conn {
            Some(conn) => conn.js.clone(),
            None => return Err("no NATS connection".to_string()),
        };
        let shown = self.shown.clone();

        let mut acks = Vec::with_capacity(batch.len());
        for rec in batch {
            let subject = subject(&self.settings.prefix, &rec.stream, &rec.kind_of);
            let id = msg_id(rec);
            let msg = PublishMessage::build()
                .payload(rec.json.clone().into())
                .message_id(&id);
            let ack = match timeout_at(deadline, js.send_publish(subject.clone(), msg)).await {
                Ok(Ok(ack)) => ack,
                Ok(Err(e)) => return Err(publish_failed(&shown, &subject, &id, rec, t, &e)),
                Err(_) => {
                    return Err(format!(
                        "publishing record {id} to NATS at {shown} timed out after {t:?}"
                    ));
                }
            };
            acks.push((subject, id, rec, ack));
        }

        let mut duplicates = 0usize;
        for (subject, id, rec, ack) in acks {
            match timeout_at(deadline, ack.into_future()).await {
                Ok(Ok(ack)) => {
                    if ack.duplicate {
                        duplicates += 1;
                    }
                    if ack.stream != self.settings.stream && !self.warned_other_stream {
                        self.warned_other_stream = true;
                        tracing::warn!(
                            subject = %subject,
                            stored_in = %ack.stream,
                            expected = %self.settings.stream,
                            "NATS stored a record in another JetStream stream"
                        );
                    }
                }
                Ok(Err(e)) => return Err(publish_failed(&shown, &subject, &id, rec, t, &e)),
                Err(_) => {
                    return Err(format!(
                        "no acknowledgement from NATS at {shown} within {t:?} for record {id} on {subject}"
                    ));
                }
            }
        }
        if duplicates > 0 {
            tracing::debug!(duplicates, "NATS dropped redelivered records as duplicates");
        }
        Ok(())
    }
}

fn publish_failed(
    shown: &str,
    subject: &str,
    id: &str,
    rec: &Outgoing,
    t: Duration,
    e: &jetstream::context::PublishError,
) -> String {
    match e.kind() {
        PublishErrorKind::StreamNotFound => {
            format!("no JetStream stream on NATS at {shown} takes subject {subject} (record {id})")
        }
        PublishErrorKind::TimedOut => format!(
            "no acknowledgement from NATS at {shown} within {t:?} for record {id} on {subject}"
        ),
        PublishErrorKind::BrokenPipe => {
            format!("connection to NATS at {shown} lost before record {id} was acknowledged")
        }
        PublishErrorKind::MaxPayloadExceeded => format!(
            "record {id} ({} bytes) is larger than the NATS server at {shown} accepts: {e}",
            rec.json.len()
        ),
        _ => format!("NATS at {shown} refused record {id} on {subject}: {e}"),
    }
}

/// Splits `scheme://user:password@host:port` into the URL without userinfo
/// and the (percent-decoded) userinfo.
fn split_userinfo(url: &str) -> (String, Option<(String, Option<String>)>) {
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i + 3], &url[i + 3..]),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let bare = format!("{scheme}{}", &rest[at + 1..]);
            let creds = match userinfo.split_once(':') {
                Some((u, p)) => (percent_decode(u), Some(percent_decode(p))),
                None => (percent_decode(userinfo), None),
            };
            let creds = if creds.0.is_empty() && creds.1.as_deref().is_none_or(str::is_empty) {
                None
            } else {
                Some(creds)
            };
            (bare, creds)
        }
        None => (url.to_string(), None),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[async_trait::async_trait]
impl Transport for NatsTransport {
    async fn deliver(&mut self, batch: &[Outgoing]) -> Result<(), Failed> {
        if batch.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + self.settings.timeout;
        match self.try_deliver(batch, deadline).await {
            Ok(()) => {
                self.failures = 0;
                Ok(())
            }
            Err(msg) => {
                self.failures = self.failures.saturating_add(1);
                if self.conn.is_some() {
                    if !self.connected() {
                        self.drop_conn("delivery failed while disconnected");
                    } else if self.failures >= DROP_AFTER_FAILURES {
                        self.drop_conn("deliveries keep failing");
                    }
                }
                let msg = self.scrub(msg);
                tracing::debug!(error = %msg, "NATS delivery failed");
                Err(Failed(msg))
            }
        }
    }

    async fn close(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let deadline = Instant::now() + self.settings.timeout;
        let closing = async {
            if let Err(e) = conn.client.flush().await {
                tracing::debug!(error = %e, "flushing NATS connection failed");
            }
            if let Err(e) = conn.client.drain().await {
                tracing::debug!(error = %e, "draining NATS connection failed");
            }
        };
        if timeout_at(deadline, closing).await.is_err() {
            tracing::debug!(servers = %self.shown, "closing NATS connection timed out");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::net::{TcpListener, TcpStream};
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use std::time::Instant as StdInstant;

    const NATS_SERVER: &str = "/usr/sbin/nats-server";
    const T: Duration = Duration::from_secs(2);

    /// A nats-server child process, killed (SIGKILL) on drop.
    struct Server {
        child: Option<Child>,
        port: u16,
        store: PathBuf,
        extra: Vec<String>,
    }

    impl Server {
        fn start(port: u16, store: &Path, extra: &[&str]) -> Server {
            let mut s = Server {
                child: None,
                port,
                store: store.to_path_buf(),
                extra: extra.iter().map(|s| s.to_string()).collect(),
            };
            s.restart();
            s
        }

        fn restart(&mut self) {
            assert!(self.child.is_none(), "server already running");
            let child = Command::new(NATS_SERVER)
                .args([
                    "-js",
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-sd",
                ])
                .arg(&self.store)
                .args(&self.extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start nats-server");
            self.child = Some(child);
            let start = StdInstant::now();
            while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                assert!(
                    start.elapsed() < Duration::from_secs(15),
                    "nats-server did not start"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }

        fn kill(&mut self) {
            if let Some(mut child) = self.child.take() {
                child.kill().ok();
                child.wait().ok();
            }
        }

        fn signal(&self, sig: &str) {
            let pid = self.child.as_ref().expect("running").id();
            let ok = Command::new("kill")
                .args([sig, &pid.to_string()])
                .status()
                .expect("kill")
                .success();
            assert!(ok, "kill {sig} failed");
        }

        fn url(&self) -> String {
            format!("nats://127.0.0.1:{}", self.port)
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.kill();
        }
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port()
    }

    fn settings(url: &str) -> NatsSettings {
        NatsSettings {
            timeout: T,
            ..NatsSettings::new(url)
        }
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

    /// Everything in the stream, in stream order: (subject, Nats-Msg-Id, payload).
    async fn read_back(url: &str, stream: &str) -> Vec<(String, String, String)> {
        let client = async_nats::connect(url).await.expect("connect");
        let js = jetstream::new(client);
        let mut st = js.get_stream(stream).await.expect("stream");
        let info = st.info().await.expect("info").clone();
        let mut out = Vec::new();
        for seq in info.state.first_sequence..=info.state.last_sequence {
            if info.state.messages == 0 {
                break;
            }
            let m = st.get_raw_message(seq).await.expect("message");
            let id = m
                .headers
                .get("Nats-Msg-Id")
                .map(|v| v.as_str().to_string())
                .unwrap_or_default();
            let payload = String::from_utf8(m.payload.to_vec()).expect("utf8");
            out.push((m.subject.to_string(), id, payload));
        }
        assert_eq!(out.len() as u64, info.state.messages);
        out
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
        let t = NatsTransport::new(NatsSettings::new(" nats://u:pw1234@a:1 , nats://b:2,"));
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
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start(free_port(), dir.path(), &[]);
        let mut t = NatsTransport::new(settings(&server.url()));

        // 250 records from two streams, interleaved in store order.
        let a = records("01RUN", "cam1", 0, 125);
        let b = records("01RUN", "mic.2", 0, 125);
        let all: Vec<Outgoing> = a.into_iter().zip(b).flat_map(|(x, y)| [x, y]).collect();
        for batch in [&all[..100], &all[100..200], &all[200..]] {
            t.deliver(batch).await.expect("deliver");
        }
        t.close().await;

        let stored = read_back(&server.url(), "VIGIL").await;
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
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start(free_port(), dir.path(), &[]);
        let mut t = NatsTransport::new(settings(&server.url()));
        let batch = records("01DUP", "cam1", 0, 40);
        t.deliver(&batch).await.expect("first");
        t.deliver(&batch).await.expect("second");
        t.deliver(&batch[10..30]).await.expect("third");
        t.close().await;
        let stored = read_back(&server.url(), "VIGIL").await;
        expect_once(&stored, &batch);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn server_down_and_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let url = format!("nats://127.0.0.1:{port}");
        let mut t = NatsTransport::new(settings(&url));
        let a = records("01DOWN", "cam1", 0, 30);
        let b = records("01DOWN", "cam1", 30, 30);
        let c = records("01DOWN", "cam1", 60, 30);

        // Nothing listening yet.
        let start = StdInstant::now();
        let err = t.deliver(&a).await.expect_err("server is down");
        eprintln!("down: {:?}: {err}", start.elapsed());
        assert!(
            start.elapsed() < T + Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        assert!(err.0.contains(&url), "{err}");

        let mut server = Server::start(port, dir.path(), &[]);
        t.deliver(&a).await.expect("deliver a");

        // Killed while connected.
        server.kill();
        for _ in 0..3 {
            let start = StdInstant::now();
            let err = t.deliver(&b).await.expect_err("server was killed");
            eprintln!("killed: {:?}: {err}", start.elapsed());
            assert!(
                start.elapsed() < T + Duration::from_secs(1),
                "{:?}",
                start.elapsed()
            );
            assert!(err.0.contains(&url), "{err}");
        }

        // Back on the same port and store.
        server.restart();
        t.deliver(&b).await.expect("deliver b after restart");
        t.deliver(&c).await.expect("deliver c");

        // Killed and restarted between two deliveries: the client may still be
        // reconnecting on its own; either way the next delivery must not hang,
        // and one soon after must succeed.
        server.kill();
        server.restart();
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

        let stored = read_back(&server.url(), "VIGIL").await;
        let all: Vec<Outgoing> = a.iter().chain(&b).chain(&c).cloned().collect();
        expect_once(&stored, &all);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn server_stops_answering() {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start(free_port(), dir.path(), &[]);
        let mut t = NatsTransport::new(settings(&server.url()));
        let a = records("01STOP", "cam1", 0, 20);
        let b = records("01STOP", "cam1", 20, 20);
        t.deliver(&a).await.expect("deliver a");

        server.signal("-STOP");
        for _ in 0..4 {
            let start = StdInstant::now();
            let err = t.deliver(&b).await.expect_err("server is stopped");
            eprintln!("stopped: {:?}: {err}", start.elapsed());
            assert!(
                start.elapsed() < T + Duration::from_secs(1),
                "{:?}",
                start.elapsed()
            );
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
        let stored = read_back(&server.url(), "VIGIL").await;
        let all: Vec<Outgoing> = a.iter().chain(&b).cloned().collect();
        expect_once(&stored, &all);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn token_auth() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = "right-token-8412";
        let bad = "wrong-token-1337";
        let server = Server::start(free_port(), dir.path(), &["--auth", good]);
        let batch = records("01AUTH", "cam1", 0, 5);

        let mut t = NatsTransport::new(NatsSettings {
            auth: NatsAuth::Token(bad.to_string()),
            ..settings(&server.url())
        });
        let start = StdInstant::now();
        let err = t.deliver(&batch).await.expect_err("wrong token");
        eprintln!("auth: {err}");
        assert!(start.elapsed() < T + Duration::from_secs(1));
        assert!(!err.0.contains(bad) && !err.0.contains(good), "{err}");
        assert!(err.0.contains(&server.url()), "{err}");

        // The token in the URL is taken as auth and never shown.
        let with_userinfo = format!("nats://{bad}@127.0.0.1:{}", server.port);
        let mut t = NatsTransport::new(settings(&with_userinfo));
        let err = t.deliver(&batch).await.expect_err("wrong token in URL");
        eprintln!("auth url: {err}");
        assert!(!err.0.contains(bad), "{err}");

        let mut t = NatsTransport::new(NatsSettings {
            auth: NatsAuth::Token(good.to_string()),
            ..settings(&server.url())
        });
        t.deliver(&batch).await.expect("right token");
        t.close().await;

        let mut t = NatsTransport::new(settings(&format!(
            "nats://{good}@127.0.0.1:{}",
            server.port
        )));
        t.deliver(&batch).await.expect("right token in URL");
        t.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn missing_stream_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start(free_port(), dir.path(), &[]);
        let mut t = NatsTransport::new(NatsSettings {
            create_stream: false,
            ..settings(&server.url())
        });
        let err = t
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
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        use std::sync::Arc;

        let certs = tempfile::tempdir().expect("tempdir");
        // openssl comes with ca-certificates (deploy/setup.sh installs it).
        assert!(
            make_certs(certs.path()),
            "openssl made the test certificates"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = certs.path().join("srv.pem");
        let key = certs.path().join("srv.key");
        let server = Server::start(
            free_port(),
            dir.path(),
            &[
                "--tls",
                "--tlscert",
                cert.to_str().expect("path"),
                "--tlskey",
                key.to_str().expect("path"),
            ],
        );
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(certs.path().join("ca.pem")).expect("ca"))
            .expect("add ca");
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();

        let batch = records("01TLS", "cam1", 0, 5);
        let mut t = NatsTransport::new(NatsSettings {
            tls: Some(config),
            ..settings(&server.url())
        });
        t.deliver(&batch).await.expect("deliver over TLS");
        t.close().await;

        // A client config that does not trust the server's CA fails, in time.
        let other = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        let mut t = NatsTransport::new(NatsSettings {
            tls: Some(other),
            ..settings(&server.url())
        });
        let start = StdInstant::now();
        let err = t.deliver(&batch).await.expect_err("untrusted server");
        eprintln!("tls untrusted: {err}");
        assert!(start.elapsed() < T + Duration::from_secs(1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn close_is_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start(free_port(), dir.path(), &[]);
        let mut t = NatsTransport::new(settings(&server.url()));
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
}
