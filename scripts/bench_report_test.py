#!/usr/bin/env python3
"""Tests for bench_report.py: verdicts, and which phases' rows a summary holds.

Run: python3 scripts/bench_report_test.py   (scripts/test-host.sh runs it)
"""
import contextlib
import io
import json
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_report  # noqa: E402

ENV_HEAD = "host: test\n"


def run_line(phases, tree=""):
    at = f" at {tree}" if tree else ""
    return f"run 2026-11-22T10:00:00Z{at}: phases {phases}, rounds 2, jobs 2, quick 0, host load 0.1 0.1 0.1\n"


def report(env, rows):
    """Runs the report over a folder with ENV and raw.csv ROWS; returns results.json."""
    with tempfile.TemporaryDirectory() as d:
        out = Path(d)
        (out / "environment.txt").write_text(env)
        (out / "raw.csv").write_text(
            "round,kernel,name,value\n" + "".join(f"{r},{k},{n},{v}\n" for r, k, n, v in rows))
        argv, sys.argv = sys.argv, ["bench_report.py", str(out)]
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                bench_report.main()
        finally:
            sys.argv = argv
        return json.loads((out / "results.json").read_text())


def hot_rows(base, patched):
    rows = []
    for r, (b, p) in enumerate(zip(base, patched), 1):
        rows.append((r, "baseline", "pipe_pinned_us.baseline", b))
        rows += [(r, "patched", f"pipe_pinned_us.{tag}", p) for tag, _ in bench_report.HOT_CASES]
    return rows


class PhasesRun(unittest.TestCase):
    def test_union_of_every_run_line(self):
        env = ENV_HEAD + run_line("hot") + run_line("llm,tuner", tree="7bbc156-dirty")
        self.assertEqual(bench_report.phases_run(env), {"hot", "llm", "tuner"})

    def test_folder_without_run_lines_means_every_phase(self):
        self.assertEqual(bench_report.phases_run(ENV_HEAD), set(bench_report.PHASES))
        self.assertEqual(bench_report.phases_run(None), set(bench_report.PHASES))


class Summary(unittest.TestCase):
    def test_rows_of_phases_not_run_are_left_out(self):
        res = report(ENV_HEAD + run_line("hot"), hot_rows([10.0, 10.0], [10.01, 10.01]))
        labels = list(res["metrics"])
        self.assertEqual(res["phases"], ["hot"])
        self.assertIn("pipe_pinned_us hints_off / baseline", labels)
        self.assertFalse([x for x in labels if x.startswith(("latency", "numa", "ioctl", "model"))], labels)

    def test_a_phase_that_ran_without_figures_says_no_data(self):
        res = report(ENV_HEAD + run_line("hot,lat"), hot_rows([10.0, 10.0], [10.01, 10.01]))
        row = res["metrics"]["latency p99 unhinted / hinted"]
        self.assertIsNone(row["value"])
        self.assertEqual(row["detail"], "no data")

    def test_rtapp_rows_judge_wakeup_response_and_throughput(self):
        rows = []
        for r in (1, 2):
            rows += [(r, "patched", "rtapp_wakeup_p99_us.unhinted", 3000),
                     (r, "patched", "rtapp_wakeup_p99_us.hinted", 500),
                     (r, "patched", "rtapp_response_p99_us.unhinted", 4000),
                     (r, "patched", "rtapp_response_p99_us.hinted", 4400),
                     (r, "patched", "rtapp_hog_loops_per_s.unhinted", 1000),
                     (r, "patched", "rtapp_hog_loops_per_s.hinted", 990)]
        m = report(ENV_HEAD + run_line("lat"), rows)["metrics"]
        self.assertEqual(m["rt-app wakeup p99 unhinted / hinted"]["value"], 6.0)
        self.assertIs(m["rt-app wakeup p99 unhinted / hinted"]["met"], True)
        # A later finish is a miss even when the wakeup got faster.
        self.assertEqual(m["rt-app response p99 hinted / unhinted"]["value"], 1.1)
        self.assertIs(m["rt-app response p99 hinted / unhinted"]["met"], False)
        self.assertIs(m["rt-app CPU-bound loops/s hinted / unhinted"]["met"], True)
        self.assertEqual(m["cyclictest p99 unhinted / hinted"]["detail"], "no data")

    def test_two_cpu_case_is_reported_without_a_verdict(self):
        rows = []
        for r, (u, h) in enumerate(((7000, 9000), (8000, 10000)), 1):
            rows += [(r, "patched", "lat_p99_us.unhinted_2cpu", u),
                     (r, "patched", "lat_p99_us.hinted_2cpu", h)]
        m = report(ENV_HEAD + run_line("lat"), rows)["metrics"]
        row = m["two busy vCPUs (emulator-bound): latency p99 unhinted / hinted"]
        self.assertEqual(row["goal"], "report")
        self.assertIsNone(row["met"])
        self.assertEqual(row["value"], 0.79)
        self.assertIn("per round 0.78, 0.80", row["detail"])

    def test_hot_verdicts(self):
        # Tight rounds: the goal decides. 0.1 % over passes 1.005, 2 % over fails it.
        met = report(ENV_HEAD + run_line("hot"), hot_rows([10.0, 10.0], [10.01, 10.01]))
        self.assertIs(met["metrics"]["pipe_pinned_us hints_off / baseline"]["met"], True)
        over = report(ENV_HEAD + run_line("hot"), hot_rows([10.0, 10.0], [10.2, 10.2]))
        self.assertIs(over["metrics"]["pipe_pinned_us hints_off / baseline"]["met"], False)
        # Rounds that scatter wider than the margin: neither met nor missed.
        wide = report(ENV_HEAD + run_line("hot"), hot_rows([10.0, 10.0], [9.7, 10.3]))
        row = wide["metrics"]["pipe_pinned_us hints_off / baseline"]
        self.assertIsNone(row["met"])
        self.assertIn("inconclusive", row["detail"])


