//! Pictures of events: the frame at an event's start (or the frame its box
//! was taken from), with its box drawn and faces blurred when privacy asks,
//! written as a JPEG under the output folder, in a folder per stream and
//! run (the event log outlives runs; pictures are not overwritten); for an
//! object track, also the frame where it was seen best. The record's
//! `snapshot` names the file, relative to the output folder.
//!
//! With `blur_faces`, a picture is only written when the face encoder has
//! looked at a frame within [`FACE_NEAR`] of it: no faces known, no picture.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{PrivacyConfig, SnapshotConfig};
use crate::disk::DiskGate;
use crate::encode::faces::FrameFaces;
use crate::fuse::scene::Scene;
use crate::fuse::snapshot::{self, Mark};
use crate::geometry::BBox;
use crate::media::VideoFrame;
use crate::record::{EventRecord, Phase, Record};
use crate::time::{SECOND, Timestamp};

/// How long recent frames are kept, beyond how far behind an event's start
/// record may come (`Pictures::new`'s `lag`).
const KEEP: u64 = 5 * SECOND;
/// Faces found this close to a frame are blurred in it.
pub const FACE_NEAR: u64 = SECOND;

/// The snapshots of one stream.
pub struct Pictures {
    /// Where files go, and how records name that folder.
    folder: PathBuf,
    relative: PathBuf,
    quality: u8,
    kinds: Vec<String>,
    blur: bool,
    /// Blur enrolled faces too (`privacy.blur_known`).
    blur_known: bool,
    /// How long frames are kept.
    keep: u64,
    /// Whether track pictures are wanted.
    objects: bool,
    recent: VecDeque<VideoFrame>,
    /// Events whose box is from a frame other than their start's.
    box_times: HashMap<String, Timestamp>,
    faces: VecDeque<(Timestamp, Vec<BBox>)>,
    /// The frame each live track was seen best in.
    best: HashMap<u64, VideoFrame>,
    /// Tracks lost, whose pictures go once their records are dressed.
    gone: Vec<u64>,
    /// Snapshot of each open event, for its end record.
    open: HashMap<String, String>,
    written: u64,
    failed: u64,
    /// Pictures not written because no faces were known to blur.
    unblurred: u64,
    /// Whether the disk has room for pictures.
    gate: Option<Arc<DiskGate>>,
}

impl Pictures {
    /// Pictures of `stream` in run `run`; an event's start record may come
    /// up to `lag` after its start (rules' `min_duration`, the tracker's
    /// confirmation).
    pub fn new(
        out_dir: &Path,
        stream: &str,
        run: &str,
        config: &SnapshotConfig,
        privacy: PrivacyConfig,
        lag: u64,
    ) -> Pictures {
        let relative = config.path.join(stream).join(run);
        Pictures {
            folder: out_dir.join(&relative),
            relative,
            quality: config.quality,
            objects: config.kinds.iter().any(|k| k == "object"),
            kinds: config.kinds.clone(),
            blur: privacy.blur_faces,
            blur_known: privacy.blur_known,
            keep: KEEP.saturating_add(lag),
            recent: VecDeque::new(),
            box_times: HashMap::new(),
            faces: VecDeque::new(),
            best: HashMap::new(),
            gone: Vec::new(),
            open: HashMap::new(),
            written: 0,
            failed: 0,
            unblurred: 0,
            gate: None,
        }
    }

    /// Writes pictures only while `gate` lets media be written.
    pub fn gated(mut self, gate: Arc<DiskGate>) -> Pictures {
        self.gate = Some(gate);
        self
    }

    /// Snapshots written, that could not be, and left out for want of
    /// faces to blur.
    pub fn counts(&self) -> (u64, u64, u64) {
        (self.written, self.failed, self.unblurred)
    }

    /// A chunk's frames.
    pub fn frames(&mut self, frames: &[VideoFrame]) {
        self.recent.extend(frames.iter().cloned());
        if let Some(newest) = self.recent.back().map(|f| f.pts) {
            let oldest = newest.0.saturating_sub(self.keep);
            while self.recent.front().is_some_and(|f| f.pts.0 < oldest) {
                self.recent.pop_front();
            }
            // Faces stay as long as a frame that may still be pictured:
            // the recent ones, and each live track's best.
            let needed = self
                .best
                .values()
                .map(|f| f.pts.0)
                .fold(oldest, u64::min)
                .saturating_sub(FACE_NEAR);
            while self.faces.front().is_some_and(|f| f.0.0 < needed) {
                self.faces.pop_front();
            }
        }
    }

