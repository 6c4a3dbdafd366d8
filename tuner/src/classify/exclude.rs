//! Step 1 of classification: what must never be touched.
//!
//! Whole processes: kernel threads, the tuner itself, the external classifier's server, the
//! admin's `[exclude]` lists. Single threads: those whose policy, nice, CPU affinity or EEVDF
//! slice differ from the default and from what the tuner itself wrote, which means someone
//! else set them.

use std::collections::HashMap;

use crate::config::ExcludeConfig;
use crate::glob::find_exe;
use crate::observe::{CpuSet, OwnWrite, ProcObs, TaskObs};
use crate::uapi::{SCHED_BATCH, SCHED_DEADLINE, SCHED_FIFO, SCHED_IDLE, SCHED_NORMAL, SCHED_RR};

/// What is known about the machine when checking threads.
#[derive(Debug, Clone, Default)]
pub struct ThreadContext<'a> {
    /// The slice of a thread nobody configured; `None` or `Some(0)` disables the slice check
    /// (unknown, or a kernel without custom slices).
    pub base_slice_ns: Option<u64>,
    /// The CPUs a thread may use without anyone restricting it (its cpuset, else online CPUs).
    pub allowed_cpus: Option<&'a CpuSet>,
    pub own: Option<&'a HashMap<i32, OwnWrite>>,
}

/// Why a whole process is excluded, or `None`.
pub fn process_exclusion(
    p: &ProcObs,
    cfg: &ExcludeConfig,
    self_pid: i32,
    protected: &[i32],
) -> Option<String> {
    if p.kthread {
        return Some("kernel-thread".into());
    }
    // Init (systemd) is the ancestor of every service and sets its own threads up: hinting it
    // left 5 of its 40 threads changed (the rest looked manually set) and every service it
    // starts inherits what it holds.
    if p.pid == 1 {
        return Some("init".into());
    }
    if p.pid == self_pid {
        return Some("tuner-itself".into());
    }
    if protected.contains(&p.pid) {
        return Some("classifier-server".into());
    }
    if cfg.uids.contains(&p.uid) {
        return Some(format!("exclude.uids={}", p.uid));
    }
    if let Some(g) = cfg.comm.iter().find(|g| g.matches(&p.comm)) {
        return Some(format!("exclude.comm={g}"));
    }
    if let Some(g) = p.exe.as_deref().and_then(|exe| find_exe(&cfg.exe, exe)) {
        return Some(format!("exclude.exe={g}"));
    }
    if let Some(g) = cfg.cgroup.iter().find(|g| g.matches(&p.cgroup)) {
        return Some(format!("exclude.cgroup={g}"));
    }
    None
}

fn policy_name(policy: u32) -> String {
    match policy {
        SCHED_NORMAL => "SCHED_OTHER".into(),
        SCHED_FIFO => "SCHED_FIFO".into(),
        SCHED_RR => "SCHED_RR".into(),
        SCHED_BATCH => "SCHED_BATCH".into(),
        SCHED_IDLE => "SCHED_IDLE".into(),
        SCHED_DEADLINE => "SCHED_DEADLINE".into(),
        // SCHED_EXT (Linux 6.12) is newer than the system headers the bindings come from.
        7 => "SCHED_EXT".into(),
        other => format!("policy {other}"),
    }
}

/// Why a thread's scheduling settings look set by someone else, or `None`.
pub fn manual_setting(t: &TaskObs, ctx: &ThreadContext<'_>) -> Option<String> {
    let own = ctx.own.and_then(|m| m.get(&t.tid));
    let (policy, nice, slice, cpus, check_slice, check_cpus) = match own {
        Some(OwnWrite::Stock {
            policy,
            nice,
            slice_ns,
            cpus,
        }) => (*policy, *nice, *slice_ns, cpus.as_ref(), true, true),
        Some(OwnWrite::Kernel) => (SCHED_NORMAL, 0, None, None, false, false),
        None => (SCHED_NORMAL, 0, None, None, true, true),
    };
    if t.policy != policy {
        return Some(format!("{} set on tid {}", policy_name(t.policy), t.tid));
    }
    if t.nice != nice {
        return Some(format!("nice {} set on tid {}", t.nice, t.tid));
    }
    if check_slice {
        if let (Some(base), Some(actual)) = (ctx.base_slice_ns.filter(|b| *b > 0), t.slice_ns) {
            let want = slice.unwrap_or(base);
            if actual != want {
                return Some(format!(
                    "custom slice {} us set on tid {}",
                    actual / 1000,
                    t.tid
                ));
            }
        }
    }
    if check_cpus {
        if let Some(actual) = &t.cpus_allowed {
            match cpus {
                Some(written) if actual != written => {
                    return Some(format!("affinity {actual} set on tid {}", t.tid));
                }
                Some(_) => {}
                None => {
                    if let Some(allowed) = ctx.allowed_cpus {
                        if !actual.is_superset(allowed) {
                            return Some(format!("affinity {actual} set on tid {}", t.tid));
                        }
                    }
                }
            }
        }
    }
    None
}