def serving_rows(rounds, lane="serving"):
    """rounds: [(alone, noisy, tuned) tokens/s, (alone, noisy, tuned) TTFT p99 ms, errors]"""
    rows = []
    for r, (tps, ttft, errs) in enumerate(rounds, 1):
        for case, t, f in zip(bench_report.SERVING_CASES, tps, ttft):
            rows += [(r, lane, f"serve_tokens_per_s.{case}", t),
                     (r, lane, f"serve_ttft_p99_ms.{case}", f),
                     (r, lane, f"serve_ttft_p50_ms.{case}", f / 2),
                     (r, lane, f"serve_latency_p99_ms.{case}", f * 3),
                     (r, lane, f"serve_requests.{case}", 32),
                     (r, lane, f"serve_errors.{case}", errs)]
            if lane == "serving":
                rows.append((r, lane, f"serve_host_load1.{case}", 1.5))
        if lane != "serving":
            rows.append((r, lane, "serve_tuner_hinted.tuned", 1))
            continue
        rows += [(r, "serving", "serve_tuner_hinted.tuned", 1),
                 (r, "serving", "serve_sched_slice_us.tuned", 6000),
                 (r, "serving", "serve_sched_policy.tuned", 0),
                 (r, "serving", "serve_sched_nice.tuned", 0),
                 (r, "serving", "serve_sched_slice_us.alone", 1400),
                 (r, "serving", "serve_hog_policy.tuned", 3),
                 (r, "serving", "serve_hog_nice.tuned", 0)]
    return rows


