//! Who a face is: each face BlazeFace found is looked at again, closer (a
//! second BlazeFace pass on a square around it, for key points that hold
//! at any distance), aligned by a similarity transform of its eyes, nose
//! and mouth onto ArcFace's 112×112 reference points, embedded by
//! MobileFaceNet (192-d, L2-normalised) and matched against the face
//! gallery ([`crate::gallery`]): the nearest enrolled face within
//! `max_distance` names it, else it is an unknown face, kept (once, the
//! same unknown face found again within `max_distance`) to be named later.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::IdentityConfig;
use crate::encode::batch::{BatchModel, Port};
use crate::encode::runtime::{self, Manifest};
use crate::error::{Error, Result};
use crate::gallery::{self, Entry, Gallery};
use crate::lock::Locked;
use crate::media::VideoFrame;

/// The embedding model's manifest.
pub const MANIFEST: &str = include_str!("../../models/mobilefacenet.toml");
/// Its name, which the gallery keeps beside each embedding.
pub const MODEL: &str = "mobilefacenet";
/// Its input side, in pixels.
pub const SIDE: usize = 112;
/// Its embedding's length.
pub const DIMS: usize = 192;
/// What a face no one enrolled is called, in events and rules.
pub const UNKNOWN: &str = "unknown";

/// ArcFace's 112×112 reference points: the eye on the picture's left (the
/// subject's right), the other eye, the nose tip, the middle of the mouth
/// (between its two corners).
const REFERENCE: [[f32; 2]; 4] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [56.1396, 92.2848],
];

/// The embedding model for the inference worker.
pub fn model(config: &IdentityConfig, threads: usize) -> Result<BatchModel> {
    let (session, pool) =
        runtime::pooled_session(&Manifest::builtin(MANIFEST), threads, config.provider)?;
    Ok(BatchModel {
        name: MODEL,
        session,
        pool,
        inputs: vec![Port::first("input", vec![SIDE, SIDE, 3])],
        scalars: Vec::new(),
        outputs: vec![Port::first("embeddings", vec![DIMS])],
    })
}

/// A 2-D affine map: `(x, y) → (a·x + b·y + tx, c·x + d·y + ty)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine {
    pub m: [f32; 4],
    pub t: [f32; 2],
}

impl Affine {
    pub fn apply(&self, p: [f32; 2]) -> [f32; 2] {
        [
            self.m[0] * p[0] + self.m[1] * p[1] + self.t[0],
            self.m[2] * p[0] + self.m[3] * p[1] + self.t[1],
        ]
    }

    /// An input of `input`×`input` pixels onto the square of `side` frame
    /// pixels whose corner is `origin`.
    pub fn square(origin: [f32; 2], side: f32, input: usize) -> Affine {
        let s = side / input as f32;
        Affine {
            m: [s, 0.0, 0.0, s],
            t: origin,
        }
    }
}

/// The similarity (rotation, uniform scale, shift) that carries `from`
/// nearest onto `to`, by least squares (Umeyama without reflection).
pub fn similarity(from: &[[f32; 2]], to: &[[f32; 2]]) -> Option<Affine> {
    let n = from.len().min(to.len());
    if n < 2 {
        return None;
    }
    let mean = |p: &[[f32; 2]]| {
        let s = p[..n]
            .iter()
            .fold([0.0, 0.0], |a, q| [a[0] + q[0], a[1] + q[1]]);
        [s[0] / n as f32, s[1] / n as f32]
    };
    let (ms, md) = (mean(from), mean(to));
    let (mut a, mut b, mut norm) = (0.0f32, 0.0f32, 0.0f32);
    for k in 0..n {
        let (sx, sy) = (from[k][0] - ms[0], from[k][1] - ms[1]);
        let (dx, dy) = (to[k][0] - md[0], to[k][1] - md[1]);
        a += sx * dx + sy * dy;
        b += sx * dy - sy * dx;
        norm += sx * sx + sy * sy;
    }
    if norm < 1e-6 {
        return None;
    }
    let (c, s) = (a / norm, b / norm);
    Some(Affine {
        m: [c, -s, s, c],
        t: [
            md[0] - (c * ms[0] - s * ms[1]),
            md[1] - (s * ms[0] + c * ms[1]),
        ],
    })
}

