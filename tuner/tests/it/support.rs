//! Helpers for the integration tests: the built binary and its JSON report, the fixture tree
//! and configs that read it, child processes that die with the test.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

use serde_json::Value;
use tuner::observe::synthetic::ScratchDir;

/// `cmd` with its child at nice 0 whatever the test runner's nice is: the tuner takes a
/// process at another nice for one an admin set by hand and leaves it alone, so the probes
/// of a test run under `nice` would all be "manual". Lowering needs root (or RLIMIT_NICE);
/// without it the child keeps the runner's nice.
pub fn default_nice(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: setpriority() is async-signal-safe, and the closure touches nothing else.
    unsafe {
        cmd.pre_exec(|| {
            libc::setpriority(libc::PRIO_PROCESS, 0, 0);
            Ok(())
        })
    }
}

pub fn tuner() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tuner"));
    c.env_remove("RUST_LOG");
    c
}

pub fn fixture() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/host2"))
}

/// A scratch directory with a config that reads the fixture tree, plus `extra` TOML for the
/// `[daemon]` table and after.
pub fn fixture_config(extra: &str) -> (ScratchDir, PathBuf) {
    let dir = ScratchDir::new("it").unwrap();
    let lock = dir.path().join("tuner.lock");
    let cfg = host_config(
        dir.path(),
        &fixture(),
        &[],
        &format!("lock_path = \"{}\"\n{extra}", lock.display()),
    );
    (dir, cfg)
}

/// A scratch directory (`tag` in its name) holding a copy of the fixture tree at `host/`,
/// for a test that rewrites processes in it.
pub fn fixture_copy(tag: &str) -> (ScratchDir, PathBuf) {
    let dir = ScratchDir::new(tag).unwrap();
    let host = dir.path().join("host");
    let st = Command::new("cp")
        .arg("-a")
        .arg(fixture())
        .arg(&host)
        .status()
        .unwrap();
    assert!(st.success());
    (dir, host)
}

/// `dir/tuner.toml`: reads the host tree at `host`, with rule files `rules` and no device (in
/// `dir`, so none is found), then `daemon` TOML for the `[daemon]` table and after.
pub fn host_config(dir: &Path, host: &Path, rules: &[&Path], daemon: &str) -> PathBuf {
    let paths: Vec<String> = rules
        .iter()
        .map(|p| format!("\"{}\"", p.display()))
        .collect();
    let text = format!(
        "[observe]\nproc_root = \"{}\"\nsys_root = \"{}\"\n\n[rules]\npaths = [{}]\n\n[daemon]\ndevice = \"{}\"\n{daemon}",
        host.join("proc").display(),
        host.join("sys").display(),
        paths.join(", "),
        dir.join("no-such-device").display(),
    );
    write(dir, "tuner.toml", &text)
}

/// `dir/tuner.toml` for the live `/proc`: the dry-run backend, lock and state in `dir`, all
/// else the defaults (the embedded catalog).
pub fn live_dry_run_config(dir: &Path) -> PathBuf {
    let text = format!(
        "[daemon]\nbackend = \"dry-run\"\nlock_path = \"{}\"\nstate_file = \"{}\"\n",
        dir.join("tuner.lock").display(),
        dir.join("state.json").display(),
    );
    write(dir, "tuner.toml", &text)
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run tuner")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// `tuner once <how> --json --all` sampling rates for `sample_ms`, which must succeed; its
/// JSON report.
pub fn once_json(cfg: &Path, how: &[&str], sample_ms: &str) -> Value {
    let o = run(tuner()
        .arg("--config")
        .arg(cfg)
        .arg("once")
        .args(how)
        .args(["--json", "--all", "--sample-ms", sample_ms]));
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).expect("valid json")
}

/// `tuner explain pid` sampling rates for `sample_ms`, which must succeed; what it prints.
pub fn explain(cfg: &Path, pid: impl Display, sample_ms: &str) -> String {
    let o = run(tuner().arg("--config").arg(cfg).args([
        "explain",
        &pid.to_string(),
        "--sample-ms",
        sample_ms,
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

/// The row of `pid` in a `tuner once --json` report.
pub fn row(v: &Value, pid: impl Into<i64>) -> &Value {
    let pid = pid.into();
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["pid"] == pid)
        .unwrap_or_else(|| panic!("no row {pid} in {v}"))
}

/// The class `pid`'s row shows, `-` for none.
pub fn class_of(v: &Value, pid: impl Into<i64>) -> String {
    row(v, pid)["class"].as_str().unwrap_or("-").to_owned()
}

pub fn sleep_binary() -> &'static Path {
    ["/usr/bin/sleep", "/bin/sleep"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("a sleep binary")
}

/// Kills and reaps the child on drop.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Reaped {
    pub fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}
