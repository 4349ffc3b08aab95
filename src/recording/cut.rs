//! A stretch of a file's video and sound, cut out as it was encoded: from
//! the keyframe at or before the start, up to the end, never decoded; or
//! a stretch of a stream's continuous recording, across its segments.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::error::{Error, Result};
use crate::lock::Locked;
use crate::recording::segments;
use crate::recording::writer::{ClipWriter, extension};
use crate::time::Timestamp;

/// How long reading may go without a packet before the cut gives up.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What a cut took.
#[derive(Clone, Debug, PartialEq)]
pub struct Cut {
    /// The file written: `out` with the extension its codec needs.
    pub path: PathBuf,
    /// Where its first frame (a keyframe) and its last packet are, in the
    /// file's time from its first video packet.
    pub start: Timestamp,
    pub last: Timestamp,
    /// Packets (frames) written.
    pub frames: u64,
    /// Stretches with nothing recorded (between segments: the camera was
    /// away), as (start, length).
    pub gaps: Vec<(Timestamp, u64)>,
    /// The files it was cut from.
    pub files: usize,
}

/// A pause longer than this between one segment's last packet and the
/// next one's first is a gap in the recording.
const GAP: u64 = crate::time::SECOND;

/// Cuts `[from, to)` (the file's time from its first video packet) out of
/// the video of `source` into `out` (its extension set to `mp4` for H.264
/// and H.265 with AAC, MP3 or no sound, else `mkv`): from the keyframe at
/// or before `from`, so that the clip starts on a whole picture, to the
/// last packet before `to`, with the first sound stream's packets of the
/// same stretch.
pub fn cut(source: &Path, from: Timestamp, to: Timestamp, out: &Path) -> Result<Cut> {
    if !source.is_file() {
        return Err(Error::Gst(format!("{}: no such file", source.display())));
    }
    let mut cutter = Cutter::new(from, to, out)?;
    cutter.read(source, 0)?;
    cutter.finish(source)
}

/// Cuts `[from, to)` (UTC, nanoseconds) out of the continuous recording in
/// `folder` (one stream's segments) into `out`, as [`cut`] does a file:
/// from the keyframe at or before `from`, across as many segments as it
/// takes, never re-encoded. The cut's times are from the first segment's
/// start, whose UTC comes back with it; stretches no segment holds (the
/// camera was away) are in its `gaps`.
pub fn cut_segments(folder: &Path, from: i64, to: i64, out: &Path) -> Result<(Cut, i64)> {
    // Of segments that start at the same time (a file attached again), the
    // latest.
    let mut all = segments::list(folder);
    all.reverse();
    all.dedup_by_key(|s| s.utc);
    all.reverse();
    if all.is_empty() {
        return Err(Error::Cut(format!(
            "{}: no recording there (is [recording] continuous on for this stream, and --segments the output folder's segments?)",
            folder.display()
        )));
    }
    // The last segment starting at or before `from` (else the first), and
    // every later one that starts before `to`.
    let first = all.iter().rposition(|s| s.utc <= from).unwrap_or(0);
    let picked: Vec<&segments::Segment> = all[first..].iter().take_while(|s| s.utc < to).collect();
    let Some(base) = picked.first().map(|s| s.utc) else {
        return Err(Error::Cut(format!(
            "{}: the recording starts at {}, after the end asked for",
            folder.display(),
            crate::record::utc_string(all[0].utc, Timestamp::ZERO)
        )));
    };
    let rel = |t: i64| Timestamp(u64::try_from(t.saturating_sub(base)).unwrap_or(0));
    let mut cutter = Cutter::new(rel(from), rel(to), out)?;
    for s in &picked {
        let offset = u64::try_from(s.utc - base).unwrap_or(0);
        if cutter.read(&s.path, offset)? {
            break;
        }
    }
    if cutter.writer.is_none() && cutter.any {
        let last = picked.last().map_or(base, |s| s.utc);
        return Err(Error::Cut(format!(
            "{}: the recording ends before the start asked for (its last segment starts at {})",
            folder.display(),
            crate::record::utc_string(last, Timestamp::ZERO)
        )));
    }
    Ok((cutter.finish(folder)?, base))
}

/// Cuts a stretch out of one file or several in a row into one clip.
struct Cutter<'a> {
    from: Timestamp,
    to: Timestamp,
    out: &'a Path,
    gop: Vec<gst::Buffer>,
    writer: Option<ClipWriter>,
    caps: Option<gst::Caps>,
    cut: Cut,
    /// Whether any video was read.
    any: bool,
    /// Sound of the pictures held, from an earlier file (cut's time).
    carry: Vec<(u64, gst::Buffer)>,
    carry_caps: Option<gst::Caps>,
}

