//! The bounded queue from a stream's synchroniser to its encoders.
//!
//! For files the sender blocks when the queue is full, which carries
//! back-pressure to GStreamer: nothing is ever dropped. For live sources the
//! sender never blocks: when the queue holds more than its budget, the oldest
//! video frames are dropped first; only when that is not enough are whole
//! chunks (their audio) dropped, oldest first. Every drop is counted and
//! flagged on a chunk that does reach the encoders.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::lock::Locked;
use crate::media::Chunk;
use crate::metrics::StageMetrics;
use crate::stage::{Gone, Inlet, Outlet};

/// How many chunks the queue holds for a file before the sender waits.
pub const FILE_CHUNKS: usize = 2;
/// How many bytes of chunks the queue holds for a file before the sender
/// waits (at least one chunk is always let in): one chunk of 5 frames of
/// 640×480; chunks of sound alone or of small frames queue two.
pub const FILE_BYTES: usize = 5 * 640 * 480 * 3;
/// How many chunks a live queue holds before whole chunks are dropped.
pub const LIVE_CHUNKS: usize = 8;
/// How many chunks' worth of frames a live queue holds before frames are dropped.
pub const LIVE_FRAME_CHUNKS: usize = 2;

/// What a push had to drop to stay within bounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drops {
    pub frames: u64,
    pub chunks: u64,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Chunk>,
    senders_gone: bool,
    receiver_gone: bool,
    /// A chunk was dropped whole: the next one to leave says so.
    dropped_before_next: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.locked()
    }
}

/// The synchroniser's end.
pub struct ChunkSender {
    shared: Arc<Shared>,
}

/// The encoders' end.
pub struct ChunkReceiver {
    shared: Arc<Shared>,
}

/// A new queue.
pub fn chunk_queue() -> (ChunkSender, ChunkReceiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        changed: Condvar::new(),
    });
    (
        ChunkSender {
            shared: shared.clone(),
        },
        ChunkReceiver { shared },
    )
}

/// A chunk on its way to the encoders, and whether its stream is live (then
/// old data is dropped rather than waited on).
#[derive(Debug)]
pub struct Paced {
    pub chunk: Chunk,
    pub live: bool,
}

impl Outlet<Paced> for ChunkSender {
    fn put(&self, item: Paced, metrics: &StageMetrics) -> Result<(), Gone> {
        let drops = self.send(item.chunk, item.live).map_err(|_| Gone)?;
        if drops.frames > 0 {
            metrics.dropped("frame_backlog", drops.frames);
        }
        if drops.chunks > 0 {
            metrics.dropped("chunk_backlog", drops.chunks);
        }
        Ok(())
    }
}

impl Inlet<Chunk> for ChunkReceiver {
    fn next(&self) -> Option<Chunk> {
        self.recv()
    }

    fn depth(&self) -> usize {
        self.len()
    }
}

/// The receiver is gone: nothing more can be delivered.
#[derive(Debug, PartialEq, Eq)]
pub struct Disconnected;

impl ChunkSender {
    /// Queues `chunk`: waits for room when `live` is false, drops old data
    /// instead when it is true.
    pub fn send(&self, chunk: Chunk, live: bool) -> Result<Drops, Disconnected> {
        let mut s = self.shared.lock();
        if !live {
            while (s.queue.len() >= FILE_CHUNKS
                || (!s.queue.is_empty()
                    && s.queue.iter().map(Chunk::bytes).sum::<usize>() + chunk.bytes()
                        > FILE_BYTES))
                && !s.receiver_gone
            {
                s = self
                    .shared
                    .changed
                    .wait(s)
                    .unwrap_or_else(|p| p.into_inner());
            }
        }
        if s.receiver_gone {
            return Err(Disconnected);
        }
        s.queue.push_back(chunk);
        let drops = if live { shed(&mut s) } else { Drops::default() };
        self.shared.changed.notify_all();
        Ok(drops)
    }

