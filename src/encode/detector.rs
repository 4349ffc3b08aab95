//! Objects with NanoDet (COCO-80): letterbox into the stream's input side
//! (416 by default, 320 for a near camera) with NanoDet's own
//! normalisation, distribution-focal-loss box decode, per-class NMS, boxes
//! mapped back to the frame. The [`Gate`] decides which frames, and which
//! crop of them, the model sees.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::config::labels::is_own_model;
use crate::config::{DetectorConfig, InputSide, Precision, ShapeFilter, SourceConfig};
use crate::encode::batch::{BatchClient, BatchModel, ItemOutputs, ItemShapes, Pending, Port};
use crate::encode::gate::{Gate, Look, Plan};
use crate::encode::kind::{self, Kind, Part};
use crate::encode::letterbox::Letterbox;
use crate::encode::runtime::{self, Colour, DetectorSpec, Family, Manifest};
use crate::encode::{Encoder, Features};
use crate::error::{Error, Result};
use crate::geometry::{BBox, Mask};
use crate::media::{Chunk, VideoFrame};
use crate::time::{SECOND, Timestamp};

/// The float model's manifest.
pub const MANIFEST: &str = include_str!("../../models/nanodet.toml");
/// The int8 model's: the same input and outputs.
pub const MANIFEST_INT8: &str = include_str!("../../models/nanodet_int8.toml");

/// NanoDet answering as a YOLOv8 export does (`model = "nanodet_yolo"`).
pub const MANIFEST_YOLO: &str = include_str!("../../models/nanodet_yolo.toml");

/// The models `[encoders.detector] model` may name.
pub const MODELS: [&str; 2] = ["nanodet", "nanodet_yolo"];

/// The manifest of the model `config` asks for (NanoDet when the name is
/// not one of [`MODELS`]: [`check_classes`] refuses it first).
pub fn manifest(config: &DetectorConfig) -> &'static str {
    match (config.model.as_str(), config.precision) {
        ("nanodet_yolo", _) => MANIFEST_YOLO,
        (_, Precision::F32) => MANIFEST,
        (_, Precision::Int8) => MANIFEST_INT8,
    }
}

/// The manifest of the model `config` asks for: a built-in one, or the
/// manifest beside a model of the user's own.
pub fn manifest_of(config: &DetectorConfig) -> Result<Manifest> {
    if is_own_model(&config.model) {
        Manifest::user(std::path::Path::new(&config.model))
    } else {
        Ok(Manifest::builtin(manifest(config)))
    }
}

/// The classes of the model `config` asks for, in its output order.
pub fn classes(config: &DetectorConfig) -> Result<Vec<&'static str>> {
    crate::config::labels::classes_of(&config.model).map_err(Error::Invalid)
}

/// Objects (NanoDet, COCO-80).
pub const KIND: Kind = Kind {
    name: "detector",
    manifests: &[MANIFEST, MANIFEST_INT8, MANIFEST_YOLO],
    manifest: |c| match &c.detector {
        Some(d) if !is_own_model(&d.model) => vec![manifest(d)],
        _ => Vec::new(),
    },
    section: None,
    on: |c| c.detector.is_some(),
    off: |c| c.detector = None,
    check: |c| match &c.detector {
        Some(d) => {
            check_classes(d)?;
            model(d, 1).map(drop)
        }
        None => Ok(()),
    },
    start: |c, threads, metrics| {
        if let Some(d) = &c.detector {
            check_classes(d)?;
        }
        kind::batcher(c.detector.as_ref(), threads, metrics, model, |d| d.batch)
    },
    build: |c, w, source| {
        Ok(match (&c.detector, kind::batch_worker(w)) {
            (Some(d), Some(b)) => Some(Part::Encoder(Box::new(Detector::new(
                d.clone(),
                b.client(),
                source,
            )?))),
            _ => None,
        })
    },
};
/// Strides of the three heads, with the outputs the batcher returns in
/// this order: scores then boxes per stride.
const STRIDES: [usize; 3] = [8, 16, 32];
const OUTPUTS: [&str; 6] = [
    "scores_8",
    "boxes_8",
    "scores_16",
    "boxes_16",
    "scores_32",
    "boxes_32",
];
/// Bins of the box side distributions.
const BINS: usize = 11;
const CLASSES: usize = 80;

