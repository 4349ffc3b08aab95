//! One POST per batch; a 2xx answer acknowledges it.

use std::fmt::Write as _;

use super::{SIGNATURE, body, signature};
use crate::sink::outbox::{Failed, Outgoing, Transport};

pub struct WebhookTransport {
    pub(super) client: reqwest::Client,
    pub(super) url: reqwest::Url,
    /// The URL fit for messages (no credentials, query or fragment).
    pub(super) shown: String,
    pub(super) secret: Option<Vec<u8>>,
    pub(super) bearer: Option<String>,
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
        } else if status.is_redirection() {
            Err(Failed(format!(
                "webhook {} answered HTTP {status} (a redirect, not followed): set url to where it points",
                self.shown
            )))
        } else {
            Err(Failed(format!(
                "webhook {} answered HTTP {status}",
                self.shown
            )))
        }
    }

    async fn close(&mut self) {}
}
