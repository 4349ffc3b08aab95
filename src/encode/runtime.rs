//! ONNX Runtime, loaded at run time from the library of the PyPI wheel, and
//! sessions built from the manifests in `models/`.
//!
//! The library is found through `VIGIL_ORT_LIB`, else in the cache
//! (`${VIGIL_CACHE:-~/.cache/vigil}/ort/`), where `bash models/fetch.sh`
//! (run by `make setup`) puts it. A session's inputs and outputs are checked
//! against its manifest before any media flows.

use std::path::PathBuf;
use std::sync::OnceLock;

use ort::session::Session;
use ort::value::TensorElementType;
use serde::Deserialize;

use crate::error::{Error, Result};

/// The ONNX Runtime library's manifest.
const RUNTIME_MANIFEST: &str = include_str!("../../models/onnxruntime.toml");

/// Where downloads and converted models live.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VIGIL_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache/vigil")
}

/// One model as `models/NAME.toml` describes it.
#[derive(Clone, Debug, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub kind: String,
    pub licence: String,
    pub source: Source,
    pub cache: CachePath,
    #[serde(default)]
    pub inputs: Vec<Port>,
    #[serde(default)]
    pub outputs: Vec<Port>,
}

/// Where a file comes from: a registry package and the file inside it.
#[derive(Clone, Debug, Deserialize)]
pub struct Source {
    pub registry: String,
    pub package: String,
    pub version: String,
    pub member: String,
    pub sha256: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct CachePath {
    pub path: PathBuf,
}

/// A named input or output, its element type and shape (a string is a
/// symbolic dimension).
#[derive(Clone, Debug, Deserialize)]
pub struct Port {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub shape: Vec<toml::Value>,
}

impl Manifest {
    /// Parses a manifest compiled into the binary (a bug if it does not parse).
    pub fn builtin(text: &str) -> Manifest {
        toml::from_str(text).unwrap_or_else(|e| panic!("model manifest: {e}"))
    }

    pub fn file(&self) -> PathBuf {
        cache_dir().join(&self.cache.path)
    }

    pub fn installed(&self) -> bool {
        self.file().is_file()
    }

    fn missing(&self) -> Error {
        Error::Model {
            model: self.name.clone(),
            message: format!(
                "{} is not installed; run `make setup` (or `bash models/fetch.sh {}`)",
                self.file().display(),
                self.name
            ),
        }
    }
}

/// Every manifest vigil knows, the runtime first.
pub fn manifests() -> Vec<Manifest> {
    [
        RUNTIME_MANIFEST,
        crate::encode::vad::MANIFEST,
        crate::encode::faces::MANIFEST,
    ]
    .into_iter()
    .map(Manifest::builtin)
    .collect()
}

/// What the cache holds for a manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Installed {
    Missing,
    /// Present, sha256 as the manifest says.
    Verified,
    /// Present, but not the file the manifest names.
    Corrupt,
}

impl Manifest {
    /// Checks the cached file's sha256 against the manifest.
    pub fn verify(&self) -> std::io::Result<Installed> {
        use sha2::Digest;
        let path = self.file();
        if !path.is_file() {
            return Ok(Installed::Missing);
        }
        let mut file = std::fs::File::open(&path)?;
        let mut hasher = sha2::Sha256::new();
        std::io::copy(&mut file, &mut hasher)?;
        let hex: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(if hex == self.source.sha256 {
            Installed::Verified
        } else {
            Installed::Corrupt
        })
    }
}

/// Turns an error from running `model` into vigil's error.
pub fn inference_failed(model: &'static str) -> impl Fn(ort::Error) -> Error + Copy {
    move |e| Error::Model {
        model: model.into(),
        message: format!("inference failed: {e}"),
    }
}

/// The path of the ONNX Runtime library vigil loads.
pub fn library_path() -> PathBuf {
    match std::env::var_os("VIGIL_ORT_LIB").filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => Manifest::builtin(RUNTIME_MANIFEST).file(),
    }
}

/// Loads ONNX Runtime once per process.
fn environment() -> Result<ort::environment::Environment> {
    static ENV: OnceLock<std::result::Result<ort::environment::Environment, String>> =
        OnceLock::new();
    ENV.get_or_init(|| {
        let path = library_path();
        if !path.is_file() {
            return Err(format!(
                "ONNX Runtime is not installed at {}; run `make setup` (or `bash models/fetch.sh onnxruntime`), or set VIGIL_ORT_LIB to libonnxruntime.so 1.31",
                path.display()
            ));
        }
        let builder = ort::init_from(&path).map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", path.display()))?;
        builder
            .with_name("vigil")
            .build()
            .map_err(|e| format!("cannot start ONNX Runtime from {}: {e}", path.display()))
    })
    .clone()
    .map_err(|message| Error::Model {
        model: "onnxruntime".into(),
        message,
    })
}

/// A CPU session for `manifest`'s model with `threads` intra-op threads,
/// its inputs and outputs checked against the manifest.
pub fn session(manifest: &Manifest, threads: usize) -> Result<Session> {
    if !manifest.installed() {
        return Err(manifest.missing());
    }
    let env = environment()?;
    let err = |e: String| Error::Model {
        model: manifest.name.clone(),
        message: e,
    };
    let session = Session::builder(&env)
        .map_err(|e| err(e.to_string()))?
        .with_intra_threads(threads.max(1))
        .map_err(|e| err(e.to_string()))?
        .with_inter_threads(1)
        .map_err(|e| err(e.to_string()))?
        .commit_from_file(manifest.file())
        .map_err(|e| {
            err(format!(
                "cannot load {}: {e}; run `bash models/fetch.sh {}` to fetch it again",
                manifest.file().display(),
                manifest.name
            ))
        })?;
    check_ports(
        "input",
        &manifest.inputs,
        session
            .inputs()
            .iter()
            .map(|o| (o.name(), o.dtype().tensor_type())),
    )
    .map_err(err)?;
    check_ports(
        "output",
        &manifest.outputs,
        session
            .outputs()
            .iter()
            .map(|o| (o.name(), o.dtype().tensor_type())),
    )
    .map_err(err)?;
    Ok(session)
}

fn type_name(t: Option<TensorElementType>) -> &'static str {
    match t {
        Some(TensorElementType::Float32) => "f32",
        Some(TensorElementType::Int64) => "i64",
        Some(TensorElementType::Uint8) => "u8",
        Some(TensorElementType::Int32) => "i32",
        _ => "other",
    }
}

/// The session's ports must be the manifest's, by name and element type.
fn check_ports<'a>(
    what: &str,
    want: &[Port],
    have: impl Iterator<Item = (&'a str, Option<TensorElementType>)>,
) -> std::result::Result<(), String> {
    let have: Vec<(&str, &str)> = have.map(|(n, t)| (n, type_name(t))).collect();
    for p in want {
        match have.iter().find(|(n, _)| *n == p.name) {
            None => {
                return Err(format!(
                    "the model has no {what} `{}` (it has {:?}): the file does not match its manifest; run `bash models/fetch.sh` again",
                    p.name,
                    have.iter().map(|(n, _)| *n).collect::<Vec<_>>()
                ));
            }
            Some((_, t)) if *t != p.ty => {
                return Err(format!(
                    "{what} `{}` is {t}, its manifest says {}",
                    p.name, p.ty
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}
