#!/usr/bin/env bash
# compare.sh: erlmcp side by side with a bare hyper ceiling, rmcp (the official Rust SDK), the
# official Python SDK server and the TypeScript SDK server, all with the same `echo` tool, in one
# run on the same pinned cores (servers on one core, the load generator on the other). Each
# target is driven with erlmcp-load (and wrk as a cross-check where it installs), N times;
# medians and the ratios to the ceiling and to rmcp measured in this run go to
# bench/results/<timestamp>.{json,md}, with the stripped size of the release `erlmcp`.
#
# A BENCHMARK, not a test: numbers move with the machine's other work (ratios much less), and
# nothing here asserts a speed. Everything binds and targets 127.0.0.1 only.
#
# Usage: bench/compare.sh [options]
#   --runs N          repetitions per target (default 3); medians are taken over them
#   --duration S      seconds per load run (default 5; 2 gives a quick run of about 2 minutes)
#   --clients N       concurrent clients / connections (default 32)
#   --size B          echo message bytes (default 100)
#   --targets LIST    comma-separated subset of: hyper,erlmcp-2026,erlmcp-2025,rmcp-2026,
#                     rmcp-2025,python-2026,python-2025,ts-2025 (default: all)
#   --no-wrk          skip the wrk cross-check (default: use wrk, installing it with
#                     scripts/tools.sh; go on without it if that fails)
#   --server-cpu N / --load-cpu N   cores to pin to (default 0 and 1)
#   --out DIR         where the table goes (default bench/results)
#   --smoke           prove the script end to end: 1 run of 1 s, 4 clients, no wrk, results in a
#                     temporary dir; fails unless every target answered with zero errors
#   --keep-raw        keep the per-run erlmcp-load reports (printed path)
#   --dist-size       also build `erlmcp` as the images do (`--profile dist`: fat LTO, one
#                     codegen unit, stripped; a slow build) and report its size beside the release's
#
# How each target is measured (per repetition):
#   throughput  erlmcp-load, `--clients N --max-in-flight 1` at an offered rate far above any
#               server's (100,000/s per client): N connections kept busy, i.e. saturation;
#               req/s is the steady phase's correct answers per second (scheduled requests
#               left unsent at the end are the point of offering too much, not errors)
#   latency     erlmcp-load open loop at 75 % of the median saturated rate, p50/p99 of the
#               steady phase measured from the scheduled send time (no coordinated omission)
#   CPU µs/req  the server process's user+system time during the saturation run / answers
#   RSS         the server's VmRSS after its saturation run
#   wrk         closed loop, 1 thread, N connections, same request (session targets share one
#               session opened with curl): req/s and p50/p99
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
TOOLS="$ROOT/scripts/tools.sh"

RUNS=3 DURATION=5 CLIENTS=32 SIZE=100 USE_WRK=1 SERVER_CPU=0 LOAD_CPU=1 SMOKE=0 KEEP_RAW=0 DIST_SIZE=0
OUT_DIR="$ROOT/bench/results"
ALL_TARGETS="hyper,erlmcp-2026,erlmcp-2025,rmcp-2026,rmcp-2025,python-2026,python-2025,ts-2025"
TARGETS=$ALL_TARGETS
SAT_RATE=100000   # per client: far above what any target answers, so the N connections never idle
LAT_FRACTION=0.75 # of the median saturated rate, for the open-loop latency run
RMCP_VERSION=3.11.0

log() { printf '[compare] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

while [[ $# -gt 0 ]]; do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --targets) TARGETS=$2; shift 2 ;;
    --no-wrk) USE_WRK=0; shift ;;
    --server-cpu) SERVER_CPU=$2; shift 2 ;;
    --load-cpu) LOAD_CPU=$2; shift 2 ;;
    --out) OUT_DIR=$2; shift 2 ;;
    --smoke) SMOKE=1; shift ;;
    --keep-raw) KEEP_RAW=1; shift ;;
    --dist-size) DIST_SIZE=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
