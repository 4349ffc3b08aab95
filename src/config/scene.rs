//! What fusion knows about the scene: the tracker's tuning, zones and
//! lines drawn on the picture, rules over the modalities, snapshots and
//! privacy.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

use super::values::*;
use crate::time::{MILLISECOND, SECOND};

/// The multi-object tracker (ByteTrack): `[fusion.tracker]`.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrackerConfig {
    /// Detections at or above this score are matched first.
    #[serde(default = "default_high", deserialize_with = "fraction")]
    pub high: f32,
    /// Detections between `low` and `high` only continue tracks.
    #[serde(default = "default_low", deserialize_with = "fraction")]
    pub low: f32,
    /// An unmatched detection at or above this starts a track.
    #[serde(default = "default_new_track", deserialize_with = "fraction")]
    pub new_track: f32,
    /// Least overlap (IoU) of a detection with a track's predicted box.
    #[serde(default = "default_match_iou", deserialize_with = "fraction")]
    pub match_iou: f32,
    /// Frames in a row a new track must be seen in before it counts.
    #[serde(default = "default_confirm", deserialize_with = "confirm")]
    pub confirm: u32,
    /// How long a track may go unseen (occluded) before it is lost.
    #[serde(
        default = "default_lost_after",
        deserialize_with = "lost_after",
        serialize_with = "ser_duration"
    )]
    pub lost_after: u64,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            high: default_high(),
            low: default_low(),
            new_track: default_new_track(),
            match_iou: default_match_iou(),
            confirm: default_confirm(),
            lost_after: default_lost_after(),
        }
    }
}

fn default_high() -> f32 {
    0.5
}
fn default_low() -> f32 {
    0.1
}
fn default_new_track() -> f32 {
    0.6
}
fn default_match_iou() -> f32 {
    0.2
}
fn default_confirm() -> u32 {
    3
}
fn default_lost_after() -> u64 {
    SECOND
}
fn confirm<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    ranged(d, 1, 30, "confirm")
}
fn lost_after<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    duration_in(d, 100 * MILLISECOND, 60 * SECOND, "lost_after")
}

/// A polygon zone: `[[zones]]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    #[serde(deserialize_with = "item_name")]
    pub name: String,
    /// Streams the zone is drawn on (default: every stream).
    #[serde(default)]
    pub streams: Vec<String>,
    /// Corners `[x, y]`, normalised to 0–1 of the picture (y down), in order.
    #[serde(deserialize_with = "polygon")]
    pub polygon: Vec<[f32; 2]>,
    /// Object labels or groups the zone follows (default: all).
    #[serde(default)]
    pub labels: Vec<String>,
}

/// A counting line: `[[lines]]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LineConfig {
    #[serde(deserialize_with = "item_name")]
    pub name: String,
    #[serde(default)]
    pub streams: Vec<String>,
    /// Where the line starts and ends, normalised. Walking from `from` to
    /// `to`, crossing from the left-hand side to the right is `in`.
    #[serde(deserialize_with = "point")]
    pub from: [f32; 2],
    #[serde(deserialize_with = "point")]
    pub to: [f32; 2],
    #[serde(default)]
    pub labels: Vec<String>,
}

/// How much a rule's event matters, for whoever reads it.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// A rule: `[[rules]]`, fires `rule` events while `when` holds.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    #[serde(deserialize_with = "item_name")]
    pub name: String,
    /// The condition, in the rule language (README, "Rules").
    pub when: String,
    /// Terms count as holding if they held at any time in the last
    /// `within`; `a then b` needs `a` within this before `b` began.
    #[serde(default, deserialize_with = "within", serialize_with = "ser_duration")]
    pub within: u64,
    /// How long the condition must hold before the event starts.
    #[serde(
        default,
        deserialize_with = "duration",
        serialize_with = "ser_duration"
    )]
    pub min_duration: u64,
    /// How long it must stop holding before the event ends (a new onset
    /// within it continues the same event).
    #[serde(
        default = "default_rule_cooldown",
        deserialize_with = "duration",
        serialize_with = "ser_duration"
    )]
    pub cooldown: u64,
    #[serde(default)]
    pub severity: Severity,
    /// Streams the rule watches (default: every stream).
    #[serde(default)]
    pub streams: Vec<String>,
}

fn default_rule_cooldown() -> u64 {
    5 * SECOND
}
fn within<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    duration_in(d, 0, 10 * 60 * SECOND, "within")
}

/// JPEG snapshots of events: `[snapshots]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Folder for the JPEGs, relative to the output folder.
    #[serde(default = "default_snapshot_path")]
    pub path: PathBuf,
    /// JPEG quality, 1–100.
    #[serde(default = "default_quality", deserialize_with = "quality")]
    pub quality: u8,
    /// Kinds of event that get a snapshot at their start.
    #[serde(default = "default_snapshot_kinds")]
    pub kinds: Vec<String>,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            path: default_snapshot_path(),
            quality: default_quality(),
            kinds: default_snapshot_kinds(),
        }
    }
}

fn default_snapshot_path() -> PathBuf {
    "snapshots".into()
}
fn default_quality() -> u8 {
    85
}
fn quality<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    ranged(d, 1, 100, "quality")
}
/// Kinds a snapshot helps with; motion and sound are left out as too
/// frequent to be worth a picture each.
pub const SNAPSHOT_KINDS: &[&str] = &[
    "object",
    "face",
    "zone_enter",
    "zone_leave",
    "line_cross",
    "rule",
];
fn default_snapshot_kinds() -> Vec<String> {
    SNAPSHOT_KINDS.iter().map(|s| s.to_string()).collect()
}

/// `[privacy]`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Blur the faces the face encoder found in every snapshot (needs
    /// `[encoders.faces]`).
    #[serde(default)]
    pub blur_faces: bool,
}

/// Object groups rules and zones can name, on top of the built-in ones.
pub type Groups = BTreeMap<String, Vec<String>>;

fn item_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
    if !ok {
        return Err(serde::de::Error::custom(format!(
            "invalid name `{s}`: expected 1 to 64 letters, digits, `-` or `_`"
        )));
    }
    Ok(s)
}

fn point<'de, D: Deserializer<'de>>(d: D) -> Result<[f32; 2], D::Error> {
    let p = <[f32; 2]>::deserialize(d)?;
    check_point(p).map_err(serde::de::Error::custom)?;
    Ok(p)
}

fn check_point(p: [f32; 2]) -> Result<(), String> {
    let ok = p.iter().all(|v| (0.0..=1.0).contains(v));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "point [{}, {}] is off the picture: coordinates are normalised, 0 to 1",
            p[0], p[1]
        ))
    }
}

fn polygon<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[f32; 2]>, D::Error> {
    let v = Vec::<[f32; 2]>::deserialize(d)?;
    if v.len() < 3 {
        return Err(serde::de::Error::custom(format!(
            "a polygon needs at least 3 corners, this one has {}",
            v.len()
        )));
    }
    for p in &v {
        check_point(*p).map_err(serde::de::Error::custom)?;
    }
    let area2: f32 = (0..v.len())
        .map(|i| {
            let (a, b) = (v[i], v[(i + 1) % v.len()]);
            a[0] * b[1] - b[0] * a[1]
        })
        .sum();
    if area2.abs() < 1e-6 {
        return Err(serde::de::Error::custom(
            "the polygon has no area: its corners are on one line",
        ));
    }
    Ok(v)
}
