//! The whole cluster's records, read back from the JetStream stream every
//! node delivers to (`vigil events --nats`, and `GET /events` on a node):
//! the same filters and formats as a store's export.
//!
//! Each node delivers its own store's records; JetStream drops a record
//! delivered twice within its duplicate window by `Nats-Msg-Id`
//! (`run/id`), and a copy that arrives later is left out here by the same
//! key. Records come in the order the stream has them (the order they
//! reached it); captions and transcripts for cues are put in time order.

use std::collections::HashSet;
use std::io::Write;

use async_nats::jetstream::consumer;
use futures_util::StreamExt;

use super::{Filter, Format, RecordWriter};
use crate::config::NatsConfig;
use crate::error::{Error, Result};
use crate::sink::outbox::LiveConfig;

fn failed(what: impl std::fmt::Display) -> Error {
    Error::Sink {
        sink: "nats".into(),
        message: what.to_string(),
    }
}

/// `[sinks.nats]` for reading the stream `stream` on `url` (credentials
/// in the URL, as `--cluster` takes them).
pub fn config_for(url: &str, stream: &str, prefix: &str) -> Result<NatsConfig> {
    let mut config: NatsConfig = toml::from_str(&format!("url = {:?}", url))
        .map_err(|e| Error::Invalid(format!("--nats: {e}")))?;
    config.stream = stream.into();
    config.prefix = prefix.into();
    config.create_stream = false;
    Ok(config)
}

/// Every record of the stream that passes `filter`, each handed to `each`
/// as its JSON; how many.
pub async fn read(
    config: &NatsConfig,
    filter: &Filter,
    mut each: impl FnMut(&str) -> Result<()>,
) -> Result<u64> {
    let transport = config.build().map_err(Error::Invalid)?;
    let js = transport.jetstream().await.map_err(failed)?;
    let stream = js.get_stream(&config.stream).await.map_err(|e| {
        failed(format!(
            "cannot open the JetStream stream {}: {e}",
            config.stream
        ))
    })?;
    let subject = match &filter.stream {
        Some(s) => format!("{}.{}.>", config.prefix, crate::sink::nats::token(s)),
        None => format!("{}.>", config.prefix),
    };
    let mut consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: subject,
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| failed(format!("cannot read the stream {}: {e}", config.stream)))?;
    let pending = consumer
        .info()
        .await
        .map_err(|e| failed(format!("cannot read the stream {}: {e}", config.stream)))?
        .num_pending;
    let mut n = 0;
    if pending == 0 {
        return Ok(n);
    }
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| failed(format!("cannot read the stream {}: {e}", config.stream)))?;
    let mut seen = HashSet::new();
    while let Some(m) = messages.next().await {
        let m = m.map_err(|e| failed(format!("reading the stream {}: {e}", config.stream)))?;
        let last = m.info().map(|i| i.pending == 0).unwrap_or(false);
        let id = m
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|v| v.to_string());
        let fresh = id.is_none_or(|id| seen.insert(id));
        if fresh
            && let Ok(json) = std::str::from_utf8(&m.payload)
            && serde_json::from_str::<serde_json::Value>(json).is_ok_and(|v| filter.matches(&v))
        {
            each(json)?;
            n += 1;
        }
        if last {
            break;
        }
    }
    Ok(n)
}

/// Writes the stream's records that pass `filter` to `out` in `format`;
/// how many were written.
pub async fn export(
    config: &NatsConfig,
    filter: &Filter,
    format: Format,
    out: &mut dyn Write,
) -> Result<u64> {
    let from = format!("JetStream stream {}", config.stream);
    if matches!(format, Format::Vtt | Format::Srt) {
        let mut cues: Vec<(String, String)> = Vec::new();
        read(config, filter, |json| {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(json)
                && matches!(v["type"].as_str(), Some("caption" | "transcript"))
            {
                let utc = v["utc"].as_str().unwrap_or_default().to_string();
                cues.push((utc, json.to_string()));
            }
            Ok(())
        })
        .await?;
        cues.sort();
        let mut w = RecordWriter::start(format, out, from)?;
        for (_, json) in &cues {
            w.record(json)?;
        }
        return w.finish();
    }
    let mut w = RecordWriter::start(format, out, from)?;
    read(config, filter, |json| w.record(json)).await?;
    w.finish()
}
