//! The streams attached through the API, kept in `OUT/attached.json` so
//! that a restarted `vigil serve` attaches them again.
//!
//! Each is kept as it was given (a source table as JSON, before `${VAR}`
//! expansion), so a password that came from the environment is not written
//! out; a URI with a password in it is, so the file is private to its owner
//! (mode 0600), written whole to a temporary file and renamed over the old.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::SourceConfig;
use crate::error::{Error, Result};

/// The kept list.
pub struct Attached {
    path: PathBuf,
    specs: Vec<Value>,
}

impl Attached {
    /// Reads `path` (none yet: an empty list).
    pub fn load(path: &Path) -> Result<Attached> {
        let specs = match std::fs::read_to_string(path) {
            Ok(text) => {
                let v: Value = serde_json::from_str(&text).map_err(|e| Error::Config {
                    path: path.to_path_buf(),
                    message: format!(
                        "the list of attached streams is not JSON ({e}); fix or delete it"
                    ),
                })?;
                match v.get("streams").and_then(Value::as_array) {
                    Some(a) => a.clone(),
                    None => {
                        return Err(Error::Config {
                            path: path.to_path_buf(),
                            message: "expected {\"streams\": [...]}; fix or delete it".into(),
                        });
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(Error::io(
                    format!("cannot read the attached streams in {}", path.display()),
                    e,
                ));
            }
        };
        Ok(Attached {
            path: path.to_path_buf(),
            specs,
        })
    }

    /// Each kept stream, parsed; one that no longer parses (its `${VAR}`
    /// is unset, say) is an error for that stream only.
    pub fn sources(&self) -> Vec<(String, std::result::Result<SourceConfig, String>)> {
        self.specs
            .iter()
            .map(|spec| {
                let name = spec
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string();
                let parsed = serde_json::from_value::<SourceConfig>(spec.clone()).map_err(|e| {
                    let uri = spec.get("uri").and_then(Value::as_str).unwrap_or_default();
                    crate::secret::scrub_url(&e.to_string(), uri)
                });
                (name, parsed)
            })
            .collect()
    }

    /// Whether `name` is kept.
    pub fn contains(&self, name: &str) -> bool {
        self.specs
            .iter()
            .any(|s| s.get("name").and_then(Value::as_str) == Some(name))
    }

    /// Keeps `spec` (replacing one of the same name) and saves.
    pub fn add(&mut self, spec: Value) -> Result<()> {
        let name = spec.get("name").and_then(Value::as_str).map(str::to_string);
        self.specs
            .retain(|s| s.get("name").and_then(Value::as_str).map(str::to_string) != name);
        self.specs.push(spec);
        self.save()
    }

    /// Forgets `name` and saves; false when it was not kept.
    pub fn remove(&mut self, name: &str) -> Result<bool> {
        let before = self.specs.len();
        self.specs
            .retain(|s| s.get("name").and_then(Value::as_str) != Some(name));
        if self.specs.len() == before {
            return Ok(false);
        }
        self.save().map(|()| true)
    }

    fn save(&self) -> Result<()> {
        let err = |e| {
            Error::io(
                format!(
                    "cannot save the attached streams to {}",
                    self.path.display()
                ),
                e,
            )
        };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let text = serde_json::to_string_pretty(&serde_json::json!({ "streams": self.specs }))
            .map_err(|e| Error::Invalid(format!("cannot write the attached streams: {e}")))?;
        let tmp = self.path.with_extension("json.tmp");
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(err)?;
            f.write_all(text.as_bytes()).map_err(err)?;
            f.write_all(b"\n").map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_streams_survive_a_reload_private_and_unexpanded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("attached.json");
        let mut a = Attached::load(&path).unwrap();
        assert!(a.sources().is_empty());
        a.add(serde_json::json!({"name": "cam1", "uri": "rtsp://u:${VIGIL_TEST_NO_SUCH_VAR:-pw}@h/s"}))
            .unwrap();
        a.add(serde_json::json!({"name": "cam2", "uri": "file:///x.mp4", "fps": 2}))
            .unwrap();
        // Replaced, not doubled.
        a.add(serde_json::json!({"name": "cam2", "uri": "file:///y.mp4"}))
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("${VIGIL_TEST_NO_SUCH_VAR:-pw}"), "{text}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let b = Attached::load(&path).unwrap();
        let sources = b.sources();
        assert_eq!(sources.len(), 2);
        let cam1 = sources[0].1.as_ref().unwrap();
        assert_eq!(cam1.uri, "rtsp://u:pw@h/s");
        assert_eq!(sources[1].1.as_ref().unwrap().uri, "file:///y.mp4");
        let mut b = b;
        assert!(b.remove("cam1").unwrap());
        assert!(!b.remove("cam1").unwrap());
        assert!(!Attached::load(&path).unwrap().contains("cam1"));
    }

    #[test]
    fn a_bad_list_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("attached.json");
        std::fs::write(&path, "{oops").unwrap();
        let e = Attached::load(&path).err().unwrap().to_string();
        assert!(e.contains("fix or delete it"), "{e}");
    }
}
