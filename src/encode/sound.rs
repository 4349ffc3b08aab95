//! Sound events with YAMNet (AudioSet, 521 classes): log-mel patches of
//! 0.96 s every 0.48 s, float logits → sigmoid, scores gathered into the
//! classes and groups a pipeline asks for.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::config::SoundConfig;
use crate::encode::batch::{BatchClient, BatchModel, Port};
use crate::encode::kind::{self, Kind, Part};
use crate::encode::logmel::{BANDS, HOP, LogMel, WINDOW};
use crate::encode::runtime::{self, Manifest};
use crate::encode::{Encoder, Features, sigmoid};
use crate::error::{Error, Result};
use crate::media::Chunk;
use crate::time::{AUDIO_RATE, Timestamp, sample_to_time};

/// The model's manifest.
pub const MANIFEST: &str = include_str!("../../models/yamnet.toml");

/// Sounds (YAMNet, AudioSet classes).
pub const KIND: Kind = Kind {
    name: "sound",
    manifests: &[MANIFEST],
    manifest: |_| vec![MANIFEST],
    section: None,
    on: |c| c.sound.is_some(),
    off: |c| c.sound = None,
    check: |c| match &c.sound {
        Some(s) => {
            targets(s, &class_names()?)?;
            model(s, 1).map(drop)
        }
        None => Ok(()),
    },
    start: |c, threads, metrics| {
        if let Some(s) = &c.sound {
            targets(s, &class_names()?)?;
        }
        kind::batcher(c.sound.as_ref(), threads, metrics, model, |s| s.batch)
    },
    build: |c, w, _| {
        Ok(match (&c.sound, kind::batch_worker(w)) {
            (Some(s), Some(b)) => Some(Part::Encoder(Box::new(Sound::new(s, b.client())?))),
            _ => None,
        })
    },
};
/// Frames per patch (0.96 s) and between patches (0.48 s).
pub const PATCH: usize = 96;
pub const PATCH_HOP: usize = 48;
const CLASSES: usize = 521;

/// Groups of YAMNet class names a pipeline can name at once
/// (case-insensitive). A pipeline's `[encoders.sound.groups]` adds to them
/// or redefines them.
pub const GROUPS: &[(&str, &[&str])] = &[
    (
        "speech",
        &[
            "Speech",
            "Child speech, kid speaking",
            "Conversation",
            "Narration, monologue",
        ],
    ),
    (
        "siren",
        &[
            "Siren",
            "Civil defense siren",
            "Police car (siren)",
            "Ambulance (siren)",
            "Fire engine, fire truck (siren)",
            "Emergency vehicle",
        ],
    ),
    (
        "alarm",
        &[
            "Alarm",
            "Alarm clock",
            "Car alarm",
            "Smoke detector, smoke alarm",
            "Fire alarm",
            "Buzzer",
        ],
    ),
    (
        "dog",
        &[
            "Dog",
            "Bark",
            "Yip",
            "Howl",
            "Bow-wow",
            "Growling",
            "Whimper (dog)",
            "Canidae, dogs, wolves",
        ],
    ),
    ("cat", &["Cat", "Purr", "Meow", "Hiss", "Caterwaul"]),
    ("glass", &["Glass", "Shatter"]),
    (
        "gunshot",
        &[
            "Gunshot, gunfire",
            "Machine gun",
            "Artillery fire",
            "Cap gun",
        ],
    ),
    ("explosion", &["Explosion", "Fireworks", "Firecracker"]),
    (
        "scream",
        &["Screaming", "Shout", "Yell", "Children shouting"],
    ),
    (
        "vehicle",
        &[
            "Vehicle",
            "Motor vehicle (road)",
            "Car",
            "Car passing by",
            "Truck",
            "Bus",
            "Motorcycle",
            "Race car, auto racing",
        ],
    ),
    (
        "horn",
        &["Vehicle horn, car horn, honking", "Air horn, truck horn"],
    ),
    ("baby", &["Baby cry, infant cry", "Crying, sobbing"]),
    ("knock", &["Knock"]),
    ("doorbell", &["Doorbell", "Ding-dong"]),
    ("music", &["Music", "Musical instrument"]),
];

