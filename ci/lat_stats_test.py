#!/usr/bin/env python3
"""Tests for lat_stats.py over logs in the formats rt-app 1.0 and cyclictest write.

Run: python3 ci/lat_stats_test.py   (scripts/test-host.sh runs it)
"""
import contextlib
import io
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lat_stats  # noqa: E402

RTAPP_HEAD = ("# Policy : SCHED_OTHER priority : 0\n"
              "#idx     perf      run   period           start             end"
              "          rel_st      slack c_duration   c_period     wu_lat\n")


def rtapp_line(slack, wu_lat, perf=5454):
    return f"   0 {perf} 86 20000 1 2 3 {slack} 300 20000 {wu_lat}\n"


def run(fn, *args):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        fn(*args)
    return dict(line.split() for line in out.getvalue().splitlines())


class Percentile(unittest.TestCase):
    def test_nearest_rank(self):
        v = list(range(1, 101))
        # p99 of 1..100 is 99: the old round(x + 0.5) gave 100 (halves round to even).
        self.assertEqual(lat_stats.percentile(v, 0.99), 99)
        self.assertEqual(lat_stats.percentile(v, 0.50), 50)
        self.assertEqual(lat_stats.percentile(v, 0.07), 7)
        self.assertEqual(lat_stats.percentile(list(range(1, 301)), 0.99), 297)
        self.assertEqual(lat_stats.percentile([5], 0.99), 5)
        self.assertEqual(lat_stats.percentile([3, 1, 2], 1.0), 3)
        self.assertEqual(lat_stats.percentile([3, 1, 2], 0.0), 1)


class RtApp(unittest.TestCase):
    def test_response_is_release_to_end_of_work_and_the_first_period_is_left_out(self):
        with tempfile.TemporaryDirectory() as d:
            log = Path(d) / "req-req-0.log"
            # Periods 2 and 3: the work ended 300 us and 12355 us after the release; the
            # second overran into the next period by nothing, a fourth one did (slack < 0).
            log.write_text(RTAPP_HEAD + rtapp_line(0, 99999) + rtapp_line(19700, 100)
                           + rtapp_line(7645, 12261) + rtapp_line(-50, 20))
            got = run(lat_stats.rtapp, "t", [str(log)])
        self.assertEqual(got["rtapp_periods.t"], "3")
        self.assertEqual(got["rtapp_response_p50_us.t"], "12355")
        self.assertEqual(got["rtapp_response_p99_us.t"], "20050")
        self.assertEqual(got["rtapp_wakeup_p99_us.t"], "12261")
        self.assertEqual(got["rtapp_missed_share.t"], "0.3333")

    def test_hog_loops_per_second(self):
        with tempfile.TemporaryDirectory() as d:
            log = Path(d) / "hog-hog-0.log"
            log.write_text(RTAPP_HEAD + rtapp_line(0, 0, perf=100) + rtapp_line(0, 0, perf=300))
            got = run(lat_stats.hog, "t", "2", [str(log)])
        self.assertEqual(got["rtapp_hog_loops_per_s.t"], "200.0")


class Cyclictest(unittest.TestCase):
    def test_percentiles_from_the_histogram_with_overflows(self):
        with tempfile.TemporaryDirectory() as d:
            out = Path(d) / "cyclic.out"
            # 2 threads: 50 samples at 10 us, 48 at 100 us, and 2 overflows past the histogram.
            out.write_text("# /dev/cpu_dma_latency set to 0us\n# Histogram\n"
                           "000010 000025 000025\n000100 000024 000024\n000101 000000 000000\n"
                           "# Total: 000000049 000000049\n# Histogram Overflows: 00001 00001\n"
                           "# Histogram Overflow at cycle number:\n# Thread 0: 00007\n")
            got = run(lat_stats.cyclic, "t", str(out))
        self.assertEqual(got["cyclic_samples.t"], "100")
        self.assertEqual(got["cyclic_p50_us.t"], "10")
        # The 99th sample is past the last bucket: the bound, past the histogram's end.
        self.assertEqual(got["cyclic_p99_us.t"], "102")
        self.assertEqual(got["cyclic_overflows.t"], "2")


if __name__ == "__main__":
    unittest.main()