    /// Chunks waiting.
    pub fn len(&self) -> usize {
        self.shared.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Brings a live queue back within its budget, oldest data first.
fn shed(s: &mut State) -> Drops {
    let mut drops = Drops::default();
    let frame_budget = s.queue.back().map_or(0, |c| c.frames.len()).max(1) * LIVE_FRAME_CHUNKS;
    let mut frames: usize = s.queue.iter().map(|c| c.frames.len()).sum();
    for chunk in s.queue.iter_mut() {
        if frames <= frame_budget {
            break;
        }
        if !chunk.frames.is_empty() {
            frames -= chunk.frames.len();
            drops.frames += chunk.frames.len() as u64;
            chunk.frames.clear();
            chunk.flags.frames_dropped = true;
        }
    }
    // Chunks of an outage hold nothing (their silence is shared) and cost
    // the encoders nothing: they do not count, and are never dropped, so the
    // outage stays whole in the records however long it was.
    let mut real = s.queue.iter().filter(|c| !c.flags.no_media).count();
    while real > LIVE_CHUNKS {
        let Some(i) = s.queue.iter().position(|c| !c.flags.no_media) else {
            break;
        };
        let Some(old) = s.queue.remove(i) else { break };
        real -= 1;
        drops.chunks += 1;
        drops.frames += old.frames.len() as u64;
        match s.queue.get_mut(i) {
            Some(next) => mark_dropped(next, old.has_audio),
            None => s.dropped_before_next = true,
        }
    }
    drops
}

/// The chunk after one dropped whole says what was lost: its sound, or
/// (for a stream without sound) its frames.
fn mark_dropped(next: &mut Chunk, had_audio: bool) {
    if had_audio {
        next.flags.audio_dropped = true;
    } else {
        next.flags.frames_dropped = true;
    }
}

impl Drop for ChunkSender {
    fn drop(&mut self) {
        self.shared.lock().senders_gone = true;
        self.shared.changed.notify_all();
    }
}

impl ChunkReceiver {
    /// The next chunk, waiting for one; `None` once the sender is gone and
    /// the queue is empty.
    pub fn recv(&self) -> Option<Chunk> {
        let mut s = self.shared.lock();
        loop {
            if let Some(mut chunk) = s.queue.pop_front() {
                if std::mem::take(&mut s.dropped_before_next) {
                    let had_audio = chunk.has_audio;
                    mark_dropped(&mut chunk, had_audio);
                }
                self.shared.changed.notify_all();
                return Some(chunk);
            }
            if s.senders_gone {
                return None;
            }
            s = self
                .shared
                .changed
                .wait(s)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    pub fn len(&self) -> usize {
        self.shared.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = Chunk> + '_ {
        std::iter::from_fn(|| self.recv())
    }
}

impl Drop for ChunkReceiver {
    fn drop(&mut self) {
        self.shared.lock().receiver_gone = true;
        self.shared.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(seq: u64, frames: usize) -> Chunk {
        Chunk::test_second("t", seq, frames)
    }

    #[test]
    fn live_drops_old_frames_first_then_whole_chunks() {
        let (tx, rx) = chunk_queue();
        let mut drops = Drops::default();
        for seq in 0..3 {
            let d = tx.send(chunk(seq, 5), true).unwrap_or_default();
            drops.frames += d.frames;
        }
        // Budget: two chunks' worth of frames; the oldest chunk lost its frames.
        assert_eq!(drops.frames, 5);
        let first = rx.recv().unwrap_or_else(|| chunk(99, 0));
        assert!(first.frames.is_empty() && first.flags.frames_dropped);
        assert_eq!(
            first.audio.len(),
            16_000,
            "audio is kept while dropping frames is enough"
        );
        for seq in 3..20 {
            let d = tx.send(chunk(seq, 0), true).unwrap_or_default();
            drops.chunks += d.chunks;
        }
        assert_eq!(tx.len(), LIVE_CHUNKS, "memory stays bounded");
        assert_eq!(drops.chunks, 19 - LIVE_CHUNKS as u64);
        let next = rx.recv().unwrap_or_else(|| chunk(99, 0));
        assert!(
            next.flags.audio_dropped,
            "the chunk after a dropped one says so"
        );
        assert_eq!(next.seq, 20 - LIVE_CHUNKS as u64);
    }

    #[test]
    fn an_outage_of_any_length_is_kept_whole_and_costs_nothing() {
        let (tx, rx) = chunk_queue();
        let silence: Arc<[f32]> = Arc::from(vec![0.0f32; 16_000]);
        // An hour of outage comes out at once when the camera is back.
        let n = 3600;
        let mut drops = Drops::default();
        for seq in 0..n {
            let mut c = chunk(seq, 0);
            c.audio = silence.clone();
            c.flags.reconnecting = true;
            c.flags.no_media = true;
            let d = tx.send(c, true).unwrap_or_default();
            drops.chunks += d.chunks;
        }
        // Then live data: only it is bounded.
        for seq in n..n + 20 {
            let d = tx.send(chunk(seq, 0), true).unwrap_or_default();
            drops.chunks += d.chunks;
        }
        assert_eq!(drops.chunks, 20 - LIVE_CHUNKS as u64);
        assert_eq!(tx.len(), n as usize + LIVE_CHUNKS);
        // Every chunk of the outage shares one buffer of silence.
        assert_eq!(Arc::strong_count(&silence), n as usize + 1);
        let got: Vec<Chunk> =
            std::iter::from_fn(|| (!rx.is_empty()).then(|| rx.recv()).flatten()).collect();
        assert!(got[..n as usize].iter().all(|c| c.flags.no_media));
        assert_eq!(got[n as usize].seq, n + 20 - LIVE_CHUNKS as u64);
        assert!(got[n as usize].flags.audio_dropped);
    }

    #[test]
    fn a_stream_without_sound_loses_frames_not_audio() {
        let (tx, rx) = chunk_queue();
        for seq in 0..=LIVE_CHUNKS as u64 {
            let mut c = chunk(seq, 0);
            c.has_audio = false;
            c.audio = Arc::from(Vec::new());
            let _ = tx.send(c, true);
        }
        let next = rx.recv().unwrap_or_else(|| chunk(99, 0));
        assert_eq!(next.seq, 1);
        assert!(next.flags.frames_dropped && !next.flags.audio_dropped);
    }

    #[test]
    fn files_wait_and_lose_nothing() {
        let (tx, rx) = chunk_queue();
        let producer = std::thread::spawn(move || {
            for seq in 0..50 {
                assert_eq!(tx.send(chunk(seq, 5), false), Ok(Drops::default()));
            }
        });
        let got: Vec<u64> = rx.iter().map(|c| c.seq).collect();
        assert!(producer.join().is_ok());
        assert_eq!(got, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn a_file_queue_holds_few_chunks_of_large_frames() {
        let big = |seq: u64| {
            let mut c = chunk(seq, 1);
            c.frames[0].rgb = vec![0u8; FILE_BYTES / 2].into();
            c
        };
        let (tx, rx) = chunk_queue();
        let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = sent.clone();
        let producer = std::thread::spawn(move || {
            for seq in 0..4 {
                assert!(tx.send(big(seq), false).is_ok());
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        // Two chunks of half the budget each would pass it: one waits.
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(sent.load(std::sync::atomic::Ordering::SeqCst), 1);
        let got: Vec<u64> = rx.iter().map(|c| c.seq).collect();
        assert!(producer.join().is_ok());
        assert_eq!(got, [0, 1, 2, 3]);
    }
}
