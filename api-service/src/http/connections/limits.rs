//! The connection limits of `API_MAX_CONNECTIONS`, `API_HEADER_TIMEOUT_SECS`,
//! `API_IDLE_TIMEOUT_SECS` and `API_SEND_TIMEOUT_SECS`, read once at start.

use std::time::Duration;

use crate::settings::ApiSettings;

/// How many connections are served at once and how long each may wait for what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most connections served at once.
    pub max_connections: usize,
    /// A request head must arrive whole within this of its first byte, and the first one
    /// within this of the connection's accept.
    pub header: Duration,
    /// A connection with no request pending is closed after this long.
    pub idle: Duration,
    /// A connection that accepts no byte of a response for this long is closed.
    pub send: Duration,
}

impl Limits {
    /// The limits `settings` name.
    pub fn from_settings(settings: &ApiSettings) -> Self {
        Self {
            max_connections: settings.max_connections,
            header: Duration::from_secs(settings.header_timeout_secs),
            idle: Duration::from_secs(settings.idle_timeout_secs),
            send: Duration::from_secs(settings.send_timeout_secs),
        }
    }
}
