//! Integration tests of api-service against a real Redis.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod connections;
mod delta_client;
mod delta_vector;
mod deltas;
mod documented;
mod helpers;
mod memory;
mod operations;
mod refresh;
mod serving;
mod sync;
mod zero_copy;
