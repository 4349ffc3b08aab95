//! The JSONL event log: one record per line, appended as records are made and
//! fsynced after every batch (at least once per chunk); rotated by size when
//! the pipeline asks.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use crate::config::Rotation;
use crate::error::{Error, Result};
use crate::record::Record;
use crate::sink::retention::{self, rotate};
use crate::sink::{Sink, SinkKind};

/// Appends records to a JSONL file.
///
/// Each batch goes out in one `write` and is then fsynced, so a crash can cut
/// at most the last line short. The log is only ever appended to: a reader
/// tells runs apart by `run`. A cut line left by a crash is ended with a
/// newline when the log is next opened, so that readers can skip it.
///
/// With a [`Rotation`], a batch that would take the file past its size
/// goes to a new file instead, once the full one is renamed after its first
/// record's time: rotation happens between batches, so no line is ever
/// split and every record is fsynced in one file or the other. The oldest
/// rotated files beyond `keep` are deleted on a thread of their own.
pub struct JsonlSink {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    /// A write failed part-way: the next one starts on a new line, so that
    /// its first record is not glued to the cut one.
    cut: bool,
    rotation: Option<Rotation>,
    /// Bytes in the current file.
    len: u64,
    /// The UTC of the current file's first record, for its rotated name.
    first_utc: Option<String>,
    /// Where the snapshots are, when this log is what names them (there is
    /// no store): a deleted rotated file takes its records' snapshots along.
    media_root: Option<PathBuf>,
    /// Deleting the rotated files beyond `keep`.
    sweeper: Option<JoinHandle<()>>,
}

