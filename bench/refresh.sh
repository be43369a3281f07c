#!/usr/bin/env bash
# Refresh benchmark: time of `refresh-service once` for N offers (median and p90 of RUNS
# runs, one offer changed between runs so every run publishes), the stage breakdown of
# the last run, and the refresher's peak RSS. With the default 7,000 offers it also
# measures gzip and zstd levels on the resulting document. Every run's time and peak RSS
# is also saved as .local/bench/refresh-OFFERS.csv (bench/plot.py draws them).
#
# Usage: bench/refresh.sh [OFFERS (default 7000)] [RUNS (default 20)]
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

offers="${1:-7000}"
runs="${2:-20}"

"$ROOT/scripts/onnxruntime.sh"
"$ROOT/scripts/services.sh" start >/dev/null
(cd "$ROOT" && cargo build --release --bins -q)
(cd "$ROOT" && cargo build --release -q -p ofertasws-studies --bin compression_levels)
bin="$ROOT/target/release"

export DATABASE_URL="postgres://postgres@127.0.0.1:${OFERTASWS_PG_PORT:-55432}/ofertasws_bench_refresh"
export REDIS_URL="redis://127.0.0.1:${OFERTASWS_REDIS_PORT:-56379}"
export OFERTASWS_PREFIX="bench-refresh-$offers"
export LOG_FORMAT=json RUST_LOG=info

"$bin/refresh-service" migrate 2>/dev/null
info "seeding $offers live offers"
psql -q -X "$DATABASE_URL" -v live="$offers" -f "$ROOT/scripts/seed.sql" >/dev/null
redis-cli -u "$REDIS_URL" --scan --pattern "$OFERTASWS_PREFIX:*" | xargs -r redis-cli -u "$REDIS_URL" del >/dev/null

times=()
raw="$ROOT/.local/bench/refresh-$offers.csv"
mkdir -p "$(dirname "$raw")"
echo "run,execution_time_ms,peak_rss_kb" >"$raw"
log=$(mktemp)
trap 'rm -f "$log" "$log.out"' EXIT
for run in $(seq "$runs"); do
  psql -q -X "$DATABASE_URL" -c "update ofertas set title = title || '.', updated_at = now() where id = (select id from ofertas where active order by id offset ($run * 37) % 5000 limit 1)" >/dev/null
  # Runs one refresh; the outcome line goes to $log.out, the log to $log; prints the
  # child's peak RSS (getrusage).
  peak_kb=$(python3 - "$bin/refresh-service" "$log" <<'PY'
import resource, subprocess, sys
with open(sys.argv[2], "w") as log, open(sys.argv[2] + ".out", "w") as out:
    subprocess.run([sys.argv[1], "once", "--trigger", "bench"], stdout=out, stderr=log, check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
PY
  )
  ms=$(python3 -c 'import json,sys; o=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); assert o["status"]=="success", o; print(o["execution_time_ms"])' "$log.out")
  times+=("$ms")
  echo "$run,$ms,$peak_kb" >>"$raw"
done
stats=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; p=a[int(NR*0.9+0.999)]; printf "median %s ms, p90 %s ms, min %s ms, max %s ms", m, p, a[1], a[NR]}')
echo "offers: $offers; runs: $runs; refresh (execution_time_ms): $stats"
echo "last run stages: $(python3 -c '
import json,sys
for line in open(sys.argv[1]):
    try: e=json.loads(line)
    except ValueError: continue
    f=e.get("fields",{})
    if f.get("message")=="snapshot published":
        print(", ".join(k.split(".")[-1] + "=" + str(v) for k, v in f.items() if k.startswith(("refresh.", "snapshot.", "offers."))))
' "$log")"
echo "refresher peak RSS: $((peak_kb / 1024)) MiB (ru_maxrss $peak_kb kB, whole process incl. ONNX Runtime)"
echo "raw: $raw"
if [[ "$offers" == 7000 ]]; then
  "$ROOT/target/release/compression_levels"
fi
