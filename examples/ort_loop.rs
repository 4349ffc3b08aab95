//! A bare ONNX Runtime loop over one of vigil's models, for `make bench`:
//! how fast the model alone runs with a given thread count, to compare with
//! the same model inside vigil.
//!
//!     cargo run --release --example ort_loop -- nanodet 2 200
//!
//! Arguments: model (nanodet, nanodet_int8, yamnet, blazeface, silero_vad;
//! `nanodet@320`, `nanodet_int8@320`: NanoDet at another input side), intra-op
//! threads, runs (after 5 warm-up runs), and optionally `spin` for ONNX
//! Runtime's default of spinning intra-op threads (vigil turns it off).
//! Prints one line: `MODEL THREADS RUNS SECONDS RUNS_PER_SECOND`.

use std::time::Instant;

use ort::value::Tensor;
use vigil::config::Provider;
use vigil::encode::runtime::{self, Manifest};
use vigil::encode::{detector, faces, sound, vad};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (model, threads, runs, spin) = match args.as_slice() {
        [m, t, r] => (m.as_str(), t.parse::<usize>()?, r.parse::<usize>()?, false),
        [m, t, r, s] if s == "spin" => (m.as_str(), t.parse::<usize>()?, r.parse::<usize>()?, true),
        _ => return Err("usage: ort_loop MODEL THREADS RUNS [spin]".into()),
    };
    let (model, side) = match model.split_once('@') {
        Some((m, side)) => (m, side.parse::<usize>()?),
        None => (model, 416),
    };
    let manifest = match model {
        "nanodet" => detector::MANIFEST,
        "nanodet_int8" => detector::MANIFEST_INT8,
        "yamnet" => sound::MANIFEST,
        "blazeface" => faces::MANIFEST,
        "silero_vad" => vad::MANIFEST,
        other => return Err(format!("unknown model {other}").into()),
    };
    let mut session =
        runtime::session_with(&Manifest::builtin(manifest), threads, Provider::Cpu, spin)?;
    // A picture-like input: smooth gradients and edges in NanoDet's
    // normalised range (a constant input can run faster than real ones).
    let image: Vec<f32> = (0..3 * side * side)
        .map(|i| {
            let (c, y, x) = (i / (side * side), (i / side) % side, i % side);
            let v = ((x * 7 + y * 3 + c * 50) % 256) as f32
                + if (x / 40 + y / 40) % 2 == 0 {
                    60.0
                } else {
                    0.0
                };
            (v.min(255.0) - 116.0) / 57.0
        })
        .collect();
    let mut once = || -> Result<(), Box<dyn std::error::Error>> {
        match model {
            "nanodet" | "nanodet_int8" => {
                let x = Tensor::from_array(([1usize, 3, side, side], image.clone()))?;
                session.run(ort::inputs!["image" => x])?;
            }
            "yamnet" => {
                let x = Tensor::from_array(([1usize, 1, 96, 64], vec![-3.0f32; 96 * 64]))?;
                session.run(ort::inputs!["patch" => x])?;
            }
            "blazeface" => {
                let x = Tensor::from_array(([1usize, 128, 128, 3], vec![0.1f32; 128 * 128 * 3]))?;
                session.run(ort::inputs!["input:0" => x])?;
            }
            _ => {
                let x = Tensor::from_array(([1usize, 576], vec![0.01f32; 576]))?;
                let s = Tensor::from_array(([2usize, 1, 128], vec![0.0f32; 256]))?;
                let sr = Tensor::from_array(((), vec![16_000i64]))?;
                session.run(ort::inputs!["input" => x, "state" => s, "sr" => sr])?;
            }
        }
        Ok(())
    };
    for _ in 0..5 {
        once()?;
    }
    let start = Instant::now();
    for _ in 0..runs {
        once()?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{model} {threads} {runs} {secs:.3} {:.2}",
        runs as f64 / secs
    );
    Ok(())
}
