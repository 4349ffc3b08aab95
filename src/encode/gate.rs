//! Where and when the detector looks: motion-gated, region-cropped
//! detection (as Frigate does on small machines).
//!
//! Most of what a surveillance camera sees is still. With gating on, the
//! detector looks at an analysed frame only
//!
//! - where the picture changed since the previous analysed frame (a crop
//!   around the change, padded; the whole frame when that covers most of
//!   it),
//! - where an object it found is, when that object was last looked at
//!   `refresh` ago or more and its place has changed since (one that
//!   stopped moving is still checked; one whose pixels are as they were
//!   when it was found, a parked car, is still there: looking again would
//!   find the same), and
//! - everywhere, every `full_every` (what arrived without being seen to
//!   move, a parked car, is still found).
//!
//! A frame with none of these is not looked at. The detector says what it
//! looked at with each frame ([`Look`], and the region), so that tracking
//! holds the objects it did not look at where they were instead of losing
//! them.

use std::sync::Arc;

use crate::config::{DetectorConfig, Gating};
use crate::encode::motion::difference;
use crate::geometry::{BBox, Mask};
use crate::media::{Grey, VideoFrame};
use crate::time::Timestamp;

/// Width of the grey image changes are found on.
const GREY_WIDTH: usize = 160;
/// Grey levels a pixel must change by to count (above compression noise).
const PIXEL_THRESHOLD: u8 = 25;
/// Least changed fraction of the picture that is motion.
const MIN_CHANGE: f32 = 0.0005;
/// Padding around a changed region or an object, as a fraction of its own
/// size on each side: a change is often only the moving part of a body.
const PAD: f32 = 0.5;
/// Least side of a crop, as a fraction of the frame's: a crop is scaled up
/// to the model's input, and far more than 3× is not what it was trained on.
const MIN_SIDE: f32 = 0.3;
/// A crop covering this much of the frame or more: the whole frame instead.
const WHOLE: f32 = 0.5;
/// Largest changed fraction of an object's padded box at which its place is
/// as it was when last looked at (compression noise, a leaf).
const STILL: f32 = 0.01;

/// Why an analysed frame was looked at, or that it was not: the `reason`
/// of `vigil_detector_frames_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Look {
    /// Something moved there.
    Motion,
    /// An object found before was due to be looked at again.
    Refresh,
    /// The whole frame, on schedule (or always, with gating off).
    Full,
    /// Not looked at.
    Skipped,
}

impl Look {
    pub fn as_str(self) -> &'static str {
        match self {
            Look::Motion => "motion",
            Look::Refresh => "refresh",
            Look::Full => "full",
            Look::Skipped => "skipped",
        }
    }
}

/// What the detector looks at in one frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plan {
    pub look: Look,
    /// The part of the frame looked at, normalised: `None` for the whole
    /// frame; empty when skipped.
    pub region: Option<BBox>,
}

/// An object found, when its place was last looked at, and the picture
/// then.
#[derive(Clone, Debug)]
struct Known {
    bbox: BBox,
    looked: Timestamp,
    seen: Arc<Grey>,
}

/// The gate of one stream's detector.
pub struct Gate {
    on: bool,
    refresh: u64,
    full_every: u64,
    previous: Option<Arc<Grey>>,
    last_full: Option<Timestamp>,
    known: Vec<Known>,
    /// The stream's `motion_mask`: change there does not make the detector
    /// look.
    mask: Mask,
}

impl Gate {
    /// The gate of a stream whose `motion_mask` is `mask`.
    pub fn new(config: &DetectorConfig, mask: Mask) -> Gate {
        Gate {
            on: config.gating == Gating::Motion,
            refresh: config.refresh.nanos(),
            full_every: config.full_every.nanos(),
            previous: None,
            last_full: None,
            known: Vec::new(),
            mask,
        }
    }

    /// Where to look in `frame`, an analysed frame.
    pub fn plan(&mut self, frame: &VideoFrame) -> Plan {
        let whole = Plan {
            look: Look::Full,
            region: None,
        };
        if !self.on {
            return whole;
        }
        let (changed, grey) = self.change(frame);
        let pts = frame.pts;
        let full_due = self
            .last_full
            .is_none_or(|t| pts.saturating_sub(t).nanos() >= self.full_every);
        if full_due {
            self.last_full = Some(pts);
            return whole;
        }
        let refresh_every = self.refresh;
        let mut stale = Vec::new();
        for k in &mut self.known {
            if pts.saturating_sub(k.looked).nanos() < refresh_every {
                continue;
            }
            if still(&k.seen, &grey, pad(k.bbox)) {
                // Checked on its pixels: as they were.
                k.looked = pts;
            } else {
                stale.push(pad(k.bbox));
            }
        }
        let refresh = crate::geometry::union_of(stale);
        let (look, region) = match (changed.map(pad), refresh) {
            (Some(m), Some(r)) => (Look::Motion, m.union(r)),
            (Some(m), None) => (Look::Motion, m),
            (None, Some(r)) => (Look::Refresh, r),
            (None, None) => {
                return Plan {
                    look: Look::Skipped,
                    region: Some(BBox::default()),
                };
            }
        };
        let region = at_least(region);
        if region.area() >= WHOLE {
            self.last_full = Some(pts);
            return Plan { look, region: None };
        }
        Plan {
            look,
            region: Some(region),
        }
    }

