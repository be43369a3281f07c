# shellcheck shell=bash
# Helpers shared by the end-to-end benchmarks (bench/refresh-e2e.sh, bench/invalidation.sh,
# bench/soak.sh). Source it after scripts/lib.sh; it defines functions and variables only.
#
# Each run owns a fresh PostgreSQL database and Redis prefix (bench-NAME-PID) on the
# private servers of scripts/services.sh, seeded like bench/refresh.sh (scripts/seed.sql),
# and on exit stops the processes it started, deletes its keys and drops its database.
# Raw output and service logs go to .local/bench/ (git-ignored).

# shellcheck disable=SC2034 # used by the scripts that source this file
BENCH_OUT="$ROOT/.local/bench"
BENCH_BIN="$ROOT/target/release"
bench_pids=()
bench_db=""

# bench_change_offer N: changes one live offer, a different one for each N, so the next
# refresh publishes a new snapshot (the statement bench/studies/src/bin/latency/bench.rs
# runs between runs).
bench_change_offer() {
  psql -q -X -v ON_ERROR_STOP=1 -v n="$1" "$DATABASE_URL" >/dev/null <<'SQL'
update ofertas set title = title || '.', updated_at = now()
 where id = (select id from ofertas
             where active and starts_at <= now() and (ends_at is null or ends_at > now())
             order by id offset (:n * 37) % 5000 limit 1);
SQL
}

# bench_build [CARGO ARGS...]: the ONNX Runtime library, the private servers, the release
# binaries as deployed, then any extra targets (e.g. -p ofertasws-studies --bin latency)
# in a build of their own, so the binaries are not built with the studies' features.
bench_build() {
  "$ROOT/scripts/onnxruntime.sh"
  "$ROOT/scripts/services.sh" start >/dev/null
  (cd "$ROOT" && cargo build --release --bins -q)
  if (($#)); then
    (cd "$ROOT" && cargo build --release -q "$@")
  fi
}

# bench_load WHEN: prints the load average, so a reader can tell a busy machine.
bench_load() {
  local one five fifteen _
  read -r one five fifteen _ </proc/loadavg
  echo "load average $1: $one $five $fifteen ($(nproc) cores)"
}

# bench_setup NAME OFFERS: exports the settings of both services for a database of its
# own holding OFFERS live offers and an unused key prefix; sets the cleanup trap; sets
# bench_logs, the folder of the service logs.
bench_setup() {
  local name="$1" offers="$2"
  bench_db="ofertasws_bench_${name//-/_}_$$"
  export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$bench_db"
  export REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
  export OFERTASWS_PREFIX="bench-$name-$$"
  export JWT_SECRET="bench-secret"
  export REFRESH_SCHEDULE=off
  export LOG_FORMAT=json RUST_LOG=info
  bench_logs="$BENCH_OUT/$name-logs"
  rm -rf "$bench_logs"
  mkdir -p "$bench_logs"
  trap bench_cleanup EXIT
  "$BENCH_BIN/refresh-service" migrate >"$bench_logs/migrate.log" 2>&1 ||
    die "migrate failed (see $bench_logs/migrate.log)"
  info "seeding $offers live offers into $bench_db"
  psql -q -X "$DATABASE_URL" -v live="$offers" -f "$ROOT/scripts/seed.sql" >/dev/null
}

# bench_cleanup: stops what bench_start_* started (SIGTERM, then SIGKILL after 15 s),
# deletes the prefix's keys and drops the database.
bench_cleanup() {
  local pid
  for pid in "${bench_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${bench_pids[@]}"; do
    wait_for_exit "$pid" 150 || kill -KILL "$pid" 2>/dev/null || true
  done
  redis-cli -u "$REDIS_URL" --scan --pattern "$OFERTASWS_PREFIX:*" |
    xargs -r redis-cli -u "$REDIS_URL" del >/dev/null || true
  if [[ -n "$bench_db" ]]; then
    psql -q -X "$PRIVATE_ADMIN_DATABASE_URL" -c "drop database if exists $bench_db with (force)" >/dev/null 2>&1 || true
  fi
}

# bench_wait_ready NAME URL LOG: waits up to 30 s for URL to answer 200.
bench_wait_ready() {
  local name="$1" url="$2" log="$3" i
  for ((i = 0; i < 300; i++)); do
    [[ "$(http_status "$url")" == 200 ]] && return 0
    sleep 0.1
  done
  die "$name did not become ready at $url (see $log)"
}

# bench_start_refresher PORT: `refresh-service run` with its status port on PORT; returns
# once it listens on P:refresh and its start-up refresh has made a snapshot current.
# REFRESH_BIN=DIR runs DIR/refresh-service instead (an older build, to compare).
bench_start_refresher() {
  local port="$1" log="$bench_logs/refresh-service.log" i
  REFRESH_METRICS_BIND="127.0.0.1:$port" "${REFRESH_BIN:-$BENCH_BIN}/refresh-service" run >"$log" 2>&1 &
  bench_pids+=("$!")
  bench_wait_ready refresh-service "http://127.0.0.1:$port/ready" "$log"
  for ((i = 0; i < 300; i++)); do
    [[ "$(redis-cli -u "$REDIS_URL" exists "$OFERTASWS_PREFIX:{snapshot}:current")" == 1 ]] && return 0
    sleep 0.1
  done
  die "no snapshot after the refresher's start-up refresh (see $log)"
}

# bench_start_api PORT: an api-service replica on 127.0.0.1:PORT; returns once it serves
# a snapshot. Sets bench_api_pid.
bench_start_api() {
  local port="$1" log="$bench_logs/api-service-$1.log"
  API_BIND="127.0.0.1:$port" "$BENCH_BIN/api-service" serve >"$log" 2>&1 &
  bench_api_pid=$!
  bench_pids+=("$bench_api_pid")
  bench_wait_ready "api-service on port $port" "http://127.0.0.1:$port/ready" "$log"
}
