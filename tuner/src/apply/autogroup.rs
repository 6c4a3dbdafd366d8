//! Autogroups (`CONFIG_SCHED_AUTOGROUP`, on by default in Debian's and Ubuntu's kernels): with
//! them on, every session outside a CPU cgroup is a task group of its own, and CFS shares
//! the CPU between the groups first. A task's nice or `SCHED_IDLE` then only ranks it inside
//! its session: a CPU hog started with `setsid` gets as much CPU as a whole server's session
//! whatever the tuner writes to it. Measured on this project's 2-core host (autogroups on):
//! beside two `SCHED_IDLE` busy loops, each in its own session, a llama.cpp server made 9.6
//! tokens/s against 75 alone; with their autogroups at nice 19, 71.8.
//!
//! So a session whose members all hold classes that give up CPU gets its autogroup's nice
//! (`/proc/PID/autogroup`) lowered to match, and put back when that no longer holds. Only
//! lowered, and only from 0: one member the tuner does not hint so keeps the whole session
//! as it is, if it is busy or has a terminal (a shell someone types at, the tuner started
//! from one); an idle member without one (a script's loop waiting on its children) does
//! not count. A nice someone else gave
//! the autogroup is theirs for the session's life, and so is one changed after the tuner
//! wrote it. What the tuner wrote is kept in a file beside the state file, so a run after a
//! crash puts it back too. Tasks in a CPU cgroup other than the root do not use their
//! autogroup (systemd services, slices with the cpu controller): a write there changes
//! nothing they get.
//!
//! The kernel refuses autogroup writes closer than 100 ms together (EAGAIN) to callers
//! without `CAP_SYS_ADMIN`; a refused write is tried again at the next pass. `/proc/PID/
//! autogroup` is the task's owner's file: without `CAP_DAC_OVERRIDE` (the shipped unit has
//! not) only sessions of the tuner's own user are written.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::observe::ProcKey;
use crate::sys;

/// How long an exit waits out the kernel's rate limit to put sessions back.
pub const RESTORE_PATIENCE: Duration = Duration::from_secs(2);

/// One session's wanted autogroup nice (0: as it was), and a live member to reach it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWant {
    pub session: i32,
    pub member: ProcKey,
    pub nice: i32,
}

/// A session the tuner lowered: what was there, what it wrote, a member to reach it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Held {
    session: i32,
    pid: i32,
    start_ticks: u64,
    prior: i32,
    written: i32,
}

impl Held {
    fn member(&self) -> ProcKey {
        (self.pid, self.start_ticks)
    }
}

/// The autogroup nices the tuner wrote, by session.
#[derive(Debug, Default)]
pub struct Autogroups {
    held: HashMap<i32, Held>,
    /// Sessions whose autogroup is someone else's (or cannot be written): left alone.
    foreign: HashSet<i32>,
    /// Where `held` is kept between runs.
    file: Option<PathBuf>,
}

/// Whether autogroups are on (`kernel.sched_autogroup_enabled`).
pub fn enabled() -> bool {
    fs::read_to_string("/proc/sys/kernel/sched_autogroup_enabled").is_ok_and(|s| s.trim() == "1")
}

/// The nice of `member`'s autogroup ("/autogroup-42 nice 0"), if it is still that process.
pub fn read_nice(member: ProcKey) -> Option<i32> {
    let text = fs::read_to_string(format!("/proc/{}/autogroup", member.0)).ok()?;
    sys::is_process(member).then_some(())?;
    parse_nice(&text)
}

fn parse_nice(text: &str) -> Option<i32> {
    let mut words = text.split_whitespace();
    words.next()?.strip_prefix("/autogroup-")?;
    (words.next()? == "nice").then_some(())?;
    words.next()?.parse().ok()
}

/// Writes `member`'s autogroup nice; a pid that names another process now is not written.
fn write_nice(member: ProcKey, nice: i32) -> std::io::Result<()> {
    if !sys::is_process(member) {
        return Err(ErrorKind::NotFound.into());
    }
    fs::write(format!("/proc/{}/autogroup", member.0), nice.to_string())
}

/// The kernel's answer to a write too soon after the last one.
fn too_soon(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(nix::libc::EAGAIN)
}

