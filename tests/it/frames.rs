//! Frames of a real file, decoded by GStreamer as vigil's source does
//! (RGB, 640 wide, sampled at a fixed rate), for tests of the encoders
//! through their API.

use std::path::Path;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use vigil::media::VideoFrame;
use vigil::time::Timestamp;

/// Every frame of `path` at `fps` (a still image: one frame), `width` wide.
pub fn decode(path: &Path, fps: u32, width: u32) -> Vec<VideoFrame> {
    gst::init().expect("GStreamer initialises");
    let still = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png") || e.eq_ignore_ascii_case("jpg"));
    let rate = if still {
        String::new()
    } else {
        format!("videorate ! video/x-raw,framerate={fps}/1 ! ")
    };
    let description = format!(
        "filesrc location=\"{}\" ! decodebin ! videoconvert ! {rate}videoscale ! video/x-raw,format=RGB,width={width},pixel-aspect-ratio=1/1 ! appsink name=sink sync=false",
        path.display()
    );
    let mut frames = Vec::new();
    each_sample(&description, |sample| {
        let caps = sample.caps().expect("caps");
        let info = gstreamer_video::VideoInfo::from_caps(caps).expect("video caps");
        let buffer = sample.buffer().expect("a buffer");
        let map = buffer.map_readable().expect("readable");
        let (w, h, stride) = (
            info.width() as usize,
            info.height() as usize,
            info.stride()[0] as usize,
        );
        let mut rgb = Vec::with_capacity(w * h * 3);
        for row in 0..h {
            rgb.extend_from_slice(&map[row * stride..row * stride + w * 3]);
        }
        frames.push(VideoFrame {
            pts: Timestamp(buffer.pts().map_or(0, |p| p.nseconds())),
            duration: 0,
            width: w as u32,
            height: h as u32,
            rgb: rgb.into(),
            grey: None,
        });
    });
    frames
}

/// Runs a `gst-launch` style `description` ending in `appsink name=sink`
/// to its end, handing each sample to `f`.
fn each_sample(description: &str, mut f: impl FnMut(&gst::Sample)) {
    let pipeline = gst::parse::launch(description)
        .expect("a pipeline")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline");
    let sink = pipeline
        .by_name("sink")
        .expect("the sink")
        .downcast::<gst_app::AppSink>()
        .expect("an appsink");
    pipeline.set_state(gst::State::Playing).expect("plays");
    while let Ok(sample) = sink.pull_sample() {
        f(&sample);
    }
    pipeline.set_state(gst::State::Null).expect("stops");
}

/// The sound of `path` as vigil's source gives it: 16 kHz mono f32.
pub fn audio(path: &Path) -> Vec<f32> {
    gst::init().expect("GStreamer initialises");
    let description = format!(
        "filesrc location=\"{}\" ! decodebin ! audioconvert ! audioresample ! audio/x-raw,format=F32LE,rate=16000,channels=1,layout=interleaved ! appsink name=sink sync=false",
        path.display()
    );
    let mut samples = Vec::new();
    each_sample(&description, |sample| {
        let buffer = sample.buffer().expect("a buffer");
        let map = buffer.map_readable().expect("readable");
        samples.extend(
            map.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
    });
    samples
}

/// The `w` × `h` window of `frame` whose top left is (`x`, `y`): what a
/// camera nearer the scene, or zoomed in, would see.
pub fn crop(frame: &VideoFrame, x: usize, y: usize, w: usize, h: usize) -> VideoFrame {
    let (fw, fh) = (frame.width as usize, frame.height as usize);
    assert!(
        x + w <= fw && y + h <= fh,
        "{w}x{h}+{x}+{y} is not inside {fw}x{fh}"
    );
    let mut rgb = Vec::with_capacity(w * h * 3);
    for row in y..y + h {
        let start = (row * fw + x) * 3;
        rgb.extend_from_slice(&frame.rgb[start..start + w * 3]);
    }
    VideoFrame {
        pts: frame.pts,
        duration: frame.duration,
        width: w as u32,
        height: h as u32,
        rgb: rgb.into(),
        grey: None,
    }
}
