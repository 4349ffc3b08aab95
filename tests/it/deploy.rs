//! What `deploy/` ships for monitoring: the Prometheus config and alert
//! rules pass `promtool` (Debian's `prometheus` package, installed by
//! `deploy/setup.sh`), their unit tests included; the Grafana provisioning
//! files and dashboard parse; and every metric the dashboard and the
//! rules name is one vigil exports, with the labels they use, as a real
//! run's `/metrics` shows them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::live::free_port;
use crate::run::vigil;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(deploy(path)).unwrap_or_else(|e| panic!("deploy/{path}: {e}"))
}

fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(deploy("prometheus"))
        .output()
        .expect("promtool (Debian package prometheus; deploy/setup.sh installs it)");
    assert!(
        out.status.success(),
        "promtool {}:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn prometheus_config_and_alert_rules_pass_promtool() {
    promtool(&["check", "rules", "alerts.yml"]);
    // The config names the token file the compose file mounts: checked
    // with a token file of the test's in its place.
    let dir = tempfile::tempdir().expect("tmp");
    let token = dir.path().join("vigil-token");
    std::fs::write(&token, "a-token").expect("token");
    let config = read("prometheus/prometheus.yml");
    assert!(config.contains("/etc/prometheus/vigil-token"));
    std::fs::write(
        dir.path().join("prometheus.yml"),
        config.replace("/etc/prometheus/vigil-token", &token.display().to_string()),
    )
    .expect("config");
    std::fs::copy(
        deploy("prometheus/alerts.yml"),
        dir.path().join("alerts.yml"),
    )
    .expect("rules");
    let config = dir.path().join("prometheus.yml");
    promtool(&["check", "config", &config.display().to_string()]);
    // The alerts fire when, and only when, they should.
    promtool(&["test", "rules", "alerts.test.yml"]);
}

/// An expression of the dashboard or the rules, with the labels its
/// results are shown or templated by (`{{stream}}`, `$labels.stream`).
struct Query {
    expr: String,
    shown_by: Vec<String>,
    from: String,
}

/// `{{name}}` and `$labels.name` in `text`.
fn templated(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in text.split("{{").skip(1) {
        let inner = part.split("}}").next().unwrap_or_default().trim();
        let name = inner.strip_prefix("$labels.").unwrap_or(inner);
        if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.push(name.to_string());
        }
    }
    out
}

fn dashboard_queries() -> Vec<Query> {
    let dash: serde_json::Value =
        serde_json::from_str(&read("grafana/vigil.json")).expect("the dashboard is JSON");
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().expect("panels") {
        for t in panel["targets"].as_array().into_iter().flatten() {
            out.push(Query {
                expr: t["expr"].as_str().expect("expr").to_string(),
                shown_by: templated(t["legendFormat"].as_str().unwrap_or_default()),
                from: format!("panel `{}`", panel["title"].as_str().unwrap_or_default()),
            });
        }
    }
    for v in dash["templating"]["list"].as_array().expect("templating") {
        if let Some(q) = v["query"]["query"].as_str() {
            // label_values(metric, label)
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.strip_suffix(')'))
                .expect("label_values(metric, label)");
            let (metric, label) = inner.split_once(',').expect("metric, label");
            out.push(Query {
                expr: metric.trim().to_string(),
                shown_by: vec![label.trim().to_string()],
                from: format!("variable `{}`", v["name"].as_str().unwrap_or_default()),
            });
        }
    }
    out
}

/// The rules' expressions, read line by line (`expr:`, then the
/// annotations up to the next rule).
fn rule_queries() -> Vec<Query> {
    let mut out: Vec<Query> = Vec::new();
    let mut alert = String::new();
    for line in read("prometheus/alerts.yml").lines() {
        let t = line.trim();
        if let Some(a) = t.strip_prefix("- alert:") {
            alert = a.trim().to_string();
        } else if let Some(e) = t.strip_prefix("expr:") {
            out.push(Query {
                expr: e.trim().to_string(),
                shown_by: Vec::new(),
                from: format!("alert {alert}"),
            });
        } else if let Some(q) = out.last_mut() {
            q.shown_by.extend(templated(t));
        }
    }
    out
}

