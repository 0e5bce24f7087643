#!/usr/bin/env bash
# instructions.sh: CPU instructions and heap allocations per `tools/call echo` request, for the
# release `erlmcp serve` (both protocol families) and the bare hyper ceiling (hyper-hello),
# counted by valgrind's callgrind: its instruction total, and its count of calls into the heap
# allocator (bench/callgrind_totals.py; it agrees with DHAT's block count for glibc's malloc
# and, unlike DHAT, also sees an allocator linked into the binary). Unlike req/s these counts
# barely move with the machine's other work, so a change in the request path can be judged on
# a busy, shared machine.
#
# A BENCHMARK, not a test: it asserts nothing. Everything binds and targets 127.0.0.1 only.
#
# Usage: bench/instructions.sh [options]
#   --requests N     measured requests per target (default 2000)
#   --warmup N       requests sent first in both runs (default 200; see below)
#   --conns N        client connections, each with one request at a time (default 8)
#   --size B         echo message bytes (default 100, as bench/compare.sh)
#   --targets LIST   comma-separated subset of hyper,erlmcp-2026,erlmcp-2025 (default: all)
#   --no-build       use the release binaries already built
#   --erlmcp BIN     measure this `erlmcp` binary instead of the release build (implies
#                    nothing is built for it; e.g. a copy kept from before a change)
#   --keep-raw       keep the tools' output files (callgrind_annotate them) and print where
#   --out FILE       JSON result (default bench/results/instructions-<UTC timestamp>.json)
#
# How: each target is run twice under callgrind, once answering WARMUP requests and once
# WARMUP + N, and the difference of the two totals is divided by N. Start-up, connection set-up,
# the session's initialize and shutdown are the same in both runs and cancel out; what is left is
# the steady per-request cost of the server process (all its threads, kernel time not included).
# The client (bench/fixed_client.py) sends exactly the request bench/compare.sh's wrk sends and
# checks every answer. The erlmcp server is started as bench/compare.sh starts it.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
REQUESTS=2000 WARMUP=200 CONNS=8 SIZE=100 BUILD=1
TARGETS="hyper,erlmcp-2026,erlmcp-2025"
OUT="" ERLMCP_BIN="" KEEP_RAW=0

log() { printf '[instructions] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

while [[ $# -gt 0 ]]; do
  case $1 in
    --requests) REQUESTS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --targets) TARGETS=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --out) OUT=$2; shift 2 ;;
    --erlmcp) ERLMCP_BIN=$2; shift 2 ;;
    --keep-raw) KEEP_RAW=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ $REQUESTS =~ ^[1-9][0-9]*$ && $REQUESTS -le 1000000 ]] || die "--requests must be 1..1000000"
