#!/usr/bin/env bash
# The main job, one command: an erlmcp operator and a 3-pod cluster, Ready.
#
#   scripts/demo.sh up     build, start (or reuse) a control plane, install, apply, wait, print
#   scripts/demo.sh down   stop what `up` started
#
# Without KUBECONFIG it brings up the embedded local control plane (E2E_K8S=current, the default:
# the current Kubernetes built from its Go modules; E2E_K8S=1.20: 1.20 built from Debian's source;
# see e2e/scripts/) and the pod runner, which runs each scheduled pod as a local process, as root in a network
# namespace of its own (else on its own loopback address). With KUBECONFIG set it installs into that cluster (the
# operator then runs beside it as a local process unless OPERATOR=chart, in which case the Helm
# chart's Deployment runs it; pods need the erlmcp image to be pullable there).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STATE=${DEMO_STATE:-$ROOT/.cache/demo}
SAMPLE=${SAMPLE:-config/samples/basic.yaml}
NS=${NAMESPACE:-default}

log() { printf '[demo] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

start_bg() { # name, command...: run in the background, pid and log in $STATE
  local name=$1; shift
  "$@" >"$STATE/$name.log" 2>&1 &
  echo $! >"$STATE/$name.pid"
  log "started $name (pid $!, log $STATE/$name.log)"
}

stop_bg() {
  local pidf="$STATE/$1.pid"
  [ -f "$pidf" ] || return 0
  local pid; pid=$(cat "$pidf")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$pid" 2>/dev/null || true
    log "stopped $1"
  fi
  rm -f "$pidf"
}

up() {
  mkdir -p "$STATE"
  log "building erlmcp and erlmcp-operator"
  cargo build --quiet -p erlmcp-dataplane -p erlmcp-operator -p erlmcp-e2e --bins

  local local_plane=0
  if [ -z "${KUBECONFIG:-}" ]; then
    local_plane=1
    log "no KUBECONFIG: bringing up the local control plane"
    KUBECONFIG=$(e2e/scripts/k8s-up.sh "$STATE/k8s" | tail -n1)
    export KUBECONFIG
    echo "$KUBECONFIG" >"$STATE/kubeconfig.path"
  fi
  local k="kubectl --kubeconfig $KUBECONFIG"

  # CRD: plain (client-side) apply without client validation, because servers before 1.25
  # neither know the CEL rules (x-kubernetes-validations) nor accept them through server-side apply.
  log "installing the ErlmcpCluster CRD"
  $k apply --validate=false -f crds/erlmcp.io_erlmcpclusters.yaml >&2
  # Not `kubectl wait --for condition=Established`: on a CRD whose status has no conditions yet
  # (the moment after create) it fails at once instead of waiting.
  for _ in $(seq 1 60); do
    [[ $($k get crd erlmcpclusters.erlmcp.io -o jsonpath='{.status.conditions[?(@.type=="Established")].status}' 2>/dev/null) == True ]] && break
    sleep 1
  done
  [[ $($k get crd erlmcpclusters.erlmcp.io -o jsonpath='{.status.conditions[?(@.type=="Established")].status}') == True ]] ||
    die "the ErlmcpCluster CRD is not Established after 60 s"

  if [ "$local_plane" = 1 ]; then
    start_bg pod-runner target/debug/erlmcp-pod-runner --kubeconfig "$KUBECONFIG" --state-dir "$STATE/pods"
  fi
  start_bg operator env LEADER_ELECT=true POD_NAMESPACE="$NS" METRICS_ADDR=127.0.0.1:18080 \
    target/debug/erlmcp-operator run --log-format text

  log "applying $SAMPLE"
  $k -n "$NS" apply -f "$SAMPLE" >&2
  local name; name=$(sed -n 's/^  name: *//p' "$SAMPLE" | head -n1)
  log "waiting for erlmcpcluster/$name to be Ready"
  if ! $k -n "$NS" wait --for condition=Ready --timeout=300s "erlmcpcluster/$name" >&2; then
    $k -n "$NS" get erlmcpcluster "$name" -o yaml >&2 || true
    $k -n "$NS" get pods -o wide >&2 || true
    die "the cluster did not become Ready; logs in $STATE"
  fi
  $k -n "$NS" get erlmcpclusters
  local ip; ip=$($k -n "$NS" get pod "$name-0" -o jsonpath='{.status.podIP}')
  echo
  echo "In-cluster MCP URL: $($k -n "$NS" get erlmcpcluster "$name" -o jsonpath='{.status.endpoints.mcp}')"
  echo "Reach a pod from here: http://$ip:8080/mcp"
  echo "KUBECONFIG=$KUBECONFIG"
  echo "Stop everything: scripts/demo.sh down"
}

down() {
  stop_bg operator
  stop_bg pod-runner
  if [ -f "$STATE/kubeconfig.path" ]; then
    e2e/scripts/k8s-down.sh "$STATE/k8s" || true
  fi
  rm -rf "$STATE"
  log "down"
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) die "usage: $0 up|down" ;;
esac
