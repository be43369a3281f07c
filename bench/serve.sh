#!/usr/bin/env bash
# Serving benchmark: api-service vs nginx gzip_static, same gzip body, same machine, same run.
#
# Builds the release binaries, publishes a 7,000-offer snapshot (scripts/seed.sql) into a
# private Redis prefix, starts api-service and an nginx (config generated into a temp dir)
# serving the very same gzip body, drives both with wrk on loopback — the 200 path and
# the 304 path — and prints requests/s, p99 latency, the ratio api ÷ nginx, and the CPU
# time each server used per request (user + system, from /proc/PID/stat: the api-service
# process, nginx's worker processes), plus the api-service peak RSS. Every api-service
# request carries a valid JWT.
#
# It also measures the zstd and the dcz 200 (paths `zstd` and `dcz`: the same snapshot, 5 %
# of its offers changed since the version the client names in `Available-Dictionary`),
# against nginx sending the very same bytes as static files with the same
# `Content-Encoding`, and, with API_BIN_BEFORE=DIR, an older api-service binary
# (DIR/api-service, server `before`) on the same snapshot in the same rounds.
#
# Client and servers share the machine's cores, so one run of a few seconds can be off by
# 10-20 % either way. The two servers are therefore measured in ROUNDS rounds, back to
# back, the order alternating from round to round; the table gives the median of the
# rounds for each server and the median of the per-round ratios. Every run is saved in
# .local/bench/serve.csv (bench/plot.py draws it).
#
# Usage: bench/serve.sh [SECONDS_PER_RUN (default 10)] [CONNECTIONS (default 32)] [ROUNDS (default 5)]
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

duration="${1:-10}"
connections="${2:-32}"
rounds="${3:-5}"
api_port="${BENCH_API_PORT:-18000}"
nginx_port="${BENCH_NGINX_PORT:-18081}"

for tool in nginx wrk; do
  have "$tool" || have "/usr/sbin/$tool" || { info "installing $tool"; apt-get install -y -qq "$([[ $tool == nginx ]] && echo nginx-light || echo wrk)" >/dev/null; }
done
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

"$ROOT/scripts/onnxruntime.sh"
"$ROOT/scripts/services.sh" start >/dev/null
(cd "$ROOT" && cargo build --release --bins -q)
bin="$ROOT/target/release"

