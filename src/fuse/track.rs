//! Multi-object tracking, ByteTrack style (Zhang et al. 2022).
//!
//! Every track carries a constant-velocity Kalman filter on its box centre,
//! aspect ratio (w/h) and height; it predicts once per analysed frame. Each
//! frame's detections are associated to tracks of the same label by IoU
//! against the predicted boxes, with optimal (Hungarian) assignment, in three
//! passes: confident detections (over the detector's per-class threshold)
//! against every confirmed track (matched or coasting), then faint ones
//! (between the detector's `faint` score and that threshold) against the
//! confirmed tracks still unmatched that were matched in the previous frame
//! (so weak detections extend a track but never revive or start one), then
//! the confident detections left over against tentative tracks. A tentative
//! track that misses a frame dies; one matched in `confirm` consecutive
//! frames is confirmed and only then gets its id, so confirmed ids are 1, 2,
//! 3, ... without holes. Confident detections left over start tentative
//! tracks. A confirmed track coasts on its prediction while unmatched and is
//! lost once `lost_after` has passed since its last match. A frame the
//! detector looked at only in part (motion gating) holds the tracks it did
//! not look at where they were (present, neither matched nor missed) when
//! their last sighting was confident; one kept only by faint detections is
//! not held, and is lost in time.

use pathfinding::prelude::{Matrix, kuhn_munkres_min};

use crate::encode::detector::Detection;
use crate::geometry::BBox;
use crate::time::{SECOND, Timestamp};

/// IoU a low-score detection needs with a track in the second pass (as in
/// ByteTrack, whose second pass is stricter than the first).
const LOW_PASS_IOU: f32 = 0.5;
/// Smallest usable box side, in frame sizes; smaller boxes are ignored.
const MIN_SIZE: f32 = 1e-4;
/// Largest usable coordinate magnitude, in frame sizes; boxes further out are
/// nonsense and ignored.
const MAX_EXTENT: f32 = 4.0;
/// Most points a track's path keeps.
const PATH_MAX: usize = 256;
/// Most recent path points never thinned (velocity is measured on them).
const PATH_RECENT: usize = 64;
/// Integer scale of assignment costs: cost = (1 - IoU) * COST_SCALE.
const COST_SCALE: f32 = 1e6;
/// Kalman process and measurement noise, relative to the box height
/// (DeepSORT / ByteTrack values).
const STD_WEIGHT_POSITION: f32 = 1.0 / 20.0;
const STD_WEIGHT_VELOCITY: f32 = 1.0 / 160.0;

/// Tracker tuning. IoUs in 0–1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrackerParams {
    /// Least IoU to associate a high detection with a confirmed or tentative
    /// track (the low-score pass always needs 0.5).
    pub match_iou: f32,
    /// Consecutive matched frames before a track is confirmed (0 counts as 1).
    pub confirm: u32,
    /// Nanoseconds a confirmed track may go unmatched before it is lost.
    pub lost_after: u64,
}

impl Default for TrackerParams {
    fn default() -> Self {
        TrackerParams {
            match_iou: 0.1,
            confirm: 3,
            lost_after: SECOND,
        }
    }
}

/// What an [`Tracker::update`] or [`Tracker::finish`] changed.
#[derive(Clone, Debug)]
pub enum TrackEvent {
    /// The track with this id was confirmed in this frame.
    Confirmed(u64),
    /// The track was lost; it is removed from the tracker and this is its
    /// final state.
    Lost(Track),
}

/// One tracked object.
#[derive(Clone, Debug)]
pub struct Track {
    /// Stable id, given at confirmation: 1, 2, 3, ... per tracker, never
    /// reused (0 while tentative, which callers never see).
    pub id: u64,
    /// Label of the detections it follows (only these can match it).
    pub label: &'static str,
    /// Score of the last matched detection.
    pub score: f32,
    /// Score of the best matched detection so far.
    pub best_score: f32,
    /// When the best detection was.
    pub best_at: Timestamp,
    /// Box of the best detection.
    pub best_bbox: BBox,
    /// Current box: the detection's when matched in the latest frame, else
    /// the Kalman prediction.
    pub bbox: BBox,
    /// Time of the first detection (counted from the tentative start).
    pub first_seen: Timestamp,
    /// Time of the last matched detection.
    pub last_seen: Timestamp,
    /// End of the last matched frame: the object is known present over
    /// `[first_seen, until)`.
    pub until: Timestamp,
    /// Frames with a matched detection.
    pub hits: u32,
    /// Whether the latest frame had a matching detection.
    pub matched: bool,
    /// Box centres of matched detections, oldest first. Bounded: when full,
    /// older points are thinned; the first point and the recent ones stay.
    pub path: Vec<(Timestamp, [f32; 2])>,
    /// Scores of the latest matched detections, at most [`SCORES_KEPT`].
    scores: Vec<f32>,
    /// Frame height / width, for velocities in frame widths.
    aspect: f32,
}

/// Matched scores a track keeps for its median.
const SCORES_KEPT: usize = 15;

impl Track {
    /// Time the object is known present, `until - first_seen`, in ns.
    pub fn dwell(&self) -> u64 {
        self.until.saturating_sub(self.first_seen).nanos()
    }

