//! `api-service`: serves the current ofertas snapshot from memory, as fast as a static
//! file, with JWT auth, content negotiation and conditional requests.
//!
//! It never touches Postgres: [`snapshot`] keeps the snapshot current from Redis and
//! holds its bodies ([`sealed`]); [`server`] accepts connections and hands the snapshot
//! route to [`snapshot_route`] and everything else to the poem app of [`routes`] and
//! [`health`]; [`startup::Application`] wires everything. [`route_table`] names every
//! route once.

pub mod auth;
pub mod bearer;
pub mod claims;
pub mod cli;
pub mod connections;
pub mod errors;
pub mod health;
pub mod metrics;
pub mod negotiate;
pub mod observe;
pub mod preconditions;
pub mod refresh;
pub mod route_table;
pub mod routes;
pub mod sealed;
pub mod server;
pub mod settings;
pub mod snapshot;
pub mod snapshot_doc;
pub mod snapshot_route;
pub mod startup;
pub mod zero_copy;