work=$(mktemp -d)
api_pid=""
before_pid=""
cleanup() {
  if [[ -n "$api_pid" ]]; then kill "$api_pid" 2>/dev/null || true; fi
  if [[ -n "$before_pid" ]]; then kill "$before_pid" 2>/dev/null || true; fi
  if [[ -f "$work/nginx.pid" ]]; then kill "$(cat "$work/nginx.pid")" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

export DATABASE_URL="postgres://postgres@127.0.0.1:${OFERTASWS_PG_PORT:-55432}/ofertasws_bench"
export REDIS_URL="redis://127.0.0.1:${OFERTASWS_REDIS_PORT:-56379}"
export OFERTASWS_PREFIX="bench-serve"
export JWT_SECRET="bench-secret"
export API_BIND="127.0.0.1:$api_port"
export RUST_LOG=warn LOG_FORMAT=json

"$bin/refresh-service" migrate 2>/dev/null
psql -q -X "$DATABASE_URL" -f "$ROOT/scripts/seed.sql" >/dev/null
redis-cli -u "$REDIS_URL" --scan --pattern "$OFERTASWS_PREFIX:*" | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null
"$bin/refresh-service" once --trigger bench >/dev/null
first_zstd=$(redis-cli -u "$REDIS_URL" get "$OFERTASWS_PREFIX:{snapshot}:current" | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
# The client's dictionary: the first version's document; then 5 % of the offers change.
dictionary=$(redis-cli -u "$REDIS_URL" --raw getrange "$OFERTASWS_PREFIX:{snapshot}:v:$first_zstd:zstd" 0 -1 | head -c -1 | zstd -dq |
  python3 -c 'import base64,hashlib,sys; print(":" + base64.b64encode(hashlib.sha256(sys.stdin.buffer.read()).digest()).decode() + ":")')
psql -q -X "$DATABASE_URL" -c "update ofertas set price = price + 1, updated_at = now() where active and id % 20 = 0" >/dev/null
"$bin/refresh-service" once --trigger bench >/dev/null

# start_api BIN PORT LOG: api-service BIN on PORT; prints its pid once it is ready.
start_api() {
  API_BIND="127.0.0.1:$2" "$1" serve >/dev/null 2>"$3" &
  local pid=$! i
  for ((i = 0; i < 100; i++)); do
    curl -sf "http://127.0.0.1:$2/ready" >/dev/null && break
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:$2/ready" >/dev/null || die "api-service did not become ready (see $3)"
  echo "$pid"
}
api_pid=$(start_api "$bin/api-service" "$api_port" "$work/api.log")
before_pid=""
if [[ -n "${API_BIN_BEFORE:-}" ]]; then
  before_port=$((api_port + 1))
  before_pid=$(start_api "$API_BIN_BEFORE/api-service" "$before_port" "$work/api-before.log")
fi
token=$("$bin/api-service" token --ttl 1h)
auth="Authorization: Bearer $token"
for _ in $(seq 300); do
  curl -sf -H "$auth" "http://$API_BIND/api/v4/ofertasws/meta" | grep -q '"dcz_bytes"' && break
  sleep 0.1
done
dcz_len=$(curl -sf -H "$auth" -H 'Accept-Encoding: dcz' -H "Available-Dictionary: $dictionary" "http://$API_BIND/api/v4/ofertasws" | wc -c)
zstd_len=$(curl -sf -H "$auth" -H 'Accept-Encoding: zstd' "http://$API_BIND/api/v4/ofertasws" | wc -c)
[[ "$(curl -sfI -H "$auth" -H 'Accept-Encoding: dcz' -H "Available-Dictionary: $dictionary" "http://$API_BIND/api/v4/ofertasws" | tr -d '\r' | awk 'tolower($1)=="content-encoding:"{print $2}')" == dcz ]] ||
  die "api-service sends no dcz delta (see $work/api.log)"

mkdir -p "$work/www"
chmod 755 "$work" "$work/www"  # nginx workers run unprivileged
curl -sf -H "$auth" -H 'Accept-Encoding: gzip' "http://$API_BIND/api/v4/ofertasws" -o "$work/www/ofertasws.json.gz"
curl -sf -H "$auth" "http://$API_BIND/api/v4/ofertasws" -o "$work/www/ofertasws.json"
curl -sf -H "$auth" -H 'Accept-Encoding: zstd' "http://$API_BIND/api/v4/ofertasws" -o "$work/www/ofertasws.zst"
curl -sf -H "$auth" -H 'Accept-Encoding: dcz' -H "Available-Dictionary: $dictionary" "http://$API_BIND/api/v4/ofertasws" -o "$work/www/ofertasws.dcz"
chmod 644 "$work/www/"*
cat >"$work/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  types { application/json json; }
  server {
    listen 127.0.0.1:$nginx_port;
    root $work/www;
    gzip_static on;
    etag on;
    location / { add_header Cache-Control "private, no-cache"; }
    # The same zstd and dcz bodies the API sends, as static files with its encodings.
    location = /ofertasws.zst {
      types { } default_type application/json;
      add_header Content-Encoding zstd;
      add_header Cache-Control "private, no-cache";
    }
    location = /ofertasws.dcz {
      types { } default_type application/json;
      add_header Content-Encoding dcz;
      add_header Cache-Control "private, no-cache";
    }
  }
}
CONF
"$nginx_bin" -c "$work/nginx.conf" -e "$work/nginx-error.log"
sleep 0.3

api_etag=$(curl -sfI -H "$auth" -H 'Accept-Encoding: gzip' "http://$API_BIND/api/v4/ofertasws" | tr -d '\r' | awk 'tolower($1)=="etag:"{print $2}')
nginx_etag=$(curl -sfI -H 'Accept-Encoding: gzip' "http://127.0.0.1:$nginx_port/ofertasws.json" | tr -d '\r' | awk 'tolower($1)=="etag:"{print $2}')
api_len=$(stat -c %s "$work/www/ofertasws.json.gz")
nginx_len=$(curl -sf -H 'Accept-Encoding: gzip' "http://127.0.0.1:$nginx_port/ofertasws.json" | wc -c)
[[ "$api_len" == "$nginx_len" ]] || die "bodies differ in size: api $api_len, nginx $nginx_len"
[[ "$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $nginx_etag" -H 'Accept-Encoding: gzip' "http://127.0.0.1:$nginx_port/ofertasws.json")" == 304 ]] || die "nginx does not answer 304"
[[ "$(curl -s -o /dev/null -w '%{http_code}' -H "$auth" -H "If-None-Match: $api_etag" -H 'Accept-Encoding: gzip' "http://$API_BIND/api/v4/ofertasws")" == 304 ]] || die "api-service does not answer 304"

# cpu_ticks PID...: clock ticks of user + system time the processes have used so far.
cpu_ticks() {
  local pid total=0 fields
  for pid in "$@"; do
    read -r -a fields <"/proc/$pid/stat"
    total=$((total + fields[13] + fields[14]))
  done
  echo "$total"
}

# run URL PIDS [HEADER...]: one wrk run against the server made of the processes PIDS
# (space-separated); prints "requests_per_second p99_ms non_2xx_3xx cpu_us_per_request".
run() {
  local url="$1" pids
  read -r -a pids <<<"$2"
  shift 2
  local args=() header
  for header in "$@"; do args+=(-H "$header"); done
  local out before after
  before=$(cpu_ticks "${pids[@]}")
  out=$(wrk -t2 -c"$connections" -d"${duration}s" --latency "${args[@]}" "$url")
  after=$(cpu_ticks "${pids[@]}")
  local rps p99 errors requests cpu
  rps=$(awk '/^Requests\/sec:/{print $2}' <<<"$out")
  requests=$(awk '/requests in/{print $1}' <<<"$out")
  cpu=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" 'BEGIN{printf "%.1f", t / hz * 1e6 / n}')
  p99=$(awk '$1=="99%"{v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' <<<"$out")
  errors=$(awk '/Non-2xx or 3xx responses:/{print $5}' <<<"$out")
  echo "$rps $p99 ${errors:-0} $cpu"
}

raw="$ROOT/.local/bench/serve.csv"
mkdir -p "$(dirname "$raw")"
echo "path,round,server,requests_per_second,p99_ms,errors,cpu_us_per_request" >"$raw"
echo "snapshot: $(curl -sf -H "$auth" "http://$API_BIND/api/v4/ofertasws/meta")"
echo "gzip body: $api_len bytes; wrk -t2 -c$connections -d${duration}s on loopback, $rounds rounds; $(nproc) cores shared by client and server"

nginx_workers=$(pgrep -d' ' -P "$(cat "$work/nginx.pid")")

# measure PATH SERVER: one wrk run; prints what `run` prints. Paths 200 and 304 are the
# gzip body and its revalidation; zstd and dcz (api-service only) the zstd body and the
# delta from the first version.
measure() {
  local path="$1" server="$2" url pids headers
  local file=ofertasws.json
  case $path in
    zstd) file=ofertasws.zst ;;
    dcz) file=ofertasws.dcz ;;
  esac
  case $server in
    nginx) url="http://127.0.0.1:$nginx_port/$file"; pids="$nginx_workers"; headers=() ;;
    api) url="http://$API_BIND/api/v4/ofertasws"; pids="$api_pid"; headers=("$auth") ;;
    before) url="http://127.0.0.1:$before_port/api/v4/ofertasws"; pids="$before_pid"; headers=("$auth") ;;
  esac
  case $path in
    200) headers+=('Accept-Encoding: gzip') ;;
    304) headers+=('Accept-Encoding: gzip' "If-None-Match: $([[ $server == nginx ]] && echo "$nginx_etag" || echo "$api_etag")") ;;
    zstd) headers+=('Accept-Encoding: zstd') ;;
    dcz) headers+=('Accept-Encoding: dcz, zstd' "Available-Dictionary: $dictionary") ;;
  esac
  run "$url" "$pids" "${headers[@]}"
}

