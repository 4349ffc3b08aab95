//! `[sinks.nats]` builds the running [`NatsTransport`]: the secrets
//! resolved, TLS set up.

use super::NatsTransport;
use super::auth::NatsAuth;
use crate::config::{Delivery, NatsConfig};
use crate::sink::outbox::LiveConfig;

impl LiveConfig for NatsConfig {
    const NAME: &'static str = "nats";
    type Transport = NatsTransport;

    fn build(&self) -> Result<NatsTransport, String> {
        let secure = self.tls || self.url.split(',').any(|u| u.trim().starts_with("tls://"));
        let tls = if secure {
            Some(crate::sink::tls::client_config(
                "[sinks.nats]",
                self.ca_file.as_deref(),
            )?)
        } else {
            None
        };
        let auth = if let Some(token) = self.token().resolve("[sinks.nats] token")? {
            NatsAuth::Token(token)
        } else if let Some(user) = &self.user {
            let password = self
                .password()
                .resolve("[sinks.nats] password")?
                .unwrap_or_default();
            NatsAuth::UserPassword {
                user: user.clone(),
                password,
            }
        } else if let Some(path) = &self.credentials_file {
            NatsAuth::CredentialsFile(path.clone())
        } else {
            NatsAuth::None
        };
        Ok(NatsTransport::new(self.clone(), auth, tls))
    }

    fn delivery(&self) -> Delivery {
        NatsConfig::delivery(self)
    }
}
