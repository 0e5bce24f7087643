#!/usr/bin/env bash
# The official MCP Python SDK (PyPI mcp) as a real client of erlmcp over Streamable HTTP and
# stdio, in both eras. Fails (never skips) if the SDK cannot be installed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PY=$(bash "$TOOLS" pymcp | tail -n1) || fail "Python MCP SDK unavailable (scripts/tools.sh pymcp)"
[[ -x "$PY" ]] || fail "no python at $PY"

build_erlmcp
trap stop_erlmcp EXIT
start_erlmcp --config "$ROOT/config/conformance.yaml"
timeout 180 "$PY" "$ROOT/dataplane/tests/sdk/python_client.py" "$MCP_URL" "$ERLMCP_BIN" "$ROOT/config/conformance.yaml"
