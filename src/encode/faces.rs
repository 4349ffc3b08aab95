//! Faces with BlazeFace (MediaPipe, short range): anchor decode and weighted
//! non-maximum suppression, boxes and key points mapped back to the frame;
//! with `[encoders.faces.identity]`, who each face is ([`face_id`]).

use std::sync::{Arc, Mutex};

use crate::config::{FacesConfig, IdentityConfig};
use crate::encode::batch::{BatchClient, BatchModel, Batcher, ItemOutputs, Port};
use crate::encode::face_id::{self, Affine, Identities, Who};
use crate::encode::kind::{Kind, Part, Worker};
use crate::encode::letterbox::Letterbox;
use crate::encode::runtime::{self, Manifest};
use crate::encode::{Encoder, Features, sigmoid};
use crate::error::{Error, Result};
use crate::geometry::BBox;
use crate::media::{Chunk, VideoFrame};
use crate::metrics::Metrics;
use crate::time::{SECOND, Timestamp};

/// The model's manifest.
pub const MANIFEST: &str = include_str!("../../models/blazeface.toml");

/// Faces (BlazeFace), and who they are (MobileFaceNet) when asked.
pub const KIND: Kind = Kind {
    name: "faces",
    manifests: &[MANIFEST, face_id::MANIFEST],
    manifest: |c| match &c.faces {
        Some(f) if f.identity.is_some() => vec![MANIFEST, face_id::MANIFEST],
        _ => vec![MANIFEST],
    },
    section: None,
    on: |c| c.faces.is_some(),
    off: |c| c.faces = None,
    check: |c| match &c.faces {
        Some(f) => {
            model(f, 1)?;
            f.identity
                .as_ref()
                .map_or(Ok(()), |i| face_id::model(i, 1).map(drop))
        }
        None => Ok(()),
    },
    start: |c, threads, metrics| match &c.faces {
        Some(f) => Ok(Some(Worker::Faces(FacesWorker::start(
            f, threads, metrics,
        )?))),
        None => Ok(None),
    },
    build: |c, w, source| {
        Ok(match (&c.faces, w) {
            (Some(f), Some(Worker::Faces(w))) => Some(Part::Encoder(Box::new(Faces::new(
                f.clone(),
                w,
                &source.name,
                source.fps,
            )))),
            _ => None,
        })
    },
};

/// The inference workers every stream's face encoder shares: detection,
/// and with identity, embedding and the gallery.
pub struct FacesWorker {
    detect: Batcher,
    identity: Option<(Batcher, IdentityConfig)>,
    /// The gallery faces are matched against (none: embeddings only).
    gallery: Option<Arc<Mutex<Identities>>>,
}

impl FacesWorker {
    /// Loads the models and opens the gallery (its path resolved against
    /// the output folder already).
    pub fn start(config: &FacesConfig, threads: usize, metrics: &Arc<Metrics>) -> Result<Self> {
        let mut w = FacesWorker::models(config, threads, metrics)?;
        w.gallery = config.identity.as_ref().map(Identities::open).transpose()?;
        Ok(w)
    }

    /// Loads the models only: faces are embedded, not matched.
    fn models(config: &FacesConfig, threads: usize, metrics: &Arc<Metrics>) -> Result<Self> {
        let detect = Batcher::spawn(model(config, threads)?, config.batch, metrics.clone())?;
        let identity = match &config.identity {
            Some(i) => Some((
                Batcher::spawn(face_id::model(i, threads)?, i.batch, metrics.clone())?,
                i.clone(),
            )),
            None => None,
        };
        Ok(FacesWorker {
            detect,
            identity,
            gallery: None,
        })
    }
}

/// The model's input side, in pixels.
const SIDE: usize = 128;
/// Anchor grids: cells per row and anchors per cell (16×16×2 + 8×8×6 = 896).
const GRIDS: [(usize, usize); 2] = [(16, 2), (8, 6)];

/// BlazeFace's key points: the eyes (the subject's right, then left), the
/// nose tip, the mouth, the ears (right, left).
pub const POINTS: usize = 6;

/// One face: `[x, y, w, h]` normalised to the frame, its score, its key
/// points (normalised) and, with identity on, who it is.
#[derive(Clone, Debug, PartialEq)]
pub struct Face {
    pub bbox: BBox,
    pub score: f32,
    pub points: [[f32; 2]; POINTS],
    /// None: identity is off, or the face was too small or unclear.
    pub who: Option<Who>,
}

