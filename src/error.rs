//! The library's error type: every message says what, where, and what to do.

use std::path::PathBuf;

/// Errors of the library. `main.rs` wraps them with `anyhow` for the CLI.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A pipeline file could not be read, parsed or validated.
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },

    /// A configuration value is invalid (no file position known).
    #[error("invalid configuration: {0}")]
    Invalid(String),

    /// A face cannot be enrolled (`vigil faces enroll`).
    #[error("cannot enroll: {0}")]
    Enroll(String),

    /// A stretch asked of a file or a recording cannot be cut (`vigil clip`).
    #[error("cannot cut: {0}")]
    Cut(String),

    /// A source cannot be opened or played.
    #[error("stream '{stream}': {message}")]
    Source { stream: String, message: String },

    /// GStreamer could not build or run something.
    #[error("GStreamer: {0}")]
    Gst(String),

    /// An encoder failed on a stream.
    #[error("stream '{stream}', encoder '{encoder}': {message}")]
    Encoder {
        stream: String,
        encoder: String,
        message: String,
    },

    /// A model (or ONNX Runtime) is missing, corrupt or not what its manifest says.
    #[error("model '{model}': {message}")]
    Model { model: String, message: String },

    /// A sink could not write.
    #[error("sink '{sink}': {message}")]
    Sink { sink: String, message: String },

    /// The event store (SQLite) at `path`.
    #[error("event store {}: {message}", path.display())]
    Store { path: PathBuf, message: String },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
