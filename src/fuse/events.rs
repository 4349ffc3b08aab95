//! Motion, loud-sound and gap events: features in, event records out.

use serde_json::{Map, Value, json};

use crate::config::EventTiming;
use crate::encode::faces::{Face, FrameFaces};
use crate::encode::{LevelWindow, MotionSample, SignalSample};
use crate::fuse::lifecycle::{Lifecycle, Transition};
use crate::fuse::{Emit, EventNote};
use crate::geometry::{BBox, union_of};
use crate::record::{Phase, Record, round4};
use crate::time::Timestamp;

pub use crate::encode::face_id::UNKNOWN;

fn rounded(b: Option<BBox>) -> Option<BBox> {
    b.map(|b| b.map(round4))
}

/// An event being followed, with what it gathered so far.
#[derive(Clone, Debug, Default)]
struct Open {
    id: String,
    score: f32,
    bbox: Option<BBox>,
    observations: u64,
    peak_db: f32,
    /// Most of the label seen at once (objects).
    max_count: u64,
    /// The model class behind the best score (sounds).
    class: Option<std::sync::Arc<str>>,
    /// The gallery row of the face (faces, identity on).
    face_id: Option<i64>,
    /// The least distance to an enrolled face (faces, identity on).
    distance: Option<f32>,
}

/// One kind of event: its lifecycle and the open event's statistics.
pub struct EventSeries {
    kind: &'static str,
    /// What the events are of (`person`, `siren`), for per-label series.
    label: Option<String>,
    /// What tells its event ids apart from those of other series of the
    /// same label (an unknown face's gallery row); None: the label.
    key: Option<String>,
    lifecycle: Lifecycle,
    seq: u64,
    open: Option<Open>,
    /// Statistics gathered while pending (before the start record).
    gathering: Open,
    /// What ended the input when an open event is closed by `finish`.
    cut_by: &'static str,
}

impl EventSeries {
    pub fn new(kind: &'static str, timing: EventTiming) -> Self {
        EventSeries {
            kind,
            label: None,
            key: None,
            lifecycle: Lifecycle::new(timing),
            seq: 0,
            open: None,
            gathering: Open::default(),
            cut_by: "stream",
        }
    }

    /// A series of `kind` events about one `label`.
    pub fn labelled(kind: &'static str, label: &str, timing: EventTiming) -> Self {
        EventSeries {
            label: Some(label.to_string()),
            ..EventSeries::new(kind, timing)
        }
    }

    /// A series of `kind` events about one `label`, its ids told apart by
    /// `key` from other series of that label.
    pub fn keyed(kind: &'static str, label: &str, key: &str, timing: EventTiming) -> Self {
        EventSeries {
            key: Some(key.to_string()),
            ..EventSeries::labelled(kind, label, timing)
        }
    }

    /// Nothing of it is open or pending: it may be let go, and made again
    /// [`EventSeries::numbered_after`] its last event.
    pub fn is_idle(&self) -> bool {
        self.lifecycle.is_idle()
    }

    /// How many events it started.
    pub fn started(&self) -> u64 {
        self.seq
    }

    /// This series, its next event numbered after `seq` (one that was let
    /// go and is made again: its event ids are never given twice).
    pub fn numbered_after(mut self, seq: u64) -> Self {
        self.seq = seq;
        self
    }

