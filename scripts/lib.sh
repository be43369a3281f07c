# shellcheck shell=bash
# Helpers shared by scripts/*.sh. Source it; it defines functions and variables only.
#
# Private development servers live under the git-ignored .local/ folder:
#   .local/pg       PostgreSQL data directory (port OFERTASWS_PG_PORT, default 55432)
#   .local/redis    Redis working directory    (port OFERTASWS_REDIS_PORT, default 56379)
#   .local/logs     logs of every server and service started by the scripts
#   .local/run      pid files of the services started by scripts/dev.sh

if [[ -n "${OFERTASWS_LIB_LOADED:-}" ]]; then
  return 0
fi
OFERTASWS_LIB_LOADED=1

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL_DIR="$ROOT/.local"
LOG_DIR="$LOCAL_DIR/logs"
# shellcheck disable=SC2034 # used by the scripts that source this file
RUN_DIR="$LOCAL_DIR/run"
PG_DATA="$LOCAL_DIR/pg"
REDIS_DIR="$LOCAL_DIR/redis"
REDIS_PIDFILE="$REDIS_DIR/redis.pid"
SCRIPT_NAME="$(basename "$0")"
# Kept between clones, like any CI cache: the cargo-fuzz binary and the fuzz build
# (scripts/hostile.sh), and in CI the workspace build (scripts/test.sh).
# shellcheck disable=SC2034 # used by the scripts that source this file
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/ofertasws"

# ---------------------------------------------------------------------------- messages

info() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$SCRIPT_NAME" "$*" >&2
  exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

# build_debug: the debug build of the services' binaries and examples (not the studies of
# bench/studies). With the examples, cargo resolves the dev-dependencies' features as
# `cargo test --workspace` does (tokio's test-util among them), so one build serves the
# tests, the deployment checks and hostile.sh: `cargo build --bins` alone, or `cargo run
# -p refresh-service`, resolves other features and compiles tokio, syn and what depends
# on them a second time (about 90 s, cold, on 2 cores).
build_debug() {
  (cd "$ROOT" && cargo build -q --workspace --exclude ofertasws-studies --bins --examples)
}

# Prints the value of KEY from the workspace's .env file (empty when absent). Only plain
# KEY=value lines are understood (optional surrounding quotes); nothing is evaluated.
dotenv_get() {
  local key="$1" line value=""
  [[ -f "$ROOT/.env" ]] || return 0
  while IFS= read -r line || [[ -n "$line" ]]; do
    line="${line#export }"
    if [[ "$line" == "$key="* ]]; then
      value="${line#"$key="}"
      value="${value%$'\r'}"
      if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then
        value="${BASH_REMATCH[1]}"
      fi
    fi
  done <"$ROOT/.env"
  printf '%s' "$value"
}

# setting KEY DEFAULT: the environment first, then .env, then DEFAULT.
setting() {
  local key="$1" default="$2" value
  value="${!key:-}"
  [[ -n "$value" ]] || value="$(dotenv_get "$key")"
  [[ -n "$value" ]] || value="$default"
  printf '%s' "$value"
}

PG_PORT="$(setting OFERTASWS_PG_PORT 55432)"
REDIS_PORT="$(setting OFERTASWS_REDIS_PORT 56379)"
[[ "$PG_PORT" =~ ^[0-9]+$ ]] || die "OFERTASWS_PG_PORT must be a port number, not '$PG_PORT'"
[[ "$REDIS_PORT" =~ ^[0-9]+$ ]] || die "OFERTASWS_REDIS_PORT must be a port number, not '$REDIS_PORT'"
# shellcheck disable=SC2034 # used by the scripts that source this file
PRIVATE_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/ofertasws"
# shellcheck disable=SC2034
PRIVATE_ADMIN_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
# shellcheck disable=SC2034
PRIVATE_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"

# ---------------------------------------------------------------------------- network

# port_open HOST PORT: whether something accepts TCP connections there (1 s timeout).
port_open() {
  local host="$1" port="$2"
  if have timeout; then
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 1 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null
  else
    # shellcheck disable=SC2016
    bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null
  fi
}

