//! Fusion: each stream's features, in chunk order, become records: events
//! with their lifecycle, and captions.

pub mod caption;
pub mod clips;
pub mod events;
pub mod lifecycle;
pub mod live;
pub mod pictures;
pub mod rules;
pub mod scene;
pub mod snapshot;
pub mod track;
pub mod zones;

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use serde_json::{Map, Value, json};

use crate::config::{EventTiming, PipelineConfig};
use crate::encode::{Encoded, Features};
use crate::error::Result;
use crate::geometry::BBox;
use crate::media::{Branch, Failure};
use crate::metrics::Metrics;
use crate::record::{CaptionRecord, EventRecord, Phase, Record, utc_string};
use crate::stage::{Context, End, Flow, Stage, spawn_stage};
use crate::stream::StreamStatus;
use crate::time::Timestamp;
use caption::Captioner;
use events::EventSeries;
use pictures::Pictures;
use rules::Engine;
use scene::Scene;

/// How long the caption said when a rule fires lasts on screen.
const ALERT_CAPTION: u64 = 3 * crate::time::SECOND;
/// Gaps less than this apart are one `stream_gap` event: an overloaded
/// stream drops frames in most chunks, and one event a second says nothing.
pub const GAP_MERGE: u64 = 3 * crate::time::SECOND;

/// An event transition, as captions tell it.
#[derive(Clone, Debug)]
pub struct EventNote {
    pub kind: &'static str,
    /// What it is about, for per-label events (`person`, `siren`).
    pub label: Option<String>,
    pub phase: Phase,
    pub at: Timestamp,
    pub bbox: Option<BBox>,
    pub peak_db: f32,
    /// An end that came because the input did: `stream`, `video`, `audio`.
    pub cut: Option<&'static str>,
    /// The track it is about.
    pub track: Option<u64>,
    /// The zone or line it is about; for an ended track, where it headed.
    pub place: Option<String>,
    /// Which way a line was crossed.
    pub direction: Option<&'static str>,
}

/// Makes the records of one stream: run, ids, UTC.
pub struct RecordMaker {
    pub run: Arc<str>,
    pub stream: Arc<str>,
    pub utc_origin: i64,
    next_id: u64,
}

impl RecordMaker {
    pub fn new(run: Arc<str>, stream: Arc<str>) -> Self {
        RecordMaker {
            run,
            stream,
            utc_origin: 0,
            next_id: 1,
        }
    }

    fn id(&mut self) -> String {
        let id = format!("{}/{}", self.stream, self.next_id);
        self.next_id += 1;
        id
    }

    #[allow(clippy::too_many_arguments)]
    pub fn event(
        &mut self,
        event: &str,
        kind: &str,
        phase: Phase,
        start: Timestamp,
        end: Option<Timestamp>,
        score: f32,
        bbox: Option<BBox>,
        details: Map<String, Value>,
    ) -> Record {
        Record::Event(EventRecord {
            run: self.run.to_string(),
            id: self.id(),
            event: event.to_string(),
            stream: self.stream.to_string(),
            kind: kind.to_string(),
            phase,
            start,
            end,
            utc: utc_string(self.utc_origin, start),
            score: crate::record::round4(score),
            labels: vec![],
            track: None,
            zone: None,
            bbox,
            snapshot: None,
            clip: None,
            clip_start: None,
            details,
        })
    }

    pub fn transcript(
        &mut self,
        start: Timestamp,
        end: Timestamp,
        text: String,
        confidence: f32,
    ) -> Record {
        Record::Transcript(crate::record::TranscriptRecord {
            run: self.run.to_string(),
            id: self.id(),
            stream: self.stream.to_string(),
            start,
            end,
            utc: utc_string(self.utc_origin, start),
            text,
            confidence: crate::record::round4(confidence),
        })
    }