/// The 521 class names, from the labels file the model's package ships.
pub fn class_names() -> Result<Vec<String>> {
    let manifest = Manifest::builtin(MANIFEST);
    let path = manifest.labels_file().ok_or_else(|| Error::Model {
        model: "yamnet".into(),
        message: "its manifest names no labels file".into(),
    })?;
    let bad = |m: String| Error::Model {
        model: "yamnet".into(),
        message: format!(
            "{}: {m}; run `vigil models fetch` to fetch it again",
            path.display()
        ),
    };
    let mut reader = csv::Reader::from_path(&path).map_err(|e| bad(e.to_string()))?;
    let mut names = Vec::with_capacity(CLASSES);
    for row in reader.records() {
        let row = row.map_err(|e| bad(e.to_string()))?;
        names.push(
            row.get(2)
                .ok_or_else(|| bad("a row without display_name".into()))?
                .to_string(),
        );
    }
    if names.len() != CLASSES {
        return Err(bad(format!(
            "{} classes, the model has {CLASSES}",
            names.len()
        )));
    }
    Ok(names)
}

/// What a pipeline asked to hear, resolved to class indices.
#[derive(Clone, Debug)]
pub struct Target {
    /// As the pipeline wrote it, lower case: the event's label.
    pub name: String,
    pub classes: Vec<usize>,
    pub threshold: f32,
}

