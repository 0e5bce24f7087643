"""Unit tests of compare_report.py's arithmetic and table: python3 -m unittest bench/test_compare_report.py"""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_report as cr  # noqa: E402


def report(ok, span, p50, p99, errors=None):
    """The parts of an erlmcp-load report.json the reporter reads."""
    return {
        "phases": [
            {"name": "warm-up", "startS": 0.0, "endS": 0.5, "ok": 490, "latency": {"p50Ms": 99, "p99Ms": 99}},
            # erlmcp-load's rate leaves out the drain's answers, which `ok` counts: 10 here.
            {"name": "steady", "startS": 0.5, "endS": 0.5 + span, "ok": ok + 10,
             "throughputPerS": ok / span, "latency": {"p50Ms": p50, "p99Ms": p99}},
        ],
        "totals": {"ok": 490 + ok + 10, "errorsByKind": errors or {}},
    }


WRK_OUT = """Running 5s test @ http://127.0.0.1:1234/mcp
  1 threads and 32 connections
  Latency Distribution
     50%  512.00us
     75%  700.00us
     90%    1.10ms
     99%    2.50ms
  300000 requests in 5.00s, 60.00MB read
  Non-2xx or 3xx responses: 3
Requests/sec:  60000.50
Transfer/sec:     12.00MB
"""


class SteadyFigures(unittest.TestCase):
    def test_throughput_is_the_steady_phases_own_rate_without_the_drain(self):
        f = cr.steady_figures(report(ok=3000, span=2.0, p50=0.4, p99=0.9))
        self.assertAlmostEqual(f["throughputPerS"], 1500.0)
        self.assertEqual((f["p50Ms"], f["p99Ms"]), (0.4, 0.9))

    def test_not_sent_at_saturation_is_not_an_error_but_others_are(self):
        f = cr.steady_figures(report(1, 1.0, 1, 1, errors={"not_sent": 500, "timeout": 2, "bad_echo": 1}))
        self.assertEqual(f["errors"], 3)
        self.assertEqual(f["errorsByKind"], {"timeout": 2, "bad_echo": 1})

    def test_a_report_without_steady_phase_is_refused(self):
        with self.assertRaises(ValueError):
            cr.steady_figures({"phases": [], "totals": {}})


