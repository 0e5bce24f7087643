#!/usr/bin/env bash
# The product binary carries no conformance fixture: build the release `erlmcp` (as the image
# does, minus the image's LTO settings) and fail if a fixture's name occurs in its bytes. The
# fixtures live in the erlmcp-conformance crate; a release build is slow, so this is a script
# step of scripts/test.sh rather than a unit test. ERLMCP_RELEASE_BIN skips the build.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

BIN="${ERLMCP_RELEASE_BIN:-}"
if [[ -z "$BIN" ]]; then
  # Release profile without its LTO pass: whether a fixture is linked in is decided by the crate
  # graph, not by LTO, and skipping it saves CI minutes on two cores.
  (cd "$ROOT" && CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo build -q --release -p erlmcp-dataplane --bin erlmcp) || fail "cargo build --release failed"
  BIN="$ROOT/target/release/erlmcp"
fi
[[ -x "$BIN" ]] || fail "$BIN is not executable"
# The search must be able to fail: it finds the fixtures in the conformance server's binary.
build_conformance
grep -q -a -F test_simple_text "$ERLMCP_BIN" || fail "the search does not find test_simple_text in $ERLMCP_BIN"
for name in test_simple_text test_tool_with_logging test_input_required_result_; do
  if grep -q -a -F "$name" "$BIN"; then
    fail "$BIN contains the conformance fixture name $name"
  fi
done
# And the binary is the server, not an empty file that trivially contains nothing.
grep -q -a -F "erlmcp://node/status" "$BIN" || fail "$BIN does not look like erlmcp (no erlmcp://node/status)"
echo "PASS: $BIN contains no conformance fixture"
