//! Sample-exact audio assembly: blocks placed by PTS, gaps filled, overlaps trimmed.

use std::collections::VecDeque;

/// Blocks whose start is within this many samples of where the previous block
/// ended are taken as contiguous: resamplers and containers round timestamps,
/// and a sub-millisecond wobble is not a gap.
pub const JITTER_SAMPLES: u64 = 8;

/// A stretch of the track: samples as they came, or silence not yet made.
#[derive(Debug)]
enum Segment {
    Samples(Vec<f32>),
    /// `gap`: silence standing in for missing audio (flagged), as opposed to
    /// padding after the branch ended.
    Silence {
        len: u64,
        gap: bool,
    },
}

impl Segment {
    fn len(&self) -> u64 {
        match self {
            Segment::Samples(v) => v.len() as u64,
            Segment::Silence { len, .. } => *len,
        }
    }
}

/// The audio branch of one stream, as a queue of samples indexed from 0.
///
/// Silence is kept as a length and made only when a chunk takes it, so a
/// jump in timestamps costs no memory however long it is.
#[derive(Debug, Default)]
pub struct AudioTrack {
    /// Index of the first sample held.
    base: u64,
    /// Samples of the front segment already taken.
    head: u64,
    /// Contiguous from `base - head`.
    segments: VecDeque<Segment>,
    /// Samples held, from `base`.
    held: u64,
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
        self.base + self.held
    }

    fn append(&mut self, segment: Segment) {
        let n = segment.len();
        if n == 0 {
            return;
        }
        self.held += n;
        // Adjacent silences merge, so that a long run of them stays one entry.
        if let (
            Segment::Silence { len, gap },
            Some(Segment::Silence {
                len: last,
                gap: last_gap,
            }),
        ) = (&segment, self.segments.back_mut())
            && gap == last_gap
        {
            *last += len;
            return;
        }
        self.segments.push_back(segment);
    }

    /// Places `samples` starting at sample index `start`.
    pub fn push(&mut self, start: u64, samples: &[f32]) {
        let next = self.next();
        if start > next + JITTER_SAMPLES {
            self.fill(start - next);
            self.append(Segment::Samples(samples.to_vec()));
        } else if start + JITTER_SAMPLES < next {
            let skip = (next - start).min(samples.len() as u64) as usize;
            self.trimmed += skip as u64;
            self.append(Segment::Samples(samples[skip..].to_vec()));
        } else {
            self.append(Segment::Samples(samples.to_vec()));
        }
    }

    /// Appends `n` samples of silence, flagged as a gap.
    pub fn fill(&mut self, n: u64) {
        self.filled += n;
        self.append(Segment::Silence { len: n, gap: true });
    }

    /// Appends silence up to sample `end` without flagging it (a branch that
    /// ended before the stream did); returns how many samples were added.
    pub fn pad_to(&mut self, end: u64) -> u64 {
        let n = end.saturating_sub(self.next());
        self.append(Segment::Silence { len: n, gap: false });
        n
    }

    /// Removes `n` samples from the front, appending them to `out` if given;
    /// returns whether any of them was gap fill.
    fn consume(&mut self, mut n: u64, mut out: Option<&mut Vec<f32>>) -> bool {
        let mut gap = false;
        while n > 0 {
            let Some(front) = self.segments.front_mut() else {
                break;
            };
            let avail = front.len() - self.head;
            let k = n.min(avail);
            match front {
                Segment::Samples(v) => {
                    if let Some(out) = out.as_deref_mut() {
                        out.extend_from_slice(&v[self.head as usize..(self.head + k) as usize]);
                    }
                }
                Segment::Silence { gap: g, .. } => {
                    gap |= *g;
                    if let Some(out) = out.as_deref_mut() {
                        out.extend(std::iter::repeat_n(0.0, k as usize));
                    }
                }
            }
            n -= k;
            self.base += k;
            self.held -= k;
            if k == avail {
                self.segments.pop_front();
                self.head = 0;
            } else {
                self.head += k;
            }
        }
        gap
    }

    /// Removes and returns samples `[start, end)`, and whether any were gap fill.
    ///
    /// Samples before `start` that are still queued are discarded (they belong
    /// to spans already emitted); samples not yet placed come back as silence
    /// and count as a gap.
    pub fn take(&mut self, start: u64, end: u64) -> (Vec<f32>, bool) {
        let mut out = Vec::with_capacity(end.saturating_sub(start) as usize);
        let gap = self.take_into(start, end, Some(&mut out));
        (out, gap)
    }

    /// Like [`AudioTrack::take`], without the samples (a span no one will
    /// hear: a live source's outage).
    pub fn skip(&mut self, start: u64, end: u64) -> bool {
        self.take_into(start, end, None)
    }

    fn take_into(&mut self, start: u64, end: u64, out: Option<&mut Vec<f32>>) -> bool {
        debug_assert!(start <= end);
        if start > self.base {
            self.consume(start - self.base, None);
            if self.base < start {
                // Nothing was held that far: the track resumes at `start`.
                self.base = start;
            }
        }
        if self.next() < end {
            self.fill(end - self.next());
        }
        self.consume(end - start, out)
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

    #[test]
    fn a_day_long_gap_costs_no_memory() {
        let day = 16_000 * 86_400;
        let mut t = AudioTrack::new();
        t.push(0, &[1.0; 160]);
        t.push(day, &[2.0; 160]);
        assert_eq!(t.next(), day + 160);
        assert_eq!(t.segments.len(), 3, "samples, one silence, samples");
        let (a, gap) = t.take(0, 16_000);
        assert!(gap && a[..160] == [1.0; 160] && a[160..].iter().all(|&x| x == 0.0));
        let (b, _) = t.take(day, day + 160);
        assert_eq!(b, vec![2.0; 160]);
    }
}