/// The COCO class names, in the model's output order.
pub fn labels() -> Vec<&'static str> {
    crate::config::labels::coco_classes()
}

/// One object: its class, score and box normalised to the frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    pub label: &'static str,
    pub score: f32,
    pub bbox: BBox,
}

/// The objects found in one analysed frame.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameObjects {
    pub pts: Timestamp,
    /// Until the next analysed frame is due.
    pub until: Timestamp,
    /// Why the frame was looked at, or that it was not ([`Gate`]).
    pub look: Look,
    /// The part of the frame looked at, normalised: `None` for all of it,
    /// empty when it was not looked at. Objects elsewhere were not seen
    /// to go: tracking holds them where they were.
    pub region: Option<BBox>,
    /// Detections over their class's threshold.
    pub objects: Vec<Detection>,
    /// Weaker ones, down to the detector's `faint` score: they only keep
    /// existing tracks going (an occluded or blurred person).
    pub faint: Vec<Detection>,
}

/// What the detector feeds a model and how it reads its answer: its
/// manifest's `[detector]`, the input's name and fixed side, the outputs'
/// names.
#[derive(Clone, Debug)]
pub struct Decoding {
    pub spec: DetectorSpec,
    pub input: String,
    /// The side the model takes, when its input's size is fixed (a YOLO
    /// export); else any multiple of 32.
    pub fixed_side: Option<usize>,
    pub outputs: Vec<String>,
}

impl Decoding {
    /// The decoding of the model `config` asks for.
    pub fn of(config: &DetectorConfig) -> Result<Decoding> {
        let m = manifest_of(config)?;
        let bad = |message: String| Error::Model {
            model: m.name.clone(),
            message,
        };
        let spec = m
            .detector
            .clone()
            .ok_or_else(|| bad("its manifest has no [detector] table".into()))?;
        let input = m
            .inputs
            .first()
            .ok_or_else(|| bad("its manifest names no input".into()))?;
        let fixed_side = match input.shape.get(2) {
            Some(toml::Value::Integer(n)) => Some(usize::try_from(*n).unwrap_or(0)),
            _ => None,
        };
        let outputs = match spec.family {
            Family::Nanodet => OUTPUTS.iter().map(|o| o.to_string()).collect(),
            Family::Yolov8 | Family::Yolov5 => {
                m.outputs.iter().take(1).map(|o| o.name.clone()).collect()
            }
        };
        // The classes the outputs hold must be the labels' (where the
        // manifest fixes them).
        let labels = classes(config)?.len();
        let (held, layout) = match spec.family {
            Family::Nanodet => (
                m.outputs.first().and_then(|o| o.shape.get(2)),
                "scores [batch, cells, classes]",
            ),
            Family::Yolov8 => (
                m.outputs.first().and_then(|o| o.shape.get(1)),
                "[batch, 4 + classes, anchors]",
            ),
            Family::Yolov5 => (
                m.outputs.first().and_then(|o| o.shape.get(2)),
                "[batch, anchors, 5 + classes]",
            ),
        };
        let extra = match spec.family {
            Family::Nanodet => 0,
            Family::Yolov8 => 4,
            Family::Yolov5 => 5,
        };
        if let Some(toml::Value::Integer(n)) = held
            && usize::try_from(*n).ok() != Some(labels + extra)
        {
            return Err(bad(format!(
                "its labels name {labels} classes, but its first output's shape ({layout}) holds {} ({n}); the manifest's labels or family do not match the model",
                n - extra as i64
            )));
        }
        if spec.family == Family::Nanodet && labels != CLASSES {
            return Err(bad(format!(
                "the nanodet family decodes {CLASSES} classes; its labels name {labels}"
            )));
        }
        Ok(Decoding {
            spec,
            input: input.name.clone(),
            fixed_side,
            outputs,
        })
    }
}

