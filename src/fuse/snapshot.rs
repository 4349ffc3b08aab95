//! Snapshots: one decoded frame becomes a JPEG, with faces blurred
//! beyond recognition and event boxes drawn on top.
//!
//! Boxes come normalised (`[x, y, w, h]` in 0–1 of the frame) and may be
//! partly or wholly outside the frame, zero-size or NaN: they are clamped
//! to the frame or skipped, never a panic. Blurring happens before any
//! mark is drawn, so the result does not depend on the order of the two
//! lists, and it only reads and writes pixels inside the frame.

use std::path::{Path, PathBuf};

use jpeg_encoder::{ColorType, Encoder, EncodingError};

use crate::geometry::BBox;

/// How much each blur box grows on every side, as a share of its size.
const BLUR_MARGIN: f64 = 0.15;
/// Pixelation blocks are about this share of the box's larger side.
const BLOCK_SHARE: f64 = 1.0 / 8.0;
/// The smallest pixelation block, in pixels.
const MIN_BLOCK: usize = 4;
/// How little of a pixel a box edge may cover before the pixel counts.
const EDGE_SLACK: f64 = 1e-3;
/// Marks are drawn this many pixels thick, or `width / MARK_DIVISOR` if thicker.
const MIN_THICKNESS: usize = 2;
/// See [`MIN_THICKNESS`].
const MARK_DIVISOR: usize = 320;

/// A box to draw, with its colour.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mark {
    /// Normalised to 0–1 of the frame.
    pub bbox: BBox,
    /// Outline colour, RGB.
    pub color: [u8; 3],
}

/// Why a snapshot could not be made or saved.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The frame's size does not fit its bytes, is zero, or is beyond what
    /// a JPEG can hold (65535 pixels a side).
    #[error("bad frame: {width}x{height} RGB needs {expected} bytes, got {len}")]
    BadFrame {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Bytes given.
        len: usize,
        /// Bytes a packed RGB8 frame of that size has (0 when the size
        /// itself is unusable).
        expected: usize,
    },
    /// The JPEG encoder failed.
    #[error("jpeg encode: {0}")]
    Encode(#[from] EncodingError),
    /// Writing the file failed.
    #[error("snapshot {}: {source}", path.display())]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// The outline colour for an event kind: object green, face yellow, motion
/// orange, rule red, zone and line cyan, sound blue, anything else white.
pub fn color(kind: &str) -> [u8; 3] {
    match kind {
        "object" | "person" | "vehicle" | "animal" => [0, 220, 0],
        "face" => [255, 230, 0],
        "motion" => [255, 140, 0],
        "rule" => [230, 0, 0],
        "sound" | "loud_sound" => [40, 120, 255],
        k if k.starts_with("zone") || k.starts_with("line") => [0, 220, 230],
        _ => [255, 255, 255],
    }
}

/// Renders a JPEG of a packed RGB8 frame: copies it, blurs each `blur` box
/// (grown by 15 % on each side; pixelated in blocks of about 1/8 of the
/// box's larger side, at least 4 px, then box-blurred, so nothing of the
/// original detail is left), then draws each mark as a rectangle outline
/// `max(2, width / 320)` px thick, inside the frame even where the box
/// touches or crosses its edge. `quality` is clamped to 1–100.
pub fn render(
    rgb: &[u8],
    width: u32,
    height: u32,
    marks: &[Mark],
    blur: &[BBox],
    quality: u8,
) -> Result<Vec<u8>, SnapshotError> {
    let bad = |expected| SnapshotError::BadFrame {
        width,
        height,
        len: rgb.len(),
        expected,
    };
    let (Ok(w16), Ok(h16)) = (u16::try_from(width), u16::try_from(height)) else {
        return Err(bad(0));
    };
    if w16 == 0 || h16 == 0 {
        return Err(bad(0));
    }
    let (w, h) = (usize::from(w16), usize::from(h16));
    let expected = w * h * 3;
    if rgb.len() != expected {
        return Err(bad(expected));
    }

    let mut img = Image {
        px: rgb.to_vec(),
        w,
        h,
    };
    let mut scratch = Vec::new();
    for b in blur {
        if let Some(r) = img.rect(b, BLUR_MARGIN) {
            img.obscure(r, &mut scratch);
        }
    }
    let thickness = MIN_THICKNESS.max(w / MARK_DIVISOR);
    for m in marks {
        if let Some(r) = img.rect(&m.bbox, 0.0) {
            img.outline(r, thickness, m.color);
        }
    }

    let mut out = Vec::with_capacity(expected / 8);
    Encoder::new(&mut out, quality.clamp(1, 100)).encode(&img.px, w16, h16, ColorType::Rgb)?;
    Ok(out)
}

/// Writes `bytes` to `path` atomically: first to `path` + `.tmp` in the
/// same folder, then renamed over `path`. Creates missing parent folders.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), SnapshotError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SnapshotError::Io { path, source }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut written = std::fs::write(&tmp, bytes);
    // Retention removes a run's folder once its last snapshot is deleted:
    // if that happened just now, the folder is made again.
    if let (Err(e), Some(dir)) = (&written, path.parent())
        && e.kind() == std::io::ErrorKind::NotFound
        && !dir.as_os_str().is_empty()
    {
        written = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&tmp, bytes));
    }
    if let Err(e) = written {
        // Best effort: a partial temp file is of no use to anyone.
        let _ = std::fs::remove_file(&tmp);
        return Err(io(&tmp)(e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(path)(e)
    })
}

