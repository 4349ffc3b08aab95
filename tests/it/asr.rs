//! Speech to text with Whisper tiny.en on ONNX Runtime, through the model's
//! API, on recordings with known words.

use vigil::encode::runtime::Provider;
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