impl Face {
    /// The enrolled name, if it is someone enrolled.
    pub fn name(&self) -> Option<&str> {
        self.who.as_ref().and_then(|w| w.name.as_deref())
    }
}

/// A face as the model's input saw it: corners and key points in input
/// pixels.
#[derive(Clone, Debug)]
struct Raw {
    corners: [f32; 4],
    points: [[f32; 2]; POINTS],
    score: f32,
}

/// The faces found in one frame.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameFaces {
    pub pts: Timestamp,
    /// Until the next analysed frame is due.
    pub until: Timestamp,
    pub faces: Vec<Face>,
}

/// The model's outputs, in the order the batcher returns them: scores of
/// the 16×16 and 8×8 grids, then their boxes.
const OUTPUTS: [&str; 4] = ["Identity:0", "Identity_1:0", "Identity_2:0", "Identity_3:0"];

/// The model for the inference worker.
pub fn model(config: &FacesConfig, threads: usize) -> Result<BatchModel> {
    let (session, pool) =
        runtime::pooled_session(&Manifest::builtin(MANIFEST), threads, config.provider)?;
    Ok(BatchModel {
        name: "blazeface",
        session,
        pool,
        inputs: vec![Port::first("input:0", vec![SIDE, SIDE, 3])],
        scalars: Vec::new(),
        outputs: OUTPUTS
            .iter()
            .map(|o| Port::first(*o, Vec::new()))
            .collect(),
    })
}

/// How much wider than the face the square of the second, closer look
/// is (BlazeFace's short-range model sees faces that fill about half its
/// input).
const CLOSER: f32 = 2.0;

/// The face encoder of one stream.
pub struct Faces {
    client: BatchClient,
    config: FacesConfig,
    interval: u64,
    identity: Option<Identify>,
    /// Faces identified lately, followed by overlap.
    known: Vec<Known>,
}

/// How long a face followed by overlap keeps who it was before it is
/// embedded and matched again.
const REIDENTIFY: u64 = 2 * SECOND;
/// Overlap with a face identified lately at which a face is taken to be
/// the same one.
const SAME_FACE_IOU: f32 = 0.5;

/// A face identified lately in this stream.
struct Known {
    bbox: BBox,
    who: Who,
    /// When it was last identified.
    at: Timestamp,
}

/// Whether a face at `bbox` overlaps one identified (or being identified)
/// less than [`REIDENTIFY`] before `pts`.
fn seen_lately(taken: &[(BBox, Timestamp)], bbox: BBox, pts: Timestamp) -> bool {
    taken
        .iter()
        .any(|(b, at)| pts.0.saturating_sub(at.0) < REIDENTIFY && b.iou(bbox) >= SAME_FACE_IOU)
}

/// A face just identified: it replaces what overlapped it.
fn remember(known: &mut Vec<Known>, bbox: BBox, who: &Who, at: Timestamp) {
    known.retain(|k| k.bbox.iou(bbox) < SAME_FACE_IOU);
    known.push(Known {
        bbox,
        who: who.clone(),
        at,
    });
}

/// Who the face at `bbox` was, if it overlaps one identified lately; that
/// one moves with it.
fn follow(known: &mut [Known], bbox: BBox) -> Option<Who> {
    let k = known
        .iter_mut()
        .filter(|k| k.bbox.iou(bbox) >= SAME_FACE_IOU)
        .max_by(|a, b| a.bbox.iou(bbox).total_cmp(&b.bbox.iou(bbox)))?;
    k.bbox = bbox;
    Some(k.who.clone())
}

/// One frame's faces and, face by face, its embedding if one was made.
type Looked = (FrameFaces, Vec<Option<Vec<f32>>>);

/// What identifying needs.
struct Identify {
    embed: BatchClient,
    /// None: embeddings only (enrolling).
    shared: Option<Arc<Mutex<Identities>>>,
    min_size: f32,
    stream: String,
}

impl Faces {
    pub fn new(config: FacesConfig, worker: &FacesWorker, stream: &str, fps: u32) -> Faces {
        Faces {
            client: worker.detect.client(),
            identity: worker.identity.as_ref().map(|(b, c)| Identify {
                embed: b.client(),
                shared: worker.gallery.clone(),
                min_size: c.min_size as f32,
                stream: stream.to_string(),
            }),
            config,
            interval: SECOND / fps.max(1) as u64,
            known: Vec::new(),
        }
    }

