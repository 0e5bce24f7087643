#!/usr/bin/env bash
# k8s-etcd.sh — back up and restore the etcd of a control plane started by k8s-up.sh, the way a
# cluster admin's disaster-recovery runbook does it. TEST TOOLING, not product.
#
# Usage: e2e/scripts/k8s-etcd.sh snapshot STATE_DIR FILE   `etcdctl snapshot save` of the running
#                                                           plane's etcd into FILE (checked)
#        e2e/scripts/k8s-etcd.sh restore STATE_DIR FILE    stop the whole plane (apiserver,
#            controller-manager, scheduler, etcd), delete etcd's data dir, restore FILE into a new
#            data dir, start every component again with its recorded command line (same ports,
#            certs, tokens: kubeconfigs stay valid) and wait until all are healthy
# The tools: etcd-tools-build.sh for the plane recorded in STATE_DIR (current: etcdctl/etcdutl 3.6
# built from their Go modules; 1.20: Debian's etcd-client 3.4). On 3.6 the restore bumps the
# revision and marks it compacted (etcd's advice for Kubernetes): every watcher that saw a newer
# revision before the disaster gets "410 Gone" and relists instead of waiting for a revision that
# the restored store reaches only later. etcd 3.4 has no such option: restart the clients that
# watch (the operator) after a restore there.
# Stdout (last line): FILE after a snapshot, the new data dir after a restore.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '[k8s-etcd] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $# -eq 3 && ( $1 == snapshot || $1 == restore ) ]] || die "usage: $0 snapshot|restore STATE_DIR FILE"
ACTION=$1 FILE=$3
STATE_DIR="$(cd "$2" && pwd)" || die "no state dir $2"
PIDS="$STATE_DIR/pids" LOGS="$STATE_DIR/logs"
[[ -f $STATE_DIR/.erlmcp-k8s-state && -f $STATE_DIR/env ]] || die "$STATE_DIR is not a plane started by k8s-up.sh"
# shellcheck disable=SC1091
source "$STATE_DIR/env"
PLANE=$K8S_PLANE
TOOLS="$(E2E_K8S=$PLANE "$HERE/etcd-tools-build.sh" | tail -n1)" || die "etcd-tools-build.sh failed"
ETCDCTL="$TOOLS/etcdctl"
export ETCDCTL_API=3

if [[ $ACTION == snapshot ]]; then
  mkdir -p "$(dirname "$FILE")"
  "$ETCDCTL" --endpoints "$K8S_ETCD_URL" --command-timeout 60s snapshot save "$FILE" >&2 ||
    die "etcdctl snapshot save from $K8S_ETCD_URL failed"
  if [[ -x $TOOLS/etcdutl ]]; then status=("$TOOLS/etcdutl"); else status=("$ETCDCTL"); fi
  log "snapshot $FILE: $("${status[@]}" snapshot status "$FILE" -w table 2>/dev/null | sed -n 4p)"
  echo "$FILE"
  exit 0
fi

[[ -s $FILE ]] || die "no snapshot at $FILE"
COMPONENTS=(kube-scheduler kube-controller-manager kube-apiserver etcd) # stopped in this order
ours() { # name: is the recorded PID alive and ours (its command line mentions STATE_DIR)?
  local pid
  pid=$(cat "$PIDS/$1.pid" 2>/dev/null) || return 1
  [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -F "$STATE_DIR" >/dev/null
}
for c in "${COMPONENTS[@]}"; do [[ -f $PIDS/$c.cmd ]] || die "no recorded command line for $c (a plane from an older k8s-up.sh: restart it)"; done

# ---------------------------------------------------------------- stop the plane
for c in "${COMPONENTS[@]}"; do
  ours "$c" || { log "$c is not running"; continue; }
  pid=$(cat "$PIDS/$c.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do ours "$c" || break; sleep 0.1; done
  if ours "$c"; then log "$c (pid $pid) ignored TERM for 10 s: KILL"; kill -KILL "$pid" 2>/dev/null || true; sleep 0.5; fi
  log "stopped $c (pid $pid)"
done

# ---------------------------------------------------------------- restore into a new data dir
mapfile -d '' -t ETCD_CMD <"$PIDS/etcd.cmd"
flag() { # name: the value after --name in etcd's recorded command line
  local i
  for i in "${!ETCD_CMD[@]}"; do [[ ${ETCD_CMD[$i]} == "$1" ]] && { echo "${ETCD_CMD[$((i + 1))]}"; return 0; }; done
  die "etcd's command line has no $1"
}
OLD_DATA=$(flag --data-dir)
NEW_DATA="$STATE_DIR/etcd-restored-$(date +%s)"
# The disaster: the old member's data is gone.
rm -rf "$OLD_DATA"
restore=(snapshot restore "$FILE" --data-dir "$NEW_DATA" --name "$(flag --name)"
  --initial-cluster "$(flag --initial-cluster)" --initial-advertise-peer-urls "$(flag --initial-advertise-peer-urls)"
  --initial-cluster-token "$(flag --initial-cluster-token)")
if [[ -x $TOOLS/etcdutl ]]; then
  # Past every revision a client can have seen since the snapshot (a billion writes), compacted.
  "$TOOLS/etcdutl" "${restore[@]}" --bump-revision 1000000000 --mark-compacted >>"$LOGS/etcd-restore.log" 2>&1
else
  "$ETCDCTL" "${restore[@]}" >>"$LOGS/etcd-restore.log" 2>&1
fi || { tail -n 20 "$LOGS/etcd-restore.log" >&2; die "snapshot restore of $FILE failed"; }
chmod 700 "$NEW_DATA"
log "restored $FILE into $NEW_DATA"
for i in "${!ETCD_CMD[@]}"; do [[ ${ETCD_CMD[$i]} == --data-dir ]] && ETCD_CMD[i+1]=$NEW_DATA; done
printf '%s\0' "${ETCD_CMD[@]}" >"$PIDS/etcd.cmd"

# ---------------------------------------------------------------- start it again, as k8s-up.sh did
start() { # name
  local args
  mapfile -d '' -t args <"$PIDS/$1.cmd"
  setsid "${args[@]}" >>"$LOGS/$1.log" 2>&1 </dev/null &
  echo $! >"$PIDS/$1.pid"
  log "started $1 (pid $!)"
}
wait_for() { # name cmd...
  local name=$1; shift
  local deadline=$(( $(date +%s) + ${K8S_READY_TIMEOUT:-90} ))
  until "$@" >/dev/null 2>&1; do
    ours "$name" || { sleep 1; ours "$name"; } || { tail -n 20 "$LOGS/$name.log" >&2; die "$name exited after the restore"; }
    (( $(date +%s) < deadline )) || { tail -n 20 "$LOGS/$name.log" >&2; die "$name not healthy after the restore"; }
    sleep 0.5
  done
}
api_get() { curl -sf --max-time 5 --cacert "$K8S_CA_FILE" -H "Authorization: Bearer $K8S_ADMIN_TOKEN" "$K8S_API_URL$1"; }
start etcd
wait_for etcd curl -sf --max-time 2 "$K8S_ETCD_URL/health"
start kube-apiserver
wait_for kube-apiserver api_get /readyz
start kube-controller-manager
start kube-scheduler
wait_for kube-controller-manager curl -skf --max-time 2 "https://127.0.0.1:$K8S_CONTROLLER_MANAGER_PORT/healthz"
wait_for kube-scheduler curl -skf --max-time 2 "https://127.0.0.1:$K8S_SCHEDULER_PORT/healthz"
log "plane restored from $FILE and healthy"
echo "$NEW_DATA"
