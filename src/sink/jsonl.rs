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
        self.file.write_all(&self.buf).map_err(err)?;
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
