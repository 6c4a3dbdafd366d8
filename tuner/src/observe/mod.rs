//! Observation: what runs (processes, threads, their counters) and where (NUMA topology).
//!
//! Two traits keep the kernel out of unit tests: [`ProcSource`] reads processes
//! ([`procfs::ProcfsSource`] over any procfs-like tree, `/proc` or a fixture) and
//! [`SysSource`] reads topology and the sched_hint sysfs ([`sysfs::SysfsSource`]).
//! [`rates::RateTracker`] turns two observations into rates.

pub mod cpuset;
pub mod exe_trust;
pub mod numa_maps;
pub mod procfile;
pub mod procfs;
pub mod rates;
pub mod snapshot;
pub mod synthetic;
pub mod sysfs;

use std::path::PathBuf;
use std::sync::Arc;

pub use cpuset::CpuSet;
pub use rates::Rates;

/// `PF_KTHREAD` in `/proc/<pid>/stat` flags.
pub const PF_KTHREAD: u32 = 0x0020_0000;

/// A process, across pid reuse: (pid, start time in clock ticks since boot).
pub type ProcKey = (i32, u64);

#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("no such process: {0}")]
    NoSuchProcess(i32),
    #[error("cannot read {}: {message}", path.display())]
    Read { path: PathBuf, message: String },
}

/// One thread.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskObs {
    pub tid: i32,
    pub policy: u32,
    pub nice: i32,
    pub rt_priority: u32,
    /// `None` when it could not be read.
    pub cpus_allowed: Option<CpuSet>,
    /// The EEVDF slice of a fair task, `None` when unknown.
    pub slice_ns: Option<u64>,
    pub nvcsw: u64,
    pub nivcsw: u64,
    pub run_delay_ns: u64,
    /// Time on a CPU (`schedstat`'s first field), in nanoseconds.
    pub cpu_ns: u64,
    /// The kernel function the thread sleeps in (`wchan`), read only when the scan asks
    /// for wait channels ([`ScanOptions::wait_channels`]); `None` when not read, or when it
    /// runs or is runnable (the kernel reports `0`).
    pub wchan: Option<String>,
    /// Filled by [`rates::RateTracker`] for the threads of multi-threaded processes.
    pub rates: Option<ThreadRates>,
}

/// One thread's rates between two scans (the process's are [`Rates`]).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct ThreadRates {
    /// 100.0 = one full core.
    pub cpu_pct: f64,
    pub voluntary_per_s: f64,
    pub involuntary_per_s: f64,
}

/// What the tuner itself wrote to a thread, so its own settings are not taken for an admin's.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnWrite {
    /// Stock backend: these attributes. `slice_ns: None` is the kernel's base slice; `cpus`
    /// is the affinity written for a strict hint.
    Stock {
        policy: u32,
        nice: i32,
        slice_ns: Option<u64>,
        cpus: Option<CpuSet>,
    },
    /// Kernel hint through the device: the kernel may adjust slice and placement itself.
    Kernel,
}

/// One process (thread group) as observed in one scan.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProcObs {
    pub pid: i32,
    pub start_ticks: u64,
    pub ppid: i32,
    /// Session id (`/proc/PID/stat`): with autogroups on, a session shares one CPU share.
    pub session: i32,
    pub comm: String,
    pub exe: Option<PathBuf>,
    /// No unprivileged user can have written or placed the executable ([`exe_trust`]).
    pub exe_trusted: bool,
    pub cmdline: Vec<String>,
    /// The cgroup v2 path (`0::` line), else the first listed hierarchy's path.
    pub cgroup: String,
    /// The v1 cpuset hierarchy's path, when the system has one.
    pub cpuset_cgroup: Option<String>,
    pub uid: u32,
    pub kthread: bool,
    pub nr_threads: u32,
    pub rss_kib: u64,
    /// utime + stime of the whole group, in nanoseconds.
    pub cpu_ns: u64,
    /// Sums over the observed threads.
    pub nvcsw: u64,
    pub nivcsw: u64,
    pub run_delay_ns: u64,
    /// The threads; the main thread alone when threads are not read.
    pub tasks: Vec<TaskObs>,
    /// Resident KiB per node id, from numa_maps, when read this scan.
    pub numa_kib: Option<Vec<u64>>,
    /// Filled by [`rates::RateTracker`] from the previous scan.
    pub rates: Option<Rates>,
    /// The thread data (counters included) were carried over from an earlier scan: the
    /// process used no CPU since, so they were not read again.
    pub stale: bool,
}

impl ProcObs {
    pub fn key(&self) -> ProcKey {
        (self.pid, self.start_ticks)
    }
}

/// What one scan reads beyond the basics.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Read every thread of multi-threaded processes.
    pub threads: bool,
    /// Read numa_maps of processes with at least this RSS.
    pub numa_min_rss_kib: Option<u64>,
    /// Re-read cmdline, exe and cgroup of processes seen before.
    pub refresh_static: bool,
    /// Read each thread's `wchan` (what it is blocked in) with its counters, for the
    /// processes the filter takes: rules with thread roles that name a wait channel need
    /// it, nothing else does.
    pub wait_channels: Option<WchanFilter>,
}

/// Which processes have their threads' wait channels read, decided from what a scan reads
/// before the threads (comm, exe, command line, cgroup; not yet the uid). One `wchan` read
/// per thread is the price, so only the processes a rule with wait-channel roles could
/// match pay it. The engine's rules decide; observe only asks.
#[derive(Clone)]
pub struct WchanFilter(Arc<dyn Fn(&ProcObs) -> bool + Send + Sync>);

