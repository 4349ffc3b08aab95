//! Test media made with GStreamer, with content known to the sample.
//!
//! The picture is a flat grey frame until `change_at`, then a white square
//! that moves every frame; the sound is silence until `tone_at`, then a 1 kHz
//! tone at -6 dBFS peak. Both are generated here, buffer by buffer, with
//! exact timestamps.

use std::path::{Path, PathBuf};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

pub const SECOND: u64 = 1_000_000_000;
pub const MS: u64 = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    /// Matroska: MJPEG picture, PCM sound.
    MkvPcm,
    /// MP4: H.264 picture, AAC sound (index at the front: fast start).
    Mp4Aac,
    /// Matroska: MPEG-4 Part 2 picture, PCM sound. The track comes out
    /// without its frame size (width 0), so its picture never decodes.
    MkvMpeg4,
    /// AVI: MPEG-4 Part 2 picture, PCM sound.
    AviMpeg4,
    /// MPEG-TS: H.264 picture, AAC sound.
    TsH264,
    /// WAV: PCM sound only.
    Wav,
    /// MP3 (LAME, with a Xing header): sound only.
    Mp3,
}

impl Container {
    /// Whether the container can carry a picture: WAV and MP3 cannot.
    pub fn has_video(self) -> bool {
        !matches!(self, Container::Wav | Container::Mp3)
    }
}

#[derive(Clone, Debug)]
pub struct ClipSpec {
    pub container: Container,
    pub duration: u64,
    /// The picture ends here when set (before `duration`, where the sound ends).
    pub video_until: Option<u64>,
    pub video: bool,
    pub audio: bool,
    pub fps: u32,
    pub change_at: u64,
    pub tone_at: u64,
    /// Delay of the whole sound track against the picture.
    pub audio_offset: u64,
    pub audio_rate: u32,
    pub channels: u32,
}

impl Default for ClipSpec {
    fn default() -> Self {
        ClipSpec {
            container: Container::MkvPcm,
            duration: 6 * SECOND,
            video_until: None,
            video: true,
            audio: true,
            fps: 25,
            change_at: 3 * SECOND,
            tone_at: 3_037 * MS,
            audio_offset: 0,
            audio_rate: 48_000,
            channels: 1,
        }
    }
}

const W: usize = 320;
const H: usize = 240;

fn frame(i: u64, t: u64, spec: &ClipSpec) -> Vec<u8> {
    let mut rgb = vec![90u8; W * H * 3];
    if t >= spec.change_at {
        let k = ((t - spec.change_at) / (SECOND / spec.fps as u64)) as usize;
        let x0 = (20 + 6 * k) % (W - 60);
        let y0 = 60 + (i as usize % 2) * 4;
        for y in y0..y0 + 60 {
            for x in x0..x0 + 60 {
                rgb[(y * W + x) * 3..(y * W + x) * 3 + 3].copy_from_slice(&[250, 250, 250]);
            }
        }
    }
    rgb
}

fn tone(n: u64, spec: &ClipSpec) -> f32 {
    let start = spec.tone_at as u128 * spec.audio_rate as u128 / SECOND as u128;
    if (n as u128) < start {
        return 0.0;
    }
    let k = (n as u128 - start) as f64;
    (0.5 * (2.0 * std::f64::consts::PI * 1000.0 * k / spec.audio_rate as f64).sin()) as f32
}

/// Media to write: pictures and sound made by functions of time.
pub struct Media<'a> {
    pub container: Container,
    pub width: usize,
    pub height: usize,
    pub fps: u32,
    /// Where the picture ends, ns.
    pub video_until: u64,
    /// How many samples of sound, at `audio_rate`, from `audio_offset`.
    pub samples: u64,
    pub audio_offset: u64,
    pub audio_rate: u32,
    pub channels: u32,
    /// Frame `i` at `t` ns: packed RGB, `width * height * 3` bytes.
    pub picture: Option<&'a mut dyn FnMut(u64, u64) -> Vec<u8>>,
    /// Sample `n` (of each channel).
    pub sound: Option<&'a dyn Fn(u64) -> f32>,
}

fn launch(m: &Media, path: &Path) -> String {
    let loc = path.display();
    const PCM: &str = "audioconvert ! audio/x-raw,format=S16LE";
    const H264: &str = "x264enc speed-preset=ultrafast key-int-max=25 ! h264parse";
    const AAC: &str = "audioconvert ! avenc_aac bitrate=128000 ! aacparse";
    let (venc, aenc, mux) = match m.container {
        Container::MkvPcm => ("jpegenc quality=90", PCM, "matroskamux name=m"),
        Container::Mp4Aac => (H264, AAC, "mp4mux name=m faststart=true"),
        Container::MkvMpeg4 => ("avenc_mpeg4", PCM, "matroskamux name=m"),
        Container::AviMpeg4 => ("avenc_mpeg4", PCM, "avimux name=m"),
        Container::TsH264 => (H264, AAC, "mpegtsmux name=m"),
        Container::Wav => ("", PCM, "wavenc name=m"),
        Container::Mp3 => ("", "audioconvert ! lamemp3enc", "xingmux name=m"),
    };
    let mut s = format!("{mux} ! filesink location=\"{loc}\" ");
    if m.picture.is_some() {
        assert!(
            m.container.has_video(),
            "{:?} carries no picture: make it with video: false",
            m.container
        );
        s += &format!(
            "appsrc name=v format=time caps=video/x-raw,format=RGB,width={},height={},framerate={}/1 ! videoconvert ! {venc} ! queue ! m. ",
            m.width, m.height, m.fps
        );
    }
    if m.sound.is_some() {
        s += &format!(
            "appsrc name=a format=time caps=audio/x-raw,format=F32LE,rate={},channels={},layout=interleaved ! {aenc} ! queue ! m. ",
            m.audio_rate, m.channels
        );
    }
    s
}

