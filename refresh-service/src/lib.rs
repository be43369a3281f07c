//! `refresh-service`: builds the ofertas snapshot from PostgreSQL, ranks it with an ONNX
//! model, compresses it and publishes it to Redis as a new version.
//!
//! The folders are its layers, each using only those listed before it:
//! - [`report`]: where refreshes are recorded — the Prometheus metrics and the refresh-log
//!   table;
//! - [`pipeline`]: one refresh, source → rank → encode → publish → deltas, under the
//!   refresh lock, with everything it needs connected once per process
//!   ([`pipeline::context`]); [`pipeline::recorded::run_recorded`] is the one function
//!   every trigger calls: it runs [`pipeline::attempt::attempt`] (the refresh itself) and
//!   reports on it (refresh-log row, metrics, outcome events);
//! - [`commands`]: what the command line runs, each command deciding only *when* to
//!   refresh — `run` (the daemon: schedule, start-up catch-up, ops channel, status port),
//!   `once`, `trigger` (asks a running daemon through the ops channel), `versions`,
//!   `rollback`, `migrate`.
//!
//! [`cli`] parses the command line and dispatches to [`commands`]; [`settings`] holds
//! what the environment configures.

pub mod cli;
pub mod commands;
pub mod pipeline;
pub mod report;
pub mod settings;
