#!/usr/bin/env bash
# Brings up the whole of ofertasws on this machine with 7,000 demo offers and prints a
# ready-to-paste curl.
#
#   scripts/dev.sh          start (or restart) everything
#   scripts/dev.sh stop     stop the services and the private PostgreSQL/Redis
#   scripts/dev.sh status   show what runs
#
# When a Docker engine answers (`docker info`), it runs `docker compose up -d --build`
# (PostgreSQL, Redis, migrate, seed, refresh, 2 API replicas behind nginx). Otherwise it
# runs everything natively: the ONNX Runtime library (scripts/onnxruntime.sh), a private
# PostgreSQL and Redis under .local/ (scripts/services.sh), a release build, migrations,
# the demo seed, one refresh, then `refresh-service run` and `api-service serve` in the
# background (pids in .local/run, logs in .local/logs).
#
# Settings (environment, else .env, else the default):
#   OFERTASWS_DEV_MODE    auto | docker | native                      (auto)
#   API_BIND              where api-service listens                   (127.0.0.1:8000)
#   JWT_SECRET            HS256 key; generated once into .local/dev-jwt-secret when unset
#   OFERTASWS_PG_PORT     private PostgreSQL port                     (55432)
#   OFERTASWS_REDIS_PORT  private Redis port                          (56379)
#   READY_TIMEOUT         seconds to wait for GET /ready = 200        (120)
#   RUST_LOG, LOG_FORMAT  service logging                             (info, text)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PREFIX=ofertasws
API_BIND="$(setting API_BIND 127.0.0.1:8000)"
READY_TIMEOUT="$(setting READY_TIMEOUT 120)"
MODE="$(setting OFERTASWS_DEV_MODE auto)"
REFRESH_BIN="$ROOT/target/release/refresh-service"
API_BIN="$ROOT/target/release/api-service"
REFRESH_LOG="$LOG_DIR/refresh-service.log"
API_LOG="$LOG_DIR/api-service.log"
REFRESH_PID="$RUN_DIR/refresh-service.pid"
API_PID="$RUN_DIR/api-service.pid"

[[ "$READY_TIMEOUT" =~ ^[0-9]+$ ]] || die "READY_TIMEOUT must be a number of seconds, not '$READY_TIMEOUT'"

# API_BIND host:port -> the address a client on this machine uses.
api_port() { printf '%s' "${API_BIND##*:}"; }
api_base() {
  local host="${API_BIND%:*}"
  case "$host" in
    "" | 0.0.0.0 | "*") host=127.0.0.1 ;;
    "[::]") host="[::1]" ;;
  esac
  printf 'http://%s:%s' "$host" "$(api_port)"
}

# The dev JWT key: JWT_SECRET from the environment or .env, else one generated once.
jwt_secret() {
  local secret file="$LOCAL_DIR/dev-jwt-secret"
  secret="$(setting JWT_SECRET "")"
  if [[ -z "$secret" ]]; then
    if [[ ! -s "$file" ]]; then
      mkdir -p "$LOCAL_DIR"
      (
        umask 077
        od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$file"
      )
      info "generated a development JWT secret in .local/dev-jwt-secret"
    fi
    secret="$(cat "$file")"
  fi
  printf '%s' "$secret"
}

docker_available() {
  case "$MODE" in
    native) return 1 ;;
    docker)
      have docker || die "OFERTASWS_DEV_MODE=docker but there is no docker command"
      docker info >/dev/null 2>&1 || die "OFERTASWS_DEV_MODE=docker but the Docker engine does not answer (docker info)"
      compose version >/dev/null 2>&1 || die "OFERTASWS_DEV_MODE=docker but neither 'docker compose' nor 'docker-compose' works"
      return 0
      ;;
    auto)
      have docker && docker info >/dev/null 2>&1 || return 1
      if ! compose version >/dev/null 2>&1; then
        warn "a Docker engine answers but Compose is missing ('docker compose'/'docker-compose'); running natively"
        return 1
      fi
      ;;
    *) die "OFERTASWS_DEV_MODE must be auto, docker or native, not '$MODE'" ;;
  esac
}

compose() {
  if docker compose version >/dev/null 2>&1; then
    docker compose --project-directory "$ROOT" -f "$ROOT/docker-compose.yml" "$@"
  elif have docker-compose; then
    docker-compose --project-directory "$ROOT" -f "$ROOT/docker-compose.yml" "$@"
  else
    return 1
  fi
}

