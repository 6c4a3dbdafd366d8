#!/usr/bin/env python3
"""A fixed request mix against a llama.cpp server; client-side figures as "name.TAG value" lines.

  llm_load.py --url http://127.0.0.1:PORT [--clients K] [--requests R] [--n-predict N]
              [--seed S] [--warmup N] [--cache-prompt] [--timeout-s S] [--tag TAG] [--json]

K clients each send R streaming requests to the native /completion endpoint, one after the
other (a closed loop: a client sends its next request when the last one has finished). The
prompts are a fixed list, client i's request j takes prompt (i + j) mod len; every request
asks for exactly N tokens (ignore_eos), at temperature 0 with a fixed seed, and by default
without the server's prompt cache, so that every request pays its prompt evaluation.

Printed (milliseconds unless the name says otherwise; percentiles are nearest-rank, and
each comes with the count it rests on):
  serve_requests, serve_errors              requests measured, requests that failed
  serve_ttft_p50_ms, serve_ttft_p99_ms      request sent -> first token received
  serve_latency_p50_ms, serve_latency_p99_ms  request sent -> last byte received
  serve_itl_p99_ms, serve_itl_samples       gaps between consecutive tokens of a request
  serve_tokens, serve_wall_s, serve_tokens_per_s  tokens generated over the measured run
  serve_server_*                            the server's Prometheus counters over the run,
                                            where it exports them (--metrics)
The warm-up requests (default 1) are sent before the run and not counted.
"""
import argparse
import http.client
import json
import sys
import threading
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lat_stats import percentile  # noqa: E402

# Different lengths, so that prompt evaluation and generation both show; fixed, so that two
# runs send the same work.
PROMPTS = (
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain how a CPU scheduler decides which task runs next.",
    "List five uses of a paperclip.",
    "Summarise the plot of a detective novel set in a small mountain village, where the "
    "only road is closed by snow and every guest at the inn has a reason to lie.",
)

# llama.cpp's counters (monotonic) whose change over the run is printed, by output name.
COUNTERS = {
    "prompt_tokens": "llamacpp:prompt_tokens_total",
    "prompt_seconds": "llamacpp:prompt_seconds_total",
    "tokens_predicted": "llamacpp:tokens_predicted_total",
    "tokens_predicted_seconds": "llamacpp:tokens_predicted_seconds_total",
    "n_decode": "llamacpp:n_decode_total",
}


class Result:
    """One request: when its first token came, when it ended, its tokens and token times."""

    def __init__(self):
        self.ttft_s = None
        self.latency_s = None
        self.tokens = 0
        self.token_times = []
        self.error = None


def request_body(prompt, n_predict, seed, cache_prompt):
    return {
        "prompt": prompt,
        "n_predict": n_predict,
        "temperature": 0,
        "seed": seed,
        "stream": True,
        "ignore_eos": True,
        "cache_prompt": cache_prompt,
    }


def sse_events(lines):
    """The JSON objects of "data: {...}" lines; other lines (blank, comments) are skipped."""
    for raw in lines:
        line = raw.decode("utf-8", "replace").strip() if isinstance(raw, bytes) else raw.strip()
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        yield json.loads(payload)


