//! A loopback stand-in for an OpenAI-compatible server that misbehaves on purpose, for the LLM
//! client tests (`llm_fault.rs`). The real server (`scripts/llm-server.sh`) is the main path.
//!
//! Binds 127.0.0.1 on a free port, one thread per connection (HTTP/1.1, kept alive), and serves:
//!
//! ```text
//! POST /v1/chat/completions   answers according to the mode (below)
//! GET  /health                {"status":"ok"}, or 503 in mode "unhealthy"
//! GET  /_count                {"chat": N, "health": N, "total": N, "sent": N} requests seen
//!                             so far, and body bytes written in mode "huge"
//! GET  /_last                 the last chat request: {"body": ..., "authorization": ...}
//! POST /_mode                 {"mode": M, "fail_count": N, "delay_ms": N, "class": C}
//!                             switches mode and resets the counters
//! ```
//!
//! Modes:
//!
//! ```text
//! ok              valid answer: every asked pid once, in order, class `class`
//! 500 | 503 | 429 that status for the first `fail_count` chat requests (-1: all), then ok;
//!                 429 and 503 carry "Retry-After: 0"
//! garbage         200 with a body that is not JSON
//! truncated       200 with a JSON body cut in half
//! bad-content     valid envelope, message content is truncated JSON
//! slow            sleeps `delay_ms` before answering ok
//! wrong-pids      every pid replaced by another one
//! extra-pids      the asked pids plus two invented ones
//! missing-pids    the first asked pid left out
//! duplicate-pids  the first asked pid answered twice, with different classes
//! bad-class       class "realtime" for every pid
//! reject-schema   400 for response_format json_schema (in the first `fail_count` chat
//!                 requests; -1: all); ok for json_object or none
//! unhealthy       /health answers 503; chat answers ok
//! huge            200, no length, a chat completion whose content runs on for `body_bytes`
//!                 bytes, written until the client stops reading
//! ```
//!
//! [`child_process_entry`] runs the server in a process of its own (another uid's, through
//! setpriv), for the tests of who may answer at the endpoint.
//!
//! The asked pids come from the request's JSON schema (`prefixItems` consts) when there is
//! one, else from every `"pid":N` in the last user message.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

const MODES: [&str; 16] = [
    "ok",
    "500",
    "503",
    "429",
    "garbage",
    "truncated",
    "bad-content",
    "slow",
    "wrong-pids",
    "extra-pids",
    "missing-pids",
    "duplicate-pids",
    "bad-class",
    "reject-schema",
    "unhealthy",
    "huge",
];

/// How the server misbehaves.
#[derive(Debug, Clone)]
pub struct Mode {
    pub mode: String,
    /// How many chat requests fail in the status modes; -1: all.
    pub fail_count: i64,
    pub delay_ms: u64,
    pub class: String,
    /// How long the body of mode "huge" runs.
    pub body_bytes: u64,
}

impl Default for Mode {
    fn default() -> Self {
        Mode {
            mode: "ok".into(),
            fail_count: -1,
            delay_ms: 5000,
            class: "batch".into(),
            body_bytes: 1 << 30,
        }
    }
}

#[derive(Default)]
struct State {
    mode: Mode,
    chat: u64,
    health: u64,
    total: u64,
    /// Body bytes written in mode "huge".
    sent: u64,
    last: Option<Value>,
}

impl State {
    fn set(&mut self, mode: Mode) -> Result<(), String> {
        if !MODES.contains(&mode.mode.as_str()) {
            return Err(format!("unknown mode {}", mode.mode));
        }
        *self = State {
            mode,
            ..State::default()
        };
        Ok(())
    }
}

/// The running server; it stops accepting when dropped.
pub struct Server {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl Server {
    pub fn start(mode: Mode) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let mut state = State::default();
        state.set(mode).expect("a known mode");
        let state = Arc::new(Mutex::new(state));
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let state = state.clone();
                thread::spawn(move || serve_connection(conn, &state));
            }
        });
        Server { port, stop }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

struct Request {
    method: String,
    path: String,
    authorization: Option<String>,
    body: Vec<u8>,
}

fn read_request(r: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut length = 0;
    let mut authorization = None;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().ok()?;
        } else if name.eq_ignore_ascii_case("authorization") {
            authorization = Some(value.to_owned());
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        authorization,
        body,
    })
}

