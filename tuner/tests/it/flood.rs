//! Issue 20, reproduction 6: 100 processes of uid 65534 with 1 MiB command lines. The tuner
//! keeps at most `MAX_CMDLINE_BYTES` of each, so neither its memory nor a pass grows with what
//! other users put on their command lines, and a running daemon keeps nothing of them once
//! they have gone (the reproduction's daemon went from 9.8 to 211 MB and stayed there).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::daemon::{get, metric, wait_for, Run};
use crate::support::{tuner, write, Reaped};
use crate::trust_live::{as_nobody, is_root, open_scratch, proc_view};

/// Arguments of 128 KiB less one (`MAX_ARG_STRLEN` is 128 KiB with the NUL).
fn big_args(total: usize) -> Vec<String> {
    let one = 128 * 1024 - 1;
    (0..total.div_ceil(one))
        .map(|i| char::from(b'a' + (i % 26) as u8).to_string().repeat(one))
        .collect()
}

/// Peak resident memory of a child that has exited, in KiB (`wait4` reaps it).
fn wait_max_rss_kib(child: std::process::Child) -> (i32, i64) {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: `rusage` is zeroed plain data that wait4 fills in; the child is ours and is
    // reaped here (the `Child` is forgotten, so nothing waits on it again).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to `status` and `ru`, which outlive the call.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    std::mem::forget(child);
    assert_eq!(rc, pid, "wait4");
    (status, ru.ru_maxrss)
}

/// 100 processes (of uid 65534 when the tests run as root) with 1 MiB command lines each,
/// every one exec'd with its whole command line; `None` without perl.
fn flood() -> Option<Vec<Reaped>> {
    let perl = Path::new("/usr/bin/perl");
    if !perl.exists() {
        println!("skipped: no {}", perl.display());
        return None;
    }
    let args = big_args(1 << 20);
    let mut children: Vec<Reaped> = Vec::new();
    for _ in 0..100 {
        let mut argv: Vec<&str> = vec!["/usr/bin/perl", "-e", "sleep 60"];
        argv.extend(args.iter().map(String::as_str));
        children.push(if is_root() {
            as_nobody(&argv)
        } else {
            // Cost does not depend on who owns them.
            Reaped(
                Command::new(argv[0])
                    .args(&argv[1..])
                    .stdin(Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        });
    }
    for child in &children {
        let path = format!("/proc/{}/cmdline", child.pid());
        for _ in 0..500 {
            if std::fs::metadata(&path).is_ok()
                && std::fs::read(&path).is_ok_and(|b| b.len() > 1 << 20)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Some(children)
}

/// A config in `dir` that reads `proc_root`, with no rule files and no device; `extra` goes
/// at the end of `[daemon]`.
fn flood_config(dir: &Path, proc_root: &Path, extra: &str) -> std::path::PathBuf {
    write(
        dir,
        "tuner.toml",
        &format!(
            "[observe]\nproc_root = \"{}\"\n\n[rules]\npaths = []\n\n[daemon]\ndevice = \"{}\"\nlock_path = \"{}\"\nstate_file = \"{}\"\n{extra}",
            proc_root.display(),
            dir.join("no-such-device").display(),
            dir.join("lock").display(),
            dir.join("state.json").display(),
        ),
    )
}

#[test]
fn one_mib_command_lines_cost_the_tuner_nothing() {
    let (dir, _) = open_scratch("it-flood");
    let Some(children) = flood() else {
        return;
    };
    let pids: Vec<i32> = children.iter().map(Reaped::pid).collect();
    let view = proc_view(dir.path(), &pids);
    let cfg = flood_config(dir.path(), &view, "");
    let t = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_tuner"))
        .arg("--config")
        .arg(&cfg)
        .args(["once", "--dry-run", "--json", "--all", "--sample-ms", "300"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (status, rss_kib) = wait_max_rss_kib(child);
    let took = t.elapsed();
    println!(
        "tuner once over 100 processes with 1 MiB command lines: {took:?}, peak RSS {rss_kib} KiB"
    );
    assert_eq!(status, 0, "tuner once failed");
    assert!(
        rss_kib < 48 * 1024,
        "peak RSS {rss_kib} KiB: the command lines were kept"
    );
}

/// `VmRSS` and `VmHWM` (peak) of `pid`, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[test]
fn a_running_daemon_keeps_nothing_of_a_flood() {
    let (dir, _) = open_scratch("it-flood-daemon");
    // The flood first: a test that skips for want of perl leaves no daemon behind.
    let Some(children) = flood() else {
        return;
    };
    // The daemon's /proc: this host's, with no process in it until the flood comes.
    let view = proc_view(dir.path(), &[]);
    let cfg = flood_config(
        dir.path(),
        &view,
        "interval_ms = 100\nbackend = \"dry-run\"\n\n[metrics]\nenabled = true\nlisten = \"127.0.0.1:0\"\n",
    );
    let mut run = Run::start(tuner().arg("--config").arg(&cfg).arg("run"));
    let pid = run.child.id();
    let addr = run.metrics_addr();
    let scans = || metric(&get(&addr, "/metrics"), "tuner_scans_total");
    let after_scans = |n: u64| {
        let from = scans();
        wait_for("daemon passes", || scans() >= from + n);
    };
    after_scans(5);
    let (before, _) = rss_kib(pid);
    let processes = || metric(&get(&addr, "/metrics"), "tuner_processes");
    let alone = processes();

    for c in &children {
        std::os::unix::fs::symlink(format!("/proc/{}", c.pid()), view.join(c.pid().to_string()))
            .unwrap();
    }
    let t = Instant::now();
    after_scans(5);
    let took = t.elapsed();
    let (during, _) = rss_kib(pid);
    let seen = processes();
    for c in &children {
        std::fs::remove_file(view.join(c.pid().to_string())).unwrap();
    }
    drop(children);
    after_scans(5);
    let (after, peak) = rss_kib(pid);
    let left = processes();
    println!(
        "daemon RSS: {before} KiB before, {during} KiB with 100 1 MiB command lines \
         (5 passes in {took:?}), {after} KiB after they exited; peak {peak} KiB"
    );
    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
    assert!(run.child.wait().unwrap().success());
    assert_eq!(
        (seen - alone, left),
        (100, alone),
        "the daemon saw the 100 processes, then none of them"
    );
    assert!(
        peak < 48 * 1024,
        "peak RSS {peak} KiB: the command lines were kept"
    );
    assert!(
        after <= before + 4 * 1024,
        "RSS {after} KiB after the flood, {before} KiB before: the daemon kept what it read"
    );
}
