//! Faces with BlazeFace (MediaPipe, short range): anchor decode and weighted
//! non-maximum suppression, boxes mapped back to the frame.

use crate::config::FacesConfig;
use crate::encode::batch::{BatchClient, BatchModel, ItemOutputs, Port};
use crate::encode::kind::{self, Kind, Part};
use crate::encode::letterbox::Letterbox;
use crate::encode::runtime::{self, Manifest};
use crate::encode::{Encoder, Features, sigmoid};
use crate::error::{Error, Result};
use crate::geometry::BBox;
use crate::media::{Chunk, VideoFrame};
use crate::time::{SECOND, Timestamp};

/// The model's manifest.
pub const MANIFEST: &str = include_str!("../../models/blazeface.toml");

/// Faces (BlazeFace).
pub const KIND: Kind = Kind {
    name: "faces",
    manifests: &[MANIFEST],
    manifest: |_| Some(MANIFEST),
    section: None,
    on: |c| c.faces.is_some(),
    off: |c| c.faces = None,
    check: |c| c.faces.as_ref().map_or(Ok(()), |f| model(f, 1).map(drop)),
    start: |c, threads, metrics| {
        kind::batcher(c.faces.as_ref(), threads, metrics, model, |f| f.batch)
    },
    build: |c, w, source| {
        Ok(match (&c.faces, kind::batch_worker(w)) {
            (Some(f), Some(b)) => Some(Part::Encoder(Box::new(Faces::new(
                f.clone(),
                b.client(),
                source.fps,
            )))),
            _ => None,
        })
    },
};
/// The model's input side, in pixels.
const SIDE: usize = 128;
/// Anchor grids: cells per row and anchors per cell (16×16×2 + 8×8×6 = 896).
const GRIDS: [(usize, usize); 2] = [(16, 2), (8, 6)];

/// One face: `[x, y, w, h]` normalised to the frame, and its score.
#[derive(Clone, Debug, PartialEq)]
pub struct Face {
    pub bbox: BBox,
    pub score: f32,
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

/// The face encoder of one stream.
pub struct Faces {
    client: BatchClient,
    config: FacesConfig,
    interval: u64,
}

impl Faces {
    pub fn new(config: FacesConfig, client: BatchClient, fps: u32) -> Faces {
        Faces {
            client,
            config,
            interval: SECOND / fps.max(1) as u64,
        }
    }

    fn decode(
        &self,
        frame: &VideoFrame,
        outputs: &ItemOutputs,
        letterbox: &Letterbox,
    ) -> Result<FrameFaces> {
        let scores = [&outputs[0], &outputs[1]];
        let boxes = [&outputs[2], &outputs[3]];
        let mut candidates = Vec::new();
        for (g, &(cells, per_cell)) in GRIDS.iter().enumerate() {
            if scores[g].len() < cells * cells * per_cell
                || boxes[g].len() < cells * cells * per_cell * 16
            {
                return Err(Error::Model {
                    model: "blazeface".into(),
                    message: "outputs are not the [1,512|384,1] scores and [1,512|384,16] boxes this encoder decodes"
                        .into(),
                });
            }
            for cy in 0..cells {
                for cx in 0..cells {
                    for a in 0..per_cell {
                        let i = (cy * cells + cx) * per_cell + a;
                        let score = sigmoid(scores[g][i]);
                        if score < self.config.threshold {
                            continue;
                        }
                        let b = &boxes[g][i * 16..i * 16 + 4];
                        let (ax, ay) = (
                            (cx as f32 + 0.5) / cells as f32,
                            (cy as f32 + 0.5) / cells as f32,
                        );
                        let (x, y) = (ax + b[0] / SIDE as f32, ay + b[1] / SIDE as f32);
                        let (w, h) = (b[2] / SIDE as f32, b[3] / SIDE as f32);
                        candidates.push(Face {
                            bbox: letterbox.to_frame(
                                [x - w / 2.0, y - h / 2.0, x + w / 2.0, y + h / 2.0]
                                    .map(|v| v * SIDE as f32),
                            ),
                            score,
                        });
                    }
                }
            }
        }
        Ok(FrameFaces {
            pts: frame.pts,
            until: frame.pts.saturating_add(self.interval),
            faces: weighted_nms(candidates, self.config.iou),
        })
    }
}

impl Encoder for Faces {
    fn name(&self) -> &'static str {
        "faces"
    }

    fn encode(&mut self, chunks: &[&Chunk]) -> Result<Vec<Features>> {
        let mut out = Vec::with_capacity(chunks.len());
        for c in chunks {
            let (inputs, boxes): (Vec<Vec<f32>>, Vec<Letterbox>) =
                c.frames.iter().map(letterbox).unzip();
            let outputs = self.client.infer(inputs)?;
            let faces = c
                .frames
                .iter()
                .zip(&outputs)
                .zip(&boxes)
                .map(|((f, o), lb)| self.decode(f, o, lb))
                .collect::<Result<Vec<_>>>()?;
            out.push(Features::Faces(faces));
        }
        Ok(out)
    }

    fn model_cpu_ns(&self) -> u64 {
        self.client.cpu_ns()
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
        for f in &group {
            bbox.x += f.bbox.x * f.score / total;
            bbox.y += f.bbox.y * f.score / total;
            bbox.w += f.bbox.w * f.score / total;
            bbox.h += f.bbox.h * f.score / total;
        }
        out.push(Face {
            bbox,
            score: best.score,
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
        };
        let real = Face {
            bbox: BBox {
                x: 0.1,
                y: 0.1,
                w: 0.2,
                h: 0.2,
            },
            score: 0.8,
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
        };
        let out = weighted_nms(vec![f(0.10, 0.9), f(0.12, 0.8), f(0.6, 0.7)], 0.3);
        assert_eq!(out.len(), 2);
        assert!((out[0].bbox.x - (0.10 * 0.9 + 0.12 * 0.8) / 1.7).abs() < 1e-6);
        assert_eq!(out[0].score, 0.9);
        assert_eq!(out[1].bbox.x, 0.6);
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