    pub fn caption(&mut self, start: Timestamp, end: Timestamp, text: String) -> Record {
        Record::Caption(CaptionRecord {
            run: self.run.to_string(),
            id: self.id(),
            stream: self.stream.to_string(),
            start,
            end,
            utc: utc_string(self.utc_origin, start),
            text,
        })
    }
}

/// What fusion makes of one chunk: records, stamped by the maker, and the
/// notes captions are told. Owned by the [`Fuser`], emptied after each chunk.
pub struct Emit {
    pub maker: RecordMaker,
    records: Vec<Record>,
    notes: Vec<EventNote>,
}

impl Emit {
    pub fn new(maker: RecordMaker) -> Self {
        Emit {
            maker,
            records: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// A record out, after those before it.
    pub fn record(&mut self, r: Record) {
        self.records.push(r);
    }

    /// A note for captions.
    pub fn note(&mut self, n: EventNote) {
        self.notes.push(n);
    }

    /// The records made so far.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    pub fn records_mut(&mut self) -> &mut [Record] {
        &mut self.records
    }

    /// How many records wait to be taken (where the next one will be).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The records made since there were `from`.
    pub fn since_mut(&mut self, from: usize) -> &mut [Record] {
        self.records.get_mut(from..).unwrap_or_default()
    }

    pub fn take_records(&mut self) -> Vec<Record> {
        std::mem::take(&mut self.records)
    }

    pub fn take_notes(&mut self) -> Vec<EventNote> {
        std::mem::take(&mut self.notes)
    }
}

/// Which person's series a face is: its enrolled name, else its kept
/// unknown row (`unknown-ID`), else `unknown`; and its label.
fn person(f: &crate::encode::faces::Face) -> (String, &str) {
    match &f.who {
        Some(w) => match (&w.name, w.id) {
            (Some(n), _) => (n.to_string(), n),
            (None, Some(id)) => (format!("{}-{id}", events::UNKNOWN), events::UNKNOWN),
            (None, None) => (events::UNKNOWN.to_string(), events::UNKNOWN),
        },
        None => (events::UNKNOWN.to_string(), events::UNKNOWN),
    }
}

/// The face series of one stream with identity on: one per person seen.
#[derive(Default)]
struct People {
    series: Vec<EventSeries>,
    /// Unknown faces' series let go once idle (a busy camera sees many
    /// strangers, and every series hears every frame): how many events
    /// each had, so that its ids go on if the face comes back.
    retired: std::collections::HashMap<String, u64>,
}

/// One analysed frame's faces, each to its person's series (made when the
/// person is first seen); every series hears the frame, so that the
/// people who left end their events.
fn faces_by_person(
    people: &mut People,
    emit: &mut Emit,
    f: &crate::encode::faces::FrameFaces,
    timing: crate::config::EventTiming,
) {
    for face in &f.faces {
        let (key, label) = person(face);
        if !people.series.iter().any(|s| s.key() == Some(key.as_str())) {
            let seq = people.retired.remove(&key).unwrap_or(0);
            people
                .series
                .push(EventSeries::keyed("face", label, &key, timing).numbered_after(seq));
        }
    }
    for series in people.series.iter_mut() {
        let key = series.key().map(str::to_string);
        series.faces_of(emit, f, |face| Some(person(face).0) == key);
    }
    // Enrolled people's series stay (there are as many as people
    // enrolled); unknown faces' are let go once idle.
    let retired = &mut people.retired;
    people.series.retain(|s| match s.key() {
        Some(k) if k.starts_with("unknown-") && s.is_idle() => {
            retired.insert(k.to_string(), s.started());
            false
        }
        _ => true,
    });
}

/// The fusion state of one stream.
pub struct Fuser {
    /// What the chunk being fused makes.
    emit: Emit,
    motion: EventSeries,
    loud: EventSeries,
    speech: EventSeries,
    faces: EventSeries,
    /// With face identity on: one `face` series per person seen (an
    /// enrolled name, or an unknown face kept in the gallery), in place
    /// of `faces`.
    people: Option<People>,
    /// Their timing.
    face_timing: crate::config::EventTiming,
    /// Tracked objects, zones and lines.
    scene: Scene,
    rules: Engine,
    /// Snapshots, when the pipeline asks for them.
    pictures: Option<Pictures>,
    clips: Option<clips::Clips>,
    /// What the recorder did at the stream's end, not yet reported.
    recorded: crate::recording::ClipCounts,
    /// Alert captions waiting for the caption of their span.
    held: Vec<(Timestamp, Record)>,
    /// Start of the last caption out.
    last_cue: Timestamp,
    /// Stream time rules are decided behind the newest chunk.
    settle: u64,
    /// One series per sound target, in the pipeline's order.
    sounds: Vec<EventSeries>,
    /// One series per kind of [`Signal`](crate::encode::Signal) seen, with
    /// the branch whose end closes it.
    signals: Vec<(Branch, EventSeries)>,
    gap: EventSeries,
    /// The flags of the chunks in the open gap event, as first seen.
    gap_labels: Vec<&'static str>,
    captions: Captioner,
    has_video: bool,
    has_audio: bool,
    end: Timestamp,
    finished: bool,
    /// Blur faces in pictures shown (`[privacy] blur_faces`).
    blur_faces: bool,
    /// Live views made so far.
    views: u64,
}

impl Fuser {
    pub fn new(run: Arc<str>, stream: Arc<str>, config: &PipelineConfig) -> Self {
        let motion = config.encoders.motion.clone().unwrap_or_default();
        let loud = config.encoders.loudness.clone().unwrap_or_default();
        let scene = Scene::new(
            &stream,
            config,
            config
                .encoders
                .detector
                .clone()
                .unwrap_or_default()
                .timing(),
        );
        let rules = Engine::new(&rules::Context {
            stream: &stream,
            config,
            scene: &scene,
            sounds: &rules::sound_labels(config),
        });
        Fuser {
            emit: Emit::new(RecordMaker::new(run, stream.clone())),
            motion: EventSeries::new("motion", motion.timing()),
            loud: EventSeries::new("loud_sound", loud.timing()),
            faces: EventSeries::new(
                "face",
                config.encoders.faces.clone().unwrap_or_default().timing(),
            ),
            people: config
                .encoders
                .faces
                .as_ref()
                .and_then(|f| f.identity.as_ref())
                .map(|_| People::default()),
            face_timing: config.encoders.faces.clone().unwrap_or_default().timing(),
            speech: EventSeries::new(
                "speech",
                config.encoders.vad.clone().unwrap_or_default().timing(),
            ),
            scene,
            rules,
            pictures: None,
            clips: None,
            recorded: Default::default(),
            held: Vec::new(),
            last_cue: Timestamp::ZERO,
            settle: {
                // Rules wait until the tracker has confirmed what it saw.
                let d = config.encoders.detector.clone().unwrap_or_default();
                let confirm = u64::from(config.fusion.tracker.confirm.saturating_sub(1));
                rules::SETTLE
                    + d.min_duration.nanos()
                    + confirm * crate::time::SECOND / u64::from(d.fps.max(1))
            },
            sounds: config
                .encoders
                .sound
                .as_ref()
                .map(|s| {
                    s.classes
                        .iter()
                        .map(|c| EventSeries::labelled("sound", &c.to_lowercase(), s.timing()))
                        .collect()
                })
                .unwrap_or_default(),
            signals: Vec::new(),
            gap: EventSeries::new(
                "stream_gap",
                EventTiming {
                    min_duration: crate::time::Duration::ZERO,
                    cooldown: crate::time::Duration::from_nanos(GAP_MERGE),
                },
            ),
            gap_labels: Vec::new(),
            captions: Captioner::new(config.fusion.caption_span.nanos(), loud.threshold_db),
            has_video: false,
            has_audio: false,
            end: Timestamp::ZERO,
            finished: false,
            blur_faces: config.privacy.blur_faces,
            views: 0,
        }
    }

