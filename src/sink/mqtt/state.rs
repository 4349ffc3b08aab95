//! The summary of each stream published retained to
//! `{prefix}/{stream}/state`: what is active, the last caption and
//! transcript, the time of the last record.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};

use crate::sink::outbox::Outgoing;

/// Summary of one stream.
#[derive(Clone, Debug, Default)]
struct StreamState {
    /// Active events by their `event` id: (kind, label).
    active: BTreeMap<String, (String, String)>,
    caption: Option<String>,
    transcript: Option<String>,
    utc: Option<String>,
}

/// The summaries of every stream seen so far.
#[derive(Debug, Default)]
pub struct States {
    streams: HashMap<String, StreamState>,
}

impl States {
    /// Folds one record into its stream's state. Idempotent for replays of
    /// the same records (start inserts, end removes, texts are overwritten).
    pub fn apply(&mut self, rec: &Outgoing) {
        let st = self.streams.entry(rec.stream.clone()).or_default();
        let v: Value = match serde_json::from_str(&rec.json) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(id = %rec.id, "record is not valid JSON, state not updated: {e}");
                return;
            }
        };
        if let Some(utc) = v.get("utc").and_then(Value::as_str) {
            st.utc = Some(utc.to_owned());
        }
        let text = || v.get("text").and_then(Value::as_str).map(str::to_owned);
        match rec.kind_of.as_str() {
            "event" => {
                let key = v
                    .get("event")
                    .and_then(Value::as_str)
                    .unwrap_or(&rec.id)
                    .to_owned();
                let kind = v.get("kind").and_then(Value::as_str).unwrap_or("event");
                let label = v
                    .get("labels")
                    .and_then(Value::as_array)
                    .and_then(|labels| labels.first())
                    .and_then(Value::as_str)
                    .unwrap_or(kind);
                match v.get("phase").and_then(Value::as_str) {
                    Some("start") | Some("update") => {
                        st.active.insert(key, (kind.to_owned(), label.to_owned()));
                    }
                    Some("end") => {
                        st.active.remove(&key);
                    }
                    _ => {}
                }
            }
            "caption" => {
                if let Some(t) = text() {
                    st.caption = Some(t);
                }
            }
            "transcript" => {
                if let Some(t) = text() {
                    st.transcript = Some(t);
                }
            }
            _ => {}
        }
    }

    /// The state topic's payload for `stream`.
    pub fn json(&self, stream: &str) -> String {
        let empty = StreamState::default();
        let st = self.streams.get(stream).unwrap_or(&empty);
        let active: BTreeSet<&str> = st.active.values().map(|(_, l)| l.as_str()).collect();
        let mut events: BTreeMap<&str, u64> = BTreeMap::new();
        for (kind, _) in st.active.values() {
            *events.entry(kind.as_str()).or_default() += 1;
        }
        json!({
            "stream": stream,
            "active": active,
            "events": events,
            "caption": st.caption,
            "transcript": st.transcript,
            "utc": st.utc,
        })
        .to_string()
    }
}
