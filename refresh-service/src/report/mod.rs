//! Where refreshes are recorded: the Prometheus metrics of the refresher ([`metrics`]:
//! outcomes, stage durations, snapshot sizes, lock skips, memory) and the refresh-log
//! table, one row per attempt ([`log`]).
//!
//! Both are held by the refresh context and written during and after each refresh, so
//! this folder uses no other part of the service; what one refresh reports (its row, its
//! outcome event) is put together by [`crate::pipeline::recorded`].

pub mod log;
pub mod metrics;
