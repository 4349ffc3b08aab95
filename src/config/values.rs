//! Pipeline file values: defaults, and the checks that run while a value is
//! parsed (so that a bad one is reported at its line and column).

use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use crate::time::Duration;

pub(super) fn default_fps() -> u32 {
    5
}
pub(super) fn default_width() -> u32 {
    640
}
pub(super) fn default_max_skew() -> Duration {
    Duration::from_millis(500)
}
pub(super) fn default_motion_threshold() -> f32 {
    0.005
}
pub(super) fn default_pixel_threshold() -> u8 {
    25
}
pub(super) fn default_motion_width() -> u32 {
    160
}
pub(super) fn default_motion_cooldown() -> Duration {
    Duration::from_secs(2)
}
pub(super) fn default_loud_db() -> f32 {
    -30.0
}
pub(super) fn default_loud_cooldown() -> Duration {
    Duration::from_secs(1)
}
pub(super) fn default_face_threshold() -> f32 {
    0.75
}
pub(super) fn default_face_iou() -> f32 {
    0.3
}
pub(super) fn default_vad_threshold() -> f32 {
    0.5
}
pub(super) fn default_min_speech() -> Duration {
    Duration::from_millis(250)
}
pub(super) fn default_min_silence() -> Duration {
    Duration::from_millis(300)
}
pub(super) fn default_jsonl_path() -> PathBuf {
    "events.jsonl".into()
}
pub(super) fn default_vtt_path() -> PathBuf {
    "captions.vtt".into()
}
pub(super) fn default_gallery_path() -> PathBuf {
    "faces.db".into()
}
pub(super) fn default_max_face_distance() -> f32 {
    1.0
}
pub(super) fn default_max_unknown() -> usize {
    1000
}
pub(super) fn default_min_face_pixels() -> u32 {
    40
}
/// A distance between unit vectors: 0 to 2.
pub(super) fn face_distance<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    let v = f32::deserialize(d)?;
    if !(0.0..=2.0).contains(&v) {
        return Err(serde::de::Error::custom(format!(
            "max_distance {v}: expected 0 to 2 (the L2 distance between unit embeddings)"
        )));
    }
    Ok(v)
}
pub(super) fn default_store_path() -> PathBuf {
    "events.db".into()
}
pub(super) fn default_srt_path() -> PathBuf {
    "captions.srt".into()
}

pub(super) fn stream_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.is_empty()
        || s.len() > 64
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(serde::de::Error::custom(format!(
            "invalid stream name `{s}`: expected 1 to 64 letters, digits, `-`, `_` or `.`"
        )));
    }
    Ok(s)
}

pub(super) fn expanded<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    expand(&s).map_err(serde::de::Error::custom)
}

/// Expands `${VAR}`, `${VAR:-default}` and a leading `~` in a path or URI.
pub fn expand(s: &str) -> std::result::Result<String, String> {
    let env = shellexpand::env(s).map_err(|e| format!("cannot expand `{s}`: {e}"))?;
    Ok(shellexpand::tilde(&env).into_owned())
}

pub(super) fn ranged<'de, D, T>(d: D, lo: T, hi: T, what: &str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + PartialOrd + std::fmt::Display + Copy,
{
    let v = T::deserialize(d)?;
    // Written so that NaN is out of range too.
    let inside = v >= lo && v <= hi;
    if !inside {
        return Err(serde::de::Error::custom(format!(
            "{what} {v} is out of range: expected {lo} to {hi}"
        )));
    }
    Ok(v)
}

pub(super) fn fps<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    ranged(d, 1, 60, "fps")
}
pub(super) fn frame_side<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    ranged(d, 16, 3840, "frame size")
}
pub(super) fn opt_frame_side<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    frame_side(d).map(Some)
}
pub(super) fn opt_decode_threads<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    ranged(d, 0, 64, "decode_threads").map(Some)
}
pub(super) fn fraction<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    ranged(d, 0.0, 1.0, "fraction")
}
pub(super) fn grey_level<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    ranged(d, 1, 255, "grey level")
}
pub(super) fn dbfs<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    ranged(d, -120.0, 0.0, "level in dBFS")
}

