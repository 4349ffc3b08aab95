//! Continuous recording: every packet of a stream, in files of about
//! `segment` each (a new one starts on the first keyframe at or after
//! that length), named by the UTC of their first frame so that any moment
//! can be found and cut out later ([`crate::recording::cut_segments`]).
//!
//! Files go to `OUT/segments/STREAM/20261206T034127.123456789Z.mp4`
//! (`.mkv` for codecs MP4 cannot hold). A segment ends early where the
//! picture's format changes or the stream has a gap (a camera that
//! dropped): the next starts on the first keyframe after it, so that the
//! files' times never claim what was not recorded.

use std::path::{Path, PathBuf};

use crate::media::{Branch, Packet};
use crate::recording::writer::{ClipWriter, extension};
use crate::time::{SECOND, Timestamp};

/// A pause between packets longer than this ends a segment.
pub const GAP: u64 = 3 * SECOND;

/// The layout of a segment's name, without its extension.
const NAME: &str = "%Y%m%dT%H%M%S%.9fZ";

/// A segment's file name (without extension) for its first frame at
/// `utc` (nanoseconds since the epoch).
pub fn name(utc: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(utc)
        .format(NAME)
        .to_string()
}

/// The UTC (nanoseconds) a segment's file name says, and its number
/// among segments of the same name (`NAME-2.mp4`: files whose times are
/// not the wall clock's, such as one file attached again, start at the
/// same nominal UTC; none is written over), if it is one.
pub fn parse_name(file: &str) -> Option<(i64, u32)> {
    let stem = file
        .strip_suffix(".mp4")
        .or_else(|| file.strip_suffix(".mkv"))?;
    let (stem, n) = match stem.rsplit_once('-') {
        Some((s, n)) => (s, n.parse().ok().filter(|n| *n > 0)?),
        None => (stem, 0),
    };
    let utc = chrono::NaiveDateTime::parse_from_str(stem, NAME)
        .ok()?
        .and_utc()
        .timestamp_nanos_opt()?;
    Some((utc, n))
}

/// A path in `folder` for a new segment named `stem` with extension
/// `ext` that no file (finished or being written) has.
fn free_path(folder: &Path, stem: &str, ext: &str) -> PathBuf {
    let taken = |p: &Path| {
        let mut part = p.as_os_str().to_owned();
        part.push(".part");
        p.exists() || Path::new(&part).exists()
    };
    let first = folder.join(format!("{stem}.{ext}"));
    if !taken(&first) {
        return first;
    }
    (1..)
        .map(|n| folder.join(format!("{stem}-{n}.{ext}")))
        .find(|p| !taken(p))
        .unwrap_or(first)
}

/// A finished segment on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub path: PathBuf,
    /// UTC of its first frame, nanoseconds.
    pub utc: i64,
    /// Its number among segments of the same UTC (0: the first).
    pub n: u32,
    pub bytes: u64,
}

/// The finished segments in `folder` (one stream's), oldest first.
/// Files being written (`.part`) and others are left out.
pub fn list(folder: &Path) -> Vec<Segment> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut found: Vec<Segment> = entries
        .flatten()
        .filter_map(|e| {
            let (utc, n) = parse_name(e.file_name().to_str()?)?;
            let meta = e.metadata().ok().filter(|m| m.is_file())?;
            Some(Segment {
                path: e.path(),
                utc,
                n,
                bytes: meta.len(),
            })
        })
        .collect();
    found.sort_by_key(|s| (s.utc, s.n));
    found
}

/// Every stream's finished segments under `root` (`OUT/segments`),
/// oldest first.
pub fn list_all(root: &Path) -> Vec<Segment> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut all: Vec<Segment> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .flat_map(|e| list(&e.path()))
        .collect();
    all.sort_by(|a, b| (a.utc, a.n, &a.path).cmp(&(b.utc, b.n, &b.path)));
    all
}

/// Where a stream's segments go and how long they are.
#[derive(Clone, Debug)]
pub struct SegmentSettings {
    pub folder: PathBuf,
    pub length: u64,
}

struct Open {
    writer: ClipWriter,
    file: PathBuf,
    /// Stream time of its first frame.
    start: Timestamp,
    caps: gstreamer::Caps,
    /// Stream time of the last packet written.
    last: Timestamp,
    /// Bytes written into it.
    bytes: u64,
}

/// A segment's writer to finish, its file, and the bytes written into it.
pub type Closed = (ClipWriter, PathBuf, u64);

/// Writes a stream's packets into segments, one after the other.
pub struct Segmenter {
    settings: SegmentSettings,
    open: Option<Open>,
    /// Segments that could not be started.
    pub failed: u64,
}

