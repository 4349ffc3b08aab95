//! A rule tried on what a stream has recorded: the console's dry run
//! ("when would it have fired?"). The stored records are turned back into
//! the facts fusion had, as far as records tell them, and the rules run
//! over them as they would have live.
//!
//! Records keep less than fusion saw: a track's box is its best one, a
//! sound its highest score over the event, a zone visit runs from its
//! `zone_enter` to its `zone_leave`. A rule over what records keep (labels,
//! zones, lines, sounds, voice, transcripts, motion, loudness, faces) fires
//! where it would have; thresholds finer than an event's score may differ.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;

use super::facts::What;
use super::{Context, Engine, sound_labels};
use crate::config::PipelineConfig;
use crate::fuse::scene::Scene;
use crate::fuse::zones::Direction;
use crate::fuse::{Emit, RecordMaker};
use crate::geometry::BBox;
use crate::record::{EventRecord, Phase, Record};
use crate::time::{MILLISECOND, Timestamp};

/// What a dry run found.
#[derive(Debug, Default)]
pub struct Trial {
    /// The rules' events as they would have been written (their `utc` is
    /// real; their `start` counts from the window's start).
    pub records: Vec<Record>,
    /// Facts rebuilt from the records.
    pub facts: usize,
}

/// How long a crossing holds, as one analysed frame would.
const INSTANT: u64 = 200 * MILLISECOND;

/// Runs the rules of `config` that watch `stream` over the stream's
/// `records`, in the window of UTC `[from, to)` (ns since the epoch).
pub fn replay(
    config: &PipelineConfig,
    stream: &str,
    records: &[Record],
    from: i64,
    to: i64,
) -> Trial {
    let scene = Scene::new(
        stream,
        config,
        config
            .encoders
            .detector
            .clone()
            .unwrap_or_default()
            .timing(),
    );
    let sounds = sound_labels(config);
    let mut engine = Engine::new(&Context {
        stream,
        config,
        scene: &scene,
        sounds: &sounds,
    });
    let end = Timestamp(u64::try_from(to.saturating_sub(from)).unwrap_or(0));
    let mut facts = rebuild(config, &scene, &sounds, records, from, end);
    facts.sort_by_key(|f| f.1);
    let count = facts.len();
    let mut emit = Emit::new(RecordMaker::new(Arc::from("dry-run"), Arc::from(stream)));
    emit.maker.utc_origin = from;
    let mut fired = Vec::new();
    let mut next = facts.into_iter().peekable();
    // Rules are decided up to each fact's start, then the facts that begin
    // there are fed: the engine never sees a fact before its time, and a
    // long window with few records costs what its records cost.
    while let Some(&(_, at, _)) = next.peek() {
        let at = at.min(end);
        engine.advance(&mut emit, at, &mut fired);
        while let Some((what, start, stop)) = next.next_if(|f| f.1 <= at) {
            engine.facts.add(what, start, stop);
        }
        if at == end {
            break;
        }
    }
    engine.finish(&mut emit, end, &mut fired);
    Trial {
        records: emit.take_records(),
        facts: count,
    }
}

/// Where a record's span lies in the window: `[start, end)` from `from`.
fn span(e: &EventRecord, from: i64, window_end: Timestamp) -> Option<(Timestamp, Timestamp)> {
    let utc = chrono::DateTime::parse_from_rfc3339(&e.utc)
        .ok()?
        .timestamp_nanos_opt()?;
    let start = Timestamp(u64::try_from(utc.saturating_sub(from)).ok()?);
    let end = match e.end {
        Some(end) => start.saturating_add(end.0.saturating_sub(e.start.0)),
        None => window_end,
    };
    Some((start, end.max(start)))
}

fn utc_at(utc: &str, from: i64) -> Option<Timestamp> {
    let ns = chrono::DateTime::parse_from_rfc3339(utc)
        .ok()?
        .timestamp_nanos_opt()?;
    Some(Timestamp(u64::try_from(ns.saturating_sub(from)).ok()?))
}

