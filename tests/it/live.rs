//! Live sources: an RTSP server started here (gst-rtsp-server, one shared
//! media for every client, an already encoded file so nothing is
//! re-encoded per client) and vigil watching it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer_rtsp_server::prelude::*;

use crate::clip::shared;
use vigil::record::Record;

use crate::run::{captions, events, read_records, secs, vigil};

pub fn free_port() -> u16 {
    crate::support::free_port().expect("a free port")
}

/// Ctrl-C, as a user stops a live run.
pub fn interrupt(child: &std::process::Child) {
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
}

/// The first line of `child`'s stderr (piped) that contains `needle`,
/// within `limit`; the rest of its stderr is read and dropped.
pub fn stderr_line(child: &mut std::process::Child, needle: &str, limit: Duration) -> String {
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(e) => panic!("vigil said nothing with `{needle}` within {limit:?} ({e})"),
        }
    }
}

/// `vtest.avi` (people walking) as H.264 in MP4, 384×288, made once here.
pub fn h264_clip(dir: &Path) -> PathBuf {
    let path = dir.join("vtest.mp4");
    let ok = Command::new("timeout")
        .args(["120", "gst-launch-1.0", "-q", "filesrc"])
        .arg(format!("location={}", shared("vtest.avi").display()))
        .args([
            "!",
            "decodebin",
            "!",
            "videoconvert",
            "!",
            "videoscale",
            "!",
            "video/x-raw,width=384,height=288",
            "!",
            "x264enc",
            "speed-preset=ultrafast",
            "tune=zerolatency",
            "key-int-max=10",
            "!",
            "h264parse",
            "!",
            "mp4mux",
            "!",
            "filesink",
        ])
        .arg(format!("location={}", path.display()))
        .status()
        .expect("gst-launch-1.0");
    assert!(ok.success(), "made the H.264 clip");
    path
}

pub use crate::support::RtspServer;
use crate::support::{Serving, h264_picture};

/// An RTSP server on 127.0.0.1 serving an MP4's H.264 picture at `/cam`,
/// shared by every client, in real time (`tests/support/rtsp.rs`).
impl RtspServer {
    pub fn start(file: &Path) -> RtspServer {
        RtspServer::start_on(file, free_port())
    }

    pub fn start_on(file: &Path, port: u16) -> RtspServer {
        RtspServer::at_cam(h264_picture(file), port, None)
    }

    /// The picture of `file` and, as L16 sound, an endless 440 Hz tone.
    pub fn start_with_tone(file: &Path) -> RtspServer {
        let launch = format!(
            "{} audiotestsrc freq=440 volume=0.5 ! audioconvert ! audio/x-raw,rate=16000,channels=1 ! rtpL16pay name=pay1 pt=97",
            h264_picture(file)
        );
        RtspServer::at_cam(launch, free_port(), None)
    }

    /// Raw pictures (RTP raw video, as a camera that does not encode
    /// sends them): a ball moving on black, 320x240 at 10 fps.
    pub fn start_raw() -> RtspServer {
        RtspServer::at_cam(
            "videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=320,height=240,framerate=10/1 ! rtpvrawpay name=pay0 pt=96".into(),
            free_port(),
            None,
        )
    }

    /// The same as MJPEG (JPEG pictures, which no parser takes by default).
    pub fn start_mjpeg() -> RtspServer {
        RtspServer::at_cam(
            "videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=320,height=240,framerate=10/1 ! jpegenc ! rtpjpegpay name=pay0 pt=26".into(),
            free_port(),
            None,
        )
    }

    /// RTSPS: over TLS, with this certificate chain and key (PEM files).
    pub fn start_tls(file: &Path, cert: &Path, key: &Path) -> RtspServer {
        let tls = (cert.to_path_buf(), key.to_path_buf());
        RtspServer::at_cam(h264_picture(file), free_port(), Some(tls))
    }

