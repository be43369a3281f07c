//! A Redis Cluster of six redis-server processes (three primaries, each with one
//! replica), as Debian's redis-server runs it. Who owns a slot and who is primary is
//! always asked of the nodes themselves, so the answers hold after a failover too.

use std::process::{Command, Stdio};
use std::time::Instant;

use super::redis_server::RedisServer;
use super::redis_server::{FORM, SILENCE_MS, data_node_args, is_primary, replica_in_sync};
use crate::ports::free_port;
use crate::scratch::Scratch;
use crate::wait::poll_until;

/// One line of `CLUSTER NODES`.
struct ClusterNode {
    id: String,
    port: u16,
    primary: bool,
    failed: bool,
    primary_id: String,
    slots: Vec<(u16, u16)>,
}

fn parse_cluster_nodes(text: &str) -> Vec<ClusterNode> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = fields
                .get(1)?
                .split(['@', ','])
                .next()?
                .rsplit(':')
                .next()?;
            let flags: Vec<&str> = fields.get(2)?.split(',').collect();
            let slots = fields
                .iter()
                .skip(8)
                .filter_map(|range| {
                    let (from, to) = range.split_once('-').unwrap_or((range, range));
                    Some((from.parse().ok()?, to.parse().ok()?))
                })
                .collect();
            Some(ClusterNode {
                id: fields[0].to_owned(),
                port: port.parse().ok()?,
                primary: flags.contains(&"master"),
                failed: flags.contains(&"fail"),
                primary_id: fields.get(3)?.to_string(),
                slots,
            })
        })
        .collect()
}

/// A Redis Cluster of six nodes: three primaries, each with one replica.
pub struct RedisCluster {
    /// The six nodes; which are primaries changes with failovers.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts the nodes, joins them with `redis-cli --cluster create` and waits until
    /// every node sees all slots served and every replica is in sync. Blocking.
    pub fn start(scratch: &Scratch) -> Self {
        let nodes: Vec<RedisServer> = (0..6)
            .map(|i| {
                let mut args = data_node_args();
                args.extend(
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        SILENCE_MS,
                        "--cluster-port",
                        &free_port().to_string(),
                        // A replica cut off from its primary can still be promoted.
                        "--cluster-replica-validity-factor",
                        "0",
                    ]
                    .map(str::to_owned),
                );
                RedisServer::launch(scratch, &format!("node-{i}"), None, args)
            })
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(nodes.iter().map(RedisServer::addr))
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli --cluster create runs");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self { nodes };
        poll_until(FORM, "the cluster to form", || cluster.healthy(6));
        cluster
    }

    /// Whether every running node reports `cluster_state:ok` and the same three
    /// primaries serving all slots, and every replica among `expected` running nodes is
    /// in sync.
    fn healthy(&self, expected: usize) -> bool {
        let running: Vec<&RedisServer> = self.nodes.iter().filter(|n| n.is_running()).collect();
        let serving = |node: &&RedisServer| {
            let Ok(nodes) = node.try_cli(&["CLUSTER", "NODES"]) else {
                return false;
            };
            let table = parse_cluster_nodes(&nodes);
            let owners = table
                .iter()
                .filter(|n| n.primary && !n.failed && !n.slots.is_empty());
            let covered: u32 = owners
                .map(|n| {
                    n.slots
                        .iter()
                        .map(|(a, b)| u32::from(b - a) + 1)
                        .sum::<u32>()
                })
                .sum();
            covered == 16384
                && node
                    .try_cli(&["CLUSTER", "INFO"])
                    .is_ok_and(|info| info.contains("cluster_state:ok"))
        };
        running.len() == expected
            && running.iter().all(serving)
            && running
                .iter()
                .filter(|n| !is_primary(n))
                .all(|n| replica_in_sync(n))
    }

    /// The `REDIS_URL` of the cluster: every node as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self.nodes[1..]
            .iter()
            .map(|n| format!("node={}", n.addr()))
            .collect();
        format!(
            "redis-cluster://{}?{}",
            self.nodes[0].addr(),
            seeds.join("&")
        )
    }

    fn live_node(&self) -> &RedisServer {
        self.nodes
            .iter()
            .find(|n| n.is_running())
            .expect("a running node")
    }

    fn node_on(&self, port: u16) -> &RedisServer {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .expect("a node of ours")
    }

    fn table(&self) -> Vec<ClusterNode> {
        parse_cluster_nodes(&self.live_node().cli(&["CLUSTER", "NODES"]))
    }

    /// The hash slot of `key`, as the cluster computes it.
    pub fn slot_of(&self, key: &str) -> u16 {
        let reply = self.live_node().cli(&["CLUSTER", "KEYSLOT", key]);
        reply.trim().parse().expect("a slot number")
    }

    /// The primary serving `key`'s slot now.
    pub fn primary_for(&self, key: &str) -> &RedisServer {
        let slot = self.slot_of(key);
        let owner = self
            .table()
            .into_iter()
            .find(|n| {
                n.primary && !n.failed && n.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
            })
            .expect("a primary serves every slot");
        self.node_on(owner.port)
    }

    /// The primaries serving slots now, in port order.
    pub fn primaries(&self) -> Vec<&RedisServer> {
        let mut ports: Vec<u16> = self
            .table()
            .into_iter()
            .filter(|n| n.primary && !n.failed && !n.slots.is_empty())
            .map(|n| n.port)
            .collect();
        ports.sort_unstable();
        ports.into_iter().map(|p| self.node_on(p)).collect()
    }

    /// The replica of `primary`.
    pub fn replica_of(&self, primary: &RedisServer) -> &RedisServer {
        let table = self.table();
        let id = &table
            .iter()
            .find(|n| n.port == primary.port)
            .expect("the primary is listed")
            .id;
        let replica = table
            .iter()
            .find(|n| &n.primary_id == id)
            .expect("every primary has a replica");
        self.node_on(replica.port)
    }

    /// Waits until `replica` has been promoted and the five remaining nodes agree the
    /// cluster is whole again; returns when it said it was primary.
    pub fn wait_promoted(&self, replica: &RedisServer) -> Instant {
        poll_until(FORM, "the replica to be promoted", || is_primary(replica));
        let promoted = Instant::now();
        poll_until(FORM, "the cluster to heal", || {
            self.healthy(5) && self.primaries().iter().any(|p| p.port == replica.port)
        });
        promoted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_lines_are_read_with_their_slots() {
        let table = parse_cluster_nodes(
            "a1 127.0.0.1:7101@17101 myself,master - 0 0 1 connected 0-5460 7000\n\
             b2 127.0.0.1:7104@17104,host slave a1 0 0 1 connected\n\
             c3 127.0.0.1:7102@17102 master,fail - 0 0 2 disconnected\n",
        );
        assert_eq!(table.len(), 3);
        assert_eq!(
            (table[0].port, table[0].primary, table[0].slots.clone()),
            (7101, true, vec![(0, 5460), (7000, 7000)])
        );
        assert_eq!((table[1].port, table[1].primary), (7104, false));
        assert_eq!(table[1].primary_id, "a1");
        assert!(table[2].failed && table[2].slots.is_empty());
    }
}
