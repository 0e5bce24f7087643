#!/usr/bin/env bash
# scale.sh: the scale figures of issue 14 (item 4), measured on one machine over loopback with
# the release `erlmcp serve` and `erlmcp-load` as the client:
#
#   sessions        N idle 2025-11-25 sessions (each initialises, then idles) on one server:
#                   RSS growth / N (target < 2 KiB per session)
#   connections     N open idle connections, HTTP/1.1 keep-alive and WebSocket (one run each,
#                   a fresh server each): the server's RSS (target < 512 MiB)
#   forwarding      two peered servers; session clients initialise on n1 and send their
#                   requests to n1 (direct) or n2 (forwarded to the owner): saturated throughput
#                   ratio (target >= 0.5) and the open-loop p50 added (target < 0.3 ms)
#   soak            the soak scenario (normal profile at half rate) for --soak seconds: the
#                   server's RSS over time, flat within 5 % after the warm-up
#
# A BENCHMARK, not a test: nothing asserts; the figures and their targets go to
# bench/results/scale-<UTC timestamp>.{json,md} (fields in bench/README.md). Only 127.0.0.0/8
# is used. Every run is bounded by its own limits and a `timeout`; servers stop on exit.
#
# Usage: bench/scale.sh [options]
#   --only LIST       subset of sessions,connections-http,connections-ws,forwarding,soak
#   --sessions N      idle sessions (default 100000)
#   --connections N   idle connections per transport (default 50000)
#   --hold S          seconds the idle sessions / connections are held (default 20)
#   --soak S          soak length in seconds (default 60; 600 is the 10-minute figure)
#   --forward-duration S  seconds per forwarding throughput run (default 5; 3 runs each)
#   --out DIR         where the results go (default bench/results)
#   --keep-raw        keep the erlmcp-load reports and server logs (printed path)
#
# File descriptors: each side of N connections needs N descriptors; the script raises
# RLIMIT_NOFILE (`ulimit -n`, as root when the hard limit is lower) and, when it cannot, says so
# and holds what the limit allows. Client sockets are spread over 127.0.0.2-17 (bind before
# connect): one source address has only the ephemeral port range (~28k) towards one port.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"

ONLY="sessions,connections-http,connections-ws,forwarding,soak"
SESSIONS=100000 CONNECTIONS=50000 HOLD=20 SOAK=60 FWD_DURATION=5 FWD_RUNS=3 KEEP_RAW=0
OUT_DIR="$ROOT/bench/results"
SOURCES="127.0.0.2-17"

log() { printf '[scale] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

while [[ $# -gt 0 ]]; do
  case $1 in
    --only) ONLY=$2; shift 2 ;;
    --sessions) SESSIONS=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --hold) HOLD=$2; shift 2 ;;
    --soak) SOAK=$2; shift 2 ;;
    --forward-duration) FWD_DURATION=$2; shift 2 ;;
    --out) OUT_DIR=$2; shift 2 ;;
    --keep-raw) KEEP_RAW=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
num() { [[ $2 =~ ^[1-9][0-9]*$ && $2 -le $3 ]] || die "$1 must be 1..$3"; }
num --sessions "$SESSIONS" 1000000
num --connections "$CONNECTIONS" 200000
num --hold "$HOLD" 600
num --soak "$SOAK" 3600
num --forward-duration "$FWD_DURATION" 120
for f in ${ONLY//,/ }; do
  [[ ",sessions,connections-http,connections-ws,forwarding,soak," == *",$f,"* ]] || die "unknown figure $f"
done
want() { [[ ",$ONLY," == *",$1,"* ]]; }
command -v python3 >/dev/null || die "python3 is needed for the arithmetic"
command -v curl >/dev/null || die "curl is needed for readiness checks"

RAW=$(mktemp -d -t erlmcp-scale.XXXXXX)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [[ $KEEP_RAW == 1 ]]; then log "raw reports kept in $RAW"; else rm -rf "$RAW"; fi
}
trap cleanup EXIT

# ------------------------------------------------------------------ build
for pkg in erlmcp-dataplane erlmcp-load; do
  log "cargo build --release -p $pkg"
  (cd "$ROOT" && nice -n 10 cargo build -q --release -p "$pkg") || die "cargo build --release -p $pkg failed"
done
REL="${CARGO_TARGET_DIR:-$ROOT/target}/release"
ERLMCP="$REL/erlmcp" LOAD="$REL/erlmcp-load"

# ------------------------------------------------------------------ file descriptors
# Server and client are separate processes: each needs one descriptor per connection plus spare.
NOFILE_WANT=$(( (CONNECTIONS > SESSIONS / 100 ? CONNECTIONS : SESSIONS / 100) + 4096 ))
NOFILE_NOTE=""
if (( $(ulimit -n) < NOFILE_WANT )); then
  if ulimit -n "$NOFILE_WANT" 2>/dev/null || { ulimit -Hn "$NOFILE_WANT" 2>/dev/null && ulimit -n "$NOFILE_WANT"; }; then
    log "RLIMIT_NOFILE raised to $NOFILE_WANT"
  else
    hard=$(ulimit -Hn)
    ulimit -n "$hard"
    fit=$(( hard - 4096 ))
    (( fit >= 1000 )) || die "RLIMIT_NOFILE is $hard and cannot be raised (not root?): too small to measure anything"
    NOFILE_NOTE="RLIMIT_NOFILE could not be raised past $hard (not root?): $fit connections held instead of $CONNECTIONS"
    log "$NOFILE_NOTE"
    (( CONNECTIONS > fit )) && CONNECTIONS=$fit
  fi
