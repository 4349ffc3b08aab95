//! The indexer: the index of moments kept up to date as records are
//! committed, on its own thread, off the pipeline's path. It is delivered
//! to from the store like a live sink ([`crate::sink::outbox`]): its cursor
//! (`index`) moves on once a batch is indexed, and what a run leaves
//! undone the next one (or `vigil index`) does first. Retention does not
//! wait for it: a record deleted before it was indexed needs no moment.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::config::Delivery;
use crate::encode::text::{TextEncoder, Use};
use crate::error::{Error, Result};
use crate::search::index;
use crate::sink::outbox::{Failed, LiveSink, Outgoing, Transport};

/// How the indexer takes records: large batches, and up to 30 s at the
/// end of a run for what is left (then the next run, or `vigil index`,
/// does it).
const DELIVERY: Delivery = Delivery {
    batch: 512,
    retry_max: 30_000_000_000,
    drain: 30_000_000_000,
    timeout: 60_000_000_000,
};

struct Indexer {
    path: PathBuf,
    db: Option<Connection>,
    encoder: Option<TextEncoder>,
}

/// The indexer of the store at `path`, as a live sink of it. The store
/// gets the index's tables and cursor here. Without the text model
/// (`make setup`) it indexes words only, and says so.
pub fn live_sink(path: &Path) -> Result<LiveSink> {
    let db = crate::sink::store::open(path)?;
    index::prepare(&db).map_err(|e| Error::Store {
        path: path.to_path_buf(),
        message: format!("cannot add the index of moments: {e}"),
    })?;
    let encoder = if TextEncoder::installed() {
        Some(TextEncoder::load(Use::Many)?)
    } else {
        tracing::warn!(
            "the text model (minilm) is not installed: moments are indexed by their words only; run `make setup`, then `vigil index` gives them their vectors"
        );
        None
    };
    Ok(LiveSink {
        name: index::CURSOR.into(),
        transport: Box::new(Indexer {
            path: path.to_path_buf(),
            db: Some(db),
            encoder,
        }),
        delivery: DELIVERY,
    })
}

#[async_trait::async_trait]
impl Transport for Indexer {
    async fn deliver(&mut self, batch: &[Outgoing]) -> std::result::Result<(), Failed> {
        if self.db.is_none() {
            self.db =
                Some(crate::sink::store::open(&self.path).map_err(|e| Failed(e.to_string()))?);
        }
        let Some(db) = self.db.as_mut() else {
            return Err(Failed("no store".into()));
        };
        // Runs here, on the indexer's own thread: nothing else waits on it.
        index::add(db, self.encoder.as_mut(), batch)
            .map(|_| ())
            .map_err(|e| {
                // A fresh connection for the next attempt.
                self.db = None;
                Failed(e.to_string())
            })
    }

    async fn close(&mut self) {}
}
