#!/usr/bin/env bash
# Offline checks of the deployment files: no Docker engine and no cluster needed.
# scripts/test.sh (and so CI) runs it. One line per check; a failing check prints its
# output. Checks, by the name that selects them on the command line:
#   - k8s: k8s/validate.sh, the example overlay rendered with `kubectl kustomize` and
#     validated against the Kubernetes schemas (kubernetes-validate, offline)
#   - compose: docker-compose.yml resolved by Compose, default and `observability`
#     profiles; which services each profile has; every bind-mount source exists
#   - prometheus: promtool check rules / test rules / check config of both configs in
#     deploy/prometheus
#   - metrics: every metric name in the dashboard's and the alerts' expressions is one
#     the services export (their registries, rendered by the `*_metric_names` examples) or a known
#     external one; every alert has `for`, severity, summary, description and runbook
#   - grafana: the dashboard (JSON, schemaVersion, `datasource` variable used by every
#     panel, unique ids) and the provisioning files
#   - otel: deploy/otel-collector.yaml, every pipeline names defined components
#   - hadolint: the Dockerfile, when hadolint is installed or packaged here
#   - shellcheck: scripts/*.sh bench/*.sh k8s/*.sh .ci/run
# Missing tools come from apt-get (as root or with passwordless sudo): kubectl,
# docker-compose, prometheus (for promtool), shellcheck, python3-yaml. Not run here: the
# images themselves, the collector, Grafana (no engine, no packages).
#
# Usage: scripts/check-deploy.sh [CHECK...]   (default: all, in the order above)
# Exit status: 0 when every check passed or was skipped, 1 otherwise.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL_CHECKS=(k8s compose prometheus metrics grafana otel hadolint shellcheck)
OBSERVABILITY_SERVICES="grafana jaeger otel-collector prometheus"
# Series the alerts or the dashboard use that the services do not export themselves.
EXTERNAL_METRICS="up kube_cronjob_status_last_successful_time kube_deployment_spec_replicas kube_deployment_status_replicas_available"
SKIPPED=99

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# A python3 that can import yaml (PyYAML); Debian's python3-yaml when none can.
python_with_yaml() {
  local py
  for py in python3 /usr/bin/python3 "$LOCAL_DIR/venv-k8s/bin/python"; do
    if have "$py" && "$py" -c 'import yaml' 2>/dev/null; then
      command -v "$py"
      return 0
    fi
  done
  apt_install python3-yaml
  /usr/bin/python3 -c 'import yaml' || die "python3-yaml installed but /usr/bin/python3 cannot import yaml"
  printf '%s\n' /usr/bin/python3
}

# ---------------------------------------------------------------------------- checks
# Each runs in a subshell with errexit, writes details to stdout/stderr (shown only on
# failure) and its one-line summary to fd 3.

check_k8s() {
  if ! have kubectl; then
    (apt_install kubectl) ||
      die "kubectl is missing and apt-get cannot install a 'kubectl' package here (Debian has none; its kubernetes-client 1.20 bundles a kustomize too old for k8s/). Install kubectl >= 1.27 (kustomize v5) and retry."
  fi
  bash "$ROOT/k8s/validate.sh" | tee "$TMP/validate.out"
  local last
  last="$(tail -n 1 "$TMP/validate.out")"
  echo "${last#validate.sh: } (kubectl $(kubectl version --client 2>/dev/null | sed -n 's/^Client Version: //p'))" >&3
}

