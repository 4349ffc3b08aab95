//! The start/end lifecycle every event follows (DESIGN.md, "Fusion and records").

use crate::config::EventTiming;
use crate::time::Timestamp;

/// A change in an event's lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The condition has held for `min_duration` since `onset`.
    Start { onset: Timestamp },
    /// The condition stopped holding at `end` and stayed off for `cooldown`,
    /// or the stream ended (`cut`: while the condition still held).
    End {
        onset: Timestamp,
        end: Timestamp,
        cut: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Idle,
    Pending {
        onset: Timestamp,
    },
    Active {
        onset: Timestamp,
        off_since: Option<Timestamp>,
    },
}

/// One condition's lifecycle: observations in time order in, transitions out.
#[derive(Clone, Debug)]
pub struct Lifecycle {
    timing: EventTiming,
    state: State,
}

impl Lifecycle {
    pub fn new(timing: EventTiming) -> Self {
        Lifecycle {
            timing,
            state: State::Idle,
        }
    }

    pub fn is_active(&self) -> bool {
        matches!(self.state, State::Active { .. })
    }

    /// Neither started nor waiting to: nothing of it is open.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle)
    }

    /// The condition did (or did not) hold over `[at, until)`; `onset` refines
    /// when it began, if the observer knows better than `at`.
    pub fn observe(
        &mut self,
        at: Timestamp,
        until: Timestamp,
        active: bool,
        onset: Option<Timestamp>,
    ) -> Option<Transition> {
        match (self.state, active) {
            (State::Idle, true) => {
                let onset = onset.unwrap_or(at).min(until);
                self.state = State::Pending { onset };
                self.promote(onset, until)
            }
            (State::Pending { onset }, true) => self.promote(onset, until),
            (State::Pending { .. }, false) => {
                self.state = State::Idle;
                None
            }
            (State::Active { onset, .. }, true) => {
                self.state = State::Active {
                    onset,
                    off_since: None,
                };
                None
            }
            (State::Active { onset, off_since }, false) => {
                let since = off_since.unwrap_or(at);
                if until.0.saturating_sub(since.0) >= self.timing.cooldown.nanos() {
                    self.state = State::Idle;
                    Some(Transition::End {
                        onset,
                        end: since,
                        cut: false,
                    })
                } else {
                    self.state = State::Active {
                        onset,
                        off_since: Some(since),
                    };
                    None
                }
            }
            (State::Idle, false) => None,
        }
    }

    fn promote(&mut self, onset: Timestamp, until: Timestamp) -> Option<Transition> {
        if until.0.saturating_sub(onset.0) >= self.timing.min_duration.nanos() {
            self.state = State::Active {
                onset,
                off_since: None,
            };
            Some(Transition::Start { onset })
        } else {
            None
        }
    }

    /// The stream ended at `end`: an open event ends (where it stopped holding,
    /// if it had), a pending one is forgotten.
    pub fn finish(&mut self, end: Timestamp) -> Option<Transition> {
        let state = std::mem::replace(&mut self.state, State::Idle);
        match state {
            State::Active { onset, off_since } => Some(Transition::End {
                onset,
                end: off_since.unwrap_or(end).max(onset),
                cut: off_since.is_none(),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    fn ms(v: u64) -> Timestamp {
        Timestamp::from_millis(v)
    }

    fn run(timing: (u64, u64), obs: &[(u64, bool)], step: u64) -> Vec<(u64, Transition)> {
        let mut l = Lifecycle::new(EventTiming {
            min_duration: Duration::from_millis(timing.0),
            cooldown: Duration::from_millis(timing.1),
        });
        let mut out = vec![];
        for &(at, active) in obs {
            if let Some(t) = l.observe(ms(at), ms(at + step), active, None) {
                out.push((at, t));
            }
        }
        if let Some(t) = l.finish(ms(obs.last().map_or(0, |o| o.0 + step))) {
            out.push((u64::MAX, t));
        }
        out
    }

    #[test]
    fn min_duration_delays_the_start_record_not_the_onset() {
        let obs: Vec<_> = (0..10).map(|i| (i * 100, i >= 3)).collect();
        let t = run((250, 0), &obs, 100);
        // Onset at 300; held 300..600 >= 250 ms once the observation at 500 ends.
        assert_eq!(t[0], (500, Transition::Start { onset: ms(300) }));
        assert_eq!(
            t[1].1,
            Transition::End {
                onset: ms(300),
                end: ms(1000),
                cut: true,
            }
        );
    }

    #[test]
    fn short_blips_never_start() {
        let obs = [(0, false), (100, true), (200, false), (300, false)];
        assert!(run((150, 0), &obs, 100).is_empty());
    }

    #[test]
    fn cooldown_bridges_short_pauses_and_every_start_ends_once() {
        let obs = [
            (0, true),
            (100, false),
            (200, true),
            (300, false),
            (400, false),
            (500, false),
            (600, false),
        ];
        let t = run((0, 250), &obs, 100);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].1, Transition::Start { onset: ms(0) });
        assert_eq!(
            t[1],
            (
                500,
                Transition::End {
                    onset: ms(0),
                    end: ms(300),
                    cut: false,
                }
            )
        );
    }
}
