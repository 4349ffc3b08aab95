//! `vigil check`: a pipeline file validated, its models loaded, nothing run.

use anyhow::Result;

use super::args::CheckArgs;
use super::pipeline::encoder_names;

pub fn check(args: CheckArgs) -> Result<i32> {
    let CheckArgs { pipeline } = args;
    let config = vigil::encode::load_pipeline(&pipeline)?;
    // Loads each model the pipeline names: missing, corrupt or
    // mismatched ones, and unknown classes, are found here too.
    vigil::encode::check_models(&config.encoders)?;
    if config.sources.is_empty() {
        println!(
            "{}: ok, but it has no [[sources]]: run it with `vigil run {} --source URI`",
            pipeline.display(),
            pipeline.display()
        );
        return Ok(0);
    }
    println!(
        "{}: ok ({} source{}, encoders: {})",
        pipeline.display(),
        config.sources.len(),
        if config.sources.len() == 1 { "" } else { "s" },
        encoder_names(&config).join(", ")
    );
    Ok(0)
}
