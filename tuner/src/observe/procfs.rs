//! [`ProcSource`] over a procfs tree, read with the `procfs` crate. The root is `/proc` in
//! production and a fixture directory in tests; on the live `/proc` the EEVDF slice of each
//! thread comes from `sched_getattr`, elsewhere from the tree's `sched` files.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use procfs::process::{FDTarget, Process};
use procfs::{FromReadSI, ProcError};

use super::exe_trust;
use super::procfile::{SchedStat, StatLite, StatSched, StatusLite};
use super::{CpuTime, ObserveError, ProcObs, ProcSource, ScanOptions, TaskObs, PF_KTHREAD};
use crate::observe::numa_maps;

/// What [`ProcfsSource`] keeps of a process's threads between scans.
#[derive(Debug, Clone)]
struct ThreadCache {
    start_ticks: u64,
    cpu_ns: u64,
    nr_threads: u32,
    threads_read: bool,
    wchan_read: bool,
    uid: u32,
    tasks: Vec<TaskObs>,
}

/// Facts that do not change over a process's life (or rarely: its cgroup).
#[derive(Debug, Clone)]
struct StaticFacts {
    start_ticks: u64,
    exe: Option<PathBuf>,
    exe_trusted: bool,
    cmdline: Vec<String>,
    cgroup: String,
    cpuset_cgroup: Option<String>,
}

/// Where a thread's policy, nice and EEVDF slice come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrProbe {
    /// `sched_getattr`, one call per thread instead of reading its `stat` (the live `/proc`).
    Syscall,
    /// The tree's `stat` files, and `sched` files (`se.slice`) when `slice` (fixtures).
    Files { slice: bool },
}

/// Policy, nice, RT priority and slice of one thread.
struct Attrs {
    policy: u32,
    nice: i32,
    rt_priority: u32,
    slice_ns: Option<u64>,
}

fn is_fair(policy: u32) -> bool {
    matches!(policy, 0 | 3 | 5)
}

pub struct ProcfsSource {
    root: PathBuf,
    probe: AttrProbe,
    ns_per_tick: u64,
    cache: HashMap<i32, StaticFacts>,
    /// The threads of each process as last read. A process that used no CPU since (same
    /// start time, CPU time and thread count) is not re-read: its threads' files are most of
    /// a scan's cost, and on most machines most processes sleep. `refresh_static` scans
    /// re-read everything.
    idle: HashMap<i32, ThreadCache>,
    page_kib: u64,
}

