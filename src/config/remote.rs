//! The live sinks' settings: webhook, MQTT and NATS JetStream. Each one
//! delivers from the event store with its own cursor; secrets are named
//! here (an environment variable or a file), never written in clear.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

use super::values::*;
use crate::secret::redact_url;

/// How a live sink takes records from the store and retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Records per request or burst of publishes.
    pub batch: usize,
    /// Longest wait between two attempts, ns (backoff doubles up to it).
    pub retry_max: u64,
    /// How long the end of a run waits for what is still owed, ns; the
    /// rest stays in the store for the next run.
    pub drain: u64,
    /// Bound on one attempt (connect and acknowledgements), ns.
    pub timeout: u64,
}

/// A secret: the name of an environment variable, or a file to read
/// (trailing newline dropped). Never the secret itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretRef {
    pub env: Option<String>,
    pub file: Option<PathBuf>,
}

impl SecretRef {
    pub fn is_set(&self) -> bool {
        self.env.is_some() || self.file.is_some()
    }

    /// Reads the secret; `what` names it in errors (`[sinks.mqtt] password`).
    pub fn resolve(&self, what: &str) -> Result<Option<String>, String> {
        match (&self.env, &self.file) {
            (Some(_), Some(_)) => Err(format!(
                "{what}: give either the environment variable or the file, not both"
            )),
            (Some(var), None) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Some(v)),
                Ok(_) => Err(format!(
                    "{what}: the environment variable {var} is empty; set it before starting vigil"
                )),
                Err(_) => Err(format!(
                    "{what}: the environment variable {var} is not set; set it before starting vigil"
                )),
            },
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("{what}: cannot read the file {}: {e}", path.display()))?;
                let text = text.trim_end_matches(['\n', '\r']).to_string();
                if text.is_empty() {
                    return Err(format!("{what}: the file {} is empty", path.display()));
                }
                Ok(Some(text))
            }
            (None, None) => Ok(None),
        }
    }
}

fn default_batch() -> usize {
    100
}
fn batch<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    ranged(d, 1, 1000, "batch")
}
pub(super) fn opt_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    expanded(d).map(|s| Some(PathBuf::from(s)))
}

/// The fields every live sink has, written out in each (serde cannot
/// flatten into a struct that refuses unknown fields).
macro_rules! delivery_fields {
    ($(#[$m:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $(#[$m])*
        #[derive(Clone, Debug, Deserialize, Serialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($body)*
            /// Records per request or burst of publishes.
            #[serde(default = "default_batch", deserialize_with = "batch")]
            pub batch: usize,
            /// Longest wait between two attempts.
            #[serde(default)]
            pub retry_max: Bounded<bounds::DeliveryRetryMax>,
            /// How long the end of a run waits for records still owed.
            #[serde(default)]
            pub drain: Bounded<bounds::Drain>,
            /// Bound on one attempt: connecting and being acknowledged.
            #[serde(default)]
            pub timeout: Bounded<bounds::Timeout>,
        }

        impl $name {
            pub fn delivery(&self) -> Delivery {
                Delivery {
                    batch: self.batch,
                    retry_max: self.retry_max.nanos(),
                    drain: self.drain.nanos(),
                    timeout: self.timeout.nanos(),
                }
            }
        }
    };
}

delivery_fields! {
    /// Records POSTed as JSON arrays to an HTTP(S) endpoint; a 2xx answer
    /// acknowledges them.
    pub struct WebhookConfig {
        /// `http://` or `https://`; `${VAR}` is expanded.
        #[serde(deserialize_with = "expanded")]
        pub url: String,
        /// Environment variable holding the HMAC-SHA256 key that signs each
        /// body (`X-Vigil-Signature: sha256=<hex>`).
        #[serde(default)]
        pub secret_env: Option<String>,
        #[serde(default, deserialize_with = "opt_path")]
        pub secret_file: Option<PathBuf>,
        /// Environment variable holding a bearer token (`Authorization`).
        #[serde(default)]
        pub bearer_env: Option<String>,
        #[serde(default, deserialize_with = "opt_path")]
        pub bearer_file: Option<PathBuf>,
        /// PEM certificates to trust besides the system's.
        #[serde(default, deserialize_with = "opt_path")]
        pub ca_file: Option<PathBuf>,
    }
}