impl Autogroups {
    /// Keeps what is written in `file`, and takes up what a run before this one left there:
    /// sessions whose member is still the same process and whose autogroup still holds the
    /// value written (others are someone else's now, or gone).
    pub fn keep_in(&mut self, file: &Path) {
        self.file = Some(file.to_path_buf());
        let earlier: Vec<Held> = fs::read(file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        for h in earlier {
            if read_nice(h.member()) == Some(h.written) {
                self.held.insert(h.session, h);
            }
        }
        if !self.held.is_empty() {
            tracing::info!(
                sessions = self.held.len(),
                "autogroup nices of an earlier run taken up"
            );
        }
        self.save();
    }

    /// Brings sessions to `want` if autogroups are on (sessions absent from it have no
    /// live member left, and so no autogroup). Puts a session back where it asks 0; writes
    /// only over 0 or the tuner's own value; stops for the pass at the kernel's rate limit.
    pub fn apply(&mut self, want: &[SessionWant]) {
        if self.held.is_empty() && (want.iter().all(|w| w.nice == 0) || !enabled()) {
            return;
        }
        let before = self.held.clone();
        let live: HashSet<i32> = want.iter().map(|w| w.session).collect();
        self.held.retain(|s, _| live.contains(s));
        self.foreign.retain(|s| live.contains(s));
        for w in want {
            if self.foreign.contains(&w.session)
                || (w.nice == 0 && !self.held.contains_key(&w.session))
            {
                continue;
            }
            if let Some(h) = self.held.get_mut(&w.session) {
                // Any member reaches the session; the latest seen is the likeliest alive.
                (h.pid, h.start_ticks) = w.member;
            }
            let Some(now) = read_nice(w.member) else {
                continue;
            };
            let held = self.held.get(&w.session).copied();
            let goal = match held {
                Some(h) if now != h.written => {
                    tracing::info!(
                        session = w.session,
                        nice = now,
                        "autogroup nice changed by someone else since the tuner wrote it; left as it is"
                    );
                    self.held.remove(&w.session);
                    self.foreign.insert(w.session);
                    continue;
                }
                Some(h) if w.nice == 0 => h.prior,
                Some(h) if w.nice == h.written => continue,
                Some(_) => w.nice,
                None if w.nice == 0 => continue,
                None if now != 0 => {
                    tracing::info!(
                        session = w.session,
                        nice = now,
                        "autogroup nice set by someone else; left as it is"
                    );
                    self.foreign.insert(w.session);
                    continue;
                }
                None => w.nice,
            };
            match write_nice(w.member, goal) {
                Ok(()) => {
                    tracing::debug!(session = w.session, nice = goal, "autogroup nice set");
                    if w.nice == 0 {
                        self.held.remove(&w.session);
                    } else {
                        self.held.insert(
                            w.session,
                            Held {
                                session: w.session,
                                pid: w.member.0,
                                start_ticks: w.member.1,
                                prior: held.map_or(now, |h| h.prior),
                                written: goal,
                            },
                        );
                    }
                }
                // The kernel's 100 ms rate limit: the rest waits for the next pass.
                Err(e) if too_soon(&e) => break,
                Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                    tracing::info!(
                        session = w.session,
                        pid = w.member.0,
                        "autogroup nice not written ({e}): another user's session needs CAP_DAC_OVERRIDE"
                    );
                    self.foreign.insert(w.session);
                }
                Err(e) => tracing::debug!(session = w.session, "autogroup nice not written: {e}"),
            }
        }
        if self.held != before {
            self.save();
        }
    }

    /// Puts every session back (the daemon's exit), waiting out the kernel's rate limit for
    /// up to `patience`; what is left stays in the file for the next run.
    pub fn restore_all(&mut self, patience: Duration) {
        let deadline = std::time::Instant::now() + patience;
        let mut held: Vec<Held> = self.held.values().copied().collect();
        held.sort_by_key(|h| h.session);
        for h in held {
            loop {
                match read_nice(h.member()) {
                    Some(now) if now == h.written => match write_nice(h.member(), h.prior) {
                        Err(e) if too_soon(&e) && std::time::Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(110));
                            continue;
                        }
                        Err(e) if too_soon(&e) => {
                            tracing::warn!(
                                session = h.session,
                                "autogroup nice not put back in time: kept for the next run"
                            );
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(session = h.session, "autogroup nice not put back: {e}")
                        }
                        Ok(()) => {}
                    },
                    // Someone else's value now, or the member is gone (a session whose
                    // other members live on is put back by the next run, through them).
                    _ => {}
                }
                self.held.remove(&h.session);
                break;
            }
        }
        self.save();
    }

    pub fn held_count(&self) -> usize {
        self.held.len()
    }

    fn save(&self) {
        let Some(file) = &self.file else {
            return;
        };
        let res = if self.held.is_empty() {
            match fs::remove_file(file) {
                Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        } else {
            let mut held: Vec<&Held> = self.held.values().collect();
            held.sort_by_key(|h| h.session);
            let tmp = file.with_extension("tmp");
            serde_json::to_vec_pretty(&held)
                .map_err(std::io::Error::other)
                .and_then(|b| fs::write(&tmp, b))
                .and_then(|()| fs::rename(&tmp, file))
        };
        if let Err(e) = res {
            tracing::warn!(file = %file.display(), "cannot record the autogroup nices: {e}");
        }
    }
}

#[cfg(test)]
mod tests;
