//! Helpers for the command, daemon and error tests: the built binary, the fixture tree.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tuner::observe::synthetic::ScratchDir;

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
    let path = dir.path().join("tuner.toml");
    let f = fixture();
    let text = format!(
        "[observe]\nproc_root = \"{}\"\nsys_root = \"{}\"\n\n[rules]\npaths = []\n\n[daemon]\ndevice = \"{}\"\nlock_path = \"{}\"\n{extra}",
        f.join("proc").display(),
        f.join("sys").display(),
        dir.path().join("no-such-device").display(),
        dir.path().join("tuner.lock").display(),
    );
    std::fs::write(&path, text).unwrap();
    (dir, path)
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
