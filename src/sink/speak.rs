//! Spoken alerts (`[sinks.speak]`): each rule alert of the chosen
//! severities said in a sentence ("Alert on walkway, severity high: siren
//! near people. Police car siren detected, and a person in view.") with
//! espeak-ng,
//! to a WAV file per alert (`OUT/alerts/STREAM/UTC-RULE.wav`, the sentence
//! beside it as `.txt`) and/or the default audio device.
//!
//! Delivered from the store like the other live sinks: at least once, in
//! order, the cursor moved on once the WAV is written (a file written
//! twice is the same file). At most one alert is spoken per
//! `min_interval` of the alerts' own clock (their `utc`); the ones in
//! between are skipped and counted. A device
//! that cannot play is said once and does not hold up the files.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::Severity;
use crate::config::{Delivery, SpeakConfig};
use crate::record::{EventRecord, Phase, Record};
use crate::sink::outbox::{Failed, LiveConfig, Outgoing, Transport};

/// The synthesiser (Debian's `espeak-ng`).
const ESPEAK: &str = "espeak-ng";

pub struct SpeakTransport {
    severities: Vec<Severity>,
    /// Where the WAV files go (the output folder's `dir`), if anywhere.
    dir: Option<PathBuf>,
    keep: usize,
    play: bool,
    voice: String,
    wpm: u32,
    min_interval: Duration,
    timeout: Duration,
    /// The wall clock (ms) of the last alert spoken.
    last: Option<i64>,
    /// Alerts skipped by the rate limit.
    pub skipped: u64,
    /// Whether playing failed already (said once).
    play_failed: bool,
}

impl LiveConfig for SpeakConfig {
    const NAME: &'static str = "speak";
    type Transport = SpeakTransport;

    fn build(&self) -> Result<SpeakTransport, String> {
        self.check().map_err(|e| format!("[sinks.speak] {e}"))?;
        // There, and working, before anything runs.
        let probe = Command::new(ESPEAK)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !probe.is_ok_and(|s| s.success()) {
            return Err(format!(
                "[sinks.speak] needs {ESPEAK}: install it (Debian: apt-get install espeak-ng; `make setup` does)"
            ));
        }
        Ok(SpeakTransport {
            severities: self.severities.clone(),
            dir: None,
            keep: self.keep,
            play: self.play,
            voice: self.voice.clone(),
            wpm: self.words_per_minute,
            min_interval: Duration::from_nanos(self.min_interval.nanos()),
            timeout: Duration::from_nanos(self.delivery().timeout),
            last: None,
            skipped: 0,
            play_failed: false,
        })
    }

    fn delivery(&self) -> Delivery {
        SpeakConfig::delivery(self)
    }
}

impl SpeakTransport {
    /// Writes the WAV files under `out_dir` (the config's `dir` in it).
    pub fn writing_under(mut self, out_dir: &Path, dir: &Path) -> SpeakTransport {
        self.dir = (!dir.as_os_str().is_empty()).then(|| out_dir.join(dir));
        self
    }

