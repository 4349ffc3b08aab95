//! Brightness: `dark` events while the picture is dark (lights out, a lens
//! covered or turned to a wall), from the mean grey level of each analysed
//! frame. No model.
//!
//! It is also the example of an encoder that lives in one file: its settings
//! type, section reader, kind and features are all here, and
//! [`ENCODERS`](super::ENCODERS) names it once.

use serde::{Deserialize, Serialize};

use crate::config::{EventTiming, read_section};
use crate::encode::kind::{self, Kind, Part};
use crate::encode::{Encoder, Features, Signal, SignalSample};
use crate::error::Result;
use crate::media::{Branch, Chunk, Grey, VideoFrame};
use crate::time::{Duration, SECOND};

/// The section's name, and the encoder's.
const NAME: &str = "brightness";

/// The width of the grey image the mean is taken over.
const GREY_WIDTH: usize = 64;

/// Brightness: dark pictures.
pub const KIND: Kind = Kind {
    name: NAME,
    manifests: &[],
    manifest: kind::no_model,
    section: Some(read_section::<BrightnessConfig>),
    on: |c| c.more.contains(NAME),
    off: |c| {
        c.more.remove(NAME);
    },
    check: kind::nothing_to_check,
    start: kind::no_worker,
    build: |c, _, source| {
        Ok(c.more.get::<BrightnessConfig>(NAME).map(|b| {
            Part::Encoder(Box::new(Brightness {
                config: b.clone(),
                interval: SECOND / u64::from(source.fps.max(1)),
            }))
        }))
    },
};

/// `[encoders.brightness]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BrightnessConfig {
    /// The picture is dark while its mean grey level (0 black to 255
    /// white) is below this.
    #[serde(default = "default_dark_below")]
    pub dark_below: u8,
    /// How long it must stay dark before a `dark` event starts.
    #[serde(default = "default_min_duration")]
    pub min_duration: Duration,
    /// How long it must stay light again before the event ends.
    #[serde(default = "default_cooldown")]
    pub cooldown: Duration,
}

fn default_dark_below() -> u8 {
    24
}

fn default_min_duration() -> Duration {
    Duration::from_secs(1)
}

fn default_cooldown() -> Duration {
    Duration::from_secs(1)
}

/// The brightness encoder of one stream.
struct Brightness {
    config: BrightnessConfig,
    interval: u64,
}

impl Brightness {
    fn sample(&self, frame: &VideoFrame) -> SignalSample {
        let mean = match &frame.grey {
            Some(g) => mean(g),
            None => mean(&Grey::from_rgb(
                &frame.rgb,
                frame.width as usize,
                frame.height as usize,
                GREY_WIDTH,
            )),
        };
        SignalSample {
            start: frame.pts,
            end: frame.pts.saturating_add(self.interval),
            active: mean < f32::from(self.config.dark_below),
            score: 1.0 - mean / 255.0,
            bbox: None,
        }
    }
}

/// The mean grey level of `g`, 0 to 255.
fn mean(g: &Grey) -> f32 {
    let sum: u64 = g.pixels.iter().map(|&p| u64::from(p)).sum();
    sum as f32 / g.pixels.len().max(1) as f32
}

impl Encoder for Brightness {
    fn name(&self) -> &'static str {
        NAME
    }

    fn encode(&mut self, chunks: &[&Chunk]) -> Result<Vec<Features>> {
        Ok(chunks
            .iter()
            .map(|c| {
                Features::Signal(Signal {
                    kind: "dark",
                    timing: EventTiming {
                        min_duration: self.config.min_duration,
                        cooldown: self.config.cooldown,
                    },
                    branch: Branch::Video,
                    samples: c.frames.iter().map(|f| self.sample(f)).collect(),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::parse_pipeline;
    use crate::time::Timestamp;
    use std::path::Path;

    fn frame(level: u8, pts: u64) -> VideoFrame {
        VideoFrame {
            pts: Timestamp(pts),
            duration: 0,
            width: 32,
            height: 24,
            rgb: crate::media::Pixels::new(vec![level; 32 * 24 * 3]),
            grey: None,
        }
    }

    #[test]
    fn a_frame_below_the_level_is_dark_and_scored_by_how_dark() {
        let b = Brightness {
            config: BrightnessConfig {
                dark_below: 24,
                min_duration: default_min_duration(),
                cooldown: default_cooldown(),
            },
            interval: SECOND / 5,
        };
        let dark = b.sample(&frame(10, 0));
        assert!(dark.active);
        assert_eq!(dark.end, Timestamp(SECOND / 5));
        assert!((dark.score - (1.0 - 10.0 / 255.0)).abs() < 0.01, "{dark:?}");
        assert!(!b.sample(&frame(24, 0)).active);
        assert!(!b.sample(&frame(200, 0)).active);
    }

    #[test]
    fn its_section_is_read_by_its_kind_with_defaults_and_located_errors() {
        let c = parse_pipeline(
            "[encoders.brightness]\ndark_below = 40\n",
            Path::new("p.toml"),
        )
        .unwrap();
        let b = c.encoders.more.get::<BrightnessConfig>(NAME).unwrap();
        assert_eq!((b.dark_below, b.min_duration), (40, Duration::from_secs(1)));
        assert_eq!(crate::encode::names(&c.encoders), ["brightness"]);

        let e = parse_pipeline(
            "[encoders.motion]\n\n[encoders.brightness]\ndark_below = 400\n",
            Path::new("p.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("p.toml") && e.contains("4:14"), "{e}");
        let e = parse_pipeline("[encoders.brightness]\ndarkness = 4\n", Path::new("p.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("2:1") && e.contains("unknown field `darkness`"),
            "{e}"
        );

        // Without its reader, the section is an unknown encoder.
        let e =
            crate::config::PipelineConfig::parse("[encoders.brightness]\n", Path::new("p.toml"))
                .unwrap_err()
                .to_string();
        assert!(e.contains("unknown field `brightness`"), "{e}");
    }
}
