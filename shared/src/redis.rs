//! Building fred clients the way both services need them: reconnecting forever, commands
//! bounded by a timeout (so an outage surfaces as an error instead of a hang), and
//! subscribers that resubscribe by themselves after a reconnect. Also what has to be done
//! differently on a Redis Cluster: counting a message's subscribers across every node,
//! and waiting for a write to reach the replica of the node that took it.

use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::{Builder, Client, ClientLike, PubsubInterface, ReconnectPolicy};
use fred::types::{ClusterHash, CustomCommand, Value};

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

/// How long one node may take to say how many subscribers it has.
const NUMSUB_TIMEOUT: Duration = Duration::from_secs(1);

/// Publishes `payload` on `channel` and returns how many subscribers received it.
///
/// Every publish of the services goes through here, so the count means the same on
/// every topology: on a single server or a Sentinel group it is `PUBLISH`'s reply. On a
/// Cluster the message reaches every node over the cluster bus, but `PUBLISH` counts
/// only the subscribers of the node that took it (fred picks any primary); when that is
/// none, the subscribers are counted on every primary with `PUBSUB NUMSUB` instead.
///
/// # Errors
/// The Redis error when the message cannot be published, or when no node can be asked
/// for its subscribers.
pub async fn publish(
    client: &Client,
    channel: &str,
    payload: String,
) -> Result<u64, fred::error::Error> {
    let receivers: i64 = client.publish(channel, payload).await?;
    if receivers > 0 || !client.is_clustered() {
        return Ok(receivers.max(0) as u64);
    }
    subscribers_anywhere(client, channel).await
}

/// `PUBSUB NUMSUB channel` summed over every primary the client is connected to. A node
/// that does not answer within [`NUMSUB_TIMEOUT`] (being failed over) counts as none.
async fn subscribers_anywhere(client: &Client, channel: &str) -> Result<u64, fred::error::Error> {
    let mut asks = tokio::task::JoinSet::new();
    for node in client.active_connections() {
        let (client, channel) = (client.clone(), channel.to_owned());
        asks.spawn(async move {
            let on_node = client.with_cluster_node(node);
            let reply = tokio::time::timeout(
                NUMSUB_TIMEOUT,
                on_node.pubsub_numsub::<Vec<Value>, _>(channel),
            )
            .await;
            match reply {
                Ok(Ok(reply)) => Ok(reply.get(1).and_then(Value::as_u64).unwrap_or(0)),
                Ok(Err(e)) => Err(e),
                Err(_) => Ok(0),
            }
        });
    }
    let (mut total, mut last_error, mut answered) = (0, None, false);
    while let Some(asked) = asks.join_next().await {
        match asked {
            Ok(Ok(count)) => {
                total += count;
                answered = true;
            }
            Ok(Err(e)) => last_error = Some(e),
            Err(e) => {
                last_error = Some(fred::error::Error::new(
                    fred::error::ErrorKind::Unknown,
                    e.to_string(),
                ))
            }
        }
    }
    match last_error {
        Some(e) if !answered => Err(e),
        _ => Ok(total),
    }
}

/// Whether a write reached a replica before the caller went on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replication {
    /// This many replicas acknowledged it.
    Acknowledged(u64),
    /// The primary has replicas, but none acknowledged within the wait (or it could not
    /// be asked): a failover now could lose the write.
    Unconfirmed,
    /// The primary has no replica connected (a single server, or its replicas are down):
    /// nothing to wait for.
    NoReplica,
}

impl Replication {
    /// The metric label: `acknowledged`, `unconfirmed` or `no_replica`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Acknowledged(_) => "acknowledged",
            Self::Unconfirmed => "unconfirmed",
            Self::NoReplica => "no_replica",
        }
    }
}

/// Waits up to `timeout` until a replica of the primary holding `key` has every write this
/// client made there (`WAIT 1`), when that primary has a replica at all. Asked on the
/// primary owning `key`'s slot on a Cluster; fred keeps one connection per node, the one
/// that made the writes. Never fails: a check that cannot be made is `Unconfirmed`.
pub async fn wait_for_replica(client: &Client, key: &str, timeout: Duration) -> Replication {
    let slot = ClusterHash::Custom(fred::util::redis_keyslot(key.as_bytes()));
    let info = CustomCommand::new_static("INFO", slot.clone(), false);
    let replicas = match client.custom::<String, _>(info, vec!["replication"]).await {
        Ok(text) => text.lines().find_map(|line| {
            line.trim()
                .strip_prefix("connected_slaves:")?
                .parse::<u64>()
                .ok()
        }),
        Err(e) => {
            tracing::warn!(error = %e, "cannot ask the primary for its replicas");
            return Replication::Unconfirmed;
        }
    };
    if replicas.unwrap_or(0) == 0 {
        return Replication::NoReplica;
    }
    let wait = CustomCommand::new_static("WAIT", slot, true);
    let millis = timeout.as_millis().min(i64::MAX as u128) as i64;
    match client.custom::<i64, _>(wait, vec![1, millis]).await {
        Ok(acknowledged) if acknowledged > 0 => Replication::Acknowledged(acknowledged as u64),
        Ok(_) => Replication::Unconfirmed,
        Err(e) => {
            tracing::warn!(error = %e, "cannot wait for a replica");
            Replication::Unconfirmed
        }
    }
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
