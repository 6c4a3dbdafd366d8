//! Commands that succeed: once, explain, status, config, rules, bench.

use crate::support::{explain, fixture_config, once_json, row, run, stderr, stdout, tuner, write};

#[test]
fn once_dry_run_prints_a_table_of_decisions() {
    let (_dir, cfg) = fixture_config("");
    let o = run(tuner()
        .arg("--config")
        .arg(&cfg)
        .args(["once", "--dry-run", "--sample-ms", "10"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let header = out.lines().next().unwrap();
    for col in ["PID", "COMM", "CLASS", "NODE", "SOURCE", "CONF"] {
        assert!(header.contains(col), "{header}");
    }
    let line = |pid: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(pid))
            .unwrap_or_else(|| panic!("no row {pid} in\n{out}"))
            .to_owned()
    };
    assert!(
        line("600").contains("batch") && line("600").contains("rule:compiler"),
        "{}",
        line("600")
    );
    assert!(line("400").contains("latency (2/3 thr)"), "{}", line("400"));
    let llama: Vec<String> = line("500").split_whitespace().map(str::to_owned).collect();
    assert_eq!(
        (llama[2].as_str(), llama[3].as_str()),
        ("throughput", "1"),
        "{llama:?}"
    );
    assert!(
        !out.lines().any(|l| l.starts_with("2 ")),
        "kernel threads are not listed without --all"
    );
    assert!(
        out.lines().last().unwrap().contains("backend dry-run"),
        "{out}"
    );
}

#[test]
fn once_json_carries_provenance() {
    let (_dir, cfg) = fixture_config("");
    let v = once_json(&cfg, &["--dry-run"], "10");
    assert_eq!(v["backend"], "dry-run");
    let row = |pid: i64| row(&v, pid);
    assert_eq!(row(990)["class"], "interactive");
    assert_eq!(row(990)["step"], "rule");
    assert_eq!(row(990)["rule"], "remote-shell");
    assert_eq!(row(990)["source"], "rule");
    assert_eq!(row(2)["excluded"], true);
    assert_eq!(row(2)["rule"], "kernel-thread");
    assert_eq!(row(700)["hint"]["class"], "throughput");
}

#[test]
fn explain_walks_every_step() {
    let (_dir, cfg) = fixture_config("");
    let out = explain(&cfg, 400, "10");
    assert!(
        out.contains("1 exclusions: 1 of 3 threads left alone (SCHED_FIFO set on tid 402)"),
        "{out}"
    );
    assert!(
        out.contains("2 rules: \"audio-server\" matched (comm=pipewire)"),
        "{out}"
    );
    assert!(
        out.contains("result: latency by rule:audio-server"),
        "{out}"
    );
    let o = run(tuner()
        .arg("--config")
        .arg(&cfg)
        .args(["explain", "424242", "--sample-ms", "10"]));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o).trim(), "tuner: error: no such process: 424242");
}

#[test]
fn status_shows_sysfs_and_nodes() {
    let (_dir, cfg) = fixture_config("");
    let o = run(tuner().arg("--config").arg(&cfg).arg("status"));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("/sys/kernel/sched_hint: enabled 1, abi_version 1"),
        "{out}"
    );
    assert!(
        out.contains("latency      idle=0 slice_us=500 wakeup_preempt=1"),
        "{out}"
    );
    assert!(out.contains("stat      hints_set = 42"), "{out}");
    assert!(out.contains("node1       cpus 4-7"), "{out}");
    assert!(
        out.contains("backend     stock"),
        "device absent: auto resolves to stock\n{out}"
    );
}

#[test]
fn example_config_checks_and_rules_export_reloads() {
    let o = run(tuner().args(["config", "example"]));
    assert!(o.status.success());
    let dir = tuner::observe::synthetic::ScratchDir::new("it-example").unwrap();
    let example = write(dir.path(), "example.toml", &stdout(&o));
    let o = run(tuner().args(["config", "check"]).arg(&example));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with(&format!("ok: {}: 0 manual entries", example.display())),
        "{}",
        stdout(&o)
    );

    let o = run(tuner()
        .arg("--config")
        .arg(&example)
        .args(["rules", "export"]));
    assert!(o.status.success());
    let rules = write(dir.path(), "exported.toml", &stdout(&o));
    let cfg = write(
        dir.path(),
        "own.toml",
        &format!(
            "[rules]\ndefaults = false\npaths = [\"{}\"]\n",
            rules.display()
        ),
    );
    let o = run(tuner().args(["config", "check"]).arg(&cfg));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(", 21 user rules, 0 embedded rules"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn bench_prints_its_figures() {
    let o = run(tuner().args([
        "bench",
        "--procs",
        "120",
        "--passes",
        "3",
        "--steady-s",
        "0",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("median ms"), "{out}");
    let synthetic = out
        .lines()
        .find(|l| l.starts_with("synthetic"))
        .expect("synthetic row");
    assert!(synthetic.contains(" 120 "), "{synthetic}");
}

#[test]
fn a_reader_that_left_early_ends_the_command_quietly() {
    // Both ends are ours, so the read end is closed before the child writes: the write
    // meets EPIPE every time, not only when the reader wins a race.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let o = run(tuner().args(["config", "example"]).stdout(writer));
    assert!(o.status.success(), "status {:?}: {}", o.status, stderr(&o));
    assert_eq!(stderr(&o), "", "no panic, no error message");
}
