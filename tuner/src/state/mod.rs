//! What the tuner changed, and the values it replaced, kept across restarts.
//!
//! Every write the tuner makes is an [`Entry`]: the process (pid and start time, so a reused
//! pid is never taken for it), the hint, and, on the stock backend, each thread's settings
//! as written and as they were before. The next scan (or the next run, after a crash) tells
//! its own writes from anyone else's by comparing what a thread holds with what was written;
//! a clear puts back what was there before, and only where the tuner's value still stands.
//!
//! The file ([`file::StateFile`]) is JSON with a `version`; it is replaced atomically
//! (temporary file, fsync, rename, fsync of the directory), so a crash leaves the old or the
//! new state, never half of one.

pub mod file;

use serde::{Deserialize, Serialize};

use crate::hint::{Hint, HintClass, HintSource};
use crate::observe::{CpuSet, ProcKey, TaskObs};

/// The format this tuner writes; a file with a higher version is refused, not overwritten.
pub const VERSION: u32 = 1;

/// A thread's scheduling settings as the stock backend writes and restores them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub policy: u32,
    pub nice: i32,
    /// The EEVDF slice; `None` is the kernel's base slice (no custom slice).
    pub slice_ns: Option<u64>,
    /// The CPU affinity (kernel list syntax) when it is part of the setting: written for a
    /// strict hint, or replaced by one.
    pub cpus: Option<String>,
}

impl Settings {
    /// What `t` holds; a slice equal to `base_slice_ns` counts as the base slice, and
    /// affinity is kept only when `with_cpus`.
    pub fn of(t: &TaskObs, base_slice_ns: Option<u64>, with_cpus: bool) -> Settings {
        Settings {
            policy: t.policy,
            nice: t.nice,
            slice_ns: t.slice_ns.filter(|s| Some(*s) != base_slice_ns && *s != 0),
            cpus: if with_cpus {
                t.cpus_allowed.as_ref().map(ToString::to_string)
            } else {
                None
            },
        }
    }

    pub fn cpu_set(&self) -> Option<CpuSet> {
        self.cpus.as_deref().and_then(|c| CpuSet::from_list(c).ok())
    }

    /// Why a thread holding `now` no longer holds these settings, or `None` when it does.
    /// A `None` slice here matches any slice the kernel reports as its base one
    /// (`base_slice_ns`), and affinity is compared only when it was written.
    pub fn differs(&self, now: &Settings, base_slice_ns: Option<u64>) -> Option<String> {
        if now.policy != self.policy {
            return Some(format!("policy {} became {}", self.policy, now.policy));
        }
        if now.nice != self.nice {
            return Some(format!("nice {} became {}", self.nice, now.nice));
        }
        let fair = matches!(now.policy, 0 | 3 | 5);
        if fair && now.slice_ns != self.slice_ns {
            let as_base = self.slice_ns.is_none()
                && (now.slice_ns.is_none() || now.slice_ns == base_slice_ns);
            if !as_base {
                let us =
                    |s: Option<u64>| s.map_or("base".to_owned(), |s| format!("{} us", s / 1000));
                return Some(format!(
                    "slice {} became {}",
                    us(self.slice_ns),
                    us(now.slice_ns)
                ));
            }
        }
        if let (Some(want), Some(have)) = (self.cpu_set(), now.cpu_set()) {
            if want != have {
                return Some(format!("affinity {want} became {have}"));
            }
        }
        None
    }

    /// Whether a thread holding `now` took these settings (written to the thread it was
    /// created from) by inheritance: fork and clone copy policy, nice, slice and affinity,
    /// and reset-on-fork puts some back, so each is either the written value or the one it
    /// replaced (`prior`). `Some(true)`: something written was inherited; `Some(false)`: the
    /// thread holds the prior settings only; `None`: some value is neither, so someone else
    /// set it.
    pub fn inherited_by(
        &self,
        prior: &Settings,
        now: &Settings,
        base_slice_ns: Option<u64>,
    ) -> Option<bool> {
        let slice = |s: Option<u64>| s.filter(|s| Some(*s) != base_slice_ns);
        let fair = matches!(now.policy, 0 | 3 | 5);
        let policy = now.policy == self.policy || now.policy == prior.policy;
        let nice = now.nice == self.nice || now.nice == prior.nice;
        let slice_ok = !fair
            || slice(now.slice_ns) == slice(self.slice_ns)
            || slice(now.slice_ns) == slice(prior.slice_ns);
        let cpus = match (self.cpu_set(), now.cpu_set()) {
            (Some(w), Some(n)) => n == w || prior.cpu_set().is_none_or(|p| p == n),
            _ => true,
        };
        if !(policy && nice && slice_ok && cpus) {
            return None;
        }
        Some(prior.differs(now, base_slice_ns).is_some())
    }
}

/// One thread the stock backend wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub tid: i32,
    pub written: Settings,
    pub prior: Settings,
}

/// Who made a write: the daemon (and `tuner once`), or an admin through `tuner hint set`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Writer {
    Daemon,
    Admin,
}

