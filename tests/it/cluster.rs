//! The cluster's buckets on a real nats-server with JetStream: the wanted
//! cameras, heartbeats that lapse, and leases that only one node holds at a
//! time, renewed at their revision and free one lease period after their
//! holder stops.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use vigil::cluster::buckets::{Beat, Buckets, Held};

use crate::brokers::NatsServer;
use crate::support::{RtspServer, Serving};

const LEASE: Duration = Duration::from_secs(2);

async fn open(url: &str) -> Buckets {
    open_as(url, None).await
}

/// The buckets, with `token` when the server wants one.
async fn open_as(url: &str, token: Option<&str>) -> Buckets {
    let options = match token {
        Some(t) => async_nats::ConnectOptions::with_token(t.into()),
        None => async_nats::ConnectOptions::new(),
    };
    let client = options.connect(url).await.expect("NATS");
    let js = async_nats::jetstream::new(client);
    Buckets::open(&js, LEASE, LEASE, 1)
        .await
        .expect("the buckets")
}

/// Polls `take` until it succeeds: how long that took.
async fn taken_after(b: &Buckets, camera: &str, node: &str, limit: Duration) -> (u64, Duration) {
    let started = Instant::now();
    loop {
        if let Some(rev) = b.take(camera, node).await.expect("asked") {
            return (rev, started.elapsed());
        }
        assert!(
            started.elapsed() < limit,
            "{camera} still held after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An RTSP server with a live camera (a ball, 160×120 at 5 fps) at
/// `/NAME` for each of `names`.
pub fn ball_cameras<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> RtspServer {
    let ball = "videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=160,height=120,framerate=5/1 ! rtpvrawpay name=pay0 pt=96";
    RtspServer::serve(Serving {
        mounts: names
            .into_iter()
            .map(|n| (format!("/{}", n.as_ref()), ball.to_string()))
            .collect(),
        port: crate::live::free_port(),
        tls: None,
        shared: true,
    })
    .expect("the RTSP server")
}

#[test]
fn leases_are_held_by_one_node_renewed_at_their_revision_and_run_out() {
    let nats = NatsServer::start(&[]);
    let url = nats.url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // Two nodes, each with its own connection.
        let a = open(&url).await;
        let b = open(&url).await;

        // The wanted set, written by one, read by the other.
        a.want(
            "cam1",
            &serde_json::json!({"name": "cam1", "uri": "rtsp://x/1"}),
        )
        .await
        .expect("wanted");
        a.want(
            "cam2",
            &serde_json::json!({"name": "cam2", "uri": "rtsp://x/2"}),
        )
        .await
        .expect("wanted");
        let cams = b.cameras().await.expect("read");
        assert_eq!(cams.keys().collect::<Vec<_>>(), ["cam1", "cam2"]);
        assert_eq!(cams["cam2"]["uri"], "rtsp://x/2");
        assert!(b.unwant("cam2").await.expect("deleted"));
        assert!(!b.unwant("cam2").await.expect("asked"));
        assert_eq!(a.cameras().await.expect("read").len(), 1);

        // One holder.
        let rev = a.take("cam1", "a").await.expect("asked").expect("free");
        assert_eq!(b.take("cam1", "b").await.expect("asked"), None);
        let leases = b.leases().await.expect("read");
        assert_eq!(leases["cam1"].held.node, "a");
        assert_eq!(leases["cam1"].revision, rev);
        let as_a = leases["cam1"].held.clone();

        // Renewed at its revision, and only there: renewing keeps it past
        // a lease period.
        let mut held = rev;
        let renewing = Instant::now();
        let mut renewed = renewing;
        while renewing.elapsed() < LEASE * 2 {
            held = a
                .renew("cam1", &as_a, held)
                .await
                .expect("asked")
                .expect("still held");
            renewed = Instant::now();
            tokio::time::sleep(LEASE / 3).await;
        }
        assert_eq!(b.take("cam1", "b").await.expect("asked"), None);
        assert_eq!(
            b.renew("cam1", &Held::by("b"), rev).await.expect("asked"),
            None,
            "a stale revision"
        );

        // Its holder stops renewing: free one lease period after its last
        // renewal, not before (but for the time the renewal's answer took
        // to come back).
        let (taken, _) = taken_after(&b, "cam1", "b", LEASE * 4).await;
        let after = renewed.elapsed();
        assert!(
            after >= LEASE - Duration::from_millis(100),
            "free {after:?} after the last renewal, before the lease ran out"
        );
        assert!(
            after <= LEASE + Duration::from_secs(3),
            "free only after {after:?}"
        );
        // The old holder's renewal fails: it knows it lost the camera.
        assert_eq!(a.renew("cam1", &as_a, held).await.expect("asked"), None);
        assert_eq!(a.leases().await.expect("read")["cam1"].held.node, "b");

        // Handed on at its revision (by the node it goes to, saying when),
        // then released at once.
        let to_a = a
            .hand_on("cam1", "b", "a", 1_234, taken)
            .await
            .expect("asked")
            .expect("handed on");
        let lease = b.lease("cam1").await.expect("read").expect("held");
        assert_eq!(lease.held.node, "a");
        assert_eq!(lease.held.from.as_deref(), Some("b"));
        assert_eq!(lease.held.at_ms, Some(1_234));
        assert_eq!(lease.revision, to_a);
        assert!(
            !b.release("cam1", taken).await.expect("asked"),
            "b no longer holds it"
        );
        assert!(a.release("cam1", to_a).await.expect("released"));
        assert!(b.leases().await.expect("read").is_empty());
        let (_, waited) = taken_after(&b, "cam1", "b", LEASE).await;
        assert!(
            waited < LEASE / 2,
            "free at once after a release: {waited:?}"
        );

        // Heartbeats lapse by themselves.
        a.beat(
            "a",
            &Beat {
                capacity: 2,
                ..Beat::default()
            },
        )
        .await
        .expect("beat");
        b.beat(
            "b",
            &Beat {
                capacity: 1,
                api: Some("127.0.0.1:1".into()),
                refused: [("cam9".to_string(), "no such file".to_string())].into(),
            },
        )
        .await
        .expect("beat");
        let nodes = a.nodes().await.expect("read");
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes["a"].capacity, 2);
        assert_eq!(nodes["b"].refused["cam9"], "no such file");
        assert!(nodes["a"].refused.is_empty());
        let lapse = Instant::now();
        loop {
            b.beat(
                "b",
                &Beat {
                    capacity: 1,
                    ..Beat::default()
                },
            )
            .await
            .expect("beat");
            let nodes = b.nodes().await.expect("read");
            if !nodes.contains_key("a") {
                assert!(nodes.contains_key("b"), "b beats on");
                break;
            }
            assert!(
                lapse.elapsed() < LEASE + Duration::from_secs(3),
                "a's beat lapses"
            );
            tokio::time::sleep(LEASE / 4).await;
        }
    });
}

