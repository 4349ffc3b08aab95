//! The recorder's tap: a live source's encoded packets, taken after the
//! parsers `uridecodebin` plugs in front of its decoders (the first video
//! and the first sound stream), timestamped in stream time, sent to the
//! stream's recorder without ever waiting on it.

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
}

/// Taps `element`'s output if it is a parser.
pub(super) fn watch(element: &gst::Element, tap: &PacketTap, claimed: &Arc<Mutex<Claimed>>) {
    let parser = element
        .factory()
        .is_some_and(|f| f.klass().contains("Parser"));
    let Some(pad) = element.static_pad("src").filter(|_| parser) else {
        return;
    };
    let (tap, claimed) = (tap.clone(), claimed.clone());
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(gst::PadProbeData::Buffer(buffer)) = &info.data else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(caps) = pad.current_caps() else {
            return gst::PadProbeReturn::Ok;
        };
        let branch = match caps.structure(0).map(|s| s.name().as_str().to_string()) {
            Some(n) if n.starts_with("video/") => Branch::Video,
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