/// A duration checked, as it is parsed, against the range `B` names (so a
/// value out of range is reported at its line and column); when the file
/// does not give it, `B`'s default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounded<B>(Duration, PhantomData<B>);

/// What a [`Bounded`] duration may be, what it is when not written, and
/// the name its errors give it.
pub trait Bounds {
    const NAME: &'static str;
    const LO: Duration;
    const HI: Duration;
    const DEFAULT: Duration;
}

impl<B: Bounds> Bounded<B> {
    /// Panics when `d` is out of range (at compile time in a const).
    pub const fn new(d: Duration) -> Self {
        assert!(
            B::LO.nanos() <= d.nanos() && d.nanos() <= B::HI.nanos(),
            "a bounded duration out of its range"
        );
        Bounded(d, PhantomData)
    }

    pub fn get(self) -> Duration {
        self.0
    }

    pub fn nanos(self) -> u64 {
        self.0.nanos()
    }
}

impl<B: Bounds> Default for Bounded<B> {
    fn default() -> Self {
        const { Bounded::new(B::DEFAULT) }
    }
}

impl<B> std::fmt::Display for Bounded<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<B> Serialize for Bounded<B> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, B: Bounds> Deserialize<'de> for Bounded<B> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Duration::deserialize(d)?;
        if v < B::LO || v > B::HI {
            return Err(serde::de::Error::custom(format!(
                "{} {v} is out of range: expected {} to {}",
                B::NAME,
                B::LO,
                B::HI
            )));
        }
        Ok(Bounded(v, PhantomData))
    }
}

/// The bounded durations of a pipeline file, one type each.
pub mod bounds {
    use super::Bounds;
    use crate::time::Duration;