impl<'a> Cutter<'a> {
    fn new(from: Timestamp, to: Timestamp, out: &'a Path) -> Result<Cutter<'a>> {
        if to <= from {
            return Err(Error::Cut(format!(
                "the clip's end ({to}) is not after its start ({from})"
            )));
        }
        Ok(Cutter {
            from,
            to,
            out,
            gop: Vec::new(),
            writer: None,
            caps: None,
            cut: Cut {
                path: PathBuf::new(),
                start: Timestamp::ZERO,
                last: Timestamp::ZERO,
                frames: 0,
                gaps: Vec::new(),
                files: 0,
            },
            any: false,
            carry: Vec::new(),
            carry_caps: None,
        })
    }

    /// Ends the clip: the muxer finishes it.
    fn finish(self, source: &Path) -> Result<Cut> {
        match self.writer {
            Some(w) => {
                w.finish()?;
                Ok(self.cut)
            }
            None => Err(Error::Gst(format!(
                "{}: {}",
                source.display(),
                if self.any {
                    format!("its video ends before {}", self.from)
                } else {
                    "it has no video".into()
                }
            ))),
        }
    }

    /// Reads `source`, whose first video packet is at `offset` in the
    /// cut's time; true once the end is reached.
    fn read(&mut self, source: &Path, offset: u64) -> Result<bool> {
        let fail = |m: String| Error::Gst(format!("{}: {m}", source.display()));
        let (pipeline, parse) = super::feed::reader(source, &fail)?;
        // Neither waits for the other to preroll (a file may have no sound).
        let sink = gst_app::AppSink::builder().sync(false).build();
        sink.set_async(false);
        let asink = gst_app::AppSink::builder().sync(false).build();
        asink.set_async(false);
        // In the pipeline from the start (a sink not yet started says it has
        // ended); the first video stream is linked to it, every other one to
        // a fakesink.
        pipeline
            .add_many([&sink, &asink])
            .map_err(|e| fail(format!("cannot build a reader: {e}")))?;
        let taken = Arc::new(Mutex::new(false));
        // Whether the first sound stream went to `asink`.
        let sound = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Every stream was exposed, or one ended: with no video among them by
        // then, nothing will come.
        let exposed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        {
            let exposed = exposed.clone();
            parse.connect_no_more_pads(move |_| {
                exposed.store(true, std::sync::atomic::Ordering::Relaxed);
            });
        }
        let has_video = {
            let (taken, exposed) = (taken.clone(), exposed.clone());
            move || -> Option<bool> {
                exposed
                    .load(std::sync::atomic::Ordering::Relaxed)
                    .then(|| *taken.locked())
            }
        };
        {
            let pipeline = pipeline.downgrade();
            let (sink, asink) = (sink.clone(), asink.clone());
            let exposed = exposed.clone();
            let sound = sound.clone();
            parse.connect_pad_added(move |_, pad| {
                let Some(pipeline) = pipeline.upgrade() else {
                    return;
                };
                let kind = crate::media::pad_kind(pad);
                let mut taken = taken.locked();
                if !kind.starts_with("video/") {
                    // A stream that ends before any video was exposed: there
                    // is none (a file of sound alone).
                    let exposed = exposed.clone();
                    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
                        if let Some(gst::PadProbeData::Event(e)) = &info.data
                            && e.type_() == gst::EventType::Eos
                        {
                            exposed.store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                        gst::PadProbeReturn::Ok
                    });
                }
                let first_sound =
                    kind.starts_with("audio/") && !sound.load(std::sync::atomic::Ordering::Relaxed);
                let target = if kind.starts_with("video/") && !*taken {
                    *taken = true;
                    sink.static_pad("sink")
                } else if first_sound {
                    sound.store(true, std::sync::atomic::Ordering::Relaxed);
                    asink.static_pad("sink")
                } else {
                    let Ok(other) = gst::ElementFactory::make("fakesink").build() else {
                        return;
                    };
                    if pipeline.add(&other).is_err() {
                        return;
                    }
                    let _ = other.sync_state_with_parent();
                    other.static_pad("sink")
                };
                if let Some(sinkpad) = target {
                    let _ = pad.link(&sinkpad);
                }
            });
        }
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| fail(format!("cannot read it: {e}")))?;
        let reader = Reader {
            pipeline: &pipeline,
            video: &sink,
            audio: &asink,
            has_video: &has_video,
            sound: &sound,
        };
        let result = self.take(&reader, source, offset);
        let _ = pipeline.set_state(gst::State::Null);
        result
    }
}

