//! The connection to NATS: connect, check the stream, publish, wait for
//! the acks, drop a client that keeps failing.

use std::future::IntoFuture;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::context::{GetStreamErrorKind, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, ErrorCode, stream};
use async_nats::{Client, ConnectOptions};
use tokio::time::{Instant, timeout_at};

use super::auth::{NatsAuth, split_userinfo};
use super::{msg_id, subject};
use crate::config::NatsConfig;
use crate::sink::outbox::{Failed, Outgoing, Transport};

/// Reconnect attempts the client's background task makes before it gives up
/// (the next `deliver` then connects afresh).
const MAX_RECONNECTS: usize = 60;
/// Failed deliveries in a row after which the client is dropped even though it
/// believes it is connected (a server that stopped answering).
const DROP_AFTER_FAILURES: u32 = 3;
/// Duplicate window of a stream this transport creates.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

struct Conn {
    client: Client,
    js: jetstream::Context,
}

/// Delivers records to a NATS JetStream stream; see the module docs.
pub struct NatsTransport {
    config: NatsConfig,
    /// When set: require TLS and use this client config.
    tls: Option<rustls::ClientConfig>,
    auth: NatsAuth,
    /// Server URLs without userinfo, as handed to async-nats.
    pub(super) servers: Vec<String>,
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
    /// Creates the transport (see [`LiveConfig::build`](crate::sink::outbox::LiveConfig::build));
    /// it connects lazily, on the first `deliver`.
    pub(super) fn new(
        config: NatsConfig,
        auth: NatsAuth,
        tls: Option<rustls::ClientConfig>,
    ) -> NatsTransport {
        let mut servers = Vec::new();
        let mut url_auth = None;
        for part in config.url.split(',').map(str::trim) {
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
        match &auth {
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
            config,
            tls,
            auth,
            servers,
            shown,
            url_auth,
            secrets,
            conn: None,
            failures: 0,
            warned_other_stream: false,
        }
    }

    /// Bound for connecting and for the acks of one batch.
    fn timeout(&self) -> Duration {
        Duration::from_nanos(self.config.timeout.nanos())
    }

    pub(super) fn scrub(&self, msg: String) -> String {
        crate::secret::scrub(&msg, &self.secrets)
    }

    /// How to connect: the credentials and TLS of `[sinks.nats]` (for the
    /// cluster's connection too, which sets its own timeouts).
    pub async fn connect_options(&self) -> Result<ConnectOptions, String> {
        let opts = match &self.auth {
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
        let t = self.timeout();
        let mut opts = opts
            .name("vigil")
            .connection_timeout(t)
            .request_timeout(Some(t))
            .ping_interval(t.clamp(Duration::from_secs(5), Duration::from_secs(60)))
            .max_reconnects(MAX_RECONNECTS);
        if let Some(tls) = &self.tls {
            opts = opts.require_tls(true).tls_client_config(tls.clone());
        }
        Ok(opts)
    }

    /// A JetStream context on the configured servers, with the stream
    /// checked (or made, with `create_stream`): for reading it back.
    pub async fn jetstream(&self) -> Result<jetstream::Context, String> {
        self.connect()
            .await
            .map(|c| c.js)
            .map_err(|e| self.scrub(e))
    }

    async fn connect(&self) -> Result<Conn, String> {
        if self.servers.is_empty() {
            return Err("no NATS server URL configured".to_string());
        }
        let t = self.timeout();
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
        tracing::info!(servers = %self.shown, stream = %self.config.stream, "connected to NATS");
        Ok(Conn { client, js })
    }

    async fn ensure_stream(&self, js: &jetstream::Context) -> Result<(), String> {
        let name = &self.config.stream;
        let shown = &self.shown;
        if self.config.create_stream {
            let config = stream::Config {
                name: name.clone(),
                subjects: vec![format!("{}.>", self.config.prefix)],
                storage: stream::StorageType::File,
                duplicate_window: DUPLICATE_WINDOW,
                num_replicas: self.config.replicas,
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
        let t = self.timeout();
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
            let subject = subject(&self.config.prefix, &rec.stream, &rec.kind_of);
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
                    if ack.stream != self.config.stream && !self.warned_other_stream {
                        self.warned_other_stream = true;
                        tracing::warn!(
                            subject = %subject,
                            stored_in = %ack.stream,
                            expected = %self.config.stream,
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

#[async_trait::async_trait]
impl Transport for NatsTransport {
    async fn deliver(&mut self, batch: &[Outgoing]) -> Result<(), Failed> {
        if batch.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + self.timeout();
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
        let deadline = Instant::now() + self.timeout();
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
