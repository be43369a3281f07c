//! `refresh-service`: builds the ofertas snapshot from PostgreSQL, ranks it with an ONNX
//! model, compresses it and publishes it to Redis as a new version.
//!
//! [`pipeline::refresh`] is the one refresh every trigger calls; [`daemon`] (schedule and
//! ops channel), the `once` command and [`trigger`] only decide when.

pub mod cli;
pub mod context;
pub mod daemon;
pub mod encode;
pub mod lock;
pub mod log;
pub mod metrics;
pub mod pipeline;
pub mod rank;
pub mod rollback;
pub mod schedule;
pub mod source;
pub mod status;
pub mod trigger;
