"""Checks one erlmcp-load result: the documented structure, every request answered, no errors.
Never a speed. Usage: check_report.py DIR [key=value ...] with keys
  family, transports (comma list), clients (connections made), scenario, peak (peak
  connections), floor (clients at the end), sse (1: GET streams delivered events), busy (a
  phase that must have answers)."""
import json
import sys
from pathlib import Path


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    out = Path(sys.argv[1])
    want = dict(a.split("=", 1) for a in sys.argv[2:])
    r = json.loads((out / "report.json").read_text())
    html = (out / "report.html").read_text()
    where = f"{out} ({want})"

    for k in ["schema", "toolVersion", "scenario", "plan", "setup", "elapsedS", "totals",
              "latency", "phases", "timeline", "servers", "scrapes", "drift"]:
        if k not in r:
            fail(f"{where}: no {k}")
    if r["schema"] != "erlmcp-load/1":
        fail(f"{where}: schema {r['schema']}")
    t = r["totals"]
    if t["errors"] != 0 or t["errorsByKind"]:
        fail(f"{where}: errors {t['errorsByKind']}")
    if t["ok"] <= 0 or t["ok"] != t["sent"]:
        fail(f"{where}: sent {t['sent']} but {t['ok']} answered correctly")
    if t["connectErrors"] != 0:
        fail(f"{where}: {t['connectErrors']} failed connections")
    lat = r["latency"]
    if lat["count"] != t["ok"] or not (0 < lat["p50Ms"] <= lat["p99Ms"] <= lat["maxMs"]):
        fail(f"{where}: latency summary {lat}")
    tl = r["timeline"]
    if not tl or [s["t"] for s in tl] != list(range(len(tl))):
        fail(f"{where}: timeline seconds {[s['t'] for s in tl]}")
    for key in ["sent", "ok", "errors", "errorsByKind", "latency", "connections",
                "connectionsMax", "targetClients", "sseEvents"]:
        if key not in tl[0]:
            fail(f"{where}: timeline entries have no {key}")
    if sum(s["ok"] for s in tl) != t["ok"]:
        fail(f"{where}: timeline does not add up to the totals")
    if sum(p["ok"] for p in r["phases"]) != t["ok"]:
        fail(f"{where}: phases do not add up to the totals")
    if tl[-1]["connections"] != 0:
        fail(f"{where}: {tl[-1]['connections']} clients still connected at the end")
    s = r["setup"]
    if "family" in want and s["family"] != want["family"]:
        fail(f"{where}: family {s['family']}")
    if "transports" in want and sorted(s["transports"]) != sorted(want["transports"].split(",")):
        fail(f"{where}: transports {s['transports']}")
    if "scenario" in want and r["scenario"] != want["scenario"]:
        fail(f"{where}: scenario {r['scenario']}")
    if "clients" in want and t["connectsOk"] != int(want["clients"]):
        fail(f"{where}: {t['connectsOk']} connections made, want {want['clients']}")
    if "peak" in want and t["peakConnections"] != int(want["peak"]):
        fail(f"{where}: peak connections {t['peakConnections']}, want {want['peak']}")
    if "floor" in want:
        targets = [x["targetClients"] for x in tl if x["targetClients"] > 0]
        if not targets or targets[-1] != int(want["floor"]):
            fail(f"{where}: clients at the end {targets[-1:]} want {want['floor']}")
    if "busy" in want:
        busy = [p for p in r["phases"] if p["name"] == want["busy"]]
        if not busy or busy[0]["ok"] <= 0:
            fail(f"{where}: phase {want['busy']} answered nothing: {r['phases']}")
    if want.get("sse") == "1" and t["sseEvents"] <= 0:
        fail(f"{where}: no events on the GET streams")
    # The server's own view, scraped during the run.
    if not r["servers"]:
        fail(f"{where}: no server scraped")
    for srv in r["servers"]:
        # A scrape may time out on a busy machine; most must succeed and carry the memory.
        if srv["scrapes"] <= 0 or srv["scrapeErrors"] * 2 > srv["scrapes"] or not srv["peakRssBytes"]:
            fail(f"{where}: scrapes of {srv['url']}: {srv}")
        if srv["requestErrorsCounted"] not in (0, 0.0, None):
            fail(f"{where}: the server counted {srv['requestErrorsCounted']} errors")
        if want.get("family") == "session" and not srv["peakSessions"]:
            fail(f"{where}: the server never saw a session")
    if html.count("<svg") != 5 or "<script" in html:
        fail(f"{where}: the HTML report has {html.count('<svg')} charts")
    print(f"ok: {out.name}: {t['ok']} answers, 0 errors, {len(tl)} s of timeline")


main()
