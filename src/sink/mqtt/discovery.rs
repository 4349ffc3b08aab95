//! Home Assistant MQTT discovery (`[sinks.mqtt] discovery = true`).
//!
//! Every stream vigil is asked to watch becomes a Home Assistant *device*
//! named after the stream, announced by retained messages under
//! `{discovery_prefix}/{component}/{node}/{object}/config`, where `node` is
//! the MQTT `prefix` made a topic word (`vigil`) and `object` names the
//! stream and the entity. Its entities:
//!
//! | entity | component | value topic (retained) |
//! |---|---|---|
//! | the latest snapshot | `camera` | `{prefix}/{stream}/snapshot` (JPEG) |
//! | each zone's occupancy | `sensor` | `{prefix}/{stream}/zone/{zone}/occupancy` |
//! | each line's crossings in, out | `sensor` ×2 | `{prefix}/{stream}/line/{line}/in`, `…/out` |
//! | each rule, on while its event is open | `binary_sensor` | `{prefix}/{stream}/rule/{rule}` (`ON`/`OFF`) |
//! | the last caption | `sensor` | `{prefix}/{stream}/caption` |
//! | the last transcript (with ASR) | `sensor` | `{prefix}/{stream}/transcript` |
//!
//! Zones, lines and rules are those of the pipeline that apply to the
//! stream. Every entity is available while `{prefix}/status` is `online`
//! (on a cluster, always: each node's status is its own,
//! `{prefix}/status/{node}`, and a camera runs on whichever node holds it).
//!
//! Which streams are wanted is the [`Catalog`], shared with whoever attaches
//! and detaches streams: a stream attached is announced; one detached (not
//! one that merely stopped, or moved to another node of a cluster) is
//! withdrawn, its config topics cleared with empty retained messages, which
//! is how Home Assistant is told to remove an entity. Once the catalog is
//! *settled* (every wanted stream known), configs left on the broker by an
//! earlier run for streams no longer wanted are cleared too.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

use super::state::States;
use super::topics::{Topics, topic_segment};
use crate::config::PipelineConfig;

/// Home Assistant's sensor state is at most this many characters; a
/// longer caption or transcript is cut (the whole text is in the record).
pub const STATE_MAX_CHARS: usize = 255;

/// The entities a pipeline gives each stream.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// (name, streams it applies to; none: every stream).
    zones: Vec<(String, Vec<String>)>,
    lines: Vec<(String, Vec<String>)>,
    rules: Vec<(String, Vec<String>)>,
    /// ASR is on: a transcript sensor.
    transcripts: bool,
    /// Snapshots are taken and published: a camera.
    snapshots: bool,
    /// A node of a cluster: its status is the node's own, and a camera may
    /// run on any node, so no status speaks for it; entities are then
    /// always available.
    clustered: bool,
}

impl Plan {
    pub fn of(config: &PipelineConfig) -> Plan {
        Plan {
            zones: config
                .zones
                .iter()
                .map(|z| (z.name.clone(), z.streams.clone()))
                .collect(),
            lines: config
                .lines
                .iter()
                .map(|l| (l.name.clone(), l.streams.clone()))
                .collect(),
            rules: config
                .rules
                .iter()
                .map(|r| (r.name.clone(), r.streams.clone()))
                .collect(),
            transcripts: config.encoders.asr.is_some(),
            snapshots: config.snapshots.is_some()
                && config.sinks.mqtt.as_ref().is_some_and(|m| m.snapshots),
            clustered: config.cluster.is_some(),
        }
    }
}

/// The streams to announce, shared between the MQTT sink and what attaches
/// and detaches streams. Cheap to clone; its lock is held only to copy.
#[derive(Clone, Debug)]
pub struct Catalog {
    plan: Arc<Plan>,
    wanted: Arc<Mutex<Wanted>>,
}

#[derive(Debug, Default)]
struct Wanted {
    /// Announced: their configs are on the broker.
    streams: BTreeSet<String>,
    /// Running here: this sink publishes their values (on a cluster, only
    /// the node running a camera does).
    local: BTreeSet<String>,
    settled: bool,
}

