//! Captions: what happened in each `caption_span` of a stream, in words,
//! saying what changed rather than repeating what did not.

use std::collections::BTreeMap;

use crate::encode::sound::SoundWindow;
use crate::encode::{LevelWindow, MotionSample};
use crate::fuse::EventNote;
use crate::fuse::events::EventSeries;
use crate::fuse::scene::Scene;
use crate::geometry::{BBox, union_of};
use crate::record::Phase;
use crate::time::{Span, Timestamp};

/// Below this mean level a span counts as silent.
const SILENT_DB: f32 = -60.0;
/// Below this, quiet.
const QUIET_DB: f32 = -40.0;

/// What one caption span gathered.
#[derive(Clone, Debug, Default)]
pub struct SpanSummary {
    pub start: Timestamp,
    frames: u32,
    motion_frames: u32,
    motion_bbox: Option<BBox>,
    motion_peak: f32,
    energy: f64,
    windows: u32,
    peak_db: f32,
    /// Most of each object class tracked in one frame.
    objects: BTreeMap<&'static str, usize>,
    /// Where each tracked object was first and last seen in the span.
    tracks: BTreeMap<u64, Moved>,
    /// Sounds heard, in the order first heard.
    sounds: Vec<String>,
    /// What was said (transcripts that ended in the span), in order.
    words: Vec<String>,
    pub notes: Vec<EventNote>,
}

/// A tracked object's way through one span.
#[derive(Clone, Copy, Debug)]
struct Moved {
    label: &'static str,
    first: [f32; 2],
    last: [f32; 2],
}

/// Least distance (frame widths or heights) an object must go in a span
/// to count as moving.
const MOVED: f32 = 0.03;

impl Moved {
    /// Which way it went: `left`, `right`, `up`, `down`, or `still`.
    fn heading(&self) -> &'static str {
        let (dx, dy) = (self.last[0] - self.first[0], self.last[1] - self.first[1]);
        if dx.abs().max(dy.abs()) < MOVED || !(dx.is_finite() && dy.is_finite()) {
            "still"
        } else if dx.abs() >= dy.abs() {
            if dx < 0.0 { "left" } else { "right" }
        } else if dy < 0.0 {
            "up"
        } else {
            "down"
        }
    }
}

/// The coarse state a caption compares against the previous one.
#[derive(Clone, Debug, PartialEq)]
struct State {
    motion_region: Option<&'static str>,
    sound: Option<&'static str>,
    objects: Vec<(&'static str, usize)>,
    /// (label, heading, how many), for labels that moved.
    movement: Vec<(&'static str, &'static str, usize)>,
    sounds: Vec<String>,
}

/// Builds the captions of one stream.
pub struct Captioner {
    span: u64,
    loud_db: f32,
    current: SpanSummary,
    previous: Option<State>,
}

impl Captioner {
    pub fn new(span: u64, loud_db: f32) -> Self {
        Captioner {
            span,
            loud_db,
            current: SpanSummary {
                peak_db: -120.0,
                ..Default::default()
            },
            previous: None,
        }
    }

    /// Start of the span being gathered.
    pub fn current_start(&self) -> Timestamp {
        self.current.start
    }

    /// End of the span being gathered.
    pub fn span_end(&self) -> Timestamp {
        self.current.start.saturating_add(self.span)
    }

    pub fn motion(&mut self, s: &MotionSample) {
        self.current.frames += 1;
        if s.active {
            self.current.motion_frames += 1;
            self.current.motion_bbox = union_of(self.current.motion_bbox.into_iter().chain(s.bbox));
            self.current.motion_peak = self.current.motion_peak.max(s.fraction);
        }
    }

    pub fn level(&mut self, w: &LevelWindow) {
        let rms = 10f64.powf(w.rms_db as f64 / 20.0);
        self.current.energy += rms * rms;
        self.current.windows += 1;
        self.current.peak_db = self.current.peak_db.max(w.peak_db);
    }