    /// The faces of `frames`, each with its embedding (unit length) when
    /// identity is on and the face is large and clear enough.
    /// `recent`: faces identified lately (box, when): one that is still
    /// there is not embedded again before [`REIDENTIFY`] has passed.
    fn look(&self, frames: &[VideoFrame], recent: &[(BBox, Timestamp)]) -> Result<Vec<Looked>> {
        let (inputs, boxes): (Vec<Vec<f32>>, Vec<Letterbox>) = frames.iter().map(letterbox).unzip();
        let outputs = self.client.infer(inputs)?;
        let mut found = Vec::with_capacity(frames.len());
        for ((f, o), lb) in frames.iter().zip(&outputs).zip(&boxes) {
            let faces = candidates(o, self.config.threshold)?
                .into_iter()
                .map(|r| Face {
                    bbox: lb.to_frame(r.corners),
                    score: r.score,
                    points: r.points.map(|p| lb.point(p)),
                    who: None,
                })
                .collect();
            let faces = FrameFaces {
                pts: f.pts,
                until: f.pts.saturating_add(self.interval),
                faces: weighted_nms(faces, self.config.iou),
            };
            let n = faces.faces.len();
            found.push((faces, vec![None; n]));
        }
        if let Some(id) = &self.identity {
            self.embed(id, frames, &mut found, recent)?;
        }
        Ok(found)
    }

    /// Looks again, closer, at each face large enough, and embeds the ones
    /// the closer look confirms, aligned by its key points.
    fn embed(
        &self,
        id: &Identify,
        frames: &[VideoFrame],
        found: &mut [Looked],
        recent: &[(BBox, Timestamp)],
    ) -> Result<()> {
        let mut crops = Vec::new();
        let mut at = Vec::new();
        // Faces identified lately, and the ones this chunk embeds.
        let mut taken: Vec<(BBox, Timestamp)> = recent.to_vec();
        for (i, (frame, (faces, _))) in frames.iter().zip(found.iter()).enumerate() {
            let (w, h) = (frame.width as f32, frame.height as f32);
            for (j, f) in faces.faces.iter().enumerate() {
                let (bw, bh) = (f.bbox.w * w, f.bbox.h * h);
                if bw.min(bh) < id.min_size || seen_lately(&taken, f.bbox, faces.pts) {
                    continue;
                }
                taken.push((f.bbox, faces.pts));
                let side = bw.max(bh) * CLOSER;
                let (cx, cy) = (
                    (f.bbox.x + f.bbox.w / 2.0) * w,
                    (f.bbox.y + f.bbox.h / 2.0) * h,
                );
                let map = Affine::square([cx - side / 2.0, cy - side / 2.0], side, SIDE);
                crops.push(face_id::warp(frame, SIDE, &map, 128, |v| v / 127.5 - 1.0));
                at.push((i, j, map));
            }
        }
        if crops.is_empty() {
            return Ok(());
        }
        let closer = self.client.infer(crops)?;
        let mut aligned = Vec::new();
        let mut aligned_at = Vec::new();
        for (o, (i, j, map)) in closer.iter().zip(at) {
            // The closer look's best face is this one; none: not clear
            // enough to say who it is.
            let Some(best) = candidates(o, self.config.threshold)?
                .into_iter()
                .max_by(|a, b| a.score.total_cmp(&b.score))
            else {
                continue;
            };
            let frame = &frames[i];
            let px = best.points.map(|p| map.apply(p));
            let (w, h) = (frame.width.max(1) as f32, frame.height.max(1) as f32);
            found[i].0.faces[j].points = px.map(|p| [p[0] / w, p[1] / h]);
            if let Some(a) = face_id::aligned(frame, &[px[0], px[1], px[2], px[3]]) {
                aligned.push(a);
                aligned_at.push((i, j));
            }
        }
        if aligned.is_empty() {
            return Ok(());
        }
        let embeddings = id.embed.infer(aligned)?;
        for (o, (i, j)) in embeddings.iter().zip(aligned_at) {
            let e = o
                .first()
                .map(|e| face_id::embedding(e))
                .ok_or_else(|| Error::Model {
                    model: face_id::MODEL.into(),
                    message: "no embedding came back".into(),
                })??;
            found[i].1[j] = Some(e);
        }
        Ok(())
    }

