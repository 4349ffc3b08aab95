//! A real browser for the console's tests and its benchmark: Debian's
//! chromium, headless, driven through chromedriver (WebDriver) with
//! fantoccini. Both come from `make setup` (`deploy/setup.sh`).

use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// A port free on loopback now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A chromium session, ended (and chromedriver stopped) on drop.
pub struct Browser {
    pub client: Client,
    driver: Child,
    rt: tokio::runtime::Runtime,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless chromium, 1400x900.
    pub fn start() -> Browser {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver: make setup installs it)");
        let profile = tempfile::tempdir().expect("a profile folder");
        // As root chromium needs --no-sandbox; the network flags keep it
        // from calling Google's hosts, which this machine cannot reach.
        let caps = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1400,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }
        });
        let caps = caps.as_object().cloned().expect("an object");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match rt.block_on(
                ClientBuilder::new(connector)
                    .capabilities(caps.clone())
                    .connect(&url),
            ) {
                Ok(c) => break c,
                Err(e) => {
                    assert!(Instant::now() < deadline, "chromium started: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        };
        Browser {
            client,
            driver,
            rt,
            _profile: profile,
        }
    }

    pub fn run<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub fn goto(&self, url: &str) {
        self.run(self.client.goto(url)).expect("the page loads");
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    pub fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.run(self.client.execute(script, args))
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// The first element matching `css`, once there is one (at most `wait`).
    pub fn find(&self, css: &str, wait: Duration) -> Element {
        self.run(
            self.client
                .wait()
                .at_most(wait)
                .for_element(Locator::Css(css)),
        )
        .unwrap_or_else(|e| panic!("`{css}` appears within {wait:?}: {e}"))
    }

    /// Waits until `script` returns something other than false or null.
    pub fn until(&self, what: &str, script: &str, wait: Duration) -> Value {
        let deadline = Instant::now() + wait;
        loop {
            let v = self.js(script, vec![]);
            if !(v.is_null() || v == Value::Bool(false)) {
                return v;
            }
            if Instant::now() >= deadline {
                let shot = self.screenshot("failed");
                panic!("{what} within {wait:?} (the page: {})", shot.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Clicks the element `css` finds; found again if the page redrew it
    /// between finding and clicking (a table refreshed every second).
    pub fn click(&self, css: &str) {
        for attempt in 0.. {
            let e = self.find(css, Duration::from_secs(10));
            match self.run(e.click()) {
                Ok(()) => return,
                Err(err) if attempt < 5 && err.to_string().contains("stale element") => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(err) => panic!("click {css}: {err}"),
            }
        }
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css, Duration::from_secs(10));
        self.run(async {
            e.clear().await?;
            e.send_keys(text).await
        })
        .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// The text of the first element matching `css`.
    pub fn text(&self, css: &str) -> String {
        let e = self.find(css, Duration::from_secs(10));
        self.run(e.text()).expect("its text")
    }

    /// Whether a dialog (alert, confirm) is open.
    pub fn dialog(&self) -> Option<String> {
        self.run(self.client.get_alert_text()).ok()
    }

    /// Saves a screenshot of the page under `out/console/NAME.png`.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.run(self.client.screenshot()).expect("a screenshot");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("out/console");
        std::fs::create_dir_all(&dir).expect("out/console");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let client = self.client.clone();
        let _ = self.rt.block_on(client.close());
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
