//! One picture out of an image file (PNG, JPEG, anything GStreamer
//! decodes), as RGB: for `vigil faces enroll`.

use std::path::Path;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::error::{Error, Result};
use crate::media::VideoFrame;

/// How long decoding one picture may take.
const DECODE_TIMEOUT: Duration = Duration::from_secs(30);

/// The first picture of the file at `path`.
pub fn decode(path: &Path) -> Result<VideoFrame> {
    let fail = |message: String| Error::Gst(format!("{}: {message}", path.display()));
    if !path.is_file() {
        return Err(fail("no such file".into()));
    }
    super::init()?;
    let pipeline = gst::parse::launch(
        "filesrc name=src ! decodebin ! videoconvert ! video/x-raw,format=RGB \
         ! appsink name=sink sync=false max-buffers=1",
    )
    .map_err(|e| fail(format!("cannot build a decoder: {e}")))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| fail("the decoder is not a pipeline".into()))?;
    let src = pipeline
        .by_name("src")
        .ok_or_else(|| fail("the decoder has no source".into()))?;
    src.set_property("location", path.to_string_lossy().as_ref());
    let sink = pipeline
        .by_name("sink")
        .and_then(|s| s.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| fail("the decoder has no sink".into()))?;
    let stop = |p: &gst::Pipeline| {
        let _ = p.set_state(gst::State::Null);
    };
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| fail(format!("cannot start decoding: {e}")))?;
    let bus = pipeline
        .bus()
        .ok_or_else(|| fail("the decoder has no bus".into()))?;
    let started = std::time::Instant::now();
    let sample = loop {
        if let Some(s) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
            break s;
        }
        // The bus says why none came: not a picture, or a corrupt one.
        let why = match bus.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Eos]) {
            Some(m) => match m.view() {
                gst::MessageView::Error(e) => Some(e.error().to_string()),
                _ => Some("no picture came out of it".to_string()),
            },
            None if started.elapsed() > DECODE_TIMEOUT => Some(format!(
                "no picture came out of it in {} s",
                DECODE_TIMEOUT.as_secs()
            )),
            None => None,
        };
        if let Some(why) = why {
            stop(&pipeline);
            return Err(fail(format!("cannot decode it as a picture: {why}")));
        }
    };
    let frame = super::branch::video_frame(&sample, None, &mut None).map_err(fail);
    stop(&pipeline);
    frame
}
