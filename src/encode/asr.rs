//! Streaming speech to text: VAD speech segments, cut as they close (at
//! 30 s at the latest), transcribed by Whisper on a worker thread shared by
//! every stream, without stalling the stream's other encoders.
//!
//! The [`Cutter`] of a stream follows the VAD's windows and keeps the audio
//! of the speech being heard (plus a little context before and after).
//! When speech has been over for `min_silence`, or a segment reaches
//! `max_segment`, it hands the segment to the [`AsrWorker`] and gets a
//! [`Pending`] answer. The encode loop keeps the chunk that closed the
//! segment (with its other features) until the answer is there, while it
//! goes on encoding the next chunks: records keep their order and, for
//! files, do not depend on how long recognition took.

use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TryRecvError, bounded, unbounded};

use crate::config::AsrConfig;
use crate::encode::kind::{Kind, Part, Worker};
use crate::encode::vad::VoiceWindow;
use crate::encode::whisper::Whisper;
use crate::error::{Error, Result};
use crate::media::Chunk;
use crate::time::{AUDIO_RATE, SECOND, Timestamp, sample_to_time, time_to_sample};

/// Speech to text (Whisper), on the speech `vad` hears.
pub const KIND: Kind = Kind {
    name: "asr",
    manifests: &[crate::encode::whisper::MANIFEST],
    manifest: |_| vec![crate::encode::whisper::MANIFEST],
    section: None,
    on: |c| c.asr.is_some(),
    off: |c| c.asr = None,
    check: |c| {
        c.asr
            .as_ref()
            .map_or(Ok(()), |a| Whisper::load(1, a.provider).map(drop))
    },
    start: |c, threads, _| {
        c.asr
            .as_ref()
            .map(|a| AsrWorker::start(a, threads).map(Worker::Asr))
            .transpose()
    },
    build: |c, w, _| {
        Ok(match (&c.asr, w) {
            (Some(a), Some(Worker::Asr(w))) => {
                Some(Part::Cutter(Cutter::new(a.clone(), w.handle())))
            }
            _ => None,
        })
    },
};

/// What was said in one stretch of a stream, in stream time.
#[derive(Clone, Debug, PartialEq)]
pub struct Said {
    pub start: Timestamp,
    pub end: Timestamp,
    pub text: String,
    /// exp(average token log-probability), 0–1.
    pub confidence: f32,
}

struct Job {
    samples: Vec<f32>,
    /// Stream sample of `samples[0]`.
    first_sample: u64,
    /// Where the speech itself starts and ends (stream samples).
    speech: (u64, u64),
    reply: Sender<Result<Vec<Said>>>,
}