impl JsonlSink {
    pub fn open(path: &Path) -> Result<JsonlSink> {
        let err = |e| Error::io(format!("cannot open the event log {}", path.display()), e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let mut file = open_log(path).map_err(err)?;
        let mut len = file.metadata().map_err(err)?.len();
        if len > 0 {
            let mut last = [0u8];
            file.seek(SeekFrom::Start(len - 1)).map_err(err)?;
            file.read_exact(&mut last).map_err(err)?;
            if last[0] != b'\n' {
                file.write_all(b"\n").map_err(err)?;
                len += 1;
            }
        }
        Ok(JsonlSink {
            path: path.to_path_buf(),
            file,
            buf: Vec::new(),
            cut: false,
            rotation: None,
            len,
            first_utc: None,
            media_root: None,
            sweeper: None,
        })
    }

    /// Rotates the log by size; `media_root`: see [`JsonlSink`].
    pub fn rotate(mut self, rotation: Rotation, media_root: Option<&Path>) -> JsonlSink {
        if self.len > 0 {
            self.first_utc = first_utc(&self.path);
        }
        self.rotation = Some(rotation);
        self.media_root = media_root.map(Path::to_path_buf);
        self
    }

    /// Renames the full file after its first record and starts a new one.
    /// Failing to is not the log failing: the records go on to the file
    /// they went to, and the next batch tries again.
    fn start_new_file(&mut self, keep: usize) {
        let stamp = self
            .first_utc
            .as_deref()
            .and_then(rotate::stamp)
            .unwrap_or_else(rotate::stamp_now);
        let renamed = match rotate::rotate(&self.path, &stamp) {
            Ok(to) => to,
            Err(e) => {
                tracing::warn!("cannot rotate the event log {}: {e}", self.path.display());
                return;
            }
        };
        match open_log(&self.path) {
            Ok(f) => {
                self.file = f;
                self.len = 0;
                self.first_utc = None;
            }
            // Still appending to the renamed file, which the handle is.
            Err(e) => {
                tracing::warn!(
                    "cannot start a new event log {} (appending to {}): {e}",
                    self.path.display(),
                    renamed.display()
                );
                return;
            }
        }
        self.sweep(keep);
    }

    /// Deletes the rotated files beyond `keep` on a thread of its own.
    fn sweep(&mut self, keep: usize) {
        if let Some(h) = self.sweeper.take() {
            let _ = h.join();
        }
        let (path, root) = (self.path.clone(), self.media_root.clone());
        let spawned = std::thread::Builder::new()
            .name("jsonl-retention".into())
            .spawn(move || {
                match retention::prune_rotated(&path, keep, root.as_deref(), false, &mut |_, _| {})
                {
                    Ok((logs, media)) if logs.files > 0 => tracing::info!(
                        log = %path.display(),
                        files = logs.files,
                        bytes = logs.bytes,
                        media_files = media.files,
                        media_bytes = media.bytes,
                        "rotated event logs deleted"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(
                        "cannot delete old rotated event logs of {}: {e}",
                        path.display()
                    ),
                }
            });
        match spawned {
            Ok(h) => self.sweeper = Some(h),
            Err(e) => tracing::warn!("cannot start the event log's retention: {e}"),
        }
    }
}

fn open_log(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
}

/// The `utc` of the first record of the log at `path`.
fn first_utc(path: &Path) -> Option<String> {
    let file = File::open(path).ok()?;
    let mut line = String::new();
    std::io::BufReader::new(file).read_line(&mut line).ok()?;
    let v: serde_json::Value = serde_json::from_str(&line).ok()?;
    v.get("utc")?.as_str().map(str::to_string)
}

impl Sink for JsonlSink {
    fn kind(&self) -> SinkKind {
        SinkKind::Jsonl
    }

    fn send(&mut self, batch: &[Record]) -> Result<()> {
        self.buf.clear();
        if std::mem::take(&mut self.cut) {
            self.buf.push(b'\n');
        }
        for r in batch {
            serde_json::to_writer(&mut self.buf, r).map_err(|e| Error::Sink {
                sink: "jsonl".into(),
                message: format!("cannot encode a record: {e}"),
            })?;
            self.buf.push(b'\n');
        }
        if let Some(r) = self.rotation
            && self.len > 0
            && self.len + self.buf.len() as u64 > r.max_bytes
        {
            self.start_new_file(r.keep);
        }
        if self.first_utc.is_none() {
            self.first_utc = batch.first().map(|r| r.utc().to_string());
        }
        let err = |e| {
            Error::io(
                format!("cannot write the event log {}", self.path.display()),
                e,
            )
        };
        if let Err(e) = self.file.write_all(&self.buf) {
            self.cut = true;
            // What was written of it counts towards the size.
            self.len = self.file.metadata().map_or(self.len, |m| m.len());
            return Err(err(e));
        }
        self.len += self.buf.len() as u64;
        self.file.sync_data().map_err(err)
    }

    fn flush(&mut self) -> Result<()> {
        if let Some(h) = self.sweeper.take() {
            let _ = h.join();
        }
        self.file.sync_all().map_err(|e| {
            Error::io(
                format!("cannot sync the event log {}", self.path.display()),
                e,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{CaptionRecord, Record};
    use crate::time::Timestamp;

    fn caption(id: &str) -> Record {
        Record::Caption(CaptionRecord {
            run: "r".into(),
            id: id.into(),
            stream: "s".into(),
            start: Timestamp::ZERO,
            end: Timestamp(5_000_000_000),
            utc: "2026-11-28T15:00:00.000Z".into(),
            text: "no change".into(),
        })
    }

    #[test]
    fn a_line_cut_by_a_crash_stays_skippable() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("events.jsonl");
        // What a crash in the middle of a write leaves: a whole line, then half of one.
        let whole = serde_json::to_string(&caption("s/1")).unwrap_or_default();
        std::fs::write(&path, format!("{whole}\n{}", &whole[..20]))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut sink = JsonlSink::open(&path).unwrap_or_else(|e| panic!("{e}"));
        sink.send(&[caption("s/2"), caption("s/3")])
            .unwrap_or_else(|e| panic!("{e}"));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        let parsed: Vec<Record> = lines
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        assert_eq!(parsed, vec![caption("s/1"), caption("s/2"), caption("s/3")]);
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn rotation_splits_between_batches_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("events.jsonl");
        let one = serde_json::to_string(&caption("s/1"))
            .unwrap_or_default()
            .len() as u64
            + 1;
        // Three records a file; a batch of two never straddles two files.
        let mut sink = JsonlSink::open(&path)
            .unwrap_or_else(|e| panic!("{e}"))
            .rotate(
                Rotation {
                    max_bytes: 3 * one,
                    keep: 2,
                },
                None,
            );
        let mut id = 0;
        for n in [1, 2, 2, 1, 2, 2, 2] {
            let batch: Vec<Record> = (0..n)
                .map(|_| {
                    id += 1;
                    let mut c = caption(&format!("s/{id}"));
                    if let Record::Caption(c) = &mut c {
                        c.utc = format!("2026-11-28T15:00:{id:02}.000Z");
                    }
                    c
                })
                .collect();
            sink.send(&batch).unwrap_or_else(|e| panic!("{e}"));
        }
        sink.flush().unwrap_or_else(|e| panic!("{e}"));
        let rotated = rotate::rotated(&path).unwrap_or_default();
        let names: Vec<String> = rotated
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        // Files: [1,2,3] [4,5,6] [7,8] [9,10] [11,12]; the first two went.
        assert_eq!(
            names,
            [
                "events.2026-11-28T15-00-07.000Z.jsonl",
                "events.2026-11-28T15-00-09.000Z.jsonl"
            ]
        );
        let ids: Vec<String> = rotated
            .iter()
            .chain([&path])
            .flat_map(|p| {
                std::fs::read_to_string(p)
                    .unwrap_or_default()
                    .lines()
                    .map(|l| match serde_json::from_str::<Record>(l) {
                        Ok(Record::Caption(c)) => c.id,
                        other => panic!("{other:?}"),
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(ids, (7..=12).map(|i| format!("s/{i}")).collect::<Vec<_>>());
    }
}