delivery_fields! {
    /// Records published to an MQTT broker, QoS 1.
    pub struct MqttConfig {
        /// `mqtt://host:1883` or `mqtts://host:8883` (TLS).
        #[serde(deserialize_with = "expanded")]
        pub url: String,
        /// Topics start with it: `PREFIX/STREAM/events`.
        #[serde(default = "default_mqtt_prefix")]
        pub prefix: String,
        /// Client id; `vigil-HOST-PID` when unset.
        #[serde(default)]
        pub client_id: Option<String>,
        #[serde(default)]
        pub username: Option<String>,
        #[serde(default)]
        pub password_env: Option<String>,
        #[serde(default, deserialize_with = "opt_path")]
        pub password_file: Option<PathBuf>,
        #[serde(default, deserialize_with = "opt_path")]
        pub ca_file: Option<PathBuf>,
        /// Seconds between keep-alive pings; the broker publishes the last
        /// will (`PREFIX/status offline`) after 1.5 times this.
        #[serde(default)]
        pub keep_alive: Bounded<bounds::KeepAlive>,
        /// Publish each event's snapshot JPEG, retained, to
        /// `PREFIX/STREAM/snapshot` and `PREFIX/STREAM/LABEL/snapshot`.
        #[serde(default = "default_true")]
        pub snapshots: bool,
        /// Home Assistant MQTT discovery: each stream announced, retained,
        /// under `discovery_prefix` as a device with a camera, sensors and
        /// binary sensors (`sink::mqtt::discovery`).
        #[serde(default)]
        pub discovery: bool,
        /// Where Home Assistant listens for discovery (its default).
        #[serde(default = "default_discovery_prefix")]
        pub discovery_prefix: String,
        /// Where the snapshots records name are (the output folder): set
        /// when the sinks are built, not read from the file.
        #[serde(skip)]
        pub media_root: Option<PathBuf>,
        /// The node of a cluster this process is (its status topic is its
        /// own): set when the sinks are built, not read from the file.
        #[serde(skip)]
        pub node: Option<String>,
    }
}

delivery_fields! {
    /// Records published to a NATS JetStream stream.
    pub struct NatsConfig {
        /// `nats://host:4222`, `tls://host:4222`; several separated by commas.
        #[serde(deserialize_with = "expanded")]
        pub url: String,
        /// Subjects start with it: `PREFIX.STREAM.TYPE`.
        #[serde(default = "default_nats_prefix")]
        pub prefix: String,
        /// The JetStream stream that keeps the subjects.
        #[serde(default = "default_nats_stream")]
        pub stream: String,
        /// Create the stream (subjects `PREFIX.>`) when it does not exist.
        #[serde(default = "default_true")]
        pub create_stream: bool,
        /// Copies JetStream keeps of a stream it creates (1–5; 3 on a
        /// three-server NATS cluster, so that one server may fail).
        #[serde(default = "default_nats_replicas")]
        pub replicas: usize,
        /// Require TLS even for `nats://` addresses.
        #[serde(default)]
        pub tls: bool,
        #[serde(default)]
        pub token_env: Option<String>,
        #[serde(default, deserialize_with = "opt_path")]
        pub token_file: Option<PathBuf>,
        #[serde(default)]
        pub user: Option<String>,
        #[serde(default)]
        pub password_env: Option<String>,
        #[serde(default, deserialize_with = "opt_path")]
        pub password_file: Option<PathBuf>,
        /// A `.creds` file (JWT and NKey seed).
        #[serde(default, deserialize_with = "opt_path")]
        pub credentials_file: Option<PathBuf>,
        #[serde(default, deserialize_with = "opt_path")]
        pub ca_file: Option<PathBuf>,
    }
}

fn default_mqtt_prefix() -> String {
    "vigil".into()
}
fn default_discovery_prefix() -> String {
    "homeassistant".into()
}
fn default_nats_prefix() -> String {
    "vigil".into()
}
fn default_nats_stream() -> String {
    "VIGIL".into()
}
fn default_nats_replicas() -> usize {
    1
}

impl WebhookConfig {
    pub fn secret(&self) -> SecretRef {
        SecretRef {
            env: self.secret_env.clone(),
            file: self.secret_file.clone(),
        }
    }
    pub fn bearer(&self) -> SecretRef {
        SecretRef {
            env: self.bearer_env.clone(),
            file: self.bearer_file.clone(),
        }
    }