/// A pixel rectangle inside the frame, half-open: `x0..x1`, `y0..y1`,
/// never empty.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Rect {
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
    /// The larger side of the box before clipping to the frame, in pixels.
    span: f64,
}

/// A frame being drawn on.
struct Image {
    px: Vec<u8>,
    w: usize,
    h: usize,
}

impl Image {
    /// The pixels a normalised box covers, grown by `margin` of its size on
    /// each side and clipped to the frame; `None` for NaN, infinite,
    /// zero-size or negative boxes and for boxes wholly outside.
    fn rect(&self, b: &BBox, margin: f64) -> Option<Rect> {
        let [x, y, bw, bh] = b.to_array().map(f64::from);
        if !(x.is_finite() && y.is_finite() && bw.is_finite() && bh.is_finite()) {
            return None;
        }
        if bw <= 0.0 || bh <= 0.0 {
            return None;
        }
        let (fw, fh) = (self.w as f64, self.h as f64);
        let (x, y) = ((x - bw * margin) * fw, (y - bh * margin) * fh);
        let (bw, bh) = (
            bw * (1.0 + 2.0 * margin) * fw,
            bh * (1.0 + 2.0 * margin) * fh,
        );
        // A pixel counts once the box covers more than a sliver of it, so
        // float noise in exact edges neither adds nor drops a column.
        // `as` saturates, and the values are finite and clamped first.
        let edge = |v: f64, max: f64| v.clamp(0.0, max) as usize;
        let r = Rect {
            x0: edge((x + EDGE_SLACK).floor(), fw),
            y0: edge((y + EDGE_SLACK).floor(), fh),
            x1: edge((x + bw - EDGE_SLACK).ceil(), fw),
            y1: edge((y + bh - EDGE_SLACK).ceil(), fh),
            span: bw.max(bh),
        };
        (r.x1 > r.x0 && r.y1 > r.y0).then_some(r)
    }

    /// Fills a rectangle (clipped to the frame) with one colour.
    fn fill(&mut self, x0: usize, y0: usize, x1: usize, y1: usize, c: [u8; 3]) {
        let (x1, y1) = (x1.min(self.w), y1.min(self.h));
        if x0 >= x1 || y0 >= y1 {
            return;
        }
        for y in y0..y1 {
            let row = (y * self.w + x0) * 3..(y * self.w + x1) * 3;
            if let Some(row) = self.px.get_mut(row) {
                for p in row.chunks_exact_mut(3) {
                    p.copy_from_slice(&c);
                }
            }
        }
    }