    /// The picture of `file`, a media of its own for each client: no
    /// client waits on another's set-up or teardown of a shared media
    /// (for tests whose clients come and go while others play).
    pub fn start_unshared(file: &Path) -> RtspServer {
        RtspServer::serve(Serving {
            mounts: vec![("/cam".into(), h264_picture(file))],
            port: free_port(),
            tls: None,
            shared: false,
        })
        .expect("the RTSP server started")
    }

    fn at_cam(launch: String, port: u16, tls: Option<(PathBuf, PathBuf)>) -> RtspServer {
        RtspServer::serve(Serving {
            mounts: vec![("/cam".into(), launch)],
            port,
            tls,
            shared: true,
        })
        .expect("the RTSP server started")
    }

    /// A client of the shared media kept playing until dropped. Clients that
    /// set up a shared media while it starts can abort the whole process
    /// (gst-rtsp-server 1.22: `gst_rtsp_media_get_rates: assertion failed`,
    /// a PLAY that finds a stream without a segment yet); once the media
    /// plays, clients join it safely. Tests with several clients on the
    /// media (and vigil restarting them all at once) hold one.
    pub fn keep_playing(&self) -> Anchor {
        let pipeline = gst::parse::launch(&format!(
            "rtspsrc location=rtsp://127.0.0.1:{}/cam protocols=tcp ! fakesink name=sink signal-handoffs=true",
            self.port
        ))
        .expect("the anchor pipeline")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline");
        let sink = pipeline.by_name("sink").expect("sink");
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        sink.connect("handoff", false, move |_| {
            let _ = tx.try_send(());
            None
        });
        pipeline
            .set_state(gst::State::Playing)
            .expect("the anchor plays");
        rx.recv_timeout(Duration::from_secs(30))
            .expect("the shared media plays");
        Anchor(pipeline)
    }
}

/// A client keeping a shared media playing (see [`RtspServer::keep_playing`]).
pub struct Anchor(gst::Pipeline);

/// Within 10 s: an `rtspsrc` whose server stopped answering can wait long
/// on its teardown, and a test (failing, maybe) must not wait with it.
impl Drop for Anchor {
    fn drop(&mut self) {
        let pipeline = self.0.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = pipeline.set_state(gst::State::Null);
            let _ = tx.send(());
        });
        if rx.recv_timeout(Duration::from_secs(10)).is_err() {
            eprintln!("the anchor client did not stop within 10 s");
        }
    }
}

