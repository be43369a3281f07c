//! Integration tests of refresh-service against real PostgreSQL and Redis.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod binary;
mod daemon;
mod deltas;
mod document_schema;
mod helpers;
mod pipeline;
mod ranker;
mod traces;
