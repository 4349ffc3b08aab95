//! Store and live-sink throughput, and delivery lag under a steady load,
//! on loopback against real servers it starts itself (mosquitto,
//! nats-server with JetStream, an HTTP receiver in this process;
//! `tests/support/brokers.rs`). Prints a
//! Markdown section for BENCHMARKS.md.
//!
//!   cargo bench --bench delivery        (tests/bench/run.sh runs it)
//!
//! Environment: BENCH_RECORDS (default 20000) records per throughput run.

use std::time::{Duration, Instant};

use vigil::fuse::RecordMaker;
use vigil::metrics::Metrics;
use vigil::record::{Phase, Record};
use vigil::sink::Sink;
use vigil::sink::outbox::{DeliveryReport, Outbox};
use vigil::sink::store::{Retention, StoreSink};
use vigil::time::Timestamp;

#[path = "../support/brokers.rs"]
mod brokers;
use brokers::{HttpReceiver, Mosquitto, NatsServer};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Records in one batch of the pipeline: one chunk's records of a stream.
const CHUNK: usize = 10;

fn main() {
    if let Err(e) = bench() {
        eprintln!("delivery bench: {e}");
        std::process::exit(1);
    }
}

fn bench() -> Res<()> {
    let n: usize = std::env::var("BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir()?;
    // With mosquitto's default, Nagle's algorithm holds each burst of
    // acknowledgements about 40 ms.
    let mut mqtt = Mosquitto::configure(
        brokers::free_port(),
        "allow_anonymous true\npersistence false\nset_tcp_nodelay true\n",
    );
    mqtt.up();
    let nats = NatsServer::start(&[]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let http = HttpReceiver::start();
    let http_port = http.port;
    let sinks = |names: &[&str]| -> String {
        let mut t = String::new();
        for name in names {
            match *name {
                "webhook" => {
                    t += &format!(
                        "[webhook]\nurl = \"http://127.0.0.1:{http_port}/\"\ndrain = \"10m\"\n"
                    )
                }
                "mqtt" => {
                    t += &format!(
                        "[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\ndrain = \"10m\"\n",
                        mqtt.port
                    )
                }
                "nats" => {
                    t += &format!(
                        "[nats]\nurl = \"nats://127.0.0.1:{}\"\ndrain = \"10m\"\n",
                        nats.port
                    )
                }
                _ => {}
            }
        }
        t
    };
    let records = make_records(n);

    // The store alone: batches of one chunk's records, each a transaction
    // committed with synchronous = FULL.
    let store_path = dir.path().join("store.db");
    let mut store = StoreSink::open(&store_path, Retention::default(), &[])?;
    let t = Instant::now();
    for batch in records.chunks(CHUNK) {
        store.send(batch)?;
    }
    let store_secs = t.elapsed().as_secs_f64();
    drop(store);

    println!("### Event store and live sinks (loopback)\n");
    println!(
        "`cargo bench --bench delivery`: {n} records (captions and events of two streams, \
         {} bytes of JSON on average), on this machine, servers on 127.0.0.1. mosquitto runs \
         with `set_tcp_nodelay true`: with its default, Nagle's algorithm held each burst of \
         acknowledgements about 40 ms (measured: 2 200 records/s, lag p95 45 ms).\n",
        records_json_bytes(&records) / n.max(1)
    );
    println!("| what | records/s | wall s |\n|---|---:|---:|");
    println!(
        "| store: write, {CHUNK} records a transaction (FULL sync) | {:.0} | {store_secs:.2} |",
        n as f64 / store_secs
    );

    // Each live sink alone, draining a store that holds all the records.
    for name in ["webhook", "mqtt", "nats"] {
        let path = dir.path().join(format!("{name}.db"));
        let config: vigil::config::SinksConfig = toml::from_str(&sinks(&[name]))?;
        let live = vigil::sink::build_live(&config, dir.path(), None)?;
        let mut store = StoreSink::open(&path, Retention::default(), &[name.to_string()])?;
        for batch in records.chunks(500) {
            store.send(batch)?;
        }
        let metrics = Metrics::new();
        let t = Instant::now();
        let outbox = Outbox::start(&path, live, &store.committed(), &metrics)?;
        let reports = outbox.finish();
        let secs = t.elapsed().as_secs_f64();
        let r = one(&reports, name)?;
        if r.delivered != n as u64 {
            return Err(format!("{name} delivered {} of {n}", r.delivered).into());
        }
        println!(
            "| {name}: deliver from the store, batches of 100 | {:.0} | {secs:.2} |",
            n as f64 / secs
        );
    }
    if http.records().len() < n {
        return Err("the HTTP receiver got fewer records than sent".into());
    }

    // Normal load: three sinks at once while records are written at a
    // steady 100 a second (a chunk of 10 every 100 ms) for 20 s.
    let path = dir.path().join("lag.db");
    let config: vigil::config::SinksConfig = toml::from_str(&sinks(&["webhook", "mqtt", "nats"]))?;
    let live = vigil::sink::build_live(&config, dir.path(), None)?;
    let names: Vec<String> = live.iter().map(|l| l.name.clone()).collect();
    let mut store = StoreSink::open(&path, Retention::default(), &names)?;
    let metrics = Metrics::new();
    let outbox = Outbox::start(&path, live, &store.committed(), &metrics)?;
    let steady = &records[..2000.min(records.len())];
    runtime.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        for batch in steady.chunks(CHUNK) {
            tick.tick().await;
            store.send(batch)?;
        }
        Ok::<_, vigil::error::Error>(())
    })?;
    let reports = outbox.finish();
    println!(
        "\nDelivery lag under a steady 100 records/s, the three sinks at once \
         (store commit to acknowledgement, {} records):\n",
        steady.len()
    );
    println!("| sink | delivered | lag p50 ms | lag p95 ms |\n|---|---:|---:|---:|");
    for name in ["webhook", "mqtt", "nats"] {
        let r = one(&reports, name)?;
        println!(
            "| {name} | {} | {:.1} | {:.1} |",
            r.delivered,
            r.lag_p50_ms.unwrap_or(f64::NAN),
            r.lag_p95_ms.unwrap_or(f64::NAN)
        );
    }
    println!();
    Ok(())
}

