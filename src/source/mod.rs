//! GStreamer ingest: one pipeline per stream, decoded into RGB frames sampled
//! at the analysis rate and 16 kHz mono audio, sent to the stream's
//! synchroniser as [`SourceMessage`]s.
//!
//! Every failure (a missing file, a stream GStreamer cannot read, a decoder
//! error mid-file) reaches the synchroniser as [`SourceMessage::Failed`] with a
//! message that says what to do; nothing here panics on bad input.

mod branch;
mod bus;
pub mod pace;
pub mod still;
pub mod supervise;
pub mod tap;
pub mod uri;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use gstreamer as gst;
use gstreamer::prelude::*;

use crate::error::{Error, Result};
use crate::media::SourceMessage;
use crate::metrics::StageMetrics;
use crate::stream::StreamStatus;
pub use uri::{check_input, preflight, resolve_uri, tls_database};

/// What the user asked of one source (validated config, ready to run).
#[derive(Clone, Debug)]
pub struct SourceSettings {
    pub name: Arc<str>,
    /// A GStreamer URI (file paths are turned into `file://` URIs beforehand).
    pub uri: String,
    /// Analysis frame rate as a fraction.
    pub fps: (u32, u32),
    /// Analysis frame size; a missing side keeps the picture's aspect ratio.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Width of the grey thumbnail to make with each frame, if an encoder wants one.
    pub thumbnail_width: Option<u32>,
    /// RTSP: over TCP (else UDP), and the jitter buffer's latency in ms.
    pub rtsp_tcp: bool,
    pub rtsp_latency_ms: u32,
    /// How far (ns) one branch of a file may lead the other before it waits
    /// for it ([`pace::Pace`]); 0: never held.
    pub pace_window: u64,
    /// A PEM file of the authorities trusted for TLS (https://, rtsps://)
    /// instead of the system's; checked with [`tls_database`] beforehand.
    pub ca_file: Option<std::path::PathBuf>,
    /// Threads each video decoder may use (0: its choice); None: 1 for a
    /// live protocol, 0 otherwise.
    pub decode_threads: Option<u32>,
    /// Where the source's encoded packets go, for recordings (a live
    /// source's; a file's recorder reads the file itself).
    pub packets: Option<tap::PacketTap>,
}

/// A running source: its pipeline and the thread watching its bus.
pub struct Source {
    pipeline: gst::Pipeline,
    bus_thread: Option<JoinHandle<()>>,
    shutdown: Arc<AtomicBool>,
    pace: Arc<pace::Pace>,
    /// The named pipe the pipeline reads, closed after the pipeline stops.
    _pipe: Option<uri::HeldPipe>,
}

/// Initialises GStreamer once; cheap to call again.
pub fn init() -> Result<()> {
    gst::init().map_err(|e| Error::Gst(format!("cannot initialise GStreamer: {e}")))
}

impl Source {
    /// Builds and starts the pipeline of `settings`; data flows to `tx`.
    pub fn start(
        settings: SourceSettings,
        tx: Sender<SourceMessage>,
        status: Arc<StreamStatus>,
        metrics: StageMetrics,
    ) -> Result<Source> {
        init()?;
        let source_err = |message: String| Error::Source {
            stream: settings.name.to_string(),
            message,
        };
        let pipe = uri::hold_pipe(&settings.uri).map_err(&source_err)?;
        let pipeline = gst::Pipeline::with_name(&format!("vigil-{}", settings.name));
        let decode = gst::ElementFactory::make("uridecodebin")
            .property(
                "uri",
                pipe.as_ref()
                    .map_or(settings.uri.as_str(), |p| p.uri.as_str()),
            )
            .build()
            .map_err(|e| {
                source_err(format!(
                    "cannot create uridecodebin: {e}; install gstreamer1.0-plugins-base"
                ))
            })?;
        pipeline
            .add(&decode)
            .map_err(|e| source_err(format!("cannot build the pipeline: {e}")))?;
        let (tcp, latency) = (settings.rtsp_tcp, settings.rtsp_latency_ms);
        let ca_file = settings.ca_file.clone();
        decode.connect("source-setup", false, move |args| {
            if let Some(src) = args.get(1).and_then(|v| v.get::<gst::Element>().ok()) {
                setup_network_source(&src, tcp, latency, ca_file.as_deref());
            }
            None
        });
        let threads = settings
            .decode_threads
            .unwrap_or(if live_protocol(&settings.uri) { 1 } else { 0 });
        let packets = settings.packets.clone();
        let claimed = Arc::new(std::sync::Mutex::new(tap::Claimed::default()));
        let claimed_tap = claimed.clone();
        decode.connect("deep-element-added", false, move |args| {
            if let Some(element) = args.get(2).and_then(|v| v.get::<gst::Element>().ok()) {
                limit_decoder_threads(&element, threads);
                if let Some(p) = &packets {
                    tap::watch(&element, p, &claimed_tap);
                }
            }
            None
        });
        let live = Arc::new(AtomicBool::new(false));
        let pace = Arc::new(pace::Pace::new(settings.pace_window));
        branch::connect(
            &pipeline,
            &decode,
            &settings,
            branch::Outlet {
                tx: tx.clone(),
                metrics,
                pace: pace.clone(),
                live: live.clone(),
                claimed,
            },
        );

        let bus = pipeline
            .bus()
            .ok_or_else(|| source_err("the pipeline has no bus".into()))?;
        // A failure to start is reported on the bus, which the bus thread reads.
        let started = pipeline.set_state(gst::State::Playing);
        // A source that does not preroll is live; so are the protocols of
        // cameras, whose sources may preroll all the same (rtspsrc does).
        live.store(
            started == Ok(gst::StateChangeSuccess::NoPreroll) || live_protocol(&settings.uri),
            Ordering::Relaxed,
        );
        let shutdown = Arc::new(AtomicBool::new(false));
        let bus_thread = bus::spawn(bus::BusWatch {
            name: settings.name.clone(),
            uri: settings.uri.clone(),
            pipeline: pipeline.clone(),
            bus,
            tx,
            status,
            shutdown: shutdown.clone(),
        })
        .map_err(|e| Error::io("cannot start the bus thread", e))?;
        Ok(Source {
            pipeline,
            bus_thread: Some(bus_thread),
            shutdown,
            pace,
            _pipe: pipe,
        })
    }