    /// The faces of one picture (`vigil faces enroll`), each with its
    /// embedding when it could be made.
    pub fn embed_picture(&self, frame: &VideoFrame) -> Result<Vec<(Face, Option<Vec<f32>>)>> {
        let mut looked = self.look(std::slice::from_ref(frame), &[])?;
        let Some((faces, embeddings)) = looked.pop() else {
            return Ok(Vec::new());
        };
        Ok(faces.faces.into_iter().zip(embeddings).collect())
    }
}

impl Encoder for Faces {
    fn name(&self) -> &'static str {
        "faces"
    }

    fn encode(&mut self, chunks: &[&Chunk]) -> Result<Vec<Features>> {
        let mut out = Vec::with_capacity(chunks.len());
        for c in chunks {
            let recent: Vec<(BBox, Timestamp)> =
                self.known.iter().map(|k| (k.bbox, k.at)).collect();
            let mut frames = Vec::with_capacity(c.frames.len());
            for (mut faces, embeddings) in self.look(&c.frames, &recent)? {
                let matching = self
                    .identity
                    .as_ref()
                    .and_then(|i| Some((i, i.shared.as_ref()?)));
                if let Some((id, shared)) = matching {
                    let pts = faces.pts;
                    for (f, e) in faces.faces.iter_mut().zip(embeddings) {
                        f.who = match e {
                            Some(e) => {
                                let source = format!("{}@{}", id.stream, pts);
                                let who = face_id::identify(shared, &e, &source, true);
                                remember(&mut self.known, f.bbox, &who, pts);
                                Some(who)
                            }
                            // Seen lately: who it was, followed by overlap.
                            None => follow(&mut self.known, f.bbox),
                        };
                    }
                    self.known
                        .retain(|k| pts.0.saturating_sub(k.at.0) < REIDENTIFY);
                }
                frames.push(faces);
            }
            out.push(Features::Faces(frames));
        }
        Ok(out)
    }

    fn model_cpu_ns(&self) -> u64 {
        self.client.cpu_ns() + self.identity.as_ref().map_or(0, |i| i.embed.cpu_ns())
    }
}

/// One picture enrolled by [`enroll`].
#[derive(Clone, Debug)]
pub struct Enrolled {
    pub image: std::path::PathBuf,
    /// Its gallery row.
    pub id: i64,
    /// The face taken (the largest), and how many the picture held.
    pub bbox: BBox,
    pub score: f32,
    pub faces: usize,
}

/// Enrolls the largest face of each of `images` as `name` into the gallery
/// of `config.identity` (its path resolved): all of them, or none if one
/// has no face clear enough.
pub fn enroll(
    config: &FacesConfig,
    name: &str,
    images: &[std::path::PathBuf],
) -> Result<Vec<Enrolled>> {
    let Some(identity) = &config.identity else {
        return Err(Error::Enroll(
            "face identity is off: [encoders.faces.identity] is needed".into(),
        ));
    };
    check_name(name)?;
    let worker = FacesWorker::models(config, 1, &Metrics::new())?;
    let faces = Faces::new(config.clone(), &worker, "enroll", 1);
    let mut taken = Vec::new();
    for image in images {
        let frame = crate::source::still::decode(image)?;
        let found = faces.embed_picture(&frame)?;
        let n = found.len();
        let best = found
            .into_iter()
            .filter_map(|(f, e)| e.map(|e| (f, e)))
            .max_by(|a, b| a.0.bbox.area().total_cmp(&b.0.bbox.area()));
        let Some((face, embedding)) = best else {
            return Err(Error::Enroll(format!(
                "{}: {} face(s) found, none clear enough to enroll: use a picture of the face from the front, at least {} pixels across",
                image.display(),
                n,
                identity.min_size
            )));
        };
        taken.push((image.clone(), face, embedding, n));
    }
    let mut gallery = crate::gallery::Gallery::open(&identity.gallery, face_id::MODEL)?;
    let mut out = Vec::new();
    for (image, face, embedding, n) in taken {
        let id = gallery.add(Some(name), &embedding, &image.to_string_lossy())?;
        out.push(Enrolled {
            image,
            id,
            bbox: face.bbox,
            score: face.score,
            faces: n,
        });
    }
    Ok(out)
}

