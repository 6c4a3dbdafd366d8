#!/usr/bin/env python3
"""Summarise a `make bench` run: medians over rounds, a ratio per round pair, goals, plots.

Usage: bench_report.py RESULTS_DIR   (reads raw.csv, writes results.json, summary.md, *.png)
"""
import csv
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


# The hot-path loads, and each patched case with its goal for patched / baseline.
HOT_BENCHES = ("hackbench_s", "messaging_s", "pipe_pinned_us")
HOT_CASES = (("hints_off", 1.005), ("hints_all", 1.01), ("hints_cleared", 1.005))


def load(path):
    """{(kernel, name): {round: value}}"""
    data = defaultdict(dict)
    with open(path) as f:
        for row in csv.DictReader(f):
            try:
                data[(row["kernel"], row["name"])][int(row["round"])] = float(row["value"])
            except ValueError:
                continue
    return data


def series(data, kernel, name):
    return data.get((kernel, name), {})


def median(values):
    values = list(values)
    return statistics.median(values) if values else None


def paired_ratio(a, b):
    """Median over rounds of a[r] / b[r], for rounds where both exist."""
    ratios = [a[r] / b[r] for r in a if r in b and b[r]]
    return median(ratios), ratios


PHASES = ("hot", "lat", "numa", "ioctl", "llm", "tuner", "llm-serving")


def phases_run(env_text):
    """The phases of every `run` line bench.sh wrote: a folder may collect several runs."""
    ran = set()
    for line in (env_text or "").splitlines():
        if line.startswith("run ") and ": phases " in line:
            ran.update(line.split(": phases ", 1)[1].split(", ", 1)[0].split(","))
    # A folder from before bench.sh recorded its phases: every row, as then.
    return ran or set(PHASES)


def llm_rows(data, add):
    """The LLM off the hot path: paired busy/idle wakeup p99, within the idle runs' own noise."""
    idle = series(data, "llm", "llm_lat_p99_us.idle")
    busy = series(data, "llm", "llm_lat_p99_us.busy")
    r, rs = paired_ratio(busy, idle)
    if r is None:
        add("latency p99 LLM busy / idle", "<= 1.0 within noise", None, None, "no data")
        return
    # Noise: half the spread of the idle p99 over the pairs, relative to its median.
    mid = median(idle.values())
    noise = (max(idle.values()) - min(idle.values())) / 2 / mid if mid else 0.0
    tokens = series(data, "llm", "llm_tokens.busy")
    idle_tokens = series(data, "llm", "llm_tokens.idle")
    reqs = series(data, "llm", "llm_requests.busy")
    proc = series(data, "llm", "llm_processing.busy")
    # Busy: the model produced tokens during the run, or was working at both of its ends.
    busy_ok = bool(busy) and all(tokens.get(k, 0) > 0 or proc.get(k, 0) > 0 for k in busy)
    add("latency p99 LLM busy / idle", f"<= 1.0 + noise ({noise:.3f})", round(r, 3),
        r <= 1.0 + noise and busy_ok,
        f"p99 idle {mid:.0f} us, busy {median(busy.values()):.0f} us; per pair "
        + ", ".join(f"{x:.2f}" for x in rs)
        + f"; model busy at both ends of {sum(1 for v in proc.values() if v > 0)} of {len(busy)} busy runs"
        + f"; model tokens during busy runs {sorted(int(v) for v in tokens.values())}, "
        f"idle runs {sorted(int(v) for v in idle_tokens.values())}; "
        f"tuner requests {sorted(int(v) for v in reqs.values())}")
    rb, _ = paired_ratio(series(data, "llm", "llm_rps.busy"), series(data, "llm", "llm_rps.idle"))
    add("requests/s LLM busy / idle", "report", rb and round(rb, 3), None, "median of pairs")
    one = lambda name: series(data, "llm", name).get(1)
    reqs, bins = one("llm_cache_requests"), one("llm_cache_binaries")
    if reqs is None or not bins:
        add("model requests per binary (answer cache on)", "<= 1.0", None, None, "no data")
        return
    # One question per binary is the cache's promise; batching may make it less.
    add("model requests per binary (answer cache on)", "<= 1.0", round(reqs / bins, 3),
        reqs / bins <= 1.0,
        f"{int(reqs)} requests for {int(bins)} binaries over {int(one('llm_cache_passes') or 0)} passes; "
        f"{int(one('llm_cache_dropped') or 0)} answers or entries dropped by validation")


