#!/usr/bin/env bash
# Refresh end to end through Redis: a real `refresh-service run` daemon (release build)
# over a database seeded like bench/refresh.sh. Each of RUNS runs changes one offer, then
# times from the PUBLISH of a refresh request on P:refresh to the receipt of
# `snapshot.updated` on P:events (subscribed before the first run), and checks that the
# request's outcome is `success`. Prints median and p90, next to the in-process
# `execution_time_ms` of the same refreshes (bench/refresh.sh measures only that one).
#
# The timing runs in bench/studies/src/bin/latency/: one process, one monotonic
# clock, the same Redis client the services use, no interpreter in the measured path.
# The daemon's start-up refresh (it finds no snapshot) warms it up before the first run.
# Raw CSV: .local/bench/refresh-e2e.csv; daemon log: .local/bench/refresh-e2e-logs/.
#
# REFRESH_BIN=DIR times DIR/refresh-service instead of this build's (compare builds).
#
# Usage: bench/refresh-e2e.sh [OFFERS (default 7000)] [RUNS (default 20)]
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

offers="${1:-7000}"
runs="${2:-20}"
status_port="${BENCH_REFRESH_PORT:-18190}"

bench_build -p ofertasws-studies --bin latency
bench_setup refresh-e2e "$offers"
bench_load before
bench_start_refresher "$status_port"
echo "offers: $offers; runs: $runs; refresh-service run (release), private PostgreSQL and Redis"
# A refresher of this build builds deltas after each refresh; the next run waits for them,
# as production's refreshes, hours apart, never overlap them. An older build builds none:
# set BENCH_DELTAS_TIMEOUT_MS=0 for it.
"$BENCH_BIN/latency" --runs "$runs" --deltas-timeout-ms "${BENCH_DELTAS_TIMEOUT_MS:-30000}" \
  --out "$BENCH_OUT/refresh-e2e.csv" refresh
bench_load after
