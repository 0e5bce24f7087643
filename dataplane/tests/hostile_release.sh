#!/usr/bin/env bash
# The hostile-input suite (dataplane/tests/hostile_release.rs) against a release `erlmcp`: build
# it (the release profile without its LTO pass, exactly as release_has_no_fixtures.sh does, so
# the two steps share one build), then run the suite on it. ERLMCP_RELEASE_BIN skips the build;
# the suite fails, never skips, when the binary is missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [[ -z "${ERLMCP_RELEASE_BIN:-}" ]]; then
  (cd "$ROOT" && CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo build -q --release -p erlmcp-dataplane --bin erlmcp) || fail "cargo build --release failed"
  export ERLMCP_RELEASE_BIN="$ROOT/target/release/erlmcp"
fi
[[ -x "$ERLMCP_RELEASE_BIN" ]] || fail "$ERLMCP_RELEASE_BIN is not executable"
# The suite itself is an ordinary test target (a debug build of the test code); `test = false`
# in dataplane/Cargo.toml keeps it out of a plain `cargo test`, which has no release binary, and
# so out of `clippy --all-targets` too: lint it here.
(cd "$ROOT" && cargo clippy -q -p erlmcp-dataplane --test hostile_release -- -D warnings) || fail "clippy on the hostile release suite"
(cd "$ROOT" && cargo test -p erlmcp-dataplane --test hostile_release) || fail "hostile release suite failed"
echo "PASS: hostile release suite against $ERLMCP_RELEASE_BIN"
