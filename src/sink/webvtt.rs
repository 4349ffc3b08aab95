//! Captions as a WebVTT file, one cue per caption, written as they are made.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::record::Record;
use crate::sink::Sink;
use crate::time::Timestamp;

/// Writes captions as WebVTT cues; rewritten at each run.
pub struct WebVttSink {
    path: PathBuf,
    out: BufWriter<File>,
    /// Tag each cue with its stream (`<v cam1>`), when there are several.
    voices: bool,
}

impl WebVttSink {
    pub fn create(path: &Path, voices: bool) -> Result<WebVttSink> {
        let err = |e| {
            Error::io(
                format!("cannot create the captions file {}", path.display()),
                e,
            )
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let mut out = BufWriter::new(File::create(path).map_err(err)?);
        out.write_all(b"WEBVTT\n\n").map_err(err)?;
        out.flush().map_err(err)?;
        Ok(WebVttSink {
            path: path.to_path_buf(),
            out,
            voices,
        })
    }
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
        let err = |e| {
            Error::io(
                format!("cannot write the captions file {}", self.path.display()),
                e,
            )
        };
        for r in batch {
            if let Record::Caption(c) = r {
                // Cue text may not contain "-->" or blank lines.
                let text = c.text.replace("-->", "->").replace('\n', " ");
                let voice = if self.voices {
                    format!("<v {}>", c.stream)
                } else {
                    String::new()
                };
                write!(
                    self.out,
                    "{}\n{} --> {}\n{voice}{text}\n\n",
                    c.id,
                    vtt_time(c.start),
                    vtt_time(c.end)
                )
                .map_err(err)?;
            }
        }
        self.out.flush().map_err(err)
    }

    async fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| {
            Error::io(
                format!("cannot write the captions file {}", self.path.display()),
                e,
            )
        })
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
