//! The topics records, state and status go to.

use crate::sink::outbox::Outgoing;

/// The topics under one configured prefix.
#[derive(Clone, Debug)]
pub struct Topics {
    /// The prefix without wildcards or trailing slashes.
    prefix: String,
    /// The node of a cluster this process is: its status is its own.
    node: Option<String>,
}

impl Topics {
    pub fn new(prefix: &str) -> Topics {
        Topics {
            prefix: clean_prefix(prefix),
            node: None,
        }
    }

    /// The topics of node `node` of a cluster (none: not on a cluster).
    pub fn on_node(self, node: Option<&str>) -> Topics {
        Topics {
            node: node.map(str::to_owned),
            ..self
        }
    }

    /// `{prefix}/status`: `online`, `offline`, the last will. On a node of
    /// a cluster `{prefix}/status/{node}`, so that one node going away
    /// does not say the others are offline.
    pub fn status(&self) -> String {
        match &self.node {
            Some(n) => join_topic(&self.prefix, &format!("status/{}", topic_segment(n))),
            None => join_topic(&self.prefix, "status"),
        }
    }

    /// `{prefix}/{stream}/events` (`captions`, `transcripts`, `other`).
    pub fn record(&self, rec: &Outgoing) -> String {
        let leaf = match rec.kind_of.as_str() {
            "event" => "events",
            "caption" => "captions",
            "transcript" => "transcripts",
            _ => "other",
        };
        join_topic(
            &self.prefix,
            &format!("{}/{leaf}", topic_segment(&rec.stream)),
        )
    }

    /// `{prefix}/{stream}/snapshot`, or with a label
    /// `{prefix}/{stream}/{label}/snapshot`: the latest picture, retained.
    pub fn snapshot(&self, stream: &str, label: Option<&str>) -> String {
        let rest = match label {
            Some(l) => format!("{}/{}/snapshot", topic_segment(stream), topic_segment(l)),
            None => format!("{}/snapshot", topic_segment(stream)),
        };
        join_topic(&self.prefix, &rest)
    }

    /// `{prefix}/{stream}`: where the stream's topics start.
    pub fn stream_base(&self, stream: &str) -> String {
        join_topic(&self.prefix, &topic_segment(stream))
    }

    /// `{prefix}/{stream}/state`: the retained summary.
    pub fn state(&self, stream: &str) -> String {
        join_topic(&self.prefix, &format!("{}/state", topic_segment(stream)))
    }
}

/// A stream name as one topic level: no level separator or wildcards.
pub fn topic_segment(name: &str) -> String {
    if name.is_empty() {
        return "_".to_owned();
    }
    name.chars()
        .map(|c| match c {
            '/' | '+' | '#' | '\0' => '_',
            c => c,
        })
        .collect()
}

/// The configured prefix without wildcards or trailing slashes.
fn clean_prefix(prefix: &str) -> String {
    prefix
        .trim_end_matches('/')
        .chars()
        .map(|c| match c {
            '+' | '#' | '\0' => '_',
            c => c,
        })
        .collect()
}

fn join_topic(prefix: &str, rest: &str) -> String {
    if prefix.is_empty() {
        rest.to_owned()
    } else {
        format!("{prefix}/{rest}")
    }
}
