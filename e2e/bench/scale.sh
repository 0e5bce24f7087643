#!/usr/bin/env bash
# scale.sh — the operator against many ErlmcpClusters on the local control plane (BENCHMARK,
# not a test: no pass/fail on figures, not part of scripts/test.sh).
#
# Starts the plane (e2e/scripts/k8s-up.sh; E2E_K8S=current by default, or 1.20), installs the
# CRD, runs the operator binary on loopback, creates N ErlmcpClusters with `replicas: 0`, waits
# until the operator has observed every one (status.observedGeneration == generation) and
# every one is Ready, then stays idle for IDLE_SECONDS and writes JSON:
#   create_seconds         creation start -> the last create answered
#   all_observed_seconds   creation start -> every cluster observed
#   observed_after_create_seconds  the last create answered -> every cluster observed
#   all_ready_seconds      creation start -> every cluster Ready (the idle window starts 15 s
#                          after this: before, the StatefulSet controller is still catching up)
#   api_requests_to_observe  apiserver_request_total deltas (every verb but WATCH) from creation
#                          start to all observed, by verb/resource (the creates themselves count)
#   reconciles             erlmcp_operator_reconciliations_total, by result and summed
#   status_refreshes, status_writes_skipped
#   rss_mib                operator VmRSS after the run (and the peak, VmHWM)
#   cpu_seconds_to_observe operator CPU from start to all observed
#   idle_cpu_seconds_per_minute
#   idle_api_requests_per_minute  apiserver_request_total deltas (every verb but WATCH) over the
#                          idle window, for the resources the operator touches, by verb/resource.
#                          All clients count; at idle with replicas 0 the others are quiet.
# Every wait is bounded; traffic stays on 127.0.0.1.
#
# Usage: e2e/bench/scale.sh            N=1000 IDLE_SECONDS=60 PROFILE=release
#        N=300 E2E_K8S=1.20 OUT=/tmp/scale.json e2e/bench/scale.sh
# Env: N, CREATORS (parallel `kubectl create` processes, default 1), IDLE_SECONDS,
#      OBSERVE_TIMEOUT (s, default 900), PROFILE (release|dev), OPERATOR_BIN
#      (skip the build), STATE_DIR (default .cache/k8s-bench), KEEP=1 (leave the plane running),
#      OUT (default target/bench/scale-<plane>-<N>.json), OPERATOR_ARGS (extra flags).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
N=${N:-1000}
CREATORS=${CREATORS:-1}
IDLE_SECONDS=${IDLE_SECONDS:-60}
OBSERVE_TIMEOUT=${OBSERVE_TIMEOUT:-900}
PROFILE=${PROFILE:-release}
PLANE=${E2E_K8S:-current}
STATE_DIR=${STATE_DIR:-$ROOT/.cache/k8s-bench}
OUT=${OUT:-$ROOT/target/bench/scale-$PLANE-$N.json}
NS=bench
WORK=$(mktemp -d /tmp/erlmcp-scale.XXXXXX)
OP_PID=
log() { printf '[scale] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

cleanup() {
  local rc=$?
  if [[ -n $OP_PID ]]; then kill "$OP_PID" 2>/dev/null && wait "$OP_PID" 2>/dev/null || true; fi
  if [[ ${KEEP:-0} != 1 ]]; then bash e2e/scripts/k8s-down.sh "$STATE_DIR" >/dev/null 2>&1 || true; fi
  if [[ $rc -ne 0 && -f $WORK/operator.log ]]; then log "operator log (tail):"; tail -n 20 "$WORK/operator.log" >&2; fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT

if [[ -z ${OPERATOR_BIN:-} ]]; then
  log "building erlmcp-operator ($PROFILE)"
  if [[ $PROFILE == release ]]; then
    nice -n 10 cargo build -q -p erlmcp-operator --release >&2
    OPERATOR_BIN=$ROOT/target/release/erlmcp-operator
  else
    nice -n 10 cargo build -q -p erlmcp-operator >&2
    OPERATOR_BIN=$ROOT/target/debug/erlmcp-operator
  fi
fi
[[ -x $OPERATOR_BIN ]] || die "no operator binary at $OPERATOR_BIN"

KUBECONFIG=$(E2E_K8S=$PLANE bash e2e/scripts/k8s-up.sh "$STATE_DIR" | tail -n1)
export KUBECONFIG
KUBECTL=$(bash scripts/tools.sh kubectl | tail -n1)
k() { "$KUBECTL" "$@"; }

# Without client-side validation, as e2e/src/env/kubectl.rs installs it: servers before 1.25
# (E2E_K8S=1.20) do not know the CEL rules and drop them; their server-side apply refuses them.
k apply --validate=false -f crds/erlmcp.io_erlmcpclusters.yaml >&2
# Not `kubectl wait --for condition=Established`: on a CRD whose status has no conditions yet
# (the moment after create) it fails at once instead of waiting.
for _ in $(seq 1 60); do
  [[ $(k get crd erlmcpclusters.erlmcp.io -o jsonpath='{.status.conditions[?(@.type=="Established")].status}' 2>/dev/null) == True ]] && break
  sleep 1
done
[[ $(k get crd erlmcpclusters.erlmcp.io -o jsonpath='{.status.conditions[?(@.type=="Established")].status}') == True ]] ||
  die "the ErlmcpCluster CRD is not Established after 60 s"
k create namespace "$NS" --dry-run=client -o yaml | k apply -f - >&2

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# shellcheck disable=SC2086
RUST_LOG=${RUST_LOG:-warn} "$OPERATOR_BIN" run --leader-elect=false --metrics-addr "127.0.0.1:$PORT" \
  --log-format text ${OPERATOR_ARGS:-} >"$WORK/operator.log" 2>&1 &
OP_PID=$!
for _ in $(seq 1 60); do
  curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
  kill -0 "$OP_PID" 2>/dev/null || die "the operator exited"
  sleep 1
done
curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null || die "the operator is not ready after 60 s"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$OP_PID/stat"; }
TICK=$(getconf CLK_TCK)
metric_sum() { # name: the sum of every series of a metric on the operator
  curl -fsS "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 ~ "^"m"({|$)" {s += $NF} END {print s + 0}'
}
api_requests() { # apiserver_request_total for our resources, every verb but WATCH, as JSON
  k get --raw /metrics | python3 -c '
import json, re, sys
ours = {"erlmcpclusters", "statefulsets", "services", "configmaps", "secrets", "serviceaccounts",
        "roles", "rolebindings", "networkpolicies", "poddisruptionbudgets",
        "horizontalpodautoscalers", "pods", "events"}
out = {}
for line in sys.stdin:
    if not line.startswith("apiserver_request_total{"):
        continue
    labels = dict(re.findall(r"(\w+)=\"([^\"]*)\"", line.split("}")[0]))
    if labels.get("resource") in ours and labels.get("verb") not in ("WATCH", "CONNECT"):
        key = labels["verb"] + " " + labels["resource"]
        out[key] = out.get(key, 0) + float(line.rsplit(" ", 1)[1])
print(json.dumps(out))'
}

log "creating $N ErlmcpClusters (replicas 0) in namespace $NS, $CREATORS kubectl at once"
# One file per creator, clusters dealt round-robin.
python3 - "$N" "$NS" "$CREATORS" "$WORK" <<'EOF'
import sys
n, ns, k, work = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
files = [open(f"{work}/clusters-{j}.yaml", "w") for j in range(k)]
for i in range(n):
    print(f"---\napiVersion: erlmcp.io/v1alpha1\nkind: ErlmcpCluster\nmetadata:\n  name: c{i:04d}\n  namespace: {ns}\nspec:\n  replicas: 0", file=files[i % k])
EOF
API_CREATE0=$(api_requests)
CPU0=$(cpu_ticks)
T0=$(date +%s.%N)
CREATE_PIDS=()
for ((j = 0; j < CREATORS; j++)); do
  k create -f "$WORK/clusters-$j.yaml" >/dev/null &
  CREATE_PIDS+=($!)
done
for pid in "${CREATE_PIDS[@]}"; do wait "$pid" || die "kubectl create failed"; done
T_CREATED=$(date +%s.%N)
log "created in $(python3 -c "print(round($T_CREATED - $T0, 1))") s; waiting until every one is observed"
# count_clusters observed|ready: how many ErlmcpClusters are observed (status.observedGeneration
# == generation) or Ready (condition Ready=True).
count_clusters() {
  k get erlmcpclusters -n "$NS" -o json | python3 -c '
import json, sys
items = json.load(sys.stdin)["items"]
def observed(c):
    return (c.get("status") or {}).get("observedGeneration") == c["metadata"].get("generation")
def ready(c):
    return any(x.get("type") == "Ready" and x.get("status") == "True"
               for x in (c.get("status") or {}).get("conditions") or [])
print(sum(1 for c in items if {"observed": observed, "ready": ready}[sys.argv[1]](c)))' "$1"
}
# wait_all observed|ready: until every cluster is, bounded by the one OBSERVE_TIMEOUT deadline.
deadline=$(( $(date +%s) + OBSERVE_TIMEOUT ))
wait_all() {
  local seen
  while :; do
    seen=$(count_clusters "$1")
    [[ $seen -ge $N ]] && return
    [[ $(date +%s) -ge $deadline ]] && die "only $seen of $N $1 after ${OBSERVE_TIMEOUT}s"
    kill -0 "$OP_PID" 2>/dev/null || die "the operator exited"
    log "$1 $seen/$N"
    sleep 2
  done
}
wait_all observed
T_OBSERVED=$(date +%s.%N)
CPU_OBSERVED=$(cpu_ticks)
RECONCILES_AT_OBSERVED=$(metric_sum erlmcp_operator_reconciliations_total)
API_OBSERVED=$(api_requests)
log "all $N observed after $(python3 -c "print(round($T_OBSERVED - $T0, 1))") s; waiting until every one is Ready"
# Ready needs the StatefulSet controller's status of each StatefulSet, which trails on a fast
# operator (kube-controller-manager writes at --kube-api-qps, 20/s by default): until it is
# in, status refreshes and converging requeues are still work, not idle.
wait_all ready
T_READY=$(date +%s.%N)
log "all $N Ready after $(python3 -c "print(round($T_READY - $T0, 1))") s; settling 15 s, then idle for ${IDLE_SECONDS}s"
sleep 15
API0=$(api_requests)
CPU_IDLE0=$(cpu_ticks)
REC_IDLE0=$(metric_sum erlmcp_operator_reconciliations_total)
sleep "$IDLE_SECONDS"
CPU_IDLE1=$(cpu_ticks)
API1=$(api_requests)
REC_IDLE1=$(metric_sum erlmcp_operator_reconciliations_total)
METRICS=$(curl -fsS "http://127.0.0.1:$PORT/metrics")
RSS_KB=$(awk '/^VmRSS/ {print $2}' "/proc/$OP_PID/status")
HWM_KB=$(awk '/^VmHWM/ {print $2}' "/proc/$OP_PID/status")
SERVER=$(k version -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])')

mkdir -p "$(dirname "$OUT")"
python3 - "$OUT" <<EOF
import json, re, sys
metrics = """$METRICS"""
by_result = {}
for m in re.finditer(r'^erlmcp_operator_reconciliations_total\{result="(\w+)"\} (\S+)$', metrics, re.M):
    by_result[m.group(1)] = int(float(m.group(2)))
def one(name):
    m = re.search(r'^' + name + r' (\S+)$', metrics, re.M)
    return int(float(m.group(1))) if m else 0
a0, a1 = json.loads('$API0'), json.loads('$API1')
idle_min = $IDLE_SECONDS / 60
idle_api = {k: round((a1.get(k, 0) - a0.get(k, 0)) / idle_min, 1) for k in sorted(set(a0) | set(a1))}
idle_api = {k: v for k, v in idle_api.items() if v}
c0, c1 = json.loads('$API_CREATE0'), json.loads('$API_OBSERVED')
to_observe = {k: int(c1.get(k, 0) - c0.get(k, 0)) for k in sorted(set(c0) | set(c1))}
to_observe = {k: v for k, v in to_observe.items() if v}
out = {
    "n": $N,
    "plane": "$PLANE",
    "server_version": "$SERVER",
    "operator_profile": "$PROFILE",
    "operator_commit": "$(git rev-parse --short HEAD)",
    "create_seconds": round($T_CREATED - $T0, 2),
    "creators": $CREATORS,
    "all_observed_seconds": round($T_OBSERVED - $T0, 2),
    "observed_after_create_seconds": round($T_OBSERVED - $T_CREATED, 2),
    "all_ready_seconds": round($T_READY - $T0, 2),
    "api_requests_to_observe": {"total": sum(to_observe.values()), "by_verb_resource": to_observe},
    "reconciles": {"total": sum(by_result.values()), "at_all_observed": int($RECONCILES_AT_OBSERVED),
                   "during_idle": int($REC_IDLE1 - $REC_IDLE0), "by_result": by_result},
    "status_refreshes": one("erlmcp_operator_status_refreshes_total"),
    "status_writes_skipped": one("erlmcp_operator_status_writes_skipped_total"),
    "rss_mib": round($RSS_KB / 1024, 1),
    "peak_rss_mib": round($HWM_KB / 1024, 1),
    "cpu_seconds_to_observe": round(($CPU_OBSERVED - $CPU0) / $TICK, 2),
    "idle_seconds": $IDLE_SECONDS,
    "idle_cpu_seconds_per_minute": round(($CPU_IDLE1 - $CPU_IDLE0) / $TICK / idle_min, 3),
    "idle_api_requests_per_minute": {"total": round(sum(idle_api.values()), 1), "by_verb_resource": idle_api},
}
json.dump(out, open(sys.argv[1], "w"), indent=2)
print(json.dumps(out, indent=2))
EOF
log "wrote $OUT"