# url_host_port URL DEFAULT_PORT: prints "host port" of a postgres:// or redis:// URL
# (user info, path and query ignored; bracketed IPv6 hosts unwrapped).
url_host_port() {
  local url="$1" default_port="$2" rest hostport host port
  rest="${url#*://}"
  rest="${rest%%/*}"
  rest="${rest%%\?*}"
  hostport="${rest##*@}"
  if [[ "$hostport" =~ ^\[(.*)\](:([0-9]+))?$ ]]; then
    host="${BASH_REMATCH[1]}"
    port="${BASH_REMATCH[3]:-$default_port}"
  elif [[ "$hostport" == *:* ]]; then
    host="${hostport%%:*}"
    port="${hostport##*:}"
  else
    host="$hostport"
    port="$default_port"
  fi
  printf '%s %s\n' "${host:-127.0.0.1}" "${port:-$default_port}"
}

# http_status URL: the HTTP status code of a GET (000 when nothing answers).
http_status() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true
}

# ---------------------------------------------------------------------------- installing

# apt_install PACKAGE...: installs Debian packages (as root, or through passwordless sudo).
apt_install() {
  local sudo=() log="$LOG_DIR/apt-get.log"
  mkdir -p "$LOG_DIR"
  have apt-get || die "$* missing and there is no apt-get here; install them with your package manager and retry"
  if [[ "$EUID" -ne 0 ]]; then
    if have sudo && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      die "$* must be installed; run as root, or install them first: sudo apt-get install $*"
    fi
  fi
  info "installing $* with apt-get (log: .local/logs/apt-get.log)..."
  if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >"$log" 2>&1; then
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$log" 2>&1 ||
      die "apt-get update failed; see .local/logs/apt-get.log"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >>"$log" 2>&1 ||
      die "apt-get install $* failed; see .local/logs/apt-get.log"
  fi
}

# Prints the directory holding initdb/pg_ctl/postgres (newest installed major version).
pg_bindir() {
  local best
  best="$(for dir in /usr/lib/postgresql/*/bin; do
    if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then printf '%s\n' "$dir"; fi
  done | sort -t/ -k5,5n | tail -n 1)"
  if [[ -n "$best" ]]; then
    printf '%s' "$best"
  elif have pg_config && [[ -x "$(pg_config --bindir)/initdb" ]]; then
    pg_config --bindir
  elif have initdb && have pg_ctl; then
    dirname "$(command -v initdb)"
  else
    return 1
  fi
}

# Sets PG_BIN, installing PostgreSQL when it is missing.
ensure_postgres_installed() {
  [[ -n "${PG_BIN:-}" ]] && return 0
  if ! PG_BIN="$(pg_bindir)"; then
    apt_install postgresql
    PG_BIN="$(pg_bindir)" || die "PostgreSQL was installed but initdb/pg_ctl are not under /usr/lib/postgresql/*/bin"
  fi
}

# pg_tool NAME: psql or pg_isready, next to the server binaries, else from PATH.
pg_tool() {
  local tool="$1" bin
  if [[ -n "${PG_BIN:-}" && -x "$PG_BIN/$tool" ]]; then
    printf '%s' "$PG_BIN/$tool"
  elif have "$tool"; then
    command -v "$tool"
  elif bin="$(pg_bindir)" && [[ -x "$bin/$tool" ]]; then
    printf '%s' "$bin/$tool"
  else
    return 1
  fi
}

# Sets PSQL, installing the PostgreSQL client when it is missing.
ensure_psql() {
  # shellcheck disable=SC2034 # used by the scripts that source this file
  if ! PSQL="$(pg_tool psql)"; then
    apt_install postgresql-client
    # shellcheck disable=SC2034
    PSQL="$(pg_tool psql)" || die "psql not found after installing postgresql-client"
  fi
}

ensure_redis_installed() {
  if ! have redis-server || ! have redis-cli; then
    apt_install redis-server
    have redis-server || die "redis-server not found after installing it"
    have redis-cli || die "redis-cli not found after installing redis-server"
  fi
}

# The servers the fault and topology suites start themselves, whatever TEST_REDIS_URL
# names: redis-server and redis-cli 7 or newer (Cluster nodes with --cluster-port, the
# Sentinel mode, ACL users) and the PostgreSQL server binaries.
ensure_suite_servers() {
  local major
  ensure_redis_installed
  major="$(redis-server --version | sed -n 's/.* v=\([0-9]*\)\..*/\1/p')"
  [[ "${major:-0}" -ge 7 ]] ||
    die "redis-server $(redis-server --version | cut -d' ' -f3) is too old: the topology suite needs Redis 7 or newer (Debian 12's redis-server is 7.0)"
  ensure_postgres_installed
}

