//! `vigil config --defaults`: the built-in pipeline, as a file to start from.

use anyhow::{Result, bail};

use vigil::config::DEFAULT_PIPELINE;

use super::args::ConfigArgs;

pub fn config(args: ConfigArgs) -> Result<i32> {
    if !args.defaults {
        bail!("nothing to print: use `vigil config --defaults`");
    }
    print!("{DEFAULT_PIPELINE}");
    Ok(0)
}