/// The inverse of a similarity or scale map; None if it has no inverse.
pub fn inverse(a: &Affine) -> Option<Affine> {
    let det = a.m[0] * a.m[3] - a.m[1] * a.m[2];
    if det.abs() < 1e-12 {
        return None;
    }
    let m = [a.m[3] / det, -a.m[1] / det, -a.m[2] / det, a.m[0] / det];
    Some(Affine {
        m,
        t: [
            -(m[0] * a.t[0] + m[1] * a.t[1]),
            -(m[2] * a.t[0] + m[3] * a.t[1]),
        ],
    })
}

/// A `side`×`side` RGB input whose pixel centres `to_frame` maps into the
/// frame (frame pixels), sampled bilinearly; outside the frame, `border`.
/// Each byte becomes `scale(byte)`; NHWC.
pub fn warp(
    frame: &VideoFrame,
    side: usize,
    to_frame: &Affine,
    border: u8,
    scale: impl Fn(f32) -> f32,
) -> Vec<f32> {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let rgb: &[u8] = &frame.rgb;
    let mut out = Vec::with_capacity(side * side * 3);
    let ok = w > 0 && h > 0 && rgb.len() >= w * h * 3;
    let px = |x: isize, y: isize, c: usize| -> f32 {
        if ok && x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h {
            rgb[(y as usize * w + x as usize) * 3 + c] as f32
        } else {
            border as f32
        }
    };
    for v in 0..side {
        for u in 0..side {
            let [x, y] = to_frame.apply([u as f32 + 0.5, v as f32 + 0.5]);
            let (x, y) = (x - 0.5, y - 0.5);
            let (x0, y0) = (x.floor(), y.floor());
            let (fx, fy) = (x - x0, y - y0);
            let (x0, y0) = (x0 as isize, y0 as isize);
            for c in 0..3 {
                let top = px(x0, y0, c) * (1.0 - fx) + px(x0 + 1, y0, c) * fx;
                let bottom = px(x0, y0 + 1, c) * (1.0 - fx) + px(x0 + 1, y0 + 1, c) * fx;
                out.push(scale(top * (1.0 - fy) + bottom * fy));
            }
        }
    }
    out
}

/// The face with key points `points` (frame pixels: eyes, nose, mouth, as
/// BlazeFace gives them) aligned to 112×112, as MobileFaceNet takes it:
/// RGB, (x − 127.5) / 128, NHWC. None if the points are degenerate.
pub fn aligned(frame: &VideoFrame, points: &[[f32; 2]; 4]) -> Option<Vec<f32>> {
    let to_input = similarity(points, &REFERENCE)?;
    let to_frame = inverse(&to_input)?;
    Some(warp(frame, SIDE, &to_frame, 128, |v| (v - 127.5) / 128.0))
}

/// Who a face is.
#[derive(Clone, Debug, PartialEq)]
pub struct Who {
    /// Its gallery row: the enrolled face it matched, or the unknown face
    /// kept for it (none: unknown and not kept).
    pub id: Option<i64>,
    /// The enrolled name; None: unknown.
    pub name: Option<Arc<str>>,
    /// Distance to the nearest enrolled face (none enrolled: None).
    pub distance: Option<f32>,
}

/// The gallery as the running pipeline sees it, shared by every stream's
/// face encoder. Its lock is held to match and to add a row, never while
/// a model runs.
pub struct Identities {
    gallery: Gallery,
    entries: Vec<Entry>,
    version: i64,
    checked: Instant,
    max_distance: f32,
    max_unknown: usize,
}

/// How often the gallery file is asked whether another process (`vigil
/// faces enroll`) wrote to it.
const RELOAD_EVERY: Duration = Duration::from_secs(1);

impl Identities {
    /// Opens the gallery of `config` (its path already resolved).
    pub fn open(config: &IdentityConfig) -> Result<Arc<Mutex<Identities>>> {
        let gallery = Gallery::open(&config.gallery, MODEL)?;
        let entries = gallery.entries()?;
        let version = gallery.version()?;
        tracing::info!(
            gallery = %config.gallery.display(),
            enrolled = entries.iter().filter(|e| e.name.is_some()).count(),
            unknown = entries.iter().filter(|e| e.name.is_none()).count(),
            "face gallery open"
        );
        Ok(Arc::new(Mutex::new(Identities {
            gallery,
            entries,
            version,
            checked: Instant::now(),
            max_distance: config.max_distance,
            max_unknown: config.max_unknown,
        })))
    }

    fn reload_if_changed(&mut self) -> Result<()> {
        if self.checked.elapsed() < RELOAD_EVERY {
            return Ok(());
        }
        self.checked = Instant::now();
        let v = self.gallery.version()?;
        if v != self.version {
            self.entries = self.gallery.entries()?;
            self.version = v;
        }
        Ok(())
    }

