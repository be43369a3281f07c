//! A Sentinel group: a primary, its replica and three sentinels watching them (quorum
//! 2), as Debian's redis-server runs them (`redis-server sentinel.conf --sentinel`).

use std::fs;
use std::time::Instant;

use super::redis_server::RedisServer;
use super::redis_server::{FORM, SILENCE_MS, data_node_args, is_primary, replica_in_sync};
use crate::scratch::Scratch;
use crate::wait::poll_until;

/// The service name the sentinels monitor.
pub const SENTINEL_SERVICE: &str = "ofertasws";

/// A primary, its replica and three sentinels watching them (quorum 2).
pub struct SentinelGroup {
    /// The two data nodes; either may be primary.
    pub data: Vec<RedisServer>,
    /// The three sentinels.
    pub sentinels: Vec<RedisServer>,
}

impl SentinelGroup {
    /// Starts the group and waits until every sentinel knows the replica and the other
    /// two sentinels. Blocking.
    pub fn start(scratch: &Scratch) -> Self {
        let primary = RedisServer::launch(scratch, "primary", None, data_node_args());
        let mut args = data_node_args();
        args.extend(["--replicaof".to_owned(), "127.0.0.1".to_owned()]);
        args.push(primary.port.to_string());
        let replica = RedisServer::launch(scratch, "replica", None, args);
        let sentinels = (0..3)
            .map(|i| {
                let name = format!("sentinel-{i}");
                let dir = scratch.join(&name);
                fs::create_dir_all(&dir).expect("sentinel folder");
                let config = dir.join("sentinel.conf");
                let service = SENTINEL_SERVICE;
                fs::write(
                    &config,
                    format!(
                        "sentinel monitor {service} 127.0.0.1 {} 2\n\
                         sentinel down-after-milliseconds {service} {SILENCE_MS}\n\
                         sentinel failover-timeout {service} 10000\n\
                         sentinel parallel-syncs {service} 1\n",
                        primary.port
                    ),
                )
                .expect("sentinel.conf written");
                RedisServer::launch(scratch, &name, Some(config), vec!["--sentinel".into()])
            })
            .collect();
        let group = Self {
            data: vec![primary, replica],
            sentinels,
        };
        poll_until(FORM, "the sentinels to know each other", || {
            replica_in_sync(&group.data[1])
                && group.sentinels.iter().all(|s| {
                    let state = s
                        .try_cli(&["SENTINEL", "MASTER", SENTINEL_SERVICE])
                        .unwrap_or_default();
                    let fields: Vec<&str> = state.lines().collect();
                    let value = |name: &str| {
                        fields
                            .iter()
                            .position(|f| *f == name)
                            .and_then(|i| fields.get(i + 1))
                            .copied()
                    };
                    value("flags") == Some("master")
                        && value("num-slaves") == Some("1")
                        && value("num-other-sentinels") == Some("2")
                })
        });
        group
    }

    /// The `REDIS_URL` of the group: the sentinels, and the service they monitor.
    pub fn url(&self) -> String {
        let others: Vec<String> = self.sentinels[1..]
            .iter()
            .map(|s| format!("&node={}", s.addr()))
            .collect();
        format!(
            "redis-sentinel://{}?sentinelServiceName={SENTINEL_SERVICE}{}",
            self.sentinels[0].addr(),
            others.concat()
        )
    }

    fn announced_primary(&self) -> Option<u16> {
        let reply =
            self.sentinels[0].cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_SERVICE]);
        reply.lines().nth(1)?.trim().parse().ok()
    }

    /// The data node the sentinels name as primary.
    pub fn primary(&self) -> &RedisServer {
        let port = self
            .announced_primary()
            .expect("the sentinels name a primary");
        self.data
            .iter()
            .find(|n| n.port == port)
            .expect("a node of ours")
    }

    /// The data node that is not `node`.
    pub fn other(&self, node: &RedisServer) -> &RedisServer {
        self.data
            .iter()
            .find(|n| n.port != node.port)
            .expect("two data nodes")
    }

    /// Waits until `replica` has been promoted and every sentinel names it; returns when
    /// it said it was primary.
    pub fn wait_promoted(&self, replica: &RedisServer) -> Instant {
        poll_until(FORM, "the replica to be promoted", || is_primary(replica));
        let promoted = Instant::now();
        poll_until(FORM, "the sentinels to name the new primary", || {
            self.sentinels.iter().all(|s| {
                let reply = s
                    .try_cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_SERVICE])
                    .unwrap_or_default();
                reply.lines().nth(1).map(str::trim) == Some(&replica.port.to_string())
            })
        });
        promoted
    }
}
