#!/usr/bin/env bash
# Hostile input: schemathesis against a running api-service, and cargo-fuzz targets for
# the parsers that read what clients and ops send.
#
#   scripts/hostile.sh [--full] [all|schemathesis|fuzz|build]
#
# `build` installs schemathesis and cargo-fuzz and builds the fuzz targets, and runs
# nothing: scripts/test.sh starts it at the lowest priority while the tests run, which
# leave a core idle most of the time.
#
# schemathesis (PyPI, installed into .local/venv-schemathesis) reads /openapi.json of a
# debug api-service started on a free port against Redis and runs every check in four
# passes:
#   no-snapshot  admin token, before any snapshot exists (the 503 answers)
#   valid        admin token, with a snapshot of the demo data (scripts/seed.sql, written
#                by `refresh-service migrate` + `once` into a database of its own)
#   invalid      `Authorization: Bearer garbage` (every protected route must say 401)
#   refresher    POST /api/v4/ofertasws/refresh only, with `refresh-service run` listening
# No refresher listens during the first three passes, so the refresh endpoint answers
# 503 no_refresher as soon as its PUBLISH reaches nobody, whatever `wait`/`timeout` say;
# in the last pass every request is answered by a real (coalesced) refresh within about
# a second. --request-timeout turns anything that still hangs into a failure.
#
# cargo-fuzz (crates.io, installed into ~/.cache/ofertasws) builds fuzz/ (a workspace of
# its own) on the pinned stable toolchain with RUSTC_BOOTSTRAP=1 and runs each target for
# a fixed number of inputs, starting from the committed seeds in fuzz/seeds/ and the
# corpus kept in .local/fuzz-corpus/.
#
# Sizes (environment; --full switches the defaults to the README's longer run):
#   HOSTILE_EXAMPLES     schemathesis --max-examples per operation and pass  (CI 8, full 160)
#   HOSTILE_ST_SECONDS   schemathesis --max-time per pass (0: none; fuzzing repeats until
#                        it is spent)                                  (CI 0, full 60)
#   HOSTILE_FUZZ_RUNS    libFuzzer -runs per target                   (CI 100000, full 0)
#   HOSTILE_FUZZ_SECONDS libFuzzer -max_total_time per target (0: none) (CI 0, full 75)
# Servers: TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres) and
# TEST_REDIS_URL (default redis://127.0.0.1:6379), as scripts/test.sh exports them. The
# database ofertasws_hostile_PID and the Redis keys of the prefix hostile-PID-* are
# removed on exit, as are the processes this script started.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FULL=0
WHAT=all
for arg in "$@"; do
  case "$arg" in
    --full) FULL=1 ;;
    all | schemathesis | fuzz | build) WHAT="$arg" ;;
    -h | --help)
      awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
      exit 0
      ;;
    *) die "unknown argument '$arg' (use: scripts/hostile.sh [--full] [all|schemathesis|fuzz|build])" ;;
  esac
done
if [[ $FULL -eq 1 ]]; then
  EXAMPLES="${HOSTILE_EXAMPLES:-160}"
  ST_SECONDS="${HOSTILE_ST_SECONDS:-60}"
  FUZZ_RUNS="${HOSTILE_FUZZ_RUNS:-0}"
  FUZZ_SECONDS="${HOSTILE_FUZZ_SECONDS:-75}"
else
  EXAMPLES="${HOSTILE_EXAMPLES:-8}"
  ST_SECONDS="${HOSTILE_ST_SECONDS:-0}"
  FUZZ_RUNS="${HOSTILE_FUZZ_RUNS:-100000}"
  FUZZ_SECONDS="${HOSTILE_FUZZ_SECONDS:-0}"
fi
for n in "$EXAMPLES" "$ST_SECONDS" "$FUZZ_RUNS" "$FUZZ_SECONDS"; do
  [[ "$n" =~ ^[0-9]+$ ]] || die "HOSTILE_EXAMPLES, HOSTILE_ST_SECONDS, HOSTILE_FUZZ_RUNS and HOSTILE_FUZZ_SECONDS must be numbers"
done

