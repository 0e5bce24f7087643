#!/usr/bin/env bash
# install.sh — the chart against a real Kubernetes API server (TEST TOOLING, not product).
#
#   1. brings up the local Kubernetes control plane (e2e/scripts/k8s-up.sh; E2E_K8S=current,
#      the default, or 1.20), or uses $KUBECONFIG when INSTALL_USE_KUBECONFIG=1;
#   2. `helm install`s the chart (leader election on, so the Lease Role is exercised; replicas 0,
#      since this plane has no kubelet for the operator's own pod);
#   3. runs the operator binary beside the plane as the chart's ServiceAccount (its token, no
#      admin rights), so the chart's RBAC alone must be enough; the pod runner
#      (erlmcp-pod-runner) runs the data-plane pods as local processes;
#   4. applies config/samples/basic.yaml and waits for its Ready condition; checks the operator
#      hit no "forbidden";
#   5. deletes the cluster, stops the operator, `helm uninstall`s, and checks that nothing the
#      chart or the operator made is left (the CRD stays: Helm never deletes CRDs).
# Fails (never skips) when helm, kubectl or the control plane is missing.
# Usage: charts/erlmcp-operator/tests/install.sh            (about 1-2 minutes on a warm cache)
set -euo pipefail
cd "$(dirname "$0")/../../.."
ROOT=$PWD
log() { printf '[chart-install] %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

NS=erlmcp-system
APP_NS=erlmcp-demo
RELEASE=erlmcp-operator
WORK=$(mktemp -d /tmp/erlmcp-chart-install.XXXXXX)
STATE="$WORK/k8s"
OPERATOR_PID=""
RUNNER_PID=""
PASSED=0
FAILED=0

cleanup() {
  local rc=$?
  [[ -n $OPERATOR_PID ]] && kill "$OPERATOR_PID" 2>/dev/null && wait "$OPERATOR_PID" 2>/dev/null
  [[ -n $RUNNER_PID ]] && kill "$RUNNER_PID" 2>/dev/null && wait "$RUNNER_PID" 2>/dev/null
  if [[ ${INSTALL_USE_KUBECONFIG:-0} != 1 && -d $STATE ]]; then
    if [[ $rc -ne 0 ]]; then
      log "operator log (tail):"; tail -n 40 "$WORK/operator.log" >&2 2>/dev/null || true
      log "pod runner log (tail):"; tail -n 20 "$WORK/runner.log" >&2 2>/dev/null || true
    fi
    bash e2e/scripts/k8s-down.sh "$STATE" >/dev/null 2>&1 || true
  fi
  [[ $rc -eq 0 ]] && rm -rf "$WORK"
  echo "chart install: $PASSED passed, $FAILED failed"
  exit "$rc"
}
trap cleanup EXIT

check() { # description, command...
  local what=$1; shift
  if "$@"; then PASSED=$((PASSED + 1)); log "ok: $what"; else FAILED=$((FAILED + 1)); die "$what"; fi
}

HELM=$(bash scripts/tools.sh helm | tail -n1)
KUBECTL=$(bash scripts/tools.sh kubectl | tail -n1)
[[ -x $HELM && -x $KUBECTL ]] || die "helm or kubectl missing"

log "building erlmcp-operator, erlmcp and erlmcp-pod-runner (debug)"
cargo build -q -p erlmcp-operator -p erlmcp-dataplane -p erlmcp-e2e --bins
BIN="$ROOT/target/debug"

if [[ ${INSTALL_USE_KUBECONFIG:-0} == 1 ]]; then
  [[ -n ${KUBECONFIG:-} ]] || die "INSTALL_USE_KUBECONFIG=1 needs KUBECONFIG"
else
  KUBECONFIG=$(bash e2e/scripts/k8s-up.sh "$STATE" | tail -n1)
fi
export KUBECONFIG
k() { "$KUBECTL" "$@"; }
k get --raw /readyz >/dev/null || die "no Kubernetes API server"
SERVER_MINOR=$(k version -o json 2>/dev/null | sed -n 's/.*"minor": *"\([0-9]*\).*/\1/p' | tail -n1)
log "API server: 1.${SERVER_MINOR}"

# Helm 4 applies server-side by default; servers before 1.25 refuse the CRD's CEL rules there.
SSA=()
if [[ ${SERVER_MINOR:-99} -lt 25 ]]; then SSA=(--server-side=false); fi

log "helm install"
"$HELM" install "$RELEASE" charts/erlmcp-operator --namespace "$NS" --create-namespace "${SSA[@]}" \
  --set replicaCount=0 --set leaderElection.enabled=true --wait --timeout 2m >&2
check "CRD established" k wait --for condition=established --timeout=60s crd/erlmcpclusters.erlmcp.io
check "chart objects exist" k -n "$NS" get serviceaccount/$RELEASE deployment/$RELEASE \
  service/$RELEASE-metrics role/$RELEASE-leader-election lease/erlmcp-operator-leader clusterrole/$RELEASE

# The chart's ServiceAccount token (TokenRequest on 1.24+, the token Secret before).
TOKEN=$(k -n "$NS" create token "$RELEASE" 2>/dev/null || true)
if [[ -z $TOKEN ]]; then
  for _ in $(seq 1 30); do
    SECRET=$(k -n "$NS" get sa "$RELEASE" -o jsonpath='{.secrets[0].name}' 2>/dev/null || true)
    [[ -n $SECRET ]] && break
    sleep 1
  done
  [[ -n ${SECRET:-} ]] || die "no token for ServiceAccount $RELEASE"
  TOKEN=$(k -n "$NS" get secret "$SECRET" -o jsonpath='{.data.token}' | base64 -d)
fi
SERVER=$(k config view --minify --raw -o jsonpath='{.clusters[0].cluster.server}')
CA=$(k config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
SA_KUBECONFIG="$WORK/operator.kubeconfig"
cat >"$SA_KUBECONFIG" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: k, cluster: {server: "$SERVER", certificate-authority-data: "$CA"}}]
users: [{name: operator, user: {token: "$TOKEN"}}]
contexts: [{name: k, context: {cluster: k, user: operator, namespace: $NS}}]
current-context: k
EOF
check "the ServiceAccount cannot do what the chart does not grant" \
  bash -c "! '$KUBECTL' --kubeconfig '$SA_KUBECONFIG' get nodes >/dev/null 2>&1 &&
    ! '$KUBECTL' --kubeconfig '$SA_KUBECONFIG' auth can-i delete pods -A >/dev/null 2>&1"

