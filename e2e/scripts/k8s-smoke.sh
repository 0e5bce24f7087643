#!/usr/bin/env bash
# k8s-smoke.sh — prove that a control plane from k8s-up.sh really works. TEST TOOLING.
# Checks, with a real kubectl (scripts/tools.sh kubectl): namespaces list; the `default`
# ServiceAccount exists; a StatefulSet makes its pods (Pending: there is no kubelet) and a
# headless Service gets an EndpointSlice; a CRD with a status subresource is established;
# server-side apply of a labelled custom object and of its status (the reflect2 crash case).
# Everything it creates lives in a fresh namespace that it deletes at the end.
#
# Usage: e2e/scripts/k8s-smoke.sh [STATE_DIR]   (default: $PWD/.cache/k8s)
# Stdout: "k8s smoke: N passed, 0 failed" on success; exit 1 at the first failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE_DIR="${1:-$PWD/.cache/k8s}"
export KUBECONFIG="$STATE_DIR/kubeconfig"
[[ -f $KUBECONFIG ]] || { echo "[k8s-smoke] no $KUBECONFIG: run k8s-up.sh first" >&2; exit 1; }
KUBECTL="$("$HERE/../../scripts/tools.sh" kubectl | tail -n1)"
NS="smoke-$$-$RANDOM"
CRD=widgets.smoke.erlmcp.test
passed=0

log() { printf '[k8s-smoke] %s\n' "$*" >&2; }
# kubectl 1.33 against a 1.20 server warns about version skew on every call: drop that line.
k() { "$KUBECTL" "$@" 2> >(grep -v 'exceeds the supported minor version skew' >&2); }
ok() { passed=$((passed + 1)); log "ok: $*"; }
fail() { log "FAIL: $*"; echo "k8s smoke: $passed passed, 1 failed"; exit 1; }
eventually() { # description timeout cmd...
  local what=$1 t=$2; shift 2
  local end=$(( $(date +%s) + t ))
  until "$@" >/dev/null 2>&1; do (( $(date +%s) < end )) || fail "$what (after ${t}s)"; sleep 1; done
  ok "$what"
}
cleanup() {
  k delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
  k delete crd "$CRD" --wait=false >/dev/null 2>&1 || true
}
trap cleanup EXIT

k get ns >/dev/null || fail "kubectl get ns"
ok "kubectl get ns"
k -n default get sa default >/dev/null || fail "default ServiceAccount"
ok "default/default ServiceAccount exists"

k create namespace "$NS" >/dev/null || fail "create namespace"
eventually "ServiceAccount default in new namespace" 30 k -n "$NS" get sa default

k -n "$NS" apply -f - >/dev/null <<'EOF' || fail "apply StatefulSet + headless Service"
apiVersion: v1
kind: Service
metadata: {name: web, labels: {app: web}}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 2
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: registry.invalid/none:1, ports: [{name: http, containerPort: 80}]}]
EOF
ok "applied StatefulSet + headless Service"
pods_made() { [[ "$(k -n "$NS" get pods -l app=web -o name | wc -l)" -eq 2 ]]; }
eventually "StatefulSet controller created 2 pods" 60 pods_made
pending() { [[ "$(k -n "$NS" get pod web-0 -o jsonpath='{.status.phase}')" == Pending ]]; }
eventually "pod web-0 is Pending (no kubelet)" 10 pending
slice() { [[ -n "$(k -n "$NS" get endpointslices -l kubernetes.io/service-name=web -o name)" ]]; }
eventually "EndpointSlice for the headless Service" 60 slice

k apply -f - >/dev/null <<EOF || fail "apply CRD"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: $CRD}
spec:
  group: smoke.erlmcp.test
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {size: {type: integer}}}
          status: {type: object, properties: {phase: {type: string}}}
EOF
k wait --for condition=established "crd/$CRD" --timeout=60s >/dev/null || fail "CRD established"
ok "CRD with status subresource established"

k -n "$NS" apply --server-side --field-manager=smoke -f - >/dev/null <<'EOF' || fail "server-side apply of labelled custom object"
apiVersion: smoke.erlmcp.test/v1
kind: Widget
metadata: {name: w1, labels: {app: web, tier: smoke}}
spec: {size: 3}
EOF
ok "server-side apply of a labelled custom object"
k -n "$NS" apply --server-side --field-manager=smoke-status --subresource=status -f - >/dev/null <<'EOF' || fail "server-side apply of status"
apiVersion: smoke.erlmcp.test/v1
kind: Widget
metadata: {name: w1}
status: {phase: Ready}
EOF
[[ "$(k -n "$NS" get widgets -l tier=smoke -o jsonpath='{.items[0].status.phase}/{.items[0].spec.size}')" == Ready/3 ]] \
  || fail "read back labelled object with status"
mf="$(k -n "$NS" get widget w1 --show-managed-fields -o jsonpath='{.metadata.managedFields[*].manager}')"
[[ $mf == *smoke* && $mf == *smoke-status* ]] || fail "managedFields lists both managers (got '$mf')"
ok "status subresource apply + label selector + managedFields"

echo "k8s smoke: $passed passed, 0 failed"
