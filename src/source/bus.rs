//! The bus thread of one source: errors, end of stream, tags, duration.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use gstreamer as gst;
use gstreamer::prelude::*;

use crate::media::{Failure, FailureKind, Input, SourceMessage};
use crate::stream::{MediaNames, StreamStatus};

pub(super) struct BusWatch {
    pub name: Arc<str>,
    pub uri: String,
    pub pipeline: gst::Pipeline,
    pub bus: gst::Bus,
    pub tx: Sender<SourceMessage>,
    pub status: Arc<StreamStatus>,
    pub shutdown: Arc<AtomicBool>,
}

pub(super) fn spawn(watch: BusWatch) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("bus-{}", watch.name))
        .spawn(move || run(watch))
}

fn run(w: BusWatch) {
    let mut sent_creation = false;
    while !w.shutdown.load(Ordering::Relaxed) {
        let Some(msg) = w.bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
            continue;
        };
        use gst::MessageView;
        match msg.view() {
            MessageView::Eos(_) => break,
            MessageView::Error(err) => {
                let failure = failure(&w.uri, &err.error(), err.debug().as_deref());
                tracing::debug!(stream = %w.name, "bus error: {:?} {:?}", err.error(), err.debug());
                let _ = w.tx.send(SourceMessage::Failed(failure));
                break;
            }
            MessageView::Warning(warn) => {
                tracing::warn!(stream = %w.name, "{}", warn.error());
            }
            MessageView::Tag(tag) => {
                let tags = tag.tags();
                w.status.note_media_names(media_names(&tags));
                if !sent_creation && let Some(t) = creation_time(&tags) {
                    sent_creation = true;
                    let _ = w.tx.send(SourceMessage::Input(Input::CreationTime(t)));
                }
            }
            MessageView::AsyncDone(_) | MessageView::DurationChanged(_) => {
                if let Some(d) = w.pipeline.query_duration::<gst::ClockTime>() {
                    w.status.duration.store(d.nseconds(), Ordering::Relaxed);
                    w.status
                        .duration_exact
                        .store(w.uri.starts_with("file://"), Ordering::Relaxed);
                }
            }
            _ => {}
        }
    }
}

/// What the container and codecs call themselves, as far as `tags` say.
fn media_names(tags: &gst::TagList) -> MediaNames {
    MediaNames {
        container: tags
            .get::<gst::tags::ContainerFormat>()
            .map(|v| v.get().to_string()),
        video: tags
            .get::<gst::tags::VideoCodec>()
            .map(|v| v.get().to_string()),
        audio: tags
            .get::<gst::tags::AudioCodec>()
            .map(|v| v.get().to_string()),
    }
}

/// The container's creation time as nanoseconds since the Unix epoch.
fn creation_time(tags: &gst::TagList) -> Option<i64> {
    let dt = tags.get::<gst::tags::DateTime>()?.get();
    if !dt.has_second() {
        return None;
    }
    let g = dt.to_g_date_time().ok()?;
    Some(g.to_unix() * 1_000_000_000 + g.microsecond() as i64 * 1_000)
}

/// What kind of failure GStreamer's `err` is, from its domain and code
/// (and, for a flow error, the flow return its debug text names).
pub(super) fn kind_of(err: &gst::glib::Error, debug: Option<&str>) -> FailureKind {
    let debug = debug.unwrap_or_default();
    if err.matches(gst::CoreError::Negotiation) || debug.contains("not-negotiated") {
        FailureKind::Negotiate
    } else if err.matches(gst::ResourceError::NotAuthorized) {
        FailureKind::Auth
    } else if err.matches(gst::ResourceError::NotFound) {
        FailureKind::NotFound
    } else if err.matches(gst::ResourceError::OpenRead)
        || err.matches(gst::ResourceError::OpenReadWrite)
        || err.matches(gst::ResourceError::Read)
        || err.matches(gst::ResourceError::Busy)
        || err.matches(gst::ResourceError::Failed)
        || err.matches(gst::ResourceError::Settings)
    {
        FailureKind::Network
    } else if err.matches(gst::StreamError::Decode)
        || err.matches(gst::StreamError::Demux)
        || err.matches(gst::StreamError::Format)
        || err.matches(gst::StreamError::TypeNotFound)
        || err.matches(gst::StreamError::WrongType)
        || err.matches(gst::StreamError::Failed)
    {
        FailureKind::Decode
    } else {
        FailureKind::Other
    }
}

