//! `vigil gc`: a pipeline's retention, applied to its output folder now.

use anyhow::{Result, bail};

use vigil::config::PipelineConfig;

use super::args::GcArgs;

pub fn gc(args: GcArgs) -> Result<i32> {
    use vigil::sink::retention::{gc, media::Deleted};
    let GcArgs {
        pipeline,
        out,
        dry_run,
        grace,
    } = args;
    let out = out.as_path();
    let config = match &pipeline {
        Some(p) => vigil::encode::load_pipeline(p)?,
        None => PipelineConfig::builtin(),
    };
    if !out.is_dir() {
        bail!("{}: no such output folder (--out)", out.display());
    }
    let options = gc::GcOptions { dry_run, grace };
    let report = gc::gc(&config, out, &options, &mut |path, bytes| {
        if dry_run {
            println!("would delete {} ({bytes} bytes)", path.display());
        }
    })?;
    let verb = if dry_run { "would delete" } else { "deleted" };
    let files = |d: Deleted, what: &str| format!("{} {what} ({})", d.files, size(d.bytes));
    println!(
        "store: {verb} {} records, {}",
        report.store_records,
        files(report.store_media, "snapshots they named")
    );
    println!(
        "logs: {verb} {}, {}",
        files(report.logs, "rotated files beyond keep"),
        files(report.log_media, "snapshots they named")
    );
    println!(
        "recording: {verb} {}",
        files(
            report.segments,
            "segments past the store's max_age or max_size_mib"
        )
    );
    match &report.orphans_skipped {
        Some(why) => println!("orphans: not looked for: {why}"),
        None => println!(
            "orphans: {verb} {}, {} empty folders",
            files(report.orphans, "snapshots and clips no record names"),
            report.folders
        ),
    }
    let total = report.store_media.bytes
        + report.segments.bytes
        + report.logs.bytes
        + report.log_media.bytes
        + report.orphans.bytes;
    println!("total: {verb} {}", size(total));
    Ok(0)
}

/// Bytes for people: `512 B`, `3.2 KiB`, `1.5 MiB`, `2.0 GiB`.
fn size(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KiB", b / 1024.0),
        1_048_576..1_073_741_824 => format!("{:.1} MiB", b / 1_048_576.0),
        _ => format!("{:.1} GiB", b / 1_073_741_824.0),
    }
}
