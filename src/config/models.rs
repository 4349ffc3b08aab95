//! Settings of the encoders that run models: the detector, the sound
//! tagger, and the batching of their inference workers.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::EventTiming;
use super::values::*;
use crate::time::Duration;

/// Where a model runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// ONNX Runtime's CPU provider.
    #[default]
    Cpu,
    /// NVIDIA GPU; an error at start when it cannot be used.
    Cuda,
    /// CUDA when the library and a GPU are there, else the CPU.
    Auto,
}

/// Which frames, and which part of them, the detector looks at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Gating {
    /// Only where the picture changed since the previous analysed frame
    /// (a crop around the change, or the whole frame when the change covers
    /// most of it), plus each object found, again every `refresh` if its
    /// place changed, and the
    /// whole frame every `full_every`; frames with none of these are not
    /// looked at, and the objects tracked in them are held where they were.
    #[default]
    Motion,
    /// Every analysed frame, whole.
    Off,
}

/// The numbers a model computes in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats: the model as trained.
    F32,
    /// 8-bit integers for the weights and activations of its convolutions
    /// (static quantisation calibrated on real footage): about twice as fast
    /// on a CPU, 99 % of the float model's detections at the same place.
    #[default]
    Int8,
}

/// The side, in pixels, of the square the detector's model sees a frame
/// (or the part of it looked at) in: a multiple of 32 from 160 to 640.
/// NanoDet was trained at 416; 320 is about 40 % less work and finds what a
/// near camera shows (people and cars that fill a good part of the picture)
/// as well, but loses small, far ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct InputSide(u32);

impl InputSide {
    /// The model's own.
    pub const DEFAULT: InputSide = InputSide(416);
    pub const MIN: u32 = 160;
    pub const MAX: u32 = 640;

    /// `side` if it is one the model takes, else why not.
    pub fn new(side: u32) -> std::result::Result<InputSide, String> {
        if !(Self::MIN..=Self::MAX).contains(&side) || !side.is_multiple_of(32) {
            return Err(format!(
                "detector input side {side} is not one the model takes: expected a multiple of 32 from {} to {} (416, the model's own, or 320 for near cameras)",
                Self::MIN,
                Self::MAX
            ));
        }
        Ok(InputSide(side))
    }

    /// In pixels.
    pub fn pixels(self) -> usize {
        self.0 as usize
    }
}

impl Default for InputSide {
    fn default() -> Self {
        InputSide::DEFAULT
    }
}

impl<'de> Deserialize<'de> for InputSide {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        InputSide::new(u32::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The sizes and shapes a detection of one class may have; what is not
/// given does not limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShapeFilter {
    /// The box's area, as a share of the picture's (0–1).
    #[serde(
        default,
        deserialize_with = "opt_fraction",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_area: Option<f32>,
    #[serde(
        default,
        deserialize_with = "opt_fraction",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_area: Option<f32>,
    /// The box's width over its height, in pixels (a standing person is
    /// about 0.4; 0.01–100).
    #[serde(
        default,
        deserialize_with = "opt_ratio",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_ratio: Option<f32>,
    #[serde(
        default,
        deserialize_with = "opt_ratio",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_ratio: Option<f32>,
}

impl ShapeFilter {
    /// Whether a box of `area` (share of the picture) and `ratio` (width
    /// over height, in pixels) may be one of the class.
    pub fn admits(&self, area: f32, ratio: f32) -> bool {
        self.min_area.is_none_or(|m| area >= m)
            && self.max_area.is_none_or(|m| area <= m)
            && self.min_ratio.is_none_or(|m| ratio >= m)
            && self.max_ratio.is_none_or(|m| ratio <= m)
    }

    /// A filter whose minimum is over its maximum admits nothing.
    pub fn check(&self, class: &str) -> std::result::Result<(), String> {
        for (what, lo, hi) in [
            ("area", self.min_area, self.max_area),
            ("ratio", self.min_ratio, self.max_ratio),
        ] {
            if let (Some(lo), Some(hi)) = (lo, hi)
                && lo > hi
            {
                return Err(format!(
                    "[encoders.detector] filters.{class}: min_{what} {lo} is over max_{what} {hi}, so nothing would be kept"
                ));
            }
        }
        Ok(())
    }
}

fn opt_fraction<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f32>, D::Error> {
    fraction(d).map(Some)
}
fn opt_ratio<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f32>, D::Error> {
    ranged(d, 0.01, 100.0, "ratio").map(Some)
}

/// How an inference worker groups work across streams.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Items (frames, patches) in one model run at most.
    #[serde(default = "default_max_batch", deserialize_with = "max_batch")]
    pub max_batch: usize,
    /// How long the worker waits for other streams' work once it has some.
    #[serde(default)]
    pub max_wait: Bounded<bounds::MaxWait>,
}

impl BatchConfig {
    /// One item a run: for a model whose activations are large (the
    /// detector's 416×416 frames), where on 2 cores a batch of 8 held 85 MiB
    /// more for one stream and 190 MiB more for four, for 7 % more frames a
    /// second (the quiet clip of `tests/bench/gating.sh`, gating off).
    pub fn one_at_a_time() -> Self {
        BatchConfig {
            max_batch: 1,
            ..BatchConfig::default()
        }
    }