check_compose() {
  local compose=() version file="$ROOT/docker-compose.yml" note="" py
  if have docker && docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
    version="$(docker compose version --short)"
  else
    have docker-compose || apt_install docker-compose
    compose=(docker-compose)
    version="$(docker-compose version --short)"
  fi
  if [[ "$version" == 1.* ]]; then
    # Compose v1 knows profiles (1.28+) but not the top-level `name:` of the Compose
    # Specification, which v2 reads: v1 checks a copy without that one line.
    grep -q '^name: ' "$file" || die "docker-compose.yml has no top-level name: line (expected 'name: ofertasws')"
    sed '/^name: /d' "$file" >"$TMP/compose.yml"
    file="$TMP/compose.yml"
    note=", top-level name: not checked by v1"
  fi
  local args=(-f "$file" --project-directory "$ROOT")
  env -u COMPOSE_PROFILES "${compose[@]}" "${args[@]}" config -q
  env -u COMPOSE_PROFILES "${compose[@]}" "${args[@]}" --profile observability config -q
  env -u COMPOSE_PROFILES "${compose[@]}" "${args[@]}" --profile observability config >"$TMP/compose.resolved.yml"
  py="$(python_with_yaml)"
  "$py" - "$TMP/compose.resolved.yml" "$OBSERVABILITY_SERVICES" <<'PY'
import os, sys, yaml

resolved, expected = sys.argv[1], set(sys.argv[2].split())
services = yaml.safe_load(open(resolved))["services"]
problems = []
in_profile = {name for name, svc in services.items() if svc.get("profiles")}
if in_profile != expected:
    problems.append(f"services with a profile: {sorted(in_profile)}, expected {sorted(expected)}")
for name in sorted(expected & in_profile):
    if services[name]["profiles"] != ["observability"]:
        problems.append(f"{name}: profiles {services[name]['profiles']}, expected ['observability']")
for name, svc in services.items():
    for dep in svc.get("depends_on") or {}:
        if dep in in_profile and name not in in_profile:
            problems.append(f"{name} (default profile) depends on {dep} (observability profile)")
    for volume in svc.get("volumes") or []:
        if isinstance(volume, dict):
            source = volume.get("source") if volume.get("type") == "bind" else None
        else:
            source = volume.split(":")[0] if volume.startswith("/") else None
        if source and not os.path.exists(source):
            problems.append(f"{name}: bind-mount source {source} does not exist")
if problems:
    sys.exit("docker-compose.yml:\n  " + "\n  ".join(problems))
print(f"{len(services)} services, {len(in_profile)} in the observability profile")
PY
  echo "default and observability profiles valid (${compose[*]} $version$note)" >&3
}

check_prometheus() {
  local py note=""
  have promtool || apt_install prometheus
  cd "$ROOT/deploy/prometheus"
  promtool check rules alerts.yml | tee "$TMP/rules.out"
  promtool check config prometheus.yml
  promtool test rules alerts.test.yml
  # Debian builds promtool without Kubernetes service discovery: when it refuses
  # kubernetes_sd_configs, the rest of the file (relabelling, rule files) is checked
  # with a static target in its place.
  if ! promtool check config prometheus-kubernetes.yml >"$TMP/k8s-config.out" 2>&1; then
    grep -q 'field kubernetes_sd_configs not found' "$TMP/k8s-config.out" || {
      cat "$TMP/k8s-config.out"
      return 1
    }
    mkdir -p "$TMP/prometheus"
    cp alerts.yml "$TMP/prometheus/"
    py="$(python_with_yaml)"
    "$py" - prometheus-kubernetes.yml "$TMP/prometheus/prometheus-kubernetes.yml" <<'PY'
import sys, yaml

config = yaml.safe_load(open(sys.argv[1], encoding="utf-8"))
for job in config["scrape_configs"]:
    if job.pop("kubernetes_sd_configs", None) is not None:
        job["static_configs"] = [{"targets": ["127.0.0.1:9"]}]
yaml.safe_dump(config, open(sys.argv[2], "w", encoding="utf-8"))
PY
    promtool check config "$TMP/prometheus/prometheus-kubernetes.yml"
    note=" (kubernetes_sd_configs not checked: this promtool lacks Kubernetes discovery)"
  fi
  echo "$(grep -o '[0-9]* rules found' "$TMP/rules.out" | head -n 1), rule unit tests pass, both configs valid$note (promtool $(promtool --version 2>&1 | head -n 1 | awk '{print $3}'))" >&3
}

