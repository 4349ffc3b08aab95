//! Zones and lines: where tracked objects are, in the picture's normalised
//! coordinates (`[x, y]`, 0–1, y down), and when they cross.
//!
//! A tracked object is placed by its anchor, the bottom centre of its box
//! (where a person stands). Both decisions have hysteresis of [`MARGIN`]:
//!
//! - a point enters a zone when it is inside the polygon (a point on an
//!   edge is inside) and leaves it only once it is more than the margin
//!   outside, so a person standing on the edge enters once and stays;
//! - a point is on one side of a line once it is more than the margin
//!   from it; a crossing is counted when the side changes, timed at the
//!   first frame past the line, so jitter at the line is counted once or
//!   not at all.

pub use crate::geometry::Point;
use crate::geometry::{BBox, edge_distance, inside};
use crate::time::Timestamp;

/// Distance from a boundary (in frame widths or heights) within which a
/// point keeps the side it had.
pub const MARGIN: f32 = 0.01;

/// Which way a line was crossed. Walking along the line from `from` to
/// `to` on the picture, `in` goes from the left-hand side to the
/// right-hand side: for a line drawn left to right, `in` is downwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// A polygon zone of one stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Zone {
    pub name: String,
    pub polygon: Vec<Point>,
    /// Object labels the zone follows (empty: every label).
    pub labels: Vec<String>,
}

impl Zone {
    /// Whether a point is in the zone, given whether it was.
    pub fn holds(&self, p: Point, was_inside: bool) -> bool {
        inside(&self.polygon, p) || (was_inside && edge_distance(&self.polygon, p) <= MARGIN)
    }

    /// Whether a box overlaps the zone.
    pub fn overlaps(&self, b: BBox) -> bool {
        let corners = [
            [b.x, b.y],
            [b.right(), b.y],
            [b.x, b.bottom()],
            [b.right(), b.bottom()],
            b.centre(),
        ];
        corners.iter().any(|&c| inside(&self.polygon, c))
            || self.polygon.iter().any(|&v| b.contains(v))
            || self.polygon.iter().enumerate().any(|(i, &a)| {
                let c = self.polygon[(i + 1) % self.polygon.len()];
                b.edges().iter().any(|&(p, q)| segments_cross(a, c, p, q))
            })
    }

    /// Whether the zone follows objects of `label`.
    pub fn follows(&self, label: &str) -> bool {
        self.labels.is_empty() || self.labels.iter().any(|l| l.eq_ignore_ascii_case(label))
    }
}

fn cross(o: Point, a: Point, b: Point) -> f32 {
    (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
}

fn segments_cross(a: Point, b: Point, c: Point, d: Point) -> bool {
    let (d1, d2) = (cross(a, b, c), cross(a, b, d));
    let (d3, d4) = (cross(c, d, a), cross(c, d, b));
    d1 * d2 < 0.0 && d3 * d4 < 0.0
}

/// A counting line of one stream, from `from` to `to`.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub name: String,
    pub from: Point,
    pub to: Point,
    /// Object labels the line counts (empty: every label).
    pub labels: Vec<String>,
}

impl Line {
    /// Signed distance of `p` from the line: positive on the `in` side
    /// (right-hand, walking from `from` to `to` on the picture).
    pub fn side(&self, p: Point) -> f32 {
        let (dx, dy) = (self.to[0] - self.from[0], self.to[1] - self.from[1]);
        let len = (dx * dx + dy * dy).sqrt();
        if len == 0.0 {
            return 0.0;
        }
        // y grows downwards, so the right-hand side has a positive cross product.
        (dx * (p[1] - self.from[1]) - dy * (p[0] - self.from[0])) / len
    }

    /// Whether the step from `a` to `b` (on opposite sides) passes through
    /// the segment itself rather than its extension.
    fn through(&self, a: Point, b: Point) -> bool {
        let (da, db) = (self.side(a), self.side(b));
        if da == db {
            return false;
        }
        let t = da / (da - db);
        let c = [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])];
        let (dx, dy) = (self.to[0] - self.from[0], self.to[1] - self.from[1]);
        let len2 = dx * dx + dy * dy;
        let u = ((c[0] - self.from[0]) * dx + (c[1] - self.from[1]) * dy) / len2;
        let tol = MARGIN / len2.sqrt();
        (-tol..=1.0 + tol).contains(&u)
    }

    /// Whether the line counts objects of `label`.
    pub fn counts(&self, label: &str) -> bool {
        self.labels.is_empty() || self.labels.iter().any(|l| l.eq_ignore_ascii_case(label))
    }
}

