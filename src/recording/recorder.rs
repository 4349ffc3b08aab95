//! A stream's event clips: its encoded packets kept for the pre-roll (from
//! the keyframe before), written into a clip from an event's start until
//! the post-roll after the last overlapping event's end, never re-encoded.
//!
//! The recorder runs in step with the analysis: fusion tells it where the
//! stream's time has got ([`Recorder::advance`]) and which events start and
//! end; packets are only written once the analysis has passed them, so a
//! clip ends exactly `post_roll` after its last event whatever the lag
//! between the source and the analysis; it is finished once no event whose
//! pre-roll would reach into it can still come. It holds packets from the keyframe
//! at or before `pre_roll + SLACK` behind the analysis (an event's start
//! record may come after its start: a track's confirmation, a rule's
//! `min_duration`), at most [`RING_CAP`] bytes.
//!
//! With continuous recording on, every packet the analysis has passed also
//! goes into the stream's segments ([`Segmenter`]).

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::disk::DiskGate;
use crate::media::{Branch, Packet};
use crate::recording::feed::Feed;
use crate::recording::segments::{Closed, SegmentSettings, Segmenter};
use crate::recording::writer::{ClipWriter, extension};
use crate::time::{SECOND, Timestamp};

/// How far behind the analysis an event's start may be when its start
/// record comes, beyond the pre-roll.
pub const SLACK: u64 = 10 * SECOND;
/// How much longer than its pre-roll a clip may reach back to the
/// keyframe before; older packets go whatever they are.
pub const HOLD_MORE: u64 = 30 * SECOND;
/// The most a stream's recorder holds in packets not yet written.
pub const RING_CAP: usize = 64 << 20;

/// Where clips go and how long they are.
#[derive(Clone, Debug)]
pub struct ClipSettings {
    /// The folder clips are written to, and how records name it
    /// (relative to the output folder).
    pub folder: PathBuf,
    pub relative: PathBuf,
    pub pre_roll: u64,
    pub post_roll: u64,
    pub max_clip: u64,
    /// How far behind its start an event's start record may come: a clip
    /// is finished only once no event whose pre-roll reaches into it can
    /// still be told.
    pub lag: u64,
}

/// The clip an event is in, as records name it.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipRef {
    /// Relative to the output folder.
    pub path: String,
    /// Stream time of its first frame.
    pub start: Timestamp,
}

/// What a recorder did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ClipCounts {
    pub written: u64,
    pub failed: u64,
    /// Packets let go before they could be written (the recorder's hold
    /// full), and events that got no clip (no picture yet, the disk full).
    pub dropped_packets: u64,
    pub missed: u64,
    /// Continuous recording's segments finished, and those that could
    /// not be started or finished.
    pub segments: u64,
    pub segments_failed: u64,
}

impl ClipCounts {
    /// What was counted since `before`.
    pub fn since(&self, before: &ClipCounts) -> ClipCounts {
        ClipCounts {
            written: self.written.saturating_sub(before.written),
            failed: self.failed.saturating_sub(before.failed),
            dropped_packets: self.dropped_packets.saturating_sub(before.dropped_packets),
            missed: self.missed.saturating_sub(before.missed),
            segments: self.segments.saturating_sub(before.segments),
            segments_failed: self.segments_failed.saturating_sub(before.segments_failed),
        }
    }
}

struct Open {
    writer: ClipWriter,
    clip: ClipRef,
    /// The clip's file (with its extension), for the log.
    file: PathBuf,
    caps: gstreamer::Caps,
    /// The ring's sequence number of the next packet to write.
    next: u64,
    active: HashSet<String>,
    /// Where it ends: unknown while an event is under way.
    until: Option<Timestamp>,
    /// Bytes written into it.
    bytes: u64,
}

