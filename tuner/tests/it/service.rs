//! `tuner run` as a service (issue 19, reproduction 8): one daemon per host, and systemd hears
//! READY=1 after the first scan and STOPPING=1 on SIGTERM.

use std::io::{BufRead as _, BufReader};
use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::support::{fixture_config, run, stderr, tuner};

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("a notification within 10 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn a_second_daemon_is_refused_and_systemd_hears_ready_and_stopping() {
    let (dir, cfg) = fixture_config("interval_ms = 100\nbackend = \"dry-run\"\n");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();

    let mut first = tuner()
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .env("NOTIFY_SOCKET", &sock_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(recv(&sock), "READY=1\n", "after the first scan");

    let o = run(tuner().arg("--config").arg(&cfg).arg("run"));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).trim_end(),
        format!(
            "tuner: error: another tuner is running: pid {} holds {}",
            first.id(),
            dir.path().join("tuner.lock").display()
        )
    );

    kill(Pid::from_raw(first.id() as i32), Signal::SIGHUP).unwrap();
    let reload = recv(&sock);
    assert!(
        reload.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reload}"
    );
    assert_eq!(recv(&sock), "READY=1\n", "after the reload");

    kill(Pid::from_raw(first.id() as i32), Signal::SIGTERM).unwrap();
    assert_eq!(recv(&sock), "STOPPING=1\n");
    let status = first.wait().unwrap();
    let log: Vec<String> = BufReader::new(first.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect();
    assert!(status.success(), "{status}\n{}", log.join("\n"));

    // The lock went with the process: a new daemon starts.
    let mut next = tuner()
        .arg("--config")
        .arg(&cfg)
        .arg("run")
        .env("NOTIFY_SOCKET", &sock_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(recv(&sock), "READY=1\n");
    kill(Pid::from_raw(next.id() as i32), Signal::SIGTERM).unwrap();
    assert!(next.wait().unwrap().success());
}

/// The unit in `configs/` as systemd reads it: `systemd-analyze verify` has nothing to say
/// (with ExecStart pointed at the binary under test, which verify requires to exist), and it
/// asks for what the daemon does: notify readiness, a state and a runtime directory (the LLM
/// cache, the lock) writable under ProtectSystem=strict, and a syscall filter that lets the
/// scheduling calls through.
#[test]
fn the_unit_verifies_clean_and_asks_for_what_the_daemon_does() {
    let unit_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../configs/sched-hint-tuner.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    let directives: Vec<&str> = unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    for want in [
        "Type=notify",
        "StateDirectory=sched_hint",
        "RuntimeDirectory=sched_hint",
        "SystemCallFilter=@system-service",
    ] {
        assert!(
            directives.contains(&want),
            "{want} missing in {}",
            unit_path.display()
        );
    }
    let filter: Vec<&str> = directives
        .iter()
        .filter_map(|l| l.strip_prefix("SystemCallFilter="))
        .flat_map(str::split_whitespace)
        .collect();
    for call in ["sched_setattr", "sched_setaffinity", "migrate_pages"] {
        assert!(filter.contains(&call), "{call} not allowed: {filter:?}");
    }

    let Ok(version) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        println!("skipped systemd-analyze verify: systemd-analyze is not installed");
        return;
    };
    assert!(version.status.success());
    let dir = tuner::observe::synthetic::ScratchDir::new("it-unit").unwrap();
    let copy = dir.path().join("sched-hint-tuner.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/tuner", env!("CARGO_BIN_EXE_tuner")),
    )
    .unwrap();
    let o = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let said = format!("{}{}", stderr(&o), String::from_utf8_lossy(&o.stdout));
    assert!(
        o.status.success() && said.trim().is_empty(),
        "systemd-analyze verify:\n{said}"
    );
}

/// `make install`'s script with PREFIX=/usr into a DESTDIR: every piece where it belongs, the
/// unit pointing at PREFIX, the installed config valid, and the unit still verifying.
#[test]
fn install_lays_out_the_tuner_alone() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dest = tuner::observe::synthetic::ScratchDir::new("it-install").unwrap();
    let o = std::process::Command::new(root.join("scripts/install.sh"))
        .args(["--bin", env!("CARGO_BIN_EXE_tuner")])
        .env("PREFIX", "/usr")
        .env("DESTDIR", dest.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let d = dest.path();
    for f in [
        "usr/bin/tuner",
        "usr/lib/systemd/system/sched-hint-tuner.service",
        "usr/lib/udev/rules.d/99-sched-hint.rules",
        "etc/sched_hint/tuner.toml",
        "usr/share/doc/sched_hint/README.md",
        "usr/share/doc/sched_hint/sched-hint.rst",
        "usr/share/doc/sched_hint/tuner-trust-model.md",
    ] {
        assert!(d.join(f).is_file(), "{f} not installed");
    }
    let unit =
        std::fs::read_to_string(d.join("usr/lib/systemd/system/sched-hint-tuner.service")).unwrap();
    assert!(unit.contains("\nExecStart=/usr/bin/tuner run\n"), "{unit}");
    assert!(
        !unit
            .lines()
            .any(|l| !l.starts_with('#') && l.contains("/usr/local")),
        "{unit}"
    );
    let o = run(tuner()
        .args(["config", "check"])
        .arg(d.join("etc/sched_hint/tuner.toml")));
    assert!(o.status.success(), "{}", stderr(&o));

    if std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("skipped systemd-analyze verify: systemd-analyze is not installed");
        return;
    }
    let unit_copy = d.join("sched-hint-tuner.service");
    let bin = d.join("usr/bin/tuner");
    std::fs::write(
        &unit_copy,
        unit.replace("/usr/bin/tuner", &bin.display().to_string()),
    )
    .unwrap();
    let o = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit_copy)
        .output()
        .unwrap();
    let said = format!("{}{}", stderr(&o), String::from_utf8_lossy(&o.stdout));
    assert!(
        o.status.success() && said.trim().is_empty(),
        "systemd-analyze verify:\n{said}"
    );
}
