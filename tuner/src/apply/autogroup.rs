//! Autogroups (`CONFIG_SCHED_AUTOGROUP`, on by default in Debian's and Ubuntu's kernels): with
//! them on, every session outside a CPU cgroup is a task group of its own, and CFS shares
//! the CPU between the groups first. A task's nice or `SCHED_IDLE` then only ranks it inside
//! its session: a CPU hog started with `setsid` gets as much CPU as a whole server's session
//! whatever the tuner writes to it. Measured on this project's 2-core host (autogroups on):
//! beside two `SCHED_IDLE` busy loops, each in its own session, a llama.cpp server made 9.6
//! tokens/s against 75 alone; with their autogroups at nice 19, 71.8.
//!
//! So a session whose members all hold classes that give up CPU gets its autogroup's nice
//! (`/proc/PID/autogroup`) lowered to match, and put back when that no longer holds (which
//! members count: `engine::sessions`). Only lowered, and only from 0. A nice someone else
//! gave the autogroup is theirs for its life, and so is one changed after the tuner wrote
//! it. An autogroup is known by its id (`/autogroup-N`), not by the session id, which the
//! kernel reuses: a write goes through any live member whose autogroup is that one. What the
//! tuner wrote is kept in a file beside the state file, so a run after a crash puts it back.
//! Tasks in a CPU cgroup other than the root do not use their autogroup (systemd services,
//! slices with the cpu controller): a write there changes nothing they get.
//!
//! The kernel refuses autogroup writes closer than 100 ms together (EAGAIN) to callers
//! without `CAP_SYS_ADMIN`: a refused write is tried again at the next pass, put-backs
//! first. `/proc/PID/autogroup` is the task's owner's file: without `CAP_DAC_OVERRIDE` (the
//! shipped unit has not) a write goes through a member of the tuner's own user, and a
//! session with none is not lowered.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::observe::procfile::StatLite;
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

/// An autogroup the tuner lowered: what was there, what it wrote, a member to reach it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Held {
    session: i32,
    autogroup: u64,
    pid: i32,
    start_ticks: u64,
    prior: i32,
    written: i32,
}

impl Held {
    fn member(&self) -> ProcKey {
        (self.pid, self.start_ticks)
    }

    /// A record from the file is taken only as the tuner writes them: from 0, lowered.
    fn plausible(&self) -> bool {
        self.prior == 0 && (1..=19).contains(&self.written)
    }
}

/// The autogroup nices the tuner wrote, by autogroup id.
#[derive(Debug, Default)]
pub struct Autogroups {
    held: HashMap<u64, Held>,
    /// Autogroups someone else set (or the tuner cannot write), with their session: left
    /// alone while the session is seen.
    foreign: HashMap<u64, i32>,
    /// Where `held` is kept between runs, and whether it is on disk as it stands.
    file: Option<PathBuf>,
    saved: bool,
}

/// Whether autogroups are on (`kernel.sched_autogroup_enabled`).
pub fn enabled() -> bool {
    fs::read_to_string("/proc/sys/kernel/sched_autogroup_enabled").is_ok_and(|s| s.trim() == "1")
}

/// `member`'s autogroup: its id and nice ("/autogroup-42 nice 0"), if it is still that
/// process.
pub fn read(member: ProcKey) -> Option<(u64, i32)> {
    let text = fs::read_to_string(format!("/proc/{}/autogroup", member.0)).ok()?;
    sys::is_process(member).then_some(())?;
    parse(&text)
}

fn parse(text: &str) -> Option<(u64, i32)> {
    let mut words = text.split_whitespace();
    let id = words.next()?.strip_prefix("/autogroup-")?.parse().ok()?;
    (words.next()? == "nice").then_some(())?;
    Some((id, words.next()?.parse().ok()?))
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

/// The live processes of `session` whose autogroup is `id`, from `/proc` (for when the
/// member the tuner knows is gone or cannot be written through).
fn members_of(session: i32, id: u64) -> Vec<ProcKey> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = StatLite::parse(&fs::read(format!("/proc/{pid}/stat")).ok()?)?;
            (stat.session == session).then_some((pid, stat.starttime))
        })
        .filter(|&m| read(m).is_some_and(|(a, _)| a == id))
        .collect()
}

