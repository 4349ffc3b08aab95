//! What fusion knows about the scene: the tracker's tuning, zones and
//! lines drawn on the picture, rules over the modalities, snapshots and
//! privacy.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

use super::values::*;
use crate::rule_language::Expr;
use crate::time::Duration;

/// The multi-object tracker (ByteTrack): `[fusion.tracker]`. Which
/// detections are confident and which faint is the detector's to say
/// (its thresholds and `faint`).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrackerConfig {
    /// Least overlap (IoU) of a detection with a track's predicted box.
    #[serde(default = "default_match_iou", deserialize_with = "fraction")]
    pub match_iou: f32,
    /// Frames in a row a new track must be seen in before it counts.
    #[serde(default = "default_confirm", deserialize_with = "confirm")]
    pub confirm: u32,
    /// How long a track may go unseen (occluded) before it is lost.
    #[serde(default)]
    pub lost_after: Bounded<bounds::LostAfter>,
    /// A track's `object` event starts only once the median score of its
    /// latest detections (up to 15) reaches this, so that one confident
    /// frame of a shadow is no object (0: off).
    #[serde(default, deserialize_with = "fraction")]
    pub min_score: f32,
    /// A track that has stayed where it settled (its box overlapping the
    /// box it had then at IoU 0.6 or more) this long is stationary: it is
    /// still tracked and its `object` event goes on, but it enters and
    /// leaves no zone, crosses no line and is no object to rules until it
    /// moves (a parked car). Unset: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stationary_after: Option<Duration>,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            match_iou: default_match_iou(),
            confirm: default_confirm(),
            lost_after: Bounded::default(),
            min_score: 0.0,
            stationary_after: None,
        }
    }
}

/// Low, because at 5 analysed frames a second a walking person's box
/// moves a good part of its width between frames (on vtest.avi, 0.1 gives
/// 38 person tracks where 0.2 gives 49 and 0.3 gives 63, for the same
/// line crossings).
fn default_match_iou() -> f32 {
    0.1
}
fn default_confirm() -> u32 {
    3
}
fn confirm<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    ranged(d, 1, 30, "confirm")
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
    #[serde(default)]
    pub within: Bounded<bounds::Within>,
    /// How long the condition must hold before the event starts.
    #[serde(default)]
    pub min_duration: Duration,
    /// How long it must stop holding before the event ends (a new onset
    /// within it continues the same event).
    #[serde(default = "default_rule_cooldown")]
    pub cooldown: Duration,
    #[serde(default)]
    pub severity: Severity,
    /// Streams the rule watches (default: every stream).
    #[serde(default)]
    pub streams: Vec<String>,
    /// `when`, parsed once when the pipeline is validated; fusion runs it.
    #[serde(skip)]
    pub expr: Option<crate::rule_language::Expr>,
}

fn default_rule_cooldown() -> Duration {
    Duration::from_secs(5)
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
#[derive(Clone, Copy, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Blur the faces the face encoder found in every snapshot (needs
    /// `[encoders.faces]`).
    #[serde(default)]
    pub blur_faces: bool,
    /// With face identity on: blur enrolled faces too (false: only the
    /// unknown ones are blurred).
    #[serde(default = "yes")]
    pub blur_known: bool,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            blur_faces: false,
            blur_known: true,
        }
    }
}

fn yes() -> bool {
    true
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
    check_polygon(&v).map_err(serde::de::Error::custom)?;
    Ok(v)
}

/// A list of polygons (a stream's masks), each checked as a zone's is.
pub(super) fn polygons<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<[f32; 2]>>, D::Error> {
    let v = Vec::<Vec<[f32; 2]>>::deserialize(d)?;
    for (i, p) in v.iter().enumerate() {
        check_polygon(p)
            .map_err(|e| serde::de::Error::custom(format!("polygon {}: {e}", i + 1)))?;
    }
    Ok(v)
}

fn check_polygon(v: &[[f32; 2]]) -> std::result::Result<(), String> {
    if v.len() < 3 {
        return Err(format!(
            "a polygon needs at least 3 corners, this one has {}",
            v.len()
        ));
    }
    for p in v {
        check_point(*p)?;
    }
    let area2: f32 = (0..v.len())
        .map(|i| {
            let (a, b) = (v[i], v[(i + 1) % v.len()]);
            a[0] * b[1] - b[0] * a[1]
        })
        .sum();
    if area2.abs() < 1e-6 {
        return Err("the polygon has no area: its corners are on one line".into());
    }
    Ok(())
}

