//! The Redis a deployment runs on: a single server, a Cluster or a Sentinel group, and
//! what a scenario asks of it whichever it is (the URL, the primaries, the replica that
//! would replace a primary, a failover).

use std::time::Instant;

use super::redis_cluster::RedisCluster;
use super::redis_sentinel::SentinelGroup;
use super::redis_server::RedisServer;

/// The Redis a deployment runs on.
pub enum Topology {
    /// One server.
    Single(RedisServer),
    /// Three primaries with a replica each.
    Cluster(RedisCluster),
    /// A primary, a replica and three sentinels.
    Sentinel(SentinelGroup),
}

impl Topology {
    /// `REDIS_URL` for the services.
    pub fn url(&self) -> String {
        match self {
            Self::Single(server) => server.url(),
            Self::Cluster(cluster) => cluster.url(),
            Self::Sentinel(group) => group.url(),
        }
    }

    /// redis-cli's arguments to reach the data: the server, a cluster node (following
    /// redirections) or the current primary.
    pub fn cli_args(&self) -> Vec<String> {
        let (port, cluster) = match self {
            Self::Single(server) => (server.port, false),
            Self::Cluster(cluster) => (cluster.primaries()[0].port, true),
            Self::Sentinel(group) => (group.primary().port, false),
        };
        let mut args = vec!["-h".to_owned(), "127.0.0.1".to_owned()];
        args.extend(["-p".to_owned(), port.to_string()]);
        if cluster {
            args.push("-c".to_owned());
        }
        args
    }

    /// The primaries holding data now (one, unless a Cluster).
    pub fn primaries(&self) -> Vec<&RedisServer> {
        match self {
            Self::Single(server) => vec![server],
            Self::Cluster(cluster) => cluster.primaries(),
            Self::Sentinel(group) => vec![group.primary()],
        }
    }

    /// The primary holding `key` now and the replica that would replace it.
    pub fn primary_and_replica_for(&self, key: &str) -> (&RedisServer, &RedisServer) {
        match self {
            Self::Single(_) => panic!("a single server has no replica"),
            Self::Cluster(cluster) => {
                let primary = cluster.primary_for(key);
                (primary, cluster.replica_of(primary))
            }
            Self::Sentinel(group) => {
                let primary = group.primary();
                (primary, group.other(primary))
            }
        }
    }

    /// Waits until `replica` has replaced its failed primary and every client-facing
    /// view (the cluster's nodes, the sentinels) agrees; returns when it said it was
    /// primary.
    pub fn wait_promoted(&self, replica: &RedisServer) -> Instant {
        match self {
            Self::Single(_) => panic!("a single server has no replica"),
            Self::Cluster(cluster) => cluster.wait_promoted(replica),
            Self::Sentinel(group) => group.wait_promoted(replica),
        }
    }

    /// How many clients subscribe to `channel` on each primary (`PUBSUB NUMSUB`), by
    /// port: on a Cluster a client's classic subscription lives on the one node it chose,
    /// and a node that does not answer (being failed over) counts none. Blocking.
    pub fn subscribers(&self, channel: &str) -> Vec<(u16, u64)> {
        self.primaries()
            .iter()
            .map(|primary| {
                let reply = primary.try_cli(&["PUBSUB", "NUMSUB", channel]);
                let count = reply
                    .ok()
                    .and_then(|r| r.lines().nth(1).and_then(|n| n.trim().parse().ok()))
                    .unwrap_or(0);
                (primary.port, count)
            })
            .collect()
    }

    /// The single server (scenarios that kill and restart the whole of Redis).
    fn single(&self) -> &RedisServer {
        match self {
            Self::Single(server) => server,
            _ => panic!("only a single Redis server is killed and restarted whole"),
        }
    }

    /// SIGKILL the server.
    pub fn kill(&self) {
        self.single().kill();
    }

    /// Starts the killed server again, empty.
    pub fn restart(&self) {
        self.single().restart();
    }
}