SCHEMATHESIS_VERSION="4.32.5"
CARGO_FUZZ_VERSION="0.13.2"
VENV="$LOCAL_DIR/venv-schemathesis"
# In CACHE_DIR (lib.sh): the fuzz build's dependencies build once; each clone rebuilds
# only the workspace crates.
CARGO_BIN_ROOT="$CACHE_DIR/cargo-fuzz-$CARGO_FUZZ_VERSION"
FUZZ_TARGET_DIR="$CACHE_DIR/fuzz-target"
FUZZ_TARGETS=(accept_encoding preconditions available_dictionary authorization refresh_request)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug"
PREFIX="hostile-$$-$(date +%s)"
DB_NAME="ofertasws_hostile_$$"

WORK=""
API_PID=""
REFRESHER_PID=""
DB_CREATED=0

# stop PID: SIGTERM, up to 15 s, then SIGKILL.
stop() {
  local pid="$1"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  wait_for_exit "$pid" 150 || kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  stop "$API_PID"
  stop "$REFRESHER_PID"
  if [[ $DB_CREATED -eq 1 ]]; then
    "$PSQL" -X -q -d "$TEST_DATABASE_URL" -c "drop database if exists \"$DB_NAME\" with (force)" >/dev/null 2>&1 ||
      warn "could not drop database $DB_NAME"
  fi
  if [[ -n "${TEST_REDIS_URL:-}" ]] && have redis-cli; then
    redis-cli -u "$TEST_REDIS_URL" --scan --pattern "$PREFIX:*" 2>/dev/null |
      xargs -r -n 200 redis-cli -u "$TEST_REDIS_URL" del >/dev/null 2>&1 || true
  fi
  if [[ -n "$WORK" ]]; then rm -rf "$WORK"; fi
}

