//! `tuner run`: metrics over HTTP, SIGHUP, SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::support::{fixture_config, tuner};

fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn daemon_serves_metrics_reloads_and_stops_cleanly() {
    let (_dir, cfg) = fixture_config("interval_ms = 100\nbackend = \"dry-run\"\n\n[metrics]\nenabled = true\nlisten = \"127.0.0.1:0\"\n");
    let mut child = tuner()
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = Pid::from_raw(child.id() as i32);
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut logs = Vec::new();
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("daemon logs its metrics address");
        logs.push(line.clone());
        if let Some(rest) = line.split("http://").nth(1) {
            break rest.split('/').next().unwrap().to_owned();
        }
    };
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");

    wait_for("a rule decision", || {
        metric(
            &get(&addr, "/metrics"),
            "tuner_decisions_total{step=\"rule\"}",
        ) >= 6
    });
    let text = get(&addr, "/metrics");
    assert!(text.starts_with("HTTP/1.1 200 OK"));
    assert!(
        metric(&text, "tuner_writes_set_total") >= 7,
        "dry-run counts its writes"
    );
    let scans = metric(&text, "tuner_scans_total");
    assert_eq!(
        metric(&text, "tuner_decisions_total{step=\"exclusion\"}"),
        3 * scans,
        "two kernel threads and init (pid 1) per scan"
    );
    assert_eq!(
        metric(&text, "tuner_decisions_total{step=\"manual\"}"),
        3 * scans,
        "nice, affinity, slice per scan"
    );
    assert!(get(&addr, "/other").starts_with("HTTP/1.1 404"));

    kill(pid, Signal::SIGHUP).unwrap();
    wait_for("a reload", || {
        metric(&get(&addr, "/metrics"), "tuner_config_reloads_total") == 1
    });

    kill(pid, Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    reader.join().unwrap();
    logs.extend(rx.try_iter());
    assert!(status.success(), "exit {status}\n{}", logs.join("\n"));
    assert!(
        logs.iter().any(|l| l.contains("configuration reloaded")),
        "{}",
        logs.join("\n")
    );
    assert!(
        logs.iter().any(|l| l.contains("hints cleared on exit")),
        "{}",
        logs.join("\n")
    );
}