/// One stream's recorder.
pub struct Recorder {
    settings: ClipSettings,
    feed: Feed,
    /// A file's packet read past where the analysis is.
    ahead: Option<Packet>,
    /// Packets held, with their sequence numbers, in arrival order.
    ring: VecDeque<(u64, Packet)>,
    next_seq: u64,
    ring_bytes: usize,
    /// Where the analysis has got.
    reached: Timestamp,
    /// The source PTS of stream time zero.
    origin: u64,
    clip: Option<Open>,
    finishing: Vec<JoinHandle<()>>,
    counts: Arc<std::sync::Mutex<ClipCounts>>,
    gate: Option<Arc<DiskGate>>,
    /// Continuous recording, and the sequence number of the next packet
    /// it is to write.
    segmenter: Option<Segmenter>,
    seg_next: u64,
    /// UTC of stream time zero, nanoseconds.
    utc_origin: i64,
}

impl Recorder {
    pub fn new(settings: ClipSettings, feed: Feed) -> Recorder {
        Recorder {
            settings,
            feed,
            ahead: None,
            ring: VecDeque::new(),
            next_seq: 0,
            ring_bytes: 0,
            reached: Timestamp::ZERO,
            origin: 0,
            clip: None,
            finishing: Vec::new(),
            counts: Arc::default(),
            gate: None,
            segmenter: None,
            seg_next: 0,
            utc_origin: 0,
        }
    }

    /// Also records everything, in segments.
    pub fn continuous(mut self, settings: SegmentSettings) -> Recorder {
        self.segmenter = Some(Segmenter::new(settings));
        self
    }

    /// Opens clips only while `gate` lets media be written.
    pub fn gated(mut self, gate: Arc<DiskGate>) -> Recorder {
        self.gate = Some(gate);
        self
    }

    pub fn counts(&self) -> ClipCounts {
        self.counts.lock().map(|c| *c).unwrap_or_default()
    }

    fn count(&self, f: impl FnOnce(&mut ClipCounts)) {
        if let Ok(mut c) = self.counts.lock() {
            f(&mut c);
        }
    }

    /// The source PTS of stream time zero (the synchroniser's): packets'
    /// timestamps less this are stream time; and the UTC of stream time
    /// zero (nanoseconds), which names segments.
    pub fn set_origin(&mut self, origin: u64, utc: i64) {
        self.origin = origin;
        self.utc_origin = utc;
    }

    /// `t` (a packet's timestamp) in stream time.
    fn stream(&self, t: Option<Timestamp>) -> Option<Timestamp> {
        t.map(|t| Timestamp(t.0.saturating_sub(self.origin)))
    }

    /// The analysis has got to `to`: packets before it are written into
    /// the clip under way, or kept for a later one's pre-roll.
    pub fn advance(&mut self, to: Timestamp) {
        self.reached = self.reached.max(to);
        self.ingest(self.reached);
        self.write();
        self.trim();
    }

    /// `event` (named `name` in file names) started at `start`: the clip
    /// that holds it, opened from `pre_roll` before it (the keyframe at or
    /// before), or the one under way when their stretches overlap.
    pub fn start(&mut self, event: &str, name: &str, start: Timestamp) -> Option<ClipRef> {
        let from = Timestamp(start.0.saturating_sub(self.settings.pre_roll));
        if let Some(c) = &mut self.clip {
            if c.until.is_none_or(|u| from <= u) {
                c.active.insert(event.to_string());
                c.until = None;
                return Some(c.clip.clone());
            }
            // The clip under way ends before this one's pre-roll.
            self.close();
        }
        if self.gate.as_ref().is_some_and(|g| !g.media_allowed()) {
            self.count(|c| c.missed += 1);
            return None;
        }
        self.ingest(self.reached.max(start));
        // The keyframe at or before `from`, else the first one held.
        let keyframes = || {
            self.ring
                .iter()
                .filter(|(_, p)| p.branch == Branch::Video && p.keyframe())
        };
        let first = keyframes()
            .rfind(|(_, p)| self.stream(p.pts()).is_some_and(|t| t <= from))
            .or_else(|| keyframes().next());
        let Some((seq, key)) = first else {
            self.count(|c| c.missed += 1);
            tracing::debug!(event, "no picture held yet: the event gets no clip");
            return None;
        };
        let (seq, caps) = (*seq, key.caps.clone());
        let clip_start = self.stream(key.pts()).unwrap_or(from);
        let audio = self
            .ring
            .iter()
            .rev()
            .find(|(_, p)| p.branch == Branch::Audio)
            .map(|(_, p)| p.caps.clone());
        let file = self
            .settings
            .folder
            .join(format!("{name}.{}", extension(&caps, audio.as_ref())));
        let writer = match ClipWriter::create(&file, &caps, audio.as_ref()) {
            Ok(w) => w,
            Err(err) => {
                self.count(|c| c.failed += 1);
                tracing::warn!(%err, "cannot start a clip; the event is recorded without");
                return None;
            }
        };
        let relative = self
            .settings
            .relative
            .join(file.file_name().unwrap_or_default())
            .to_string_lossy()
            .into_owned();
        let clip = ClipRef {
            path: relative,
            start: clip_start,
        };
        self.clip = Some(Open {
            writer,
            clip: clip.clone(),
            file,
            caps,
            next: seq,
            active: HashSet::from([event.to_string()]),
            until: None,
            bytes: 0,
        });
        self.write();
        Some(clip)
    }