/// Two `vigil serve` nodes on one nats-server that wants a token (the
/// nodes use `[sinks.nats]`'s, from a file), six live cameras attached
/// through one node's API and one in both nodes' pipeline file (which goes
/// to the bucket unexpanded): each runs on exactly one node; one node killed
/// (`kill -9`), its cameras run on the other within a lease and 5 s; a
/// camera detached stops wherever it ran. Home Assistant (MQTT discovery)
/// is told of every camera the cluster wants, whichever node runs it, and
/// forgets the one detached.
#[test]
fn cameras_spread_over_the_nodes_and_move_when_a_node_dies() {
    use crate::serve::{Serve, post};

    const CAMERAS: usize = 6;
    // And the file's.
    const RUNNING: usize = CAMERAS + 1;
    const TOKEN: &str = "cluster-s3cret";
    let nats = NatsServer::start(&["--auth", TOKEN]);
    let broker = crate::brokers::Mosquitto::start();
    let rtsp = ball_cameras((0..CAMERAS).map(|i| format!("cam{i}")));
    let dir = tempfile::tempdir().expect("tmp");
    let token_file = dir.path().join("nats-token");
    std::fs::write(&token_file, TOKEN).expect("token file");
    let node = |name: &str| {
        let http = crate::live::free_port();
        let pipeline = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &pipeline,
            format!(
                r#"
[[sources]]
name = "filecam"
uri = "rtsp://${{VIGIL_CAM_HOST:-127.0.0.1}}:{}/cam0"
latency = "100ms"

[encoders.motion]
min_duration = "0s"

[snapshots]
kinds = ["motion"]

[sinks.store]

[sinks.nats]
url = "{url}"
token_file = "{token}"

[sinks.mqtt]
url = "mqtt://127.0.0.1:{mqtt}"
discovery = true

[server]
listen = "127.0.0.1:{http}"

[cluster]
url = "{url}"
node = "{name}"
lease = "3s"
"#,
                rtsp.port,
                url = nats.url(),
                token = token_file.display(),
                mqtt = broker.port,
            ),
        )
        .expect("pipeline");
        Serve::start(&pipeline, &dir.path().join(name), http)
    };
    let a = node("a");
    let mut b = Some(node("b"));
    for i in 0..CAMERAS {
        let (code, body) = post(
            &a.url("/streams"),
            &format!(
                r#"{{"name": "cam{i}", "uri": "rtsp://127.0.0.1:{}/cam{i}", "latency": "100ms"}}"#,
                rtsp.port
            ),
        );
        assert_eq!(code, 201, "{body}");
    }
    // The same name again is refused, by the cluster.
    let (code, body) = post(
        &a.url("/streams"),
        &format!(
            r#"{{"name": "cam0", "uri": "rtsp://127.0.0.1:{}/cam0"}}"#,
            rtsp.port
        ),
    );
    assert_eq!(code, 409, "{body}");

    // The file's camera is in the bucket as the file writes it.
    let wanted = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let b = open_as(&nats.url(), Some(TOKEN)).await;
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let wanted = b.cameras().await.expect("read");
                if wanted.len() == RUNNING {
                    break wanted;
                }
                assert!(
                    Instant::now() < deadline,
                    "the file's camera is wanted: {wanted:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    let uri = wanted["filecam"]["uri"].as_str().unwrap_or_default();
    assert!(uri.contains("${VIGIL_CAM_HOST:-127.0.0.1}"), "{uri}");

    let running = |s: &Serve| -> Vec<String> {
        s.streams()
            .into_values()
            .filter(|e| e.state == "running")
            .map(|e| e.name)
            .collect()
    };
    // Each camera on exactly one node, both nodes with some.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (on_a, on_b) = loop {
        let on_a = running(&a);
        let on_b = running(b.as_ref().expect("b"));
        let mut all: Vec<&String> = on_a.iter().chain(&on_b).collect();
        all.sort();
        all.dedup();
        if all.len() == RUNNING && on_a.len() + on_b.len() == RUNNING {
            break (on_a, on_b);
        }
        assert!(
            Instant::now() < deadline,
            "every camera runs on one node: a {on_a:?}, b {on_b:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(
        !on_a.is_empty() && !on_b.is_empty(),
        "a {on_a:?}, b {on_b:?}"
    );
    // Home Assistant's configs, retained now.
    let announced = || -> BTreeSet<String> {
        let sub = crate::brokers::MqttSubscriber::new(broker.port, "homeassistant/#", None);
        std::thread::sleep(Duration::from_millis(700));
        sub.messages()
            .into_iter()
            .filter(|m| m.retain && !m.bytes.is_empty())
            .filter_map(|m| {
                m.topic
                    .strip_prefix("homeassistant/sensor/vigil/")
                    .and_then(|t| t.strip_suffix("_caption/config"))
                    .map(str::to_owned)
            })
            .collect()
    };
    // Each node's MQTT status is its own.
    let statuses = {
        let sub = crate::brokers::MqttSubscriber::new(broker.port, "vigil/status/#", None);
        std::thread::sleep(Duration::from_millis(700));
        let mut got: Vec<(String, String)> = sub
            .messages()
            .into_iter()
            .filter(|m| m.retain)
            .map(|m| (m.topic, String::from_utf8_lossy(&m.bytes).into_owned()))
            .collect();
        got.sort();
        got
    };
    assert_eq!(
        statuses,
        [
            ("vigil/status/a".to_string(), "online".to_string()),
            ("vigil/status/b".to_string(), "online".to_string())
        ],
        "one status per node, and none shared"
    );
    let every: BTreeSet<String> = on_a.iter().chain(&on_b).cloned().collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while announced() != every {
        assert!(
            Instant::now() < deadline,
            "Home Assistant is told of every camera: {:?}",
            announced()
        );
    }

    asked_on_one_node_the_whole_cluster_answers(&a, b.as_ref().expect("b"), &on_b);
    every_camera_is_seen_through_one_node(&a, &on_a, &on_b);

    // b dies: its cameras run on a within a lease and 5 s.
    let killed = Instant::now();
    drop(b.take());
    let deadline = killed + Duration::from_secs(3 + 5);
    loop {
        let on_a = running(&a);
        if on_a.len() == RUNNING {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "b's cameras {on_b:?} run on a within lease + 5 s: a has {on_a:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!(
        "cluster: b's {} cameras ran on a {:.1} s after kill -9",
        on_b.len(),
        killed.elapsed().as_secs_f64()
    );

    // Detached through the API: it stops.
    let gone = &on_b[0];
    let r = ureq::delete(&a.url(&format!("/streams/{gone}")))
        .call()
        .expect("detached");
    assert_eq!(r.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.streams().get(gone).is_some_and(|e| e.state == "running") {
        assert!(Instant::now() < deadline, "{gone} stops");
        std::thread::sleep(Duration::from_millis(250));
    }
    // Home Assistant forgets it, and only it: b's other cameras, which
    // moved, keep their entities.
    let mut rest = every.clone();
    rest.remove(gone);
    let deadline = Instant::now() + Duration::from_secs(15);
    while announced() != rest {
        assert!(
            Instant::now() < deadline,
            "Home Assistant forgets {gone} only: {:?}",
            announced()
        );
    }
}

/// `/search` on node a answers from both nodes' stores, each answer naming
/// its node (`from=node`: a's alone), and b's snapshots are served through
/// a's `/media`, ranges included.
fn asked_on_one_node_the_whole_cluster_answers(
    a: &crate::serve::Serve,
    b: &crate::serve::Serve,
    on_b: &[String],
) {
    use vigil::search::Answers;
    let ask = "/search?q=motion&mode=words&top=100";
    let deadline = Instant::now() + Duration::from_secs(30);
    let answers = loop {
        let got: Option<Answers> = a.get(ask);
        let nodes: BTreeSet<&str> = got
            .iter()
            .flat_map(|g| &g.answers)
            .filter_map(|x| x.node.as_deref())
            .collect();
        let b_snapshot = got
            .iter()
            .flat_map(|g| &g.answers)
            .any(|x| x.node.as_deref() == Some("b") && x.snapshot.is_some());
        if nodes == BTreeSet::from(["a", "b"]) && b_snapshot {
            break got.expect("answers");
        }
        assert!(
            Instant::now() < deadline,
            "answers of both nodes, a snapshot of b's among them: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let of_b: Vec<_> = answers
        .answers
        .iter()
        .filter(|x| x.node.as_deref() == Some("b"))
        .collect();
    for x in &of_b {
        assert!(
            on_b.contains(&x.stream),
            "b answered of {}: {x:?}",
            x.stream
        );
    }
    // Asked for its own, a answers from its own store: none of b's runs.
    let local: Answers = a.get(&format!("{ask}&from=node")).expect("a's own answers");
    let b_runs: BTreeSet<&str> = of_b.iter().map(|x| x.run.as_str()).collect();
    assert!(
        local
            .answers
            .iter()
            .all(|x| x.node.is_none() && !b_runs.contains(x.run.as_str())),
        "a's own: {local:?}"
    );
    // b's snapshot through a: the same JPEG b serves; from a alone, none.
    let snapshot = of_b
        .iter()
        .find_map(|x| x.snapshot.clone())
        .expect("a snapshot of b's");
    let fetch = |url: String, range: Option<&str>| {
        let agent = crate::serve::agent();
        let mut r = agent.get(&url);
        if let Some(range) = range {
            r = r.header("Range", range);
        }
        let mut r = r.call().expect("GET");
        let ty = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = r.body_mut().read_to_vec().expect("body");
        (r.status().as_u16(), ty, body)
    };
    let (code, ty, through_a) = fetch(a.url(&format!("/media/{snapshot}")), None);
    assert_eq!((code, ty.as_str()), (200, "image/jpeg"), "{snapshot}");
    let (_, _, on_b_itself) = fetch(b.url(&format!("/media/{snapshot}")), None);
    assert!(through_a.starts_with(&[0xff, 0xd8]) && through_a == on_b_itself);
    let (code, _, part) = fetch(a.url(&format!("/media/{snapshot}")), Some("bytes=2-11"));
    assert_eq!((code, part.as_slice()), (206, &through_a[2..12]));
    let (code, _, _) = fetch(a.url(&format!("/media/{snapshot}?from=node")), None);
    assert_eq!(code, 404, "a has no {snapshot} of its own");
}

/// `/streams?from=cluster` on a lists every node's streams with its node
/// (plain `/streams`, a's own), and the live picture of a camera b runs
/// comes through a, as the console's Live page shows it.
fn every_camera_is_seen_through_one_node(
    a: &crate::serve::Serve,
    on_a: &[String],
    on_b: &[String],
) {
    use vigil::server::api::StreamEntry;
    let listed: Vec<StreamEntry> = a
        .get("/streams?from=cluster")
        .expect("the cluster's streams");
    let node_of = |name: &String| {
        listed
            .iter()
            .find(|e| &e.name == name)
            .and_then(|e| e.node.clone())
    };
    for (node, names) in [("a", on_a), ("b", on_b)] {
        for name in names {
            assert_eq!(node_of(name).as_deref(), Some(node), "{name}: {listed:?}");
        }
    }
    assert!(
        a.streams().keys().all(|n| on_a.contains(n))
            && a.streams().values().all(|e| e.node.is_none()),
        "plain /streams is a's own"
    );
    let cam = &on_b[0];
    let deadline = Instant::now() + Duration::from_secs(20);
    let frame: serde_json::Value = loop {
        if let Some(f) = a.get(&format!("/streams/{cam}/live")) {
            break f;
        }
        assert!(Instant::now() < deadline, "{cam}'s live frame through a");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(frame["stream"], cam.as_str(), "{frame}");
    let agent = crate::serve::agent();
    let mut r = agent
        .get(&a.url(&format!("/streams/{cam}/live.jpg")))
        .call()
        .expect("live.jpg");
    assert_eq!(r.status().as_u16(), 200);
    let jpeg = r.body_mut().read_to_vec().expect("body");
    assert!(jpeg.starts_with(&[0xff, 0xd8]), "a JPEG");
    let r = agent
        .get(&a.url(&format!("/streams/{cam}/live?from=node")))
        .call()
        .expect("live");
    assert_eq!(r.status().as_u16(), 404, "a runs no {cam} of its own");
}

/// A camera one node cannot start (here: its URI names a variable only
/// the other node has, as when credentials are given to some nodes) is
/// refused there before its lease is touched, said in that node's
/// heartbeat, and run by the other node, where it stays while the refusing
/// node tries again now and then; the cameras it can run are spread as
/// before.
#[test]
fn a_camera_a_node_cannot_start_runs_on_another_and_stays_there() {
    use std::collections::BTreeMap;

    use vigil::cluster::place;

    use crate::serve::{Serve, post};

    let two: Vec<place::Node> = ["a", "b"]
        .iter()
        .map(|n| place::Node {
            name: (*n).into(),
            capacity: 1,
            ..place::Node::default()
        })
        .collect();
    let owner = |c: &str| place::owner(c, &two).expect("an owner").name.clone();
    let names: Vec<String> = (0..20).map(|i| format!("cam{i}")).collect();
    let of = |node: &str, n: usize| -> Vec<String> {
        names
            .iter()
            .filter(|c| owner(c) == node)
            .take(n)
            .cloned()
            .collect()
    };
    // Two cameras b cannot run though they belong on b; one plain camera
    // on each node.
    let secret = of("b", 3);
    let (secret, plain_b) = (secret[..2].to_vec(), secret[2].clone());
    let plain_a = of("a", 1)[0].clone();

    let nats = NatsServer::start(&[]);
    let rtsp = ball_cameras(&names);
    let dir = tempfile::tempdir().expect("tmp");
    let node = |name: &str, env: &[(&str, &str)]| {
        let http = crate::live::free_port();
        let pipeline = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &pipeline,
            format!(
                r#"
[encoders.motion]
min_duration = "0s"

[sinks.store]

[server]
listen = "127.0.0.1:{http}"

[cluster]
url = "{url}"
node = "{name}"
lease = "3s"
"#,
                url = nats.url(),
            ),
        )
        .expect("pipeline");
        let mut env = env.to_vec();
        env.push(("VIGIL_LOG", "warn,vigil::cluster=info"));
        Serve::start_with(&pipeline, &dir.path().join(name), http, &env)
    };
    let a = node("a", &[("VIGIL_CAM_HOST", "127.0.0.1")]);
    let b = node("b", &[]);
    for (camera, host) in secret
        .iter()
        .map(|c| (c, "${VIGIL_CAM_HOST}"))
        .chain([(&plain_a, "127.0.0.1"), (&plain_b, "127.0.0.1")])
    {
        let (code, body) = post(
            &a.url("/streams"),
            &format!(
                r#"{{"name": "{camera}", "uri": "rtsp://{host}:{}/{camera}", "latency": "100ms"}}"#,
                rtsp.port
            ),
        );
        assert_eq!(code, 201, "{camera}: {body}");
    }
    let running = |s: &Serve| -> BTreeSet<String> {
        s.streams()
            .into_values()
            .filter(|e| e.state == "running")
            .map(|e| e.name)
            .collect()
    };
    let placed = || -> BTreeMap<String, &'static str> {
        let mut p = BTreeMap::new();
        for c in running(&a) {
            p.insert(c, "a");
        }
        for c in running(&b) {
            p.insert(c, "b");
        }
        p
    };
    let want: BTreeMap<String, &'static str> = secret
        .iter()
        .map(|c| (c.clone(), "a"))
        .chain([(plain_a.clone(), "a"), (plain_b.clone(), "b")])
        .collect();
    let deadline = Instant::now() + Duration::from_secs(45);
    while placed() != want {
        assert!(
            Instant::now() < deadline,
            "the cameras b cannot run run on a, the others where they belong: {:?}, want {want:?}\nb logged:\n{}",
            placed(),
            b.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // `vigil streams` says where each runs, and why b does not run them.
    let out = a.cli(&["streams"]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{table}");
    for c in &secret {
        let row = table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(c.as_str()))
            .unwrap_or_else(|| panic!("{c} in:\n{table}"));
        assert!(
            row.contains(" a ") && row.contains("running") && row.contains("refused by b"),
            "{row}"
        );
        assert!(row.contains("VIGIL_CAM_HOST"), "{row}");
    }
    assert!(
        b.log().contains("cannot run here"),
        "b says why:\n{}",
        b.log()
    );

    // Over b's tries again (every ten rounds of a third of a lease), the
    // cameras stay on a, without a gap.
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(15) {
        assert_eq!(placed(), want, "the cameras stay where they are");
        std::thread::sleep(Duration::from_millis(250));
    }
    let out = crate::run::vigil()
        .args(["events", "--db"])
        .arg(dir.path().join("a").join("events.db"))
        .args(["--kind", "stream_gap"])
        .output()
        .expect("vigil events");
    assert!(out.status.success());
    let gaps = String::from_utf8_lossy(&out.stdout).into_owned();
    for c in &secret {
        assert!(
            !gaps.contains(&format!("\"stream\":\"{c}\"")),
            "{c} had no gap on a: {gaps}"
        );
    }
    assert!(
        b.log().matches("cannot run here").count() >= 2 * secret.len(),
        "b tried again:\n{}",
        b.log()
    );
}

/// A cluster over TLS: NATS with a certificate a private CA signed. A node
/// whose `[sinks.nats]` trusts that CA (`ca_file`) joins and runs the
/// camera; a node that does not trust it cannot reach NATS, says so, and
/// runs nothing.
#[test]
fn a_cluster_over_tls_trusts_its_ca_file_and_no_other_certificate() {
    use crate::serve::{Serve, post};

    let dir = tempfile::tempdir().expect("tmp");
    crate::live::private_ca(dir.path());
    let cert = dir.path().join("srv.pem");
    let key = dir.path().join("srv.key");
    let nats = NatsServer::start(&[
        "--tls",
        "--tlscert",
        &cert.display().to_string(),
        "--tlskey",
        &key.display().to_string(),
    ]);
    let url = format!("tls://127.0.0.1:{}", nats.port);
    let rtsp = ball_cameras(["cam0"]);
    let node = |name: &str, ca: Option<&std::path::Path>| {
        let http = crate::live::free_port();
        let pipeline = dir.path().join(format!("{name}.toml"));
        let trust = ca.map_or(String::new(), |ca| {
            format!("ca_file = \"{}\"\n", ca.display())
        });
        std::fs::write(
            &pipeline,
            format!(
                r#"
[encoders.motion]
min_duration = "0s"

[sinks.store]

[sinks.nats]
url = "{url}"
{trust}
[server]
listen = "127.0.0.1:{http}"

[cluster]
url = "{url}"
node = "{name}"
lease = "3s"
"#
            ),
        )
        .expect("pipeline");
        Serve::start(&pipeline, &dir.path().join(name), http)
    };
    let a = node("a", Some(&dir.path().join("ca.pem")));
    let b = node("b", None);
    let (code, body) = post(
        &a.url("/streams"),
        &format!(
            r#"{{"name": "cam0", "uri": "rtsp://127.0.0.1:{}/cam0", "latency": "100ms"}}"#,
            rtsp.port
        ),
    );
    assert_eq!(code, 201, "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while a.streams().get("cam0").is_none_or(|e| e.state != "running") {
        assert!(
            Instant::now() < deadline,
            "a runs cam0 over TLS:\n{}",
            a.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // b cannot trust NATS's certificate: over a lease and more of its
    // tries it runs nothing, and the cluster as a sees it over TLS is one
    // node, a, holding cam0.
    std::thread::sleep(Duration::from_secs(4));
    assert!(b.streams().is_empty(), "{:?}", b.streams());
    let view: serde_json::Value = a.get("/cluster").expect("GET /cluster");
    assert_eq!(view["cameras"][0]["node"], "a", "{view}");
    assert_eq!(
        view["nodes"]
            .as_object()
            .map(|n| n.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["a".to_string()]),
        "b never joined: {view}"
    );
    let said = b.log();
    assert!(
        said.contains("cannot connect to NATS")
            && said.contains(&url)
            && said.contains("UnknownIssuer")
            && said.contains("ca_file"),
        "b says it cannot reach NATS:\n{said}"
    );
    // And a's records reach JetStream over TLS.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = ureq::get(&a.url("/metrics"))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .unwrap_or_default();
        let delivered = metrics.lines().any(|l| {
            l.starts_with("vigil_delivered_total{")
                && l.contains("sink=\"nats\"")
                && l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) > Some(0.0)
        });
        if delivered {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a delivers to JetStream over TLS:\n{}",
            metrics
                .lines()
                .filter(|l| l.contains("sink"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
