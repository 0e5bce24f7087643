#!/usr/bin/env bash
# The official MCP TypeScript SDK (npm @modelcontextprotocol/sdk, pinned in scripts/tools.sh,
# run with Node 22) as a client of erlmcp making task-augmented tool calls (MCP Tasks, the
# 2025-11-25 experimental form the SDK speaks; the pinned Python SDK has no tasks client).
# The task tools are command backends declared in the configuration. Fails (never skips) if
# Node or the SDK cannot be installed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

NODE=$(bash "$TOOLS" node22 | tail -n1) || fail "Node 22 unavailable (scripts/tools.sh node22)"
MODULES=$(bash "$TOOLS" tsmcp | tail -n1) || fail "TypeScript MCP SDK unavailable (scripts/tools.sh tsmcp)"
[[ -x "$NODE" && -d "$MODULES/@modelcontextprotocol/sdk" ]] || fail "tools missing: $NODE $MODULES"

CONFIG=$(mktemp -t erlmcp-ts-tasks.XXXXXX.yaml)
cleanup() { stop_erlmcp; rm -f "$CONFIG"; }
trap cleanup EXIT
cat >"$CONFIG" <<'YAML'
mcp:
  tools:
    - name: slow_ok
      description: Finishes after a second
      taskSupport: optional
      backend: {command: {command: [sh, -c, "cat >/dev/null; sleep 1; echo finished"], timeoutSeconds: 30}}
    - name: slow_long
      description: Runs until cancelled
      taskSupport: required
      backend: {command: {command: [sh, -c, "cat >/dev/null; sleep 120"], timeoutSeconds: 300}}
YAML

build_erlmcp
start_erlmcp --config "$CONFIG"
timeout 120 "$NODE" "$ROOT/dataplane/tests/sdk/ts_tasks_client.mjs" "$MODULES" "$MCP_URL"
