//! One backoff for everything that retries (a camera reconnecting, a live
//! sink resending): exponential from a first wait up to a ceiling, drawn
//! from the upper half so that clients that failed together do not all
//! knock again at once.

use std::time::Duration;

use rand::Rng;

/// The wait before attempt `failures + 1`: `first` doubled for each
/// failure after the first, at most `max`, jittered over its upper half.
pub fn backoff(first: Duration, failures: u32, max: Duration) -> Duration {
    let exp = first.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    let ceiling = exp.min(max);
    let floor = ceiling / 2;
    let span = u64::try_from((ceiling - floor).as_millis()).unwrap_or(u64::MAX);
    floor + Duration::from_millis(rand::rng().random_range(0..=span))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_ceiling_with_jitter() {
        let (first, max) = (Duration::from_millis(250), Duration::from_secs(30));
        for _ in 0..50 {
            let once = backoff(first, 1, max);
            assert!(once >= Duration::from_millis(125) && once <= first);
            let fourth = backoff(first, 4, max);
            assert!(fourth >= Duration::from_secs(1) && fourth <= Duration::from_secs(2));
            let late = backoff(first, 60, max);
            assert!(late >= Duration::from_secs(15) && late <= max);
        }
        let waits: std::collections::HashSet<_> = (0..50).map(|_| backoff(first, 8, max)).collect();
        assert!(waits.len() > 10, "jittered: {} distinct waits", waits.len());
    }
}
