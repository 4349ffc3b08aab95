//! The scene of one stream: tracked objects, the zones they are in and the
//! lines they cross. Detections in; `object` events per track (start when
//! confirmed, end when lost), `zone_enter`, `zone_leave` and `line_cross`
//! out. Zone and line events are instants: their start and end records
//! carry the same time.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::config::{EventTiming, PipelineConfig};
use crate::encode::detector::FrameObjects;
use crate::fuse::track::{Track, TrackEvent, Tracker, TrackerParams};
use crate::fuse::zones::{Direction, Line, LineSide, Zone};
use crate::fuse::{Emit, EventNote};
use crate::geometry::BBox;
use crate::record::{Phase, Record, num4, round4};
use crate::time::{SECOND, Timestamp};

/// Least overlap of a track's box with the box it settled with for it to
/// count as not having moved.
const SETTLED_IOU: f32 = 0.6;

/// Most points of a track's path in its end record.
const PATH_POINTS: usize = 24;

/// A live track after the latest frame, for rules, captions and pictures.
#[derive(Clone, Debug)]
pub struct Seen {
    pub track: u64,
    /// Seen in the latest frame; else coasting (occluded, not lost yet).
    pub matched: bool,
    pub label: &'static str,
    pub best_score: f32,
    /// When it was seen best.
    pub best_at: Timestamp,
    pub bbox: BBox,
    pub first_seen: Timestamp,
    /// Zones (by index) the track is in, with when it entered each.
    pub zones: Vec<(usize, Timestamp)>,
    /// Not moved for `stationary_after`: no object to rules.
    pub stationary: bool,
}

/// A line crossed in the latest frame.
#[derive(Clone, Debug)]
pub struct Crossing {
    pub track: u64,
    pub label: &'static str,
    pub line: usize,
    pub direction: Direction,
    pub at: Timestamp,
}

/// A track whose `object` event has started.
#[derive(Clone, Debug)]
struct Started {
    event: String,
}

/// Tracks, zones and lines of one stream.
pub struct Scene {
    tracker: Tracker,
    timing: EventTiming,
    pub zones: Vec<Zone>,
    pub lines: Vec<Line>,
    started: BTreeMap<u64, Started>,
    /// (track, zone) → when it entered.
    inside: BTreeMap<(u64, usize), Timestamp>,
    sides: BTreeMap<(u64, usize), LineSide>,
    /// Tracks placed in zones and lines at least once.
    placed: BTreeSet<u64>,
    /// Per track, when and where it settled (its box then): it has stayed
    /// there since.
    settled: BTreeMap<u64, (Timestamp, BBox)>,
    /// `[fusion.tracker] min_score` and `stationary_after` (ns).
    min_score: f32,
    stationary_after: Option<u64>,
    zone_seq: u64,
    line_seq: u64,
    /// Live tracks whose event started, after the latest frame.
    seen: Vec<Seen>,
    /// Records made in the latest frame whose box is that frame's: the
    /// event, and the frame's time (for its picture).
    boxes_at: Vec<(String, Timestamp)>,
    crossings: Vec<Crossing>,
    /// Tracks lost in the latest frame.
    lost: Vec<Track>,
}

impl Scene {
    /// The scene of `stream`: the zones and lines drawn on it.
    pub fn new(stream: &str, config: &PipelineConfig, timing: EventTiming) -> Scene {
        let t = config.fusion.tracker;
        // Labels were checked when the pipeline was validated.
        let labels = config.object_labels().ok();
        let resolve = |l: &[String]| {
            labels
                .as_ref()
                .and_then(|o| o.resolve_all(l).ok())
                .unwrap_or_else(|| l.to_vec())
        };
        let on = |streams: &[String]| streams.is_empty() || streams.iter().any(|s| s == stream);
        Scene {
            tracker: Tracker::new(TrackerParams {
                match_iou: t.match_iou,
                confirm: t.confirm,
                lost_after: t.lost_after.nanos(),
            }),
            timing,
            zones: config
                .zones
                .iter()
                .filter(|z| on(&z.streams))
                .map(|z| Zone {
                    name: z.name.clone(),
                    polygon: z.polygon.clone(),
                    labels: resolve(&z.labels),
                })
                .collect(),
            lines: config
                .lines
                .iter()
                .filter(|l| on(&l.streams))
                .map(|l| Line {
                    name: l.name.clone(),
                    from: l.from,
                    to: l.to,
                    labels: resolve(&l.labels),
                })
                .collect(),
            started: BTreeMap::new(),
            inside: BTreeMap::new(),
            sides: BTreeMap::new(),
            placed: BTreeSet::new(),
            settled: BTreeMap::new(),
            min_score: t.min_score,
            stationary_after: t.stationary_after.map(|d| d.nanos()),
            zone_seq: 0,
            line_seq: 0,
            seen: Vec::new(),
            boxes_at: Vec::new(),
            crossings: Vec::new(),
            lost: Vec::new(),
        }
    }

