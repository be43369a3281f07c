//! Connections cannot starve the API, as the contract's "Connections" section promises:
//! - at most `API_MAX_CONNECTIONS` are served at once, and running out of file
//!   descriptors never stops the process ([`Connections`], `connections/admission.rs`);
//! - hyper serves HTTP/1 and h2c with explicit limits, and closes HTTP/2 floods and stalled
//!   header blocks itself ([`builder`], `connections/protocol.rs`);
//! - what hyper does not time — the first request head from the accept, HTTP/1 heads from
//!   their first byte, idle keep-alive connections, clients that stop reading — is timed by
//!   the connection's IO ([`GuardedIo`]), told by its service ([`Watched`]) where requests
//!   and responses begin and end.
//!
//! The defaults (`API_IDLE_TIMEOUT_SECS` 620 s) outlast the load balancers' own idle
//! timeouts, so in normal operation the balancer, not the API, closes idle connections.

mod admission;
mod counters;
mod guarded;
mod limits;
mod phase;
mod protocol;
mod service;
#[cfg(test)]
mod tests;

pub use admission::{Connections, Slot, Throttle, raise_fd_limit};
pub use counters::ConnectionMetrics;
pub use guarded::{GuardedIo, HTTP2_PREFACE};
pub use limits::Limits;
pub use protocol::{MAX_HEAD_BYTES, builder};
pub use service::{Responding, Tracked, Watch, Watched};
