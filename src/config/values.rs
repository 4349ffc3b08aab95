//! Pipeline file values: defaults, and the checks that run while a value is
//! parsed (so that a bad one is reported at its line and column).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use crate::time::{MILLISECOND, SECOND};

pub(super) fn default_fps() -> u32 {
    5
}
pub(super) fn default_width() -> u32 {
    640
}
pub(super) fn default_hop() -> u64 {
    SECOND
}
pub(super) fn default_max_skew() -> u64 {
    500 * MILLISECOND
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
pub(super) fn default_motion_min() -> u64 {
    0
}
pub(super) fn default_motion_cooldown() -> u64 {
    2 * SECOND
}
pub(super) fn default_loud_db() -> f32 {
    -30.0
}
pub(super) fn default_loud_min() -> u64 {
    0
}
pub(super) fn default_loud_cooldown() -> u64 {
    SECOND
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
pub(super) fn default_min_speech() -> u64 {
    250 * MILLISECOND
}
pub(super) fn default_min_silence() -> u64 {
    300 * MILLISECOND
}
pub(super) fn default_caption_span() -> u64 {
    5 * SECOND
}
pub(super) fn default_jsonl_path() -> PathBuf {
    "events.jsonl".into()
}
pub(super) fn default_vtt_path() -> PathBuf {
    "captions.vtt".into()
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
pub(super) fn fraction<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    ranged(d, 0.0, 1.0, "fraction")
}
pub(super) fn grey_level<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    ranged(d, 1, 255, "grey level")
}
pub(super) fn dbfs<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
    ranged(d, -120.0, 0.0, "level in dBFS")
}

/// A duration written as `500ms`, `1s`, `2m`… in nanoseconds.
pub(super) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Text(String),
        Number(f64),
    }
    let s = match Written::deserialize(d)? {
        Written::Text(s) => s,
        Written::Number(n) => {
            return Err(serde::de::Error::custom(format!(
                "a duration needs a unit: write `\"{n}s\"` or e.g. `\"500ms\"`"
            )));
        }
    };
    let v = humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration `{s}` ({e}): expected e.g. `500ms` or `2s`"
        ))
    })?;
    u64::try_from(v.as_nanos())
        .map_err(|_| serde::de::Error::custom(format!("duration `{s}` is too long")))
}

pub(super) fn duration_in<'de, D: Deserializer<'de>>(
    d: D,
    lo: u64,
    hi: u64,
    what: &str,
) -> Result<u64, D::Error> {
    let v = duration(d)?;
    if v < lo || v > hi {
        return Err(serde::de::Error::custom(format!(
            "{what} {} is out of range: expected {} to {}",
            humantime::format_duration(std::time::Duration::from_nanos(v)),
            humantime::format_duration(std::time::Duration::from_nanos(lo)),
            humantime::format_duration(std::time::Duration::from_nanos(hi)),
        )));
    }
    Ok(v)
}

pub(super) fn default_rtsp_latency() -> u64 {
    200 * MILLISECOND
}

pub(super) fn rtsp_latency<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    duration_in(d, 0, 10 * SECOND, "latency")
}

pub(super) fn default_stall() -> u64 {
    10 * SECOND
}

pub(super) fn stall<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    duration_in(d, SECOND, 600 * SECOND, "stall")
}

pub(super) fn default_source_retry_max() -> u64 {
    30 * SECOND
}

pub(super) fn source_retry_max<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    duration_in(d, SECOND, 3600 * SECOND, "retry_max")
}

pub(super) fn hop<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    duration_in(d, 100 * MILLISECOND, 10 * SECOND, "hop")
}

pub(super) fn caption_span<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    duration_in(d, SECOND, 60 * SECOND, "caption_span")
}

pub(super) fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    duration(d).map(Some)
}

pub(super) fn ser_opt_duration<S: serde::Serializer>(
    v: &Option<u64>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => ser_duration(v, s),
        None => s.serialize_none(),
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

pub(super) fn ser_duration<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(std::time::Duration::from_nanos(*v)).to_string())
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
pub(super) fn locate(text: &str, span: Option<std::ops::Range<usize>>, message: &str) -> String {
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