/// What [`take`] reads from.
struct Reader<'a> {
    pipeline: &'a gst::Pipeline,
    video: &'a gst_app::AppSink,
    audio: &'a gst_app::AppSink,
    has_video: &'a dyn Fn() -> Option<bool>,
    /// Whether a sound stream goes to `audio`.
    sound: &'a std::sync::atomic::AtomicBool,
}

/// How long the sound may lag the picture in a file's interleaving.
const SOUND_LAG: std::time::Duration = std::time::Duration::from_secs(5);

/// Sound packets read, by their own time, with their caps.
#[derive(Default)]
struct Sound {
    caps: Option<gst::Caps>,
    pending: std::collections::VecDeque<(u64, gst::Buffer)>,
    ended: bool,
}

impl Sound {
    /// Takes what the sound sink holds now (waiting up to `wait` for one).
    fn read(&mut self, sink: &gst_app::AppSink, wait: gst::ClockTime) {
        let mut wait = wait;
        while let Some(s) = sink.try_pull_sample(wait) {
            wait = gst::ClockTime::ZERO;
            if self.caps.is_none() {
                self.caps = s.caps_owned();
            }
            if let Some(b) = s.buffer_owned()
                && let Some(at) = b.pts().map(|t| t.nseconds())
            {
                self.pending.push_back((at, b));
            }
        }
        self.ended = sink.is_eos();
    }

    /// Packets before `at` (absolute) are not wanted.
    fn drop_before(&mut self, at: u64) {
        while self.pending.front().is_some_and(|(t, _)| *t < at) {
            self.pending.pop_front();
        }
    }

    /// Writes what came before `until` (absolute), its times moved as
    /// [`retime`] does.
    fn write(&mut self, w: &ClipWriter, until: u64, first: u64, offset: u64) -> Result<()> {
        while self.pending.front().is_some_and(|(t, _)| *t < until) {
            if let Some((_, b)) = self.pending.pop_front() {
                w.push_audio(retime(b, first, offset))?;
            }
        }
        Ok(())
    }
}

/// Whether pictures of caps `a` and `b` go into one file: the same codec,
/// size and codec set-up (a file's frame rate, which a demuxer guesses from
/// its timestamps, may differ).
fn same_format(a: Option<&gst::Caps>, b: Option<&gst::Caps>) -> bool {
    let (Some(a), Some(b)) = (
        a.and_then(|c| c.structure(0)),
        b.and_then(|c| c.structure(0)),
    ) else {
        return false;
    };
    a.name() == b.name()
        && ["width", "height", "codec_data", "stream-format"]
            .iter()
            .all(|f| {
                a.value(*f).ok().map(|v| v.serialize().ok())
                    == b.value(*f).ok().map(|v| v.serialize().ok())
            })
}

/// `b` with its times moved from the file's (its first video packet at
/// `first`) to the cut's (that packet at `offset`).
fn retime(mut b: gst::Buffer, first: u64, offset: u64) -> gst::Buffer {
    let shift = |t: Option<gst::ClockTime>| {
        t.map(|t| gst::ClockTime::from_nseconds(t.nseconds().saturating_sub(first) + offset))
    };
    let (pts, dts) = (shift(b.pts()), shift(b.dts()));
    let m = b.make_mut();
    m.set_pts(pts);
    m.set_dts(dts);
    b
}