[[ $WARMUP =~ ^[0-9]+$ && $WARMUP -le 100000 ]] || die "--warmup must be 0..100000"
[[ $CONNS =~ ^[1-9][0-9]*$ && $CONNS -le 256 ]] || die "--conns must be 1..256"
for t in ${TARGETS//,/ }; do
  [[ $t == hyper || $t == erlmcp-2026 || $t == erlmcp-2025 ]] || die "unknown target $t"
done
command -v valgrind >/dev/null || die "valgrind is needed (apt-get install valgrind)"
command -v python3 >/dev/null || die "python3 is needed"

if [[ $BUILD == 1 ]]; then
  # One package per build, as bench/compare.sh: `erlmcp` is what `-p erlmcp-dataplane` ships.
  pkgs="erlmcp-bench-hyper-hello"
  [[ -n $ERLMCP_BIN ]] || pkgs="erlmcp-dataplane $pkgs"
  for pkg in $pkgs; do
    log "cargo build --release -p $pkg"
    (cd "$ROOT" && nice -n 10 cargo build -q --release -p "$pkg") || die "cargo build -p $pkg failed"
  done
fi
REL="${CARGO_TARGET_DIR:-$ROOT/target}/release"
ERLMCP_BIN=${ERLMCP_BIN:-$REL/erlmcp}
[[ -x $ERLMCP_BIN ]] || die "no erlmcp binary at $ERLMCP_BIN"
RAW=$(mktemp -d -t erlmcp-instructions.XXXXXX)
SERVER_PID=""
cleanup() {
  [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  if [[ $KEEP_RAW == 1 ]]; then log "raw output kept in $RAW"; else rm -rf "$RAW"; fi
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# run_one TARGET REQUESTS: start the target under callgrind, send the requests, stop it; print
# the run's totals as JSON (instructions, allocations).
run_one() {
  local target=$1 n=$2 port family log out
  port=$(free_port)
  log="$RAW/$target-$n.log"
  out="$RAW/$target-$n.callgrind"
  local vg=(valgrind --tool=callgrind -q "--callgrind-out-file=$out")
  case $target in
    hyper)
      family=stateless
      "${vg[@]}" "$REL/hyper-hello" --port "$port" --echo-bytes "$SIZE" >"$log" 2>&1 &
      ;;
    erlmcp-*)
      [[ $target == erlmcp-2026 ]] && family=stateless || family=session
      ERLMCP_PORT=$port HEALTH_PORT=$(free_port) METRICS_PORT=$(free_port) ERLMCP_BIND_ADDRESS=127.0.0.1 \
        ERLMCP_ENV=development ERLMCP_LOG_LEVEL=warn "${vg[@]}" "$ERLMCP_BIN" serve >"$log" 2>&1 &
      ;;
  esac
  SERVER_PID=$!
  local i
  for i in $(seq 1 600); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$log" >&2; die "$target exited during start-up"; }
    sleep 0.1
  done
  local extra=()
  [[ $target == hyper ]] && extra=(--any-body)
  timeout 900 python3 "$HERE/fixed_client.py" --port "$port" --family "$family" --requests "$n" \
    --conns "$CONNS" --size "$SIZE" "${extra[@]}" >/dev/null || die "client failed against $target"
  kill -TERM "$SERVER_PID"
  for i in $(seq 1 600); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
  python3 "$HERE/callgrind_totals.py" "$out"
}

RESULTS="$RAW/results.jsonl"
: >"$RESULTS"
for t in ${TARGETS//,/ }; do
  log "$t: callgrind, $WARMUP and $((WARMUP + REQUESTS)) requests"
  a=$(run_one "$t" "$WARMUP")
  b=$(run_one "$t" $((WARMUP + REQUESTS)))
  python3 - "$t" "$a" "$b" "$REQUESTS" >>"$RESULTS" <<'EOF'
import json, sys
t, a, b, n = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4])
per = lambda k: round((b[k] - a[k]) / n, 1)
print(json.dumps({"target": t, "instructionsPerRequest": per("instructions"),
                  "allocationsPerRequest": per("allocations")}))
EOF
  log "$t: $(tail -n1 "$RESULTS")"
done

[[ -n $OUT ]] || { mkdir -p "$ROOT/bench/results"; OUT="$ROOT/bench/results/instructions-$(date -u +%Y%m%dT%H%M%SZ).json"; }
python3 - "$RESULTS" "$OUT" "$REQUESTS" "$WARMUP" "$CONNS" "$SIZE" "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ceiling = next((r["instructionsPerRequest"] for r in rows if r["target"] == "hyper"), None)
for r in rows:
    if ceiling and r["target"] != "hyper":
        # The ceiling's instructions over the target's: the throughput ratio one core would give
        # if instructions were all that mattered (syscalls and the kernel are not counted).
        r["ceilingOverTarget"] = round(ceiling / r["instructionsPerRequest"], 3)
doc = {"schema": "erlmcp-instructions/1", "commit": sys.argv[7], "requests": int(sys.argv[3]),
       "warmup": int(sys.argv[4]), "connections": int(sys.argv[5]), "messageBytes": int(sys.argv[6]),
       "counter": "valgrind callgrind: Ir, and calls into the heap allocator; difference of two runs / requests",
       "targets": rows}
json.dump(doc, open(sys.argv[2], "w"), indent=2)
print(json.dumps(doc, indent=2))
EOF
log "written to $OUT"
