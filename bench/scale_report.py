#!/usr/bin/env python3
"""The arithmetic and the table of bench/scale.sh (standard library only).

Reads the measurements (JSON lines written by scale.sh, each pointing at an erlmcp-load
`hold.json` or `report.json`) and writes OUT.json (schema `erlmcp-scale/1`, fields in
bench/README.md) and OUT.md. The pure functions are unit-tested in test_scale_report.py.
"""

import argparse
import datetime
import json
import statistics

KIB, MIB = 1024, 1024 * 1024
TARGETS = {
    "bytesPerSession": 2 * KIB,
    "connectionRssBytes": 512 * MIB,
    "forwardedThroughputRatio": 0.5,
    "forwardedAddedP50Ms": 0.3,
    "soakRssSpreadPercent": 5.0,
}
# Sends a saturation run's schedule could not make: the point of offering more than the server
# answers, not a failure.
EXPECTED_AT_SATURATION = {"not_sent"}


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def steady(report):
    """The last phase of an erlmcp-load report (the steady state of `baseline`)."""
    return report["phases"][-1]


def failures(report):
    return {k: v for k, v in report["totals"]["errorsByKind"].items() if k not in EXPECTED_AT_SATURATION}


def hold_figure(h, peak=None):
    """An idle hold (`hold.json`): what was held and what it cost."""
    return {
        "transport": h["transport"],
        "family": h["family"],
        "requested": h["requested"],
        "opened": h["opened"],
        "openErrors": h["openErrors"],
        "openErrorsByKind": h["openErrorsByKind"],
        "openS": round(h["openS"], 2),
        "sockets": h["sockets"],
        "holdS": round(h["holdS"], 1),
        "rssBeforeBytes": h["rssBeforeBytes"],
        "rssHeldBytes": h["rssHeldBytes"],
        "rssEndBytes": h["rssEndBytes"],
        "rssPeakBytes": h["rssPeakBytes"],
        "serverPeakRssBytes": peak,
        "rssGrowthBytes": h["rssGrowthBytes"],
        "rssPerItemBytes": None if h["rssPerItemBytes"] is None else round(h["rssPerItemBytes"], 1),
        "sessionsActiveHeld": h["sessionsActiveHeld"],
        "closedDuringHold": h["closedDuringHold"],
        "checked": h["checked"],
        "checkOk": h["checkOk"],
        "checkErrorsByKind": h["checkErrorsByKind"],
    }


def sessions_figure(h, peak=None):
    f = hold_figure(h, peak)
    f["bytesPerSession"] = f["rssPerItemBytes"]
    f["target"] = "< %d bytes per session" % TARGETS["bytesPerSession"]
    f["meetsTarget"] = (
        f["bytesPerSession"] is not None
        and f["bytesPerSession"] < TARGETS["bytesPerSession"]
        and f["opened"] == f["requested"]
    )
    return f


def connections_figure(h, peak=None):
    f = hold_figure(h, peak)
    rss = f["rssHeldBytes"]
    f["rssHeldMiB"] = None if rss is None else round(rss / MIB, 1)
    f["bytesPerConnection"] = f["rssPerItemBytes"]
    f["target"] = "< 512 MiB RSS with all connections open"
    f["meetsTarget"] = (
        rss is not None
        and rss < TARGETS["connectionRssBytes"]
        and f["opened"] == f["requested"]
        and f["closedDuringHold"] == 0
    )
    return f


