//! What a stream has observed lately, as facts over spans of stream time:
//! the memory rules are evaluated against.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::fuse::zones::Direction;
use crate::geometry::BBox;
use crate::time::Timestamp;

/// What was observed.
#[derive(Clone, Debug)]
pub enum What {
    /// A confirmed track is in the picture.
    Object {
        track: u64,
        label: &'static str,
        score: f32,
        bbox: BBox,
    },
    /// A confirmed track is in a zone (index into the scene's zones).
    InZone {
        track: u64,
        label: &'static str,
        zone: usize,
        score: f32,
        bbox: BBox,
    },
    /// One sound window's score for one target (index into the targets).
    Sound {
        target: usize,
        class: Arc<str>,
        score: f32,
        active: bool,
    },
    /// Voice activity.
    Voice,
    /// A transcript (lower case), and when it was said.
    Said {
        text: String,
        start: Timestamp,
        end: Timestamp,
    },
    /// One loudness window.
    Level { rms_db: f32, active: bool },
    /// Motion in a frame.
    Motion { bbox: Option<BBox> },
    /// A line crossing.
    Cross {
        track: u64,
        label: &'static str,
        line: usize,
        direction: Direction,
    },
    /// A face in a frame: its score, and with identity on, its enrolled
    /// name (`identified`: identity looked at it).
    Face {
        score: f32,
        name: Option<std::sync::Arc<str>>,
        identified: bool,
    },
}

/// Something observed over `[start, end)`.
#[derive(Clone, Debug)]
pub struct Fact {
    pub what: What,
    pub start: Timestamp,
    pub end: Timestamp,
}

/// Facts that extend while they go on, rather than piling up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    Object(u64),
    InZone(u64, usize),
    Voice,
}

/// The facts of one stream, oldest first.
#[derive(Debug, Default)]
pub struct FactLog {
    facts: BTreeMap<u64, Fact>,
    next: u64,
    open: HashMap<Key, u64>,
}

impl FactLog {
    /// Adds a fact.
    pub fn add(&mut self, what: What, start: Timestamp, end: Timestamp) {
        self.facts.insert(self.next, Fact { what, start, end });
        self.next += 1;
    }

    /// Extends the fact `key` to `end` (and refreshes what it says) when it
    /// reaches `start`; otherwise starts a new one.
    pub fn extend(&mut self, key: Key, what: What, start: Timestamp, end: Timestamp) {
        if let Some(f) = self.open.get(&key).and_then(|i| self.facts.get_mut(i))
            && f.end >= start
        {
            f.end = f.end.max(end);
            f.what = what;
            return;
        }
        self.open.insert(key, self.next);
        self.add(what, start, end);
    }

    /// Forgets facts that ended before `before`.
    pub fn prune(&mut self, before: Timestamp) {
        self.facts.retain(|_, f| f.end >= before);
        let facts = &self.facts;
        self.open.retain(|_, i| facts.contains_key(i));
    }

    pub fn iter(&self) -> impl Iterator<Item = &Fact> {
        self.facts.values()
    }

    pub fn len(&self) -> usize {
        self.facts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.facts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_facts_extend_and_old_ones_are_forgotten() {
        let mut log = FactLog::default();
        for i in 0..10 {
            log.extend(
                Key::Voice,
                What::Voice,
                Timestamp(i * 10),
                Timestamp(i * 10 + 10),
            );
        }
        assert_eq!(log.len(), 1);
        log.extend(Key::Voice, What::Voice, Timestamp(200), Timestamp(210));
        assert_eq!(log.len(), 2, "a gap starts a new fact");
        log.prune(Timestamp(150));
        assert_eq!(log.len(), 1);
        let f = log.iter().next().unwrap();
        assert_eq!((f.start, f.end), (Timestamp(200), Timestamp(210)));
    }
}
