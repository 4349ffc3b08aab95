//! `[sinks.webhook]` builds the running [`WebhookTransport`]: the URL
//! read, the secrets resolved, the HTTP client (and TLS) set up.

use std::time::Duration;

use super::WebhookTransport;
use crate::config::{Delivery, WebhookConfig};
use crate::secret::redact_url;
use crate::sink::outbox::LiveConfig;

impl LiveConfig for WebhookConfig {
    const NAME: &'static str = "webhook";
    type Transport = WebhookTransport;

    /// Resolves the secrets and builds the HTTP client; nothing is sent yet.
    fn build(&self) -> Result<WebhookTransport, String> {
        let shown = shown(&self.url);
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| format!("[sinks.webhook] url `{shown}`: {e}"))?;
        let secret = self
            .secret()
            .resolve("[sinks.webhook] secret")?
            .map(String::into_bytes);
        let bearer = self.bearer().resolve("[sinks.webhook] bearer")?;
        let tls = if url.scheme() == "https" {
            crate::sink::tls::client_config("[sinks.webhook]", self.ca_file.as_deref())?
        } else {
            if bearer.is_some() {
                tracing::warn!(
                    "[sinks.webhook] sends its bearer token over plain http to {shown}: use https"
                );
            }
            crate::sink::tls::optional_client_config("[sinks.webhook]", self.ca_file.as_deref())?
        };
        let timeout = Duration::from_nanos(self.timeout.nanos());
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
            // A redirect would turn the POST into a GET without its body,
            // and a 2xx for that GET would acknowledge records never sent.
            .redirect(reqwest::redirect::Policy::none())
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

    fn delivery(&self) -> Delivery {
        WebhookConfig::delivery(self)
    }
}

/// The URL fit for messages: scheme, host and port only, since webhook
/// paths often carry a secret (Slack, Discord).
fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}/…",
            u.scheme(),
            u.host_str().unwrap_or("?"),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => redact_url(url),
    }
}