/// A person's name as events carry it: 1 to 64 letters, digits, spaces and
/// `-_.'`, not `unknown`.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.trim().is_empty()
        && name.chars().count() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || " -_.'".contains(c))
        && !name.eq_ignore_ascii_case(crate::encode::face_id::UNKNOWN);
    if ok {
        Ok(())
    } else {
        Err(Error::Enroll(format!(
            "`{name}` cannot name a person: use 1 to 64 letters, digits, spaces and -_.' (and not `unknown`)"
        )))
    }
}

/// The candidates of one input whose score reaches `threshold`.
fn candidates(outputs: &ItemOutputs, threshold: f32) -> Result<Vec<Raw>> {
    if outputs.len() < 4 {
        return Err(shape_error());
    }
    let scores = [&outputs[0], &outputs[1]];
    let boxes = [&outputs[2], &outputs[3]];
    let mut out = Vec::new();
    for (g, &(cells, per_cell)) in GRIDS.iter().enumerate() {
        if scores[g].len() < cells * cells * per_cell
            || boxes[g].len() < cells * cells * per_cell * 16
        {
            return Err(shape_error());
        }
        for cy in 0..cells {
            for cx in 0..cells {
                for a in 0..per_cell {
                    let i = (cy * cells + cx) * per_cell + a;
                    let score = sigmoid(scores[g][i]);
                    if score < threshold {
                        continue;
                    }
                    let b = &boxes[g][i * 16..i * 16 + 16];
                    let (ax, ay) = (
                        (cx as f32 + 0.5) / cells as f32 * SIDE as f32,
                        (cy as f32 + 0.5) / cells as f32 * SIDE as f32,
                    );
                    let (x, y) = (ax + b[0], ay + b[1]);
                    let (w, h) = (b[2], b[3]);
                    let mut points = [[0.0; 2]; POINTS];
                    for (k, p) in points.iter_mut().enumerate() {
                        *p = [ax + b[4 + 2 * k], ay + b[5 + 2 * k]];
                    }
                    out.push(Raw {
                        corners: [x - w / 2.0, y - h / 2.0, x + w / 2.0, y + h / 2.0],
                        points,
                        score,
                    });
                }
            }
        }
    }
    Ok(out)
}

fn shape_error() -> Error {
    Error::Model {
        model: "blazeface".into(),
        message:
            "outputs are not the [1,512|384,1] scores and [1,512|384,16] boxes this encoder decodes"
                .into(),
    }
}

/// The frame scaled to fit 128×128 (aspect kept, centred, grey borders),
/// RGB in [-1, 1], NHWC.
fn letterbox(frame: &VideoFrame) -> (Vec<f32>, Letterbox) {
    let (fw, fh) = (frame.width as usize, frame.height as usize);
    let lb = Letterbox::fit(fw, fh, SIDE);
    let (scale, w, h, dx, dy) = (lb.scale, lb.width, lb.height, lb.dx, lb.dy);
    let mut input = vec![0.0f32; SIDE * SIDE * 3];
    let rgb: &[u8] = &frame.rgb;
    if fw == 0 || fh == 0 || rgb.len() < fw * fh * 3 {
        return (input, lb);
    }
    for y in 0..h {
        let sy = ((y as f32 + 0.5) / scale) as usize;
        let sy = sy.min(fh.saturating_sub(1));
        for x in 0..w {
            let sx = (((x as f32 + 0.5) / scale) as usize).min(fw.saturating_sub(1));
            let src = (sy * fw + sx) * 3;
            let dst = ((y + dy) * SIDE + x + dx) * 3;
            for c in 0..3 {
                input[dst + c] = rgb[src + c] as f32 / 127.5 - 1.0;
            }
        }
    }
    (input, lb)
}

