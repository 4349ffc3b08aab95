//! Writes encoded packets (video, and sound if any) into a file, as they
//! are: `appsrc → mp4mux` (H.264, H.265 with AAC or MP3 or no sound; a
//! parser first for a byte stream) or `matroskamux` (the rest) `→
//! filesink`, into `NAME.part`, renamed once the muxer has finished it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::error::{Error, Result};

/// How long the muxer may take to finish a file after the last packet.
const FINISH_TIMEOUT: Duration = Duration::from_secs(30);

/// A file being written.
pub struct ClipWriter {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    /// The sound's, when the clip has sound.
    audio: Option<gst_app::AppSrc>,
    part: PathBuf,
    path: PathBuf,
}

/// The muxer for packets of `caps` (MP4 for H.264 and H.265, Matroska
/// for the rest; the MP4 index is written at the end, as it comes: moving
/// it to the front would copy the whole clip once more, and players that
/// read over HTTP ask for the end by range, which `/media` serves), and
/// the parser that makes a byte stream what MP4 takes
/// (packets already in MP4's form go in as they are, byte for byte).
fn muxing(caps: &gst::Caps) -> (&'static str, Option<&'static str>) {
    let Some(s) = caps.structure(0) else {
        return ("matroskamux", None);
    };
    let byte_stream = s
        .get::<&str>("stream-format")
        .is_ok_and(|f| f == "byte-stream");
    match s.name().as_str() {
        "video/x-h264" => ("mp4mux", byte_stream.then_some("h264parse")),
        "video/x-h265" => ("mp4mux", byte_stream.then_some("h265parse")),
        _ => ("matroskamux", None),
    }
}

/// Whether MP4 holds sound of `caps` (AAC, MP3).
fn mp4_sound(caps: &gst::Caps) -> bool {
    caps.structure(0)
        .is_some_and(|s| s.name().as_str() == "audio/mpeg")
}

/// The muxer of a clip of `video` and, if any, `audio`: MP4 when it holds
/// both, else Matroska.
fn muxer(video: &gst::Caps, audio: Option<&gst::Caps>) -> (&'static str, Option<&'static str>) {
    let (mux, parse) = muxing(video);
    match audio {
        Some(a) if mux.starts_with("mp4mux") && !mp4_sound(a) => ("matroskamux", parse),
        _ => (mux, parse),
    }
}

/// The extension a clip of `video` (and `audio`) packets gets: `mp4` or
/// `mkv`.
pub fn extension(video: &gst::Caps, audio: Option<&gst::Caps>) -> &'static str {
    if muxer(video, audio).0.starts_with("mp4mux") {
        "mp4"
    } else {
        "mkv"
    }
}

impl ClipWriter {
    /// Starts writing packets of `caps` (and sound of `audio`) to `path`.
    pub fn create(path: &Path, caps: &gst::Caps, audio: Option<&gst::Caps>) -> Result<ClipWriter> {
        let fail = |m: String| Error::Gst(format!("clip {}: {m}", path.display()));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::io(format!("cannot create the folder of {}", path.display()), e)
            })?;
        }
        let (mux, parse) = muxer(caps, audio);
        // The muxer's pads by name: linked before the caps are known, a
        // muxer would otherwise hand out its first pad, which may be audio.
        let launch = format!(
            "appsrc name=src format=time ! {}mux.video_0 {}{mux} name=mux ! filesink name=sink",
            parse.map(|p| format!("{p} ! ")).unwrap_or_default(),
            if audio.is_some() {
                "appsrc name=asrc format=time ! mux.audio_0 "
            } else {
                ""
            }
        );
        let pipeline = gst::parse::launch(&launch)
            .map_err(|e| fail(format!("cannot build the writer: {e}")))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| fail("the writer is not a pipeline".into()))?;
        let appsrc = |name: &str| {
            pipeline
                .by_name(name)
                .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
                .ok_or_else(|| fail("the writer has no source".into()))
        };
        let src = appsrc("src")?;
        src.set_caps(Some(caps));
        let audio = match audio {
            Some(a) => {
                let asrc = appsrc("asrc")?;
                asrc.set_caps(Some(a));
                Some(asrc)
            }
            None => None,
        };
        let mut part = path.as_os_str().to_owned();
        part.push(".part");
        let part = PathBuf::from(part);
        pipeline
            .by_name("sink")
            .ok_or_else(|| fail("the writer has no sink".into()))?
            .set_property("location", part.to_string_lossy().as_ref());
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| fail(format!("cannot start the writer: {e}")))?;
        Ok(ClipWriter {
            pipeline,
            src,
            audio,
            part,
            path: path.to_path_buf(),
        })
    }

    /// One packet of sound (a clip made without sound drops it).
    pub fn push_audio(&self, packet: gst::Buffer) -> Result<()> {
        match &self.audio {
            Some(a) => a.push_buffer(packet).map(drop).map_err(|e| {
                Error::Gst(format!(
                    "clip {}: the writer refused a packet of sound: {e:?}",
                    self.path.display()
                ))
            }),
            None => Ok(()),
        }
    }

    /// One packet, its timestamps as the source gave them (the muxer
    /// starts the file at the first).
    pub fn push(&self, packet: gst::Buffer) -> Result<()> {
        self.src.push_buffer(packet).map(drop).map_err(|e| {
            Error::Gst(format!(
                "clip {}: the writer refused a packet: {e:?}",
                self.path.display()
            ))
        })
    }

    /// Ends the file: the muxer finishes it, and it takes its name.
    pub fn finish(self) -> Result<PathBuf> {
        let fail = |m: String| Error::Gst(format!("clip {}: {m}", self.path.display()));
        let stop = |p: &gst::Pipeline| {
            let _ = p.set_state(gst::State::Null);
        };
        let _ = self.src.end_of_stream();
        if let Some(a) = &self.audio {
            let _ = a.end_of_stream();
        }
        let bus = self
            .pipeline
            .bus()
            .ok_or_else(|| fail("the writer has no bus".into()))?;
        let msg = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(FINISH_TIMEOUT.as_millis() as u64),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        stop(&self.pipeline);
        match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => {}
            Some(gst::MessageView::Error(e)) => {
                let _ = std::fs::remove_file(&self.part);
                return Err(fail(format!("the muxer failed: {}", e.error())));
            }
            _ => {
                let _ = std::fs::remove_file(&self.part);
                return Err(fail(format!(
                    "the muxer did not finish in {} s",
                    FINISH_TIMEOUT.as_secs()
                )));
            }
        }
        std::fs::rename(&self.part, &self.path)
            .map_err(|e| Error::io(format!("cannot name the clip {}", self.path.display()), e))?;
        Ok(self.path)
    }
}
