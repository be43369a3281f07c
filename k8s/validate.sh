#!/usr/bin/env bash
# Renders the example overlay with `kubectl kustomize` and validates every object against
# the Kubernetes JSON schemas bundled in the `kubernetes-validate` PyPI package (offline).
# Usage: k8s/validate.sh [KUBERNETES_VERSION (default 1.31)]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="${1:-1.31}"
venv="$root/.local/venv-k8s"
if [[ ! -x "$venv/bin/kubernetes-validate" ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet kubernetes-validate
fi
command -v kubectl >/dev/null || { echo "validate.sh: kubectl is needed (kubectl kustomize)" >&2; exit 1; }
rendered="$(mktemp --suffix=.yaml)"
trap 'rm -f "$rendered"' EXIT
kubectl kustomize "$root/k8s/overlays/example" >"$rendered"
"$venv/bin/kubernetes-validate" --strict --kubernetes-version "$version" "$rendered"
echo "validate.sh: $(grep -c '^kind:' "$rendered") objects valid against Kubernetes $version"