impl ProcfsSource {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let probe = if root == Path::new("/proc") {
            AttrProbe::Syscall
        } else {
            AttrProbe::Files { slice: true }
        };
        let ticks = procfs::ticks_per_second().max(1);
        Self {
            root,
            probe,
            ns_per_tick: 1_000_000_000 / ticks,
            cache: HashMap::new(),
            idle: HashMap::new(),
            page_kib: (procfs::page_size() / 1024).max(1),
        }
    }

    pub fn with_probe(mut self, probe: AttrProbe) -> Self {
        self.probe = probe;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn read_process(&mut self, p: &Process, opts: &ScanOptions) -> Result<ProcObs, ProcError> {
        let stat: StatLite = p.read("stat")?;
        let pid = p.pid();
        let mut obs = ProcObs {
            pid,
            start_ticks: stat.starttime,
            ppid: stat.ppid,
            session: stat.session,
            comm: stat.comm.clone(),
            kthread: stat.flags & PF_KTHREAD != 0,
            nr_threads: stat.num_threads.clamp(1, i64::from(u32::MAX)) as u32,
            cpu_ns: (stat.utime + stat.stime) * self.ns_per_tick,
            ..Default::default()
        };
        if obs.kthread {
            return Ok(obs);
        }
        let proc_dir = self.root.join(pid.to_string());
        // An exec keeps the pid and start time: the exe link, one readlink, tells whether the
        // cached facts (and the trust in the binary) still describe what runs.
        let exe_now = std::fs::read_link(proc_dir.join("exe")).ok();
        let facts = match self.cache.get(&pid) {
            Some(f)
                if f.start_ticks == stat.starttime && !opts.refresh_static && f.exe == exe_now =>
            {
                f.clone()
            }
            _ => {
                let f = self.read_static(p, stat.starttime);
                self.cache.insert(pid, f.clone());
                f
            }
        };
        obs.exe = facts.exe;
        obs.exe_trusted = facts.exe_trusted;
        obs.cmdline = facts.cmdline;
        obs.cgroup = facts.cgroup;
        obs.cpuset_cgroup = facts.cpuset_cgroup;

        obs.rss_kib = stat.rss * self.page_kib;
        let wchan = opts.wait_channels.as_ref().is_some_and(|f| f.wants(&obs));
        let unchanged = self.idle.get(&pid).filter(|c| {
            !opts.refresh_static
                && c.start_ticks == stat.starttime
                && c.cpu_ns == obs.cpu_ns
                && c.nr_threads == obs.nr_threads
                && c.threads_read == opts.threads
                && c.wchan_read == wchan
        });
        if let Some(c) = unchanged {
            obs.uid = c.uid;
            obs.tasks = c.tasks.clone();
            obs.stale = true;
            // Counters of a sleeping process do not move, but its scheduling settings can
            // (the tuner's own write, an admin's renice): those are read every scan, else a
            // write looks undone or someone else's change goes unseen.
            self.refresh_settings(p, &stat, &proc_dir, &mut obs.tasks);
        } else {
            self.read_threads(p, &stat, &proc_dir, opts.threads, wchan, &mut obs)?;
            let cache = ThreadCache {
                start_ticks: stat.starttime,
                cpu_ns: obs.cpu_ns,
                nr_threads: obs.nr_threads,
                threads_read: opts.threads,
                wchan_read: wchan,
                uid: obs.uid,
                tasks: obs.tasks.clone(),
            };
            self.idle.insert(pid, cache);
        }
        obs.nvcsw = obs.tasks.iter().map(|t| t.nvcsw).sum();
        obs.nivcsw = obs.tasks.iter().map(|t| t.nivcsw).sum();
        obs.run_delay_ns = obs.tasks.iter().map(|t| t.run_delay_ns).sum();

        if let Some(min) = opts.numa_min_rss_kib {
            if obs.rss_kib >= min {
                obs.numa_kib = std::fs::read_to_string(proc_dir.join("numa_maps"))
                    .ok()
                    .map(|t| numa_maps::parse(&t));
            }
        }
        Ok(obs)
    }

    /// Reads every thread (or the main thread alone, without `threads`) into `obs.tasks`,
    /// with uid, and each thread's wait channel with `wchan`.
    fn read_threads(
        &self,
        p: &Process,
        stat: &StatLite,
        proc_dir: &Path,
        threads: bool,
        wchan: bool,
        obs: &mut ProcObs,
    ) -> Result<(), ProcError> {
        let pid = obs.pid;
        if threads && obs.nr_threads > 1 {
            // Files are opened relative to the process directory: no handle per task. The
            // leader's entry gives the uid the process-level status would.
            let tids = std::fs::read_dir(proc_dir.join("task"))?
                .flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()));
            for tid in tids {
                let base = format!("task/{tid}");
                let leader_stat = (tid == pid).then_some(stat);
                let Some(attrs) = self.attrs(p, tid, leader_stat, &base, || proc_dir.join(&base))
                else {
                    continue;
                };
                let Ok(tstatus) = p.read::<_, StatusLite>(format!("{base}/status")) else {
                    continue;
                };
                if tid == pid {
                    obs.uid = tstatus.euid;
                }
                let sched = p.read::<_, SchedStat>(format!("{base}/schedstat")).ok();
                let mut t = task_obs(tid, attrs, tstatus, sched);
                if wchan {
                    t.wchan = read_wchan(&proc_dir.join(&base));
                }
                obs.tasks.push(t);
            }
        }
        if obs.tasks.is_empty() {
            let status: StatusLite = p.read("status")?;
            obs.uid = status.euid;
            let sched = p.read::<_, SchedStat>("schedstat").ok();
            let policy = stat.sched.policy;
            let slice_ns = match self.probe {
                AttrProbe::Syscall => crate::sys::sched_getattr(pid).ok().map(|a| a.sched_runtime),
                AttrProbe::Files { slice } => {
                    slice.then(|| slice_from_sched_file(proc_dir)).flatten()
                }
            };
            let attrs = Attrs {
                policy,
                nice: stat.sched.nice,
                rt_priority: stat.sched.rt_priority,
                slice_ns: slice_ns.filter(|_| is_fair(policy)),
            };
            let mut t = task_obs(pid, attrs, status, sched);
            if wchan {
                t.wchan = read_wchan(proc_dir);
            }
            obs.tasks.push(t);
        }
        Ok(())
    }

    /// Re-reads policy, nice, slice and affinity of threads carried over from an earlier
    /// scan; a thread that is gone keeps what was read last (the next full read drops it).
    fn refresh_settings(
        &self,
        p: &Process,
        stat: &StatLite,
        proc_dir: &Path,
        tasks: &mut [TaskObs],
    ) {
        for t in tasks.iter_mut() {
            // The leader's settings are the process's own files (fixtures have no task/ dir
            // for single-threaded processes).
            let (base, dir, leader_stat) = if t.tid == p.pid() {
                (String::new(), proc_dir.to_path_buf(), Some(stat))
            } else {
                let base = format!("task/{}/", t.tid);
                (base.clone(), proc_dir.join(&base), None)
            };
            if let Some(a) = self.attrs(p, t.tid, leader_stat, base.trim_end_matches('/'), || dir) {
                t.policy = a.policy;
                t.nice = a.nice;
                t.rt_priority = a.rt_priority;
                t.slice_ns = a.slice_ns;
            }
            if let Ok(st) = p.read::<_, StatusLite>(format!("{base}status")) {
                t.cpus_allowed = st.cpus_allowed;
            }
        }
    }

    /// A thread's attributes; `None` when it is gone. `leader_stat` is the process's `stat`
    /// when `tid` is the thread-group leader.
    fn attrs(
        &self,
        p: &Process,
        tid: i32,
        leader_stat: Option<&StatLite>,
        base: &str,
        dir: impl FnOnce() -> PathBuf,
    ) -> Option<Attrs> {
        match self.probe {
            AttrProbe::Syscall => {
                let a = crate::sys::sched_getattr(tid).ok()?;
                Some(Attrs {
                    policy: a.sched_policy,
                    nice: a.sched_nice,
                    rt_priority: a.sched_priority,
                    slice_ns: is_fair(a.sched_policy).then_some(a.sched_runtime),
                })
            }
            AttrProbe::Files { slice } => {
                // The kernel fills policy, nice and RT priority of `<pid>/stat` and of
                // `task/<pid>/stat` from the same task, the leader: the process's `stat`,
                // already parsed, saves the leader's file.
                let st = match leader_stat {
                    Some(st) => st.sched,
                    None => p.read::<_, StatSched>(format!("{base}/stat")).ok()?,
                };
                let policy = st.policy;
                Some(Attrs {
                    policy,
                    nice: st.nice,
                    rt_priority: st.rt_priority,
                    slice_ns: if slice && is_fair(policy) {
                        slice_from_sched_file(&dir())
                    } else {
                        None
                    },
                })
            }
        }
    }

    fn read_static(&self, p: &Process, start_ticks: u64) -> StaticFacts {
        let pid_dir = self.root.join(p.pid().to_string());
        let cmdline = super::procfile::read_cmdline(&pid_dir.join("cmdline"));
        let exe = p.exe().ok();
        let exe_trusted = exe
            .as_deref()
            .is_some_and(|e| exe_trust::exe_trusted(&pid_dir, e));
        let (mut cgroup, mut cpuset_cgroup) = (String::from("/"), None);
        if let Ok(groups) = p.cgroups() {
            let unified = groups
                .0
                .iter()
                .find(|g| g.hierarchy == 0 && g.controllers.is_empty());
            if let Some(g) = unified.or_else(|| groups.0.first()) {
                cgroup = g.pathname.clone();
            }
            cpuset_cgroup = groups
                .0
                .iter()
                .find(|g| g.controllers.iter().any(|c| c == "cpuset"))
                .map(|g| g.pathname.clone());
        }
        StaticFacts {
            start_ticks,
            exe,
            exe_trusted,
            cmdline,
            cgroup,
            cpuset_cgroup,
        }
    }
}

