//! The JSONL event log: one record per line, appended as records are made and
//! fsynced after every batch (at least once per chunk).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::record::Record;
use crate::sink::Sink;

/// Appends records to a JSONL file.
///
/// Each batch goes out in one `write` and is then fsynced, so a crash can cut
/// at most the last line short. The log is only ever appended to: a reader
/// tells runs apart by `run`. A cut line left by a crash is ended with a
/// newline when the log is next opened, so that readers can skip it.
pub struct JsonlSink {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    /// A write failed part-way: the next one starts on a new line, so that
    /// its first record is not glued to the cut one.
    cut: bool,
}

impl JsonlSink {
    pub fn open(path: &Path) -> Result<JsonlSink> {
        let err = |e| Error::io(format!("cannot open the event log {}", path.display()), e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(err)?;
        let len = file.metadata().map_err(err)?.len();
        if len > 0 {
            let mut last = [0u8];
            file.seek(SeekFrom::Start(len - 1)).map_err(err)?;
            file.read_exact(&mut last).map_err(err)?;
            if last[0] != b'\n' {
                file.write_all(b"\n").map_err(err)?;
            }
        }
        Ok(JsonlSink {
            path: path.to_path_buf(),
            file,
            buf: Vec::new(),
            cut: false,
        })
    }
}

#[async_trait::async_trait]
impl Sink for JsonlSink {
    fn name(&self) -> &'static str {
        "jsonl"
    }

    async fn send(&mut self, batch: &[Record]) -> Result<()> {
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
        let err = |e| {
            Error::io(
                format!("cannot write the event log {}", self.path.display()),
                e,
            )
        };
        if let Err(e) = self.file.write_all(&self.buf) {
            self.cut = true;
            return Err(err(e));
        }
        self.file.sync_data().map_err(err)
    }

    async fn flush(&mut self) -> Result<()> {
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
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let mut sink = JsonlSink::open(&path).unwrap_or_else(|e| panic!("{e}"));
        rt.block_on(sink.send(&[caption("s/2"), caption("s/3")]))
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
}
