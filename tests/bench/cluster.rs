//! The cluster as it grows from one node to three, on this one machine:
//! BENCH_CLUSTER_CAMERAS live cameras (default 12, 320x240 at 5 fps from a
//! local RTSP server) attached to node 1; node 2 joins, then node 3; then
//! node 3 is killed (`kill -9`). For each step: the cameras on each node,
//! how long the cluster took to settle (every camera running on the node
//! rendezvous hashing gives it, exactly once), and each node's CPU over
//! BENCH_CLUSTER_SAMPLE_SECS (default 10).
//!
//!   cargo bench --bench cluster     (tests/bench/run.sh runs it, unless
//!                                    BENCH_SKIP_CLUSTER=1)
//!
//! Lease 6 s (renewed every 2 s), max_moves 2 per lease. One nats-server,
//! started here. Prints a Markdown section for BENCHMARKS.md; the nodes'
//! folders and logs are left in bench-out/cluster/.

#[path = "../support/rtsp.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{RtspServer, Serving, free_port};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const LEASE_S: u64 = 6;
const NODES: [&str; 3] = ["n1", "n2", "n3"];

fn main() {
    if let Err(e) = bench() {
        eprintln!("cluster bench: {e}");
        std::process::exit(1);
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Node {
    name: &'static str,
    http: u16,
    pipeline: PathBuf,
    out: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn start(&mut self) -> Res<()> {
        let log = std::fs::File::create(self.out.with_extension("log"))?;
        let child = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .arg("serve")
            .arg(&self.pipeline)
            .arg("--out")
            .arg(&self.out)
            .env("VIGIL_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while ureq::get(&self.url("/healthz")).call().is_err() {
            if Instant::now() > deadline {
                return Err(format!("node {} does not answer", self.name).into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    fn running(&self) -> Vec<String> {
        if self.child.is_none() {
            return Vec::new();
        }
        let Ok(mut r) = ureq::get(&self.url("/streams")).call() else {
            return Vec::new();
        };
        let body = r.body_mut().read_to_string().unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter(|s| s["state"] == "running")
                    .filter_map(|s| s["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// CPU seconds used so far (user + system), from /proc.
    fn cpu_s(&self) -> f64 {
        let Some(c) = &self.child else { return 0.0 };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", c.id())) else {
            return 0.0;
        };
        // Fields after the command's closing parenthesis: utime is the 12th.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / 100.0
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Camera → the nodes it runs on.
fn placement(nodes: &[Node]) -> BTreeMap<String, Vec<&'static str>> {
    let mut at: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
    for n in nodes {
        for c in n.running() {
            at.entry(c).or_default().push(n.name);
        }
    }
    at
}

/// Waits until every camera runs once, on its owner among `live`; the
/// time it took.
fn settle(nodes: &[Node], cameras: usize, live: &[&str], within: Duration) -> Res<Duration> {
    let live: Vec<vigil::cluster::place::Node> = live
        .iter()
        .map(|n| vigil::cluster::place::Node {
            name: (*n).into(),
            capacity: 1,
            ..Default::default()
        })
        .collect();
    let started = Instant::now();
    loop {
        let p = placement(nodes);
        let settled = p.len() == cameras
            && p.iter().all(|(c, on)| {
                on.len() == 1
                    && vigil::cluster::place::owner(c, &live).is_some_and(|o| o.name == on[0])
            });
        if settled {
            return Ok(started.elapsed());
        }
        if started.elapsed() > within {
            return Err(format!("the cluster did not settle in {within:?}: {p:?}").into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Each node's cameras and CPU (% of one core) over `secs`.
fn sample(nodes: &[Node], secs: u64) -> Vec<(usize, f64)> {
    let before: Vec<f64> = nodes.iter().map(Node::cpu_s).collect();
    std::thread::sleep(Duration::from_secs(secs));
    nodes
        .iter()
        .zip(before)
        .map(|(n, b)| (n.running().len(), (n.cpu_s() - b) / secs as f64 * 100.0))
        .collect()
}

fn row(step: &str, took: Duration, nodes: &[Node], s: &[(usize, f64)]) -> String {
    let cells: Vec<String> = nodes
        .iter()
        .zip(s)
        .map(|(n, (c, cpu))| {
            if n.child.is_some() {
                format!("{c} ({cpu:.0} %)")
            } else {
                "-".into()
            }
        })
        .collect();
    format!(
        "| {step} | {:.1} s | {} |",
        took.as_secs_f64(),
        cells.join(" | ")
    )
}

fn bench() -> Res<()> {
    let cameras = env_u64("BENCH_CLUSTER_CAMERAS", 12) as usize;
    let secs = env_u64("BENCH_CLUSTER_SAMPLE_SECS", 10);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-out/cluster");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;

    let nats_port = free_port()?;
    let mut nats = Command::new("nats-server")
        .args([
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            &nats_port.to_string(),
            "-sd",
        ])
        .arg(root.join("nats"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("nats-server (Debian package nats-server): {e}"))?;
    let url = format!("nats://127.0.0.1:{nats_port}");
    std::thread::sleep(Duration::from_secs(1));

    let camera = "videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=320,height=240,framerate=5/1 ! rtpvrawpay name=pay0 pt=96";
    let rtsp = RtspServer::serve(Serving {
        mounts: (0..cameras)
            .map(|i| (format!("/cam{i:02}"), camera.to_string()))
            .collect(),
        port: free_port()?,
        tls: None,
        shared: true,
    })?;

    let mut nodes: Vec<Node> = Vec::new();
    for name in NODES {
        let http = free_port()?;
        let pipeline = root.join(format!("{name}.toml"));
        std::fs::write(
            &pipeline,
            format!(
                r#"[encoders.motion]
min_duration = "0s"

[sinks.store]

[sinks.nats]
url = "{url}"

[server]
listen = "127.0.0.1:{http}"

[cluster]
url = "{url}"
node = "{name}"
lease = "{LEASE_S}s"
max_moves = 2
"#
            ),
        )?;
        nodes.push(Node {
            name,
            http,
            pipeline,
            out: root.join(name),
            child: None,
        });
    }

    let mut rows = Vec::new();
    let wait = Duration::from_secs(300);
    nodes[0].start()?;
    let attaching = Instant::now();
    for i in 0..cameras {
        let body = format!(
            r#"{{"name": "cam{i:02}", "uri": "rtsp://127.0.0.1:{}/cam{i:02}", "latency": "100ms"}}"#,
            rtsp.port
        );
        ureq::post(&nodes[0].url("/streams"))
            .header("Content-Type", "application/json")
            .send(body.as_str())?;
    }
    settle(&nodes, cameras, &NODES[..1], wait)?;
    let took = attaching.elapsed();
    rows.push(row(
        &format!("{cameras} cameras attached to n1"),
        took,
        &nodes,
        &sample(&nodes, secs),
    ));

    for k in 1..3 {
        let joined = Instant::now();
        nodes[k].start()?;
        settle(&nodes, cameras, &NODES[..=k], wait)?;
        let took = joined.elapsed();
        rows.push(row(
            &format!("{} joins (gradual, make-before-break)", NODES[k]),
            took,
            &nodes,
            &sample(&nodes, secs),
        ));
    }

    let killed = Instant::now();
    nodes[2].kill();
    settle(&nodes, cameras, &NODES[..2], wait)?;
    let took = killed.elapsed();
    rows.push(row(
        "n3 killed (`kill -9`)",
        took,
        &nodes,
        &sample(&nodes, secs),
    ));

    for n in &mut nodes {
        n.kill();
    }
    let _ = nats.kill();
    let _ = nats.wait();

    println!("## Cluster: cameras per node and move time, 1 → 3 nodes\n");
    println!(
        "`cargo bench --bench cluster` ({cameras} live cameras, 320x240 at 5 fps, motion only; lease {LEASE_S} s, `max_moves = 2`; one nats-server; all on this machine). Each row: how long the step took to settle (every camera running once, on the node rendezvous hashing gives it), then each node's cameras and CPU (% of one core) over the next {secs} s.\n"
    );
    println!("| step | settled in | n1 | n2 | n3 |");
    println!("|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    println!(
        "\nWhat this shows: the spread follows rendezvous hashing as nodes come and go; a joining node gets its share at `max_moves` per lease, so its settle time is about (cameras it gets / max_moves) leases; a killed node's cameras run elsewhere about a lease after its last renewal. What it does not show: all nodes share this machine's two cores, so CPU per node is not what a node of its own would use, nor how many cameras a node can take; NATS is one local server, so network latency and a NATS cluster's replication are not in the figures.\n"
    );
    Ok(())
}
