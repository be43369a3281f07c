#!/usr/bin/env bash
# Builds and tests the Android client (clients/android) on the JVM, with Debian's jars
# (no Gradle or Maven: nothing is downloaded):
#   1. scripts/java.sh installs the JDK, OkHttp, zstd-jni, JUnit 5 and zstd when missing;
#   2. compiles the client with javac --release 8 (the level Android apps build with),
#      then the unit and system tests, into clients/android/build/ (git-ignored);
#   3. runs the unit tests (package com.ofertasws.client: no server needed);
#   4. runs the system tests through the Rust driver (see run_system_tests), after
#      scripts/onnxruntime.sh fetches the ONNX Runtime library the refresher ranks with.
#
# Usage: clients/android/test.sh [--unit | --build]
#   --unit   steps 1-3 only
#   --build  steps 1-2 only (what the Rust driver runs before the system tests)
# Exit status: 0 when everything run passed.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$HERE/../../scripts/lib.sh"

BUILD="$HERE/build"
JARS=/usr/share/java
LIBS="$JARS/okhttp.jar:$JARS/okio.jar:$JARS/zstd-jni.jar"
JUNIT="$JARS/junit-platform-console-standalone.jar"

usage() { sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

# compile OUT CLASSPATH SOURCE_DIR: javac --release 8 of every .java under SOURCE_DIR.
compile() {
  local out="$1" classpath="$2" sources="$3" list
  rm -rf "$out"
  mkdir -p "$out"
  list="$BUILD/$(basename "$out").sources"
  find "$sources" -name '*.java' | sort >"$list"
  javac --release 8 -encoding UTF-8 -Xlint:all,-options -Werror -d "$out" -cp "$classpath" "@$list" ||
    die "javac failed for $sources"
}

build() {
  mkdir -p "$BUILD"
  info "compiling the client (javac --release 8) into clients/android/build/"
  compile "$BUILD/main" "$LIBS" "$HERE/src/main/java"
  compile "$BUILD/test" "$BUILD/main:$LIBS:$JUNIT" "$HERE/src/test/java"
  compile "$BUILD/system-test" "$BUILD/main:$LIBS:$JUNIT" "$HERE/src/systemTest/java"
}

run_unit_tests() {
  info "unit tests (JUnit 5)"
  java -jar "$JUNIT" --disable-banner --details=tree \
    --class-path "$BUILD/test:$BUILD/main:$LIBS" \
    --select-package com.ofertasws.client --exclude-package com.ofertasws.client.system \
    --reports-dir "$BUILD/reports/unit" --fail-if-no-tests
}

# The system tests run the client against the real services: the workspace crate
# system-tests starts PostgreSQL (seeded with 7,000 offers), Redis, `refresh-service run`
# and `api-service serve`, then runs the JUnit class
# com.ofertasws.client.system.DeltaSystemTest from clients/android/build/ with the
# OFERTASWS_* variables naming that stack, and ends with the test's
# `full=<bytes> delta=<bytes>` line. The driver runs `clients/android/test.sh --build`
# first, so it also works on its own.
run_system_tests() {
  local log="$BUILD/system-tests.log" line
  # The refresher ranks with ONNX Runtime; on a clean clone only scripts/test.sh had
  # fetched it so far, and without it the stack never served a snapshot.
  "$ROOT/scripts/onnxruntime.sh" || die "scripts/onnxruntime.sh failed"
  info "system tests (cargo test -p system-tests --test clients android; output in clients/android/build/system-tests.log)"
  if ! (cd "$ROOT" && cargo test -p system-tests --test clients android -- --nocapture) 2>&1 | tee "$log"; then
    die "the system tests failed (see above)"
  fi
  # The churn step's bytes on the wire, as the closing line.
  line="$(grep -E '^full=[0-9]+ delta=[0-9]+$' "$log" | tail -n 1)" ||
    die "the system tests printed no full=<bytes> delta=<bytes> line"
  printf '%s\n' "$line"
}

main() {
  local mode=all
  case "${1:-}" in
    "") ;;
    --unit) mode=unit ;;
    --build) mode=build ;;
    -h | --help) usage && return 0 ;;
    *) usage >&2 && die "unknown argument '$1'" ;;
  esac
  "$ROOT/scripts/java.sh"
  build
  [[ "$mode" == build ]] && return 0
  run_unit_tests
  [[ "$mode" == unit ]] && return 0
  run_system_tests
}

main "$@"