    /// `event` ended at `end`: its clip ends `post_roll` later, unless
    /// another event in it goes on.
    pub fn end(&mut self, event: &str, end: Timestamp) {
        let post = self.settings.post_roll;
        if let Some(c) = &mut self.clip
            && c.active.remove(event)
            && c.active.is_empty()
        {
            c.until = Some(Timestamp(end.0.saturating_add(post)));
            self.write();
        }
    }

    /// The stream ended: the clip under way takes what the source still
    /// has up to its end (a file's, up to the post-roll), and every clip
    /// and segment is finished.
    pub fn finish(mut self) -> ClipCounts {
        if let Some(c) = &self.clip {
            let until = c.until.unwrap_or(self.reached);
            self.reached = self.reached.max(until);
            self.ingest(until);
            self.write();
            self.close();
        }
        self.write_segments();
        if let Some((writer, file, bytes)) = self.segmenter.as_mut().and_then(Segmenter::close) {
            self.finish_later(writer, file, bytes, true);
        }
        for t in self.finishing.drain(..) {
            let _ = t.join();
        }
        self.counts()
    }

    /// Takes packets from the feed: a file's up to `to` (the first past it
    /// is kept for later), a live source's all that came.
    fn ingest(&mut self, to: Timestamp) {
        loop {
            let packet = match self.ahead.take() {
                Some(p) => p,
                None => match self.feed.take() {
                    Some(p) => p,
                    None => return,
                },
            };
            let Some(t) = self.stream(packet.time()) else {
                continue;
            };
            if t >= to && self.feed.waits() {
                self.ahead = Some(packet);
                return;
            }
            self.ring_bytes += packet.size();
            self.ring.push_back((self.next_seq, packet));
            self.next_seq += 1;
            if !self.feed.waits() && self.ring_bytes > RING_CAP {
                self.shed();
            }
        }
    }

    /// Writes the packets the analysis has passed into the segments.
    fn write_segments(&mut self) {
        let Some(seg) = &mut self.segmenter else {
            return;
        };
        let allowed = self.gate.as_ref().is_none_or(|g| g.media_allowed());
        let mut closed: Vec<Closed> = Vec::new();
        let from = self.seg_next;
        let ring = &self.ring;
        for (seq, p) in ring.iter().skip_while(|(s, _)| *s < from) {
            let Some(t) = p.time().map(|t| Timestamp(t.0.saturating_sub(self.origin))) else {
                self.seg_next = seq + 1;
                continue;
            };
            if t >= self.reached {
                break;
            }
            let sound = || {
                ring.iter()
                    .rev()
                    .find(|(_, p)| p.branch == Branch::Audio)
                    .map(|(_, p)| p.caps.clone())
            };
            closed.extend(seg.push(p, t, self.utc_origin, allowed, sound));
            if seg.is_open()
                && let Some(g) = &self.gate
            {
                g.writing(p.size() as u64);
            }
            self.seg_next = seq + 1;
        }
        if let Some(seg) = &self.segmenter
            && seg.failed > 0
        {
            let failed = seg.failed;
            self.count(|c| c.segments_failed += failed);
            if let Some(seg) = &mut self.segmenter {
                seg.failed = 0;
            }
        }
        for (writer, file, bytes) in closed {
            self.finish_later(writer, file, bytes, true);
        }
    }

