//! One observation of the whole machine, gathered by an [`Observer`] from the two sources.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::{
    CpuSet, CpuTime, ObserveError, ProcObs, ProcSource, ScanOptions, SysSource, Topology,
    WchanFilter,
};
use crate::clock::Clock;

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub at_ms: u64,
    pub scan_no: u64,
    pub procs: Vec<ProcObs>,
    pub cpu_times: Vec<CpuTime>,
    pub topology: Topology,
    /// CPUs each process may use without anyone restricting it (its cpuset or all online
    /// CPUs), by pid.
    pub allowed_cpus: HashMap<i32, CpuSet>,
    /// Pids that must never be hinted (the external classifier's server).
    pub protected: Vec<i32>,
}

/// Whether numa_maps is read this scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumaRead {
    /// Every `numa_maps_every_scans` scans, on NUMA machines with planning on.
    Auto,
    Force,
    Skip,
}

/// What an [`Observer`] reads and how often (from `[observe]`, `[plan]` and `[external]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ObserveOptions {
    /// Read every thread, not only the thread group leader.
    pub threads: bool,
    /// Read numa_maps on a schedule at all (NUMA planning is on).
    pub numa: bool,
    pub numa_min_rss_kib: u64,
    pub numa_maps_every_scans: u32,
    pub static_refresh_scans: u32,
    /// Read the wait channels of the threads of the processes it takes (rules with thread
    /// roles ask for it); `None`: of none.
    pub wait_channels: Option<WchanFilter>,
    /// The external classifier's server, never to be hinted; `None` when it is disabled.
    pub classifier_server: Option<ClassifierServer>,
}

/// How to find the external classifier's server.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierServer {
    /// A file holding its pid.
    pub pid_file: Option<PathBuf>,
    /// The port it listens on; its owner is looked up.
    pub port: Option<u16>,
}

pub struct Observer {
    procs: Box<dyn ProcSource>,
    sys: Box<dyn SysSource>,
    clock: Arc<dyn Clock>,
    opts: ObserveOptions,
    scan_no: u64,
    last_numa_scan: Option<u64>,
    port_owner: Option<i32>,
    port_checked_scan: Option<u64>,
}

/// How often (in scans) the owner of the classifier's port is looked up: it walks every fd.
const PORT_OWNER_EVERY_SCANS: u64 = 12;

impl Observer {
    pub fn new(
        procs: Box<dyn ProcSource>,
        sys: Box<dyn SysSource>,
        clock: Arc<dyn Clock>,
        opts: ObserveOptions,
    ) -> Self {
        Observer {
            procs,
            sys,
            clock,
            opts,
            scan_no: 0,
            last_numa_scan: None,
            port_owner: None,
            port_checked_scan: None,
        }
    }

    /// New options (a reloaded configuration).
    pub fn set_options(&mut self, opts: ObserveOptions) {
        self.opts = opts;
        self.port_checked_scan = None;
    }

    pub fn observe(&mut self, numa: NumaRead) -> Result<Snapshot, ObserveError> {
        let opts = &self.opts;
        let topology = self.sys.topology()?;
        let scan_no = self.scan_no;
        self.scan_no += 1;
        let numa_due = match numa {
            NumaRead::Force => true,
            NumaRead::Skip => false,
            NumaRead::Auto => {
                opts.numa
                    && topology.is_numa()
                    && self
                        .last_numa_scan
                        .is_none_or(|s| scan_no - s >= u64::from(opts.numa_maps_every_scans))
            }
        };
        if numa_due {
            self.last_numa_scan = Some(scan_no);
        }
        let scan = ScanOptions {
            threads: opts.threads,
            numa_min_rss_kib: numa_due.then_some(opts.numa_min_rss_kib),
            refresh_static: scan_no > 0 && scan_no % u64::from(opts.static_refresh_scans) == 0,
            wait_channels: opts.wait_channels.clone(),
        };
        let at_ms = self.clock.now_ms();
        let procs = self.procs.scan(&scan)?;
        let cpu_times = self.procs.cpu_times().unwrap_or_default();

        let mut by_cgroup: HashMap<(String, Option<String>), CpuSet> = HashMap::new();
        let mut allowed_cpus = HashMap::with_capacity(procs.len());
        for p in procs.iter().filter(|p| !p.kthread) {
            let key = (p.cgroup.clone(), p.cpuset_cgroup.clone());
            let set = by_cgroup
                .entry(key)
                .or_insert_with(|| {
                    self.sys
                        .cgroup_cpus(&p.cgroup, p.cpuset_cgroup.as_deref())
                        .unwrap_or_else(|| topology.online_cpus.clone())
                })
                .clone();
            allowed_cpus.insert(p.pid, set);
        }

        let protected = self.protected_pids(scan_no);
        Ok(Snapshot {
            at_ms,
            scan_no,
            procs,
            cpu_times,
            topology,
            allowed_cpus,
            protected,
        })
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn protected_pids(&mut self, scan_no: u64) -> Vec<i32> {
        let mut out = Vec::new();
        let Some(server) = &self.opts.classifier_server else {
            return out;
        };
        if let Some(pid) = server
            .pid_file
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            out.push(pid);
        }
        if let Some(port) = server.port {
            if self
                .port_checked_scan
                .is_none_or(|s| scan_no - s >= PORT_OWNER_EVERY_SCANS)
            {
                self.port_checked_scan = Some(scan_no);
                self.port_owner = self.procs.port_owner(port);
            }
            out.extend(self.port_owner);
        }
        out
    }
}
