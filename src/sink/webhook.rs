//! Webhook: each batch is POSTed as one JSON array of records. A 2xx
//! answer acknowledges the whole batch; anything else is retried.
//!
//! Headers: `Content-Type: application/json`, `X-Vigil-Records` (how many),
//! `X-Vigil-First` and `X-Vigil-Last` (`run/id` of the first and last
//! record), `X-Vigil-Signature: sha256=<hex>` (HMAC-SHA256 of the body
//! with the configured secret) and `Authorization: Bearer …` when set.

use std::fmt::Write as _;
use std::time::Duration;

use hmac::{Hmac, Mac};

use crate::config::{WebhookConfig, redact};
use crate::sink::outbox::{Failed, Outgoing, Transport};

/// The signature header.
pub const SIGNATURE: &str = "X-Vigil-Signature";

pub struct WebhookTransport {
    client: reqwest::Client,
    url: reqwest::Url,
    /// The URL fit for messages (no credentials, query or fragment).
    shown: String,
    secret: Option<Vec<u8>>,
    bearer: Option<String>,
}

impl WebhookTransport {
    /// Resolves the secrets and builds the HTTP client; nothing is sent yet.
    pub fn new(config: &WebhookConfig) -> Result<WebhookTransport, String> {
        let shown = redact(&config.url);
        let url = reqwest::Url::parse(&config.url)
            .map_err(|e| format!("[sinks.webhook] url `{shown}`: {e}"))?;
        let secret = config
            .secret()
            .resolve("[sinks.webhook] secret")?
            .map(String::into_bytes);
        let bearer = config.bearer().resolve("[sinks.webhook] bearer")?;
        let tls = crate::sink::tls::client_config("[sinks.webhook]", config.ca_file.as_deref())?;
        let timeout = Duration::from_nanos(config.timeout);
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("[sinks.webhook] cannot build the HTTP client: {e}"))?;
        Ok(WebhookTransport {
            client,
            url,
            shown,
            secret,
            bearer,
        })
    }
}

/// `sha256=<hex>` of `body` keyed with `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(body);
    let mut out = String::from("sha256=");
    for b in mac.finalize().into_bytes() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The body: the records' JSON as one array, each exactly as stored.
pub fn body(batch: &[Outgoing]) -> String {
    let mut body = String::with_capacity(batch.iter().map(|r| r.json.len() + 1).sum::<usize>() + 2);
    body.push('[');
    for (i, r) in batch.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&r.json);
    }
    body.push(']');
    body
}

/// An error and its causes on one line, without the URL.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let _ = write!(text, ": {s}");
        source = s.source();
    }
    text
}

#[async_trait::async_trait]
impl Transport for WebhookTransport {
    async fn deliver(&mut self, batch: &[Outgoing]) -> Result<(), Failed> {
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
            return Ok(());
        };
        let body = body(batch);
        let mut request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Vigil-Records", batch.len().to_string())
            .header("X-Vigil-First", format!("{}/{}", first.run, first.id))
            .header("X-Vigil-Last", format!("{}/{}", last.run, last.id));
        if let Some(secret) = &self.secret {
            request = request.header(SIGNATURE, signature(secret, body.as_bytes()));
        }
        if let Some(token) = &self.bearer {
            request = request.bearer_auth(token);
        }
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|e| Failed(format!("webhook {}: {}", self.shown, describe(e))))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(Failed(format!(
                "webhook {} answered HTTP {status}",
                self.shown
            )))
        }
    }

    async fn close(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_in_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn body_is_a_json_array_of_the_records() {
        let r = |id: &str| Outgoing {
            seq: 1,
            run: "R".into(),
            id: id.into(),
            stream: "cam".into(),
            kind_of: "caption".into(),
            json: format!("{{\"id\":\"{id}\",\"text\":\"a, \\\"b\\\"\"}}"),
            stored_ns: None,
        };
        let v: serde_json::Value =
            serde_json::from_str(&body(&[r("cam/1"), r("cam/2")])).expect("JSON");
        assert_eq!(v[1]["id"], "cam/2");
        assert_eq!(v[0]["text"], "a, \"b\"");
    }
}
