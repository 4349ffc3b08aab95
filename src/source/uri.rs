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