    /// Draws the outline of `r`, `t` px thick, inward from its edges.
    fn outline(&mut self, r: Rect, t: usize, c: [u8; 3]) {
        let Rect { x0, y0, x1, y1, .. } = r;
        let tx = t.min(x1 - x0);
        let ty = t.min(y1 - y0);
        self.fill(x0, y0, x1, y0 + ty, c);
        self.fill(x0, y1 - ty, x1, y1, c);
        self.fill(x0, y0 + ty, x0 + tx, y1 - ty, c);
        self.fill(x1 - tx, y0 + ty, x1, y1 - ty, c);
    }

    /// Pixelates `r`, then box-blurs it with a radius of half a block, so
    /// neither fine detail nor the block grid survives. Reads and writes
    /// only inside `r`.
    fn obscure(&mut self, r: Rect, sums: &mut Vec<u32>) {
        let block = ((r.span * BLOCK_SHARE).round() as usize).max(MIN_BLOCK);
        self.pixelate(r, block);
        let radius = block / 2;
        let stride = self.w * 3;
        for y in r.y0..r.y1 {
            self.blur_line(y * stride + r.x0 * 3, 3, r.x1 - r.x0, radius, sums);
        }
        for x in r.x0..r.x1 {
            self.blur_line(r.y0 * stride + x * 3, stride, r.y1 - r.y0, radius, sums);
        }
    }

    /// Replaces each `block`-sized cell of `r` (from its top-left corner;
    /// the last row and column of cells may be smaller) with its mean.
    fn pixelate(&mut self, r: Rect, block: usize) {
        for by in (r.y0..r.y1).step_by(block) {
            let ey = (by + block).min(r.y1);
            for bx in (r.x0..r.x1).step_by(block) {
                let ex = (bx + block).min(r.x1);
                let mut sum = [0u64; 3];
                for y in by..ey {
                    let row = (y * self.w + bx) * 3..(y * self.w + ex) * 3;
                    for p in self.px.get(row).unwrap_or_default().chunks_exact(3) {
                        sum[0] += u64::from(p[0]);
                        sum[1] += u64::from(p[1]);
                        sum[2] += u64::from(p[2]);
                    }
                }
                // A cell is never empty, and its mean is at most 255.
                let n = ((ey - by) * (ex - bx)) as u64;
                let mean = sum.map(|s| ((s + n / 2) / n) as u8);
                self.fill(bx, by, ex, ey, mean);
            }
        }
    }

