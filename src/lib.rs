//! # vigil
//!
//! vigil watches and listens to media and says what happens in it. One
//! GStreamer pipeline per stream feeds a synchroniser, which cuts the stream
//! into [`media::Chunk`]s of exact, contiguous stream time; encoders turn
//! chunks into features; fusion turns features into [`record::Record`]s
//! (events with a start/end lifecycle, tracks, zone and line events, rule
//! alerts, captions and snapshots); sinks write them.
//!
//! ```text
//!  source ──► sync ──► encode ──► fuse ──► sink
//! ```
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | pipeline files: parsing and validation (file, line, column in errors); object labels and groups ([`config::labels`]) |
//! | [`rule_language`] | what a rule's `when` says, and its parser (pest) |
//! | [`time`] | [`time::Timestamp`] and [`time::Duration`] (integer ns), spans, exact sample ↔ time arithmetic |
//! | [`geometry`] | [`geometry::BBox`]: boxes in the picture (normalised `[x, y, w, h]`, the array records carry), their IoU, union, edges, centre and anchor; polygons (point inside, edge distance) and a stream's masks rasterised ([`geometry::Mask`]) |
//! | [`media`] | [`media::VideoFrame`], [`media::AudioBlock`], [`media::Chunk`]; what a source tells its synchroniser ([`media::SourceMessage`], [`media::Input`]) and how it failed ([`media::Failure`]) |
//! | [`source`] | GStreamer ingest: `uridecodebin`, frames sampled by PTS, 16 kHz mono audio, bus errors, RTSP settings; [`source::supervise`]: each stream's supervisor, reconnecting live sources with backoff across outages; [`source::pace`]: a file's leading branch waits for the other; [`source::still`]: one picture out of an image file |
//! | [`sync`] | the synchroniser: watermarks, sample-exact chunks, gaps filled and flagged; data stamped past all sense dropped, a branch that gives nothing usable ended (files) or reported (live, the stream degraded) |
//! | [`encode`] | the [`encode::Encoder`] trait; [`encode::kind`]: the one table of encoders ([`encode::ENCODERS`]), each declaring in its own file its name, model manifests (the one its settings pick), model check, shared worker and builder; model-free `motion`, `loudness`; on ONNX Runtime ([`encode::runtime`]): `vad` (Silero), `faces` (BlazeFace; with identity, who each face is: a closer look, alignment and MobileFaceNet embeddings matched against the [`gallery`] in [`encode::face_id`]), `detector` (NanoDet, COCO-80, int8 by default or f32, or a model of your own with its manifest; [`encode::gate`] decides where and when it looks: only where the picture changed, with a refresh of what it found and a whole frame now and then), `sound` (YAMNet, with its log-mel front end in [`encode::logmel`]); sentences as vectors for search (MiniLM, [`encode::text`]); [`encode::batch`]: one inference worker per model, batching the work of every stream |
//! | [`fuse`] | event lifecycles, record ids; [`fuse::track`]: ByteTrack multi-object tracking; [`fuse::scene`]: per-track `object` events, zones and lines ([`fuse::zones`]); [`fuse::rules`]: the rule engine over the modalities, and its dry run over stored records ([`fuse::rules::replay`]); [`fuse::caption`]: captions; [`fuse::pictures`]: JPEG snapshots ([`fuse::snapshot`]); [`fuse::clips`]: which events get a clip, named in their records; [`fuse::live`]: the live view of a watched stream |
//! | [`record`] | the record format (`vigil_schema` [`record::VIGIL_SCHEMA`]) |
//! | [`sink`] | the [`sink::Sink`] trait; JSONL event log, the SQLite event store ([`sink::store`]), WebVTT and SubRip, stdout; the live sinks deliver from the store at least once ([`sink::outbox`]: cursors, backoff, drain) through the transport each one's configuration builds ([`sink::outbox::LiveConfig`]): [`sink::webhook`], [`sink::mqtt`] (with Home Assistant discovery, [`sink::mqtt::discovery`]) and [`sink::nats`] (TLS in [`sink::tls`]), and rule alerts spoken with espeak-ng ([`sink::speak`]); [`sink::retention`]: snapshots deleted with their records, logs rotated by size, the disk guard, `vigil gc` |
//! | [`search`] | the index of moments (every caption, transcript and event as a sentence with its stream, span and media; FTS5 words and MiniLM vectors, [`search::index`], kept up by [`search::indexer`] off the pipeline's path, deleted with its records) and questions asked of it ([`search::question`]: time and stream words as filters; [`search::rank`]: BM25 and cosine fused by reciprocal rank, adjacent moments merged) for `vigil ask` and `/search` |
//! | [`cluster`] | `vigil serve` as a node of a cluster on NATS JetStream: the wanted cameras, heartbeats and leases in key-value buckets ([`cluster::buckets`]), each camera's node by weighted rendezvous hashing ([`cluster::place`]), and the node's agent ([`cluster::agent`]) that takes, renews and lets go of cameras, moves cameras to a node that joined make-before-break (the new holder connects first; both switch at a moment written in the lease), and orders the daemon to run or stop them (a camera taken from a dead node starts with a `stream_gap` over the move; a camera a node cannot start is refused in its heartbeat and placed elsewhere) |
//! | [`export`] | `vigil events`: records out of the store, filtered, as JSONL, JSON, CSV, WebVTT or SubRip; [`export::nats`]: a whole cluster's records read back from its JetStream stream, with the same filters and formats |
//! | [`stage`] | one driver for a stream's stages ([`stage::Stage`]: push, poll, finish, close; [`stage::spawn_stage`]): threads, channels, the counters every stage reports, a failure marked before the output closes |
//! | [`metrics`] | the one [`metrics::StageMetrics`] set every stage reports |
//! | [`cpu`] | CPU time by thread: what each stream's threads used, and its share of the shared model workers' runs |
//! | [`server`] | HTTP: `/metrics`, `/healthz`, the control API (`/streams`: [`server::streams`]), each stream's latest analysed frame while someone watches ([`server::live`]), rules tried on stored records ([`server::rules`]), the records (`/events`, `/events/live` as Server-Sent Events: [`server::events`]), and the web console at `/` ([`server::console`], signed in by [`server::session`]); bearer token; the bodies of its answers, typed ([`server::api`]), and [`server::client`], which reads them, for `vigil attach`/`detach`/`streams`; on a node of a cluster ([`server::peers`]), `/search` merges every node's answers, `/streams?from=cluster` lists every node's streams, and `/media` and live pictures come from the node that has them |
//! | [`graph`] | a [`graph::Graph`]: the shared workers and sinks, streams attached and detached while the others run; drain and shutdown |
//! | [`daemon`] | `vigil serve`: the thread owning the graph, control requests, streams kept across restarts ([`daemon::attached`]), `SIGHUP` reload; on a node of a cluster, the cluster agent's orders |
//! | [`stream`] | what stages share about a stream: progress, state, failure; the table of a process's streams ([`stream::StreamTable`]) |
//! | [`recording`] | media as the source encoded it, never re-encoded: [`recording::cut`] takes a stretch of a file's video and sound out of it from the keyframe before (`vigil clip`), [`recording::writer`] muxes packets into MP4 or Matroska; [`recording::recorder`]: a stream's event clips with pre- and post-roll, in step with the analysis, from its [`recording::feed`] (a file read again, or a live source's packets, tapped after its parsers by [`source::tap`], or encoded there when the source has none); [`recording::segments`]: continuous recording in UTC-named segments, which [`recording::cut_segments`] cuts across (`vigil clip --stream`) |
//! | [`gallery`] | the face gallery (SQLite, owner-only): enrolled faces and unknown ones kept to be named, nearest by L2 distance |
//! | [`disk`] | free space on the output folder's disk, and what may still be written there (media, records) |
//!
//! The binary, `src/main.rs`, only dispatches: each command is a module of
//! `src/cli/` (its arguments in `cli/args.rs`), on top of the library.
//!
//! The floor plan: a module imports only from floors below its own, so
//! there are no import circles; messages between stages live with
//! [`media::Chunk`], the vocabulary pipeline files speak (labels, the rule
//! language, model providers) under [`config`] or on its own floor
//! (`tests/it/floors.rs` checks this block against the code):
//!
//! ```text
//! floor 11: daemon
//! floor 10: server
//! floor 9: graph export
//! floor 8: search cluster
//! floor 7: sink
//! floor 6: fuse
//! floor 5: encode recording
//! floor 4: source sync
//! floor 3: stage
//! floor 2: stream metrics
//! floor 1: config media record cpu gallery
//! floor 0: time error disk lock backoff secret rule_language geometry
//! ```
//!
//! Each stage of each stream runs on its own thread, and each model on one
//! inference worker shared by all streams (no lock around a model run; a
//! batch of N gives exactly what N single runs give, so grouping never
//! changes the records); bounded
//! `crossbeam-channel` queues between them carry back-pressure from the
//! encoders back to GStreamer (appsink callbacks block when the queue is
//! full). Time is integer nanoseconds throughout; audio sample `n` sits at
//! `n * 1e9 / 16000` ns.
//!
//! Running a pipeline from code:
//!
//! ```no_run
//! use std::sync::{Arc, atomic::AtomicBool};
//! use vigil::{config::PipelineConfig, graph, metrics::Metrics};
//!
//! let mut config = PipelineConfig::builtin();
//! config.set_sources(&["cam1.mp4".to_string()]);
//! let options = graph::RunOptions {
//!     out_dir: "out".into(),
//!     start_time: None,
//!     printer: Arc::new(|line| {
//!         println!("{line}");
//!         Ok(())
//!     }),
//! };
//! let report = graph::run(&config, &options, &Metrics::new(), &Default::default(),
//!                         &AtomicBool::new(false), &mut |_| {})?;
//! println!("{} records", report.sinks.records);
//! # Ok::<(), vigil::error::Error>(())
//! ```

pub mod backoff;
pub mod cluster;
pub mod config;
pub mod cpu;
pub mod daemon;
pub mod disk;
pub mod encode;
pub mod error;
pub mod export;
pub mod fuse;
pub mod gallery;
pub mod geometry;
pub mod graph;
pub mod lock;
pub mod media;
pub mod metrics;
pub mod record;
pub mod recording;
pub mod rule_language;
pub mod search;
pub mod secret;
pub mod server;
pub mod sink;
pub mod source;
pub mod stage;
pub mod stream;
pub mod sync;
pub mod time;