if [[ $SMOKE == 1 ]]; then
  RUNS=1 DURATION=1 CLIENTS=4 USE_WRK=0
  OUT_DIR=$(mktemp -d -t erlmcp-compare-smoke.XXXXXX)
fi
for t in ${TARGETS//,/ }; do
  [[ ",$ALL_TARGETS," == *",$t,"* ]] || die "unknown target $t (known: $ALL_TARGETS)"
done
[[ $RUNS =~ ^[1-9][0-9]*$ && $RUNS -le 20 ]] || die "--runs must be 1..20"
[[ $DURATION =~ ^[1-9][0-9]*$ && $DURATION -le 600 ]] || die "--duration must be 1..600 seconds"
[[ $CLIENTS =~ ^[1-9][0-9]*$ && $CLIENTS -le 1000 ]] || die "--clients must be 1..1000"
command -v taskset >/dev/null || die "taskset (util-linux) is needed to pin the cores"
command -v python3 >/dev/null || die "python3 is needed for the arithmetic and the table"
command -v curl >/dev/null || die "curl is needed to open sessions and check readiness"

RAW=$(mktemp -d -t erlmcp-compare.XXXXXX)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [[ $KEEP_RAW == 1 ]]; then log "raw reports kept in $RAW"; else rm -rf "$RAW"; fi
}
trap cleanup EXIT

# ------------------------------------------------------------------ build and tools
# One package per build: cargo unifies dependency features across the packages of one
# invocation, and `erlmcp` must be the binary `cargo build --release -p erlmcp-dataplane` ships.
PKGS="erlmcp-dataplane erlmcp-load"
[[ ",$TARGETS," == *",rmcp-"* ]] && PKGS+=" erlmcp-bench-rmcp"
[[ ",$TARGETS," == *",hyper,"* ]] && PKGS+=" erlmcp-bench-hyper-hello"
for pkg in $PKGS; do
  log "cargo build --release -p $pkg"
  (cd "$ROOT" && nice -n 10 cargo build -q --release -p "$pkg") || die "cargo build --release -p $pkg failed"
done
REL="${CARGO_TARGET_DIR:-$ROOT/target}/release"
strip -o "$RAW/erlmcp.stripped" "$REL/erlmcp"
ERLMCP_STRIPPED_BYTES=$(stat -c %s "$RAW/erlmcp.stripped")
rm -f "$RAW/erlmcp.stripped"
log "stripped erlmcp: $ERLMCP_STRIPPED_BYTES bytes"
ERLMCP_DIST_BYTES=0
if [[ $DIST_SIZE == 1 ]]; then
  log "cargo build --profile dist -p erlmcp-dataplane --bin erlmcp (fat LTO: slow)"
  (cd "$ROOT" && nice -n 10 cargo build -q --profile dist -p erlmcp-dataplane --bin erlmcp) ||
    die "cargo build --profile dist failed"
  ERLMCP_DIST_BYTES=$(stat -c %s "${CARGO_TARGET_DIR:-$ROOT/target}/dist/erlmcp")
  log "dist erlmcp: $ERLMCP_DIST_BYTES bytes"
fi

want() { [[ ",$TARGETS," == *",$1,"* ]]; }
want_server() { [[ ",$TARGETS," == *",$1-"* || ",$TARGETS," == *",$1,"* ]]; }

PY_SDK="" NODE="" TS_MODULES="" WRK=""
if want_server python; then PY_SDK=$(bash "$TOOLS" pymcp | tail -n1) || die "scripts/tools.sh pymcp failed"; fi
if want_server ts; then
  NODE=$(bash "$TOOLS" node22 | tail -n1) || die "scripts/tools.sh node22 failed"
  TS_MODULES=$(bash "$TOOLS" tsmcp | tail -n1) || die "scripts/tools.sh tsmcp failed"
fi
if [[ $USE_WRK == 1 ]]; then
  WRK=$(bash "$TOOLS" wrk | tail -n1) || { log "wrk unavailable: no cross-check"; WRK=""; }
