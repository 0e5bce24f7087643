#!/usr/bin/env bash
# k8s-down.sh — stop a control plane started by k8s-up.sh and remove its state dir.
# TEST TOOLING, not product. Only the processes recorded in STATE_DIR/pids are signalled,
# and only if their command line still mentions STATE_DIR (so a recycled PID is never hit):
# SIGTERM, up to 10 s grace, then SIGKILL. The binary cache (~/.cache/erlmcp-k8s) is kept.
#
# Usage: e2e/scripts/k8s-down.sh [STATE_DIR]     (default: $PWD/.cache/k8s)
# Env:   K8S_DOWN_KEEP_STATE=1  stop the processes but keep STATE_DIR (logs) for inspection
# Safe to run twice, or on a dir that holds no running cluster.
set -euo pipefail

STATE_DIR="${1:-$PWD/.cache/k8s}"
log() { printf '[k8s-down] %s\n' "$*" >&2; }

if [[ ! -d $STATE_DIR ]]; then
  log "nothing to do: $STATE_DIR does not exist"
  exit 0
fi
STATE_DIR="$(cd "$STATE_DIR" && pwd)"
if [[ ! -f $STATE_DIR/.erlmcp-k8s-state ]]; then
  log "ERROR: $STATE_DIR was not made by k8s-up.sh (no .erlmcp-k8s-state); not touching it"
  exit 1
fi

ours() { # pid
  [[ -r /proc/$1/cmdline ]] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -F "$STATE_DIR" >/dev/null
}

# Reverse start order: clients first, etcd last.
pids=()
for name in kube-scheduler kube-controller-manager kube-apiserver etcd; do
  f="$STATE_DIR/pids/$name.pid"
  [[ -f $f ]] || continue
  pid=$(cat "$f")
  if [[ $pid =~ ^[0-9]+$ ]] && ours "$pid"; then
    log "SIGTERM $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    pids+=("$pid")
  fi
done

deadline=$(( $(date +%s) + 10 ))
for pid in "${pids[@]}"; do
  while ours "$pid" && (( $(date +%s) < deadline )); do sleep 0.2; done
  if ours "$pid"; then
    log "SIGKILL pid $pid"
    kill -KILL "$pid" 2>/dev/null || true
  fi
done
for pid in "${pids[@]}"; do
  for _ in $(seq 1 50); do ours "$pid" || break; sleep 0.1; done
  ours "$pid" && { log "ERROR: pid $pid still alive"; exit 1; }
done
rm -f "$STATE_DIR"/pids/*.pid

if [[ ${K8S_DOWN_KEEP_STATE:-0} == 1 ]]; then
  log "stopped; kept $STATE_DIR"
else
  rm -rf "$STATE_DIR"
  log "stopped; removed $STATE_DIR"
fi
