#!/usr/bin/env bash
# Every test of the project, in the order of the test ladder (DESIGN.md, "Tests"): format and
# lints, pure and mocked unit tests, then the suites that need real peers. A missing tool or
# server fails the run; nothing is skipped. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "format"
cargo fmt --all -- --check

step "clippy (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "unit and mocked-API tests"
cargo test --workspace --exclude erlmcp-e2e

step "load generator against a local erlmcp: every transport, both families (report structure, zero errors)"
bash loadgen/tests/smoke.sh

step "pinned test tools (Node 22, MCP conformance suite, MCP SDKs, Helm), cached under ~/.cache"
bash scripts/tools.sh all >&2

step "alert rules (promtool check/test) and Grafana dashboard queries on a real Prometheus scraping real erlmcp nodes"
bash charts/erlmcp-operator/tests/prometheus.sh

step "the release erlmcp carries no conformance fixture"
bash dataplane/tests/release_has_no_fixtures.sh

step "official MCP conformance suite, both requirement sets"
bash dataplane/tests/conformance.sh

step "official MCP Python SDK as a client"
bash dataplane/tests/sdk_client.sh

step "end-to-end suites: a real API server (KUBECONFIG, else the local control plane), pods run by the pod runner"
cargo test -p erlmcp-e2e

step "Helm chart: install on a real control plane, a sample becomes Ready, uninstall leaves nothing"
bash charts/erlmcp-operator/tests/install.sh
