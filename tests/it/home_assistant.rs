//! Home Assistant MQTT discovery against a real mosquitto: `vigil serve`
//! announces each stream as a device with a camera, zone, line, rule,
//! caption sensors; every payload uses only keys Home Assistant documents
//! for its component (`tests/fixtures/home_assistant_mqtt.json`) and passes
//! Home Assistant's own discovery schemas (`tests/support/ha_schema.py`); the
//! topics they point at carry what the records say; a stream detached is
//! removed, what an earlier run left for a stream gone is cleared, and what
//! others published is left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use vigil::record::{Phase, Record};

use crate::brokers::{Mosquitto, MqttSubscriber, publish_retained};
use crate::clip::shared;
use crate::live::free_port;
use crate::run::{captions, events, read_records};
use crate::serve::{Serve, post};

/// What Home Assistant documents (see the file's `about`).
fn documented() -> Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/home_assistant_mqtt.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("the fixture")).expect("JSON")
}

/// The retained messages under `filter` now: topic → payload.
fn retained(port: u16, filter: &str) -> BTreeMap<String, Vec<u8>> {
    let sub = MqttSubscriber::new(port, filter, None);
    std::thread::sleep(Duration::from_millis(700));
    sub.messages()
        .into_iter()
        .filter(|m| m.retain)
        .map(|m| (m.topic, m.bytes))
        .collect()
}