    /// Median score of its latest matched detections (the lower of the
    /// middle two when even).
    pub fn median_score(&self) -> f32 {
        let mut s = self.scores.clone();
        s.sort_by(f32::total_cmp);
        s.get(s.len().saturating_sub(1) / 2).copied().unwrap_or(0.0)
    }

    /// Bottom centre of `bbox`: the point zones and lines use.
    pub fn anchor(&self) -> [f32; 2] {
        self.bbox.anchor()
    }

    /// Velocity of the box centre in frame widths per second (y scaled by the
    /// frame's height / width), over about the last second of the path.
    pub fn velocity(&self) -> [f32; 2] {
        let Some(&(t1, [x1, y1])) = self.path.last() else {
            return [0.0, 0.0];
        };
        let start = self
            .path
            .iter()
            .rev()
            .find(|(t, _)| t1.saturating_sub(*t).nanos() >= SECOND)
            .or(self.path.first());
        let Some(&(t0, [x0, y0])) = start else {
            return [0.0, 0.0];
        };
        let ns = t1.saturating_sub(t0).nanos();
        if ns == 0 {
            return [0.0, 0.0];
        }
        let secs = (ns as f64 / SECOND as f64) as f32;
        [(x1 - x0) / secs, (y1 - y0) * self.aspect / secs]
    }

    /// Magnitude of [`Track::velocity`], frame widths per second.
    pub fn speed(&self) -> f32 {
        let [vx, vy] = self.velocity();
        vx.hypot(vy)
    }

    /// Last path point minus the first, in normalised frame coordinates.
    pub fn displacement(&self) -> [f32; 2] {
        match (self.path.first(), self.path.last()) {
            (Some((_, [x0, y0])), Some((_, [x1, y1]))) => [x1 - x0, y1 - y0],
            _ => [0.0, 0.0],
        }
    }

    fn new(det: &Detection, pts: Timestamp, until: Timestamp, aspect: f32) -> Self {
        Track {
            id: 0,
            label: det.label,
            score: det.score,
            best_score: det.score,
            best_at: pts,
            best_bbox: det.bbox,
            bbox: det.bbox,
            first_seen: pts,
            last_seen: pts,
            until,
            hits: 1,
            matched: true,
            path: vec![(pts, det.bbox.centre())],
            scores: vec![det.score],
            aspect,
        }
    }

    fn hit(&mut self, det: &Detection, pts: Timestamp, until: Timestamp) {
        self.score = det.score;
        if det.score > self.best_score {
            self.best_score = det.score;
            self.best_at = pts;
            self.best_bbox = det.bbox;
        }
        self.bbox = det.bbox;
        self.last_seen = pts;
        self.until = until;
        self.hits = self.hits.saturating_add(1);
        self.matched = true;
        if self.scores.len() == SCORES_KEPT {
            self.scores.remove(0);
        }
        self.scores.push(det.score);
        self.path.push((pts, det.bbox.centre()));
        if self.path.len() > PATH_MAX {
            // Drop the odd-indexed points of the older part: the first point
            // (index 0) and the recent ones stay.
            let old_end = self.path.len() - PATH_RECENT;
            let mut i = 0;
            self.path.retain(|_| {
                let keep = i % 2 == 0 || i >= old_end;
                i += 1;
                keep
            });
        }
    }
}

/// ByteTrack multi-object tracker; see the module docs.
#[derive(Clone, Debug)]
pub struct Tracker {
    params: TrackerParams,
    aspect: f32,
    next_id: u64,
    /// Confirmed tracks, in id order.
    confirmed: Vec<Entry>,
    /// Tentative tracks, in creation order.
    tentative: Vec<Entry>,
    /// Frames seen so far.
    frames: u64,
}

#[derive(Clone, Debug)]
struct Entry {
    track: Track,
    kalman: Kalman,
    /// The latest frame that did not look where the track is: it was
    /// not seen to go, and is held there until looked at again.
    held_at: Option<Timestamp>,
    /// The latest frame with a confident detection of it: a track kept
    /// only by faint ones since (a person who walked past a cone, now on
    /// the cone) is not held.
    strong_at: Timestamp,
}

impl Tracker {
    /// A tracker with no tracks.
    pub fn new(params: TrackerParams) -> Self {
        Tracker {
            params,
            aspect: 9.0 / 16.0,
            next_id: 1,
            confirmed: Vec::new(),
            tentative: Vec::new(),
            frames: 0,
        }
    }

    /// Height / width of the frame, so that speed can be given in frame
    /// widths per second (y distances scaled by it). 9/16 until set; values
    /// that are not finite and positive are ignored.
    pub fn set_aspect(&mut self, height_over_width: f32) {
        if height_over_width.is_finite() && height_over_width > 0.0 {
            self.aspect = height_over_width;
            for e in self.confirmed.iter_mut().chain(&mut self.tentative) {
                e.track.aspect = height_over_width;
            }
        }
    }

    /// One analysed frame at `pts`, valid until `until` (the next analysed
    /// frame), with all its detections (all labels). Detections with a
    /// non-finite score or box, or a side under 1e-4 frame sizes, are
    /// ignored. Returns what changed: tracks lost in this frame, then tracks
    /// confirmed in it, each in id order.
    pub fn update(
        &mut self,
        pts: Timestamp,
        until: Timestamp,
        confident: &[Detection],
        faint: &[Detection],
    ) -> Vec<TrackEvent> {
        self.update_in(pts, until, confident, faint, None)
    }

