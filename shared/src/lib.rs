//! Everything both ofertasws services agree on: the Redis settings (each service owns the
//! rest of its settings), the Redis key and channel layout, the event and snapshot types,
//! the snapshot store itself, the refresh request/outcome protocol, and telemetry.
//!
//! `refresh-service` writes snapshots through [`store::SnapshotStore`]; `api-service`
//! reads them through the same type, so the layout is defined exactly once.

pub mod config;
pub mod delta;
pub mod document;
pub mod events;
pub mod keys;
pub mod memory;
#[cfg(feature = "openapi")]
mod openapi;
pub mod redis;
pub mod refresh;
pub mod sha256;
pub mod shutdown;
pub mod snapshot;
pub mod store;
pub mod telemetry;
