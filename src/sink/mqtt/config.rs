//! `[sinks.mqtt]` builds the running [`MqttTransport`]: the URL read, the
//! password resolved, TLS set up.

use std::fmt;
use std::sync::Arc;

use super::MqttTransport;
use crate::config::{Delivery, MqttConfig};
use crate::sink::outbox::LiveConfig;

impl LiveConfig for MqttConfig {
    const NAME: &'static str = "mqtt";
    type Transport = MqttTransport;

    fn build(&self) -> Result<MqttTransport, String> {
        let (host, port, tls) = self.endpoint().map_err(|e| format!("[sinks.mqtt] {e}"))?;
        let tls = if tls {
            Some(Arc::new(crate::sink::tls::client_config(
                "[sinks.mqtt]",
                self.ca_file.as_deref(),
            )?))
        } else {
            None
        };
        let broker = Broker {
            host,
            port,
            tls,
            client_id: self.client_id.clone().unwrap_or_else(default_client_id),
            password: self.password().resolve("[sinks.mqtt] password")?,
        };
        Ok(MqttTransport::new(self.clone(), broker))
    }

    fn delivery(&self) -> Delivery {
        MqttConfig::delivery(self)
    }
}

/// Where and as whom to connect: what `[sinks.mqtt]` says once read.
#[derive(Clone)]
pub(super) struct Broker {
    pub host: String,
    pub port: u16,
    /// TLS when set (the client config already carries the root certificates).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub client_id: String,
    /// A secret: never logged, never put in an error.
    pub password: Option<String>,
}

impl Broker {
    /// `host:port`, for messages.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .field("client_id", &self.client_id)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
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
