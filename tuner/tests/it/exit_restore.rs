//! Issue 19, deliver 3, against the real binary: `tuner run --backend stock` hints this test's
//! own processes (`sleep` started through symlinks whose names only a rule of this test
//! matches; no other rule, heuristic or classifier is on, so nothing else on the host is
//! written), then exits by SIGTERM, by SIGINT, or is killed with SIGKILL and followed by a
//! second run with `on_restart = "restore"`. Every probe must be back to its original policy,
//! nice and slice within a bounded time, and a pid the state file names with another start
//! time (another process, as after pid reuse) must never be touched.
//!
//! Each test names its probes with its own tag: the daemons of tests running side by side
//! scan the same host, and must not hint each other's probes. The probes' executable is
//! `sleep` itself (a symlink sets the name, nothing is copied), so that whole-host tests that
//! exclude every path but their own never see them.
//!
//! The stock backend needs root or CAP_SYS_NICE (`tuner run` checks before it starts); without
//! them each test prints why it skips.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::support::{default_nice, explain, sleep_binary, tuner, Reaped};

const SCHED_BATCH: u32 = 3;
const SCHED_IDLE: u32 = 5;
/// Polls give up after this long: generous, so a loaded host does not fail them.
const DEADLINE: Duration = Duration::from_secs(30);
/// How long an exit may take from the signal: the daemon waits up to 2 s for a scan in
/// flight, then restores; the rest is slack for a loaded host.
const EXIT_BOUND: Duration = Duration::from_secs(10);

/// Policy, nice and slice (ns) of a task, from `sched_getattr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sched {
    policy: u32,
    nice: i32,
    slice_ns: u64,
}

fn sched(pid: i32) -> Sched {
    let a = tuner::sys::sched_getattr(pid).expect("sched_getattr on a probe");
    Sched {
        policy: a.sched_policy,
        nice: a.sched_nice,
        slice_ns: a.sched_runtime,
    }
}

fn privileged() -> bool {
    tuner::apply::check_privileges().is_ok()
}

/// The probes: `sleep 300` named `tx19<tag>-bg` (class background) or `tx19<tag>-batch`
/// (class batch), killed when dropped.
struct Probes {
    dir: tempfile::TempDir,
    tag: &'static str,
    /// The child, its pid, what it ran at before any hint, and the policy its class writes.
    kids: Vec<(Reaped, i32, Sched, u32)>,
}

impl Probes {
    /// `kinds`: "bg" or "batch", one probe each.
    fn start(tag: &'static str, kinds: &[&str]) -> Probes {
        let dir = tempfile::tempdir().unwrap();
        let sleep = sleep_binary();
        let mut kids = Vec::new();
        for kind in kinds {
            let name = format!("tx19{tag}-{kind}");
            let link = dir.path().join(&name);
            if !link.exists() {
                std::os::unix::fs::symlink(sleep, &link).unwrap();
            }
            let c = Reaped(
                default_nice(Command::new(&link).arg("300"))
                    .spawn()
                    .unwrap(),
            );
            let pid = c.pid();
            let policy = if *kind == "bg" {
                SCHED_IDLE
            } else {
                SCHED_BATCH
            };
            // What the test's user runs them at: the values to come back to.
            kids.push((c, pid, sched(pid), policy));
        }
        Probes { dir, tag, kids }
    }

    fn pid(&self, i: usize) -> i32 {
        self.kids[i].1
    }

    fn original(&self, i: usize) -> Sched {
        self.kids[i].2
    }

    fn state_file(&self) -> PathBuf {
        self.dir.path().join("state.json")
    }