struct Response {
    status: u16,
    body: Vec<u8>,
    retry_after: bool,
    /// Mode "huge": after `body`, this many filler bytes, with no length given.
    stream_bytes: Option<u64>,
}

fn json_response(status: u16, v: &Value) -> Response {
    Response {
        status,
        body: v.to_string().into_bytes(),
        retry_after: false,
        stream_bytes: None,
    }
}

fn error(status: u16, message: &str) -> Response {
    json_response(
        status,
        &json!({ "error": { "code": status, "message": message } }),
    )
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn serve_connection(conn: TcpStream, state: &Mutex<State>) {
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    while let Some(req) = read_request(&mut reader) {
        let resp = handle(&req, state);
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nServer: llm-fault/1\r\nContent-Type: application/json\r\n",
            resp.status,
            reason(resp.status),
        );
        match resp.stream_bytes {
            // The body ends when the connection does.
            Some(_) => head.push_str("Connection: close\r\n"),
            None => head.push_str(&format!("Content-Length: {}\r\n", resp.body.len())),
        }
        if resp.retry_after {
            head.push_str("Retry-After: 0\r\n");
        }
        head.push_str("\r\n");
        if out.write_all(head.as_bytes()).is_err() || out.write_all(&resp.body).is_err() {
            return;
        }
        if let Some(n) = resp.stream_bytes {
            let filler = [b'x'; 64 * 1024];
            let mut left = n;
            while left > 0 {
                let k = left.min(filler.len() as u64) as usize;
                if out.write_all(&filler[..k]).is_err() {
                    break;
                }
                state.lock().unwrap().sent += k as u64;
                left -= k as u64;
            }
            return;
        }
    }
}

fn handle(req: &Request, state: &Mutex<State>) -> Response {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", path) => {
            let mut st = state.lock().unwrap();
            st.total += 1;
            match path {
                "/health" => {
                    st.health += 1;
                    if st.mode.mode == "unhealthy" {
                        error(503, "loading model")
                    } else {
                        json_response(200, &json!({ "status": "ok" }))
                    }
                }
                "/_count" => json_response(
                    200,
                    &json!({ "chat": st.chat, "health": st.health, "total": st.total,
                             "sent": st.sent }),
                ),
                "/_last" => json_response(200, st.last.as_ref().unwrap_or(&json!({}))),
                _ => error(404, "not found"),
            }
        }
        ("POST", "/_mode") => set_mode(&req.body, state),
        ("POST", "/v1/chat/completions") => chat(req, state),
        _ => {
            state.lock().unwrap().total += 1;
            error(404, "not found")
        }
    }
}

fn set_mode(body: &[u8], state: &Mutex<State>) -> Response {
    let m: Value = match serde_json::from_slice(if body.is_empty() { b"{}" } else { body }) {
        Ok(v) => v,
        Err(e) => return error(400, &e.to_string()),
    };
    let mut st = state.lock().unwrap();
    let mode = Mode {
        mode: m["mode"].as_str().unwrap_or("ok").to_owned(),
        fail_count: m["fail_count"].as_i64().unwrap_or(-1),
        delay_ms: m["delay_ms"].as_u64().unwrap_or(st.mode.delay_ms),
        class: m["class"]
            .as_str()
            .map_or(st.mode.class.clone(), str::to_owned),
        body_bytes: m["body_bytes"].as_u64().unwrap_or(st.mode.body_bytes),
    };
    match st.set(mode) {
        Ok(()) => json_response(200, &json!({ "mode": st.mode.mode })),
        Err(e) => error(400, &e),
    }
}

/// The pids a chat request asks about.
fn asked_pids(body: &Value) -> Vec<i64> {
    let schema = &body["response_format"]["json_schema"]["schema"];
    let items = match &schema["prefixItems"] {
        Value::Null => &schema["properties"]["verdicts"]["prefixItems"],
        items => items,
    };
    if let Some(items) = items.as_array().filter(|a| !a.is_empty()) {
        return items
            .iter()
            .map(|i| i["properties"]["pid"]["const"].as_i64().expect("pid const"))
            .collect();
    }
    let text = body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    pids_in(text)
}

/// Every number N in `"pid" : N` of `text`.
fn pids_in(text: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("\"pid\"") {
        let rest = text[i + 5..].trim_start();
        let Some(rest) = rest.strip_prefix(':') else {
            continue;
        };
        let rest = rest.trim_start();
        let end = rest
            .char_indices()
            .find(|&(j, c)| !(c.is_ascii_digit() || (j == 0 && c == '-')))
            .map_or(rest.len(), |(j, _)| j);
        if let Ok(pid) = rest[..end].parse() {
            out.push(pid);
        }
    }
    out
}

