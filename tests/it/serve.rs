//! `vigil serve`: streams attached and detached over the control API while
//! the others run, kept across restarts, and the API's token.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use vigil::record::{Phase, Record};
use vigil::server::api::{Health, StreamEntry};
use vigil::time::{SECOND, Timestamp};

use crate::clip::shared;
use crate::live::{RtspServer, free_port, h264_clip};
use crate::run::{captions, events, read_records, vigil};

/// A `vigil serve` child on `http` (127.0.0.1), killed on drop. Its
/// stderr goes to a file (a pipe nobody reads would fill and block its
/// logging).
pub struct Serve {
    child: Option<Child>,
    http: u16,
    log: tempfile::NamedTempFile,
}

impl Serve {
    /// Starts it with `env` and returns at once.
    pub fn spawn(pipeline: &Path, out: &Path, http: u16, env: &[(&str, &str)]) -> Serve {
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let stderr = log.reopen().expect("the log file");
        let child = vigil()
            .args(["serve"])
            .arg(pipeline)
            .arg("--out")
            .arg(out)
            .env("VIGIL_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn vigil serve");
        Serve {
            child: Some(child),
            http,
            log,
        }
    }

    /// Starts it and waits until it answers.
    pub fn start(pipeline: &Path, out: &Path, http: u16) -> Serve {
        Serve::start_with(pipeline, out, http, &[])
    }