    /// The live view of the chunk just pushed (`None`: no frame of it kept
    /// its pixels).
    pub fn view(&mut self, enc: &Encoded) -> Option<crate::stream::LiveView> {
        let view = live::view(
            &self.scene,
            enc,
            self.emit.maker.utc_origin,
            self.blur_faces,
            self.views + 1,
        )?;
        self.views += 1;
        Some(view)
    }

    /// How far behind its start an event's start record may come.
    pub fn lag(&self) -> u64 {
        self.settle.saturating_add(self.rules.longest_wait())
    }

    /// Writes snapshots of events.
    pub fn take_pictures(&mut self, pictures: Pictures) {
        self.pictures = Some(pictures);
    }

    /// Records clips of events.
    pub fn take_clips(&mut self, clips: clips::Clips) {
        self.clips = Some(clips);
    }

    /// What the stream's recorder did since the last time this was asked.
    pub fn recorded(&mut self) -> crate::recording::ClipCounts {
        match &mut self.clips {
            Some(c) => c.unreported(),
            None => std::mem::take(&mut self.recorded),
        }
    }

    /// UTC of stream time zero, until chunks say (a stream that fails
    /// before its first chunk still dates its records).
    pub fn set_utc_origin(&mut self, utc: i64) {
        self.emit.maker.utc_origin = utc;
    }

