#!/usr/bin/env bash
# api-service memory for a snapshot of OFFERS offers, as the kernel charges it: resident
# memory without shared pages (RssAnon + RssFile) plus every memfd the process holds
# (snapshot bodies live in memfds, whose pages are charged whether mapped in or not, so
# VmRSS alone misses them). Sampled from outside every 50 ms, the same way for any
# api-service binary, while the replica loads the first snapshot and then swaps to a
# second one (both are held for a moment). Prints the peak, the figures after the swap,
# VmHWM, and the target of issue 11: 2 x (gzip + zstd bytes) + 32 MiB.
#
# API_BIN=DIR runs DIR/api-service instead of target/release/api-service (compare an
# older build in the same run).
#
# Usage: bench/api-memory.sh [OFFERS (default 1000000)]
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

offers="${1:-1000000}"
api_port="${BENCH_API_PORT:-18030}"
api_bin="${API_BIN:-$BENCH_BIN}"

bench_build --bins
bench_setup api-memory "$offers"
bench_load before
"$BENCH_BIN/refresh-service" once --trigger bench >"$bench_logs/once-1.out" 2>"$bench_logs/once-1.log"

# charged PID: RssAnon + RssFile + the sizes of the memfds PID holds, in bytes.
charged() {
  local pid="$1" anon file memfds=0 fd size
  anon=$(awk '/^RssAnon:/{print $2}' "/proc/$pid/status")
  file=$(awk '/^RssFile:/{print $2}' "/proc/$pid/status")
  for fd in /proc/"$pid"/fd/*; do
    if [[ "$(readlink "$fd" 2>/dev/null)" == /memfd:* ]]; then
      size=$(stat -L -c %s "$fd" 2>/dev/null || echo 0)
      memfds=$((memfds + size))
    fi
  done
  echo "$(((anon + file) * 1024 + memfds)) $memfds"
}

samples="$bench_logs/samples.txt"
: >"$samples"
# sample PID: appends "charged memfds" every 50 ms until PID exits or sampling is stopped.
sample() {
  local pid="$1"
  while kill -0 "$pid" 2>/dev/null && [[ ! -f "$bench_logs/stop-sampling" ]]; do
    charged "$pid" >>"$samples" 2>/dev/null || true
    sleep 0.05
  done
}

rm -f "$bench_logs/stop-sampling"
API_BIND="127.0.0.1:$api_port" "$api_bin/api-service" serve >"$bench_logs/api.log" 2>&1 &
bench_api_pid=$!
bench_pids+=("$bench_api_pid")
sample "$bench_api_pid" &
sampler=$!
bench_wait_ready api-service "http://127.0.0.1:$api_port/ready" "$bench_logs/api.log"
first=$(redis-cli -u "$REDIS_URL" get "$OFERTASWS_PREFIX:{snapshot}:current" | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')

bench_change_offer 1
"$BENCH_BIN/refresh-service" once --trigger bench >"$bench_logs/once-2.out" 2>"$bench_logs/once-2.log"
meta=$(redis-cli -u "$REDIS_URL" get "$OFERTASWS_PREFIX:{snapshot}:current")
second=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["version"])' "$meta")
[[ "$second" != "$first" ]] || die "the second refresh published nothing new"
token=$("$BENCH_BIN/api-service" token --ttl 10m)
for ((i = 0; i < 1200; i++)); do
  served=$(curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:$api_port/api/v4/ofertasws/meta" |
    python3 -c 'import json,sys; print(json.load(sys.stdin).get("version",""))' 2>/dev/null || true)
  [[ "$served" == "$second" ]] && break
  sleep 0.1
done
[[ "$served" == "$second" ]] || die "api-service did not switch to $second (see $bench_logs/api.log)"
# Let the previous snapshot's last references go, then take the settled figures.
sleep 1
touch "$bench_logs/stop-sampling"
wait "$sampler" || true
read -r settled settled_memfds <<<"$(charged "$bench_api_pid")"
hwm_kb=$(awk '/^VmHWM:/{print $2}' "/proc/$bench_api_pid/status")
rss_kb=$(awk '/^VmRSS:/{print $2}' "/proc/$bench_api_pid/status")
peak=$(sort -n "$samples" | tail -n 1 | cut -d' ' -f1)

python3 - "$meta" "$peak" "$settled" "$settled_memfds" "$hwm_kb" "$rss_kb" "$offers" "$api_bin" <<'PY'
import json, sys
meta = json.loads(sys.argv[1])
peak, settled, memfds, hwm_kb, rss_kb, offers, binary = map(str, sys.argv[2:])
mib = lambda b: int(b) / 2**20
bodies = meta["gzip_bytes"] + meta["zstd_bytes"]
target = 2 * bodies + 32 * 2**20
print(f"binary: {binary}/api-service; offers: {int(offers):,}")
print(f"document {mib(meta['json_bytes']):.1f} MiB, gzip {mib(meta['gzip_bytes']):.1f} MiB, zstd {mib(meta['zstd_bytes']):.1f} MiB")
print(f"charged memory (RssAnon + RssFile + memfds): peak {mib(peak):.1f} MiB; after the swap {mib(settled):.1f} MiB, of which memfds {mib(memfds):.1f} MiB")
print(f"VmHWM {int(hwm_kb) / 1024:.1f} MiB, VmRSS after the swap {int(rss_kb) / 1024:.1f} MiB")
verdict = "met" if int(peak) <= target else "NOT met"
print(f"target 2 x (gzip + zstd) + 32 MiB = {mib(target):.1f} MiB: {verdict}")
PY
bench_load after
