//! MQTT: publishes records to an MQTT 3.1.1 broker with QoS 1 and
//! keeps a retained, Home Assistant friendly state topic per stream.
//!
//! Topics (`{stream}` has `/`, `+`, `#` replaced by `_`):
//! - `{prefix}/{stream}/events`, `.../captions`, `.../transcripts`: the record
//!   JSON unchanged, QoS 1, not retained (other record kinds go to `.../other`);
//! - `{prefix}/{stream}/state`: retained summary, published after each batch
//!   for every stream the batch touched;
//! - `{prefix}/{stream}/snapshot` and `{prefix}/{stream}/{label}/snapshot`:
//!   the JPEG an event record names, retained (`snapshots = true`);
//! - `{prefix}/status`: retained `online` on every (re)connect, `offline` on
//!   [`Transport::close`](crate::sink::outbox::Transport::close) and as the last will.
//!
//! Delivery: a connection is opened lazily by the first `deliver`. A background
//! task drives rumqttc's event loop (so keep-alive pings go out between
//! batches) and forwards connection events to the transport. `deliver`
//! publishes the batch, then waits until every publish (records, state and, on
//! a fresh connection, `online`) has been PubAck'ed. On any connection error or
//! timeout the client and event loop are dropped (no replay of stale inflight
//! messages by rumqttc) and the next `deliver` connects afresh. If a connection
//! that was idle since the previous batch turns out dead (broker restarted),
//! `deliver` reconnects once by itself within the same time bound.
//!
//! With `discovery = true`, each stream is also announced to Home Assistant
//! as a device with a camera, sensors and binary sensors ([`discovery`]).
//!
//! [`config`] builds the [`MqttTransport`] from `[sinks.mqtt]`; [`topics`]
//! names the topics; [`state`] keeps the per-stream summary.

pub mod config;
pub mod discovery;
pub mod state;
pub mod topics;
mod transport;

pub use transport::MqttTransport;

#[cfg(test)]
mod tests;
