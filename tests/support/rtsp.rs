//! Shared by `tests/it` and `tests/bench` (included with `#[path]`): a free
//! port, and an RTSP server on 127.0.0.1 (gst-rtsp-server, one shared media
//! per mount, so nothing is re-encoded per client) in a thread of its own.
// Each of the two uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

/// A TCP port nobody listens on now.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The H.264 picture of the MP4 `file` as RTP (`pay0`), for a launch line.
pub fn h264_picture(file: &Path) -> String {
    format!(
        "filesrc location={} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1",
        file.display()
    )
}

/// What to serve: at each of `mounts`, the elements of its launch line
/// (payloaders `pay0`, `pay1`…), on `port`, over TLS with this PEM chain
/// and key if set; one media shared by every client of a mount, or (not
/// `shared`) a media of its own per client.
pub struct Serving {
    pub mounts: Vec<(String, String)>,
    pub port: u16,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub shared: bool,
}

/// A running RTSP server; stops (clients cut off, port closed) when
/// dropped or stopped.
pub struct RtspServer {
    pub port: u16,
    main_loop: glib::MainLoop,
    thread: Option<std::thread::JoinHandle<()>>,
    playing: Arc<Mutex<Option<i64>>>,
}

impl RtspServer {
    /// Starts serving and returns once the server listens.
    pub fn serve(serving: Serving) -> Result<RtspServer, String> {
        gst::init().map_err(|e| format!("GStreamer: {e}"))?;
        let context = glib::MainContext::new();
        let main_loop = glib::MainLoop::new(Some(&context), false);
        let port = serving.port;
        let playing = Arc::new(Mutex::new(None));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let lp = main_loop.clone();
        let played = playing.clone();
        let thread = std::thread::Builder::new()
            .name("rtsp-server".into())
            .spawn(move || {
                let Ok(_guard) = context.acquire() else {
                    let _ = ready_tx.send(Err("cannot acquire the server's main context".into()));
                    return;
                };
                let server = rtsp::RTSPServer::new();
                server.set_address("127.0.0.1");
                server.set_service(&port.to_string());
                let Some(mounts) = server.mount_points() else {
                    let _ = ready_tx.send(Err("the RTSP server has no mount points".into()));
                    return;
                };
                let auth = match &serving.tls {
                    Some((cert, key)) => match tls_auth(cert, key) {
                        Ok(a) => Some(a),
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    },
                    None => None,
                };
                for (mount, launch) in &serving.mounts {
                    let factory = rtsp::RTSPMediaFactory::new();
                    factory.set_launch(&format!("( {launch} )"));
                    factory.set_shared(serving.shared);
                    if auth.is_some() {
                        factory.add_role_from_structure(
                            &gst::Structure::builder("anyone")
                                .field(rtsp::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
                                .field(rtsp::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
                                .build(),
                        );
                    }
                    let played = played.clone();
                    factory.connect_media_configure(move |_, media| {
                        let played = played.clone();
                        media.connect_new_state(move |_, state| {
                            if state == gst::ffi::GST_STATE_PLAYING
                                && let Ok(mut p) = played.lock()
                            {
                                p.get_or_insert_with(now_ns);
                            }
                        });
                    });
                    mounts.add_factory(mount, factory);
                }
                if let Some(auth) = &auth {
                    server.set_auth(Some(auth));
                }
                let source = match server.attach(Some(&context)) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("cannot attach the RTSP server: {e}")));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                lp.run();
                // Down for real: clients cut off, the listening socket closed.
                server.client_filter(Some(&mut |_, _| rtsp::RTSPFilterResult::Remove));
                if let Some(s) = context.find_source_by_id(&source) {
                    s.destroy();
                }
                // What is pending, within a bound: a media that still
                // plays could keep the context busy for ever.
                let deadline = std::time::Instant::now() + Duration::from_secs(5);
                while context.iteration(false) && std::time::Instant::now() < deadline {}
            })
            .map_err(|e| format!("cannot start the RTSP server's thread: {e}"))?;
        let server = RtspServer {
            port,
            main_loop,
            thread: Some(thread),
            playing,
        };
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(server),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the RTSP server did not start within 10 s".into()),
        }
    }

    /// When (Unix ns) a media of this server first played.
    pub fn playing_at(&self) -> Option<i64> {
        self.playing.lock().ok().and_then(|p| *p)
    }

    /// Stops answering for `span` (its thread kept busy), as a camera that
    /// hangs with its connections open: the media goes on playing.
    pub fn freeze(&self, span: Duration) {
        self.main_loop
            .context()
            .invoke_with_priority(glib::Priority::HIGH, move || std::thread::sleep(span));
    }

    /// Stops serving: every client is disconnected and the port closed.
    pub fn stop(mut self) {
        self.halt();
    }

    /// Within 10 s: a server thread that does not end is left behind (and
    /// said), not waited for.
    fn halt(&mut self) {
        self.main_loop.quit();
        if let Some(t) = self.thread.take() {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                eprintln!(
                    "the RTSP server on port {} did not stop within 10 s",
                    self.port
                );
            }
        }
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// TLS needs an RTSPAuth, which lets in no one unless told: anyone may see
/// and make the media (the factories get the role).
fn tls_auth(cert: &Path, key: &Path) -> Result<rtsp::RTSPAuth, String> {
    let certificate = gio::TlsCertificate::from_files(cert, key)
        .map_err(|e| format!("the server certificate: {e}"))?;
    let auth = rtsp::RTSPAuth::new();
    auth.set_tls_certificate(Some(&certificate));
    let mut token = rtsp::RTSPToken::builder()
        .field(rtsp::RTSP_TOKEN_MEDIA_FACTORY_ROLE, "anyone")
        .build();
    auth.set_default_token(Some(&mut token));
    Ok(auth)
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}
