#!/usr/bin/env bash
# Delta benchmark (issue 12, RFC 9842 `dcz`): the bytes a returning app client downloads
# for a new snapshot when it holds the previous one, under the churn model.
#
# VERSIONS (default 5) real `refresh-service once` runs over OFFERS (default 7,000) live
# offers seeded by scripts/seed.sql, each under a fake clock frozen at a schedule slot
# (faketime: 10:00 and 15:00 REFRESH_TIMEZONE from the seed's day on, so consecutive
# versions are alternately 5 h and 19 h apart), with scripts/churn.sql applied halfway
# between two runs (5 % of the live offers repriced, 3 % ended, 3 % new). An api-service replica serves each version; from it the
# script takes the identity document and the zstd and gzip bodies a client downloads.
# For each version and the one before it, it prints:
#   - dcz: once the API serves deltas (its /meta has `deltas`), the body it sends for
#     `Available-Dictionary` with the earlier document, checked (RFC 9842 header and
#     dictionary hash; decodes with `zstd -d --patch-from` in the window RFC 9842
#     allows to the new document); until then the delta that
#     bench/studies/src/bin/delta_settings builds from the two documents with its
#     recommended setting, checked the same way;
#   - the zstd and gzip bodies, and the limit `zstd --patch-from=OLD --ultra -22 --long=27`;
#   - the ratios, with PASS/FAIL against the targets of issue 12: dcz ≤ 1.3 × limit for
#     every pair, and dcz ≤ gzip/10 and ≤ zstd/5 for the pairs of its churn model (the
#     refreshes of one day, 5 hours apart); for an overnight pair (19 h: the ranking's
#     daily anchor moves, so every expiring offer's score moves) those two are printed as
#     INFO, not judged (README, "Ranking model").
# Then, for the last version, the delta from each retained earlier version: its build
# time (delta_settings, one core; PASS when they add up to at most 60 s) or, once served, when
# /meta lists it after the version became current (PASS when all within 60 s).
#
# --study also runs, on the same documents, the measurements of docs/delta-findings.md:
# the settings grid on today's documents and on re-ranked ones, and the score/clock
# stability study. Raw output in .local/bench/delta/: vN.json (identity documents),
# vN.signals.json, pairs.csv, bases.csv, *.md (study tables). Exits non-zero on a FAIL.
#
# Usage: bench/delta.sh [--study] [VERSIONS (default 5, at least 2)] [OFFERS (default 7000)]
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

study=0
if [[ "${1:-}" == --study ]]; then
  study=1
  shift
fi
versions="${1:-5}"
offers="${2:-7000}"
if ! [[ "$versions" =~ ^[0-9]+$ ]] || ((versions < 2)); then
  die "VERSIONS must be a number of at least 2, not '$versions'"
fi
[[ "$offers" =~ ^[0-9]+$ ]] || die "OFFERS must be a number, not '$offers'"
((study == 0 || versions >= 3)) || die "--study needs at least 3 versions (a 5 h and a 19 h pair)"
api_port="${BENCH_API_PORT:-18230}"
export REFRESH_TIMEZONE="${REFRESH_TIMEZONE:-America/Panama}"
# The re-ranking docs/delta-findings.md recommends, for the settings grid of --study.
stable_clock=midday
stable_decimals=4

have faketime || apt_install faketime
have zstd || apt_install zstd
have jq || apt_install jq
bench_build -p ofertasws-studies --bin delta_settings
delta_settings="$BENCH_BIN/delta_settings"
bench_setup delta "$offers"
out="$BENCH_OUT/delta"
rm -rf "$out"
mkdir -p "$out"
bench_load before

# ------------------------------------------------------------------------------ helpers

day=$(psql -X -At "$DATABASE_URL" -c "select (now() at time zone '$REFRESH_TIMEZONE')::date")
midnight=$(TZ="$REFRESH_TIMEZONE" date -d "$day 00:00" +%s)
# slot N: Unix time of the Nth refresh (1-based): 10:00, 15:00, next day 10:00, …
slot() {
  local slot_hours=(10 15) days=$((($1 - 1) / 2))
  echo $((midnight + days * 86400 + ${slot_hours[($1 - 1) % 2]} * 3600))
}
utc() { date -u -d "@$1" '+%Y-%m-%d %H:%M:%S'; }
local_time() { TZ="$REFRESH_TIMEZONE" date -d "@$1" '+%a %H:%M'; }

