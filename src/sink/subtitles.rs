//! Captions as subtitle files (WebVTT or SubRip), one cue per caption,
//! written as they are made; rotated by size when the pipeline asks, each
//! rotated file a whole subtitle file of its own (a WebVTT one starts with
//! its header; SubRip numbers start again at 1).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::config::Rotation;
use crate::error::{Error, Result};
use crate::record::Record;
use crate::sink::retention::{self, rotate};
use crate::sink::{Sink, SinkKind};
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
    /// Bytes written to the file.
    len: u64,
    /// The UTC of its first cue, for its rotated name.
    first_utc: Option<String>,
}

/// Writes captions as subtitle cues, rewritten at each run: one file for a
/// single stream, one per stream (`captions.NAME.vtt`) for several, since a
/// subtitle file belongs next to one video and its cues must be in time order.
/// A stream attached while running gets its own file at its first caption.
pub struct SubtitleSink {
    format: Format,
    path: PathBuf,
    files: HashMap<String, Subtitles>,
    rotation: Option<Rotation>,
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
            rotation: None,
        })
    }

    /// Rotates each file by size.
    pub fn rotate(mut self, rotation: Rotation) -> SubtitleSink {
        self.rotation = Some(rotation);
        self
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
        let header: &[u8] = match format {
            Format::WebVtt => b"WEBVTT\n\n",
            Format::Srt => b"",
        };
        out.write_all(header).map_err(err)?;
        out.flush().map_err(err)?;
        Ok(Subtitles {
            path: p,
            out,
            cues: 0,
            len: header.len() as u64,
            first_utc: None,
        })
    }

    /// Renames the full file after its first cue and starts a new one,
    /// then deletes the rotated files beyond `keep`. Failing to rotate is
    /// not failing to write: cues go on to the file they went to.
    fn rotate(&mut self, format: Format, keep: usize) -> Result<()> {
        let err = |e| {
            Error::io(
                format!("cannot write the captions file {}", self.path.display()),
                e,
            )
        };
        self.out.flush().map_err(err)?;
        let stamp = self
            .first_utc
            .as_deref()
            .and_then(rotate::stamp)
            .unwrap_or_else(rotate::stamp_now);
        if let Err(e) = rotate::rotate(&self.path, &stamp) {
            tracing::warn!(
                "cannot rotate the captions file {}: {e}",
                self.path.display()
            );
            return Ok(());
        }
        *self = Subtitles::create(format, self.path.clone())?;
        if let Err(e) = retention::prune_rotated(&self.path, keep, None, false, &mut |_, _| {}) {
            tracing::warn!(
                "cannot delete old rotated captions of {}: {e}",
                self.path.display()
            );
        }
        Ok(())
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

impl Sink for SubtitleSink {
    fn kind(&self) -> SinkKind {
        match self.format {
            Format::WebVtt => SinkKind::WebVtt,
            Format::Srt => SinkKind::Srt,
        }
    }

    fn send(&mut self, batch: &[Record]) -> Result<()> {
        for r in batch {
            let Record::Caption(c) = r else { continue };
            if !self.files.contains_key(&c.stream) {
                let file = Subtitles::create(self.format, per_stream(&self.path, &c.stream))?;
                self.files.insert(c.stream.clone(), file);
            }
            let Some(f) = self.files.get_mut(&c.stream) else {
                continue;
            };
            // Cue text may not contain "-->" or blank lines.
            let text = c.text.replace("-->", "->").replace('\n', " ");
            let times = format!(
                "{} --> {}",
                cue_time(c.start, self.format),
                cue_time(c.end, self.format)
            );
            // A WebVTT cue is named by the record's id; SubRip numbers them.
            let cue = |n: u64| {
                let name = match self.format {
                    Format::WebVtt => c.id.clone(),
                    Format::Srt => n.to_string(),
                };
                format!("{name}\n{times}\n{text}\n\n")
            };
            if let Some(r) = self.rotation
                && f.cues > 0
                && f.len + cue(f.cues + 1).len() as u64 > r.max_bytes
            {
                f.rotate(self.format, r.keep)?;
            }
            f.cues += 1;
            let cue = cue(f.cues);
            if f.first_utc.is_none() {
                f.first_utc = Some(c.utc.clone());
            }
            let path = &f.path;
            let err = |e| {
                Error::io(
                    format!("cannot write the captions file {}", path.display()),
                    e,
                )
            };
            f.out.write_all(cue.as_bytes()).map_err(err)?;
            f.out.flush().map_err(err)?;
            f.len += cue.len() as u64;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
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

    #[test]
    fn each_rotated_file_is_a_whole_subtitle_file() {
        use crate::record::CaptionRecord;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for (format, name) in [
            (Format::WebVtt, "captions.vtt"),
            (Format::Srt, "captions.srt"),
        ] {
            let path = dir.path().join(name);
            let mut sink = SubtitleSink::create(format, &path, &["cam".into()])
                .unwrap_or_else(|e| panic!("{e}"))
                .rotate(Rotation {
                    max_bytes: 200,
                    keep: 100,
                });
            for i in 0..20u64 {
                let c = Record::Caption(CaptionRecord {
                    run: "r".into(),
                    id: format!("cam/{i}"),
                    stream: "cam".into(),
                    start: Timestamp(i * 5_000_000_000),
                    end: Timestamp((i + 1) * 5_000_000_000),
                    utc: format!("2026-11-28T15:00:{:02}.000Z", i * 2),
                    text: "a person walks left".into(),
                });
                sink.send(&[c]).unwrap_or_else(|e| panic!("{e}"));
            }
            sink.flush().unwrap_or_else(|e| panic!("{e}"));
            let files: Vec<PathBuf> = rotate::rotated(&path)
                .unwrap_or_default()
                .into_iter()
                .chain([path.clone()])
                .collect();
            assert!(files.len() > 3, "{files:?}");
            let mut cues = 0;
            for f in &files {
                let text = std::fs::read_to_string(f).unwrap_or_default();
                assert!(text.len() <= 200, "{}: {} bytes", f.display(), text.len());
                let blocks: Vec<&str> = text
                    .trim_start_matches("WEBVTT\n\n")
                    .split("\n\n")
                    .filter(|b| !b.is_empty())
                    .collect();
                match format {
                    Format::WebVtt => assert!(text.starts_with("WEBVTT\n\n"), "{text}"),
                    Format::Srt => {
                        let numbers: Vec<&str> =
                            blocks.iter().filter_map(|b| b.lines().next()).collect();
                        let want: Vec<String> = (1..=blocks.len()).map(|n| n.to_string()).collect();
                        assert_eq!(numbers, want, "{text}");
                    }
                }
                cues += blocks.len();
            }
            assert_eq!(cues, 20, "every cue in one file or another");
        }
    }
}
