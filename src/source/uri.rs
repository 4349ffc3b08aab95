//! Turning what the user typed into a URI, and checking files before playing them.

use std::path::Path;

use gstreamer as gst;

use crate::config::SourceConfig;

/// What can be known on this machine, before a source starts, of whether
/// it can: its URI resolves, the file a `file://` URI names is there and
/// readable, its CA file holds certificates. (Variables in its settings
/// were expanded when they were read.) The resolved URI, or why not.
pub fn preflight(source: &SourceConfig) -> Result<String, String> {
    let uri = resolve_uri(&source.uri)?;
    check_input(&uri)?;
    if let Some(ca_file) = &source.ca_file {
        tls_database(ca_file)?;
    }
    Ok(uri)
}

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

/// The regular file a `file://` URI names, which can be read again (a
/// recorder does); None for other URIs and for a named pipe, read once.
pub fn file_path(uri: &str) -> Option<std::path::PathBuf> {
    if !uri.starts_with("file://") {
        return None;
    }
    let (path, _) = gst::glib::filename_from_uri(uri).ok()?;
    std::fs::metadata(&path)
        .ok()
        .filter(|m| m.is_file())
        .map(|_| path)
}

/// A named pipe behind a `file://` URI, opened once by vigil and handed to
/// GStreamer as `fd://N`. GStreamer's file source opens, closes and opens
/// its file again while uridecodebin asks how it can be read; on a pipe a
/// writer that writes in between gets a broken pipe (seen once in about a
/// hundred runs), and the reopened end then waits for a writer that is
/// gone. The descriptor stays open for as long as the value lives.
pub struct HeldPipe {
    /// The URI GStreamer is given instead.
    pub uri: String,
    _file: std::fs::File,
}

/// Opens the named pipe `uri` points to, if it points to one: this waits,
/// as GStreamer would, for a writer to open it. Other URIs give `None`.
pub fn hold_pipe(uri: &str) -> Result<Option<HeldPipe>, String> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileTypeExt;
    if !uri.starts_with("file://") {
        return Ok(None);
    }
    let Ok((path, _)) = gst::glib::filename_from_uri(uri) else {
        return Ok(None);
    };
    match std::fs::metadata(&path) {
        Ok(m) if m.file_type().is_fifo() => {}
        _ => return Ok(None),
    }
    let file = std::fs::File::open(&path)
        .map_err(|e| format!("{}: cannot open the pipe: {e}", path.display()))?;
    Ok(Some(HeldPipe {
        uri: format!("fd://{}", file.as_raw_fd()),
        _file: file,
    }))
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
    fn a_named_pipe_is_opened_once_and_given_as_its_descriptor() {
        use std::io::Write;
        crate::source::init().ok();
        let dir = tempfile::tempdir().expect("tmp");
        let plain = dir.path().join("a.wav");
        std::fs::write(&plain, b"RIFF").expect("write");
        let uri = |p: &Path| resolve_uri(&p.to_string_lossy()).expect("uri");
        assert!(hold_pipe(&uri(&plain)).expect("plain").is_none());
        assert!(hold_pipe("rtsp://cam/1").expect("rtsp").is_none());
        let fifo = dir.path().join("p.wav");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()));
        let path = fifo.clone();
        let writer = std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().write(true).open(&path)?;
            f.write_all(b"RIFF")
        });
        let held = hold_pipe(&uri(&fifo)).expect("fifo").expect("a pipe");
        assert!(held.uri.starts_with("fd://"), "{}", held.uri);
        assert!(writer.join().expect("writer").is_ok());
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