    /// The tracked objects of the latest analysed frame.
    pub fn scene(&mut self, scene: &Scene) {
        // Only what this frame shows: a track coasting through an
        // occlusion is not counted twice when it reappears as another.
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        for t in scene.seen().iter().filter(|t| t.matched) {
            *counts.entry(t.label).or_default() += 1;
        }
        for (label, n) in counts {
            let most = self.current.objects.entry(label).or_default();
            *most = (*most).max(n);
        }
        for s in scene.seen().iter().filter(|t| t.matched) {
            let at = s.bbox.anchor();
            self.current
                .tracks
                .entry(s.track)
                .and_modify(|m| m.last = at)
                .or_insert(Moved {
                    label: s.label,
                    first: at,
                    last: at,
                });
        }
    }

    /// One sound window; `series` are the sound targets' event series, in
    /// the window's order.
    pub fn sounds(&mut self, w: &SoundWindow, series: &[EventSeries]) {
        for (t, s) in w.targets.iter().zip(series) {
            let label = s.label().unwrap_or("sound");
            if t.active && !self.current.sounds.iter().any(|x| x == label) {
                self.current.sounds.push(label.to_string());
            }
        }
    }

    pub fn said(&mut self, s: &crate::encode::asr::Said) {
        self.current.words.push(s.text.clone());
    }

    pub fn note(&mut self, n: EventNote) {
        self.current.notes.push(n);
    }

