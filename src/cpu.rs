//! CPU time by thread, for what each stream costs.
//!
//! Every thread that works for one stream (its GStreamer streaming threads,
//! its synchroniser, encoders and fusion) charges the stream with
//! [`since_last`]: the CPU time the calling thread used since it last asked,
//! so that work is counted once even where two steps share a thread. The
//! model workers serve every stream: a batch's CPU time (the worker's own
//! thread and the threads of its model's pool, [`PoolClocks`]) is shared out
//! by the items each stream had in it.
//!
//! Not counted for any stream: the helper threads of a decoder allowed more
//! than one (libav's; `decode_threads`, files by default), speech to text
//! (one Whisper thread for all streams), the sinks, the HTTP server.

use std::cell::Cell;
use std::sync::{Arc, Mutex};

use crate::lock::Locked;

/// The calling thread's CPU time so far, nanoseconds (0 where the system
/// cannot say).
pub fn thread_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write to; a clock that does not
    // exist (a thread gone) is an error return, not undefined behaviour.
    if unsafe { libc::clock_gettime(clock, &mut t) } != 0 {
        return 0;
    }
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(t.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

thread_local! {
    static LAST: Cell<u64> = const { Cell::new(0) };
}

/// CPU time the calling thread used since its previous call (on its first,
/// since it started), nanoseconds.
pub fn since_last() -> u64 {
    let now = thread_ns();
    LAST.with(|last| now.saturating_sub(last.replace(now)))
}

/// The CPU clocks of a model's pool threads, which ONNX Runtime starts
/// through [`PoolThreads`].
#[derive(Clone, Default)]
pub struct PoolClocks(Arc<Mutex<Vec<libc::clockid_t>>>);

impl PoolClocks {
    /// CPU time of every pool thread so far, nanoseconds.
    pub fn total_ns(&self) -> u64 {
        let clocks = self.0.locked().clone();
        clocks.into_iter().map(clock_ns).sum()
    }

    /// Registers the calling thread's clock.
    fn join_pool(&self) {
        let mut clock: libc::clockid_t = 0;
        // SAFETY: asks for the CPU clock of the calling thread, which lives
        // while it is read (the pool's threads end with their session).
        if unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) } == 0 {
            self.0.locked().push(clock);
        }
    }
}

/// Starts ONNX Runtime's pool threads as named threads whose CPU clocks
/// are registered in `clocks`.
pub struct PoolThreads {
    pub name: String,
    pub clocks: PoolClocks,
}

impl ort::environment::ThreadManager for PoolThreads {
    type Thread = std::thread::JoinHandle<()>;

    fn create(&self, work: impl FnOnce() + Send + 'static) -> ort::Result<Self::Thread> {
        let clocks = self.clocks.clone();
        std::thread::Builder::new()
            .name(self.name.clone())
            .spawn(move || {
                clocks.join_pool();
                work();
            })
            .map_err(|e| ort::Error::new(format!("cannot start a pool thread: {e}")))
    }

    fn join(thread: Self::Thread) -> ort::Result<()> {
        let _ = thread.join();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Some CPU work: a fixed number of steps.
    fn work() {
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
    }

    #[test]
    fn a_thread_is_charged_what_it_used_since_it_last_asked() {
        std::thread::spawn(|| {
            let t0 = thread_ns();
            let _ = since_last();
            work();
            let busy = since_last();
            let t1 = thread_ns();
            std::thread::sleep(std::time::Duration::from_millis(50));
            let idle = since_last();
            assert!(busy > 0 && busy <= t1 - t0, "busy {busy} ns of {}", t1 - t0);
            assert!(idle < busy, "idle {idle} ns, busy {busy} ns");
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn pool_clocks_add_up_their_threads() {
        let clocks = PoolClocks::default();
        let (done, used) = std::sync::mpsc::channel::<u64>();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let c = clocks.clone();
        let t = std::thread::spawn(move || {
            c.join_pool();
            work();
            let _ = done.send(thread_ns());
            let _ = wait.recv();
        });
        let used = used.recv().expect("the thread's time");
        let total = clocks.total_ns();
        let _ = go.send(());
        t.join().expect("thread");
        assert!(
            used > 0 && total >= used,
            "pool {total} ns, thread {used} ns"
        );
    }
}
