//! Speech to text with Whisper tiny.en on ONNX Runtime, through the model's
//! API, on recordings with known words.

use vigil::config::Provider;
use vigil::encode::whisper::{Transcript, Whisper};

use crate::clip;
use crate::frames;

const SECOND: u64 = 1_000_000_000;

fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect()
}

/// Word error rate of `got` against `truth`: word-level edit distance over
/// the number of true words.
pub fn wer(truth: &str, got: &str) -> f64 {
    let (t, g) = (words(truth), words(got));
    let mut row: Vec<usize> = (0..=g.len()).collect();
    for (i, tw) in t.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, gw) in g.iter().enumerate() {
            let cost = if tw == gw { prev } else { prev + 1 };
            prev = row[j + 1];
            row[j + 1] = cost.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[g.len()] as f64 / t.len().max(1) as f64
}

fn transcribe(samples: &[f32]) -> Option<Transcript> {
    let mut w = Whisper::load(2, Provider::Cpu).expect("whisper_tiny_en (make setup)");
    w.transcribe(samples).expect("inference")
}

const JFK: &str = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country.";

#[test]
fn jfk_word_for_word_and_on_time() {
    let t = transcribe(&frames::audio(&clip::shared("jfk.wav"))).expect("a transcript");
    let text = t.text();
    let rate = wer(JFK, &text);
    eprintln!(
        "jfk: {text:?} WER {:.1}% {:?} no-speech {} logprob {}",
        rate * 100.0,
        t.pieces,
        t.no_speech_prob,
        t.avg_logprob
    );
    assert!(rate <= 0.10, "WER {rate}: {text}");
    // The voice runs from about 0.3 s to 10.6 s of the 11 s.
    let (first, last) = (&t.pieces[0], &t.pieces[t.pieces.len() - 1]);
    assert!(first.start <= SECOND * 8 / 10, "{:?}", t.pieces);
    assert!(
        last.end >= 10 * SECOND && last.end <= 11 * SECOND,
        "{:?}",
        t.pieces
    );
}

#[test]
fn lj_speech_at_22_khz() {
    let t = transcribe(&frames::audio(&clip::shared("LJ050-0131.wav"))).expect("a transcript");
    let truth = "unless a system is established for the frequent formal review of activities thereunder. in this regard";
    let rate = wer(truth, &t.text());
    eprintln!("LJ050-0131: {:?} WER {:.1}%", t.text(), rate * 100.0);
    assert!(rate <= 0.15, "WER {rate}: {}", t.text());
}

#[test]
fn silence_and_noise_give_no_transcript() {
    let silence = vec![0.0f32; 10 * 16_000];
    let s = transcribe(&silence);
    eprintln!(
        "silence: {:?}",
        s.as_ref().map(|t| (
            t.text(),
            t.no_speech_prob,
            t.avg_logprob,
            t.compression_ratio
        ))
    );
    // White noise at -20 dBFS RMS, reproducible.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<f32> = (0..10 * 16_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.35
        })
        .collect();
    let t = transcribe(&noise);
    eprintln!(
        "noise: {:?}",
        t.as_ref().map(|t| (
            t.text(),
            t.no_speech_prob,
            t.avg_logprob,
            t.compression_ratio
        ))
    );
    assert!(s.is_none());
    assert!(t.is_none(), "{:?}", t.map(|t| t.text()));
}

#[test]
fn word_error_rate_counts_edits() {
    assert_eq!(wer("a b c d", "a b c d"), 0.0);
    assert_eq!(wer("a b c d", "a x c"), 0.5);
    assert_eq!(wer("Ask not, what", "ask NOT what"), 0.0);
}

/// `(start, end, text)` of every transcript of a run of the built-in
/// pipeline on `path`.
fn transcripts(path: &std::path::Path) -> Vec<(f64, f64, String)> {
    let r = crate::run::run_file(path);
    assert!(r.ok(), "{}", r.stderr());
    crate::run::transcripts(&r.records())
        .map(|x| {
            (
                crate::run::secs(x.start),
                crate::run::secs(x.end),
                x.text.clone(),
            )
        })
        .collect()
}

fn joined(t: &[(f64, f64, String)]) -> String {
    t.iter().map(|x| x.2.as_str()).collect::<Vec<_>>().join(" ")
}

/// jfk.wav re-encoded by GStreamer (`encoder ! muxer`), into `dir`.
fn reencode(dir: &std::path::Path, name: &str, chain: &str) -> std::path::PathBuf {
    let out = dir.join(name);
    let status = std::process::Command::new("gst-launch-1.0")
        .arg("-q")
        .args(
            format!(
                "filesrc location={} ! wavparse ! audioconvert ! audioresample ! {chain} ! filesink location={}",
                clip::shared("jfk.wav").display(),
                out.display()
            )
            .split_whitespace(),
        )
        .status()
        .expect("gst-launch-1.0");
    assert!(status.success(), "{chain}");
    out
}

#[test]
fn jfk_in_a_pipeline_as_wav_mp3_and_aac_in_mp4() {
    let dir = tempfile::tempdir().expect("tmp");
    let files = [
        clip::shared("jfk.wav"),
        reencode(dir.path(), "jfk.mp3", "lamemp3enc bitrate=128 ! id3v2mux"),
        reencode(dir.path(), "jfk.mp4", "avenc_aac ! mp4mux"),
    ];
    for f in files {
        let t = transcripts(&f);
        let text = joined(&t);
        let rate = wer(JFK, &text);
        eprintln!("{}: {text:?} WER {:.1}% {t:?}", f.display(), rate * 100.0);
        assert!(rate <= 0.10, "{}: WER {rate}: {text}", f.display());
        // The voice runs from about 0.35 s to 10.6 s.
        let (first, last) = (t[0].0, t[t.len() - 1].1);
        assert!(
            (first - 0.35).abs() <= 0.5,
            "{}: starts at {first}",
            f.display()
        );
        assert!(
            (last - 10.6).abs() <= 0.5,
            "{}: ends at {last}",
            f.display()
        );
    }
}

#[test]
fn a_phone_call_with_two_speakers() {
    let stm: Vec<(f64, f64, String)> = std::fs::read_to_string(clip::shared("sample.stm"))
        .expect("sample.stm")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                f.get(3)?.parse().ok()?,
                f.get(4)?.parse().ok()?,
                f.get(5..)?.join(" "),
            ))
        })
        .collect();
    let t = transcripts(&clip::shared("sample.wav"));
    let rate = wer(&joined(&stm), &joined(&t));
    eprintln!("sample.wav: WER {:.1}%: {:?}", rate * 100.0, joined(&t));
    assert!(rate <= 0.35, "WER {rate}");
    for (start, end, text) in &t {
        assert!(
            stm.iter().any(|(a, b, _)| a < end && b > start),
            "{start}–{end} {text:?} overlaps no utterance"
        );
    }
    assert!(t[0].0 >= 6.5, "nothing is said before 6.68 s: {t:?}");
}