    /// Problems found before anything runs.
    pub fn check(&self) -> Result<(), String> {
        let url = url::Url::parse(&self.url)
            .map_err(|e| format!("url `{}` is not a URL: {e}", redact_url(&self.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "url `{}`: a webhook is http:// or https://",
                redact_url(&self.url)
            ));
        }
        if url.password().is_some() {
            return Err(
                "url: a password in the URL would sit in the pipeline file in clear; use bearer_env or bearer_file"
                    .into(),
            );
        }
        Ok(())
    }
}

impl MqttConfig {
    pub fn password(&self) -> SecretRef {
        SecretRef {
            env: self.password_env.clone(),
            file: self.password_file.clone(),
        }
    }

    /// Host, port and whether TLS is on, from `url`.
    pub fn endpoint(&self) -> Result<(String, u16, bool), String> {
        let url = url::Url::parse(&self.url)
            .map_err(|e| format!("url `{}` is not a URL: {e}", redact_url(&self.url)))?;
        let tls = match url.scheme() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            other => {
                return Err(format!(
                    "url scheme `{other}`: expected mqtt:// or mqtts://"
                ));
            }
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "url: put the user name in `username` and the password in password_env or password_file, not in the URL"
                    .into(),
            );
        }
        let host = url
            .host_str()
            .ok_or_else(|| format!("url `{}` has no host", self.url))?
            .trim_matches(['[', ']'])
            .to_string();
        let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
        Ok((host, port, tls))
    }

    pub fn check(&self) -> Result<(), String> {
        self.endpoint()?;
        topic_word(&self.prefix, "prefix")?;
        topic_word(&self.discovery_prefix, "discovery_prefix")?;
        if self.password().is_set() && self.username.is_none() {
            return Err("a password needs a `username`".into());
        }
        Ok(())
    }
}

delivery_fields! {
    /// Rule alerts spoken aloud with espeak-ng: a sentence per alert of the
    /// chosen severities, written to a WAV file and/or played on the
    /// default audio device, rate-limited.
    pub struct SpeakConfig {
        /// Severities spoken (`info`, `low`, `medium`, `high`, `critical`).
        #[serde(default = "default_speak_severities")]
        pub severities: Vec<super::Severity>,
        /// Folder under the output folder for one WAV (and the sentence, as
        /// `.txt`) per alert; `""`: none.
        #[serde(default = "default_speak_dir")]
        pub dir: PathBuf,
        /// WAV files kept (the oldest go first).
        #[serde(default = "default_speak_keep")]
        pub keep: usize,
        /// Also play each alert on the default audio device.
        #[serde(default)]
        pub play: bool,
        /// espeak-ng's voice (`espeak-ng --voices`).
        #[serde(default = "default_speak_voice")]
        pub voice: String,
        /// Words per minute (80–450).
        #[serde(default = "default_speak_wpm")]
        pub words_per_minute: u32,
        /// At most one alert spoken in this long; those in between are
        /// skipped (and counted).
        #[serde(default = "default_speak_gap")]
        pub min_interval: crate::time::Duration,
    }
}

fn default_speak_severities() -> Vec<super::Severity> {
    vec![super::Severity::High, super::Severity::Critical]
}
fn default_speak_dir() -> PathBuf {
    PathBuf::from("alerts")
}
fn default_speak_keep() -> usize {
    1000
}
fn default_speak_voice() -> String {
    "en".into()
}
fn default_speak_wpm() -> u32 {
    140
}
fn default_speak_gap() -> crate::time::Duration {
    crate::time::Duration::from_secs(10)
}

impl SpeakConfig {
    pub fn check(&self) -> Result<(), String> {
        if self.severities.is_empty() {
            return Err("severities: name at least one (`[\"high\"]`)".into());
        }
        if !(80..=450).contains(&self.words_per_minute) {
            return Err(format!(
                "words_per_minute: {} is outside 80–450",
                self.words_per_minute
            ));
        }
        if self.dir.as_os_str().is_empty() && !self.play {
            return Err(
                "neither a `dir` for the WAV files nor `play = true`: nothing would be heard"
                    .into(),
            );
        }
        if self.dir.is_absolute()
            || self
                .dir
                .components()
                .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(format!(
                "dir `{}`: a folder under the output folder (no `..`, not absolute)",
                self.dir.display()
            ));
        }
        if self.voice.is_empty()
            || !self
                .voice
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_+".contains(c))
        {
            return Err(format!(
                "voice `{}`: a name from `espeak-ng --voices`",
                self.voice
            ));
        }
        Ok(())
    }
}

