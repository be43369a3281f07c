//! `api-service`: serves the current ofertas snapshot from memory, as fast as a static
//! file, with JWT auth, content negotiation and conditional requests.
//!
//! It never touches Postgres: [`snapshot_cache`] keeps the snapshot current from Redis;
//! [`routes`] serves it; [`startup::Application`] wires everything.

pub mod auth;
pub mod cli;
pub mod connections;
pub mod errors;
pub mod health;
pub mod metrics;
pub mod negotiate;
pub mod observe;
pub mod refresh;
pub mod routes;
pub mod server;
pub mod snapshot_cache;
pub mod snapshot_route;
pub mod startup;
pub mod zero_copy;