/// The most common slice among fair threads the tuner did not write: the kernel's base slice.
pub fn infer_base_slice<'a>(
    tasks: impl Iterator<Item = &'a TaskObs>,
    own: &HashMap<i32, OwnWrite>,
) -> Option<u64> {
    let mut counts: HashMap<u64, u32> = HashMap::new();
    for t in tasks {
        if own.contains_key(&t.tid) || t.policy != SCHED_NORMAL {
            continue;
        }
        if let Some(s) = t.slice_ns {
            *counts.entry(s).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by_key(|&(slice, n)| (n, std::cmp::Reverse(slice)))
        .map(|(s, _)| s)
}

/// [`infer_base_slice`] over the threads of a scan's user-space processes (kernel threads are
/// left out): the one way the engine and the commands read the base slice off a host.
pub fn host_base_slice(procs: &[ProcObs], own: &HashMap<i32, OwnWrite>) -> Option<u64> {
    infer_base_slice(
        procs
            .iter()
            .filter(|p| !p.kthread)
            .flat_map(|p| p.tasks.iter()),
        own,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::glob::Glob;
    use crate::observe::test_proc;

    fn task(tid: i32) -> TaskObs {
        test_proc(tid, "t").tasks.remove(0)
    }

    #[test]
    fn process_exclusions_in_order() {
        let mut cfg = Config::default().exclude;
        let mut p = test_proc(50, "backup-agent");
        assert_eq!(process_exclusion(&p, &cfg, 1, &[]), None);
        assert_eq!(
            process_exclusion(&p, &cfg, 50, &[]).as_deref(),
            Some("tuner-itself")
        );
        assert_eq!(
            process_exclusion(&p, &cfg, 1, &[50]).as_deref(),
            Some("classifier-server")
        );
        cfg.exe.push(Glob::new("backup-*"));
        assert_eq!(
            process_exclusion(&p, &cfg, 1, &[]).as_deref(),
            Some("exclude.exe=backup-*")
        );
        cfg.comm.push(Glob::new("backup*"));
        assert_eq!(
            process_exclusion(&p, &cfg, 1, &[]).as_deref(),
            Some("exclude.comm=backup*")
        );
        p.kthread = true;
        assert_eq!(
            process_exclusion(&p, &cfg, 50, &[]).as_deref(),
            Some("kernel-thread")
        );
    }

    #[test]
    fn init_is_never_hinted() {
        let mut p = test_proc(1, "systemd");
        p.nr_threads = 40;
        let cfg = Config::default().exclude;
        assert_eq!(
            process_exclusion(&p, &cfg, 4242, &[]).as_deref(),
            Some("init")
        );
    }

    #[test]
    fn default_threads_are_not_manual() {
        let allowed = CpuSet::from_list("0-3").unwrap();
        let ctx = ThreadContext {
            base_slice_ns: Some(2_800_000),
            allowed_cpus: Some(&allowed),
            own: None,
        };
        assert_eq!(manual_setting(&task(1), &ctx), None);
    }

    #[test]
    fn foreign_settings_are_detected() {
        let allowed = CpuSet::from_list("0-3").unwrap();
        let ctx = ThreadContext {
            base_slice_ns: Some(2_800_000),
            allowed_cpus: Some(&allowed),
            own: None,
        };
        let mut t = task(7);
        t.policy = 1;
        assert_eq!(
            manual_setting(&t, &ctx).as_deref(),
            Some("SCHED_FIFO set on tid 7")
        );
        let mut t = task(7);
        t.nice = 10;
        assert_eq!(
            manual_setting(&t, &ctx).as_deref(),
            Some("nice 10 set on tid 7")
        );
        let mut t = task(7);
        t.slice_ns = Some(100_000);
        assert_eq!(
            manual_setting(&t, &ctx).as_deref(),
            Some("custom slice 100 us set on tid 7")
        );
        let mut t = task(7);
        t.cpus_allowed = Some(CpuSet::from_list("2").unwrap());
        assert_eq!(
            manual_setting(&t, &ctx).as_deref(),
            Some("affinity 2 set on tid 7")
        );
    }

    #[test]
    fn own_writes_are_not_manual() {
        let allowed = CpuSet::from_list("0-3").unwrap();
        let node = CpuSet::from_list("2-3").unwrap();
        let mut own = HashMap::new();
        own.insert(
            7,
            OwnWrite::Stock {
                policy: 3,
                nice: 0,
                slice_ns: Some(12_000_000),
                cpus: Some(node.clone()),
            },
        );
        let ctx = ThreadContext {
            base_slice_ns: Some(2_800_000),
            allowed_cpus: Some(&allowed),
            own: Some(&own),
        };
        let mut t = task(7);
        t.policy = 3;
        t.slice_ns = Some(12_000_000);
        t.cpus_allowed = Some(node);
        assert_eq!(manual_setting(&t, &ctx), None);
        // Someone changed nice after the tuner's write: no longer ours.
        t.nice = 3;
        assert!(manual_setting(&t, &ctx).is_some());
    }

    #[test]
    fn kernels_without_custom_slices_skip_the_slice_check() {
        let ctx = ThreadContext {
            base_slice_ns: Some(0),
            allowed_cpus: None,
            own: None,
        };
        let mut t = task(7);
        t.slice_ns = Some(0);
        assert_eq!(manual_setting(&t, &ctx), None);
    }

    #[test]
    fn base_slice_is_the_most_common() {
        let mut a = task(1);
        a.slice_ns = Some(2_800_000);
        let b = a.clone();
        let mut c = task(3);
        c.slice_ns = Some(500_000);
        let mut d = task(4);
        d.slice_ns = Some(500_000);
        let mut own = HashMap::new();
        assert_eq!(
            infer_base_slice([&a, &b, &c].into_iter(), &own),
            Some(2_800_000)
        );
        own.insert(1, OwnWrite::Kernel);
        own.insert(2, OwnWrite::Kernel);
        let mut b2 = b.clone();
        b2.tid = 2;
        a.tid = 1;
        assert_eq!(
            infer_base_slice([&a, &b2, &c, &d].into_iter(), &own),
            Some(500_000)
        );
    }
}
