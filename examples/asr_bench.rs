//! Speech-to-text figures for `make bench`.
//!
//!     cargo run --release --example asr_bench -- CALL.wav [THREADS]
//!
//! 1. Speed: Whisper (encoder + decoding + guards) on consecutive 5 s
//!    segments of CALL.wav (16 kHz mono PCM; ../shared/media/sample.wav),
//!    `THREADS` intra-op threads (default 2): × real time = audio seconds /
//!    wall seconds.
//! 2. Latency: 12.0–18.0 s of the call (one 5.2 s utterance, 12.54–17.77 s
//!    in sample.stm: "This is Diane in New Jersey." "And I'm Sheila in
//!    Texas, originally from Chicago.") followed by 3 s of silence is fed as
//!    a live stream would arrive, one 1 s chunk per second of wall time,
//!    through vigil's own VAD and speech cutter to the Whisper worker. The
//!    latency is the wall time from the moment the end of the speech (as
//!    VAD found it) arrived to the moment its transcript is there. Where
//!    speech ends against chunk boundaries is chance on a live stream, so
//!    the utterance is played four times, shifted by a quarter of a hop
//!    each time; mean and worst are printed.
//!
//! Prints `speed X …` and, per hop, `latency hop MS mean S worst S: TEXT`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil::config::Provider;
use vigil::config::{AsrConfig, BatchConfig, VadConfig};
use vigil::encode::asr::{AsrWorker, Cutter};
use vigil::encode::batch::Batcher;
use vigil::encode::whisper::Whisper;
use vigil::encode::{Encoder, Features, vad};
use vigil::media::{Chunk, ChunkFlags};
use vigil::metrics::Metrics;
use vigil::time::{SECOND, Span, Timestamp};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// 16 kHz mono 16-bit PCM WAV samples.
fn read_wav(path: &str) -> Res<Vec<f32>> {
    let b = std::fs::read(path)?;
    if b.len() < 12 || &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        return Err(format!("{path}: not a WAV file").into());
    }
    let mut at = 12;
    let mut format = None;
    while at + 8 <= b.len() {
        let id = &b[at..at + 4];
        let size = u32::from_le_bytes([b[at + 4], b[at + 5], b[at + 6], b[at + 7]]) as usize;
        let body = &b[at + 8..(at + 8 + size).min(b.len())];
        if id == b"fmt " && body.len() >= 16 {
            format = Some((
                u16::from_le_bytes([body[0], body[1]]),
                u16::from_le_bytes([body[2], body[3]]),
                u32::from_le_bytes([body[4], body[5], body[6], body[7]]),
                u16::from_le_bytes([body[14], body[15]]),
            ));
        }
        if id == b"data" {
            if format != Some((1, 1, 16_000, 16)) {
                return Err(
                    format!("{path}: expected 16 kHz mono 16-bit PCM, found {format:?}").into(),
                );
            }
            return Ok(body
                .chunks_exact(2)
                .map(|s| i16::from_le_bytes([s[0], s[1]]) as f32 / 32768.0)
                .collect());
        }
        at += 8 + size + size % 2;
    }
    Err(format!("{path}: no data chunk").into())
}

fn chunk(seq: u64, hop: usize, audio: &[f32], last: bool) -> Chunk {
    let start = seq * hop as u64 * SECOND / 16_000;
    Chunk {
        stream: Arc::from("live"),
        seq,
        span: Span::new(
            Timestamp(start),
            Timestamp(start + audio.len() as u64 * SECOND / 16_000),
        ),
        frames: Vec::new(),
        audio: audio.into(),
        first_sample: seq * hop as u64,
        flags: ChunkFlags {
            last,
            ..Default::default()
        },
        utc_origin: 0,
        pts_origin: 0,
        has_audio: true,
        has_video: false,
        video_end: None,
        audio_end: None,
        made_at: Instant::now(),
    }
}

/// Feeds `audio` live in chunks of `hop` samples through VAD and the cutter;
/// the latency of each segment's transcript, and the text.
fn live(
    audio: &[f32],
    hop: usize,
    hop_ms: u64,
    asr_config: &AsrConfig,
    worker: &AsrWorker,
) -> Res<(Vec<f64>, String)> {
    let vad_config = VadConfig::default();
    let batcher = Batcher::spawn(
        vad::model(&vad_config, 1)?,
        BatchConfig::no_wait(),
        Metrics::new(),
    )?;
    let mut vad = vad::Vad::new(vad_config, batcher.client());
    let mut cutter = Cutter::new(asr_config.clone(), worker.handle());
    let started = Instant::now();
    let pieces: Vec<&[f32]> = audio.chunks(hop).collect();
    let (mut latencies, mut text) = (Vec::new(), Vec::new());
    for (k, piece) in pieces.iter().enumerate() {
        // A live chunk is there once its last sample has been captured.
        let due = Duration::from_millis((k as u64 + 1) * hop_ms);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        let c = chunk(k as u64, hop, piece, k + 1 == pieces.len());
        let windows: Vec<vad::VoiceWindow> = vad
            .encode(&[&c])?
            .into_iter()
            .flat_map(|f| match f {
                Features::Voice(w) => w,
                _ => Vec::new(),
            })
            .collect();
        for pending in cutter.push(&c, &windows)? {
            let end = pending.speech_end;
            let said = pending.wait()?;
            latencies.push(started.elapsed().as_secs_f64() - end.0 as f64 / 1e9);
            text.extend(said.into_iter().map(|s| s.text));
        }
    }
    Ok((latencies, text.join(" ")))
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let call = match args.first() {
        Some(c) => c.clone(),
        None => return Err("usage: asr_bench CALL.wav [THREADS]".into()),
    };
    let threads: usize = args.get(1).map_or(Ok(2), |t| t.parse())?;

    // 1. Speed on 5 s segments.
    let mut whisper = Whisper::load(threads, Provider::Cpu)?;
    let call = read_wav(&call)?;
    if call.len() < 30 * 16_000 {
        return Err("the call must last 30 s at least".into());
    }
    let segments: Vec<&[f32]> = call.chunks_exact(5 * 16_000).collect();
    whisper.transcribe(segments[0])?; // warm-up
    let t = Instant::now();
    for s in &segments {
        whisper.transcribe(s)?;
    }
    let wall = t.elapsed().as_secs_f64();
    println!(
        "speed {:.2} ({} segments of 5 s in {wall:.2} s, {threads} threads)",
        segments.len() as f64 * 5.0 / wall,
        segments.len()
    );
    drop(whisper);

    // 2. Latency, live.
    let mut audio = call[12 * 16_000..18 * 16_000].to_vec();
    audio.extend(std::iter::repeat_n(0.0, 3 * 16_000));
    let asr_config = AsrConfig::default();
    let worker = AsrWorker::start(&asr_config, threads)?;
    for hop_ms in [1000u64, 500] {
        let hop = (hop_ms * 16) as usize;
        let mut latencies = Vec::new();
        let mut heard = String::new();
        for quarter in 0..4u64 {
            let mut shifted = vec![0.0f32; (quarter * hop_ms / 4 * 16) as usize];
            shifted.extend_from_slice(&audio);
            let (l, text) = live(&shifted, hop, hop_ms, &asr_config, &worker)?;
            latencies.extend(l);
            heard = text;
        }
        let mean = latencies.iter().sum::<f64>() / latencies.len().max(1) as f64;
        let worst = latencies.iter().copied().fold(0.0, f64::max);
        println!("latency hop {hop_ms} mean {mean:.2} worst {worst:.2}: {heard}");
    }
    Ok(())
}
