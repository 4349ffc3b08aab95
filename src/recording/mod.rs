//! Recordings: media kept as the source encoded it, never re-encoded.
//!
//! [`cut`] takes a stretch of a file's video out of it, from the keyframe
//! at or before the start (so that the clip plays from its first frame)
//! to the end; [`writer`] writes encoded packets into an MP4 (H.264,
//! H.265) or Matroska (anything else); [`recorder`] makes a stream's
//! event clips, with pre- and post-roll, from the packets its [`feed`]
//! gives (a file read again in step with the analysis, or a live
//! source's packets as they come), and, with continuous recording, its
//! [`segments`], which [`cut_segments`] cuts from later.

pub mod cut;
pub mod feed;
pub mod recorder;
pub mod segments;
pub mod writer;

pub use cut::{Cut, cut, cut_segments};
pub use feed::{Feed, FileFeed};
pub use recorder::{ClipCounts, ClipRef, ClipSettings, Recorder};
pub use segments::SegmentSettings;
