//! A moment: one thing that happened, said in a short sentence, with its
//! stream, time span and media. Every caption, transcript and event is one
//! (an event's start, updates and end are the same moment, growing).
//!
//! The sentence says what, not which or how much: no track numbers, scores
//! or durations, so that the thousand people crossing a line share one
//! sentence (and one vector) and a question's words meet the record's.

use serde_json::{Map, Value};

use crate::record::{EventRecord, Record};

/// What the index keeps of a record.
#[derive(Clone, Debug, PartialEq)]
pub struct Moment {
    /// The same for every record of one event: `run/event`; else `run/id`.
    pub key: String,
    pub stream: String,
    /// The event's kind, or `caption` or `transcript`.
    pub kind: String,
    pub label: Option<String>,
    /// Stream time, ms.
    pub start_ms: i64,
    pub end_ms: i64,
    /// Wall clock of its start and end, ms since the epoch.
    pub utc_ms: i64,
    pub utc_end_ms: i64,
    pub run: String,
    /// The record it was made from (its `id`).
    pub record: String,
    /// What happened, in words: what the index matches questions against.
    pub text: String,
    /// Its evidence, in a line: what the answer shows as why.
    pub why: String,
    pub snapshot: Option<String>,
    pub clip: Option<String>,
}

/// The moment `record` tells of, or none when it has no wall clock.
pub fn of(record: &Record) -> Option<Moment> {
    let utc_ms = chrono::DateTime::parse_from_rfc3339(record.utc())
        .ok()?
        .timestamp_millis();
    let ms = |t: crate::time::Timestamp| i64::try_from(t.0 / 1_000_000).unwrap_or(i64::MAX);
    let (key, kind, label, end, text, why, snapshot, clip) = match record {
        Record::Event(e) => (
            format!("{}/{}", e.run, e.event),
            e.kind.clone(),
            e.labels.first().cloned(),
            e.end.unwrap_or(e.start),
            sentence(e),
            evidence(e),
            e.snapshot.clone(),
            e.clip.clone(),
        ),
        Record::Caption(c) => (
            format!("{}/{}", c.run, c.id),
            "caption".into(),
            None,
            c.end,
            c.text.clone(),
            String::new(),
            None,
            None,
        ),
        Record::Transcript(t) => (
            format!("{}/{}", t.run, t.id),
            "transcript".into(),
            None,
            t.end,
            format!("someone says: \"{}\"", t.text.trim()),
            format!("heard with confidence {:.2}", t.confidence),
            None,
            None,
        ),
    };
    let start_ms = ms(record.start());
    let end_ms = ms(end).max(start_ms);
    Some(Moment {
        key,
        stream: record.stream().to_string(),
        kind,
        label,
        start_ms,
        end_ms,
        utc_ms,
        utc_end_ms: utc_ms.saturating_add(end_ms - start_ms),
        run: record.run().to_string(),
        record: record.id().to_string(),
        text,
        why,
        snapshot,
        clip,
    })
}

fn text<'a>(d: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    d.get(key).and_then(Value::as_str)
}

/// A field of an object in the details (`evidence` items).
fn field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// "a person", "an umbrella".
fn a(noun: &str) -> String {
    let article = match noun.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    };
    format!("{article} {noun}")
}

/// Words for a name made of underscores (`siren_near_people`).
fn spaced(name: &str) -> String {
    name.replace(['_', '-'], " ")
}

/// "person #12 in junction" → "person in junction".
fn without_numbers(says: &str) -> String {
    says.split_whitespace()
        .filter(|w| !(w.starts_with('#') && w[1..].chars().all(|c| c.is_ascii_digit())))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What an event says, in a sentence.
fn sentence(e: &EventRecord) -> String {
    let d = &e.details;
    let label = e.labels.first().map(String::as_str).unwrap_or("something");
    let zone = e.zone.as_deref().unwrap_or("a zone");
    match e.kind.as_str() {
        "object" => match text(d, "heading") {
            Some(h) if !matches!(h, "still" | "none") => {
                format!("{} in view, moving {h}", a(label))
            }
            _ => format!("{} in view", a(label)),
        },
        "zone_enter" => format!("{} enters the {zone}", a(label)),
        "zone_leave" => format!("{} leaves the {zone}", a(label)),
        "line_cross" => {
            let line = text(d, "line").unwrap_or(zone);
            match text(d, "direction") {
                Some(dir) => format!("{} crosses the line {line}, going {dir}", a(label)),
                None => format!("{} crosses the line {line}", a(label)),
            }
        }
        "sound" => {
            let class = text(d, "class").unwrap_or(label).to_lowercase();
            if class.contains(label) {
                format!("sound of {class} heard")
            } else {
                format!("sound of {class} heard ({label})")
            }
        }
        "loud_sound" => "a loud sound".into(),
        "speech" => "someone speaks".into(),
        "motion" => "motion in the picture".into(),
        "face" if label == "unknown" => "an unknown face is seen".into(),
        "face" => format!("the face of {label} is seen"),
        "rule" => {
            let severity = text(d, "severity").unwrap_or("an");
            let mut said: Vec<String> = Vec::new();
            for term in d
                .get("evidence")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let facts = term.get("facts").and_then(Value::as_array);
                let says: Vec<String> = match facts {
                    Some(facts) if !facts.is_empty() => facts
                        .iter()
                        .filter_map(|f| f.get("says").and_then(Value::as_str))
                        .map(without_numbers)
                        .collect(),
                    _ => field(term, "says")
                        .map(without_numbers)
                        .into_iter()
                        .collect(),
                };
                for s in says {
                    if !said.contains(&s) {
                        said.push(s);
                    }
                }
            }
            let mut s = format!("{severity} alert {}", spaced(label));
            if let Some(z) = e.zone.as_deref().filter(|z| !label.contains(z)) {
                s.push_str(&format!(" at the {z}"));
            }
            if !said.is_empty() {
                s.push_str(": ");
                s.push_str(&said.join(", "));
            }
            s
        }
        other => {
            let mut s = spaced(other);
            if !e.labels.is_empty() {
                s.push_str(": ");
                s.push_str(&e.labels.join(", "));
            }
            s
        }
    }
}

