//! One refresh, from the offers in PostgreSQL to a new current version in Redis.
//!
//! [`attempt`] runs it in order: take the refresh [`lock`], stream the live offers
//! ([`source`]), score them with the ONNX model ([`rank`]), serialise the document once
//! and compress it ([`encode`]), write the version and switch to it, announce it; each
//! stage timed by [`stage`]. After the switch, [`deltas`] builds the RFC 9842 deltas to
//! the new version. [`context`] is everything a refresh needs, connected once per
//! process. [`recorded`] is the refresh as every trigger runs it: the attempt, then its
//! report.
//!
//! [`context`] sits here, not beside the command line, because it holds the loaded
//! ranking model and every stage takes it; [`recorded`] sits here, not in `report/`,
//! because the pipeline itself records into the metrics and the refresh log, so `report/`
//! is below the pipeline and cannot call it.

pub mod attempt;
pub mod context;
pub mod deltas;
pub mod encode;
pub mod lock;
pub mod rank;
pub mod recorded;
pub mod source;
pub mod stage;