    /// Waits for the bus thread (until the media ended or failed, or at once
    /// when `abandon`), then stops the pipeline.
    pub fn join(mut self, abandon: bool) {
        if abandon {
            self.shutdown.store(true, Ordering::Relaxed);
            // Wakes the bus thread at once rather than at its next poll.
            let wake = gst::Structure::new_empty("vigil-shutdown");
            let _ = self
                .pipeline
                .post_message(gst::message::Application::new(wake));
        }
        if let Some(t) = self.bus_thread.take() {
            let _ = t.join();
        }
        self.pace.close();
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Gives the memory a torn-down pipeline freed back to the system. glibc
/// keeps what threads free in their malloc arenas (up to 8 per core), and
/// every new pipeline's threads spread over them: RSS grew about 20 MiB per
/// outage of 3 cameras (`cargo bench --bench live`, reconnections) with no
/// object leaked (the GStreamer leaks tracer counted the same live objects).
/// Limiting the arenas instead cut the 720p streams that fit from 5 to 3
/// (malloc lock contention), so the freed pages are returned once per
/// teardown.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Lets a video decoder (libav's) use at most `threads` threads (0: its
/// choice); other elements are left alone.
fn limit_decoder_threads(element: &gst::Element, threads: u32) {
    let is_decoder = element
        .factory()
        .is_some_and(|f| f.klass().contains("Decoder") && f.klass().contains("Video"));
    if is_decoder && element.has_property("max-threads") {
        element.set_property("max-threads", i32::try_from(threads).unwrap_or(i32::MAX));
    }
}

/// Whether `uri`'s protocol only ever carries live media.
fn live_protocol(uri: &str) -> bool {
    let scheme = uri
        .split("://")
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    matches!(
        scheme.as_str(),
        "rtsp" | "rtsps" | "rtspt" | "rtspu" | "rtmp" | "rtmps" | "srt" | "udp" | "rtp" | "v4l2"
    )
}

/// Sets what the pipeline file asks of a network source element once
/// uridecodebin has made it.
fn setup_network_source(
    src: &gst::Element,
    tcp: bool,
    latency_ms: u32,
    ca_file: Option<&std::path::Path>,
) {
    let factory = src
        .factory()
        .map(|f| f.name().to_string())
        .unwrap_or_default();
    // souphttpsrc's `ssl-ca-file` does nothing with libsoup 3; a database
    // works with both, and rtspsrc takes the same. (It is made here, on each
    // connection, since GObjects of gio are not `Send`.)
    if let Some(path) = ca_file
        && src.has_property("tls-database")
    {
        match tls_database(path) {
            Ok(db) => src.set_property("tls-database", &db),
            Err(e) => tracing::warn!("{e}: the system's authorities are trusted instead"),
        }
    }
    if factory == "rtspsrc" {
        src.set_property_from_str("protocols", if tcp { "tcp" } else { "udp" });
        src.set_property("latency", latency_ms);
        // Late packets are dropped rather than held: a live view.
        src.set_property("drop-on-latency", true);
        // Once the camera's RTCP sender reports arrive, each buffer carries
        // the camera's own capture time (NTP): the records' utc.
        if src.has_property("add-reference-timestamp-meta") {
            src.set_property("add-reference-timestamp-meta", true);
        }
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.pace.close();
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_decoders_get_the_threads_they_are_given_and_nothing_else_is_touched() {
        init().expect("gstreamer");
        let make = |name: &str| gst::ElementFactory::make(name).build().expect(name);
        let decoder = make("avdec_h264");
        assert_eq!(decoder.property::<i32>("max-threads"), 0);
        limit_decoder_threads(&decoder, 1);
        assert_eq!(decoder.property::<i32>("max-threads"), 1);
        limit_decoder_threads(&decoder, 0);
        assert_eq!(decoder.property::<i32>("max-threads"), 0);
        // Not a video decoder: left as it is, no panic.
        limit_decoder_threads(&make("videoconvert"), 1);
        limit_decoder_threads(&make("queue"), 1);
    }

    #[test]
    fn cameras_are_live_files_are_not() {
        assert!(live_protocol("rtsp://cam/stream"));
        assert!(live_protocol("RTSPS://cam/stream"));
        assert!(!live_protocol("file:///a.mp4"));
        assert!(!live_protocol("https://host/a.mp4"));
    }
}
