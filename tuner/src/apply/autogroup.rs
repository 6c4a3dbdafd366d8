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
//! lowered: a session is never raised above nice 0, and one member that keeps its share
//! (unhinted and busy, or hinted a class at nice 0) keeps the whole session at 0. A nice
//! someone else gave the autogroup is theirs: it is left alone, and so is one changed after
//! the tuner wrote it.

use std::collections::HashMap;
use std::fs;

/// One session's wanted autogroup nice, and a live member to reach it through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWant {
    pub session: i32,
    pub pid: i32,
    pub nice: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    pid: i32,
    prior: i32,
    written: i32,
}

/// The autogroup nices the tuner wrote, by session.
#[derive(Debug, Default)]
pub struct Autogroups {
    held: HashMap<i32, Held>,
    /// Sessions whose autogroup someone else set: said once.
    foreign: HashMap<i32, i32>,
}

/// Whether autogroups are on (`kernel.sched_autogroup_enabled`).
pub fn enabled() -> bool {
    fs::read_to_string("/proc/sys/kernel/sched_autogroup_enabled").is_ok_and(|s| s.trim() == "1")
}

/// The nice of `pid`'s autogroup: "/autogroup-42 nice 0".
pub fn read_nice(pid: i32) -> Option<i32> {
    let text = fs::read_to_string(format!("/proc/{pid}/autogroup")).ok()?;
    parse_nice(&text)
}

fn parse_nice(text: &str) -> Option<i32> {
    let mut words = text.split_whitespace();
    words.next()?.strip_prefix("/autogroup-")?;
    (words.next()? == "nice").then_some(())?;
    words.next()?.parse().ok()
}

fn write_nice(pid: i32, nice: i32) -> std::io::Result<()> {
    fs::write(format!("/proc/{pid}/autogroup"), nice.to_string())
}

impl Autogroups {
    /// Brings the sessions to `want` (sessions absent from it are put back): writes only
    /// where the value differs, and only over a value that is 0 or the tuner's own.
    pub fn sync(&mut self, want: &[SessionWant]) {
        let wanted: HashMap<i32, SessionWant> = want.iter().map(|w| (w.session, *w)).collect();
        let gone: Vec<i32> = self
            .held
            .keys()
            .filter(|s| !wanted.contains_key(s) || wanted[s].nice == 0)
            .copied()
            .collect();
        for session in gone {
            self.put_back(session, wanted.get(&session).map(|w| w.pid));
        }
        self.foreign.retain(|s, _| wanted.contains_key(s));
        for w in want.iter().filter(|w| w.nice > 0) {
            let Some(now) = read_nice(w.pid) else {
                continue;
            };
            match self.held.get(&w.session).copied() {
                Some(h) if now != h.written => {
                    tracing::info!(
                        session = w.session,
                        nice = now,
                        "autogroup nice changed by someone else since the tuner wrote it; left as it is"
                    );
                    self.held.remove(&w.session);
                    self.foreign.insert(w.session, now);
                }
                Some(h) if h.written == w.nice => {}
                Some(h) => self.write(w, h.prior),
                None if now != 0 => {
                    if self.foreign.insert(w.session, now) != Some(now) {
                        tracing::info!(
                            session = w.session,
                            nice = now,
                            "autogroup nice set by someone else; left as it is"
                        );
                    }
                }
                None => self.write(w, now),
            }
        }
    }

    /// Puts every session back (the daemon's exit with `on_exit = "clear"`).
    pub fn restore_all(&mut self) {
        let sessions: Vec<i32> = self.held.keys().copied().collect();
        for s in sessions {
            self.put_back(s, None);
        }
    }

    pub fn held_count(&self) -> usize {
        self.held.len()
    }

