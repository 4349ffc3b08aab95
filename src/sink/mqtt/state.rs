//! The summary of each stream published retained to
//! `{prefix}/{stream}/state`: what is active, the last caption and
//! transcript, the time of the last record, each zone's occupancy, each
//! line's crossings by direction and the rules under way. Home Assistant's
//! entities ([`super::discovery`]) read their values from here.

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
    /// Objects in each zone, as the last zone event said.
    zones: BTreeMap<String, u64>,
    /// Crossings of each line since the start: (in, out).
    lines: BTreeMap<String, (u64, u64)>,
    /// Each rule's events under way, by their `event` id.
    rules: BTreeMap<String, BTreeSet<String>>,
}

/// The summaries of every stream seen so far.
#[derive(Debug, Default)]
pub struct States {
    streams: HashMap<String, StreamState>,
    /// The store order of the last record folded in: a batch delivered
    /// again after a failed attempt does not count its crossings twice.
    applied: Option<i64>,
}

impl States {
    /// Folds one record into its stream's state. Idempotent for replays of
    /// the same records (start inserts, end removes, texts are overwritten).
    pub fn apply(&mut self, rec: &Outgoing) {
        let replayed = self.applied.is_some_and(|a| rec.seq <= a);
        self.applied = Some(self.applied.map_or(rec.seq, |a| a.max(rec.seq)));
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
                let phase = v.get("phase").and_then(Value::as_str);
                let place = v.get("zone").and_then(Value::as_str);
                match (kind, phase, place) {
                    ("zone_enter" | "zone_leave", Some("start"), Some(zone)) => {
                        if let Some(n) = v.pointer("/details/occupancy").and_then(Value::as_u64) {
                            st.zones.insert(zone.to_owned(), n);
                        }
                    }
                    ("line_cross", Some("start"), _) if !replayed => {
                        let line = v.pointer("/details/line").and_then(Value::as_str).or(place);
                        let direction = v.pointer("/details/direction").and_then(Value::as_str);
                        if let Some(line) = line {
                            let counts = st.lines.entry(line.to_owned()).or_default();
                            match direction {
                                Some("in") => counts.0 += 1,
                                Some("out") => counts.1 += 1,
                                _ => {}
                            }
                        }
                    }
                    ("rule", Some("start" | "update"), _) => {
                        st.rules
                            .entry(label.to_owned())
                            .or_default()
                            .insert(key.clone());
                    }
                    ("rule", Some("end"), _) => {
                        if let Some(open) = st.rules.get_mut(label) {
                            open.remove(&key);
                        }
                    }
                    _ => {}
                }
                match phase {
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
        let lines: BTreeMap<&str, Value> = st
            .lines
            .iter()
            .map(|(l, (i, o))| (l.as_str(), json!({"in": i, "out": o})))
            .collect();
        let rules: Vec<&str> = st
            .rules
            .iter()
            .filter(|(_, open)| !open.is_empty())
            .map(|(r, _)| r.as_str())
            .collect();
        json!({
            "stream": stream,
            "active": active,
            "events": events,
            "caption": st.caption,
            "transcript": st.transcript,
            "utc": st.utc,
            "zones": st.zones,
            "lines": lines,
            "rules": rules,
        })
        .to_string()
    }

    /// Objects in `zone` of `stream` now (0 before any zone event).
    pub fn occupancy(&self, stream: &str, zone: &str) -> u64 {
        self.stream(stream)
            .and_then(|s| s.zones.get(zone))
            .copied()
            .unwrap_or(0)
    }

    /// Crossings of `line` of `stream` since the start: (in, out).
    pub fn crossings(&self, stream: &str, line: &str) -> (u64, u64) {
        self.stream(stream)
            .and_then(|s| s.lines.get(line))
            .copied()
            .unwrap_or((0, 0))
    }

    /// Whether an event of `rule` is under way on `stream`.
    pub fn rule_open(&self, stream: &str, rule: &str) -> bool {
        self.stream(stream)
            .and_then(|s| s.rules.get(rule))
            .is_some_and(|open| !open.is_empty())
    }

    /// The last caption of `stream`.
    pub fn caption(&self, stream: &str) -> Option<&str> {
        self.stream(stream).and_then(|s| s.caption.as_deref())
    }

    /// The last transcript of `stream`.
    pub fn transcript(&self, stream: &str) -> Option<&str> {
        self.stream(stream).and_then(|s| s.transcript.as_deref())
    }

    fn stream(&self, stream: &str) -> Option<&StreamState> {
        self.streams.get(stream)
    }
}
