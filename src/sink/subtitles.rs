//! Captions as subtitle files (WebVTT or SubRip), one cue per caption,
//! written as they are made.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::record::Record;
use crate::sink::Sink;
use crate::time::Timestamp;

/// A subtitle format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    WebVtt,
    /// SubRip (`.srt`).
    Srt,
}

/// One subtitle file being written, and its cues so far.
struct Subtitles {
    path: PathBuf,
    out: BufWriter<File>,
    cues: u64,
}

/// Writes captions as subtitle cues, rewritten at each run: one file for a
/// single stream, one per stream (`captions.NAME.vtt`) for several, since a
/// subtitle file belongs next to one video and its cues must be in time order.
/// A stream attached while running gets its own file at its first caption.
pub struct SubtitleSink {
    format: Format,
    path: PathBuf,
    files: HashMap<String, Subtitles>,
}

impl SubtitleSink {
    pub fn create(format: Format, path: &Path, streams: &[String]) -> Result<SubtitleSink> {
        let mut files = HashMap::new();
        for stream in streams {
            let p = if streams.len() == 1 {
                path.to_path_buf()
            } else {
                per_stream(path, stream)
            };
            files.insert(stream.clone(), Subtitles::create(format, p)?);
        }
        Ok(SubtitleSink {
            format,
            path: path.to_path_buf(),
            files,
        })
    }
}

impl Subtitles {
    fn create(format: Format, p: PathBuf) -> Result<Subtitles> {
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
        if format == Format::WebVtt {
            out.write_all(b"WEBVTT\n\n").map_err(err)?;
        }
        out.flush().map_err(err)?;
        Ok(Subtitles {
            path: p,
            out,
            cues: 0,
        })
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

/// `HH:MM:SS.mmm` (WebVTT) or `HH:MM:SS,mmm` (SubRip).
pub fn cue_time(t: Timestamp, format: Format) -> String {
    let ms = t.millis_rounded();
    let sep = if format == Format::Srt { ',' } else { '.' };
    format!(
        "{:02}:{:02}:{:02}{sep}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

#[async_trait::async_trait]
impl Sink for SubtitleSink {
    fn name(&self) -> &'static str {
        match self.format {
            Format::WebVtt => "webvtt",
            Format::Srt => "srt",
        }
    }

    async fn send(&mut self, batch: &[Record]) -> Result<()> {
        for r in batch {
            let Record::Caption(c) = r else { continue };
            if !self.files.contains_key(&c.stream) {
                let file = Subtitles::create(self.format, per_stream(&self.path, &c.stream))?;
                self.files.insert(c.stream.clone(), file);
            }
            let Some(f) = self.files.get_mut(&c.stream) else {
                continue;
            };
            let path = &f.path;
            let err = |e| {
                Error::io(
                    format!("cannot write the captions file {}", path.display()),
                    e,
                )
            };
            // Cue text may not contain "-->" or blank lines.
            let text = c.text.replace("-->", "->").replace('\n', " ");
            f.cues += 1;
            // A WebVTT cue is named by the record's id; SubRip numbers them.
            let name = match self.format {
                Format::WebVtt => c.id.clone(),
                Format::Srt => f.cues.to_string(),
            };
            write!(
                f.out,
                "{name}\n{} --> {}\n{text}\n\n",
                cue_time(c.start, self.format),
                cue_time(c.end, self.format)
            )
            .map_err(err)?;
            f.out.flush().map_err(err)?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        for f in self.files.values_mut() {
            f.out.flush().map_err(|e| {
                Error::io(
                    format!("cannot write the captions file {}", f.path.display()),
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
        let t = Timestamp(3_723_456_000_000);
        assert_eq!(cue_time(t, Format::WebVtt), "01:02:03.456");
        assert_eq!(cue_time(t, Format::Srt), "01:02:03,456");
        assert_eq!(
            cue_time(Timestamp(5_000_000_000), Format::WebVtt),
            "00:00:05.000"
        );
    }
}
