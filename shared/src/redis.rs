//! Building fred clients the way both services need them: reconnecting forever, commands
//! bounded by a timeout (so an outage surfaces as an error instead of a hang), and
//! subscribers that resubscribe by themselves after a reconnect.

use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::{Builder, Client, ClientLike, ReconnectPolicy};

use crate::config::{ConfigError, RedisSettings};

/// Upper bound for a single Redis command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// Capacity of fred's message broadcast channel; a reader that falls further behind
/// sees `Lagged` and resynchronises.
const MESSAGE_CAPACITY: usize = 1024;

/// What `init` does when Redis is down at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Fail at once (commands and jobs that should exit non-zero).
    FailFast,
    /// Keep retrying until Redis answers (long-running services).
    WaitForRedis,
}

fn builder(settings: &RedisSettings, start: Start) -> Result<Builder, ConfigError> {
    let mut config = settings.client_config()?;
    config.fail_fast = start == Start::FailFast;
    let mut builder = Builder::from_config(config);
    builder
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
        .with_performance_config(|perf| {
            perf.default_command_timeout = COMMAND_TIMEOUT;
            perf.broadcast_channel_capacity = MESSAGE_CAPACITY;
        })
        .with_connection_config(|conn| {
            conn.connection_timeout = COMMAND_TIMEOUT;
            conn.internal_command_timeout = COMMAND_TIMEOUT;
            // A connection whose replies stop coming (a half-open socket) is closed and
            // reconnected instead of hanging; subscribers send PINGs as a heartbeat.
            conn.unresponsive.max_timeout = Some(2 * COMMAND_TIMEOUT);
            conn.unresponsive.interval = Duration::from_secs(1);
        });
    Ok(builder)
}

/// A command client, not yet connected (call `init`).
///
/// # Errors
/// [`ConfigError`] when `REDIS_URL` or `OFERTASWS_PREFIX` is invalid.
pub fn client(settings: &RedisSettings, start: Start) -> Result<Client, ConfigError> {
    builder(settings, start)?.build().map_err(|e| {
        ConfigError::new(
            "REDIS_URL",
            crate::config::redact_url(&settings.redis_url),
            e.details(),
        )
    })
}

/// A subscriber client, not yet connected (call `init`, then `manage_subscriptions`).
///
/// # Errors
/// [`ConfigError`] when `REDIS_URL` or `OFERTASWS_PREFIX` is invalid.
pub fn subscriber(settings: &RedisSettings, start: Start) -> Result<SubscriberClient, ConfigError> {
    builder(settings, start)?
        .build_subscriber_client()
        .map_err(|e| {
            ConfigError::new(
                "REDIS_URL",
                crate::config::redact_url(&settings.redis_url),
                e.details(),
            )
        })
}

/// Connects `client`, waiting until the first connection is up.
///
/// # Errors
/// The connection error when Redis cannot be reached.
pub async fn connect<C: ClientLike>(client: &C) -> Result<(), fred::error::Error> {
    client.init().await.map(drop)
}

/// Publishes `payload` on `channel` and returns how many subscribers received it.
///
/// Every publish of the services goes through here, so the count means the same on
/// every topology: on a single server or a Sentinel group it is `PUBLISH`'s reply.
///
/// # Errors
/// The Redis error when the message cannot be published.
pub async fn publish(
    client: &Client,
    channel: &str,
    payload: String,
) -> Result<u64, fred::error::Error> {
    use fred::prelude::PubsubInterface;
    let receivers: i64 = client.publish(channel, payload).await?;
    Ok(receivers.max(0) as u64)
}

/// Whether a Redis failure may go away by itself: the connection or the topology is
/// changing (I/O, timeouts, a failover or resharding under way, a replica that is still
/// loading or was just demoted). An error reply to a valid command (a script error, a
/// wrong type) is not: retrying it would fail the same way.
pub fn is_transient(error: &fred::error::Error) -> bool {
    use fred::error::ErrorKind;
    const TRANSIENT_REPLIES: [&str; 6] = [
        "READONLY",
        "LOADING",
        "MASTERDOWN",
        "TRYAGAIN",
        "CLUSTERDOWN",
        "BUSY",
    ];
    match error.kind() {
        ErrorKind::IO
        | ErrorKind::Timeout
        | ErrorKind::Canceled
        | ErrorKind::Backpressure
        | ErrorKind::Cluster
        | ErrorKind::Routing
        | ErrorKind::Sentinel => true,
        _ => TRANSIENT_REPLIES
            .iter()
            .any(|reply| error.details().starts_with(reply)),
    }
}

#[cfg(test)]
mod tests {
    use fred::error::{Error, ErrorKind};

    #[test]
    fn connection_and_failover_errors_are_transient_error_replies_are_not() {
        assert!(super::is_transient(&Error::new(ErrorKind::IO, "reset")));
        assert!(super::is_transient(&Error::new(ErrorKind::Timeout, "")));
        assert!(super::is_transient(&Error::new(
            ErrorKind::Unknown,
            "READONLY You can't write against a read only replica."
        )));
        assert!(!super::is_transient(&Error::new(
            ErrorKind::Unknown,
            "ERR bodies of version 1-a are missing"
        )));
        assert!(!super::is_transient(&Error::new(
            ErrorKind::InvalidArgument,
            ""
        )));
    }
}