    /// What was found where `plan` looked in `frame`: those objects are
    /// known there now; the ones it did not look at keep their place.
    pub fn looked(&mut self, plan: &Plan, frame: &VideoFrame, found: &[BBox]) {
        if plan.look == Look::Skipped {
            return;
        }
        match plan.region {
            None => self.known.clear(),
            Some(r) => self.known.retain(|k| !r.contains(k.bbox.centre())),
        }
        let seen = frame.grey(GREY_WIDTH);
        self.known.extend(found.iter().map(|&bbox| Known {
            bbox,
            looked: frame.pts,
            seen: seen.clone(),
        }));
    }

    /// The changed region since the previous analysed frame, if the
    /// picture changed, and the frame's grey image.
    fn change(&mut self, frame: &VideoFrame) -> (Option<BBox>, Arc<Grey>) {
        let grey = frame.grey(GREY_WIDTH);
        let changed = match &self.previous {
            Some(p) if same_size(p, &grey) => {
                let mask = self.mask.at(grey.width, grey.height);
                let (fraction, bbox) = difference(p, &grey, PIXEL_THRESHOLD, mask);
                bbox.filter(|_| fraction >= MIN_CHANGE)
            }
            _ => None,
        };
        self.previous = Some(grey.clone());
        (changed, grey)
    }
}

/// Whether two grey images are of one size, with all their pixels.
fn same_size(a: &Grey, b: &Grey) -> bool {
    let n = a.width * a.height;
    a.width == b.width && a.height == b.height && a.pixels.len() == n && b.pixels.len() == n
}

/// Whether `region` (normalised) of `now` is as it was in `then`: at most
/// [`STILL`] of its pixels changed by more than [`PIXEL_THRESHOLD`].
fn still(then: &Grey, now: &Grey, region: BBox) -> bool {
    if !same_size(then, now) {
        return false;
    }
    let (w, h) = (now.width as f32, now.height as f32);
    let x0 = ((region.x * w).floor() as usize).min(now.width);
    let y0 = ((region.y * h).floor() as usize).min(now.height);
    let x1 = ((region.right() * w).ceil() as usize).clamp(x0, now.width);
    let y1 = ((region.bottom() * h).ceil() as usize).clamp(y0, now.height);
    let area = (x1 - x0) * (y1 - y0);
    if area == 0 {
        return false;
    }
    let changed: usize = (y0..y1)
        .map(|y| {
            let row = y * now.width;
            (row + x0..row + x1)
                .filter(|&i| then.pixels[i].abs_diff(now.pixels[i]) > PIXEL_THRESHOLD)
                .count()
        })
        .sum();
    (changed as f32) <= STILL * area as f32
}

/// `b` grown by [`PAD`] of its size on each side, within the frame.
fn pad(b: BBox) -> BBox {
    let (dx, dy) = (b.w * PAD, b.h * PAD);
    clip(BBox::from_corners(
        b.x - dx,
        b.y - dy,
        b.right() + dx,
        b.bottom() + dy,
    ))
}

/// `b` grown about its centre to at least [`MIN_SIDE`] a side, within the
/// frame.
fn at_least(b: BBox) -> BBox {
    let grow = |lo: f32, len: f32| -> (f32, f32) {
        if len >= MIN_SIDE {
            return (lo, lo + len);
        }
        let start = (lo + len / 2.0 - MIN_SIDE / 2.0).clamp(0.0, 1.0 - MIN_SIDE);
        (start, start + MIN_SIDE)
    };
    let (x0, x1) = grow(b.x, b.w);
    let (y0, y1) = grow(b.y, b.h);
    clip(BBox::from_corners(x0, y0, x1, y1))
}