print_curls() {
  local token="$1" base
  base="$(api_base)"
  cat <<EOF

ofertasws is up: $base  (token valid 12 h)

  TOKEN='$token'

  curl -s -H "Authorization: Bearer \$TOKEN" --compressed $base/api/v4/ofertasws | head -c 300

  curl -H "Authorization: Bearer \$TOKEN" $base/api/v4/ofertasws/meta
  curl -X POST -H "Authorization: Bearer \$TOKEN" $base/api/v4/ofertasws/refresh
  curl $base/ready ; curl $base/health

Ready to paste, without the variable:

  curl -s -H "Authorization: Bearer $token" --compressed $base/api/v4/ofertasws | head -c 300

EOF
}

# ---------------------------------------------------------------------------- Docker

docker_up() {
  local secret base deadline token
  secret="$(jwt_secret)"
  base="$(api_base)"
  info "Docker engine found: docker compose up -d --build (first build takes several minutes)"
  JWT_SECRET="$secret" API_PORT="$(api_port)" compose up -d --build ||
    die "docker compose up failed (see the output above; 'docker compose logs' for details)"
  info "waiting up to ${READY_TIMEOUT}s for $base/ready"
  deadline=$((SECONDS + READY_TIMEOUT))
  until [[ "$(http_status "$base/ready")" == 200 ]]; do
    if ((SECONDS >= deadline)); then
      compose ps >&2 || true
      compose logs --tail 30 seed refresh api >&2 || true
      die "the API did not become ready within ${READY_TIMEOUT}s; see 'docker compose logs refresh api'"
    fi
    sleep 1
  done
  token="$(compose exec -T api api-service token --role admin --ttl 12h)" ||
    die "could not mint a token with 'docker compose exec api api-service token'"
  print_curls "$token"
  cat <<EOF
Logs: docker compose logs -f refresh api     Stop: scripts/dev.sh stop
EOF
}

# ---------------------------------------------------------------------------- native

# start_bg NAME PIDFILE LOGFILE COMMAND...: starts COMMAND detached, in the workspace.
start_bg() {
  local name="$1" pidfile="$2" log="$3"
  shift 3
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  printf '\n===== %s: %s started by scripts/dev.sh =====\n' "$(date -u +%FT%TZ)" "$name" >>"$log"
  if have setsid; then
    (cd "$ROOT" && exec setsid "$@" >>"$log" 2>&1 </dev/null) &
  else
    (cd "$ROOT" && exec nohup "$@" >>"$log" 2>&1 </dev/null) &
  fi
  printf '%s\n' "$!" >"$pidfile"
}

# log_tail FILE: the last lines of a service log, for error messages.
log_tail() {
  printf '\n----- last lines of %s -----\n' "${1#"$ROOT/"}" >&2
  tail -n 25 "$1" >&2 || true
  printf -- '-----\n' >&2
}

stop_native() {
  stop_pidfile "$API_PID" api-service
  stop_pidfile "$REFRESH_PID" refresh-service
}