fi

# ------------------------------------------------------------------ servers
free_port() { # [ip]
  python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1]); s.close()' "${1:-127.0.0.1}"
}
# The bench's limits: room for what it holds, idle timeouts longer than the hold, no per-client
# session cap (every client socket is on 127.0.0.x). The product defaults stay as they are.
# hyper's header-read timer also runs while an HTTP/1.1 keep-alive connection waits for its next
# request, so with the default (10 s) an idle keep-alive connection is closed after 10 s: the
# hold raises it with the idle timeout.
write_config() { # file
  cat >"$1" <<EOF
mcp:
  limits:
    maxConnections: $((CONNECTIONS + 1000))
    connectionIdleTimeoutSeconds: 3600
    headerReadTimeoutSeconds: 3600
  sessions:
    maxSessions: $((SESSIONS + 1000))
    maxSessionsPerClient: $((SESSIONS + 1000))
    idleTimeoutSeconds: 3600
EOF
}
CONFIG="$RAW/bench.yaml"
write_config "$CONFIG"

declare -A URL METRICS PIDOF HEALTH
start_node() { # name ip [extra env...]: an erlmcp serve on ip with its own ports
  local name=$1 ip=$2; shift 2
  local port health metrics
  port=$(free_port "$ip") health=$(free_port "$ip") metrics=$(free_port "$ip")
  env -i PATH="$PATH" ERLMCP_BIND_ADDRESS="$ip" ERLMCP_PORT="$port" HEALTH_PORT="$health" \
    METRICS_PORT="$metrics" ERLMCP_NODE_NAME="erlmcp@$name" ERLMCP_ENV=development \
    ERLMCP_LOG_LEVEL=warn ERLMCP_ADMIN_PORT="$(free_port)" "$@" \
    "$ERLMCP" serve --config "$CONFIG" >"$RAW/$name.log" 2>&1 &
  PIDOF[$name]=$!
  PIDS+=("$!")
  URL[$name]="http://$ip:$port"
  METRICS[$name]="http://$ip:$metrics/metrics"
  HEALTH[$name]="http://$ip:$health"
  local i
  for i in $(seq 1 200); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "${HEALTH[$name]}/ready" 2>/dev/null) == 200 ]] && return 0
    kill -0 "${PIDOF[$name]}" 2>/dev/null || { cat "$RAW/$name.log" >&2; die "$name exited during start-up"; }
    sleep 0.1
  done
  cat "$RAW/$name.log" >&2
  die "$name was not ready within 20 s"
}
stop_node() { # name
  local p=${PIDOF[$1]}
  kill "$p" 2>/dev/null || true
  timeout 30 tail --pid="$p" -f /dev/null || kill -9 "$p" 2>/dev/null || true
}
vm_hwm() { awk '/^VmHWM:/ {printf "%d\n", $2 * 1024}' "/proc/$1/status"; }

RESULTS="$RAW/measurements.jsonl"
: >"$RESULTS"
record() { echo "$1" >>"$RESULTS"; }

hold_run() { # figure name url family kind count
  local d="$RAW/$1" t=$((HOLD + 400))
  mkdir -p "$d"
  log "$1: $5 x $6 ($4) on $3, held ${HOLD}s"
  timeout "$t" "$LOAD" --hold "$5" --clients "$6" --family "$4" --url "$3" --metrics-url "${METRICS[$2]}" \
    --duration "${HOLD}s" --source-addrs "$SOURCES" --open-limit 300s --out "$d" 2>"$d.log" ||
    log "erlmcp-load exited with $? for $1 (see $d.log)"
  tail -n 2 "$d.log" >&2 || true
  record "{\"figure\":\"$1\",\"report\":\"$d/hold.json\",\"serverPeakRssBytes\":$(vm_hwm "${PIDOF[$2]}")}"
}

# ------------------------------------------------------------------ 1. idle sessions
if want sessions; then
  start_node s1 127.0.0.1
  hold_run sessions s1 "${URL[s1]}/mcp" session sessions "$SESSIONS"
  stop_node s1
fi

# ------------------------------------------------------------------ 2. idle connections
if want connections-http; then
  start_node c1 127.0.0.1
  hold_run connections-http c1 "${URL[c1]}/mcp" stateless connections "$CONNECTIONS"
  stop_node c1
fi
if want connections-ws; then
  start_node c2 127.0.0.1
  hold_run connections-ws c2 "ws://${URL[c2]#http://}/ws" stateless connections "$CONNECTIONS"
  stop_node c2
