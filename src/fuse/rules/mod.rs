//! Rules: conditions over the modalities, written in the pipeline file,
//! that fire `rule` events.
//!
//! Fusion records what each stream observes as facts over spans of stream
//! time (a track present, a track in a zone, a sound window, a crossing…).
//! A rule's condition can only change where a fact begins or ends, so the
//! engine evaluates it exactly at those instants, in order, and feeds the
//! result to the event lifecycle (`min_duration`, `cooldown`).
//!
//! - A term holds at `t` if a matching fact held at some time in
//!   `[t - within, t]` (with `within = 0`: at `t`).
//! - `not A` holds when `A` does not; `A and B`, `A or B` as usual.
//! - `A then B` holds while `B` holds, if `A` held when `B` began (that is,
//!   within `within` before it).
//! - A rule is decided [`SETTLE`] behind the newest chunk, so that every
//!   modality has reported on the instant it decides. Transcripts come
//!   later still: `speech(contains=…)` holds from when the words are
//!   known, for as long as they took to say.

pub mod facts;
pub mod replay;

use std::sync::Arc;

use chrono::{Local, TimeZone, Timelike};
use serde_json::{Map, Value, json};

use crate::config::labels::ObjectLabels;
use crate::config::{PipelineConfig, RuleConfig, Severity};
use crate::fuse::lifecycle::{Lifecycle, Transition};
use crate::fuse::scene::Scene;
use crate::fuse::zones::{Direction, Zone};
use crate::fuse::{Emit, EventNote, RecordMaker};
use crate::geometry::{BBox, union_of};
use crate::record::{Phase, Record, num4, round4};
use crate::rule_language as parse;
use crate::rule_language::FaceWho;
use crate::time::{MILLISECOND, SECOND, Timestamp};
use facts::{FactLog, Key, What};
use parse::{Expr, TermKind};

/// How far behind the newest chunk rules are decided.
pub const SETTLE: u64 = 500 * MILLISECOND;

/// A term, resolved against one stream's scene and encoders.
#[derive(Clone, Debug)]
enum Cond {
    Object {
        /// COCO classes (empty: any).
        labels: Vec<&'static str>,
        /// `Some(None)`: a zone this stream does not have.
        zone: Option<Option<usize>>,
        min_count: u32,
        min_score: f32,
        dwell: u64,
    },
    Sound {
        target: Option<usize>,
        min_score: Option<f32>,
    },
    Speech {
        contains: Option<String>,
    },
    Loud {
        min_db: Option<f32>,
    },
    Motion {
        zone: Option<Option<Zone>>,
    },
    Line {
        line: Option<usize>,
        direction: Option<Direction>,
    },
    Face {
        who: Option<FaceWho>,
    },
    Time {
        from: u32,
        to: u32,
    },
}

impl Cond {
    /// Names a zone or line this stream does not have.
    fn unresolved(&self) -> bool {
        matches!(
            self,
            Cond::Object {
                zone: Some(None),
                ..
            } | Cond::Motion { zone: Some(None) }
                | Cond::Line { line: None, .. }
        )
    }
}

#[derive(Clone, Debug)]
struct Term {
    cond: Cond,
    text: String,
}

#[derive(Clone, Debug)]
enum Node {
    Term(usize),
    Not(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    /// The index of its state.
    Then(Box<Node>, Box<Node>, usize),
}

/// What a `then` remembers: whether its right side held at the last
/// instant, and whether its left side held when the right side began.
#[derive(Clone, Copy, Debug, Default)]
struct ThenState {
    right_held: bool,
    left_before: bool,
}

/// One rule on one stream.
struct Rule {
    name: String,
    when: String,
    severity: Severity,
    within: u64,
    terms: Vec<Term>,
    node: Node,
    thens: Vec<ThenState>,
    lifecycle: Lifecycle,
    min_duration: u64,
    seq: u64,
    open: Option<Open>,
    /// The stream's zone names, by index, for evidence.
    zones: Vec<String>,
}

struct Open {
    event: String,
    score: f32,
    bbox: Option<BBox>,
    track: Option<u64>,
    zone: Option<String>,
    evidence: Vec<Value>,
}

/// Everything a stream needs to resolve its rules' terms.
pub struct Context<'a> {
    pub stream: &'a str,
    pub config: &'a PipelineConfig,
    pub scene: &'a Scene,
    /// The sound targets' labels, in order.
    pub sounds: &'a [String],
}

/// A rule that began, for the caption said at once.
#[derive(Clone, Debug)]
pub struct Fired {
    pub name: String,
    pub severity: Severity,
    pub at: Timestamp,
    pub evidence: Vec<String>,
}

/// Which facts the rules read.
#[derive(Clone, Copy, Debug, Default)]
struct Needs {
    objects: bool,
    zones: bool,
    sound: bool,
    voice: bool,
    said: bool,
    level: bool,
    motion: bool,
    cross: bool,
    face: bool,
}

impl Needs {
    fn add(&mut self, c: &Cond) {
        match c {
            Cond::Object { zone: None, .. } => self.objects = true,
            Cond::Object { zone: Some(_), .. } => self.zones = true,
            Cond::Sound { .. } => self.sound = true,
            Cond::Speech { contains: None } => self.voice = true,
            Cond::Speech { contains: Some(_) } => self.said = true,
            Cond::Loud { .. } => self.level = true,
            Cond::Motion { .. } => self.motion = true,
            Cond::Line { .. } => self.cross = true,
            Cond::Face { .. } => self.face = true,
            Cond::Time { .. } => {}
        }
    }
}

