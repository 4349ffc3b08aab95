//! Where a recorder's packets come from: a file read again, as far as the
//! analysis has got (so that its clips are cut from the file itself, the
//! same bytes every run), or a live source's packets as they arrive.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::error::{Error, Result};
use crate::media::{Branch, Packet};

/// Packets a file reader reads ahead of the recorder.
const READ_AHEAD: usize = 256;
/// How long a file may give nothing before the reader says why.
const STUCK: Duration = Duration::from_secs(30);

/// `filesrc ! parsebin` on `path`: the pipeline, and the parsebin whose
/// pads give the file's streams demuxed and parsed, never decoded.
pub(super) fn reader(
    path: &Path,
    fail: &dyn Fn(String) -> Error,
) -> Result<(gst::Pipeline, gst::Element)> {
    crate::source::init()?;
    let pipeline = gst::parse::launch("filesrc name=src ! parsebin name=parse")
        .map_err(|e| fail(format!("cannot build a reader: {e}")))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| fail("the reader is not a pipeline".into()))?;
    pipeline
        .by_name("src")
        .ok_or_else(|| fail("the reader has no source".into()))?
        .set_property("location", path.to_string_lossy().as_ref());
    let parse = pipeline
        .by_name("parse")
        .ok_or_else(|| fail("the reader has no parser".into()))?;
    Ok((pipeline, parse))
}

/// The packets of one stream.
pub enum Feed {
    File(FileFeed),
    Live(Receiver<Packet>),
}

impl Feed {
    /// A live source's packets; the source sends into the other end and
    /// never waits (a full queue drops, counted by the sender).
    pub fn live(capacity: usize) -> (Sender<Packet>, Feed) {
        let (tx, rx) = bounded(capacity);
        (tx, Feed::Live(rx))
    }

    /// The next packet: a file's is waited for (none at its end); a live
    /// source's is taken only if it is there.
    pub fn take(&mut self) -> Option<Packet> {
        match self {
            Feed::File(f) => f.take(),
            Feed::Live(rx) => rx.try_recv().ok(),
        }
    }

    /// Whether waiting would bring more: a file not yet at its end.
    pub fn waits(&self) -> bool {
        matches!(self, Feed::File(f) if !f.ended)
    }
}

enum Item {
    Packet(Packet),
    End,
}

/// A file's first video and first sound stream, demuxed and parsed, never
/// decoded, read ahead a little and no further.
pub struct FileFeed {
    pipeline: gst::Pipeline,
    rx: Receiver<Item>,
    /// Streams linked, and ended.
    linked: Arc<AtomicUsize>,
    ends: usize,
    exposed: Arc<std::sync::atomic::AtomicBool>,
    ended: bool,
    path: String,
}

impl FileFeed {
    pub fn open(path: &Path) -> Result<FileFeed> {
        let fail = |m: String| Error::Gst(format!("recording {}: {m}", path.display()));
        let (pipeline, parse) = reader(path, &fail)?;
        let (tx, rx) = bounded(READ_AHEAD);
        let linked = Arc::new(AtomicUsize::new(0));
        let exposed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        {
            let exposed = exposed.clone();
            parse.connect_no_more_pads(move |_| exposed.store(true, Ordering::Relaxed));
        }
        {
            let pipeline = pipeline.downgrade();
            let linked = linked.clone();
            let taken = Arc::new(std::sync::Mutex::new((false, false)));
            parse.connect_pad_added(move |_, pad| {
                let Some(pipeline) = pipeline.upgrade() else {
                    return;
                };
                let kind = crate::media::pad_kind(pad);
                let branch = {
                    let Ok(mut taken) = taken.lock() else { return };
                    if kind.starts_with("video/") && !taken.0 {
                        taken.0 = true;
                        Some(Branch::Video)
                    } else if kind.starts_with("audio/") && !taken.1 {
                        taken.1 = true;
                        Some(Branch::Audio)
                    } else {
                        None
                    }
                };
                let sink: gst::Element = match branch {
                    Some(branch) => {
                        let sink = gst_app::AppSink::builder().sync(false).build();
                        sink.set_async(false);
                        let (tx, eos_tx) = (tx.clone(), tx.clone());
                        sink.set_callbacks(
                            gst_app::AppSinkCallbacks::builder()
                                .new_sample(move |s| {
                                    let sample =
                                        s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                                    let (Some(buffer), Some(caps)) =
                                        (sample.buffer_owned(), sample.caps_owned())
                                    else {
                                        return Ok(gst::FlowSuccess::Ok);
                                    };
                                    tx.send(Item::Packet(Packet {
                                        branch,
                                        buffer,
                                        caps,
                                    }))
                                    .map_err(|_| gst::FlowError::Flushing)?;
                                    Ok(gst::FlowSuccess::Ok)
                                })
                                .eos(move |_| {
                                    let _ = eos_tx.send(Item::End);
                                })
                                .build(),
                        );
                        linked.fetch_add(1, Ordering::Relaxed);
                        sink.upcast()
                    }
                    None => match gst::ElementFactory::make("fakesink").build() {
                        Ok(f) => f,
                        Err(_) => return,
                    },
                };
                if pipeline.add(&sink).is_err() {
                    return;
                }
                let _ = sink.sync_state_with_parent();
                if let Some(sinkpad) = sink.static_pad("sink") {
                    let _ = pad.link(&sinkpad);
                }
            });
        }
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| fail(format!("cannot read it: {e}")))?;
        Ok(FileFeed {
            pipeline,
            rx,
            linked,
            ends: 0,
            exposed,
            ended: false,
            path: path.display().to_string(),
        })
    }

    fn take(&mut self) -> Option<Packet> {
        let waited = std::time::Instant::now();
        while !self.ended {
            match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Item::Packet(p)) => return Some(p),
                Ok(Item::End) => {
                    self.ends += 1;
                    self.ended = self.all_ended();
                }
                Err(RecvTimeoutError::Disconnected) => self.ended = true,
                Err(RecvTimeoutError::Timeout) => {
                    if self.all_ended() {
                        self.ended = true;
                    } else if let Some(why) = self.error() {
                        tracing::warn!(file = %self.path, %why, "recording: cannot read the file further; its clips end here");
                        self.ended = true;
                    } else if waited.elapsed() > STUCK {
                        tracing::warn!(file = %self.path, "recording: the file gave nothing for {} s; its clips end here", STUCK.as_secs());
                        self.ended = true;
                    }
                }
            }
        }
        None
    }

    /// Each stream linked has ended (demuxers expose their streams before
    /// any data), or all were exposed and none is linked.
    fn all_ended(&self) -> bool {
        let linked = self.linked.load(Ordering::Relaxed);
        match linked {
            0 => self.exposed.load(Ordering::Relaxed),
            n => self.ends >= n,
        }
    }

    fn error(&self) -> Option<String> {
        let msg = self
            .pipeline
            .bus()?
            .pop_filtered(&[gst::MessageType::Error])?;
        match msg.view() {
            gst::MessageView::Error(e) => Some(e.error().to_string()),
            _ => None,
        }
    }
}

impl Drop for FileFeed {
    fn drop(&mut self) {
        // Releases a streaming thread blocked on a full queue: its sends
        // fail from now on.
        drop(std::mem::replace(&mut self.rx, crossbeam_channel::never()));
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