    const ZERO: Duration = Duration::ZERO;
    const fn millis(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }
    const fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    macro_rules! bounds {
        ($(
            $(#[$doc:meta])*
            $type:ident { name: $name:literal, lo: $lo:expr, hi: $hi:expr, default: $default:expr }
        )*) => {$(
            $(#[$doc])*
            #[derive(Clone, Copy, Debug, PartialEq, Eq)]
            pub enum $type {}

            impl Bounds for $type {
                const NAME: &'static str = $name;
                const LO: Duration = $lo;
                const HI: Duration = $hi;
                const DEFAULT: Duration = $default;
            }
        )*};
    }

    bounds! {
        /// `[[sources]] latency`: the RTSP jitter buffer's.
        Latency { name: "latency", lo: ZERO, hi: secs(10), default: millis(200) }
        /// `[[sources]] stall`.
        Stall { name: "stall", lo: secs(1), hi: secs(600), default: secs(10) }
        /// `[[sources]] retry_max`.
        SourceRetryMax { name: "retry_max", lo: secs(1), hi: secs(3600), default: secs(30) }
        /// `[sync] hop`.
        Hop { name: "hop", lo: millis(100), hi: secs(10), default: secs(1) }
        /// `[fusion] caption_span`.
        CaptionSpan { name: "caption_span", lo: secs(1), hi: secs(60), default: secs(5) }
        /// `[fusion.tracker] lost_after`.
        LostAfter { name: "lost_after", lo: millis(100), hi: secs(60), default: secs(2) }
        /// `[[rules]] within`.
        Within { name: "within", lo: ZERO, hi: secs(600), default: ZERO }
        /// `batch.max_wait` of a model's encoder.
        MaxWait { name: "max_wait", lo: ZERO, hi: secs(1), default: millis(10) }
        /// `[encoders.asr] max_segment`.
        MaxSegment { name: "max_segment", lo: secs(2), hi: secs(30), default: secs(30) }
        /// `[encoders.asr] context`.
        Context { name: "context", lo: ZERO, hi: secs(1), default: millis(200) }
        /// A live sink's `retry_max`.
        DeliveryRetryMax { name: "retry_max", lo: millis(100), hi: secs(3600), default: secs(30) }
        /// A live sink's `drain`.
        Drain { name: "drain", lo: ZERO, hi: secs(24 * 3600), default: secs(10) }
        /// A live sink's `timeout`.
        Timeout { name: "timeout", lo: millis(100), hi: secs(600), default: secs(10) }
        /// `[encoders.detector] refresh`: how often an object the detector
        /// found is looked at again, moving or not.
        Refresh { name: "refresh", lo: millis(100), hi: secs(60), default: secs(1) }
        /// `[encoders.detector] full_every`: how often the whole picture is
        /// looked at, motion or not.
        FullEvery { name: "full_every", lo: millis(100), hi: secs(3600), default: secs(10) }
        /// `[recording] pre_roll`: kept before an event's start.
        PreRoll { name: "pre_roll", lo: ZERO, hi: secs(60), default: secs(5) }
        /// `[recording] post_roll`: kept after an event's end.
        PostRoll { name: "post_roll", lo: ZERO, hi: secs(300), default: secs(5) }
        /// `[recording] max_clip`: the longest one clip gets.
        MaxClip { name: "max_clip", lo: secs(5), hi: secs(3600), default: secs(300) }
        /// `[recording] segment`: the length of a continuous recording's files.
        Segment { name: "segment", lo: secs(2), hi: secs(3600), default: secs(60) }
        /// `[sinks.mqtt] keep_alive`.
        KeepAlive { name: "keep_alive", lo: secs(1), hi: secs(3600), default: secs(30) }
    }
}

/// A size written in MiB, fractions allowed (`0.5` is 512 KiB), kept in
/// bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mib(u64);

impl Mib {
    /// Whole MiB.
    pub const fn whole(mib: u64) -> Mib {
        Mib(mib << 20)
    }

    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl serde::Serialize for Mib {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_multiple_of(1 << 20) {
            s.serialize_u64(self.0 >> 20)
        } else {
            s.serialize_f64(self.0 as f64 / (1u64 << 20) as f64)
        }
    }
}

/// The smallest size a `max_size_mib` may be: 1 KiB.
const MIN_MIB: f64 = 1.0 / 1024.0;

pub(super) fn opt_mib<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Mib>, D::Error> {
    let v: f64 = ranged(d, MIN_MIB, (1u64 << 30) as f64, "max_size_mib")?;
    Ok(Some(Mib((v * (1u64 << 20) as f64).round() as u64)))
}

pub(super) fn default_keep() -> usize {
    10
}

pub(super) fn keep<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    ranged(d, 0, 100_000, "keep")
}

pub(super) fn default_min_free_mib() -> u64 {
    1024
}

pub(super) fn min_free_mib<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    ranged(d, 0, 1 << 30, "min_free_mib")
}

/// A stream name from a path or URI: the file stem, cleaned up.
pub(super) fn stem_name(uri: &str) -> String {
    let last = uri
        .trim_end_matches('/')
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(uri);
    let stem = last.split('?').next().unwrap_or(last);
    let stem = Path::new(stem)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if clean.is_empty() {
        "stream".into()
    } else {
        clean
    }
}

/// `line:column: message`, from a byte span of `text`.
pub fn locate(text: &str, span: Option<std::ops::Range<usize>>, message: &str) -> String {
    let Some(span) = span else {
        return message.to_string();
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("{line}:{col}: {}", message.trim())
}

/// An `IP:port` socket address, with a message that says so.
pub(super) fn socket_addr<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<std::net::SocketAddr, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "`{s}` is not an address to listen on: expected IP:port, e.g. `127.0.0.1:9090` or `0.0.0.0:9090` (host names are not looked up)"
        ))
    })
}

/// A check that failed after parsing, and how to find its place in the text.
pub(super) struct Problem {
    pub message: String,
    pub find: Find,
}

