#!/usr/bin/env bash
# prometheus.sh — the shipped alert rules and Grafana dashboard against real Prometheus 2.42
# (TEST TOOLING, not product; promtool and the server from scripts/tools.sh).
#
#   1. rules: the chart's PrometheusRule (`helm template` with ci/monitoring-values.yaml) and
#      the one the operator builds per cluster (`erlmcp-operator render`) are turned into plain
#      rules files; `promtool check rules` on both; every shipped alert must have a firing and a
#      quiet case in tests/rules/*.test.yaml; `promtool test rules` runs those cases;
#   2. dashboard: three `erlmcp serve` nodes on their own loopback addresses (static peers, one
#      cookie) get some tools/call traffic; a Prometheus server on 127.0.0.1 scrapes them every
#      second (and loads both rule files: each rule must evaluate without error on real data);
#      every PromQL expression of the dashboard ConfigMap the chart renders is queried and must
#      return a series with a number, except the operator panels, which need the e2e plane
#      (listed with their reasons in prometheus_check.py) and must still parse.
# Fails (never skips) when a tool is missing. Every wait is bounded. Traffic stays on loopback.
# Usage: charts/erlmcp-operator/tests/prometheus.sh      (about 30 s on a warm cache)
set -euo pipefail
cd "$(dirname "$0")/../../.."
ROOT=$PWD
TESTS=$ROOT/charts/erlmcp-operator/tests
log() { printf '[prometheus] %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

WORK=$(mktemp -d /tmp/erlmcp-prometheus.XXXXXX)
PIDS=()
PASSED=0
FAILED=0

cleanup() {
  local rc=$? pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  if [[ $rc -ne 0 ]]; then
    for f in "$WORK"/*.log; do [[ -f $f ]] && { log "$(basename "$f") (tail):"; tail -n 15 "$f" >&2; }; done
    log "work dir kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  echo "prometheus: $PASSED passed, $FAILED failed"
  exit "$rc"
}
trap cleanup EXIT

check() { # description, command...
  local what=$1; shift
  if "$@"; then PASSED=$((PASSED + 1)); log "ok: $what"; else FAILED=$((FAILED + 1)); die "$what"; fi
}

HELM=$(bash scripts/tools.sh helm | tail -n1)
PROMTOOL=$(bash scripts/tools.sh promtool | tail -n1)
PROMETHEUS=$(bash scripts/tools.sh prometheus | tail -n1)
PY=$(bash scripts/tools.sh pyyaml | tail -n1)
[[ -x $HELM && -x $PROMTOOL && -x $PROMETHEUS && -x $PY ]] || die "helm, promtool, prometheus or pyyaml missing"
helper() { "$PY" "$TESTS/prometheus_check.py" "$@"; }

log "building erlmcp and erlmcp-operator (debug)"
# One package per build, as the other test scripts do, so their builds are reused.
cargo build -q -p erlmcp-dataplane --bin erlmcp
cargo build -q -p erlmcp-operator --bin erlmcp-operator
ERLMCP=$ROOT/target/debug/erlmcp
OPERATOR=$ROOT/target/debug/erlmcp-operator

# ------------------------------------------------------------------ 1. alert rules
# What the chart ships with its CI monitoring values (release erlmcp-operator: the operator's
# job is erlmcp-operator-metrics; every alert carries team: mcp).
"$HELM" template erlmcp-operator charts/erlmcp-operator -n erlmcp-system \
  -f charts/erlmcp-operator/ci/monitoring-values.yaml >"$WORK/chart.yaml"
# What the operator builds for one cluster "demo" in namespace "shop".
cat >"$WORK/cluster.yaml" <<'EOF'
apiVersion: erlmcp.io/v1alpha1
kind: ErlmcpCluster
metadata: {name: demo, namespace: shop}
spec:
  monitoring: {prometheusRule: {}}
EOF
"$OPERATOR" render -f "$WORK/cluster.yaml" >"$WORK/operator.yaml"

mkdir -p "$WORK/rules"
helper rule-groups PrometheusRule - <"$WORK/chart.yaml" >"$WORK/rules/chart-rules.yaml"
helper rule-groups PrometheusRule - <"$WORK/operator.yaml" >"$WORK/rules/operator-rules.yaml"
for set in chart operator; do
  check "promtool check rules: $set" "$PROMTOOL" check rules "$WORK/rules/$set-rules.yaml"
  cp "$TESTS/rules/$set.test.yaml" "$WORK/rules/"
  check "every $set alert has a firing and a quiet unit test" \
    helper coverage "$WORK/rules/$set-rules.yaml" "$WORK/rules/$set.test.yaml"
  # promtool resolves rule_files next to the test file.
  check "promtool test rules: $set" bash -c 'cd "$1" && "$2" test rules "$3"' _ \
    "$WORK/rules" "$PROMTOOL" "$set.test.yaml"
done

# ------------------------------------------------------------------ 2. dashboard on real scrapes
# Three addresses of one random 127.a.b.0/24 and four ports free on all of them.
read -r NET MCP_PORT HEALTH_PORT METRICS_PORT PEER_PORT < <("$PY" - <<'EOF'
import random, socket
for _ in range(50):
    net = f"127.{random.randint(10, 209)}.{random.randint(1, 250)}"
    ports = random.sample(range(20000, 60000), 4)
    try:
        socks = []
        for i in (1, 2, 3):
            for p in ports:
                s = socket.socket(); s.bind((f"{net}.{i}", p)); socks.append(s)
        for s in socks: s.close()
        print(net, *ports); break
    except OSError:
        for s in socks: s.close()
else:
    raise SystemExit("no free ports")
EOF
)
NS=erlmcp-test
CLUSTER=demo
PEERS="$NET.1:$PEER_PORT,$NET.2:$PEER_PORT,$NET.3:$PEER_PORT"
for i in 1 2 3; do
  env -i PATH="$PATH" ERLMCP_BIND_ADDRESS="$NET.$i" ERLMCP_NODE_NAME="erlmcp@$CLUSTER-$((i - 1))" \
    ERLMCP_PORT="$MCP_PORT" HEALTH_PORT="$HEALTH_PORT" METRICS_PORT="$METRICS_PORT" \
    ERLMCP_PEER_PORT="$PEER_PORT" ERLMCP_PEERS="$PEERS" ERLANG_COOKIE=prometheus-test-cookie-0123456789abcdef \
    ERLMCP_ENV=development ERLMCP_LOG_LEVEL=info ERLMCP_DRAIN_DELAY_SECONDS=1 ERLMCP_DRAIN_SECONDS=5 \
    "$ERLMCP" serve >"$WORK/node$i.log" 2>&1 &
  PIDS+=($!)
done
wait_ready() { # url, what, tries (of 0.2 s)
  local n
  for ((n = 0; n < $3; n++)); do
    curl -sf -o /dev/null --max-time 2 "$1" && return 0
    sleep 0.2
  done
  log "$2 not ready: $1"; return 1
}
for i in 1 2 3; do check "node $i ready" wait_ready "http://$NET.$i:$HEALTH_PORT/ready" "node $i" 150; done

# Prometheus: its own loopback port, a private data dir, both rule files with 1s groups.
PROM_PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PROM=http://127.0.0.1:$PROM_PORT
helper rule-groups PrometheusRule 1s <"$WORK/chart.yaml" >"$WORK/server-chart-rules.yaml"
helper rule-groups PrometheusRule 1s <"$WORK/operator.yaml" >"$WORK/server-operator-rules.yaml"
{
  echo "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}"
  echo "rule_files: [server-chart-rules.yaml, server-operator-rules.yaml]"
  echo "scrape_configs:"
  echo "  - job_name: $CLUSTER-headless"
  echo "    static_configs:"
  for i in 1 2 3; do
    echo "      - targets: ['$NET.$i:$METRICS_PORT']"
    echo "        labels: {namespace: $NS, erlmcp_cluster: $CLUSTER, pod: $CLUSTER-$((i - 1))}"
  done
} >"$WORK/prometheus.yml"
check "promtool check config" "$PROMTOOL" check config "$WORK/prometheus.yml"
"$PROMETHEUS" --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="127.0.0.1:$PROM_PORT" \
  --web.console.templates="$WORK/none" --web.console.libraries="$WORK/none" >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
check "prometheus ready" wait_ready "$PROM/-/ready" prometheus 150

instant() { # promql -> the first value, or empty
  curl -sf --max-time 5 -G "$PROM/api/v1/query" --data-urlencode "query=$1" |
    "$PY" -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")'
}
wait_value() { # promql, want (exact), what
  local n v=""
  for ((n = 0; n < 60; n++)); do
    v=$(instant "$1") || v=""
    [[ $v == "$2" ]] && return 0
    sleep 0.5
  done
  log "$3: $1 = '$v', want $2"; return 1
}
check "all three targets scraped" wait_value "sum(up{job=\"$CLUSTER-headless\"})" 3 "targets"
check "the nodes see each other" wait_value "min(erlmcp_cluster_nodes)" 3 "membership"

# Traffic: tools/call echo (stateless revision) on every node, and one unknown tool (an error).
call() { # node, id, tool
  curl -sf --max-time 5 "http://$NET.$1:$MCP_PORT/mcp" \
    -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
    -H 'mcp-protocol-version: 2026-07-28' -H 'mcp-method: tools/call' -H "mcp-name: $3" \
    -d '{"jsonrpc":"2.0","id":'"$2"',"method":"tools/call","params":{"name":"'"$3"'","arguments":{"message":"hi"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"prometheus-test","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}'
}
traffic() {
  local i k out
  for i in 1 2 3; do
    for k in 1 2 3 4 5; do
      out=$(call "$i" "$k" echo) || { log "echo on node $i failed"; return 1; }
      [[ $out == *'"hi"'* ]] || { log "echo on node $i answered: $out"; return 1; }
    done
  done
  call 1 99 no-such-tool >/dev/null || true
}
check "15 echo calls answered" traffic
check "prometheus scraped the traffic" wait_value \
  "sum(erlmcp_requests_total{method=\"tools/call\"}) >= bool 16" 1 "scraped requests"
sleep 3 # a few more scrapes after the last change, so every rate has two points past it

check "every alert rule loaded and evaluated cleanly on real series" bash -c '
  for n in $(seq 1 20); do "$1" "$2" rules-healthy "$3" "$4" "$5" 2>/dev/null && exit 0; sleep 0.5; done
  "$1" "$2" rules-healthy "$3" "$4" "$5"' _ "$PY" "$TESTS/prometheus_check.py" "$PROM" \
  "$WORK/server-chart-rules.yaml" "$WORK/server-operator-rules.yaml"

"$HELM" template erlmcp-operator charts/erlmcp-operator -n erlmcp-system \
  -f charts/erlmcp-operator/ci/monitoring-values.yaml --show-only templates/dashboard.yaml >"$WORK/dashboard.yaml"
check "every dashboard expression answers on real scrapes" \
  helper dashboard "$PROM" "$WORK/dashboard.yaml" namespace=$NS cluster=$CLUSTER
