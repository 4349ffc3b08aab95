//! Live sinks against real servers (an HTTP receiver, mosquitto,
//! nats-server with JetStream; `tests/support/brokers.rs`): outages, `kill -9` of vigil, and
//! a full store. Every record the store holds must arrive, in store order
//! per stream, whatever fails on the way.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::brokers::{HttpReceiver, Mosquitto, MqttSubscriber, NatsServer};
use crate::run::{read_jsonl, vigil};

/// How long each sink server is down in the outage tests.
const OUTAGE: Duration = Duration::from_secs(30);

#[track_caller]
fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A long clip with steady motion (a bouncing ball, 160×120, 5 fps):
/// 20 minutes of media, a few seconds of work, hundreds of captions.
fn long_clip(dir: &Path) -> PathBuf {
    let path = dir.join("ball.mkv");
    let ok = Command::new("gst-launch-1.0")
        .args([
            "-q",
            "videotestsrc",
            "num-buffers=6000",
            "pattern=ball",
            "!",
            "video/x-raw,width=160,height=120,framerate=5/1",
            "!",
            "jpegenc",
            "!",
            "matroskamux",
            "!",
            "filesink",
        ])
        .arg(format!("location={}", path.display()))
        .status()
        .expect("gst-launch-1.0 (gstreamer1.0-tools)");
    assert!(ok.success());
    path
}

/// Two streams of `clip`, motion and captions, the log, the store and `sink`.
fn pipeline(dir: &Path, clip: &Path, sink: &str) -> PathBuf {
    let path = dir.join("pipeline.toml");
    let text = format!(
        r#"
[[sources]]
name = "cam1"
uri = "{clip}"

[[sources]]
name = "cam2"
uri = "{clip}"

[encoders.motion]
threshold = 0.002
min_duration = "0s"
cooldown = "0s"

[fusion]
caption_span = "2s"

[sinks.jsonl]
[sinks.store]

{sink}
"#,
        clip = clip.display()
    );
    std::fs::write(&path, text).expect("write pipeline");
    path
}

/// `(seq, run, id, stream)` of every record in the store, in store order.
fn stored(db: &Path) -> Vec<(i64, String, String, String)> {
    let db = rusqlite::Connection::open(db).expect("open store");
    let mut q = db
        .prepare("SELECT seq, run, id, stream FROM records ORDER BY seq")
        .expect("query");
    q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows")
}

fn integrity(db: &Path) -> String {
    let db = rusqlite::Connection::open(db).expect("open store");
    db.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check")
}

/// Where `sink`'s cursor stands; 0 while the store is not there yet.
fn cursor(db: &Path, sink: &str) -> i64 {
    rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|db| {
            db.query_row("SELECT seq FROM cursors WHERE sink = ?1", [sink], |r| {
                r.get(0)
            })
        })
        .unwrap_or(0)
}

/// Every stored record arrived (duplicates allowed), nothing else did, and
/// per stream the first arrivals are in store order.
#[track_caller]
fn assert_all_arrived(db: &Path, arrived: &[(String, String, String)]) {
    let store = stored(db);
    assert!(!store.is_empty(), "the store has records");
    let mut seen = HashSet::new();
    let mut firsts: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for (run, id, stream) in arrived {
        if seen.insert((run.clone(), id.clone())) {
            firsts
                .entry(stream.clone())
                .or_default()
                .push((run.clone(), id.clone()));
        }
    }
    let mut expected: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for (_, run, id, stream) in &store {
        expected
            .entry(stream.clone())
            .or_default()
            .push((run.clone(), id.clone()));
    }
    let missing: Vec<_> = store
        .iter()
        .filter(|(_, run, id, _)| !seen.contains(&(run.clone(), id.clone())))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} stored records never arrived, e.g. {missing:?}",
        store
            .iter()
            .filter(|(_, run, id, _)| !seen.contains(&(run.clone(), id.clone())))
            .count(),
        store.len()
    );
    assert_eq!(
        seen.len(),
        store.len(),
        "nothing arrived that is not stored"
    );
    for (stream, ids) in &expected {
        assert_eq!(
            firsts.get(stream),
            Some(ids),
            "stream {stream}: records arrived in store order"
        );
    }
    eprintln!(
        "{} records stored, {} arrived ({} duplicates)",
        store.len(),
        arrived.len(),
        arrived.len() - store.len()
    );
}

fn start_vigil(pipeline: &Path, out: &Path, env: &[(&str, &str)]) -> Child {
    let mut c = vigil();
    c.args(["run"])
        .arg(pipeline)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    c.spawn().expect("spawn vigil")
}

