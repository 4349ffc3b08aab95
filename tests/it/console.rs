//! The web console in a real browser (headless chromium through
//! chromedriver): signing in, the live grid and its records, the review
//! timeline of the demo, drawing a zone, attaching cameras, health, and
//! untrusted text shown as text. Screenshots go to `out/console/`.

use std::io::BufRead;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigil::record::Record;
use vigil::sink::Sink;

use crate::browser::Browser;
use crate::live::{RtspServer, free_port, h264_clip};
use crate::run::vigil;
use crate::serve::Serve;

const SECOND: Duration = Duration::from_secs(1);

/// Waits until `GET /` answers (it needs no token).
fn wait_up(http: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while ureq::get(&format!("http://127.0.0.1:{http}/"))
        .call()
        .is_err()
    {
        assert!(Instant::now() < deadline, "vigil serve answers");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn pipeline(dir: &Path, http: u16, extra: &str) -> std::path::PathBuf {
    let path = dir.join("console.toml");
    std::fs::write(
        &path,
        format!("{extra}\n[sinks.store]\n\n[server]\nlisten = \"127.0.0.1:{http}\"\n"),
    )
    .expect("pipeline");
    path
}

/// With a token the page asks for it, shows nothing without it, and once
/// signed in keeps it nowhere the page can read: not in the URL, not in
/// storage, not in a cookie a script can see.
#[test]
fn the_console_wants_the_token_and_keeps_it_out_of_the_page() {
    let dir = tempfile::tempdir().expect("tmp");
    let http = free_port();
    let token = "console-test-token-0123456789abcdef";
    let p = pipeline(dir.path(), http, "");
    let text = std::fs::read_to_string(&p).expect("read") + "token_env = \"VIGIL_TEST_TOKEN\"\n";
    std::fs::write(&p, text).expect("write");
    let _serve = Serve::spawn(
        &p,
        &dir.path().join("out"),
        http,
        &[("VIGIL_TEST_TOKEN", token)],
    );
    wait_up(http);
    let base = format!("http://127.0.0.1:{http}");

    // The page's policy: scripts from this origin only.
    let r = ureq::get(&format!("{base}/")).call().expect("GET /");
    let csp = r
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );

    let b = Browser::start();
    b.goto(&format!("{base}/"));
    b.until(
        "the sign-in form",
        "return !document.getElementById('signin').hidden",
        10 * SECOND,
    );
    assert_eq!(
        b.js("return document.getElementById('views').hidden", vec![]),
        json!(true)
    );
    let refused = b.js("return fetch('/streams').then(r => r.status)", vec![]);
    assert_eq!(
        refused,
        json!(401),
        "the API refuses the page without the token"
    );
    b.screenshot("signin");

    b.type_into("#token", "not-the-token");
    b.click("#signin-form button");
    b.until(
        "the refusal",
        "return document.getElementById('signin-error').textContent.includes('not the token')",
        10 * SECOND,
    );
    assert_eq!(
        b.js("return document.getElementById('views').hidden", vec![]),
        json!(true)
    );

    b.type_into("#token", token);
    b.click("#signin-form button");
    b.until(
        "the views",
        "return !document.getElementById('views').hidden",
        10 * SECOND,
    );
    let page = b.js(
        "return [location.href, document.cookie, sessionStorage.length + localStorage.length, document.documentElement.outerHTML.includes(arguments[0])]",
        vec![json!(token)],
    );
    assert!(!page[0].as_str().unwrap_or("").contains(token), "{page}");
    assert_eq!(page[1], json!(""), "the session cookie is HttpOnly: {page}");
    assert_eq!(page[2], json!(0), "nothing in storage: {page}");
    assert_eq!(
        page[3],
        json!(false),
        "the token is not in the page: {page}"
    );
    assert_eq!(
        b.js("return fetch('/streams').then(r => r.status)", vec![]),
        json!(200)
    );
    // Signed in, the session survives a reload; signing out ends it.
    b.goto(&format!("{base}/#review"));
    b.until(
        "the views after a reload",
        "return !document.getElementById('views').hidden",
        10 * SECOND,
    );
    b.click("#signout");
    b.until(
        "the sign-in form again",
        "return !document.getElementById('signin').hidden",
        10 * SECOND,
    );
    assert_eq!(
        b.js("return fetch('/streams').then(r => r.status)", vec![]),
        json!(401)
    );
}

/// Records whose text is markup (a transcript `<img src=x onerror=…>`, a
/// label, a caption with a script) are shown as those characters, and
/// nothing runs.
#[test]
fn untrusted_text_is_shown_as_text_and_runs_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).expect("out");
    let xss = "<img src=x onerror=alert(1)>";
    let now = chrono::Utc::now() - chrono::Duration::minutes(5);
    let at = |s: i64| {
        (now + chrono::Duration::seconds(s)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let records: Vec<Record> = [
        json!({"type":"event","run":"r1","id":"door/1","event":"door/sound/1","stream":"door","kind":"sound","phase":"start","start":10.0,"end":null,"utc":at(10),"score":0.9,"labels":[xss],"track":null,"zone":null,"bbox":null,"snapshot":null,"clip":null,"clip_start":null,"details":{"class":"<b>bold</b>"}}),
        json!({"type":"event","run":"r1","id":"door/2","event":"door/sound/1","stream":"door","kind":"sound","phase":"end","start":10.0,"end":14.0,"utc":at(10),"score":0.9,"labels":[xss],"track":null,"zone":null,"bbox":null,"snapshot":null,"clip":null,"clip_start":null,"details":{"class":"<b>bold</b>"}}),
        json!({"type":"transcript","run":"r1","id":"door/3","stream":"door","start":11.0,"end":13.0,"utc":at(11),"text":xss,"confidence":0.9}),
        json!({"type":"caption","run":"r1","id":"door/4","stream":"door","start":10.0,"end":15.0,"utc":at(10),"text":"<script>alert(3)</script>"}),
    ]
    .into_iter()
    .map(|v| serde_json::from_value(v).expect("a record"))
    .collect();
    let mut store =
        vigil::sink::store::StoreSink::open(&out.join("events.db"), Default::default(), &[])
            .expect("the store");
    store.send(&records).expect("stored");
    store.flush().expect("flushed");
    drop(store);

    let http = free_port();
    let p = pipeline(dir.path(), http, "");
    let _serve = Serve::spawn(&p, &out, http, &[]);
    wait_up(http);
    let b = Browser::start();
    b.goto(&format!("http://127.0.0.1:{http}/#review"));
    b.find("#rv-table tbody tr", 15 * SECOND);
    b.click("#rv-table tbody tr");
    b.until(
        "the transcript in the details",
        &format!(
            "return document.getElementById('detail').textContent.includes({})",
            json!(xss)
        ),
        10 * SECOND,
    );
    let shown = b.js(
        "return [document.getElementById('detail').textContent, document.getElementById('rv-table').textContent, document.querySelectorAll('img[src=\"x\"], #detail b, script:not([src])').length]",
        vec![json!(xss)],
    );
    let (detail, table) = (
        shown[0].as_str().unwrap_or(""),
        shown[1].as_str().unwrap_or(""),
    );
    assert!(detail.contains(xss), "the transcript as text: {detail}");
    assert!(detail.contains("<b>bold</b>"), "details as text: {detail}");
    assert!(table.contains(xss), "the label as text: {table}");
    assert_eq!(shown[2], json!(0), "no element was made of the text");
    assert_eq!(b.dialog(), None, "no dialog opened");
    b.screenshot("untrusted-text");
}

/// The demo, served: its review timeline shows the siren alert at 51.6 s,
/// and clicking it shows its snapshot.
#[test]
fn the_review_timeline_of_the_demo_shows_the_siren_alert_and_its_snapshot() {
    let dir = tempfile::tempdir().expect("tmp");
    let http = free_port();
    let demo =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/demo.toml"))
            .expect("the demo pipeline");
    let p = dir.path().join("demo.toml");
    std::fs::write(
        &p,
        format!("{demo}\n[server]\nlisten = \"127.0.0.1:{http}\"\n"),
    )
    .expect("write");
    let serve = Serve::spawn(&p, &dir.path().join("out"), http, &[]);
    wait_up(http);
    // The demo runs as fast as it goes (about 10 s here).
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let ended = serve
            .streams()
            .get("walkway")
            .is_some_and(|s| s.state == "ended");
        if ended {
            break;
        }
        assert!(Instant::now() < deadline, "the demo ends");
        std::thread::sleep(Duration::from_millis(500));
    }
    let b = Browser::start();
    // The live grid lists the demo's stream, and says it has ended.
    b.goto(&format!("http://127.0.0.1:{http}/#live"));
    b.until(
        "the demo's stream in the grid",
        "const c = document.querySelector(\".card[data-stream='walkway'] .state\"); return c && c.textContent === 'ended'",
        10 * SECOND,
    );
    // The demo's records carry the demo file's date: the review covers
    // ten years back, given in the address.
    b.goto(&format!("http://127.0.0.1:{http}/#review?since=-3650d"));
    let siren = "#timeline rect[data-kind='rule'][data-start='51.6']";
    b.find(siren, 20 * SECOND);
    b.click(siren);
    let img = b.until(
        "the siren alert's snapshot",
        "const i = document.querySelector('#detail img, #detail video'); return i && (i.naturalWidth > 0 || i.readyState > 0) && i.getAttribute(i.tagName === 'IMG' ? 'src' : 'poster')",
        15 * SECOND,
    );
    let src = img.as_str().unwrap_or("");
    assert!(
        src.starts_with("/media/snapshots/walkway/") && src.ends_with(".jpg"),
        "{src}"
    );
    let detail = b.text("#detail");
    assert!(detail.contains("siren"), "{detail}");
    assert!(detail.contains("high"), "its severity: {detail}");
    assert!(detail.contains("51.6 s into the stream"), "{detail}");
    // The alert's bar is drawn as one.
    assert_eq!(
        b.js(
            "return document.querySelector(arguments[0]).classList.contains('alert')",
            vec![json!(siren)]
        ),
        json!(true)
    );
    b.screenshot("review");

    // Tune: the demo's rule, tried on the stored records, would have
    // fired where it did.
    let alerts: Vec<Value> = serve
        .get("/events?kind=rule&format=json")
        .expect("the rule events");
    let real: Vec<i64> = alerts
        .iter()
        .filter(|r| r["labels"][0] == "siren_near_people" && r["phase"] == "start")
        .filter_map(|r| r["utc"].as_str().map(utc_ms))
        .collect();
    assert!(!real.is_empty(), "{alerts:?}");

    // Ask: the question finds the alert (once the indexer has it), shows
    // its snapshot, and opens its span in Review.
    let deadline = Instant::now() + Duration::from_secs(60);
    while serve
        .get::<Value>("/search?q=siren%20near%20people")
        .is_none_or(|a| a["answers"].as_array().is_none_or(Vec::is_empty))
    {
        assert!(Instant::now() < deadline, "the demo's records are indexed");
        std::thread::sleep(Duration::from_millis(500));
    }
    b.goto(&format!("http://127.0.0.1:{http}/#ask"));
    b.type_into("#ask-q", "a siren near people");
    b.click("#ask-form button");
    let first = b.until(
        "the first answer",
        "const li = document.querySelector('#ask-list > li'); return li && li.dataset.utc",
        30 * SECOND,
    );
    let first = utc_ms(first.as_str().unwrap_or(""));
    assert!(
        real.iter().any(|r| (first - r).abs() <= 1000),
        "the first answer at {first} is the alert at {real:?}: {}",
        b.text("#ask-list")
    );
    let answer = b.text("#ask-list > li");
    assert!(answer.contains("walkway"), "{answer}");
    assert!(answer.contains("siren"), "{answer}");
    b.until(
        "the answer's snapshot",
        "const i = document.querySelector('#ask-list > li img, #ask-list > li video'); return i && (i.naturalWidth > 0 || i.readyState > 0)",
        15 * SECOND,
    );
    let status = b.text("#ask-status");
    assert!(status.contains("answers"), "{status}");
    b.screenshot("ask");
    b.click("#ask-list > li a.review");
    b.find(siren, 20 * SECOND);
    assert_eq!(
        b.js("return location.hash.split('?')[0]", vec![]),
        json!("#review")
    );
    assert_eq!(
        b.js("return document.getElementById('rv-stream').value", vec![]),
        json!("walkway")
    );

    b.goto(&format!("http://127.0.0.1:{http}/#tune"));
    b.find("#tn-stream option[value='walkway']", 10 * SECOND);
    b.type_into("#try-when", "sound(siren) and object(person)");
    b.type_into("#try-cooldown", "5s");
    b.type_into("#try-since", "-3650d");
    b.click("#try-form button");
    let tried = b.until(
        "the dry run's answer",
        "const l = [...document.querySelectorAll('#try-list li')].map(li => li.dataset.start); return l.length > 0 && l",
        30 * SECOND,
    );
    let tried: Vec<i64> = tried
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(utc_ms))
        .collect();
    assert_eq!(
        tried.len(),
        real.len(),
        "as often as it fired: {tried:?} against {real:?} ({})",
        b.text("#try-status")
    );
    for (t, r) in tried.iter().zip(&real) {
        assert!((t - r).abs() <= 1000, "at {t} against {r} (ms)");
    }
    // A rule that does not parse is refused with the parser's words.
    b.type_into("#try-when", "sound(siren) and and");
    b.click("#try-form button");
    b.until(
        "the refusal",
        "return document.getElementById('try-status').className === 'error' && document.getElementById('try-status').textContent",
        10 * SECOND,
    );
    b.type_into("#try-when", "sound(siren) and object(person)");
    b.click("#try-form button");
    b.until(
        "the answer again",
        "return document.querySelectorAll('#try-list li').length > 0",
        30 * SECOND,
    );
    b.screenshot("try-rule");
}