def forwarding_figure(runs):
    """runs: [{mode, kind, rep, report}] with the loaded reports."""
    sat = {m: [r for r in runs if r["mode"] == m and r["kind"] == "saturation"] for m in ("direct", "forwarded")}
    lat = {m: next((r for r in runs if r["mode"] == m and r["kind"] == "latency"), None) for m in ("direct", "forwarded")}
    per_s = {m: median([steady(r["report"])["throughputPerS"] for r in sat[m]]) for m in sat}
    p50 = {m: (steady(lat[m]["report"])["latency"]["p50Ms"] if lat[m] else None) for m in lat}
    p99 = {m: (steady(lat[m]["report"])["latency"]["p99Ms"] if lat[m] else None) for m in lat}
    ratio = per_s["forwarded"] / per_s["direct"] if per_s["direct"] and per_s["forwarded"] is not None else None
    added = p50["forwarded"] - p50["direct"] if None not in (p50["forwarded"], p50["direct"]) else None
    errs = {}
    for r in runs:
        for k, v in failures(r["report"]).items():
            key = "%s %s" % (r["mode"], k)
            errs[key] = errs.get(key, 0) + v
    return {
        "directPerS": per_s["direct"],
        "forwardedPerS": per_s["forwarded"],
        "throughputRatio": None if ratio is None else round(ratio, 3),
        "directP50Ms": p50["direct"],
        "forwardedP50Ms": p50["forwarded"],
        "addedP50Ms": None if added is None else round(added, 3),
        "directP99Ms": p99["direct"],
        "forwardedP99Ms": p99["forwarded"],
        "runs": [
            {"mode": r["mode"], "rep": r["rep"], "perS": steady(r["report"])["throughputPerS"]}
            for r in runs
            if r["kind"] == "saturation"
        ],
        "errors": errs,
        "target": "throughput ratio >= 0.5 and added p50 < 0.3 ms",
        "meetsTarget": ratio is not None
        and added is not None
        and ratio >= TARGETS["forwardedThroughputRatio"]
        and added < TARGETS["forwardedAddedP50Ms"]
        and not errs,
    }


def soak_figure(report, peak=None, warmup_fraction=0.1):
    """RSS over the soak: spread (max - min) / min after the warm-up, and the report's drift."""
    samples = [(s["t"], s["rssBytes"]) for s in report["scrapes"] if s.get("rssBytes") is not None]
    if not samples:
        return {"meetsTarget": False, "rssSamples": [], "error": "no memory scrapes"}
    end = samples[-1][0]
    after = [b for t, b in samples if t >= end * warmup_fraction] or [b for _, b in samples]
    lo, hi = min(after), max(after)
    spread = (hi - lo) / lo * 100 if lo else None
    errs = report["totals"]["errorsByKind"]
    return {
        "durationS": round(report["elapsedS"], 1),
        "ok": report["totals"]["ok"],
        "errors": report["totals"]["errors"],
        "errorsByKind": errs,
        "throughputPerS": round(report["totals"]["throughputPerS"], 1),
        "p99Ms": report["latency"]["p99Ms"],
        "warmupS": round(end * warmup_fraction, 1),
        "rssMinBytes": lo,
        "rssMaxBytes": hi,
        "rssSpreadPercent": None if spread is None else round(spread, 2),
        "driftRssChangePercent": report.get("drift", {}).get("rssChangePercent"),
        "driftP99ChangePercent": report.get("drift", {}).get("p99ChangePercent"),
        "serverPeakRssBytes": peak,
        "rssSamples": [[round(t, 1), b] for t, b in samples],
        "target": "RSS within 5 % (max - min over min) after the first tenth",
        "meetsTarget": spread is not None and spread <= TARGETS["soakRssSpreadPercent"] and report["totals"]["errors"] == 0,
    }


def fmt_bytes(b):
    if b is None:
        return "?"
    return "%.1f MiB" % (b / MIB) if b >= MIB else "%.0f B" % b


def yes(v):
    return "yes" if v else "**no**"