    fn write(&mut self, w: &SessionWant, prior: i32) {
        match write_nice(w.pid, w.nice) {
            Ok(()) => {
                tracing::debug!(session = w.session, nice = w.nice, "autogroup nice set");
                self.held.insert(
                    w.session,
                    Held {
                        pid: w.pid,
                        prior,
                        written: w.nice,
                    },
                );
            }
            Err(e) => {
                // Not the caller's session (EPERM) or gone: nothing of the tuner's is there.
                tracing::debug!(
                    session = w.session,
                    pid = w.pid,
                    "autogroup nice not set: {e}"
                );
                self.held.remove(&w.session);
            }
        }
    }

    /// Puts `session`'s autogroup back to what it was, through `pid` (else the member the
    /// tuner wrote through), where the tuner's value still stands.
    fn put_back(&mut self, session: i32, pid: Option<i32>) {
        let Some(h) = self.held.remove(&session) else {
            return;
        };
        for pid in pid.into_iter().chain([h.pid]) {
            match read_nice(pid) {
                Some(now) if now == h.written => {
                    if let Err(e) = write_nice(pid, h.prior) {
                        tracing::warn!(session, pid, "autogroup nice not put back: {e}");
                    }
                    return;
                }
                Some(_) => return,
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_proc_file() {
        assert_eq!(parse_nice("/autogroup-324 nice 0\n"), Some(0));
        assert_eq!(parse_nice("/autogroup-7 nice 19\n"), Some(19));
        assert_eq!(parse_nice("/autogroup-7 nice -5\n"), Some(-5));
        assert_eq!(parse_nice("/autogroup-7 prio 3\n"), None);
        assert_eq!(parse_nice(""), None);
    }

    struct Child(std::process::Child);

    impl Drop for Child {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// A sleeper in a session (so an autogroup) of its own.
    fn own_session() -> (Child, i32) {
        let c = std::process::Command::new("setsid")
            .args(["sleep", "60"])
            .spawn()
            .expect("spawn setsid sleep");
        let pid = c.id() as i32;
        // setsid execs sleep in the same process once the session exists.
        for _ in 0..100 {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat.contains("(sleep)") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        (Child(c), pid)
    }

    /// Lowers, keeps, leaves someone else's value alone, and puts back only its own.
    #[test]
    fn lowers_a_session_and_puts_back_only_its_own_value() {
        if !enabled() {
            eprintln!("skipped: autogroups are off on this kernel");
            return;
        }
        let (_a, a) = own_session();
        let (_b, b) = own_session();
        let (_c, c) = own_session();
        assert_eq!(
            (read_nice(a), read_nice(b), read_nice(c)),
            (Some(0), Some(0), Some(0))
        );
        write_nice(c, 3).expect("raising an own autogroup's nice needs no privilege");
        let want = |nice| {
            vec![
                SessionWant {
                    session: a,
                    pid: a,
                    nice,
                },
                SessionWant {
                    session: b,
                    pid: b,
                    nice,
                },
                SessionWant {
                    session: c,
                    pid: c,
                    nice,
                },
            ]
        };
        let mut groups = Autogroups::default();
        groups.sync(&want(19));
        assert_eq!(read_nice(a), Some(19));
        assert_eq!(read_nice(c), Some(3), "someone else's nice is left alone");
        assert_eq!(groups.held_count(), 2);
        // Someone changes b's after the tuner: theirs from then on.
        write_nice(b, 10).unwrap();
        groups.sync(&want(19));
        assert_eq!(read_nice(b), Some(10));
        assert_eq!(groups.held_count(), 1);
        // Nobody wants a lower share any more: a goes back, b and c stay as they were set.
        groups.sync(&want(0));
        assert_eq!(
            (read_nice(a), read_nice(b), read_nice(c)),
            (Some(0), Some(10), Some(3))
        );
        assert_eq!(groups.held_count(), 0);
        groups.sync(&want(15));
        assert_eq!(read_nice(a), Some(15));
        groups.restore_all();
        assert_eq!(read_nice(a), Some(0));
    }
}
