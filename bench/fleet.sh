#!/usr/bin/env bash
# Fleet benchmark: REPLICAS api-service replicas (release build, default 50) on one Redis
# of their own, and ROUNDS refreshes of OFFERS offers (default 7,000, scripts/seed.sql),
# one offer changed before each. Per round: the time from the refresher's publish of
# snapshot.updated until the last replica serves the new snapshot (each replica's own log
# line of the swap), the spread of the swaps, the bytes Redis sent in the round (all
# replicas fetching both bodies) and its peak output rate over 10 ms and 100 ms windows
# (INFO stats sampled every ~2 ms, the sampler's own replies subtracted). Then each
# replica's resident memory. The README's section "A fleet of API replicas" scales these
# figures to 1,000 replicas and 1,000,000 offers.
#
# Redis is a redis-server started here on a free port (nothing else's traffic in its
# counters); PostgreSQL is the private one of scripts/services.sh, or the server named
# by BENCH_ADMIN_DATABASE_URL (a database of the run's own is created and dropped there).
# Settings of the API replicas can be passed through the environment (e.g. a fetch
# jitter). Raw CSV: .local/bench/fleet.csv; logs: .local/bench/fleet-logs/.
#
# Usage: bench/fleet.sh [REPLICAS (default 50)] [OFFERS (default 7000)] [ROUNDS (default 3)]
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

replicas="${1:-50}"
offers="${2:-7000}"
rounds="${3:-3}"
api_port="${BENCH_API_PORT:-18301}"

"$ROOT/scripts/onnxruntime.sh"
ensure_redis_installed
(cd "$ROOT" && cargo build --release --bins -q)
admin_url="${BENCH_ADMIN_DATABASE_URL:-}"
if [[ -z "$admin_url" ]]; then
  "$ROOT/scripts/services.sh" start postgres >/dev/null
  admin_url="$PRIVATE_ADMIN_DATABASE_URL"
fi
bench_db="ofertasws_bench_fleet_$$"
export DATABASE_URL="${admin_url%/*}/$bench_db"
redis_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export REDIS_URL="redis://127.0.0.1:$redis_port"
export OFERTASWS_PREFIX="bench-fleet"
export JWT_SECRET="bench-secret" REFRESH_SCHEDULE=off LOG_FORMAT=json RUST_LOG=info
bench_logs="$BENCH_OUT/fleet-logs"
rm -rf "$bench_logs"
mkdir -p "$bench_logs"

# fleet_sampler PORT CSV: until SIGTERM, asks Redis for INFO stats every ~2 ms on one
# connection and writes "unix_seconds,total_net_output_bytes,reply_bytes" rows (the
# reply_bytes of a sample are in the next sample's total and are subtracted).
fleet_sampler() {
  exec python3 - "$@" <<'PY'
import signal, socket, sys, time
port, out = int(sys.argv[1]), sys.argv[2]
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
conn = socket.create_connection(("127.0.0.1", port))
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
replies = conn.makefile("rb")
rows = []
while not stop:
    conn.sendall(b"INFO stats\r\n")
    header = replies.readline()
    body = replies.read(int(header[1:]) + 2)
    total = next(int(line.split(b":")[1]) for line in body.split(b"\r\n")
                 if line.startswith(b"total_net_output_bytes:"))
    rows.append((time.time(), total, len(header) + len(body)))
    time.sleep(0.002)
with open(out, "w") as f:
    f.writelines(f"{at:.6f},{total},{reply}\n" for at, total, reply in rows)
PY
}

