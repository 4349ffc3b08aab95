//! Which pipeline `vigil run` runs, and its encoders by name (`vigil
//! check` lists them); the built-in pipeline turns off the encoders whose
//! models are not installed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use vigil::config::PipelineConfig;

/// The pipeline `vigil run` runs when given neither a pipeline nor sources.
const DEMO_PIPELINE: &str = "pipelines/demo.toml";

/// The encoders the pipeline turns on, in the order they run.
pub fn encoder_names(config: &PipelineConfig) -> Vec<&'static str> {
    vigil::encode::names(&config.encoders)
}

pub fn load_pipeline(pipeline: Option<PathBuf>, sources: &[String]) -> Result<PipelineConfig> {
    let mut config = match (&pipeline, sources.is_empty()) {
        (Some(p), _) => vigil::encode::load_pipeline(p)?,
        (None, false) => {
            // The built-in pipeline turns on every encoder whose model is here.
            let mut config = PipelineConfig::builtin();
            for (encoder, model) in vigil::encode::missing_models(&config.encoders) {
                eprintln!(
                    "warning: encoder '{encoder}' is off: model '{model}' is not installed; {}",
                    vigil::encode::runtime::install_hint(&model)
                );
                // Turning VAD off turns speech to text off too: it works on what VAD hears.
                vigil::encode::turn_off(&mut config.encoders, encoder);
            }
            config
        }
        (None, true) => vigil::encode::load_pipeline(Path::new(DEMO_PIPELINE))
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