/// The facts the records tell, with their spans.
fn rebuild(
    config: &PipelineConfig,
    scene: &Scene,
    sounds: &[String],
    records: &[Record],
    from: i64,
    window_end: Timestamp,
) -> Vec<(What, Timestamp, Timestamp)> {
    let labels = config.object_labels().ok();
    let label = |e: &EventRecord| -> Option<&'static str> {
        let l = e.labels.first()?;
        labels.as_ref()?.resolve(l).ok()?.first().copied()
    };
    // An event's end record has its whole span: its start record is left.
    let ended: HashSet<&str> = records
        .iter()
        .filter_map(|r| match r {
            Record::Event(e) if e.phase == Phase::End => Some(e.event.as_str()),
            _ => None,
        })
        .collect();
    let mut facts = Vec::new();
    let mut visits: HashMap<(u64, usize), (Timestamp, &'static str, f32, BBox)> = HashMap::new();
    for r in records {
        let e = match r {
            Record::Event(e) => e,
            Record::Transcript(t) => {
                // It holds from when it is known, as long as it took to say.
                if let Some(start) = utc_at(&t.utc, from) {
                    let length = t.end.0.saturating_sub(t.start.0);
                    let known = start.saturating_add(length);
                    facts.push((
                        What::Said {
                            text: t.text.to_lowercase(),
                            start,
                            end: known,
                        },
                        known,
                        known.saturating_add(length.max(100 * MILLISECOND)),
                    ));
                }
                continue;
            }
            Record::Caption(_) => continue,
        };
        let instant = matches!(e.kind.as_str(), "zone_enter" | "zone_leave" | "line_cross");
        if (instant && e.phase != Phase::Start)
            || (!instant && e.phase == Phase::Start && ended.contains(e.event.as_str()))
        {
            continue;
        }
        let Some((start, end)) = span(e, from, window_end) else {
            continue;
        };
        let bbox = e.bbox.unwrap_or_default();
        let track = e.track.unwrap_or(0);
        let zone = |name: &Option<String>| {
            let name = name.as_deref()?;
            scene.zones.iter().position(|z| z.name == name)
        };
        let what = match e.kind.as_str() {
            "object" => match label(e) {
                Some(label) => What::Object {
                    track,
                    label,
                    score: e.score,
                    bbox,
                },
                None => continue,
            },
            "zone_enter" => {
                if let (Some(z), Some(label)) = (zone(&e.zone), label(e)) {
                    visits.insert((track, z), (start, label, e.score, bbox));
                }
                continue;
            }
            "zone_leave" => {
                if let Some(z) = zone(&e.zone)
                    && let Some((entered, label, score, bbox)) = visits.remove(&(track, z))
                {
                    facts.push((
                        What::InZone {
                            track,
                            label,
                            zone: z,
                            score,
                            bbox,
                        },
                        entered,
                        start,
                    ));
                }
                continue;
            }
            "line_cross" => {
                let line = e
                    .zone
                    .as_deref()
                    .and_then(|n| scene.lines.iter().position(|l| l.name == n));
                let direction = match e.details.get("direction").and_then(Value::as_str) {
                    Some("in") => Direction::In,
                    Some("out") => Direction::Out,
                    _ => continue,
                };
                if let (Some(line), Some(label)) = (line, label(e)) {
                    facts.push((
                        What::Cross {
                            track,
                            label,
                            line,
                            direction,
                        },
                        start,
                        start.saturating_add(INSTANT),
                    ));
                }
                continue;
            }
            "sound" => {
                let Some(target) = e
                    .labels
                    .first()
                    .and_then(|l| sounds.iter().position(|s| s.eq_ignore_ascii_case(l)))
                else {
                    continue;
                };
                let class = e
                    .details
                    .get("class")
                    .and_then(Value::as_str)
                    .unwrap_or(&sounds[target]);
                What::Sound {
                    target,
                    class: Arc::from(class),
                    score: e.score,
                    active: true,
                }
            }
            "speech" => What::Voice,
            "loud_sound" => What::Level {
                rms_db: e
                    .details
                    .get("peak_dbfs")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0) as f32,
                active: true,
            },
            "motion" => What::Motion { bbox: e.bbox },
            "face" => What::Face {
                score: e.score,
                name: e.details.get("name").and_then(Value::as_str).map(Arc::from),
                identified: e.details.contains_key("name"),
            },
            _ => continue,
        };
        facts.push((what, start, end));
    }
    // Visits still under way at the window's end.
    for ((track, zone), (entered, label, score, bbox)) in visits {
        facts.push((
            What::InZone {
                track,
                label,
                zone,
                score,
                bbox,
            },
            entered,
            window_end,
        ));
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    const T0: i64 = 1_800_000_000_000_000_000;

    fn at(s: f64) -> String {
        chrono::DateTime::from_timestamp_nanos(T0 + (s * 1e9) as i64)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    /// An event's end record, `[start, end)` seconds after T0.
    fn event(kind: &str, label: &str, start: f64, end: f64, extra: serde_json::Value) -> Record {
        let mut v = json!({"type":"event","run":"r","id":format!("cam/{kind}{start}"),
            "event":format!("cam/{kind}/{label}/{start}"),"stream":"cam","kind":kind,"phase":"end",
            "start":start,"end":end,"utc":at(start),"score":0.8,"labels":[label],"track":null,
            "zone":null,"bbox":null,"snapshot":null,"clip":null,"clip_start":null,"details":{}});
        if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            v.extend(extra.clone());
        }
        serde_json::from_value(v).expect("a record")
    }

    fn fired(rule: &str, records: &[Record]) -> Vec<(f64, Option<f64>)> {
        let text = format!(
            "[encoders.sound]\nclasses = [\"siren\"]\n[encoders.vad]\n[encoders.asr]\n[encoders.detector]\n[[zones]]\nname = \"door\"\npolygon = [[0, 0], [0.5, 0], [0.5, 0.5]]\n[[rules]]\nname = \"r\"\n{rule}\n"
        );
        let config = PipelineConfig::parse(&text, Path::new("t.toml")).expect("a pipeline");
        let trial = replay(&config, "cam", records, T0, T0 + 60 * 1_000_000_000);
        let mut out = Vec::new();
        for r in &trial.records {
            if let Record::Event(e) = r
                && e.kind == "rule"
                && e.phase == Phase::Start
            {
                let end = trial.records.iter().find_map(|x| match x {
                    Record::Event(x) if x.event == e.event && x.phase == Phase::End => x.end,
                    _ => None,
                });
                out.push((e.start.0 as f64 / 1e9, end.map(|t| t.0 as f64 / 1e9)));
            }
        }
        out
    }

    #[test]
    fn a_rule_fires_on_stored_records_where_it_held() {
        let records = [
            event("object", "person", 0.0, 30.0, json!({"track": 1})),
            event(
                "sound",
                "siren",
                10.0,
                15.0,
                json!({"details": {"class": "Siren"}}),
            ),
            event("sound", "siren", 40.0, 45.0, json!({})),
        ];
        let both = "when = \"sound(siren) and object(person)\"\ncooldown = \"1s\"";
        assert_eq!(fired(both, &records), [(10.0, Some(15.0))]);
        // The second siren comes after the person left.
        let siren = "when = \"sound(siren)\"\ncooldown = \"1s\"";
        assert_eq!(
            fired(siren, &records),
            [(10.0, Some(15.0)), (40.0, Some(45.0))]
        );
    }

    #[test]
    fn zone_visits_run_from_enter_to_leave_and_transcripts_once_known() {
        let mut enter = event(
            "zone_enter",
            "person",
            5.0,
            5.0,
            json!({"track": 3, "zone": "door"}),
        );
        let mut leave = event(
            "zone_leave",
            "person",
            12.0,
            12.0,
            json!({"track": 3, "zone": "door"}),
        );
        for r in [&mut enter, &mut leave] {
            if let Record::Event(e) = r {
                e.phase = Phase::Start;
                e.end = None;
            }
        }
        let said: Record = serde_json::from_value(json!({"type":"transcript","run":"r","id":"cam/9",
            "stream":"cam","start":20.0,"end":22.0,"utc":at(20.0),"text":"Open the DOOR please","confidence":0.9}))
        .expect("a transcript");
        let records = [enter, leave, said];
        let zone = "when = \"object(person, zone=door)\"\ncooldown = \"1s\"";
        assert_eq!(fired(zone, &records), [(5.0, Some(12.0))]);
        // Known when it was said to its end, for as long as it took.
        let words = "when = \"speech(contains=door)\"\ncooldown = \"1s\"";
        assert_eq!(fired(words, &records), [(22.0, Some(24.0))]);
    }
}