/// A hint the tuner wrote and a process holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub pid: i32,
    /// `/proc/PID/stat` field 22: with the pid, the process's identity.
    pub start_ticks: u64,
    pub comm: String,
    pub hint: Hint,
    /// `stock` or `ioctl`.
    pub backend: String,
    /// The hint was written to threads one by one (some threads are left alone).
    pub per_thread: bool,
    pub by: Writer,
    /// Wall-clock time of the first write, in milliseconds since the epoch.
    pub since_unix_ms: u64,
    /// Wall-clock time of the latest write (a TTL runs from here).
    pub written_unix_ms: u64,
    /// The threads written. Stock backend: each with its settings before and after;
    /// kernel backend: the kernel holds the hint, and before it there was none.
    pub tasks: Vec<TaskRecord>,
    /// Threads whose role gave them another class than `hint`'s (written one by one, with
    /// `per_thread`). Absent in files of tuners without thread roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thread_classes: Vec<ThreadClass>,
}

/// A thread that holds another class than its process's hint, by its role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadClass {
    pub tid: i32,
    pub class: HintClass,
    /// The role's name: a run that takes the hint up holds the role until the thread
    /// shows what it does (its rates need two scans).
    pub role: String,
}

impl Entry {
    pub fn key(&self) -> ProcKey {
        (self.pid, self.start_ticks)
    }

    pub fn class(&self) -> HintClass {
        self.hint.class
    }

    pub fn source(&self) -> HintSource {
        self.hint.source
    }

    /// Whether the hint's lifetime ran out by `now_unix_ms` (`ttl_ms` 0: it never does).
    pub fn lapsed(&self, now_unix_ms: u64) -> bool {
        self.hint.ttl_ms > 0 && now_unix_ms.saturating_sub(self.written_unix_ms) >= self.hint.ttl_ms
    }
}

/// A process the tuner backed off from because someone else changed what it wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Yielded {
    pub pid: i32,
    pub start_ticks: u64,
    pub comm: String,
    pub reason: String,
    pub since_unix_ms: u64,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub entries: Vec<Entry>,
    #[serde(default)]
    pub yielded: Vec<Yielded>,
}

impl Default for State {
    fn default() -> Self {
        State {
            version: VERSION,
            entries: Vec::new(),
            yielded: Vec::new(),
        }
    }
}

impl State {
    pub fn entry(&self, key: ProcKey) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key() == key)
    }
}

/// Milliseconds since the epoch, for the file's timestamps.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(policy: u32, nice: i32, slice_ns: Option<u64>) -> TaskObs {
        TaskObs {
            tid: 7,
            policy,
            nice,
            slice_ns,
            cpus_allowed: Some(CpuSet::from_list("0-3").unwrap()),
            ..Default::default()
        }
    }

    #[test]
    fn a_base_slice_is_no_custom_slice_and_changes_are_named() {
        let base = Some(2_800_000);
        let before = Settings::of(&task(0, 0, base), base, false);
        assert_eq!(before.slice_ns, None);
        let now = Settings::of(&task(0, 0, base), base, false);
        assert_eq!(before.differs(&now, base), None);
        let reniced = Settings::of(&task(0, 3, base), base, false);
        assert_eq!(
            before.differs(&reniced, base).as_deref(),
            Some("nice 0 became 3")
        );
        let sliced = Settings::of(&task(0, 0, Some(3_000_000)), base, false);
        assert_eq!(
            before.differs(&sliced, base).as_deref(),
            Some("slice base became 3000 us")
        );
        let pinned = Settings::of(&task(0, 0, base), base, true);
        let mut moved = pinned.clone();
        moved.cpus = Some("1".into());
        assert_eq!(
            pinned.differs(&moved, base).as_deref(),
            Some("affinity 0-3 became 1")
        );
    }

    /// A child or thread holds, field by field, what the tuner wrote or what that replaced
    /// (reset-on-fork puts a negative nice back to 0); any other value is someone else's.
    #[test]
    fn inheritance_takes_each_field_from_the_write_or_what_it_replaced() {
        let base = Some(2_800_000);
        let prior = Settings::of(&task(0, 0, base), base, false);
        let written = Settings::of(&task(0, -5, Some(3_000_000)), base, false);
        let holds = |policy, nice, slice| {
            let now = Settings::of(&task(policy, nice, slice), base, false);
            written.inherited_by(&prior, &now, base)
        };
        assert_eq!(holds(0, -5, Some(3_000_000)), Some(true), "all inherited");
        assert_eq!(
            holds(0, 0, Some(3_000_000)),
            Some(true),
            "nice reset on fork"
        );
        assert_eq!(holds(0, 0, base), Some(false), "the prior settings only");
        assert_eq!(
            holds(0, 7, Some(3_000_000)),
            None,
            "nice 7 is someone else's"
        );
        assert_eq!(holds(3, -5, Some(3_000_000)), None, "SCHED_BATCH too");
        assert_eq!(holds(0, -5, Some(9_000_000)), None, "a slice of 9 ms too");
    }
}
