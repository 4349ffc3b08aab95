//! Progress on a terminal while `vigil run` runs.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use vigil::lock::Locked;
use vigil::sink::Printer;
use vigil::stream::StreamTable;

/// Progress bars on a terminal: media time done and speed, per stream.
pub struct Progress {
    multi: Option<MultiProgress>,
    bars: std::sync::Mutex<Vec<(String, ProgressBar)>>,
    started: std::time::Instant,
}

impl Progress {
    pub fn new() -> Self {
        let multi = std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)));
        Progress {
            multi,
            bars: Default::default(),
            started: std::time::Instant::now(),
        }
    }

    pub fn printer(&self) -> Printer {
        match self.multi.clone() {
            Some(m) => Arc::new(move |line: String| m.println(line)),
            None => Arc::new(|line: String| {
                use std::io::Write;
                writeln!(std::io::stdout().lock(), "{line}")
            }),
        }
    }

    pub fn tick(&self, table: &StreamTable) {
        let Some(multi) = &self.multi else { return };
        let streams = table.snapshot();
        let mut bars = self.bars.locked();
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-3);
        for (name, status) in streams {
            let bar = match bars.iter().find(|(n, _)| *n == name) {
                Some((_, b)) => b.clone(),
                None => {
                    let b = multi.add(ProgressBar::new(0));
                    b.set_style(
                        ProgressStyle::with_template("{prefix:<12} [{bar:30}] {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                    );
                    b.set_prefix(name.clone());
                    bars.push((name.clone(), b.clone()));
                    b
                }
            };
            let done = status.media_done.load(Ordering::Relaxed);
            let total = status.duration.load(Ordering::Relaxed);
            bar.set_length(total.max(done) / 1_000_000);
            bar.set_position(done / 1_000_000);
            bar.set_message(format!(
                "{:.1}/{} s  {:.1}× real time  {}",
                done as f64 / 1e9,
                if total > 0 {
                    format!("{:.1}", total as f64 / 1e9)
                } else {
                    "?".into()
                },
                done as f64 / 1e9 / elapsed,
                status.state().as_str()
            ));
        }
    }

    pub fn clear(&self) {
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}
