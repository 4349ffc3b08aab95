//! Human-readable lines on the terminal: events, and captions if asked.

use crate::error::{Error, Result};
use crate::record::{Phase, Record};
use crate::sink::{Printer, Sink, SinkKind};

pub struct StdoutSink {
    captions: bool,
    show_stream: bool,
    print: Printer,
}

impl StdoutSink {
    pub fn new(captions: bool, show_stream: bool, print: Printer) -> Self {
        StdoutSink {
            captions,
            show_stream,
            print,
        }
    }

    fn line(&self, r: &Record) -> Option<String> {
        let stream = if self.show_stream {
            format!("{:<10} ", r.stream())
        } else {
            String::new()
        };
        match r {
            Record::Event(e) => {
                let phase = match e.phase {
                    Phase::Start => "start",
                    Phase::Update => "update",
                    Phase::End => "end  ",
                };
                let when = match e.end {
                    Some(end) => format!("{:>9} – {:<9}", e.start.to_string(), end.to_string()),
                    None => format!("{:>9}            ", e.start.to_string()),
                };
                let mut extra = String::new();
                if let Some(b) = e.bbox {
                    extra.push_str(&format!(
                        " bbox [{:.2} {:.2} {:.2} {:.2}]",
                        b.x, b.y, b.w, b.h
                    ));
                }
                if let Some(v) = e.details.get("peak_dbfs") {
                    extra.push_str(&format!(" peak {v} dBFS"));
                }
                if let Some(v) = e.details.get("message") {
                    extra.push_str(&format!(" {}", v.as_str().unwrap_or_default()));
                }
                if !e.labels.is_empty() {
                    extra.push_str(&format!(" [{}]", e.labels.join(", ")));
                }
                if let Some(t) = e.track {
                    extra.push_str(&format!(" #{t}"));
                }
                if let Some(z) = &e.zone {
                    extra.push_str(&format!(" @{z}"));
                }
                if let Some(d) = e.details.get("direction").and_then(|d| d.as_str()) {
                    extra.push_str(&format!(" {d}"));
                }
                Some(format!(
                    "{stream}{when} {:<11} {phase} score {:.3}{extra}",
                    e.kind, e.score
                ))
            }
            Record::Caption(c) if self.captions => Some(format!(
                "{stream}{:>9} – {:<9} “{}”",
                c.start.to_string(),
                c.end.to_string(),
                c.text
            )),
            Record::Transcript(t) => Some(format!(
                "{stream}{:>9} – {:<9} said: “{}”",
                t.start.to_string(),
                t.end.to_string(),
                t.text
            )),
            Record::Caption(_) => None,
        }
    }
}

impl Sink for StdoutSink {
    fn kind(&self) -> SinkKind {
        SinkKind::Stdout
    }

    fn send(&mut self, batch: &[Record]) -> Result<()> {
        for r in batch {
            if let Some(line) = self.line(r) {
                (self.print)(line).map_err(|e| Error::Sink {
                    sink: "stdout".into(),
                    message: format!("cannot print ({e}); the other sinks go on"),
                })?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}
