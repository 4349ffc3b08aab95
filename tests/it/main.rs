//! Integration tests: one binary, one module per concern.

mod asr;
mod bad_input;
mod batching;
mod branches;
mod brightness;
#[path = "../support/brokers.rs"]
mod brokers;
mod browser;
mod clip;
mod cluster;
mod cluster_fleet;
mod console;
mod delivery;
mod deploy;
mod determinism;
mod export;
mod faces;
mod floors;
mod frames;
mod fuzz;
mod gating;
mod home_assistant;
mod live;
mod masks;
mod metrics;
mod models;
mod objects;
mod recording;
mod retention;
mod run;
mod scene;
mod search;
mod serve;
mod shutdown;
mod sounds;
mod speech;
#[path = "../support/rtsp.rs"]
mod support;
mod timing;
mod transport;
mod watchdog;