/// Writes the clip `spec` describes to `path`.
pub fn make(spec: &ClipSpec, path: &Path) {
    let mut picture = |i, t| frame(i, t, spec);
    let sound = |n| tone(n, spec);
    write(
        Media {
            container: spec.container,
            width: W,
            height: H,
            fps: spec.fps,
            video_until: spec.video_until.unwrap_or(spec.duration),
            samples: (spec.duration as u128 * spec.audio_rate as u128 / SECOND as u128) as u64,
            audio_offset: spec.audio_offset,
            audio_rate: spec.audio_rate,
            channels: spec.channels,
            picture: spec
                .video
                .then_some(&mut picture as &mut dyn FnMut(u64, u64) -> Vec<u8>),
            sound: spec.audio.then_some(&sound as &dyn Fn(u64) -> f32),
        },
        path,
    );
}

/// Writes `m` to `path`, buffer by buffer in time order, exactly timed.
pub fn write(mut m: Media, path: &Path) {
    gst::init().expect("GStreamer");
    let pipeline = gst::parse::launch(&launch(&m, path))
        .expect("clip pipeline")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline");
    let src = |name| {
        pipeline
            .by_name(name)
            .map(|e| e.downcast::<gst_app::AppSrc>().expect("appsrc"))
    };
    let (v, a) = (src("v"), src("a"));
    pipeline.set_state(gst::State::Playing).expect("playing");
    let frame_ns = SECOND / m.fps as u64;
    let block = 1024u64;
    let (mut i, mut n) = (0u64, 0u64);
    let total_samples = m.samples as u128;
    loop {
        let vt = i * frame_ns;
        let at = m.audio_offset + (n as u128 * SECOND as u128 / m.audio_rate as u128) as u64;
        let video_left = v.is_some() && vt < m.video_until;
        let audio_left = a.is_some() && (n as u128) < total_samples;
        if !video_left && !audio_left {
            break;
        }
        if video_left && (!audio_left || vt <= at) {
            let picture = m.picture.as_mut().expect("a picture");
            let mut buf = gst::Buffer::from_mut_slice(picture(i, vt));
            let b = buf.get_mut().expect("fresh buffer");
            b.set_pts(gst::ClockTime::from_nseconds(vt));
            b.set_duration(gst::ClockTime::from_nseconds(frame_ns));
            v.as_ref().map(|v| v.push_buffer(buf).expect("push video"));
            i += 1;
        } else {
            let count = block.min((total_samples - n as u128) as u64);
            let mut bytes = Vec::with_capacity((count * 4 * m.channels as u64) as usize);
            let sound = m.sound.expect("a sound");
            for k in n..n + count {
                let x = sound(k);
                for _ in 0..m.channels {
                    bytes.extend_from_slice(&x.to_le_bytes());
                }
            }
            let mut buf = gst::Buffer::from_mut_slice(bytes);
            let b = buf.get_mut().expect("fresh buffer");
            b.set_pts(gst::ClockTime::from_nseconds(at));
            b.set_duration(gst::ClockTime::from_nseconds(
                (count as u128 * SECOND as u128 / m.audio_rate as u128) as u64,
            ));
            a.as_ref().map(|a| a.push_buffer(buf).expect("push audio"));
            n += count;
        }
    }
    for s in [&v, &a].into_iter().flatten() {
        s.end_of_stream().expect("eos");
    }
    let bus = pipeline.bus().expect("bus");
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                panic!("making {}: {} {:?}", path.display(), e.error(), e.debug())
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).expect("null");
}

/// A clip in a fresh temporary directory; the directory lives as long as the value.
pub struct TempClip {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn temp(spec: &ClipSpec, name: &str) -> TempClip {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    make(spec, &path);
    TempClip { dir, path }
}

/// A file of `../shared/media`.
pub fn shared(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/media")
        .join(name);
    assert!(
        p.exists(),
        "{} is missing: the tests need ../shared/media",
        p.display()
    );
    p
}

/// `GST_PLUGIN_FEATURE_RANK` that leaves GStreamer no H.264 decoder: a
/// machine without one, made for real.
pub const NO_H264_DECODER: &str = "avdec_h264:NONE,openh264dec:NONE,vah264dec:NONE,vaapih264dec:NONE,nvh264dec:NONE,v4l2h264dec:NONE";

/// `seconds` s of jfk.wav's speech with a picture made by GStreamer's own
/// `avenc_mpeg4 ! matroskamux`, which avdec_mpeg4 cannot negotiate (its
/// caps say 0×0) and stamps centuries ahead: a picture that never decodes.
pub fn mpeg4_in_matroska(dir: &Path, seconds: u64) -> PathBuf {
    let path = dir.join("mpeg4.mkv");
    let frames = seconds * 25;
    let launch = format!(
        "videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 \
         ! avenc_mpeg4 ! queue ! m. \
         filesrc location=\"{}\" ! wavparse ! audioconvert ! audio/x-raw,format=S16LE ! queue ! m. \
         matroskamux name=m ! filesink location=\"{}\"",
        shared("jfk.wav").display(),
        path.display()
    );
    let status = std::process::Command::new("timeout")
        .args(["60", "gst-launch-1.0", "-q"])
        .args(launch.split_whitespace())
        .status()
        .expect("gst-launch-1.0 (make setup installs gstreamer1.0-tools)");
    assert!(status.success(), "gst-launch-1.0 {launch}");
    path
}