/// The failure GStreamer's `err` stands for: its kind, and one line that
/// says what went wrong with the media and what to do.
pub(super) fn failure(uri: &str, err: &gst::glib::Error, debug: Option<&str>) -> Failure {
    let mut kind = kind_of(err, debug);
    // A local file's read errors are not the network's.
    if kind == FailureKind::Network && uri.starts_with("file://") {
        kind = FailureKind::Decode;
    }
    Failure::new(kind, describe(uri, err, debug))
}

/// One line that says what went wrong with the media and what to do.
pub(super) fn describe(uri: &str, err: &gst::glib::Error, debug: Option<&str>) -> String {
    let file = gst::glib::filename_from_uri(uri).ok().map(|(p, _)| p);
    let shown = file
        .as_ref()
        .map_or(uri.to_string(), |p| p.display().to_string());
    let detail = debug
        .and_then(|d| d.lines().last())
        .and_then(|l| l.rsplit(':').next())
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map_or(String::new(), |d| format!(": {d}"));
    let what = if err.matches(gst::CoreError::MissingPlugin)
        && err.message().contains("URI handler")
    {
        let scheme = uri.split("://").next().unwrap_or(uri);
        format!(
            "vigil cannot read `{scheme}://` addresses (GStreamer has no source for them); give a file path, or a file://, rtsp://, http(s):// URI"
        )
    } else if err.matches(gst::StreamError::TypeNotFound) {
        "not a media file GStreamer can read (its type could not be determined); check that the file is audio or video".to_string()
    } else if err.matches(gst::StreamError::CodecNotFound)
        || err.matches(gst::CoreError::MissingPlugin)
    {
        format!(
            "no decoder for a stream in it ({}); run `make setup` to install the GStreamer plugins",
            err.message()
        )
    } else if err.matches(gst::ResourceError::NotFound) {
        "not found; check the path or address".to_string()
    } else if file.is_none()
        && (err.matches(gst::ResourceError::OpenRead)
            || err.matches(gst::ResourceError::OpenReadWrite)
            || err.matches(gst::ResourceError::Read)
            || err.matches(gst::ResourceError::Busy)
            || err.matches(gst::StreamError::Failed))
    {
        // souphttpsrc says why only in its debug log: a certificate this
        // machine does not trust looks like any other failure.
        let tls = if uri.starts_with("https://") || uri.starts_with("rtsps://") {
            ", and that its certificate is signed by an authority this machine trusts (a private CA goes in the source's ca_file)"
        } else {
            ""
        };
        format!(
            "cannot read from it ({}{detail}); check the address, that the server is up and that this machine can reach it{tls}",
            err.message()
        )
    } else if err.matches(gst::StreamError::Demux)
        || err.matches(gst::StreamError::Decode)
        || err.matches(gst::StreamError::Failed)
    {
        format!(
            "the media is corrupt or truncated ({}{detail}); what was read before this point was kept",
            err.message()
        )
    } else {
        format!("{}{detail}", err.message())
    };
    crate::secret::scrub_url(
        &format!("{}: {what}", crate::secret::redact_url(&shown)),
        uri,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(e: impl gst::glib::error::ErrorDomain, debug: &str) -> FailureKind {
        kind_of(&gst::glib::Error::new(e, "x"), Some(debug))
    }

    #[test]
    fn failures_are_told_apart_by_domain_and_code() {
        assert_eq!(
            kind(gst::ResourceError::NotFound, ""),
            FailureKind::NotFound
        );
        assert_eq!(
            kind(gst::ResourceError::NotAuthorized, ""),
            FailureKind::Auth
        );
        assert_eq!(kind(gst::ResourceError::OpenRead, ""), FailureKind::Network);
        assert_eq!(kind(gst::StreamError::Decode, ""), FailureKind::Decode);
        assert_eq!(kind(gst::StreamError::Demux, ""), FailureKind::Decode);
        assert_eq!(
            kind(gst::CoreError::Negotiation, ""),
            FailureKind::Negotiate
        );
        assert_eq!(
            kind(
                gst::StreamError::Failed,
                "streaming stopped, reason not-negotiated (-4)"
            ),
            FailureKind::Negotiate
        );
        assert_eq!(kind(gst::CoreError::MissingPlugin, ""), FailureKind::Other);
        // A local file's read error is the file's, not the network's.
        let err = gst::glib::Error::new(gst::ResourceError::Read, "x");
        assert_eq!(
            failure("file:///a.mp4", &err, None).kind,
            FailureKind::Decode
        );
        assert_eq!(
            failure("rtsp://cam/1", &err, None).kind,
            FailureKind::Network
        );
    }
}
