#!/usr/bin/env python3
"""The arithmetic and the table of bench/compare.sh (standard library only).

Subcommands:
  wrk-script    print the wrk Lua script that POSTs the same `tools/call echo` as erlmcp-load
  latency-rate  per-client rate for the open-loop latency run: a fraction of the target's
                median saturated throughput, spread over the clients
  table         read the measurements (JSON lines written by compare.sh, each pointing at an
                erlmcp-load report or a wrk output) and write OUT.json and OUT.md

The pure functions (median, steady-phase figures, wrk parsing, rows, markdown) are unit-tested
in test_compare_report.py.
"""

import argparse
import json
import re
import statistics
import sys

STATELESS_VERSION = "2026-07-28"
SESSION_VERSION = "2025-11-25"
# Sends the schedule could not make because the server was saturated: the point of offering
# more than it answers, so not a failure of the target.
EXPECTED_AT_SATURATION = {"not_sent"}

LABELS = {
    "hyper": 'hyper "hello" (ceiling)',
    "erlmcp-2026": "erlmcp, stateless 2026-07-28",
    "erlmcp-2025": "erlmcp, 2025-11-25 session",
    "rmcp-2026": "rmcp {rmcp}, stateless 2026-07-28",
    "rmcp-2025": "rmcp {rmcp}, 2025-11-25 session",
    "python-2026": "Python SDK {py}, stateless 2026-07-28",
    "python-2025": "Python SDK {py}, 2025-11-25 session",
    "ts-2025": "TypeScript SDK {ts}, 2025-11-25 session",
}


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def family_of(target):
    return "stateless" if target == "hyper" or target.endswith("-2026") else "session"


def rmcp_of(target):
    """The rmcp target a target is compared with: the same protocol family."""
    return "rmcp-2026" if family_of(target) == "stateless" else "rmcp-2025"


def message(size):
    """The echo argument erlmcp-load sends (only its length matters to the servers)."""
    return "x" * size


def call_body(family, size, req_id=1):
    params = {"name": "echo", "arguments": {"message": message(size)}}
    if family == "stateless":
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": STATELESS_VERSION,
            "io.modelcontextprotocol/clientInfo": {"name": "compare-wrk", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {},
        }
    return json.dumps({"jsonrpc": "2.0", "id": req_id, "method": "tools/call", "params": params})


def wrk_script(family, size, session_id=""):
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
    }
    if family == "stateless":
        headers.update({"Mcp-Protocol-Version": STATELESS_VERSION, "Mcp-Method": "tools/call", "Mcp-Name": "echo"})
    else:
        headers.update({"Mcp-Protocol-Version": SESSION_VERSION, "Mcp-Session-Id": session_id})
    lines = ['wrk.method = "POST"', f"wrk.body = {lua_string(call_body(family, size))}"]
    lines += [f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items()]
    return "\n".join(lines) + "\n"


def lua_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def steady_figures(report):
    """Throughput, latency and unexpected errors of an erlmcp-load report's steady phase."""
    phase = next((p for p in report.get("phases", []) if p.get("name") == "steady"), None)
    if phase is None:
        raise ValueError("report has no steady phase")
    errors = {k: v for k, v in report["totals"].get("errorsByKind", {}).items() if k not in EXPECTED_AT_SATURATION}
    lat = phase.get("latency") or {}
    return {
        "ok": phase["ok"],
        # erlmcp-load's own rate: over the whole seconds the phase owns (see loadgen/README.md).
        "throughputPerS": phase["throughputPerS"],
        "p50Ms": lat.get("p50Ms"),
        "p99Ms": lat.get("p99Ms"),
        "errors": sum(errors.values()),
        "errorsByKind": errors,
    }


_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(text):
    """req/s, p50/p99 (ms) and non-2xx count from `wrk --latency` output; None when absent."""
    def latency(pct):
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        return float(m.group(1)) * _WRK_UNITS[m.group(2)] if m else None

    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {
        "requestsPerS": float(rps.group(1)) if rps else None,
        "p50Ms": latency(50),
        "p99Ms": latency(99),
        "errors": (int(bad.group(1)) if bad else 0) + (sum(int(g) for g in errs.groups()) if errs else 0),
    }


