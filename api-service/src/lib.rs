//! `api-service`: serves the current ofertas snapshot from memory, as fast as a static
//! file, with JWT auth, content negotiation and conditional requests.
//!
//! It never touches Postgres. The folders are its layers, each using only those listed
//! before it:
//! - [`http`]: accepting connections and serving them with hyper, the connection guards
//!   (cap, deadlines, HTTP/2 limits), zero-copy sending, and the sealed memory the bodies
//!   live in;
//! - [`request`]: what every request goes through — the token, the error responses, the
//!   route table, the `Accept-Encoding`, `Available-Dictionary` and precondition parsers;
//! - [`metrics`]: the Prometheus registry every layer above counts in;
//! - [`snapshot`]: loading the current snapshot from Redis, preparing it, holding it and
//!   keeping it current;
//! - [`endpoints`]: the snapshot route (answered by the server itself, before poem) and
//!   the poem endpoints (meta, refresh, health, docs), each request observed.
//!
//! [`startup::Application`] wires them together and [`cli`] is the command line;
//! [`settings`] holds what the environment configures.

pub mod cli;
pub mod endpoints;
pub mod http;
pub mod metrics;
pub mod request;
pub mod settings;
pub mod snapshot;
pub mod startup;