impl Cutter<'_> {
    /// Pulls packets until `to`, keeping the group of pictures that holds
    /// `from` and everything after it, written as it comes, with the sound of
    /// the same stretch; true once `to` is reached.
    fn take(&mut self, r: &Reader<'_>, source: &Path, offset: u64) -> Result<bool> {
        let fail = |m: String| Error::Gst(format!("{}: {m}", source.display()));
        let (from, to, out) = (self.from, self.to, self.out);
        let mut first: Option<u64> = None;
        let mut sound = Sound::default();
        let mut reached = false;
        self.cut.files += 1;
        if self.writer.is_some() && offset > self.cut.last.0.saturating_add(GAP) {
            self.cut
                .gaps
                .push((self.cut.last, offset - self.cut.last.0));
        }
        loop {
            let waited = std::time::Instant::now();
            let sample = loop {
                if let Some(s) = r.video.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
                    break Some(s);
                }
                if r.video.is_eos() {
                    break None;
                }
                let error = r
                    .pipeline
                    .bus()
                    .and_then(|b| b.pop_filtered(&[gst::MessageType::Error]))
                    .and_then(|m| match m.view() {
                        gst::MessageView::Error(e) => Some(e.error().to_string()),
                        _ => None,
                    });
                let why = match (error, (r.has_video)()) {
                    (Some(e), _) => Some(e),
                    (None, Some(false)) => Some("it has no video".to_string()),
                    (None, _) if waited.elapsed() > READ_TIMEOUT => Some(format!(
                        "no video came out of it in {} s",
                        READ_TIMEOUT.as_secs()
                    )),
                    _ => None,
                };
                if let Some(why) = why {
                    return Err(fail(format!("cannot read its video: {why}")));
                }
                // The picture may wait for the sound to be read.
                sound.read(r.audio, gst::ClockTime::ZERO);
            };
            sound.read(r.audio, gst::ClockTime::ZERO);
            let Some(sample) = sample else {
                break;
            };
            let Some(buffer) = sample.buffer_owned() else {
                continue;
            };
            let Some(at) = buffer.dts_or_pts().map(|t| t.nseconds()) else {
                continue;
            };
            let origin = *first.get_or_insert(at);
            self.any = true;
            let t = Timestamp(at.saturating_sub(origin) + offset);
            // A time of the cut in the file's own.
            let own = |x: Timestamp| x.0.saturating_sub(offset) + origin;
            if t >= to {
                reached = true;
                break;
            }
            let format = sample.caps_owned();
            if format.is_some() && !same_format(format.as_ref(), self.caps.as_ref()) {
                if self.writer.is_some() {
                    tracing::warn!(file = %source.display(), at = %t, "the picture's format changes here: the cut ends");
                    reached = true;
                    break;
                }
                // Pictures held in another format are of no use.
                self.gop.clear();
                self.carry.clear();
                self.caps = format;
            }
            let key = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
            let buffer = retime(buffer, origin, offset);
            match &self.writer {
                Some(w) => {
                    w.push(buffer)?;
                    self.cut.frames += 1;
                    self.cut.last = t;
                    sound.write(w, at, origin, offset)?;
                }
                None => {
                    // A keyframe at or before `from` starts the clip afresh;
                    // with none before it, the first one after does.
                    if key && (t <= from || self.gop.is_empty()) {
                        self.gop.clear();
                        self.carry.clear();
                        self.cut.start = t;
                    }
                    if !self.gop.is_empty() || key {
                        self.gop.push(buffer);
                    }
                    sound.drop_before(own(self.cut.start));
                    if t >= from && !self.gop.is_empty() {
                        let caps = self
                            .caps
                            .clone()
                            .ok_or_else(|| fail("its video has no caps".into()))?;
                        // The sound's caps come with its first packet.
                        let waited = std::time::Instant::now();
                        while r.sound.load(std::sync::atomic::Ordering::Relaxed)
                            && sound.caps.is_none()
                            && !sound.ended
                            && waited.elapsed() < SOUND_LAG
                        {
                            sound.read(r.audio, gst::ClockTime::from_mseconds(100));
                        }
                        let acaps = sound.caps.clone().or_else(|| self.carry_caps.clone());
                        let path = out.with_extension(extension(&caps, acaps.as_ref()));
                        let w = ClipWriter::create(&path, &caps, acaps.as_ref())?;
                        self.cut.frames = self.gop.len() as u64;
                        self.cut.last = t;
                        for b in self.gop.drain(..) {
                            w.push(b)?;
                        }
                        // Sound an earlier file held for these pictures.
                        for (at, b) in self.carry.drain(..) {
                            if at >= self.cut.start.0 {
                                w.push_audio(b)?;
                            }
                        }
                        sound.drop_before(own(self.cut.start));
                        sound.write(&w, at, origin, offset)?;
                        self.cut.path = path;
                        self.writer = Some(w);
                    }
                }
            }
        }
        let Some(origin) = first else {
            return Ok(false);
        };
        match &self.writer {
            Some(w) => {
                // The sound up to the end (or the file's), as far as the file
                // interleaves it.
                let end = if reached {
                    to.0.saturating_sub(offset) + origin
                } else {
                    u64::MAX
                };
                let waited = std::time::Instant::now();
                while r.sound.load(std::sync::atomic::Ordering::Relaxed)
                    && !sound.ended
                    && sound.pending.back().is_none_or(|(t, _)| *t < end)
                    && waited.elapsed() < SOUND_LAG
                {
                    sound.read(r.audio, gst::ClockTime::from_mseconds(100));
                }
                sound.write(w, end, origin, offset)?;
            }
            None => {
                // The pictures held may go on in the next file: so does their
                // sound.
                if self.carry_caps.is_none() {
                    self.carry_caps = sound.caps.clone();
                }
                self.carry.extend(sound.pending.drain(..).map(|(at, b)| {
                    (
                        at.saturating_sub(origin) + offset,
                        retime(b, origin, offset),
                    )
                }));
            }
        }
        Ok(reached)
    }
}