    /// Batches what has queued up while the worker was busy; never waits.
    pub fn no_wait() -> Self {
        BatchConfig {
            max_wait: Bounded::new(Duration::ZERO),
            ..BatchConfig::default()
        }
    }
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_batch: default_max_batch(),
            max_wait: Bounded::default(),
        }
    }
}

fn default_max_batch() -> usize {
    8
}
fn max_batch<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    ranged(d, 1, 64, "max_batch")
}

/// Objects (NanoDet, COCO-80): `object` events per class present.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    /// Score at or above which a detection counts, for classes without
    /// their own in `thresholds`.
    #[serde(default = "default_object_threshold", deserialize_with = "fraction")]
    pub threshold: f32,
    /// Per-class thresholds, by COCO name (`person = 0.4`).
    #[serde(default = "default_object_thresholds", deserialize_with = "thresholds")]
    pub thresholds: BTreeMap<String, f32>,
    /// Only these classes (COCO names); empty: all 80.
    #[serde(default)]
    pub classes: Vec<String>,
    /// Overlap above which two boxes of one class are one object.
    #[serde(default = "default_object_iou", deserialize_with = "fraction")]
    pub iou: f32,
    /// Detections between this score and their class's threshold are not
    /// objects by themselves but keep a tracked object going (ByteTrack's
    /// second pass).
    #[serde(default = "default_faint", deserialize_with = "fraction")]
    pub faint: f32,
    /// Frames analysed per second at most (the source's fps when higher
    /// than the stream's).
    #[serde(default = "default_object_fps", deserialize_with = "fps")]
    pub fps: u32,
    /// How long a track must have been followed before its `object` event
    /// starts (its onset is still when it was first seen).
    #[serde(default)]
    pub min_duration: Duration,
    /// Gone: a track ends when it is lost, `[fusion.tracker] lost_after`.
    /// Accepted only to say so.
    #[serde(default, deserialize_with = "no_cooldown", skip_serializing)]
    pub cooldown: (),
    /// `motion`: look only where and when the picture changes (with
    /// `refresh` and `full_every`); `off`: every analysed frame, whole.
    #[serde(default)]
    pub gating: Gating,
    /// `int8`: the quantised model (`models/nanodet_int8.toml`); `f32`:
    /// the float model.
    #[serde(default)]
    pub precision: Precision,
    /// The model: `nanodet` (the default, at `precision`),
    /// `nanodet_yolo` (NanoDet answering as a YOLOv8 export does: for
    /// testing the YOLO decoding), or a path to an `.onnx` of your own
    /// (relative to the pipeline file) with its manifest beside it.
    #[serde(default = "default_detector_model")]
    pub model: String,
    /// The side of the model's square input for streams that do not set
    /// their own (`[[sources]] detector_input`).
    #[serde(default)]
    pub input: InputSide,
    /// Per class, by COCO name: the sizes and shapes a real one can have
    /// in this picture (`person = { min_area = 0.001, max_ratio = 1.0 }`).
    /// A detection outside them is dropped before tracking: a "person" as
    /// wide as it is tall in a doorway camera, a "car" covering half the
    /// sky.
    #[serde(default)]
    pub filters: BTreeMap<String, ShapeFilter>,
    /// With gating, each object found is looked at again this often when
    /// its place has changed since (slowly, or too little to count as
    /// motion): one that stops moving or slips away is not missed. One
    /// whose pixels are as they were waits for the whole frame.
    #[serde(default)]
    pub refresh: Bounded<bounds::Refresh>,
    /// With gating, the whole picture is looked at at least this often, so
    /// that what arrived without being seen to move is found.
    #[serde(default)]
    pub full_every: Bounded<bounds::FullEvery>,
    #[serde(default)]
    pub provider: Provider,
    /// One frame a run unless `max_batch` is given (see
    /// [`BatchConfig::one_at_a_time`]).
    #[serde(
        default = "BatchConfig::one_at_a_time",
        deserialize_with = "one_at_a_time_unless_told"
    )]
    pub batch: BatchConfig,
}

impl DetectorConfig {
    pub fn timing(&self) -> EventTiming {
        EventTiming {
            min_duration: self.min_duration,
            cooldown: Duration::ZERO,
        }
    }

    /// The threshold for `label`.
    pub fn threshold_for(&self, label: &str) -> f32 {
        self.thresholds
            .get(label)
            .copied()
            .unwrap_or(self.threshold)
    }
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            threshold: default_object_threshold(),
            thresholds: default_object_thresholds(),
            classes: Vec::new(),
            iou: default_object_iou(),
            faint: default_faint(),
            fps: default_object_fps(),
            min_duration: Duration::ZERO,
            cooldown: (),
            gating: Gating::default(),
            precision: Precision::default(),
            input: InputSide::default(),
            model: default_detector_model(),
            filters: BTreeMap::new(),
            refresh: Bounded::default(),
            full_every: Bounded::default(),
            provider: Provider::default(),
            batch: BatchConfig::one_at_a_time(),
        }
    }
}

