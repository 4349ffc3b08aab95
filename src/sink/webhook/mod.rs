//! Webhook: each batch is POSTed as one JSON array of records. A 2xx
//! answer acknowledges the whole batch; anything else is retried.
//!
//! Headers: `Content-Type: application/json`, `X-Vigil-Records` (how many),
//! `X-Vigil-First` and `X-Vigil-Last` (`run/id` of the first and last
//! record), `X-Vigil-Signature: sha256=<hex>` (HMAC-SHA256 of the body
//! with the configured secret) and `Authorization: Bearer …` when set.
//!
//! [`config`] builds the [`WebhookTransport`] from `[sinks.webhook]`.

pub mod config;
mod transport;

pub use transport::WebhookTransport;

use std::fmt::Write as _;

use hmac::{Hmac, Mac};

use crate::sink::outbox::Outgoing;

/// The signature header.
pub const SIGNATURE: &str = "X-Vigil-Signature";

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

#[cfg(test)]
mod tests;
