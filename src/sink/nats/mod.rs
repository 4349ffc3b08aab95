//! NATS JetStream: records published to a stream.
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
//!   it as credentials when no other is configured and never passes it on.
//!
//! [`config`] builds the [`NatsTransport`] from `[sinks.nats]`; the
//! credentials (configured or in the URL) are in `auth`.

mod auth;
pub mod config;
mod transport;

pub use auth::split_userinfo;
pub use transport::NatsTransport;

use crate::sink::outbox::Outgoing;

/// The subject a record goes to: `{prefix}.{stream}.{kind_of}`, with the
/// characters a subject token cannot carry (`.`, `*`, `>`, whitespace,
/// control characters) replaced by `_` in `stream` and `kind_of`.
pub fn subject(prefix: &str, stream: &str, kind_of: &str) -> String {
    format!("{prefix}.{}.{}", token(stream), token(kind_of))
}

pub(crate) fn token(s: &str) -> String {
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

#[cfg(test)]
mod tests;