impl Catalog {
    /// The catalog of `config`'s pipeline, if its MQTT sink does discovery.
    pub fn for_pipeline(config: &PipelineConfig) -> Option<Catalog> {
        config
            .sinks
            .mqtt
            .as_ref()
            .filter(|m| m.discovery)
            .map(|_| Catalog::new(Plan::of(config)))
    }

    pub fn new(plan: Plan) -> Catalog {
        Catalog {
            plan: Arc::new(plan),
            wanted: Arc::default(),
        }
    }

    fn wanted(&self) -> std::sync::MutexGuard<'_, Wanted> {
        self.wanted.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stream `name` runs here: announce it, and publish its values.
    pub fn announce(&self, name: &str) {
        let mut w = self.wanted();
        w.streams.insert(name.to_owned());
        w.local.insert(name.to_owned());
    }

    /// Stream `name` stopped here (it may run on elsewhere): its values are
    /// no longer this sink's to publish; its entities stay.
    pub fn leave(&self, name: &str) {
        self.wanted().local.remove(name);
    }

    /// Stream `name` is no longer wanted: remove its entities.
    pub fn withdraw(&self, name: &str) {
        let mut w = self.wanted();
        w.streams.remove(name);
        w.local.remove(name);
    }

    /// Exactly these streams are wanted (a cluster's cameras); settles.
    pub fn set(&self, names: impl IntoIterator<Item = String>) {
        let mut w = self.wanted();
        w.streams = names.into_iter().collect();
        w.settled = true;
    }

    /// Every wanted stream is known now: what an earlier run left on the
    /// broker for other streams may go.
    pub fn settle(&self) {
        self.wanted().settled = true;
    }

    /// Whether the wanted set is settled.
    pub fn settled(&self) -> bool {
        self.wanted().settled
    }

    /// The wanted streams, and those of them running here.
    fn streams(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let w = self.wanted();
        let local = w.local.intersection(&w.streams).cloned().collect();
        (w.streams.clone(), local)
    }
}

