#!/usr/bin/env bash
# Private PostgreSQL and Redis for development and tests, under the git-ignored .local/:
#   PostgreSQL 127.0.0.1:55432 (OFERTASWS_PG_PORT), data .local/pg, trust auth, user postgres
#   Redis      127.0.0.1:56379 (OFERTASWS_REDIS_PORT), data .local/redis
#   logs       .local/logs/{postgres,redis}.log
# Non-default ports, so they never collide with servers already running. Missing server
# binaries are installed with apt-get (as root or through passwordless sudo).
#
# Usage: scripts/services.sh start|stop|status [postgres|redis]
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat >&2 <<EOF
usage: scripts/services.sh start|stop|status [postgres|redis]

  start    start the private PostgreSQL ($PG_PORT) and Redis ($REDIS_PORT); no-op when running
  stop     stop them (data stays in .local/pg and .local/redis)
  status   show whether they run; exit 0 only when every selected one runs
EOF
  exit 2
}

status_one() {
  case "$1" in
    postgres)
      if pg_running; then
        printf 'postgres  running  127.0.0.1:%s  %s  (data .local/pg, log .local/logs/postgres.log)\n' \
          "$PG_PORT" "$PRIVATE_DATABASE_URL"
      else
        printf 'postgres  stopped  127.0.0.1:%s\n' "$PG_PORT"
        return 1
      fi
      ;;
    redis)
      if redis_running; then
        printf 'redis     running  127.0.0.1:%s  %s  (pid %s, data .local/redis, log .local/logs/redis.log)\n' \
          "$REDIS_PORT" "$PRIVATE_REDIS_URL" "$(redis_pid)"
      else
        printf 'redis     stopped  127.0.0.1:%s\n' "$REDIS_PORT"
        return 1
      fi
      ;;
  esac
}

main() {
  local action="${1:-}" which=(postgres redis) service rc=0
  case "${2:-}" in
    "") ;;
    postgres | redis) which=("$2") ;;
    *) usage ;;
  esac
  case "$action" in
    start)
      for service in "${which[@]}"; do
        case "$service" in
          postgres) pg_start ;;
          redis) redis_start ;;
        esac
      done
      ;;
    stop)
      for service in "${which[@]}"; do
        case "$service" in
          postgres) pg_stop ;;
          redis) redis_stop ;;
        esac
      done
      ;;
    status)
      for service in "${which[@]}"; do
        status_one "$service" || rc=1
      done
      return "$rc"
      ;;
    *) usage ;;
  esac
}

main "$@"