    /// [`Tracker::update`] for a frame the detector looked at only in
    /// `region` (normalised; `None`: all of it, empty: nowhere). A track
    /// whose box centre lies outside it was not looked at: it is held
    /// where it was (no prediction, no miss, still present until the end
    /// of this frame), neither matched nor lost, until a frame looks there.
    pub fn update_in(
        &mut self,
        pts: Timestamp,
        until: Timestamp,
        confident: &[Detection],
        faint: &[Detection],
        region: Option<BBox>,
    ) -> Vec<TrackEvent> {
        let p = self.params;
        let looked = |b: BBox| region.is_none_or(|r| r.contains(b.centre()));
        let dets: Vec<&Detection> = confident.iter().filter(|d| usable(d)).collect();
        let strong = dets.len();
        let dets: Vec<&Detection> = dets
            .into_iter()
            .chain(faint.iter().filter(|d| usable(d)))
            .collect();
        let was_matched: Vec<bool> = self.confirmed.iter().map(|e| e.track.matched).collect();
        let mut unlooked: Vec<bool> = Vec::new();
        for e in self.confirmed.iter_mut().chain(&mut self.tentative) {
            let seen = looked(e.track.bbox);
            unlooked.push(!seen);
            if !seen {
                // Not looked at. Matched confidently where it was last
                // looked at: held there, present through this frame too.
                // Already missing there, or only faintly there: it goes
                // on so, lost in time.
                if e.track.matched && e.strong_at == e.track.last_seen {
                    e.held_at = Some(pts);
                    e.track.until = e.track.until.max(until);
                } else {
                    e.track.matched = false;
                }
                continue;
            }
            e.kalman.predict(!e.track.matched);
            e.track.bbox = e.kalman.bbox();
            e.track.matched = false;
        }
        let (unlooked_confirmed, unlooked_tentative) = unlooked.split_at(self.confirmed.len());
        let looking =
            |skip: &[bool]| -> Vec<usize> { (0..skip.len()).filter(|&t| !skip[t]).collect() };

        let mut used = vec![false; dets.len()];
        let high: Vec<usize> = (0..strong).collect();
        let low: Vec<usize> = (strong..dets.len()).collect();

        // 1: high detections vs every confirmed track looked at, matched or
        // coasting.
        let all = looking(unlooked_confirmed);
        let pairs = associate(&self.confirmed, &all, &dets, &high, p.match_iou);
        apply(
            &mut self.confirmed,
            &pairs,
            &dets,
            &mut used,
            (pts, until),
            true,
        );

        // 2: low detections vs the confirmed tracks left that were matched in
        // the previous frame.
        let tracked: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&t| was_matched[t] && !self.confirmed[t].track.matched)
            .collect();
        let pairs = associate(&self.confirmed, &tracked, &dets, &low, LOW_PASS_IOU);
        apply(
            &mut self.confirmed,
            &pairs,
            &dets,
            &mut used,
            (pts, until),
            false,
        );

        // 3: high detections left vs tentative tracks looked at; unmatched
        // ones die.
        let rest: Vec<usize> = high.into_iter().filter(|&d| !used[d]).collect();
        let all = looking(unlooked_tentative);
        let pairs = associate(&self.tentative, &all, &dets, &rest, p.match_iou);
        apply(
            &mut self.tentative,
            &pairs,
            &dets,
            &mut used,
            (pts, until),
            true,
        );
        // (A held one is still matched from where it was last looked at.)
        self.tentative.retain(|e| e.track.matched);

        for &d in &rest {
            if !used[d] {
                self.tentative.push(Entry {
                    track: Track::new(dets[d], pts, until, self.aspect),
                    kalman: Kalman::new(measurement(dets[d].bbox)),
                    held_at: None,
                    strong_at: pts,
                });
            }
        }

        // Lost: looked at, unmatched, and neither matched nor held for
        // `lost_after`.
        let mut events: Vec<TrackEvent> = self
            .confirmed
            .extract_if(.., |e| {
                let vouched = e
                    .held_at
                    .map_or(e.track.last_seen, |h| h.max(e.track.last_seen));
                !e.track.matched && pts.saturating_sub(vouched).nanos() >= p.lost_after
            })
            .map(|e| TrackEvent::Lost(e.track))
            .collect();
        // As in ByteTrack, what the first frame shows is there at once: a
        // still picture or a stream that starts on a scene is not doubted.
        self.frames += 1;
        let confirm = if self.frames == 1 {
            1
        } else {
            p.confirm.max(1)
        };
        for mut e in self.tentative.extract_if(.., |e| e.track.hits >= confirm) {
            e.track.id = self.next_id;
            self.next_id += 1;
            events.push(TrackEvent::Confirmed(e.track.id));
            self.confirmed.push(e);
        }
        events
    }

    /// Confirmed tracks currently alive (matched or coasting), in id order.
    pub fn tracks(&self) -> impl Iterator<Item = &Track> {
        self.confirmed.iter().map(|e| &e.track)
    }

    /// The confirmed track with this id, if alive.
    pub fn get(&self, id: u64) -> Option<&Track> {
        self.confirmed
            .binary_search_by_key(&id, |e| e.track.id)
            .ok()
            .map(|i| &self.confirmed[i].track)
    }

    /// End of input: every confirmed track is lost now (in id order) and
    /// tentative ones are dropped. Ids keep counting from where they were.
    pub fn finish(&mut self) -> Vec<TrackEvent> {
        self.tentative.clear();
        self.confirmed
            .drain(..)
            .map(|e| TrackEvent::Lost(e.track))
            .collect()
    }
}