    /// Writes the clip's packets the analysis has passed; ends it at its
    /// end, at `max_clip`, or where the picture's format changes.
    fn write(&mut self) {
        self.write_segments();
        let origin = self.origin;
        let Some(c) = &mut self.clip else { return };
        let mut done = false;
        let from = c.next;
        for (seq, p) in self.ring.iter().skip_while(|(s, _)| *s < from) {
            let Some(t) = p.time().map(|t| Timestamp(t.0.saturating_sub(origin))) else {
                c.next = seq + 1;
                continue;
            };
            if t >= self.reached {
                break;
            }
            let capped = t.0 >= c.clip.start.0.saturating_add(self.settings.max_clip);
            let changed = p.branch == Branch::Video && p.caps != c.caps;
            if c.until.is_some_and(|u| t >= u) {
                // Held for an event that may still join.
                break;
            }
            if capped || changed {
                if changed {
                    tracing::info!(clip = %c.file.display(), "the picture's format changed: the clip ends here");
                }
                done = true;
                break;
            }
            let pushed = match p.branch {
                Branch::Video => c.writer.push(p.buffer.clone()),
                // Sound from before the first picture is left out.
                Branch::Audio if t < c.clip.start => Ok(()),
                Branch::Audio => c.writer.push_audio(p.buffer.clone()),
            };
            if let Err(err) = pushed {
                tracing::warn!(%err, "a clip's writer failed; the clip ends here");
                done = true;
                break;
            }
            c.bytes += p.size() as u64;
            if let Some(g) = &self.gate {
                g.writing(p.size() as u64);
            }
            c.next = seq + 1;
        }
        // No event that could join it is still to come.
        let settled = c.until.is_some_and(|u| {
            self.reached.0
                >= u.0
                    .saturating_add(self.settings.pre_roll)
                    .saturating_add(self.settings.lag)
        });
        if done || settled {
            self.close();
        }
    }

    /// Finishes the clip under way (in the background: the muxer writes
    /// its index).
    fn close(&mut self) {
        let Some(c) = self.clip.take() else { return };
        self.finish_later(c.writer, c.file, c.bytes, false);
    }

    /// Finishes a clip's or (`segment`) a segment's file of `bytes` in
    /// the background.
    fn finish_later(&mut self, writer: ClipWriter, file: PathBuf, bytes: u64, segment: bool) {
        let counts = self.counts.clone();
        let gate = self.gate.clone();
        let spawned = std::thread::Builder::new()
            .name("vigil-clip".into())
            .spawn(move || {
                let done = writer.finish();
                if let Some(g) = gate {
                    g.written(bytes);
                }
                if let Ok(mut n) = counts.lock() {
                    match (&done, segment) {
                        (Ok(_), false) => n.written += 1,
                        (Ok(_), true) => n.segments += 1,
                        (Err(_), false) => n.failed += 1,
                        (Err(_), true) => n.segments_failed += 1,
                    }
                }
                if let Err(err) = done {
                    tracing::warn!(%err, file = %file.display(), "a recording could not be finished");
                }
            });
        match spawned {
            Ok(t) => self.finishing.push(t),
            Err(err) => tracing::warn!(%err, "cannot finish a clip"),
        }
        self.finishing.retain(|t| !t.is_finished());
    }

