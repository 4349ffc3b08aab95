//! Turning what the user typed into a URI, and checking files before playing them.

use std::path::Path;

use gstreamer as gst;

/// Turns a file path or URI into a GStreamer URI. Paths are made absolute.
pub fn resolve_uri(input: &str) -> Result<String, String> {
    if looks_like_uri(input) {
        return Ok(input.to_string());
    }
    let path = Path::new(input);
    let abs = std::path::absolute(path)
        .map_err(|e| format!("{input}: cannot make the path absolute: {e}"))?;
    gst::glib::filename_to_uri(&abs, None)
        .map(|u| u.to_string())
        .map_err(|e| format!("{input}: cannot turn the path into a URI: {e}"))
}

fn looks_like_uri(s: &str) -> bool {
    match s.split_once("://") {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

/// `uri` fit for messages, logs, metrics and the API: without the user
/// name and password it may carry (`rtsp://admin:pw@cam/…`), and with the
/// values of query parameters that look like secrets (`?token=…`) masked.
/// Anything not a URL (a file path) is returned as it is.
pub fn redact_uri(uri: &str) -> String {
    let Ok(mut u) = url::Url::parse(uri) else {
        return uri.to_string();
    };
    let mut changed = false;
    if !u.username().is_empty() || u.password().is_some() {
        let _ = u.set_username("");
        let _ = u.set_password(None);
        changed = true;
    }
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let secret = SECRET_KEYS
                    .iter()
                    .any(|s| k.to_ascii_lowercase().contains(s));
                (
                    k.into_owned(),
                    if secret { "***".into() } else { v.into_owned() },
                )
            })
            .collect();
        if pairs.iter().any(|(_, v)| v == "***") {
            u.query_pairs_mut().clear().extend_pairs(pairs);
            changed = true;
        }
    }
    if changed {
        u.to_string()
    } else {
        uri.to_string()
    }
}

/// Query parameters whose values are not shown.
const SECRET_KEYS: &[&str] = &[
    "token",
    "key",
    "sig",
    "auth",
    "pass",
    "pwd",
    "secret",
    "credential",
    "session",
];

/// Removes every copy of `uri`'s credentials from `text` (GStreamer's own
/// messages may quote the location).
pub fn scrub(text: &str, uri: &str) -> String {
    let Ok(u) = url::Url::parse(uri) else {
        return text.to_string();
    };
    let mut out = text.replace(uri, &redact_uri(uri));
    for (k, v) in u.query_pairs() {
        let secret = SECRET_KEYS
            .iter()
            .any(|s| k.to_ascii_lowercase().contains(s));
        if secret && v.len() >= 3 {
            out = out.replace(v.as_ref(), "***");
        }
    }
    if let Some(pw) = u.password().filter(|p| p.len() >= 3) {
        out = out.replace(pw, "***");
        if let Ok(decoded) = percent_encoding::percent_decode_str(pw).decode_utf8() {
            out = out.replace(decoded.as_ref(), "***");
        }
    }
    out
}

/// Checks a `file://` URI's file before GStreamer sees it, so the common
/// mistakes get a plain answer. Other URIs pass unchecked.
pub fn check_input(uri: &str) -> Result<(), String> {
    if !uri.starts_with("file://") {
        return Ok(());
    }
    let Ok((path, _)) = gst::glib::filename_from_uri(uri) else {
        return Err(format!("{uri}: not a valid file URI"));
    };
    let shown = path.display();
    match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("{shown}: no such file; check the path"))
        }
        Err(e) => Err(format!("{shown}: cannot read: {e}")),
        Ok(m) if m.is_dir() => Err(format!("{shown}: is a directory, not a media file")),
        // A named pipe (another program writing the media as it goes) has
        // no length to check.
        Ok(m) if m.is_file() && m.len() == 0 => Err(format!(
            "{shown}: the file is empty (0 bytes); nothing to play"
        )),
        Ok(_) => Ok(()),
    }
}

/// The authorities in the PEM file `ca_file`, as a TLS database for
/// https:// and rtsps:// sources.
pub fn tls_database(ca_file: &Path) -> Result<gio::TlsDatabase, String> {
    use gio::prelude::*;
    let shown = ca_file.display();
    let what = "give a PEM file with the certificates of the authorities to trust";
    match std::fs::metadata(ca_file) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("ca_file {shown}: no such file; {what}"));
        }
        Err(e) => return Err(format!("ca_file {shown}: cannot read: {e}")),
        Ok(_) => {}
    }
    match gio::TlsCertificate::list_new_from_file(ca_file) {
        Ok(list) if list.is_empty() => {
            return Err(format!("ca_file {shown}: holds no certificate; {what}"));
        }
        Ok(_) => {}
        Err(e) => return Err(format!("ca_file {shown}: {e}; {what}")),
    }
    gio::TlsFileDatabase::new(ca_file)
        .map(|db| db.upcast())
        .map_err(|e| format!("ca_file {shown}: {e}; {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show() {
        let uri = "rtsp://admin:s%40cret@cam1:554/stream";
        assert_eq!(redact_uri(uri), "rtsp://cam1:554/stream");
        assert_eq!(redact_uri("/tmp/a.mp4"), "/tmp/a.mp4");
        let said = scrub(&format!("cannot open {uri} (password s@cret)"), uri);
        assert!(
            !said.contains("s%40cret") && !said.contains("s@cret"),
            "{said}"
        );
        assert!(said.contains("rtsp://cam1:554/stream"), "{said}");
        // Secrets in the query too; other parameters stay.
        let hls = "https://cdn.example/live.m3u8?channel=2&access_token=abc123xyz";
        let shown = redact_uri(hls);
        assert!(
            !shown.contains("abc123xyz") && shown.contains("channel=2"),
            "{shown}"
        );
        let said = scrub("403 for token abc123xyz", hls);
        assert!(!said.contains("abc123xyz"), "{said}");
        assert_eq!(
            redact_uri("rtsp://cam/live?channel=1"),
            "rtsp://cam/live?channel=1"
        );
    }

    #[test]
    fn paths_become_file_uris() {
        crate::source::init().ok();
        let u = resolve_uri("/tmp/a b.mp4").ok();
        assert_eq!(u.as_deref(), Some("file:///tmp/a%20b.mp4"));
        assert_eq!(
            resolve_uri("rtsp://cam/1").ok().as_deref(),
            Some("rtsp://cam/1")
        );
    }

    #[test]
    fn missing_and_empty_files_are_named() {
        crate::source::init().ok();
        let e = check_input("file:///nonexistent/x.mp4")
            .err()
            .unwrap_or_default();
        assert!(e.contains("no such file"), "{e}");
        let dir = std::env::temp_dir().join(format!("vigil-empty-{}", std::process::id()));
        std::fs::write(&dir, b"").ok();
        let uri = resolve_uri(&dir.to_string_lossy()).unwrap_or_default();
        let e = check_input(&uri).err().unwrap_or_default();
        assert!(e.contains("empty"), "{e}");
        std::fs::remove_file(&dir).ok();
    }
}