    /// Height over width of the picture, for speeds in frame widths.
    pub fn set_aspect(&mut self, height_over_width: f32) {
        self.tracker.set_aspect(height_over_width);
    }

    /// Live tracks whose event started, after the latest frame: matched
    /// in it, or coasting through an occlusion.
    pub fn seen(&self) -> &[Seen] {
        &self.seen
    }

    /// Events of the latest frame whose box was taken from it, with the
    /// frame's time; drained by the caller.
    pub fn boxes_at(&mut self) -> std::vec::Drain<'_, (String, Timestamp)> {
        self.boxes_at.drain(..)
    }

    /// Lines crossed in the latest frame.
    pub fn crossings(&self) -> &[Crossing] {
        &self.crossings
    }

    /// Tracks lost in the latest frame (or at the end).
    pub fn lost(&self) -> &[Track] {
        &self.lost
    }

    /// Confirmed tracks alive now.
    pub fn tracks(&self) -> impl Iterator<Item = &Track> {
        self.tracker.tracks()
    }

    /// Number of confirmed tracks in zone `zone` now.
    pub fn occupancy(&self, zone: usize) -> usize {
        self.inside.keys().filter(|(_, z)| *z == zone).count()
    }

    /// One analysed frame.
    pub fn frame(&mut self, emit: &mut Emit, f: &FrameObjects) {
        self.seen.clear();
        self.crossings.clear();
        self.lost.clear();
        let changes = self
            .tracker
            .update_in(f.pts, f.until, &f.objects, &f.faint, f.region);
        for c in &changes {
            if let TrackEvent::Lost(t) = c {
                self.end_track(emit, t, "track_lost");
                self.lost.push(t.clone());
            }
        }
        let tracks: Vec<Track> = self.tracker.tracks().cloned().collect();
        for t in &tracks {
            if !self.started.contains_key(&t.id)
                && t.dwell() >= self.timing.min_duration.nanos()
                && t.median_score() >= self.min_score
            {
                self.start_track(emit, t);
            }
            if !self.started.contains_key(&t.id) {
                continue;
            }
            let stationary = self.stationary(t, f.pts);
            if t.matched && !stationary {
                self.place(emit, t, f.pts);
            }
            self.seen.push(Seen {
                track: t.id,
                matched: t.matched,
                label: t.label,
                best_score: t.best_score,
                best_at: t.best_at,
                bbox: t.bbox,
                first_seen: t.first_seen,
                zones: self
                    .inside
                    .range((t.id, 0)..(t.id, usize::MAX))
                    .map(|((_, z), at)| (*z, *at))
                    .collect(),
                stationary,
            });
        }
    }

    /// Whether `t` has stayed where it settled for `stationary_after` by
    /// `pts` (a matched track that moved settles again where it is now).
    fn stationary(&mut self, t: &Track, pts: Timestamp) -> bool {
        let Some(after) = self.stationary_after else {
            return false;
        };
        let settled = self.settled.entry(t.id).or_insert((pts, t.bbox));
        if t.matched && settled.1.iou(t.bbox) < SETTLED_IOU {
            *settled = (pts, t.bbox);
        }
        pts.saturating_sub(settled.0).nanos() >= after
    }

    /// The input ended at `end`: every track is lost at its last sighting
    /// (or at `end`, if its last frame would outlast it).
    pub fn finish(&mut self, emit: &mut Emit, cut_by: &'static str, end: Timestamp) {
        self.seen.clear();
        self.crossings.clear();
        self.lost.clear();
        for c in self.tracker.finish() {
            if let TrackEvent::Lost(mut t) = c {
                t.until = t.until.min(end.max(t.first_seen));
                self.end_track(emit, &t, cut_by);
                self.lost.push(t);
            }
        }
    }

    fn start_track(&mut self, emit: &mut Emit, t: &Track) {
        let event = format!(
            "{}/object/{}/{}",
            emit.maker.stream,
            t.label.replace(' ', "_"),
            t.id
        );
        self.boxes_at.push((event.clone(), t.last_seen));
        let mut details = Map::new();
        details.insert("frames".into(), json!(t.hits));
        let mut rec = emit.maker.event(
            &event,
            "object",
            Phase::Start,
            t.first_seen,
            None,
            t.best_score,
            Some(t.bbox.map(round4)),
            details,
        );
        tag(&mut rec, t, None);
        emit.record(rec);
        emit.note(note("object", Phase::Start, t.first_seen, t));
        self.started.insert(t.id, Started { event });
    }

    fn end_track(&mut self, emit: &mut Emit, t: &Track, until: &'static str) {
        // Leaving the picture is leaving its zones.
        let zones: Vec<usize> = self
            .inside
            .range((t.id, 0)..(t.id, usize::MAX))
            .map(|((_, z), _)| *z)
            .collect();
        for z in zones {
            self.leave(emit, t, z, t.until, Some(until));
        }
        self.sides.retain(|(id, _), _| *id != t.id);
        self.placed.remove(&t.id);
        self.settled.remove(&t.id);
        let Some(started) = self.started.remove(&t.id) else {
            return;
        };
        let mut details = Map::new();
        details.insert("frames".into(), json!(t.hits));
        details.insert("dwell".into(), json!(secs(t.dwell())));
        details.insert(
            "speed".into(),
            json!((f64::from(mean_speed(t)) * 1e3).round() / 1e3),
        );
        if let Some(h) = heading(t) {
            details.insert("heading".into(), json!(h));
        }
        let path = |p: [f32; 2]| json!([num4(p[0]), num4(p[1])]);
        if let (Some(a), Some(b)) = (t.path.first(), t.path.last()) {
            details.insert("from".into(), path(a.1));
            details.insert("to".into(), path(b.1));
        }
        // The way it went: about PATH_POINTS box centres, evenly spread,
        // as [seconds, x, y].
        let n = t.path.len();
        let step = n.div_ceil(PATH_POINTS).max(1);
        let way: Vec<Value> = t
            .path
            .iter()
            .enumerate()
            .filter(|(i, _)| i % step == 0 || *i + 1 == n)
            .map(|(_, (at, p))| json!([at.as_secs_f64_ms(), num4(p[0]), num4(p[1])]))
            .collect();
        details.insert("path".into(), Value::Array(way));
        details.insert("best_at".into(), json!(t.best_at.as_secs_f64_ms()));
        if until != "track_lost" {
            details.insert("until".into(), json!(format!("{until}_end")));
        }
        let mut rec = emit.maker.event(
            &started.event,
            "object",
            Phase::End,
            t.first_seen,
            Some(t.until),
            t.best_score,
            Some(t.best_bbox.map(round4)),
            details,
        );
        tag(&mut rec, t, None);
        emit.record(rec);
        emit.note(EventNote {
            cut: (until != "track_lost").then_some(until),
            place: heading(t).map(str::to_string),
            ..note("object", Phase::End, t.until, t)
        });
    }

    /// Zones and lines for a track matched at `pts`.
    fn place(&mut self, emit: &mut Emit, t: &Track, pts: Timestamp) {
        let p = t.anchor();
        let first = self.placed.insert(t.id);
        // Where it stood when first seen: its first box centre, half the
        // box's height lower.
        let began = t.path.first().map(|(_, c)| [c[0], c[1] + t.bbox.h / 2.0]);
        for z in 0..self.zones.len() {
            if !self.zones[z].follows(t.label) {
                continue;
            }
            let was = self.inside.contains_key(&(t.id, z));
            let now = self.zones[z].holds(p, was);
            if now && !was {
                // A track that appeared inside a zone entered it then.
                let appeared_inside = first && began.is_some_and(|b| self.zones[z].holds(b, false));
                let at = if appeared_inside { t.first_seen } else { pts };
                self.enter(emit, t, z, at);
            } else if was && !now {
                self.leave(emit, t, z, pts, None);
            }
        }
        for l in 0..self.lines.len() {
            if !self.lines[l].counts(t.label) {
                continue;
            }
            let side = self.sides.entry((t.id, l)).or_default();
            // A track placed for the first time starts from where it was
            // first seen, so a crossing while it was being confirmed counts.
            if let Some(b) = began.filter(|_| first) {
                side.step(&self.lines[l], t.first_seen, b);
            }
            if let Some((direction, at)) = side.step(&self.lines[l], pts, p) {
                self.cross(emit, t, l, direction, at);
            }
        }
    }

    fn enter(&mut self, emit: &mut Emit, t: &Track, z: usize, at: Timestamp) {
        self.inside.insert((t.id, z), at);
        self.zone_seq += 1;
        let name = self.zones[z].name.clone();
        let mut details = Map::new();
        details.insert("occupancy".into(), json!(self.occupancy(z)));
        let what = Instant {
            kind: "zone_enter",
            seq: self.zone_seq,
            place: name,
            at,
            direction: None,
            details,
        };
        self.instant(emit, t, what);
    }

    fn leave(
        &mut self,
        emit: &mut Emit,
        t: &Track,
        z: usize,
        at: Timestamp,
        why: Option<&'static str>,
    ) {
        let Some(entered) = self.inside.remove(&(t.id, z)) else {
            return;
        };
        self.zone_seq += 1;
        let name = self.zones[z].name.clone();
        let mut details = Map::new();
        details.insert("occupancy".into(), json!(self.occupancy(z)));
        details.insert("dwell".into(), json!(secs(at.0.saturating_sub(entered.0))));
        if let Some(w) = why {
            details.insert("until".into(), json!(w));
        }
        let what = Instant {
            kind: "zone_leave",
            seq: self.zone_seq,
            place: name,
            at,
            direction: None,
            details,
        };
        self.instant(emit, t, what);
    }

    fn cross(&mut self, emit: &mut Emit, t: &Track, l: usize, direction: Direction, at: Timestamp) {
        self.line_seq += 1;
        let name = self.lines[l].name.clone();
        let mut details = Map::new();
        details.insert("line".into(), json!(name));
        details.insert("direction".into(), json!(direction.as_str()));
        let what = Instant {
            kind: "line_cross",
            seq: self.line_seq,
            place: name,
            at,
            direction: Some(direction.as_str()),
            details,
        };
        self.instant(emit, t, what);
        self.crossings.push(Crossing {
            track: t.id,
            label: t.label,
            line: l,
            direction,
            at,
        });
    }
}