    /// Fuses one chunk's features; returns the records it completes.
    pub fn push(&mut self, enc: &Encoded) -> Vec<Record> {
        let chunk = &enc.chunk;
        self.emit.maker.utc_origin = chunk.utc_origin;
        self.has_video = chunk.has_video;
        self.has_audio = chunk.has_audio;
        let flags = chunk.flags;
        if let Some(f) = chunk.frames.first().filter(|f| f.width > 0) {
            self.scene.set_aspect(f.height as f32 / f.width as f32);
        }
        if let Some(p) = &mut self.pictures {
            p.frames(&chunk.frames);
        }
        if let Some(c) = &mut self.clips {
            c.set_origin(chunk.pts_origin, chunk.utc_origin);
        }
        for name in flags.names() {
            if !self.gap_labels.contains(&name) {
                self.gap_labels.push(name);
            }
        }
        let from = self.emit.len();
        self.gap.gap(
            &mut self.emit,
            chunk.span.start,
            chunk.span.end,
            flags.any_gap(),
        );
        self.label_gap(from);
        for f in &enc.features {
            match f {
                Features::Motion(samples) => {
                    for s in samples {
                        self.motion.motion(&mut self.emit, s);
                        self.captions.motion(s);
                        self.rules.motion(s);
                    }
                }
                Features::Faces(frames) => {
                    for f in frames {
                        match &mut self.people {
                            Some(people) => {
                                faces_by_person(people, &mut self.emit, f, self.face_timing);
                            }
                            None => self.faces.faces(&mut self.emit, f),
                        }
                        self.rules.faces(f);
                        if let Some(p) = &mut self.pictures {
                            p.faces(f);
                        }
                    }
                }
                Features::Objects(frames) => {
                    for f in frames {
                        self.scene.frame(&mut self.emit, f);
                        self.captions.scene(&self.scene);
                        self.rules.scene(&self.scene, f.pts, f.until);
                        if let Some(p) = &mut self.pictures {
                            p.scene(&self.scene, f.pts);
                        }
                        for (event, at) in self.scene.boxes_at() {
                            if let Some(p) = &mut self.pictures {
                                p.box_at(event, at);
                            }
                        }
                    }
                }
                Features::Sound(windows) => {
                    for w in windows {
                        for (series, t) in self.sounds.iter_mut().zip(&w.targets) {
                            series.sound(&mut self.emit, w, t);
                        }
                        self.captions.sounds(w, &self.sounds);
                        self.rules.sound(w);
                    }
                }
                Features::Said(said) => {
                    for x in said {
                        let r = self.emit.maker.transcript(
                            x.start,
                            x.end,
                            x.text.clone(),
                            x.confidence,
                        );
                        self.emit.record(r);
                        self.captions.said(x);
                        self.rules.said(x);
                    }
                }
                Features::Voice(windows) => {
                    for w in windows {
                        self.speech.voice(&mut self.emit, w);
                        self.rules.voice(w);
                    }
                }
                Features::Loudness(l) => {
                    for w in &l.windows {
                        self.loud.loudness(&mut self.emit, w);
                        self.captions.level(w);
                        self.rules.level(w);
                    }
                }
                Features::Signal(signal) => {
                    let at = match self
                        .signals
                        .iter()
                        .position(|(_, s)| s.kind() == signal.kind)
                    {
                        Some(at) => at,
                        None => {
                            let series = EventSeries::new(signal.kind, signal.timing);
                            self.signals.push((signal.branch, series));
                            self.signals.len() - 1
                        }
                    };
                    for sample in &signal.samples {
                        self.signals[at].1.signal(&mut self.emit, sample);
                    }
                }
            }
        }
        // A branch that ended before the stream closes its own events there.
        // (At the stream's own end, `finish` closes them as the stream's.)
        let ended_here =
            |e: &Timestamp| *e < chunk.span.end || (*e == chunk.span.end && !flags.last);
        if let Some(e) = chunk.video_end.filter(ended_here) {
            for series in [&mut self.motion, &mut self.faces]
                .into_iter()
                .chain(self.people.iter_mut().flat_map(|p| p.series.iter_mut()))
                .chain(
                    self.signals
                        .iter_mut()
                        .filter_map(|(b, s)| (*b == Branch::Video).then_some(s)),
                )
            {
                series.finish(&mut self.emit, e, "video");
            }
            self.scene.finish(&mut self.emit, "video", e);
        }
        if let Some(e) = chunk.audio_end.filter(ended_here) {
            for series in [&mut self.loud, &mut self.speech]
                .into_iter()
                .chain(self.sounds.iter_mut())
                .chain(
                    self.signals
                        .iter_mut()
                        .filter_map(|(b, s)| (*b == Branch::Audio).then_some(s)),
                )
            {
                series.finish(&mut self.emit, e, "audio");
            }
        }
        if !flags.last {
            let mut fired = Vec::new();
            let horizon = Timestamp(chunk.span.end.0.saturating_sub(self.settle));
            self.rules.advance(&mut self.emit, horizon, &mut fired);
            self.alerts(fired);
        }
        for n in self.emit.take_notes() {
            self.captions.note(n);
        }
        self.end = chunk.span.end;
        // The last chunk's caption waits for `finish`, which knows how the stream ended.
        if !flags.last && self.end >= self.captions.span_end() {
            self.caption(self.end);
        }
        if let Some(p) = &mut self.pictures {
            p.dress(self.emit.records_mut());
        }
        if let Some(c) = &mut self.clips {
            c.dress(self.emit.records_mut());
            c.advance(chunk.span.end);
        }
        self.emit.take_records()
    }

