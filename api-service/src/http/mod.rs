//! The HTTP layer: everything between a TCP connection and a response, and nothing about
//! what the response says.
//!
//! [`server`] accepts connections (one worker thread per core) and serves them with
//! hyper, handing the one [`server::FastRoute`] (the snapshot route) its requests before
//! poem sees them; [`connections`] keeps connections from starving the API (the cap,
//! the deadlines hyper does not keep, the HTTP/2 limits); [`zero_copy`] sends a body's
//! bytes from its sealed file with `sendfile`; [`sealed`] holds every body once, in a
//! sealed memfd. It uses no other layer of the API but its settings.

pub mod connections;
pub mod sealed;
pub mod server;
pub mod zero_copy;
