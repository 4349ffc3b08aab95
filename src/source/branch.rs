//! The video and audio branches hung off `uridecodebin` as its pads appear.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::Sender;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

use super::SourceSettings;
use super::pace::Pace;
use crate::lock::Locked;
use crate::media::{
    AudioBlock, Branch, Failure, FailureKind, Grey, Input, Pixels, SourceMessage, VideoFrame,
};
use crate::metrics::StageMetrics;
use crate::time::{AUDIO_RATE, SECOND, Timestamp, mul_div_ceil, mul_div_floor};

/// Where a pipeline's branches deliver: the synchroniser's channel, the
/// source's metrics, the pacing of a file's branches, and whether the
/// source is live (known once it started).
#[derive(Clone)]
pub(super) struct Outlet {
    pub tx: Sender<SourceMessage>,
    pub metrics: StageMetrics,
    pub pace: Arc<Pace>,
    pub live: Arc<AtomicBool>,
    /// Which parsers the recorder's tap takes packets from, when the
    /// stream is recorded.
    pub claimed: Arc<Mutex<super::tap::Claimed>>,
}

/// The span (source time) a frame or a block of sound covers.
fn reach(input: &Input) -> Option<(u64, u64)> {
    match input {
        Input::Frame(f) => Some((f.pts.0, f.pts.0.saturating_add(f.duration))),
        Input::Audio(b) => {
            let len = crate::time::sample_to_time(b.samples.len() as u64, AUDIO_RATE).0;
            Some((b.pts.0, b.pts.0.saturating_add(len)))
        }
        _ => None,
    }
}

/// Buffers an appsink holds before it blocks the streaming thread.
const APPSINK_BUFFERS: u32 = 2;

#[derive(Clone, Default)]
struct Topology {
    video: bool,
    audio: bool,
    /// The first track of each kind that no decoder takes (its caps).
    no_video_decoder: Option<String>,
    no_audio_decoder: Option<String>,
}

/// Links each new pad of `decode` to a branch; reports the topology when the
/// last pad is known.
pub(super) fn connect(
    pipeline: &gst::Pipeline,
    decode: &gst::Element,
    settings: &SourceSettings,
    outlet: Outlet,
) {
    let Outlet { tx, live, .. } = outlet.clone();
    let topology = Arc::new(Mutex::new(Topology::default()));
    let weak = pipeline.downgrade();
    let (settings, tx_pad, topo_pad) = (settings.clone(), tx.clone(), topology.clone());
    decode.connect_pad_added(move |_, pad| {
        let Some(pipeline) = weak.upgrade() else {
            return;
        };
        let kind = crate::media::pad_kind(pad);
        let mut topo = topo_pad.locked();
        let result = if kind.starts_with("video/") && !topo.video {
            topo.video = true;
            outlet.pace.link(Branch::Video);
            add_video(&pipeline, pad, &settings, outlet.clone())
        } else if kind.starts_with("audio/") && !topo.audio {
            topo.audio = true;
            outlet.pace.link(Branch::Audio);
            add_audio(&pipeline, pad, outlet.clone())
        } else {
            // A second audio track, subtitles, data: consumed and ignored.
            add_discard(&pipeline, pad)
        };
        if let Err(e) = result {
            let _ = tx_pad.send(SourceMessage::Failed(Failure::new(
                FailureKind::Other,
                format!("cannot build the {kind} branch: {e}"),
            )));
        }
    });
    // A track no installed decoder takes (an H.265 camera on a machine
    // without an H.265 decoder): decodebin leaves it out and goes on with
    // the others, which would analyse the sound alone without a word.
    let topo_unknown = topology.clone();
    decode.connect("unknown-type", false, move |args| {
        let caps = args.get(2).and_then(|v| v.get::<gst::Caps>().ok());
        if let Some(name) = caps
            .as_ref()
            .and_then(|c| c.structure(0))
            .map(|s| s.name().to_string())
        {
            let mut topo = topo_unknown.locked();
            if name.starts_with("video/") {
                topo.no_video_decoder.get_or_insert(name);
            } else if name.starts_with("audio/") {
                topo.no_audio_decoder.get_or_insert(name);
            }
        }
        None
    });
    decode.connect_no_more_pads(move |_| {
        let topo = topology.locked().clone();
        let _ = tx.send(SourceMessage::Input(Input::Topology {
            video: topo.video,
            audio: topo.audio,
            live: live.load(Ordering::Relaxed),
        }));
        let undecodable = [
            (Branch::Video, topo.video, topo.no_video_decoder),
            (Branch::Audio, topo.audio, topo.no_audio_decoder),
        ];
        for (branch, linked, caps) in undecodable {
            if let (false, Some(caps)) = (linked, caps) {
                let instead = if branch == Branch::Video && caps != "video/x-h264" {
                    ", or set the camera to H.264"
                } else {
                    ""
                };
                let _ = tx.send(SourceMessage::Input(Input::Undecodable {
                    branch,
                    what: format!(
                        "no decoder on this machine takes its format ({caps}); run `make setup` to install the GStreamer decoders (gstreamer1.0-libav, -plugins-good, -bad, -ugly){instead}"
                    ),
                }));
            }
        }
    });
}