/// An instant event of a track at a zone or line.
struct Instant {
    kind: &'static str,
    /// Numbers the event among the scene's zone (or line) events.
    seq: u64,
    /// The zone or line.
    place: String,
    at: Timestamp,
    direction: Option<&'static str>,
    details: Map<String, Value>,
}

impl Scene {
    /// The start and end records of an instant event (same time), and
    /// its note for captions.
    fn instant(&mut self, emit: &mut Emit, t: &Track, what: Instant) {
        let (kind, at, place) = (what.kind, what.at, what.place);
        let event = format!("{}/{kind}/{place}/{}", emit.maker.stream, what.seq);
        self.boxes_at.push((event.clone(), t.last_seen));
        for (phase, end) in [(Phase::Start, None), (Phase::End, Some(at))] {
            let mut rec = emit.maker.event(
                &event,
                kind,
                phase,
                at,
                end,
                t.score,
                Some(t.bbox.map(round4)),
                what.details.clone(),
            );
            tag(&mut rec, t, Some(&place));
            emit.record(rec);
        }
        emit.note(EventNote {
            place: Some(place),
            direction: what.direction,
            ..note(kind, Phase::Start, at, t)
        });
    }
}

/// What captions hear of a track's event.
fn note(kind: &'static str, phase: Phase, at: Timestamp, t: &Track) -> EventNote {
    EventNote {
        kind,
        label: Some(t.label.to_string()),
        phase,
        at,
        bbox: Some(t.bbox),
        peak_db: 0.0,
        cut: None,
        track: Some(t.id),
        place: None,
        direction: None,
    }
}

