//! Classic against sharded pub/sub for `P:events` on a Cluster: as many fred subscribers
//! as a fleet of API replicas, one event of `snapshot.updated`'s size at a time. The test
//! proves both modes reach every subscriber; for each it prints the delivery time to every
//! subscriber, the cluster-bus messages and output bytes per event, and where the
//! subscriptions (the delivery work) land. CI sends a few events; `bench/pubsub.sh` sends
//! enough (`BENCH_PUBSUB_EVENTS`) for the README's figures.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fred::clients::SubscriberClient;
use fred::prelude::{ClientLike, EventInterface, PubsubInterface};
use tokio::sync::Notify;

use shared::config::RedisSettings;
use shared::redis::Start;

use crate::blocking;
use system_tests::Scratch;
use system_tests::servers::RedisServer;
use system_tests::servers::redis_cluster::RedisCluster;

const SUBSCRIBERS: usize = 50;
/// Events per mode unless `BENCH_PUBSUB_EVENTS` says otherwise.
const EVENTS: usize = 20;
/// About the size of a `snapshot.updated` event with its trace context.
const EVENT_BYTES: usize = 260;

/// Counters of one node, summed over the cluster where it makes sense.
#[derive(Default, Clone, Copy)]
struct Counters {
    bus_messages: u64,
    output_bytes: u64,
    cpu_ms: u64,
}

fn counters(node: &RedisServer) -> Counters {
    let number = |section: &str, field: &str| -> f64 {
        node.info(section, field)
            .and_then(|v| v.parse().ok())
            .unwrap_or_default()
    };
    let bus = node.cli(&["CLUSTER", "INFO"]);
    let bus_sent: u64 = bus
        .lines()
        .filter_map(|line| line.trim().split_once(':'))
        .filter(|(name, _)| name.starts_with("cluster_stats_messages_publish"))
        .filter(|(name, _)| name.ends_with("_sent"))
        .filter_map(|(_, value)| value.parse::<u64>().ok())
        .sum();
    Counters {
        bus_messages: bus_sent,
        output_bytes: number("stats", "total_net_output_bytes") as u64,
        cpu_ms: ((number("cpu", "used_cpu_sys") + number("cpu", "used_cpu_user")) * 1000.0) as u64,
    }
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_and_sharded_pubsub_both_reach_every_subscriber_on_a_cluster() {
    let events: usize = std::env::var("BENCH_PUBSUB_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(EVENTS);
    let scratch = Scratch::new("pubsub");
    let cluster = blocking(|| RedisCluster::start(&scratch));
    let settings = RedisSettings::new(cluster.url(), "measure");
    let publisher = shared::redis::client(&settings, Start::FailFast).expect("client");
    shared::redis::connect(&publisher).await.expect("connected");
    println!(
        "{SUBSCRIBERS} subscribers, {events} events of {EVENT_BYTES} bytes, one at a time, 3 + 3 node cluster"
    );
    for sharded in [false, true] {
        let mode = if sharded { "sharded" } else { "classic" };
        let channel = format!("measure:{mode}:events");
        let received = Arc::new(AtomicUsize::new(0));
        let arrived = Arc::new(Notify::new());
        let mut subscribers: Vec<SubscriberClient> = Vec::new();
        for _ in 0..SUBSCRIBERS {
            let subscriber = shared::redis::subscriber(&settings, Start::FailFast).expect("sub");
            shared::redis::connect(&subscriber)
                .await
                .expect("connected");
            let mut messages = subscriber.message_rx();
            let (received, arrived) = (received.clone(), arrived.clone());
            tokio::spawn(async move {
                while messages.recv().await.is_ok() {
                    received.fetch_add(1, Ordering::SeqCst);
                    arrived.notify_one();
                }
            });
            if sharded {
                subscriber
                    .ssubscribe(channel.as_str())
                    .await
                    .expect("ssubscribe");
            } else {
                subscriber
                    .subscribe(channel.as_str())
                    .await
                    .expect("subscribe");
            }
            subscribers.push(subscriber);
        }
        let placement: Vec<String> = blocking(|| {
            let kind = if sharded { "SHARDNUMSUB" } else { "NUMSUB" };
            cluster
                .nodes
                .iter()
                .map(|n| {
                    n.cli(&["PUBSUB", kind, &channel])
                        .lines()
                        .nth(1)
                        .unwrap_or("0")
                        .to_owned()
                })
                .collect()
        });
        let before: Vec<Counters> = blocking(|| cluster.nodes.iter().map(counters).collect());
        let mut latencies = Vec::with_capacity(events);
        let started = Instant::now();
        for i in 0..events {
            let payload = format!("{i:08}{}", "x".repeat(EVENT_BYTES - 8));
            let sent = Instant::now();
            let _: i64 = if sharded {
                publisher.spublish(channel.as_str(), payload).await
            } else {
                publisher.publish(channel.as_str(), payload).await
            }
            .expect("published");
            let target = (i + 1) * SUBSCRIBERS;
            while received.load(Ordering::SeqCst) < target {
                tokio::time::timeout(Duration::from_secs(10), arrived.notified())
                    .await
                    .expect("every subscriber gets every event");
            }
            latencies.push(sent.elapsed());
        }
        let took = started.elapsed();
        let after: Vec<Counters> = blocking(|| cluster.nodes.iter().map(counters).collect());
        latencies.sort_unstable();
        let per_event = |f: fn(&Counters) -> u64| -> Vec<f64> {
            before
                .iter()
                .zip(&after)
                .map(|(b, a)| (f(a) - f(b)) as f64 / events as f64)
                .collect()
        };
        let bus: f64 = per_event(|c| c.bus_messages).iter().sum();
        let bytes = per_event(|c| c.output_bytes);
        let cpu = per_event(|c| c.cpu_ms);
        println!(
            "{mode}: all {SUBSCRIBERS} received p50 {:?} p99 {:?} ({:.0} events/s); bus messages per event {bus:.2}; \
             output bytes per event by node {:?}; CPU µs per event by node {:?}; subscriptions by node {placement:?}",
            percentile(&latencies, 50),
            percentile(&latencies, 99),
            events as f64 / took.as_secs_f64(),
            bytes.iter().map(|b| b.round() as u64).collect::<Vec<_>>(),
            cpu.iter()
                .map(|c| (c * 1000.0).round() as u64)
                .collect::<Vec<_>>(),
        );
        assert_eq!(received.load(Ordering::SeqCst), events * SUBSCRIBERS);
        for subscriber in subscribers {
            let _ = subscriber.quit().await;
        }
    }
}