/// Resolves the pipeline's `classes` through the groups to class indices.
pub fn targets(config: &SoundConfig, names: &[String]) -> Result<Vec<Target>> {
    let mut groups: BTreeMap<String, Vec<String>> = GROUPS
        .iter()
        .map(|(g, members)| {
            (
                g.to_string(),
                members.iter().map(|m| m.to_string()).collect(),
            )
        })
        .collect();
    for (g, members) in &config.groups {
        groups.insert(g.to_lowercase(), members.clone());
    }
    let index = |class: &str| names.iter().position(|n| n.eq_ignore_ascii_case(class));
    let mut out = Vec::new();
    for wanted in &config.classes {
        let key = wanted.to_lowercase();
        let classes = match groups.get(&key) {
            Some(members) => members
                .iter()
                .map(|m| {
                    index(m).ok_or_else(|| {
                        Error::Invalid(format!(
                            "[encoders.sound]: group `{key}` names `{m}`, which is not a YAMNet class"
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()?,
            None => vec![index(wanted).ok_or_else(|| {
                Error::Invalid(format!(
                    "[encoders.sound]: `{wanted}` is neither a group ({}) nor a YAMNet class name (see {})",
                    groups.keys().cloned().collect::<Vec<_>>().join(", "),
                    Manifest::builtin(MANIFEST)
                        .labels_file()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                ))
            })?],
        };
        out.push(Target {
            threshold: config.threshold_for(&key),
            name: key,
            classes,
        });
    }
    Ok(out)
}

/// The model for the inference worker.
pub fn model(config: &SoundConfig, threads: usize) -> Result<BatchModel> {
    let (session, pool) =
        runtime::pooled_session(&Manifest::builtin(MANIFEST), threads, config.provider)?;
    Ok(BatchModel {
        name: "yamnet",
        session,
        pool,
        inputs: vec![Port::first("patch", vec![1, PATCH, BANDS])],
        scalars: Vec::new(),
        outputs: vec![Port::first("logits", Vec::new())],
    })
}

/// One target's score in one window, and the class that gave it.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetScore {
    pub score: f32,
    /// Over the target's threshold, with hysteresis (off below 3/4 of it).
    pub active: bool,
    pub class: Arc<str>,
}

/// What one patch heard, reported for the middle 0.48 s it stands for.
#[derive(Clone, Debug, PartialEq)]
pub struct SoundWindow {
    pub start: Timestamp,
    pub end: Timestamp,
    /// One per target, in the pipeline's order.
    pub targets: Vec<TargetScore>,
}

/// The sound encoder of one stream.
pub struct Sound {
    client: BatchClient,
    names: Arc<[Arc<str>]>,
    targets: Vec<Target>,
    /// Labels of the targets, in order (events are named by them).
    pub labels: Vec<String>,
    front: LogMel,
    /// Log-mel frames not yet behind every patch that needs them.
    frames: VecDeque<[f32; BANDS]>,
    /// Index in the stream of `frames[0]`.
    first_frame: u64,
    /// Sample index of the front end's next unconsumed sample.
    next_sample: u64,
    /// Sample index where frame 0 starts (the stream's start, or where the
    /// audio resumed after a drop).
    base: u64,
    /// Sample index up to which windows have been reported.
    reported_to: u64,
    active: Vec<bool>,
}

impl Sound {
    pub fn new(config: &SoundConfig, client: BatchClient) -> Result<Sound> {
        let names = class_names()?;
        let targets = targets(config, &names)?;
        Ok(Sound {
            client,
            names: names.into_iter().map(Arc::from).collect(),
            labels: targets.iter().map(|t| t.name.clone()).collect(),
            active: vec![false; targets.len()],
            targets,
            front: LogMel::new(),
            frames: VecDeque::new(),
            first_frame: 0,
            next_sample: 0,
            base: 0,
            reported_to: 0,
        })
    }

    fn reset(&mut self, at: u64) {
        self.front.reset();
        self.frames.clear();
        self.next_sample = at;
        self.base = at;
        self.reported_to = at;
        self.first_frame = 0;
        self.active.iter_mut().for_each(|a| *a = false);
    }

    fn chunk(&mut self, chunk: &Chunk) -> Result<Vec<SoundWindow>> {
        if !chunk.has_audio {
            return Ok(Vec::new());
        }
        if chunk.first_sample != self.next_sample {
            // Dropped audio (live backlog): start afresh where it resumes.
            self.reset(chunk.first_sample);
        }
        self.next_sample = chunk.first_sample + chunk.audio.len() as u64;
        self.frames.extend(self.front.push(&chunk.audio));
        if chunk.flags.last && self.reported_to < self.next_sample {
            // Zeros so that the last patches cover the stream's tail; their
            // windows are cut at the stream's end.
            let zeros = vec![0.0f32; (PATCH + PATCH_HOP) * HOP + WINDOW];
            self.frames.extend(self.front.push(&zeros));
        }
        let mut patches = Vec::new();
        let mut starts = Vec::new();
        // Patches start at multiples of PATCH_HOP frames since the reset.
        loop {
            let next = self.first_frame.next_multiple_of(PATCH_HOP as u64);
            let skip = (next - self.first_frame) as usize;
            if skip + PATCH > self.frames.len() {
                break;
            }
            let mut patch = Vec::with_capacity(PATCH * BANDS);
            for f in self.frames.iter().skip(skip).take(PATCH) {
                patch.extend_from_slice(f);
            }
            patches.push(patch);
            starts.push(next);
            let drop_n = skip + PATCH_HOP;
            self.frames.drain(..drop_n);
            self.first_frame += drop_n as u64;
        }
        let outputs = self.client.infer(patches)?;
        let end = chunk.span.end;
        let mut windows = Vec::with_capacity(outputs.len());
        for (first, out) in starts.into_iter().zip(outputs) {
            let logits = &out[0];
            if logits.len() != CLASSES {
                return Err(Error::Model {
                    model: "yamnet".into(),
                    message: format!("{} logits, expected {CLASSES}", logits.len()),
                });
            }
            // The middle 0.48 s of the patch (from the start for the first).
            let patch_start = self.base + first * HOP as u64;
            let quarter = (PATCH_HOP * HOP / 2) as u64;
            let from = if first == 0 {
                self.base
            } else {
                patch_start + quarter
            };
            let to = patch_start + quarter + (PATCH_HOP * HOP) as u64;
            self.reported_to = self.reported_to.max(to);
            let (start, stop) = (
                sample_to_time(from, AUDIO_RATE),
                sample_to_time(to, AUDIO_RATE).min(end),
            );
            if start >= stop {
                continue;
            }
            let mut scores = Vec::with_capacity(self.targets.len());
            for (k, t) in self.targets.iter().enumerate() {
                let (class, logit) = t.classes.iter().map(|&c| (c, logits[c])).fold(
                    (usize::MAX, f32::NEG_INFINITY),
                    |a, b| {
                        if b.1 > a.1 { b } else { a }
                    },
                );
                let score = sigmoid(logit);
                let on = if self.active[k] {
                    score >= 0.75 * t.threshold
                } else {
                    score >= t.threshold
                };
                self.active[k] = on;
                scores.push(TargetScore {
                    score,
                    active: on,
                    class: self.names.get(class).cloned().unwrap_or_else(|| "?".into()),
                });
            }
            windows.push(SoundWindow {
                start,
                end: stop,
                targets: scores,
            });
        }
        Ok(windows)
    }
}

impl Encoder for Sound {
    fn name(&self) -> &'static str {
        "sound"
    }

    fn encode(&mut self, chunks: &[&Chunk]) -> Result<Vec<Features>> {
        let mut out = Vec::with_capacity(chunks.len());
        for c in chunks {
            out.push(Features::Sound(self.chunk(c)?));
        }
        Ok(out)
    }

    fn model_cpu_ns(&self) -> u64 {
        self.client.cpu_ns()
    }
}
