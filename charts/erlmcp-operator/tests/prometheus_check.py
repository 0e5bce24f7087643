"""Helpers of tests/prometheus.sh (TEST TOOLING): YAML and JSON work, and the queries against
the real Prometheus server. Run with the PyYAML venv from scripts/tools.sh.

  rule-groups KIND_FILTER INTERVAL < objects.yaml > rules.yaml
      the spec.groups of every PrometheusRule in a YAML stream, as a plain rules file;
      INTERVAL (e.g. 1s) replaces each group's interval, "-" keeps it
  coverage RULES TEST
      every alert of RULES has a test in TEST where it fires and one where it never does
  rules-healthy PROM_URL RULES...
      the server loaded every alert of RULES and evaluated each without error
  dashboard PROM_URL CONFIGMAP_YAML namespace=V cluster=V
      every PromQL expression of the dashboard returns a series with a number, except the
      panels listed in NEEDS_CLUSTER, which must still parse
  dashboard-all PROM_URL CONFIGMAP_YAML namespace=V cluster=V
      the same with no exception: for a Prometheus that scrapes the e2e plane (pods and
      operator; e2e/tests/prometheus.rs)
"""

import json
import math
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

import yaml

# Panels whose data no loopback data plane can produce: (title, refId) -> why.
NEEDS_CLUSTER = {
    ("Reconciles per second by result", "A"): "operator metrics: the operator runs only against a "
    "Kubernetes API server, so it is scraped in the e2e plane",
    ("Reconcile errors per second by reason", "A"): "operator metrics (e2e plane); moreover a "
    "healthy operator has no erlmcp_operator_reconcile_errors_total series until a first error",
    ("Reconcile duration (p50, p99) and managed clusters", "A"): "operator metrics (e2e plane)",
    ("Reconcile duration (p50, p99) and managed clusters", "B"): "operator metrics (e2e plane)",
    ("Reconcile duration (p50, p99) and managed clusters", "C"): "operator metrics with the pod "
    "label the Prometheus Operator adds to pod targets (e2e plane)",
}


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def rule_groups(kind, interval):
    groups = []
    for doc in yaml.safe_load_all(sys.stdin):
        if doc and doc.get("kind") == kind:
            groups.extend(doc["spec"]["groups"])
    if not groups:
        fail(f"no {kind} with rule groups in the input")
    if interval != "-":
        for g in groups:
            g["interval"] = interval
    yaml.safe_dump({"groups": groups}, sys.stdout, sort_keys=False)


def alerts_of(rules_file):
    with open(rules_file) as f:
        doc = yaml.safe_load(f)
    return [r["alert"] for g in doc["groups"] for r in g["rules"] if "alert" in r]


def coverage(rules_file, test_file):
    with open(test_file) as f:
        tests = yaml.safe_load(f)["tests"]
    # Quiet means a healthy case: a test where the alert is expected at no time, not just
    # an evaluation before its `for` has passed.
    fires, quiet = set(), set()
    for t in tests:
        cases = t.get("alert_rule_test", [])
        fired = {a["alertname"] for a in cases if a.get("exp_alerts")}
        fires |= fired
        quiet |= {a["alertname"] for a in cases} - fired
    alerts = alerts_of(rules_file)
    missing = [f"{a} (no firing case)" for a in alerts if a not in fires]
    missing += [f"{a} (no quiet case)" for a in alerts if a not in quiet]
    unknown = sorted((fires | quiet) - set(alerts))
    if missing:
        fail(f"{test_file}: untested alerts of {rules_file}: {', '.join(missing)}")
    if unknown:
        fail(f"{test_file}: tests alerts that {rules_file} does not ship: {', '.join(unknown)}")
    print(f"{len(alerts)} alerts, each with a firing and a quiet case: {', '.join(alerts)}")


def api(prom, path, params):
    url = f"{prom}{path}?{urllib.parse.urlencode(params, doseq=True)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:  # 400 carries the parse error as JSON
        return json.load(e)