fi
PYMCP_VERSION=$("$PY_SDK" -c 'import importlib.metadata as m; print(m.version("mcp"))' 2>/dev/null || echo "")
TSMCP_VERSION=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$TS_MODULES/@modelcontextprotocol/sdk/package.json" 2>/dev/null | head -n1 || echo "")

# ------------------------------------------------------------------ servers
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
declare -A PORT PID

wait_listening() { # name port pid
  local i
  for i in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
    kill -0 "$3" 2>/dev/null || { cat "$RAW/$1.log" >&2; die "$1 exited during start-up"; }
    sleep 0.1
  done
  cat "$RAW/$1.log" >&2
  die "$1 did not listen on 127.0.0.1:$2 within 15 s"
}

start_server() { # name: starts it pinned to SERVER_CPU on a free loopback port
  # `exec` in every arm: the background job's pid must be the server itself (its CPU time and
  # RSS are measured by pid), not a bash subshell waiting for it.
  local name=$1 port
  port=$(free_port)
  case $name in
    hyper) exec taskset -c "$SERVER_CPU" "$REL/hyper-hello" --port "$port" --echo-bytes "$SIZE" ;;
    erlmcp)
      ERLMCP_PORT=$port HEALTH_PORT=$(free_port) METRICS_PORT=$(free_port) ERLMCP_BIND_ADDRESS=127.0.0.1 \
        ERLMCP_ENV=development ERLMCP_LOG_LEVEL=warn exec taskset -c "$SERVER_CPU" "$REL/erlmcp" serve ;;
    rmcp) exec taskset -c "$SERVER_CPU" "$REL/rmcp-echo" --port "$port" ;;
    python) exec taskset -c "$SERVER_CPU" "$PY_SDK" "$HERE/sdk/python_echo_server.py" "$port" ;;
    ts) exec taskset -c "$SERVER_CPU" "$NODE" "$HERE/sdk/ts_echo_server.mjs" "$port" "$TS_MODULES" ;;
  esac >"$RAW/$name.log" 2>&1 &
  PID[$name]=$!
  PORT[$name]=$port
  PIDS+=("$!")
  wait_listening "$name" "$port" "$!"
  log "$name: pid ${PID[$name]}, http://127.0.0.1:$port/mcp"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_bytes() { awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$1/status"; }

# ------------------------------------------------------------------ load runs
LOAD="$REL/erlmcp-load"
RESULTS="$RAW/measurements.jsonl"
: >"$RESULTS"

load_run() { # out_dir url family rate max_in_flight
  timeout $((DURATION + 60)) taskset -c "$LOAD_CPU" "$LOAD" --quiet --scenario baseline \
    --duration "${DURATION}s" --clients "$CLIENTS" --rate "$4" --size "$SIZE" --max-in-flight "$5" \
    --timeout 10s --drain 3s --url "$2" --family "$3" --out "$1" >"$1.log" 2>&1 ||
    log "erlmcp-load exited with $? for $1 (see the table's errors)"
}

session_id() { # url: initialize a 2025-11-25 session with curl, print its id
  local url=$1 sid
  sid=$(curl -s -D - -o /dev/null -X POST "$url" -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' \
    -d '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"compare-wrk","version":"1"}}}' |
    tr -d '\r' | awk -F': ' 'tolower($1)=="mcp-session-id" {print $2}')
  curl -s -o /dev/null -X POST "$url" -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' -H "mcp-session-id: $sid" \
    -H 'mcp-protocol-version: 2025-11-25' -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
  echo "$sid"
}

wrk_run() { # out_file url family
  local lua="$1.lua" sid=""
  [[ $3 == session ]] && sid=$(session_id "$2")
  python3 "$HERE/compare_report.py" wrk-script --family "$3" --size "$SIZE" --session-id "$sid" >"$lua"
  timeout $((DURATION + 30)) taskset -c "$LOAD_CPU" "$WRK" -t1 -c"$CLIENTS" -d"${DURATION}s" \
    --latency -s "$lua" "$2" >"$1" 2>&1 || log "wrk exited with $? for $1"
}