    /// Closes the span at `end` and returns its text.
    pub fn close(&mut self, end: Timestamp, has_video: bool, has_audio: bool) -> (Span, String) {
        let s = std::mem::replace(
            &mut self.current,
            SpanSummary {
                start: end,
                peak_db: -120.0,
                ..Default::default()
            },
        );
        let span = Span::new(s.start, end.max(s.start));
        let mut objects: Vec<(&'static str, usize)> =
            s.objects.iter().map(|(k, v)| (*k, *v)).collect();
        // Most numerous first, then by name.
        objects.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut movement: BTreeMap<(&'static str, &'static str), usize> = BTreeMap::new();
        for m in s.tracks.values() {
            *movement.entry((m.label, m.heading())).or_default() += 1;
        }
        let mut movement: Vec<(&'static str, &'static str, usize)> =
            movement.into_iter().map(|((l, h), n)| (l, h, n)).collect();
        // Most numerous first; what stays still last.
        movement.sort_by(|a, b| {
            (a.1 == "still")
                .cmp(&(b.1 == "still"))
                .then(b.2.cmp(&a.2))
                .then(a.0.cmp(b.0))
        });
        let state = State {
            motion_region: (has_video && s.motion_frames > 0).then(|| region(s.motion_bbox)),
            sound: (has_audio && s.windows > 0).then(|| self.band(mean_db(&s))),
            objects,
            movement,
            sounds: s.sounds.clone(),
        };
        let prev = self.previous.clone();
        let mut parts = Vec::new();
        if !state.objects.is_empty() {
            let seen = list(
                &state
                    .objects
                    .iter()
                    .map(|(l, n)| counted(l, *n))
                    .collect::<Vec<_>>(),
            );
            let same = prev.as_ref().is_some_and(|p| p.objects == state.objects);
            parts.push(if same {
                format!("still {seen}")
            } else {
                format!("{seen} in view")
            });
            let moving = state.movement.iter().any(|m| m.1 != "still");
            let before = prev.as_ref().map(|p| &p.movement);
            if moving && before != Some(&state.movement) {
                // What stood still before and still does is not news.
                let news: Vec<_> = state
                    .movement
                    .iter()
                    .filter(|m| m.1 != "still" || !before.is_some_and(|b| b.contains(m)))
                    .copied()
                    .collect();
                parts.push(movement_words(&news));
            } else if moving {
                parts.push("moving as before".into());
            }
        } else if prev.as_ref().is_some_and(|p| !p.objects.is_empty()) {
            parts.push("nothing detected in view any more".into());
        }
        parts.extend(scene_notes(&s.notes));
        if !state.sounds.is_empty() {
            let heard = list(
                &state
                    .sounds
                    .iter()
                    .map(|l| counted(l, 1))
                    .collect::<Vec<_>>(),
            );
            let same = prev.as_ref().is_some_and(|p| p.sounds == state.sounds);
            parts.push(if same {
                format!("{heard} goes on")
            } else {
                format!("{heard} heard")
            });
        }
        // What the summaries above already say is not said twice.
        let summarised = |n: &&EventNote| {
            SCENE_KINDS.contains(&n.kind)
                || n.phase == Phase::Start
                    && n.cut.is_none()
                    && matches!((n.kind, n.label.as_deref()),
                        ("sound", Some(l)) if state.sounds.iter().any(|x| x == l))
        };
        if !s.words.is_empty() {
            parts.push(format!("someone says “{}”", s.words.join(" ")));
        }
        parts.extend(s.notes.iter().filter(|n| !summarised(n)).map(describe_note));
        let said = |kind: &str| s.notes.iter().any(|n| n.kind == kind);
        if has_video && !said("motion") {
            let before = prev.as_ref().and_then(|p| p.motion_region);
            parts.push(match (state.motion_region, before) {
                (Some(r), Some(b)) if r == b => format!("motion continues {r}"),
                (Some(r), _) => format!(
                    "motion {r} ({:.0}% of the picture changes at most)",
                    (s.motion_peak * 100.0).max(1.0)
                ),
                (None, Some(_)) => "the picture is still again".into(),
                (None, None) if prev.is_none() => "the picture is still".into(),
                (None, None) => String::new(),
            });
        } else if has_video && s.motion_frames > 0 {
            parts.push(format!(
                "{:.0}% of the picture changes at most",
                (s.motion_peak * 100.0).max(1.0)
            ));
        }
        if let Some(band) = state.sound {
            let before = prev.as_ref().and_then(|p| p.sound);
            let level = format!("{:.0} dBFS, peak {:.0}", mean_db(&s), s.peak_db);
            parts.push(if before == Some(band) && !said("loud_sound") {
                format!("sound stays {band}")
            } else {
                format!("sound is {band} ({level})")
            });
        }
        parts.retain(|p| !p.is_empty());
        let changed = prev.as_ref() != Some(&state) || !s.notes.is_empty() || !s.words.is_empty();
        self.previous = Some(state);
        let text = match (parts.is_empty(), changed) {
            (true, _) => "no change".to_string(),
            (false, false) => format!("no change: {}", parts.join("; ")),
            (false, true) => capitalise(&parts.join("; ")),
        };
        (span, text)
    }

    fn band(&self, db: f32) -> &'static str {
        if db >= self.loud_db {
            "loud"
        } else if db >= QUIET_DB {
            "moderate"
        } else if db >= SILENT_DB {
            "quiet"
        } else {
            "silent"
        }
    }
}

/// "a person", "two people", "3 handbags" … `label` as the model names it.
pub fn counted(label: &str, n: usize) -> String {
    const WORDS: [&str; 10] = [
        "no", "a", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    // Sounds named by a mass noun take no article.
    const UNCOUNTED: [&str; 4] = ["speech", "music", "glass", "applause"];
    if n == 1 && UNCOUNTED.contains(&label) {
        return label.to_string();
    }
    let article = if n == 1 && label.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an".to_string()
    } else if n < WORDS.len() {
        WORDS[n].to_string()
    } else {
        n.to_string()
    };
    let noun = if n == 1 {
        label.to_string()
    } else {
        plural(label)
    };
    format!("{article} {noun}")
}

fn plural(label: &str) -> String {
    const IRREGULAR: [(&str, &str); 8] = [
        ("person", "people"),
        ("mouse", "mice"),
        ("knife", "knives"),
        ("sheep", "sheep"),
        ("skis", "skis"),
        ("scissors", "scissors"),
        ("speech", "speech"),
        ("music", "music"),
    ];
    if let Some((_, p)) = IRREGULAR.iter().find(|(s, _)| *s == label) {
        return p.to_string();
    }
    // The last word takes the plural: "traffic light" → "traffic lights".
    if label.ends_with('s')
        || label.ends_with("ch")
        || label.ends_with("sh")
        || label.ends_with('x')
    {
        format!("{label}es")
    } else {
        format!("{label}s")
    }
}

/// Kinds of event the scene summary tells.
const SCENE_KINDS: &[&str] = &["object", "zone_enter", "zone_leave", "line_cross"];

/// "three people walk left, a person walks right and two cars stay still".
fn movement_words(movement: &[(&'static str, &'static str, usize)]) -> String {
    let items: Vec<String> = movement
        .iter()
        .map(|&(label, heading, n)| {
            let walker = label == "person";
            let verb = match (heading, walker, n == 1) {
                ("still", true, true) => "stands still".to_string(),
                ("still", true, false) => "stand still".to_string(),
                ("still", false, true) => "stays put".to_string(),
                ("still", false, false) => "stay put".to_string(),
                (h, w, one) => {
                    let v = if w { "walk" } else { "move" };
                    let way = match h {
                        "up" => "towards the top",
                        "down" => "towards the bottom",
                        other => other,
                    };
                    format!("{v}{} {way}", if one { "s" } else { "" })
                }
            };
            format!("{} {verb}", counted(label, n))
        })
        .collect();
    list(&items)
}

/// Arrivals, departures, zones and lines of the span, counted.
fn scene_notes(notes: &[EventNote]) -> Vec<String> {
    let mut groups: BTreeMap<(&'static str, String, String, &'static str), usize> = BTreeMap::new();
    for n in notes.iter().filter(|n| n.cut.is_none()) {
        let label = n.label.clone().unwrap_or_else(|| "object".into());
        let place = n.place.clone().unwrap_or_default();
        let key = match (n.kind, n.phase) {
            ("object", Phase::Start) => ("arrive", label, String::new(), ""),
            ("object", _) => ("leave", label, String::new(), ""),
            ("zone_enter", _) => ("enter", label, place, ""),
            ("zone_leave", _) => ("exit", label, place, ""),
            ("line_cross", _) => ("cross", label, place, n.direction.unwrap_or("")),
            _ => continue,
        };
        *groups.entry(key).or_default() += 1;
    }
    let mut out = Vec::new();
    let verb = |n: usize, one: &str, many: &str| if n == 1 { one } else { many }.to_string();
    let mut crossings: BTreeMap<(String, String), Vec<(&'static str, usize)>> = BTreeMap::new();
    for ((what, label, place, dir), n) in groups {
        let who = counted(&label, n);
        match what {
            "arrive" => out.push(format!("{who} {}", verb(n, "appears", "appear"))),
            "leave" => out.push(format!("{who} {}", verb(n, "leaves", "leave"))),
            "enter" => out.push(format!("{who} {} {place}", verb(n, "enters", "enter"))),
            "exit" => out.push(format!("{who} {} {place}", verb(n, "leaves", "leave"))),
            _ => crossings.entry((label, place)).or_default().push((dir, n)),
        }
    }
    for ((label, place), dirs) in crossings {
        let total: usize = dirs.iter().map(|d| d.1).sum();
        let ways: Vec<String> = dirs.iter().map(|(d, n)| format!("{n} {d}")).collect();
        out.push(format!(
            "{} {} {place} ({})",
            counted(&label, total),
            verb(total, "crosses", "cross"),
            ways.join(", ")
        ));
    }
    out
}

/// "a, b and c".
fn list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn mean_db(s: &SpanSummary) -> f32 {
    if s.windows == 0 {
        return -120.0;
    }
    crate::encode::dbfs(((s.energy / s.windows as f64).sqrt()) as f32)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Where a box sits in the picture, in words.
pub fn region(bbox: Option<BBox>) -> &'static str {
    let Some(BBox { x, y, w, h }) = bbox else {
        return "in the picture";
    };
    if w > 0.66 && h > 0.66 {
        return "across the whole picture";
    }
    let (cx, cy) = (x + w / 2.0, y + h / 2.0);
    let col = (cx * 3.0).clamp(0.0, 2.0) as usize;
    let row = (cy * 3.0).clamp(0.0, 2.0) as usize;
    const NAMES: [[&str; 3]; 3] = [
        ["at the top left", "at the top", "at the top right"],
        ["on the left", "in the centre", "on the right"],
        ["at the bottom left", "at the bottom", "at the bottom right"],
    ];
    NAMES[row][col]
}

fn secs(t: Timestamp) -> String {
    let ms = t.millis_rounded();
    if ms.is_multiple_of(100) {
        format!("{}.{} s", ms / 1000, (ms % 1000) / 100)
    } else {
        format!("{}.{:03} s", ms / 1000, ms % 1000)
    }
}

fn describe_note(n: &EventNote) -> String {
    if let Some(input) = n.cut {
        let input = match input {
            "video" => "the picture",
            "audio" => "the sound",
            _ => "the stream",
        };
        let what = match (n.kind, &n.label) {
            ("loud_sound", _) => "the loud sound".to_string(),
            ("face", _) => "the face".to_string(),
            (_, Some(l)) => format!("the {l}"),
            (kind, None) => kind.to_string(),
        };
        return format!("{what} goes on until {input} ends at {}", secs(n.at));
    }
    match (n.kind, n.phase) {
        ("motion", Phase::Start) => format!("motion starts at {} {}", secs(n.at), region(n.bbox)),
        ("motion", _) => format!("motion stops at {}", secs(n.at)),
        ("loud_sound", Phase::Start) => format!(
            "a loud sound at {} (peak {:.0} dBFS)",
            secs(n.at),
            n.peak_db
        ),
        ("loud_sound", _) => format!("the loud sound ends at {}", secs(n.at)),
        ("face", Phase::Start) => format!("a face appears at {} {}", secs(n.at), region(n.bbox)),
        ("face", _) => format!("no face from {}", secs(n.at)),
        ("object", Phase::Start) => format!(
            "{} appears at {} {}",
            counted(n.label.as_deref().unwrap_or("object"), 1),
            secs(n.at),
            region(n.bbox)
        ),
        ("object", _) => format!(
            "no {} from {}",
            n.label.as_deref().unwrap_or("object"),
            secs(n.at)
        ),
        ("sound", Phase::Start) => format!(
            "{} from {}",
            counted(n.label.as_deref().unwrap_or("sound"), 1),
            secs(n.at)
        ),
        ("sound", _) => format!(
            "the {} stops at {}",
            n.label.as_deref().unwrap_or("sound"),
            secs(n.at)
        ),
        ("speech", Phase::Start) => format!("someone speaks from {}", secs(n.at)),
        ("speech", _) => format!("speech ends at {}", secs(n.at)),
        ("rule", Phase::Start) => format!(
            "rule {} fires at {}",
            n.label.as_deref().unwrap_or("?"),
            secs(n.at)
        ),
        ("rule", _) => format!(
            "rule {} ends at {}",
            n.label.as_deref().unwrap_or("?"),
            secs(n.at)
        ),
        ("stream_error", _) => format!("the stream fails at {}", secs(n.at)),
        ("stream_gap", Phase::Start) => format!("the stream has a gap from {}", secs(n.at)),
        ("stream_gap", _) => format!("the stream is whole again from {}", secs(n.at)),
        (kind, Phase::Start) => format!("{kind} at {}", secs(n.at)),
        (kind, _) => format!("{kind} ends at {}", secs(n.at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_named_by_the_box_centre() {
        assert_eq!(
            region(Some(BBox::new(0.0, 0.0, 0.2, 0.2))),
            "at the top left"
        );
        assert_eq!(region(Some(BBox::new(0.4, 0.4, 0.2, 0.2))), "in the centre");
        assert_eq!(
            region(Some(BBox::new(0.7, 0.8, 0.3, 0.2))),
            "at the bottom right"
        );
        assert_eq!(
            region(Some(BBox::new(0.0, 0.0, 1.0, 1.0))),
            "across the whole picture"
        );
    }

    #[test]
    fn counts_read_as_words() {
        assert_eq!(counted("person", 2), "two people");
        assert_eq!(counted("car", 1), "a car");
        assert_eq!(counted("umbrella", 1), "an umbrella");
        assert_eq!(counted("bus", 3), "three buses");
        assert_eq!(counted("handbag", 12), "12 handbags");
        assert_eq!(
            list(&["two people".into(), "a car".into(), "a bus".into()]),
            "two people, a car and a bus"
        );
    }

    #[test]
    fn captions_say_what_changed() {
        let mut c = Captioner::new(5_000_000_000, -30.0);
        let (_, first) = c.close(Timestamp(5_000_000_000), true, false);
        assert_eq!(first, "The picture is still");
        let (_, second) = c.close(Timestamp(10_000_000_000), true, false);
        assert_eq!(second, "no change");
        c.motion(&MotionSample {
            pts: Timestamp(10_000_000_000),
            until: Timestamp(10_200_000_000),
            fraction: 0.1,
            bbox: Some(BBox::new(0.0, 0.0, 0.2, 0.2)),
            active: true,
        });
        let (_, third) = c.close(Timestamp(15_000_000_000), true, false);
        assert!(third.starts_with("Motion at the top left (10%"), "{third}");
    }
}
