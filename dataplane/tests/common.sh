# Shared by the CI test scripts: build erlmcp (or the conformance server), pick free ports, start
# and stop a server.
# Sourced; expects `set -euo pipefail` in the caller.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="$ROOT/scripts/tools.sh"

fail() { echo "FAIL: $*" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

build_erlmcp() {
  if [[ -n "${ERLMCP_BIN:-}" ]]; then
    [[ -x "$ERLMCP_BIN" ]] || fail "ERLMCP_BIN=$ERLMCP_BIN is not executable"
    return
  fi
  (cd "$ROOT" && cargo build -q -p erlmcp-dataplane --bin erlmcp) || fail "cargo build failed"
  ERLMCP_BIN="$ROOT/target/debug/erlmcp"
}

# The conformance server: erlmcp's command line and server plus the suite's fixtures (crate
# erlmcp-conformance). start_erlmcp then runs it.
build_conformance() {
  if [[ -n "${ERLMCP_CONFORMANCE_BIN:-}" ]]; then
    [[ -x "$ERLMCP_CONFORMANCE_BIN" ]] || fail "ERLMCP_CONFORMANCE_BIN=$ERLMCP_CONFORMANCE_BIN is not executable"
    ERLMCP_BIN="$ERLMCP_CONFORMANCE_BIN"
    return
  fi
  (cd "$ROOT" && cargo build -q -p erlmcp-conformance --bin erlmcp-conformance) || fail "cargo build failed"
  ERLMCP_BIN="$ROOT/target/debug/erlmcp-conformance"
}

# start_erlmcp ARGS... : starts in the background, sets SERVER_PID, MCP_PORT, HEALTH_PORT_N, MCP_URL
start_erlmcp() {
  MCP_PORT=$(free_port); HEALTH_PORT_N=$(free_port); METRICS_PORT_N=$(free_port)
  LOG=$(mktemp -t erlmcp.XXXXXX.log)
  ERLMCP_PORT=$MCP_PORT HEALTH_PORT=$HEALTH_PORT_N METRICS_PORT=$METRICS_PORT_N \
    ERLMCP_BIND_ADDRESS=127.0.0.1 ERLMCP_ENV=development ERLMCP_LOG_LEVEL=warn \
    "$ERLMCP_BIN" serve "$@" >"$LOG" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    if "$ERLMCP_BIN" healthcheck --ready --port "$HEALTH_PORT_N" >/dev/null 2>&1; then
      MCP_URL="http://127.0.0.1:$MCP_PORT/mcp"
      return
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$LOG" >&2; fail "erlmcp exited during start-up"; }
    sleep 0.1
  done
  cat "$LOG" >&2
  fail "erlmcp did not become ready"
}

stop_erlmcp() {
  if [[ -n "${SERVER_PID:-}" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
  fi
}