/// Whisper on its own thread, shared by every stream.
pub struct AsrWorker {
    tx: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl AsrWorker {
    pub fn start(config: &AsrConfig, threads: usize) -> Result<AsrWorker> {
        let mut whisper = Whisper::load(threads, config.provider)?;
        let (tx, rx) = unbounded::<Job>();
        let thread = std::thread::Builder::new()
            .name("asr".into())
            .spawn(move || {
                for job in rx.iter() {
                    let said = transcribe(&mut whisper, &job);
                    let _ = job.reply.send(said);
                }
            })
            .map_err(|e| Error::io("cannot start the speech recognition thread", e))?;
        Ok(AsrWorker {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> AsrHandle {
        AsrHandle {
            tx: self.tx.clone(),
        }
    }
}

impl Drop for AsrWorker {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn transcribe(whisper: &mut Whisper, job: &Job) -> Result<Vec<Said>> {
    let Some(t) = whisper.transcribe(&job.samples)? else {
        return Ok(Vec::new());
    };
    let origin = sample_to_time(job.first_sample, AUDIO_RATE);
    let (speech_start, speech_end) = (
        sample_to_time(job.speech.0, AUDIO_RATE),
        sample_to_time(job.speech.1, AUDIO_RATE),
    );
    let confidence = t.avg_logprob.exp().clamp(0.0, 1.0);
    Ok(t.pieces
        .into_iter()
        .map(|p| {
            // Whisper's timestamps, kept inside the speech VAD heard.
            let start = origin
                .saturating_add(p.start)
                .max(speech_start)
                .min(speech_end);
            let end = origin.saturating_add(p.end).min(speech_end).max(start);
            Said {
                start,
                end,
                text: p.text,
                confidence,
            }
        })
        .collect())
}

/// A stream's way to the worker.
#[derive(Clone)]
pub struct AsrHandle {
    tx: Option<Sender<Job>>,
}

/// A segment handed to the worker, not yet answered.
pub struct Pending {
    answer: Receiver<Result<Vec<Said>>>,
    /// Where the speech of the segment ended (stream time).
    pub speech_end: Timestamp,
}

impl Pending {
    /// The answer if it is there.
    pub fn try_take(&self) -> Option<Result<Vec<Said>>> {
        match self.answer.try_recv() {
            Ok(r) => Some(r),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(Err(stopped())),
        }
    }

    pub fn wait(self) -> Result<Vec<Said>> {
        self.answer.recv().map_err(|_| stopped())?
    }
}

fn stopped() -> Error {
    Error::Model {
        model: "whisper_tiny_en".into(),
        message: "the speech recognition thread has stopped".into(),
    }
}

/// Cuts one stream's audio into speech segments as VAD hears them.
pub struct Cutter {
    handle: AsrHandle,
    config: AsrConfig,
    /// Audio kept: from `base` on.
    audio: Vec<f32>,
    base: u64,
    /// The speech being heard: where it started and was last heard.
    speech: Option<(u64, u64)>,
}

impl Cutter {
    pub fn new(config: AsrConfig, handle: AsrHandle) -> Cutter {
        Cutter {
            handle,
            config,
            audio: Vec::new(),
            base: 0,
            speech: None,
        }
    }

    fn context(&self) -> u64 {
        time_to_sample(Timestamp(self.config.context.nanos()), AUDIO_RATE)
    }

    /// Takes a chunk's audio and the VAD's windows for it; returns the
    /// segments it closed, handed to the worker.
    pub fn push(&mut self, chunk: &Chunk, windows: &[VoiceWindow]) -> Result<Vec<Pending>> {
        if !chunk.has_audio {
            return Ok(Vec::new());
        }
        let end_of_kept = self.base + self.audio.len() as u64;
        if chunk.first_sample != end_of_kept {
            // Dropped audio (live backlog): what was kept no longer joins up.
            if self.speech.is_some() && !self.audio.is_empty() {
                // Speech cut by the drop is not transcribed half-heard.
                self.speech = None;
            }
            self.audio.clear();
            self.base = chunk.first_sample;
        }
        self.audio.extend_from_slice(&chunk.audio);
        let mut out = Vec::new();
        let silence = time_to_sample(Timestamp(self.config.min_silence.nanos()), AUDIO_RATE);
        let longest = time_to_sample(Timestamp(self.config.max_segment.nanos()), AUDIO_RATE)
            .saturating_sub(2 * self.context());
        for w in windows {
            let (ws, we) = (
                time_to_sample(w.start, AUDIO_RATE),
                time_to_sample(w.end, AUDIO_RATE),
            );
            match (self.speech, w.speaking) {
                (None, true) => self.speech = Some((ws, we)),
                (Some((s, _)), true) => {
                    self.speech = Some((s, we));
                    if we - s >= longest {
                        out.push(self.close(s, we)?);
                        self.speech = None;
                    }
                }
                (Some((s, last)), false) if we.saturating_sub(last) >= silence => {
                    out.push(self.close(s, last)?);
                    self.speech = None;
                }
                _ => {}
            }
        }
        if chunk.flags.last
            && let Some((s, last)) = self.speech.take()
        {
            out.push(self.close(s, last)?);
        }
        self.trim();
        Ok(out)
    }

    /// Sends `[start, end)` (stream samples) with context to the worker.
    fn close(&mut self, start: u64, end: u64) -> Result<Pending> {
        let kept_end = self.base + self.audio.len() as u64;
        let from = start.saturating_sub(self.context()).max(self.base);
        let to = (end + self.context()).min(kept_end).max(from);
        let samples = self.audio[(from - self.base) as usize..(to - self.base) as usize].to_vec();
        let (reply, answer) = bounded(1);
        let job = Job {
            samples,
            first_sample: from,
            speech: (start, end),
            reply,
        };
        match &self.handle.tx {
            Some(tx) => tx.send(job).map_err(|_| stopped())?,
            None => return Err(stopped()),
        }
        Ok(Pending {
            answer,
            speech_end: sample_to_time(end, AUDIO_RATE),
        })
    }

    /// Forgets audio no segment can need any more.
    fn trim(&mut self) {
        let keep_from = match self.speech {
            Some((s, _)) => s.saturating_sub(self.context()),
            None => (self.base + self.audio.len() as u64)
                .saturating_sub(self.context() + time_to_sample(Timestamp(SECOND), AUDIO_RATE)),
        };
        if keep_from > self.base {
            let n = ((keep_from - self.base) as usize).min(self.audio.len());
            self.audio.drain(..n);
            self.base += n as u64;
        }
    }
}