# fleet_report round ROUND VERSION LOGS CSV | memory LOGS PID...: one round's figures (and
# a CSV row), or the replicas' resident memory.
fleet_report() {
  python3 - "$@" <<'PY'
import json, statistics, sys
from datetime import datetime
from pathlib import Path

def stamp(line):
    return datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp()

def logged(path, message, version):
    for raw in open(path):
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        fields = line.get("fields", {})
        if fields.get("message") == message and fields.get("snapshot.version") == version:
            return stamp(line)
    return None

if sys.argv[1] == "memory":
    logs, pids = Path(sys.argv[2]), sys.argv[3:]
    rss = [int(open(f"/proc/{pid}/statm").read().split()[1]) * 4096 / 2**20 for pid in pids]
    print(f"api-service resident memory: median {statistics.median(rss):.1f} MiB, max {max(rss):.1f} MiB, "
          f"{sum(rss):.0f} MiB for {len(rss)} replicas")
    sys.exit()
_, rnd, version, logs, csv = sys.argv[1:]
logs = Path(logs)
published = logged(logs / f"round-{rnd}.log", "snapshot published", version)
swaps = sorted(logged(p, "serving new snapshot", version) for p in logs.glob("api-service-*.log"))
samples = [tuple(float(v) for v in row.split(",")) for row in open(logs / f"sampler-{rnd}.csv")]
def sent(i, j):
    """Bytes Redis sent between samples i and j, less the sampler's own replies."""
    return samples[j][1] - samples[i][1] - sum(s[2] for s in samples[i:j])
def peak(window):
    best, j = 0.0, 0
    for i in range(len(samples)):
        while j < len(samples) and samples[j][0] - samples[i][0] < window:
            j += 1
        if j == len(samples):
            break
        best = max(best, sent(i, j) / (samples[j][0] - samples[i][0]))
    return best / 1e6
total = sent(0, len(samples) - 1)
first, last = (swaps[0] - published) * 1000, (swaps[-1] - published) * 1000
p10, p100 = peak(0.010), peak(0.100)
print(f"round {rnd}: {version}: {len(swaps)} replicas served it {first:.0f} ms (first) to {last:.0f} ms (all) "
      f"after the publish; Redis sent {total / 1e6:.1f} MB ({total / len(swaps) / 1e3:.0f} kB per replica), "
      f"peak {p10:.0f} MB/s over 10 ms, {p100:.0f} MB/s over 100 ms")
with open(csv, "a") as out:
    out.write(f"{rnd},{version},{last:.1f},{first:.1f},{total:.0f},{p10:.1f},{p100:.1f}\n")
PY
}

fleet_cleanup() {
  local pid
  for pid in "${bench_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${bench_pids[@]}"; do wait_for_exit "$pid" 150 || kill -KILL "$pid" 2>/dev/null || true; done
  psql -q -X "$admin_url" -c "drop database if exists $bench_db with (force)" >/dev/null 2>&1 || true
}
trap fleet_cleanup EXIT

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$bench_logs" --logfile "$bench_logs/redis.log" &
bench_pids+=("$!")
for ((i = 0; i < 100; i++)); do
  [[ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" == PONG ]] && break
  sleep 0.05
done
"$BENCH_BIN/refresh-service" migrate >"$bench_logs/migrate.log" 2>&1 || die "migrate failed (see $bench_logs/migrate.log)"
info "seeding $offers live offers into $bench_db"
psql -q -X "$DATABASE_URL" -v live="$offers" -f "$ROOT/scripts/seed.sql" >/dev/null
"$BENCH_BIN/refresh-service" once --trigger bench >"$bench_logs/first.out" 2>"$bench_logs/first.log" ||
  die "the first refresh failed (see $bench_logs/first.log)"

bench_load before
info "starting $replicas api-service replicas on ports $api_port…$((api_port + replicas - 1))"
for ((i = 0; i < replicas; i++)); do
  API_BIND="127.0.0.1:$((api_port + i))" "$BENCH_BIN/api-service" serve \
    >"$bench_logs/api-service-$i.log" 2>&1 &
  bench_pids+=("$!")
done
for ((i = 0; i < replicas; i++)); do
  bench_wait_ready "api-service $i" "http://127.0.0.1:$((api_port + i))/ready" "$bench_logs/api-service-$i.log"
done

echo "round,version,all_served_ms,first_served_ms,bytes_out,peak_10ms_mb_s,peak_100ms_mb_s" >"$BENCH_OUT/fleet.csv"
for ((round = 1; round <= rounds; round++)); do
  bench_change_offer "$round"
  fleet_sampler "$redis_port" "$bench_logs/sampler-$round.csv" &
  sampler=$!
  sleep 0.5
  "$BENCH_BIN/refresh-service" once --trigger bench >"$bench_logs/round-$round.out" 2>"$bench_logs/round-$round.log" ||
    die "refresh $round failed (see $bench_logs/round-$round.log)"
  version=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' "$bench_logs/round-$round.out")
  for ((i = 0; i < 600; i++)); do
    served=$(grep -l "\"serving new snapshot\".*\"$version\"\|\"$version\".*\"serving new snapshot\"" "$bench_logs"/api-service-*.log | wc -l)
    ((served == replicas)) && break
    sleep 0.1
  done
  ((served == replicas)) || die "only $served of $replicas replicas served $version within 60 s"
  sleep 0.5
  kill -TERM "$sampler"
  wait "$sampler" || true
  fleet_report round "$round" "$version" "$bench_logs" "$BENCH_OUT/fleet.csv"
done
fleet_report memory "$bench_logs" "${bench_pids[@]:1}"
bench_load after
echo "raw: $BENCH_OUT/fleet.csv"