    /// A caption for each rule that began. Captions leave in the order
    /// they start (subtitle files need it): one in the span being gathered
    /// waits for that span's caption.
    fn alerts(&mut self, fired: Vec<rules::Fired>) {
        for f in fired {
            let mut text = format!("{} alert {} at {}", f.severity.as_str(), f.name, f.at);
            if !f.evidence.is_empty() {
                text.push_str(": ");
                text.push_str(&f.evidence.join("; "));
            }
            let start = f.at.max(self.last_cue);
            let cue = self
                .emit
                .maker
                .caption(start, start.saturating_add(ALERT_CAPTION), text);
            if f.at >= self.captions.current_start() {
                self.held.push((start, cue));
            } else {
                self.last_cue = start;
                self.emit.record(cue);
            }
        }
    }

    /// Closes the span's caption at `end`, then the alerts it held.
    fn caption(&mut self, end: Timestamp) {
        let (span, text) = self.captions.close(end, self.has_video, self.has_audio);
        let cue = self.emit.maker.caption(span.start, span.end, text);
        self.emit.record(cue);
        self.last_cue = span.start;
        self.held.sort_by_key(|h| h.0);
        for (start, cue) in self.held.drain(..) {
            self.last_cue = start;
            self.emit.record(cue);
        }
    }

