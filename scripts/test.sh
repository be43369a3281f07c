#!/usr/bin/env bash
# Runs every check and test of the workspace:
#   cargo fmt --all --check
#   cargo clippy --workspace --all-targets -- -D warnings
#   cargo doc --workspace --no-deps with RUSTDOCFLAGS=-D warnings   (broken doc links)
#   scripts/check-deploy.sh   (Kubernetes, Compose, Prometheus, Grafana files; offline)
#   clients/android/test.sh --unit   (the Android client's JUnit unit tests; not with -p NAME)
#   cargo test --workspace [EXTRA ARGS...]   (only the given packages with -p NAME)
#   scripts/hostile.sh        (schemathesis + cargo-fuzz, CI sizes; not with -p NAME)
#
# The browser test needs Debian's chromium-headless-shell and nginx: scripts/browser.sh
# installs them with apt-get when missing, before the tests. The Android client's tests
# (its unit tests here, its system tests in system-tests/tests/clients) need a JDK and
# Debian's OkHttp, zstd-jni and JUnit 5 jars: scripts/java.sh installs them likewise.
#
# The integration tests need a PostgreSQL server (they create and drop their own
# databases) and a Redis server (each test uses its own key prefix):
#   TEST_DATABASE_URL  default postgres://postgres@127.0.0.1:5432/postgres
#   TEST_REDIS_URL     default redis://127.0.0.1:6379
# When a variable is unset and nothing usable answers at its default, the private servers
# of scripts/services.sh are started (127.0.0.1:55432 and :56379, under .local/) and used
# instead. A variable that is set (environment or .env) but unreachable is an error.
# The fault and topology suites (system-tests/tests/{faults,topologies}) start their own
# redis-server (single, Cluster, Sentinel) and PostgreSQL processes: redis-server ≥ 7 and
# the PostgreSQL server binaries are installed with apt-get when missing.
#
# Usage: scripts/test.sh [extra cargo test args, e.g. -p system-tests --test faults -- --nocapture]
# Exit status: 0 when every step passed, 1 otherwise (all steps run; summary at the end).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEFAULT_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_TEST_REDIS_URL="redis://127.0.0.1:6379"
STARTED_PRIVATE=()

# postgres_usable URL: connects and runs `select 1` (so authentication is checked too)
# when psql exists; else pg_isready; else a plain TCP connect.
postgres_usable() {
  local url="$1" tool hostport
  if tool="$(pg_tool psql)"; then
    PGCONNECT_TIMEOUT=3 "$tool" -X -q -A -t -w -d "$url" -c 'select 1' >/dev/null 2>&1
  elif tool="$(pg_tool pg_isready)"; then
    "$tool" -q -t 3 -d "$url" >/dev/null 2>&1
  else
    read -r -a hostport <<<"$(url_host_port "$url" 5432)"
    port_open "${hostport[0]}" "${hostport[1]}"
  fi
}