impl WchanFilter {
    pub fn new(wants: impl Fn(&ProcObs) -> bool + Send + Sync + 'static) -> Self {
        WchanFilter(Arc::new(wants))
    }

    /// Whether the threads of `p` (threads not read yet) get their wait channels read.
    pub fn wants(&self, p: &ProcObs) -> bool {
        (self.0)(p)
    }
}

impl std::fmt::Debug for WchanFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WchanFilter(..)")
    }
}

/// The same filter, not an equal one: a reload builds a new filter, and the scan then
/// re-reads the threads of processes whose wait channels it now wants.
impl PartialEq for WchanFilter {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Busy and total time of one CPU, in clock ticks, from `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTime {
    pub cpu: u32,
    pub busy: u64,
    pub total: u64,
}

pub trait ProcSource: Send {
    /// Every process in the tree; processes that vanish while being read are left out.
    fn scan(&mut self, opts: &ScanOptions) -> Result<Vec<ProcObs>, ObserveError>;
    fn scan_pid(&mut self, pid: i32, opts: &ScanOptions) -> Result<ProcObs, ObserveError>;
    fn cpu_times(&mut self) -> Result<Vec<CpuTime>, ObserveError>;
    /// The pid of the process that listens on a TCP port, when it can be found.
    fn port_owner(&mut self, port: u16) -> Option<i32>;
}

/// One NUMA node.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: u32,
    pub cpus: CpuSet,
    /// Distance to each node, indexed like [`Topology::nodes`].
    pub distances: Vec<u32>,
    pub mem_total_kib: u64,
    pub mem_free_kib: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    pub nodes: Vec<Node>,
    pub online_cpus: CpuSet,
}

impl Topology {
    pub fn is_numa(&self) -> bool {
        self.nodes.len() > 1
    }

    pub fn node(&self, id: u32) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// A single node holding every online CPU, for machines without NUMA sysfs.
    pub fn flat(online_cpus: CpuSet) -> Self {
        Topology {
            nodes: vec![Node {
                id: 0,
                cpus: online_cpus.clone(),
                distances: vec![10],
                mem_total_kib: 0,
                mem_free_kib: 0,
            }],
            online_cpus,
        }
    }
}

/// `/sys/kernel/sched_hint`, present on the patched kernel.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SchedHintSysfs {
    pub enabled: Option<bool>,
    pub abi_version: Option<u32>,
    /// `classes/<name>/<key>` values.
    pub classes: Vec<(String, Vec<(String, String)>)>,
    /// `stats/<name>` values.
    pub stats: Vec<(String, String)>,
}

pub trait SysSource: Send {
    fn topology(&mut self) -> Result<Topology, ObserveError>;
    /// The CPUs a cgroup's cpuset allows (`cpuset.cpus.effective`), when it restricts any.
    fn cgroup_cpus(&mut self, cgroup: &str, v1_cpuset: Option<&str>) -> Option<CpuSet>;
    fn sched_hint(&mut self) -> Option<SchedHintSysfs>;
}

/// Two nodes with the CPUs `node0` and `node1` (kernel list syntax), 1 GiB each with half
/// free, for tests.
#[cfg(test)]
pub fn test_topology(node0: &str, node1: &str) -> Topology {
    let node = |id: u32, cpus: &str| Node {
        id,
        cpus: CpuSet::from_list(cpus).unwrap(),
        distances: vec![10, 21],
        mem_total_kib: 1 << 20,
        mem_free_kib: 1 << 19,
    };
    Topology {
        nodes: vec![node(0, node0), node(1, node1)],
        online_cpus: CpuSet::from_list(&format!("{node0},{node1}")).unwrap(),
    }
}

/// A plain single-threaded user process for tests.
#[cfg(test)]
pub fn test_proc(pid: i32, comm: &str) -> ProcObs {
    ProcObs {
        pid,
        start_ticks: 1000 + pid as u64,
        ppid: 1,
        session: pid,
        comm: comm.into(),
        exe: Some(PathBuf::from(format!("/usr/bin/{comm}"))),
        // A packaged binary: tests of untrusted ones say so.
        exe_trusted: true,
        cmdline: vec![comm.into()],
        cgroup: "/user.slice".into(),
        uid: 1000,
        nr_threads: 1,
        rss_kib: 10_000,
        tasks: vec![TaskObs {
            tid: pid,
            cpus_allowed: Some(CpuSet::from_list("0-3").unwrap()),
            slice_ns: Some(2_800_000),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Gives a map's memory back once it holds far fewer entries than it has room for: maps
/// keyed by pid grow with a flood of processes and would otherwise keep that size.
pub fn shrink_map<K: std::hash::Hash + Eq, V>(m: &mut std::collections::HashMap<K, V>) {
    if m.capacity() > 64 && m.capacity() > 4 * m.len() {
        m.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 20, reproduction 6: after a flood of processes has gone, the pid-keyed maps
    /// give their room back.
    #[test]
    fn a_map_gives_back_what_a_flood_took() {
        let mut m: std::collections::HashMap<i32, Vec<u8>> =
            (0..10_000).map(|i| (i, vec![])).collect();
        m.retain(|k, _| *k < 10);
        let flooded = m.capacity();
        shrink_map(&mut m);
        assert!(
            m.capacity() < flooded / 100,
            "{} of {flooded}",
            m.capacity()
        );
        assert_eq!(m.len(), 10);
        let small = m.capacity();
        shrink_map(&mut m);
        assert_eq!(m.capacity(), small, "a small map is left as it is");
    }
}