/// Checks zones, lines, rules and snapshots against each other and the
/// encoders, with where to look in the file; gives each rule's `when`
/// parsed, in order.
pub(super) fn check(config: &super::PipelineConfig) -> Result<Vec<Expr>, Problem> {
    use crate::rule_language::{self as parse, TermKind};

    let key = |k: &'static str| Find::Key(k);
    let labels = config.object_labels().map_err(|message| Problem {
        message,
        find: key("[fusion.groups]"),
    })?;
    let unique = |names: Vec<&String>, what: &str| -> Result<(), Problem> {
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(Problem {
                    message: format!("two {what} are named `{n}`: names must be unique"),
                    find: Find::Value("name", n.to_string(), 2),
                });
            }
        }
        Ok(())
    };
    // A stream named that no source has is a typo, when the file lists
    // its sources (`--source` names streams after their files).
    let sources: Vec<&String> = config.sources.iter().map(|s| &s.name).collect();
    let drawn = config
        .zones
        .iter()
        .map(|z| ("zone", &z.name, &z.streams))
        .chain(config.lines.iter().map(|l| ("line", &l.name, &l.streams)))
        .chain(config.rules.iter().map(|r| ("rule", &r.name, &r.streams)));
    for (what, name, streams) in drawn {
        if let Some(s) = streams
            .iter()
            .find(|s| !sources.is_empty() && !sources.contains(s))
        {
            return Err(Problem {
                message: format!(
                    "{what} `{name}` is for stream `{s}`, which no source is named (sources: {})",
                    names(sources.iter().copied())
                ),
                find: Find::Value("name", name.clone(), 1),
            });
        }
    }
    unique(config.zones.iter().map(|z| &z.name).collect(), "zones")?;
    unique(config.lines.iter().map(|l| &l.name).collect(), "lines")?;
    unique(config.rules.iter().map(|r| &r.name).collect(), "rules")?;
    let needs_detector = |what: String| Problem {
        message: format!("{what} follows tracked objects: add [encoders.detector]"),
        find: key("[encoders]"),
    };
    for z in &config.zones {
        labels.resolve_all(&z.labels).map_err(|m| Problem {
            message: format!("zone `{}`: {m}", z.name),
            find: Find::Value("name", z.name.clone(), 1),
        })?;
    }
    for l in &config.lines {
        labels.resolve_all(&l.labels).map_err(|m| Problem {
            message: format!("line `{}`: {m}", l.name),
            find: Find::Value("name", l.name.clone(), 1),
        })?;
        if l.from == l.to {
            return Err(Problem {
                message: format!("line `{}` starts where it ends: give it two points", l.name),
                find: Find::Value("name", l.name.clone(), 1),
            });
        }
    }
    if config.encoders.detector.is_none() {
        if let Some(z) = config.zones.first() {
            return Err(needs_detector(format!("zone `{}`", z.name)));
        }
        if let Some(l) = config.lines.first() {
            return Err(needs_detector(format!("line `{}`", l.name)));
        }
    }
    let enc = &config.encoders;
    let mut parsed = Vec::with_capacity(config.rules.len());
    for (i, r) in config.rules.iter().enumerate() {
        let nth = config.rules[..i]
            .iter()
            .filter(|x| x.when == r.when)
            .count()
            + 1;
        let at = |column: usize| Find::InValue("when", r.when.clone(), nth, column);
        let expr = parse::parse(&r.when).map_err(|e| Problem {
            message: format!("rule `{}`: {}", r.name, e.message),
            find: at(e.column),
        })?;
        fn has_then(e: &Expr) -> bool {
            match e {
                Expr::Term(_) => false,
                Expr::Not(a) => has_then(a),
                Expr::And(a, b) | Expr::Or(a, b) => has_then(a) || has_then(b),
                Expr::Then(..) => true,
            }
        }
        if has_then(&expr) && r.within.get() == Duration::ZERO {
            return Err(Problem {
                message: format!(
                    "rule `{}` uses `then`, which needs a window: add e.g. `within = \"10s\"`",
                    r.name
                ),
                find: Find::Value("name", r.name.clone(), 1),
            });
        }
        for t in expr.terms() {
            let fail = |m: String| Problem {
                message: format!("rule `{}`: {}: {m}", r.name, t.text),
                find: at(t.column),
            };
            let zone = |z: &Option<String>| match z {
                Some(z) if !config.zones.iter().any(|x| &x.name == z) => Err(fail(format!(
                    "there is no zone `{z}` (zones: {})",
                    names(config.zones.iter().map(|x| &x.name))
                ))),
                _ => Ok(()),
            };
            match &t.kind {
                TermKind::Object { label, zone: z, .. } => {
                    if enc.detector.is_none() {
                        return Err(fail("add [encoders.detector] to see objects".into()));
                    }
                    if let Some(l) = label {
                        labels.resolve(l).map_err(fail)?;
                    }
                    zone(z)?;
                }
                TermKind::Sound { .. } if enc.sound.is_none() => {
                    // Labels are groups or YAMNet class names, checked
                    // against the model's labels when the encoder starts.
                    return Err(fail("add [encoders.sound] to hear sounds".into()));
                }
                TermKind::Speech { contains } => {
                    if enc.vad.is_none() {
                        return Err(fail("add [encoders.vad] to hear speech".into()));
                    }
                    if contains.is_some() && enc.asr.is_none() {
                        return Err(fail("add [encoders.asr] to know what is said".into()));
                    }
                }
                TermKind::Loud { .. } if enc.loudness.is_none() => {
                    return Err(fail("add [encoders.loudness] to measure loudness".into()));
                }
                TermKind::Motion { zone: z } => {
                    if enc.motion.is_none() {
                        return Err(fail("add [encoders.motion] to see motion".into()));
                    }
                    zone(z)?;
                }
                TermKind::Line { name, .. } if !config.lines.iter().any(|l| &l.name == name) => {
                    return Err(fail(format!(
                        "there is no line `{name}` (lines: {})",
                        names(config.lines.iter().map(|x| &x.name))
                    )));
                }
                TermKind::Face { who } => {
                    let Some(faces) = &enc.faces else {
                        return Err(fail("add [encoders.faces] to see faces".into()));
                    };
                    if who.is_some() && faces.identity.is_none() {
                        return Err(fail(
                            "add [encoders.faces.identity] to know whose face it is".into(),
                        ));
                    }
                }
                _ => {}
            }
        }
        parsed.push(expr);
    }
    if config.privacy.blur_faces && enc.faces.is_none() {
        return Err(Problem {
            message: "privacy.blur_faces needs the faces found: add [encoders.faces]".into(),
            find: key("blur_faces"),
        });
    }
    if let Some(s) = &config.snapshots
        && let Some(k) = s.kinds.iter().find(|k| !EVENT_KINDS.contains(&k.as_str()))
    {
        return Err(Problem {
            message: format!(
                "[snapshots] kinds: `{k}` is not a kind of event ({})",
                EVENT_KINDS.join(", ")
            ),
            find: key("kinds"),
        });
    }
    if let Some(r) = &config.recording
        && let Some(k) = r.kinds.iter().find(|k| !EVENT_KINDS.contains(&k.as_str()))
    {
        return Err(Problem {
            message: format!(
                "[recording] kinds: `{k}` is not a kind of event ({})",
                EVENT_KINDS.join(", ")
            ),
            find: key("kinds"),
        });
    }
    Ok(parsed)
}

/// Every kind of event.
pub const EVENT_KINDS: &[&str] = &[
    "motion",
    "loud_sound",
    "object",
    "face",
    "sound",
    "speech",
    "zone_enter",
    "zone_leave",
    "line_cross",
    "stream_gap",
    "stream_error",
    "rule",
];

fn names<'a>(it: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = it.map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Sound labels rules name that the sound encoder does not report yet:
/// they become targets too.
pub(super) fn rule_sounds(config: &super::PipelineConfig) -> Vec<String> {
    use crate::rule_language::TermKind;
    let have = config
        .encoders
        .sound
        .as_ref()
        .map(|s| s.classes.clone())
        .unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for r in &config.rules {
        let Some(expr) = &r.expr else {
            continue;
        };
        for t in expr.terms() {
            if let TermKind::Sound { label, .. } = &t.kind
                && !have
                    .iter()
                    .chain(&out)
                    .any(|c| c.eq_ignore_ascii_case(label))
            {
                out.push(label.clone());
            }
        }
    }
    out
}