    /// Starts it with `env` and waits until it answers.
    pub fn start_with(pipeline: &Path, out: &Path, http: u16, env: &[(&str, &str)]) -> Serve {
        let serve = Serve::spawn(pipeline, out, http, env);
        let deadline = Instant::now() + Duration::from_secs(30);
        while serve.health().is_none() {
            assert!(
                Instant::now() < deadline,
                "vigil serve {} answers",
                pipeline.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        serve
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    /// A successful answer to `GET path`, read as a `T`.
    /// (Within 10 s: a server that stops answering fails the test where
    /// it stopped, rather than holding it.)
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Option<T> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let mut r = agent.get(&self.url(path)).call().ok()?;
        serde_json::from_str(&r.body_mut().read_to_string().ok()?).ok()
    }

    /// `GET /healthz` while it answers 200.
    pub fn health(&self) -> Option<Health> {
        self.get("/healthz")
    }

    /// The stream table, by name.
    pub fn streams(&self) -> std::collections::BTreeMap<String, StreamEntry> {
        self.get::<Vec<StreamEntry>>("/streams")
            .unwrap_or_default()
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect()
    }

    /// How many chunks the stream named `name` has given, if it is listed.
    fn chunks(&self, name: &str) -> Option<u64> {
        self.streams().get(name).map(|s| s.chunks)
    }

    /// `vigil attach`/`detach`/… against this server.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        vigil()
            .args(args)
            .env("VIGIL_SERVER", self.url(""))
            .output()
            .expect("run vigil")
    }

    /// Stops it as systemd does (SIGTERM) and returns its stderr. One that
    /// has not stopped within 60 s fails the test with its threads' stacks.
    pub fn stop(mut self) -> String {
        let mut child = self.child.take().expect("running");
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().expect("vigil serve's status") {
                break status;
            }
            if Instant::now() > deadline {
                let stacks = crate::watchdog::stacks(child.id());
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "vigil serve did not stop within 60 s of SIGTERM; its threads:\n{stacks}\nits log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let stderr = self.log();
        assert!(status.success(), "vigil serve stopped cleanly: {stderr}");
        stderr
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.log.path()).unwrap_or_default()).into_owned()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A camera attached over the API; its server goes away for 10 s and comes
/// back: vigil reconnects on its own, a `stream_gap` event covers the
/// outage, `/healthz` and `/streams` say `reconnecting` meanwhile, and
/// records flow again after it. Then down again, and `vigil serve` is
/// stopped before it is back: that outage is recorded up to the stop.
#[test]
fn an_attached_camera_that_drops_is_reconnected_with_a_gap_event() {
    let dir = tempfile::tempdir().expect("tmp");
    let clip = h264_clip(dir.path());
    let server = RtspServer::start(&clip);
    let port = server.port;
    let http = free_port();
    let pipeline = dir.path().join("live.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
[encoders.motion]
min_duration = "0s"

[fusion]
caption_span = "2s"

[sinks.jsonl]

[server]
listen = "127.0.0.1:{http}"
"#
        ),
    )
    .expect("pipeline");
    let out = dir.path().join("out");
    let serve = Serve::start(&pipeline, &out, http);
    let (code, answer) = post(
        &serve.url("/streams"),
        &format!(
            r#"{{"name": "door", "uri": "rtsp://127.0.0.1:{port}/cam", "stall": "2s", "retry_max": "2s"}}"#
        ),
    );
    assert_eq!(code, 201, "{answer}");
    let log = out.join("events.jsonl");
    // The end of the latest caption, and how many there are.
    let latest = || {
        let records = read_records(&log);
        let ends: Vec<Timestamp> = captions(&records).map(|c| c.end).collect();
        (
            ends.iter().copied().max().unwrap_or(Timestamp::ZERO),
            ends.len(),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while latest().1 < 3 {
        assert!(Instant::now() < deadline, "3 captions");
        std::thread::sleep(Duration::from_millis(100));
    }
    let stopped_at = latest().0;
    server.stop();
    let down = Instant::now();
    // While it is down the stream says so.
    let (mut said_reconnecting, mut listed_reconnecting) = (false, false);
    while down.elapsed() < Duration::from_secs(10) {
        said_reconnecting |= serve
            .health()
            .is_some_and(|h| h.streams.get("door").is_some_and(|s| s == "reconnecting"));
        listed_reconnecting |= serve
            .streams()
            .remove("door")
            .is_some_and(|door| door.state == "reconnecting" && door.last_error.is_some());
        std::thread::sleep(Duration::from_millis(250));
    }
    let server = RtspServer::start_on(&clip, port);
    // Stream time goes on through the outage: wait for captions 6 s past it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while latest().0 < Timestamp(stopped_at.nanos() + 16 * SECOND) {
        assert!(Instant::now() < deadline, "captions after the outage");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Down again, and vigil is stopped before it is back: that outage is
    // recorded too, up to the stop.
    server.stop();
    std::thread::sleep(Duration::from_secs(6));
    let stderr = serve.stop();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        said_reconnecting,
        "healthz said reconnecting during the outage"
    );
    assert!(
        listed_reconnecting,
        "GET /streams said reconnecting, with the last error, during the outage"
    );
    let records = read_records(&log);
    let starts: Vec<_> = events(&records)
        .filter(|e| e.kind == "stream_gap" && e.phase == Phase::Start)
        .filter(|e| e.labels.iter().any(|l| l == "reconnecting"))
        .collect();
    assert_eq!(starts.len(), 2, "one gap event for each outage: {starts:?}");
    let ended = |start: &vigil::record::EventRecord| -> Vec<_> {
        events(&records)
            .filter(|e| e.event == start.event && e.phase == Phase::End)
            .cloned()
            .collect()
    };
    let gaps = ended(starts[0]);
    assert_eq!(gaps.len(), 1, "the gap ended: {gaps:?}");
    let last = ended(starts[1]);
    assert_eq!(
        last.len(),
        1,
        "the outage under way at the stop ended: {last:?}"
    );
    // Seconds an event lasted.
    let span = |e: &vigil::record::EventRecord| {
        let end = e.end.unwrap_or(e.start);
        end.nanos().saturating_sub(e.start.nanos()) as f64 / SECOND as f64
    };
    assert!(
        (3.0..=12.0).contains(&span(&last[0])),
        "it lasts to the stop: {:?}",
        last[0]
    );
    assert!(
        (8.0..=30.0).contains(&span(&gaps[0])),
        "the gap spans the 10 s outage: {:?}",
        gaps[0]
    );
    let end = gaps[0].end.unwrap_or(Timestamp::MAX);
    let after = captions(&records).filter(|c| c.start >= end).count();
    assert!(after >= 2, "records flow again after the outage");
}

pub fn post(url: &str, body: &str) -> (u16, String) {
    post_as(url, "application/json", body)
}

/// A client that reads every status as an answer, each within 10 s.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn post_as(url: &str, content_type: &str, body: &str) -> (u16, String) {
    let agent = agent();
    let mut r = agent
        .post(url)
        .header("Content-Type", content_type)
        .send(body)
        .expect("POST");
    let status = r.status().as_u16();
    (status, r.body_mut().read_to_string().unwrap_or_default())
}

const HOP: f64 = 1.0;

/// Chunks a stream fused against those its stream time calls for.
fn on_course(s: &StreamEntry) -> f64 {
    if s.media_s <= 0.0 {
        0.0
    } else {
        s.chunks as f64 / (s.media_s / HOP)
    }
}

/// Eight cameras attached over the API, one at an address where nothing
/// listens: the seven others each process ≥ 90 % of the chunks their
/// stream time calls for, and their stream time keeps up with the wall
/// clock; the dead one reconnects on its own without touching them.
/// Detaching one leaves the others on course, and a restart of `vigil
/// serve` attaches the remaining ones again.
#[test]
fn cameras_attached_over_the_api_run_side_by_side_and_come_back_after_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let clip = h264_clip(dir.path());
    let server = RtspServer::start(&clip);
    let _anchor = server.keep_playing();
    let http = free_port();
    let pipeline = dir.path().join("serve.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
[sync]
hop = "1s"

[encoders.motion]
min_duration = "0s"

[fusion]
caption_span = "2s"

[sinks.jsonl]
[sinks.store]

[server]
listen = "127.0.0.1:{http}"
"#
        ),
    )
    .expect("pipeline");
    let out = dir.path().join("out");
    let serve = Serve::start(&pipeline, &out, http);
    let cam = format!("rtsp://127.0.0.1:{}/cam", server.port);
    let dead = format!("rtsp://127.0.0.1:{}/cam", free_port());
    // Half through `vigil attach`, half straight to the API.
    let mut attached_at = std::collections::BTreeMap::new();
    for i in 1..=7 {
        let name = format!("cam{i}");
        attached_at.insert(name.clone(), Instant::now());
        if i % 2 == 1 {
            let o = serve.cli(&["attach", &cam, "--name", &name, "--set", "retry_max=2s"]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        } else {
            let (code, body) = post(
                &serve.url("/streams"),
                &format!(r#"{{"name": "{name}", "uri": "{cam}", "retry_max": "2s"}}"#),
            );
            assert_eq!(code, 201, "{body}");
        }
        // One at a time: gst-rtsp-server 1.22 can abort (an assertion in
        // gst_rtsp_media_get_rates) when clients set up one shared media
        // all at once.
        let deadline = Instant::now() + Duration::from_secs(20);
        while serve.chunks(&name).unwrap_or(0) < 1 {
            assert!(Instant::now() < deadline, "{name} runs");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let (code, body) = post(
        &serve.url("/streams"),
        &format!(r#"{{"name": "dead", "uri": "{dead}", "retry_max": "2s"}}"#),
    );
    assert_eq!(code, 201, "{body}");
    // The same name twice is refused; so is an unknown option.
    let (code, body) = post(
        &serve.url("/streams"),
        &format!(r#"{{"name": "cam1", "uri": "{cam}"}}"#),
    );
    assert_eq!(code, 409, "{body}");
    let (code, body) = post(
        &serve.url("/streams"),
        &format!(r#"{{"name": "cam9", "uri": "{cam}", "colour": "red"}}"#),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("unknown field `colour`"), "{body}");

    std::thread::sleep(Duration::from_secs(20));
    let streams = serve.streams();
    assert_eq!(streams.len(), 8, "{streams:?}");
    for i in 1..=7 {
        let name = format!("cam{i}");
        let wall = attached_at[&name].elapsed().as_secs_f64();
        let s = &streams[&name];
        assert_eq!(s.state, "running", "{s:?}");
        // Connecting takes a moment; after it, stream time runs with the wall.
        assert!(
            s.media_s >= wall - 8.0,
            "cam{i}: {} s of stream time in {wall:.1} s: {s:?}",
            s.media_s
        );
        assert!(on_course(s) >= 0.9, "cam{i} fell behind: {s:?}");
        assert!(s.fps_in > 0.0, "{s:?}");
        // What it costs: some CPU, never more than the machine has.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        assert!(
            s.cpu_percent > 0.0 && s.cpu_percent <= 100.0 * cores,
            "{s:?}"
        );
        assert!(s.cpu_s > 0.0, "{s:?}");
    }
    let d = &streams["dead"];
    assert!(
        matches!(d.state.as_str(), "reconnecting" | "connecting"),
        "{d:?}"
    );
    assert_eq!(d.chunks, 0, "{d:?}");

    // Detach one: the others go on.
    let before = serve.streams();
    let o = serve.cli(&["detach", "cam4"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::thread::sleep(Duration::from_secs(8));
    let after = serve.streams();
    assert!(!after.contains_key("cam4"), "{after:?}");
    // Its metric series went with it; the others' stay.
    let metrics = ureq::get(&serve.url("/metrics"))
        .call()
        .expect("GET /metrics")
        .body_mut()
        .read_to_string()
        .expect("body");
    assert!(!metrics.contains("stream=\"cam4\""), "{metrics}");
    assert!(metrics.contains("stream=\"cam5\""), "{metrics}");
    for i in [1, 2, 3, 5, 6, 7] {
        let name = format!("cam{i}");
        let (b, a) = (&before[&name], &after[&name]);
        let more = a.chunks as f64 - b.chunks as f64;
        assert!(
            more >= 0.9 * 8.0 / HOP - 1.0,
            "{name}: {more} chunks in 8 s: {b:?} → {a:?}"
        );
        assert!(on_course(a) >= 0.9, "{name}: {a:?}");
    }
    let o = serve.cli(&["detach", "cam4"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no stream named `cam4`"));

    // What the streams recorded is in the store, through the API.
    let records = ureq::get(&serve.url("/events?kind=caption&stream=cam1"))
        .call()
        .expect("GET /events")
        .body_mut()
        .read_to_string()
        .expect("body");
    let captions = records.lines().count();
    assert!(captions >= 8, "{captions} captions of cam1 over ~28 s");

    let stderr = serve.stop();
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The detached stream ended cleanly: its last caption is in the log.
    let kept = std::fs::read_to_string(out.join("attached.json")).expect("attached.json");
    assert!(!kept.contains("\"cam4\""), "{kept}");

    // A restart attaches the seven kept streams again.
    let serve = Serve::start(&pipeline, &out, http);
    let names: Vec<String> = serve.streams().into_keys().collect();
    assert_eq!(
        names,
        ["cam1", "cam2", "cam3", "cam5", "cam6", "cam7", "dead"],
        "re-attached after a restart"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while serve.chunks("cam1").unwrap_or(0) < 3 {
        assert!(Instant::now() < deadline, "cam1 runs again");
        std::thread::sleep(Duration::from_millis(200));
    }
    serve.stop();
    drop(server);
}

/// A file attached over the API: its records are followed live over
/// Server-Sent Events, and requests that cannot work are refused with a
/// reason.
#[test]
fn records_of_an_attached_file_are_followed_live() {
    let dir = tempfile::tempdir().expect("tmp");
    let http = free_port();
    let pipeline = dir.path().join("serve.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
[encoders.motion]
min_duration = "0s"

[fusion]
caption_span = "2s"

[sinks.store]

[server]
listen = "127.0.0.1:{http}"
"#
        ),
    )
    .expect("pipeline");
    let serve = Serve::start(&pipeline, &dir.path().join("out"), http);
    let live = std::thread::spawn({
        let url = serve.url("/events/live?kind=caption");
        move || {
            use std::io::BufRead;
            let mut r = ureq::get(&url).call().expect("GET /events/live");
            let reader = std::io::BufReader::new(r.body_mut().as_reader());
            let mut captions = Vec::new();
            for line in reader.lines() {
                let Ok(line) = line else { break };
                if let Some(data) = line.strip_prefix("data: ") {
                    captions.push(serde_json::from_str::<Record>(data).expect("a record"));
                    if captions.len() == 5 {
                        break;
                    }
                }
            }
            captions
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let walk = shared("vtest.avi");
    let (code, body) = post(
        &serve.url("/streams"),
        &format!(r#"{{"name": "walk", "uri": "{}"}}"#, walk.display()),
    );
    assert_eq!(code, 201, "{body}");
    let (code, body) = post(
        &serve.url("/streams"),
        r#"{"name": "nothing", "uri": "/no/such/file.mp4"}"#,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("no such file"), "{body}");
    let (code, body) = post(
        &serve.url("/streams"),
        r#"{"name": "bad name", "uri": "x"}"#,
    );
    assert_eq!(code, 400, "{body}");
    let (code, body) = post(&serve.url("/streams"), "not json");
    assert_eq!(code, 400, "{body}");
    // What a web page could send unasked, and what could carry a secret of
    // the server's environment out, are refused; so is a foreign Host.
    let (code, body) = post_as(
        &serve.url("/streams"),
        "text/plain",
        r#"{"name": "x", "uri": "http://127.0.0.1:1/x"}"#,
    );
    assert_eq!(code, 415, "{body}");
    let (code, body) = post(
        &serve.url("/streams"),
        r#"{"name": "x", "uri": "http://127.0.0.1:1/${HOME}"}"#,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("VIGIL_CAM_"), "{body}");
    let agent = agent();
    let r = agent
        .get(serve.url("/streams"))
        .header("Host", "rebound.example:80")
        .call()
        .expect("GET");
    assert_eq!(r.status().as_u16(), 403);

    let captions = live.join().expect("the live reader");
    assert_eq!(captions.len(), 5);
    for (i, c) in captions.iter().enumerate() {
        let Record::Caption(c) = c else {
            panic!("a caption: {c:?}")
        };
        assert_eq!(c.stream, "walk");
        assert_eq!(c.start, Timestamp(2 * i as u64 * SECOND), "in order: {c:?}");
    }
    serve.stop();
}

/// Bound off loopback the API refuses to start without a token, and with
/// one refuses every request that does not carry it.
#[test]
fn off_loopback_the_api_wants_its_token() {
    let dir = tempfile::tempdir().expect("tmp");
    let http = free_port();
    let pipeline = dir.path().join("serve.toml");
    let write = |token: &str| {
        std::fs::write(
            &pipeline,
            format!(
                r#"
[encoders.motion]

[sinks.store]

[server]
listen = "0.0.0.0:{http}"
{token}
"#
            ),
        )
        .expect("pipeline")
    };
    write("");
    let o = vigil()
        .args(["serve"])
        .arg(&pipeline)
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .expect("vigil serve");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        stderr.contains("not a loopback address") && stderr.contains("token_env"),
        "{stderr}"
    );

    write(r#"token_env = "VIGIL_TEST_API_TOKEN""#);
    let serve = Serve::spawn(
        &pipeline,
        &dir.path().join("out"),
        http,
        &[("VIGIL_TEST_API_TOKEN", "s3cret-token-0123456789")],
    );
    let agent = agent();
    let status = |path: &str, token: Option<&str>| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut r = agent.get(serve.url(path));
            if let Some(t) = token {
                r = r.header("Authorization", format!("Bearer {t}"));
            }
            match r.call() {
                Ok(r) => return r.status().as_u16(),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(e) => panic!("no answer: {e}"),
            }
        }
    };
    for path in ["/streams", "/metrics", "/events"] {
        assert_eq!(status(path, None), 401, "{path} without the token");
        assert_eq!(
            status(path, Some("wrong")),
            401,
            "{path} with a wrong token"
        );
        assert_eq!(status(path, Some("s3cret-token-0123456789")), 200, "{path}");
    }
    // Off a cluster, /cluster says so, to those with the token only.
    assert_eq!(status("/cluster", None), 401);
    assert_eq!(status("/cluster", Some("s3cret-token-0123456789")), 404);
    // Probes carry no token: /healthz gives them its status alone, /livez
    // whether the process runs a pipeline.
    let clip = h264_clip(dir.path());
    let r = agent
        .post(serve.url("/streams"))
        .header("Authorization", "Bearer s3cret-token-0123456789")
        .header("Content-Type", "application/json")
        .send(format!(r#"{{"name": "x", "uri": "{}"}}"#, clip.display()))
        .expect("attached");
    assert_eq!(r.status(), 201);
    let body = |token: Option<&str>| {
        let mut r = agent.get(serve.url("/healthz"));
        if let Some(t) = token {
            r = r.header("Authorization", format!("Bearer {t}"));
        }
        let mut r = r.call().expect("/healthz");
        (
            r.status().as_u16(),
            r.body_mut().read_to_string().expect("body"),
        )
    };
    let (code, with) = body(Some("s3cret-token-0123456789"));
    assert!(with.contains(r#""x":"#), "{code} {with}");
    let (code, without) = body(None);
    assert!(
        without.contains(r#""status":"#) && !without.contains(r#""x":"#),
        "{code} {without}"
    );
    assert_eq!(status("/livez", None), 200);
    // vigil attach says what is missing.
    let o = serve.cli(&["attach", "x.mp4", "--name", "x"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("VIGIL_TOKEN"));
    let o = vigil()
        .args(["streams"])
        .env("VIGIL_SERVER", serve.url(""))
        .env("VIGIL_TOKEN", "s3cret-token-0123456789")
        .output()
        .expect("vigil streams");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("cpu %"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    serve.stop();
}

/// `SIGHUP` applies the pipeline file: a changed source restarts, a new one
/// starts, an unchanged one runs on untouched; a file that does not load is
/// refused and everything runs on.
#[test]
fn sighup_reloads_the_pipeline_and_leaves_unchanged_streams_running() {
    let dir = tempfile::tempdir().expect("tmp");
    let clip = h264_clip(dir.path());
    // Streams stop and start here while others play: each its own media
    // (CI once hung here, after clients came and went on a shared one).
    let server = RtspServer::start_unshared(&clip);
    let cam = format!("rtsp://127.0.0.1:{}/cam", server.port);
    let http = free_port();
    let pipeline = dir.path().join("serve.toml");
    let write = |sources: &str| {
        std::fs::write(
            &pipeline,
            format!(
                r#"
{sources}

[encoders.motion]

[sinks.jsonl]

[server]
listen = "127.0.0.1:{http}"
"#
            ),
        )
        .expect("pipeline")
    };
    let source = |name: &str, fps: u32| {
        format!("[[sources]]\nname = \"{name}\"\nuri = \"{cam}\"\nfps = {fps}\n")
    };
    write(&format!("{}{}", source("keep", 5), source("change", 5)));
    let out = dir.path().join("out");
    let serve = Serve::start(&pipeline, &out, http);
    let chunks = |name: &str| serve.chunks(name);
    let deadline = Instant::now() + Duration::from_secs(30);
    while chunks("keep").unwrap_or(0) < 4 || chunks("change").unwrap_or(0) < 4 {
        assert!(
            Instant::now() < deadline,
            "both streams run: {:?}",
            serve.streams()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let hup = |serve: &Serve| {
        let pid = serve.child.as_ref().expect("running").id().to_string();
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .expect("kill")
                .success()
        );
    };
    // A broken file is refused: both run on.
    std::fs::write(&pipeline, "[[sources]]\nname = 3\n").expect("broken");
    hup(&serve);
    std::thread::sleep(Duration::from_secs(2));
    let (keep0, change0) = (chunks("keep").unwrap_or(0), chunks("change").unwrap_or(0));
    assert!(keep0 >= 5 && change0 >= 5, "{:?}", serve.streams());

    write(&format!(
        "{}{}{}",
        source("keep", 5),
        source("change", 2),
        source("new", 5)
    ));
    hup(&serve);
    let deadline = Instant::now() + Duration::from_secs(30);
    while chunks("new").unwrap_or(0) < 3 {
        assert!(
            Instant::now() < deadline,
            "the new source starts: {:?}",
            serve.streams()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let streams = serve.streams();
    let (keep, change) = (streams["keep"].chunks, streams["change"].chunks);
    // The unchanged stream went on counting; the changed one started over.
    assert!(keep > keep0 + 2, "keep went on: {keep0} → {keep}");
    assert!(change < change0, "change restarted: {change0} → {change}");
    assert_eq!(streams["change"].state, "running", "{streams:?}");
    let stderr = serve.stop();
    assert!(stderr.contains("reload refused"), "{stderr}");
    assert!(
        stderr.contains("1 stream(s) stopped, 2 started"),
        "{stderr}"
    );
    // The restarted stream is a new run of it: (run, id) stays unique.
    let records = read_records(&out.join("events.jsonl"));
    let runs: std::collections::BTreeSet<&str> = records
        .iter()
        .filter(|r| r.stream() == "change")
        .map(Record::run)
        .collect();
    assert_eq!(runs.len(), 2, "{runs:?}");
    let mut ids = std::collections::HashSet::new();
    for r in &records {
        assert!(ids.insert((r.run(), r.id())), "twice: {r:?}");
    }
    drop(server);
}

/// A camera whose picture this machine cannot decode (its H.264 decoders
/// ranked out, as on a machine without them) and whose sound comes through:
/// the stream runs on the sound, `/streams` says `degraded` with why,
/// `/healthz` answers 503, and the failure is counted as a decode error.
#[test]
fn a_camera_whose_picture_cannot_be_decoded_is_degraded_and_says_why() {
    let dir = tempfile::tempdir().expect("tmp");
    let clip = h264_clip(dir.path());
    let server = RtspServer::start_with_tone(&clip);
    let http = free_port();
    let pipeline = dir.path().join("live.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
[[sources]]
name = "door"
uri = "rtsp://127.0.0.1:{}/cam"

[encoders.loudness]
threshold_db = -30.0
min_duration = "0s"

[fusion]
caption_span = "1s"

[sinks.jsonl]

[server]
listen = "127.0.0.1:{http}"
"#,
            server.port
        ),
    )
    .expect("pipeline");
    let out = dir.path().join("out");
    let serve = Serve::spawn(
        &pipeline,
        &out,
        http,
        &[("GST_PLUGIN_FEATURE_RANK", crate::clip::NO_H264_DECODER)],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let door = loop {
        let door = serve.streams().remove("door");
        if let Some(door) = door.as_ref().filter(|d| d.state == "degraded") {
            break door.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the stream is degraded: {door:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let reason = door.reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("video: no decoder on this machine takes its format (video/x-h264)")
            && reason.contains("the sound is analysed alone"),
        "{reason}"
    );
    let agent = agent();
    let mut health = agent
        .get(&serve.url("/healthz"))
        .call()
        .expect("GET /healthz");
    assert_eq!(health.status().as_u16(), 503);
    let body = health.body_mut().read_to_string().unwrap_or_default();
    let health: Health = serde_json::from_str(&body).expect("a health body");
    assert_eq!(health.status, "degraded", "{body}");
    assert_eq!(health.streams["door"], "degraded", "{body}");
    let metrics = ureq::get(&serve.url("/metrics"))
        .call()
        .expect("GET /metrics")
        .body_mut()
        .read_to_string()
        .unwrap_or_default();
    assert!(
        metrics.lines().any(|l| l.starts_with("vigil_errors_total")
            && l.contains("kind=\"decode\"")
            && l.contains("stream=\"door\"")),
        "{metrics}"
    );
    // The sound is analysed all the while: the tone is loud.
    let log = out.join("events.jsonl");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !events(&read_records(&log)).any(|e| e.kind == "loud_sound") {
        assert!(Instant::now() < deadline, "the tone is heard");
        std::thread::sleep(Duration::from_millis(200));
    }
    let still = serve.streams().remove("door");
    assert!(
        still.as_ref().is_some_and(|d| d.state == "degraded"),
        "{still:?}"
    );
    serve.stop();
}

/// `GET path` over a plain connection, sent as it is (no client tidies
/// the path): the status code and the body.
fn raw_get(port: u16, path: &str, extra: &str) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra}\r\n"
    )
    .expect("send");
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).expect("read");
    let head_end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&answer[..head_end]).into_owned();
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status");
    (code, answer[head_end + 4..].to_vec())
}

/// The snapshots and clips records name are served, with byte ranges for
/// seeking; nothing else is, whatever the path says.
#[test]
fn media_is_served_with_ranges_and_nothing_outside_the_media_folders() {
    let dir = tempfile::tempdir().expect("tmp");
    let http = free_port();
    let pipeline = dir.path().join("serve.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
[encoders.motion]
min_duration = "0s"

[snapshots]
kinds = ["motion"]

[recording]
kinds = ["motion"]
pre_roll = "1s"
post_roll = "1s"

[sinks.store]

[server]
listen = "127.0.0.1:{http}"
"#
        ),
    )
    .expect("pipeline");
    let out = dir.path().join("out");
    let serve = Serve::start(&pipeline, &out, http);
    let bikes = shared("bikes.mp4");
    let (code, body) = post(
        &serve.url("/streams"),
        &format!(r#"{{"name": "bikes", "uri": "{}"}}"#, bikes.display()),
    );
    assert_eq!(code, 201, "{body}");
    // The stream ends with its file (10 s): its motion event, its clip.
    let deadline = Instant::now() + Duration::from_secs(60);
    let clip = loop {
        let db = out.join("events.db");
        let named: Option<(String, String)> = rusqlite::Connection::open(&db).ok().and_then(|c| {
            c.query_row(
                "SELECT clip, snapshot FROM records WHERE kind = 'motion' AND phase = 'end' AND clip IS NOT NULL",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ok()
        });
        if let Some((clip, snapshot)) = named
            && out.join(&clip).is_file()
        {
            break (clip, snapshot);
        }
        assert!(Instant::now() < deadline, "the clip of bikes.mp4's motion");
        std::thread::sleep(Duration::from_millis(200));
    };
    let (clip, snapshot) = clip;
    let bytes = std::fs::read(out.join(&clip)).expect("the clip");
    let (code, got) = raw_get(http, &format!("/media/{clip}"), "");
    assert_eq!(code, 200);
    assert_eq!(got, bytes, "the clip, whole");
    let r = ureq::get(&serve.url(&format!("/media/{clip}")))
        .header("Range", "bytes=100-199")
        .call()
        .expect("a range");
    assert_eq!(r.status().as_u16(), 206);
    let range = r
        .headers()
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(range, format!("bytes 100-199/{}", bytes.len()));
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("video/mp4")
    );
    let part = r.into_body().read_to_vec().expect("body");
    assert_eq!(part, &bytes[100..200]);
    let (code, picture) = raw_get(http, &format!("/media/{snapshot}"), "");
    assert_eq!(code, 200);
    assert_eq!(
        picture,
        std::fs::read(out.join(&snapshot)).expect("snapshot")
    );
    // Links inside a media folder lead nowhere.
    std::os::unix::fs::symlink("/etc/passwd", out.join("clips/passwd.mp4")).expect("link");
    std::os::unix::fs::symlink("/etc", out.join("clips/etc")).expect("link");
    for (path, want) in [
        ("/media/events.db", 404),
        ("/media/clips/../events.db", 400),
        ("/media/clips/%2E%2E/events.db", 400),
        ("/media/clips%2F..%2Fevents.db", 400),
        ("/media/clips/.%2Fbikes", 400),
        ("/media/clips/passwd.mp4", 400),
        ("/media/clips/etc/passwd", 400),
        ("/media/snapshots/nothing.jpg", 404),
        ("/media/clips/", 400),
    ] {
        let (code, body) = raw_get(http, path, "");
        assert_eq!(code, want, "{path}: {}", String::from_utf8_lossy(&body));
        assert!(
            !String::from_utf8_lossy(&body).contains("root:"),
            "{path} leaked a file"
        );
    }
    serve.stop();
}

/// A camera that hangs with its connection open (its server stops
/// answering, its media still flowing): `vigil serve` still stops on
/// SIGTERM (within [`Serve::stop`]'s minute), every event of the camera
/// that started ended. (Taking its RTSP client down does not wait on the
/// hung server here; a client that does is left behind after 10 s, its
/// records all written: `TEARDOWN_WAIT` in `src/graph.rs`.)
#[test]
fn serve_stops_while_a_camera_hangs_with_every_event_closed() {
    let dir = tempfile::tempdir().expect("tmp");
    let clip = h264_clip(dir.path());
    let server = RtspServer::start(&clip);
    let http = free_port();
    let pipeline = dir.path().join("hang.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
[[sources]]
name = "door"
uri = "rtsp://127.0.0.1:{}/cam"

[encoders.motion]
min_duration = "0s"

[sinks.jsonl]

[server]
listen = "127.0.0.1:{http}"
"#,
            server.port
        ),
    )
    .expect("pipeline");
    let out = dir.path().join("out");
    let serve = Serve::start(&pipeline, &out, http);
    let log = out.join("events.jsonl");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !events(&read_records(&log)).any(|e| e.kind == "motion" && e.phase == Phase::Start) {
        assert!(
            Instant::now() < deadline,
            "motion at the door: {:?}",
            serve.streams()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    server.freeze(Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    let stderr = serve.stop();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let records = read_records(&log);
    if let Err(problem) = crate::run::lifecycles_closed(&records) {
        panic!("{problem}");
    }
    drop(server);
}
