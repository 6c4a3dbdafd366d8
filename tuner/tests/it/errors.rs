//! Failures: each a one-line message and its exit code, nothing written.

use std::os::unix::process::CommandExt as _;

use crate::support::{fixture_config, run, stderr, tuner, write};

fn one_line(o: &std::process::Output) -> String {
    let err = stderr(o);
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected:\n{err}"
    );
    err.trim_end().to_owned()
}

#[test]
fn bad_configs_exit_2_with_the_position() {
    let dir = tuner::observe::synthetic::ScratchDir::new("it-bad").unwrap();
    let bad = write(
        dir.path(),
        "bad.toml",
        "[daemon]\ninterval_ms = 5000\nbackend = \"kernel\"\n",
    );
    let o = run(tuner().args(["config", "check"]).arg(&bad));
    assert_eq!(o.status.code(), Some(2));
    let msg = one_line(&o);
    assert_eq!(msg, format!("tuner: error: {}:3:11: unknown backend \"kernel\" (expected auto, ioctl, stock or dry-run)", bad.display()));

    let o = run(tuner()
        .arg("--config")
        .arg(&bad)
        .args(["once", "--dry-run"]));
    assert_eq!(o.status.code(), Some(2));
    one_line(&o);

    let o = run(tuner().args(["--config", "/nonexistent/tuner.toml", "once", "--dry-run"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(one_line(&o).contains("/nonexistent/tuner.toml: no such file"));

    let rules = write(
        dir.path(),
        "r.toml",
        "[[rule]]\nname = \"x\"\ncomm = [\"a\"]\nclass = \"speedy\"\n",
    );
    let cfg = write(
        dir.path(),
        "c.toml",
        &format!("[rules]\npaths = [\"{}\"]\n", rules.display()),
    );
    let o = run(tuner().args(["config", "check"]).arg(&cfg));
    assert_eq!(o.status.code(), Some(2));
    assert!(one_line(&o).contains(&format!("{}:4:9: unknown class", rules.display())));
}

#[test]
fn usage_errors_exit_2() {
    let o = run(tuner().args(["hint", "set", "1", "--class", "turbo"]));
    assert_eq!(o.status.code(), Some(2));
}

/// Issue 19, deliver 1: a stock hint has no expiry, and nothing would put back an admin's
/// when its lifetime ran out: a lifetime is refused before anything is written, not ignored.
#[test]
fn a_stock_hint_with_a_lifetime_is_refused() {
    let (_dir, cfg) = fixture_config("");
    let me = std::process::id().to_string();
    let policy = || {
        tuner::sys::sched_getattr(std::process::id() as i32)
            .unwrap()
            .sched_policy
    };
    let before = policy();
    let o = run(tuner().arg("--config").arg(&cfg).args([
        "hint",
        "set",
        &me,
        "--class",
        "batch",
        "--backend",
        "stock",
        "--ttl-ms",
        "1000",
    ]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(one_line(&o).contains("the stock backend has no expiry"));
    assert_eq!(policy(), before, "nothing written");
}

#[test]
fn missing_device_exits_3() {
    let (_dir, cfg) = fixture_config("");
    for args in [
        &["once", "--backend", "ioctl"][..],
        &["hint", "get", "1", "--backend", "ioctl"],
        &["run", "--backend", "ioctl"],
    ] {
        let o = run(tuner().arg("--config").arg(&cfg).args(args));
        assert_eq!(o.status.code(), Some(3), "{args:?}: {}", stderr(&o));
        let msg = one_line(&o);
        assert!(
            msg.starts_with("tuner: error: device ") && msg.contains("no-such-device is missing"),
            "{msg}"
        );
    }
}

#[test]
fn unprivileged_runs_exit_4_before_writing() {
    let (dir, cfg) = fixture_config("");
    // World-readable for the unprivileged user below.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = tuner();
    cmd.arg("--config")
        .arg(&cfg)
        .args(["once", "--backend", "stock", "--sample-ms", "10"]);
    if nix::unistd::geteuid().is_root() {
        cmd.uid(65534).gid(65534);
    }
    let o = run(&mut cmd);
    if o.status.code() == Some(126) || stderr(&o).contains("Permission denied (os error 13)") {
        eprintln!("skipped: the test binary is not reachable by uid 65534");
        return;
    }
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert_eq!(one_line(&o), "tuner: error: permission denied: applying hints needs root or CAP_SYS_NICE (run as root, or use --dry-run)");
    assert!(o.stdout.is_empty(), "nothing printed, nothing applied");
}
