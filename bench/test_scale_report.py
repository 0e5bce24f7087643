"""Unit tests of scale_report.py's arithmetic: python3 -m unittest bench/test_scale_report.py"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scale_report as sr  # noqa: E402


def hold(**kw):
    h = {
        "transport": "http", "family": "session", "requested": 1000, "opened": 1000, "openErrors": 0,
        "openErrorsByKind": {}, "openS": 1.0, "sockets": 64, "holdS": 5.0, "rssBeforeBytes": 10e6,
        "rssHeldBytes": 11e6, "rssEndBytes": 11e6, "rssPeakBytes": 11e6, "rssGrowthBytes": 1e6,
        "rssPerItemBytes": 1000.0, "sessionsActiveHeld": 1000, "closedDuringHold": 0, "checked": 1000,
        "checkOk": 1000, "checkErrorsByKind": {},
    }
    h.update(kw)
    return h


def load_report(per_s, p50=0.5, errors=None):
    errors = errors or {}
    return {
        "phases": [{"name": "warm-up", "throughputPerS": 1.0}, {"name": "steady", "throughputPerS": per_s, "latency": {"p50Ms": p50, "p99Ms": p50 * 3}}],
        "totals": {"errorsByKind": errors},
    }


class Figures(unittest.TestCase):
    def test_sessions_meet_the_target_only_when_all_opened_and_small(self):
        self.assertTrue(sr.sessions_figure(hold())["meetsTarget"])
        self.assertFalse(sr.sessions_figure(hold(rssPerItemBytes=4096.0))["meetsTarget"])
        self.assertFalse(sr.sessions_figure(hold(opened=999))["meetsTarget"])
        self.assertFalse(sr.sessions_figure(hold(rssPerItemBytes=None))["meetsTarget"])

    def test_connections_closed_by_the_server_fail_the_figure(self):
        self.assertTrue(sr.connections_figure(hold(rssHeldBytes=400 * sr.MIB))["meetsTarget"])
        self.assertFalse(sr.connections_figure(hold(rssHeldBytes=600 * sr.MIB))["meetsTarget"])
        self.assertFalse(sr.connections_figure(hold(closedDuringHold=1))["meetsTarget"])

    def test_forwarding_ratio_uses_medians_and_added_p50(self):
        runs = [
            {"mode": "direct", "kind": "saturation", "rep": i, "report": load_report(v)} for i, v in enumerate([900, 1000, 5000])
        ] + [
            {"mode": "forwarded", "kind": "saturation", "rep": i, "report": load_report(v, errors={"not_sent": 9})}
            for i, v in enumerate([600, 700, 100])
        ] + [
            {"mode": "direct", "kind": "latency", "rep": 1, "report": load_report(100, p50=0.40)},
            {"mode": "forwarded", "kind": "latency", "rep": 1, "report": load_report(100, p50=0.55)},
        ]
        f = sr.forwarding_figure(runs)
        self.assertEqual((f["directPerS"], f["forwardedPerS"]), (1000, 600))
        self.assertEqual(f["throughputRatio"], 0.6)
        self.assertEqual(f["addedP50Ms"], 0.15)
        self.assertEqual(f["errors"], {}, "not_sent is expected at saturation")
        self.assertTrue(f["meetsTarget"])
        runs[-1]["report"]["totals"]["errorsByKind"] = {"http_404": 1}
        self.assertFalse(sr.forwarding_figure(runs)["meetsTarget"])

    def test_soak_spread_leaves_the_warm_up_out(self):
        scrapes = [{"t": float(t), "rssBytes": 5e6 if t < 10 else 10e6 + t * 1000} for t in range(100)]
        rep = {
            "scrapes": scrapes, "elapsedS": 100.0, "latency": {"p99Ms": 1.0}, "drift": {"rssChangePercent": 0.8},
            "totals": {"ok": 10, "errors": 0, "errorsByKind": {}, "throughputPerS": 0.1},
        }
        f = sr.soak_figure(rep)
        self.assertEqual(f["rssMinBytes"], 10e6 + 10000)
        self.assertAlmostEqual(f["rssSpreadPercent"], 0.89, places=2)
        self.assertTrue(f["meetsTarget"])
        rep["scrapes"][-1]["rssBytes"] = 12e6
        self.assertFalse(sr.soak_figure(rep)["meetsTarget"])
        self.assertFalse(sr.soak_figure({"scrapes": []})["meetsTarget"])

    def test_markdown_names_every_figure(self):
        doc = {
            "generatedAt": "now", "settings": {"cores": 2, "nofile": 60000, "note": ""},
            "figures": {"idleSessions": sr.sessions_figure(hold()), "idleConnections": {"websocket": sr.connections_figure(hold())},
                        "rollingRestart": {"status": "not measured", "reason": "later"}},
        }
        md = sr.markdown(doc)
        self.assertIn("idle 2025-11-25 sessions", md)
        self.assertIn("WebSocket", md)
        self.assertIn("not measured: later", md)


if __name__ == "__main__":
    unittest.main()