def main():
    out = Path(sys.argv[1])
    data = load(out / "raw.csv")
    env = out / "environment.txt"
    env_text = env.read_text() if env.exists() else None
    # Rows of a phase that was not run are left out; a phase that ran and left no
    # figures keeps its rows, marked "no data".
    ran = phases_run(env_text)
    rows = []
    result = {"rounds": len({r for v in data.values() for r in v}), "metrics": {}}

    def add(label, goal, value, ok, detail):
        if goal == "report":
            verdict = "n/a"
        elif value is None:
            verdict = "no data"
        else:
            verdict = "met" if ok else ("not met" if ok is not None else "inconclusive")
        rows.append((label, goal, value, verdict, detail))
        result["metrics"][label] = {"goal": goal, "value": value, "met": ok, "detail": detail}

    for bench in HOT_BENCHES if "hot" in ran else ():
        unit = bench.rsplit("_", 1)[1]
        base = series(data, "baseline", f"{bench}.baseline")
        for tag, goal in HOT_CASES:
            pat = series(data, "patched", f"{bench}.{tag}")
            r, rs = paired_ratio(pat, base)
            if r is None:
                add(f"{bench} {tag} / baseline", f"<= {goal:.3f}", None, None, "no data")
                continue
            # A median inside the goal means nothing when the rounds scatter more than the
            # margin being tested: say so instead of "met".
            spread = (max(rs) - min(rs)) / 2
            ok = r <= goal if spread <= goal - 1 else None
            add(f"{bench} {tag} / baseline", f"<= {goal:.3f}", round(r, 4), ok,
                f"median {median(pat.values()):.4f} {unit} vs {median(base.values()):.4f} {unit}; per round "
                + ", ".join(f"{x:.4f}" for x in rs)
                + ("" if ok is not None else f"; rounds spread +/-{spread:.3f}, wider than the goal's margin: inconclusive"))

    if "lat" in ran:
        lat_rows(data, add)
        bench_rows(data, add)
    if "numa" in ran:
        numa_rows(data, add)
    if "llm" in ran:
        llm_rows(data, add)
    if "llm-serving" in ran:
        serving_rows(data, add)
    if "ioctl" in ran:
        for name in ("ioctl_get_info_us", "ioctl_set_us", "ioctl_batch1000_us"):
            m = median(series(data, "patched", name).values())
            add(name, "report", m, None, "median over rounds")

    tuner = out / "tuner-bench.txt"
    result["tuner_bench"] = tuner.read_text() if tuner.exists() else None
    result["environment"] = env_text
    result["phases"] = [p for p in PHASES if p in ran]

    lines = ["| metric | goal | value | verdict | detail |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]
    # A run of the tuner phase alone has no rows: no empty table.
    table = "\n".join(lines) if rows else ""
    tuner_md = f"## tuner cost (host)\n\n```\n{result['tuner_bench']}```\n" if result["tuner_bench"] else ""
    (out / "summary.md").write_text(
        f"# sched_hint benchmark\n\n```\n{result['environment'] or ''}```\n\n{table}\n\n{tuner_md}")
    (out / "results.json").write_text(json.dumps(result, indent=2))
    plots(data, out)
    print(table)
    if result["tuner_bench"]:
        print("\ntuner cost (host):\n" + result["tuner_bench"])
    print(f"\nfull results: {out}")


def lat_rows(data, add):
    """The latency class: hinted vs unhinted wakeup latency, and the background's throughput."""
    p99_u = series(data, "patched", "lat_p99_us.unhinted")
    p99_h = series(data, "patched", "lat_p99_us.hinted")
    r, rs = paired_ratio(p99_u, p99_h)
    add("latency p99 unhinted / hinted", ">= 3.0", r and round(r, 2), r is not None and r >= 3.0,
        f"p99 {median(p99_u.values())} us -> {median(p99_h.values())} us; per round "
        + ", ".join(f"{x:.2f}" for x in rs) if r else "no data")
    for p in ("p50", "p999"):
        u, h = series(data, "patched", f"lat_{p}_us.unhinted"), series(data, "patched", f"lat_{p}_us.hinted")
        r, _ = paired_ratio(u, h)
        add(f"latency {p} unhinted / hinted", "report", r and round(r, 2), None,
            f"{median(u.values())} us -> {median(h.values())} us" if r else "no data")
    r, rs = paired_ratio(series(data, "patched", "lat_rps.hinted"), series(data, "patched", "lat_rps.unhinted"))
    add("requests/s hinted / unhinted", "report", r and round(r, 3), None,
        "per round " + ", ".join(f"{x:.2f}" for x in rs) if r else "no data")
    u2, h2 = series(data, "patched", "lat_p99_us.unhinted_2ms"), series(data, "patched", "lat_p99_us.hinted_2ms")
    r, rs = paired_ratio(u2, h2)
    rr, _ = paired_ratio(series(data, "patched", "lat_rps.hinted_2ms"), series(data, "patched", "lat_rps.unhinted_2ms"))
    add("2 ms bursts: latency p99 unhinted / hinted", "report", r and round(r, 2), None,
        f"p99 {median(u2.values())} us -> {median(h2.values())} us; requests/s hinted / unhinted "
        f"{rr and round(rr, 3)}" if r else "no data")
    u2c, h2c = series(data, "patched", "lat_p99_us.unhinted_2cpu"), series(data, "patched", "lat_p99_us.hinted_2cpu")
    r, rs = paired_ratio(u2c, h2c)
    add("two busy vCPUs (emulator-bound): latency p99 unhinted / hinted", "report", r and round(r, 2), None,
        f"p99 {median(u2c.values())} us -> {median(h2c.values())} us; per round "
        + ", ".join(f"{x:.2f}" for x in rs) if r else "no data")
    bg_u = series(data, "patched", "bg_iters_per_s.unhinted")
    bg_h = series(data, "patched", "bg_iters_per_s.hinted")
    r, rs = paired_ratio(bg_h, bg_u)
    add("background throughput hinted / unhinted", ">= 0.95", r and round(r, 3),
        r is not None and r >= 0.95, "per round " + ", ".join(f"{x:.3f}" for x in rs) if r else "no data")


def ratio_row(data, add, label, goal, num, den, ok_fn):
    """One paired ratio num/den of two patched series, with its rounds and medians."""
    a, b = series(data, "patched", num), series(data, "patched", den)
    r, rs = paired_ratio(a, b)
    add(label, goal, r and round(r, 3), None if goal == "report" or r is None else ok_fn(r),
        f"{median(a.values())} -> {median(b.values())}; per round " + ", ".join(f"{x:.2f}" for x in rs)
        if r else "no data")


def bench_rows(data, add):
    """rt-app and cyclictest (benchmarks not written here), unhinted vs latency-hinted."""
    ratio_row(data, add, "rt-app wakeup p99 unhinted / hinted", ">= 3.0",
              "rtapp_wakeup_p99_us.unhinted", "rtapp_wakeup_p99_us.hinted", lambda r: r >= 3.0)
    ratio_row(data, add, "rt-app wakeup p50 unhinted / hinted", "report",
              "rtapp_wakeup_p50_us.unhinted", "rtapp_wakeup_p50_us.hinted", None)
    # The request must also finish no later: the class may not trade completion for wakeup.
    ratio_row(data, add, "rt-app response p99 hinted / unhinted", "<= 1.0",
              "rtapp_response_p99_us.hinted", "rtapp_response_p99_us.unhinted", lambda r: r <= 1.0)
    ratio_row(data, add, "rt-app response p50 hinted / unhinted", "report",
              "rtapp_response_p50_us.hinted", "rtapp_response_p50_us.unhinted", None)
    ratio_row(data, add, "rt-app CPU-bound loops/s hinted / unhinted", ">= 0.95",
              "rtapp_hog_loops_per_s.hinted", "rtapp_hog_loops_per_s.unhinted", lambda r: r >= 0.95)
    for tag in ("unhinted", "hinted"):
        m = median(series(data, "patched", f"rtapp_missed_share.{tag}").values())
        add(f"rt-app missed periods, {tag}", "report", m, None, "share of periods with negative slack")
    ratio_row(data, add, "cyclictest p99 unhinted / hinted", ">= 3.0",
              "cyclic_p99_us.unhinted", "cyclic_p99_us.hinted", lambda r: r >= 3.0)
    ratio_row(data, add, "cyclictest p50 unhinted / hinted", "report",
              "cyclic_p50_us.unhinted", "cyclic_p50_us.hinted", None)


SERVING_CASES = ("alone", "noisy", "tuned")


# The serving lanes: the raw.csv kernel column and the label their rows carry.
SERVING_LANES = (("serving", "serving (host)"), ("serving-guest", "serving (guest)"))


def serving_rows(data, add):
    """llama.cpp serving (scripts/bench-serving.sh), each lane that has rows: a request mix
    alone, beside noisy neighbours, and beside them with the tuner; ratios of the same
    round's cases. The guest lane adds where two spread servers ran and kept their pages."""
    for kernel, label in SERVING_LANES:
        serving_lane_rows(data, add, kernel, label)
    placement_rows(data, add)


def placement_rows(data, add):
    """Two servers in the guest, spread one per node by the tuner: the share of each one's
    running-thread samples and of its private pages on its own node (goal >= 0.95)."""
    s = lambda name, server: series(data, "serving-guest", f"{name}.{server}").get(1)
    for server in ("a", "b"):
        node = s("place_node", server)
        if node is None:
            continue
        run, before = s("place_run_share", server), s("place_run_share_before", server)
        samples = s("place_run_samples", server)
        add(f"serving (guest) server {server}: running threads on its node {int(node)}", ">= 0.95",
            run, run is not None and run >= 0.95,
            f"{int(samples or 0)} samples of running threads while it served; before the tuner "
            f"{before}")
        priv, every = s("place_private_pages_share", server), s("place_all_pages_share", server)
        add(f"serving (guest) server {server}: private pages on its node {int(node)}", ">= 0.95",
            priv, priv is not None and priv >= 0.95,
            f"{int(s('place_private_mib', server) or 0)} MiB private (the model read with "
            f"--no-mmap, heaps); every mapping, shared libraries included: {every}")


def serving_lane_rows(data, add, kernel, label):
    s = lambda name, case: series(data, kernel, f"{name}.{case}")
    errors = {c: int(sum(s("serve_errors", c).values())) for c in SERVING_CASES}
    requests = {c: int(median(s("serve_requests", c).values()) or 0) for c in SERVING_CASES}
    load = {c: median(s("serve_host_load1", c).values()) for c in SERVING_CASES}
    failed = ", ".join(f"{c} {n}" for c, n in errors.items() if n)
    # Nearest-rank p99 of fewer than 100 requests is their maximum: say how many there were.
    n = requests["noisy"]
    context = f"; p99 over {n} requests a case and round" + (" (their maximum)" if 0 < n < 100 else "")
    if any(load[c] is not None for c in SERVING_CASES):
        context += "; host load1 " + ", ".join(
            f"{c} {load[c]:.2f}" for c in SERVING_CASES if load[c] is not None)
    context += f"; failed requests: {failed}" if failed else ""

    def pair(label, goal, num, den, ok_fn=None, fmt="{:.2f}"):
        a, b = num, den
        r, rs = paired_ratio(a, b)
        if r is None:
            add(label, goal, None, None, "no data")
            return
        ok, why = None, ""
        if goal != "report":
            # A verdict needs MEASURING.md's five rounds, and rounds that agree on which side
            # of the goal they fall; failed requests miss it whatever the ratio.
            if failed:
                ok = False
            elif len(rs) < 5:
                why = f"; {len(rs)} rounds, fewer than 5: inconclusive"
            elif all(ok_fn(x) for x in rs) or not any(ok_fn(x) for x in rs):
                ok = ok_fn(r)
            else:
                why = "; rounds fall on both sides of the goal: inconclusive"
        add(label, goal, round(r, 3), ok,
            f"{fmt.format(median(a.values()))} / {fmt.format(median(b.values()))}; per round "
            + ", ".join(f"{x:.2f}" for x in rs) + (context + why if goal != "report" else ""))

    tps = {c: s("serve_tokens_per_s", c) for c in SERVING_CASES}
    ttft = {c: s("serve_ttft_p99_ms", c) for c in SERVING_CASES}
    pair(f"{label} tokens/s tuned / alone", ">= 0.9", tps["tuned"], tps["alone"], lambda r: r >= 0.9)
    pair(f"{label} TTFT p99 noisy / tuned", ">= 2.0", ttft["noisy"], ttft["tuned"], lambda r: r >= 2.0,
         fmt="{:.0f} ms")
    pair(f"{label} tokens/s noisy / alone", "report", tps["noisy"], tps["alone"])
    pair(f"{label} TTFT p99 noisy / alone", "report", ttft["noisy"], ttft["alone"], fmt="{:.0f} ms")
    pair(f"{label} TTFT p50 noisy / tuned", "report", s("serve_ttft_p50_ms", "noisy"),
         s("serve_ttft_p50_ms", "tuned"), fmt="{:.0f} ms")
    pair(f"{label} latency p99 noisy / tuned", "report", s("serve_latency_p99_ms", "noisy"),
         s("serve_latency_p99_ms", "tuned"), fmt="{:.0f} ms")
    # What the server and a CPU hog held while the tuner ran: a row's hint must be visible.
    hinted = s("serve_tuner_hinted", "tuned")
    held = lambda name: sorted({int(v) for v in s(name, "tuned").values()})
    if not hinted:
        add(f"{label}: settings held with the tuner", "report", None, None, "no data")
        return
    if kernel == "serving-guest":
        # The guest reads the hint back from /proc/PID/sched, not the stock settings.
        add(f"{label}: server hinted with the tuner", "report", int(sum(hinted.values())), None,
            f"server hinted throughput in {int(sum(hinted.values()))} of {len(hinted)} rounds")
        return
    add(f"{label}: settings held with the tuner", "report",
        int(sum(hinted.values())) if hinted else None, None,
        f"server hinted in {int(sum(hinted.values()))} of {len(hinted)} rounds; server's busiest "
        f"thread policy {held('serve_sched_policy')} nice {held('serve_sched_nice')} slice "
        f"{held('serve_sched_slice_us')} us (alone: slice {sorted({int(v) for v in s('serve_sched_slice_us', 'alone').values()})} us); "
        f"a CPU hog at the end: policy {held('serve_hog_policy')} nice {held('serve_hog_nice')}"
        if hinted else "no data")


def numa_rows(data, add):
    """NUMA placement: share of a node-1-hinted task's CPU samples and pages on node 1."""
    for name, goal in (("numa_cpu_share_node1", 0.99), ("numa_page_share_node1", 0.95)):
        h = series(data, "patched", f"{name}.hinted")
        u = series(data, "patched", f"{name}.unhinted")
        m = median(h.values())
        add(f"{name} (hinted to node 1)", f">= {goal}", m and round(m, 4), m is not None and m >= goal,
            f"unhinted {median(u.values())}" if u else "")


def plot_hot(ax, data):
    labels, values, lo, hi = [], [], [], []
    for bench in HOT_BENCHES:
        base = series(data, "baseline", f"{bench}.baseline")
        for tag, _ in HOT_CASES:
            r, rs = paired_ratio(series(data, "patched", f"{bench}.{tag}"), base)
            if r is not None:
                labels.append(f"{bench.split('_')[0]}\n{tag.removeprefix('hints_')}")
                values.append(r)
                lo.append(r - min(rs))
                hi.append(max(rs) - r)
    # Points, not bars from zero: the question is a fraction of a percent around 1.0.
    ax.errorbar(range(len(values)), values, yerr=[lo, hi], fmt="o", capsize=3, color="#4c72b0")
    ax.axhline(1.0, color="black", linewidth=0.8)
    for goal, style in zip(sorted({g for _, g in HOT_CASES}), ("--", ":")):
        ax.axhline(goal, color="#c44e52", linestyle=style, linewidth=0.8, label=f"goal {goal}")
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_ylabel("patched / baseline (median of rounds, bars: min-max)")
    ax.legend(fontsize=7)
    ax.set_title("hot path: patched (hints off, all, cleared) / baseline")


def plot_lat(ax, data):
    for i, tag in enumerate(("unhinted", "hinted")):
        vals = [median(series(data, "patched", f"lat_{p}_us.{tag}").values()) or 0
                for p in ("p50", "p99", "p999")]
        ax.bar([x + i * 0.4 for x in range(3)], vals, width=0.4, label=tag)
    ax.set_xticks([x + 0.2 for x in range(3)], ["p50", "p99", "p99.9"])
    ax.set_ylabel("wakeup latency, us (median over rounds)")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("latency class vs unhinted (300 us requests, one CPU, 2 CPU hogs)")


def plot_numa(ax, data):
    for i, tag in enumerate(("unhinted", "hinted")):
        vals = [median(series(data, "patched", f"{n}.{tag}").values()) or 0
                for n in ("numa_cpu_share_node1", "numa_page_share_node1")]
        ax.bar([x + i * 0.4 for x in range(2)], vals, width=0.4, label=tag)
    ax.set_xticks([0.2, 1.2], ["CPU samples\non node 1", "pages\non node 1"])
    ax.set_ylim(0, 1.05)
    ax.legend()
    ax.set_title("NUMA: task hinted to node 1")


def plot_serving(ax, data):
    """Each lane's noisy and tuned cases over its own alone case: tokens/s and TTFT p99."""
    metrics = (("serve_tokens_per_s", "tokens/s"), ("serve_ttft_p99_ms", "TTFT p99"))
    bars = [(kernel, label, case) for kernel, label in SERVING_LANES
            for case in ("noisy", "tuned") if series(data, kernel, f"serve_tokens_per_s.{case}")]
    width = 0.8 / max(len(bars), 1)
    for i, (kernel, label, case) in enumerate(bars):
        vals = []
        for name, _ in metrics:
            r, _ = paired_ratio(series(data, kernel, f"{name}.{case}"),
                                series(data, kernel, f"{name}.alone"))
            vals.append(r or 0)
        ax.bar([x + i * width for x in range(len(metrics))], vals, width=width,
               label=f"{label.removeprefix('serving ')} {case}")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.axhline(0.9, color="#c44e52", linestyle="--", linewidth=0.8, label="tokens/s goal 0.9")
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(metrics))], [m for _, m in metrics])
    ax.set_yscale("log")
    ax.set_ylabel("case / alone (median of per-round ratios)")
    ax.legend(fontsize=7)
    ax.set_title("llama.cpp serving: with neighbours, without and with the tuner")