fi

# ------------------------------------------------------------------ 3. forwarding
load_run() { # dir url family clients rate max_in_flight duration [extra...]
  local d=$1 url=$2 family=$3 clients=$4 rate=$5 mif=$6 dur=$7; shift 7
  timeout $((dur + 60)) "$LOAD" --quiet --scenario baseline --duration "${dur}s" --clients "$clients" \
    --rate "$rate" --size 100 --max-in-flight "$mif" --timeout 10s --drain 3s --url "$url" \
    --family "$family" --out "$d" "$@" >"$d.log" 2>&1 || log "erlmcp-load exited with $? for $d"
}
if want forwarding; then
  net="127.$((RANDOM % 200 + 10)).$((RANDOM % 250 + 1))"
  peer_port=$(free_port)
  cookie="scale-bench-cookie-$(date +%s%N)"
  peers="$net.1:$peer_port,$net.2:$peer_port"
  start_node n1 "$net.1" ERLANG_COOKIE="$cookie" ERLMCP_PEERS="$peers" ERLMCP_PEER_PORT="$peer_port"
  start_node n2 "$net.2" ERLANG_COOKIE="$cookie" ERLMCP_PEERS="$peers" ERLMCP_PEER_PORT="$peer_port"
  for i in $(seq 1 200); do
    a=$(curl -s "${HEALTH[n1]}/status" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("clusterNodes"))' 2>/dev/null || true)
    b=$(curl -s "${HEALTH[n2]}/status" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("clusterNodes"))' 2>/dev/null || true)
    [[ $a == 2 && $b == 2 ]] && break
    (( i == 200 )) && die "n1 and n2 did not see each other within 20 s (logs in $RAW)"
    sleep 0.1
  done
  log "forwarding: n1 and n2 peered"
  owner="${URL[n1]}/mcp" other="${URL[n2]}/mcp"
  for rep in $(seq 1 "$FWD_RUNS"); do
    for mode in direct forwarded; do
      d="$RAW/fwd-$mode-$rep-sat"
      extra=(); [[ $mode == forwarded ]] && extra=(--handshake-url "$owner")
      target=$owner; [[ $mode == forwarded ]] && target=$other
      log "forwarding run $rep/$FWD_RUNS $mode: saturation (${FWD_DURATION}s, 32 connections)"
      load_run "$d" "$target" session 32 100000 1 "$FWD_DURATION" "${extra[@]}"
      record "{\"figure\":\"forwarding\",\"mode\":\"$mode\",\"kind\":\"saturation\",\"rep\":$rep,\"report\":\"$d/report.json\"}"
    done
  done
  for mode in direct forwarded; do
    d="$RAW/fwd-$mode-latency"
    extra=(); [[ $mode == forwarded ]] && extra=(--handshake-url "$owner")
    target=$owner; [[ $mode == forwarded ]] && target=$other
    log "forwarding $mode: open-loop latency, 10 clients x 100/s"
    load_run "$d" "$target" session 10 100 64 10 "${extra[@]}"
    record "{\"figure\":\"forwarding\",\"mode\":\"$mode\",\"kind\":\"latency\",\"rep\":1,\"report\":\"$d/report.json\"}"
  done
  fwd=$(curl -s "${METRICS[n2]}" | awk '$1=="erlmcp_cluster_forwarded_total" {print $2}')
  record "{\"figure\":\"forwarding\",\"kind\":\"counters\",\"n2ForwardedTotal\":${fwd:-null}}"
  stop_node n2
  stop_node n1
fi

# ------------------------------------------------------------------ 5. soak
if want soak; then
  start_node k1 127.0.0.1
  d="$RAW/soak"
  log "soak: ${SOAK}s of the soak scenario (normal profile at half rate)"
  timeout $((SOAK + 120)) "$LOAD" --quiet --scenario soak --duration "${SOAK}s" --url "${URL[k1]}/mcp" \
    --metrics-url "${METRICS[k1]}" --scrape-interval 1s --out "$d" >"$d.log" 2>&1 ||
    log "erlmcp-load exited with $? for the soak"
  record "{\"figure\":\"soak\",\"report\":\"$d/report.json\",\"serverPeakRssBytes\":$(vm_hwm "${PIDOF[k1]}")}"
  stop_node k1
fi

# ------------------------------------------------------------------ results
mkdir -p "$OUT_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
python3 "$HERE/scale_report.py" --measurements "$RESULTS" --out "$OUT_DIR/scale-$STAMP" \
  --sessions "$SESSIONS" --connections "$CONNECTIONS" --hold "$HOLD" --soak "$SOAK" \
  --forward-duration "$FWD_DURATION" --nofile "$(ulimit -n)" --note "$NOFILE_NOTE" \
  --erlmcp-version "$("$ERLMCP" version 2>/dev/null | head -n1)" --cores "$(nproc)"
cat "$OUT_DIR/scale-$STAMP.md"
log "wrote $OUT_DIR/scale-$STAMP.json and $OUT_DIR/scale-$STAMP.md"