def summarize(measurements, load_report, read_text, clk_tck):
    """One row per target from the measurement lines; loaders are passed in (tests use dicts)."""
    rows = {}
    for m in measurements:
        r = rows.setdefault(m["target"], {"target": m["target"], "family": family_of(m["target"]),
                                          "saturation": [], "wrk": [], "latency": None})
        if m["kind"] == "saturation":
            report = load_report(m["report"])
            f = steady_figures(report)
            f["rssBytes"] = m.get("rssBytes")
            # The ticks cover the whole load run, so they are shared by all of its answers.
            answers = report["totals"].get("ok") or 0
            f["cpuUsPerReq"] = m["cpuTicks"] * 1e6 / clk_tck / answers if answers else None
            r["saturation"].append(f)
        elif m["kind"] == "latency":
            f = steady_figures(load_report(m["report"]))
            f["ratePerClient"] = m.get("ratePerClient")
            r["latency"] = f
        elif m["kind"] == "wrk":
            r["wrk"].append(parse_wrk(read_text(m["output"])))
    for r in rows.values():
        sat = r["saturation"]
        r["requestsPerS"] = median([s["throughputPerS"] for s in sat])
        r["cpuUsPerReq"] = median([s["cpuUsPerReq"] for s in sat])
        r["rssBytes"] = median([s["rssBytes"] for s in sat])
        r["errors"] = sum(s["errors"] for s in sat) + (r["latency"]["errors"] if r["latency"] else 0)
        r["wrkRequestsPerS"] = median([w["requestsPerS"] for w in r["wrk"]])
        r["wrkP50Ms"] = median([w["p50Ms"] for w in r["wrk"]])
        r["wrkP99Ms"] = median([w["p99Ms"] for w in r["wrk"]])
        r["wrkErrors"] = sum(w["errors"] for w in r["wrk"])
    ratios(rows, "requestsPerS", "xCeiling", "xRmcp")
    ratios(rows, "wrkRequestsPerS", "wrkXCeiling", "wrkXRmcp")
    return list(rows.values())


def ratios(rows, field, to_ceiling, to_rmcp):
    """Each row's `field` over the ceiling's and over rmcp's of the same family (None without one)."""
    ceiling = (rows.get("hyper") or {}).get(field)
    for r in rows.values():
        rm = (rows.get(rmcp_of(r["target"])) or {}).get(field)
        r[to_ceiling] = r[field] / ceiling if ceiling and r[field] is not None else None
        r[to_rmcp] = r[field] / rm if rm and r[field] is not None else None


# erlmcp-load drives the ceiling at less than this share of wrk's rate: it is then the load
# generator, not the servers, that bounds the fast rows (and their open-loop latency).
LOADGEN_BOUND = 0.8


def loadgen_bound(rows):
    """The ceiling's erlmcp-load rate over its wrk rate, when that shows erlmcp-load saturated."""
    h = next((r for r in rows if r["target"] == "hyper"), None)
    if not h or not h.get("requestsPerS") or not h.get("wrkRequestsPerS"):
        return None
    share = h["requestsPerS"] / h["wrkRequestsPerS"]
    return share if share < LOADGEN_BOUND else None


def latency_rate(measurements, load_report, target, fraction, clients):
    sat = [steady_figures(load_report(m["report"]))["throughputPerS"]
           for m in measurements if m["target"] == target and m["kind"] == "saturation"]
    med = median(sat) or 0.0
    # At least one request a second per client, so a failed target still gets a latency run.
    return max(1.0, round(med * fraction / clients, 1))


def fmt(x, digits=0, thousands=True):
    if x is None:
        return ""
    return f"{x:,.{digits}f}" if thousands else f"{x:.{digits}f}"