/// What one track did relative to one line so far.
#[derive(Clone, Debug, Default)]
pub struct LineSide {
    /// The side the track is established on: -1, 1, or 0 while unknown.
    side: i8,
    /// Where it last was, established on that side.
    anchor: Option<Point>,
    /// When it first stepped past the line since (the crossing's time, if it stays).
    past_since: Option<Timestamp>,
}

impl LineSide {
    /// The track's anchor was at `p` at `at`; returns a crossing, with when
    /// it happened.
    pub fn step(&mut self, line: &Line, at: Timestamp, p: Point) -> Option<(Direction, Timestamp)> {
        if !p[0].is_finite() || !p[1].is_finite() {
            return None;
        }
        let d = line.side(p);
        let raw: i8 = if d > 0.0 {
            1
        } else if d < 0.0 {
            -1
        } else {
            0
        };
        let settled: i8 = if d > MARGIN {
            1
        } else if d < -MARGIN {
            -1
        } else {
            0
        };
        if self.side == 0 {
            if settled != 0 {
                self.side = settled;
                self.anchor = Some(p);
            }
            return None;
        }
        if raw == self.side {
            self.past_since = None;
        } else if raw == -self.side && self.past_since.is_none() {
            self.past_since = Some(at);
        }
        if settled == self.side {
            self.anchor = Some(p);
        } else if settled == -self.side {
            let when = self.past_since.take().unwrap_or(at);
            let from = self.anchor.replace(p);
            self.side = settled;
            if from.is_some_and(|a| line.through(a, p)) {
                let dir = if settled > 0 {
                    Direction::In
                } else {
                    Direction::Out
                };
                return Some((dir, when));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::MILLISECOND;

    fn square() -> Vec<Point> {
        vec![[0.2, 0.2], [0.6, 0.2], [0.6, 0.6], [0.2, 0.6]]
    }

    #[test]
    fn points_on_edges_and_corners_are_inside() {
        let sq = square();
        for p in [
            [0.2, 0.4],
            [0.6, 0.4],
            [0.4, 0.2],
            [0.4, 0.6],
            [0.2, 0.2],
            [0.6, 0.6],
        ] {
            assert!(inside(&sq, p), "{p:?}");
        }
        assert!(inside(&sq, [0.4, 0.4]));
        for p in [
            [0.19, 0.4],
            [0.61, 0.4],
            [0.4, 0.7],
            [0.0, 0.0],
            [f32::NAN, 0.4],
        ] {
            assert!(!inside(&sq, p), "{p:?}");
        }
        // A concave polygon: the notch is outside.
        let l = vec![
            [0.0, 0.0],
            [0.5, 0.0],
            [0.5, 0.2],
            [0.2, 0.2],
            [0.2, 0.5],
            [0.0, 0.5],
        ];
        assert!(inside(&l, [0.1, 0.4]) && inside(&l, [0.4, 0.1]));
        assert!(!inside(&l, [0.4, 0.4]));
        assert!(
            !inside(&[[0.0, 0.0], [1.0, 1.0]], [0.5, 0.5]),
            "not a polygon"
        );
    }

    #[test]
    fn jitter_at_a_zone_edge_enters_once_and_never_leaves() {
        let z = Zone {
            name: "door".into(),
            polygon: square(),
            labels: vec![],
        };
        let mut was = false;
        let mut changes = 0;
        for i in 0..100 {
            let x = if i % 2 == 0 { 0.195 } else { 0.205 }; // ±0.005 about x = 0.2
            let now = z.holds([x, 0.4], was);
            changes += (now != was) as u32;
            was = now;
        }
        assert_eq!(changes, 1, "one enter and no leave");
        assert!(was);
        assert!(!z.holds([0.15, 0.4], true), "out by more than the margin");
    }

    #[test]
    fn boxes_overlap_zones_by_corner_vertex_or_edge() {
        let z = Zone {
            name: "z".into(),
            polygon: square(),
            labels: vec!["person".into()],
        };
        assert!(z.overlaps(BBox::new(0.5, 0.5, 0.3, 0.3)), "corner inside");
        assert!(z.overlaps(BBox::new(0.1, 0.1, 0.8, 0.8)), "zone inside box");
        assert!(
            z.overlaps(BBox::new(0.3, 0.1, 0.05, 0.8)),
            "box crosses the zone"
        );
        assert!(!z.overlaps(BBox::new(0.7, 0.7, 0.1, 0.1)));
        assert!(z.follows("Person") && !z.follows("car"));
    }

    fn walk(line: &Line, points: &[Point]) -> Vec<(Direction, Timestamp)> {
        let mut s = LineSide::default();
        points
            .iter()
            .enumerate()
            .filter_map(|(i, &p)| s.step(line, Timestamp(i as u64 * 200 * MILLISECOND), p))
            .collect()
    }

    fn horizontal() -> Line {
        Line {
            name: "gate".into(),
            from: [0.0, 0.5],
            to: [1.0, 0.5],
            labels: vec![],
        }
    }

    #[test]
    fn crossings_have_a_direction_and_the_first_frame_past_the_line() {
        let line = horizontal();
        assert!(
            line.side([0.5, 0.7]) > 0.0,
            "below a left-to-right line is `in`"
        );
        let down: Vec<Point> = (0..10).map(|i| [0.5, 0.3 + 0.05 * i as f32]).collect();
        // y = 0.3, 0.35, ... 0.75: past 0.5 first at i = 5 (0.55).
        assert_eq!(
            walk(&line, &down),
            vec![(Direction::In, Timestamp(1000 * MILLISECOND))]
        );
        let up: Vec<Point> = down.iter().rev().copied().collect();
        assert_eq!(walk(&line, &up)[0].0, Direction::Out);
        let back: Vec<Point> = down.iter().chain(up.iter()).copied().collect();
        let dirs: Vec<_> = walk(&line, &back).into_iter().map(|c| c.0).collect();
        assert_eq!(dirs, [Direction::In, Direction::Out]);
    }

    #[test]
    fn jitter_at_a_line_is_counted_once() {
        let line = horizontal();
        // Walks down to the line, dithers across it within the margin for
        // 40 frames, then goes on down: one crossing.
        let mut pts: Vec<Point> = (0..5).map(|i| [0.5, 0.4 + 0.02 * i as f32]).collect();
        pts.extend((0..40).map(|i| [0.5, if i % 2 == 0 { 0.495 } else { 0.505 }]));
        pts.extend((0..5).map(|i| [0.5, 0.52 + 0.02 * i as f32]));
        let c = walk(&line, &pts);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].0, Direction::In);
        // Timed at the first frame of the last stay past the line (frame
        // 44, y = 0.505): each return above the line restarts the clock.
        assert_eq!(c[0].1, Timestamp(44 * 200 * MILLISECOND));
        // Dithering without ever settling on the other side: nothing.
        let mut pts: Vec<Point> = (0..5).map(|i| [0.5, 0.4 + 0.02 * i as f32]).collect();
        pts.extend((0..40).map(|i| [0.5, if i % 2 == 0 { 0.495 } else { 0.505 }]));
        pts.extend((0..5).map(|i| [0.5, 0.48 - 0.02 * i as f32]));
        assert!(walk(&line, &pts).is_empty());
    }

    #[test]
    fn passing_beside_the_segment_is_not_a_crossing() {
        let line = Line {
            name: "short".into(),
            from: [0.4, 0.5],
            to: [0.6, 0.5],
            labels: vec![],
        };
        let beside: Vec<Point> = (0..10).map(|i| [0.8, 0.3 + 0.05 * i as f32]).collect();
        assert!(walk(&line, &beside).is_empty());
        let through: Vec<Point> = (0..10).map(|i| [0.5, 0.3 + 0.05 * i as f32]).collect();
        assert_eq!(walk(&line, &through).len(), 1);
        let degenerate = Line {
            name: "dot".into(),
            from: [0.5, 0.5],
            to: [0.5, 0.5],
            labels: vec![],
        };
        assert!(walk(&degenerate, &through).is_empty());
    }
}
