//! Motion from frame differences on a downscaled grey image.

use crate::config::MotionConfig;
use crate::encode::kind::{self, Kind, Part};
use crate::encode::{Encoder, Features};
use crate::error::Result;
use crate::geometry::{BBox, Mask, PixelMask};
use std::sync::Arc;

use crate::media::{Chunk, Grey, VideoFrame};
use crate::time::{SECOND, Timestamp};

/// Motion: what changed between frames, and where.
pub const KIND: Kind = Kind {
    name: "motion",
    manifests: &[],
    manifest: kind::no_model,
    section: None,
    on: |c| c.motion.is_some(),
    off: |c| c.motion = None,
    check: kind::nothing_to_check,
    start: kind::no_worker,
    build: |c, _, source| {
        Ok(c.motion.as_ref().map(|m| {
            let mut motion = Motion::new(m.clone(), source.fps);
            motion.mask = Mask::new(source.motion_mask.clone());
            Part::Encoder(Box::new(motion))
        }))
    },
};

/// Side of the square cells (in grey pixels) the changed region is built from.
const CELL: usize = 4;

/// What motion found in one frame.
#[derive(Clone, Debug, PartialEq)]
pub struct MotionSample {
    pub pts: Timestamp,
    /// Until the next analysed frame is due.
    pub until: Timestamp,
    /// Fraction of the picture that changed since the previous analysed frame.
    pub fraction: f32,
    /// The changed region, `[x, y, w, h]` normalised to 0–1.
    pub bbox: Option<BBox>,
    pub active: bool,
}

/// The motion encoder of one stream.
pub struct Motion {
    config: MotionConfig,
    interval: u64,
    previous: Option<Arc<Grey>>,
    /// The stream's `motion_mask`: change there is not motion.
    mask: Mask,
}

impl Motion {
    pub fn new(config: MotionConfig, fps: u32) -> Self {
        Motion {
            config,
            interval: SECOND / fps.max(1) as u64,
            previous: None,
            mask: Mask::default(),
        }
    }

    fn analyse(&mut self, frame: &VideoFrame) -> MotionSample {
        let width = self.config.scale_width as usize;
        let grey = frame.grey(width);
        let (fraction, bbox) = match &self.previous {
            Some(prev) if prev.width == grey.width && prev.height == grey.height => {
                let mask = self.mask.at(grey.width, grey.height);
                difference(prev, &grey, self.config.pixel_threshold, mask)
            }
            _ => (0.0, None),
        };
        self.previous = Some(grey);
        let active = fraction >= self.config.threshold && fraction > 0.0;
        MotionSample {
            pts: frame.pts,
            until: frame.pts.saturating_add(self.interval),
            fraction,
            bbox: if active { bbox } else { None },
            active,
        }
    }
}

impl Encoder for Motion {
    fn name(&self) -> &'static str {
        "motion"
    }

    fn encode(&mut self, chunks: &[&Chunk]) -> Result<Vec<Features>> {
        Ok(chunks
            .iter()
            .map(|c| Features::Motion(c.frames.iter().map(|f| self.analyse(f)).collect()))
            .collect())
    }
}

/// Changed fraction and the changed region's box between two grey images,
/// the pixels `mask` covers left out (they never count as changed).
///
/// The box is built from cells where at least a quarter of the pixels changed,
/// so that scattered noise does not stretch it across the picture.
pub fn difference(
    a: &Grey,
    b: &Grey,
    threshold: u8,
    mask: Option<&PixelMask>,
) -> (f32, Option<BBox>) {
    let (w, h) = (a.width, a.height);
    let (cw, ch) = (w.div_ceil(CELL), h.div_ceil(CELL));
    let mut cells = vec![0u32; cw * ch];
    let mut changed = 0usize;
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            if a.pixels[i].abs_diff(b.pixels[i]) > threshold && !mask.is_some_and(|m| m.covers(i)) {
                changed += 1;
                cells[(y / CELL) * cw + x / CELL] += 1;
            }
        }
    }
    let fraction = changed as f32 / (w * h) as f32;
    let min_count = (CELL * CELL / 4) as u32;
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for cy in 0..ch {
        for cx in 0..cw {
            if cells[cy * cw + cx] >= min_count {
                x0 = x0.min(cx);
                y0 = y0.min(cy);
                x1 = x1.max(cx + 1);
                y1 = y1.max(cy + 1);
            }
        }
    }
    let bbox = (x0 != usize::MAX).then(|| {
        let (px0, py0) = (x0 * CELL, y0 * CELL);
        let (px1, py1) = ((x1 * CELL).min(w), (y1 * CELL).min(h));
        BBox::new(
            px0 as f32 / w as f32,
            py0 as f32 / h as f32,
            (px1 - px0) as f32 / w as f32,
            (py1 - py0) as f32 / h as f32,
        )
    });
    (fraction, bbox)
}