    /// Runs espeak-ng on `text`, to `wav` or the audio device.
    fn speak(&self, text: &str, wav: Option<&Path>) -> Result<(), String> {
        let mut c = Command::new(ESPEAK);
        // A pause of 40 ms between words: Whisper hears them better.
        c.args(["-v", &self.voice, "-s", &self.wpm.to_string(), "-g", "4"]);
        if let Some(w) = wav {
            c.arg("-w").arg(w);
        }
        // The text on stdin: never taken for an option.
        c.arg("--stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c
            .spawn()
            .map_err(|e| format!("cannot start {ESPEAK}: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            stdin
                .write_all(text.as_bytes())
                .map_err(|e| format!("{ESPEAK}: cannot give it the text: {e}"))?;
        }
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        use std::io::Read;
                        let _ = e.read_to_string(&mut err);
                    }
                    return Err(format!("{ESPEAK} failed ({status}): {}", err.trim()));
                }
                Ok(None) if started.elapsed() > self.timeout.max(Duration::from_secs(5)) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("{ESPEAK} took longer than {:?}", self.timeout));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(format!("{ESPEAK}: {e}")),
            }
        }
    }

    /// Deletes the oldest WAV files (and their sentences) beyond `keep`.
    fn prune(&self, dir: &Path) {
        let mut wavs: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.path().is_dir().then(|| e.path()))
            .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "wav"))
            .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
            .collect();
        if wavs.len() <= self.keep {
            return;
        }
        wavs.sort();
        for (_, p) in &wavs[..wavs.len() - self.keep] {
            let _ = std::fs::remove_file(p);
            let _ = std::fs::remove_file(p.with_extension("txt"));
        }
    }

    fn alert(&mut self, e: &EventRecord) -> Result<(), Failed> {
        let severity = e
            .details
            .get("severity")
            .and_then(Value::as_str)
            .and_then(|s| serde_json::from_value::<Severity>(Value::String(s.into())).ok());
        if !severity.is_some_and(|s| self.severities.contains(&s)) {
            return Ok(());
        }
        // Rate-limited on the alerts' own clock: the same alerts are
        // spoken whether a file runs at 6× real time or a camera at 1×.
        let at = chrono::DateTime::parse_from_rfc3339(&e.utc)
            .map(|t| t.timestamp_millis())
            .unwrap_or(0);
        let gap = i64::try_from(self.min_interval.as_millis()).unwrap_or(i64::MAX);
        if self.last.is_some_and(|t| at >= t && at - t < gap) {
            self.skipped += 1;
            tracing::info!(
                event = %e.event,
                "[sinks.speak] alert not spoken: another was, less than {:?} ago",
                self.min_interval
            );
            return Ok(());
        }
        let text = sentence(e);
        if let Some(dir) = &self.dir {
            let folder = dir.join(safe(&e.stream));
            std::fs::create_dir_all(&folder)
                .map_err(|err| Failed(format!("cannot create {}: {err}", folder.display())))?;
            let name = format!(
                "{}-{}",
                e.utc.replace([':', '-'], ""),
                safe(e.labels.first().map(String::as_str).unwrap_or("rule"))
            );
            let wav = folder.join(format!("{name}.wav"));
            let part = folder.join(format!("{name}.wav.part"));
            self.speak(&text, Some(&part)).map_err(Failed)?;
            std::fs::rename(&part, &wav)
                .map_err(|err| Failed(format!("cannot write {}: {err}", wav.display())))?;
            std::fs::write(wav.with_extension("txt"), format!("{text}\n"))
                .map_err(|err| Failed(format!("cannot write beside {}: {err}", wav.display())))?;
            self.prune(dir);
        }
        if self.play
            && let Err(err) = self.speak(&text, None)
            && !self.play_failed
        {
            self.play_failed = true;
            tracing::warn!("[sinks.speak] cannot play on the audio device: {err}");
        }
        self.last = Some(at);
        Ok(())
    }
}

#[async_trait::async_trait]
impl Transport for SpeakTransport {
    async fn deliver(&mut self, batch: &[Outgoing]) -> Result<(), Failed> {
        for o in batch.iter().filter(|o| o.kind_of == "event") {
            // Only a rule's start is an alert: parsed only then.
            if !(o.json.contains("\"kind\":\"rule\"") && o.json.contains("\"phase\":\"start\"")) {
                continue;
            }
            if let Ok(Record::Event(e)) = serde_json::from_str::<Record>(&o.json)
                && e.kind == "rule"
                && e.phase == Phase::Start
            {
                self.alert(&e)?;
            }
        }
        Ok(())
    }

    async fn close(&mut self) {}
}

/// A name fit for a file: letters, digits, `_`, `.` and `-`.
fn safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// What a fact says, fit to be spoken and heard back: no track numbers,
/// no brackets, an article before a bare label, and "detected" for
/// "heard" (which Whisper hears as "third" in espeak-ng's voice).
fn speakable(says: &str) -> String {
    let words: Vec<String> = says
        .split_whitespace()
        .filter(|w| !(w.starts_with('#') && w[1..].chars().all(|c| c.is_ascii_digit())))
        .map(|w| w.replace(['(', ')'], "").replace('_', " "))
        .filter(|w| !w.is_empty())
        .collect();
    let article = |w: &str| {
        if w.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        }
    };
    match words.as_slice() {
        [] => String::new(),
        // An object term says its label alone ("person #3").
        [label] => format!("{} {label} in view", article(label)),
        // "person in junction".
        [label, at, place @ ..] if at == "in" => {
            format!("{} {label} in the {}", article(label), place.join(" "))
        }
        [rest @ .., last] if last == "heard" => format!("{} detected", rest.join(" ")),
        _ => words.join(" "),
    }
}

