//! `[recording]`: event clips, the source's own packets around events, and
//! continuous recording in segments.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::values::{Bounded, bounds};

/// Clips of events: `[recording]` (off without the table).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingConfig {
    /// Folder for the clips, relative to the output folder.
    #[serde(default = "default_clip_path")]
    pub path: PathBuf,
    /// Kinds of event that get a clip.
    #[serde(default = "default_clip_kinds")]
    pub kinds: Vec<String>,
    /// Only events with one of these labels (all when empty).
    #[serde(default)]
    pub labels: Vec<String>,
    /// Kept before an event's start (from the keyframe before).
    #[serde(default)]
    pub pre_roll: Bounded<bounds::PreRoll>,
    /// Kept after an event's end.
    #[serde(default)]
    pub post_roll: Bounded<bounds::PostRoll>,
    /// The longest one clip gets; an event that lasts longer goes on in
    /// the next.
    #[serde(default)]
    pub max_clip: Bounded<bounds::MaxClip>,
    /// Everything recorded, in files of `segment` each, under
    /// `OUT/segments/STREAM/` named by the UTC of their first frame.
    #[serde(default)]
    pub continuous: bool,
    /// The length of a segment: each starts on the first keyframe at or
    /// after it.
    #[serde(default)]
    pub segment: Bounded<bounds::Segment>,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            path: default_clip_path(),
            kinds: default_clip_kinds(),
            labels: Vec::new(),
            pre_roll: Bounded::default(),
            post_roll: Bounded::default(),
            max_clip: Bounded::default(),
            continuous: false,
            segment: Bounded::default(),
        }
    }
}

fn default_clip_path() -> PathBuf {
    "clips".into()
}

/// What people watch a clip of: objects, faces, what crossed a line or
/// entered a zone, and the rules of the pipeline file.
pub const CLIP_KINDS: &[&str] = &["object", "face", "zone_enter", "line_cross", "rule"];

fn default_clip_kinds() -> Vec<String> {
    CLIP_KINDS.iter().map(|s| s.to_string()).collect()
}

/// The folder of continuous recordings, relative to the output folder
/// (one folder per stream inside).
pub const SEGMENTS: &str = "segments";
