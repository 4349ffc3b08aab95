//! Stream time: integer nanoseconds, spans, and exact sample <-> time conversion.
//!
//! Nothing in the pipeline does float time arithmetic; seconds as `f64` appear
//! only when a record is written out.

use std::fmt;

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
    fn display_has_millisecond_precision() {
        assert_eq!(Timestamp(3_037_400_000).to_string(), "3.037s");
        assert_eq!(Timestamp(3_037_600_000).as_secs_f64_ms(), 3.038);
    }
}