/// The alert in a sentence, worded to be understood over a loudspeaker:
/// "Alert on walkway, severity high: siren near people. Police car siren
/// detected, and a person in view."
pub fn sentence(e: &EventRecord) -> String {
    let severity = e
        .details
        .get("severity")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let place = match &e.zone {
        Some(z) => format!("at the {}", z.replace('_', " ")),
        None => format!("on {}", e.stream.replace('_', " ")),
    };
    let name = e
        .labels
        .first()
        .map(|n| n.replace('_', " "))
        .unwrap_or_else(|| "a rule".into());
    let mut s = format!("Alert {place}, severity {severity}: {name}.");
    let mut facts: Vec<String> = Vec::new();
    for term in e
        .details
        .get("evidence")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let says = term
            .get("facts")
            .and_then(Value::as_array)
            .and_then(|f| f.first())
            .and_then(|f| f.get("says"))
            .or_else(|| term.get("says"))
            .and_then(Value::as_str);
        if let Some(says) = says.map(speakable).filter(|t| !t.is_empty())
            && !facts.contains(&says)
        {
            facts.push(says);
        }
    }
    if let Some(last) = facts.pop() {
        let mut said = facts.join(", ");
        if !said.is_empty() {
            said.push_str(", and ");
        }
        said.push_str(&last);
        let mut c = said.chars();
        s.push(' ');
        if let Some(f) = c.next() {
            s.extend(f.to_uppercase());
            s.push_str(c.as_str());
        }
        s.push('.');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(zone: Option<&str>) -> EventRecord {
        serde_json::from_value(serde_json::json!({
            "run": "R", "id": "walkway/9", "event": "walkway/rule/siren_near_people/1",
            "stream": "walkway", "kind": "rule", "phase": "start", "start": 51.6, "end": null,
            "utc": "2026-12-05T19:00:51.600Z", "score": 0.9, "labels": ["siren_near_people"],
            "track": 18, "zone": zone, "bbox": null, "snapshot": null,
            "details": {"severity": "high", "evidence": [
                {"term": "sound(siren)", "says": "police car (siren) heard", "facts": [{"says": "police car (siren) heard"}]},
                {"term": "object(person)", "says": "person #18", "facts": [{"says": "person #18"}, {"says": "person #23"}]}
            ]}
        }))
        .expect("a rule event")
    }

    #[test]
    fn an_alert_is_a_sentence_without_numbers_or_brackets() {
        assert_eq!(
            sentence(&rule(None)),
            "Alert on walkway, severity high: siren near people. Police car siren detected, and a person in view."
        );
        assert_eq!(
            sentence(&rule(Some("front_door"))),
            "Alert at the front door, severity high: siren near people. Police car siren detected, and a person in view."
        );
        assert_eq!(
            speakable("person #24 in junction"),
            "a person in the junction"
        );
        assert_eq!(speakable("someone speaks"), "someone speaks");
    }

    #[tokio::test]
    async fn alerts_of_chosen_severities_become_wav_files_rate_limited() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config: SpeakConfig = toml::from_str("min_interval = \"1h\"").expect("config");
        let mut t = config
            .build()
            .expect("espeak-ng is installed")
            .writing_under(dir.path(), Path::new("alerts"));
        let out = |e: &EventRecord, seq: i64| Outgoing {
            seq,
            run: "R".into(),
            id: e.id.clone(),
            stream: e.stream.clone(),
            kind_of: "event".into(),
            json: serde_json::to_string(&Record::Event(e.clone())).expect("json"),
            stored_ns: None,
        };
        let mut low = rule(None);
        low.details.insert("severity".into(), "low".into());
        let mut second = rule(None);
        second.utc = "2026-12-05T19:01:30.000Z".into();
        t.deliver(&[out(&low, 1), out(&rule(None), 2), out(&second, 3)])
            .await
            .expect("delivered");
        let folder = dir.path().join("alerts/walkway");
        let wav = folder.join("20261205T190051.600Z-siren_near_people.wav");
        let bytes = std::fs::read(&wav).expect("the alert's WAV");
        assert_eq!(&bytes[..4], b"RIFF");
        assert!(bytes.len() > 20_000, "{} bytes", bytes.len());
        assert_eq!(
            std::fs::read_to_string(wav.with_extension("txt")).expect("its sentence"),
            format!("{}\n", sentence(&rule(None)))
        );
        // The low one is not spoken; the second high one comes too soon.
        assert_eq!(std::fs::read_dir(&folder).expect("folder").count(), 2);
        assert_eq!(t.skipped, 1);
    }
}
