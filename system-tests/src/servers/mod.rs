//! Private servers a scenario can stop, kill and restart, each on a free port of its own
//! with its data and logs in the scenario's scratch folder: PostgreSQL clusters
//! ([`postgres`]), redis-server alone ([`redis_server`]), as a Cluster ([`redis_cluster`])
//! or as a Sentinel group ([`redis_sentinel`]), and the Redis a deployment runs on
//! ([`Topology`]).

pub mod postgres;
pub mod redis_cluster;
pub mod redis_sentinel;
pub mod redis_server;
mod topology;

pub use postgres::{PgCluster, own_cluster, shared_cluster};
pub use redis_server::RedisServer;
pub use topology::Topology;