fn text(map: &BTreeMap<String, Vec<u8>>, topic: &str) -> Option<String> {
    map.get(topic)
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Checks one discovery payload against the documented keys of its
/// component; returns the component.
fn check_payload(topic: &str, config: &Value, docs: &Value) -> String {
    let parts: Vec<&str> = topic.split('/').collect();
    assert_eq!(
        parts.len(),
        5,
        "{topic}: PREFIX/COMPONENT/NODE/OBJECT/config"
    );
    let component = parts[1];
    let allowed = &docs["components"][component];
    assert!(
        allowed.is_object(),
        "{topic}: a component the fixture lists"
    );
    let list = |v: &Value| -> BTreeSet<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut keys = list(&allowed["optional"]);
    keys.extend(list(&allowed["required"]));
    keys.extend(list(&docs["every_component"]["optional"]));
    let map = config.as_object().expect("a JSON object");
    for k in map.keys() {
        assert!(
            keys.contains(k),
            "{topic}: `{k}` is not a documented {component} key"
        );
    }
    for k in list(&allowed["required"]) {
        assert!(map.contains_key(&k), "{topic}: lacks required `{k}`");
    }
    let device = map["device"].as_object().expect("device");
    let device_keys = list(&docs["device"]["optional"]);
    for k in device.keys() {
        assert!(device_keys.contains(k), "{topic}: device key `{k}`");
    }
    assert!(
        device["identifiers"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
    let origin = map["origin"].as_object().expect("origin");
    for k in origin.keys() {
        assert!(
            list(&docs["origin"]["optional"]).contains(k)
                || list(&docs["origin"]["required"]).contains(k),
            "{topic}: origin key `{k}`"
        );
    }
    if let Some(class) = map.get("state_class") {
        assert!(list(&docs["state_classes"]).contains(class.as_str().unwrap_or("")));
    }
    assert_eq!(map["availability_topic"], "vigil/status", "{topic}");
    assert!(map["unique_id"].as_str().is_some_and(|u| !u.is_empty()));
    component.to_owned()
}

/// The configs vigil published: topic → payload, for streams whose object
/// ids start with `stream_`.
fn configs_of(all: &BTreeMap<String, Vec<u8>>, stream: &str) -> BTreeMap<String, Value> {
    all.iter()
        .filter(|(t, _)| {
            t.split('/')
                .nth(3)
                .is_some_and(|o| o.starts_with(&format!("{stream}_")))
                && t.split('/').nth(2) == Some("vigil")
        })
        .map(|(t, p)| {
            (
                t.clone(),
                serde_json::from_slice(p).expect("a JSON payload"),
            )
        })
        .collect()
}

#[test]
fn home_assistant_sees_each_stream_its_values_and_forgets_what_is_detached() {
    let docs = documented();
    let dir = tempfile::tempdir().expect("tmp");
    let broker = Mosquitto::start();
    // An earlier run announced a stream no longer watched; another program
    // announced something of its own.
    let ghost = "homeassistant/sensor/vigil/ghost_caption/config";
    let theirs = "homeassistant/sensor/weather/outside/config";
    publish_retained(
        broker.port,
        ghost,
        br#"{"state_topic": "vigil/ghost/caption"}"#,
    );
    publish_retained(broker.port, theirs, br#"{"state_topic": "weather/t"}"#);
    let live = MqttSubscriber::new(broker.port, "vigil/walkway/rule/#", None);

    let http = free_port();
    let pipeline = dir.path().join("ha.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
[[sources]]
name = "walkway"
uri = "{}"

[encoders.detector]
fps = 5
classes = ["person"]

[[lines]]
name = "across"
from = [0.45, 0.2]
to = [0.45, 0.75]
labels = ["person"]

[[zones]]
name = "right"
polygon = [[0.65, 0.0], [1.0, 0.0], [1.0, 1.0], [0.65, 1.0]]

[[rules]]
name = "someone_right"
when = "object(person, zone=right)"

[snapshots]

[sinks.jsonl]
[sinks.store]
[sinks.mqtt]
url = "mqtt://127.0.0.1:{}"
discovery = true

[server]
listen = "127.0.0.1:{http}"
"#,
            shared("vtest.avi").display(),
            broker.port
        ),
    )
    .expect("pipeline");
    let out = dir.path().join("out");
    let serve = Serve::start(&pipeline, &out, http);

    // The walkway is read to its end; everything it recorded is delivered.
    wait_for("the walkway to end", Duration::from_secs(120), || {
        serve
            .streams()
            .get("walkway")
            .is_some_and(|s| s.state == "ended")
    });
    let records: Vec<Record> = read_records(&out.join("events.jsonl"));
    let last_caption = captions(&records).last().expect("captions").text.clone();
    // A state holds 255 characters: a longer caption is cut, with `…`.
    let last_caption = if last_caption.chars().count() > 255 {
        let mut cut: String = last_caption.chars().take(254).collect();
        cut.push('…');
        cut
    } else {
        last_caption
    };
    wait_for(
        "the last caption in Home Assistant",
        Duration::from_secs(30),
        || {
            text(
                &retained(broker.port, "vigil/walkway/caption"),
                "vigil/walkway/caption",
            )
            .is_some_and(|c| c == last_caption)
        },
    );

    // A second camera attached over the API.
    let (code, body) = post(
        &serve.url("/streams"),
        &format!(
            r#"{{"name": "bikes", "uri": "{}"}}"#,
            shared("bikes.mp4").display()
        ),
    );
    assert_eq!(code, 201, "{body}");
    wait_for("the bikes' entities", Duration::from_secs(30), || {
        !configs_of(&retained(broker.port, "homeassistant/#"), "bikes").is_empty()
    });

    let all = retained(broker.port, "homeassistant/#");
    // What an earlier run left is gone; what another program said stays.
    assert!(!all.contains_key(ghost), "the ghost's config was cleared");
    assert!(
        all.contains_key(theirs),
        "another program's config is left alone"
    );

    let walkway = configs_of(&all, "walkway");
    let bikes = configs_of(&all, "bikes");
    let mut unique = BTreeSet::new();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for (topic, config) in walkway.iter().chain(&bikes) {
        *kinds
            .entry(check_payload(topic, config, &docs))
            .or_default() += 1;
        assert!(
            unique.insert(config["unique_id"].as_str().unwrap_or("").to_owned()),
            "{topic}: unique_id is unique"
        );
    }
    // Home Assistant's own schemas take every payload, dropping no key.
    let file = dir.path().join("configs.json");
    let payloads: BTreeMap<&String, String> = walkway
        .iter()
        .chain(&bikes)
        .map(|(t, v)| (t, v.to_string()))
        .collect();
    std::fs::write(&file, serde_json::to_string(&payloads).expect("JSON")).expect("write");
    let python = crate::run::cache().join("ha-venv/bin/python");
    let checked = std::process::Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/ha_schema.py"))
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("{} (deploy/setup.sh makes it): {e}", python.display()));
    assert!(
        checked.status.success(),
        "Home Assistant's schemas:\n{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&checked.stdout)
            .matches("valid ")
            .count(),
        12,
        "every payload checked"
    );

    // Each: a camera, the zone, the line in and out, the rule, the caption.
    assert_eq!(walkway.len(), 6, "{:?}", walkway.keys());
    assert_eq!(bikes.len(), 6, "{:?}", bikes.keys());
    assert_eq!(kinds["camera"], 2);
    assert_eq!(kinds["binary_sensor"], 2);
    assert_eq!(kinds["sensor"], 8);
    let device = |c: &BTreeMap<String, Value>| -> BTreeSet<String> {
        c.values()
            .map(|v| v["device"]["identifiers"][0].to_string())
            .collect()
    };
    assert_eq!(device(&walkway).len(), 1, "one device per stream");
    assert_ne!(device(&walkway), device(&bikes));

    // The topics they point at carry what the records say.
    let values = retained(broker.port, "vigil/#");
    let by_name = |what: &str| -> &Value {
        walkway
            .values()
            .find(|c| c["name"] == what)
            .unwrap_or_else(|| panic!("an entity named {what}: {walkway:?}"))
    };
    let value = |config: &Value| -> String {
        let topic = config
            .get("state_topic")
            .or_else(|| config.get("topic"))
            .and_then(Value::as_str)
            .expect("a topic");
        text(&values, topic).unwrap_or_else(|| panic!("nothing retained on {topic}"))
    };
    let starts = |kind: &str| {
        events(&records)
            .filter(|e| e.kind == kind && e.phase == Phase::Start)
            .collect::<Vec<_>>()
    };
    let crossings = |d: &str| {
        starts("line_cross")
            .iter()
            .filter(|e| e.details["direction"] == d)
            .count()
    };
    assert!(
        crossings("in") > 0 && crossings("out") > 0,
        "people cross both ways"
    );
    assert_eq!(value(by_name("across in")), crossings("in").to_string());
    assert_eq!(value(by_name("across out")), crossings("out").to_string());
    let zone = events(&records)
        .filter(|e| {
            matches!(e.kind.as_str(), "zone_enter" | "zone_leave") && e.phase == Phase::Start
        })
        .last()
        .expect("people enter the zone on the right");
    assert_eq!(
        value(by_name("right occupancy")),
        zone.details["occupancy"].to_string()
    );
    assert_eq!(value(by_name("Caption")), last_caption);
    // The rule was on while its event was open, and is off at the end.
    assert!(!starts("rule").is_empty(), "the rule fired");
    assert_eq!(value(by_name("someone_right")), "OFF");
    let said: Vec<String> = live.messages().into_iter().map(|m| m.payload).collect();
    assert!(said.iter().any(|p| p == "ON"), "{said:?}");
    // The camera shows the latest snapshot.
    let picture = values
        .get("vigil/walkway/snapshot")
        .expect("a retained snapshot");
    assert!(picture.starts_with(&[0xFF, 0xD8]), "a JPEG");

    // Detached: its entities and their values go; the other's stay.
    let o = serve.cli(&["detach", "bikes"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_for("the bikes' entities to go", Duration::from_secs(15), || {
        configs_of(&retained(broker.port, "homeassistant/#"), "bikes").is_empty()
    });
    let after = retained(broker.port, "homeassistant/#");
    assert_eq!(configs_of(&after, "walkway").len(), 6);
    assert!(
        !retained(broker.port, "vigil/bikes/#").contains_key("vigil/bikes/caption"),
        "the detached stream's values are cleared"
    );

    // Stopped: the entities stay, unavailable.
    serve.stop();
    let end = retained(broker.port, "#");
    assert_eq!(text(&end, "vigil/status").as_deref(), Some("offline"));
    assert_eq!(configs_of(&end, "walkway").len(), 6);
}
