//! Keeps a file's two branches within a window of each other.
//!
//! A file is read as fast as the machine allows, and its demuxer lets one
//! track run far ahead of the other when that one is slower to decode (the
//! sound of a 60 s clip was seen 41 s ahead of its picture): the
//! synchroniser would hold all of it. So the branch that leads by more
//! than the window waits at its appsink until the other catches up. It
//! never waits on a branch that has not moved for [`STILL`]: one that
//! ended, that never starts (a picture that does not decode), or that is
//! itself waiting on something, so that nothing can deadlock; the
//! synchroniser then finds such a branch dead by its own rule. Live
//! sources are never held: they are paced by the camera.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::sync::Branch;

/// A branch that has not moved for this long is not waited for.
pub const STILL: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Side {
    /// End (source time, ns) of the latest data delivered.
    reach: Option<u64>,
    moved: Option<Instant>,
    ended: bool,
}

#[derive(Default)]
struct State {
    video: Side,
    audio: Side,
    /// The pipeline is stopping: nobody waits any more.
    closed: bool,
}

/// The pacing of one pipeline's branches.
pub struct Pace {
    window: u64,
    state: Mutex<State>,
    changed: Condvar,
}

impl Pace {
    /// Branches kept within `window` ns of each other; 0: never held.
    pub fn new(window: u64) -> Self {
        Pace {
            window,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Data of `branch` starting at `start` and reaching `end` (source
    /// time) is about to be delivered: waits while it would lead the other
    /// branch by more than the window (unless `live`), then notes it.
    pub fn admit(&self, branch: Branch, start: u64, end: u64, live: bool) {
        let mut s = self.lock();
        if self.window > 0 && !live {
            loop {
                let other = match branch {
                    Branch::Video => &s.audio,
                    Branch::Audio => &s.video,
                };
                let waiting_for = match (other.reach, other.moved) {
                    (Some(reach), Some(moved)) if !other.ended && !s.closed => {
                        (start > reach.saturating_add(self.window)).then_some(moved)
                    }
                    _ => None,
                };
                let Some(moved) = waiting_for else { break };
                let still_for = STILL.saturating_sub(moved.elapsed());
                if still_for.is_zero() {
                    break;
                }
                s = self
                    .changed
                    .wait_timeout(s, still_for)
                    .map_or_else(|p| p.into_inner().0, |(g, _)| g);
            }
        }
        let side = match branch {
            Branch::Video => &mut s.video,
            Branch::Audio => &mut s.audio,
        };
        side.reach = Some(side.reach.map_or(end, |r| r.max(end)));
        side.moved = Some(Instant::now());
        drop(s);
        self.changed.notify_all();
    }

    /// `branch` ended: the other no longer waits for it.
    pub fn end(&self, branch: Branch) {
        let mut s = self.lock();
        match branch {
            Branch::Video => s.video.ended = true,
            Branch::Audio => s.audio.ended = true,
        }
        drop(s);
        self.changed.notify_all();
    }

    /// The pipeline stops: every waiting branch goes on at once.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const S: u64 = 1_000_000_000;

    #[test]
    fn the_leading_branch_waits_for_the_other_to_catch_up() {
        let pace = Arc::new(Pace::new(5 * S));
        pace.admit(Branch::Video, 0, S / 5, false);
        pace.admit(Branch::Audio, 0, S, false);
        let p = pace.clone();
        let t0 = Instant::now();
        // Sound at 6 s leads the picture (0.2 s) by more than 5 s: it waits
        // until the picture reaches 2 s.
        let waiter = std::thread::spawn(move || {
            p.admit(Branch::Audio, 6 * S, 7 * S, false);
            t0.elapsed()
        });
        std::thread::sleep(Duration::from_millis(100));
        assert!(!waiter.is_finished(), "the sound did not wait");
        for k in 1..=10 {
            pace.admit(Branch::Video, k * S / 5, (k + 1) * S / 5, false);
        }
        let waited = waiter.join().expect("join");
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        assert!(waited < STILL, "{waited:?}");
    }

    #[test]
    fn a_still_ended_or_closed_branch_is_not_waited_for() {
        let pace = Pace::new(5 * S);
        pace.admit(Branch::Video, 0, S, false);
        // The picture does not move: the sound goes on after STILL.
        let t0 = Instant::now();
        pace.admit(Branch::Audio, 10 * S, 11 * S, false);
        let waited = t0.elapsed();
        assert!(waited >= STILL - Duration::from_millis(50), "{waited:?}");
        assert!(waited < STILL * 3, "{waited:?}");
        // Ended: no wait at all.
        pace.end(Branch::Video);
        let t0 = Instant::now();
        pace.admit(Branch::Audio, 30 * S, 31 * S, false);
        assert!(t0.elapsed() < Duration::from_millis(50));
        // Live: never held.
        let pace = Pace::new(5 * S);
        pace.admit(Branch::Video, 0, S, true);
        let t0 = Instant::now();
        pace.admit(Branch::Audio, 30 * S, 31 * S, true);
        assert!(t0.elapsed() < Duration::from_millis(50));
        // Closed: no wait.
        let pace = Pace::new(5 * S);
        pace.admit(Branch::Video, 0, S, false);
        pace.close();
        let t0 = Instant::now();
        pace.admit(Branch::Audio, 30 * S, 31 * S, false);
        assert!(t0.elapsed() < Duration::from_millis(50));
    }
}
