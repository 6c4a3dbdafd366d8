//! The command line at the edges (issue 19, reproduction 9): `-` reads standard input, flags a
//! command does not use are refused, a node the machine lacks is refused, each in one line.

use std::io::Write as _;
use std::process::Stdio;

use tuner::observe::synthetic::ScratchDir;

use crate::support::{fixture, run, stderr, stdout, tuner, write};

fn one_line(o: &std::process::Output) -> String {
    let err = stderr(o);
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected:\n{err}"
    );
    err.trim_end().to_owned()
}

fn with_stdin(args: &[&str], input: &str) -> std::process::Output {
    let mut child = tuner()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn config_check_dash_reads_stdin() {
    let o = with_stdin(&["config", "check", "-"], "[daemon]\ninterval_ms = 2000\n");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("ok: <stdin>: 0 manual entries"),
        "{}",
        stdout(&o)
    );

    let o = with_stdin(
        &["config", "check", "-"],
        "[daemon]\nbackend = \"kernel\"\n",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        one_line(&o).starts_with("tuner: error: <stdin>:2:11: unknown backend"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn hint_clear_refuses_json() {
    let o = run(tuner().args(["hint", "clear", "1", "--json"]));
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        one_line(&o),
        "tuner: error: unexpected argument '--json' found (see 'tuner hint clear --help')"
    );
}

/// A one-node machine: `--node 1` names nothing there and is refused before anything is
/// written; on the two-node fixture the same command goes through.
#[test]
fn a_node_the_machine_lacks_is_refused() {
    let dir = ScratchDir::new("it-one-node").unwrap();
    let sys = dir.path().join("sys");
    for (rel, text) in [
        ("devices/system/cpu/online", "0-3\n"),
        ("devices/system/node/online", "0\n"),
        ("devices/system/node/node0/cpulist", "0-3\n"),
    ] {
        let p = sys.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let config = |sys: &std::path::Path| {
        write(
            dir.path(),
            "tuner.toml",
            &format!(
                "[observe]\nproc_root = \"{}\"\nsys_root = \"{}\"\n\n[rules]\npaths = []\n",
                fixture().join("proc").display(),
                sys.display()
            ),
        )
    };
    let set = |cfg: &std::path::Path| {
        run(tuner().arg("--config").arg(cfg).args([
            "hint",
            "set",
            "500",
            "--class",
            "throughput",
            "--node",
            "1",
            "--strict",
            "--backend",
            "dry-run",
        ]))
    };
    let o = set(&config(&sys));
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert_eq!(
        one_line(&o),
        "tuner: error: node 1 does not exist here (nodes: 0)"
    );
    assert_eq!(stdout(&o), "", "nothing reported as set");

    let o = set(&config(&fixture().join("sys")));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("node 1 (strict)"), "{}", stdout(&o));
}