def rules_healthy(prom, rules_files):
    want = set()
    for f in rules_files:
        want.update(alerts_of(f))
    body = api(prom, "/api/v1/rules", {"type": "alert"})
    seen = {}
    for g in body["data"]["groups"]:
        for r in g["rules"]:
            seen.setdefault(r["name"], []).append(r)
    bad = [n for n in sorted(want) if n not in seen]
    for name, rs in seen.items():
        for r in rs:
            if r.get("health") != "ok":
                bad.append(f"{name}: health {r.get('health')} {r.get('lastError', '')}")
    if bad:
        fail(f"rules not loaded or not evaluated cleanly: {'; '.join(bad)}")
    print(f"server evaluated {sum(len(v) for v in seen.values())} alert rules, all healthy")
    return True


def substitute(expr, values):
    # Grafana variables: $var, ${var}, ${var:format}, [[var]].
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name not in values:
            fail(f"no test value for Grafana variable {name!r} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", repl, expr)


def dashboard(prom, configmap_file, assignments, require_all=False):
    with open(configmap_file) as f:
        cms = [d for d in yaml.safe_load_all(f) if d and d.get("kind") == "ConfigMap"]
    if len(cms) != 1:
        fail(f"{configmap_file}: want one dashboard ConfigMap, got {len(cms)}")
    (name, text), = cms[0]["data"].items()
    board = json.loads(text)
    values = dict(a.split("=", 1) for a in assignments)
    # Grafana's own interval variables: the scrape interval here is 1s.
    values.update({"__rate_interval": "1m", "__interval": "1s", "__range": "5m",
                   "datasource": "prometheus"})
    passed, failures = 0, []

    # Template variables: label_values(selector, label) must offer the test's value.
    for v in board.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\)\s*", q)
        if not m:
            failures.append(f"variable {v['name']}: cannot read query {q!r}")
            continue
        sel, label = substitute(m.group(1), {**values, v["name"]: ".*"}), m.group(2)
        got = api(prom, f"/api/v1/label/{label}/values", {"match[]": sel}).get("data") or []
        if values.get(v["name"]) in got:
            passed += 1
            print(f"ok: variable {v['name']}: {q} offers {got}")
        else:
            failures.append(f"variable {v['name']}: {q} offers {got}, not {values.get(v['name'])!r}")

    panels = []
    for p in board["panels"]:
        panels.append(p)
        panels.extend(p.get("panels", []))  # collapsed rows hold their panels
    listed = set()
    for p in panels:
        for t in p.get("targets", []):
            key = (p["title"], t.get("refId"))
            expr = substitute(t["expr"], values)
            body = api(prom, "/api/v1/query", {"query": expr})
            if body.get("status") != "success":
                failures.append(f"panel {key[0]!r} {key[1]}: {body.get('errorType')}: "
                                f"{body.get('error')} in {expr}")
                continue
            if key in NEEDS_CLUSTER:
                listed.add(key)
            if key in NEEDS_CLUSTER and not require_all:
                passed += 1
                print(f"ok (parses; data needs the e2e plane: {NEEDS_CLUSTER[key]}): "
                      f"panel {key[0]!r} {key[1]}")
                continue
            result = body["data"]["result"]
            numbers = [float(r["value"][1]) for r in result]
            if not any(math.isfinite(x) for x in numbers):
                failures.append(f"panel {key[0]!r} {key[1]}: no series with a number "
                                f"({len(result)} series) for {expr}")
                continue
            passed += 1
            print(f"ok: panel {key[0]!r} {key[1]}: {len(result)} series, values {numbers}")
    stale = sorted(set(NEEDS_CLUSTER) - listed)
    if stale:
        failures.append(f"NEEDS_CLUSTER names panels the dashboard does not have: {stale}")
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    print(f"dashboard {name}: {passed} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "rule-groups":
        rule_groups(*args)
    elif cmd == "coverage":
        coverage(*args)
    elif cmd == "rules-healthy":
        rules_healthy(args[0], args[1:])
    elif cmd == "dashboard":
        dashboard(args[0], args[1], args[2:])
    elif cmd == "dashboard-all":
        dashboard(args[0], args[1], args[2:], require_all=True)
    else:
        fail(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