/// The model for the inference worker.
pub fn model(config: &DetectorConfig, threads: usize) -> Result<BatchModel> {
    let manifest = manifest_of(config)?;
    let decoding = Decoding::of(config)?;
    let side = decoding
        .fixed_side
        .map_or(InputSide::DEFAULT.pixels(), |s| s);
    let (session, pool) = runtime::pooled_session(&manifest, threads, config.provider)?;
    Ok(BatchModel {
        name: "nanodet",
        session,
        pool,
        inputs: vec![Port::first(decoding.input.clone(), vec![3, side, side])],
        scalars: Vec::new(),
        outputs: decoding
            .outputs
            .iter()
            .map(|o| Port::first(o.clone(), Vec::new()))
            .collect(),
    })
}

/// One input item's shape at `side`: three planes of side × side.
fn square(side: InputSide) -> Vec<usize> {
    vec![3, side.pixels(), side.pixels()]
}

/// Checks the class names of a detector's settings against its model's.
pub fn check_classes(config: &DetectorConfig) -> Result<()> {
    if !MODELS.contains(&config.model.as_str()) && !is_own_model(&config.model) {
        return Err(Error::Invalid(format!(
            "[encoders.detector] model `{}` is not one vigil knows ({}) nor a path to an .onnx file of your own",
            config.model,
            MODELS.join(", ")
        )));
    }
    let labels = classes(config)?;
    // The built-in thresholds (COCO's person, car…) bind only the classes a
    // model has; the ones a pipeline sets must all be its classes.
    let defaults = DetectorConfig::default().thresholds;
    let set = config
        .thresholds
        .iter()
        .filter(|(k, v)| defaults.get(*k) != Some(*v))
        .map(|(k, _)| k);
    for name in config
        .classes
        .iter()
        .chain(set)
        .chain(config.filters.keys())
    {
        if !labels.contains(&name.as_str()) {
            return Err(Error::Invalid(format!(
                "[encoders.detector]: `{name}` is not a class of the model; it knows: {}",
                labels.join(", ")
            )));
        }
    }
    for (class, filter) in &config.filters {
        filter.check(class).map_err(Error::Invalid)?;
    }
    Ok(())
}

