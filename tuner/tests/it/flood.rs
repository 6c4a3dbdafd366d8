//! Issue 20, reproduction 6: 100 processes of uid 65534 with 1 MiB command lines. The tuner
//! keeps at most `MAX_CMDLINE_BYTES` of each, so neither its memory nor a pass grows with what
//! other users put on their command lines.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::support::{write, Reaped};
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

#[test]
fn one_mib_command_lines_cost_the_tuner_nothing() {
    let perl = Path::new("/usr/bin/perl");
    if !perl.exists() {
        println!("skipped: no {}", perl.display());
        return;
    }
    let (dir, _) = open_scratch("it-flood");
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
    let pids: Vec<i32> = children.iter().map(Reaped::pid).collect();
    // Every child has exec'd perl with its whole command line.
    for &pid in &pids {
        let path = format!("/proc/{pid}/cmdline");
        for _ in 0..500 {
            if std::fs::metadata(&path).is_ok()
                && std::fs::read(&path).is_ok_and(|b| b.len() > 1 << 20)
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    let view = proc_view(dir.path(), &pids);
    let cfg = write(
        dir.path(),
        "tuner.toml",
        &format!(
            "[observe]\nproc_root = \"{}\"\n\n[rules]\npaths = []\n\n[daemon]\ndevice = \"{}\"\nlock_path = \"{}\"\nstate_file = \"{}\"\n",
            view.display(),
            dir.path().join("no-such-device").display(),
            dir.path().join("lock").display(),
            dir.path().join("state.json").display(),
        ),
    );
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
