//! A stretch of a file's video and sound, cut out as it was encoded: from
//! the keyframe at or before the start, up to the end, never decoded.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::error::{Error, Result};
use crate::lock::Locked;
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
}

/// Cuts `[from, to)` (the file's time from its first video packet) out of
/// the video of `source` into `out` (its extension set to `mp4` for H.264
/// and H.265 with AAC, MP3 or no sound, else `mkv`): from the keyframe at
/// or before `from`, so that the clip starts on a whole picture, to the
/// last packet before `to`, with the first sound stream's packets of the
/// same stretch.
pub fn cut(source: &Path, from: Timestamp, to: Timestamp, out: &Path) -> Result<Cut> {
    let fail = |m: String| Error::Gst(format!("{}: {m}", source.display()));
    if !source.is_file() {
        return Err(fail("no such file".into()));
    }
    if to <= from {
        return Err(Error::Invalid(format!(
            "the clip's end ({to}) is not after its start ({from})"
        )));
    }
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
            let kind = pad
                .current_caps()
                .or_else(|| Some(pad.query_caps(None)))
                .and_then(|c| c.structure(0).map(|s| s.name().to_string()))
                .unwrap_or_default();
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
    let result = take(&reader, source, from, to, out);
    let _ = pipeline.set_state(gst::State::Null);
    result
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

    /// Writes what came before `until` (absolute).
    fn write(&mut self, w: &ClipWriter, until: u64) -> Result<()> {
        while self.pending.front().is_some_and(|(t, _)| *t < until) {
            if let Some((_, b)) = self.pending.pop_front() {
                w.push_audio(b)?;
            }
        }
        Ok(())
    }
}

/// Pulls packets until `to`, keeping the group of pictures that holds
/// `from` and everything after it, written as it comes, with the sound of
/// the same stretch.
fn take(r: &Reader<'_>, source: &Path, from: Timestamp, to: Timestamp, out: &Path) -> Result<Cut> {
    let fail = |m: String| Error::Gst(format!("{}: {m}", source.display()));
    let mut first: Option<u64> = None;
    let mut gop: Vec<gst::Buffer> = Vec::new();
    let mut writer: Option<ClipWriter> = None;
    let mut caps: Option<gst::Caps> = None;
    let mut sound = Sound::default();
    let mut cut = Cut {
        path: PathBuf::new(),
        start: Timestamp::ZERO,
        last: Timestamp::ZERO,
        frames: 0,
    };
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
        let t = Timestamp(at.saturating_sub(origin));
        if t >= to {
            break;
        }
        if caps.is_none() {
            caps = sample.caps_owned();
        }
        let key = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        match &writer {
            Some(w) => {
                w.push(buffer)?;
                cut.frames += 1;
                cut.last = t;
                sound.write(w, at)?;
            }
            None => {
                // A keyframe at or before `from` starts the clip afresh;
                // with none before it, the first one after does.
                if key && (t <= from || gop.is_empty()) {
                    gop.clear();
                    cut.start = t;
                }
                if !gop.is_empty() || key {
                    gop.push(buffer);
                }
                sound.drop_before(origin + cut.start.0);
                if t >= from && !gop.is_empty() {
                    let caps = caps
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
                    let acaps = sound.caps.clone();
                    let path = out.with_extension(extension(&caps, acaps.as_ref()));
                    let w = ClipWriter::create(&path, &caps, acaps.as_ref())?;
                    cut.frames = gop.len() as u64;
                    cut.last = t;
                    for b in gop.drain(..) {
                        w.push(b)?;
                    }
                    sound.drop_before(origin + cut.start.0);
                    sound.write(&w, at)?;
                    cut.path = path;
                    writer = Some(w);
                }
            }
        }
    }
    match writer {
        Some(w) => {
            // The sound up to the end, as far as the file interleaves it.
            let end = first.unwrap_or(0) + to.0;
            let waited = std::time::Instant::now();
            while r.sound.load(std::sync::atomic::Ordering::Relaxed)
                && !sound.ended
                && sound.pending.back().is_none_or(|(t, _)| *t < end)
                && waited.elapsed() < SOUND_LAG
            {
                sound.read(r.audio, gst::ClockTime::from_mseconds(100));
            }
            sound.write(&w, end)?;
            w.finish()?;
            Ok(cut)
        }
        None => Err(match first {
            None => fail("it has no video".into()),
            Some(_) => fail(format!("its video ends before {from}")),
        }),
    }
}