enum Wrote {
    Done(ProcKey),
    /// The kernel's rate limit: nothing more this pass.
    TooSoon,
    /// No process is in it any more: the autogroup went with its session.
    Gone,
    /// Members are there, but none the tuner may write through.
    Unreached,
    /// It holds another value than the tuner's now: someone else's.
    Changed(i32),
}

impl Autogroups {
    /// Keeps what is written in `file`, and takes up what a run before this one left there:
    /// autogroups that still hold the value written, reached through any live member.
    pub fn keep_in(&mut self, file: &Path) {
        self.file = Some(file.to_path_buf());
        let earlier: Vec<Held> = fs::read(file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        for mut h in earlier.into_iter().filter(Held::plausible) {
            let live = std::iter::once(h.member())
                .chain(members_of(h.session, h.autogroup))
                .find(|&m| read(m) == Some((h.autogroup, h.written)));
            if let Some(m) = live {
                (h.pid, h.start_ticks) = m;
                self.held.insert(h.autogroup, h);
            }
        }
        if !self.held.is_empty() {
            tracing::info!(
                autogroups = self.held.len(),
                "autogroup nices of an earlier run taken up"
            );
        }
        self.save();
    }

    /// Brings sessions to `want`, if autogroups are on: put-backs and changes of what the
    /// tuner holds first, then new lowerings, each written only over 0. A held autogroup
    /// whose session is not in `want` is put back if a member is still there.
    pub fn apply(&mut self, want: &[SessionWant]) {
        let sessions: HashSet<i32> = want.iter().map(|w| w.session).collect();
        self.foreign.retain(|_, s| sessions.contains(s));
        if self.held.is_empty() && (want.iter().all(|w| w.nice == 0) || !enabled()) {
            return;
        }
        let by_session: HashMap<i32, &SessionWant> = want.iter().map(|w| (w.session, w)).collect();
        let before = self.held.clone();
        let mut ids: Vec<u64> = self.held.keys().copied().collect();
        ids.sort_unstable();
        // Put-backs before changes: a session waiting for its share comes first.
        ids.sort_by_key(|id| {
            let h = &self.held[id];
            by_session.get(&h.session).is_some_and(|w| w.nice > 0)
        });
        let mut blocked = false;
        for id in ids {
            let h = self.held[&id];
            let w = by_session.get(&h.session).copied();
            let goal = w.map_or(0, |w| w.nice);
            let first = w.map(|w| w.member);
            if goal == h.written {
                // Nothing to write: follow the member the scan saw, if it is in this group,
                // and see whether someone changed the value meanwhile.
                let seen = first
                    .into_iter()
                    .chain([h.member()])
                    .find_map(|m| read(m).filter(|&(a, _)| a == id).map(|(_, n)| (m, n)));
                match seen {
                    Some((_, now)) if now != h.written => self.yield_to_other(&h, now),
                    Some((m, _)) => {
                        let e = self.held.get_mut(&id).expect("held");
                        (e.pid, e.start_ticks) = m;
                    }
                    None => {}
                }
                continue;
            }
            if blocked {
                continue;
            }
            let value = if goal == 0 { h.prior } else { goal };
            match self.write_held(&h, first, value) {
                Wrote::Done(_) if goal == 0 => {
                    self.held.remove(&id);
                    tracing::debug!(session = h.session, "autogroup nice put back");
                }
                Wrote::Done(m) => {
                    let e = self.held.get_mut(&id).expect("held");
                    (e.pid, e.start_ticks, e.written) = (m.0, m.1, goal);
                }
                Wrote::TooSoon => blocked = true,
                Wrote::Changed(now) => self.yield_to_other(&h, now),
                Wrote::Gone => {
                    self.held.remove(&id);
                }
                // Out of reach for now: kept, and tried again.
                Wrote::Unreached => {}
            }
        }
        for w in want.iter().filter(|w| w.nice > 0) {
            if blocked {
                break;
            }
            let Some((id, now)) = read(w.member) else {
                continue;
            };
            if self.held.contains_key(&id) || self.foreign.contains_key(&id) {
                continue;
            }
            if now != 0 {
                tracing::info!(
                    session = w.session,
                    nice = now,
                    "autogroup nice set by someone else; left as it is"
                );
                self.foreign.insert(id, w.session);
                continue;
            }
            match write_nice(w.member, w.nice) {
                Ok(()) => {
                    tracing::debug!(session = w.session, nice = w.nice, "autogroup nice set");
                    self.held.insert(
                        id,
                        Held {
                            session: w.session,
                            autogroup: id,
                            pid: w.member.0,
                            start_ticks: w.member.1,
                            prior: 0,
                            written: w.nice,
                        },
                    );
                }
                Err(e) if too_soon(&e) => blocked = true,
                Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                    tracing::info!(
                        session = w.session,
                        pid = w.member.0,
                        "autogroup nice not written ({e}): another user's session needs CAP_DAC_OVERRIDE"
                    );
                    self.foreign.insert(id, w.session);
                }
                Err(e) => tracing::debug!(session = w.session, "autogroup nice not written: {e}"),
            }
        }
        if self.held != before || !self.saved {
            self.save();
        }
    }

