//! What the command line runs ([`crate::cli`] parses and dispatches), one module per
//! command; each decides only *when* a refresh runs, never how.
//!
//! - `run`: [`daemon`] — the schedule ([`schedule`]), the start-up catch-up and the ops
//!   channel feed one queue drained by one worker; [`status`] serves `/health`, `/ready`
//!   and `/metrics`;
//! - `once`: [`once`] — one refresh now, as a Kubernetes CronJob runs it;
//! - `trigger`: [`trigger`] — asks a running daemon through the ops channel;
//! - `versions`, `rollback`: [`rollback`];
//! - `migrate`: [`migrate`].

pub mod daemon;
pub mod migrate;
pub mod once;
pub mod rollback;
pub mod schedule;
pub mod status;
pub mod trigger;
