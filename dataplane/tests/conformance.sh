#!/usr/bin/env bash
# The official MCP conformance suite (@modelcontextprotocol/conformance@0.2.0-alpha.12, run with
# Node 22) against `erlmcp-conformance serve --config config/conformance.yaml` (the erlmcp server
# with the suite's fixtures registered; crate erlmcp-conformance), for both
# requirement sets (2025-11-25 and 2026-07-28), with an empty expected-failures list. Fails if a
# tool is missing (never skips), any scored scenario fails, or any Tasks scenario (run but not
# scored yet: the io.modelcontextprotocol/tasks extension) fails or did not run at all.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

NODE=$(bash "$TOOLS" node22 | tail -n1) || fail "Node 22 unavailable (scripts/tools.sh node22)"
SUITE=$(bash "$TOOLS" conformance | tail -n1) || fail "conformance suite unavailable (scripts/tools.sh conformance)"
[[ -x "$NODE" && -f "$SUITE" ]] || fail "conformance tools missing: $NODE $SUITE"

build_conformance
trap stop_erlmcp EXIT
start_erlmcp --config "$ROOT/config/conformance.yaml"

OUT=$(mktemp -d -t erlmcp-conformance.XXXXXX)
status=0
for req in 2025-11-25 2026-07-28; do
  echo "== conformance server --requirements $req against $MCP_URL"
  if "$NODE" "$SUITE" server --url "$MCP_URL" --requirements "$req" -o "$OUT/$req" >"$OUT/$req.log" 2>&1; then
    grep -E '^Total:' "$OUT/$req.log" || true
    echo "PASS $req"
  else
    grep -E '✗|^Total:|Failed Checks' "$OUT/$req.log" || tail -n 40 "$OUT/$req.log"
    echo "FAIL $req (full log: $OUT/$req.log)"
    status=1
  fi
  # Not-scored scenarios (extensions, pending) are reported; among them the Tasks ones must
  # all pass, and there must be some (a suite that stopped running them would hide a regression).
  sed -n '/Not scored/,$p' "$OUT/$req.log"
  tasks_run=$(sed -n '/Not scored/,$p' "$OUT/$req.log" | grep -cE '^[[:space:]]+[✓✗] tasks-' || true)
  tasks_failed=$(sed -n '/Not scored/,$p' "$OUT/$req.log" | grep -E '^[[:space:]]+✗ tasks-' || true)
  # The Tasks scenarios are the 2026-07-28 extension's; the 2025-11-25 set runs none today.
  if [[ "$req" == 2026-07-28 && "$tasks_run" -eq 0 ]]; then
    echo "FAIL $req: no Tasks scenario ran"
    status=1
  elif [[ -n "$tasks_failed" ]]; then
    echo "FAIL $req: Tasks scenarios failing:"
    echo "$tasks_failed"
    status=1
  elif [[ "$tasks_run" -eq 0 ]]; then
    echo "PASS $req: this set runs no Tasks scenario"
  else
    echo "PASS $req: all $tasks_run Tasks scenarios pass"
  fi
done
exit $status