    /// Labels the gap event's records with what the chunks in it lacked: the
    /// start record with its first chunk's flags, the end record with all:
    /// those made since there were `from`.
    fn label_gap(&mut self, from: usize) {
        for r in self.emit.since_mut(from) {
            if let Record::Event(e) = r {
                e.labels = self.gap_labels.iter().map(|s| s.to_string()).collect();
                if e.phase == Phase::End {
                    self.gap_labels.clear();
                }
            }
        }
        if !self.gap.is_open() {
            self.gap_labels.clear();
        }
    }

    /// The stream ended (or failed with `failure`): closes open events and the
    /// last caption. Idempotent.
    pub fn finish(&mut self, failure: Option<&str>) -> Vec<Record> {
        if self.finished {
            return Vec::new();
        }
        self.finished = true;
        let end = self.end;
        for series in [
            &mut self.motion,
            &mut self.faces,
            &mut self.loud,
            &mut self.speech,
        ]
        .into_iter()
        .chain(self.people.iter_mut().flat_map(|p| p.series.iter_mut()))
        .chain(self.sounds.iter_mut())
        .chain(self.signals.iter_mut().map(|(_, s)| s))
        {
            series.finish(&mut self.emit, end, "stream");
        }
        let from = self.emit.len();
        self.gap.finish(&mut self.emit, end, "stream");
        self.label_gap(from);
        self.scene.finish(&mut self.emit, "stream", end);
        let mut fired = Vec::new();
        self.rules.finish(&mut self.emit, end, &mut fired);
        self.alerts(fired);
        if let Some(reason) = failure {
            let id = format!("{}/stream_error/1", self.emit.maker.stream);
            let mut details = Map::new();
            details.insert("message".into(), json!(reason));
            for phase in [Phase::Start, Phase::End] {
                let end = (phase == Phase::End).then_some(end);
                let r = self.emit.maker.event(
                    &id,
                    "stream_error",
                    phase,
                    end.unwrap_or(self.end),
                    end,
                    1.0,
                    None,
                    details.clone(),
                );
                self.emit.record(r);
            }
            self.emit.note(EventNote {
                kind: "stream_error",
                label: None,
                phase: Phase::Start,
                at: end,
                bbox: None,
                peak_db: 0.0,
                cut: None,
                track: None,
                place: None,
                direction: None,
            });
        }
        let notes = self.emit.take_notes();
        let any_notes = !notes.is_empty();
        for n in notes {
            self.captions.note(n);
        }
        if end > self.captions.current_start() || any_notes || !self.held.is_empty() {
            self.caption(end);
        }
        if let Some(p) = &mut self.pictures {
            p.dress(self.emit.records_mut());
            let (written, failed, unblurred) = p.counts();
            tracing::debug!(stream = %self.emit.maker.stream, written, failed, unblurred, "snapshots");
        }
        if let Some(mut c) = self.clips.take() {
            c.dress(self.emit.records_mut());
            let n = c.finish();
            tracing::debug!(stream = %self.emit.maker.stream, written = n.written, failed = n.failed,
                dropped_packets = n.dropped_packets, missed = n.missed, segments = n.segments, "clips");
            self.recorded = n;
        }
        self.emit.take_records()
    }
}

/// A batch of records for the sinks: what one chunk of one stream completed.
#[derive(Debug)]
pub struct Batch {
    pub stream: Arc<str>,
    pub records: Vec<Record>,
}

/// Runs a stream's fusion on its own thread; says `done` with the stream's
/// name once its last records are sent.
pub fn spawn(
    fuser: Fuser,
    status: Arc<StreamStatus>,
    input: Receiver<Encoded>,
    output: Sender<Batch>,
    metrics: &Arc<Metrics>,
    done: Sender<Arc<str>>,
) -> Result<JoinHandle<()>> {
    let stream = fuser.emit.maker.stream.clone();
    spawn_stage(
        FuseStage {
            fuser,
            done,
            showing: false,
        },
        stream,
        input,
        output,
        metrics,
        status,
    )
}

/// Fusion as a [`Stage`]: encoded chunks in, batches of records out.
struct FuseStage {
    fuser: Fuser,
    done: Sender<Arc<str>>,
    /// A live view is up for whoever watches.
    showing: bool,
}

impl FuseStage {
    fn batch(&mut self, records: Vec<Record>, out: &mut Vec<Batch>, cx: &Context) {
        cx.metrics.scene(&records);
        let n = self.fuser.recorded();
        for (kind, result, count) in [
            ("clip", "written", n.written),
            ("clip", "failed", n.failed),
            ("segment", "written", n.segments),
            ("segment", "failed", n.segments_failed),
        ] {
            cx.metrics.recordings(kind, result, count);
        }
        // Packets let go unwritten (the recorder's hold full), and events
        // that got no clip (no picture yet, the disk full).
        for (reason, count) in [
            ("recorder_full", n.dropped_packets),
            ("clip_missed", n.missed),
        ] {
            if count > 0 {
                cx.metrics.dropped(reason, count);
            }
        }
        if !records.is_empty() {
            out.push(Batch {
                stream: cx.stream.clone(),
                records,
            });
        }
    }
}

impl Stage for FuseStage {
    type In = Encoded;
    type Out = Batch;
    const NAME: &'static str = "fuse";