/// The object detector of one stream.
pub struct Detector {
    client: BatchClient,
    config: DetectorConfig,
    labels: Arc<[&'static str]>,
    /// Per class: reported at all, and its threshold.
    wanted: Vec<Option<f32>>,
    /// Per class: the sizes and shapes it may have, if limited.
    filters: Vec<Option<ShapeFilter>>,
    /// The stream's `object_mask`: an object whose anchor is there is
    /// dropped.
    object_mask: Mask,
    interval: u64,
    next_due: u64,
    gate: Gate,
    /// The side of the model's input for this stream, and the item shape
    /// it is sent with.
    side: usize,
    decoding: Decoding,
    shapes: ItemShapes,
}

impl Detector {
    /// The detector of the stream `source`: at most its fps, at its input
    /// side (or the section's).
    pub fn new(
        config: DetectorConfig,
        client: BatchClient,
        source: &SourceConfig,
    ) -> Result<Detector> {
        check_classes(&config)?;
        let labels: Arc<[&'static str]> = classes(&config)?.into();
        let wanted = labels
            .iter()
            .map(|l| {
                (config.classes.is_empty() || config.classes.iter().any(|c| c == l))
                    .then(|| config.threshold_for(l))
            })
            .collect();
        let filters = labels
            .iter()
            .map(|l| config.filters.get(*l).copied())
            .collect();
        let fps = config.fps.min(source.fps).max(1);
        let decoding = Decoding::of(&config)?;
        let side = match decoding.fixed_side {
            Some(fixed) => InputSide::new(fixed as u32).map_err(Error::Invalid)?,
            None => source.detector_input.unwrap_or(config.input),
        };
        Ok(Detector {
            client,
            labels,
            wanted,
            filters,
            interval: SECOND / fps as u64,
            next_due: 0,
            gate: Gate::new(&config, Mask::new(source.motion_mask.clone())),
            object_mask: Mask::new(source.object_mask.clone()),
            side: side.pixels(),
            decoding,
            shapes: Arc::from(vec![square(side)]),
            config,
        })
    }

    /// Whether `pts` is due for analysis; frames come at the source's fps,
    /// the detector takes at most its own.
    fn due(&mut self, pts: Timestamp) -> bool {
        if pts.0 + self.interval / 10 < self.next_due {
            return false;
        }
        self.next_due = (pts.0 / self.interval + 1) * self.interval;
        true
    }

    /// Decodes one frame's outputs: the detections over their class's
    /// threshold, and the faint ones.
    pub fn decode(
        &self,
        outputs: &ItemOutputs,
        letterbox: &Letterbox,
        crop: Option<BBox>,
    ) -> Result<Found> {
        let floor = |class: usize| self.wanted[class].map(|t| t.min(self.config.faint));
        let found = candidates(
            self.decoding.spec.family,
            self.labels.len(),
            outputs,
            self.side,
            floor,
        )
        .map_err(|message| Error::Model {
            model: self.config.model.clone(),
            message,
        })?;
        let candidates: Vec<(usize, f32, BBox)> = found
            .into_iter()
            .map(|(class, score, corners)| {
                (class, score, uncrop(letterbox.to_frame(corners), crop))
            })
            .filter(|(_, _, b)| b.w > 0.0 && b.h > 0.0)
            .collect();
        let kept = nms_per_class(candidates, self.config.iou);
        let (mut objects, mut faint) = (Vec::new(), Vec::new());
        for (class, score, bbox) in kept {
            let d = Detection {
                label: self.labels[class],
                score,
                bbox,
            };
            if self.wanted[class].is_some_and(|t| score >= t) {
                objects.push(d);
            } else {
                faint.push(d);
            }
        }
        Ok((objects, faint))
    }
}

impl Detector {
    /// The objects in each of `frames` (all of them, whatever the fps),
    /// where the gate says to look.
    pub fn detect(&mut self, frames: &[&VideoFrame]) -> Result<Vec<FrameObjects>> {
        let plans: Vec<Plan> = frames.iter().map(|f| self.gate.plan(f)).collect();
        // Each frame goes to the worker as soon as it is letterboxed, so
        // that the model runs while the next one is prepared; at most
        // IN_FLIGHT wait at once (each input is 2 MB at 416).
        let mut found: Vec<Option<Found>> = frames.iter().map(|_| None).collect();
        let mut waiting: VecDeque<(usize, Letterbox, Pending)> = VecDeque::new();
        for (i, (f, plan)) in frames.iter().zip(&plans).enumerate() {
            if plan.look == Look::Skipped {
                continue;
            }
            if waiting.len() >= IN_FLIGHT
                && let Some((j, lb, pending)) = waiting.pop_front()
            {
                found[j] = Some(self.answer(pending, &lb, plans[j].region)?);
            }
            let (input, lb) = preprocess(f, plan.region, self.side, &self.decoding.spec);
            let pending = self
                .client
                .submit_shaped(vec![vec![input]], self.shapes.clone())?;
            waiting.push_back((i, lb, pending));
        }
        while let Some((j, lb, pending)) = waiting.pop_front() {
            found[j] = Some(self.answer(pending, &lb, plans[j].region)?);
        }
        let mut out = Vec::with_capacity(frames.len());
        for ((frame, plan), found) in frames.iter().zip(plans).zip(found) {
            let (mut objects, mut faint) = found.unwrap_or_default();
            objects.retain(|d| self.admits(d, frame));
            faint.retain(|d| self.admits(d, frame));
            let boxes: Vec<BBox> = objects.iter().map(|d| d.bbox).collect();
            self.gate.looked(&plan, frame, &boxes);
            out.push(FrameObjects {
                pts: frame.pts,
                until: frame.pts.saturating_add(self.interval),
                look: plan.look,
                region: plan.region,
                objects,
                faint,
            });
        }
        Ok(out)
    }

    /// Whether `d` stands outside the stream's `object_mask` and its box
    /// has a size and shape its class's filter allows in `frame`
    /// (`[encoders.detector] filters`).
    fn admits(&self, d: &Detection, frame: &VideoFrame) -> bool {
        if self.object_mask.holds(d.bbox.anchor()) {
            return false;
        }
        let Some(filter) = self
            .labels
            .iter()
            .position(|l| *l == d.label)
            .and_then(|c| self.filters[c])
        else {
            return true;
        };
        let (w, h) = (d.bbox.w.min(1.0), d.bbox.h.min(1.0));
        let ratio = (w * frame.width as f32) / (h * frame.height as f32).max(f32::MIN_POSITIVE);
        filter.admits(w * h, ratio)
    }

