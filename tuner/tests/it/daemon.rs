//! `tuner run`: metrics over HTTP, SIGHUP, SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::support::{fixture_config, tuner};

pub fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// A `tuner run` whose stderr is read line by line as it is written.
pub struct Run {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    reader: Option<JoinHandle<()>>,
    /// Every line read so far.
    logs: Vec<String>,
}

impl Run {
    /// Starts `cmd`, a `tuner run`, with its stdout dropped and its stderr read.
    pub fn start(cmd: &mut Command) -> Run {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Run {
            child,
            lines,
            reader: Some(reader),
            logs: Vec::new(),
        }
    }

    /// The next line, which must come within 10 s; `what` says what was waited for.
    pub fn next_line(&mut self, what: &str) -> String {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(10))
            .expect(what);
        self.logs.push(line.clone());
        line
    }

    /// The `host:port` of the metrics endpoint, from the line the daemon logs at start.
    pub fn metrics_addr(&mut self) -> String {
        loop {
            let line = self.next_line("daemon logs its metrics address");
            if let Some(rest) = line.split("http://").nth(1) {
                return rest.split('/').next().unwrap().to_owned();
            }
        }
    }

    /// Once the process has exited: every line it wrote.
    pub fn finish(mut self) -> Vec<String> {
        self.reader.take().unwrap().join().unwrap();
        let mut logs = std::mem::take(&mut self.logs);
        logs.extend(self.lines.try_iter());
        logs
    }
}

/// A test that panics, or returns early, leaves no daemon behind.
impl Drop for Run {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn daemon_serves_metrics_reloads_and_stops_cleanly() {
    let (_dir, cfg) = fixture_config("interval_ms = 100\nbackend = \"dry-run\"\n\n[metrics]\nenabled = true\nlisten = \"127.0.0.1:0\"\n");
    let mut run = Run::start(tuner().arg("--config").arg(&cfg).arg("run"));
    let pid = Pid::from_raw(run.child.id() as i32);
    let addr = run.metrics_addr();
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
    let status = run.child.wait().unwrap();
    let logs = run.finish();
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

/// Copies the tree at `from` to `to`, symlinks as symlinks.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ft = e.file_type().unwrap();
        if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if ft.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Issue 19, deliver 3: the exit is bounded even when a scan never returns (a /proc read
/// that blocks; here a FIFO nobody writes to stands in for one). The daemon restores without
/// the scan after 2 s; dropping the runtime then waited for the stuck scan thread for ever.
#[test]
fn a_stuck_scan_does_not_hold_up_the_exit() {
    let dir = tuner::observe::synthetic::ScratchDir::new("it-stuck").unwrap();
    let fixture = crate::support::fixture();
    copy_tree(&fixture.join("proc"), &dir.path().join("proc"));
    let stat = dir.path().join("proc/600/stat");
    std::fs::remove_file(&stat).unwrap();
    nix::unistd::mkfifo(&stat, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let cfg = dir.path().join("tuner.toml");
    std::fs::write(
        &cfg,
        format!(
            "[observe]\nproc_root = {:?}\nsys_root = {:?}\n\n[rules]\npaths = []\n\n\
             [daemon]\nbackend = \"dry-run\"\ninterval_ms = 100\ndevice = {:?}\nlock_path = {:?}\n\
             state_file = {:?}\n",
            dir.path().join("proc").display().to_string(),
            fixture.join("sys").display().to_string(),
            dir.path().join("no-device").display().to_string(),
            dir.path().join("tuner.lock").display().to_string(),
            dir.path().join("state.json").display().to_string(),
        ),
    )
    .unwrap();
    let mut run = Run::start(
        tuner()
            .env("RUST_LOG", "info")
            .arg("--config")
            .arg(&cfg)
            .arg("run"),
    );
    // Started, and the first scan stuck on the FIFO.
    while !run.next_line("the daemon starts").contains("tuner running") {}
    std::thread::sleep(Duration::from_millis(300));
    kill(Pid::from_raw(run.child.id() as i32), Signal::SIGTERM).unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = run.child.try_wait().unwrap() {
            break Some(s);
        }
        if t0.elapsed() > Duration::from_secs(10) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if status.is_none() {
        let _ = run.child.kill();
        let _ = run.child.wait();
    }
    let logs = run.finish();
    let status = status.unwrap_or_else(|| {
        panic!(
            "no exit 10 s after SIGTERM with a scan stuck\n{}",
            logs.join("\n")
        )
    });
    assert!(status.success(), "exit {status}\n{}", logs.join("\n"));
    assert!(
        logs.iter().any(|l| l.contains("a scan still runs at exit")),
        "{}",
        logs.join("\n")
    );
}
