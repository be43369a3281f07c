#!/usr/bin/env bash
# Soak: REQUESTS requests (wrk, bench/soak.lua: authenticated, a mix of zstd, gzip and
# identity bodies and If-None-Match revalidations) against one api-service (release
# build), while a real `refresh-service run` publishes a new snapshot every REFRESH_EVERY
# seconds (one offer changed, then `refresh-service trigger --wait`). The api-service RSS
# (VmRSS of /proc/PID/status) is sampled every second throughout. Prints PASS/FAIL lines
# and exits non-zero on any FAIL:
#   - at least REQUESTS requests completed;
#   - no errors: no "Non-2xx or 3xx responses" and no socket errors in wrk's report;
#   - every refresh published a new snapshot, and the api-service serves the last one;
#   - RSS not growing: the mean of the last tenth of the samples is within 10 % of the
#     mean of the second tenth.
# By default each of the 32 connections waits 10 ms between requests (≈3,000 req/s), so
# 1,000,000 requests take about 5 minutes and span about 10 refreshes; BENCH_SOAK_DELAY_MS=0
# runs flat out (the same count in well under a minute, so only one or two refreshes).
# Raw output in .local/bench/soak/: wrk.txt, rss.csv (seconds,kB), refreshes.jsonl (the
# outcome events) and refresh-seconds.txt (when each refresh was answered).
#
# Usage: bench/soak.sh [REQUESTS (default 1000000)] [REFRESH_EVERY (seconds, default 30)]
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

requests="${1:-1000000}"
every="${2:-30}"
connections="${BENCH_SOAK_CONNECTIONS:-32}"
delay_ms="${BENCH_SOAK_DELAY_MS:-10}"
max_seconds="${BENCH_SOAK_MAX_SECONDS:-1800}"
threads=2
status_port="${BENCH_REFRESH_PORT:-18192}"
api_port="${BENCH_API_PORT:-18210}"

have wrk || { info "installing wrk"; apt-get install -y -qq wrk >/dev/null; }
# shellcheck disable=SC2119 # no extra targets
bench_build
bench_setup soak 7000
out="$BENCH_OUT/soak"
rm -rf "$out"
mkdir -p "$out/done"
bench_load before
bench_start_refresher "$status_port"
bench_start_api "$api_port"
api_pid=$bench_api_pid
url="http://127.0.0.1:$api_port/api/v4/ofertasws"
BENCH_TOKEN=$("$BENCH_BIN/api-service" token --ttl 2h)
export BENCH_TOKEN

# Background loops stop when $out/stop exists; each checks it once a second.
start=$EPOCHREALTIME
since_start() { awk -v now="$EPOCHREALTIME" -v start="$start" 'BEGIN{printf "%.2f\n", now - start}'; }
sample_rss() {
  local rss
  echo "seconds,rss_kb"
  while [[ ! -e "$out/stop" ]]; do
    rss=$(awk '/^VmRSS:/{print $2}' "/proc/$api_pid/status" 2>/dev/null) || break
    printf '%s,%s\n' "$(since_start)" "$rss"
    sleep 1
  done
}
refresh_periodically() {
  local n=0 next=$((SECONDS + every))
  while [[ ! -e "$out/stop" ]]; do
    if ((SECONDS >= next)); then
      n=$((n + 1))
      next=$((next + every))
      bench_change_offer "$n"
      "$BENCH_BIN/refresh-service" trigger --wait --timeout 30 --reason soak 2>>"$bench_logs/trigger.log" ||
        echo '{"status":"trigger failed"}'
      since_start >>"$out/refresh-seconds.txt"
    fi
    sleep 1
  done
}
sample_rss >"$out/rss.csv" &
bench_pids+=("$!")
refresh_periodically >"$out/refreshes.jsonl" &
refresher_loop=$!
bench_pids+=("$refresher_loop")

per_thread=$(((requests + threads - 1) / threads))
echo "soak: $requests requests, wrk -t$threads -c$connections, ${delay_ms} ms between requests per connection, refresh every ${every}s"
BENCH_REQUESTS_PER_THREAD=$per_thread BENCH_DELAY_MS=$delay_ms BENCH_DONE_DIR="$out/done" \
  wrk -t"$threads" -c"$connections" -d"${max_seconds}s" --latency -s "$ROOT/bench/soak.lua" "$url" >"$out/wrk.txt" 2>&1 &
wrk_pid=$!
bench_pids+=("$wrk_pid")
# wrk only stops on its duration or SIGINT: interrupt it once every thread has its count.
while kill -0 "$wrk_pid" 2>/dev/null; do
  if (($(find "$out/done" -type f | wc -l) >= threads)); then
    kill -INT "$wrk_pid"
    break
  fi
  sleep 0.2
done
wait "$wrk_pid" || true
touch "$out/stop"
wait "$refresher_loop" || true
sleep 1 # the last snapshot.updated reaches the api-service
cat "$out/wrk.txt"
bench_load after

failed=0
check() { # check OK MESSAGE
  if [[ "$1" == 1 ]]; then echo "PASS $2"; else echo "FAIL $2"; failed=1; fi
}
done_requests=$(awk '/ requests in /{print $1}' "$out/wrk.txt")
check "$((${done_requests:-0} >= requests))" "requests: ${done_requests:-0} completed (wanted $requests)"
status_errors=$(awk '/Non-2xx or 3xx responses:/{print $5}' "$out/wrk.txt")
socket_errors=$(awk '/Socket errors:/{gsub(",", ""); print $4 + $6 + $8 + $10}' "$out/wrk.txt")
check "$((${status_errors:-0} + ${socket_errors:-0} == 0))" "errors: ${status_errors:-0} non-2xx/3xx responses, ${socket_errors:-0} socket errors"
published=$(grep -c '"status":"success"' "$out/refreshes.jsonl" || true)
attempted=$(wc -l <"$out/refreshes.jsonl")
last_version=$(tail -n 1 "$out/refreshes.jsonl" | sed -n 's/.*"version":"\([^"]*\)".*/\1/p')
served=$(curl -sf -H "Authorization: Bearer $BENCH_TOKEN" "$url/meta" | sed -n 's/.*"version":"\([^"]*\)".*/\1/p')
check "$((attempted > 0 && published == attempted))" "refreshes: $published of $attempted published a new snapshot"
check "$([[ -n "$last_version" && "$served" == "$last_version" ]] && echo 1 || echo 0)" "api-service serves the last refresh's snapshot ($served)"
read -r ok rss_line < <(awk -F, 'NR > 1 {rss[++n] = $2}
  END {
    t = int(n / 10)
    if (t < 2) { print 0, "too few RSS samples (" n ")"; exit }
    for (i = t + 1; i <= 2 * t; i++) second += rss[i]
    for (i = n - t + 1; i <= n; i++) last += rss[i]
    second /= t; last /= t
    for (i = 1; i <= n; i++) if (rss[i] > max) max = rss[i]
    printf "%d RSS not growing: %d samples; second tenth mean %.1f MiB, last tenth mean %.1f MiB (%+.1f %%), max %.1f MiB\n",
      last <= 1.10 * second, n, second / 1024, last / 1024, (last / second - 1) * 100, max / 1024
  }' "$out/rss.csv")
check "$ok" "$rss_line"
echo "raw: $out/{wrk.txt,rss.csv,refreshes.jsonl,refresh-seconds.txt}"
exit "$failed"
