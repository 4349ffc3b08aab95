//! The live view of a stream: its latest analysed frame with the tracks,
//! zones and lines of that moment, made for whoever watches it
//! ([`crate::stream::LiveView`]).

use crate::encode::{Encoded, Features};
use crate::fuse::pictures::FACE_NEAR;
use crate::fuse::scene::Scene;
use crate::geometry::BBox;
use crate::stream::{LiveShape, LiveTrack, LiveView};

/// The view of the last frame of `enc` that kept its pixels (`None`: none
/// did). With `blur_faces`, the faces found within [`FACE_NEAR`] of the
/// frame are to be blurred before it is shown.
pub fn view(
    scene: &Scene,
    enc: &Encoded,
    utc_origin: i64,
    blur_faces: bool,
    seq: u64,
) -> Option<LiveView> {
    let frame = enc.chunk.frames.iter().rev().find(|f| !f.rgb.is_empty())?;
    let blur: Vec<BBox> = if blur_faces {
        enc.features
            .iter()
            .filter_map(|f| match f {
                Features::Faces(frames) => Some(frames),
                _ => None,
            })
            .flatten()
            .filter(|f| f.pts.0.abs_diff(frame.pts.0) <= FACE_NEAR)
            .flat_map(|f| f.faces.iter().map(|face| face.bbox))
            .collect()
    } else {
        Vec::new()
    };
    let ns = i64::try_from(frame.pts.0).unwrap_or(i64::MAX);
    Some(LiveView {
        seq,
        frame: frame.clone(),
        utc: utc_origin.saturating_add(ns),
        tracks: scene
            .tracks()
            .map(|t| LiveTrack {
                id: t.id,
                label: t.label,
                score: t.score,
                bbox: t.bbox,
                matched: t.matched,
            })
            .collect(),
        zones: scene
            .zones
            .iter()
            .enumerate()
            .map(|(i, z)| LiveShape {
                name: z.name.clone(),
                points: z.polygon.clone(),
                labels: z.labels.clone(),
                occupancy: scene.occupancy(i),
            })
            .collect(),
        lines: scene
            .lines
            .iter()
            .map(|l| LiveShape {
                name: l.name.clone(),
                points: vec![l.from, l.to],
                labels: l.labels.clone(),
                occupancy: 0,
            })
            .collect(),
        blur,
        jpeg: Default::default(),
    })
}