fn kill9(child: &mut Child) {
    child.kill().expect("SIGKILL vigil");
    let status = child.wait().expect("reaped");
    assert!(!status.success(), "vigil was killed, not finished");
}

fn finish(child: Child) -> String {
    let output = child.wait_with_output().expect("vigil ends");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    stderr
}

// ---------------------------------------------------------------- HTTP

fn key(r: &Value) -> (String, String, String) {
    let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
    (s("run"), s("id"), s("stream"))
}

/// Run 1 delivers, the receiver goes down, run 1 is killed (`kill -9`)
/// while it is down, run 2 starts and works while it is still down, the
/// receiver comes back after 30 s: every record of both runs arrives.
#[test]
fn webhook_outage_and_kill_9_lose_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let clip = long_clip(dir.path());
    // Bodies not signed with the key are refused (401).
    let mut rx = HttpReceiver::with_gate(Arc::new(|r: &crate::brokers::Request| {
        r.header(vigil::sink::webhook::SIGNATURE)
            == Some(&vigil::sink::webhook::signature(b"s3cret-key", &r.body))
    }));
    let sink = format!(
        "[sinks.webhook]\nurl = \"http://127.0.0.1:{}/hook\"\nsecret_env = \"VIGIL_TEST_HOOK_KEY\"\n\
         batch = 20\nretry_max = \"2s\"\ntimeout = \"2s\"\ndrain = \"90s\"\n",
        rx.port
    );
    let pipeline = pipeline(dir.path(), &clip, &sink);
    let out = dir.path().join("out");
    let env = [("VIGIL_TEST_HOOK_KEY", "s3cret-key")];

    let mut first = start_vigil(&pipeline, &out, &env);
    wait_for("the first deliveries", Duration::from_secs(60), || {
        rx.records().len() >= 20
    });
    rx.down();
    let down_at = Instant::now();
    // Records made while the receiver is down wait in the store.
    let db = out.join("events.db");
    wait_for("records owed", Duration::from_secs(60), || {
        stored(&db).len() > rx.records().len() + 50
    });
    kill9(&mut first);
    assert_eq!(integrity(&db), "ok");
    let owed_after_kill = stored(&db).len() as i64 - cursor(&db, "webhook");
    assert!(owed_after_kill > 0, "the killed run left records owed");

    let second = start_vigil(&pipeline, &out, &env);
    std::thread::sleep(OUTAGE.saturating_sub(down_at.elapsed()));
    let stored_while_down = stored(&db).len();
    rx.up();
    let stderr = finish(second);
    assert_eq!(
        stored(&db).len(),
        stored_while_down,
        "run 2 stored all its records while the receiver was down: nothing waited on it"
    );
    assert!(stderr.contains("webhook: delivered"), "{stderr}");
    assert!(stderr.contains("pending 0"), "{stderr}");
    assert!(
        stderr.contains("cannot deliver"),
        "the outage was seen: {stderr}"
    );
    assert!(
        !stderr.contains("s3cret-key"),
        "the secret stays out of logs"
    );
    assert_eq!(rx.refused(), 0, "every body was signed with the key");
    let got: Vec<_> = rx.records().iter().map(key).collect();
    assert_all_arrived(&db, &got);
    let runs: HashSet<_> = got.iter().map(|r| r.0.clone()).collect();
    assert_eq!(runs.len(), 2, "records of both runs arrived");
    rx.down();
}

// ---------------------------------------------------------------- MQTT