    /// Waits for one frame's outputs and decodes them.
    fn answer(&self, pending: Pending, lb: &Letterbox, crop: Option<BBox>) -> Result<Found> {
        let outputs = pending.wait()?;
        let Some(o) = outputs.first() else {
            return Err(Error::Model {
                model: "nanodet".into(),
                message: "the worker gave no outputs for a frame".into(),
            });
        };
        self.decode(o, lb, crop)
    }
}

/// A frame's detections over their class's threshold, and its faint ones.
type Found = (Vec<Detection>, Vec<Detection>);

/// Frames of one stream at the worker at once, at most.
const IN_FLIGHT: usize = 2;

impl Encoder for Detector {
    fn name(&self) -> &'static str {
        "detector"
    }

    fn encode(&mut self, chunks: &[&Chunk]) -> Result<Vec<Features>> {
        let mut out = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            let due: Vec<&VideoFrame> = chunk.frames.iter().filter(|f| self.due(f.pts)).collect();
            out.push(Features::Objects(self.detect(&due)?));
        }
        Ok(out)
    }

    fn model_cpu_ns(&self) -> u64 {
        self.client.cpu_ns()
    }
}

/// A detection before thresholds are applied by class: class, score and
/// corners `[x0, y0, x1, y1]` in input pixels.
type Candidate = (usize, f32, [f32; 4]);

/// The candidates in one frame's `outputs` from a model of `family` whose
/// input side is `side`: those scoring at or over `floor(class)` (`None`:
/// a class not reported). An output of the wrong size is an error saying
/// what the family needs.
fn candidates(
    family: Family,
    classes: usize,
    outputs: &ItemOutputs,
    side: usize,
    floor: impl Fn(usize) -> Option<f32>,
) -> std::result::Result<Vec<Candidate>, String> {
    let mut found = Vec::new();
    let wanted = |class: usize, score: f32| floor(class).is_some_and(|f| score >= f);
    let corners =
        |cx: f32, cy: f32, w: f32, h: f32| [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0];
    let first = || outputs.first().map(Vec::as_slice).unwrap_or_default();
    match family {
        Family::Nanodet => {
            for (k, &stride) in STRIDES.iter().enumerate() {
                let cells_x = side / stride;
                let cells = cells_x * cells_x;
                let (Some(scores), Some(boxes)) = (outputs.get(2 * k), outputs.get(2 * k + 1))
                else {
                    return Err(format!("no outputs for stride {stride}"));
                };
                if scores.len() != cells * classes || boxes.len() != cells * 4 * BINS {
                    return Err(format!(
                        "stride {stride}: outputs of {} and {} values, expected {} and {}",
                        scores.len(),
                        boxes.len(),
                        cells * classes,
                        cells * 4 * BINS
                    ));
                }
                for cell in 0..cells {
                    let row = &scores[cell * classes..(cell + 1) * classes];
                    let dist = &boxes[cell * 4 * BINS..(cell + 1) * 4 * BINS];
                    let mut sides: Option<[f32; 4]> = None;
                    for (class, &score) in row.iter().enumerate() {
                        if !wanted(class, score) {
                            continue;
                        }
                        let d = *sides.get_or_insert_with(|| dfl(dist));
                        let s = stride as f32;
                        let cx = ((cell % cells_x) as f32 + 0.5) * s;
                        let cy = ((cell / cells_x) as f32 + 0.5) * s;
                        found.push((
                            class,
                            score,
                            [cx - d[0] * s, cy - d[1] * s, cx + d[2] * s, cy + d[3] * s],
                        ));
                    }
                }
            }
        }
        Family::Yolov8 => {
            let o = first();
            let n = o.len() / (4 + classes);
            if n == 0 || o.len() != n * (4 + classes) {
                return Err(format!(
                    "an output of {} values, where YOLOv8's layout needs anchors × {} (4 + {classes} classes)",
                    o.len(),
                    4 + classes
                ));
            }
            for j in 0..n {
                for class in 0..classes {
                    let score = o[(4 + class) * n + j];
                    if wanted(class, score) {
                        found.push((
                            class,
                            score,
                            corners(o[j], o[n + j], o[2 * n + j], o[3 * n + j]),
                        ));
                    }
                }
            }
        }
        Family::Yolov5 => {
            let o = first();
            let row = 5 + classes;
            if o.is_empty() || !o.len().is_multiple_of(row) {
                return Err(format!(
                    "an output of {} values, where YOLOv5's layout needs anchors × {row} (5 + {classes} classes)",
                    o.len()
                ));
            }
            for r in o.chunks_exact(row) {
                for class in 0..classes {
                    let score = r[4] * r[5 + class];
                    if wanted(class, score) {
                        found.push((class, score, corners(r[0], r[1], r[2], r[3])));
                    }
                }
            }
        }
    }
    Ok(found)
}