# refresh_at TIME: one `refresh-service once` with the clock frozen at TIME (Unix);
# prints the new version.
refresh_at() {
  local outcome status
  outcome=$(TZ=UTC FAKETIME_DONT_FAKE_MONOTONIC=1 faketime -f "$(utc "$1")" \
    "$BENCH_BIN/refresh-service" once --trigger bench 2>>"$bench_logs/refresh-service.log" | tail -n 1)
  status=$(jq -r .status <<<"$outcome")
  [[ "$status" == success ]] || die "refresh at $(utc "$1") UTC: $outcome (see $bench_logs/refresh-service.log)"
  jq -r .version <<<"$outcome"
}

api_get() { curl -sS --max-time 10 -H "Authorization: Bearer $token" "$@"; }
meta() { api_get "$url/meta"; }

# wait_version VERSION: until the API serves it (it learns of it from P:events).
wait_version() {
  local i
  for ((i = 0; i < 100; i++)); do
    [[ "$(meta | jq -r .version)" == "$1" ]] && return 0
    sleep 0.1
  done
  die "the API does not serve $1 after 10 s (see $bench_logs)"
}

# fetch FILE ACCEPT-ENCODING [HEADER…]: GETs the snapshot into FILE and prints the bytes
# downloaded and the Content-Encoding ("identity" without one).
fetch() {
  local file="$1" accept="$2" bytes encoding
  shift 2
  bytes=$(api_get -H "Accept-Encoding: $accept" "$@" -D "$file.headers" -o "$file" -w '%{size_download}' "$url")
  encoding=$(tr -d '\r' <"$file.headers" | awk 'tolower($1) == "content-encoding:" {print $2}')
  echo "$bytes ${encoding:-identity}"
}

sha256_base64() { openssl dgst -sha256 -binary "$1" | base64 -w0; }

# dcz_window FILE: the decoder memory RFC 9842 lets a client use with FILE as dictionary:
# max(8 MiB, 1.25 × size), as a power of two (Chromium: windowLog clamp(⌈log2⌉, 23, 27)).
dcz_window() {
  awk -v size="$(stat -c %s "$1")" 'BEGIN {
    log2 = log(1.25 * size) / log(2); w = int(log2); if (w < log2) w++
    if (w < 23) w = 23; if (w > 27) w = 27; printf "%d\n", 2 ^ w }'
}

# check_dcz BODY OLD NEW: BODY is a dcz body for OLD that decodes to NEW.
check_dcz() {
  local body="$1" old="$2" new="$3"
  [[ "$(head -c 8 "$body" | od -An -tx1 | tr -d ' \n')" == 5e2a4d1820000000 ]] ||
    die "$body: not an RFC 9842 dcz header"
  [[ "$(tail -c +9 "$body" | head -c 32 | od -An -tx1 | tr -d ' \n')" == "$(sha256sum "$old" | cut -d' ' -f1)" ]] ||
    die "$body: the dictionary hash is not the SHA-256 of $old"
  zstd -d -q -c --memory="$(dcz_window "$old")" --patch-from="$old" "$body" | cmp -s - "$new" ||
    die "$body does not decode to $new with $old as dictionary"
}

# study_dcz OLD NEW BODY: the delta delta_settings builds, written as a dcz body (RFC 9842
# header + frame) to BODY, checked; prints its bytes and build time (ms).
study_dcz() {
  local old="$1" new="$2" body="$3" line
  line=$("$delta_settings" dcz "$new" --base "$old" --frame-out "$body.frame")
  { printf '\x5e\x2a\x4d\x18\x20\x00\x00\x00'; openssl dgst -sha256 -binary "$old"; cat "$body.frame"; } >"$body"
  rm -f "$body.frame"
  check_dcz "$body" "$old" "$new"
  cut -f2,3 <<<"$line" | tr '\t' ' '
}