/// Milliseconds since the epoch of an RFC 3339 time.
fn utc_ms(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.timestamp_millis())
        .unwrap_or_else(|e| panic!("{t}: {e}"))
}

/// A camera attached in the page runs in the live grid with its picture,
/// boxes, zone and line; a record the store commits shows in the page's
/// live list within 2 s; a zone drawn over its picture gives TOML that
/// `vigil check` accepts; health draws its rates; and it detaches.
#[test]
fn a_camera_attached_in_the_console_is_watched_live_tuned_and_detached() {
    let dir = tempfile::tempdir().expect("tmp");
    let camera = RtspServer::start(&h264_clip(dir.path()));
    let http = free_port();
    let p = pipeline(
        dir.path(),
        http,
        r#"
[encoders.motion]
min_duration = "0s"

[encoders.detector]
fps = 5

[fusion]
caption_span = "2s"

[[zones]]
name = "junction"
polygon = [[0.55, 0.3], [1.0, 0.3], [1.0, 0.6], [0.55, 0.6]]
labels = ["people"]

[[lines]]
name = "across"
from = [0.45, 0.2]
to = [0.45, 0.75]
"#,
    );
    let serve = Serve::spawn(&p, &dir.path().join("out"), http, &[]);
    wait_up(http);
    let base = format!("http://127.0.0.1:{http}");
    let b = Browser::start();

    // Cameras: a refusal is shown as the API gives it; then the camera.
    b.goto(&format!("{base}/#cameras"));
    b.type_into("#at-name", "gone");
    b.type_into("#at-uri", "/no/such/file.mp4");
    b.click("#attach button");
    let said = b.until(
        "the API's refusal",
        "const t = document.getElementById('at-error').textContent; return t.length > 0 && t",
        10 * SECOND,
    );
    assert!(
        said.as_str().unwrap_or("").contains("no such file"),
        "{said}"
    );
    b.type_into("#at-name", "cam");
    b.type_into("#at-uri", &format!("rtsp://127.0.0.1:{}/cam", camera.port));
    b.type_into("#at-fps", "5");
    b.click("#attach button");
    b.find("#cams tr[data-stream='cam']", 15 * SECOND);
    b.until(
        "the camera running",
        "const r = document.querySelector(\"#cams tr[data-stream='cam'] .state\"); return r && r.textContent === 'running'",
        30 * SECOND,
    );
    b.screenshot("cameras");

    // Live: the picture, with the scene drawn over it.
    let seen: Arc<Mutex<Vec<(String, Instant)>>> = Default::default();
    let _reader = {
        let seen = seen.clone();
        let url = format!("{base}/events/live?stream=cam");
        std::thread::spawn(move || {
            let Ok(mut r) = ureq::get(&url).call() else {
                return;
            };
            let reader = std::io::BufReader::new(r.body_mut().as_reader());
            for line in reader.lines() {
                let Ok(line) = line else { break };
                if let Some(data) = line.strip_prefix("data: ")
                    && let Ok(v) = serde_json::from_str::<Value>(data)
                {
                    let id = v["id"].as_str().unwrap_or("").to_string();
                    seen.lock().expect("seen").push((id, Instant::now()));
                }
            }
        })
    };
    b.goto(&format!("{base}/#live"));
    let card = ".card[data-stream='cam']";
    b.find(card, 15 * SECOND);
    b.until(
        "the camera's picture with its zone, line and boxes",
        &format!(
            "const c = document.querySelector(\"{card}\"); const i = c.querySelector('img'); return i.naturalWidth > 0 && c.querySelector('polygon.zone') && c.querySelector('line.cline') && c.querySelector('rect.box')"
        ),
        60 * SECOND,
    );
    b.click(card);
    // The page's list against the test's own reader of the same records.
    let mut shown: Vec<(String, Instant)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while shown.len() < 8 {
        assert!(
            Instant::now() < deadline,
            "the page lists the camera's records: {shown:?}"
        );
        let ids = b.js(
            "return [...document.querySelectorAll('#feed-list li[data-id]')].map(li => li.dataset.id)",
            vec![],
        );
        for id in ids
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
        {
            if !shown.iter().any(|(s, _)| s == id) {
                shown.push((id.to_string(), Instant::now()));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    {
        let seen = seen.lock().expect("seen");
        for (id, at) in &shown {
            let stored = seen
                .iter()
                .find(|(s, _)| s == id)
                .unwrap_or_else(|| panic!("{id} was committed: {seen:?}"));
            let late = at.saturating_duration_since(stored.1);
            assert!(
                late <= 2 * SECOND,
                "{id} shown {late:?} after it was stored"
            );
        }
    }
    b.screenshot("live");

    // Tune: the stream's zone and line, and a new zone drawn by clicks.
    b.goto(&format!("{base}/#tune"));
    b.until(
        "the picture to draw on, with the zone and line",
        "return document.getElementById('tn-picture').naturalWidth > 0 && document.getElementById('tn-toml').textContent.includes('name = \"across\"')",
        30 * SECOND,
    );
    b.click("#tn-zone");
    // Corners clicked at viewport points (the picture scrolled into view).
    let rect = b.js(
        "const s = document.getElementById('tn-svg'); s.scrollIntoView({block: 'start'}); const r = s.getBoundingClientRect(); return [r.left, r.top, r.width, r.height, innerHeight]",
        vec![],
    );
    let r: Vec<f64> = (0..5).map(|i| rect[i].as_f64().unwrap_or(0.0)).collect();
    let (left, top, w, h) = (r[0], r[1], r[2], r[3]);
    assert!(w > 100.0 && h > 100.0 && top + 0.9 * h < r[4], "{rect}");
    for (fx, fy) in [(0.1, 0.6), (0.4, 0.6), (0.4, 0.9), (0.1, 0.9)] {
        use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
        let actions = MouseActions::new("mouse".into())
            .then(PointerAction::MoveTo {
                duration: None,
                x: (left + fx * w).round(),
                y: (top + fy * h).round(),
            })
            .then(PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            })
            .then(PointerAction::Up {
                button: MOUSE_BUTTON_LEFT,
            });
        b.run(b.client.perform_actions(actions))
            .expect("a click on the picture");
    }
    b.click("#tn-close");
    b.type_into("#tn-name", "doorway");
    let toml = b.text("#tn-toml");
    assert!(
        toml.contains("name = \"doorway\"") && toml.contains("streams = [\"cam\"]"),
        "{toml}"
    );
    // Where it was clicked, to a pixel.
    let polygon = toml
        .split("name = \"doorway\"")
        .nth(1)
        .and_then(|z| z.lines().find_map(|l| l.strip_prefix("polygon = ")))
        .unwrap_or_else(|| panic!("the new zone's corners: {toml}"));
    let corners: Vec<[f64; 2]> = serde_json::from_str(polygon).expect("[[x, y], …]");
    let wanted = [[0.1, 0.6], [0.4, 0.6], [0.4, 0.9], [0.1, 0.9]];
    assert_eq!(corners.len(), 4, "{toml}");
    for (c, want) in corners.iter().zip(wanted) {
        assert!(
            (c[0] - want[0]).abs() * w <= 1.5 && (c[1] - want[1]).abs() * h <= 1.5,
            "{c:?} against {want:?}: {toml}"
        );
    }
    b.screenshot("tune");
    let checked = dir.path().join("tuned.toml");
    std::fs::write(
        &checked,
        format!(
            "[[sources]]\nname = \"cam\"\nuri = \"rtsp://127.0.0.1:{}/cam\"\n\n[encoders.detector]\n\n{toml}",
            camera.port
        ),
    )
    .expect("write");
    let out = vigil()
        .arg("check")
        .arg(&checked)
        .output()
        .expect("vigil check");
    assert!(
        out.status.success(),
        "vigil check accepts the console's TOML:\n{toml}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Health: the camera's rate, drawn.
    b.goto(&format!("{base}/#health"));
    b.until(
        "the camera's sparklines",
        "const s = document.querySelector(\".spark[data-key='fps:cam'] polyline\"); return s && s.getAttribute('points').split(' ').length >= 6",
        20 * SECOND,
    );
    b.screenshot("health");

    // Detach, confirmed in the page's dialog.
    b.goto(&format!("{base}/#cameras"));
    b.click("#cams tr[data-stream='cam'] button");
    b.run(b.client.accept_alert()).expect("the confirmation");
    b.until(
        "the camera gone",
        "return !document.querySelector(\"#cams tr[data-stream='cam']\")",
        20 * SECOND,
    );
    assert!(!serve.streams().contains_key("cam"));
}