# median: the median of the numbers on stdin.
median() {
  sort -g | awk '{v[NR]=$1} END {if (NR % 2) print v[(NR+1)/2]; else printf "%.2f\n", (v[NR/2]+v[NR/2+1])/2}'
}

servers=(nginx api)
[[ -n "$before_pid" ]] && servers+=(before)
printf '%-6s %-6s %-7s %12s %10s %8s %12s\n' path round server "requests/s" "p99 ms" errors "cpu µs/req"
for path in 200 304 zstd dcz; do
  for ((round = 1; round <= rounds; round++)); do
    order=("${servers[@]}")
    # The order alternates from round to round.
    ((round % 2)) || mapfile -t order < <(printf '%s\n' "${order[@]}" | tac)
    for server in "${order[@]}"; do
      read -r rps p99 errors cpu < <(measure "$path" "$server")
      printf '%-6s %-6s %-7s %12s %10s %8s %12s\n' "$path" "$round" "$server" "$rps" "$p99" "$errors" "$cpu"
      echo "$path,$round,$server,$rps,$p99,$errors,$cpu" >>"$raw"
    done
  done
done

field() { awk -F, -v p="$1" -v s="$2" -v c="$3" '$1==p && $3==s {print $c}' "$raw"; }
echo
echo "medians over $rounds rounds:"
printf '%-6s %12s %12s %10s %13s %11s %16s %14s\n' path "nginx req/s" "api req/s" "api÷nginx" "nginx p99 ms" "api p99 ms" "nginx cpu µs/req" "api cpu µs/req"
for path in 200 304 zstd dcz; do
  ratio=$(paste -d' ' <(field "$path" api 4) <(field "$path" nginx 4) | awk '{printf "%.3f\n", $1/$2}' | median)
  printf '%-6s %12s %12s %10s %13s %11s %16s %14s\n' "$path" \
    "$(field "$path" nginx 4 | median)" "$(field "$path" api 4 | median)" "$ratio" \
    "$(field "$path" nginx 5 | median)" "$(field "$path" api 5 | median)" \
    "$(field "$path" nginx 7 | median)" "$(field "$path" api 7 | median)"
done
if [[ -n "$before_pid" ]]; then
  echo
  echo "api-service before ($API_BIN_BEFORE) and now, medians over $rounds rounds:"
  printf '%-6s %14s %12s %12s %18s %15s\n' path "before req/s" "now req/s" "now÷before" "before cpu µs/req" "now cpu µs/req"
  for path in 200 304 zstd dcz; do
    ratio=$(paste -d' ' <(field "$path" api 4) <(field "$path" before 4) | awk '{printf "%.3f\n", $1/$2}' | median)
    printf '%-6s %14s %12s %12s %18s %15s\n' "$path" "$(field "$path" before 4 | median)" \
      "$(field "$path" api 4 | median)" "$ratio" "$(field "$path" before 7 | median)" "$(field "$path" api 7 | median)"
  done
fi
echo
echo "bodies: gzip $api_len, zstd $zstd_len, dcz $dcz_len bytes (the same bytes from both servers)"
peak=$(awk '/VmHWM/{print $2}' "/proc/$api_pid/status")
echo "api-service peak RSS: $((peak / 1024)) MiB (VmHWM $peak kB)"
echo "raw: $raw"
