#!/usr/bin/env python3
"""Tests for llm_load.py against a fake llama.cpp server on 127.0.0.1:0 that streams the way
the real one does (the server embedded in xllamacpp: "data: {...}" lines, a final event with
"stop": true and "tokens_predicted", Prometheus text on /metrics).

Run: python3 ci/llm_load_test.py   (scripts/test-host.sh runs it)
"""
import contextlib
import io
import json
import sys
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import llm_load  # noqa: E402

# The exposition as the real server wrote it (HELP and TYPE lines, unlabelled samples).
METRICS = """# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total {prompt}
llamacpp:prompt_seconds_total {prompt_s}
llamacpp:tokens_predicted_total {pred}
llamacpp:tokens_predicted_seconds_total {pred_s}
llamacpp:n_decode_total {decode}
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 0
"""


class Fake:
    """What the fake server does: delays, failures, and what it saw."""

    def __init__(self):
        self.first_token_delay_s = 0.0
        self.token_delay_s = 0.0
        self.fail_every = 0  # every Nth request answers 500
        self.cut_stream = False  # end the stream before the final event
        self.metrics = True
        self.bodies = []
        self.lock = threading.Lock()
        self.count = 0
        self.active = 0
        self.max_active = 0
        self.tokens_total = 0


def make_handler(fake):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path != "/metrics" or not fake.metrics:
                self.send_error(404)
                return
            with fake.lock:
                n = fake.tokens_total
            body = METRICS.format(prompt=3 * n, prompt_s=0.5 * n, pred=n, pred_s=0.25 * n,
                                  decode=n).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def chunk(self, data):
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with fake.lock:
                fake.bodies.append(body)
                fake.count += 1
                n = fake.count
                fake.active += 1
                fake.max_active = max(fake.max_active, fake.active)
            try:
                if fake.fail_every and n % fake.fail_every == 0:
                    msg = b'{"error":{"code":500,"message":"boom"}}'
                    self.send_response(500)
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                time.sleep(fake.first_token_delay_s)
                for i in range(body["n_predict"]):
                    if i:
                        time.sleep(fake.token_delay_s)
                    ev = {"content": f" t{i}", "tokens": [100 + i], "stop": False}
                    self.chunk(b"data: " + json.dumps(ev).encode() + b"\n\n")
                if not fake.cut_stream:
                    ev = {"content": "", "tokens": [], "stop": True,
                          "tokens_predicted": body["n_predict"]}
                    self.chunk(b"data: " + json.dumps(ev).encode() + b"\n\n")
                self.chunk(b"")
                with fake.lock:
                    fake.tokens_total += body["n_predict"]
            finally:
                with fake.lock:
                    fake.active -= 1

    return Handler


