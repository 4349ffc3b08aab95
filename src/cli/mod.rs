//! The commands of the `vigil` binary, on top of the library (`vigil::`).
//! `main.rs` parses the arguments and calls one function here per command;
//! a command's function prints what it has to say and gives the exit code.
//!
//! | file | holds |
//! |---|---|
//! | `args.rs` | the clap arguments: [`args::Cli`], one struct per command |
//! | `run.rs`, `serve.rs` | `vigil run`, `vigil serve` |
//! | `pipeline.rs` | which pipeline `vigil run` runs; encoders by name, those without a model turned off |
//! | `progress.rs` | progress bars on a terminal while a run runs |
//! | `summary.rs` | what is printed after a run, and its exit code |
//! | `remote.rs` | `vigil attach`, `detach`, `streams`: the control API's client side |
//! | `check.rs`, `config.rs` | `vigil check`, `vigil config` |
//! | `events.rs`, `cursors.rs`, `gc.rs` | the output folder: `vigil events`, `cursors`, `gc` |
//! | `ask.rs` | `vigil ask` and `vigil index`: questions to the index of moments |
//! | `models.rs` | `vigil models list`, `verify`, `fetch` |
//! | `clip.rs` | `vigil clip`: a stretch of a file cut out without re-encoding |
//! | `faces.rs` | `vigil faces enroll`, `list`, `name`, `forget`: the face gallery |
//!
//! Errors are `anyhow` here, as in `main.rs`: any error ends the command
//! with exit code 2 and `vigil: ` and its chain on stderr.

pub mod args;
pub mod ask;
pub mod check;
pub mod clip;
pub mod config;
pub mod cursors;
pub mod events;
pub mod faces;
pub mod gc;
pub mod models;
pub mod pipeline;
pub mod progress;
pub mod remote;
pub mod run;
pub mod serve;
pub mod summary;