def markdown(meta, rows, versions):
    out = [
        f"# erlmcp comparison, {meta['startedAt']}",
        "",
        f"`tools/call` of `echo` with a {meta['messageBytes']}-byte message; {meta['clients']} connections; "
        f"servers pinned to core {meta['serverCpu']}, load to core {meta['loadCpu']}; "
        f"{meta['runs']} run(s) of {meta['durationS']} s per target, medians. "
        "req/s: erlmcp-load at saturation (steady phase); p50/p99: erlmcp-load open loop at "
        f"{int(meta['latencyFraction'] * 100)} % of that rate, from the scheduled send time; "
        "RSS after the saturation run; CPU: the server's user+system time per answer.",
        "",
        "| server | req/s | × hyper ceiling | × rmcp | p50 / p99 ms | RSS MiB | CPU µs/req | errors |"
        + (" wrk req/s | wrk × ceiling | wrk × rmcp | wrk p50 / p99 ms |" if meta.get("wrk") else ""),
        "| --- | --- | --- | --- | --- | --- | --- | --- |" + (" --- | --- | --- | --- |" if meta.get("wrk") else ""),
    ]
    for r in rows:
        lat = r["latency"] or {}
        label = LABELS[r["target"]].format(**versions)
        cells = [
            label,
            fmt(r["requestsPerS"]),
            fmt(r["xCeiling"], 3),
            "" if r["target"] == "hyper" else fmt(r["xRmcp"], 2),
            f"{fmt(lat.get('p50Ms'), 2)} / {fmt(lat.get('p99Ms'), 2)}" if lat else "",
            fmt(r["rssBytes"] / 1048576 if r["rssBytes"] else None, 1),
            fmt(r["cpuUsPerReq"], 1),
            str(r["errors"]),
        ]
        if meta.get("wrk"):
            cells += [fmt(r["wrkRequestsPerS"]), fmt(r.get("wrkXCeiling"), 3),
                      "" if r["target"] == "hyper" else fmt(r.get("wrkXRmcp"), 2),
                      f"{fmt(r['wrkP50Ms'], 2)} / {fmt(r['wrkP99Ms'], 2)}"]
        out.append("| " + " | ".join(cells) + " |")
    size = meta["erlmcpStrippedBytes"]
    out += ["", f"Stripped release `erlmcp`: {size:,} bytes ({size / 1048576:.1f} MiB)."]
    dist = meta.get("erlmcpDistBytes")
    if dist:
        out += [f"`erlmcp` as the image ships it (`--profile dist`: fat LTO, one codegen unit, stripped): "
                f"{dist:,} bytes ({dist / 1048576:.1f} MiB)."]
    out += [""]
    bound = loadgen_bound(rows)
    if bound is not None:
        out += [f"**Load-generator bound:** erlmcp-load drove the ceiling at {bound:.2f} of wrk's rate for it, so "
                "on this rig erlmcp-load itself, not the servers, limits the req/s of the fastest rows and "
                "inflates their open-loop latency; read their ratios from the wrk columns.", ""]
    if meta.get("wrk"):
        out += [f"wrk {meta['wrk']}: closed loop, 1 thread, {meta['clients']} connections (a cross-check; "
                "session targets share one session).", ""]
    return "\n".join(out)


def load_json(path):
    with open(path) as f:
        return json.load(f)


def read_text(path):
    with open(path, errors="replace") as f:
        return f.read()


def read_measurements(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("wrk-script")
    w.add_argument("--family", choices=["stateless", "session"], required=True)
    w.add_argument("--size", type=int, required=True)
    w.add_argument("--session-id", default="")
    lr = sub.add_parser("latency-rate")
    lr.add_argument("--measurements", required=True)
    lr.add_argument("--target", required=True)
    lr.add_argument("--fraction", type=float, required=True)
    lr.add_argument("--clients", type=int, required=True)
    t = sub.add_parser("table")
    t.add_argument("--measurements", required=True)
    t.add_argument("--out", required=True, help="path without extension")
    for name in ["runs", "duration", "clients", "size", "server-cpu", "load-cpu", "clk-tck", "erlmcp-stripped-bytes"]:
        t.add_argument(f"--{name}", type=int, required=True)
    t.add_argument("--erlmcp-dist-bytes", type=int, default=0, help="size of the dist-profile build, if made")
    for name in ["rmcp-version", "pymcp-version", "tsmcp-version", "wrk"]:
        t.add_argument(f"--{name}", default="")
    t.add_argument("--latency-fraction", type=float, default=0.75)
    t.add_argument("--require-clean", action="store_true",
                   help="exit 1 unless every target answered and none had an error (the smoke check)")
    a = ap.parse_args(argv)

    if a.cmd == "wrk-script":
        sys.stdout.write(wrk_script(a.family, a.size, a.session_id))
        return 0
    if a.cmd == "latency-rate":
        print(latency_rate(read_measurements(a.measurements), load_json, a.target, a.fraction, a.clients))
        return 0

    import datetime
    rows = summarize(read_measurements(a.measurements), load_json, read_text, a.clk_tck)
    meta = {
        "schema": "erlmcp-compare/1",
        "startedAt": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "runs": a.runs, "durationS": a.duration, "clients": a.clients, "messageBytes": a.size,
        "serverCpu": a.server_cpu, "loadCpu": a.load_cpu, "latencyFraction": a.latency_fraction,
        "erlmcpStrippedBytes": a.erlmcp_stripped_bytes,
        "erlmcpDistBytes": a.erlmcp_dist_bytes or None, "wrk": a.wrk or None,
        "versions": {"rmcp": a.rmcp_version, "pythonSdk": a.pymcp_version, "typescriptSdk": a.tsmcp_version},
    }
    versions = {"rmcp": a.rmcp_version, "py": a.pymcp_version, "ts": a.tsmcp_version}
    with open(a.out + ".json", "w") as f:
        json.dump({**meta, "rows": rows}, f, indent=2)
    with open(a.out + ".md", "w") as f:
        f.write(markdown(meta, rows, versions))
    if a.require_clean:
        bad = [r["target"] for r in rows if not r["requestsPerS"] or r["errors"] or
               not (r["latency"] and r["latency"]["ok"])]
        if bad:
            print(f"targets with errors or no answers: {', '.join(bad)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
