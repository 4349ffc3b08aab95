//! Boxes and points in the picture, in normalised coordinates (0–1 of the
//! frame's width and height, y down).
//!
//! A [`BBox`] is written `[x, y, w, h]` in records (a JSON array, the
//! published format), `x`/`y` its top-left corner. Every box computation
//! lives here, so that the detector, the tracker, zones and snapshots agree
//! to the last bit.

use serde::{Deserialize, Serialize};

/// A point `[x, y]` in normalised picture coordinates.
pub type Point = [f32; 2];

/// A box in normalised picture coordinates: top-left corner, width and
/// height. Serialised as the array `[x, y, w, h]`.
#[derive(Clone, Copy, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(from = "[f32; 4]", into = "[f32; 4]")]
pub struct BBox {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl BBox {
    pub const fn new(x: f32, y: f32, w: f32, h: f32) -> BBox {
        BBox { x, y, w, h }
    }

    /// The box from its top-left `(x0, y0)` and bottom-right `(x1, y1)`
    /// corners.
    pub fn from_corners(x0: f32, y0: f32, x1: f32, y1: f32) -> BBox {
        BBox::new(x0, y0, x1 - x0, y1 - y0)
    }

    /// `[x, y, w, h]`.
    pub const fn to_array(self) -> [f32; 4] {
        [self.x, self.y, self.w, self.h]
    }

    /// Each of `x`, `y`, `w`, `h` through `f`.
    pub fn map(self, f: impl Fn(f32) -> f32) -> BBox {
        BBox::new(f(self.x), f(self.y), f(self.w), f(self.h))
    }

    /// `x + w`.
    pub fn right(self) -> f32 {
        self.x + self.w
    }

    /// `y + h`.
    pub fn bottom(self) -> f32 {
        self.y + self.h
    }

    pub fn area(self) -> f32 {
        self.w * self.h
    }

    pub fn centre(self) -> Point {
        [self.x + self.w / 2.0, self.y + self.h / 2.0]
    }

    /// Bottom centre: where a person stands, the point zones and lines use.
    pub fn anchor(self) -> Point {
        [self.x + self.w / 2.0, self.bottom()]
    }

    /// Whether `p` is in the box, its edges included.
    pub fn contains(self, p: Point) -> bool {
        p[0] >= self.x && p[0] <= self.right() && p[1] >= self.y && p[1] <= self.bottom()
    }

    /// The four edges, clockwise from the top one.
    pub fn edges(self) -> [(Point, Point); 4] {
        let (x0, y0, x1, y1) = (self.x, self.y, self.right(), self.bottom());
        [
            ([x0, y0], [x1, y0]),
            ([x1, y0], [x1, y1]),
            ([x1, y1], [x0, y1]),
            ([x0, y1], [x0, y0]),
        ]
    }