fn verdicts(mode: &str, pids: &[i64], class: &str) -> Vec<(i64, String)> {
    let mut v: Vec<(i64, String)> = pids.iter().map(|&p| (p, class.to_owned())).collect();
    match mode {
        "wrong-pids" => {
            v = pids
                .iter()
                .map(|&p| (p + 100_000, class.to_owned()))
                .collect()
        }
        "extra-pids" => {
            v.push((999_991, class.to_owned()));
            v.push((999_992, "latency".into()));
        }
        "missing-pids" if !v.is_empty() => {
            v.remove(0);
        }
        "duplicate-pids" if !pids.is_empty() => v.push((pids[0], "latency".into())),
        "bad-class" => v = pids.iter().map(|&p| (p, "realtime".into())).collect(),
        _ => {}
    }
    v
}

fn chat(req: &Request, state: &Mutex<State>) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return error(400, "request is not json");
    };
    let (n, mode) = {
        let mut st = state.lock().unwrap();
        st.total += 1;
        st.chat += 1;
        st.last = Some(json!({ "body": body, "authorization": req.authorization }));
        (st.chat, st.mode.clone())
    };
    if let Ok(status @ (500 | 503 | 429)) = mode.mode.parse::<u16>() {
        if mode.fail_count < 0 || n as i64 <= mode.fail_count {
            let mut r = error(status, &format!("fault {status}"));
            r.retry_after = status != 500;
            return r;
        }
    }
    if mode.mode == "garbage" {
        return Response {
            status: 200,
            body: b"<html>\x00\x01 this is not json \xff</html>".to_vec(),
            retry_after: false,
            stream_bytes: None,
        };
    }
    if mode.mode == "reject-schema"
        && body["response_format"]["type"] == "json_schema"
        && (mode.fail_count < 0 || n as i64 <= mode.fail_count)
    {
        return json_response(
            400,
            &json!({ "error": { "code": 400, "type": "invalid_request_error",
                                "message": "response_format json_schema unsupported" } }),
        );
    }
    if mode.mode == "slow" {
        thread::sleep(Duration::from_millis(mode.delay_ms));
    }
    if mode.mode == "huge" {
        return Response {
            status: 200,
            body: br#"{"choices":[{"message":{"role":"assistant","content":""#.to_vec(),
            retry_after: false,
            stream_bytes: Some(mode.body_bytes),
        };
    }
    let pids = asked_pids(&body);
    let verdicts: Vec<Value> = verdicts(&mode.mode, &pids, &mode.class)
        .into_iter()
        .map(|(pid, class)| json!({ "pid": pid, "class": class }))
        .collect();
    let mut content = json!({ "verdicts": verdicts }).to_string();
    if mode.mode == "bad-content" {
        content.truncate(content.len() / 2);
    }
    let (prompt, completion) = (100 + 10 * pids.len(), 8 * pids.len());
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut payload = json!({
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": created,
        "model": "fault-server",
        "choices": [{
            "index": 0,
            "finish_reason": "stop",
            "message": { "role": "assistant", "content": content },
        }],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    })
    .to_string()
    .into_bytes();
    if mode.mode == "truncated" {
        payload.truncate(payload.len() / 2);
    }
    Response {
        status: 200,
        body: payload,
        retry_after: false,
        stream_bytes: None,
    }
}

#[test]
fn pids_are_read_from_the_message_when_there_is_no_schema() {
    assert_eq!(
        pids_in(r#"{"pid": 12, "comm": "a"} {"pid":-3} {"pid" : x} "pid":7"#),
        vec![12, -3, 7]
    );
}

/// Serves in mode `SCHED_HINT_FAULT_SERVER_CHILD` when that is set (a test started this
/// binary again as another user, `--exact` on this test): prints `PORT <n>` and serves until
/// stdin closes. Without it, there is nothing to do.
#[test]
fn child_process_entry() {
    let Ok(mode) = std::env::var("SCHED_HINT_FAULT_SERVER_CHILD") else {
        return;
    };
    let server = Server::start(Mode {
        mode,
        ..Default::default()
    });
    println!("PORT {}", server.port);
    std::io::stdout().flush().unwrap();
    let mut sink = String::new();
    while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
}