log "starting the pod runner and the operator (as the chart's ServiceAccount)"
"$BIN/erlmcp-pod-runner" --kubeconfig "$KUBECONFIG" --state-dir "$WORK/pod-runner" \
  >"$WORK/runner.log" 2>&1 &
RUNNER_PID=$!
# Same environment as the chart's Deployment (POD_NAMESPACE, LEADER_ELECT, WATCH_NAMESPACES).
KUBECONFIG="$SA_KUBECONFIG" POD_NAMESPACE="$NS" POD_NAME="$RELEASE-local" LEADER_ELECT=true \
  WATCH_NAMESPACES="" METRICS_ADDR=127.0.0.1:0 LOG_FORMAT=text RUST_LOG=info \
  "$BIN/erlmcp-operator" run --lease-seconds 15 >"$WORK/operator.log" 2>&1 &
OPERATOR_PID=$!

k create namespace "$APP_NS" >/dev/null
k -n "$APP_NS" create -f config/samples/basic.yaml >/dev/null
log "waiting for ErlmcpCluster basic to be Ready"
check "sample cluster Ready" k -n "$APP_NS" wait erlmcpcluster/basic --for=condition=Ready --timeout=300s
check "the operator held the Lease" bash -c \
  "'$KUBECTL' -n '$NS' get lease erlmcp-operator-leader -o jsonpath='{.spec.holderIdentity}' | grep -q '$RELEASE-local'"
check "the operator was never forbidden" bash -c "! grep -qi forbidden '$WORK/operator.log'"

log "deleting the cluster, stopping the operator, helm uninstall"
k -n "$APP_NS" delete erlmcpcluster basic --wait --timeout=120s >/dev/null
for _ in $(seq 1 60); do
  left=$(k -n "$APP_NS" get statefulsets,services,configmaps,serviceaccounts,roles,rolebindings,networkpolicies \
    -l app.kubernetes.io/managed-by=erlmcp-operator -o name 2>/dev/null)
  [[ -z $left ]] && break
  sleep 1
done
check "the cluster's children were garbage-collected" test -z "$left"
kill "$OPERATOR_PID"; wait "$OPERATOR_PID" 2>/dev/null || true; OPERATOR_PID=""
"$HELM" uninstall "$RELEASE" --namespace "$NS" --wait --timeout 2m >&2
left=$(k get clusterroles,clusterrolebindings -l app.kubernetes.io/instance=$RELEASE -o name)
left+=$(k -n "$NS" get all,serviceaccounts,roles,rolebindings,leases,configmaps,secrets \
  -l app.kubernetes.io/instance=$RELEASE -o name)
left+=$(k -n "$NS" get leases -o name)
left+=$(k -n "$NS" get serviceaccounts -o name | grep -v '^serviceaccount/default$' || true)
check "helm uninstall left no operator objects behind (found: ${left:-none})" test -z "$left"
check "the CRD stays (Helm keeps CRDs)" k get crd erlmcpclusters.erlmcp.io -o name