def one_request(host, port, body, timeout_s, clock=time.perf_counter):
    """Sends one streaming completion and times it."""
    res = Result()
    data = json.dumps(body).encode()
    t0 = clock()
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("POST", "/completion", body=data,
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            res.error = f"http {resp.status}: {resp.read(200).decode('utf-8', 'replace')}"
            return res
        final = None
        for ev in sse_events(iter(resp.readline, b"")):
            if "error" in ev:
                res.error = f"server error: {ev['error']}"
                return res
            n = len(ev.get("tokens") or ()) or (1 if ev.get("content") else 0)
            if n:
                now = clock()
                if res.ttft_s is None:
                    res.ttft_s = now - t0
                res.token_times.append(now)
                res.tokens += n
            if ev.get("stop"):
                final = ev
        res.latency_s = clock() - t0
        # The final event counts what the server generated; trust it over the chunks.
        if final is not None and isinstance(final.get("tokens_predicted"), int):
            res.tokens = final["tokens_predicted"]
        if final is None:
            res.error = "stream ended without a final event"
        elif res.ttft_s is None:
            res.error = "no token received"
    except (OSError, http.client.HTTPException, ValueError) as e:
        res.error = f"{type(e).__name__}: {e}"
    finally:
        conn.close()
    return res


def parse_prometheus(text):
    """{metric name: value} of the unlabelled samples of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "{" in line:
            continue
        parts = line.split()
        if len(parts) >= 2:
            try:
                out[parts[0]] = float(parts[1])
            except ValueError:
                continue
    return out


def scrape(host, port, timeout_s):
    """The server's metrics, or None where it has no /metrics (not started with --metrics)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", "replace")
        return parse_prometheus(body) if resp.status == 200 else None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def run_mix(host, port, clients, requests, n_predict, seed, cache_prompt, timeout_s,
            clock=time.perf_counter):
    """Runs the mix; returns (results in client-major order, wall seconds)."""
    results = [[None] * requests for _ in range(clients)]
    start = threading.Barrier(clients + 1)

    def client(i):
        start.wait()
        for j in range(requests):
            body = request_body(PROMPTS[(i + j) % len(PROMPTS)], n_predict, seed, cache_prompt)
            results[i][j] = one_request(host, port, body, timeout_s, clock)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = clock()
    for t in threads:
        t.join()
    return [r for row in results for r in row], clock() - t0


def summarise(results, wall_s, before=None, after=None):
    """The figures of a run as an ordered {name: value}."""
    ok = [r for r in results if r.error is None]
    out = {"serve_requests": len(results), "serve_errors": len(results) - len(ok)}
    ms = lambda s: round(s * 1000.0, 3)
    if ok:
        ttft = [r.ttft_s for r in ok]
        lat = [r.latency_s for r in ok]
        out["serve_ttft_p50_ms"] = ms(percentile(ttft, 0.50))
        out["serve_ttft_p99_ms"] = ms(percentile(ttft, 0.99))
        out["serve_latency_p50_ms"] = ms(percentile(lat, 0.50))
        out["serve_latency_p99_ms"] = ms(percentile(lat, 0.99))
        gaps = [b - a for r in ok for a, b in zip(r.token_times, r.token_times[1:])]
        if gaps:
            out["serve_itl_p99_ms"] = ms(percentile(gaps, 0.99))
        out["serve_itl_samples"] = len(gaps)
    tokens = sum(r.tokens for r in ok)
    out["serve_tokens"] = tokens
    out["serve_wall_s"] = round(wall_s, 3)
    out["serve_tokens_per_s"] = round(tokens / wall_s, 3) if wall_s > 0 else 0.0
    if before is not None and after is not None:
        delta = {k: after.get(m, 0.0) - before.get(m, 0.0) for k, m in COUNTERS.items()
                 if m in after}
        for k, v in delta.items():
            out[f"serve_server_{k}"] = round(v, 3)
        if delta.get("tokens_predicted_seconds"):
            out["serve_server_gen_tokens_per_s"] = round(
                delta["tokens_predicted"] / delta["tokens_predicted_seconds"], 3)
        if delta.get("prompt_seconds"):
            out["serve_server_prompt_tokens_per_s"] = round(
                delta["prompt_tokens"] / delta["prompt_seconds"], 3)
    return out


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="the server, http://HOST:PORT")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--requests", type=int, default=8, help="requests per client")
    ap.add_argument("--n-predict", type=int, default=32)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--warmup", type=int, default=1, help="requests before the run, not counted")
    ap.add_argument("--cache-prompt", action="store_true", help="let the server reuse prompts")
    ap.add_argument("--timeout-s", type=float, default=600.0, help="per request")
    ap.add_argument("--tag", default="", help="suffix of every name (name.TAG)")
    ap.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    a = ap.parse_args(argv)
    if min(a.clients, a.requests, a.n_predict) < 1 or a.warmup < 0:
        ap.error("--clients, --requests and --n-predict must be >= 1, --warmup >= 0")
    u = urllib.parse.urlsplit(a.url)
    if u.scheme != "http" or not u.hostname or not u.port:
        ap.error(f"--url must be http://HOST:PORT, got {a.url!r}")
    a.host, a.port = u.hostname, u.port
    return a


def main(argv):
    a = parse_args(argv)
    for k in range(a.warmup):
        w = one_request(a.host, a.port, request_body(PROMPTS[k % len(PROMPTS)], a.n_predict,
                                                     a.seed, a.cache_prompt), a.timeout_s)
        if w.error:
            sys.exit(f"llm_load: warm-up request failed: {w.error}")
    before = scrape(a.host, a.port, a.timeout_s)
    results, wall = run_mix(a.host, a.port, a.clients, a.requests, a.n_predict, a.seed,
                            a.cache_prompt, a.timeout_s)
    after = scrape(a.host, a.port, a.timeout_s) if before is not None else None
    out = summarise(results, wall, before, after)
    for r in results:
        if r.error:
            print(f"llm_load: request failed: {r.error}", file=sys.stderr)
    if a.json:
        print(json.dumps({"tag": a.tag, **out}))
    else:
        suffix = f".{a.tag}" if a.tag else ""
        for k, v in out.items():
            print(f"{k}{suffix} {v}")
    # Figures from a run where requests failed are printed, but the run is not a success.
    return 1 if out["serve_errors"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
