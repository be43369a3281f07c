//! The fault suite (issue 5): the real `refresh-service` and `api-service` binaries
//! against real PostgreSQL and Redis processes this binary starts itself, on private
//! ports, so each scenario can stop, kill, freeze and restart them under a steady request
//! load on two API replicas.
//!
//! Each scenario owns its Redis server, database and key prefix; the scenarios that do not
//! stop PostgreSQL share one cluster (initdb costs seconds), the one that does has its own.
//! Nothing here uses `TEST_DATABASE_URL` or `TEST_REDIS_URL`. Needs `redis-server`,
//! `redis-cli` and the PostgreSQL server binaries (as `scripts/services.sh` installs them)
//! and the ONNX Runtime library of `scripts/onnxruntime.sh`. The deployment and the
//! observers are the harness's (`system_tests::{stack, observe}`).
//!
//! Run just this binary: `cargo test -p system-tests --test faults`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod burst;
mod corrupt_snapshot;
mod frozen_replica;
mod killed_refresher;
mod postgres_stop;
mod redis_restart;