/// Whether a detection can be tracked at all.
fn usable(det: &Detection) -> bool {
    let BBox { w, h, .. } = det.bbox;
    det.score.is_finite()
        && det.bbox.to_array().iter().all(|v| v.abs() <= MAX_EXTENT)
        && w >= MIN_SIZE
        && h >= MIN_SIZE
}

/// Kalman measurement `(cx, cy, w/h, h)` of a usable box.
fn measurement(bbox: BBox) -> [f32; 4] {
    let [cx, cy] = bbox.centre();
    [cx, cy, bbox.w / bbox.h, bbox.h]
}

/// Matches detections `dets[cands]` to tracks `entries[tracks]` of the same
/// label, optimally by IoU on the tracks' current boxes; pairs below
/// `min_iou` (or not overlapping) stay unmatched. Returns `(track, det)`
/// index pairs.
fn associate(
    entries: &[Entry],
    tracks: &[usize],
    dets: &[&Detection],
    cands: &[usize],
    min_iou: f32,
) -> Vec<(usize, usize)> {
    let mut labels: Vec<&str> = tracks.iter().map(|&t| entries[t].track.label).collect();
    labels.sort_unstable();
    labels.dedup();
    let mut pairs = Vec::new();
    for label in labels {
        let ts: Vec<usize> = tracks
            .iter()
            .copied()
            .filter(|&t| entries[t].track.label == label)
            .collect();
        let ds: Vec<usize> = cands
            .iter()
            .copied()
            .filter(|&d| dets[d].label == label)
            .collect();
        if ds.is_empty() {
            continue;
        }
        let ious: Vec<Vec<f32>> = ts
            .iter()
            .map(|&t| {
                let b = entries[t].track.bbox;
                ds.iter().map(|&d| b.iou(dets[d].bbox)).collect()
            })
            .collect();
        let ok = |v: f32| v > 0.0 && v >= min_iou;
        let cost = |t: usize, d: usize| {
            let v = ious[t][d];
            if ok(v) {
                ((1.0 - v) * COST_SCALE) as i64
            } else {
                COST_SCALE as i64
            }
        };
        // Kuhn–Munkres assigns every row, so rows must not outnumber columns.
        let transpose = ts.len() > ds.len();
        let assignment: Vec<(usize, usize)> = if transpose {
            let m = Matrix::from_fn(ds.len(), ts.len(), |(d, t)| cost(t, d));
            let (_, cols) = kuhn_munkres_min(&m);
            cols.into_iter().enumerate().map(|(d, t)| (t, d)).collect()
        } else {
            let m = Matrix::from_fn(ts.len(), ds.len(), |(t, d)| cost(t, d));
            kuhn_munkres_min(&m).1.into_iter().enumerate().collect()
        };
        pairs.extend(
            assignment
                .into_iter()
                .filter(|&(t, d)| ok(ious[t][d]))
                .map(|(t, d)| (ts[t], ds[d])),
        );
    }
    pairs
}

/// Records matched pairs from [`associate`] on their tracks.
fn apply(
    entries: &mut [Entry],
    pairs: &[(usize, usize)],
    dets: &[&Detection],
    used: &mut [bool],
    (pts, until): (Timestamp, Timestamp),
    strong: bool,
) {
    for &(t, d) in pairs {
        let e = &mut entries[t];
        if strong {
            e.strong_at = pts;
        }
        e.kalman.update(measurement(dets[d].bbox));
        e.track.hit(dets[d], pts, until);
        used[d] = true;
    }
}

/// Constant-velocity Kalman filter on `(cx, cy, w/h, h)` as in ByteTrack.
/// Its transition is block diagonal per coordinate and its noises diagonal,
/// so the 8-D filter is exactly four independent (position, velocity) ones.
#[derive(Clone, Debug)]
struct Kalman {
    axes: [Axis; 4],
}

/// One coordinate's (position, velocity) state and covariance.
#[derive(Clone, Copy, Debug)]
struct Axis {
    x: f32,
    v: f32,
    pxx: f32,
    pxv: f32,
    pvv: f32,
}

impl Kalman {
    fn new(z: [f32; 4]) -> Self {
        let h = z[3];
        let pos = [
            2.0 * STD_WEIGHT_POSITION * h,
            2.0 * STD_WEIGHT_POSITION * h,
            1e-2,
            2.0 * STD_WEIGHT_POSITION * h,
        ];
        let vel = [
            10.0 * STD_WEIGHT_VELOCITY * h,
            10.0 * STD_WEIGHT_VELOCITY * h,
            1e-5,
            10.0 * STD_WEIGHT_VELOCITY * h,
        ];
        Kalman {
            axes: std::array::from_fn(|i| Axis {
                x: z[i],
                v: 0.0,
                pxx: pos[i] * pos[i],
                pxv: 0.0,
                pvv: vel[i] * vel[i],
            }),
        }
    }