    /// What tells this series apart: its key, else its label.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref().or(self.label.as_deref())
    }

    /// The events' kind.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    fn gather(&mut self, active: bool, score: f32, bbox: Option<BBox>, peak_db: Option<f32>) {
        let g = self.open.as_mut().unwrap_or(&mut self.gathering);
        if active {
            g.score = g.score.max(score);
            g.bbox = union_of(g.bbox.into_iter().chain(bbox));
            g.observations += 1;
            if let Some(p) = peak_db {
                g.peak_db = if g.observations == 1 {
                    p
                } else {
                    g.peak_db.max(p)
                };
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        emit: &mut Emit,
        at: Timestamp,
        until: Timestamp,
        active: bool,
        onset: Option<Timestamp>,
        score: f32,
        bbox: Option<BBox>,
        peak_db: Option<f32>,
    ) {
        if !self.lifecycle.is_active() && !active {
            self.gathering = Open::default();
        }
        self.gather(active, score, bbox, peak_db);
        if let Some(t) = self.lifecycle.observe(at, until, active, onset) {
            self.transition(emit, t);
        }
    }

    fn transition(&mut self, emit: &mut Emit, t: Transition) {
        match t {
            Transition::Start { onset } => {
                self.seq += 1;
                let mut open = std::mem::take(&mut self.gathering);
                open.id = match self.key.as_ref().or(self.label.as_ref()) {
                    Some(l) => format!(
                        "{}/{}/{}/{}",
                        emit.maker.stream,
                        self.kind,
                        l.replace(' ', "_"),
                        self.seq
                    ),
                    None => format!("{}/{}/{}", emit.maker.stream, self.kind, self.seq),
                };
                let mut rec = emit.maker.event(
                    &open.id,
                    self.kind,
                    Phase::Start,
                    onset,
                    None,
                    open.score,
                    rounded(open.bbox),
                    self.details(&open),
                );
                self.set_labels(&mut rec);
                emit.note(EventNote {
                    kind: self.kind,
                    label: self.label.clone(),
                    phase: Phase::Start,
                    at: onset,
                    bbox: open.bbox,
                    peak_db: open.peak_db,
                    cut: None,
                    track: None,
                    place: None,
                    direction: None,
                });
                emit.record(rec);
                self.open = Some(open);
            }
            Transition::End { onset, end, cut } => {
                let open = self.open.take().unwrap_or_default();
                let mut details = self.details(&open);
                if cut {
                    // Still holding when its input ended: `end` is the input's.
                    details.insert("until".into(), json!(format!("{}_end", self.cut_by)));
                }
                details.insert(
                    "duration".into(),
                    json!(Timestamp(end.0 - onset.0.min(end.0)).as_secs_f64_ms()),
                );
                let mut rec = emit.maker.event(
                    &open.id,
                    self.kind,
                    Phase::End,
                    onset,
                    Some(end),
                    open.score,
                    rounded(open.bbox),
                    details,
                );
                self.set_labels(&mut rec);
                emit.note(EventNote {
                    kind: self.kind,
                    label: self.label.clone(),
                    phase: Phase::End,
                    at: end,
                    bbox: open.bbox,
                    peak_db: open.peak_db,
                    cut: cut.then_some(self.cut_by),
                    track: None,
                    place: None,
                    direction: None,
                });
                emit.record(rec);
            }
        }
    }

    fn set_labels(&self, rec: &mut Record) {
        if let (Record::Event(e), Some(l)) = (rec, &self.label) {
            e.labels = vec![l.clone()];
        }
    }

    fn details(&self, open: &Open) -> Map<String, Value> {
        let mut d = Map::new();
        match self.kind {
            "motion" => {
                d.insert(
                    "peak_fraction".into(),
                    json!((open.score as f64 * 1e4).round() / 1e4),
                );
                d.insert("frames".into(), json!(open.observations));
            }
            "face" => {
                d.insert("frames".into(), json!(open.observations));
                d.insert("max_count".into(), json!(open.max_count));
                if let Some(name) = self.label.as_deref().filter(|l| *l != UNKNOWN) {
                    d.insert("name".into(), json!(name));
                }
                if let Some(id) = open.face_id {
                    d.insert("face_id".into(), json!(id));
                }
                if let Some(distance) = open.distance {
                    d.insert(
                        "distance".into(),
                        json!((distance as f64 * 1e4).round() / 1e4),
                    );
                }
            }
            "sound" => {
                if let Some(c) = &open.class {
                    d.insert("class".into(), json!(c.as_ref()));
                }
            }
            "loud_sound" => {
                d.insert(
                    "peak_dbfs".into(),
                    json!((open.peak_db as f64 * 10.0).round() / 10.0),
                );
            }
            _ => {}
        }
        d
    }

    /// An event of this series has started and not ended.
    pub fn is_open(&self) -> bool {
        self.lifecycle.is_active()
    }

    /// The input ended at `end` (`cut_by`: the `stream`, or its `video` or
    /// `audio` branch): closes an open event.
    pub fn finish(&mut self, emit: &mut Emit, end: Timestamp, cut_by: &'static str) {
        self.cut_by = cut_by;
        if let Some(t) = self.lifecycle.finish(end) {
            self.transition(emit, t);
        }
    }

    pub fn motion(&mut self, emit: &mut Emit, s: &MotionSample) {
        self.step(
            emit, s.pts, s.until, s.active, None, s.fraction, s.bbox, None,
        );
    }

    /// An observation of an encoder outside the built-in modalities.
    pub fn signal(&mut self, emit: &mut Emit, s: &SignalSample) {
        self.step(emit, s.start, s.end, s.active, None, s.score, s.bbox, None);
    }

    pub fn loudness(&mut self, emit: &mut Emit, w: &LevelWindow) {
        let score = 10f32.powf(w.rms_db / 20.0);
        self.step(
            emit,
            w.start,
            w.end,
            w.active,
            w.onset,
            score,
            None,
            Some(w.peak_db),
        );
    }

    pub fn voice(&mut self, emit: &mut Emit, w: &crate::encode::vad::VoiceWindow) {
        self.step(
            emit,
            w.start,
            w.end,
            w.speaking,
            None,
            w.probability,
            None,
            None,
        );
    }

    pub fn faces(&mut self, emit: &mut Emit, f: &FrameFaces) {
        self.faces_of(emit, f, |_| true);
    }

    /// The faces of `f` that are this series' (`mine`): its face events
    /// with who they are.
    pub fn faces_of(&mut self, emit: &mut Emit, f: &FrameFaces, mine: impl Fn(&Face) -> bool) {
        let found: Vec<&Face> = f.faces.iter().filter(|x| mine(x)).collect();
        if self.lifecycle.is_active() || !found.is_empty() {
            let g = self.open.as_mut().unwrap_or(&mut self.gathering);
            for w in found.iter().filter_map(|x| x.who.as_ref()) {
                g.face_id = g.face_id.or(w.id);
                if let Some(d) = w.distance {
                    g.distance = Some(g.distance.map_or(d, |m| m.min(d)));
                }
            }
        }
        let boxes: Vec<_> = found.iter().map(|x| (x.score, x.bbox)).collect();
        self.boxes(emit, f.pts, f.until, &boxes);
    }

    /// A frame in which `found` (score, box) were seen, from `at` until
    /// the next analysed frame: active while there is any.
    fn boxes(&mut self, emit: &mut Emit, at: Timestamp, until: Timestamp, found: &[(f32, BBox)]) {
        let score = found.iter().map(|d| d.0).fold(0.0, f32::max);
        let bbox = union_of(found.iter().map(|d| d.1));
        if !found.is_empty() {
            let g = self.open.as_mut().unwrap_or(&mut self.gathering);
            g.max_count = g.max_count.max(found.len() as u64);
        }
        self.step(emit, at, until, !found.is_empty(), None, score, bbox, None);
    }

    /// One sound window's score for this series' target.
    pub fn sound(
        &mut self,
        emit: &mut Emit,
        w: &crate::encode::sound::SoundWindow,
        t: &crate::encode::sound::TargetScore,
    ) {
        if t.active {
            let g = self.open.as_mut().unwrap_or(&mut self.gathering);
            if g.class.is_none() || t.score > g.score {
                g.class = Some(t.class.clone());
            }
        }
        self.step(emit, w.start, w.end, t.active, None, t.score, None, None);
    }

    /// A gap flag on the chunk `[at, until)`.
    pub fn gap(&mut self, emit: &mut Emit, at: Timestamp, until: Timestamp, gap: bool) {
        self.step(
            emit,
            at,
            until,
            gap,
            None,
            if gap { 1.0 } else { 0.0 },
            None,
            None,
        );
    }
}