/// The vigil metrics an expression reads, and the labels it names in
/// matchers and in `by (…)` / `without (…)`.
fn parse(expr: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut metrics = BTreeSet::new();
    let mut labels = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("vigil_") {
        let name = ident(&rest[i..]);
        rest = &rest[i + name.len()..];
        metrics.insert(name);
        if let Some(m) = rest.strip_prefix('{') {
            let body = m.split('}').next().unwrap_or_default();
            for matcher in body.split(',') {
                let l = ident(matcher.trim());
                if !l.is_empty() {
                    labels.insert(l);
                }
            }
        }
    }
    for kw in ["by (", "without ("] {
        for part in expr.split(kw).skip(1) {
            for l in part.split(')').next().unwrap_or_default().split(',') {
                labels.insert(l.trim().to_string());
            }
        }
    }
    (metrics, labels)
}

/// Family name → label names, as a real run's `/metrics` shows them.
fn exposed(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let labels = out.entry(name).or_default();
        if let Some(body) = line.split_once('{').and_then(|(_, r)| r.split_once('}')) {
            for pair in body.0.split(',') {
                if let Some((k, _)) = pair.split_once('=') {
                    labels.insert(k.trim().to_string());
                }
            }
        }
    }
    out
}

/// `/metrics` of a `vigil run` on a generated clip with motion, loudness
/// and a store, taken once every stage has counted something.
fn live_metrics() -> String {
    let mut run = crate::metrics::ClipRun::start("[sinks.store]");
    let port = run.port;
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let text = ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok());
        if let Some(t) = text
            && t.contains("vigil_latency_seconds_count")
            && t.contains("vigil_stream_state{")
        {
            break t;
        }
        assert!(
            Instant::now() < deadline && run.child.try_wait().ok().flatten().is_none(),
            "/metrics had every stage's series while the run went on"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = run.child.kill();
    let _ = run.child.wait();
    text
}

#[test]
fn every_metric_of_the_dashboard_and_the_rules_is_exported_with_its_labels() {
    let declared: BTreeMap<String, BTreeSet<String>> = vigil::metrics::Metrics::new()
        .families()
        .into_iter()
        .map(|(name, labels)| (name, labels.into_iter().collect()))
        .collect();
    let live = exposed(&live_metrics());
    // What a real run exports is what vigil declares.
    for (name, labels) in &live {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| declared.contains_key(*b)))
            .unwrap_or(name);
        let want = declared
            .get(family)
            .unwrap_or_else(|| panic!("{name} in /metrics is not declared"));
        let extra: Vec<&String> = labels
            .iter()
            .filter(|l| !want.contains(*l) && *l != "le")
            .collect();
        assert!(extra.is_empty(), "{name} has undeclared labels {extra:?}");
    }
    for family in [
        "vigil_stream_state",
        "vigil_stream_frames_in_total",
        "vigil_stream_frames_total",
        "vigil_sink_up",
        "vigil_queue_depth",
    ] {
        assert!(
            live.contains_key(family),
            "{family} in a real run's /metrics"
        );
    }

    let queries: Vec<Query> = dashboard_queries()
        .into_iter()
        .chain(rule_queries())
        .collect();
    assert!(queries.len() > 30, "{} queries", queries.len());
    let mut used = BTreeSet::new();
    for q in &queries {
        let (metrics, mut labels) = parse(&q.expr);
        assert!(
            !metrics.is_empty(),
            "{}: `{}` reads no vigil metric",
            q.from,
            q.expr
        );
        labels.extend(q.shown_by.iter().cloned());
        for m in &metrics {
            let (family, bucket) = match ["_bucket", "_sum", "_count"].iter().find_map(|s| {
                m.strip_suffix(s)
                    .filter(|b| declared.contains_key(*b))
                    .map(|b| (b, *s))
            }) {
                Some((b, suffix)) => (b.to_string(), suffix == "_bucket"),
                None => (m.clone(), false),
            };
            let have = declared
                .get(&family)
                .unwrap_or_else(|| panic!("{}: {m} is not a metric vigil exports", q.from));
            for l in &labels {
                let fine = have.contains(l)
                    || (bucket && l == "le")
                    // Added by Prometheus to every series it scrapes.
                    || l == "instance"
                    || l == "job";
                assert!(
                    fine,
                    "{}: `{}` uses label {l}, which {family} does not have ({have:?})",
                    q.from, q.expr
                );
            }
            used.insert(family);
        }
    }
    let seen: Vec<&String> = used.iter().filter(|f| live.contains_key(*f)).collect();
    eprintln!(
        "deploy: {} queries over {} families ({} in the run's /metrics; the others appear when their events happen)",
        queries.len(),
        used.len(),
        seen.len()
    );
}

