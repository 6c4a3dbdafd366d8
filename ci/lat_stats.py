#!/usr/bin/env python3
"""Percentiles from the logs of benchmarks not written here, as "name value" lines.

  lat_stats.py rtapp TAG LOGFILE...   rt-app request threads: wakeup latency (wu_lat),
                                      response time (from the period's release to the end
                                      of its work) and missed periods (slack < 0)
  lat_stats.py hog TAG SECONDS LOGFILE...  rt-app CPU-bound threads: loops per second
  lat_stats.py cyclic TAG FILE        cyclictest -h output: wakeup latency percentiles
"""
import math
import sys

RTAPP_COLS = ("idx", "perf", "run", "period", "start", "end", "rel_st", "slack",
              "c_duration", "c_period", "wu_lat")


def percentile(values, p):
    """Nearest-rank percentile of a non-empty list: the smallest value with at least p of the
    values at or below it. (round(x + 0.5) is not ceil: Python rounds halves to even, which
    made p99 of 100 values the maximum.) The epsilon keeps 0.07 * 100 = 7.000000000000001
    at rank 7."""
    v = sorted(values)
    k = max(0, min(len(v) - 1, math.ceil(p * len(v) - 1e-9) - 1))
    return v[k]


def rtapp_rows(path):
    rows = []
    with open(path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            fields = line.split()
            if len(fields) != len(RTAPP_COLS):
                continue
            rows.append(dict(zip(RTAPP_COLS, map(int, fields))))
    return rows


def rtapp(tag, paths):
    wakeup, response, missed = [], [], 0
    for path in paths:
        # A row is one period: run, then wait for the timer, whose expiries keep to a fixed
        # grid ("ref": "unique"); wu_lat is how late the thread woke after it, and slack is
        # the time from the end of the work to the next expiry. So c_period - slack is the
        # time from the period's release to the end of its work, its wakeup delay included.
        # The first period has no release before it and is left out.
        for row in rtapp_rows(path)[1:]:
            wakeup.append(row["wu_lat"])
            response.append(row["c_period"] - row["slack"])
            missed += row["slack"] < 0
    if not wakeup:
        sys.exit(f"lat_stats: no rt-app periods in {paths}")
    for name, vals in (("wakeup", wakeup), ("response", response)):
        print(f"rtapp_{name}_p50_us.{tag} {percentile(vals, 0.50)}")
        print(f"rtapp_{name}_p99_us.{tag} {percentile(vals, 0.99)}")
    print(f"rtapp_periods.{tag} {len(wakeup)}")
    print(f"rtapp_missed_share.{tag} {missed / len(wakeup):.4f}")


def hog(tag, seconds, paths):
    loops = sum(r["perf"] for p in paths for r in rtapp_rows(p))
    print(f"rtapp_hog_loops_per_s.{tag} {loops / float(seconds):.1f}")


def cyclic(tag, path):
    counts, overflows = {}, 0
    with open(path) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 2 and fields[0].isdigit() and not line.startswith("#"):
                counts[int(fields[0])] = counts.get(int(fields[0]), 0) + sum(map(int, fields[1:]))
            elif line.startswith("# Histogram Overflows:"):
                overflows = sum(int(x) for x in line.split(":", 1)[1].split())
    total = sum(counts.values()) + overflows
    if not total:
        sys.exit(f"lat_stats: no cyclictest samples in {path}")
    for name, p in (("p50", 0.50), ("p99", 0.99)):
        rank, seen, value = p * total, 0, None
        for us in sorted(counts):
            seen += counts[us]
            if seen >= rank:
                value = us
                break
        # Past the histogram's last bucket: report the bound, marked by the overflow count.
        print(f"cyclic_{name}_us.{tag} {value if value is not None else max(counts, default=0) + 1}")
    print(f"cyclic_samples.{tag} {total}")
    print(f"cyclic_overflows.{tag} {overflows}")


def main(argv):
    if len(argv) >= 4 and argv[1] == "rtapp":
        rtapp(argv[2], argv[3:])
    elif len(argv) >= 5 and argv[1] == "hog":
        hog(argv[2], argv[3], argv[4:])
    elif len(argv) == 4 and argv[1] == "cyclic":
        cyclic(argv[2], argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