fn make(factory: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| format!("GStreamer element '{factory}' is missing; run `make setup`"))
}

fn attach(pipeline: &gst::Pipeline, pad: &gst::Pad, chain: &[&gst::Element]) -> Result<(), String> {
    pipeline.add_many(chain).map_err(|e| e.to_string())?;
    gst::Element::link_many(chain).map_err(|e| e.to_string())?;
    for e in chain {
        e.sync_state_with_parent().map_err(|e| e.to_string())?;
    }
    let sink = chain[0]
        .static_pad("sink")
        .ok_or("the branch has no sink pad")?;
    pad.link(&sink).map_err(|e| format!("cannot link: {e:?}"))?;
    Ok(())
}

/// Charges the stream the CPU time of the thread that pushes into `element`
/// (the demuxer's and decoder's), at each buffer.
fn charge_upstream(element: &gst::Element, metrics: StageMetrics) {
    if let Some(pad) = element.static_pad("sink") {
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            metrics.cpu(None, crate::cpu::since_last());
            gst::PadProbeReturn::Ok
        });
    }
}

fn add_discard(pipeline: &gst::Pipeline, pad: &gst::Pad) -> Result<(), String> {
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()
        .map_err(|e| e.to_string())?;
    attach(pipeline, pad, &[&sink])
}

/// Keeps the first frame at or after each slot of the analysis rate, by PTS,
/// before anything is converted: frames keep their own PTS. Returns where
/// the decoded video reaches (end of the latest frame, kept or not).
fn sample_by_pts(pad: &gst::Pad, fps: (u32, u32)) -> Arc<AtomicU64> {
    let (num, den) = (fps.0.max(1) as u64, fps.1.max(1) as u64);
    let next_slot = AtomicU64::new(0);
    let extent = Arc::new(AtomicU64::new(0));
    let reach = extent.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(pts) = buffer.pts() else {
            return gst::PadProbeReturn::Ok;
        };
        let pts = pts.nseconds();
        let end = pts + buffer.duration().map_or(0, |d| d.nseconds());
        reach.fetch_max(end, Ordering::Relaxed);
        if pts < next_slot.load(Ordering::Relaxed) {
            return gst::PadProbeReturn::Drop;
        }
        let slot = mul_div_floor(pts, num, SECOND * den) + 1;
        next_slot.store(mul_div_ceil(slot, SECOND * den, num), Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
    extent
}

fn add_video(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    settings: &SourceSettings,
    outlet: Outlet,
) -> Result<(), String> {
    let extent = sample_by_pts(pad, settings.fps);
    let claimed = outlet.claimed.clone();
    let queue = make("queue")?;
    charge_upstream(&queue, outlet.metrics.clone());
    let scale = make("videoscale")?;
    let convert = make("videoconvert")?;
    let mut caps = gst::Caps::builder("video/x-raw")
        .field("format", "RGB")
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1));
    if let Some(w) = settings.width {
        caps = caps.field("width", w as i32);
    }
    if let Some(h) = settings.height {
        caps = caps.field("height", h as i32);
    }
    let sink = gst_app::AppSink::builder()
        .caps(&caps.build())
        .max_buffers(APPSINK_BUFFERS)
        .sync(false)
        .build();
    let thumbnail = settings.thumbnail_width;
    deliver(&sink, Branch::Video, Some(extent), outlet, {
        // Caps change rarely: parse them once per change, not per frame.
        let mut info: Option<(gst::Caps, gst_video::VideoInfo)> = None;
        let (mut told_clock, mut told_ntp) = (false, false);
        move |sink, sample, out| {
            let frame = video_frame(sample, thumbnail, &mut info)?;
            // The UTC of the frames: the camera's (RTCP) once known, the
            // pipeline clock's for the first frame.
            if !told_ntp && let Some(utc) = sample.buffer().and_then(ntp_utc) {
                told_ntp = true;
                out.push(Input::Clock {
                    pts: frame.pts,
                    utc,
                    ntp: true,
                });
            } else if !told_clock && let Some(utc) = clock_utc(sink, sample) {
                told_clock = true;
                out.push(Input::Clock {
                    pts: frame.pts,
                    utc,
                    ntp: false,
                });
            }
            out.push(Input::Frame(frame));
            Ok(())
        }
    });
    // Pictures without a parser (raw from the source) are re-encoded for
    // the recorder, if there is one.
    let unparsed = settings
        .packets
        .as_ref()
        .filter(|_| outlet_has_no_parser(&claimed));
    let Some(tap) = unparsed else {
        return attach(
            pipeline,
            pad,
            &[&queue, &scale, &convert, sink.upcast_ref()],
        );
    };
    tracing::info!(
        stream = %settings.name,
        "the source gives its pictures unencoded: they are encoded (H.264, x264 ultrafast) at the analysis rate for its recordings"
    );
    let tee = make("tee")?;
    let encoder = super::tap::fallback_encoder(tap, &claimed, settings.fps)?;
    let encoder: Vec<&gst::Element> = encoder.iter().collect();
    attach(
        pipeline,
        pad,
        &[&queue, &tee, &scale, &convert, sink.upcast_ref()],
    )?;
    pipeline.add_many(&encoder).map_err(|e| e.to_string())?;
    gst::Element::link_many(&encoder).map_err(|e| e.to_string())?;
    for e in &encoder {
        e.sync_state_with_parent().map_err(|e| e.to_string())?;
    }
    tee.link(encoder[0]).map_err(|e| e.to_string())
}

