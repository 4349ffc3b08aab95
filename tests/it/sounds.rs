//! Sound events with the real YAMNet model on recordings with known content.

use vigil::record::Phase;

use crate::clip;
use crate::run::{end_secs, run_file, secs};

/// `(label, start, end)` of every closed `sound` event.
fn sounds(path: &std::path::Path) -> Vec<(String, f64, f64)> {
    let r = run_file(path);
    assert!(r.ok(), "{}", r.stderr());
    r.assert_lifecycles_closed();
    r.events("sound", Phase::End)
        .iter()
        .map(|e| {
            (
                e.labels.first().cloned().unwrap_or_default(),
                secs(e.start),
                end_secs(e),
            )
        })
        .collect()
}

#[test]
fn the_soundscape_siren_and_voice_are_heard_when_they_sound() {
    // soundscape_20200501_22050.txt: siren 2.0–7.0 s, car horn 5.0–5.69 s,
    // human voice 7.0–7.97 s.
    let s = sounds(&clip::shared("soundscape_20200501_22050.wav"));
    eprintln!("soundscape: {s:?}");
    let siren: Vec<_> = s.iter().filter(|x| x.0 == "siren").collect();
    assert_eq!(siren.len(), 1, "{s:?}");
    let (_, start, end) = siren[0];
    assert!((start - 2.0).abs() <= 0.75, "siren starts at {start}");
    assert!(
        *start < 7.0 && *end > 2.0 && *end >= 5.0,
        "siren {start}–{end}"
    );
    let speech: Vec<_> = s.iter().filter(|x| x.0 == "speech").collect();
    assert!(
        speech
            .iter()
            .any(|(_, a, b)| *a < 7.97 && *b > 7.0 && (a - 7.0).abs() <= 0.75),
        "{s:?}"
    );
}

#[test]
fn jfk_is_speech_and_neither_siren_nor_dog() {
    let s = sounds(&clip::shared("jfk.wav"));
    eprintln!("jfk: {s:?}");
    let speech: f64 = s
        .iter()
        .filter(|x| x.0 == "speech")
        .map(|(_, a, b)| b - a)
        .sum();
    assert!(speech >= 7.0, "{speech} s of speech in {s:?}");
    assert!(!s.iter().any(|x| x.0 == "siren" || x.0 == "dog"), "{s:?}");
}