    /// The faces of an analysed frame, to blur.
    pub fn faces(&mut self, f: &FrameFaces) {
        if self.blur {
            // An enrolled face stays clear only when privacy says so.
            let blurred = f
                .faces
                .iter()
                .filter(|x| self.blur_known || x.name().is_none())
                .map(|x| x.bbox);
            self.faces.push_back((f.pts, blurred.collect()));
        }
    }

    /// After the scene took the frame at `pts`: keeps it for the tracks
    /// that were never seen better.
    pub fn scene(&mut self, scene: &Scene, pts: Timestamp) {
        // Their end records, still to come, take the picture.
        self.gone.extend(scene.lost().iter().map(|t| t.id));
        if !self.objects {
            return;
        }
        let Some(frame) = self.recent.iter().rev().find(|f| f.pts == pts) else {
            return;
        };
        for s in scene.seen() {
            if s.matched && s.best_at == pts {
                self.best.insert(s.track, frame.clone());
            }
        }
    }

    /// The box of `event`'s start record is from the frame at `at`.
    pub fn box_at(&mut self, event: String, at: Timestamp) {
        self.box_times.insert(event, at);
    }

    /// Writes the snapshots `records` call for and names them in the records.
    pub fn dress(&mut self, records: &mut [Record]) {
        for r in records {
            let Record::Event(e) = r else { continue };
            if !self.kinds.iter().any(|k| k == &e.kind) {
                continue;
            }
            match e.phase {
                Phase::Start => {
                    let when = self.box_times.remove(&e.event).unwrap_or(e.start);
                    let frame = self.at(when).cloned();
                    if let Some(path) = frame.and_then(|f| self.write(e, &f, "")) {
                        self.open.insert(e.event.clone(), path.clone());
                        e.snapshot = Some(path);
                    }
                }
                _ => {
                    let best = e.track.filter(|_| e.kind == "object");
                    let best = best.and_then(|t| self.best.remove(&t));
                    e.snapshot = match best.and_then(|f| self.write(e, &f, ".best")) {
                        Some(path) => {
                            self.open.remove(&e.event);
                            Some(path)
                        }
                        None => self.open.remove(&e.event),
                    };
                }
            }
        }
        for t in self.gone.drain(..) {
            self.best.remove(&t);
        }
    }

    /// The frame showing `t`: the last one at or before it, else the first.
    fn at(&self, t: Timestamp) -> Option<&VideoFrame> {
        self.recent
            .iter()
            .rev()
            .find(|f| f.pts <= t)
            .or(self.recent.front())
    }

    fn write(&mut self, e: &EventRecord, frame: &VideoFrame, suffix: &str) -> Option<String> {
        // The disk is nearly full: the records say what happened, without.
        if self.gate.as_ref().is_some_and(|g| !g.media_allowed()) {
            return None;
        }
        let marks: Vec<Mark> = e
            .bbox
            .iter()
            .map(|b| Mark {
                bbox: *b,
                color: snapshot::color(&e.kind),
            })
            .collect();
        let faces = self
            .faces
            .iter()
            .filter(|(pts, _)| pts.0.abs_diff(frame.pts.0) <= FACE_NEAR)
            .min_by_key(|(pts, _)| pts.0.abs_diff(frame.pts.0))
            .map(|(_, b)| b.clone());
        let blur = match faces {
            Some(b) => b,
            // Privacy first: without faces known near this frame, no picture.
            None if self.blur => {
                self.unblurred += 1;
                return None;
            }
            None => Vec::new(),
        };
        let name = format!("{}{suffix}.jpg", file_name(&e.event, &e.stream));
        let path = self.folder.join(&name);
        let done = snapshot::render(
            &frame.rgb,
            frame.width,
            frame.height,
            &marks,
            &blur,
            self.quality,
        )
        .and_then(|jpeg| snapshot::write(&path, &jpeg));
        match done {
            Ok(()) => {
                self.written += 1;
                Some(self.relative.join(name).to_string_lossy().into_owned())
            }
            Err(err) => {
                if self.failed == 0 {
                    tracing::warn!(%err, "cannot write a snapshot; events are recorded without");
                }
                self.failed += 1;
                None
            }
        }
    }
}

/// `cam1/object/person/3` → `object-person-3`.
pub(super) fn file_name(event: &str, stream: &str) -> String {
    let rest = event
        .strip_prefix(stream)
        .map_or(event, |r| r.trim_start_matches('/'));
    rest.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_named_after_the_event() {
        assert_eq!(file_name("cam1/object/person/3", "cam1"), "object-person-3");
        assert_eq!(
            file_name("cam1/object/sports_ball/12", "cam1"),
            "object-sports_ball-12"
        );
        assert_eq!(file_name("x/rule/a b/1", "x"), "rule-a-b-1");
    }
}