# watch_deltas SINCE FILE VERSION…: polls /meta until its `deltas` lists every VERSION,
# failing 60 s after SINCE (an $EPOCHREALTIME); writes "VERSION MS" lines to FILE, MS
# from SINCE to the first answer that listed it.
watch_deltas() {
  local since="$1" file="$2" listed now version still
  shift 2
  local pending=("$@")
  : >"$file"
  while ((${#pending[@]})); do
    listed=$(meta | jq -r '.deltas[]?.version')
    now=$EPOCHREALTIME
    still=()
    for version in "${pending[@]}"; do
      if grep -qxF -- "$version" <<<"$listed"; then
        awk -v v="$version" -v now="$now" -v since="$since" 'BEGIN {printf "%s %.0f\n", v, (now - since) * 1000}' >>"$file"
      else
        still+=("$version")
      fi
    done
    pending=("${still[@]}")
    if ((${#pending[@]})); then
      awk -v now="$now" -v since="$since" 'BEGIN {exit !(now - since > 60)}' &&
        die "/meta did not list deltas from ${pending[*]} within 60 s"
      sleep 0.1
    fi
  done
}

# served_dcz OLD NEW BODY: fetches the snapshot with Available-Dictionary naming OLD into
# BODY, requires dcz and checks it; prints its bytes.
served_dcz() {
  local old="$1" new="$2" body="$3" got
  got=$(fetch "$body" "dcz, zstd, gzip" -H "Available-Dictionary: :$(sha256_base64 "$old"):")
  [[ "${got#* }" == dcz ]] || die "asked for a delta from $old, got Content-Encoding ${got#* }"
  check_dcz "$body" "$old" "$new"
  echo "${got%% *}"
}

# ready_ms FILE VERSION: the MS watch_deltas recorded for VERSION.
ready_ms() { awk -v v="$2" '$1 == v {print $2}' "$1"; }

verdicts=()
# verdict NAME PASS(0/1) DETAIL
verdict() {
  local word=FAIL
  (($2)) && word=PASS
  verdicts+=("$word $1: $3")
}
le() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a <= b)}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

# ------------------------------------------------------------------------------ versions

url="http://127.0.0.1:$api_port/api/v4/ofertasws"
token=""
served=""
names=()
echo "pair,hours,old,new,dcz_bytes,dcz_source,dcz_ms,zstd_bytes,gzip_bytes,limit_bytes" >"$out/pairs.csv"
for ((n = 1; n <= versions; n++)); do
  at=$(slot "$n")
  if ((n > 1)); then
    psql -X -q -v ON_ERROR_STOP=1 -v at="$(utc $(((at + $(slot $((n - 1)))) / 2)))+00" -v round=$((n - 1)) \
      "$DATABASE_URL" -f "$ROOT/scripts/churn.sql" | sed "s/^/  /" >&2
  fi
  version=$(refresh_at "$at")
  names+=("$version")
  info "v$n = $version at $(local_time "$at") $REFRESH_TIMEZONE ($(utc "$at") UTC)"
  "$delta_settings" signals --out "$out/v$n.signals.json"
  if ((n == 1)); then
    bench_start_api "$api_port"
    token=$("$BENCH_BIN/api-service" token --ttl 2h)
    served=$(meta | jq -r 'if has("deltas") then "api" else "delta_settings" end')
    info "dcz figures from: $served"
  fi
  wait_version "$version"
  if [[ "$served" == api ]] && ((n > 1)); then
    # Every retained earlier version (the contract keeps at least 4) should get a delta.
    first=$((n > 5 ? n - 4 : 1))
    watch_deltas "$EPOCHREALTIME" "$out/v$n.ready" "${names[@]:first-1:n-first}"
  fi
  read -r _ encoding < <(fetch "$out/v$n.json" identity)
  [[ "$encoding" == identity ]] || die "asked for identity, got $encoding"
  [[ "$(jq -r .generated_at "$out/v$n.json")" == "$(date -u -d "@$at" '+%Y-%m-%dT%H:%M:%S.000Z')" ]] ||
    die "v$n was not generated under the fake clock ($(jq -r .generated_at "$out/v$n.json"))"
  read -r zstd_bytes encoding < <(fetch "$out/v$n.zst" zstd)
  [[ "$encoding" == zstd ]] || die "asked for zstd, got $encoding"
  read -r gzip_bytes encoding < <(fetch "$out/v$n.gz" gzip)
  [[ "$encoding" == gzip ]] || die "asked for gzip, got $encoding"
  if ((n > 1)); then
    old="$out/v$((n - 1)).json" new="$out/v$n.json"
    if [[ "$served" == api ]]; then
      dcz_bytes=$(served_dcz "$old" "$new" "$out/v$n.from-v$((n - 1)).dcz")
      dcz_ms=$(ready_ms "$out/v$n.ready" "${names[n - 2]}")
    else
      read -r dcz_bytes dcz_ms < <(study_dcz "$old" "$new" "$out/v$n.from-v$((n - 1)).dcz")
    fi
    limit=$(zstd -q -c --patch-from="$old" --ultra -22 --long=27 "$new" 2>>"$bench_logs/zstd.log" | wc -c)
    gap=$(((at - $(slot $((n - 1)))) / 3600))
    echo "v$((n - 1))-v$n,$gap,${names[n - 2]},$version,$dcz_bytes,$served,$dcz_ms,$zstd_bytes,$gzip_bytes,$limit" >>"$out/pairs.csv"
  fi
done

# ------------------------------------------------------------------------------ report

echo
echo "Bytes a returning client downloads for the new version (dcz from: $served; sizes are HTTP bodies)"
printf '%-8s %5s %10s %10s %10s %10s %11s %11s %11s\n' \
  pair hours dcz zstd gzip limit "gzip÷dcz" "zstd÷dcz" "dcz÷limit"
while IFS=, read -r pair hours _ _ dcz _ _ zstd gzip limit; do
  printf '%-8s %5s %10s %10s %10s %10s %11s %11s %11s\n' "$pair" "$hours" "$dcz" "$zstd" "$gzip" "$limit" \
    "$(ratio "$gzip" "$dcz")" "$(ratio "$zstd" "$dcz")" "$(ratio "$dcz" "$limit")"
  if ((hours <= 5)); then
    verdict "$pair dcz ≤ gzip/10" "$(le $((dcz * 10)) "$gzip" && echo 1 || echo 0)" "$dcz × 10 vs $gzip"
    verdict "$pair dcz ≤ zstd/5" "$(le $((dcz * 5)) "$zstd" && echo 1 || echo 0)" "$dcz × 5 vs $zstd"
  else
    verdicts+=("INFO $pair ($hours h, overnight) gzip÷dcz $(ratio "$gzip" "$dcz"), zstd÷dcz $(ratio "$zstd" "$dcz")")
  fi
  verdict "$pair dcz ≤ 1.3 × limit" "$(le "$dcz" "$(awk -v l="$limit" 'BEGIN {print 1.3 * l}')" && echo 1 || echo 0)" \
    "$dcz vs $limit"
done < <(tail -n +2 "$out/pairs.csv")

echo
last="$out/v$versions.json"
first_base=$((versions > 5 ? versions - 4 : 1))
echo "Deltas of v$versions from each retained earlier version"
echo "base,hours,dcz_bytes,ms,cpu_ms" >"$out/bases.csv"
if [[ "$served" == api ]]; then
  echo "(ms: from the API serving v$versions to /meta listing the delta; CPU ms: not known from outside)"
  for ((k = versions - 1; k >= first_base; k--)); do
    bytes=$(served_dcz "$out/v$k.json" "$last" "$out/v$versions.from-v$k.dcz")
    ms=$(ready_ms "$out/v$versions.ready" "${names[k - 1]}")
    echo "v$k,$((($(slot "$versions") - $(slot "$k")) / 3600)),$bytes,$ms,-" >>"$out/bases.csv"
  done
  total=$(tail -n +2 "$out/bases.csv" | cut -d, -f4 | sort -n | tail -n 1)
  verdict "all deltas of v$versions listed within 60 s" "$( ((total <= 60000)) && echo 1 || echo 0)" "last after $total ms"
else
  echo "(ms: delta_settings' build time, wall clock and CPU, medians of 3 on one core of a shared machine)"
  bases=()
  for ((k = versions - 1; k >= first_base; k--)); do bases+=(--base "$out/v$k.json"); done
  "$delta_settings" dcz "$last" "${bases[@]}" | while IFS=$'\t' read -r base bytes ms cpu_ms; do
    k=$(basename "$base" .json)
    k=${k#v}
    echo "v$k,$((($(slot "$versions") - $(slot "$k")) / 3600)),$bytes,$ms,$cpu_ms"
  done >>"$out/bases.csv"
  total=$(tail -n +2 "$out/bases.csv" | awk -F, '{s += $4} END {printf "%.0f", s}')
  cpu_total=$(tail -n +2 "$out/bases.csv" | awk -F, '{s += $5} END {printf "%.0f", s}')
  verdict "all deltas of v$versions built within 60 s" "$( ((total <= 60000)) && echo 1 || echo 0)" \
    "$total ms one after the other ($cpu_total ms of CPU)"
fi
printf '%-6s %6s %10s %10s %10s\n' base hours dcz ms "CPU ms"
tail -n +2 "$out/bases.csv" | tr ',' ' ' | xargs -r printf '%-6s %6s %10s %10s %10s\n'

if ((study)); then
  echo
  info "study: settings grid on v1 → v2 as published today"
  "$delta_settings" settings "$out/v1.json" "$out/v2.json" | tee "$out/settings-today.md"
  echo
  info "study: settings grid on v1 → v2 re-ranked with clock $stable_clock, $stable_decimals decimals"
  "$delta_settings" settings "$out/v1.json" "$out/v2.json" --clock "$stable_clock" --decimals "$stable_decimals" |
    tee "$out/settings-stable.md"
  echo
  info "study: score precision and clock anchor"
  "$delta_settings" stability --pair 5h "$out/v1.json" "$out/v2.json" --pair 19h "$out/v2.json" "$out/v3.json" \
    --pair 24h "$out/v1.json" "$out/v3.json" | tee "$out/stability.md"
fi

echo
bench_load after
failed=0
for line in "${verdicts[@]}"; do
  echo "$line"
  [[ "$line" == FAIL* ]] && failed=1
done
echo "raw: $out"
exit "$failed"