    /// Noise scale: the current height, kept positive.
    fn scale(&self) -> f32 {
        self.axes[3].x.max(MIN_SIZE)
    }

    /// One step ahead. A coasting track's height stops changing (ByteTrack).
    fn predict(&mut self, coasting: bool) {
        if coasting {
            self.axes[3].v = 0.0;
        }
        let h = self.scale();
        let pos = [
            STD_WEIGHT_POSITION * h,
            STD_WEIGHT_POSITION * h,
            1e-2,
            STD_WEIGHT_POSITION * h,
        ];
        let vel = [
            STD_WEIGHT_VELOCITY * h,
            STD_WEIGHT_VELOCITY * h,
            1e-5,
            STD_WEIGHT_VELOCITY * h,
        ];
        for (i, a) in self.axes.iter_mut().enumerate() {
            a.x += a.v;
            a.pxx += 2.0 * a.pxv + a.pvv + pos[i] * pos[i];
            a.pxv += a.pvv;
            a.pvv += vel[i] * vel[i];
        }
    }

    /// Corrects with a measurement `(cx, cy, w/h, h)`.
    fn update(&mut self, z: [f32; 4]) {
        let h = self.scale();
        let r = [
            STD_WEIGHT_POSITION * h,
            STD_WEIGHT_POSITION * h,
            1e-1,
            STD_WEIGHT_POSITION * h,
        ];
        for (i, a) in self.axes.iter_mut().enumerate() {
            let s = a.pxx + r[i] * r[i];
            if !(s > 0.0 && s.is_finite()) {
                continue;
            }
            let (kx, kv) = (a.pxx / s, a.pxv / s);
            let y = z[i] - a.x;
            a.x += kx * y;
            a.v += kv * y;
            a.pvv -= kv * a.pxv;
            a.pxv *= 1.0 - kx;
            a.pxx *= 1.0 - kx;
        }
    }