fn task_obs(tid: i32, a: Attrs, status: StatusLite, sched: Option<SchedStat>) -> TaskObs {
    TaskObs {
        tid,
        policy: a.policy,
        nice: a.nice,
        rt_priority: a.rt_priority,
        cpus_allowed: status.cpus_allowed,
        slice_ns: a.slice_ns,
        nvcsw: status.nvcsw,
        nivcsw: status.nivcsw,
        run_delay_ns: sched.map_or(0, |s| s.run_delay_ns),
        cpu_ns: sched.map_or(0, |s| s.on_cpu_ns),
        wchan: None,
        rates: None,
    }
}

/// Whether process `pid` under `proc_root` sleeps waiting for a child (`wait4()`: wchan
/// `do_wait`), as a shell script's loop does while its command runs.
pub fn waits_for_children(proc_root: &Path, pid: i32) -> bool {
    read_wchan(&proc_root.join(pid.to_string())).is_some_and(|w| w == "do_wait")
}

/// The kernel function a thread in `dir` sleeps in; `None` while it runs (the kernel writes
/// `0`), when it is gone, or when the kernel hides it from this reader.
fn read_wchan(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("wchan")).ok()?;
    let w = text.trim();
    (!w.is_empty() && w != "0").then(|| w.to_owned())
}