/// Whether no parser of pictures was plugged in front of the decoder.
fn outlet_has_no_parser(claimed: &Mutex<super::tap::Claimed>) -> bool {
    !claimed.locked().has_video_parser()
}

/// Sends what `convert` makes of each sample of `sink` to the synchroniser,
/// then the branch's end. A sample that cannot be converted fails the stream
/// (a flow error, never a panic); a synchroniser that is gone stops the flow.
fn deliver(
    sink: &gst_app::AppSink,
    branch: Branch,
    extent: Option<Arc<AtomicU64>>,
    outlet: Outlet,
    mut convert: impl FnMut(&gst_app::AppSink, &gst::Sample, &mut Vec<Input>) -> Result<(), String>
    + Send
    + 'static,
) {
    let Outlet {
        tx,
        metrics,
        pace,
        live,
        ..
    } = outlet;
    let eos_tx = tx.clone();
    let eos_pace = pace.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                metrics.received();
                let timer = metrics.timer();
                let mut inputs = Vec::with_capacity(2);
                let converted = convert(sink, &sample, &mut inputs);
                drop(timer);
                metrics.cpu(None, crate::cpu::since_last());
                match converted {
                    Ok(()) => {
                        if let Some((start, end)) = inputs.iter().find_map(reach) {
                            pace.admit(branch, start, end, live.load(Ordering::Relaxed));
                        }
                        for input in inputs {
                            tx.send(SourceMessage::Input(input))
                                .map_err(|_| gst::FlowError::Eos)?;
                        }
                        metrics.sent();
                        metrics.queue_depth(tx.len());
                        Ok(gst::FlowSuccess::Ok)
                    }
                    Err(e) => {
                        let _ =
                            tx.send(SourceMessage::Failed(Failure::new(FailureKind::Decode, e)));
                        Err(gst::FlowError::Error)
                    }
                }
            })
            .eos(move |_| {
                eos_pace.end(branch);
                if let Some(end) = extent.as_ref().map(|e| e.load(Ordering::Relaxed)) {
                    let _ = eos_tx.send(SourceMessage::Input(Input::VideoExtent(Timestamp(end))));
                }
                let _ = eos_tx.send(SourceMessage::Input(Input::Eos(branch)));
            })
            .build(),
    );
}

/// Seconds from 1900 (NTP) to 1970 (Unix).
const NTP_TO_UNIX: u64 = 2_208_988_800;

/// The sender's capture time of `buffer` (a reference timestamp in NTP
/// time, which rtpjitterbuffer adds once RTCP sender reports came), as ns
/// since the Unix epoch.
fn ntp_utc(buffer: &gst::BufferRef) -> Option<i64> {
    buffer
        .iter_meta::<gst::meta::ReferenceTimestampMeta>()
        .find(|m| {
            m.reference()
                .structure(0)
                .is_some_and(|s| s.name() == "timestamp/x-ntp")
        })
        .and_then(|m| {
            let ns = m
                .timestamp()
                .nseconds()
                .checked_sub(NTP_TO_UNIX * 1_000_000_000)?;
            i64::try_from(ns).ok()
        })
}

