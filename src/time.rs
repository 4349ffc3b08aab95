//! Stream time: integer nanoseconds, spans, and exact sample <-> time conversion.
//!
//! Nothing in the pipeline does float time arithmetic; seconds as `f64` appear
//! only when a record is written out.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Nanoseconds per second.
pub const SECOND: u64 = 1_000_000_000;
/// Nanoseconds per millisecond.
pub const MILLISECOND: u64 = 1_000_000;
/// Audio sample rate every stream is resampled to.
pub const AUDIO_RATE: u32 = 16_000;

/// A point in stream time, in nanoseconds from the stream's origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub const ZERO: Timestamp = Timestamp(0);
    pub const MAX: Timestamp = Timestamp(u64::MAX);

    pub fn from_millis(ms: u64) -> Self {
        Timestamp(ms * MILLISECOND)
    }

    pub fn nanos(self) -> u64 {
        self.0
    }

    /// Whole milliseconds, rounded to nearest.
    pub fn millis_rounded(self) -> u64 {
        (self.0 + MILLISECOND / 2) / MILLISECOND
    }

    /// Seconds with millisecond precision, for records only.
    pub fn as_secs_f64_ms(self) -> f64 {
        self.millis_rounded() as f64 / 1000.0
    }

    pub fn saturating_sub(self, other: Timestamp) -> Timestamp {
        Timestamp(self.0.saturating_sub(other.0))
    }

    pub fn saturating_add(self, ns: u64) -> Timestamp {
        Timestamp(self.0.saturating_add(ns))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.millis_rounded();
        write!(f, "{}.{:03}s", ms / 1000, ms % 1000)
    }
}

/// A length of time, in nanoseconds.
///
/// Pipeline files write it with a unit (`500ms`, `2s`, `1m 30s`: humantime),
/// never as a bare number; it is written back, and shown, the same way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(u64);

impl Duration {
    pub const ZERO: Duration = Duration(0);

    pub const fn from_nanos(ns: u64) -> Self {
        Duration(ns)
    }

    pub const fn from_millis(ms: u64) -> Self {
        Duration(ms * MILLISECOND)
    }

    pub const fn from_secs(s: u64) -> Self {
        Duration(s * SECOND)
    }

    pub const fn nanos(self) -> u64 {
        self.0
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        std::time::Duration::from_nanos(d.0)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_duration(std::time::Duration::from_nanos(self.0)).fmt(f)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
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
            .map(Duration)
            .map_err(|_| serde::de::Error::custom(format!("duration `{s}` is too long")))
    }
}

/// A half-open interval `[start, end)` of stream time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Span {
    pub fn new(start: Timestamp, end: Timestamp) -> Self {
        debug_assert!(start <= end);
        Span { start, end }
    }

    pub fn duration(&self) -> u64 {
        self.end.0 - self.start.0
    }

    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }
}

/// `a * b / c` without overflow, rounded down.
pub fn mul_div_floor(a: u64, b: u64, c: u64) -> u64 {
    ((a as u128 * b as u128) / c as u128) as u64
}

/// `a * b / c` without overflow, rounded to nearest.
pub fn mul_div_round(a: u64, b: u64, c: u64) -> u64 {
    ((a as u128 * b as u128 + c as u128 / 2) / c as u128) as u64
}

/// `a * b / c` without overflow, rounded up.
pub fn mul_div_ceil(a: u64, b: u64, c: u64) -> u64 {
    (a as u128 * b as u128).div_ceil(c as u128) as u64
}

/// Time of sample `n` at `rate` Hz: `n * 1e9 / rate`, rounded down.
pub fn sample_to_time(n: u64, rate: u32) -> Timestamp {
    Timestamp(mul_div_floor(n, SECOND, rate as u64))
}

/// Index of the first sample at or after `t` at `rate` Hz.
///
/// The inverse of [`sample_to_time`]: `time_to_sample(sample_to_time(n)) == n`.
pub fn time_to_sample(t: Timestamp, rate: u32) -> u64 {
    mul_div_ceil(t.0, rate as u64, SECOND)
}

/// Index of the sample nearest to `t` (for placing a buffer by its PTS).
pub fn time_to_sample_nearest(t: Timestamp, rate: u32) -> u64 {
    mul_div_round(t.0, rate as u64, SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_time_round_trip_is_exact() {
        for n in [0u64, 1, 15, 16, 159, 16_000, 48_592, 1_000_000_007] {
            assert_eq!(time_to_sample(sample_to_time(n, AUDIO_RATE), AUDIO_RATE), n);
            assert_eq!(time_to_sample(sample_to_time(n, 44_100), 44_100), n);
        }
    }

    #[test]
    fn chunk_boundaries_fall_on_samples() {
        // 1 s at 16 kHz is exactly 16000 samples.
        assert_eq!(time_to_sample(Timestamp(SECOND), AUDIO_RATE), 16_000);
        assert_eq!(
            time_to_sample(Timestamp(3_037 * MILLISECOND), AUDIO_RATE),
            48_592
        );
    }

    #[test]
    fn durations_read_and_write_with_a_unit() {
        let read = |v: &str| {
            serde_json::from_str::<Duration>(v)
                .map_err(|e| e.to_string())
                .map(|d| (d, serde_json::to_string(&d).unwrap()))
        };
        assert_eq!(
            read(r#""1m 30s""#),
            Ok((Duration::from_secs(90), r#""1m 30s""#.into()))
        );
        assert_eq!(
            read(r#""250ms""#),
            Ok((Duration::from_millis(250), r#""250ms""#.into()))
        );
        assert_eq!(
            Duration::from_nanos(1_500_000_001).to_string(),
            "1s 500ms 1ns"
        );
        assert!(
            read("2")
                .unwrap_err()
                .contains("needs a unit: write `\"2s\"`")
        );
        assert!(
            read(r#""2 parsecs""#)
                .unwrap_err()
                .contains("invalid duration")
        );
        assert!(read(r#""600000y""#).unwrap_err().contains("is too long"));
    }

    #[test]
    fn display_has_millisecond_precision() {
        assert_eq!(Timestamp(3_037_400_000).to_string(), "3.037s");
        assert_eq!(Timestamp(3_037_600_000).as_secs_f64_ms(), 3.038);
    }
}