/// MediaPipe's weighted NMS: overlapping candidates are merged, weighted by
/// score, into the best one.
fn weighted_nms(mut candidates: Vec<Face>, threshold: f32) -> Vec<Face> {
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut out = Vec::new();
    while !candidates.is_empty() {
        // The best always heads its own group, even a box of no area (whose
        // IoU with itself is 0), so that every turn takes at least one.
        let best = candidates.remove(0);
        let (mut group, rest): (Vec<Face>, Vec<Face>) = candidates
            .into_iter()
            .partition(|c| best.bbox.iou(c.bbox) >= threshold);
        group.insert(0, best.clone());
        let total: f32 = group.iter().map(|f| f.score).sum();
        let mut bbox = BBox::default();
        let mut points = [[0.0f32; 2]; POINTS];
        for f in &group {
            let wt = f.score / total;
            bbox.x += f.bbox.x * wt;
            bbox.y += f.bbox.y * wt;
            bbox.w += f.bbox.w * wt;
            bbox.h += f.bbox.h * wt;
            for (p, q) in points.iter_mut().zip(&f.points) {
                p[0] += q[0] * wt;
                p[1] += q[1] * wt;
            }
        }
        out.push(Face {
            bbox,
            score: best.score,
            points,
            who: None,
        });
        candidates = rest;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_nms_ends_when_the_best_box_has_no_area() {
        let flat = Face {
            bbox: BBox {
                x: 0.5,
                y: 0.5,
                w: 0.0,
                h: 0.1,
            },
            score: 0.9,
            points: [[0.0; 2]; POINTS],
            who: None,
        };
        let real = Face {
            bbox: BBox {
                x: 0.1,
                y: 0.1,
                w: 0.2,
                h: 0.2,
            },
            score: 0.8,
            points: [[0.0; 2]; POINTS],
            who: None,
        };
        let out = weighted_nms(vec![real.clone(), flat.clone()], 0.3);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].score, flat.score);
        assert_eq!(out[1].score, real.score);
        assert!((out[1].bbox.w - real.bbox.w).abs() < 1e-6, "{out:?}");
    }

    #[test]
    fn weighted_nms_merges_overlaps_and_keeps_apart_ones() {
        let f = |x: f32, s: f32| Face {
            bbox: BBox::new(x, 0.1, 0.2, 0.2),
            score: s,
            points: [[x; 2]; POINTS],
            who: None,
        };
        let out = weighted_nms(vec![f(0.10, 0.9), f(0.12, 0.8), f(0.6, 0.7)], 0.3);
        assert_eq!(out.len(), 2);
        assert!((out[0].bbox.x - (0.10 * 0.9 + 0.12 * 0.8) / 1.7).abs() < 1e-6);
        assert_eq!(out[0].score, 0.9);
        assert_eq!(out[1].bbox.x, 0.6);
        // Key points are merged as the boxes are.
        assert!((out[0].points[0][0] - out[0].bbox.x).abs() < 1e-6);
    }

    #[test]
    fn a_face_identified_lately_is_followed_by_overlap_until_it_is_due_again() {
        let who = Who {
            id: Some(3),
            name: Some("ann".into()),
            distance: Some(0.3),
        };
        let mut known = Vec::new();
        let here = BBox::new(0.1, 0.1, 0.2, 0.2);
        remember(&mut known, here, &who, Timestamp(0));
        // It moved a little: the same face, and its box follows it.
        let moved = BBox::new(0.12, 0.1, 0.2, 0.2);
        assert_eq!(follow(&mut known, moved), Some(who.clone()));
        assert_eq!(known[0].bbox, moved);
        assert_eq!(follow(&mut known, BBox::new(0.6, 0.6, 0.2, 0.2)), None);
        let taken = [(moved, Timestamp(0))];
        assert!(seen_lately(&taken, moved, Timestamp(REIDENTIFY - 1)));
        assert!(!seen_lately(&taken, moved, Timestamp(REIDENTIFY)));
        // Identified again, it replaces what overlapped it.
        remember(&mut known, moved, &who, Timestamp(REIDENTIFY));
        assert_eq!(known.len(), 1);
    }

    #[test]
    fn letterbox_maps_boxes_back() {
        let frame = VideoFrame {
            pts: Timestamp::ZERO,
            duration: 0,
            width: 256,
            height: 128,
            rgb: vec![0u8; 256 * 128 * 3].into(),
            grey: None,
        };
        let (_, lb) = letterbox(&frame);
        // The frame fills the input's width and its middle half in height.
        let b = lb.to_frame([0.0, 32.0, 128.0, 96.0]);
        assert!(
            b.to_array()
                .iter()
                .zip([0.0, 0.0, 1.0, 1.0])
                .all(|(a, e)| (a - e).abs() < 1e-4),
            "{b:?}"
        );
    }
}