# ---------------------------------------------------------------------------- PostgreSQL

# initdb refuses to run as root, so as root the cluster belongs to the `postgres` user.
# Runs from / so the postgres user never starts in a folder it cannot enter (every path
# given is absolute).
as_pg_owner() {
  if [[ "$EUID" -eq 0 ]]; then
    if have runuser; then
      (cd / && runuser -u postgres -- "$@")
    else
      # shellcheck disable=SC2016 # expanded by the inner shell
      (cd / && su postgres -s /bin/sh -c '"$0" "$@"' -- "$@")
    fi
  else
    "$@"
  fi
}

ensure_postgres_user() {
  [[ "$EUID" -eq 0 ]] || return 0
  if ! id postgres >/dev/null 2>&1; then
    info "creating the 'postgres' system user (initdb refuses to run as root)"
    useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/sh postgres ||
      die "cannot create the 'postgres' user"
  fi
}

# Sets PGD_REAL and PGLOG_REAL: the data directory and server log as the server sees
# them. They are .local/pg and .local/logs/postgres.log, unless the postgres user could
# not enter the workspace (root working under a private folder such as /root): then
# those two are symlinks into /var/lib/ofertasws-dev/ and the server gets the targets.
pg_paths() {
  PGD_REAL="$PG_DATA"
  PGLOG_REAL="$LOG_DIR/postgres.log"
  if [[ -L "$PG_DATA" ]]; then PGD_REAL="$(readlink -f "$PG_DATA")"; fi
  if [[ -L "$LOG_DIR/postgres.log" ]]; then PGLOG_REAL="$(readlink -f "$LOG_DIR/postgres.log")"; fi
}

pg_initialized() {
  pg_paths
  [[ -f "$PGD_REAL/PG_VERSION" ]]
}

pg_running() {
  pg_initialized || return 1
  [[ -n "${PG_BIN:-}" ]] || PG_BIN="$(pg_bindir)" || return 1
  as_pg_owner "$PG_BIN/pg_ctl" -D "$PGD_REAL" status >/dev/null 2>&1
}

pg_init() {
  mkdir -p "$LOCAL_DIR" "$LOG_DIR"
  info "creating a PostgreSQL cluster in .local/pg ($("$PG_BIN/postgres" --version))"
  rm -rf "$PG_DATA"
  if [[ "$EUID" -ne 0 ]]; then
    install -d -m 0700 "$PG_DATA"
  elif as_pg_owner test -x "$LOCAL_DIR" 2>/dev/null; then
    install -d -o postgres -m 0700 "$PG_DATA"
  else
    local base
    base="/var/lib/ofertasws-dev/$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)"
    warn "the 'postgres' user cannot enter $LOCAL_DIR; the cluster lives in $base (linked from .local/pg)"
    rm -rf "$base"
    install -d -m 0755 "$base"
    install -d -o postgres -m 0700 "$base/pg"
    install -o postgres -m 0644 /dev/null "$base/postgres.log"
    ln -sfn "$base/pg" "$PG_DATA"
    ln -sfn "$base/postgres.log" "$LOG_DIR/postgres.log"
  fi
  pg_paths
  as_pg_owner "$PG_BIN/initdb" -D "$PGD_REAL" -U postgres --auth=trust -E UTF8 --no-locale \
    >"$LOG_DIR/initdb.log" 2>&1 || die "initdb failed; see .local/logs/initdb.log"
  # A throw-away development cluster: TCP on 127.0.0.1 only and no Unix socket (nothing
  # can collide with a system server), durability traded for speed.
  as_pg_owner tee -a "$PGD_REAL/postgresql.conf" >/dev/null <<CONF

# --- ofertasws development cluster (scripts/services.sh) ---
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = ''
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
}