    /// Lets go of what no clip will want: packets before the keyframe at
    /// or before `pre_roll + SLACK` behind the analysis, none the clip
    /// under way has still to write.
    fn trim(&mut self) {
        let horizon = self
            .reached
            .0
            .saturating_sub(self.settings.pre_roll.saturating_add(SLACK));
        let keep_from = self
            .ring
            .iter()
            .rfind(|(_, p)| {
                p.branch == Branch::Video
                    && p.keyframe()
                    && self.stream(p.pts()).is_some_and(|t| t.0 <= horizon)
            })
            .map(|(s, _)| *s);
        let keep_from = keep_from.map(|k| k.min(self.unwritten()));
        if let Some(k) = keep_from {
            while self.ring.front().is_some_and(|(s, _)| *s < k) {
                if let Some((_, p)) = self.ring.pop_front() {
                    self.ring_bytes -= p.size();
                }
            }
        }
        // Sound without pictures (or a group of pictures longer than
        // this) is never held longer: no clip could start before it.
        let stale = horizon.saturating_sub(HOLD_MORE);
        let unwritten = self.unwritten();
        while self.ring.front().is_some_and(|(s, p)| {
            *s < unwritten && self.stream(p.time()).is_none_or(|t| t.0 < stale)
        }) {
            if let Some((_, p)) = self.ring.pop_front() {
                self.ring_bytes -= p.size();
            }
        }
    }

    /// The sequence number of the first packet a clip or segment under way
    /// has still to write.
    fn unwritten(&self) -> u64 {
        let clip = self.clip.as_ref().map_or(u64::MAX, |c| c.next);
        let seg = if self.segmenter.is_some() {
            self.seg_next
        } else {
            u64::MAX
        };
        clip.min(seg)
    }

    /// The hold is full (the analysis far behind a live source): the
    /// oldest packets go, counted, those of the clip or segment under way
    /// too.
    fn shed(&mut self) {
        let mut shed = 0;
        while self.ring_bytes > RING_CAP / 2 {
            let Some((seq, p)) = self.ring.pop_front() else {
                break;
            };
            self.ring_bytes -= p.size();
            let mut lost = false;
            if let Some(c) = &mut self.clip
                && seq >= c.next
            {
                c.next = seq + 1;
                lost = true;
            }
            if self.segmenter.is_some() && seq >= self.seg_next {
                self.seg_next = seq + 1;
                lost = true;
            }
            shed += u64::from(lost);
        }
        if shed > 0 {
            tracing::warn!(
                packets = shed,
                "the recorder's hold is full: a clip or segment misses packets"
            );
            self.count(|c| c.dropped_packets += shed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gstreamer as gst;

    fn sound(at: u64) -> Packet {
        let mut buffer = gst::Buffer::with_size(64).expect("buffer");
        {
            let b = buffer.get_mut().expect("writable");
            b.set_pts(gst::ClockTime::from_nseconds(at));
        }
        Packet {
            branch: Branch::Audio,
            buffer,
            caps: gst::Caps::builder("audio/mpeg")
                .field("mpegversion", 4)
                .build(),
        }
    }

    #[test]
    fn sound_without_pictures_is_held_no_longer_than_a_clip_could_reach() {
        gst::init().expect("GStreamer");
        let dir = tempfile::tempdir().expect("tmp");
        let (tx, feed) = Feed::live(100_000);
        let settings = ClipSettings {
            folder: dir.path().into(),
            relative: "clips".into(),
            pre_roll: 5 * SECOND,
            post_roll: 5 * SECOND,
            max_clip: 300 * SECOND,
            lag: SECOND,
        };
        let mut r = Recorder::new(settings, feed);
        // 10 minutes of sound, 50 packets a second, nothing else.
        for s in 0..600u64 {
            for k in 0..50 {
                tx.send(sound(s * SECOND + k * SECOND / 50)).expect("send");
            }
            r.advance(Timestamp((s + 1) * SECOND));
            let held = (5 * SECOND + SLACK + HOLD_MORE) / SECOND + 2;
            assert!(
                r.ring.len() as u64 <= held * 50,
                "{} packets at {s} s",
                r.ring.len()
            );
        }
        // No picture: an event gets no clip, and says so in the counts.
        assert_eq!(
            r.start("cam/sound/1", "sound-1", Timestamp(590 * SECOND)),
            None
        );
        assert_eq!(r.counts().missed, 1);
        assert!(std::fs::read_dir(dir.path()).expect("dir").next().is_none());
    }
}
