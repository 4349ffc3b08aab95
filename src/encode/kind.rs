//! What an encoder is to the rest of vigil: one [`Kind`] per encoder,
//! declared in the encoder's own file, listed once in [`ENCODERS`].
//!
//! A kind names the encoder (its `[encoders.NAME]` section, errors,
//! metrics), its model's manifest, how to load the model once for checking,
//! how to start the inference worker every stream shares, and how to build
//! one stream's encoder. Adding an encoder is its file plus a line in the
//! table.

use std::sync::Arc;

use std::path::Path;

use crate::config::{BatchConfig, EncodersConfig, PipelineConfig, SectionReader, SourceConfig};
use crate::encode::batch::{BatchModel, Batcher};
use crate::encode::{Encoder, asr, detector, faces, loudness, motion, sound, vad};
use crate::error::Result;
use crate::metrics::Metrics;

/// Every encoder, in the order a stream runs them (their features come to
/// fusion in this order).
pub const ENCODERS: &[&Kind] = &[
    &motion::KIND,
    &super::brightness::KIND,
    &loudness::KIND,
    &vad::KIND,
    &faces::KIND,
    &detector::KIND,
    &sound::KIND,
    &asr::KIND,
];

/// One encoder, as the pipeline, the model checks and the graph see it.
pub struct Kind {
    /// Its name: `[encoders.NAME]`, errors, metrics.
    pub name: &'static str,
    /// The manifests (`models/*.toml`) of the models it can run; none for
    /// a model-free encoder.
    pub manifests: &'static [&'static str],
    /// The ones of `manifests` the pipeline's settings pick (on only).
    pub manifest: fn(&EncodersConfig) -> Vec<&'static str>,
    /// Reads its `[encoders.NAME]` section into [`EncodersConfig::more`],
    /// for an encoder that declares its settings in its own file (the
    /// built-in ones have typed fields, which other stages read).
    pub section: Option<SectionReader>,
    /// Whether the pipeline turns it on.
    pub on: fn(&EncodersConfig) -> bool,
    /// Turns it off, and what cannot work without it.
    pub off: fn(&mut EncodersConfig),
    /// Loads its model once, so that a missing, corrupt or mismatched one
    /// stops the run before media flows (on only).
    pub check: fn(&EncodersConfig) -> Result<()>,
    /// Starts the inference worker all streams share, with `threads` (on
    /// and model-backed only).
    pub start: fn(&EncodersConfig, usize, &Arc<Metrics>) -> Result<Option<Worker>>,
    /// One stream's part, for the stream `source` (its analysis fps, its
    /// detector input) (on only).
    pub build: fn(&EncodersConfig, Option<&Worker>, &SourceConfig) -> Result<Option<Part>>,
}

/// An inference worker shared by every stream.
pub enum Worker {
    /// Batches the work of every stream for one model.
    Batch(Batcher),
    /// Transcribes speech segments, one at a time.
    Asr(asr::AsrWorker),
    /// Finds faces and, when asked, says who they are.
    Faces(faces::FacesWorker),
}

/// What an encoder adds to one stream.
pub enum Part {
    Encoder(Box<dyn Encoder>),
    /// Cuts speech for transcription out of what `vad` hears.
    Cutter(asr::Cutter),
}

impl Kind {
    /// Whether it runs a model (and needs a worker).
    pub fn has_model(&self) -> bool {
        !self.manifests.is_empty()
    }
}

/// The kind called `name`.
pub fn kind(name: &str) -> Option<&'static Kind> {
    ENCODERS.iter().copied().find(|k| k.name == name)
}

/// The section readers of the kinds that have one, by name.
fn sections() -> Vec<(&'static str, SectionReader)> {
    ENCODERS
        .iter()
        .filter_map(|k| Some((k.name, k.section?)))
        .collect()
}

/// Reads, parses and validates the pipeline file at `path`, every
/// encoder's section read by its own kind.
pub fn load_pipeline(path: &Path) -> Result<PipelineConfig> {
    PipelineConfig::load_with(path, &sections())
}

/// Parses and validates pipeline text (`path` names it in errors), every
/// encoder's section read by its own kind.
pub fn parse_pipeline(text: &str, path: &Path) -> Result<PipelineConfig> {
    PipelineConfig::parse_with(text, path, &sections())
}

