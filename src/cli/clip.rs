//! `vigil clip`: a stretch of a file's video, or of a stream's continuous
//! recording, cut out without re-encoding.

use anyhow::{Context, Result, bail};

use vigil::time::Timestamp;

use super::args::ClipArgs;

pub fn clip(args: ClipArgs) -> Result<i32> {
    if let Some(stream) = &args.stream {
        return from_segments(stream, &args);
    }
    let Some(source) = &args.source else {
        bail!("give --source FILE or --stream NAME");
    };
    let from = time(&args.from).with_context(|| format!("--from {}", args.from))?;
    let to = time(&args.to).with_context(|| format!("--to {}", args.to))?;
    let cut = vigil::recording::cut(source, from, to, &args.out)?;
    println!(
        "{}: {} frames from {} (the keyframe at or before {from}) to {}, not re-encoded",
        cut.path.display(),
        cut.frames,
        cut.start,
        cut.last
    );
    Ok(0)
}

/// Cuts a stretch of `stream`'s continuous recording.
fn from_segments(stream: &str, args: &ClipArgs) -> Result<i32> {
    let from = utc(&args.from).with_context(|| format!("--from {}", args.from))?;
    let to = utc(&args.to).with_context(|| format!("--to {}", args.to))?;
    let folder = args.segments.join(stream);
    let (cut, base) = vigil::recording::cut_segments(&folder, from, to, &args.out)?;
    let at = |t: Timestamp| vigil::record::utc_string(base, t);
    println!(
        "{}: {} frames from {} (the keyframe at or before {}) to {}, from {} segment(s), not re-encoded",
        cut.path.display(),
        cut.frames,
        at(cut.start),
        args.from,
        at(cut.last),
        cut.files
    );
    for (start, length) in &cut.gaps {
        println!(
            "  nothing recorded for {:.1} s after {} (the stream was away)",
            *length as f64 / 1e9,
            at(*start)
        );
    }
    Ok(0)
}

/// UTC in RFC 3339, in nanoseconds since the epoch.
fn utc(text: &str) -> Result<i64> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .context("expected UTC in RFC 3339, as records' utc (2026-12-06T03:41:27.5Z)")?
        .timestamp_nanos_opt()
        .context("out of range")
}

/// Seconds with up to nine decimals (`12.5`), or a duration (`1m30s`),
/// exactly, in nanoseconds.
fn time(text: &str) -> Result<Timestamp> {
    let t = text.trim();
    if let Ok(d) = humantime::parse_duration(t) {
        return Ok(Timestamp(u64::try_from(d.as_nanos()).context("too far")?));
    }
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 9
    {
        bail!("expected seconds (12.5) or a duration (1m30s)");
    }
    let secs: u64 = if whole.is_empty() { 0 } else { whole.parse()? };
    let nanos: u64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse()?
    };
    secs.checked_mul(1_000_000_000)
        .and_then(|s| s.checked_add(nanos))
        .map(Timestamp)
        .context("too far")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_exact() {
        assert_eq!(time("12.5").unwrap(), Timestamp(12_500_000_000));
        assert_eq!(time("10").unwrap(), Timestamp(10_000_000_000));
        assert_eq!(time("1m30s").unwrap(), Timestamp(90_000_000_000));
        assert_eq!(time(".000000001").unwrap(), Timestamp(1));
        assert!(time("-1").is_err() && time("1.2.3").is_err() && time("").is_err());
    }
}
