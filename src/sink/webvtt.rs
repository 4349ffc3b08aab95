//! Captions as a WebVTT file, one cue per caption, written as they are made.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::record::Record;
use crate::sink::Sink;
use crate::time::Timestamp;

/// Writes captions as WebVTT cues, rewritten at each run: one file for a
/// single stream, one per stream (`captions.NAME.vtt`) for several, since a
/// WebVTT file belongs next to one video and its cues must be in time order.
pub struct WebVttSink {
    files: HashMap<String, (PathBuf, BufWriter<File>)>,
}

impl WebVttSink {
    pub fn create(path: &Path, streams: &[String]) -> Result<WebVttSink> {
        let mut files = HashMap::new();
        for stream in streams {
            let p = if streams.len() == 1 {
                path.to_path_buf()
            } else {
                per_stream(path, stream)
            };
            let err = |e| {
                Error::io(
                    format!("cannot create the captions file {}", p.display()),
                    e,
                )
            };
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(err)?;
            }
            let mut out = BufWriter::new(File::create(&p).map_err(err)?);
            out.write_all(b"WEBVTT\n\n").map_err(err)?;
            out.flush().map_err(err)?;
            files.insert(stream.clone(), (p, out));
        }
        Ok(WebVttSink { files })
    }
}

/// `dir/captions.vtt` → `dir/captions.NAME.vtt`.
pub fn per_stream(path: &Path, stream: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map_or("captions".into(), |s| s.to_string_lossy().into_owned());
    let ext = path
        .extension()
        .map_or("vtt".into(), |e| e.to_string_lossy().into_owned());
    path.with_file_name(format!("{stem}.{stream}.{ext}"))
}

/// `HH:MM:SS.mmm`
pub fn vtt_time(t: Timestamp) -> String {
    let ms = t.millis_rounded();
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

#[async_trait::async_trait]
impl Sink for WebVttSink {
    fn name(&self) -> &'static str {
        "webvtt"
    }

    async fn send(&mut self, batch: &[Record]) -> Result<()> {
        for r in batch {
            let Record::Caption(c) = r else { continue };
            let Some((path, out)) = self.files.get_mut(&c.stream) else {
                continue;
            };
            let err = |e| {
                Error::io(
                    format!("cannot write the captions file {}", path.display()),
                    e,
                )
            };
            // Cue text may not contain "-->" or blank lines.
            let text = c.text.replace("-->", "->").replace('\n', " ");
            write!(
                out,
                "{}\n{} --> {}\n{text}\n\n",
                c.id,
                vtt_time(c.start),
                vtt_time(c.end)
            )
            .map_err(err)?;
            out.flush().map_err(err)?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        for (path, out) in self.files.values_mut() {
            out.flush().map_err(|e| {
                Error::io(
                    format!("cannot write the captions file {}", path.display()),
                    e,
                )
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_hours_minutes_seconds_millis() {
        assert_eq!(vtt_time(Timestamp(3_723_456_000_000)), "01:02:03.456");
        assert_eq!(vtt_time(Timestamp(5_000_000_000)), "00:00:05.000");
    }
}