    /// Someone changed held autogroup `h` to `now` since the tuner wrote it: theirs from now.
    fn yield_to_other(&mut self, h: &Held, now: i32) {
        tracing::info!(
            session = h.session,
            nice = now,
            "autogroup nice changed by someone else since the tuner wrote it; left as it is"
        );
        self.held.remove(&h.autogroup);
        self.foreign.insert(h.autogroup, h.session);
    }

    /// Writes `value` to held autogroup `h` through `first`, else its known member, else any
    /// member `/proc` shows (scanned only when those two fail), where the tuner's value
    /// still stands.
    fn write_held(&self, h: &Held, first: Option<ProcKey>, value: i32) -> Wrote {
        // `None`: not through this member (gone, in another group now, not writable).
        let through = |m: ProcKey| match read(m) {
            Some((id, now)) if id == h.autogroup && now != h.written => Some(Wrote::Changed(now)),
            Some((id, _)) if id == h.autogroup => match write_nice(m, value) {
                Ok(()) => Some(Wrote::Done(m)),
                Err(e) if too_soon(&e) => Some(Wrote::TooSoon),
                Err(_) => None,
            },
            _ => None,
        };
        let known: Vec<ProcKey> = first.into_iter().chain([h.member()]).collect();
        if let Some(w) = known.iter().find_map(|&m| through(m)) {
            return w;
        }
        let others = members_of(h.session, h.autogroup);
        if others.is_empty() {
            return Wrote::Gone;
        }
        others
            .into_iter()
            .filter(|m| !known.contains(m))
            .find_map(through)
            .unwrap_or(Wrote::Unreached)
    }

    /// Puts every autogroup back (the daemon's exit), waiting out the kernel's rate limit
    /// for up to `patience`; what is left stays in the file for the next run.
    pub fn restore_all(&mut self, patience: Duration) {
        let deadline = Instant::now() + patience;
        let mut ids: Vec<u64> = self.held.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let h = self.held[&id];
            loop {
                match self.write_held(&h, None, h.prior) {
                    Wrote::TooSoon if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(110));
                        continue;
                    }
                    Wrote::TooSoon => {}
                    Wrote::Unreached => {
                        tracing::warn!(session = h.session, "autogroup nice not put back: no member to write through; kept for the next run");
                    }
                    Wrote::Done(_) | Wrote::Changed(_) | Wrote::Gone => {
                        self.held.remove(&id);
                    }
                }
                break;
            }
        }
        if !self.held.is_empty() {
            tracing::warn!(
                autogroups = self.held.len(),
                "autogroup nices not put back at exit: the next run puts them back"
            );
        }
        self.save();
    }

    pub fn held_count(&self) -> usize {
        self.held.len()
    }

    fn save(&mut self) {
        let Some(file) = self.file.clone() else {
            return;
        };
        let res = if self.held.is_empty() {
            match fs::remove_file(&file) {
                Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        } else {
            let mut held: Vec<&Held> = self.held.values().collect();
            held.sort_by_key(|h| h.autogroup);
            write_atomically(
                &file,
                &serde_json::to_vec_pretty(&held).expect("plain data"),
            )
        };
        self.saved = res.is_ok();
        if let Err(e) = res {
            tracing::warn!(file = %file.display(), "cannot record the autogroup nices: {e}");
        }
    }
}

/// Writes `bytes` to `file` through a new file beside it (never through a link someone left
/// at the temporary name), synced before it replaces `file`.
fn write_atomically(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = file.with_extension(format!("tmp.{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, file)
}

#[cfg(test)]
mod tests;
