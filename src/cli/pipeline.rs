//! Which pipeline `vigil run` runs, and its encoders by name (`vigil
//! check` lists them); the built-in pipeline turns off the encoders whose
//! models are not installed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use vigil::config::PipelineConfig;

/// The pipeline `vigil run` runs when given neither a pipeline nor sources.
const DEMO_PIPELINE: &str = "pipelines/demo.toml";

pub fn encoder_names(config: &PipelineConfig) -> Vec<&'static str> {
    let mut v = Vec::new();
    if config.encoders.motion.is_some() {
        v.push("motion");
    }
    if config.encoders.loudness.is_some() {
        v.push("loudness");
    }
    if config.encoders.vad.is_some() {
        v.push("vad");
    }
    if config.encoders.faces.is_some() {
        v.push("faces");
    }
    if config.encoders.detector.is_some() {
        v.push("detector");
    }
    if config.encoders.sound.is_some() {
        v.push("sound");
    }
    if config.encoders.asr.is_some() {
        v.push("asr");
    }
    v
}

pub fn load_pipeline(pipeline: Option<PathBuf>, sources: &[String]) -> Result<PipelineConfig> {
    let mut config = match (&pipeline, sources.is_empty()) {
        (Some(p), _) => PipelineConfig::load(p)?,
        (None, false) => {
            // The built-in pipeline turns on every encoder whose model is here.
            let mut config = PipelineConfig::builtin();
            for (encoder, model) in vigil::encode::missing_models(&config.encoders) {
                eprintln!(
                    "warning: encoder '{encoder}' is off: model '{model}' is not installed; run `make setup` (or `bash models/fetch.sh {model}`)"
                );
                match encoder {
                    "vad" => {
                        config.encoders.vad = None;
                        // Speech to text works on what VAD hears.
                        config.encoders.asr = None;
                    }
                    "faces" => config.encoders.faces = None,
                    "detector" => config.encoders.detector = None,
                    "sound" => config.encoders.sound = None,
                    "asr" => config.encoders.asr = None,
                    _ => {}
                }
            }
            config
        }
        (None, true) => PipelineConfig::load(Path::new(DEMO_PIPELINE))
            .with_context(|| format!("`vigil run` alone runs {DEMO_PIPELINE}; run it from the repository, or name a pipeline or --source"))?,
    };
    if !sources.is_empty() {
        config.set_sources(sources);
    }
    if config.sources.is_empty() {
        bail!("the pipeline has no sources: add [[sources]] or pass --source URI");
    }
    Ok(config)
}