pg_start() {
  mkdir -p "$LOG_DIR"
  ensure_postgres_installed
  ensure_postgres_user
  if pg_running; then
    info "PostgreSQL already running on 127.0.0.1:$PG_PORT (data: .local/pg)"
    return 0
  fi
  if port_open 127.0.0.1 "$PG_PORT"; then
    die "port $PG_PORT is taken by another process; set OFERTASWS_PG_PORT to a free port"
  fi
  pg_initialized || pg_init
  pg_paths
  [[ -e "$PGLOG_REAL" ]] || touch "$PGLOG_REAL"
  [[ "$EUID" -ne 0 ]] || chown postgres "$PGLOG_REAL"
  info "starting PostgreSQL on 127.0.0.1:$PG_PORT (log: .local/logs/postgres.log)"
  if ! as_pg_owner "$PG_BIN/pg_ctl" -D "$PGD_REAL" -l "$PGLOG_REAL" -w -t 60 \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1" start >/dev/null; then
    tail -n 20 "$PGLOG_REAL" >&2 || true
    die "PostgreSQL did not start; see .local/logs/postgres.log"
  fi
}

pg_stop() {
  if ! pg_initialized; then
    info "PostgreSQL: no cluster in .local/pg"
    return 0
  fi
  if pg_running; then
    info "stopping PostgreSQL (127.0.0.1:$PG_PORT)"
    as_pg_owner "$PG_BIN/pg_ctl" -D "$PGD_REAL" -m fast -w -t 60 stop >/dev/null ||
      die "PostgreSQL did not stop; see .local/logs/postgres.log"
  else
    info "PostgreSQL is not running"
  fi
}

# ---------------------------------------------------------------------------- Redis

redis_pid() {
  local pid
  [[ -f "$REDIS_PIDFILE" ]] || return 1
  pid="$(cat "$REDIS_PIDFILE" 2>/dev/null)"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  printf '%s' "$pid"
}

redis_ping() {
  [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]
}

redis_running() {
  have redis-cli && redis_pid >/dev/null && redis_ping
}

redis_start() {
  mkdir -p "$LOG_DIR" "$REDIS_DIR"
  ensure_redis_installed
  if redis_running; then
    info "Redis already running on 127.0.0.1:$REDIS_PORT (data: .local/redis)"
    return 0
  fi
  if port_open 127.0.0.1 "$REDIS_PORT"; then
    die "port $REDIS_PORT is taken by another process; set OFERTASWS_REDIS_PORT to a free port"
  fi
  info "starting Redis on 127.0.0.1:$REDIS_PORT (log: .local/logs/redis.log)"
  rm -f "$REDIS_PIDFILE"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$REDIS_DIR" \
    --daemonize yes --pidfile "$REDIS_PIDFILE" --logfile "$LOG_DIR/redis.log" \
    --save 300 1 --appendonly no --protected-mode yes >/dev/null ||
    die "redis-server failed to start; see .local/logs/redis.log"
  local i
  for ((i = 0; i < 100; i++)); do
    redis_ping && return 0
    sleep 0.1
  done
  tail -n 20 "$LOG_DIR/redis.log" >&2 || true
  die "Redis did not answer on 127.0.0.1:$REDIS_PORT within 10 s; see .local/logs/redis.log"
}

redis_stop() {
  local pid
  if ! pid="$(redis_pid)"; then
    info "Redis is not running"
    rm -f "$REDIS_PIDFILE"
    return 0
  fi
  info "stopping Redis (127.0.0.1:$REDIS_PORT)"
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
  wait_for_exit "$pid" 100 || die "Redis (pid $pid) did not stop within 10 s"
  rm -f "$REDIS_PIDFILE"
}

# ---------------------------------------------------------------------------- processes

# pid_alive PIDFILE NAME: prints the pid when the process in PIDFILE runs and is NAME
# (so a recycled pid is never mistaken for ours).
pid_alive() {
  local pidfile="$1" name="$2" pid
  [[ -f "$pidfile" ]] || return 1
  pid="$(cat "$pidfile" 2>/dev/null)"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/cmdline" ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$name" || return 1
  fi
  printf '%s' "$pid"
}

# wait_for_exit PID TENTHS: waits up to TENTHS tenths of a second for PID to exit;
# fails when it is still running.
wait_for_exit() {
  local pid="$1" tenths="$2" i
  for ((i = 0; i < tenths; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}

# stop_pidfile PIDFILE NAME: SIGTERM, wait up to 15 s, then SIGKILL.
stop_pidfile() {
  local pidfile="$1" name="$2" pid
  if ! pid="$(pid_alive "$pidfile" "$name")"; then
    rm -f "$pidfile"
    return 0
  fi
  info "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_for_exit "$pid" 150; then
    warn "$name (pid $pid) did not exit within 15 s of SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}