/// `se.slice` from a `sched` file in `dir`.
fn slice_from_sched_file(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("sched")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("se.slice"))
        .and_then(|rest| rest.trim_start().strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

fn read_err(path: &Path, e: impl std::fmt::Display) -> ObserveError {
    ObserveError::Read {
        path: path.to_path_buf(),
        message: e.to_string().to_lowercase(),
    }
}

impl ProcSource for ProcfsSource {
    fn scan(&mut self, opts: &ScanOptions) -> Result<Vec<ProcObs>, ObserveError> {
        let iter = procfs::process::all_processes_with_root(&self.root)
            .map_err(|e| read_err(&self.root, e))?;
        let mut out = Vec::with_capacity(512);
        for p in iter.flatten() {
            // A process that exits while being read is simply not part of this scan.
            if let Ok(obs) = self.read_process(&p, opts) {
                out.push(obs);
            }
        }
        let seen: HashSet<i32> = out.iter().map(|p| p.pid).collect();
        self.cache.retain(|pid, _| seen.contains(pid));
        self.idle.retain(|pid, _| seen.contains(pid));
        // After a flood of short-lived processes the maps keep their size: give it back.
        super::shrink_map(&mut self.cache);
        super::shrink_map(&mut self.idle);
        Ok(out)
    }

    fn scan_pid(&mut self, pid: i32, opts: &ScanOptions) -> Result<ProcObs, ObserveError> {
        let p = Process::new_with_root(self.root.join(pid.to_string()))
            .map_err(|_| ObserveError::NoSuchProcess(pid))?;
        self.read_process(&p, opts).map_err(|e| match e {
            ProcError::NotFound(_) => ObserveError::NoSuchProcess(pid),
            other => read_err(&self.root.join(pid.to_string()), other),
        })
    }

    fn cpu_times(&mut self) -> Result<Vec<CpuTime>, ObserveError> {
        let path = self.root.join("stat");
        let text = std::fs::read_to_string(&path).map_err(|e| read_err(&path, e))?;
        Ok(parse_cpu_times(&text))
    }

    fn port_owner(&mut self, port: u16) -> Option<i32> {
        let sys = procfs::current_system_info();
        let mut inodes = HashSet::new();
        for file in ["net/tcp", "net/tcp6"] {
            let Ok(entries) = procfs::net::TcpNetEntries::from_file(self.root.join(file), sys)
            else {
                continue;
            };
            inodes.extend(
                entries
                    .0
                    .iter()
                    .filter(|e| {
                        e.state == procfs::net::TcpState::Listen && e.local_address.port() == port
                    })
                    .map(|e| e.inode),
            );
        }
        if inodes.is_empty() {
            return None;
        }
        let procs = procfs::process::all_processes_with_root(&self.root).ok()?;
        procs.flatten().find_map(|p| {
            let fds = p.fd().ok()?;
            let owns = fds
                .flatten()
                .any(|fd| matches!(fd.target, FDTarget::Socket(i) if inodes.contains(&i)));
            owns.then(|| p.pid())
        })
    }
}

/// Per-CPU busy and total ticks from `/proc/stat` text.
pub fn parse_cpu_times(text: &str) -> Vec<CpuTime> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_ascii_whitespace();
            let cpu: u32 = it.next()?.strip_prefix("cpu")?.parse().ok()?;
            let vals: Vec<u64> = it.filter_map(|v| v.parse().ok()).collect();
            let total: u64 = vals.iter().take(8).sum();
            let idle = vals.get(3).copied().unwrap_or(0) + vals.get(4).copied().unwrap_or(0);
            Some(CpuTime {
                cpu,
                busy: total.saturating_sub(idle),
                total,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_times_skip_the_total_line() {
        let text = "cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 5 0 5 40 0 0 0 0 0 0\ncpu1 5 0 5 35 5 0 0 0 0 0\nintr 1\n";
        let t = parse_cpu_times(text);
        assert_eq!(
            t,
            vec![
                CpuTime {
                    cpu: 0,
                    busy: 10,
                    total: 50
                },
                CpuTime {
                    cpu: 1,
                    busy: 10,
                    total: 50
                }
            ]
        );
    }

    /// Reproductions 1 and 2 of issue 19: a sleeping process is served from the idle cache,
    /// and a renice (or the tuner's own write) between two scans must show on the second.
    #[test]
    fn an_idle_process_shows_a_renice_on_the_next_scan() {
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id() as i32;
        let mut src = ProcfsSource::new("/proc");
        let opts = ScanOptions::default();
        // Until the child sleeps: two scans in a row with the same CPU time.
        let mut settled = None;
        for _ in 0..100 {
            let obs = src.scan_pid(pid, &opts).expect("child readable");
            if obs.stale && obs.comm == "sleep" {
                settled = Some(obs.tasks[0].nice);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let nice = settled.expect("the sleeping child is served from the idle cache");
        // Raising nice needs no privilege; the child starts at whatever nice the test runs at.
        if nice == 19 {
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("skipped: the test runs at nice 19, and a renice must raise nice");
            return;
        }
        let want = nice + 1;
        let st = std::process::Command::new("renice")
            .args(["-n", &want.to_string(), "-p", &pid.to_string()])
            .output()
            .expect("run renice");
        assert!(st.status.success(), "renice: {st:?}");
        let obs = src.scan_pid(pid, &opts).expect("child readable");
        let _ = child.kill();
        let _ = child.wait();
        assert!(obs.stale, "still idle: counters come from the cache");
        assert_eq!(obs.tasks[0].nice, want, "the renice shows on the next scan");
    }

    /// Wait channels cost a read per thread: they are read only for the processes the filter
    /// takes, which it judges before any thread is read.
    #[test]
    fn wait_channels_are_read_only_for_processes_the_filter_takes() {
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id() as i32;
        let me = std::process::id() as i32;
        let opts = ScanOptions {
            threads: true,
            wait_channels: Some(super::super::WchanFilter::new(|p| p.comm == "sleep")),
            ..Default::default()
        };
        let mut asleep = None;
        for _ in 0..100 {
            // A fresh source each time: an idle process's threads come from the cache, wait
            // channel included, and the first read may catch the child still running.
            let obs = ProcfsSource::new("/proc")
                .scan_pid(pid, &opts)
                .expect("child readable");
            if obs.comm == "sleep" && obs.tasks[0].wchan.is_some() {
                asleep = obs.tasks[0].wchan.clone();
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let mine = ProcfsSource::new("/proc")
            .scan_pid(me, &opts)
            .expect("own process is readable");
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            asleep.is_some(),
            "the sleeping child's wait channel is read"
        );
        assert!(
            mine.tasks.iter().all(|t| t.wchan.is_none()),
            "{:?}",
            mine.tasks
        );
    }

    #[test]
    fn live_proc_sees_this_process() {
        let mut src = ProcfsSource::new("/proc");
        let me = std::process::id() as i32;
        let opts = ScanOptions {
            threads: true,
            ..Default::default()
        };
        let obs = src.scan_pid(me, &opts).expect("own process is readable");
        assert_eq!(obs.pid, me);
        assert!(!obs.kthread);
        assert!(obs.exe.is_some());
        // Other test threads come and go; the main thread stays.
        let main = obs
            .tasks
            .iter()
            .find(|t| t.tid == me)
            .expect("main thread listed");
        assert!(
            main.slice_ns.is_some(),
            "sched_getattr reports a slice for fair tasks"
        );
        assert!(matches!(
            src.scan_pid(i32::MAX, &opts),
            Err(ObserveError::NoSuchProcess(_))
        ));
    }
}