/// Where a problem is in a pipeline file.
pub(super) enum Find {
    /// The line that starts with this key or table header.
    Key(&'static str),
    /// The `n`th (1-based) `key = "value"`.
    Value(&'static str, String, usize),
    /// Character `column` (1-based) inside the string of the `n`th
    /// `key = "value"`.
    InValue(&'static str, String, usize, usize),
}

impl Find {
    /// Byte offset of the place in `text`, if it is there as written.
    pub fn locate(&self, text: &str) -> Option<usize> {
        let mut offset = 0;
        let mut seen = 0;
        for line in text.split_inclusive('\n') {
            let trimmed = line.trim_start();
            let at = offset + (line.len() - trimmed.len());
            offset += line.len();
            match self {
                Find::Key(key) => {
                    let rest = trimmed.strip_prefix(key);
                    if rest.is_some_and(|r| key.starts_with('[') || r.trim_start().starts_with('='))
                    {
                        return Some(at);
                    }
                }
                Find::InValue(key, value, n, column) => {
                    let Some((k, v)) = trimmed.split_once('=') else {
                        continue;
                    };
                    let quote = v.find(['"', '\'']);
                    let inner = quote.map(|q| &v[q + 1..]);
                    if k.trim() == *key && inner.is_some_and(|i| i.starts_with(value.as_str())) {
                        seen += 1;
                        if seen == *n {
                            let q = quote.unwrap_or(0);
                            let into: usize = v[q + 1..]
                                .chars()
                                .take(column.saturating_sub(1))
                                .map(char::len_utf8)
                                .sum();
                            return Some(at + k.len() + 1 + q + 1 + into);
                        }
                    }
                }
                Find::Value(key, value, n) => {
                    let Some((k, v)) = trimmed.split_once('=') else {
                        continue;
                    };
                    let v = v
                        .split('#')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .trim_matches(['"', '\'']);
                    if k.trim() == *key && v == value {
                        seen += 1;
                        if seen == *n {
                            return Some(at);
                        }
                    }
                }
            }
        }
        None
    }
}

pub(super) fn opt_threads<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    ranged(d, 1, 256, "threads").map(Some)
}

/// `#[serde(default = "default_true")]`: on unless said otherwise.
pub fn default_true() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PipelineConfig;

    fn parse(text: &str) -> Result<PipelineConfig, String> {
        PipelineConfig::parse(text, Path::new("p.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_bounded_duration_out_of_range_is_reported_at_its_value() {
        let e = parse("[sync]\nhop = \"20s\"\n").unwrap_err();
        assert!(
            e.contains("2:7") && e.contains("hop 20s is out of range: expected 100ms to 10s"),
            "{e}"
        );
        let e = parse("[[sources]]\nname = \"a\"\nuri = \"x\"\nstall = \"500ms\"\n").unwrap_err();
        assert!(
            e.contains("4:9") && e.contains("stall 500ms is out of range: expected 1s to 10m"),
            "{e}"
        );
        let e = parse("[sinks.webhook]\nurl = \"http://h\"\ndrain = 5\n").unwrap_err();
        assert!(
            e.contains("3:9") && e.contains("a duration needs a unit: write `\"5s\"`"),
            "{e}"
        );
    }

    #[test]
    fn durations_are_written_as_they_are_read() {
        let p = parse(
            "[sync]\nhop = \"500ms\"\n[sinks.store]\nmax_age = \"1day 2h\"\n\
             [[sources]]\nname = \"a\"\nuri = \"x\"\nlatency = \"1s 500ms\"\n",
        )
        .unwrap();
        fn json(v: &impl Serialize) -> String {
            serde_json::to_string(v).unwrap()
        }
        assert_eq!(json(&p.sync), r#"{"hop":"500ms","max_skew":"500ms"}"#);
        assert_eq!(
            json(&p.sources[0]),
            r#"{"name":"a","uri":"x","transport":"tcp","latency":"1s 500ms","stall":"10s","retry_max":"30s","fps":5,"width":640,"height":null}"#
        );
        let store = p.sinks.store.as_ref().unwrap();
        assert!(
            json(store).contains(r#""max_age":"1day 2h""#),
            "{}",
            json(store)
        );
        assert_eq!(
            store.max_age.map(Duration::nanos),
            Some(26 * 3600 * 1_000_000_000)
        );
    }
}