impl NatsConfig {
    pub fn token(&self) -> SecretRef {
        SecretRef {
            env: self.token_env.clone(),
            file: self.token_file.clone(),
        }
    }
    pub fn password(&self) -> SecretRef {
        SecretRef {
            env: self.password_env.clone(),
            file: self.password_file.clone(),
        }
    }

    pub fn check(&self) -> Result<(), String> {
        for part in self.url.split(',') {
            let url = url::Url::parse(part.trim())
                .map_err(|e| format!("url `{}` is not a URL: {e}", redact_url(part)))?;
            if !matches!(url.scheme(), "nats" | "tls") {
                return Err(format!(
                    "url `{}`: expected nats:// or tls://",
                    redact_url(part)
                ));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(
                    "url: put credentials in user with password_env, token_env or credentials_file, not in the URL"
                        .into(),
                );
            }
        }
        if self.prefix.is_empty()
            || self
                .prefix
                .chars()
                .any(|c| c.is_whitespace() || "*>".contains(c))
        {
            return Err(format!(
                "prefix `{}`: a subject prefix has no spaces, `*` or `>`",
                self.prefix
            ));
        }
        if self.stream.is_empty()
            || self
                .stream
                .chars()
                .any(|c| c.is_whitespace() || ".*>/\\".contains(c))
        {
            return Err(format!(
                "stream `{}`: a JetStream stream name has no spaces, `.`, `*`, `>` or slashes",
                self.stream
            ));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(format!("replicas: {} is outside 1–5", self.replicas));
        }
        let ways = [
            self.token().is_set(),
            self.user.is_some(),
            self.credentials_file.is_some(),
        ];
        if ways.iter().filter(|w| **w).count() > 1 {
            return Err(
                "give one way to authenticate: a token, a user with a password, or a credentials file"
                    .into(),
            );
        }
        if self.user.is_some() != self.password().is_set() {
            return Err("`user` and password_env (or password_file) go together".into());
        }
        Ok(())
    }
}

fn topic_word(s: &str, what: &str) -> Result<(), String> {
    if s.is_empty() || s.contains(['+', '#']) || s.starts_with('/') || s.ends_with('/') {
        return Err(format!(
            "{what} `{s}`: a topic prefix is not empty, has no `+` or `#`, and neither starts nor ends with `/`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_the_environment_or_a_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("s");
        std::fs::write(&file, "hunter2\n").expect("write");
        let from_file = SecretRef {
            env: None,
            file: Some(file.clone()),
        };
        assert_eq!(from_file.resolve("x"), Ok(Some("hunter2".into())));
        let missing = SecretRef {
            env: Some("VIGIL_TEST_SURELY_UNSET".into()),
            file: None,
        };
        let e = missing.resolve("[sinks.mqtt] password").unwrap_err();
        assert!(e.contains("VIGIL_TEST_SURELY_UNSET is not set"), "{e}");
        let both = SecretRef {
            env: Some("A".into()),
            file: Some(file),
        };
        assert!(both.resolve("x").is_err());
        assert_eq!(SecretRef::default().resolve("x"), Ok(None));
    }

    #[test]
    fn urls_never_carry_passwords_and_messages_never_show_them() {
        let mqtt: MqttConfig =
            toml::from_str("url = \"mqtt://me:pw@broker:1884\"").expect("parses");
        let e = mqtt.check().unwrap_err();
        assert!(!e.contains("pw"), "{e}");
        let mqtt: MqttConfig = toml::from_str("url = \"mqtts://broker\"").expect("parses");
        assert_eq!(mqtt.endpoint(), Ok(("broker".into(), 8883, true)));
        let hook: WebhookConfig =
            toml::from_str("url = \"https://a:b@example.com/x?token=t\"").expect("parses");
        assert!(hook.check().is_err());
        let nats: NatsConfig =
            toml::from_str("url = \"nats://h:4222\"\nuser = \"u\"").expect("parses");
        assert!(nats.check().unwrap_err().contains("go together"));
        let bad: Result<NatsConfig, _> = toml::from_str("url = \"nats://h\"\npassword = \"x\"");
        assert!(bad.is_err(), "a password in clear is refused");
    }
}