    /// Intersection over union, in `[0, 1]`: 0 for boxes that do not
    /// overlap, touch only, are empty, or whose ratio is not finite.
    pub fn iou(self, other: BBox) -> f32 {
        let iw = self.right().min(other.right()) - self.x.max(other.x);
        let ih = self.bottom().min(other.bottom()) - self.y.max(other.y);
        if !(iw > 0.0 && ih > 0.0) {
            return 0.0;
        }
        let inter = iw * ih;
        let union = self.area() + other.area() - inter;
        let v = inter / union;
        if v.is_finite() {
            v.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// The smallest box holding both.
    pub fn union(self, other: BBox) -> BBox {
        let (x0, y0) = (self.x.min(other.x), self.y.min(other.y));
        let (x1, y1) = (
            self.right().max(other.right()),
            self.bottom().max(other.bottom()),
        );
        BBox::from_corners(x0, y0, x1, y1)
    }
}

/// The smallest box holding all of `boxes` (folded in order), `None` for
/// none.
pub fn union_of(boxes: impl IntoIterator<Item = BBox>) -> Option<BBox> {
    boxes.into_iter().reduce(BBox::union)
}

impl From<[f32; 4]> for BBox {
    fn from([x, y, w, h]: [f32; 4]) -> BBox {
        BBox::new(x, y, w, h)
    }
}

impl From<BBox> for [f32; 4] {
    fn from(b: BBox) -> [f32; 4] {
        b.to_array()
    }
}

/// Whether `p` is inside `polygon` or on its boundary.
pub fn inside(polygon: &[Point], p: Point) -> bool {
    if polygon.len() < 3 || !p[0].is_finite() || !p[1].is_finite() {
        return false;
    }
    if edge_distance(polygon, p) <= 1e-6 {
        return true;
    }
    // Even-odd rule: count the edges a ray to the right crosses.
    let mut crossings = false;
    let mut j = polygon.len() - 1;
    for i in 0..polygon.len() {
        let (a, b) = (polygon[i], polygon[j]);
        if (a[1] > p[1]) != (b[1] > p[1]) {
            let x = a[0] + (p[1] - a[1]) / (b[1] - a[1]) * (b[0] - a[0]);
            if p[0] < x {
                crossings = !crossings;
            }
        }
        j = i;
    }
    crossings
}

/// Distance from `p` to the nearest edge of `polygon`.
pub fn edge_distance(polygon: &[Point], p: Point) -> f32 {
    let n = polygon.len();
    (0..n)
        .map(|i| segment_distance(polygon[i], polygon[(i + 1) % n], p))
        .fold(f32::INFINITY, f32::min)
}

fn segment_distance(a: Point, b: Point, p: Point) -> f32 {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (x, y) = (a[0] + t * dx - p[0], a[1] + t * dy - p[1]);
    (x * x + y * y).sqrt()
}

/// Which pixels of a `width` × `height` image have their centre in any of
/// `polygons` (normalised corners): the parts of the picture a stream
/// masks.
#[derive(Clone, Debug, PartialEq)]
pub struct PixelMask {
    pub width: usize,
    pub height: usize,
    covered: Vec<bool>,
}

impl PixelMask {
    pub fn new(polygons: &[Vec<Point>], width: usize, height: usize) -> PixelMask {
        let mut covered = vec![false; width * height];
        for y in 0..height {
            let py = (y as f32 + 0.5) / height as f32;
            for x in 0..width {
                let p = [(x as f32 + 0.5) / width as f32, py];
                covered[y * width + x] = polygons.iter().any(|poly| inside(poly, p));
            }
        }
        PixelMask {
            width,
            height,
            covered,
        }
    }

    /// Whether pixel `i` (row by row) is masked.
    pub fn covers(&self, i: usize) -> bool {
        self.covered.get(i).copied().unwrap_or(false)
    }
}

/// A stream's masked polygons, rasterised for the image size in use (made
/// again only when the size changes).
#[derive(Clone, Debug, Default)]
pub struct Mask {
    polygons: Vec<Vec<Point>>,
    raster: Option<PixelMask>,
}

impl Mask {
    pub fn new(polygons: Vec<Vec<Point>>) -> Mask {
        Mask {
            polygons,
            raster: None,
        }
    }

    /// The mask at `width` × `height`, or `None` when nothing is masked.
    pub fn at(&mut self, width: usize, height: usize) -> Option<&PixelMask> {
        if self.polygons.is_empty() {
            return None;
        }
        let stale = self
            .raster
            .as_ref()
            .is_none_or(|r| r.width != width || r.height != height);
        if stale {
            self.raster = Some(PixelMask::new(&self.polygons, width, height));
        }
        self.raster.as_ref()
    }

    /// Whether `p` lies in a masked polygon.
    pub fn holds(&self, p: Point) -> bool {
        self.polygons.iter().any(|poly| inside(poly, p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mask_covers_the_pixels_whose_centre_is_in_a_polygon() {
        // The left half and a triangle in the lower right of an 8 × 4 image.
        let left = vec![[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]];
        let corner = vec![[1.0, 0.5], [1.0, 1.0], [0.5, 1.0]];
        let m = PixelMask::new(&[left.clone(), corner.clone()], 8, 4);
        let rows: Vec<String> = (0..4)
            .map(|y| {
                (0..8)
                    .map(|x| if m.covers(y * 8 + x) { '#' } else { '.' })
                    .collect()
            })
            .collect();
        assert_eq!(rows, ["####....", "####....", "####...#", "####.###"]);
        assert!(!m.covers(32), "past the end");
        let mut mask = Mask::new(vec![left, corner]);
        assert_eq!(mask.at(8, 4), Some(&m));
        assert_eq!(mask.at(4, 2).map(|r| (r.width, r.height)), Some((4, 2)));
        assert!(mask.holds([0.1, 0.9]) && !mask.holds([0.6, 0.2]));
        let mut none = Mask::default();
        assert!(none.at(8, 4).is_none() && !none.holds([0.1, 0.1]));
    }

    #[test]
    fn iou_of_disjoint_identical_and_half_overlapping_boxes() {
        let a = BBox::new(0.0, 0.0, 0.5, 0.5);
        assert_eq!(a.iou(BBox::new(0.5, 0.5, 0.5, 0.5)), 0.0, "touching");
        assert_eq!(a.iou(BBox::new(0.6, 0.0, 0.2, 0.2)), 0.0, "apart");
        assert_eq!(a.iou(a), 1.0);
        // Half of each: the intersection is a third of the union.
        let b = BBox::new(0.25, 0.0, 0.5, 0.5);
        assert!((a.iou(b) - 1.0 / 3.0).abs() < 1e-6, "{}", a.iou(b));
        assert_eq!(a.iou(b), b.iou(a));
        // One inside another: the smaller area over the larger.
        let inner = BBox::new(0.0, 0.0, 0.25, 0.5);
        assert!((a.iou(inner) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn iou_of_empty_or_broken_boxes_is_zero() {
        let a = BBox::new(0.0, 0.0, 0.5, 0.5);
        assert_eq!(a.iou(BBox::new(0.1, 0.1, 0.0, 0.3)), 0.0);
        assert_eq!(BBox::default().iou(BBox::default()), 0.0);
        assert_eq!(a.iou(BBox::new(0.0, 0.0, f32::NAN, 0.5)), 0.0);
        assert_eq!(a.iou(BBox::new(0.1, 0.1, -0.5, 0.3)), 0.0);
    }

    #[test]
    fn union_holds_both() {
        let a = BBox::new(0.1, 0.2, 0.2, 0.2);
        let b = BBox::new(0.5, 0.1, 0.1, 0.2);
        let u = a.union(b);
        assert_eq!((u.x, u.y), (0.1, 0.1));
        assert!((u.right() - 0.6).abs() < 1e-6 && (u.bottom() - 0.4).abs() < 1e-6);
        let exact = BBox::new(0.25, 0.5, 0.25, 0.125);
        assert_eq!(exact.union(exact), exact);
        assert_eq!(union_of([a, b]), Some(u));
        assert_eq!(union_of([a]), Some(a));
        assert_eq!(union_of([]), None);
    }

    #[test]
    fn edges_centre_anchor_and_contains() {
        let b = BBox::new(0.25, 0.5, 0.5, 0.25);
        assert_eq!((b.right(), b.bottom(), b.area()), (0.75, 0.75, 0.125));
        assert_eq!(b.centre(), [0.5, 0.625]);
        assert_eq!(b.anchor(), [0.5, 0.75]);
        assert!(b.contains([0.25, 0.75]) && b.contains([0.5, 0.6]));
        assert!(!b.contains([0.2, 0.6]) && !b.contains([0.5, 0.8]));
        let e = b.edges();
        assert_eq!(e[0], ([0.25, 0.5], [0.75, 0.5]));
        assert_eq!(e[2], ([0.75, 0.75], [0.25, 0.75]));
        assert_eq!(BBox::from_corners(0.25, 0.5, 0.75, 0.75), b);
        assert_eq!(b.map(|v| v * 2.0), BBox::new(0.5, 1.0, 1.0, 0.5));
    }

    #[test]
    fn serde_is_the_array_x_y_w_h() {
        let b = BBox::new(0.125, 0.25, 0.5, 0.0625);
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(json, "[0.125,0.25,0.5,0.0625]");
        assert_eq!(serde_json::from_str::<BBox>(&json).unwrap(), b);
        let some = serde_json::to_string(&Some(b)).unwrap();
        assert_eq!(some, json);
        assert_eq!(serde_json::to_string(&None::<BBox>).unwrap(), "null");
        // Exactly what the array gave, to the last digit.
        let odd = [0.1f32, 1.0 / 3.0, 0.7, 2e-7];
        assert_eq!(
            serde_json::to_string(&BBox::from(odd)).unwrap(),
            serde_json::to_string(&odd).unwrap()
        );
        assert!(serde_json::from_str::<BBox>("[0.1,0.2,0.3]").is_err());
        assert!(serde_json::from_str::<BBox>(r#"{"x":0.1}"#).is_err());
    }
}