#[test]
fn grafana_provisioning_files_parse() {
    let dash: serde_json::Value =
        serde_json::from_str(&read("grafana/vigil.json")).expect("the dashboard is JSON");
    assert_eq!(dash["uid"], "vigil");
    let ids: Vec<i64> = dash["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .map(|p| p["id"].as_i64().expect("a panel id"))
        .collect();
    let distinct: BTreeSet<&i64> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "panel ids are distinct");
    for panel in dash["panels"].as_array().expect("panels") {
        let g = &panel["gridPos"];
        assert!(
            g["x"].as_i64().unwrap_or(-1) + g["w"].as_i64().unwrap_or(99) <= 24,
            "panel `{}` fits the 24 columns",
            panel["title"]
        );
    }
    // The provisioning files: YAML with the keys Grafana reads.
    let datasources = read("grafana/provisioning/datasources/vigil.yaml");
    for key in [
        "apiVersion: 1",
        "datasources:",
        "type: prometheus",
        "url: http://prometheus:9090",
    ] {
        assert!(
            datasources.contains(key),
            "datasources/vigil.yaml has `{key}`"
        );
    }
    let dashboards = read("grafana/provisioning/dashboards/vigil.yaml");
    for key in [
        "apiVersion: 1",
        "providers:",
        "type: file",
        "path: /var/lib/grafana/dashboards",
    ] {
        assert!(
            dashboards.contains(key),
            "dashboards/vigil.yaml has `{key}`"
        );
    }
}

