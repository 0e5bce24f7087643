#!/usr/bin/env bash
# Every test of the project, in the order of the test ladder (DESIGN.md, "Tests"): format and
# lints, pure and mocked unit tests, then the suites that need real peers. A missing tool or
# server fails the run; nothing is skipped. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

# A run builds once from clean: incremental state would only cost disk (many GiB here).
export CARGO_INCREMENTAL=0

# Both local Kubernetes control planes (E2E_K8S=current and 1.20) and cert-manager's controller
# (the cert-manager case) build in the background from the start, beside the steps that need no
# server; the end-to-end steps wait for them. A warm cache returns at once. Without KUBECONFIG
# every end-to-end case runs on both planes, current first (the cert-manager case: current only).
PLANES=(current 1.20)
BUILDS=(current 1.20 cert-manager etcd-tools)
BUILD_LOG=target/k8s-build
BUILD_PIDS=()
mkdir -p "$BUILD_LOG"
# The Jaeger v2 collector of the tracing tests (dataplane/tests/traces.rs, operator/tests/traces.rs)
# builds from its Go module beside everything; those tests wait for it (the script takes a lock).
setsid bash e2e/scripts/jaeger-build.sh >"$BUILD_LOG/jaeger.log" 2>&1 &
JAEGER_PID=$!
trap 'kill -- "-$JAEGER_PID" 2>/dev/null || true' EXIT
if [ -z "${KUBECONFIG:-}" ]; then
  # setsid: each build is its own process group, so an early exit stops its `go build`s too.
  setsid bash e2e/scripts/k8s-build-current.sh >"$BUILD_LOG/current.log" 2>&1 &
  BUILD_PIDS+=($!)
  setsid bash e2e/scripts/k8s-build.sh >"$BUILD_LOG/1.20.log" 2>&1 &
  BUILD_PIDS+=($!)
  setsid bash e2e/scripts/cert-manager-build.sh >"$BUILD_LOG/cert-manager.log" 2>&1 &
  BUILD_PIDS+=($!)
  # etcdctl/etcdutl of the disaster-recovery drills (e2e/tests/disaster_recovery.rs), own cache.
  setsid bash e2e/scripts/etcd-tools-build.sh >"$BUILD_LOG/etcd-tools.log" 2>&1 &
  BUILD_PIDS+=($!)
  trap 'for p in "$JAEGER_PID" "${BUILD_PIDS[@]}"; do kill -- "-$p" 2>/dev/null || true; done' EXIT
fi
wait_planes() {
  local i rc=0
  for i in "${!BUILD_PIDS[@]}"; do
    if ! wait "${BUILD_PIDS[$i]}"; then
      rc=1
      printf '%s failed to build; tail of %s:\n' "${BUILDS[$i]}" "$BUILD_LOG/${BUILDS[$i]}.log" >&2
      tail -n 30 "$BUILD_LOG/${BUILDS[$i]}.log" >&2
    fi
  done
  BUILD_PIDS=()
  return "$rc"
}

step "format"
cargo fmt --all -- --check

step "clippy (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "unit and mocked-API tests"
cargo test --workspace --exclude erlmcp-e2e

step "fuzz harnesses on stable: every target over its seeds, saved inputs and proptest inputs"
CARGO_TARGET_DIR=target cargo test --manifest-path fuzz/Cargo.toml

step "benchmark report arithmetic (bench/compare.sh and bench/scale.sh: medians, ratios, tables)"
python3 -m unittest bench/test_compare_report.py bench/test_scale_report.py

step "load generator against a local erlmcp: every transport, both families (report structure, zero errors)"
bash loadgen/tests/smoke.sh

step "pinned test tools (Node 22, MCP conformance suite, MCP SDKs, Helm), cached under ~/.cache"
bash scripts/tools.sh all >&2

step "alert rules (promtool check/test) and Grafana dashboard queries on a real Prometheus scraping real erlmcp nodes"
bash charts/erlmcp-operator/tests/prometheus.sh

step "the release erlmcp carries no conformance fixture"
bash dataplane/tests/release_has_no_fixtures.sh

step "hostile-input suite against that release erlmcp: each attack of issue 12, an honest client beside it"
bash dataplane/tests/hostile_release.sh

step "official MCP conformance suite, both requirement sets"
bash dataplane/tests/conformance.sh

step "official MCP Python SDK as a client"
bash dataplane/tests/sdk_client.sh

step "official MCP TypeScript SDK as a client: task-augmented tool calls (MCP Tasks)"
bash dataplane/tests/sdk_ts_tasks.sh

if [ -n "${KUBECONFIG:-}" ]; then
  step "end-to-end suites on KUBECONFIG=$KUBECONFIG, pods run by the pod runner unless it has nodes"
  # The etcd drill stops and restores the control plane's etcd: only the local planes below
  # own theirs, so it never runs against someone else's cluster (it runs on both local planes).
  echo "not run here: etcd_snapshot_restored_the_cluster_returns_without_a_roll (local planes only)"
  cargo test -p erlmcp-e2e -- --skip etcd_snapshot_restored_the_cluster_returns_without_a_roll
  step "Helm chart: install on the local control plane, a sample becomes Ready, uninstall leaves nothing"
  bash charts/erlmcp-operator/tests/install.sh
  exit 0
fi

# The e2e test targets for a plane: all of e2e/tests/*.rs, except on 1.20 the cert-manager case
# (cert-manager v1.21 supports Kubernetes 1.32+, versions.env; on an older server the case
# fails, it never skips). Listed, not filtered by name, so a new suite runs on both by default.
e2e_suites() {
  local f name
  printf -- '--lib --bins '
  for f in e2e/tests/*.rs; do
    name=$(basename "$f" .rs)
    [[ $1 == 1.20 && $name == cert_manager ]] && continue
    printf -- '--test %s ' "$name"
  done
}

step "local control planes (${PLANES[*]}) and cert-manager: built from Go modules / Debian's source, cached under ~/.cache/erlmcp-k8s"
wait_planes
for plane in "${PLANES[@]}"; do
  step "end-to-end suites on the local Kubernetes $plane control plane, pods run by the pod runner"
  E2E_K8S=$plane cargo test -p erlmcp-e2e $(e2e_suites "$plane")

  step "Helm chart on Kubernetes $plane: install, a sample becomes Ready, uninstall leaves nothing"
  E2E_K8S=$plane bash charts/erlmcp-operator/tests/install.sh
done