server_of() { echo "${1%-*}"; }
family_of() { case $1 in hyper|*-2026) echo stateless ;; *) echo session ;; esac; }

for t in ${TARGETS//,/ }; do
  s=$(server_of "$t")
  [[ -n ${PID[$s]:-} ]] || start_server "$s"
done

for rep in $(seq 1 "$RUNS"); do
  for t in ${TARGETS//,/ }; do
    s=$(server_of "$t"); f=$(family_of "$t"); url="http://127.0.0.1:${PORT[$s]}/mcp"
    d="$RAW/$t-$rep-sat"
    log "run $rep/$RUNS $t: saturation (${DURATION}s, $CLIENTS connections)"
    c0=$(cpu_ticks "${PID[$s]}")
    load_run "$d" "$url" "$f" "$SAT_RATE" 1
    c1=$(cpu_ticks "${PID[$s]}")
    rss=$(rss_bytes "${PID[$s]}")
    echo "{\"target\":\"$t\",\"rep\":$rep,\"kind\":\"saturation\",\"report\":\"$d/report.json\",\"cpuTicks\":$((c1 - c0)),\"rssBytes\":$rss}" >>"$RESULTS"
    if [[ -n $WRK ]]; then
      log "run $rep/$RUNS $t: wrk"
      wrk_run "$RAW/$t-$rep-wrk.txt" "$url" "$f"
      echo "{\"target\":\"$t\",\"rep\":$rep,\"kind\":\"wrk\",\"output\":\"$RAW/$t-$rep-wrk.txt\"}" >>"$RESULTS"
    fi
  done
done

# One open-loop latency run per target, at a fixed fraction of its own median saturated rate.
for t in ${TARGETS//,/ }; do
  s=$(server_of "$t"); f=$(family_of "$t"); url="http://127.0.0.1:${PORT[$s]}/mcp"
  rate=$(python3 "$HERE/compare_report.py" latency-rate --measurements "$RESULTS" --target "$t" \
    --fraction "$LAT_FRACTION" --clients "$CLIENTS")
  d="$RAW/$t-latency"
  log "$t: open-loop latency at $rate/s per client"
  load_run "$d" "$url" "$f" "$rate" 64
  echo "{\"target\":\"$t\",\"rep\":1,\"kind\":\"latency\",\"report\":\"$d/report.json\",\"ratePerClient\":$rate}" >>"$RESULTS"
done

# ------------------------------------------------------------------ the table
mkdir -p "$OUT_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
SMOKE_ARG=()
[[ $SMOKE == 1 ]] && SMOKE_ARG=(--require-clean)
python3 "$HERE/compare_report.py" table --measurements "$RESULTS" --out "$OUT_DIR/$STAMP" \
  --runs "$RUNS" --duration "$DURATION" --clients "$CLIENTS" --size "$SIZE" \
  --server-cpu "$SERVER_CPU" --load-cpu "$LOAD_CPU" --clk-tck "$(getconf CLK_TCK)" \
  --erlmcp-stripped-bytes "$ERLMCP_STRIPPED_BYTES" --erlmcp-dist-bytes "$ERLMCP_DIST_BYTES" --rmcp-version "$RMCP_VERSION" \
  --pymcp-version "$PYMCP_VERSION" --tsmcp-version "$TSMCP_VERSION" \
  --wrk "${WRK:+$("$WRK" -v 2>&1 | head -n1 | awk '{print $2}')}" "${SMOKE_ARG[@]}"
cat "$OUT_DIR/$STAMP.md"
log "wrote $OUT_DIR/$STAMP.json and $OUT_DIR/$STAMP.md"
if [[ $SMOKE == 1 ]]; then rm -rf "$OUT_DIR"; echo "compare smoke: ok"; fi