/// For model-free encoders: no model.
pub fn no_model(_: &EncodersConfig) -> Vec<&'static str> {
    Vec::new()
}

/// For model-free encoders: nothing to check or start.
pub fn nothing_to_check(_: &EncodersConfig) -> Result<()> {
    Ok(())
}

/// For model-free encoders: no worker.
pub fn no_worker(_: &EncodersConfig, _: usize, _: &Arc<Metrics>) -> Result<Option<Worker>> {
    Ok(None)
}

/// Starts a batching worker for `section`'s model, if the section is there.
pub fn batcher<C>(
    section: Option<&C>,
    threads: usize,
    metrics: &Arc<Metrics>,
    model: fn(&C, usize) -> Result<BatchModel>,
    batch: fn(&C) -> BatchConfig,
) -> Result<Option<Worker>> {
    let Some(c) = section else { return Ok(None) };
    let b = Batcher::spawn(model(c, threads)?, batch(c), metrics.clone())?;
    Ok(Some(Worker::Batch(b)))
}

/// The batching worker `worker` is, if it is one.
pub fn batch_worker(worker: Option<&Worker>) -> Option<&Batcher> {
    match worker {
        Some(Worker::Batch(b)) => Some(b),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PipelineConfig;
    use std::path::Path;

    fn encoders(text: &str) -> EncodersConfig {
        super::parse_pipeline(text, Path::new("t.toml"))
            .unwrap()
            .encoders
    }

    #[test]
    fn each_kind_is_turned_on_by_its_own_section_and_named_once() {
        let mut seen = std::collections::BTreeSet::new();
        for k in ENCODERS {
            assert!(seen.insert(k.name), "{} twice", k.name);
            // Speech to text needs voice activity beside it.
            let text = match k.name {
                "asr" => "[encoders.vad]\n[encoders.asr]\n".to_string(),
                name => format!("[encoders.{name}]\n"),
            };
            let c = encoders(&text);
            assert!((k.on)(&c), "[encoders.{}] turns {} on", k.name, k.name);
            let on: Vec<_> = crate::encode::names(&c);
            assert!(on.contains(&k.name), "{on:?}");
            assert!(on.len() <= 2, "{} turns on {on:?}", k.name);
        }
        assert_eq!(
            crate::encode::names(&PipelineConfig::builtin().encoders),
            [
                "motion", "loudness", "vad", "faces", "detector", "sound", "asr"
            ],
            "the built-in pipeline runs them all, in table order"
        );
    }

    #[test]
    fn the_readme_reference_pipeline_parses_with_every_kind_reading_its_section() {
        let readme = include_str!("../../README.md");
        let block = readme
            .split("## Pipeline files")
            .nth(1)
            .and_then(|r| r.split("```toml\n").nth(1))
            .and_then(|r| r.split("```").next())
            .expect("README has a pipeline block");
        let p = super::parse_pipeline(block, Path::new("README.md"))
            .unwrap_or_else(|e| panic!("README.md: {e}"));
        assert!(!p.zones.is_empty() && !p.lines.is_empty() && !p.rules.is_empty());
        let on = crate::encode::names(&p.encoders);
        for k in ENCODERS {
            assert!(on.contains(&k.name), "README shows [encoders.{}]", k.name);
        }
    }

    #[test]
    fn turning_voice_activity_off_turns_speech_to_text_off() {
        let mut c = PipelineConfig::builtin().encoders;
        assert!(crate::encode::turn_off(&mut c, "vad"));
        assert!(c.vad.is_none() && c.asr.is_none());
        assert!(c.detector.is_some());
        assert!(!crate::encode::turn_off(&mut c, "no_such_encoder"));
    }

    #[test]
    fn every_manifest_named_is_a_model_and_model_free_encoders_start_no_worker() {
        let all = PipelineConfig::builtin().encoders;
        let metrics = Metrics::new();
        for k in ENCODERS {
            for m in k.manifests {
                let m = crate::encode::runtime::Manifest::builtin(m);
                assert!(!m.name.is_empty(), "{}", k.name);
            }
            let picked = (k.manifest)(&all);
            for m in &picked {
                assert!(k.manifests.contains(m), "{}", k.name);
            }
            match picked.first() {
                Some(_) => {}
                None => assert!(
                    (k.start)(&all, 1, &metrics).unwrap().is_none(),
                    "{}",
                    k.name
                ),
            }
        }
    }
}
