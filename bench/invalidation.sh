#!/usr/bin/env bash
# Invalidation latency: REPLICAS api-service replicas (release build) and a real
# `refresh-service run` over 7,000 offers (scripts/seed.sql). For each of REFRESHES
# refreshes (one offer changed before each, so each publishes), the time from the receipt
# of `snapshot.updated` to each replica answering with the new ETag; p50 and p99 per
# replica and for all replicas switched.
#
# bench/studies/src/bin/latency/ subscribes to P:events, publishes the refresh
# request and polls every replica with authenticated HEAD requests, back to back on one
# keep-alive connection each (BENCH_POLL_GAP_US puts a pause between polls), from before
# the request until that replica serves the new ETag. Latencies start at the refresher's
# log timestamp of the snapshot.updated publish. "Answers with the new ETag" is the receipt
# of the first new-ETag answer, an upper bound: the switch happened after the last
# old-ETag poll was sent, and the width of that window (the polling resolution) is
# printed too. "Swaps" is the replica's own log timestamp of the switch, without polling.
# Raw CSV: .local/bench/invalidation.csv (polls) and invalidation-latency.csv; logs:
# .local/bench/invalidation-logs/.
#
# Usage: bench/invalidation.sh [REFRESHES (default 50)] [REPLICAS (default 3)]
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

refreshes="${1:-50}"
replicas="${2:-3}"
status_port="${BENCH_REFRESH_PORT:-18191}"
api_port="${BENCH_API_PORT:-18201}"

bench_build -p ofertasws-studies --bin latency
bench_setup invalidation 7000
bench_load before
bench_start_refresher "$status_port"
targets=()
for ((i = 0; i < replicas; i++)); do
  bench_start_api $((api_port + i))
  targets+=(--replica "http://127.0.0.1:$((api_port + i))/api/v4/ofertasws")
done
BENCH_TOKEN=$("$BENCH_BIN/api-service" token --ttl 1h)
export BENCH_TOKEN
echo "$replicas api-service replicas (release) on ports $api_port…$((api_port + replicas - 1)), refresh-service run, 7,000 offers"
"$BENCH_BIN/latency" --runs "$refreshes" --out "$BENCH_OUT/invalidation.csv" \
  invalidation "${targets[@]}" --poll-gap-us "${BENCH_POLL_GAP_US:-0}"
bench_load after
# Latency from the publish of snapshot.updated, as the refresher logs it ("snapshot
# published", µs timestamp, just before the PUBLISH), to (a) the first HEAD answer with
# the new ETag (the polls' wall-clock times) and (b) the replica's own "serving new
# snapshot" log line (the moment it swaps, no polling involved). One machine, one clock.
python3 - "$BENCH_OUT/invalidation.csv" "$bench_logs" "$BENCH_OUT/invalidation-latency.csv" <<'PY'
import csv, json, sys
from datetime import datetime
from pathlib import Path

def stamps(path, message):
    """Unix µs of the first log line with this message, per snapshot version."""
    found = {}
    for line in open(path):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        fields = event.get("fields", {})
        if fields.get("message") == message and fields.get("snapshot.version") not in found:
            at = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
            found[fields["snapshot.version"]] = at.timestamp() * 1e6
    return found

def pct(values, p):
    values = sorted(values)
    return values[max(1, min(len(values), -(-len(values) * p // 100))) - 1]

polls = list(csv.DictReader(open(sys.argv[1])))
logs = Path(sys.argv[2])
published = stamps(logs / "refresh-service.log", "snapshot published")
swapped = [stamps(log, "serving new snapshot") for log in sorted(logs.glob("api-service-*.log"))]
series = {"answers with the new ETag (HEAD polls)": [], "swaps (its own log line)": []}
slowest = {name: {} for name in series}
with open(sys.argv[3], "w") as out:
    out.write("version,replica,served_ms,window_start_ms,swapped_ms\n")
    for row in polls:
        version, replica = row["version"], int(row["replica"])
        t0 = published[version]
        served = (float(row["first_new_unix_us"]) - t0) / 1000
        window_start = (float(row["last_old_sent_unix_us"]) - t0) / 1000
        swap = (swapped[replica][version] - t0) / 1000
        out.write(f"{version},{replica},{served:.3f},{window_start:.3f},{swap:.3f}\n")
        for name, ms in zip(series, (served, swap)):
            series[name].append(ms)
            slowest[name][version] = max(slowest[name].get(version, ms), ms)
print(f"invalidation, from the publish of snapshot.updated (refresher log) until a replica … "
      f"({len(polls)} samples, {len(slowest['swaps (its own log line)'])} refreshes):")
for name, values in series.items():
    all_ = list(slowest[name].values())
    print(f"  {name}: each replica p50 {pct(values, 50):.2f} ms, p99 {pct(values, 99):.2f} ms, max {max(values):.2f} ms;"
          f" all {len(swapped)} replicas p50 {pct(all_, 50):.2f} ms, p99 {pct(all_, 99):.2f} ms, max {max(all_):.2f} ms")
print(f"raw: {sys.argv[3]}")
PY