fn tag(rec: &mut Record, t: &Track, place: Option<&str>) {
    if let Record::Event(e) = rec {
        e.labels = vec![t.label.to_string()];
        e.track = Some(t.id);
        e.zone = place.map(str::to_string);
    }
}

fn secs(ns: u64) -> f64 {
    Timestamp(ns).as_secs_f64_ms()
}

/// Mean speed over the whole track, frame widths per second.
fn mean_speed(t: &Track) -> f32 {
    let d = t.displacement();
    let dt = t.dwell();
    if dt == 0 {
        return 0.0;
    }
    let dist = (d[0] * d[0] + d[1] * d[1]).sqrt();
    (f64::from(dist) * SECOND as f64 / dt as f64) as f32
}

/// Where the track went overall, in words: `left`, `right`, `up`, `down`,
/// or `none` when it moved less than a tenth of the picture.
pub fn heading(t: &Track) -> Option<&'static str> {
    let d = t.displacement();
    let (ax, ay) = (d[0].abs(), d[1].abs());
    if !(ax.is_finite() && ay.is_finite()) || t.path.len() < 2 {
        return None;
    }
    Some(if ax.max(ay) < 0.1 {
        "none"
    } else if ax >= ay {
        if d[0] < 0.0 { "left" } else { "right" }
    } else if d[1] < 0.0 {
        "up"
    } else {
        "down"
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::detector::Detection;
    use crate::encode::gate::Look;
    use crate::fuse::RecordMaker;
    use crate::time::{Duration, MILLISECOND};
    use std::path::Path;

    fn scene(extra: &str) -> (Scene, Emit) {
        let text = format!("[encoders.detector]\n{extra}");
        let config = PipelineConfig::parse(&text, Path::new("t.toml")).unwrap();
        let timing = EventTiming {
            min_duration: Duration::ZERO,
            cooldown: Duration::ZERO,
        };
        (
            Scene::new("cam", &config, timing),
            Emit::new(RecordMaker::new("run".into(), "cam".into())),
        )
    }

    /// A person whose box centre is at `x` in frame `k` (5 fps).
    fn frame(k: u64, x: Option<f32>) -> FrameObjects {
        scored(k, x, 0.9)
    }

    /// As [`frame`], the detection's score `score`.
    fn scored(k: u64, x: Option<f32>, score: f32) -> FrameObjects {
        FrameObjects {
            pts: Timestamp(k * 200 * MILLISECOND),
            until: Timestamp((k + 1) * 200 * MILLISECOND),
            look: Look::Full,
            region: None,
            objects: x
                .map(|x| Detection {
                    label: "person",
                    score,
                    bbox: BBox::new(x - 0.05, 0.3, 0.1, 0.3),
                })
                .into_iter()
                .collect(),
            faint: vec![],
        }
    }

    fn kinds(out: &[Record]) -> Vec<(String, String)> {
        out.iter()
            .filter_map(|r| match r {
                Record::Event(e) => Some((e.kind.clone(), format!("{:?}", e.phase))),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_object_starts_only_once_its_median_score_reaches_min_score() {
        let starts = |extra: &str, scores: &[f32]| {
            let (mut s, mut emit) = scene(extra);
            for (k, &score) in scores.iter().enumerate() {
                s.frame(&mut emit, &scored(k as u64, Some(0.3), score));
            }
            kinds(emit.records())
                .iter()
                .filter(|k| k.0 == "object" && k.1 == "Start")
                .count()
        };
        // One confident frame among weak ones: its best is 0.95, its
        // median 0.45.
        let shadow = [0.45, 0.95, 0.45, 0.45, 0.45, 0.45];
        assert_eq!(starts("", &shadow), 1, "off by default");
        assert_eq!(starts("[fusion.tracker]\nmin_score = 0.6\n", &shadow), 0);
        let person = [0.5, 0.7, 0.7, 0.8, 0.7, 0.7];
        assert_eq!(starts("[fusion.tracker]\nmin_score = 0.6\n", &person), 1);
    }

    #[test]
    fn a_stationary_object_enters_no_zone_until_it_moves() {
        let zone = "[[zones]]\nname = \"right\"\npolygon = [[0.585, 0.0], [1.0, 0.0], [1.0, 1.0], [0.585, 1.0]]\n";
        // A person stands at 0.58, just left of the zone, for 3 s; its box
        // then shifts by 0.01 (jitter: its anchor crosses the edge), then
        // it walks off into the zone.
        let run = |extra: &str| {
            let (mut s, mut emit) = scene(&format!("{zone}{extra}"));
            let mut stationary = Vec::new();
            let mut xs: Vec<f32> = vec![0.58; 15];
            xs.extend([0.59; 5]);
            xs.extend([0.62, 0.65, 0.68, 0.71, 0.74]);
            for (k, x) in xs.into_iter().enumerate() {
                s.frame(&mut emit, &frame(k as u64, Some(x)));
                stationary.push(s.seen().first().is_some_and(|t| t.stationary));
            }
            let enters: Vec<Timestamp> = emit
                .records()
                .iter()
                .filter_map(|r| match r {
                    Record::Event(e) if e.kind == "zone_enter" && e.phase == Phase::Start => {
                        Some(e.start)
                    }
                    _ => None,
                })
                .collect();
            (enters, stationary)
        };
        let (enters, stationary) = run("");
        assert_eq!(enters, [Timestamp(15 * 200 * MILLISECOND)], "the jitter");
        assert!(stationary.iter().all(|s| !s), "off by default");
        let (enters, stationary) = run("[fusion.tracker]\nstationary_after = \"1s\"\n");
        assert_eq!(
            enters,
            [Timestamp(20 * 200 * MILLISECOND)],
            "only when it walks in"
        );
        // Stationary from 1 s after it settled (frame 5) until it walks.
        assert_eq!(stationary.iter().position(|&s| s), Some(5));
        assert!(stationary[5..20].iter().all(|&s| s), "{stationary:?}");
        assert!(!stationary[20], "{stationary:?}");
    }

    #[test]
    fn a_crossing_while_the_track_is_confirmed_counts_and_a_lost_track_leaves_its_zone() {
        let (mut s, mut emit) = scene(
            "[[lines]]\nname = \"mid\"\nfrom = [0.5, 0.0]\nto = [0.5, 1.0]\n[[zones]]\nname = \"right\"\npolygon = [[0.6, 0.0], [1.0, 0.0], [1.0, 1.0], [0.6, 1.0]]\n",
        );
        // An empty first frame, so the track needs its three frames.
        s.frame(&mut emit, &frame(0, None));
        // Left of the line when first seen (frame 1), past it when
        // confirmed (frame 3), into the zone at frame 5.
        for (k, x) in [
            (1, 0.44),
            (2, 0.48),
            (3, 0.52),
            (4, 0.56),
            (5, 0.6),
            (6, 0.64),
        ] {
            s.frame(&mut emit, &frame(k, Some(x)));
        }
        let got = kinds(emit.records());
        assert!(
            got.contains(&("line_cross".into(), "Start".into())),
            "{got:?}"
        );
        assert!(
            got.contains(&("zone_enter".into(), "Start".into())),
            "{got:?}"
        );
        // Gone for longer than lost_after (2 s): lost, and out of the zone.
        emit.take_records();
        for k in 7..25 {
            s.frame(&mut emit, &frame(k, None));
        }
        let out = emit.take_records();
        let got = kinds(&out);
        assert_eq!(
            got,
            [
                ("zone_leave".to_string(), "Start".to_string()),
                ("zone_leave".into(), "End".into()),
                ("object".into(), "End".into())
            ]
        );
        let Record::Event(leave) = &out[0] else {
            unreachable!()
        };
        assert_eq!(leave.details["until"], "track_lost");
        assert_eq!(
            leave.start,
            Timestamp(1400 * MILLISECOND),
            "when its last frame ended"
        );
        assert_eq!(s.occupancy(0), 0);
    }
}
