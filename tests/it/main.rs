//! Integration tests: one binary, one module per concern.

mod bad_input;
mod branches;
mod clip;
mod determinism;
mod faces;
mod metrics;
mod run;
mod shutdown;
mod speech;
mod timing;