/// vigil watches a live RTSP camera: records flow, stream time follows the
/// wall clock, `utc` is now, and the password in the URI never shows.
#[test]
fn an_rtsp_camera_is_watched_live() {
    let dir = tempfile::tempdir().expect("tmp");
    let clip = h264_clip(dir.path());
    let server = RtspServer::start(&clip);
    let password = "pa55w0rd-xyz";
    let pipeline = dir.path().join("live.toml");
    let http = free_port();
    std::fs::write(
        &pipeline,
        format!(
            r#"
[[sources]]
name = "door"
uri = "rtsp://viewer:${{VIGIL_TEST_CAM_PW}}@127.0.0.1:{}/cam"
latency = "100ms"

[encoders.motion]
min_duration = "0s"

[fusion]
caption_span = "2s"

[sinks.jsonl]
[sinks.store]

[server]
listen = "127.0.0.1:{http}"
"#,
            server.port
        ),
    )
    .expect("pipeline");
    let out = dir.path().join("out");
    let started = chrono::Utc::now();
    let t0 = Instant::now();
    let child = vigil()
        .args(["run"])
        .arg(&pipeline)
        .arg("--out")
        .arg(&out)
        .env("VIGIL_TEST_CAM_PW", password)
        .env("VIGIL_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vigil");
    let log = out.join("events.jsonl");
    // Captions every 2 s of stream time: wait for 6 of them (12 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    while captions(&read_records(&log)).count() < 6 {
        assert!(Instant::now() < deadline, "captions from the live stream");
        std::thread::sleep(Duration::from_millis(100));
    }
    let wall = t0.elapsed().as_secs_f64();
    // What the server shows never carries the camera's credentials.
    let get = |path: &str| -> String {
        ureq::get(&format!("http://127.0.0.1:{http}{path}"))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .unwrap_or_default()
    };
    let health = get("/healthz");
    assert!(health.contains("\"door\":\"running\""), "{health}");
    for text in [health, get("/metrics")] {
        assert!(
            !text.contains(password) && !text.contains("viewer"),
            "{text}"
        );
    }
    interrupt(&child);
    let output = child.wait_with_output().expect("vigil ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stderr}");
    let records = read_records(&log);
    assert!(
        events(&records).any(|e| e.kind == "motion"),
        "people walking are motion"
    );
    // A live stream's time runs with the wall clock: 12 s of captions took
    // about 12 s (the first frames come after connecting and buffering).
    let last_end = captions(&records).map(|c| secs(c.end)).fold(0.0, f64::max);
    assert!(
        last_end >= 12.0 && last_end <= wall + 1.0,
        "stream time {last_end} s against {wall:.1} s of wall time"
    );
    // utc is the wall clock at the frames, not a file's start time.
    let first_utc = records
        .iter()
        .filter_map(|r| chrono::DateTime::parse_from_rfc3339(r.utc()).ok())
        .min()
        .expect("records have utc");
    let skew = (first_utc.with_timezone(&chrono::Utc) - started)
        .num_milliseconds()
        .abs();
    assert!(skew < 10_000, "utc {first_utc} against start {started}");
    for text in [&stderr, &stdout] {
        assert!(!text.contains(password), "the password never shows: {text}");
    }
    // The camera's RTCP sender reports date the frames (same host: the
    // same clock, so within a few ms of the pipeline's).
    assert!(
        stderr.contains("utc now from the camera's RTCP sender reports"),
        "{stderr}"
    );
    let everything = std::fs::read_to_string(&log).expect("log");
    assert!(!everything.contains(password));
    drop(server);
}

/// A static file server on 127.0.0.1 (HTTP/1.1, keep-alive, byte ranges:
/// what souphttpsrc asks of a server), for files under `dir`.
pub fn http_server(dir: &Path) -> u16 {
    file_server(dir, None)
}

/// The same over TLS, with this certificate chain and key (PEM).
pub fn https_server(dir: &Path, cert: &Path, key: &Path) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .expect("cert")
        .map(|c| c.expect("cert"))
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocols")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    file_server(dir, Some(std::sync::Arc::new(config)))
}

fn file_server(dir: &Path, tls: Option<std::sync::Arc<rustls::ServerConfig>>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let dir = dir.clone();
            let tls = tls.clone();
            std::thread::spawn(move || match tls {
                None => serve_files(conn, &dir),
                Some(config) => {
                    let Ok(session) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    serve_files(rustls::StreamOwned::new(session, conn), &dir);
                }
            });
        }
    });
    port
}

/// Answers the GET requests of one connection from files under `dir`.
fn serve_files(conn: impl std::io::Read + std::io::Write, dir: &Path) {
    use std::io::{BufRead, BufReader, Read, Seek};
    let mut reader = BufReader::new(conn);
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request).unwrap_or(0) == 0 {
            return;
        }
        let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut from = None;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                break;
            }
            if let Some(r) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
                from = r
                    .split('-')
                    .next()
                    .and_then(|n| n.trim().parse::<u64>().ok());
            }
        }
        let conn = reader.get_mut();
        let Ok(mut file) = std::fs::File::open(dir.join(path.trim_start_matches('/'))) else {
            if conn
                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                .and_then(|()| conn.flush())
                .is_err()
            {
                return;
            }
            continue;
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let start = from.unwrap_or(0).min(len);
        let head = match from {
            Some(_) => format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{len}\r\n",
                len.saturating_sub(1)
            ),
            None => "HTTP/1.1 200 OK\r\n".to_string(),
        };
        let _ = file.seek(std::io::SeekFrom::Start(start));
        let mut body = Vec::new();
        let _ = file.read_to_end(&mut body);
        let head = format!(
            "{head}Accept-Ranges: bytes\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if conn.write_all(head.as_bytes()).is_err()
            || conn.write_all(&body).is_err()
            || conn.flush().is_err()
        {
            return;
        }
    }
}