/// `kill -9` mid-run with the broker up leaves the store intact and its
/// cursor on what was acknowledged; then the broker is down for 30 s while
/// the next run works, and every record of both runs arrives.
#[test]
fn mqtt_kill_9_and_outage_lose_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let clip = long_clip(dir.path());
    let mut broker = Mosquitto::persistent();
    let checker = MqttSubscriber::new(broker.port, "vigil/#", None);
    // `(run, id, stream)` of every record published.
    let got = || -> Vec<(String, String, String)> {
        checker
            .messages()
            .iter()
            .filter(|m| {
                let kind = m.topic.rsplit('/').next().unwrap_or_default();
                matches!(kind, "events" | "captions" | "transcripts")
            })
            .filter_map(|m| serde_json::from_str::<Value>(&m.payload).ok())
            .map(|v| key(&v))
            .collect()
    };
    let count = || got().len();
    let sink = format!(
        "[sinks.mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\nbatch = 20\nretry_max = \"2s\"\n\
         timeout = \"2s\"\ndrain = \"90s\"\n",
        broker.port
    );
    let pipeline = pipeline(dir.path(), &clip, &sink);
    let out = dir.path().join("out");
    let db = out.join("events.db");

    let mut first = start_vigil(&pipeline, &out, &[]);
    wait_for("records arriving", Duration::from_secs(60), || {
        count() >= 40
    });
    kill9(&mut first);
    assert_eq!(integrity(&db), "ok", "the store survives kill -9");
    let acked = cursor(&db, "mqtt");
    let store = stored(&db);
    assert!(acked > 0 && acked <= store.last().map_or(0, |r| r.0));
    // Everything up to the cursor was acknowledged, so it has arrived.
    wait_for(
        "acknowledged records at the subscriber",
        Duration::from_secs(10),
        || {
            let have: HashSet<(String, String)> =
                got().iter().map(|r| (r.0.clone(), r.1.clone())).collect();
            store
                .iter()
                .filter(|r| r.0 <= acked)
                .all(|r| have.contains(&(r.1.clone(), r.2.clone())))
        },
    );

    broker.stop();
    let down_at = Instant::now();
    let second = start_vigil(&pipeline, &out, &[]);
    std::thread::sleep(OUTAGE.saturating_sub(down_at.elapsed()));
    let stored_while_down = stored(&db).len();
    broker.up();
    let stderr = finish(second);
    assert_eq!(
        stored(&db).len(),
        stored_while_down,
        "run 2 stored all its records while the broker was down: nothing waited on it"
    );
    assert!(stderr.contains("mqtt: delivered"), "{stderr}");
    assert!(stderr.contains("pending 0"), "{stderr}");
    let store_len = stored(&db).len();
    wait_for(
        "the subscriber to catch up",
        Duration::from_secs(20),
        || {
            let have: HashSet<(String, String)> =
                got().iter().map(|r| (r.0.clone(), r.1.clone())).collect();
            have.len() >= store_len
        },
    );
    assert_all_arrived(&db, &got());
}

// ---------------------------------------------------------------- NATS

/// `(run, id, stream)` of every message in the VIGIL stream, in order;
/// the Nats-Msg-Id header must be `run/id`, the subject
/// `vigil.STREAM.TYPE`.
fn messages(server: &NatsServer) -> Vec<(String, String, String)> {
    server
        .messages("VIGIL", None)
        .into_iter()
        .map(|m| {
            let v: Value = serde_json::from_str(&m.payload).expect("JSON");
            let k = key(&v);
            assert_eq!(m.msg_id, format!("{}/{}", k.0, k.1));
            assert_eq!(
                m.subject,
                format!("vigil.{}.{}", k.2, v["type"].as_str().unwrap_or_default())
            );
            k
        })
        .collect()
}

/// As for the webhook, against JetStream: the server is killed, vigil is
/// killed while it is down, the next run works through the rest of the
/// outage, and the stream ends up with every record exactly once.
#[test]
fn nats_outage_and_kill_9_lose_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let clip = long_clip(dir.path());
    let mut server = NatsServer::start(&[]);
    let sink = format!(
        "[sinks.nats]\nurl = \"nats://127.0.0.1:{}\"\nbatch = 20\nretry_max = \"2s\"\n\
         timeout = \"2s\"\ndrain = \"90s\"\n",
        server.port
    );
    let pipeline = pipeline(dir.path(), &clip, &sink);
    let out = dir.path().join("out");
    let db = out.join("events.db");

    let mut first = start_vigil(&pipeline, &out, &[]);
    wait_for(
        "the first acknowledgements",
        Duration::from_secs(60),
        || db.exists() && cursor(&db, "nats") > 20,
    );
    server.kill();
    let down_at = Instant::now();
    let acked = cursor(&db, "nats");
    wait_for("records owed", Duration::from_secs(60), || {
        stored(&db).len() as i64 > acked + 50
    });
    kill9(&mut first);
    assert_eq!(integrity(&db), "ok");

    let second = start_vigil(&pipeline, &out, &[]);
    std::thread::sleep(OUTAGE.saturating_sub(down_at.elapsed()));
    let stored_while_down = stored(&db).len();
    server.up();
    let stderr = finish(second);
    assert_eq!(
        stored(&db).len(),
        stored_while_down,
        "run 2 stored all its records while the server was down: nothing waited on it"
    );
    assert!(stderr.contains("nats: delivered"), "{stderr}");
    assert!(stderr.contains("pending 0"), "{stderr}");
    let got = messages(&server);
    assert_all_arrived(&db, &got);
    assert_eq!(
        got.len(),
        stored(&db).len(),
        "JetStream de-duplicated every redelivery (Nats-Msg-Id)"
    );
}

