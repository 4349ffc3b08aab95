//! The web console's weight and time to first paint, on the demo: `vigil
//! serve` runs `pipelines/demo.toml` to its end, then Debian's chromium
//! (headless, through chromedriver) loads the console over loopback, once
//! cold (a new profile) and then again and again (the browser's cache
//! revalidated with the files' ETags). Prints a Markdown section for
//! BENCHMARKS.md. Targets: under 500 KB, first paint under 1 s.
//!
//!   cargo bench --bench console        (tests/bench/run.sh runs it)
//!
//! Environment: BENCH_CONSOLE_LOADS (10) the warm loads; vigil's log goes
//! to bench-out/console/.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::Client;
use serde_json::Value;

#[allow(dead_code)]
#[path = "../it/browser.rs"]
mod browser;

use browser::Browser;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const WEIGHT_KB: f64 = 500.0;
const PAINT_MS: f64 = 1000.0;

fn main() {
    if let Err(e) = bench() {
        eprintln!("console bench: {e}");
        std::process::exit(1);
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> Res<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Children killed on drop.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(url: &str) -> Option<String> {
    let mut r = ureq::get(url).call().ok()?;
    r.body_mut().read_to_string().ok()
}

fn bench() -> Res<()> {
    let work = repo().join("bench-out/console");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let http = free_port()?;
    let demo = std::fs::read_to_string(repo().join("pipelines/demo.toml"))?;
    let pipeline = work.join("demo.toml");
    std::fs::write(
        &pipeline,
        format!("{demo}\n[server]\nlisten = \"127.0.0.1:{http}\"\n"),
    )?;
    let log = std::fs::File::create(work.join("vigil.log"))?;
    let _vigil = Kill(
        Command::new(repo().join("target/release/vigil"))
            .arg("serve")
            .arg(&pipeline)
            .arg("--out")
            .arg(work.join("out"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?,
    );
    let base = format!("http://127.0.0.1:{http}");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let ended = get(&format!("{base}/streams"))
            .and_then(|b| serde_json::from_str::<Value>(&b).ok())
            .is_some_and(|v| v[0]["state"] == "ended");
        if ended {
            break;
        }
        if Instant::now() > deadline {
            return Err("the demo did not end within 300 s".into());
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    let loads: usize = std::env::var("BENCH_CONSOLE_LOADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let browser = Browser::start();
    let (cold, warm) = browser.run(measure(&browser.client, &base, loads))?;
    let version = Command::new("chromium").arg("--version").output()?;
    report(
        &cold,
        &warm,
        String::from_utf8_lossy(&version.stdout).trim(),
    );
    Ok(())
}

/// One load of the console.
#[derive(Debug, Clone)]
struct Load {
    /// Bytes over the wire for the page and its files (headers included).
    transferred: f64,
    /// Their size as served (no compression here).
    body: f64,
    files: usize,
    first_paint_ms: f64,
    first_contentful_ms: f64,
    /// The review of the demo drawn (its timeline on screen).
    timeline_ms: f64,
}

/// What the Performance API says of the page just loaded.
const READ: &str = r#"
const nav = performance.getEntriesByType('navigation')[0];
const files = performance.getEntriesByType('resource').filter(r => r.name.includes('/console/'));
const all = [nav, ...files];
const paint = Object.fromEntries(performance.getEntriesByType('paint').map(p => [p.name, p.startTime]));
return {
  transferred: all.reduce((s, r) => s + r.transferSize, 0),
  body: all.reduce((s, r) => s + r.decodedBodySize, 0),
  files: all.length,
  fp: paint['first-paint'] ?? -1,
  fcp: paint['first-contentful-paint'] ?? -1,
};
"#;

async fn load(client: &Client, url: &str) -> Res<Load> {
    client.goto(url).await?;
    let v = client.execute(READ, vec![]).await?;
    // The timeline of the demo's records, drawn: wait for it.
    let t = client
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               const t0 = performance.now();
               (function wait() {
                 if (document.querySelector('#timeline rect')) done(performance.now());
                 else if (performance.now() - t0 > 20000) done(-1);
                 else setTimeout(wait, 10);
               })();"#,
            vec![],
        )
        .await?;
    let n = |k: &str| v[k].as_f64().unwrap_or(-1.0);
    Ok(Load {
        transferred: n("transferred"),
        body: n("body"),
        files: v["files"].as_u64().unwrap_or(0) as usize,
        first_paint_ms: n("fp"),
        first_contentful_ms: n("fcp"),
        timeline_ms: t.as_f64().unwrap_or(-1.0),
    })
}

async fn measure(client: &Client, base: &str, loads: usize) -> Res<(Load, Vec<Load>)> {
    let cold = load(client, &format!("{base}/#review?since=-3650d")).await?;
    let mut warm = Vec::new();
    for i in 0..loads {
        // A new navigation each time (not a hash change).
        warm.push(load(client, &format!("{base}/?load={i}#review?since=-3650d")).await?);
    }
    Ok((cold, warm))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() { -1.0 } else { v[v.len() / 2] }
}

fn most(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::MIN, f64::max)
}

fn report(cold: &Load, warm: &[Load], chromium: &str) {
    let fp: Vec<f64> = warm.iter().map(|l| l.first_paint_ms).collect();
    let fcp: Vec<f64> = warm.iter().map(|l| l.first_contentful_ms).collect();
    let tl: Vec<f64> = warm.iter().map(|l| l.timeline_ms).collect();
    let wt: Vec<f64> = warm.iter().map(|l| l.transferred).collect();
    let weight_kb = cold.body / 1000.0;
    let paint = cold.first_paint_ms.max(most(&fp));
    let pass = weight_kb < WEIGHT_KB && (0.0..PAINT_MS).contains(&paint);
    println!("## Web console\n");
    println!(
        "`cargo bench --bench console` (`tests/bench/console.rs`): `vigil serve` runs `pipelines/demo.toml` to its end, then {chromium} (headless, through chromedriver) loads the console at `/#review?since=-3650d` (the demo's records carry its file's date) over loopback: once cold (a new profile), then {} times more as new navigations (the files revalidated by their ETags). Weights and times come from the page's own Performance API (navigation, resource and paint entries). Targets: the page and its files under {WEIGHT_KB} KB, first paint under {PAINT_MS} ms.\n",
        warm.len()
    );
    println!(
        "| load | files | bytes as served | bytes over the wire | first paint ms | first contentful paint ms | demo timeline drawn ms |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| cold | {} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} |",
        cold.files,
        cold.body,
        cold.transferred,
        cold.first_paint_ms,
        cold.first_contentful_ms,
        cold.timeline_ms
    );
    println!(
        "| warm, median of {} | {} | (cached) | {:.0} | {:.1} | {:.1} | {:.1} |",
        warm.len(),
        warm.first().map_or(0, |l| l.files),
        median(wt),
        median(fp.clone()),
        median(fcp),
        median(tl.clone()),
    );
    println!(
        "| warm, slowest | | | | {:.1} | | {:.1} |",
        most(&fp),
        most(&tl)
    );
    println!(
        "\nThe page and its files weigh {weight_kb:.1} KB; the slowest first paint was {paint:.1} ms: {}. \"Demo timeline drawn\" adds reading the demo's records from `/events` and drawing them.",
        if pass { "**PASS**" } else { "**FAIL**" }
    );
    eprintln!("console: {weight_kb:.1} KB, first paint at most {paint:.1} ms");
}