# database_url NAME: TEST_DATABASE_URL with its database replaced by NAME.
database_url() {
  local url="$TEST_DATABASE_URL" scheme rest authority query=""
  scheme="${url%%://*}"
  rest="${url#*://}"
  [[ "$rest" == *\?* ]] && query="?${rest#*\?}" && rest="${rest%%\?*}"
  authority="${rest%%/*}"
  printf '%s://%s/%s%s' "$scheme" "$authority" "$1" "$query"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_status URL STATUS SECONDS: polls until GET URL answers STATUS (fails early when
# api-service exits).
wait_status() {
  local url="$1" want="$2" deadline=$((SECONDS + $3))
  until [[ "$(http_status "$url")" == "$want" ]]; do
    ((SECONDS < deadline)) || return 1
    kill -0 "$API_PID" 2>/dev/null || return 1
    sleep 0.2
  done
}

install_schemathesis() {
  if [[ -x "$VENV/bin/st" ]] && "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    return 0
  fi
  info "installing schemathesis $SCHEMATHESIS_VERSION into .local/venv-schemathesis"
  rm -rf "$VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION" || die "pip install schemathesis failed"
}

# st_config PASS SERVER_ERRORS REFRESH_SERVER_ERRORS: writes $WORK/PASS.toml. The 5xx
# statuses listed are the documented answers of the state the pass runs in (503 while no
# snapshot is held, 503 no_refresher when no refresher listens, 504 when a client asks
# for timeout=1 s); any other 5xx is a failure.
st_config() {
  local statuses='"2xx", "3xx", "4xx"'
  cat >"$WORK/$1.toml" <<TOML
[checks.not_a_server_error]
expected-statuses = [$statuses${2:+, $2}]

[[operations]]
include-path = "/api/v4/ofertasws/refresh"
include-method = "POST"
checks.not_a_server_error.expected-statuses = [$statuses${3:+, $3}]
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404"${3:+, $3}]
TOML
}

# schemathesis PASS [st run options...]: one pass against the running API; appends
# "PASS cases failing errored seconds" to $WORK/summary from the run's JSON report.
# Every check runs, `unsupported_method` included (a 405 names the allowed methods).
schemathesis() {
  local pass="$1" start=$SECONDS rc=0 budget=()
  shift
  [[ $ST_SECONDS -gt 0 ]] && budget=(--max-time "$ST_SECONDS")
  info "schemathesis pass '$pass' (max $EXAMPLES examples per operation)"
  # From the temporary folder: schemathesis keeps its replay cache in ./.schemathesis.
  (cd "$WORK" && "$VENV/bin/st" --config-file "$WORK/$pass.toml" run "http://$API_BIND/openapi.json" \
    --checks all \
    --max-examples "$EXAMPLES" "${budget[@]}" --workers 2 --seed 20261124 --continue-on-failure \
    --request-timeout 20 --generation-database none --no-color \
    --report json --report-json-path "$WORK/$pass.json" "$@") || rc=$?
  python3 - "$WORK/$pass.json" "$pass" "$((SECONDS - start))" >>"$WORK/summary" <<'PY' || true
import json, sys
cases = json.load(open(sys.argv[1]))["test_cases"]
print(sys.argv[2], cases["generated"], cases["with_failures"], cases["errored"], sys.argv[3])
PY
  return "$rc"
}

run_schemathesis() {
  local token secret rc=0
  ensure_psql
  install_schemathesis
  info "building the binaries (build_debug in scripts/lib.sh)"
  build_debug || die "cargo build failed"

  TEST_DATABASE_URL="$(setting TEST_DATABASE_URL postgres://postgres@127.0.0.1:5432/postgres)"
  TEST_REDIS_URL="$(setting TEST_REDIS_URL redis://127.0.0.1:6379)"
  secret="$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
  export REDIS_URL="$TEST_REDIS_URL" OFERTASWS_PREFIX="$PREFIX" JWT_SECRET="$secret"
  export DATABASE_URL
  DATABASE_URL="$(database_url "$DB_NAME")"
  API_BIND="127.0.0.1:$(free_port)"
  export API_BIND
  export RANKER_MODEL="$ROOT/refresh-service/models/offer_ranker.onnx"
  export ORT_DYLIB_PATH="$LOCAL_DIR/onnxruntime/libonnxruntime.so"
  # No status port for the refresher: a refresher already running here (scripts/dev.sh's)
  # holds the default 0.0.0.0:9100, and this pass needs none.
  export REFRESH_SCHEDULE=off REFRESH_METRICS_BIND=off RUST_LOG=warn LOG_FORMAT=json NO_COLOR=1
  "$ROOT/scripts/onnxruntime.sh" || die "scripts/onnxruntime.sh failed"

  # The services run in the temporary folder, so a developer's .env changes nothing.
  info "api-service on $API_BIND, prefix $PREFIX, database $DB_NAME"
  (cd "$WORK" && exec "$BIN/api-service" serve >"$WORK/api.log" 2>&1) &
  API_PID=$!
  wait_status "http://$API_BIND/ready" 503 60 || die "api-service did not start (log: $(tail -n 5 "$WORK/api.log"))"
  token="$("$BIN/api-service" token --role admin --ttl 1h)"

  st_config no-snapshot '"503"' '"503"'
  schemathesis no-snapshot -H "Authorization: Bearer $token" || rc=1

  DB_CREATED=1
  (cd "$WORK" && "$BIN/refresh-service" migrate >"$WORK/migrate.log" 2>&1) || die "refresh-service migrate failed: $(tail -n 5 "$WORK/migrate.log")"
  "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$DATABASE_URL" -f "$ROOT/scripts/seed.sql" >/dev/null || die "seeding failed"
  (cd "$WORK" && "$BIN/refresh-service" once --trigger hostile >"$WORK/once.out" 2>"$WORK/once.log") ||
    die "refresh-service once failed: $(tail -n 5 "$WORK/once.log")"
  wait_status "http://$API_BIND/ready" 200 30 || die "api-service did not load the snapshot"

  st_config valid "" '"503"'
  schemathesis valid -H "Authorization: Bearer $token" || rc=1
  st_config invalid "" ""
  schemathesis invalid -H "Authorization: Bearer garbage" || rc=1

  (cd "$WORK" && exec "$BIN/refresh-service" run >"$WORK/refresher.log" 2>&1) &
  REFRESHER_PID=$!
  local deadline=$((SECONDS + 30))
  until [[ "$(redis-cli -u "$TEST_REDIS_URL" pubsub numsub "$PREFIX:refresh" | tail -n 1)" == 1 ]]; do
    ((SECONDS < deadline)) || die "refresh-service run did not subscribe (log: $(tail -n 5 "$WORK/refresher.log"))"
    sleep 0.2
  done
  st_config refresher "" '"504"'
  schemathesis refresher -H "Authorization: Bearer $token" --include-path /api/v4/ofertasws/refresh || rc=1

  kill -0 "$API_PID" 2>/dev/null || { warn "api-service died during the run"; rc=1; }
  if grep -q 'panicked' "$WORK/api.log"; then
    grep 'panicked' "$WORK/api.log" | head -n 5 >&2
    warn "api-service panicked"
    rc=1
  fi
  awk 'BEGIN {printf "%-12s %8s %8s %8s %8s\n", "pass", "cases", "failing", "errored", "seconds"}
    {printf "%-12s %8s %8s %8s %8s\n", $1, $2, $3, $4, $5; n += $2; f += $3; e += $4; t += $5}
    END {printf "%-12s %8d %8d %8d %8d\n", "total", n, f, e, t}' "$WORK/summary" >&2
  return "$rc"
}

# build_fuzz: installs cargo-fuzz when missing and builds the fuzz targets; sets BUILD
# to the options `cargo fuzz run` needs to find that build.
build_fuzz() {
  if [[ ! -x "$CARGO_BIN_ROOT/bin/cargo-fuzz" ]]; then
    info "installing cargo-fuzz $CARGO_FUZZ_VERSION into $CARGO_BIN_ROOT"
    # --debug: it only drives cargo; an optimised build of it costs 9 s more, cold.
    nice cargo install cargo-fuzz --locked --debug --version "$CARGO_FUZZ_VERSION" --root "$CARGO_BIN_ROOT" -q ||
      die "cargo install cargo-fuzz failed"
  fi
  export PATH="$CARGO_BIN_ROOT/bin:$PATH"
  # cargo-fuzz passes -Z flags; the pinned stable toolchain accepts them with this.
  export RUSTC_BOOTSTRAP=1
  # No sanitizer: the code under test has no `unsafe`; the targets assert properties.
  # The release profile of fuzz/Cargo.toml: opt-level 1, overflow checks, no debug assertions.
  BUILD=(--sanitizer none --release --target-dir "$FUZZ_TARGET_DIR")
  info "building the fuzz targets (cargo fuzz build)"
  (cd "$ROOT" && nice cargo fuzz build "${BUILD[@]}") || die "cargo fuzz build failed"
}

run_fuzz() {
  local target rc=0 flags=()
  build_fuzz
  [[ $FUZZ_RUNS -gt 0 ]] && flags+=("-runs=$FUZZ_RUNS")
  [[ $FUZZ_SECONDS -gt 0 ]] && flags+=("-max_total_time=$FUZZ_SECONDS")
  for target in "${FUZZ_TARGETS[@]}"; do
    mkdir -p "$LOCAL_DIR/fuzz-corpus/$target"
    info "fuzzing $target (${flags[*]})"
    (cd "$ROOT" && nice cargo fuzz run "${BUILD[@]}" "$target" \
      "$LOCAL_DIR/fuzz-corpus/$target" "fuzz/seeds/$target" -- \
      -max_len=4096 -timeout=10 -print_final_stats=1 "${flags[@]}" 2>"$WORK/fuzz-$target.log") || {
      grep -A 4 -m 1 'panicked' "$WORK/fuzz-$target.log" >&2 || tail -n 40 "$WORK/fuzz-$target.log" >&2
      grep -A 2 -m 1 'Failing input' "$WORK/fuzz-$target.log" >&2 || true
      warn "fuzz target $target failed (artifacts in fuzz/artifacts/$target)"
      rc=1
      continue
    }
    grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|Done)' "$WORK/fuzz-$target.log" |
      tr '\n' ' ' | sed "s/^/$target: /" >&2
    printf '\n' >&2
  done
  return "$rc"
}

main() {
  local rc=0
  WORK="$(mktemp -d)"
  : >"$WORK/summary"
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  if [[ "$WHAT" == build ]]; then
    install_schemathesis
    build_fuzz
    info "hostile input: schemathesis and the fuzz targets are ready"
    return 0
  fi
  if [[ "$WHAT" == all || "$WHAT" == schemathesis ]]; then
    run_schemathesis || rc=1
  fi
  if [[ "$WHAT" == all || "$WHAT" == fuzz ]]; then
    run_fuzz || rc=1
  fi
  [[ $rc -eq 0 ]] || die "hostile input found problems (see above)"
  info "hostile input: no findings"
}

main
