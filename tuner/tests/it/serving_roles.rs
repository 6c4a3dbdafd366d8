//! Thread roles on the real xllamacpp server of `scripts/llm-server.sh`: while streaming
//! requests run, the catalog's rule gives the thread blocked in accept the listener role
//! and a busy thread the compute role, in `tuner explain` and in `tuner once --dry-run`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::llm_support::{RealServer, REAL_SERVER_KEY};
use crate::support::{live_dry_run_config, run, stderr, stdout, tuner};
use tuner::observe::synthetic::ScratchDir;

/// How long the server may take to show both roles on a loaded host.
const DEADLINE: Duration = Duration::from_secs(180);

/// One streamed completion, read to its end (or the server closing), in a thread.
fn stream_request(port: u16) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let body = r#"{"messages":[{"role":"user","content":"Tell a long story about a cat who sails."}],"max_tokens":300,"stream":true}"#;
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
            return;
        };
        let req = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {REAL_SERVER_KEY}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = s.set_read_timeout(Some(Duration::from_secs(120)));
        if s.write_all(req.as_bytes()).is_ok() {
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        }
    })
}

/// The tid and line of the role lines `tuner explain` printed for `role`.
fn role_lines<'a>(out: &'a str, role: &str) -> Vec<(i32, &'a str)> {
    let section = out.split_once("\nroles (").map_or("", |(_, s)| s);
    section
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "tid").then_some(())?;
            let tid = w.next()?.parse().ok()?;
            (w.next()? == role).then_some((tid, l))
        })
        .collect()
}

#[test]
fn the_served_threads_get_listener_and_compute_roles() {
    let Some((srv, _serial)) = RealServer::get() else {
        return;
    };
    let dir = ScratchDir::new("serving-roles").unwrap();
    let cfg = live_dry_run_config(dir.path());
    let pid = srv.pid.to_string();
    let start = Instant::now();
    let mut requests = Vec::new();
    let mut last = String::new();
    let (listener, compute) = loop {
        assert!(
            start.elapsed() < DEADLINE,
            "no listener and compute roles within {DEADLINE:?}; last explain:\n{last}"
        );
        // Two streams at a time, renewed as they finish: the compute thread must be busy
        // over the whole sample.
        requests.retain(|h: &std::thread::JoinHandle<()>| !h.is_finished());
        while requests.len() < 2 {
            requests.push(stream_request(srv.port));
        }
        let o = run(tuner()
            .arg("-c")
            .arg(&cfg)
            .args(["explain", &pid, "--sample-ms", "1500"]));
        assert!(o.status.success(), "{}", stderr(&o));
        last = stdout(&o);
        assert!(
            last.contains("\"llama.cpp-server-python\" matched (cmdline=*xllamacpp*)"),
            "{last}"
        );
        let listener = role_lines(&last, "listener");
        let compute = role_lines(&last, "compute");
        if let (Some(l), Some(c)) = (listener.first(), compute.first()) {
            break ((l.0, l.1.to_owned()), (c.0, c.1.to_owned()));
        }
    };
    // Exactly one thread listens, and it is the one the kernel shows blocked in accept.
    assert_eq!(role_lines(&last, "listener").len(), 1, "{last}");
    assert!(
        listener.1.contains("(wchan=inet_csk_accept,cpu_pct<=5)"),
        "{last}"
    );
    let wchan = std::fs::read_to_string(format!("/proc/{pid}/task/{}/wchan", listener.0))
        .unwrap_or_default();
    assert_eq!(wchan.trim(), "inet_csk_accept", "{last}");
    assert!(compute.1.contains("(cpu_pct>=20)"), "{last}");
    assert_ne!(listener.0, compute.0);

    // `tuner once --dry-run` reports the same roles with the process's row.
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < DEADLINE,
            "no roles in tuner once; last:\n{last}"
        );
        requests.retain(|h| !h.is_finished());
        while requests.len() < 2 {
            requests.push(stream_request(srv.port));
        }
        let o = run(tuner().arg("-c").arg(&cfg).args([
            "once",
            "--dry-run",
            "--json",
            "--sample-ms",
            "1500",
        ]));
        assert!(o.status.success(), "{}", stderr(&o));
        last = stdout(&o);
        let v: serde_json::Value = serde_json::from_str(&last).unwrap();
        let row = v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["pid"].as_i64() == Some(i64::from(srv.pid)))
            .cloned()
            .unwrap_or_default();
        let role_of = |want: &str| -> Vec<i64> {
            row["roles"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|t| t["role"].as_str() == Some(want))
                        .filter_map(|t| t["tid"].as_i64())
                        .collect()
                })
                .unwrap_or_default()
        };
        if role_of("listener") == [i64::from(listener.0)] && !role_of("compute").is_empty() {
            assert_eq!(row["rule"], "llama.cpp-server-python", "{row}");
            break;
        }
    }
    for h in requests {
        let _ = h.join();
    }
}