    /// Box-blurs `n` pixels starting at byte `start`, `stride` bytes apart,
    /// with a window of `radius` each side, shrunk at the line's ends.
    /// `sums` is scratch space for the running sums (a line is at most
    /// 65535 pixels, so they fit a u32).
    fn blur_line(
        &mut self,
        start: usize,
        stride: usize,
        n: usize,
        radius: usize,
        sums: &mut Vec<u32>,
    ) {
        sums.clear();
        sums.resize((n + 1) * 3, 0);
        for i in 0..n {
            let at = start + i * stride;
            for c in 0..3 {
                let v = self.px.get(at + c).copied().unwrap_or_default();
                sums[(i + 1) * 3 + c] = sums[i * 3 + c] + u32::from(v);
            }
        }
        for i in 0..n {
            let lo = i.saturating_sub(radius);
            let hi = (i + radius + 1).min(n);
            let count = (hi - lo) as u32;
            let at = start + i * stride;
            for c in 0..3 {
                let s = sums[hi * 3 + c] - sums[lo * 3 + c];
                if let Some(p) = self.px.get_mut(at + c) {
                    *p = ((s + count / 2) / count) as u8;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GREEN: [u8; 3] = [0, 255, 0];
    const GREY: [u8; 3] = [128, 128, 128];

    fn flat(w: u32, h: u32, c: [u8; 3]) -> Vec<u8> {
        c.repeat((w * h) as usize)
    }

    fn decode(jpeg: &[u8]) -> (u16, u16, Vec<u8>) {
        let mut d = jpeg_decoder::Decoder::new(jpeg);
        let px = d.decode().expect("decodes");
        let info = d.info().expect("info");
        assert_eq!(info.pixel_format, jpeg_decoder::PixelFormat::RGB24);
        (info.width, info.height, px)
    }

    fn at(px: &[u8], w: usize, x: usize, y: usize) -> [i32; 3] {
        let i = (y * w + x) * 3;
        [px[i], px[i + 1], px[i + 2]].map(i32::from)
    }

    fn near(a: [i32; 3], b: [u8; 3], tol: i32) -> bool {
        a.iter()
            .zip(b)
            .all(|(a, b)| (a - i32::from(b)).abs() <= tol)
    }

    /// Luma variance over a pixel rectangle.
    fn variance(px: &[u8], w: usize, x0: usize, y0: usize, x1: usize, y1: usize) -> f64 {
        let mut v = Vec::new();
        for y in y0..y1 {
            for x in x0..x1 {
                let [r, g, b] = at(px, w, x, y);
                v.push(0.299 * r as f64 + 0.587 * g as f64 + 0.114 * b as f64);
            }
        }
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64
    }

    fn checker(w: u32, h: u32, cell: u32) -> Vec<u8> {
        let mut px = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let v = if (x / cell + y / cell).is_multiple_of(2) {
                    0
                } else {
                    255
                };
                px.extend([v, v, v]);
            }
        }
        px
    }

    #[test]
    fn marks_are_drawn_and_the_inside_is_kept() {
        let (w, h) = (320, 240);
        let mark = Mark {
            bbox: BBox::new(0.25, 0.25, 0.5, 0.5),
            color: GREEN,
        };
        let jpeg = render(&flat(w, h, GREY), w, h, &[mark], &[], 95).expect("renders");
        let (dw, dh, px) = decode(&jpeg);
        assert_eq!((u32::from(dw), u32::from(dh)), (w, h));
        let w = w as usize;
        // Box is x 80..240, y 60..180, outline 2 px thick.
        for (x, y) in [(160, 60), (160, 179), (80, 120), (239, 120)] {
            let p = at(&px, w, x, y);
            assert!(p[1] > 180 && p[0] < 90 && p[2] < 90, "{x},{y}: {p:?}");
        }
        for (x, y) in [(160, 120), (100, 80), (220, 160), (10, 10)] {
            assert!(near(at(&px, w, x, y), GREY, 6), "{x},{y}");
        }
    }

    #[test]
    fn marks_on_the_edge_stay_inside_the_frame() {
        let (w, h) = (64, 48);
        let mark = Mark {
            bbox: BBox::new(-0.2, -0.2, 0.7, 1.5),
            color: [255, 0, 0],
        };
        let jpeg = render(&flat(w, h, GREY), w, h, &[mark], &[], 100).expect("renders");
        let (_, _, px) = decode(&jpeg);
        for (x, y) in [(10, 0), (0, 20), (10, 47)] {
            let p = at(&px, w as usize, x, y);
            assert!(p[0] > 180 && p[1] < 90, "{x},{y}: {p:?}");
        }
    }

    #[test]
    fn thickness_grows_with_width() {
        let img = Image {
            px: flat(1280, 16, GREY),
            w: 1280,
            h: 16,
        };
        let mut img = img;
        let r = img.rect(&BBox::new(0.0, 0.0, 1.0, 1.0), 0.0).expect("rect");
        img.outline(r, MIN_THICKNESS.max(1280 / MARK_DIVISOR), GREEN);
        let row = 8 * 1280 * 3;
        assert_eq!(img.px[row + 3 * 3..row + 4 * 3], GREEN);
        assert_eq!(img.px[row + 4 * 3..row + 5 * 3], GREY);
    }

    #[test]
    fn blur_destroys_detail_inside_only() {
        let (w, h) = (320, 240);
        let face = BBox::new(0.375, 0.375, 0.25, 0.25); // 120..200 x 90..150
        for cell in [1, 2] {
            let frame = checker(w, h, cell);
            let jpeg = render(&frame, w, h, &[], &[face], 95).expect("renders");
            let (_, _, px) = decode(&jpeg);
            let w = w as usize;
            let before = variance(&frame, w, 120, 90, 200, 150);
            let inside = variance(&px, w, 120, 90, 200, 150);
            assert!(before > 20.0 * inside, "cell {cell}: {before} vs {inside}");
            // Outside the grown box (108..212 x 81..159), far from it.
            let out = variance(&px, w, 0, 0, 80, 60);
            assert!(out > 0.5 * before, "cell {cell}: {out}");
        }
    }

    #[test]
    fn blur_stops_at_the_margin() {
        let (w, h) = (200, 200);
        let frame = checker(w, h, 1);
        let mut img = Image {
            px: frame.clone(),
            w: 200,
            h: 200,
        };
        // 60..140 grown by 12 px: 48..152.
        let r = img
            .rect(&BBox::new(0.3, 0.3, 0.4, 0.4), BLUR_MARGIN)
            .expect("rect");
        assert_eq!((r.x0, r.y0, r.x1, r.y1), (48, 48, 152, 152));
        img.obscure(r, &mut Vec::new());
        for y in 0..200 {
            for x in 0..200 {
                let i = (y * 200 + x) * 3;
                let inside = (48..152).contains(&x) && (48..152).contains(&y);
                if !inside {
                    assert_eq!(img.px[i..i + 3], frame[i..i + 3], "{x},{y}");
                }
            }
        }
        // The grown margin is blurred too.
        assert!(variance(&img.px, 200, 48, 48, 60, 152) < 100.0);
    }

    #[test]
    fn blur_is_independent_of_mark_order() {
        let (w, h) = (96, 64);
        let frame = checker(w, h, 2);
        let mark = Mark {
            bbox: BBox::new(0.2, 0.2, 0.5, 0.5),
            color: GREEN,
        };
        let blur = [BBox::new(0.3, 0.3, 0.3, 0.3)];
        let a = render(&frame, w, h, &[mark], &blur, 80).expect("renders");
        let b = render(&frame, w, h, &[mark, mark], &blur, 80).expect("renders");
        assert_eq!(a, b);
    }

    #[test]
    fn odd_boxes_and_frames_do_not_panic() {
        let boxes = [
            [-0.5, -0.5, 0.7, 0.7],
            [0.8, 0.8, 0.9, 0.9],
            [2.0, 2.0, 0.5, 0.5],
            [-3.0, 0.2, 0.5, 0.5],
            [f32::NAN, 0.1, 0.2, 0.2],
            [0.1, 0.1, f32::NAN, 0.2],
            [0.1, 0.1, 0.0, 0.0],
            [0.1, 0.1, -0.2, 0.3],
            [f32::INFINITY, 0.0, 1.0, 1.0],
            [f32::MIN, f32::MIN, f32::MAX, f32::MAX],
            [0.0, 0.0, 1e-9, 1e-9],
            [0.999_999, 0.999_999, 1e-9, 1e-9],
            [0.0, 0.0, 1.0, 1.0],
        ]
        .map(BBox::from);
        let marks: Vec<Mark> = boxes
            .iter()
            .map(|&bbox| Mark { bbox, color: GREEN })
            .collect();
        for (w, h) in [(1, 1), (2, 1), (1, 7), (5, 3), (64, 48), (17, 33)] {
            let frame = checker(w, h, 1);
            for q in [0, 1, 50, 100, 255] {
                let jpeg = render(&frame, w, h, &marks, &boxes, q).expect("renders");
                let (dw, dh, _) = decode(&jpeg);
                assert_eq!((u32::from(dw), u32::from(dh)), (w, h));
            }
        }
    }

    #[test]
    fn bad_frames_are_errors() {
        let frame = flat(4, 4, GREY);
        for (w, h, len) in [
            (4, 4, 47),
            (4, 4, 49),
            (0, 4, 0),
            (4, 0, 0),
            (0, 0, 0),
            (70_000, 1, 210_000),
            (u32::MAX, u32::MAX, 48),
        ] {
            let bytes = frame
                .get(..len)
                .map_or_else(|| vec![0; len], <[u8]>::to_vec);
            let r = render(&bytes, w, h, &[], &[], 80);
            assert!(
                matches!(r, Err(SnapshotError::BadFrame { .. })),
                "{w}x{h} {len}"
            );
        }
    }

    #[test]
    fn write_is_atomic_and_makes_folders() {
        let dir = std::env::temp_dir().join(format!("vigil-snapshot-{}", std::process::id()));
        let path = dir.join("a/b/cam1-42.jpg");
        write(&path, b"one").expect("writes");
        write(&path, b"two").expect("overwrites");
        assert_eq!(std::fs::read(&path).expect("reads"), b"two");
        let names: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
            .expect("lists")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["cam1-42.jpg"]);
        // A file where a folder should be is an io error naming the path.
        let err = write(&path.join("x.jpg"), b"x").expect_err("fails");
        assert!(matches!(err, SnapshotError::Io { .. }), "{err}");
        std::fs::remove_dir_all(&dir).expect("cleans up");
    }

    #[test]
    fn colors_differ_by_kind() {
        assert_eq!(color("object")[1], 220);
        assert_ne!(color("face"), color("object"));
        assert_ne!(color("motion"), color("rule"));
        assert_eq!(color("zone"), color("line_cross"));
        assert_eq!(color("nonsense"), [255, 255, 255]);
    }

    #[test]
    fn timing_640x480() {
        let (w, h) = (640, 480);
        // A smooth scene with a little texture, like a camera frame.
        let mut scene = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let t = ((x * 7 + y * 13) % 17) as u8;
                scene.extend([(x / 3) as u8 + t, (y / 2) as u8 + t, 90 + t]);
            }
        }
        let marks = [
            Mark {
                bbox: BBox::new(0.1, 0.1, 0.3, 0.5),
                color: color("object"),
            },
            Mark {
                bbox: BBox::new(0.5, 0.2, 0.2, 0.2),
                color: color("face"),
            },
            Mark {
                bbox: BBox::new(0.0, 0.6, 1.0, 0.4),
                color: color("motion"),
            },
        ];
        let blur = [BBox::new(0.5, 0.2, 0.2, 0.2)];
        let runs = 50;
        for (name, frame) in [("scene", scene), ("3px checkerboard", checker(w, h, 3))] {
            let start = std::time::Instant::now();
            let mut size = 0;
            for _ in 0..runs {
                size = render(&frame, w, h, &marks, &blur, 80)
                    .expect("renders")
                    .len();
            }
            let each = start.elapsed() / runs;
            let start = std::time::Instant::now();
            for _ in 0..runs {
                let mut img = Image {
                    px: frame.clone(),
                    w: w as usize,
                    h: h as usize,
                };
                let mut sums = Vec::new();
                if let Some(r) = img.rect(&blur[0], BLUR_MARGIN) {
                    img.obscure(r, &mut sums);
                }
                for m in &marks {
                    if let Some(r) = img.rect(&m.bbox, 0.0) {
                        img.outline(r, MIN_THICKNESS, m.color);
                    }
                }
                std::hint::black_box(&img.px);
            }
            let draw = start.elapsed() / runs;
            eprintln!(
                "snapshot 640x480 {name}, 3 marks, 1 blur, q80: {each:?} per frame \
                 ({draw:?} copy+blur+marks), {size} bytes"
            );
        }
    }
}