check_metrics() {
  local py crate expositions
  py="$(python_with_yaml)"
  expositions="$(mktemp -d)"
  # Each service prints its own registry (an example program, one sample in every
  # labelled family), so the names checked are the ones it really exports.
  build_debug ||
    { rm -rf "$expositions"; die "cargo build --examples failed"; }
  for crate in api-service refresh-service; do
    "${CARGO_TARGET_DIR:-$ROOT/target}/debug/examples/${crate%-service}_metric_names" >"$expositions/$crate.txt" ||
      { rm -rf "$expositions"; die "the example ${crate%-service}_metric_names failed"; }
  done
  local status=0
  "$py" - "$ROOT" "$EXTERNAL_METRICS" "$expositions" >&3 <<'PY' || status=$?
import json, os, re, sys, yaml

root, external, expositions = sys.argv[1], set(sys.argv[2].split()), sys.argv[3]

def registered(crate):
    """Names of the samples in a crate's rendered registry."""
    names = set()
    for line in open(os.path.join(expositions, crate + ".txt"), encoding="utf-8"):
        if line.strip() and not line.startswith("#"):
            names.add(re.match(r"[a-zA-Z_:][\w:]*", line).group(0))
    return names

known = {}
for crate in ("api-service", "refresh-service"):
    names = registered(crate)
    if not names:
        sys.exit(f"no prometheus-client registrations found under {crate}/src: update scripts/check-deploy.sh")
    known[crate] = names
allowed = set().union(*known.values()) | external

KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right", "inf", "nan", "Inf", "NaN"}

def metric_names(expr):
    expr = re.sub(r'\$\{[^}]*\}|\$\w+', " ", expr)               # Grafana variables
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)                        # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)                       # ranges, subqueries
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.])[a-zA-Z_:][\w:]*", expr):
        word = match.group(0)
        if word in KEYWORDS or re.match(r"\s*\(", expr[match.end():]):
            continue                                               # keyword or function
        names.add(word)
    return names

problems = []
dashboard_path = os.path.join(root, "deploy/grafana/ofertasws-dashboard.json")
dashboard = json.load(open(dashboard_path, encoding="utf-8"))

def panels(items):
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))

exprs = []
for panel in panels(dashboard["panels"]):
    for target in panel.get("targets", []):
        exprs.append((f"dashboard panel {panel.get('title')!r}", target["expr"]))

alerts = yaml.safe_load(open(os.path.join(root, "deploy/prometheus/alerts.yml"), encoding="utf-8"))
rules = [rule for group in alerts["groups"] for rule in group["rules"]]
for rule in rules:
    where = f"alert {rule.get('alert') or rule.get('record')}"
    exprs.append((where, rule["expr"]))
    if "alert" in rule:
        missing = [key for key in ("for",) if key not in rule]
        missing += [f"labels.{k}" for k in ("severity",) if k not in rule.get("labels", {})]
        missing += [f"annotations.{k}" for k in ("summary", "description", "runbook")
                    if k not in rule.get("annotations", {})]
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
        if "README.md#operations" not in rule.get("annotations", {}).get("runbook", ""):
            problems.append(f"{where}: runbook does not point at README.md#operations")

used = set()
for where, expr in exprs:
    names = metric_names(expr)
    used |= names
    for name in sorted(names - allowed):
        problems.append(f"{where}: unknown metric {name!r} in {expr!r}")
if problems:
    sys.exit("\n".join(problems))
counts = ", ".join(f"{crate} {len(names)}" for crate, names in known.items())
print(f"{len(exprs)} expressions (dashboard {len(exprs) - len(rules)}, alerts {len(rules)}) use "
      f"{len(used)} names, all exported (rendered registries: {counts} series)")
PY
  rm -rf "$expositions"
  return "$status"
}

check_grafana() {
  local py
  py="$(python_with_yaml)"
  "$py" - "$ROOT/deploy/grafana" >&3 <<'PY'
import glob, json, os, sys, yaml

base = sys.argv[1]
dashboard = json.load(open(os.path.join(base, "ofertasws-dashboard.json"), encoding="utf-8"))
problems = []
if not 36 <= dashboard.get("schemaVersion", 0) <= 41:
    problems.append(f"schemaVersion {dashboard.get('schemaVersion')}: expected about 39")
variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
ds = variables.get("datasource", {})
if ds.get("type") != "datasource" or ds.get("query") != "prometheus":
    problems.append("no `datasource` template variable of type datasource (prometheus)")
ids, count = set(), 0
for panel in dashboard["panels"]:
    if panel["id"] in ids:
        problems.append(f"panel id {panel['id']} used twice")
    ids.add(panel["id"])
    if panel["type"] == "row":
        continue
    count += 1
    for item in [panel] + panel.get("targets", []):
        if item.get("datasource", {}).get("uid") != "${datasource}":
            problems.append(f"panel {panel['title']!r}: datasource is not ${{datasource}}")
    if not panel.get("targets"):
        problems.append(f"panel {panel['title']!r} has no query")
files = sorted(glob.glob(os.path.join(base, "provisioning", "*", "*.yml")))
for path in files:
    doc = yaml.safe_load(open(path, encoding="utf-8"))
    if doc.get("apiVersion") != 1 or not (doc.get("datasources") or doc.get("providers")):
        problems.append(f"{path}: not a Grafana provisioning file")
if problems:
    sys.exit("\n".join(problems))
print(f"dashboard schemaVersion {dashboard['schemaVersion']}, {count} panels; {len(files)} provisioning files")
PY
}