def markdown(doc):
    s = doc["settings"]
    f = doc["figures"]
    out = ["# erlmcp scale figures (%s)" % doc["generatedAt"], ""]
    out.append(
        "`bench/scale.sh`: release `erlmcp serve` on loopback, `erlmcp-load` as the client, %s cores "
        "shared with other work; RLIMIT_NOFILE %s. %s" % (s["cores"], s["nofile"], s["note"] or "")
    )
    out += ["", "| figure | measured | target | met |", "| --- | --- | --- | --- |"]
    if "idleSessions" in f:
        x = f["idleSessions"]
        out.append(
            "| %s idle 2025-11-25 sessions | %s per session (RSS %s -> %s; %s opened, %s/%s answered after the hold) | < 2 KiB | %s |"
            % (x["requested"], fmt_bytes(x["bytesPerSession"]), fmt_bytes(x["rssBeforeBytes"]), fmt_bytes(x["rssHeldBytes"]),
               x["opened"], x["checkOk"], x["checked"], yes(x["meetsTarget"]))
        )
    for key, label in (("http", "HTTP/1.1 keep-alive"), ("websocket", "WebSocket")):
        x = f.get("idleConnections", {}).get(key)
        if x:
            out.append(
                "| %s idle %s connections | RSS %s (%s per connection; %s opened, %s closed during the hold, %s/%s answered after it) | < 512 MiB | %s |"
                % (x["requested"], label, fmt_bytes(x["rssHeldBytes"]), fmt_bytes(x["bytesPerConnection"]), x["opened"],
                   x["closedDuringHold"], x["checkOk"], x["checked"], yes(x["meetsTarget"]))
            )
    if "forwarding" in f:
        x = f["forwarding"]
        out.append(
            "| session request forwarded to the owner vs direct | throughput %s / %s req/s = **%s**; p50 %s vs %s ms, **+%s ms** | ratio >= 0.5, added p50 < 0.3 ms | %s |"
            % (round(x["forwardedPerS"] or 0), round(x["directPerS"] or 0), x["throughputRatio"], x["forwardedP50Ms"],
               x["directP50Ms"], x["addedP50Ms"], yes(x["meetsTarget"]))
        )
    if "soak" in f:
        x = f["soak"]
        out.append(
            "| soak, %s s | RSS %s .. %s after %s s: spread **%s %%** (drift first/last tenth %s %%); %s ok, %s errors | within 5 %% | %s |"
            % (x.get("durationS"), fmt_bytes(x.get("rssMinBytes")), fmt_bytes(x.get("rssMaxBytes")), x.get("warmupS"),
               x.get("rssSpreadPercent"), x.get("driftRssChangePercent"), x.get("ok"), x.get("errors"), yes(x["meetsTarget"]))
        )
    for name, x in f.items():
        if isinstance(x, dict) and x.get("status") == "not measured":
            out.append("| %s | not measured: %s | | |" % (name, x["reason"]))
    out += ["", "Raw figures, every field: the JSON file of the same name (`schema: erlmcp-scale/1`).", ""]
    return "\n".join(out)


def build(measurements, settings):
    figures = {}
    fwd = []
    for m in measurements:
        fig = m["figure"]
        if "report" in m:
            with open(m["report"]) as fh:
                rep = json.load(fh)
        peak = m.get("serverPeakRssBytes")
        if fig == "sessions":
            figures["idleSessions"] = sessions_figure(rep, peak)
        elif fig.startswith("connections-"):
            key = "http" if fig.endswith("http") else "websocket"
            figures.setdefault("idleConnections", {})[key] = connections_figure(rep, peak)
        elif fig == "forwarding" and m["kind"] != "counters":
            fwd.append({"mode": m["mode"], "kind": m["kind"], "rep": m["rep"], "report": rep})
        elif fig == "forwarding":
            figures.setdefault("forwardingCounters", {})["n2ForwardedTotal"] = m.get("n2ForwardedTotal")
        elif fig == "soak":
            figures["soak"] = soak_figure(rep, peak)
    if fwd:
        figures["forwarding"] = forwarding_figure(fwd)
        figures["forwarding"].update(figures.pop("forwardingCounters", {}))
    figures.setdefault(
        "rollingRestart",
        {"status": "not measured", "reason": "not in bench/scale.sh yet; dataplane/tests/cluster_rolling.rs checks the same property as a test"},
    )
    return {
        "schema": "erlmcp-scale/1",
        "generatedAt": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "settings": settings,
        "targets": TARGETS,
        "figures": figures,
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--measurements", required=True)
    p.add_argument("--out", required=True)
    for a in ("--sessions", "--connections", "--hold", "--soak", "--forward-duration", "--nofile", "--cores"):
        p.add_argument(a, type=int, default=0)
    p.add_argument("--note", default="")
    p.add_argument("--erlmcp-version", default="")
    a = p.parse_args()
    with open(a.measurements) as fh:
        ms = [json.loads(line) for line in fh if line.strip()]
    settings = {
        "sessions": a.sessions,
        "connections": a.connections,
        "holdS": a.hold,
        "soakS": a.soak,
        "forwardDurationS": a.forward_duration,
        "nofile": a.nofile,
        "cores": a.cores,
        "erlmcpVersion": a.erlmcp_version,
        "note": a.note,
    }
    doc = build(ms, settings)
    with open(a.out + ".json", "w") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")
    with open(a.out + ".md", "w") as fh:
        fh.write(markdown(doc))


if __name__ == "__main__":
    main()