    fn push(&mut self, enc: Encoded, out: &mut Vec<Batch>, cx: &Context) -> Result<Flow> {
        let records = self.fuser.push(&enc);
        if cx.status.watched() {
            if let Some(view) = self.fuser.view(&enc) {
                cx.status.set_view(Some(view));
                self.showing = true;
            }
        } else if self.showing {
            cx.status.set_view(None);
            self.showing = false;
        }
        cx.status.chunk_done(&enc.chunk);
        cx.metrics
            .latency(enc.chunk.made_at.elapsed().as_secs_f64());
        self.batch(records, out, cx);
        Ok(Flow::More)
    }

    fn finish(&mut self, out: &mut Vec<Batch>, cx: &Context) -> Result<()> {
        let failure = cx.status.failure();
        let records = self.fuser.finish(failure.as_deref());
        self.batch(records, out, cx);
        Ok(())
    }

    fn weight(batch: &Batch) -> u64 {
        batch.records.len() as u64
    }

    fn close(self, _end: End, cx: &Context) -> Option<Failure> {
        let _ = self.done.send(cx.stream.clone());
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{Chunk, ChunkFlags};
    use crate::time::SECOND;

    fn chunk(seq: u64, flags: ChunkFlags) -> Encoded {
        Encoded {
            chunk: Chunk {
                flags,
                audio: Arc::from(Vec::new()),
                first_sample: 0,
                ..Chunk::test_second("cam", seq, 0)
            },
            features: Vec::new(),
        }
    }

    /// The gap events of a stream whose chunks have these flags, one a second.
    fn gaps(flags: &[ChunkFlags]) -> Vec<EventRecord> {
        let config = PipelineConfig::parse("[sinks.jsonl]\n", std::path::Path::new("t.toml"))
            .expect("pipeline");
        let mut fuser = Fuser::new("run".into(), "cam".into(), &config);
        let mut out = Vec::new();
        for (seq, f) in flags.iter().enumerate() {
            out.extend(fuser.push(&chunk(seq as u64, *f)));
        }
        out.extend(fuser.finish(None));
        out.into_iter()
            .filter_map(|r| match r {
                Record::Event(e) if e.kind == "stream_gap" => Some(e),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn gaps_close_together_are_one_event_naming_all_they_lacked() {
        let ok = ChunkFlags::default();
        let dropped = ChunkFlags {
            frames_dropped: true,
            ..ok
        };
        let lost = ChunkFlags {
            reconnecting: true,
            ..ok
        };
        // Frames dropped in every other chunk (an overloaded stream), then a
        // reconnection 2 s later: one event, from 1 s to 8 s.
        let mut flags = vec![ok, dropped, ok, dropped, ok, ok, lost, lost, ok];
        // 3 s whole, then one more gap: an event of its own.
        flags.extend([ok, ok, ok, dropped, ok, ok, ok, ok]);
        let events = gaps(&flags);
        let phases: Vec<_> = events
            .iter()
            .map(|e| (e.phase, e.start.0 / SECOND))
            .collect();
        assert_eq!(
            phases,
            [
                (Phase::Start, 1),
                (Phase::End, 1),
                (Phase::Start, 12),
                (Phase::End, 12)
            ],
            "{events:?}"
        );
        assert_eq!(events[1].end, Some(Timestamp(8 * SECOND)));
        assert_eq!(events[0].labels, ["frames_dropped"]);
        assert_eq!(events[1].labels, ["frames_dropped", "reconnecting"]);
        assert_eq!(events[3].labels, ["frames_dropped"]);
        assert_eq!(events[3].end, Some(Timestamp(13 * SECOND)));
    }

    #[test]
    fn a_gap_open_at_the_end_closes_there() {
        let ok = ChunkFlags::default();
        let gap = ChunkFlags {
            audio_gap: true,
            ..ok
        };
        let events = gaps(&[ok, gap, ok]);
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[1].labels, ["audio_gap"]);
        assert_eq!(events[1].end, Some(Timestamp(2 * SECOND)));
    }
}

#[cfg(test)]
mod people_tests {
    use super::*;
    use crate::encode::face_id::Who;
    use crate::encode::faces::{Face, FrameFaces, POINTS};
    use crate::time::SECOND;

    fn frame(at: u64, ids: &[i64]) -> FrameFaces {
        FrameFaces {
            pts: Timestamp(at * SECOND),
            until: Timestamp((at + 1) * SECOND),
            faces: ids
                .iter()
                .map(|&id| Face {
                    bbox: BBox::new(0.1, 0.1, 0.2, 0.2),
                    score: 0.9,
                    points: [[0.0; 2]; POINTS],
                    who: Some(Who {
                        id: Some(id),
                        name: None,
                        distance: Some(1.3),
                    }),
                })
                .collect(),
        }
    }

    #[test]
    fn unknown_faces_series_are_let_go_when_idle_and_their_ids_go_on() {
        let timing = crate::config::EventTiming {
            min_duration: crate::time::Duration::ZERO,
            cooldown: crate::time::Duration::ZERO,
        };
        let mut emit = Emit::new(RecordMaker::new("run".into(), "cam".into()));
        let mut people = People::default();
        let seen = [&[5][..], &[5, 6], &[], &[], &[5], &[]];
        for (t, ids) in seen.iter().enumerate() {
            faces_by_person(&mut people, &mut emit, &frame(t as u64, ids), timing);
        }
        // Nobody in view: no series hears frames any more.
        assert!(people.series.is_empty(), "{}", people.series.len());
        let ids: Vec<String> = emit
            .take_records()
            .into_iter()
            .filter_map(|r| match r {
                Record::Event(e) if e.phase == Phase::Start => Some(e.event),
                _ => None,
            })
            .collect();
        assert_eq!(
            ids,
            [
                "cam/face/unknown-5/1",
                "cam/face/unknown-6/1",
                "cam/face/unknown-5/2"
            ]
        );
    }
}