    /// Who `embedding` (unit length) is; an unknown face is kept, as seen
    /// at `source`, when `keep` and no kept one is within reach.
    pub fn identify(&mut self, embedding: &[f32], source: &str, keep: bool) -> Result<Who> {
        self.reload_if_changed()?;
        let known = gallery::nearest(&self.entries, embedding, true);
        let distance = known.as_ref().map(|k| k.distance);
        if let Some(k) = known.filter(|k| k.distance <= self.max_distance) {
            return Ok(Who {
                id: Some(k.id),
                name: k.name.map(Arc::from),
                distance,
            });
        }
        let kept = gallery::nearest(&self.entries, embedding, false)
            .filter(|u| u.distance <= self.max_distance)
            .map(|u| u.id);
        let id = match kept {
            Some(id) => Some(id),
            None if keep && self.max_unknown > 0 => {
                let id = self.gallery.add(None, embedding, source)?;
                self.entries.push(Entry {
                    id,
                    name: None,
                    embedding: embedding.to_vec(),
                    source: source.to_string(),
                    added_utc: String::new(),
                });
                let unknown = self.entries.iter().filter(|e| e.name.is_none()).count();
                if unknown > self.max_unknown && self.gallery.trim_unknown(self.max_unknown)? > 0 {
                    self.entries = self.gallery.entries()?;
                }
                Some(id)
            }
            None => None,
        };
        Ok(Who {
            id,
            name: None,
            distance,
        })
    }
}

/// Matches under the shared lock; a gallery that cannot be read or written
/// is said, and the face stays unknown.
pub fn identify(shared: &Mutex<Identities>, embedding: &[f32], source: &str, keep: bool) -> Who {
    match shared.locked().identify(embedding, source, keep) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("{e}: the face stays unknown");
            Who {
                id: None,
                name: None,
                distance: None,
            }
        }
    }
}

/// An embedding as the model gave it, checked and normalised.
pub fn embedding(output: &[f32]) -> Result<Vec<f32>> {
    if output.len() != DIMS {
        return Err(Error::Model {
            model: MODEL.into(),
            message: format!("an embedding of {} values, expected {DIMS}", output.len()),
        });
    }
    Ok(gallery::normalised(output.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similarity_recovers_a_rotation_scale_and_shift() {
        let (angle, scale, t) = (0.3f32, 1.7f32, [12.0f32, -4.0f32]);
        let (c, s) = (scale * angle.cos(), scale * angle.sin());
        let truth = Affine {
            m: [c, -s, s, c],
            t,
        };
        let from = [[10.0, 20.0], [40.0, 22.0], [25.0, 40.0], [24.0, 60.0]];
        let to: Vec<[f32; 2]> = from.iter().map(|p| truth.apply(*p)).collect();
        let got = similarity(&from, &to).unwrap();
        for (a, b) in got.m.iter().zip(truth.m) {
            assert!((a - b).abs() < 1e-4, "{got:?}");
        }
        let back = inverse(&got).unwrap();
        let p = back.apply(got.apply([3.0, 5.0]));
        assert!(
            (p[0] - 3.0).abs() < 1e-3 && (p[1] - 5.0).abs() < 1e-3,
            "{p:?}"
        );
        assert!(similarity(&[[1.0, 1.0], [1.0, 1.0]], &REFERENCE).is_none());
    }

    #[test]
    fn warp_samples_the_frame_where_the_map_says_and_borders_outside() {
        // A 4×2 frame whose red channel is 10·x + y.
        let mut rgb = Vec::new();
        for y in 0..2u8 {
            for x in 0..4u8 {
                rgb.extend([10 * x + y, 0, 0]);
            }
        }
        let frame = VideoFrame {
            pts: crate::time::Timestamp::ZERO,
            duration: 0,
            width: 4,
            height: 2,
            rgb: rgb.into(),
            grey: None,
        };
        // Identity: pixel centres land on pixel centres.
        let out = warp(&frame, 2, &Affine::square([0.0, 0.0], 2.0, 2), 7, |v| v);
        assert_eq!(out[0], 0.0);
        assert_eq!(out[3], 10.0);
        assert_eq!(out[6], 1.0);
        // Shifted by 3 pixels: the second column falls outside.
        let out = warp(&frame, 2, &Affine::square([3.0, 0.0], 2.0, 2), 7, |v| v);
        assert_eq!(out[0], 30.0);
        assert_eq!(out[3], 7.0);
    }
}
