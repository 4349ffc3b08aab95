//! Records: what vigil writes, one JSON object per line (DESIGN.md, "Fusion
//! and records"). Field order is the documented order.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::geometry::BBox;
use crate::time::{MILLISECOND, Timestamp};

/// Version of the record format; a change that breaks readers bumps it.
pub const VIGIL_SCHEMA: u32 = 1;

/// One record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
// Events are most records, so they are kept unboxed (a box each would be
// an allocation per record for the smaller kinds' sake).
#[allow(clippy::large_enum_variant)]
pub enum Record {
    Event(EventRecord),
    Caption(CaptionRecord),
    Transcript(TranscriptRecord),
}

impl Record {
    pub fn stream(&self) -> &str {
        match self {
            Record::Event(e) => &e.stream,
            Record::Caption(c) => &c.stream,
            Record::Transcript(t) => &t.stream,
        }
    }

    /// The run of the stream that wrote it.
    pub fn run(&self) -> &str {
        match self {
            Record::Event(e) => &e.run,
            Record::Caption(c) => &c.run,
            Record::Transcript(t) => &t.run,
        }
    }

    /// Its id, unique within its run.
    pub fn id(&self) -> &str {
        match self {
            Record::Event(e) => &e.id,
            Record::Caption(c) => &c.id,
            Record::Transcript(t) => &t.id,
        }
    }

    pub fn start(&self) -> Timestamp {
        match self {
            Record::Event(e) => e.start,
            Record::Caption(c) => c.start,
            Record::Transcript(t) => t.start,
        }
    }

    /// When `start` happened, RFC 3339 UTC.
    pub fn utc(&self) -> &str {
        match self {
            Record::Event(e) => &e.utc,
            Record::Caption(c) => &c.utc,
            Record::Transcript(t) => &t.utc,
        }
    }

    /// The media files the record names, relative to the output folder:
    /// its snapshot and its clip. Retention deletes a file once no record
    /// names it, so any other file a record comes to name belongs here.
    pub fn media(&self) -> impl Iterator<Item = &str> {
        let (snapshot, clip) = match self {
            Record::Event(e) => (e.snapshot.as_deref(), e.clip.as_deref()),
            Record::Caption(_) | Record::Transcript(_) => (None, None),
        };
        snapshot.into_iter().chain(clip)
    }

    /// `event`, `caption` or `transcript`; for events, `event:KIND`.
    pub fn kind_label(&self) -> String {
        match self {
            Record::Event(e) => format!("event:{}", e.kind),
            Record::Caption(_) => "caption".into(),
            Record::Transcript(_) => "transcript".into(),
        }
    }
}

/// The phase of an event's lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Start,
    Update,
    End,
}

/// Something that happened, in one phase of its lifecycle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub run: String,
    pub id: String,
    pub event: String,
    pub stream: String,
    pub kind: String,
    pub phase: Phase,
    #[serde(with = "secs")]
    pub start: Timestamp,
    #[serde(with = "opt_secs")]
    pub end: Option<Timestamp>,
    pub utc: String,
    pub score: f32,
    pub labels: Vec<String>,
    pub track: Option<u64>,
    pub zone: Option<String>,
    pub bbox: Option<BBox>,
    pub snapshot: Option<String>,
    /// The clip the event is in (`[recording]`), relative to the output
    /// folder, and the stream time of its first frame. Named from the
    /// start record on; the file is there once the clip is finished, its
    /// post-roll after the event's end.
    #[serde(default)]
    pub clip: Option<String>,
    #[serde(default, with = "opt_secs")]
    pub clip_start: Option<Timestamp>,
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// What happened in a span, in words.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaptionRecord {
    pub run: String,
    pub id: String,
    pub stream: String,
    #[serde(with = "secs")]
    pub start: Timestamp,
    #[serde(with = "secs")]
    pub end: Timestamp,
    pub utc: String,
    pub text: String,
}

/// One recognised stretch of speech.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TranscriptRecord {
    pub run: String,
    pub id: String,
    pub stream: String,
    #[serde(with = "secs")]
    pub start: Timestamp,
    #[serde(with = "secs")]
    pub end: Timestamp,
    pub utc: String,
    pub text: String,
    pub confidence: f32,
}

/// RFC 3339 UTC with milliseconds, for `utc_origin + t`.
pub fn utc_string(utc_origin: i64, t: Timestamp) -> String {
    let ns = utc_origin.saturating_add(i64::try_from(t.0).unwrap_or(i64::MAX));
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Rounds a normalised coordinate for records (4 decimals is sub-pixel at 4K).
pub fn round4(x: f32) -> f32 {
    (x * 10_000.0).round() / 10_000.0
}

/// [`round4`] as a JSON number for `details`: through the decimal text, so
/// that it reads 0.8022, not the f32's binary expansion.
pub fn num4(x: f32) -> serde_json::Value {
    format!("{}", round4(x))
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(serde_json::Value::Null, serde_json::Value::Number)
}

mod secs {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(t.as_secs_f64_ms())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let v = f64::deserialize(d)?;
        if !(v >= 0.0 && v.is_finite()) {
            return Err(serde::de::Error::custom(format!(
                "time {v} is not a non-negative number of seconds"
            )));
        }
        Ok(Timestamp((v * 1000.0).round() as u64 * MILLISECOND))
    }
}

mod opt_secs {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_f64(t.as_secs_f64_ms()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        #[derive(Deserialize)]
        struct W(#[serde(with = "super::secs")] Timestamp);
        Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_serialises_in_the_documented_order() {
        let r = Record::Event(EventRecord {
            run: "01J".into(),
            id: "cam1/41".into(),
            event: "cam1/motion/3".into(),
            stream: "cam1".into(),
            kind: "motion".into(),
            phase: Phase::Start,
            start: Timestamp(3_000_000_000),
            end: None,
            utc: utc_string(1_795_000_000_000_000_000, Timestamp(3_000_000_000)),
            score: 0.42,
            labels: vec![],
            track: None,
            zone: None,
            bbox: None,
            snapshot: None,
            clip: None,
            clip_start: None,
            details: Default::default(),
        });
        let s = serde_json::to_string(&r).unwrap_or_default();
        assert_eq!(
            s,
            r#"{"type":"event","run":"01J","id":"cam1/41","event":"cam1/motion/3","stream":"cam1","kind":"motion","phase":"start","start":3.0,"end":null,"utc":"2026-11-18T11:06:43.000Z","score":0.42,"labels":[],"track":null,"zone":null,"bbox":null,"snapshot":null,"clip":null,"clip_start":null,"details":{}}"#
        );
        let back: Record = serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, r);
    }
}