/// `deploy/k8s/`: every object valid against the Kubernetes schemas
/// (kubernetes-validate from PyPI, strict: no unknown fields; set up by
/// `deploy/setup.sh` in `$VIGIL_CACHE/deploy-venv`), the PodMonitor (a
/// Prometheus Operator kind it has no schema for) with the fields the
/// operator reads, and the ConfigMap's pipeline one `vigil check` accepts.
#[test]
fn kubernetes_manifests_are_valid_and_their_pipeline_checks() {
    let home = std::env::var("HOME").unwrap_or_default();
    let cache = std::env::var("VIGIL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(&home).join(".cache/vigil"));
    let validate = cache.join("deploy-venv/bin/kubernetes-validate");
    let manifests: Vec<PathBuf> = ["pipeline.yaml", "nats.yaml", "vigil.yaml"]
        .iter()
        .map(|f| deploy("k8s").join(f))
        .collect();
    let out = Command::new(&validate)
        .arg("--strict")
        .args(&manifests)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (deploy/setup.sh installs it; `make test` runs that first)",
                validate.display()
            )
        });
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "kubernetes-validate:\n{said}");
    for kind in [
        "configmap/vigil-pipeline",
        "secret/vigil-secrets",
        "service/nats",
        "statefulset/nats",
        "deployment/vigil",
        "service/vigil",
    ] {
        assert!(
            said.contains(&format!("passed for resource {kind} ")),
            "{kind} validated:\n{said}"
        );
    }
    // The one kind without a schema there: the fields the operator reads.
    let node = read("k8s/vigil.yaml");
    let monitor = node
        .split("\n---\n")
        .find(|d| d.contains("kind: PodMonitor"))
        .expect("a PodMonitor");
    for key in [
        "apiVersion: monitoring.coreos.com/v1",
        "podMetricsEndpoints:",
        "port: http",
        "path: /metrics",
        "type: Bearer",
        "key: VIGIL_TOKEN",
        "app.kubernetes.io/name: vigil",
    ] {
        assert!(monitor.contains(key), "the PodMonitor has `{key}`");
    }
    // Probes on /livez, which answers without the token.
    assert!(node.contains("path: /livez"));

    // The ConfigMap's pipeline, as the pods read it.
    let configmap = read("k8s/pipeline.yaml");
    let mut lines = configmap
        .lines()
        .skip_while(|l| l.trim() != "pipeline.toml: |");
    lines.next().expect("pipeline.toml in the ConfigMap");
    let toml: String = lines
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
        .collect();
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("pipeline.toml");
    std::fs::write(&file, &toml).expect("write");
    let out = vigil()
        .args(["check"])
        .arg(&file)
        .env("VIGIL_TOKEN", "a-long-random-token-for-the-test")
        .env("NATS_TOKEN", "nats-token")
        .output()
        .expect("vigil check");
    assert!(
        out.status.success(),
        "vigil check of the ConfigMap's pipeline:\n{toml}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The image's steps, outside a container (no Docker daemon or podman runs
/// on these machines): the runtime stage's packages are the ones
/// `deploy/docker/packages.sh` lists (installed here), `layout.sh` lays out
/// what the build stage hands over, and the laid-out vigil, with only that
/// cache, serves its default pipeline (the detector's model loaded) and
/// answers the HEALTHCHECK's request without a token.
#[test]
fn the_images_steps_run_outside_a_container() {
    let script = |name: &str| deploy("docker").join(name);
    let out = Command::new("bash")
        .arg(script("packages.sh"))
        .args(["check", "runtime"])
        .output()
        .expect("packages.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dest = tempfile::tempdir().expect("tmp");
    let home = std::env::var("HOME").unwrap_or_default();
    let cache = std::env::var("VIGIL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(&home).join(".cache/vigil"));
    let out = Command::new("bash")
        .arg(script("layout.sh"))
        .arg(dest.path())
        .arg(env!("CARGO_BIN_EXE_vigil"))
        .arg(&cache)
        .output()
        .expect("layout.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("deploy: {}", String::from_utf8_lossy(&out.stderr).trim());
    let root = dest.path();
    assert!(
        !root.join("var/lib/vigil/cache/venv").exists(),
        "no TensorFlow"
    );
    // The image's pipeline, on a free port instead of 9090.
    let port = free_port();
    let pipeline = std::fs::read_to_string(root.join("etc/vigil/pipeline.toml"))
        .expect("the default pipeline")
        .replace("0.0.0.0:9090", &format!("0.0.0.0:{port}"));
    let file = root.join("etc/vigil/test.toml");
    std::fs::write(&file, pipeline).expect("write");
    let mut serve = Command::new(root.join("usr/local/bin/vigil"))
        .args(["serve"])
        .arg(&file)
        .arg("--out")
        .arg(root.join("var/lib/vigil/out"))
        .env("VIGIL_CACHE", root.join("var/lib/vigil/cache"))
        .env("VIGIL_TOKEN", "a-long-random-token-for-the-test")
        .env_remove("VIGIL_ORT_LIB")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the laid-out vigil");
    // HEALTHCHECK: curl -fsS http://127.0.0.1:9090/healthz
    let deadline = Instant::now() + Duration::from_secs(60);
    let healthy = loop {
        let o = Command::new("curl")
            .args(["-fsS", &format!("http://127.0.0.1:{port}/healthz")])
            .output()
            .expect("curl");
        if o.status.success() {
            break String::from_utf8_lossy(&o.stdout).into_owned();
        }
        if Instant::now() > deadline || serve.try_wait().ok().flatten().is_some() {
            let _ = serve.kill();
            let o = serve.wait_with_output().expect("vigil");
            panic!(
                "the HEALTHCHECK never passed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(healthy.contains(r#""status":"ok""#), "{healthy}");
    let _ = serve.kill();
    let _ = serve.wait();

    // The Dockerfile runs these very scripts.
    let dockerfile = read("Dockerfile");
    for step in [
        "packages.sh install build",
        "packages.sh install runtime && bash /tmp/slim.sh",
        "deploy/docker/layout.sh /layout",
        "HEALTHCHECK",
        "USER vigil",
    ] {
        assert!(dockerfile.contains(step), "the Dockerfile runs {step}");
    }
    // MODELS=core: no speech-to-text or search model, and a pipeline that
    // wants one says how to get it; anything else is refused.
    let vision = tempfile::tempdir().expect("tmp");
    let layout = |dest: &Path, models: &str| {
        Command::new("bash")
            .arg(script("layout.sh"))
            .arg(dest)
            .arg(env!("CARGO_BIN_EXE_vigil"))
            .arg(&cache)
            .env("VIGIL_IMAGE_MODELS", models)
            .output()
            .expect("layout.sh")
    };
    assert!(layout(vision.path(), "core").status.success());
    let models = vision.path().join("var/lib/vigil/cache/models");
    assert!(models.join("nanodet.onnx").exists());
    assert!(models.join("yamnet.onnx").exists(), "sounds are core");
    assert!(!models.join("whisper-tiny.en").exists());
    assert!(!models.join("minilm").exists());
    let speech = vision.path().join("speech.toml");
    std::fs::write(&speech, "[encoders.vad]\n[encoders.asr]\n[sinks.jsonl]\n").expect("write");
    let out = Command::new(vision.path().join("usr/local/bin/vigil"))
        .arg("run")
        .arg(&speech)
        .arg("--source")
        .arg(crate::clip::shared("jfk.wav"))
        .arg("--out")
        .arg(vision.path().join("out"))
        .env("VIGIL_CACHE", vision.path().join("var/lib/vigil/cache"))
        .env_remove("VIGIL_ORT_LIB")
        .output()
        .expect("vigil");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains("--build-arg MODELS=all"), "{said}");
    let refused = layout(vision.path(), "tiny");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("all or core"));
}

/// `deploy/compose.yaml` follows the Compose Specification (the schema
/// check-jsonschema vendors, from PyPI in `$VIGIL_CACHE/deploy-venv`), every
/// file it mounts is in the repository (the token file excepted: the user
/// makes it, git ignores it), and its services, started here by hand from
/// the same files, work together: mosquitto with `compose/mosquitto.conf`,
/// NATS with JetStream, `vigil serve` with `compose/pipeline.toml`, and
/// Prometheus with `prometheus/prometheus.yml` and `alerts.yml`. Only the
/// host names, ports and paths the containers would give are replaced. A
/// camera attached over the API reaches JetStream and Home Assistant's
/// discovery, and Prometheus scrapes vigil with the token.
#[test]
fn the_compose_file_is_valid_and_its_services_work_together_started_by_hand() {
    use crate::brokers::{Mosquitto, MqttSubscriber, NatsServer};

    let compose = deploy("compose.yaml");
    let check = crate::run::cache().join("deploy-venv/bin/check-jsonschema");
    let out = Command::new(&check)
        .args(["--builtin-schema", "vendor.compose-spec"])
        .arg(&compose)
        .output()
        .unwrap_or_else(|e| panic!("{} (deploy/setup.sh installs it): {e}", check.display()));
    assert!(
        out.status.success(),
        "compose.yaml against the Compose Specification:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = read("compose.yaml");
    let gitignore = std::fs::read_to_string(deploy("../.gitignore")).expect(".gitignore");
    let mut mounted = 0;
    for line in text.lines() {
        let Some(source) = line
            .trim()
            .strip_prefix("- ./")
            .and_then(|l| l.split(':').next())
        else {
            continue;
        };
        mounted += 1;
        if gitignore.lines().any(|g| g == format!("/deploy/{source}")) {
            assert!(
                text.contains(&format!("> deploy/{source}")),
                "the header says how to make {source}"
            );
            continue;
        }
        assert!(
            deploy(source).exists(),
            "compose.yaml mounts deploy/{source}"
        );
    }
    assert!(mounted >= 7, "the bind mounts were read ({mounted})");

    // mosquitto: its file, on a free loopback port, keeping its data here.
    let dir = tempfile::tempdir().expect("tmp");
    let conf: String = read("compose/mosquitto.conf")
        .lines()
        .filter(|l| !l.starts_with("listener "))
        .map(|l| match l.strip_prefix("persistence_location ") {
            Some(_) => format!("persistence_location {}/\n", dir.path().display()),
            None => format!("{l}\n"),
        })
        .collect();
    let mut mosquitto = Mosquitto::configure(free_port(), &conf);
    mosquitto.up();
    // NATS with JetStream, as its command line in compose.yaml says.
    assert!(
        text.contains(r#"command: ["--jetstream""#),
        "NATS runs with JetStream"
    );
    let nats = NatsServer::start(&[&format!("--http_port={}", free_port())]);
    let discovery = MqttSubscriber::new(mosquitto.port, "homeassistant/#", None);

    let http = free_port();
    let token = "compose-test-token-0123456789abcdef";
    let pipeline = dir.path().join("pipeline.toml");
    let p = read("compose/pipeline.toml");
    for host in ["mqtt://mosquitto:1883", "nats://nats:4222", "0.0.0.0:9090"] {
        assert!(p.contains(host), "the pipeline names {host}");
    }
    std::fs::write(
        &pipeline,
        p.replace(
            "mqtt://mosquitto:1883",
            &format!("mqtt://127.0.0.1:{}", mosquitto.port),
        )
        .replace("nats://nats:4222", &nats.url())
        .replace("0.0.0.0:9090", &format!("127.0.0.1:{http}")),
    )
    .expect("pipeline");
    let _serve = crate::serve::Serve::spawn(
        &pipeline,
        &dir.path().join("out"),
        http,
        &[("VIGIL_TOKEN", token)],
    );
    let api = |path: &str| format!("http://127.0.0.1:{http}{path}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while ureq::get(&api("/livez")).call().is_err() {
        assert!(Instant::now() < deadline, "vigil serve answers /livez");
        std::thread::sleep(Duration::from_millis(200));
    }
    let attached = ureq::post(&api("/streams"))
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(format!(
            r#"{{"name": "bikes", "uri": "{}"}}"#,
            crate::clip::shared("bikes.mp4").display()
        ));
    assert!(attached.is_ok(), "attach with the token: {attached:?}");

    // Prometheus: its file, scraping this vigil every second with the token.
    let prom = dir.path().join("prometheus");
    std::fs::create_dir_all(&prom).expect("dir");
    std::fs::write(prom.join("vigil-token"), token).expect("token");
    std::fs::copy(deploy("prometheus/alerts.yml"), prom.join("alerts.yml")).expect("alerts");
    let config = read("prometheus/prometheus.yml");
    assert!(config.contains(r#"targets: ["vigil:9090"]"#));
    std::fs::write(
        prom.join("prometheus.yml"),
        config
            .replace(
                r#"targets: ["vigil:9090"]"#,
                &format!(r#"targets: ["127.0.0.1:{http}"]"#),
            )
            .replace(
                "/etc/prometheus/vigil-token",
                &prom.join("vigil-token").display().to_string(),
            )
            .replace("scrape_interval: 15s", "scrape_interval: 1s"),
    )
    .expect("prometheus.yml");
    let pport = free_port();
    let mut prometheus = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            prom.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            prom.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{pport}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(prom.join("log")).expect("log"))
        .spawn()
        .expect("prometheus (Debian package prometheus; deploy/setup.sh installs it)");
    let query = |q: &str| -> Vec<serde_json::Value> {
        ureq::get(&format!("http://127.0.0.1:{pport}/api/v1/query"))
            .query("query", q)
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["data"]["result"].as_array().cloned())
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let up = query(r#"up{job="vigil"}"#);
        let frames = query(r#"vigil_stream_frames_in_total{stream="bikes"} > 0"#);
        let records_in_js = nats
            .messages("VIGIL", None)
            .iter()
            .any(|m| m.subject.starts_with("vigil.bikes."));
        let announced = discovery
            .messages()
            .iter()
            .any(|m| m.topic == "homeassistant/sensor/vigil/bikes_caption/config");
        if up.first().is_some_and(|r| r["value"][1] == "1")
            && !frames.is_empty()
            && records_in_js
            && announced
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus scrapes vigil (up {up:?}, frames {frames:?}), records reach JetStream ({records_in_js}), Home Assistant is told of the camera ({announced}); prometheus log: {}",
            std::fs::read_to_string(prom.join("log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The alert rules loaded from the same file.
    let rules = ureq::get(&format!("http://127.0.0.1:{pport}/api/v1/rules"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .unwrap_or_default();
    for alert in [
        "VigilStreamDown",
        "VigilSinkPendingGrowing",
        "VigilStoreDegraded",
    ] {
        assert!(rules.contains(alert), "{alert} loaded: {rules}");
    }
    let _ = prometheus.kill();
    let _ = prometheus.wait();
}

/// The systemd path, as far as it goes where systemd is not PID 1:
/// `deploy/vigil.service` passes `systemd-analyze verify` without a word,
/// and its commands do what the unit counts on. ExecStart, with the unit's
/// environment and the pipeline its header installs
/// (`pipelines/surveillance.toml`), serves; ExecReload's SIGHUP reloads the
/// pipeline; KillSignal (SIGTERM) ends it cleanly within TimeoutStopSec.
#[test]
fn the_systemd_unit_verifies_and_its_commands_serve_reload_and_stop() {
    let dir = tempfile::tempdir().expect("tmp");
    let unit = read("vigil.service");
    let bin = env!("CARGO_BIN_EXE_vigil");
    let verified = dir.path().join("vigil.service");
    std::fs::write(&verified, unit.replace("/usr/local/bin/vigil", bin)).expect("unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&verified)
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );

    let value = |key: &str| -> Vec<String> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_owned)
            .collect()
    };
    let exec = value("ExecStart").pop().expect("ExecStart");
    let args: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(
        args[1..],
        [
            "serve",
            "/etc/vigil/pipeline.toml",
            "--out",
            "/var/lib/vigil/out"
        ]
    );
    assert_eq!(value("ExecReload"), ["/bin/kill -HUP $MAINPID"]);
    assert_eq!(value("KillSignal"), ["SIGTERM"]);
    let stop_within: u64 = value("TimeoutStopSec")[0].parse().expect("seconds");

    // The pipeline the header installs, on a free port.
    let port = free_port();
    let pipeline = dir.path().join("pipeline.toml");
    let surveillance = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/surveillance.toml"),
    )
    .expect("pipelines/surveillance.toml");
    assert!(surveillance.contains("127.0.0.1:9090"));
    std::fs::write(
        &pipeline,
        surveillance.replace("127.0.0.1:9090", &format!("127.0.0.1:{port}")),
    )
    .expect("pipeline");
    let mut command = Command::new(bin);
    command
        .args(["serve"])
        .arg(&pipeline)
        .arg("--out")
        .arg(dir.path().join("out"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for env in value("Environment") {
        let (k, v) = env.split_once('=').expect("KEY=VALUE");
        // The cache is this machine's, not /var/lib/vigil's.
        if k != "VIGIL_CACHE" {
            command.env(k, v);
        }
    }
    let mut serve = command.spawn().expect("ExecStart");
    let livez = || {
        ureq::get(&format!("http://127.0.0.1:{port}/livez"))
            .call()
            .is_ok()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !livez() {
        assert!(
            Instant::now() < deadline && serve.try_wait().ok().flatten().is_none(),
            "ExecStart serves"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let pid = serve.id().to_string();
    let signal = |sig: &str| {
        assert!(
            Command::new("kill")
                .args([sig, &pid])
                .status()
                .expect("kill")
                .success()
        );
    };
    signal("-HUP");
    std::thread::sleep(Duration::from_secs(2));
    assert!(livez(), "serving on after the reload");
    signal("-TERM");
    let stopped = Instant::now();
    let output = serve.wait_with_output().expect("it ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "a clean stop: {stderr}");
    assert!(
        stopped.elapsed() < Duration::from_secs(stop_within),
        "stopped within TimeoutStopSec ({stop_within} s)"
    );
    assert!(
        stderr.contains("reloaded"),
        "SIGHUP reloaded the pipeline: {stderr}"
    );
}
