//! The topology suite (issue 13): the real `refresh-service` and `api-service` binaries on a
//! Redis Cluster (3 primaries + 3 replicas) and on a Sentinel group (a primary, a replica
//! and 3 sentinels) that this binary starts itself from Debian's `redis-server`, on free
//! local ports, with the harness's servers, deployment and observers
//! (`system_tests::{servers, stack, observe}`).
//!
//! `contract` runs the contract's promises on each topology (with `cross_node` and
//! `replication`: a `PUBLISH` counted on another node, the switch's wait for a replica);
//! `failover` kills the primary
//! holding the snapshot keys under a steady GET load, once with replication intact and
//! once after cutting it so the last switch is lost. Every wait polls a condition with a
//! deadline; the logs of a failed test are kept in the temp folder it names.
//!
//! Needs `redis-server` and `redis-cli` ≥ 7, the PostgreSQL server binaries (as
//! `scripts/services.sh` installs them) and the ONNX Runtime library of
//! `scripts/onnxruntime.sh`. Run just this binary: `cargo test -p system-tests --test
//! topologies`; the pub/sub measurement of the README: `bench/pubsub.sh`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod contract;
mod cross_node;
mod failover;
mod pubsub;
mod replication;

/// Runs blocking harness code (redis-cli, waiting for a topology) off the async workers.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}