/// A 320×240 frame, grey 40, with a white 40×40 square at `square_at`
/// (pixels), at `pts_ms`: for the tests of what moved.
#[cfg(test)]
pub(crate) fn square_frame(pts_ms: u64, square_at: Option<(usize, usize)>) -> VideoFrame {
    let (w, h) = (320usize, 240usize);
    let mut rgb = vec![40u8; w * h * 3];
    if let Some((sx, sy)) = square_at {
        for y in sy..sy + 40 {
            for x in sx..sx + 40 {
                rgb[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&[250, 250, 250]);
            }
        }
    }
    VideoFrame {
        pts: Timestamp::from_millis(pts_ms),
        duration: 0,
        width: w as u32,
        height: h as u32,
        rgb: rgb.into(),
        grey: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(pts_ms: u64, square_at: Option<(usize, usize)>) -> VideoFrame {
        square_frame(pts_ms, square_at)
    }

    #[test]
    fn a_moving_square_is_found_where_it_is() {
        let mut m = Motion::new(MotionConfig::default(), 5);
        let still = m.analyse(&frame(0, Some((20, 20))));
        assert!(!still.active);
        let same = m.analyse(&frame(200, Some((20, 20))));
        assert!(!same.active && same.fraction == 0.0);
        let moved = m.analyse(&frame(400, Some((200, 160))));
        assert!(moved.active, "{moved:?}");
        let BBox { x, y, w, h } = moved.bbox.unwrap_or_default();
        // Both the old and the new place of the square changed.
        assert!(
            x < 0.1 && y < 0.1 && x + w > 0.7 && y + h > 0.8,
            "{:?}",
            moved.bbox
        );
        assert_eq!(moved.pts, Timestamp::from_millis(400));
    }

    #[test]
    fn change_under_the_mask_is_not_motion() {
        let run = |mask: Vec<Vec<[f32; 2]>>| {
            let mut m = Motion::new(MotionConfig::default(), 5);
            m.mask = Mask::new(mask);
            m.analyse(&frame(0, Some((20, 20))));
            m.analyse(&frame(200, Some((200, 160))))
        };
        let lower_right = vec![[0.5, 0.5], [1.0, 0.5], [1.0, 1.0], [0.5, 1.0]];
        let upper_left = vec![[0.0, 0.0], [0.4, 0.0], [0.4, 0.4], [0.0, 0.4]];
        // Only where the square left is seen to change.
        let half = run(vec![lower_right.clone()]);
        assert!(half.active, "{half:?}");
        let b = half.bbox.unwrap_or_default();
        assert!(b.right() < 0.3 && b.bottom() < 0.3, "{b:?}");
        // Both places masked: nothing moved.
        let none = run(vec![lower_right, upper_left]);
        assert!(
            !none.active && none.fraction == 0.0 && none.bbox.is_none(),
            "{none:?}"
        );
    }

    #[test]
    fn downscale_keeps_aspect_and_level() {
        let f = frame(0, None);
        let g = Grey::from_rgb(&f.rgb, 320, 240, 160);
        assert_eq!((g.width, g.height), (160, 120));
        assert!(g.pixels.iter().all(|&p| p == 39 || p == 40));
    }
}
