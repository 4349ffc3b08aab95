//! Writes encoded video packets into a file, as they are: `appsrc → mp4mux`
//! (H.264, H.265; a parser first for a byte stream) or `matroskamux`
//! (other codecs) `→ filesink`, into `NAME.part`, renamed once the muxer
//! has finished it.

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
    part: PathBuf,
    path: PathBuf,
}

/// The muxer for packets of `caps` (MP4 for H.264 and H.265, Matroska
/// for the rest), and the parser that makes a byte stream what MP4 takes
/// (packets already in MP4's form go in as they are, byte for byte).
fn muxing(caps: &gst::Caps) -> (&'static str, Option<&'static str>) {
    let Some(s) = caps.structure(0) else {
        return ("matroskamux", None);
    };
    let byte_stream = s
        .get::<&str>("stream-format")
        .is_ok_and(|f| f == "byte-stream");
    match s.name().as_str() {
        "video/x-h264" => ("mp4mux faststart=true", byte_stream.then_some("h264parse")),
        "video/x-h265" => ("mp4mux faststart=true", byte_stream.then_some("h265parse")),
        _ => ("matroskamux", None),
    }
}

/// The extension a clip of packets of `caps` gets: `mp4` or `mkv`.
pub fn extension(caps: &gst::Caps) -> &'static str {
    if muxing(caps).0.starts_with("mp4mux") {
        "mp4"
    } else {
        "mkv"
    }
}

impl ClipWriter {
    /// Starts writing packets of `caps` to `path`.
    pub fn create(path: &Path, caps: &gst::Caps) -> Result<ClipWriter> {
        let fail = |m: String| Error::Gst(format!("clip {}: {m}", path.display()));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::io(format!("cannot create the folder of {}", path.display()), e)
            })?;
        }
        let (mux, parse) = muxing(caps);
        // The muxer's video pad by name: linked before the caps are known,
        // a muxer would otherwise hand out its first pad, which may be audio.
        let launch = format!(
            "appsrc name=src format=time ! {}mux.video_0 {mux} name=mux ! filesink name=sink",
            parse.map(|p| format!("{p} ! ")).unwrap_or_default()
        );
        let pipeline = gst::parse::launch(&launch)
            .map_err(|e| fail(format!("cannot build the writer: {e}")))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| fail("the writer is not a pipeline".into()))?;
        let src = pipeline
            .by_name("src")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| fail("the writer has no source".into()))?;
        src.set_caps(Some(caps));
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
            part,
            path: path.to_path_buf(),
        })
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