/// An event's evidence in a line: the facts a rule fired on, the track a
/// zone or line saw.
fn evidence(e: &EventRecord) -> String {
    let d = &e.details;
    match e.kind.as_str() {
        "rule" => d
            .get("evidence")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|term| {
                let facts: Vec<&str> = term
                    .get("facts")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f.get("says").and_then(Value::as_str))
                    .collect();
                let term_text = field(term, "term").unwrap_or("");
                if facts.is_empty() {
                    format!("{term_text}: {}", field(term, "says").unwrap_or(""))
                } else {
                    format!("{term_text}: {}", facts.join(", "))
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => {
            let mut parts = Vec::new();
            if let Some(t) = e.track {
                parts.push(format!("track #{t}"));
            }
            if let Some(dir) = text(d, "direction") {
                parts.push(format!("direction {dir}"));
            }
            if let Some(class) = text(d, "class") {
                parts.push(format!("class {class}"));
            }
            if let Some(p) = d.get("peak_dbfs").and_then(Value::as_f64) {
                parts.push(format!("peak {p} dBFS"));
            }
            parts.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: &str) -> Record {
        serde_json::from_str(json).expect("a record")
    }

    #[test]
    fn a_rule_says_its_severity_name_zone_and_facts_without_track_numbers() {
        let r = record(
            r#"{"type":"event","run":"R","id":"cam/9","event":"cam/rule/siren_near_people/1","stream":"cam","kind":"rule","phase":"end","start":52.0,"end":57.5,"utc":"2026-12-05T22:11:54.052Z","score":0.9,"labels":["siren_near_people"],"track":3,"zone":"junction","bbox":null,"snapshot":"snapshots/x.jpg","clip":null,"clip_start":null,
            "details":{"severity":"high","evidence":[{"term":"sound(siren)","says":"siren heard","facts":[{"says":"siren heard"}]},{"term":"object(person)","says":"person #3","facts":[{"says":"person #3 in junction"},{"says":"person #12 in junction"}]}]}}"#,
        );
        let m = of(&r).expect("a moment");
        assert_eq!(
            m.text,
            "high alert siren near people at the junction: siren heard, person in junction"
        );
        assert_eq!(m.key, "R/cam/rule/siren_near_people/1");
        assert_eq!((m.start_ms, m.end_ms), (52_000, 57_500));
        assert_eq!(m.utc_end_ms - m.utc_ms, 5_500);
        assert_eq!(m.snapshot.as_deref(), Some("snapshots/x.jpg"));
        assert!(m.why.contains("person #3 in junction"), "{}", m.why);
    }

    #[test]
    fn events_transcripts_and_captions_read_as_sentences() {
        let event = |kind: &str, labels: &str, zone: &str, details: &str| {
            record(&format!(
                r#"{{"type":"event","run":"R","id":"c/1","event":"c/{kind}/1","stream":"c","kind":"{kind}","phase":"end","start":1.0,"end":2.0,"utc":"2026-12-05T10:00:00Z","score":0.8,"labels":{labels},"track":4,"zone":{zone},"bbox":null,"snapshot":null,"details":{details}}}"#
            ))
        };
        let says = |r: Record| of(&r).expect("a moment").text;
        assert_eq!(
            says(event(
                "line_cross",
                r#"["person"]"#,
                r#""across""#,
                r#"{"direction":"in","line":"across"}"#
            )),
            "a person crosses the line across, going in"
        );
        assert_eq!(
            says(event("zone_enter", r#"["car"]"#, r#""drive""#, "{}")),
            "a car enters the drive"
        );
        assert_eq!(
            says(event(
                "sound",
                r#"["horn"]"#,
                "null",
                r#"{"class":"Vehicle horn, car horn, honking"}"#
            )),
            "sound of vehicle horn, car horn, honking heard"
        );
        assert_eq!(
            says(event(
                "object",
                r#"["umbrella"]"#,
                "null",
                r#"{"heading":"left"}"#
            )),
            "an umbrella in view, moving left"
        );
        let t = record(
            r#"{"type":"transcript","run":"R","id":"c/2","stream":"c","start":45.0,"end":46.3,"utc":"2026-12-05T10:00:45Z","text":" Please close the door.","confidence":0.8}"#,
        );
        let m = of(&t).expect("a moment");
        assert_eq!(m.text, "someone says: \"Please close the door.\"");
        assert_eq!((m.kind.as_str(), m.end_ms), ("transcript", 46_300));
        let bad = record(
            r#"{"type":"caption","run":"R","id":"c/3","stream":"c","start":0.0,"end":5.0,"utc":"not a time","text":"x"}"#,
        );
        assert_eq!(of(&bad), None);
    }
}
