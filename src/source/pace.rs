//! Keeps a file's two branches within a window of each other.
//!
//! A file is read as fast as the machine allows, and its demuxer lets one
//! track run far ahead of the other when that one is slower to decode (the
//! sound of a 60 s clip was seen 41 s ahead of its picture): the
//! synchroniser would hold all of it. So the branch that leads by more
//! than the window waits at its appsink until the other catches up. It
//! never waits on a branch that has not moved for [`STILL`] (one that
//! ended, or that is itself waiting on something), nor on one that was
//! linked but has given nothing for [`START`] (a picture that does not
//! decode), so that nothing can deadlock; the synchroniser then finds such
//! a branch dead by its own rule. A branch that is slow to give its first
//! data (a video decoder starting on a busy machine) is waited for like
//! any other: without that, the sound of a file would run past the
//! synchroniser's dead-branch limit before the first frame. Live sources
//! are never held: they are paced by the camera.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::lock::Locked;
use crate::media::Branch;

/// A branch that has not moved for this long is not waited for.
pub const STILL: Duration = Duration::from_secs(2);

/// A linked branch that has given nothing for this long is not waited for.
pub const START: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Side {
    /// When the branch was linked: it is expected to give data.
    linked: Option<Instant>,
    /// Start (source time, ns) of the first data delivered.
    first: Option<u64>,
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
        self.state.locked()
    }

    /// `branch` was linked: data is expected from it, and the other waits
    /// for its first (for at most [`START`]).
    pub fn link(&self, branch: Branch) {
        let mut s = self.lock();
        let side = match branch {
            Branch::Video => &mut s.video,
            Branch::Audio => &mut s.audio,
        };
        side.linked.get_or_insert_with(Instant::now);
    }

    /// Data of `branch` starting at `start` and reaching `end` (source
    /// time) is about to be delivered: waits while it would lead the other
    /// branch by more than the window (unless `live`), then notes it.
    pub fn admit(&self, branch: Branch, start: u64, end: u64, live: bool) {
        let mut s = self.lock();
        if self.window > 0 && !live {
            loop {
                let (this, other) = match branch {
                    Branch::Video => (&s.video, &s.audio),
                    Branch::Audio => (&s.audio, &s.video),
                };
                // How far the other has come, since when it stood there,
                // and how long it may stand before it is not waited for.
                let behind = match (other.reach, other.moved, other.linked) {
                    _ if other.ended || s.closed => None,
                    (Some(reach), Some(moved), _) => Some((reach, moved, STILL)),
                    // Linked but nothing yet: measured from this branch's
                    // own first data.
                    (None, _, Some(linked)) => Some((this.first.unwrap_or(start), linked, START)),
                    _ => None,
                };
                let Some((reach, since, allowance)) = behind else {
                    break;
                };
                if start <= reach.saturating_add(self.window) {
                    break;
                }
                let still_for = allowance.saturating_sub(since.elapsed());
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
        side.first.get_or_insert(start);
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
    fn a_linked_branch_slow_to_start_is_waited_for_then_given_up() {
        // The picture is linked but its decoder is slow to give the first
        // frame: the sound stops at the window until it comes.
        let pace = Arc::new(Pace::new(5 * S));
        pace.link(Branch::Video);
        pace.link(Branch::Audio);
        pace.admit(Branch::Audio, 0, S, false);
        let p = pace.clone();
        let waiter = std::thread::spawn(move || {
            p.admit(Branch::Audio, 6 * S, 7 * S, false);
        });
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !waiter.is_finished(),
            "the sound ran ahead of a picture not yet started"
        );
        pace.admit(Branch::Video, 0, S / 5, false);
        pace.admit(Branch::Video, 2 * S, 2 * S + S / 5, false);
        waiter.join().expect("join");
        // A picture that never gives a frame is given up after START,
        // counted from its linking, and the window is measured from the
        // sound's own first data (a file may start at any time).
        let pace = Pace::new(5 * S);
        pace.link(Branch::Video);
        pace.link(Branch::Audio);
        let t0 = Instant::now();
        pace.admit(Branch::Audio, 3600 * S, 3601 * S, false);
        assert!(
            t0.elapsed() < Duration::from_millis(50),
            "no wait within the window"
        );
        pace.admit(Branch::Audio, 3606 * S, 3607 * S, false);
        let waited = t0.elapsed();
        assert!(waited >= START - Duration::from_millis(50), "{waited:?}");
        assert!(waited < START * 2, "{waited:?}");
        // A branch never linked (a file without picture) is not waited for.
        let pace = Pace::new(5 * S);
        pace.link(Branch::Audio);
        let t0 = Instant::now();
        pace.admit(Branch::Audio, 0, S, false);
        pace.admit(Branch::Audio, 30 * S, 31 * S, false);
        assert!(t0.elapsed() < Duration::from_millis(50));
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