    /// Current box.
    fn bbox(&self) -> BBox {
        let [cx, cy, a, h] = self.axes.map(|a| a.x);
        let h = h.max(0.0);
        let w = (a * h).max(0.0);
        BBox::new(cx - w / 2.0, cy - h / 2.0, w, h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::MILLISECOND;

    const FRAME: u64 = 200 * MILLISECOND;

    fn at(k: u64) -> Timestamp {
        Timestamp(k * FRAME)
    }

    /// A detection by centre and size.
    fn det(label: &'static str, score: f32, cx: f32, cy: f32, w: f32, h: f32) -> Detection {
        Detection {
            label,
            score,
            bbox: BBox::new(cx - w / 2.0, cy - h / 2.0, w, h),
        }
    }

    /// A tracker past its first frame (which confirms what it shows at once).
    fn running(params: TrackerParams) -> Tracker {
        let mut tr = Tracker::new(params);
        tr.update(at(0), at(0), &[], &[]);
        tr
    }

    #[test]
    fn what_the_first_frame_shows_is_confirmed_at_once() {
        let mut tr = Tracker::new(TrackerParams::default());
        let ev = step(&mut tr, 0, &[det("cat", 0.8, 0.3, 0.3, 0.4, 0.4)]);
        assert_eq!(confirmed(&ev), vec![1]);
        let ev = step(
            &mut tr,
            1,
            &[
                det("cat", 0.8, 0.3, 0.3, 0.4, 0.4),
                det("dog", 0.8, 0.7, 0.3, 0.2, 0.2),
            ],
        );
        assert!(
            confirmed(&ev).is_empty(),
            "later arrivals wait for confirmation"
        );
    }

    /// One frame; as a detector with a threshold of 0.5 and a faint
    /// score of 0.1 would split them.
    fn step(tr: &mut Tracker, k: u64, dets: &[Detection]) -> Vec<TrackEvent> {
        let (confident, rest): (Vec<Detection>, Vec<Detection>) =
            dets.iter().cloned().partition(|d| d.score >= 0.5);
        let faint: Vec<Detection> = rest.into_iter().filter(|d| d.score >= 0.1).collect();
        tr.update(at(k), at(k + 1), &confident, &faint)
    }

    fn confirmed(events: &[TrackEvent]) -> Vec<u64> {
        events
            .iter()
            .filter_map(|e| match e {
                TrackEvent::Confirmed(id) => Some(*id),
                TrackEvent::Lost(_) => None,
            })
            .collect()
    }

    fn lost(events: Vec<TrackEvent>) -> Vec<Track> {
        events
            .into_iter()
            .filter_map(|e| match e {
                TrackEvent::Lost(t) => Some(t),
                TrackEvent::Confirmed(_) => None,
            })
            .collect()
    }

    /// Deterministic noise in [-1, 1).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> f32 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
    }

    #[test]
    fn steady_object_one_id_then_lost() {
        let mut tr = running(TrackerParams::default());
        tr.set_aspect(0.5);
        let n = 30;
        for k in 0..n {
            let x = 0.2 + 0.02 * k as f32;
            let ev = step(&mut tr, k, &[det("person", 0.9, x, 0.5, 0.1, 0.3)]);
            if k == 2 {
                assert_eq!(confirmed(&ev), vec![1]);
            } else {
                assert!(ev.is_empty(), "frame {k}: {ev:?}");
            }
            if k >= 2 {
                let t = tr.get(1).expect("track 1");
                assert!(t.matched);
                assert_eq!(t.hits as u64, k + 1);
            }
        }
        let t = tr.get(1).expect("track 1");
        let v = t.velocity();
        assert!((v[0] - 0.1).abs() < 0.01, "{v:?}");
        assert!(v[1].abs() < 0.005, "{v:?}");
        assert!((t.speed() - 0.1).abs() < 0.01);
        let [ax, ay] = t.anchor();
        assert!((ax - (0.2 + 0.02 * (n - 1) as f32)).abs() < 1e-4 && (ay - 0.65).abs() < 1e-4);

        // Coasts for lost_after (5 frames), lost on the 5th empty frame.
        for k in n..n + 4 {
            assert!(step(&mut tr, k, &[]).is_empty());
            let t = tr.get(1).expect("coasting");
            assert!(!t.matched);
        }
        let gone = lost(step(&mut tr, n + 4, &[]));
        assert_eq!(gone.len(), 1);
        let t = &gone[0];
        assert_eq!(t.id, 1);
        assert_eq!(t.first_seen, at(0));
        assert_eq!(t.last_seen, at(n - 1));
        assert_eq!(t.until, at(n));
        assert_eq!(t.dwell(), n * FRAME);
        assert_eq!(t.hits as u64, n);
        assert_eq!(t.path.len() as u64, n);
        assert_eq!(t.path[0].0, at(0));
        let d = t.displacement();
        assert!((d[0] - 0.02 * (n - 1) as f32).abs() < 1e-4 && d[1].abs() < 1e-4);
        assert_eq!(tr.tracks().count(), 0);
        assert!(tr.finish().is_empty());
    }

    #[test]
    fn a_track_not_looked_at_is_held_where_it_was_until_looked_at_again() {
        let mut tr = Tracker::new(TrackerParams::default());
        let car = det("car", 0.9, 0.7, 0.7, 0.2, 0.2);
        step(&mut tr, 0, std::slice::from_ref(&car));
        // Ten seconds of frames that look elsewhere (top left) or nowhere.
        let elsewhere = Some(BBox::new(0.0, 0.0, 0.3, 0.3));
        for k in 1..50 {
            let region = if k % 2 == 0 {
                elsewhere
            } else {
                Some(BBox::default())
            };
            let ev = tr.update_in(at(k), at(k + 1), &[], &[], region);
            assert!(ev.is_empty(), "frame {k}: {ev:?}");
        }
        let t = tr.get(1).expect("held");
        assert!(t.matched);
        assert_eq!(t.bbox, car.bbox);
        assert_eq!(t.until, at(50), "present through the frames not looked at");
        assert_eq!(t.hits, 1);
        // Looked at and there: the same track.
        let ev = tr.update_in(at(50), at(51), std::slice::from_ref(&car), &[], None);
        assert!(ev.is_empty(), "{ev:?}");
        assert_eq!(tr.get(1).map(|t| t.hits), Some(2));
        // Looked at and gone: lost after lost_after (1 s) of looking or not.
        let mut lost_at = None;
        for k in 51..60 {
            let region = if k == 51 { None } else { Some(BBox::default()) };
            if !lost(tr.update_in(at(k), at(k + 1), &[], &[], region)).is_empty() {
                lost_at = Some(k);
                break;
            }
        }
        assert_eq!(lost_at, Some(55), "1 s after its last sighting at frame 50");
    }

    #[test]
    fn crossing_objects_keep_their_ids() {
        let mut tr = running(TrackerParams::default());
        let mut ids = Vec::new();
        for k in 0..40 {
            let a = 0.1 + 0.02 * k as f32; // rightwards
            let b = 0.9 - 0.02 * k as f32; // leftwards
            let ev = step(
                &mut tr,
                k,
                &[
                    det("person", 0.9, a, 0.50, 0.08, 0.2),
                    det("person", 0.8, b, 0.55, 0.08, 0.2),
                ],
            );
            ids.extend(confirmed(&ev));
        }
        assert_eq!(ids, vec![1, 2]);
        let tracks: Vec<&Track> = tr.tracks().collect();
        assert_eq!(tracks.len(), 2);
        for t in tracks {
            assert_eq!(t.hits, 40);
            let first = t.path[0].1;
            let d = t.displacement();
            if first[0] < 0.5 {
                assert!(d[0] > 0.7 && (first[1] - 0.5).abs() < 1e-4, "{t:?}");
                assert!(t.path.iter().all(|p| (p.1[1] - 0.5).abs() < 1e-4));
            } else {
                assert!(d[0] < -0.7 && (first[1] - 0.55).abs() < 1e-4, "{t:?}");
                assert!(t.path.iter().all(|p| (p.1[1] - 0.55).abs() < 1e-4));
            }
        }
    }

    /// An object moving right, absent for frames in `gap`.
    fn run_gap(gap: std::ops::Range<u64>, frames: u64) -> (Vec<(u64, u64)>, Vec<Track>) {
        let mut tr = running(TrackerParams::default());
        let (mut ids, mut gone) = (Vec::new(), Vec::new());
        for k in 0..frames {
            let dets = if gap.contains(&k) {
                vec![]
            } else {
                vec![det("car", 0.9, 0.1 + 0.01 * k as f32, 0.5, 0.1, 0.1)]
            };
            let ev = step(&mut tr, k, &dets);
            ids.extend(confirmed(&ev).into_iter().map(|id| (k, id)));
            gone.extend(lost(ev));
        }
        gone.extend(lost(tr.finish()));
        (ids, gone)
    }

    #[test]
    fn short_occlusion_keeps_id() {
        let (ids, gone) = run_gap(10..13, 30);
        assert_eq!(ids, vec![(2, 1)]);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].hits, 27);
        assert_eq!(gone[0].first_seen, at(0));
        assert_eq!(gone[0].until, at(30));
    }

    #[test]
    fn long_occlusion_gets_new_id() {
        let (ids, gone) = run_gap(10..17, 30);
        // Last seen at frame 9, lost 1 s later at frame 14; back at 17,
        // confirmed at 19.
        assert_eq!(ids, vec![(2, 1), (19, 2)]);
        assert_eq!(gone.len(), 2);
        assert_eq!(
            (gone[0].id, gone[0].last_seen, gone[0].until),
            (1, at(9), at(10))
        );
        assert_eq!(
            (gone[1].id, gone[1].first_seen, gone[1].hits),
            (2, at(17), 13)
        );
    }

    #[test]
    fn jitter_keeps_one_id() {
        let mut tr = running(TrackerParams::default());
        let mut rng = Lcg(7);
        let mut ids = Vec::new();
        for k in 0..100 {
            let d = det(
                "person",
                0.7 + 0.2 * rng.next(),
                0.5 + 0.01 * rng.next(),
                0.5 + 0.01 * rng.next(),
                0.1 * (1.0 + 0.01 * rng.next()),
                0.25 * (1.0 + 0.01 * rng.next()),
            );
            ids.extend(confirmed(&step(&mut tr, k, &[d])));
        }
        assert_eq!(ids, vec![1]);
        let t = tr.get(1).expect("track");
        assert_eq!(t.hits, 100);
        assert!(t.speed() < 0.05, "{}", t.speed());
    }

    #[test]
    fn low_scores_continue_but_never_start() {
        let mut tr = running(TrackerParams::default());
        for k in 0..5 {
            step(&mut tr, k, &[det("person", 0.9, 0.3, 0.5, 0.1, 0.3)]);
        }
        for k in 5..15 {
            let ev = step(&mut tr, k, &[det("person", 0.3, 0.3, 0.5, 0.1, 0.3)]);
            assert!(ev.is_empty());
            let t = tr.get(1).expect("track");
            assert!(t.matched);
            assert_eq!(t.score, 0.3);
        }
        let t = tr.get(1).expect("track");
        assert_eq!((t.hits, t.best_score, t.best_at), (15, 0.9, at(0)));

        let mut tr = running(TrackerParams::default());
        for k in 0..20 {
            assert!(step(&mut tr, k, &[det("person", 0.3, 0.3, 0.5, 0.1, 0.3)]).is_empty());
        }
        assert_eq!(tr.tracks().count(), 0);
        assert!(tr.finish().is_empty());
    }

    #[test]
    fn low_score_does_not_revive_a_coasting_track() {
        let mut tr = running(TrackerParams::default());
        for k in 0..5 {
            step(&mut tr, k, &[det("person", 0.9, 0.3, 0.5, 0.1, 0.3)]);
        }
        step(&mut tr, 5, &[]);
        step(&mut tr, 6, &[det("person", 0.3, 0.3, 0.5, 0.1, 0.3)]);
        assert!(!tr.get(1).expect("coasting").matched);
        step(&mut tr, 7, &[det("person", 0.9, 0.3, 0.5, 0.1, 0.3)]);
        let t = tr.get(1).expect("back");
        assert!(t.matched);
        assert_eq!(t.hits, 6);
    }

    #[test]
    fn labels_do_not_mix() {
        let mut tr = running(TrackerParams::default());
        let mut ids = Vec::new();
        for k in 0..20 {
            let x = 0.4 + 0.005 * k as f32;
            let ev = step(
                &mut tr,
                k,
                &[
                    det("person", 0.9, x, 0.5, 0.1, 0.3),
                    det("car", 0.8, x, 0.5, 0.1, 0.3),
                ],
            );
            ids.extend(confirmed(&ev));
        }
        assert_eq!(ids, vec![1, 2]);
        let labels: Vec<(&str, u32, f32)> =
            tr.tracks().map(|t| (t.label, t.hits, t.score)).collect();
        assert_eq!(labels, vec![("person", 20, 0.9), ("car", 20, 0.8)]);
    }

    #[test]
    fn ids_follow_confirmation_order_without_holes() {
        let mut tr = running(TrackerParams::default());
        let mut ids = Vec::new();
        for k in 0..12 {
            let mut dets = Vec::new();
            // B appears first but is hidden for a frame, so A confirms first.
            if k != 1 {
                dets.push(det("person", 0.9, 0.8, 0.5, 0.1, 0.3));
            }
            if k >= 1 {
                dets.push(det("person", 0.9, 0.2, 0.5, 0.1, 0.3));
            }
            // A tentative object that dies before confirmation.
            if k == 4 || k == 5 {
                dets.push(det("dog", 0.9, 0.5, 0.2, 0.1, 0.1));
            }
            if k >= 7 {
                dets.push(det("dog", 0.9, 0.5, 0.8, 0.1, 0.1));
            }
            ids.extend(
                confirmed(&step(&mut tr, k, &dets))
                    .into_iter()
                    .map(|id| (k, id)),
            );
        }
        assert_eq!(ids, vec![(3, 1), (4, 2), (9, 3)]);
        let order: Vec<u64> = tr.tracks().map(|t| t.id).collect();
        assert_eq!(order, vec![1, 2, 3]);
        assert_eq!(tr.get(1).map(|t| t.path[0].1[0]), Some(0.2));
        assert_eq!(tr.get(3).map(|t| t.label), Some("dog"));

        let ended: Vec<u64> = lost(tr.finish()).iter().map(|t| t.id).collect();
        assert_eq!(ended, vec![1, 2, 3]);
        assert_eq!(tr.tracks().count(), 0);
        // Ids are never reused.
        for k in 12..15 {
            let ev = step(&mut tr, k, &[det("person", 0.9, 0.5, 0.5, 0.1, 0.3)]);
            if k == 14 {
                assert_eq!(confirmed(&ev), vec![4]);
            }
        }
    }

    #[test]
    fn confirm_one_confirms_at_once() {
        let params = TrackerParams {
            confirm: 0,
            ..TrackerParams::default()
        };
        let mut tr = running(params);
        let ev = step(&mut tr, 0, &[det("person", 0.9, 0.5, 0.5, 0.1, 0.3)]);
        assert_eq!(confirmed(&ev), vec![1]);
    }

    #[test]
    fn path_is_bounded_and_keeps_first_point() {
        let mut tr = running(TrackerParams::default());
        tr.set_aspect(1.0);
        for k in 0..2000 {
            let y = 0.1 + 0.0004 * k as f32;
            step(&mut tr, k, &[det("person", 0.9, 0.5, y, 0.1, 0.1)]);
        }
        let t = tr.get(1).expect("track");
        assert!(t.path.len() <= PATH_MAX);
        assert_eq!(t.path[0].0, at(0));
        assert!(t.path.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(t.path.last().map(|p| p.0), Some(at(1999)));
        let v = t.velocity();
        assert!(v[0].abs() < 1e-3 && (v[1] - 0.002).abs() < 2e-4, "{v:?}");
    }

    #[test]
    fn bad_input_does_not_panic() {
        let mut tr = running(TrackerParams::default());
        tr.set_aspect(f32::NAN);
        tr.set_aspect(0.0);
        let weird = [
            det("person", f32::NAN, 0.5, 0.5, 0.1, 0.3),
            det("person", 0.9, 0.5, 0.5, 0.0, 0.3),
            det("person", 0.9, 0.5, 0.5, 0.1, 0.0),
            det("person", 0.9, f32::NAN, 0.5, 0.1, 0.3),
            det("person", 0.9, 0.5, f32::INFINITY, 0.1, 0.3),
            det("person", f32::INFINITY, 0.5, 0.5, 0.1, 0.3),
            det("person", 0.9, 0.5, 0.5, -0.1, 0.3),
            det("person", 0.9, 3e38, 0.5, 3e38, 0.3),
        ];
        for k in 0..10 {
            assert!(step(&mut tr, k, &weird).is_empty());
            assert!(step(&mut tr, 100 + k, &[]).is_empty());
        }
        assert_eq!(tr.tracks().count(), 0);

        // Many detections, several labels, moving pseudo-randomly.
        let mut rng = Lcg(42);
        let labels = ["person", "car", "dog"];
        let mut base: Vec<[f32; 2]> = (0..200)
            .map(|_| [0.5 + 0.45 * rng.next(), 0.5 + 0.45 * rng.next()])
            .collect();
        for k in 0..20 {
            let dets: Vec<Detection> = base
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| !(i + k as usize).is_multiple_of(7))
                .map(|(i, c)| {
                    c[0] += 0.01 * rng.next();
                    c[1] += 0.01 * rng.next();
                    det(
                        labels[i % 3],
                        0.55 + 0.45 * rng.next(),
                        c[0],
                        c[1],
                        0.05,
                        0.1,
                    )
                })
                .collect();
            step(&mut tr, 200 + k, &dets);
            // Backwards time must not panic either.
            if k == 10 {
                step(&mut tr, 0, &dets);
            }
        }
        assert!(tr.tracks().count() > 50);
        for t in tr.tracks() {
            assert!(t.speed().is_finite() && t.bbox.to_array().iter().all(|v| v.is_finite()));
        }
        tr.finish();
        assert!(tr.tracks().next().is_none());
    }

    #[test]
    fn kalman_follows_constant_velocity() {
        let mut kf = Kalman::new([0.1, 0.5, 0.5, 0.2]);
        for k in 1..20 {
            kf.predict(false);
            kf.update([0.1 + 0.02 * k as f32, 0.5, 0.5, 0.2]);
        }
        kf.predict(false);
        let b = kf.bbox();
        assert!((b.x + b.w / 2.0 - 0.5).abs() < 2e-3, "{b:?}");
        assert!(
            (b.w - 0.1).abs() < 1e-3 && (b.h - 0.2).abs() < 1e-3,
            "{b:?}"
        );
    }
}
