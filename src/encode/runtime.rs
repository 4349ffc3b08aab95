//! ONNX Runtime, loaded at run time from the library of the PyPI wheel, and
//! sessions built from the manifests in `models/`.
//!
//! The library is found through `VIGIL_ORT_LIB`, else in the cache
//! (`${VIGIL_CACHE:-~/.cache/vigil}/ort/`), where `bash models/fetch.sh`
//! (run by `make setup`) puts it. A session's inputs and outputs are checked
//! against its manifest before any media flows.

use crate::config::Provider;
use std::path::PathBuf;
use std::sync::OnceLock;

use ort::session::Session;
use ort::value::TensorElementType;
use serde::Deserialize;

use crate::cpu::{PoolClocks, PoolThreads};
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
    /// Present when the package's file is converted (by `models/SCRIPT`).
    pub convert: Option<Convert>,
    pub cache: CachePath,
    #[serde(default)]
    pub inputs: Vec<Port>,
    #[serde(default)]
    pub outputs: Vec<Port>,
    /// A second graph beside the first (Whisper's decoder step).
    pub decoder: Option<Graph>,
    /// Whether ONNX Runtime keeps a second, pre-packed copy of the weights
    /// for its matrix products (default). Off for a model whose weights are
    /// large and whose products are small: the copy is memory with no
    /// speed to show for it.
    #[serde(default = "yes")]
    pub prepack: bool,
    /// Whether ONNX Runtime keeps the memory of a run for the next in its
    /// arena (default). Off for a model run seldom with large transients:
    /// the memory goes back after each run.
    #[serde(default = "yes")]
    pub arena: bool,
    /// For an object detector: how its outputs are decoded and what its
    /// input is.
    pub detector: Option<DetectorSpec>,
    /// A model of the user's own: its file, outside the cache (its manifest
    /// beside it, see [`Manifest::user`]).
    #[serde(skip)]
    pub local: Option<PathBuf>,
}

/// The manifest of a model of the user's own, `MODEL.toml` beside
/// `MODEL.onnx`: its decoding, labels and ports; no registry source.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserManifest {
    name: Option<String>,
    licence: Option<String>,
    /// The class names, one a line in output order; relative to the
    /// manifest.
    labels: PathBuf,
    detector: DetectorSpec,
    inputs: Vec<Port>,
    outputs: Vec<Port>,
}

/// How an object detector's outputs are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// NanoDet: per stride, `scores_S` [batch, cells, C] (sigmoid) and
    /// `boxes_S` [batch, cells, 44] (distances as 4 × 11 bins).
    Nanodet,
    /// YOLOv8 / YOLO11 exports: one output [batch, 4 + C, anchors]: box
    /// centre x, y, width, height in input pixels, then class scores.
    Yolov8,
    /// YOLOv5 / YOLOv7 exports: one output [batch, anchors, 5 + C]: box
    /// centre and size in input pixels, objectness, then class scores
    /// (a class's score is objectness × its own).
    Yolov5,
}

/// The channel order a detector takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    #[default]
    Rgb,
    Bgr,
}

/// A detector's decoding and input, from its manifest's `[detector]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorSpec {
    pub family: Family,
    /// Channel order of the input planes.
    #[serde(default)]
    pub colour: Colour,
    /// Per channel, in the input's order: the model sees (x − mean) / std
    /// of 0–255 values (YOLO exports: mean 0, std 255).
    #[serde(default = "no_mean")]
    pub mean: [f32; 3],
    #[serde(default = "unit_std")]
    pub std: [f32; 3],
    /// Grey level of the letterbox borders.
    #[serde(default = "grey_pad")]
    pub pad: u8,
}

fn no_mean() -> [f32; 3] {
    [0.0; 3]
}
fn unit_std() -> [f32; 3] {
    [255.0; 3]
}
fn grey_pad() -> u8 {
    114
}

fn yes() -> bool {
    true
}