    /// A config for the stock backend whose only rules put this test's `-bg` probes in
    /// background and `-batch` probes in batch (none when `rules` is false); state and lock
    /// in the temp dir.
    fn config(&self, name: &str, rules: bool, on_restart: &str) -> PathBuf {
        let mut text = format!(
            "[daemon]\ninterval_ms = 200\nbackend = \"stock\"\non_exit = \"clear\"\n\
             on_restart = {on_restart:?}\nstate_file = {:?}\nlock_path = {:?}\n\
             device = {:?}\n\n[rules]\ndefaults = false\npaths = []\n\n\
             [heuristics]\nenabled = false\n\n[external]\nenabled = false\n",
            self.state_file().display().to_string(),
            self.dir.path().join("tuner.lock").display().to_string(),
            self.dir.path().join("no-device").display().to_string(),
        );
        if rules {
            let tag = self.tag;
            text.push_str(&format!(
                "\n[[manual]]\nname = \"probe-bg\"\ncomm = [\"tx19{tag}-bg\"]\nclass = \"background\"\n\
                 \n[[manual]]\nname = \"probe-batch\"\ncomm = [\"tx19{tag}-batch\"]\nclass = \"batch\"\n",
            ));
        }
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Every probe holds its class.
    fn hinted(&self) -> bool {
        self.kids.iter().all(|k| sched(k.1).policy == k.3)
    }

    /// Every probe holds what it had before any hint.
    fn restored(&self) -> bool {
        self.kids.iter().all(|k| sched(k.1) == k.2)
    }

    fn assert_restored(&self, how: &str) {
        for i in 0..self.kids.len() {
            assert_eq!(
                sched(self.pid(i)),
                self.original(i),
                "{how}: probe {} is back to what it had",
                self.pid(i)
            );
        }
    }

    /// The state file's entries; none when there is no file yet.
    fn entries(&self) -> Vec<serde_json::Value> {
        match std::fs::read_to_string(self.state_file()) {
            Ok(text) => {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                v["entries"].as_array().cloned().unwrap_or_default()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("state file: {e}"),
        }
    }
}

/// A running `tuner run`, killed if a test fails before it stops it.
struct Daemon(Option<Child>);

impl Daemon {
    fn start(cfg: &Path) -> Daemon {
        let child = tuner()
            .env("RUST_LOG", "info")
            .args(["run", "--backend", "stock", "--config"])
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Daemon(Some(child))
    }

    fn signal(&mut self, sig: Signal) {
        let c = self.0.as_ref().unwrap();
        kill(Pid::from_raw(c.id() as i32), sig).unwrap();
    }

    /// Waits for the exit, at most `EXIT_BOUND`; returns its stderr.
    fn wait(&mut self) -> String {
        let mut c = self.0.take().unwrap();
        let t0 = Instant::now();
        loop {
            if c.try_wait().unwrap().is_some() {
                break;
            }
            if t0.elapsed() > EXIT_BOUND {
                let _ = c.kill();
                let out = c.wait_with_output().unwrap();
                panic!(
                    "tuner run did not exit in {EXIT_BOUND:?}:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let out = c.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn poll(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn exit_by(tag: &'static str, sig: Signal) {
    if !privileged() {
        eprintln!("skipped: tuner run --backend stock needs root or CAP_SYS_NICE");
        return;
    }
    let p = Probes::start(tag, &["bg", "batch"]);
    let cfg = p.config("tuner.toml", true, "adopt");
    let mut d = Daemon::start(&cfg);
    poll("the probes hinted", || p.hinted());
    d.signal(sig);
    // Restored by the time the process has exited: the exit clears before it returns.
    let log = d.wait();
    p.assert_restored(&format!("after {sig}\n{log}"));
    assert_eq!(
        p.entries(),
        Vec::<serde_json::Value>::new(),
        "nothing left held"
    );
}

#[test]
fn sigterm_restores_every_probe() {
    exit_by("t", Signal::SIGTERM);
}

#[test]
fn sigint_restores_every_probe() {
    exit_by("i", Signal::SIGINT);
}

/// SIGKILL leaves the hints; a second run with `on_restart = "restore"` (and no rules, so it
/// hints nothing again) puts them back, except on a pid whose recorded start time is not
/// the process there now: another process, never touched.
#[test]
fn sigkill_then_a_restoring_run_restores_and_never_touches_a_reused_pid() {
    if !privileged() {
        eprintln!("skipped: tuner run --backend stock needs root or CAP_SYS_NICE");
        return;
    }
    let p = Probes::start("k", &["bg", "batch", "bg"]);
    let cfg = p.config("tuner.toml", true, "restore");
    let mut d = Daemon::start(&cfg);
    poll("the probes hinted", || p.hinted());
    // Journalled before the writes: all three are in the file by now.
    assert_eq!(p.entries().len(), 3);
    d.signal(Signal::SIGKILL);
    d.wait();
    assert_eq!(
        sched(p.pid(0)).policy,
        SCHED_IDLE,
        "a killed run restores nothing"
    );

    // The third probe's entry now names another process at its pid: as if the probe it
    // recorded had exited and the pid been reused by the process there now.
    let text = std::fs::read_to_string(p.state_file()).unwrap();
    let mut st: serde_json::Value = serde_json::from_str(&text).unwrap();
    let reused = p.pid(2);
    for e in st["entries"].as_array_mut().unwrap() {
        if e["pid"] == reused {
            let start = e["start_ticks"].as_u64().unwrap();
            e["start_ticks"] = serde_json::json!(start.saturating_sub(1));
        }
    }
    std::fs::write(p.state_file(), serde_json::to_string(&st).unwrap()).unwrap();
    let held = sched(reused);

    let cfg2 = p.config("tuner2.toml", false, "restore");
    let mut d2 = Daemon::start(&cfg2);
    poll("the earlier run's hints restored", || {
        sched(p.pid(0)) == p.original(0) && sched(p.pid(1)) == p.original(1)
    });
    d2.signal(Signal::SIGTERM);
    let log = d2.wait();
    assert_eq!(sched(p.pid(0)), p.original(0), "{log}");
    assert_eq!(sched(p.pid(1)), p.original(1), "{log}");
    assert_eq!(
        sched(reused),
        held,
        "pid {reused} is not the process the state file names: left as it is\n{log}"
    );
}

/// A small deterministic generator (xorshift), seeded from the clock or `TUNER_TEST_SEED`
/// so that a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("TUNER_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("seed {seed} (TUNER_TEST_SEED={seed} replays this run)");
        Rng(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Signals `d` after a random delay in `0..max_ms`: anywhere from the start (before the
/// first scan, in its middle, during the writes, between passes).
fn at_random(rng: &mut Rng, d: &mut Daemon, sig: Signal, max_ms: u64) -> u64 {
    let ms = rng.below(max_ms);
    std::thread::sleep(Duration::from_millis(ms));
    d.signal(sig);
    ms
}

/// Deliver 3: the daemon stopped at random points of its first scans and writes. SIGTERM
/// and SIGINT must leave every probe restored by the time the process has exited; SIGKILL
/// is followed by a restoring run (itself killed at a random point half the time, and
/// followed by another), after which every probe is back too. Between rounds nothing may be
/// left held.
#[test]
fn stopped_at_random_points_every_probe_is_restored() {
    if !privileged() {
        eprintln!("skipped: tuner run --backend stock needs root or CAP_SYS_NICE");
        return;
    }
    let mut rng = Rng::new();
    let p = Probes::start("r", &["bg", "batch", "bg", "batch", "bg", "batch"]);
    let hinting = p.config("tuner.toml", true, "restore");
    let restoring = p.config("restore.toml", false, "restore");
    for round in 0..8 {
        let sig = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGKILL][rng.below(3) as usize];
        let mut d = Daemon::start(&hinting);
        let ms = at_random(&mut rng, &mut d, sig, 600);
        let log = d.wait();
        let how = format!("round {round}: {sig} after {ms} ms");
        if sig != Signal::SIGKILL {
            p.assert_restored(&format!("{how}\n{log}"));
            assert!(p.entries().is_empty(), "{how}: nothing left held");
            continue;
        }
        let mut second = Daemon::start(&restoring);
        if rng.below(2) == 0 {
            // Killed while it restores: the next run finishes the job.
            let ms2 = at_random(&mut rng, &mut second, Signal::SIGKILL, 300);
            second.wait();
            second = Daemon::start(&restoring);
            poll(&format!("{how}, restorer killed after {ms2} ms"), || {
                p.restored() && p.entries().is_empty()
            });
        } else {
            // Restored, and the file rewritten by its first pass: a SIGTERM before that pass
            // would leave the earlier run's entries to the next start (as a SIGKILL does).
            poll(&how, || p.restored() && p.entries().is_empty());
        }
        second.signal(Signal::SIGTERM);
        let log = second.wait();
        p.assert_restored(&format!("{how}, after the restoring run\n{log}"));
        assert!(p.entries().is_empty(), "{how}: nothing left held\n{log}");
    }
}

/// Issue 19, reproduction 3 and deliver 4: after `tuner once --backend stock` hinted a
/// probe, `tuner explain` took the tuner's own write for "manual settings". It starts from
/// the hint the state file holds: the write is the tuner's, and the held hint is shown.
#[test]
fn explain_starts_from_the_hint_the_state_file_holds() {
    if !privileged() {
        eprintln!("skipped: tuner once --backend stock needs root or CAP_SYS_NICE");
        return;
    }
    let p = Probes::start("e", &["bg", "batch"]);
    let cfg = p.config("tuner.toml", true, "adopt");
    let out = tuner()
        .args([
            "once",
            "--backend",
            "stock",
            "--sample-ms",
            "100",
            "--all",
            "--config",
        ])
        .arg(&cfg)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(p.hinted(), "{said}");
    let text = explain(&cfg, p.pid(0), "100");
    assert!(!text.contains("manual settings"), "{text}");
    assert!(
        text.contains("held     class background by the tuner"),
        "{text}"
    );
    // Held as written; past half its lifetime (1.2 s here) on a slow host, due a refresh.
    assert!(
        text.contains("action: unchanged") || text.contains("action: refresh"),
        "{text}"
    );
}