/// Where an entity's value comes from.
#[derive(Clone, Debug, PartialEq)]
enum Source {
    /// The snapshot topic, published with each event's picture.
    Picture,
    Occupancy(String),
    Crossings(String, Direction),
    Rule(String),
    Caption,
    Transcript,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Direction {
    In,
    Out,
}

/// One Home Assistant entity of one stream.
#[derive(Clone, Debug)]
pub struct Entity {
    /// `camera`, `sensor` or `binary_sensor`.
    pub component: &'static str,
    /// Its discovery config topic.
    pub config_topic: String,
    /// The topic its value is read from.
    pub value_topic: String,
    /// The discovery payload.
    pub config: Value,
    source: Source,
}

impl Entity {
    /// The value to publish now, retained; `None` while there is none
    /// (no caption yet) or when another part publishes it (the picture).
    pub fn value(&self, stream: &str, states: &States) -> Option<String> {
        match &self.source {
            Source::Picture => None,
            Source::Occupancy(zone) => Some(states.occupancy(stream, zone).to_string()),
            Source::Crossings(line, d) => {
                let (i, o) = states.crossings(stream, line);
                Some(
                    match d {
                        Direction::In => i,
                        Direction::Out => o,
                    }
                    .to_string(),
                )
            }
            Source::Rule(rule) => Some(if states.rule_open(stream, rule) {
                "ON".into()
            } else {
                "OFF".into()
            }),
            Source::Caption => states.caption(stream).map(clip_state),
            Source::Transcript => states.transcript(stream).map(clip_state),
        }
    }
}

/// A text cut to what a Home Assistant state holds.
fn clip_state(text: &str) -> String {
    if text.chars().count() <= STATE_MAX_CHARS {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(STATE_MAX_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// A name as a discovery topic word (`[a-zA-Z0-9_-]+`): other characters
/// become `_`; when that changed the name, a short hash of it follows, so
/// that `cam 1` and `cam_1` stay apart.
pub fn object_word(name: &str) -> String {
    let word: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if word == name && !word.is_empty() {
        return word;
    }
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    let mut out = word;
    let _ = write!(out, "_{h:08x}");
    out
}

/// Builds the entities of streams under one MQTT prefix.
#[derive(Clone, Debug)]
pub struct Announcer {
    plan: Arc<Plan>,
    topics: Topics,
    /// `{prefix}/status`, every entity's availability.
    status: String,
    /// The MQTT prefix as a topic word: discovery's node id.
    node: String,
    discovery_prefix: String,
}

impl Announcer {
    pub fn new(catalog: &Catalog, prefix: &str, discovery_prefix: &str) -> Announcer {
        let topics = Topics::new(prefix);
        Announcer {
            plan: catalog.plan.clone(),
            status: topics.status(),
            node: object_word(prefix.trim_matches('/')),
            discovery_prefix: discovery_prefix.trim_end_matches('/').to_owned(),
            topics,
        }
    }

    /// `{discovery_prefix}/+/{node}/+/config`: every config this prefix's
    /// vigil may have published.
    pub fn config_filter(&self) -> String {
        format!("{}/+/{}/+/config", self.discovery_prefix, self.node)
    }

    /// The entities of `stream`, in a fixed order.
    pub fn entities(&self, stream: &str) -> Vec<Entity> {
        let applies =
            |streams: &[String]| streams.is_empty() || streams.iter().any(|s| s == stream);
        let base = self.topics.stream_base(stream);
        let seg = topic_segment;
        let mut out = Vec::new();
        if self.plan.snapshots {
            out.push(self.entity(
                stream,
                "camera",
                "snapshot",
                "Snapshot",
                self.topics.snapshot(stream, None),
                Source::Picture,
                json!({"icon": "mdi:cctv"}),
            ));
        }
        for (zone, _) in self.plan.zones.iter().filter(|(_, s)| applies(s)) {
            out.push(self.entity(
                stream,
                "sensor",
                &format!("zone_{}", object_word(zone)),
                &format!("{zone} occupancy"),
                format!("{base}/zone/{}/occupancy", seg(zone)),
                Source::Occupancy(zone.clone()),
                json!({"state_class": "measurement", "icon": "mdi:account-group"}),
            ));
        }
        for (line, _) in self.plan.lines.iter().filter(|(_, s)| applies(s)) {
            for (d, word, icon) in [
                (Direction::In, "in", "mdi:arrow-right-bold"),
                (Direction::Out, "out", "mdi:arrow-left-bold"),
            ] {
                out.push(self.entity(
                    stream,
                    "sensor",
                    &format!("line_{}_{word}", object_word(line)),
                    &format!("{line} {word}"),
                    format!("{base}/line/{}/{word}", seg(line)),
                    Source::Crossings(line.clone(), d),
                    json!({"state_class": "total_increasing", "icon": icon}),
                ));
            }
        }
        for (rule, _) in self.plan.rules.iter().filter(|(_, s)| applies(s)) {
            out.push(self.entity(
                stream,
                "binary_sensor",
                &format!("rule_{}", object_word(rule)),
                rule,
                format!("{base}/rule/{}", seg(rule)),
                Source::Rule(rule.clone()),
                json!({"payload_on": "ON", "payload_off": "OFF", "icon": "mdi:alarm-light"}),
            ));
        }
        out.push(self.entity(
            stream,
            "sensor",
            "caption",
            "Caption",
            format!("{base}/caption"),
            Source::Caption,
            json!({"icon": "mdi:text-box-outline"}),
        ));
        if self.plan.transcripts {
            out.push(self.entity(
                stream,
                "sensor",
                "transcript",
                "Transcript",
                format!("{base}/transcript"),
                Source::Transcript,
                json!({"icon": "mdi:account-voice"}),
            ));
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn entity(
        &self,
        stream: &str,
        component: &'static str,
        what: &str,
        name: &str,
        value_topic: String,
        source: Source,
        extra: Value,
    ) -> Entity {
        let object = format!("{}_{what}", object_word(stream));
        let version = env!("CARGO_PKG_VERSION");
        let mut config = Map::new();
        config.insert("name".into(), json!(name));
        config.insert("unique_id".into(), json!(format!("{}_{object}", self.node)));
        // The camera reads its picture from `topic`; the others their state.
        let key = if component == "camera" {
            "topic"
        } else {
            "state_topic"
        };
        config.insert(key.into(), json!(value_topic));
        if !self.plan.clustered {
            config.insert("availability_topic".into(), json!(self.status));
        }
        config.insert(
            "device".into(),
            json!({
                "identifiers": [format!("{}_{}", self.node, object_word(stream))],
                "name": stream,
                "manufacturer": "vigil",
                "model": "camera stream",
                "sw_version": version,
            }),
        );
        config.insert(
            "origin".into(),
            json!({"name": "vigil", "sw_version": version}),
        );
        if let Value::Object(extra) = extra {
            config.extend(extra);
        }
        Entity {
            component,
            config_topic: format!(
                "{}/{component}/{}/{object}/config",
                self.discovery_prefix, self.node
            ),
            value_topic,
            config: Value::Object(config),
            source,
        }
    }
}

/// What the sink has told the broker, and what it should tell it next.
#[derive(Debug)]
pub struct Discovery {
    catalog: Catalog,
    announcer: Announcer,
    /// Config topics published (and acknowledged), with their payloads.
    configs: BTreeMap<String, String>,
    /// Value topics published: their stream and value.
    values: BTreeMap<String, (String, String)>,
}

/// Publishes one step of discovery would make, and what they leave.
#[derive(Debug, Default)]
pub struct Step {
    pub pubs: Vec<(String, Vec<u8>, bool)>,
    configs: BTreeMap<String, String>,
    values: BTreeMap<String, (String, String)>,
    /// Stale configs cleared in this step.
    pub swept: usize,
}

impl Discovery {
    pub fn new(catalog: Catalog, prefix: &str, discovery_prefix: &str) -> Discovery {
        Discovery {
            announcer: Announcer::new(&catalog, prefix, discovery_prefix),
            catalog,
            configs: BTreeMap::new(),
            values: BTreeMap::new(),
        }
    }

    pub fn announcer(&self) -> &Announcer {
        &self.announcer
    }

    /// Whether the wanted set is settled, so that stale configs may go.
    pub fn settled(&self) -> bool {
        self.catalog.settled()
    }

    /// The publishes that bring the broker to what is wanted: configs, and
    /// the values of streams running here, that changed (all of them on a
    /// `fresh` connection, since a broker that restarted may have lost its
    /// retained messages); empty configs and values for streams withdrawn,
    /// and empty configs for the `stale` ones found on the broker that no
    /// wanted stream has. The values of a stream that moved to another node
    /// are that node's to publish: left alone.
    pub fn step(&self, states: &States, fresh: bool, stale: &BTreeSet<String>) -> Step {
        let (streams, local) = self.catalog.streams();
        let mut configs = BTreeMap::new();
        let mut values = BTreeMap::new();
        for stream in &streams {
            for e in self.announcer.entities(stream) {
                if local.contains(stream)
                    && let Some(v) = e.value(stream, states)
                {
                    values.insert(e.value_topic.clone(), (stream.clone(), v));
                }
                configs.insert(e.config_topic, e.config.to_string());
            }
        }
        let mut pubs = Vec::new();
        for (topic, payload) in &configs {
            if fresh || self.configs.get(topic) != Some(payload) {
                pubs.push((topic.clone(), payload.clone().into_bytes(), true));
            }
        }
        let mut swept = 0;
        for topic in self.configs.keys().chain(stale) {
            if !configs.contains_key(topic) && !pubs.iter().any(|(t, _, _)| t == topic) {
                pubs.push((topic.clone(), Vec::new(), true));
                swept += usize::from(stale.contains(topic));
            }
        }
        for (topic, value) in &values {
            if fresh || self.values.get(topic) != Some(value) {
                pubs.push((topic.clone(), value.1.clone().into_bytes(), true));
            }
        }
        // The values of streams withdrawn leave the broker with them.
        for (topic, (stream, _)) in &self.values {
            if !values.contains_key(topic) && !streams.contains(stream) {
                pubs.push((topic.clone(), Vec::new(), true));
            }
        }
        Step {
            pubs,
            configs,
            values,
            swept,
        }
    }

    /// The broker acknowledged every publish of `step`.
    pub fn done(&mut self, step: Step) {
        self.configs = step.configs;
        self.values = step.values;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::outbox::Outgoing;

    fn plan() -> Plan {
        Plan {
            zones: vec![
                ("door".into(), vec![]),
                ("yard".into(), vec!["back".into()]),
            ],
            lines: vec![("gate".into(), vec![])],
            rules: vec![("loiter at door".into(), vec!["front".into()])],
            transcripts: true,
            snapshots: true,
            clustered: false,
        }
    }

    fn rec(seq: i64, stream: &str, v: Value) -> Outgoing {
        Outgoing {
            seq,
            run: "r".into(),
            id: format!("{stream}/{seq}"),
            stream: stream.into(),
            kind_of: v["type"].as_str().unwrap_or("event").into(),
            json: v.to_string(),
            stored_ns: None,
        }
    }

    #[test]
    fn each_stream_gets_the_entities_that_apply_to_it() {
        let catalog = Catalog::new(plan());
        let a = Announcer::new(&catalog, "vigil", "homeassistant");
        let front: Vec<String> = a
            .entities("front")
            .iter()
            .map(|e| e.config_topic.clone())
            .collect();
        assert_eq!(
            front,
            [
                "homeassistant/camera/vigil/front_snapshot/config",
                "homeassistant/sensor/vigil/front_zone_door/config",
                "homeassistant/sensor/vigil/front_line_gate_in/config",
                "homeassistant/sensor/vigil/front_line_gate_out/config",
                "homeassistant/binary_sensor/vigil/front_rule_loiter_at_door_8155b4cd/config",
                "homeassistant/sensor/vigil/front_caption/config",
                "homeassistant/sensor/vigil/front_transcript/config",
            ]
        );
        let back = a.entities("back");
        assert!(
            back.iter()
                .any(|e| e.value_topic == "vigil/back/zone/yard/occupancy")
        );
        assert!(!back.iter().any(|e| e.component == "binary_sensor"));
        let cam = &a.entities("front")[0];
        assert_eq!(cam.config["topic"], "vigil/front/snapshot");
        assert_eq!(cam.config["availability_topic"], "vigil/status");
        assert_eq!(cam.config["device"]["identifiers"][0], "vigil_front");
        assert_eq!(cam.config["unique_id"], "vigil_front_snapshot");

        // On a cluster, no node's status speaks for a camera: no
        // availability.
        let clustered = Catalog::new(Plan {
            clustered: true,
            ..plan()
        });
        let a = Announcer::new(&clustered, "vigil", "homeassistant");
        assert!(
            a.entities("front")
                .iter()
                .all(|e| e.config.get("availability_topic").is_none())
        );
    }

    #[test]
    fn names_become_distinct_topic_words() {
        assert_eq!(object_word("cam1"), "cam1");
        assert_ne!(object_word("cam 1"), object_word("cam_1"));
        assert!(object_word("cam 1").starts_with("cam_1_"));
        assert!(
            object_word("dör/+#")
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        );
        assert_eq!(object_word(""), format!("_{:08x}", 0x811c_9dc5u32));
    }

    #[test]
    fn values_follow_the_records_and_replays_do_not_count_twice() {
        let catalog = Catalog::new(plan());
        catalog.announce("front");
        let mut d = Discovery::new(catalog.clone(), "vigil", "homeassistant");
        let mut states = States::default();
        let cross = |seq, dir: &str| {
            rec(
                seq,
                "front",
                json!({"type": "event", "kind": "line_cross", "phase": "start",
                "event": format!("front/line_cross/gate/{seq}"), "zone": "gate",
                "labels": ["person"], "details": {"line": "gate", "direction": dir}}),
            )
        };
        let batch = [
            cross(1, "in"),
            cross(2, "in"),
            cross(3, "out"),
            rec(
                4,
                "front",
                json!({"type": "event", "kind": "zone_enter", "phase": "start",
                "event": "front/zone_enter/door/1", "zone": "door", "labels": ["person"],
                "details": {"occupancy": 2}}),
            ),
            rec(
                5,
                "front",
                json!({"type": "event", "kind": "rule", "phase": "start",
                "event": "front/rule/1", "labels": ["loiter at door"]}),
            ),
            rec(
                6,
                "front",
                json!({"type": "caption", "text": "a person at the door"}),
            ),
        ];
        for r in &batch {
            states.apply(r);
        }
        // Delivered again after a failed attempt.
        for r in &batch[..3] {
            states.apply(r);
        }
        let step = d.step(&states, false, &BTreeSet::new());
        let value = |topic: &str| {
            step.pubs
                .iter()
                .find(|(t, _, _)| t == topic)
                .map(|(_, p, _)| String::from_utf8_lossy(p).into_owned())
        };
        assert_eq!(value("vigil/front/line/gate/in").as_deref(), Some("2"));
        assert_eq!(value("vigil/front/line/gate/out").as_deref(), Some("1"));
        assert_eq!(
            value("vigil/front/zone/door/occupancy").as_deref(),
            Some("2")
        );
        assert_eq!(
            value("vigil/front/rule/loiter at door").as_deref(),
            Some("ON")
        );
        assert_eq!(
            value("vigil/front/caption").as_deref(),
            Some("a person at the door")
        );
        assert_eq!(value("vigil/front/transcript"), None, "no transcript yet");
        assert!(step.pubs.iter().all(|(_, _, retain)| *retain));
        d.done(step);

        // Nothing changed: nothing to say.
        assert!(d.step(&states, false, &BTreeSet::new()).pubs.is_empty());
        // The rule ended: only its value goes out.
        states.apply(&rec(
            7,
            "front",
            json!({"type": "event", "kind": "rule", "phase": "end",
            "event": "front/rule/1", "labels": ["loiter at door"]}),
        ));
        let step = d.step(&states, false, &BTreeSet::new());
        assert_eq!(step.pubs.len(), 1);
        assert_eq!(step.pubs[0].1, b"OFF");
        d.done(step);

        // Moved to another node: its entities stay, its values are the
        // other node's to publish, even on a fresh connection.
        catalog.leave("front");
        states.apply(&rec(
            8,
            "front",
            json!({"type": "caption", "text": "the last here"}),
        ));
        let step = d.step(&states, true, &BTreeSet::new());
        assert_eq!(step.pubs.len(), 7, "the configs only: {:?}", step.pubs);
        assert!(
            step.pubs
                .iter()
                .all(|(t, p, _)| t.ends_with("/config") && !p.is_empty())
        );
        d.done(step);
        catalog.announce("front");
        let step = d.step(&states, false, &BTreeSet::new());
        assert_eq!(
            step.pubs.len(),
            5,
            "back here: its values again: {:?}",
            step.pubs
        );
        d.done(step);

        // Withdrawn: every config and value is cleared.
        catalog.withdraw("front");
        let step = d.step(&states, false, &BTreeSet::new());
        assert_eq!(step.pubs.len(), 7 + 5, "{:?}", step.pubs);
        assert!(step.pubs.iter().all(|(_, p, r)| p.is_empty() && *r));
        d.done(step);
        assert!(d.step(&states, false, &BTreeSet::new()).pubs.is_empty());
    }

    #[test]
    fn stale_configs_go_and_wanted_ones_stay() {
        let catalog = Catalog::new(plan());
        catalog.announce("front");
        let d = Discovery::new(catalog, "vigil", "homeassistant");
        let stale: BTreeSet<String> = [
            "homeassistant/sensor/vigil/ghost_caption/config".to_string(),
            "homeassistant/sensor/vigil/front_caption/config".to_string(),
        ]
        .into();
        let step = d.step(&States::default(), false, &stale);
        assert_eq!(step.swept, 1);
        let cleared: Vec<&str> = step
            .pubs
            .iter()
            .filter(|(_, p, _)| p.is_empty())
            .map(|(t, _, _)| t.as_str())
            .collect();
        assert_eq!(cleared, ["homeassistant/sensor/vigil/ghost_caption/config"]);
    }

    #[test]
    fn long_texts_are_cut_to_a_state() {
        let long = "word ".repeat(100);
        let cut = clip_state(&long);
        assert_eq!(cut.chars().count(), STATE_MAX_CHARS);
        assert!(cut.ends_with('…'));
        assert_eq!(clip_state("short"), "short");
    }
}
