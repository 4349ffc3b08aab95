//! The bodies of the control API, typed: the server ([`super::streams`],
//! `/healthz`, every refusal) writes them and [`super::client`] reads them
//! back, so the two cannot drift apart.
//!
//! The JSON is what it always was: the same field names, and fields in the
//! same (alphabetical) order, `null` where a value is absent. `POST
//! /streams` takes a source table of the pipeline file as JSON; the server
//! checks it as a [`crate::config::SourceConfig`] and keeps it as given,
//! and [`AttachRequest`] is how the client writes one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Why a request was refused (any 4xx or 5xx): `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub error: String,
}

/// One stream of `GET /streams`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamEntry {
    /// Chunks the stream has given.
    pub chunks: u64,
    /// CPU used for the stream over the last few seconds, in % of one core
    /// (its threads, and its share of the shared model runs).
    #[serde(default)]
    pub cpu_percent: f64,
    /// CPU seconds used for the stream since it was attached.
    #[serde(default)]
    pub cpu_s: f64,
    /// Chunks dropped to keep up.
    pub dropped: u64,
    /// Frames per second decoded, over the last few seconds.
    pub fps_in: f64,
    /// Frames per second analysed.
    pub fps_out: f64,
    /// Frames analysed.
    pub frames: u64,
    /// Frames decoded.
    pub frames_in: u64,
    pub last_error: Option<String>,
    /// Media time done, in seconds.
    pub media_s: f64,
    pub name: String,
    /// Why the stream is failed or degraded, while it is.
    pub reason: Option<String>,
    /// `connecting`, `running`, `reconnecting`, `degraded`, `failed`…
    pub state: String,
    /// Seconds since the stream was attached.
    pub uptime_s: u64,
    /// The source, secrets redacted.
    pub uri: String,
    /// The node of a cluster running it (`GET /streams?from=cluster`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// The body of `POST /streams`: a source table, `{"name": "cam1", "uri":
/// "rtsp://…", "fps": 5, …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttachRequest {
    pub name: String,
    pub uri: String,
    /// Every other key of the source table (`fps`, `transport`, `latency`…).
    #[serde(flatten)]
    pub options: BTreeMap<String, Value>,
}

impl AttachRequest {
    pub fn new(name: String, uri: String) -> AttachRequest {
        AttachRequest {
            name,
            uri,
            options: BTreeMap::new(),
        }
    }

    /// Sets one key of the source table; a later value replaces an earlier
    /// one, `name` and `uri` included (as text).
    pub fn set(&mut self, key: &str, value: Value) {
        let text = || match &value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match key {
            "name" => self.name = text(),
            "uri" => self.uri = text(),
            _ => {
                self.options.insert(key.to_string(), value);
            }
        }
    }
}

/// The answer to `POST /streams`: `{"attached": "cam1"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attached {
    pub attached: String,
}

/// The answer to `DELETE /streams/{name}`: `{"detached": "cam1"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detached {
    pub detached: String,
}

/// `GET /healthz`: `{"status": "ok", "streams": {"cam1": "running"}}`;
/// `degraded` when a stream is failed or degraded, and `down` with a
/// `reason` while no pipeline runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub status: String,
    /// Each stream's state.
    pub streams: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_json_is_what_json_macros_wrote() {
        let entry = StreamEntry {
            chunks: 3,
            cpu_percent: 12.5,
            cpu_s: 3.25,
            dropped: 0,
            fps_in: 25.0,
            fps_out: 4.99,
            frames: 15,
            frames_in: 75,
            last_error: None,
            media_s: 3.0,
            name: "cam1".into(),
            reason: Some("why".into()),
            state: "running".into(),
            uptime_s: 7,
            uri: "rtsp://h/s".into(),
            node: None,
        };
        let old = json!({
            "name": "cam1",
            "uri": "rtsp://h/s",
            "state": "running",
            "fps_in": 25.0,
            "fps_out": 4.99,
            "frames_in": 75,
            "frames": 15,
            "chunks": 3,
            "cpu_percent": 12.5,
            "cpu_s": 3.25,
            "dropped": 0,
            "media_s": 3.0,
            "uptime_s": 7,
            "last_error": None::<String>,
            "reason": Some("why"),
        });
        assert_eq!(serde_json::to_string(&entry).ok(), Some(old.to_string()));
        let mut older = old.clone();
        let back: StreamEntry = serde_json::from_value(old).expect("reads back");
        assert_eq!(back, entry);
        // A server from before the CPU figures: they read as 0.
        if let Some(o) = older.as_object_mut() {
            o.remove("cpu_percent");
            o.remove("cpu_s");
        }
        let back: StreamEntry = serde_json::from_value(older).expect("reads back");
        assert_eq!((back.cpu_percent, back.cpu_s), (0.0, 0.0));

        let problem = Problem { error: "no".into() };
        assert_eq!(
            serde_json::to_string(&problem).ok(),
            Some(json!({ "error": "no" }).to_string())
        );
        let down = Health {
            reason: Some("restarting".into()),
            status: "down".into(),
            streams: BTreeMap::new(),
        };
        assert_eq!(
            serde_json::to_string(&down).ok(),
            Some(json!({ "status": "down", "reason": "restarting", "streams": {} }).to_string())
        );
        let ok = Health {
            reason: None,
            status: "ok".into(),
            streams: [("cam".to_string(), "running".to_string())].into(),
        };
        assert_eq!(
            serde_json::to_string(&ok).ok(),
            Some(json!({ "status": "ok", "streams": { "cam": "running" } }).to_string())
        );
    }

    #[test]
    fn an_attach_request_is_a_source_table() {
        let mut request = AttachRequest::new("cam1".into(), "rtsp://h/s".into());
        request.set("fps", json!(5));
        request.set("transport", json!("tcp"));
        request.set("name", json!("door"));
        let value = serde_json::to_value(&request).expect("serialises");
        assert_eq!(
            value,
            json!({ "name": "door", "uri": "rtsp://h/s", "fps": 5, "transport": "tcp" })
        );
        let source: crate::config::SourceConfig =
            serde_json::from_value(value.clone()).expect("a source table");
        assert_eq!(source.name, "door");
        let back: AttachRequest = serde_json::from_value(value).expect("reads back");
        assert_eq!(back, request);
    }
}
