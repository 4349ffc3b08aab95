//! Sample-exact audio assembly: blocks placed by PTS, gaps filled, overlaps trimmed.

use std::collections::VecDeque;

/// Blocks whose start is within this many samples of where the previous block
/// ended are taken as contiguous: resamplers and containers round timestamps,
/// and a sub-millisecond wobble is not a gap.
pub const JITTER_SAMPLES: u64 = 8;

/// The audio branch of one stream, as a queue of samples indexed from 0.
#[derive(Debug, Default)]
pub struct AudioTrack {
    /// Index of the first sample in `buf`.
    base: u64,
    /// Samples `[base, base + buf.len())`.
    buf: VecDeque<f32>,
    /// Filled (silent) ranges not yet taken, `[start, end)` sample indices.
    gaps: Vec<(u64, u64)>,
    /// Samples trimmed because they overlapped what was already placed.
    pub trimmed: u64,
    /// Samples dropped because they came before stream time zero.
    pub trimmed_before_origin: u64,
    /// Samples of silence inserted for gaps.
    pub filled: u64,
}

impl AudioTrack {
    pub fn new() -> Self {
        Self::default()
    }

    /// One past the last sample placed: the branch's watermark, in samples.
    pub fn next(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    /// Places `samples` starting at sample index `start`.
    pub fn push(&mut self, start: u64, samples: &[f32]) {
        let next = self.next();
        if start > next + JITTER_SAMPLES {
            self.fill(start - next);
            self.buf.extend(samples.iter().copied());
        } else if start + JITTER_SAMPLES < next {
            let skip = (next - start).min(samples.len() as u64) as usize;
            self.trimmed += skip as u64;
            self.buf.extend(samples[skip..].iter().copied());
        } else {
            self.buf.extend(samples.iter().copied());
        }
    }

    /// Appends `n` samples of silence, flagged as a gap.
    pub fn fill(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        let next = self.next();
        self.gaps.push((next, next + n));
        self.filled += n;
        self.buf.extend(std::iter::repeat_n(0.0, n as usize));
    }

    /// Appends silence up to sample `end` without flagging it (a branch that
    /// ended before the stream did); returns how many samples were added.
    pub fn pad_to(&mut self, end: u64) -> u64 {
        let n = end.saturating_sub(self.next());
        self.buf.extend(std::iter::repeat_n(0.0, n as usize));
        n
    }

    /// Removes and returns samples `[start, end)`, and whether any were gap fill.
    ///
    /// Samples before `start` that are still queued are discarded (they belong
    /// to spans already emitted); samples not yet placed come back as silence
    /// and count as a gap.
    pub fn take(&mut self, start: u64, end: u64) -> (Vec<f32>, bool) {
        debug_assert!(start <= end);
        if start > self.base {
            let drop = ((start - self.base) as usize).min(self.buf.len());
            self.buf.drain(..drop);
            self.base = start;
        }
        if self.next() < end {
            self.fill(end - self.next());
        }
        let n = (end - start) as usize;
        let out: Vec<f32> = self.buf.drain(..n).collect();
        self.base = end;
        let gap = self.gaps.iter().any(|&(gs, ge)| gs < end && ge > start);
        self.gaps.retain(|&(_, ge)| ge > end);
        (out, gap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_blocks_concatenate() {
        let mut t = AudioTrack::new();
        t.push(0, &[1.0; 100]);
        t.push(100, &[2.0; 100]);
        let (s, gap) = t.take(0, 200);
        assert_eq!(s.len(), 200);
        assert!(!gap);
        assert_eq!(s[99], 1.0);
        assert_eq!(s[100], 2.0);
    }

    #[test]
    fn gaps_are_filled_and_flagged() {
        let mut t = AudioTrack::new();
        t.push(0, &[1.0; 100]);
        t.push(300, &[2.0; 100]);
        let (a, gap_a) = t.take(0, 100);
        assert!(!gap_a);
        assert_eq!(a, vec![1.0; 100]);
        let (b, gap_b) = t.take(100, 400);
        assert!(gap_b);
        assert_eq!(&b[..200], &[0.0; 200][..]);
        assert_eq!(&b[200..], &[2.0; 100][..]);
    }

    #[test]
    fn overlaps_are_trimmed() {
        let mut t = AudioTrack::new();
        t.push(0, &[1.0; 100]);
        t.push(50, &[2.0; 100]);
        assert_eq!(t.next(), 150);
        assert_eq!(t.trimmed, 50);
    }

    #[test]
    fn small_jitter_is_contiguous() {
        let mut t = AudioTrack::new();
        t.push(0, &[1.0; 100]);
        t.push(103, &[2.0; 100]);
        assert_eq!(t.next(), 200);
        assert_eq!(t.filled, 0);
    }
}