def plot_placement(ax, data):
    """Two servers spread by the tuner in the guest: shares on each one's own node."""
    s = lambda name, server: series(data, "serving-guest", f"{name}.{server}").get(1) or 0
    names = (("place_run_share_before", "running\nbefore"), ("place_run_share", "running\nafter"),
             ("place_private_pages_share", "private pages\nafter"))
    for i, server in enumerate(("a", "b")):
        ax.bar([x + i * 0.4 for x in range(len(names))], [s(n, server) for n, _ in names],
               width=0.4, label=f"server {server}")
    ax.axhline(0.95, color="#c44e52", linestyle="--", linewidth=0.8, label="goal 0.95")
    ax.set_xticks([x + 0.2 for x in range(len(names))], [t for _, t in names], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share on its own node")
    ax.legend(fontsize=7)
    ax.set_title("two servers, one per node (guest)")


def plots(data, out):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plots", file=sys.stderr)
        return
    # One panel per phase that has data: a run of some phases (--phases) plots only those.
    panels = [(f, width) for f, key, width in ((plot_hot, "hackbench_s.baseline", 7),
                                               (plot_lat, "lat_p99_us.unhinted", 5),
                                               (plot_numa, "numa_cpu_share_node1.hinted", 5),
                                               (plot_serving, "serve_tokens_per_s.alone", 6),
                                               (plot_placement, "place_run_share.a", 5))
              if any(name == key for _, name in data)]
    if not panels:
        return
    widths = [w for _, w in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(sum(widths), 4.5), squeeze=False,
                             gridspec_kw={"width_ratios": widths})
    for ax, (f, _) in zip(axes[0], panels):
        f(ax, data)
    fig.tight_layout()
    fig.savefig(out / "bench.png", dpi=100)


if __name__ == "__main__":
    main()
