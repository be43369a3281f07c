#!/usr/bin/env bash
# Installs what the browser test (system-tests/tests/browser) runs besides the
# workspace's own binaries: Debian's headless Chromium (package chromium-headless-shell,
# which speaks RFC 9842 dcz on http://127.0.0.1 without flags) and Debian's nginx (the
# load balancer in front of the API replicas). Missing packages are installed with
# apt-get (as root, or through passwordless sudo); idempotent: does nothing when both are
# there. scripts/test.sh runs it before the tests.
#
# Usage: scripts/browser.sh
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

main() {
  local missing=()
  have chromium-headless-shell || missing+=(chromium-headless-shell)
  have nginx || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
  [[ ${#missing[@]} -eq 0 ]] && return 0
  apt_install "${missing[@]}"
  # Debian's package starts nginx on port 80 where an init system runs; the test starts
  # its own with a generated configuration, so a system nginx is not wanted running.
  if [[ " ${missing[*]} " == *" nginx "* ]] && have service && service nginx status >/dev/null 2>&1; then
    info "stopping the system nginx the package started (the test runs its own)"
    service nginx stop >/dev/null 2>&1 || warn "could not stop the system nginx"
  fi
  have chromium-headless-shell || die "chromium-headless-shell is still missing after apt-get"
  info "installed ${missing[*]}"
}

main "$@"
