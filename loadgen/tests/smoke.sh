#!/usr/bin/env bash
# The load generator against a local erlmcp on loopback, for a few seconds per run at a low
# rate: every transport (Streamable HTTP, WebSocket, TCP) in both protocol families, a GET/SSE
# stream, round-robin over two endpoints, the slow client, and every scenario time-scaled.
# Asserts each report's structure and zero errors (check_report.py), never a speed.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../../dataplane/tests/common.sh"

build_erlmcp
(cd "$ROOT" && cargo build -q -p erlmcp-load --bin erlmcp-load) || fail "cargo build erlmcp-load failed"
LOAD="$ROOT/target/debug/erlmcp-load"
OUT=$(mktemp -d -t erlmcp-load-smoke.XXXXXX)

TCP_PORT_N=$(free_port)
export ERLMCP_TCP_PORT=$TCP_PORT_N
start_erlmcp
trap 'stop_erlmcp' EXIT
METRICS="http://127.0.0.1:$METRICS_PORT_N/metrics"
HTTP="http://127.0.0.1:$MCP_PORT/mcp"
WS="ws://127.0.0.1:$MCP_PORT/ws"
TCP="tcp://127.0.0.1:$TCP_PORT_N"

# load NAME ARGS... : one bounded run into $OUT/NAME (the tool's own time limit, and ours).
load() {
  local name=$1; shift
  timeout 120 "$LOAD" --quiet --metrics-url "$METRICS" --scrape-interval 500ms --drain 5s \
    --max-requests 5000 --out "$OUT/$name" "$@" || fail "erlmcp-load $name exited with $?"
}

for family in stateless session; do
  for t in http websocket tcp; do
    case $t in http) url=$HTTP ;; websocket) url=$WS ;; tcp) url=$TCP ;; esac
    load "$t-$family" --scenario baseline --duration 3s --clients 3 --rate 10 --size 256 \
      --url "$url" --family "$family"
    python3 "$HERE/check_report.py" "$OUT/$t-$family" family=$family transports=$t clients=3 scenario=baseline
  done
done

load sse --duration 2s --clients 2 --rate 5 --url "$HTTP" --family session --sse
python3 "$HERE/check_report.py" "$OUT/sse" family=session clients=2 sse=1

load round-robin --duration 2s --clients 4 --rate 5 --url "$HTTP" --url "$WS"
python3 "$HERE/check_report.py" "$OUT/round-robin" transports=http,websocket clients=4

# The flood's shape at 1/50 of its length: up to 20 clients, hold 2 s, down to 1.
load flood --scenario connection-flood --time-scale 0.02 --duration 2s --clients 20 --url "$HTTP"
python3 "$HERE/check_report.py" "$OUT/flood" scenario=connection-flood peak=20 floor=1 busy=peak

# The slow reader (250 ms before each read) on a stream transport.
load slow --profile slow-client --duration 3s --url "$TCP"
python3 "$HERE/check_report.py" "$OUT/slow" clients=5

# The other two scenarios, shrunk: their phases and rates, not their size.
load bombing --scenario message-bombing --time-scale 0.01 --duration 2s --clients 2 --rate 50 --url "$WS"
python3 "$HERE/check_report.py" "$OUT/bombing" scenario=message-bombing clients=2 busy=bombing
load soak --scenario soak --duration 3s --clients 2 --rate 10 --url "$HTTP" --family session
python3 "$HERE/check_report.py" "$OUT/soak" scenario=soak family=session clients=2

rm -rf "$OUT"
echo "load generator smoke: ok"
