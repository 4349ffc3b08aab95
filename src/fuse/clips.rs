//! Clips of events (`[recording]`): which events get one, and the clip
//! each record names (`clip`, `clip_start`); the stream's
//! [`Recorder`] makes them.

use std::collections::HashMap;

use crate::config::RecordingConfig;
use crate::fuse::pictures::file_name;
use crate::record::{EventRecord, Phase, Record};
use crate::recording::{ClipCounts, ClipRef, Recorder};
use crate::time::Timestamp;

/// The clips of one stream.
pub struct Clips {
    recorder: Recorder,
    kinds: Vec<String>,
    labels: Vec<String>,
    /// The clip of each event under way.
    open: HashMap<String, ClipRef>,
    /// What the recorder had done when last asked.
    reported: ClipCounts,
}

impl Clips {
    pub fn new(recorder: Recorder, config: &RecordingConfig) -> Clips {
        Clips {
            recorder,
            kinds: config.kinds.clone(),
            labels: config.labels.clone(),
            open: HashMap::new(),
            reported: ClipCounts::default(),
        }
    }

    fn wanted(&self, e: &EventRecord) -> bool {
        self.kinds.iter().any(|k| k == &e.kind)
            && (self.labels.is_empty() || e.labels.iter().any(|l| self.labels.contains(l)))
    }

    /// Tells the recorder which events started and ended, and names their
    /// clips in the records.
    pub fn dress(&mut self, records: &mut [Record]) {
        for r in records {
            let Record::Event(e) = r else { continue };
            if !self.wanted(e) {
                continue;
            }
            let clip = match e.phase {
                Phase::Start => {
                    let name = file_name(&e.event, &e.stream);
                    let clip = self.recorder.start(&e.event, &name, e.start);
                    if let Some(c) = &clip {
                        self.open.insert(e.event.clone(), c.clone());
                    }
                    clip
                }
                Phase::Update => self.open.get(&e.event).cloned(),
                Phase::End => {
                    self.recorder.end(&e.event, e.end.unwrap_or(e.start));
                    self.open.remove(&e.event)
                }
            };
            if let Some(c) = clip {
                e.clip = Some(c.path);
                e.clip_start = Some(c.start);
            }
        }
    }

    /// The source PTS and the UTC of stream time zero, from the chunks.
    pub fn set_origin(&mut self, origin: u64, utc: i64) {
        self.recorder.set_origin(origin, utc);
    }

    /// The analysis has got to `to`.
    pub fn advance(&mut self, to: Timestamp) {
        self.recorder.advance(to);
    }

    /// What the recorder did since the last time this was asked.
    pub fn unreported(&mut self) -> ClipCounts {
        let now = self.recorder.counts();
        let new = now.since(&self.reported);
        self.reported = now;
        new
    }

    /// The stream ended: every clip is finished. What the recorder did
    /// that was not yet reported.
    pub fn finish(self) -> ClipCounts {
        let reported = self.reported;
        self.recorder.finish().since(&reported)
    }
}