/// Expected value of each side's distribution (softmax over the bins), in
/// strides: left, top, right, bottom.
fn dfl(dist: &[f32]) -> [f32; 4] {
    let mut sides = [0.0f32; 4];
    for (side, bins) in dist.chunks_exact(BINS).enumerate().take(4) {
        let max = bins.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let (mut sum, mut weighted) = (0.0f32, 0.0f32);
        for (i, &b) in bins.iter().enumerate() {
            let e = (b - max).exp();
            sum += e;
            weighted += e * i as f32;
        }
        sides[side] = weighted / sum;
    }
    sides
}

/// Greedy non-maximum suppression within each class; the result is ordered
/// by score, best first (ties by class, then position, so it is stable).
fn nms_per_class(mut c: Vec<(usize, f32, BBox)>, threshold: f32) -> Vec<(usize, f32, BBox)> {
    c.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then(a.0.cmp(&b.0))
            .then(a.2.x.total_cmp(&b.2.x))
            .then(a.2.y.total_cmp(&b.2.y))
    });
    let mut kept: Vec<(usize, f32, BBox)> = Vec::new();
    for cand in c {
        if !kept
            .iter()
            .any(|k| k.0 == cand.0 && k.2.iou(cand.2) > threshold)
        {
            kept.push(cand);
        }
    }
    kept
}

/// A box found in a crop (normalised to the crop) normalised to the frame.
fn uncrop(b: BBox, crop: Option<BBox>) -> BBox {
    match crop {
        None => b,
        Some(c) => BBox::new(c.x + b.x * c.w, c.y + b.y * c.h, b.w * c.w, b.h * c.h),
    }
}