impl Segmenter {
    pub fn new(settings: SegmentSettings) -> Segmenter {
        Segmenter {
            settings,
            open: None,
            failed: 0,
        }
    }

    /// Whether a segment is under way.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// The segment under way ends here; its writer, to finish.
    pub fn close(&mut self) -> Option<Closed> {
        self.open.take().map(|o| (o.writer, o.file, o.bytes))
    }

    /// Whether `p` (at stream time `t`) must go into a new segment: the
    /// one under way is long enough and `p` is a keyframe, the picture's
    /// format changed, or the stream paused.
    fn ends_before(&self, p: &Packet, t: Timestamp) -> bool {
        let Some(o) = &self.open else { return false };
        let video = p.branch == Branch::Video;
        let long = t.0 >= o.start.0.saturating_add(self.settings.length);
        let gap = t.0 > o.last.0.saturating_add(GAP);
        if gap {
            tracing::info!(
                segment = %o.file.display(),
                gap_ms = (t.0 - o.last.0) / 1_000_000,
                "the stream paused: the segment ends before the gap"
            );
        }
        gap || video && (p.keyframe() && long || p.caps != o.caps)
    }

    /// Writes `p` (at stream time `t`, UTC `utc_origin + t`) into the
    /// segment under way, or starts one with it when it is a keyframe and
    /// `allowed` (the disk has room for media); `sound` gives the caps of
    /// the stream's sound, if any, for a new segment. Returns the
    /// segments that ended, to finish.
    pub fn push(
        &mut self,
        p: &Packet,
        t: Timestamp,
        utc_origin: i64,
        allowed: bool,
        sound: impl FnOnce() -> Option<gstreamer::Caps>,
    ) -> Vec<Closed> {
        let mut closed = Vec::new();
        if self.ends_before(p, t) || !allowed {
            closed.extend(self.close());
        }
        if self.open.is_none() {
            if !(allowed && p.branch == Branch::Video && p.keyframe()) {
                return closed;
            }
            let audio = sound();
            let utc = utc_origin.saturating_add(i64::try_from(t.0).unwrap_or(i64::MAX));
            let file = free_path(
                &self.settings.folder,
                &name(utc),
                extension(&p.caps, audio.as_ref()),
            );
            match ClipWriter::create(&file, &p.caps, audio.as_ref()) {
                Ok(writer) => {
                    self.open = Some(Open {
                        writer,
                        file,
                        start: t,
                        caps: p.caps.clone(),
                        last: t,
                        bytes: 0,
                    })
                }
                Err(err) => {
                    self.failed += 1;
                    tracing::warn!(%err, "cannot start a segment; recording resumes at the next keyframe");
                    return closed;
                }
            }
        }
        let Some(o) = &mut self.open else {
            return closed;
        };
        let pushed = match p.branch {
            Branch::Video => o.writer.push(p.buffer.clone()),
            Branch::Audio if t < o.start => Ok(()),
            Branch::Audio => o.writer.push_audio(p.buffer.clone()),
        };
        o.last = o.last.max(t);
        o.bytes += p.size() as u64;
        if let Err(err) = pushed {
            tracing::warn!(%err, "a segment's writer failed; the segment ends here");
            closed.extend(self.close());
        }
        closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_utc_to_the_nanosecond_and_read_back() {
        let utc = 1_796_528_487_123_456_789;
        let n = name(utc);
        assert_eq!(n, "20261206T034127.123456789Z");
        assert_eq!(parse_name(&format!("{n}.mp4")), Some((utc, 0)));
        assert_eq!(parse_name(&format!("{n}.mkv")), Some((utc, 0)));
        assert_eq!(parse_name(&format!("{n}-12.mp4")), Some((utc, 12)));
        assert_eq!(parse_name(&format!("{n}.mp4.part")), None);
        assert_eq!(parse_name(&format!("{n}-0.mp4")), None);
        assert_eq!(parse_name(&format!("{n}-x.mp4")), None);
        assert_eq!(parse_name("notes.mp4"), None);
    }

    #[test]
    fn a_segment_of_a_name_taken_gets_the_next_number() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path();
        let stem = name(0);
        assert_eq!(free_path(d, &stem, "mp4"), d.join(format!("{stem}.mp4")));
        std::fs::write(d.join(format!("{stem}.mp4")), b"").expect("write");
        std::fs::write(d.join(format!("{stem}-1.mp4.part")), b"").expect("write");
        assert_eq!(free_path(d, &stem, "mp4"), d.join(format!("{stem}-2.mp4")));
        std::fs::write(d.join(format!("{stem}-2.mp4")), b"").expect("write");
        let listed: Vec<u32> = list(d).iter().map(|s| s.n).collect();
        assert_eq!(listed, [0, 2]);
    }
}