/// The ports of a second graph of a model.
#[derive(Clone, Debug, Deserialize)]
pub struct Graph {
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
    /// Other files the conversion needs from the same package.
    #[serde(default)]
    pub also: Vec<Member>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Member {
    pub member: String,
    pub sha256: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Convert {
    pub script: String,
}

/// Where the final file lives in the cache.
#[derive(Clone, Debug, Deserialize)]
pub struct CachePath {
    pub path: PathBuf,
    /// sha256 of a converted file, where the conversion is deterministic.
    pub sha256: Option<String>,
    /// The class names, when the package ships them.
    pub labels: Option<PathBuf>,
    /// Other files the conversion makes, beside `path`.
    #[serde(default)]
    pub files: Vec<String>,
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

    /// The manifest of the user's model at `onnx`: `MODEL.toml` beside it.
    pub fn user(onnx: &std::path::Path) -> Result<Manifest> {
        let path = onnx.with_extension("toml");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Model {
            model: onnx.display().to_string(),
            message: format!(
                "cannot read its manifest {}: {e}; a model of your own needs one beside it (README: \"Models of your own\")",
                path.display()
            ),
        })?;
        let u: UserManifest = toml::from_str(&text).map_err(|e| Error::Config {
            path: path.clone(),
            message: crate::config::locate(&text, e.span(), e.message()),
        })?;
        let stem = onnx
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let dir = path.parent().map(PathBuf::from).unwrap_or_default();
        Ok(Manifest {
            name: u.name.unwrap_or(stem),
            kind: "model".into(),
            licence: u.licence.unwrap_or_default(),
            source: Source {
                registry: "local".into(),
                package: onnx.display().to_string(),
                version: String::new(),
                member: String::new(),
                sha256: String::new(),
                also: Vec::new(),
            },
            convert: None,
            cache: CachePath {
                path: onnx.to_path_buf(),
                sha256: None,
                labels: Some(dir.join(u.labels)),
                files: Vec::new(),
            },
            inputs: u.inputs,
            outputs: u.outputs,
            decoder: None,
            prepack: true,
            arena: true,
            detector: Some(u.detector),
            local: Some(onnx.to_path_buf()),
        })
    }

    pub fn file(&self) -> PathBuf {
        match &self.local {
            Some(f) => f.clone(),
            None => cache_dir().join(&self.cache.path),
        }
    }

    /// What to do when the file does not match the manifest.
    fn mismatch_hint(&self) -> String {
        match &self.local {
            Some(f) => format!(
                "the model does not match its manifest {}: fix the manifest",
                f.with_extension("toml").display()
            ),
            None => "the file does not match its manifest; delete it and run `vigil models fetch`"
                .into(),
        }
    }

    pub fn installed(&self) -> bool {
        self.file().is_file() && self.cache.files.iter().all(|f| self.beside(f).is_file())
    }

    /// A file the conversion made beside the main one.
    pub fn beside(&self, name: &str) -> PathBuf {
        self.file().with_file_name(name)
    }

    /// The sha256 the cached file must have, if it is fixed.
    pub fn final_sha256(&self) -> Option<&str> {
        match (&self.cache.sha256, &self.convert) {
            (Some(s), _) => Some(s),
            (None, None) => Some(&self.source.sha256),
            (None, Some(_)) => None,
        }
    }

    /// The labels file in the cache (or beside a user's model), if the
    /// model has one.
    pub fn labels_file(&self) -> Option<PathBuf> {
        match &self.local {
            Some(_) => self.cache.labels.clone(),
            None => self.cache.labels.as_ref().map(|p| cache_dir().join(p)),
        }
    }

    /// Its first graph's inputs and outputs, to check a session against.
    fn graph(&self) -> Graph {
        Graph {
            inputs: self.inputs.clone(),
            outputs: self.outputs.clone(),
        }
    }

    /// What to say when the model is not in the cache.
    pub fn missing(&self) -> Error {
        if let Some(f) = &self.local {
            return Error::Model {
                model: self.name.clone(),
                message: format!("{}: no such file", f.display()),
            };
        }
        Error::Model {
            model: self.name.clone(),
            message: format!(
                "{} is not installed; {}",
                self.file().display(),
                install_hint(&self.name)
            ),
        }
    }
}

/// How to get model `name` when it is not in the cache: `make setup`, or,
/// in a container image that left it out on purpose, what the image says
/// (`models/LEFT_OUT`, written by `deploy/docker/layout.sh`).
pub fn install_hint(name: &str) -> String {
    match std::fs::read_to_string(cache_dir().join("models").join("LEFT_OUT")) {
        Ok(said) if !said.trim().is_empty() => said.trim().to_owned(),
        _ => format!("run `make setup` (or `bash models/fetch.sh {name}`)"),
    }
}

/// Every manifest vigil knows, the runtime first.
pub fn manifests() -> Vec<Manifest> {
    let models = crate::encode::ENCODERS.iter().flat_map(|k| k.manifests);
    std::iter::once(&RUNTIME_MANIFEST)
        .chain(models)
        .chain(crate::encode::text::MANIFESTS)
        .map(|m| Manifest::builtin(m))
        .collect()
}

/// What the cache holds for a manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Installed {
    Missing,
    /// Present, sha256 as the manifest says.
    Verified,
    /// Present; converted by a tool that does not give the same bytes twice,
    /// so only loading it (`vigil check`, every run) can check it.
    Converted,
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
        let Some(want) = self.final_sha256() else {
            return Ok(Installed::Converted);
        };
        let mut file = std::fs::File::open(&path)?;
        let mut hasher = sha2::Sha256::new();
        std::io::copy(&mut file, &mut hasher)?;
        let hex: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(if hex == want {
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

/// A session for `manifest`'s model on `provider` with `threads` intra-op
/// threads, its inputs and outputs checked against the manifest.
///
/// The intra-op threads do not spin while waiting for work: vigil runs
/// several sessions and GStreamer beside each other, and a spinning pool
/// takes the cores they need (on 2 cores, spinning makes NanoDet alone 30 %
/// faster and vigil's detector no faster; `make bench` shows both).
pub fn session(manifest: &Manifest, threads: usize, provider: Provider) -> Result<Session> {
    session_with(manifest, threads, provider, false)
}

/// [`session`], with the CPU clocks of its pool threads (for what each
/// stream costs: [`crate::cpu`]).
pub fn pooled_session(
    manifest: &Manifest,
    threads: usize,
    provider: Provider,
) -> Result<(Session, PoolClocks)> {
    let graph = manifest.graph();
    let pool = PoolClocks::default();
    let session = session_of(
        manifest,
        &manifest.file(),
        &graph,
        threads,
        provider,
        false,
        Some(&pool),
        true,
    )?;
    Ok((session, pool))
}

/// [`session`], choosing whether the intra-op threads spin (ONNX Runtime's
/// default) — for benchmarks.
pub fn session_with(
    manifest: &Manifest,
    threads: usize,
    provider: Provider,
    spinning: bool,
) -> Result<Session> {
    let graph = manifest.graph();
    session_of(
        manifest,
        &manifest.file(),
        &graph,
        threads,
        provider,
        spinning,
        None,
        true,
    )
}

/// A session for one or two runs and then gone (a question asked from the
/// command line): no graph optimisation, which for a model of int8 weights
/// dequantised by its graph (MiniLM) loads in 50 ms instead of 200 and runs
/// a sentence in 60 ms instead of 6.
pub fn quick_session(manifest: &Manifest, threads: usize) -> Result<Session> {
    let graph = manifest.graph();
    session_of(
        manifest,
        &manifest.file(),
        &graph,
        threads,
        Provider::Cpu,
        false,
        None,
        false,
    )
}

/// A session for the model's second graph, `file` beside the first.
pub fn decoder_session(
    manifest: &Manifest,
    file: &str,
    threads: usize,
    provider: Provider,
) -> Result<Session> {
    let graph = manifest.decoder.clone().unwrap_or(Graph {
        inputs: Vec::new(),
        outputs: Vec::new(),
    });
    session_of(
        manifest,
        &manifest.beside(file),
        &graph,
        threads,
        provider,
        false,
        None,
        true,
    )
}

#[allow(clippy::too_many_arguments)]
fn session_of(
    manifest: &Manifest,
    path: &std::path::Path,
    graph: &Graph,
    threads: usize,
    provider: Provider,
    spinning: bool,
    pool: Option<&PoolClocks>,
    optimise: bool,
) -> Result<Session> {
    if !manifest.installed() {
        return Err(manifest.missing());
    }
    let env = environment()?;
    let err = |e: String| Error::Model {
        model: manifest.name.clone(),
        message: e,
    };
    let mut builder = Session::builder(&env)
        .map_err(|e| err(e.to_string()))?
        .with_intra_threads(threads.max(1))
        .map_err(|e| err(e.to_string()))?
        .with_inter_threads(1)
        .map_err(|e| err(e.to_string()))?
        .with_config_entry(
            "session.intra_op.allow_spinning",
            if spinning { "1" } else { "0" },
        )
        .map_err(|e| err(e.to_string()))?
        .with_config_entry(
            "session.disable_prepacking",
            if manifest.prepack { "0" } else { "1" },
        )
        .map_err(|e| err(e.to_string()))?
        // A memory pattern is planned and kept per input shape, and every
        // batch size is a shape: off, a detector batching 5 frames peaked
        // 150 MiB lower (392 to 244) at the same speed.
        .with_memory_pattern(false)
        .map_err(|e| err(e.to_string()))?;
    if !optimise {
        builder = builder
            .with_optimization_level(ort::session::builder::GraphOptimizationLevel::Disable)
            .map_err(|e| err(e.to_string()))?;
    }
    if !manifest.arena {
        builder = builder
            .with_execution_providers([ort::ep::CPU::default().with_arena_allocator(false).build()])
            .map_err(|e| err(e.to_string()))?;
    }
    if let Some(clocks) = pool {
        builder = builder
            .with_thread_manager(PoolThreads {
                name: format!("ort-{}", manifest.name),
                clocks: clocks.clone(),
            })
            .map_err(|e| err(e.to_string()))?;
    }
    builder = with_provider(builder, provider).map_err(err)?;
    let session = builder.commit_from_file(path).map_err(|e| {
        err(match &manifest.local {
            Some(_) => format!("cannot load {}: {e}; is it an ONNX model?", path.display()),
            None => format!(
                "cannot load {}: {e}; run `bash models/fetch.sh {}` to fetch it again",
                path.display(),
                manifest.name
            ),
        })
    })?;
    let ports = |outlets: &[ort::value::Outlet]| -> Vec<(String, &'static str, Vec<i64>)> {
        outlets
            .iter()
            .map(|o| {
                let shape = o
                    .dtype()
                    .tensor_shape()
                    .map(|s| s.to_vec())
                    .unwrap_or_default();
                (
                    o.name().to_string(),
                    type_name(o.dtype().tensor_type()),
                    shape,
                )
            })
            .collect()
    };
    let hint = manifest.mismatch_hint();
    check_ports("input", &graph.inputs, &ports(session.inputs()), &hint).map_err(err)?;
    check_ports("output", &graph.outputs, &ports(session.outputs()), &hint).map_err(err)?;
    Ok(session)
}

/// Registers `provider` on a session builder. `Cuda` must work; `Auto` uses
/// CUDA when the loaded ONNX Runtime has it and a GPU answers, else the CPU.
fn with_provider(
    builder: ort::session::builder::SessionBuilder,
    provider: Provider,
) -> std::result::Result<ort::session::builder::SessionBuilder, String> {
    use ort::ep::ExecutionProvider;
    let cuda_built = || ort::ep::CUDA::is_available().unwrap_or(false);
    match provider {
        Provider::Cpu => Ok(builder),
        Provider::Cuda if !cuda_built() => Err(format!(
            "provider = \"cuda\", but the ONNX Runtime at {} was built without CUDA; point VIGIL_ORT_LIB at the library of the onnxruntime-gpu wheel (with CUDA 13 and cuDNN 9 on the library path), or set provider = \"cpu\"",
            library_path().display()
        )),
        Provider::Cuda => builder
            .with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()])
            .map_err(|e| {
                format!("provider = \"cuda\": cannot use the GPU: {e}; set provider = \"cpu\"")
            }),
        Provider::Auto if cuda_built() => {
            // Falls back to the CPU by itself when registration fails.
            builder
                .with_execution_providers([ort::ep::CUDA::default().build()])
                .map_err(|e| e.to_string())
        }
        Provider::Auto => Ok(builder),
    }
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

/// A shape as the manifest writes it: numbers, and names for symbolic dims.
fn shape_text(dims: impl Iterator<Item = String>) -> String {
    format!("[{}]", dims.collect::<Vec<_>>().join(", "))
}

/// The session's ports must be the manifest's, by name, element type and
/// shape (a manifest's named dimension must be symbolic in the model).
fn check_ports(
    what: &str,
    want: &[Port],
    have: &[(String, &'static str, Vec<i64>)],
    hint: &str,
) -> std::result::Result<(), String> {
    for p in want {
        let Some((_, t, shape)) = have.iter().find(|(n, _, _)| *n == p.name) else {
            return Err(format!(
                "the model has no {what} `{}` (it has {:?}): {hint}",
                p.name,
                have.iter().map(|(n, _, _)| n.as_str()).collect::<Vec<_>>()
            ));
        };
        if *t != p.ty {
            return Err(format!(
                "{what} `{}` is {t}, its manifest says {}: {hint}",
                p.name, p.ty
            ));
        }
        let fits = shape.len() == p.shape.len()
            && shape.iter().zip(&p.shape).all(|(d, w)| match w {
                toml::Value::Integer(n) => d == n,
                _ => *d < 0,
            });
        if !fits {
            return Err(format!(
                "{what} `{}` has shape {}, its manifest says {}: {hint}",
                p.name,
                shape_text(
                    shape
                        .iter()
                        .map(|d| if *d < 0 { "?".into() } else { d.to_string() })
                ),
                shape_text(p.shape.iter().map(|d| match d {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })),
            ));
        }
    }
    Ok(())
}