/// The frame, or its `crop` (normalised), scaled to fit side × side
/// (aspect kept, centred, grey borders of `spec.pad`, bilinear), in the
/// model's channel order, normalised by its mean and std, NCHW.
pub fn preprocess(
    frame: &VideoFrame,
    crop: Option<BBox>,
    side: usize,
    spec: &DetectorSpec,
) -> (Vec<f32>, Letterbox) {
    let (mean, std) = (spec.mean, spec.std);
    // The input plane of each RGB channel.
    let plane_of = |c: usize| match spec.colour {
        Colour::Bgr => 2 - c,
        Colour::Rgb => c,
    };
    let (full_w, full_h) = (frame.width as usize, frame.height as usize);
    // The crop in whole pixels, at least one.
    let (ox, oy, fw, fh) = match crop {
        None => (0, 0, full_w, full_h),
        Some(c) => {
            let x0 = ((c.x * full_w as f32).floor() as usize).min(full_w.saturating_sub(1));
            let y0 = ((c.y * full_h as f32).floor() as usize).min(full_h.saturating_sub(1));
            let x1 = ((c.right() * full_w as f32).ceil() as usize).clamp(x0 + 1, full_w.max(1));
            let y1 = ((c.bottom() * full_h as f32).ceil() as usize).clamp(y0 + 1, full_h.max(1));
            (x0, y0, x1 - x0, y1 - y0)
        }
    };
    let lb = Letterbox::fit(fw, fh, side);
    let (scale, w, h, dx, dy) = (lb.scale, lb.width, lb.height, lb.dx, lb.dy);
    let plane = side * side;
    let mut input = vec![0.0f32; 3 * plane];
    // The border, already normalised.
    for c in 0..3 {
        let v = (spec.pad as f32 - mean[c]) / std[c];
        input[c * plane..(c + 1) * plane].fill(v);
    }
    let rgb: &[u8] = &frame.rgb;
    if fw == 0 || fh == 0 || rgb.len() < full_w * full_h * 3 {
        return (input, lb);
    }
    // Source coordinate and weight of each output column and row.
    let taps = |n: usize, src: usize| -> Vec<(usize, usize, f32)> {
        (0..n)
            .map(|i| {
                let s = ((i as f32 + 0.5) / scale - 0.5).clamp(0.0, (src - 1) as f32);
                let lo = s.floor() as usize;
                (lo, (lo + 1).min(src - 1), s - lo as f32)
            })
            .collect()
    };
    let (cols, rows) = (taps(w, fw), taps(h, fh));
    for (y, &(y0, y1, fy)) in rows.iter().enumerate() {
        let row = |y: usize| {
            let start = ((oy + y) * full_w + ox) * 3;
            &rgb[start..start + fw * 3]
        };
        let (r0, r1) = (row(y0), row(y1));
        let base = (y + dy) * side + dx;
        for (x, &(x0, x1, fx)) in cols.iter().enumerate() {
            for c in 0..3 {
                let top = r0[x0 * 3 + c] as f32 * (1.0 - fx) + r0[x1 * 3 + c] as f32 * fx;
                let bottom = r1[x0 * 3 + c] as f32 * (1.0 - fx) + r1[x1 * 3 + c] as f32 * fx;
                let v = top * (1.0 - fy) + bottom * fy;
                let b = plane_of(c);
                input[b * plane + base + x] = (v - mean[b]) / std[b];
            }
        }
    }
    (input, lb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yolo_layouts_give_centre_size_boxes_and_their_scores() {
        // Two anchors; anchor 1 is a class-2 object centred at (100, 50),
        // 40 × 20 pixels.
        let floor = |_| Some(0.5);
        let mut v8 = vec![0.0f32; 84 * 2];
        for (row, value) in [(0, 100.0), (1, 50.0), (2, 40.0), (3, 20.0), (4 + 2, 0.9)] {
            v8[row * 2 + 1] = value;
        }
        let found = candidates(Family::Yolov8, 80, &vec![v8.clone()], 416, floor).unwrap();
        assert_eq!(found, vec![(2, 0.9, [80.0, 40.0, 120.0, 60.0])]);
        // YOLOv5: rows of 85, the class's score times objectness.
        let mut v5 = vec![0.0f32; 85 * 2];
        v5[85..90].copy_from_slice(&[100.0, 50.0, 40.0, 20.0, 0.8]);
        v5[85 + 5 + 2] = 0.9;
        v5[85 + 5 + 3] = 0.5; // 0.4 with objectness: under the floor
        let found = candidates(Family::Yolov5, 80, &vec![v5], 416, floor).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].0, found[0].2), (2, [80.0, 40.0, 120.0, 60.0]));
        assert!((found[0].1 - 0.72).abs() < 1e-6);
        // A class not reported, and outputs of the wrong size.
        assert!(
            candidates(Family::Yolov8, 80, &vec![v8], 416, |_| None)
                .unwrap()
                .is_empty()
        );
        let e = candidates(Family::Yolov8, 80, &vec![vec![0.0; 83]], 416, floor).unwrap_err();
        assert!(e.contains("anchors × 84"), "{e}");
        let e = candidates(Family::Yolov5, 80, &vec![vec![0.0; 86]], 416, floor).unwrap_err();
        assert!(e.contains("anchors × 85"), "{e}");
        let e = candidates(Family::Nanodet, 80, &vec![vec![0.0; 10]; 6], 416, floor).unwrap_err();
        assert!(e.contains("stride 8"), "{e}");
    }

    #[test]
    fn dfl_is_the_expected_bin() {
        let mut dist = vec![-100.0f32; 44];
        dist[3] = 10.0; // left: bin 3
        dist[11 + 5] = 10.0; // top: bin 5
        dist[22] = 0.0; // right: half bin 0, half bin 1
        dist[23] = 0.0;
        dist[33 + 10] = 10.0; // bottom: bin 10
        let d = dfl(&dist);
        assert!((d[0] - 3.0).abs() < 1e-4, "{d:?}");
        assert!((d[1] - 5.0).abs() < 1e-4, "{d:?}");
        assert!((d[2] - 0.5).abs() < 1e-4, "{d:?}");
        assert!((d[3] - 10.0).abs() < 1e-4, "{d:?}");
    }

    #[test]
    fn nms_keeps_overlaps_of_different_classes() {
        let b = BBox::new(0.1, 0.1, 0.3, 0.3);
        let near = BBox::new(0.12, 0.1, 0.3, 0.3);
        let far = BBox::new(0.6, 0.6, 0.2, 0.2);
        let kept = nms_per_class(
            vec![(0, 0.9, b), (0, 0.8, near), (2, 0.7, near), (0, 0.6, far)],
            0.5,
        );
        assert_eq!(
            kept.iter().map(|k| (k.0, k.1)).collect::<Vec<_>>(),
            vec![(0, 0.9), (2, 0.7), (0, 0.6)]
        );
    }

    #[test]
    fn letterbox_centres_the_frame_and_maps_boxes_back() {
        let frame = VideoFrame {
            pts: Timestamp::ZERO,
            duration: 0,
            width: 640,
            height: 320,
            rgb: vec![200u8; 640 * 320 * 3].into(),
            grey: None,
        };
        // NanoDet's normalisation, from its manifest (BGR: plane 0 is blue).
        let spec = Decoding::of(&DetectorConfig::default()).unwrap().spec;
        assert_eq!((spec.colour, spec.pad), (Colour::Bgr, 114));
        let border = (114.0 - spec.mean[0]) / spec.std[0];
        let inside = (200.0 - spec.mean[0]) / spec.std[0];
        // Scale 0.65: 416×208, rows 104..312 hold the picture; scale 0.5:
        // 320×160, rows 80..240.
        for (side, top, bottom) in [(416, 104, 312), (320, 80, 240)] {
            let (input, lb) = preprocess(&frame, None, side, &spec);
            assert_eq!(input.len(), 3 * side * side);
            assert!((input[(top - 10) * side + 200] - border).abs() < 1e-5);
            assert!((input[top * side + 200] - inside).abs() < 1e-4);
            assert!((input[(bottom - 1) * side + 200] - inside).abs() < 1e-4);
            assert!((input[bottom * side + 200] - border).abs() < 1e-5);
            let b = lb.to_frame([0.0, top as f32, side as f32, bottom as f32]);
            for (got, want) in b.to_array().iter().zip([0.0, 0.0, 1.0, 1.0]) {
                assert!((got - want).abs() < 1e-4, "{side}: {b:?}");
            }
        }
    }

    #[test]
    fn filters_name_coco_classes_and_admit_something() {
        let with = |class: &str, filter: ShapeFilter| DetectorConfig {
            filters: [(class.to_string(), filter)].into_iter().collect(),
            ..DetectorConfig::default()
        };
        let ok = ShapeFilter {
            min_area: Some(0.01),
            ..Default::default()
        };
        assert!(check_classes(&with("person", ok)).is_ok());
        let e = check_classes(&with("people", ok)).unwrap_err().to_string();
        assert!(e.contains("`people` is not a class of the model"), "{e}");
        let empty = ShapeFilter {
            min_ratio: Some(2.0),
            max_ratio: Some(1.0),
            ..Default::default()
        };
        let e = check_classes(&DetectorConfig {
            model: "yolov99".into(),
            ..DetectorConfig::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("model `yolov99` is not one vigil knows (nanodet, nanodet_yolo)"),
            "{e}"
        );
        let e = check_classes(&with("car", empty)).unwrap_err().to_string();
        assert!(
            e.contains("filters.car: min_ratio 2 is over max_ratio 1"),
            "{e}"
        );
    }

    #[test]
    fn coco_has_eighty_classes_in_order() {
        let l = labels();
        assert_eq!(l.len(), 80);
        assert_eq!(
            (l[0], l[2], l[15], l[79]),
            ("person", "car", "cat", "toothbrush")
        );
    }
}