class Wrk(unittest.TestCase):
    def test_parse_converts_units_and_counts_bad_answers(self):
        w = cr.parse_wrk(WRK_OUT)
        self.assertEqual(w["requestsPerS"], 60000.5)
        self.assertAlmostEqual(w["p50Ms"], 0.512)
        self.assertAlmostEqual(w["p99Ms"], 2.5)
        self.assertEqual(w["errors"], 3)

    def test_parse_of_a_failed_run_gives_nothing(self):
        w = cr.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")
        self.assertIsNone(w["requestsPerS"])
        self.assertIsNone(w["p99Ms"])

    def test_script_posts_the_loadgen_request_with_the_family_headers(self):
        s = cr.wrk_script("stateless", 100)
        body = json.loads(s.split("wrk.body = ", 1)[1].split("\n", 1)[0].encode().decode("unicode_escape")[1:-1])
        self.assertEqual(len(body["params"]["arguments"]["message"]), 100)
        self.assertEqual(body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"], "2026-07-28")
        self.assertIn('wrk.headers["Mcp-Method"] = "tools/call"', s)
        session = cr.wrk_script("session", 10, "abc")
        self.assertIn('wrk.headers["Mcp-Session-Id"] = "abc"', session)
        self.assertNotIn("_meta", session)


class Summary(unittest.TestCase):
    def setUp(self):
        self.reports = {
            "h1": report(2000, 1.0, 0.1, 0.2), "h2": report(4000, 1.0, 0.1, 0.2), "h3": report(3000, 1.0, 0.1, 0.2),
            "e1": report(1500, 1.0, 0.3, 0.6),
            "r1": report(500, 1.0, 1.0, 2.0),
            "el": report(1000, 1.0, 0.25, 0.5, errors={"timeout": 1}),
        }
        self.meas = [
            {"target": "hyper", "rep": i, "kind": "saturation", "report": f"h{i}", "cpuTicks": 10, "rssBytes": 1 << 20}
            for i in (1, 2, 3)
        ] + [
            {"target": "erlmcp-2026", "rep": 1, "kind": "saturation", "report": "e1", "cpuTicks": 3, "rssBytes": 2 << 20},
            {"target": "erlmcp-2026", "rep": 1, "kind": "latency", "report": "el", "ratePerClient": 10},
            {"target": "erlmcp-2026", "rep": 1, "kind": "wrk", "output": "w"},
            {"target": "rmcp-2026", "rep": 1, "kind": "saturation", "report": "r1", "cpuTicks": 5, "rssBytes": 0},
        ]
        self.rows = {r["target"]: r for r in cr.summarize(self.meas, self.reports.__getitem__, lambda _: WRK_OUT, 100)}

    def test_medians_and_ratios_to_the_ceiling_and_to_rmcp_of_the_same_run(self):
        h, e = self.rows["hyper"], self.rows["erlmcp-2026"]
        self.assertEqual(h["requestsPerS"], 3000.0)
        self.assertAlmostEqual(e["xCeiling"], 0.5)
        self.assertAlmostEqual(e["xRmcp"], 3.0)
        self.assertAlmostEqual(h["xCeiling"], 1.0)

    def test_cpu_per_request_from_clock_ticks(self):
        # 3 ticks at 100/s = 30 ms over the run's 2000 answers (warm-up, steady, drain): the
        # ticks cover the whole run, so every answer of it counts = 15 µs each.
        self.assertAlmostEqual(self.rows["erlmcp-2026"]["cpuUsPerReq"], 15.0)

    def test_latency_run_errors_count_and_wrk_is_attached(self):
        e = self.rows["erlmcp-2026"]
        self.assertEqual(e["errors"], 1)
        self.assertEqual((e["latency"]["p50Ms"], e["latency"]["p99Ms"]), (0.25, 0.5))
        self.assertEqual(e["wrkRequestsPerS"], 60000.5)

    def test_without_a_ceiling_or_rmcp_there_is_no_ratio(self):
        rows = cr.summarize(self.meas[3:4], self.reports.__getitem__, lambda _: "", 100)
        self.assertIsNone(rows[0]["xCeiling"])
        self.assertIsNone(rows[0]["xRmcp"])

    def test_latency_rate_is_the_fraction_of_the_median_per_client(self):
        self.assertEqual(cr.latency_rate(self.meas, self.reports.__getitem__, "hyper", 0.75, 30), 75.0)
        self.assertEqual(cr.latency_rate(self.meas, self.reports.__getitem__, "nobody", 0.75, 30), 1.0)

    def test_markdown_has_a_row_per_target_and_the_binary_size(self):
        meta = {"startedAt": "now", "messageBytes": 100, "clients": 32, "serverCpu": 0, "loadCpu": 1, "runs": 3,
                "durationS": 5, "latencyFraction": 0.75, "erlmcpStrippedBytes": 12 * 1048576, "wrk": "4.1.0"}
        md = cr.markdown(meta, list(self.rows.values()), {"rmcp": "3.11.0", "py": "2.3.0", "ts": "1.32.2"})
        self.assertIn('| hyper "hello" (ceiling) | 3,000 | 1.000 |', md)
        self.assertIn("| erlmcp, stateless 2026-07-28 | 1,500 | 0.500 | 3.00 | 0.25 / 0.50 | 2.0 | 15.0 | 1 |", md)
        self.assertIn("rmcp 3.11.0, stateless 2026-07-28", md)
        self.assertIn("(12.0 MiB)", md)
        self.assertNotIn("--profile dist", md)
        self.assertIn("wrk req/s", md)
        # wrk's erlmcp 60,000/s is over no wrk ceiling here: no ratio, and no bound to report.
        self.assertNotIn("Load-generator bound", md)
        md = cr.markdown({**meta, "erlmcpDistBytes": 9 * 1048576}, list(self.rows.values()),
                         {"rmcp": "3.11.0", "py": "2.3.0", "ts": "1.32.2"})
        self.assertIn("`--profile dist`", md)
        self.assertIn("9,437,184 bytes (9.0 MiB)", md)

    def test_wrk_ratios_and_a_load_generator_that_cannot_reach_the_ceiling(self):
        # The ceiling at 3,000/s by erlmcp-load but 60,000/s by wrk: erlmcp-load was the limit.
        rows = [dict(r) for r in self.rows.values()]
        by = {r["target"]: r for r in rows}
        for r in rows:
            r["wrkRequestsPerS"] = {"hyper": 60000.0, "erlmcp-2026": 30000.0, "rmcp-2026": 10000.0}[r["target"]]
        cr.ratios(by, "wrkRequestsPerS", "wrkXCeiling", "wrkXRmcp")
        self.assertAlmostEqual(by["erlmcp-2026"]["wrkXCeiling"], 0.5)
        self.assertAlmostEqual(by["erlmcp-2026"]["wrkXRmcp"], 3.0)
        self.assertAlmostEqual(cr.loadgen_bound(rows), 0.05)
        meta = {"startedAt": "now", "messageBytes": 100, "clients": 32, "serverCpu": 0, "loadCpu": 1, "runs": 3,
                "durationS": 5, "latencyFraction": 0.75, "erlmcpStrippedBytes": 1, "wrk": "4.1.0"}
        md = cr.markdown(meta, rows, {"rmcp": "3.11.0", "py": "2.3.0", "ts": "1.32.2"})
        self.assertIn("| 30,000 | 0.500 | 3.00 |", md)
        self.assertIn("Load-generator bound", md)
        # erlmcp-load within 80 % of wrk on the ceiling: its figures stand, nothing is flagged.
        by["hyper"]["requestsPerS"] = 50000.0
        self.assertIsNone(cr.loadgen_bound(rows))


if __name__ == "__main__":
    unittest.main()