/// A `batch` table whose `max_batch` is 1 when not given.
fn one_at_a_time_unless_told<'de, D: Deserializer<'de>>(d: D) -> Result<BatchConfig, D::Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Told {
        #[serde(default = "one", deserialize_with = "max_batch")]
        max_batch: usize,
        #[serde(default)]
        max_wait: Bounded<bounds::MaxWait>,
    }
    fn one() -> usize {
        1
    }
    let told = Told::deserialize(d)?;
    Ok(BatchConfig {
        max_batch: told.max_batch,
        max_wait: told.max_wait,
    })
}

fn default_object_threshold() -> f32 {
    0.5
}
/// Classes NanoDet finds reliably get a lower bar; small, easily confused
/// ones a higher one (on vtest.avi, a paving detail scores 0.5–0.6 as a
/// sports ball, and birds appear below 0.5).
fn default_object_thresholds() -> BTreeMap<String, f32> {
    [
        ("person", 0.4),
        ("car", 0.4),
        ("sports ball", 0.7),
        ("bird", 0.6),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}
fn default_detector_model() -> String {
    "nanodet".into()
}
fn default_object_iou() -> f32 {
    0.5
}
fn default_faint() -> f32 {
    0.2
}
fn default_object_fps() -> u32 {
    5
}
fn no_cooldown<'de, D: Deserializer<'de>>(_: D) -> Result<(), D::Error> {
    Err(serde::de::Error::custom(
        "[encoders.detector] cooldown is gone: objects are tracked, and a track ends when it is lost; set [fusion.tracker] lost_after",
    ))
}

fn thresholds<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f32>, D::Error> {
    let map = BTreeMap::<String, f32>::deserialize(d)?;
    for (k, v) in &map {
        let inside = *v >= 0.0 && *v <= 1.0;
        if !inside {
            return Err(serde::de::Error::custom(format!(
                "threshold of `{k}` is {v}: expected 0 to 1"
            )));
        }
    }
    Ok(map)
}

/// Sound events (YAMNet, AudioSet 521): `sound` events per class or group.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SoundConfig {
    /// What to report: YAMNet class names (`"Car alarm"`) or groups
    /// (`siren`, `dog`, …), case-insensitive.
    #[serde(default = "default_sound_classes")]
    pub classes: Vec<String>,
    /// Score (sigmoid of the logit) at which a sound starts; it ends below
    /// three quarters of it.
    #[serde(default = "default_sound_threshold", deserialize_with = "fraction")]
    pub threshold: f32,
    /// Per-class or per-group thresholds.
    #[serde(default, deserialize_with = "thresholds")]
    pub thresholds: BTreeMap<String, f32>,
    /// Extra groups, or groups redefined: name → YAMNet class names.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub min_duration: Duration,
    #[serde(default = "default_sound_cooldown")]
    pub cooldown: Duration,
    #[serde(default)]
    pub provider: Provider,
    #[serde(default)]
    pub batch: BatchConfig,
}

impl SoundConfig {
    pub fn timing(&self) -> EventTiming {
        EventTiming {
            min_duration: self.min_duration,
            cooldown: self.cooldown,
        }
    }

    pub fn threshold_for(&self, class: &str) -> f32 {
        self.thresholds
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(class))
            .map_or(self.threshold, |(_, v)| *v)
    }
}

impl Default for SoundConfig {
    fn default() -> Self {
        SoundConfig {
            classes: default_sound_classes(),
            threshold: default_sound_threshold(),
            thresholds: BTreeMap::new(),
            groups: BTreeMap::new(),
            min_duration: Duration::ZERO,
            cooldown: default_sound_cooldown(),
            provider: Provider::default(),
            batch: BatchConfig::default(),
        }
    }
}

fn default_sound_classes() -> Vec<String> {
    [
        "siren", "alarm", "dog", "cat", "glass", "gunshot", "scream", "vehicle", "horn", "baby",
        "knock", "doorbell", "music", "speech",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}
fn default_sound_threshold() -> f32 {
    0.3
}
fn default_sound_cooldown() -> Duration {
    Duration::from_secs(1)
}

/// Speech to text (Whisper tiny.en) on the speech VAD hears: needs
/// `[encoders.vad]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AsrConfig {
    /// A pause this long ends a segment (it is then transcribed).
    #[serde(default = "default_asr_silence")]
    pub min_silence: Duration,
    /// Longer speech is cut into segments this long at most (up to 30 s,
    /// Whisper's window).
    #[serde(default)]
    pub max_segment: Bounded<bounds::MaxSegment>,
    /// Audio kept before and after the speech VAD heard.
    #[serde(default)]
    pub context: Bounded<bounds::Context>,
    #[serde(default)]
    pub provider: Provider,
}

impl Default for AsrConfig {
    fn default() -> Self {
        AsrConfig {
            min_silence: default_asr_silence(),
            max_segment: Bounded::default(),
            context: Bounded::default(),
            provider: Provider::default(),
        }
    }
}

fn default_asr_silence() -> Duration {
    Duration::from_millis(500)
}
