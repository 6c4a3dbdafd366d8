#!/usr/bin/env python3
"""A loopback stand-in for an OpenAI-compatible server that misbehaves on purpose.

Fault injection for the tuner's LLM client tests only; the real server (scripts/llm-server.sh)
is the main path. Standard library only. Binds 127.0.0.1, prints the port on the first line of
stdout, then serves:

  POST /v1/chat/completions   answers according to the mode (below)
  GET  /health                {"status":"ok"}, or 503 in mode "unhealthy"
  GET  /_count                {"chat": N, "health": N, "total": N} requests seen so far
  GET  /_last                 the last chat request: {"body": ..., "authorization": ...}
  POST /_mode                 {"mode": M, "fail_count": N, "delay_ms": N, "class": C}
                              switches mode and resets the counters

Modes:
  ok              valid answer: every asked pid once, in order, class --class
  500 | 503 | 429 that status for the first --fail-count chat requests (-1: all), then ok;
                  429 and 503 carry "Retry-After: 0"
  garbage         200 with a body that is not JSON
  truncated       200 with a JSON body cut in half
  bad-content     valid envelope, message content is truncated JSON
  slow            sleeps --delay-ms before answering ok
  wrong-pids      every pid replaced by another one
  extra-pids      the asked pids plus two invented ones
  missing-pids    the first asked pid left out
  duplicate-pids  the first asked pid answered twice, with different classes
  bad-class       class "realtime" for every pid
  reject-schema   400 for response_format json_schema; ok for json_object or none
  unhealthy       /health answers 503; chat answers ok

The asked pids come from the request's JSON schema (prefixItems consts) when there is one,
else from every '"pid":N' in the last user message.
"""

import argparse
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = {
    "ok", "500", "503", "429", "garbage", "truncated", "bad-content", "slow", "wrong-pids",
    "extra-pids", "missing-pids", "duplicate-pids", "bad-class", "reject-schema", "unhealthy",
}


class State:
    def __init__(self, mode, fail_count, delay_ms, klass):
        self.lock = threading.Lock()
        self.set(mode, fail_count, delay_ms, klass)

    def set(self, mode, fail_count, delay_ms, klass):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode}")
        self.mode, self.fail_count, self.delay_ms, self.klass = mode, fail_count, delay_ms, klass
        self.chat = self.health = self.total = 0
        self.last = None


def asked_pids(body):
    rf = body.get("response_format") or {}
    schema = (rf.get("json_schema") or {}).get("schema") or {}
    items = schema.get("prefixItems")
    if items is None:
        items = ((schema.get("properties") or {}).get("verdicts") or {}).get("prefixItems")
    if items:
        return [int(i["properties"]["pid"]["const"]) for i in items]
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    text = users[-1].get("content", "") if users else ""
    return [int(p) for p in re.findall(r'"pid"\s*:\s*(-?\d+)', text)]


def verdicts(mode, pids, klass):
    v = [{"pid": p, "class": klass} for p in pids]
    if mode == "wrong-pids":
        v = [{"pid": p + 100000, "class": klass} for p in pids]
    elif mode == "extra-pids":
        v += [{"pid": 999991, "class": klass}, {"pid": 999992, "class": "latency"}]
    elif mode == "missing-pids":
        v = v[1:]
    elif mode == "duplicate-pids" and pids:
        v = v + [{"pid": pids[0], "class": "latency"}]
    elif mode == "bad-class":
        v = [{"pid": p, "class": "realtime"} for p in pids]
    return v


def envelope(content, prompt_tokens, completion_tokens):
    return {
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "fault-server",
        "choices": [{
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": content},
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class Handler(BaseHTTPRequestHandler):
    server_version = "llm-fault/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("fault-server: " + (fmt % args) + "\n")

    def send(self, status, payload, headers=None):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        st = self.server.state
        with st.lock:
            st.total += 1
            if self.path == "/health":
                st.health += 1
                mode = st.mode
            elif self.path == "/_count":
                return self.send(200, {"chat": st.chat, "health": st.health, "total": st.total})
            elif self.path == "/_last":
                return self.send(200, st.last or {})
            else:
                return self.send(404, {"error": {"code": 404, "message": "not found"}})
        if mode == "unhealthy":
            return self.send(503, {"error": {"code": 503, "message": "loading model"}})
        return self.send(200, {"status": "ok"})

    def do_POST(self):
        st = self.server.state
        raw = self.read_body()
        if self.path == "/_mode":
            try:
                m = json.loads(raw or b"{}")
                with st.lock:
                    st.set(m.get("mode", "ok"), int(m.get("fail_count", -1)),
                           int(m.get("delay_ms", st.delay_ms)), m.get("class", st.klass))
            except (ValueError, TypeError) as e:
                return self.send(400, {"error": {"code": 400, "message": str(e)}})
            return self.send(200, {"mode": st.mode})
        if self.path != "/v1/chat/completions":
            with st.lock:
                st.total += 1
            return self.send(404, {"error": {"code": 404, "message": "not found"}})
        try:
            body = json.loads(raw)
        except ValueError:
            return self.send(400, {"error": {"code": 400, "message": "request is not json"}})
        with st.lock:
            st.total += 1
            st.chat += 1
            n = st.chat
            mode, fail_count, delay_ms, klass = st.mode, st.fail_count, st.delay_ms, st.klass
            st.last = {"body": body, "authorization": self.headers.get("Authorization")}
        if mode in ("500", "503", "429") and (fail_count < 0 or n <= fail_count):
            headers = {"Retry-After": "0"} if mode != "500" else None
            return self.send(int(mode), {"error": {"code": int(mode), "message": "fault " + mode}},
                             headers)
        if mode == "garbage":
            return self.send(200, b"<html>\x00\x01 this is not json \xff</html>")
        rf_type = (body.get("response_format") or {}).get("type")
        if mode == "reject-schema" and rf_type == "json_schema":
            return self.send(400, {"error": {"code": 400, "type": "invalid_request_error",
                                             "message": "response_format json_schema unsupported"}})
        if mode == "slow":
            time.sleep(delay_ms / 1000.0)
        pids = asked_pids(body)
        content = json.dumps({"verdicts": verdicts(mode, pids, klass)})
        if mode == "bad-content":
            content = content[: len(content) // 2]
        payload = json.dumps(envelope(content, 100 + 10 * len(pids), 8 * len(pids))).encode()
        if mode == "truncated":
            payload = payload[: len(payload) // 2]
        return self.send(200, payload)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--mode", default="ok", choices=sorted(MODES))
    ap.add_argument("--fail-count", type=int, default=-1)
    ap.add_argument("--delay-ms", type=int, default=5000)
    ap.add_argument("--class", dest="klass", default="batch")
    ap.add_argument("--exit-on-stdin-eof", action="store_true",
                    help="exit when stdin closes (a test harness holds it open)")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    srv.state = State(a.mode, a.fail_count, a.delay_ms, a.klass)
    srv.verbose = a.verbose
    print(srv.server_address[1], flush=True)
    if a.exit_on_stdin_eof:
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        sys.stdin.read()
        srv.shutdown()
    else:
        try:
            srv.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