/// The rules of one stream and the facts they are judged on.
pub struct Engine {
    rules: Vec<Rule>,
    needs: Needs,
    facts: FactLog,
    /// Rules are decided up to here.
    decided: Timestamp,
    /// How long facts are kept after they end.
    memory: u64,
}

impl Engine {
    /// The rules that watch `ctx.stream`, resolved. The rules were checked
    /// when the pipeline was validated, so a term that cannot match here
    /// (a zone on another stream) simply never holds.
    pub fn new(ctx: &Context) -> Engine {
        let labels = ctx.config.object_labels().ok();
        let mut rules = Vec::new();
        for r in &ctx.config.rules {
            if !(r.streams.is_empty() || r.streams.iter().any(|s| s == ctx.stream)) {
                continue;
            }
            // Parsed when the pipeline was validated: a rule of a pipeline
            // that was not is left out, and says so.
            let Some(expr) = &r.expr else {
                tracing::error!(rule = %r.name, "the rule was not validated: left out");
                continue;
            };
            let rule = Rule::new(r, expr, ctx, labels.as_ref());
            // A zone or line the rule names is not drawn on this stream:
            // the rule is not for it (`not object(zone=…)` would always hold).
            if rule.terms.iter().any(|t| t.cond.unresolved()) {
                tracing::debug!(rule = %r.name, stream = ctx.stream, "not drawn on this stream");
                continue;
            }
            rules.push(rule);
        }
        let mut needs = Needs::default();
        for t in rules.iter().flat_map(|r| &r.terms) {
            needs.add(&t.cond);
        }
        // Facts are kept for as long as an onset's evidence may need them.
        let memory = rules
            .iter()
            .map(|r| r.within.saturating_add(r.min_duration))
            .max()
            .unwrap_or(0)
            + 2 * SECOND;
        Engine {
            rules,
            needs,
            facts: FactLog::default(),
            decided: Timestamp::ZERO,
            memory,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The longest a rule holds before its start record.
    pub fn longest_wait(&self) -> u64 {
        self.rules.iter().map(|r| r.min_duration).max().unwrap_or(0)
    }

    /// Facts from the latest analysed frame of the scene, `[pts, until)`.
    pub fn scene(&mut self, scene: &Scene, pts: Timestamp, until: Timestamp) {
        let n = self.needs;
        // Tracks coasting through an occlusion are still there; stationary
        // ones are not objects to rules until they move.
        for s in scene
            .seen()
            .iter()
            .filter(|s| (n.objects || n.zones) && !s.stationary)
        {
            self.facts.extend(
                Key::Object(s.track),
                What::Object {
                    track: s.track,
                    label: s.label,
                    score: s.best_score,
                    bbox: s.bbox,
                },
                s.first_seen.min(pts),
                until,
            );
            for &(zone, entered) in &s.zones {
                self.facts.extend(
                    Key::InZone(s.track, zone),
                    What::InZone {
                        track: s.track,
                        label: s.label,
                        zone,
                        score: s.best_score,
                        bbox: s.bbox,
                    },
                    entered.min(pts),
                    until,
                );
            }
        }
        for c in scene.crossings().iter().filter(|_| n.cross) {
            self.facts.add(
                What::Cross {
                    track: c.track,
                    label: c.label,
                    line: c.line,
                    direction: c.direction,
                },
                c.at,
                until.max(c.at),
            );
        }
    }

    pub fn sound(&mut self, w: &crate::encode::sound::SoundWindow) {
        if !self.needs.sound {
            return;
        }
        for (target, t) in w.targets.iter().enumerate() {
            self.facts.add(
                What::Sound {
                    target,
                    class: t.class.clone(),
                    score: t.score,
                    active: t.active,
                },
                w.start,
                w.end,
            );
        }
    }

    pub fn voice(&mut self, w: &crate::encode::vad::VoiceWindow) {
        if w.speaking && self.needs.voice {
            self.facts.extend(Key::Voice, What::Voice, w.start, w.end);
        }
    }

    /// A transcript: it holds from when it is known (not before rules were
    /// decided), for as long as it took to say.
    pub fn said(&mut self, s: &crate::encode::asr::Said) {
        if !self.needs.said {
            return;
        }
        let from = s.start.max(self.decided);
        let length = s.end.0.saturating_sub(s.start.0).max(100 * MILLISECOND);
        self.facts.add(
            What::Said {
                text: s.text.to_lowercase(),
                start: s.start,
                end: s.end,
            },
            from,
            from.saturating_add(length),
        );
    }

    pub fn level(&mut self, w: &crate::encode::LevelWindow) {
        if !self.needs.level {
            return;
        }
        self.facts.add(
            What::Level {
                rms_db: w.rms_db,
                active: w.active,
            },
            w.start,
            w.end,
        );
    }

    pub fn motion(&mut self, s: &crate::encode::MotionSample) {
        if s.active && self.needs.motion {
            self.facts
                .add(What::Motion { bbox: s.bbox }, s.pts, s.until.max(s.pts));
        }
    }

    pub fn faces(&mut self, f: &crate::encode::faces::FrameFaces) {
        if self.needs.face {
            for face in &f.faces {
                let what = What::Face {
                    score: face.score,
                    name: face.name().map(Arc::from),
                    identified: face.who.is_some(),
                };
                self.facts.add(what, f.pts, f.until.max(f.pts));
            }
        }
    }

    /// Decides the rules over `[decided, horizon)`; `utc_origin` dates
    /// `time()` terms.
    pub fn advance(&mut self, emit: &mut Emit, horizon: Timestamp, fired: &mut Vec<Fired>) {
        if horizon <= self.decided {
            return;
        }
        let from = self.decided;
        for rule in &mut self.rules {
            rule.advance(&self.facts, emit, from, horizon, fired);
        }
        self.decided = horizon;
        self.facts
            .prune(Timestamp(horizon.0.saturating_sub(self.memory)));
    }

    /// The stream ended at `end`: decides up to it and closes open rules.
    pub fn finish(&mut self, emit: &mut Emit, end: Timestamp, fired: &mut Vec<Fired>) {
        self.advance(emit, end, fired);
        for rule in &mut self.rules {
            if let Some(t) = rule.lifecycle.finish(end.max(self.decided)) {
                rule.transition(t, &self.facts, emit, fired);
            }
        }
    }
}

impl Rule {
    fn new(r: &RuleConfig, expr: &Expr, ctx: &Context, labels: Option<&ObjectLabels>) -> Rule {
        let mut terms = Vec::new();
        let mut thens = 0;
        let node = build(expr, ctx, labels, &mut terms, &mut thens);
        Rule {
            name: r.name.clone(),
            when: r.when.clone(),
            severity: r.severity,
            within: r.within.nanos(),
            terms,
            node,
            thens: vec![ThenState::default(); thens],
            lifecycle: Lifecycle::new(crate::config::EventTiming {
                min_duration: r.min_duration,
                cooldown: r.cooldown,
            }),
            min_duration: r.min_duration.nanos(),
            seq: 0,
            open: None,
            zones: ctx.scene.zones.iter().map(|z| z.name.clone()).collect(),
        }
    }

    fn advance(
        &mut self,
        facts: &FactLog,
        emit: &mut Emit,
        from: Timestamp,
        to: Timestamp,
        fired: &mut Vec<Fired>,
    ) {
        let mut points = vec![from];
        for term in &self.terms {
            boundaries(
                term,
                self.within,
                facts,
                emit.maker.utc_origin,
                from,
                to,
                &mut points,
            );
        }
        points.sort_unstable();
        points.dedup();
        for (i, &p) in points.iter().enumerate() {
            let until = points.get(i + 1).copied().unwrap_or(to);
            let mut thens = std::mem::take(&mut self.thens);
            let holds = self.eval(&self.node, p, facts, emit.maker.utc_origin, &mut thens);
            self.thens = thens;
            if let Some(t) = self.lifecycle.observe(p, until, holds, None) {
                self.transition(t, facts, emit, fired);
            }
        }
    }

    fn eval(
        &self,
        node: &Node,
        t: Timestamp,
        facts: &FactLog,
        utc: i64,
        thens: &mut [ThenState],
    ) -> bool {
        match node {
            Node::Term(i) => holds(&self.terms[*i], self.within, facts, utc, t),
            Node::Not(a) => !self.eval(a, t, facts, utc, thens),
            // Both sides always: a `then` inside must see every instant.
            Node::And(a, b) => {
                let (x, y) = (
                    self.eval(a, t, facts, utc, thens),
                    self.eval(b, t, facts, utc, thens),
                );
                x && y
            }
            Node::Or(a, b) => {
                let (x, y) = (
                    self.eval(a, t, facts, utc, thens),
                    self.eval(b, t, facts, utc, thens),
                );
                x || y
            }
            Node::Then(a, b, i) => {
                let left = self.eval(a, t, facts, utc, thens);
                let right = self.eval(b, t, facts, utc, thens);
                let s = &mut thens[*i];
                if right && !s.right_held {
                    s.left_before = left;
                }
                s.right_held = right;
                right && s.left_before
            }
        }
    }

    fn transition(
        &mut self,
        t: Transition,
        facts: &FactLog,
        emit: &mut Emit,
        fired: &mut Vec<Fired>,
    ) {
        match t {
            Transition::Start { onset } => {
                self.seq += 1;
                let open = self.evidence(onset, facts, emit.maker.utc_origin, &emit.maker);
                let mut rec = emit.maker.event(
                    &open.event,
                    "rule",
                    Phase::Start,
                    onset,
                    None,
                    open.score,
                    open.bbox.map(|b| b.map(round4)),
                    self.details(&open),
                );
                self.tag(&mut rec, &open);
                emit.record(rec);
                emit.note(self.note(Phase::Start, onset, &open));
                fired.push(Fired {
                    name: self.name.clone(),
                    severity: self.severity,
                    at: onset,
                    evidence: open
                        .evidence
                        .iter()
                        .filter_map(|e| e.get("says").and_then(Value::as_str))
                        .map(str::to_string)
                        .collect(),
                });
                self.open = Some(open);
            }
            Transition::End { onset, end, cut } => {
                let Some(open) = self.open.take() else {
                    return;
                };
                let mut details = self.details(&open);
                details.insert(
                    "duration".into(),
                    json!(Timestamp(end.0.saturating_sub(onset.0)).as_secs_f64_ms()),
                );
                if cut {
                    details.insert("until".into(), json!("stream_end"));
                }
                let mut rec = emit.maker.event(
                    &open.event,
                    "rule",
                    Phase::End,
                    onset,
                    Some(end),
                    open.score,
                    open.bbox.map(|b| b.map(round4)),
                    details,
                );
                self.tag(&mut rec, &open);
                emit.record(rec);
                emit.note(self.note(Phase::End, end, &open));
            }
        }
    }

    fn tag(&self, rec: &mut Record, open: &Open) {
        if let Record::Event(e) = rec {
            e.labels = vec![self.name.clone()];
            e.track = open.track;
            e.zone = open.zone.clone();
        }
    }

    fn note(&self, phase: Phase, at: Timestamp, open: &Open) -> EventNote {
        EventNote {
            kind: "rule",
            label: Some(self.name.clone()),
            phase,
            at,
            bbox: open.bbox,
            peak_db: 0.0,
            cut: None,
            track: open.track,
            place: open.zone.clone(),
            direction: None,
        }
    }

    fn details(&self, open: &Open) -> Map<String, Value> {
        let mut d = Map::new();
        d.insert("severity".into(), json!(self.severity.as_str()));
        d.insert("when".into(), json!(self.when));
        d.insert("evidence".into(), Value::Array(open.evidence.clone()));
        d
    }

    /// What made the rule hold at `t`: every term that matched, with its facts.
    fn evidence(&self, t: Timestamp, facts: &FactLog, utc: i64, maker: &RecordMaker) -> Open {
        let mut open = Open {
            event: format!("{}/rule/{}/{}", maker.stream, self.name, self.seq),
            score: 0.0,
            bbox: None,
            track: None,
            zone: None,
            evidence: Vec::new(),
        };
        for term in &self.terms {
            if let Cond::Time { .. } = term.cond {
                if holds(term, self.within, facts, utc, t) {
                    open.evidence
                        .push(json!({"term": term.text, "says": "on schedule"}));
                }
                continue;
            }
            let mut items = Vec::new();
            for f in facts.iter() {
                let Some((s, e, _)) = span(&term.cond, &f.what, f.start, f.end) else {
                    continue;
                };
                if !(s <= t && t.0 < e.0.saturating_add(self.within)) {
                    continue;
                }
                items.push(describe(f, &mut open, &self.zones));
                if items.len() >= 5 {
                    break;
                }
            }
            if !items.is_empty() {
                let says = items
                    .iter()
                    .filter_map(|i| i.get("says").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(", ");
                open.evidence
                    .push(json!({"term": term.text, "says": says, "facts": items}));
            }
        }
        if open.score == 0.0 {
            open.score = 1.0;
        }
        open
    }
}

/// A fact as evidence; gathers the event's score, box, track and zone
/// (`zones`: the stream's zone names, by index).
fn describe(f: &facts::Fact, open: &mut Open, zones: &[String]) -> Value {
    let (start, end) = (f.start.as_secs_f64_ms(), f.end.as_secs_f64_ms());
    let mut score = |s: f32| open.score = open.score.max(s);
    match &f.what {
        What::Object {
            track,
            label,
            score: s,
            bbox,
        } => {
            score(*s);
            open.bbox = union_of(open.bbox.into_iter().chain(Some(*bbox)));
            open.track.get_or_insert(*track);
            json!({"track": track, "label": label, "score": num4(*s), "start": start,
                   "says": format!("{label} #{track}")})
        }
        What::InZone {
            track,
            label,
            zone,
            score: s,
            bbox,
        } => {
            score(*s);
            open.bbox = union_of(open.bbox.into_iter().chain(Some(*bbox)));
            open.track.get_or_insert(*track);
            let zone = zones.get(*zone).cloned().unwrap_or_default();
            let says = format!("{label} #{track} in {zone}");
            open.zone.get_or_insert(zone);
            json!({"track": track, "label": label, "score": num4(*s), "entered": start,
                   "says": says})
        }
        What::Sound {
            class, score: s, ..
        } => {
            score(*s);
            json!({"class": class.as_ref(), "score": num4(*s), "start": start, "end": end,
                   "says": format!("{} heard", class.to_lowercase())})
        }
        What::Voice => json!({"start": start, "end": end, "says": "someone speaks"}),
        What::Said { text, start, end } => json!({
            "text": text, "start": start.as_secs_f64_ms(), "end": end.as_secs_f64_ms(),
            "says": format!("someone says \"{text}\"")}),
        What::Level { rms_db, .. } => {
            json!({"rms_dbfs": num4((rms_db * 10.0).round() / 10.0),
            "start": start, "says": format!("loud sound ({rms_db:.0} dBFS)")})
        }
        What::Motion { bbox } => {
            open.bbox = union_of(open.bbox.into_iter().chain(*bbox));
            json!({"start": start, "says": "motion"})
        }
        What::Cross {
            track,
            label,
            direction,
            ..
        } => {
            open.track.get_or_insert(*track);
            json!({"track": track, "label": label, "direction": direction.as_str(), "at": start,
                   "says": format!("{label} #{track} crosses {}", direction.as_str())})
        }
        What::Face {
            score: s,
            name,
            identified,
        } => {
            score(*s);
            let says = match (name, identified) {
                (Some(n), _) => format!("{n}'s face"),
                (None, true) => "an unknown face".to_string(),
                (None, false) => "a face".to_string(),
            };
            let mut e = json!({"score": num4(*s), "start": start, "says": says});
            if let Some(n) = name {
                e["name"] = json!(n.as_ref());
            }
            e
        }
    }
}

/// Builds the evaluation tree, resolving terms against the stream.
fn build(
    e: &Expr,
    ctx: &Context,
    labels: Option<&ObjectLabels>,
    terms: &mut Vec<Term>,
    thens: &mut usize,
) -> Node {
    let two = |a: &Expr, b: &Expr, terms: &mut Vec<Term>, thens: &mut usize| {
        (
            Box::new(build(a, ctx, labels, terms, thens)),
            Box::new(build(b, ctx, labels, terms, thens)),
        )
    };
    match e {
        Expr::Term(t) => {
            terms.push(Term {
                cond: resolve(&t.kind, ctx, labels),
                text: t.text.clone(),
            });
            Node::Term(terms.len() - 1)
        }
        Expr::Not(a) => Node::Not(Box::new(build(a, ctx, labels, terms, thens))),
        Expr::And(a, b) => {
            let (a, b) = two(a, b, terms, thens);
            Node::And(a, b)
        }
        Expr::Or(a, b) => {
            let (a, b) = two(a, b, terms, thens);
            Node::Or(a, b)
        }
        Expr::Then(a, b) => {
            let (a, b) = two(a, b, terms, thens);
            *thens += 1;
            Node::Then(a, b, *thens - 1)
        }
    }
}

fn resolve(kind: &TermKind, ctx: &Context, labels: Option<&ObjectLabels>) -> Cond {
    let zone_index = |name: &str| ctx.scene.zones.iter().position(|z| z.name == name);
    match kind {
        TermKind::Object {
            label,
            zone,
            min_count,
            min_score,
            dwell,
        } => Cond::Object {
            labels: label
                .as_ref()
                .and_then(|l| labels.and_then(|o| o.resolve(l).ok()))
                .unwrap_or_default(),
            zone: zone.as_ref().map(|z| zone_index(z)),
            min_count: *min_count,
            min_score: min_score.unwrap_or(0.0),
            dwell: dwell.unwrap_or(0),
        },
        TermKind::Sound { label, min_score } => Cond::Sound {
            target: ctx
                .sounds
                .iter()
                .position(|s| s.eq_ignore_ascii_case(label)),
            min_score: *min_score,
        },
        TermKind::Speech { contains } => Cond::Speech {
            contains: contains.as_ref().map(|c| c.to_lowercase()),
        },
        TermKind::Loud { min_db } => Cond::Loud { min_db: *min_db },
        TermKind::Motion { zone } => Cond::Motion {
            zone: zone
                .as_ref()
                .map(|z| ctx.scene.zones.iter().find(|x| &x.name == z).cloned()),
        },
        TermKind::Line { name, direction } => Cond::Line {
            line: ctx.scene.lines.iter().position(|l| &l.name == name),
            direction: direction.map(|d| match d {
                parse::Direction::In => Direction::In,
                parse::Direction::Out => Direction::Out,
            }),
        },
        TermKind::Face { who } => Cond::Face { who: who.clone() },
        TermKind::Time { from, to } => Cond::Time {
            from: *from,
            to: *to,
        },
    }
}

/// The span over which fact `what` satisfies `cond`, and the thing it is
/// about (for counting distinct objects).
fn span(
    cond: &Cond,
    what: &What,
    start: Timestamp,
    end: Timestamp,
) -> Option<(Timestamp, Timestamp, u64)> {
    let ok = match (cond, what) {
        (
            Cond::Object {
                labels,
                zone: None,
                min_score,
                dwell,
                ..
            },
            What::Object {
                track,
                label,
                score,
                ..
            },
        ) => {
            if (labels.is_empty() || labels.contains(label)) && *score >= *min_score {
                return after(start, *dwell, end, *track);
            }
            false
        }
        (
            Cond::Object {
                labels,
                zone: Some(Some(z)),
                min_score,
                dwell,
                ..
            },
            What::InZone {
                track,
                label,
                zone,
                score,
                ..
            },
        ) => {
            if z == zone && (labels.is_empty() || labels.contains(label)) && *score >= *min_score {
                return after(start, *dwell, end, *track);
            }
            false
        }
        (
            Cond::Sound { target, min_score },
            What::Sound {
                target: t,
                score,
                active,
                ..
            },
        ) => *target == Some(*t) && min_score.map_or(*active, |m| *score >= m),
        (Cond::Speech { contains: None }, What::Voice) => true,
        (Cond::Speech { contains: Some(c) }, What::Said { text, .. }) => text.contains(c.as_str()),
        (Cond::Loud { min_db }, What::Level { rms_db, active }) => {
            min_db.map_or(*active, |m| *rms_db >= m)
        }
        (Cond::Motion { zone: None }, What::Motion { .. }) => true,
        (Cond::Motion { zone: Some(z) }, What::Motion { bbox }) => {
            matches!((z, bbox), (Some(z), Some(b)) if z.overlaps(*b))
        }
        (
            Cond::Line { line, direction },
            What::Cross {
                line: l,
                direction: d,
                ..
            },
        ) => *line == Some(*l) && direction.is_none_or(|x| x == *d),
        (
            Cond::Face { who },
            What::Face {
                name, identified, ..
            },
        ) => match who {
            None => true,
            Some(FaceWho::Known) => name.is_some(),
            Some(FaceWho::Unknown) => *identified && name.is_none(),
            Some(FaceWho::Named(n)) => name.as_deref().is_some_and(|m| m.eq_ignore_ascii_case(n)),
        },
        _ => false,
    };
    ok.then_some((start, end, 0))
}

fn after(
    start: Timestamp,
    dwell: u64,
    end: Timestamp,
    key: u64,
) -> Option<(Timestamp, Timestamp, u64)> {
    let s = start.saturating_add(dwell);
    (s < end).then_some((s, end, key))
}

/// Whether `term` holds at `t`: a matching fact held in `[t - within, t]`.
fn holds(term: &Term, within: u64, facts: &FactLog, utc: i64, t: Timestamp) -> bool {
    let covers = |s: Timestamp, e: Timestamp| s <= t && t.0 < e.0.saturating_add(within);
    match &term.cond {
        Cond::Time { from, to } => in_schedule(*from, *to, utc, t),
        Cond::Object { min_count, .. } => {
            // At least `min_count` objects at one instant of the window.
            let from = Timestamp(t.0.saturating_sub(within));
            let spans: Vec<(Timestamp, Timestamp, u64)> = facts
                .iter()
                .filter_map(|f| span(&term.cond, &f.what, f.start, f.end))
                .filter(|(s, e, _)| covers(*s, *e))
                .collect();
            spans.iter().any(|&(s, _, _)| {
                let at = s.max(from);
                let mut there: Vec<u64> = spans
                    .iter()
                    .filter(|(s2, e2, _)| *s2 <= at && at < *e2)
                    .map(|x| x.2)
                    .collect();
                there.sort_unstable();
                there.dedup();
                there.len() >= *min_count as usize
            })
        }
        cond => facts
            .iter()
            .any(|f| span(cond, &f.what, f.start, f.end).is_some_and(|(s, e, _)| covers(s, e))),
    }
}

/// Instants in `(from, to)` where `term` may change.
fn boundaries(
    term: &Term,
    within: u64,
    facts: &FactLog,
    utc: i64,
    from: Timestamp,
    to: Timestamp,
    out: &mut Vec<Timestamp>,
) {
    let mut push = |t: Timestamp| {
        if t > from && t < to {
            out.push(t);
        }
    };
    if let Cond::Time { from: a, to: b } = term.cond {
        for minute in [a, b] {
            if let Some(t) = next_minute(minute, utc, from) {
                push(t);
            }
        }
        return;
    }
    for f in facts.iter() {
        if let Some((s, e, _)) = span(&term.cond, &f.what, f.start, f.end) {
            push(s);
            push(e.saturating_add(within));
        }
    }
}

/// Local wall-clock minute of the day, and seconds into it, at stream time `t`.
fn local_time(utc: i64, t: Timestamp) -> Option<(u32, u64)> {
    let ns = utc.checked_add(i64::try_from(t.0).ok()?)?;
    let at = Local.timestamp_nanos(ns);
    let secs = u64::from(at.num_seconds_from_midnight());
    Some((
        at.hour() * 60 + at.minute(),
        secs * SECOND + u64::from(at.nanosecond() % 1_000_000_000),
    ))
}

fn in_schedule(from: u32, to: u32, utc: i64, t: Timestamp) -> bool {
    let Some((m, _)) = local_time(utc, t) else {
        return false;
    };
    if from < to {
        from <= m && m < to
    } else {
        m >= from || m < to
    }
}

/// The next instant after `t` at which the local clock reads `minute`.
fn next_minute(minute: u32, utc: i64, t: Timestamp) -> Option<Timestamp> {
    let (_, into_day) = local_time(utc, t)?;
    let day = 24 * 3600 * SECOND;
    let target = u64::from(minute) * 60 * SECOND % day;
    let wait = (target + day - into_day % day) % day;
    (wait > 0).then(|| t.saturating_add(wait))
}

/// The labels of a stream's sound targets, for `Context::sounds`.
pub fn sound_labels(config: &PipelineConfig) -> Vec<String> {
    config
        .encoders
        .sound
        .as_ref()
        .map(|s| s.classes.iter().map(|c| c.to_lowercase()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::sound::{SoundWindow, TargetScore};
    use crate::encode::vad::VoiceWindow;
    use crate::time::Duration;
    use std::path::Path;

    const S: u64 = SECOND;

    struct Bench {
        engine: Engine,
        emit: Emit,
        fired: Vec<Fired>,
    }

    fn bench(rules: &str) -> Bench {
        let text = format!(
            "[encoders.sound]\nclasses = [\"siren\", \"glass\"]\n[encoders.vad]\n[encoders.loudness]\n[encoders.detector]\n{rules}"
        );
        let config = PipelineConfig::parse(&text, Path::new("t.toml")).unwrap();
        let scene = Scene::new(
            "cam",
            &config,
            crate::config::EventTiming {
                min_duration: Duration::ZERO,
                cooldown: Duration::ZERO,
            },
        );
        let engine = Engine::new(&Context {
            stream: "cam",
            config: &config,
            scene: &scene,
            sounds: &sound_labels(&config),
        });
        Bench {
            engine,
            emit: Emit::new(RecordMaker::new("run".into(), "cam".into())),
            fired: Vec::new(),
        }
    }

    impl Bench {
        /// Sound windows of 0.5 s over `[from, to)` seconds×10 for target `i`.
        fn sound(&mut self, target: usize, from: u64, to: u64) {
            let mut t = from * S / 10;
            while t < to * S / 10 {
                let targets = (0..2)
                    .map(|i| TargetScore {
                        score: if i == target { 0.9 } else { 0.01 },
                        active: i == target,
                        class: if i == 0 {
                            "Siren".into()
                        } else {
                            "Glass".into()
                        },
                    })
                    .collect();
                self.engine.sound(&SoundWindow {
                    start: Timestamp(t),
                    end: Timestamp(t + S / 2),
                    targets,
                });
                t += S / 2;
            }
        }

        /// A person track `track` present over `[from, to)` seconds×10.
        fn person(&mut self, track: u64, from: u64, to: u64) {
            self.engine.facts.add(
                What::Object {
                    track,
                    label: "person",
                    score: 0.9,
                    bbox: BBox::new(0.1, 0.1, 0.2, 0.4),
                },
                Timestamp(from * S / 10),
                Timestamp(to * S / 10),
            );
        }

        fn voice(&mut self, from: u64, to: u64) {
            self.engine.voice(&VoiceWindow {
                start: Timestamp(from * S / 10),
                end: Timestamp(to * S / 10),
                probability: 0.9,
                speaking: true,
            });
        }

        fn run(&mut self, until_s: u64) -> Vec<(Phase, f64, Option<f64>)> {
            // Decided a second at a time, as chunks come.
            for t in 1..=until_s {
                self.engine
                    .advance(&mut self.emit, Timestamp(t * S), &mut self.fired);
            }
            self.engine
                .finish(&mut self.emit, Timestamp(until_s * S), &mut self.fired);
            self.emit
                .records()
                .iter()
                .filter_map(|r| match r {
                    Record::Event(e) => Some((
                        e.phase,
                        e.start.as_secs_f64_ms(),
                        e.end.map(|x| x.as_secs_f64_ms()),
                    )),
                    _ => None,
                })
                .collect()
        }
    }

    fn rule(when: &str, extra: &str) -> String {
        format!("[[rules]]\nname = \"r\"\nwhen = '{when}'\ncooldown = \"0s\"\n{extra}\n")
    }

    #[test]
    fn and_holds_where_both_do() {
        let mut b = bench(&rule("sound(siren) and speech()", ""));
        b.sound(0, 20, 40);
        b.voice(30, 50);
        assert_eq!(
            b.run(8),
            [(Phase::Start, 3.0, None), (Phase::End, 3.0, Some(4.0))]
        );
        let e = match &b.emit.records()[0] {
            Record::Event(e) => e.clone(),
            _ => unreachable!(),
        };
        assert_eq!(e.kind, "rule");
        assert_eq!(e.labels, ["r"]);
        assert_eq!(e.details["severity"], "medium");
        let ev = e.details["evidence"].as_array().unwrap();
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert_eq!(ev[0]["facts"][0]["class"], "Siren");
        assert_eq!(b.fired.len(), 1);
    }

    #[test]
    fn within_joins_what_happened_close_together() {
        // Siren 2–3 s, speech 4–5 s: 1 s apart.
        let mut b = bench(&rule("sound(siren) and speech()", "within = \"2s\""));
        b.sound(0, 20, 30);
        b.voice(40, 50);
        // Both held in the last 2 s from 4.0 until the siren is 2 s old (5.0).
        assert_eq!(
            b.run(9),
            [(Phase::Start, 4.0, None), (Phase::End, 4.0, Some(5.0))]
        );
        let mut b = bench(&rule("sound(siren) and speech()", "within = \"500ms\""));
        b.sound(0, 20, 30);
        b.voice(40, 50);
        assert!(b.run(9).is_empty());
    }

    #[test]
    fn then_needs_the_order_and_the_window() {
        let then = rule("sound(siren) then speech()", "within = \"2s\"");
        let mut b = bench(&then);
        b.sound(0, 20, 30);
        b.voice(40, 50);
        assert_eq!(b.run(9)[0], (Phase::Start, 4.0, None), "siren, then speech");
        let mut b = bench(&then);
        b.voice(20, 30);
        b.sound(0, 40, 50);
        assert!(b.run(9).is_empty(), "speech, then siren: wrong order");
        let mut b = bench(&then);
        b.sound(0, 10, 20);
        b.voice(50, 60);
        assert!(b.run(9).is_empty(), "3 s apart, window 2 s");
        // Speech already going on when the siren starts does not count
        // as following it.
        let mut b = bench(&then);
        b.voice(10, 60);
        b.sound(0, 20, 30);
        assert!(b.run(9).is_empty());
    }

    #[test]
    fn cooldown_merges_close_onsets_and_not_negates() {
        let two = "[[rules]]\nname = \"r\"\nwhen = 'sound(siren)'\ncooldown = \"2s\"\n";
        let mut b = bench(two);
        b.sound(0, 10, 20);
        b.sound(0, 30, 40);
        assert_eq!(
            b.run(9),
            [(Phase::Start, 1.0, None), (Phase::End, 1.0, Some(4.0))],
            "off for 1 s < cooldown: one event"
        );
        let mut b = bench(&rule("sound(siren)", ""));
        b.sound(0, 10, 20);
        b.sound(0, 30, 40);
        assert_eq!(b.run(9).len(), 4, "two events without cooldown");
        let mut b = bench(&rule("speech() and not sound(siren)", ""));
        b.voice(10, 50);
        b.sound(0, 20, 30);
        let got = b.run(9);
        assert_eq!(
            got,
            [
                (Phase::Start, 1.0, None),
                (Phase::End, 1.0, Some(2.0)),
                (Phase::Start, 3.0, None),
                (Phase::End, 3.0, Some(5.0)),
            ]
        );
    }

    #[test]
    fn min_count_needs_the_objects_together() {
        let rule = rule(
            "object(person, min_count=2) then sound(siren)",
            "within = \"10s\"",
        );
        let mut b = bench(&rule);
        b.person(1, 10, 20);
        b.person(2, 30, 40);
        b.sound(0, 50, 60);
        assert!(b.run(9).is_empty(), "two people, one after the other");
        let mut b = bench(&rule);
        b.person(1, 10, 40);
        b.person(2, 20, 50);
        b.sound(0, 60, 70);
        assert_eq!(
            b.run(9)[0],
            (Phase::Start, 6.0, None),
            "two people together"
        );
        // One person seen twice (a track lost and found) is one at a time.
        let mut b = bench(&rule);
        b.person(1, 10, 20);
        b.person(3, 25, 40);
        b.sound(0, 50, 60);
        assert!(b.run(9).is_empty());
    }

    #[test]
    fn a_rule_about_a_zone_of_another_stream_is_not_for_this_one() {
        let text =
            "[[zones]]\nname = \"door\"\nstreams = [\"cam2\"]\npolygon = [[0,0],[1,0],[1,1]]\n"
                .to_string()
                + &rule("sound(siren) and not object(person, zone=door)", "");
        let mut b = bench(&text);
        b.sound(0, 10, 30);
        assert!(b.run(5).is_empty(), "cam has no door: the rule is cam2's");
        assert!(b.engine.is_empty());
    }

    #[test]
    fn min_duration_delays_the_start_not_the_onset() {
        let mut b = bench(&rule("speech()", "min_duration = \"1500ms\""));
        b.voice(10, 20);
        b.voice(40, 70);
        assert_eq!(
            b.run(9),
            [(Phase::Start, 4.0, None), (Phase::End, 4.0, Some(7.0))],
            "1 s of speech is too short; 3 s is not"
        );
    }

    #[test]
    fn rules_named_sounds_become_targets() {
        let text = "[encoders.sound]\nclasses = [\"siren\"]\n[[rules]]\nname = \"g\"\nwhen = \"sound(glass) or sound(siren)\"\n";
        let config = PipelineConfig::parse(text, Path::new("t.toml")).unwrap();
        assert_eq!(config.encoders.sound.unwrap().classes, ["siren", "glass"]);
    }

    #[test]
    fn schedules_wrap_past_midnight_in_local_time() {
        let at = |h: u32, m: u32| {
            Local
                .with_ymd_and_hms(2026, 11, 28, h, m, 0)
                .single()
                .and_then(|d| d.timestamp_nanos_opt())
                .unwrap()
        };
        let night = (22 * 60, 6 * 60);
        assert!(in_schedule(night.0, night.1, at(23, 0), Timestamp::ZERO));
        assert!(in_schedule(night.0, night.1, at(5, 59), Timestamp::ZERO));
        assert!(!in_schedule(night.0, night.1, at(6, 0), Timestamp::ZERO));
        assert!(!in_schedule(night.0, night.1, at(12, 0), Timestamp::ZERO));
        // Half an hour before 22:00, the schedule changes in 30 min.
        assert_eq!(
            next_minute(22 * 60, at(21, 30), Timestamp::ZERO),
            Some(Timestamp(30 * 60 * S))
        );
        assert!(in_schedule(0, 1440, at(0, 0), Timestamp::ZERO), "all day");
    }

    #[test]
    fn rule_errors_point_into_the_when_string() {
        let text = "[encoders.detector]\n[[rules]]\nname = \"x\"\nwhen = \"object(person) and sund(glass)\"\n";
        let e = PipelineConfig::parse(text, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        // `when = "` is 8 characters; `sund` is at column 20 of the rule.
        assert!(e.contains("4:28:"), "{e}");
        assert!(e.contains("sund"), "{e}");
        let text = "[encoders.detector]\n[[zones]]\nname = \"door\"\npolygon = [[0,0],[1,0],[1,1]]\n[[rules]]\nname = \"x\"\nwhen = \"object(person, zone=gate)\"\n";
        let e = PipelineConfig::parse(text, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no zone `gate`") && e.contains("7:9:"), "{e}");
        let text = "[[rules]]\nname = \"x\"\nwhen = \"face()\"\n";
        let e = PipelineConfig::parse(text, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("[encoders.faces]"), "{e}");
        let text = "[encoders.vad]\n[[rules]]\nname = \"x\"\nwhen = \"speech() then speech()\"\n";
        let e = PipelineConfig::parse(text, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("within"), "{e}");
    }
}