/// A file over HTTP, and an HLS playlist of it: both are read to the end,
/// at file speed, with what they show (people walking: motion).
#[test]
fn http_and_hls_sources_are_read() {
    let dir = tempfile::tempdir().expect("tmp");
    let clip = h264_clip(dir.path());
    // The playlist: the clip as MPEG-TS, one segment (hlssink2 made several,
    // but now and then never finished writing them).
    let hls = dir.path().join("hls");
    std::fs::create_dir_all(&hls).expect("hls dir");
    let ok = Command::new("timeout")
        .args(["120", "gst-launch-1.0", "-q", "filesrc"])
        .arg(format!("location={}", clip.display()))
        .args([
            "!",
            "qtdemux",
            "!",
            "h264parse",
            "!",
            "mpegtsmux",
            "!",
            "filesink",
        ])
        .arg(format!("location={}/all.ts", hls.display()))
        .status()
        .expect("gst-launch-1.0");
    assert!(ok.success(), "made the HLS segment");
    std::fs::write(
        hls.join("live.m3u8"),
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:80\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:79.5,\nall.ts\n#EXT-X-ENDLIST\n",
    )
    .expect("playlist");
    let port = http_server(dir.path());
    let out = dir.path().join("out");
    let pipeline = dir.path().join("motion.toml");
    std::fs::write(
        &pipeline,
        "[encoders.motion]\n[fusion]\ncaption_span = \"2s\"\n[sinks.jsonl]\n",
    )
    .expect("pipeline");
    let output = vigil()
        .arg("run")
        .arg(&pipeline)
        .arg("--out")
        .arg(&out)
        .args(["--source", &format!("http://127.0.0.1:{port}/vtest.mp4")])
        .args([
            "--source",
            &format!("http://127.0.0.1:{port}/hls/live.m3u8"),
        ])
        .output()
        .expect("vigil run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let records = read_records(&out.join("events.jsonl"));
    for stream in ["vtest", "live"] {
        let ends: Vec<f64> = captions(&records)
            .filter(|c| c.stream == stream)
            .map(|c| secs(c.end))
            .collect();
        let last = ends.iter().copied().fold(0.0, f64::max);
        assert!(last >= 78.0, "{stream} read to its end (79.5 s): {last}");
        assert!(
            events(&records).any(|e| e.stream == stream && e.kind == "motion"),
            "{stream}: people walking are motion"
        );
    }
}

/// Runs `vigil run PIPELINE --out OUT` on a live source until it has
/// written `captions` captions, stops it as Ctrl-C does (it must exit 0),
/// and returns its records.
fn watch_live(pipeline: &Path, out: &Path, captions: usize) -> Vec<Record> {
    let child = vigil()
        .arg("run")
        .arg(pipeline)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vigil");
    let log = out.join("events.jsonl");
    let deadline = Instant::now() + Duration::from_secs(60);
    let written = || crate::run::captions(&read_records(&log)).count();
    while written() < captions {
        assert!(
            Instant::now() < deadline,
            "{captions} captions from {}",
            pipeline.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    interrupt(&child);
    let output = child.wait_with_output().expect("vigil ends");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    read_records(&log)
}

/// A private CA (`ca.pem`) and a certificate it signed for 127.0.0.1
/// (`srv.pem`, `srv.key`) in `dir`, made with the openssl CLI.
pub fn private_ca(dir: &Path) {
    let made = Command::new("sh")
        .current_dir(dir)
        .arg("-c")
        .arg(
            "set -e
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout ca.key -out ca.pem -days 2 -subj /CN=vigil-test-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > ext.cnf
openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -out srv.pem -days 2 -extfile ext.cnf 2>/dev/null",
        )
        .status()
        .expect("sh");
    assert!(made.success(), "openssl made the test certificates");
}

/// A file over HTTPS from a server whose certificate a private CA signed:
/// read with the source's `ca_file`; without it the source fails, retries
/// and says to check the certificate; a missing `ca_file` is refused.
#[test]
fn https_sources_trust_their_ca_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    private_ca(d);
    // bikes.mp4 (10 s, cyclists: motion) as MPEG-TS, which needs no seeking.
    let ok = Command::new("timeout")
        .args(["120", "gst-launch-1.0", "-q", "filesrc"])
        .arg(format!("location={}", shared("bikes.mp4").display()))
        .args(["!", "qtdemux", "!", "h264parse", "!", "mpegtsmux", "!"])
        .args(["filesink", "location=clip.ts"])
        .current_dir(d)
        .status()
        .expect("gst-launch-1.0");
    assert!(ok.success(), "made the MPEG-TS clip");
    let port = https_server(d, &d.join("srv.pem"), &d.join("srv.key"));
    let pipeline = |ca_file: Option<&Path>| {
        let mut text =
            format!("[[sources]]\nname = \"bikes\"\nuri = \"https://127.0.0.1:{port}/clip.ts\"\n");
        if let Some(ca) = ca_file {
            text += &format!("ca_file = \"{}\"\n", ca.display());
        }
        text += "[encoders.motion]\n[fusion]\ncaption_span = \"2s\"\n[sinks.jsonl]\n";
        text
    };

    // Trusted: read to the end, with what it shows.
    std::fs::write(d.join("trusted.toml"), pipeline(Some(&d.join("ca.pem")))).expect("toml");
    let out = d.join("out");
    let output = vigil()
        .arg("run")
        .arg(d.join("trusted.toml"))
        .arg("--out")
        .arg(&out)
        .output()
        .expect("vigil run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let records = read_records(&out.join("events.jsonl"));
    let last = captions(&records).map(|c| secs(c.end)).fold(0.0, f64::max);
    assert!(last >= 9.0, "read to its end (10 s): {last}");
    assert!(
        events(&records).any(|e| e.kind == "motion"),
        "cyclists are motion: {records:?}"
    );

    // Not trusted (the system's authorities do not know this CA): the
    // source fails and is retried, and the message names the certificate.
    std::fs::write(d.join("untrusted.toml"), pipeline(None)).expect("toml");
    let mut child = vigil()
        .arg("run")
        .arg(d.join("untrusted.toml"))
        .arg("--out")
        .arg(d.join("out2"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("vigil run");
    let said = stderr_line(&mut child, "certificate", Duration::from_secs(30));
    assert!(
        said.contains("certificate") && said.contains("ca_file") && said.contains("reconnecting"),
        "{said}"
    );
    interrupt(&child);
    let status = child.wait().expect("wait");
    assert!(status.success(), "stops on Ctrl-C: {status}");

    // A ca_file that is not there: the stream fails at once, saying so.
    std::fs::write(d.join("missing.toml"), pipeline(Some(&d.join("nope.pem")))).expect("toml");
    let output = vigil()
        .arg("run")
        .arg(d.join("missing.toml"))
        .arg("--out")
        .arg(d.join("out3"))
        .output()
        .expect("vigil run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ca_file") && stderr.contains("nope.pem: no such file"),
        "{stderr}"
    );
}

/// `transport = "udp"`: RTP comes over UDP (rtspsrc is allowed nothing
/// else, so the records prove it), and records flow.
#[test]
fn rtp_over_udp_is_read_too() {
    let dir = tempfile::tempdir().expect("tmp");
    let clip = h264_clip(dir.path());
    let server = RtspServer::start(&clip);
    let pipeline = dir.path().join("udp.toml");
    std::fs::write(
        &pipeline,
        format!(
            "[[sources]]\nname = \"yard\"\nuri = \"rtsp://127.0.0.1:{}/cam\"\ntransport = \"udp\"\n\n\
             [encoders.motion]\nmin_duration = \"0s\"\n[fusion]\ncaption_span = \"1s\"\n[sinks.jsonl]\n",
            server.port
        ),
    )
    .expect("pipeline");
    let records = watch_live(&pipeline, &dir.path().join("out"), 4);
    assert!(
        events(&records).any(|e| e.kind == "motion"),
        "people walking are motion, over UDP"
    );
}

/// A webcam (`v4l2://`) that is not there: the stream says so, counts as
/// live and is retried (a camera plugged in later is picked up), and the
/// run stops cleanly. (No machine here has a video device, so a real
/// webcam's frames are not tested.)
#[test]
fn a_missing_webcam_is_retried_and_says_so() {
    let dir = tempfile::tempdir().expect("tmp");
    let pipeline = dir.path().join("cam.toml");
    let http = free_port();
    std::fs::write(
        &pipeline,
        format!(
            "[[sources]]\nname = \"webcam\"\nuri = \"v4l2:///dev/video-vigil-none\"\nretry_max = \"1s\"\n\n\
             [encoders.motion]\n[sinks.jsonl]\n[server]\nlisten = \"127.0.0.1:{http}\"\n"
        ),
    )
    .expect("pipeline");
    let mut child = vigil()
        .args(["run"])
        .arg(&pipeline)
        .arg("--out")
        .arg(dir.path().join("out"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vigil");
    // It says what is wrong.
    let said = stderr_line(&mut child, "/dev/video-vigil-none", Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(30);
    assert!(
        said.contains("not found; check the path") && said.contains("reconnecting"),
        "{said}"
    );
    // And tries again and again meanwhile, each failure counted by its kind.
    let get = |path: &str| -> String {
        ureq::get(&format!("http://127.0.0.1:{http}{path}"))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .unwrap_or_default()
    };
    let attempts = || {
        get("/metrics")
            .lines()
            .find(|l| {
                l.starts_with("vigil_errors_total")
                    && l.contains("kind=\"not_found\"")
                    && l.contains("stream=\"webcam\"")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    while attempts() < 3.0 {
        assert!(Instant::now() < deadline, "attempts: {}", attempts());
        std::thread::sleep(Duration::from_millis(200));
    }
    while !get("/healthz").contains("\"webcam\":\"reconnecting\"") {
        assert!(Instant::now() < deadline, "{}", get("/healthz"));
        std::thread::sleep(Duration::from_millis(100));
    }
    interrupt(&child);
    let status = child.wait().expect("wait");
    assert!(status.success(), "stops on Ctrl-C: {status}");
}

/// An RTSPS camera whose certificate a private CA signed: watched with the
/// source's `ca_file`; without it the stream is retried and the message
/// names the certificate.
#[test]
fn rtsps_cameras_trust_their_ca_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    private_ca(d);
    let clip = h264_clip(d);
    let server = RtspServer::start_tls(&clip, &d.join("srv.pem"), &d.join("srv.key"));
    let pipeline = |name: &str, ca_file: Option<&Path>| {
        let path = d.join(format!("{name}.toml"));
        let mut text = format!(
            "[[sources]]\nname = \"{name}\"\nuri = \"rtsps://127.0.0.1:{}/cam\"\n",
            server.port
        );
        if let Some(ca) = ca_file {
            text += &format!("ca_file = \"{}\"\n", ca.display());
        }
        text += "[encoders.motion]\nmin_duration = \"0s\"\n[fusion]\ncaption_span = \"1s\"\n[sinks.jsonl]\n";
        std::fs::write(&path, text).expect("pipeline");
        path
    };

    let records = watch_live(
        &pipeline("trusted", Some(&d.join("ca.pem"))),
        &d.join("out"),
        4,
    );
    assert!(
        events(&records).any(|e| e.kind == "motion"),
        "people walking are motion, over RTSPS"
    );

    let mut child = vigil()
        .arg("run")
        .arg(pipeline("untrusted", None))
        .arg("--out")
        .arg(d.join("out2"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vigil run");
    let said = stderr_line(&mut child, "reconnecting", Duration::from_secs(30));
    assert!(
        said.contains("certificate") && said.contains("ca_file"),
        "{said}"
    );
    interrupt(&child);
    assert!(child.wait().expect("wait").success(), "stops on Ctrl-C");
}