fn one<'a>(reports: &'a [DeliveryReport], name: &str) -> Res<&'a DeliveryReport> {
    let r = reports
        .iter()
        .find(|r| r.sink == name)
        .ok_or_else(|| format!("no report from {name}"))?;
    if let Some(e) = &r.last_error {
        return Err(format!("{name}: {e}").into());
    }
    Ok(r)
}

/// Captions and motion events of two streams, as a run makes them.
fn make_records(n: usize) -> Vec<Record> {
    let mut makers = [
        RecordMaker::new("01BENCHRUN".into(), "cam1".into()),
        RecordMaker::new("01BENCHRUN".into(), "cam2".into()),
    ];
    (0..n)
        .map(|i| {
            let m = &mut makers[i % 2];
            let t = Timestamp(i as u64 * 100_000_000);
            if i % 5 == 0 {
                m.event(
                    &format!("{}/motion/{i}", m.stream),
                    "motion",
                    Phase::Start,
                    t,
                    None,
                    0.42,
                    Some(vigil::geometry::BBox::new(0.1, 0.2, 0.3, 0.4)),
                    Default::default(),
                )
            } else {
                m.caption(
                    t,
                    Timestamp(t.0 + 5_000_000_000),
                    "2 people in view; a person walks left; a car stays; speech heard".into(),
                )
            }
        })
        .collect()
}

fn records_json_bytes(records: &[Record]) -> usize {
    records
        .iter()
        .map(|r| serde_json::to_string(r).map_or(0, |s| s.len()))
        .sum()
}