native_up() {
  local secret base deadline token outcome live

  have cargo || die "cargo not found: install Rust with rustup (https://rustup.rs); rust-toolchain.toml selects the version"
  have curl || apt_install curl ca-certificates

  info "1/7 ONNX Runtime library (scripts/onnxruntime.sh)"
  "$ROOT/scripts/onnxruntime.sh" || die "scripts/onnxruntime.sh failed (it needs python3 with pip and access to PyPI)"

  info "2/7 private PostgreSQL and Redis (scripts/services.sh start)"
  "$ROOT/scripts/services.sh" start

  info "3/7 cargo build --release --bins"
  (cd "$ROOT" && cargo build --release --bins) || die "cargo build --release failed (see the compiler output above)"
  [[ -x "$REFRESH_BIN" ]] || die "$REFRESH_BIN was not built"
  [[ -x "$API_BIN" ]] || die "$API_BIN was not built"

  # Restart cleanly: stop what a previous run started.
  stop_native
  if port_open "$(url_host_port "$(api_base)" 8000 | cut -d' ' -f1)" "$(api_port)"; then
    die "something already listens on $(api_base) (API_BIND=$API_BIND); stop it or set API_BIND, e.g. API_BIND=127.0.0.1:8001 scripts/dev.sh"
  fi

  secret="$(jwt_secret)"
  export DATABASE_URL="$PRIVATE_DATABASE_URL"
  export REDIS_URL="$PRIVATE_REDIS_URL"
  export OFERTASWS_PREFIX="$PREFIX"
  export API_BIND
  export JWT_SECRET="$secret"
  RUST_LOG="$(setting RUST_LOG info)"
  LOG_FORMAT="$(setting LOG_FORMAT text)"
  NO_COLOR="${NO_COLOR:-1}" # plain text in the log files
  export RUST_LOG LOG_FORMAT NO_COLOR

  info "4/7 migrations (refresh-service migrate on $DATABASE_URL)"
  (cd "$ROOT" && "$REFRESH_BIN" migrate) || die "refresh-service migrate failed (DATABASE_URL=$DATABASE_URL)"

  info "5/7 demo offers (scripts/seed.sql)"
  ensure_psql
  "$PSQL" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d ofertasws \
    -f "$ROOT/scripts/seed.sql" >/dev/null || die "seeding failed (scripts/seed.sql)"
  live="$("$PSQL" -X -A -t -h 127.0.0.1 -p "$PG_PORT" -U postgres -d ofertasws -c \
    "select count(*) from ofertas where active and starts_at <= now() and (ends_at is null or ends_at > now())")"
  info "    $live live offers (of $("$PSQL" -X -A -t -h 127.0.0.1 -p "$PG_PORT" -U postgres -d ofertasws -c 'select count(*) from ofertas'))"

  info "6/7 snapshot (refresh-service once --trigger dev; log: .local/logs/refresh-service.log)"
  printf '\n===== %s: refresh-service once (scripts/dev.sh) =====\n' "$(date -u +%FT%TZ)" >>"$REFRESH_LOG"
  outcome="$(cd "$ROOT" && "$REFRESH_BIN" once --trigger dev 2>>"$REFRESH_LOG")" || {
    log_tail "$REFRESH_LOG"
    die "the refresh failed: ${outcome:-no outcome}; see .local/logs/refresh-service.log"
  }
  info "    $outcome"

  info "7/7 starting refresh-service run and api-service serve (logs: .local/logs/)"
  start_bg refresh-service "$REFRESH_PID" "$REFRESH_LOG" "$REFRESH_BIN" run
  start_bg api-service "$API_PID" "$API_LOG" "$API_BIN" serve

  base="$(api_base)"
  info "waiting up to ${READY_TIMEOUT}s for GET $base/ready = 200"
  deadline=$((SECONDS + READY_TIMEOUT))
  until [[ "$(http_status "$base/ready")" == 200 ]]; do
    if ! pid_alive "$API_PID" api-service >/dev/null; then
      log_tail "$API_LOG"
      die "api-service exited during start-up; see .local/logs/api-service.log"
    fi
    if ! pid_alive "$REFRESH_PID" refresh-service >/dev/null; then
      log_tail "$REFRESH_LOG"
      die "refresh-service exited during start-up; see .local/logs/refresh-service.log"
    fi
    if ((SECONDS >= deadline)); then
      log_tail "$API_LOG"
      die "api-service did not become ready ($base/ready is not 200) within ${READY_TIMEOUT}s; see .local/logs/api-service.log"
    fi
    sleep 0.5
  done

  token="$(cd "$ROOT" && "$API_BIN" token --role admin --ttl 12h)" ||
    die "could not mint a token with 'api-service token --role admin --ttl 12h'"
  print_curls "$token"
  cat <<EOF
Logs:  .local/logs/api-service.log  .local/logs/refresh-service.log
Pids:  api-service $(cat "$API_PID"), refresh-service $(cat "$REFRESH_PID")  (.local/run/)
Data:  PostgreSQL $DATABASE_URL   Redis $REDIS_URL (prefix $PREFIX)
Stop:  scripts/dev.sh stop
EOF
}

status() {
  local pid
  if pid="$(pid_alive "$REFRESH_PID" refresh-service)"; then
    printf 'refresh-service  running  pid %s  (log .local/logs/refresh-service.log)\n' "$pid"
  else
    printf 'refresh-service  stopped\n'
  fi
  if pid="$(pid_alive "$API_PID" api-service)"; then
    printf 'api-service      running  pid %s  %s  (log .local/logs/api-service.log)\n' "$pid" "$(api_base)"
  else
    printf 'api-service      stopped\n'
  fi
  "$ROOT/scripts/services.sh" status || true
  if have docker && docker info >/dev/null 2>&1 && compose version >/dev/null 2>&1; then
    compose ps || true
  fi
}

stop() {
  if have docker && docker info >/dev/null 2>&1 && compose version >/dev/null 2>&1; then
    info "docker compose down (volumes kept)"
    compose down || warn "docker compose down failed"
  fi
  stop_native
  "$ROOT/scripts/services.sh" stop
}

main() {
  case "${1:-start}" in
    start | up)
      if docker_available; then
        docker_up
      else
        native_up
      fi
      ;;
    stop | down) stop ;;
    status) status ;;
    -h | --help | help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown command '$1' (use: scripts/dev.sh [start|stop|status])" ;;
  esac
}

main "$@"
