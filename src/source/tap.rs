//! The recorder's tap: a live source's encoded packets, taken after the
//! parsers `uridecodebin` plugs in front of its decoders (the first video
//! and the first sound stream), timestamped in stream time, sent to the
//! stream's recorder without ever waiting on it. A source whose pictures
//! come undecoded-yet-raw (a webcam's YUYV, RTP raw video) has no parser:
//! its branch re-encodes them for the recorder ([`fallback_encoder`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Sender, TrySendError};
use gstreamer as gst;
use gstreamer::prelude::*;

use crate::media::{Branch, Packet};

/// Where a source's packets go.
#[derive(Clone, Debug)]
pub struct PacketTap {
    pub tx: Sender<Packet>,
    /// Added to the pipeline's timestamps: the supervisor's offset of the
    /// pipeline running now (stream time goes on across reconnections).
    pub offset: Arc<AtomicU64>,
    /// Packets the recorder was too far behind to take.
    pub dropped: Arc<AtomicU64>,
}

/// Which parser's output each branch is taken from: the first to give a
/// packet of its kind.
#[derive(Default)]
pub(super) struct Claimed {
    video: Option<gst::Pad>,
    audio: Option<gst::Pad>,
    /// A parser of pictures was plugged (before anything was decoded).
    video_parser: bool,
}

impl Claimed {
    /// Whether the source's pictures come through a parser, whose packets
    /// the recorder takes as they are.
    pub(super) fn has_video_parser(&self) -> bool {
        self.video_parser || self.video.is_some()
    }
}

/// Whether packets of caps named `name` are pictures (MJPEG's are images).
fn is_picture(name: &str) -> bool {
    name.starts_with("video/") || name == "image/jpeg"
}

/// Whether the parser `factory` gives pictures.
fn parses_pictures(factory: &gst::ElementFactory) -> bool {
    factory
        .static_pad_templates()
        .iter()
        .filter(|t| t.direction() == gst::PadDirection::Src)
        .any(|t| {
            t.caps()
                .iter()
                .any(|s| is_picture(s.name().as_str()) && s.name() != "video/x-raw")
        })
}

/// Taps `element`'s output if it is a parser.
pub(super) fn watch(element: &gst::Element, tap: &PacketTap, claimed: &Arc<Mutex<Claimed>>) {
    let Some(factory) = element.factory() else {
        return;
    };
    if !factory.klass().contains("Parser") {
        return;
    }
    let Some(pad) = element.static_pad("src") else {
        return;
    };
    if parses_pictures(&factory)
        && let Ok(mut c) = claimed.lock()
    {
        c.video_parser = true;
    }
    let (tap, claimed) = (tap.clone(), claimed.clone());
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(gst::PadProbeData::Buffer(buffer)) = &info.data else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(caps) = pad.current_caps() else {
            return gst::PadProbeReturn::Ok;
        };
        let branch = match caps.structure(0).map(|s| s.name().as_str().to_string()) {
            Some(n) if is_picture(&n) => Branch::Video,
            Some(n) if n.starts_with("audio/") => Branch::Audio,
            _ => return gst::PadProbeReturn::Ok,
        };
        let Ok(mut c) = claimed.lock() else {
            return gst::PadProbeReturn::Ok;
        };
        let owner = match branch {
            Branch::Video => &mut c.video,
            Branch::Audio => &mut c.audio,
        };
        if owner.as_ref().is_some_and(|p| p != pad) {
            return gst::PadProbeReturn::Ok;
        }
        *owner = Some(pad.clone());
        drop(c);
        let offset = gst::ClockTime::from_nseconds(tap.offset.load(Ordering::Relaxed));
        // Shares the packet's memory; only the timestamps are its own.
        let mut packet = buffer.copy();
        {
            let b = packet.make_mut();
            let (pts, dts) = (b.pts(), b.dts());
            b.set_pts(pts.map(|t| t + offset));
            b.set_dts(dts.map(|t| t + offset));
        }
        match tap.tx.try_send(Packet {
            branch,
            buffer: packet,
            caps,
        }) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                tap.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// The recorder's fallback for pictures that come without a parser: H.264
/// re-encoded (x264, ultrafast, a keyframe every 2 s, one thread) from the
/// frames the analysis samples, at its rate, behind a leaky queue so that
/// it never holds the analysis up. Its parser's packets go to `tap`. The
/// chain, from its queue (link it to a tee) to its sink.
pub(super) fn fallback_encoder(
    tap: &PacketTap,
    claimed: &Arc<Mutex<Claimed>>,
    fps: (u32, u32),
) -> Result<Vec<gst::Element>, String> {
    let make = |f: &str| {
        gst::ElementFactory::make(f)
            .build()
            .map_err(|_| format!("GStreamer element '{f}' is missing; run `make setup`"))
    };
    let queue = make("queue")?;
    queue.set_property_from_str("leaky", "downstream");
    queue.set_property("max-size-buffers", 30u32);
    queue.set_property("max-size-bytes", 0u32);
    queue.set_property("max-size-time", 0u64);
    let convert = make("videoconvert")?;
    let encode = make("x264enc")?;
    encode.set_property_from_str("speed-preset", "ultrafast");
    encode.set_property_from_str("tune", "zerolatency");
    let per_keyframe = (2 * fps.0.max(1)).div_ceil(fps.1.max(1)).max(1);
    encode.set_property("key-int-max", per_keyframe);
    encode.set_property("threads", 1u32);
    let parse = make("h264parse")?;
    // The encoder moves its output's timestamps (1000 hours on, so that no
    // decoding time is negative): back into its input's, the source's,
    // before the tap takes them.
    if let (Some(input), Some(output)) = (queue.static_pad("sink"), parse.static_pad("src")) {
        output.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let segment = |p: &gst::Pad| {
                p.sticky_event::<gst::event::Segment>(0)
                    .and_then(|e| e.segment().downcast_ref::<gst::ClockTime>().cloned())
            };
            let (Some(from), Some(to)) = (segment(pad), segment(&input)) else {
                return gst::PadProbeReturn::Ok;
            };
            let back = |t: Option<gst::ClockTime>| {
                t.and_then(|t| from.to_running_time(t))
                    .and_then(|r| to.position_from_running_time(r))
            };
            if let Some(gst::PadProbeData::Buffer(buffer)) = &mut info.data {
                let (pts, dts) = (back(buffer.pts()), back(buffer.dts()));
                let b = buffer.make_mut();
                b.set_pts(pts);
                b.set_dts(dts.or(pts));
            }
            gst::PadProbeReturn::Ok
        });
    }
    watch(&parse, tap, claimed);
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(vec![queue, convert, encode, parse, sink])
}