check_otel() {
  local py
  py="$(python_with_yaml)"
  "$py" - "$ROOT/deploy/otel-collector.yaml" >&3 <<'PY'
import sys, yaml

config = yaml.safe_load(open(sys.argv[1], encoding="utf-8"))
service, problems = config["service"], []
for extension in service.get("extensions", []):
    if extension not in (config.get("extensions") or {}):
        problems.append(f"service.extensions: {extension} is not defined")
for name, pipeline in service["pipelines"].items():
    for kind in ("receivers", "processors", "exporters"):
        for component in pipeline.get(kind, []):
            if component not in (config.get(kind) or {}):
                problems.append(f"pipeline {name}: {kind[:-1]} {component} is not defined")
endpoints = {p: v.get("endpoint") for p, v in config["receivers"]["otlp"]["protocols"].items()}
if endpoints != {"grpc": "0.0.0.0:4317", "http": "0.0.0.0:4318"}:
    problems.append(f"otlp receiver endpoints {endpoints}: expected grpc 0.0.0.0:4317, http 0.0.0.0:4318")
if problems:
    sys.exit("\n".join(problems))
flows = "; ".join(f"{n}: {', '.join(p['receivers'])} -> {', '.join(p['exporters'])}"
                  for n, p in service["pipelines"].items())
print(f"{flows} (structure only: the collector itself is not packaged here)")
PY
}

check_hadolint() {
  if ! have hadolint; then
    if apt-cache show hadolint >/dev/null 2>&1; then
      apt_install hadolint
    else
      echo "hadolint: not packaged for this system; skipped" >&3
      return "$SKIPPED"
    fi
  fi
  hadolint "$ROOT/Dockerfile"
  echo "Dockerfile clean ($(hadolint --version))" >&3
}

check_shellcheck() {
  have shellcheck || apt_install shellcheck
  cd "$ROOT"
  local files=(scripts/*.sh bench/*.sh k8s/*.sh .ci/run)
  shellcheck -x "${files[@]}"
  echo "${#files[@]} scripts clean (ShellCheck $(shellcheck --version | sed -n 's/^version: //p'))" >&3
}

# ---------------------------------------------------------------------------- driver

FAILED=0
PASSED=0
SKIPS=0

# run_check NAME: runs check_NAME, prints one line for it (and its output on failure).
run_check() {
  local name="$1" start=$SECONDS rc=0 summary
  ("check_$name") 3>"$TMP/$name.summary" >"$TMP/$name.log" 2>&1 &
  wait $! || rc=$?
  summary="$(tr '\n' ' ' <"$TMP/$name.summary" | sed 's/ *$//')"
  if [[ $rc -eq 0 ]]; then
    PASSED=$((PASSED + 1))
    printf 'ok       %-11s %s (%d s)\n' "$name" "$summary" $((SECONDS - start))
  elif [[ $rc -eq $SKIPPED ]]; then
    SKIPS=$((SKIPS + 1))
    printf 'skipped  %-11s %s\n' "$name" "$summary"
  else
    FAILED=$((FAILED + 1))
    tail -n 80 "$TMP/$name.log" | sed 's/^/    /' >&2
    printf 'FAILED   %-11s exit %d (%d s)%s\n' "$name" "$rc" $((SECONDS - start)) "${summary:+: $summary}"
  fi
}

main() {
  local checks=("$@") name start=$SECONDS
  [[ ${#checks[@]} -gt 0 ]] || checks=("${ALL_CHECKS[@]}")
  for name in "${checks[@]}"; do
    [[ " ${ALL_CHECKS[*]} " == *" $name "* ]] || die "unknown check '$name' (checks: ${ALL_CHECKS[*]})"
  done
  for name in "${checks[@]}"; do
    run_check "$name"
  done
  info "$PASSED passed, $FAILED failed, $SKIPS skipped ($((SECONDS - start)) s)"
  [[ $FAILED -eq 0 ]]
}

main "$@"