// ---------------------------------------------------------------- full store

/// A file-size limit the store meets mid-run: a clear error, the store
/// marked degraded and left intact, the other streams and the JSONL log go
/// on with every record.
#[test]
fn a_full_store_degrades_without_losing_the_log() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().expect("tmp");
    let clip = long_clip(dir.path());
    let pipeline = pipeline(dir.path(), &clip, "");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).expect("out");
    // Writes past 400 KiB fail (EFBIG). The JSONL log of this run (about
    // 260 KB) stays under it; the store (pages of the table, four indexes
    // and the WAL) does not.
    const LIMIT: u64 = 400 * 1024;
    let mut c = vigil();
    c.args(["run"]).arg(&pipeline).arg("--out").arg(&out);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child
    // between fork and exec.
    unsafe {
        c.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: LIMIT,
                rlim_max: LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = c.output().expect("vigil runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("event store")
            && stderr.contains("degraded")
            && stderr.contains("file-size limit"),
        "says the store failed and is degraded: {stderr}"
    );
    let log = read_jsonl(&out.join("events.jsonl"));
    let said: usize = stderr
        .lines()
        .find_map(|l| l.strip_prefix("records "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("the summary counts the records");
    assert_eq!(log.len(), said, "the log kept every record");
    let db = out.join("events.db");
    assert_eq!(integrity(&db), "ok");
    let kept = stored(&db);
    assert!(
        !kept.is_empty() && kept.len() < log.len(),
        "the store kept {} of {} records",
        kept.len(),
        log.len()
    );
    // What the store kept is what the log says, record for record.
    let in_log: HashSet<(String, String)> = log
        .iter()
        .map(|r| {
            let k = key(r);
            (k.0, k.1)
        })
        .collect();
    assert!(
        kept.iter()
            .all(|r| in_log.contains(&(r.1.clone(), r.2.clone())))
    );
    for stream in ["cam1", "cam2"] {
        assert!(
            log.iter()
                .any(|r| r["stream"] == stream && r["kind"] == "motion" && r["phase"] == "end"),
            "stream {stream} ran to its end"
        );
    }
}

/// Each event's snapshot goes to MQTT as the JPEG itself, retained, on the
/// stream's snapshot topic and its label's, where Home Assistant's MQTT
/// camera shows it; a subscriber that comes later gets the latest.
#[test]
fn mqtt_publishes_each_snapshot_retained_by_stream_and_label() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = Mosquitto::start();
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
[encoders.detector]
fps = 5
[snapshots]
kinds = ["object"]
[sinks.jsonl]
[sinks.store]
[sinks.mqtt]
url = "mqtt://127.0.0.1:{}"
"#,
            broker.port
        ),
    )
    .expect("pipeline");
    let out = dir.path().join("out");
    let o = crate::run::vigil()
        .arg("run")
        .arg(&pipeline)
        .arg("--source")
        .arg(crate::clip::shared("bikes.mp4"))
        .arg("--out")
        .arg(&out)
        .output()
        .expect("vigil");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The last picture of each label, and of the stream, in record order.
    let records = crate::run::read_records(&out.join("events.jsonl"));
    let mut latest: std::collections::BTreeMap<String, String> = Default::default();
    for e in crate::run::events(&records) {
        if let Some(s) = &e.snapshot {
            latest.insert("bikes/snapshot".into(), s.clone());
            for l in &e.labels {
                latest.insert(format!("bikes/{l}/snapshot"), s.clone());
            }
        }
    }
    assert!(latest.len() >= 3, "pictures of people and cars: {latest:?}");
    let later = MqttSubscriber::new(broker.port, "vigil/+/+/snapshot", None);
    let stream = MqttSubscriber::new(broker.port, "vigil/+/snapshot", None);
    wait_for("the retained snapshots", Duration::from_secs(10), || {
        later.count() + stream.count() >= latest.len()
    });
    for m in later.messages().into_iter().chain(stream.messages()) {
        let topic = m.topic.strip_prefix("vigil/").expect("the prefix");
        let file = latest.get(topic).unwrap_or_else(|| panic!("{topic}"));
        assert!(m.retain, "{topic} is retained");
        assert!(m.bytes.starts_with(&[0xFF, 0xD8]), "{topic}: a JPEG");
        assert_eq!(
            m.bytes,
            std::fs::read(out.join(file)).expect("the snapshot"),
            "{topic}: the latest picture, {file}"
        );
    }
}