# redis_usable URL: PING answered with PONG (redis-cli), else a plain TCP connect.
redis_usable() {
  local url="$1" hostport
  if [[ "$url" == redis://* || "$url" == rediss://* ]] && have redis-cli; then
    [[ "$(redis-cli -u "$url" ping 2>/dev/null)" == PONG ]]
  else
    read -r -a hostport <<<"$(url_host_port "$url" 6379)"
    port_open "${hostport[0]}" "${hostport[1]}"
  fi
}

choose_servers() {
  TEST_DATABASE_URL="$(setting TEST_DATABASE_URL "")"
  TEST_REDIS_URL="$(setting TEST_REDIS_URL "")"
  if [[ -n "${TEST_DATABASE_URL:-}" ]]; then
    postgres_usable "$TEST_DATABASE_URL" ||
      die "TEST_DATABASE_URL=$TEST_DATABASE_URL does not accept connections (unset it to use a private server)"
  elif postgres_usable "$DEFAULT_TEST_DATABASE_URL"; then
    TEST_DATABASE_URL="$DEFAULT_TEST_DATABASE_URL"
  else
    info "no usable PostgreSQL at $DEFAULT_TEST_DATABASE_URL; using the private one"
    pg_running || STARTED_PRIVATE+=(postgres)
    "$ROOT/scripts/services.sh" start postgres
    TEST_DATABASE_URL="$PRIVATE_ADMIN_DATABASE_URL"
  fi

  if [[ -n "${TEST_REDIS_URL:-}" ]]; then
    redis_usable "$TEST_REDIS_URL" ||
      die "TEST_REDIS_URL=$TEST_REDIS_URL does not answer (unset it to use a private server)"
  elif redis_usable "$DEFAULT_TEST_REDIS_URL"; then
    TEST_REDIS_URL="$DEFAULT_TEST_REDIS_URL"
  else
    info "no usable Redis at $DEFAULT_TEST_REDIS_URL; using the private one"
    redis_running || STARTED_PRIVATE+=(redis)
    "$ROOT/scripts/services.sh" start redis
    TEST_REDIS_URL="$PRIVATE_REDIS_URL"
  fi
  export TEST_DATABASE_URL TEST_REDIS_URL
  info "TEST_DATABASE_URL=$TEST_DATABASE_URL"
  info "TEST_REDIS_URL=$TEST_REDIS_URL"
}

# The background build of the hostile step (main), stopped with the run.
PREPARE_PID=""

# Stops the hostile step's background build. In CI, stops the private servers this run
# started; on a workstation keeps them for the next run (scripts/services.sh stop stops
# them).
cleanup() {
  local service
  if [[ -n "$PREPARE_PID" ]]; then
    pkill -TERM -P "$PREPARE_PID" 2>/dev/null || true
    kill -TERM "$PREPARE_PID" 2>/dev/null || true
  fi
  [[ ${#STARTED_PRIVATE[@]} -gt 0 ]] || return 0
  if [[ -n "${CI:-}" && "${CI:-}" != false ]]; then
    for service in "${STARTED_PRIVATE[@]}"; do
      "$ROOT/scripts/services.sh" stop "$service" || true
    done
  else
    info "private servers left running for the next run: ${STARTED_PRIVATE[*]} (scripts/services.sh stop)"
  fi
}

RESULTS=()
FAILED=0

# step NAME COMMAND...: runs COMMAND, records and prints its outcome and duration.
step() {
  local name="$1" start rc=0
  shift
  printf '\n==> %s\n' "$*" >&2
  start=$SECONDS
  (cd "$ROOT" && "$@") || rc=$?
  if [[ $rc -eq 0 ]]; then
    RESULTS+=("ok      $name ($((SECONDS - start)) s)")
  else
    RESULTS+=("FAILED  $name (exit $rc, $((SECONDS - start)) s)")
    FAILED=1
  fi
}

main() {
  have cargo || die "cargo not found: install Rust with rustup (https://rustup.rs); rust-toolchain.toml selects the version"
  "$ROOT/scripts/onnxruntime.sh" || die "scripts/onnxruntime.sh failed (it needs python3 with pip and access to PyPI)"
  "$ROOT/scripts/browser.sh" || die "scripts/browser.sh failed (it installs chromium-headless-shell and nginx with apt-get)"
  "$ROOT/scripts/java.sh" || die "scripts/java.sh failed (it installs a JDK, OkHttp, zstd-jni and JUnit 5 with apt-get)"
  if [[ -n "${CI:-}" && "${CI:-}" != false ]]; then
    # CI builds in a new clone every time; its build goes where the last one's went, like
    # any CI cache, so the dependencies compile once per machine instead of twice per run
    # (clippy, then the debug build). A cold run took 40 min on a 2-core machine.
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE_DIR/target}"
    info "CARGO_TARGET_DIR=$CARGO_TARGET_DIR (kept between CI runs)"
  fi
  trap cleanup EXIT
  choose_servers
  ensure_suite_servers

  # `--workspace` would override a package selection given by the caller.
  local arg scope=(--workspace)
  for arg in "$@"; do
    [[ "$arg" == -- ]] && break
    case "$arg" in -p | -p* | --package | --package=*) scope=() ;; esac
  done
  local prepare_log="$LOG_DIR/hostile-build.log"
  if [[ ${#scope[@]} -gt 0 ]]; then
    # The hostile step's own build (schemathesis, cargo-fuzz, the fuzz targets: 4 min of
    # compiling, cold) at the lowest priority, in the core time the other steps leave
    # idle: the builds' one-crate stretches and links, and the tests waiting on servers,
    # browsers and timeouts.
    mkdir -p "$LOG_DIR"
    info "building the hostile step's tools in the background (log: ${prepare_log#"$ROOT/"})"
    (cd "$ROOT" && exec nice -n 19 bash scripts/hostile.sh build >"$prepare_log" 2>&1) &
    PREPARE_PID=$!
  fi
  step "cargo fmt" cargo fmt --all --check
  step "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
  step "cargo doc" env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
  step "deploy checks" bash scripts/check-deploy.sh
  if [[ ${#scope[@]} -gt 0 ]]; then
    step "android unit tests" bash clients/android/test.sh --unit
  fi
  step "cargo test" cargo test --no-fail-fast "${scope[@]}" "$@"
  # Whole-workspace runs only: schemathesis and the fuzz targets, CI sizes.
  if [[ -n "$PREPARE_PID" ]]; then
    # When the background build failed, the step builds again in the foreground and
    # reports the failure itself.
    local waited=$SECONDS
    wait "$PREPARE_PID" || warn "the background build of the hostile step failed (see ${prepare_log#"$ROOT/"})"
    PREPARE_PID=""
    RESULTS+=("waited  for the background build ($((SECONDS - waited)) s)")
    step "hostile input" bash scripts/hostile.sh
  fi

  printf '\n==> summary\n' >&2
  printf '  %s\n' "${RESULTS[@]}" >&2
  if [[ $FAILED -ne 0 ]]; then
    die "some steps failed (see above)"
  fi
  info "all checks passed"
}

main "$@"
