//! The system-test harness of ofertasws: what the tests need to run the real thing — both
//! service binaries, Redis (a single server, a Cluster, a Sentinel group), PostgreSQL and
//! nginx — as processes of their own, and to watch it from outside.
//!
//! The suites are this crate's tests, one test binary each: `tests/faults` (servers
//! killed, stopped and frozen under load), `tests/topologies` (the contract on a Cluster
//! and a Sentinel group, failovers) and `tests/browser` (Chromium downloading a delta).
//! The services' own integration tests (`api-service/tests/it`, `refresh-service/tests/it`)
//! take the light parts — [`TestPrefix`], [`TestDb`], [`eventually`], [`Proxy`],
//! [`workspace_binary`] — as a dev-dependency. Nothing here depends on the services'
//! libraries: the harness drives them as a client or an operator would, so the services
//! can depend on it without a cycle.
//!
//! A harness step that cannot be done fails the test that asked for it, by panicking with
//! a message that says what did not happen: hence `expect` throughout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod binaries;
mod cleanup;
pub mod commands;
pub mod database;
pub mod fixtures;
pub mod nginx;
pub mod observe;
pub mod ports;
pub mod prefix;
pub mod process;
pub mod proxy;
pub mod scratch;
pub mod servers;
pub mod stack;
pub mod wait;

pub use binaries::{workspace_binary, workspace_root};
pub use database::TestDb;
pub use ports::free_port;
pub use prefix::{TestPrefix, redis_url};
pub use proxy::Proxy;
pub use scratch::Scratch;
pub use wait::{eventually, until};
