//! Fitting a frame into a model's square input with its aspect kept
//! (centred, borders around it), and mapping boxes back to the frame.

use crate::geometry::BBox;

/// How a frame was fitted into a square input of `side` pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct Letterbox {
    /// Input pixels per frame pixel.
    pub scale: f32,
    /// The picture's size in the input, and where it starts.
    pub width: usize,
    pub height: usize,
    pub dx: usize,
    pub dy: usize,
    /// The frame's own size.
    frame_width: f32,
    frame_height: f32,
}

impl Letterbox {
    /// Fits a `frame_width` × `frame_height` frame into `side` × `side`.
    pub fn fit(frame_width: usize, frame_height: usize, side: usize) -> Letterbox {
        let scale = side as f32 / frame_width.max(frame_height).max(1) as f32;
        let width = ((frame_width as f32 * scale).round() as usize).clamp(1, side);
        let height = ((frame_height as f32 * scale).round() as usize).clamp(1, side);
        Letterbox {
            scale,
            width,
            height,
            dx: (side - width) / 2,
            dy: (side - height) / 2,
            frame_width: frame_width.max(1) as f32,
            frame_height: frame_height.max(1) as f32,
        }
    }

    /// A point in input pixels to the frame, normalised (not clipped).
    pub fn point(&self, p: [f32; 2]) -> [f32; 2] {
        [
            (p[0] - self.dx as f32) / self.scale / self.frame_width,
            (p[1] - self.dy as f32) / self.scale / self.frame_height,
        ]
    }

    /// Corners `[x0, y0, x1, y1]` in input pixels to a box normalised to
    /// the frame, clipped to it.
    pub fn to_frame(&self, c: [f32; 4]) -> BBox {
        let x = |v: f32| ((v - self.dx as f32) / self.scale / self.frame_width).clamp(0.0, 1.0);
        let y = |v: f32| ((v - self.dy as f32) / self.scale / self.frame_height).clamp(0.0, 1.0);
        let (x0, y0, x1, y1) = (x(c[0]), y(c[1]), x(c[2]), y(c[3]));
        BBox::from_corners(x0, y0, x1, y1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wide_frame_fills_the_width_and_the_middle_rows() {
        let lb = Letterbox::fit(640, 320, 416);
        assert_eq!((lb.width, lb.height, lb.dx, lb.dy), (416, 208, 0, 104));
        let b = lb.to_frame([0.0, 104.0, 416.0, 312.0]);
        for (got, want) in b.to_array().iter().zip([0.0, 0.0, 1.0, 1.0]) {
            assert!((got - want).abs() < 1e-4, "{b:?}");
        }
        // Outside the picture is clipped to it.
        let b = lb.to_frame([-10.0, 0.0, 208.0, 208.0]);
        assert_eq!(b.x, 0.0);
        assert_eq!(b.y, 0.0);
        assert!(
            (b.w - 0.5).abs() < 1e-4 && (b.h - 0.5).abs() < 1e-4,
            "{b:?}"
        );
    }
}
