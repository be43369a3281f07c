#!/usr/bin/env bash
# Pub/sub benchmark: classic PUBLISH against sharded SPUBLISH for the events channel on a
# Redis Cluster (3 primaries + 3 replicas, started by the test on free ports), with 50 fred
# subscribers standing in for 50 API replicas and EVENTS events of snapshot.updated's
# size, each published once the previous one reached every subscriber. Prints, per mode,
# the delivery time to all subscribers (p50 / p99), cluster-bus messages, output bytes and
# Redis CPU per event by node, and where the subscriptions landed: the two modes side by
# side in one run. It is the topology suite's pub/sub test with more events (CI sends 20);
# the README's "Redis Cluster and Sentinel" section has the figures.
#
# Usage: bench/pubsub.sh [EVENTS (default 2000)]
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

ensure_redis_installed
cd "$ROOT"
BENCH_PUBSUB_EVENTS="${1:-2000}" cargo test --release -q -p system-tests \
  --test topologies pubsub:: -- --nocapture 2>&1 | grep -E "subscribers|^(classic|sharded):|test result"
