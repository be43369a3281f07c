#!/usr/bin/env bash
# Installs what the Android client (clients/android) builds and tests with, from Debian
# (no Gradle or Maven: nothing is downloaded from a Maven repository):
#   openjdk-17-jdk-headless  javac (compiles with --release 8) and java
#   libokhttp-java           OkHttp 3.13 (/usr/share/java/okhttp.jar, okio.jar)
#   libzstd-jni-java         zstd-jni 1.5.2 (/usr/share/java/zstd-jni.jar and its native library)
#   junit5                   JUnit 5 (/usr/share/java/junit-platform-console-standalone.jar)
#   zstd                     the zstd CLI: the unit tests make their dcz fixtures with
#                            `zstd --patch-from`, the encoder the server's deltas are checked against
# Missing packages are installed with apt-get --no-install-recommends (as root, or through
# passwordless sudo); idempotent: does nothing when everything is there.
# clients/android/test.sh runs it before it compiles.
#
# Usage: scripts/java.sh
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

JAVA_DIR=/usr/share/java

main() {
  local missing=()
  have javac || missing+=(openjdk-17-jdk-headless)
  [[ -f "$JAVA_DIR/okhttp.jar" && -f "$JAVA_DIR/okio.jar" ]] || missing+=(libokhttp-java)
  [[ -f "$JAVA_DIR/zstd-jni.jar" ]] || missing+=(libzstd-jni-java)
  [[ -f "$JAVA_DIR/junit-platform-console-standalone.jar" ]] || missing+=(junit5)
  have zstd || missing+=(zstd)
  [[ ${#missing[@]} -eq 0 ]] && return 0
  apt_install "${missing[@]}"
  have javac || die "javac is still missing after installing openjdk-17-jdk-headless"
  have zstd || die "the zstd command is still missing after installing zstd"
  local jar
  for jar in okhttp.jar okio.jar zstd-jni.jar junit-platform-console-standalone.jar; do
    [[ -f "$JAVA_DIR/$jar" ]] || die "$JAVA_DIR/$jar is still missing after apt-get"
  done
  info "installed ${missing[*]}"
}

main "$@"