class Serving(unittest.TestCase):
    def test_goals_are_ratios_of_the_same_round(self):
        # Even rounds are twice as fast in every case: per-round ratios stay the same.
        fast, slow = ((200, 80, 190), (100, 1000, 250), 0), ((100, 40, 95), (200, 2000, 500), 0)
        rows = serving_rows([slow, fast, slow, fast, slow])
        m = report(ENV_HEAD + run_line("llm-serving"), rows)["metrics"]
        row = m["serving (host) tokens/s tuned / alone"]
        self.assertEqual(row["value"], 0.95)
        self.assertIs(row["met"], True)
        self.assertIn("p99 over 32 requests a case and round (their maximum)", row["detail"])
        self.assertEqual(m["serving (host) TTFT p99 noisy / tuned"]["value"], 4.0)
        self.assertIs(m["serving (host) TTFT p99 noisy / tuned"]["met"], True)
        self.assertEqual(m["serving (host) tokens/s noisy / alone"]["value"], 0.4)
        self.assertIsNone(m["serving (host) tokens/s noisy / alone"]["met"])
        held = m["serving (host): settings held with the tuner"]["detail"]
        self.assertIn("hinted in 5 of 5 rounds", held)
        self.assertIn("slice [6000] us (alone: slice [1400] us)", held)

    def test_misses_and_failed_requests(self):
        miss = ((100, 40, 80), (200, 2000, 1500), 0)
        slow = report(ENV_HEAD + run_line("llm-serving"), serving_rows([miss] * 5))["metrics"]
        self.assertIs(slow["serving (host) tokens/s tuned / alone"]["met"], False)
        self.assertIs(slow["serving (host) TTFT p99 noisy / tuned"]["met"], False)
        # Figures from a run with failed requests never meet a goal, even with few rounds.
        failed = report(ENV_HEAD + run_line("llm-serving"),
                        serving_rows([((100, 40, 95), (200, 2000, 500), 1)]))["metrics"]
        row = failed["serving (host) tokens/s tuned / alone"]
        self.assertIs(row["met"], False)
        self.assertIn("failed requests: alone 1, noisy 1, tuned 1", row["detail"])

    def test_few_or_disagreeing_rounds_are_inconclusive(self):
        good, bad = ((100, 40, 95), (200, 2000, 500), 0), ((100, 40, 50), (200, 2000, 1900), 0)
        few = report(ENV_HEAD + run_line("llm-serving"), serving_rows([good, good]))["metrics"]
        row = few["serving (host) TTFT p99 noisy / tuned"]
        self.assertIsNone(row["met"])
        self.assertIn("2 rounds, fewer than 5: inconclusive", row["detail"])
        # Median 4.0 meets >= 2.0, but two of five rounds fall below it.
        mixed = report(ENV_HEAD + run_line("llm-serving"),
                       serving_rows([good, bad, good, bad, good]))["metrics"]
        row = mixed["serving (host) TTFT p99 noisy / tuned"]
        self.assertEqual(row["value"], 4.0)
        self.assertIsNone(row["met"])
        self.assertIn("both sides of the goal", row["detail"])

    def test_serving_rows_only_when_the_phase_ran(self):
        res = report(ENV_HEAD + run_line("hot"), hot_rows([10.0], [10.0]))
        self.assertFalse([k for k in res["metrics"] if k.startswith("serving")])
        none = report(ENV_HEAD + run_line("llm-serving"), [])["metrics"]
        self.assertEqual(none["serving (host) tokens/s tuned / alone"]["detail"], "no data")
        self.assertEqual(none["serving (host): settings held with the tuner"]["detail"], "no data")

    def test_each_lane_has_its_rows_and_the_guest_its_placement(self):
        good = ((100, 40, 95), (200, 2000, 500), 0)
        rows = serving_rows([good] * 5) + serving_rows([((10, 4, 8), (20, 200, 40), 0)] * 5,
                                                       lane="serving-guest")
        place = {"place_node": (0, 1), "place_run_share": (1.0, 0.97),
                 "place_run_share_before": (1.0, 0.0), "place_run_samples": (60, 58),
                 "place_private_pages_share": (0.999, 0.94), "place_all_pages_share": (0.95, 0.85),
                 "place_private_mib": (150, 150)}
        for name, (a, b) in place.items():
            rows += [(1, "serving-guest", f"{name}.a", a), (1, "serving-guest", f"{name}.b", b)]
        m = report(ENV_HEAD + run_line("llm-serving"), rows)["metrics"]
        self.assertEqual(m["serving (host) tokens/s tuned / alone"]["value"], 0.95)
        guest = m["serving (guest) tokens/s tuned / alone"]
        self.assertEqual(guest["value"], 0.8)
        self.assertIs(guest["met"], False)
        self.assertNotIn("host load1", guest["detail"])
        self.assertIn("hinted throughput in 5 of 5 rounds",
                      m["serving (guest): server hinted with the tuner"]["detail"])
        self.assertIs(m["serving (guest) server a: running threads on its node 0"]["met"], True)
        self.assertIs(m["serving (guest) server b: running threads on its node 1"]["met"], True)
        self.assertIs(m["serving (guest) server a: private pages on its node 0"]["met"], True)
        pages_b = m["serving (guest) server b: private pages on its node 1"]
        self.assertIs(pages_b["met"], False)
        self.assertIn("every mapping, shared libraries included: 0.85", pages_b["detail"])


if __name__ == "__main__":
    unittest.main()