/// When the pipeline clock says `sample` was captured, as UTC: its running
/// time on the clock, dated by how long ago that was.
fn clock_utc(sink: &gst_app::AppSink, sample: &gst::Sample) -> Option<i64> {
    let clock = sink.clock()?;
    let base = sink.base_time()?;
    let pts = sample.buffer()?.pts()?;
    let segment = sample.segment()?.downcast_ref::<gst::format::Time>()?;
    let running = segment.to_running_time(pts)?;
    let now = clock.time();
    let captured = base.checked_add(running)?;
    let age = i64::try_from(now.nseconds()).ok()? - i64::try_from(captured.nseconds()).ok()?;
    let utc = chrono::Utc::now().timestamp_nanos_opt()?;
    utc.checked_sub(age)
}

pub(super) fn video_frame(
    sample: &gst::Sample,
    thumbnail: Option<u32>,
    known: &mut Option<(gst::Caps, gst_video::VideoInfo)>,
) -> Result<VideoFrame, String> {
    let buffer = sample.buffer().ok_or("a video sample without a buffer")?;
    let pts = buffer.pts().ok_or(
        "a video buffer has no timestamp (PTS); vigil does not guess time: remux the file",
    )?;
    let caps = sample.caps().ok_or("a video sample without caps")?;
    let info = match known {
        Some((c, info)) if c.as_ref() == caps => info.clone(),
        _ => {
            let info =
                gst_video::VideoInfo::from_caps(caps).map_err(|e| format!("video caps: {e}"))?;
            *known = Some((caps.to_owned(), info.clone()));
            info
        }
    };
    let (w, h) = (info.width(), info.height());
    let row = w as usize * 3;
    let packed = info.stride()[0] as usize == row
        && info.offset()[0] == 0
        && buffer.size() >= row * h as usize;
    let rgb = if packed {
        // Rows without padding: share GStreamer's buffer, no copy.
        let owned = sample
            .buffer_owned()
            .ok_or("a video sample without a buffer")?;
        Pixels::new(
            owned
                .into_mapped_buffer_readable()
                .map_err(|_| "cannot map a video buffer".to_string())?,
        )
    } else {
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
            .map_err(|e| format!("cannot map a video frame: {e}"))?;
        let stride = frame.plane_stride()[0] as usize;
        let data = frame
            .plane_data(0)
            .map_err(|e| format!("video plane: {e}"))?;
        let mut rgb = Vec::with_capacity(row * h as usize);
        for y in 0..h as usize {
            rgb.extend_from_slice(&data[y * stride..y * stride + row]);
        }
        rgb.into()
    };
    Ok(VideoFrame {
        pts: Timestamp(pts.nseconds()),
        duration: buffer.duration().map_or(0, |d| d.nseconds()),
        width: w,
        height: h,
        grey: thumbnail.map(|t| Arc::new(Grey::from_rgb(&rgb, w as usize, h as usize, t as usize))),
        rgb,
    })
}

fn add_audio(pipeline: &gst::Pipeline, pad: &gst::Pad, outlet: Outlet) -> Result<(), String> {
    let queue = make("queue")?;
    charge_upstream(&queue, outlet.metrics.clone());
    let convert = make("audioconvert")?;
    let resample = make("audioresample")?;
    let caps = gst::Caps::builder("audio/x-raw")
        .field("format", "F32LE")
        .field("rate", AUDIO_RATE as i32)
        .field("channels", 1)
        .field("layout", "interleaved")
        .build();
    let sink = gst_app::AppSink::builder()
        .caps(&caps)
        .max_buffers(APPSINK_BUFFERS)
        .sync(false)
        .build();
    deliver(&sink, Branch::Audio, None, outlet, |_, sample, out| {
        out.push(Input::Audio(audio_block(sample)?));
        Ok(())
    });
    attach(
        pipeline,
        pad,
        &[&queue, &convert, &resample, sink.upcast_ref()],
    )
}

fn audio_block(sample: &gst::Sample) -> Result<AudioBlock, String> {
    let buffer = sample.buffer().ok_or("an audio sample without a buffer")?;
    let pts = buffer.pts().ok_or(
        "an audio buffer has no timestamp (PTS); vigil does not guess time: remux the file",
    )?;
    let map = buffer
        .map_readable()
        .map_err(|e| format!("cannot map audio: {e}"))?;
    let samples = map
        .as_slice()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(AudioBlock {
        pts: Timestamp(pts.nseconds()),
        samples,
    })
}