class Server:
    def __init__(self):
        self.fake = Fake()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self.fake))
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def run_main(args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = llm_load.main(args)
    return rc, out.getvalue(), err.getvalue()


class Requests(unittest.TestCase):
    def test_bodies_are_the_fixed_mix(self):
        with Server() as s:
            llm_load.run_mix("127.0.0.1", s.port, clients=3, requests=2, n_predict=4, seed=7,
                             cache_prompt=False, timeout_s=10)
        bodies = s.fake.bodies
        self.assertEqual(len(bodies), 6)
        for b in bodies:
            self.assertEqual((b["temperature"], b["seed"], b["n_predict"]), (0, 7, 4))
            self.assertTrue(b["stream"] and b["ignore_eos"])
            self.assertFalse(b["cache_prompt"])
        # Client i's request j takes prompt (i + j) mod len: 3 clients x 2 requests.
        want = sorted(llm_load.PROMPTS[(i + j) % len(llm_load.PROMPTS)]
                      for i in range(3) for j in range(2))
        self.assertEqual(sorted(b["prompt"] for b in bodies), want)

    def test_clients_run_concurrently_and_each_waits_for_its_last_answer(self):
        with Server() as s:
            s.fake.first_token_delay_s = 0.2
            _, wall = llm_load.run_mix("127.0.0.1", s.port, clients=4, requests=2, n_predict=2,
                                       seed=1, cache_prompt=False, timeout_s=10)
        self.assertEqual(s.fake.max_active, 4)
        # Serial within a client (two rounds of 0.2 s at least); concurrency across clients
        # is max_active above (a wall-clock upper bound would fail on a loaded host).
        self.assertGreaterEqual(wall, 0.4)

    def test_ttft_latency_and_tokens_are_timed_from_the_stream(self):
        # Delays far apart, so that a loaded host cannot blur which one was measured.
        with Server() as s:
            s.fake.first_token_delay_s = 0.1
            s.fake.token_delay_s = 0.4
            body = llm_load.request_body("p", 3, 1, False)
            r = llm_load.one_request("127.0.0.1", s.port, body, 10)
        self.assertIsNone(r.error)
        self.assertEqual(r.tokens, 3)
        self.assertGreaterEqual(r.ttft_s, 0.1)
        self.assertLess(r.ttft_s, 0.5)
        # Two gaps of 0.4 s after the first token.
        self.assertGreaterEqual(r.latency_s - r.ttft_s, 0.8)
        self.assertEqual(len(r.token_times), 3)
        gaps = [b - a for a, b in zip(r.token_times, r.token_times[1:])]
        self.assertTrue(all(g >= 0.4 for g in gaps), gaps)

    def test_http_errors_and_cut_streams_are_failures_not_figures(self):
        with Server() as s:
            s.fake.fail_every = 2
            results, wall = llm_load.run_mix("127.0.0.1", s.port, 1, 4, 3, 1, False, 10)
        out = llm_load.summarise(results, wall)
        self.assertEqual((out["serve_requests"], out["serve_errors"]), (4, 2))
        self.assertEqual(out["serve_tokens"], 6)
        self.assertIn("http 500", results[1].error)
        with Server() as s:
            s.fake.cut_stream = True
            r = llm_load.one_request("127.0.0.1", s.port, llm_load.request_body("p", 2, 1, False), 10)
        self.assertIn("without a final event", r.error)

    def test_a_dead_server_is_an_error(self):
        with Server() as s:
            port = s.port
        r = llm_load.one_request("127.0.0.1", port, llm_load.request_body("p", 2, 1, False), 2)
        self.assertIsNotNone(r.error)


class Summary(unittest.TestCase):
    def res(self, ttft, lat, times):
        r = llm_load.Result()
        r.ttft_s, r.latency_s, r.token_times, r.tokens = ttft, lat, times, len(times)
        return r

    def test_percentiles_and_rates(self):
        results = [self.res(t / 1000, 2 * t / 1000, [0.0, 0.01, 0.03]) for t in range(1, 101)]
        out = llm_load.summarise(results, wall_s=10.0)
        self.assertEqual(out["serve_ttft_p50_ms"], 50.0)
        self.assertEqual(out["serve_ttft_p99_ms"], 99.0)
        self.assertEqual(out["serve_latency_p99_ms"], 198.0)
        self.assertEqual(out["serve_itl_p99_ms"], 20.0)
        self.assertEqual(out["serve_itl_samples"], 200)
        self.assertEqual(out["serve_tokens"], 300)
        self.assertEqual(out["serve_tokens_per_s"], 30.0)
        self.assertNotIn("serve_server_tokens_predicted", out)

    def test_all_failed_gives_counts_and_no_percentiles(self):
        r = llm_load.Result()
        r.error = "x"
        out = llm_load.summarise([r], 1.0)
        self.assertEqual(out["serve_errors"], 1)
        self.assertNotIn("serve_ttft_p99_ms", out)
        self.assertEqual(out["serve_tokens"], 0)

    def test_server_counters_are_deltas(self):
        before = llm_load.parse_prometheus(METRICS.format(prompt=10, prompt_s=1, pred=20, pred_s=2,
                                                          decode=5))
        after = llm_load.parse_prometheus(METRICS.format(prompt=40, prompt_s=2, pred=120, pred_s=7,
                                                         decode=105))
        out = llm_load.summarise([self.res(0.1, 0.2, [0.0])], 1.0, before, after)
        self.assertEqual(out["serve_server_tokens_predicted"], 100)
        self.assertEqual(out["serve_server_gen_tokens_per_s"], 20.0)
        self.assertEqual(out["serve_server_prompt_tokens_per_s"], 30.0)
        self.assertEqual(out["serve_server_n_decode"], 100)

    def test_prometheus_parser_skips_comments_labels_and_junk(self):
        got = llm_load.parse_prometheus('# HELP a b\na 1\nb{x="y"} 2\nc notanumber\n\nd 4.5 123\n')
        self.assertEqual(got, {"a": 1.0, "d": 4.5})

    def test_sse_parser_stops_at_done_and_skips_other_lines(self):
        lines = [b": ping\n", b"\n", b'data: {"a": 1}\n', b"data: [DONE]\n", b'data: {"b": 2}\n']
        self.assertEqual(list(llm_load.sse_events(lines)), [{"a": 1}])


class Main(unittest.TestCase):
    def test_lines_with_tag_and_server_metrics(self):
        with Server() as s:
            rc, out, _ = run_main(["--url", f"http://127.0.0.1:{s.port}", "--clients", "2",
                                   "--requests", "3", "--n-predict", "4", "--tag", "alone"])
        self.assertEqual(rc, 0)
        got = dict(line.split() for line in out.splitlines())
        self.assertEqual(got["serve_requests.alone"], "6")
        self.assertEqual(got["serve_tokens.alone"], "24")
        # The warm-up request is not in the run, nor in the counters' change.
        self.assertEqual(float(got["serve_server_tokens_predicted.alone"]), 24.0)
        self.assertEqual(len(s.fake.bodies), 7)
        for name, value in got.items():
            float(value)
            self.assertTrue(name.endswith(".alone"), name)

    def test_json_and_no_metrics_endpoint(self):
        with Server() as s:
            s.fake.metrics = False
            rc, out, _ = run_main(["--url", f"http://127.0.0.1:{s.port}", "--clients", "1",
                                   "--requests", "1", "--n-predict", "2", "--json", "--warmup", "0"])
        self.assertEqual(rc, 0)
        got = json.loads(out)
        self.assertEqual(got["serve_tokens"], 2)
        self.assertFalse([k for k in got if k.startswith("serve_server_")])

    def test_failed_requests_make_the_exit_code_non_zero(self):
        with Server() as s:
            s.fake.fail_every = 3
            rc, out, err = run_main(["--url", f"http://127.0.0.1:{s.port}", "--clients", "1",
                                     "--requests", "4", "--n-predict", "2", "--warmup", "0"])
        self.assertEqual(rc, 1)
        self.assertIn("serve_errors 1", out)
        self.assertIn("request failed", err)

    def test_bad_arguments_are_refused(self):
        for args in (["--url", "127.0.0.1:80"], ["--url", "http://h:1", "--clients", "0"],
                     ["--url", "https://h:1"]):
            with self.assertRaises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
                llm_load.parse_args(args)


if __name__ == "__main__":
    unittest.main()
