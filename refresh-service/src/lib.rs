//! `refresh-service`: builds the ofertas snapshot from PostgreSQL, ranks it with an ONNX
//! model, compresses it and publishes it to Redis as a new version.
//!
//! [`report::run_recorded`] is the one function every trigger calls: it runs
//! [`pipeline::attempt`] (the refresh itself) and reports on it (refresh log, metrics,
//! outcome events). [`daemon`] (schedule, start-up catch-up and ops channel) and the `once`
//! command only decide when; [`trigger`] asks a running daemon through the ops channel.

pub mod cli;
pub mod context;
pub mod daemon;
pub mod deltas;
pub mod encode;
pub mod lock;
pub mod log;
pub mod metrics;
pub mod migrate;
pub mod once;
pub mod pipeline;
pub mod rank;
pub mod report;
pub mod rollback;
pub mod schedule;
pub mod settings;
pub mod source;
pub mod stage;
pub mod status;
pub mod trigger;