fn clip(b: BBox) -> BBox {
    BBox::from_corners(
        b.x.clamp(0.0, 1.0),
        b.y.clamp(0.0, 1.0),
        b.right().clamp(0.0, 1.0),
        b.bottom().clamp(0.0, 1.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ms: u64, at: Option<(usize, usize)>) -> VideoFrame {
        crate::encode::motion::square_frame(ms, at)
    }

    fn gate() -> Gate {
        Gate::new(&DetectorConfig::default(), Mask::default())
    }

    #[test]
    fn the_first_frame_is_whole_then_a_still_picture_is_skipped() {
        let mut g = gate();
        let f = frame(0, Some((20, 20)));
        let first = g.plan(&f);
        assert_eq!((first.look, first.region), (Look::Full, None));
        g.looked(&first, &f, &[]);
        let still = g.plan(&frame(200, Some((20, 20))));
        assert_eq!(still.look, Look::Skipped);
    }

    #[test]
    fn a_moving_square_is_looked_at_in_a_crop_around_where_it_was_and_is() {
        let mut g = gate();
        let f = frame(0, Some((20, 20)));
        let p = g.plan(&f);
        g.looked(&p, &f, &[]);
        let p = g.plan(&frame(200, Some((60, 20))));
        assert_eq!(p.look, Look::Motion);
        let r = p.region.expect("a crop");
        // The square spans x 20..100 px of 320 over both frames, y 20..60.
        assert!(r.x <= 20.0 / 320.0 && r.right() >= 100.0 / 320.0, "{r:?}");
        assert!(r.y <= 20.0 / 240.0 && r.bottom() >= 60.0 / 240.0, "{r:?}");
        assert!(r.area() < WHOLE, "{r:?}");
    }

    /// Where a car was found, normalised, and the frame's pixels there.
    const CAR: BBox = BBox {
        x: 0.6,
        y: 0.6,
        w: 0.2,
        h: 0.2,
    };

    /// A frame of the still background with the car's place at `level`.
    fn car_at(ms: u64, level: u8) -> VideoFrame {
        let mut f = frame(ms, None);
        let mut rgb = f.rgb.to_vec();
        for y in 144..192 {
            for x in 192..256 {
                rgb[(y * 320 + x) * 3..(y * 320 + x) * 3 + 3].fill(level);
            }
        }
        f.rgb = rgb.into();
        f
    }

    /// The plans of 10 s of frames every 200 ms after the car was found at
    /// 0, the car's place at `level(ms)`.
    fn looks(level: impl Fn(u64) -> u8) -> Vec<(u64, Plan)> {
        let mut g = gate();
        let f = car_at(0, level(0));
        let p = g.plan(&f);
        g.looked(&p, &f, &[CAR]);
        (200..=10_000)
            .step_by(200)
            .map(|ms| {
                let f = car_at(ms, level(ms));
                let p = g.plan(&f);
                g.looked(&p, &f, &[CAR]);
                (ms, p)
            })
            .collect()
    }

    fn at(looks: &[(u64, Plan)], ms: u64) -> Option<Plan> {
        looks.iter().find(|(t, _)| *t == ms).map(|(_, p)| *p)
    }

    #[test]
    fn an_object_whose_place_changes_is_looked_at_again_every_refresh_and_all_every_full_every() {
        // Lit slowly: 6 grey levels a frame, below the change of motion
        // from one frame to the next, but 30 a second.
        let looks = looks(|ms| 100 + (ms / 200 * 6) as u8);
        assert_eq!(at(&looks, 800).map(|p| p.look), Some(Look::Skipped));
        let refresh = at(&looks, 1000).expect("1 s");
        assert_eq!(refresh.look, Look::Refresh);
        assert!(refresh.region.is_some_and(|r| r.contains(CAR.centre())));
        assert_eq!(at(&looks, 1200).map(|p| p.look), Some(Look::Skipped));
        assert_eq!(at(&looks, 2000).map(|p| p.look), Some(Look::Refresh));
        assert_eq!(
            at(&looks, 10_000).map(|p| (p.look, p.region)),
            Some((Look::Full, None))
        );
    }

    #[test]
    fn an_object_whose_place_is_as_it_was_is_looked_at_again_only_with_the_whole_frame() {
        let looks = looks(|_| 100);
        for (ms, p) in &looks[..looks.len() - 1] {
            assert_eq!(p.look, Look::Skipped, "{ms} ms");
        }
        assert_eq!(
            at(&looks, 10_000).map(|p| (p.look, p.region)),
            Some((Look::Full, None))
        );
    }

    #[test]
    fn with_gating_off_every_frame_is_whole() {
        let config = DetectorConfig {
            gating: Gating::Off,
            ..DetectorConfig::default()
        };
        let mut g = Gate::new(&config, Mask::default());
        for ms in [0, 200, 400] {
            let p = g.plan(&frame(ms, None));
            assert_eq!((p.look, p.region), (Look::Full, None));
        }
    }

    #[test]
    fn a_change_over_most_of_the_picture_is_looked_at_whole() {
        let mut g = gate();
        let f = frame(0, None);
        let p = g.plan(&f);
        g.looked(&p, &f, &[]);
        let mut lit = frame(200, None);
        lit.rgb = vec![200u8; 320 * 240 * 3].into();
        let p = g.plan(&lit);
        assert_eq!((p.look, p.region), (Look::Motion, None));
    }
}
