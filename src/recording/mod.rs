//! Recordings: media kept as the source encoded it, never re-encoded.
//!
//! [`cut`] takes a stretch of a file's video out of it, from the keyframe
//! at or before the start (so that the clip plays from its first frame)
//! to the end; [`writer`] writes encoded packets into an MP4 (H.264,
//! H.265) or Matroska (anything else). Event clips with pre- and post-roll
//! and continuous segments build on these.

pub mod cut;
pub mod writer;

pub use cut::{Cut, cut};
