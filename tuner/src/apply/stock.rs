//! The stock backend, for kernels without sched_hint: each class becomes a policy, a nice
//! value and an EEVDF custom slice (`sched_setattr`, per thread); a strict node becomes CPU
//! affinity (`sched_setaffinity`); memory moves to the node with `migrate_pages` in a worker
//! thread, so a slow migration never holds up the scan loop. Hints do not expire here.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use nix::errno::Errno;
use nix::unistd::Pid;

use super::{ApplyError, HintOp, HintSink, Target};
use crate::config::{Backend, Config, MigrateMode, StockClass, StockConfig, StockPolicy};
use crate::hint::{Hint, HintClass, KernelHint};
use crate::metrics::Metrics;
use crate::observe::{CpuSet, OwnWrite, Topology};
use crate::sys;
use crate::uapi::{self, sched_attr};

fn policy_number(p: StockPolicy) -> u32 {
    match p {
        StockPolicy::Normal => uapi::SCHED_NORMAL,
        StockPolicy::Batch => uapi::SCHED_BATCH,
        StockPolicy::Idle => uapi::SCHED_IDLE,
    }
}

/// The `sched_attr` that expresses `class` (and `inherit`) on a stock kernel.
pub fn attr_for(class: StockClass, inherit: bool) -> sched_attr {
    sched_attr {
        size: uapi::ATTR_SIZE,
        sched_policy: policy_number(class.policy),
        sched_flags: if inherit {
            0
        } else {
            u64::from(uapi::SCHED_FLAG_RESET_ON_FORK)
        },
        sched_nice: class.nice,
        sched_runtime: class.slice_us * 1000,
        ..Default::default()
    }
}

struct Migration {
    pid: i32,
    from: Vec<u64>,
    to: Vec<u64>,
}

/// A worker thread that runs `migrate_pages` off the scan loop.
struct Migrator {
    tx: Option<SyncSender<Migration>>,
    worker: Option<JoinHandle<()>>,
}

impl Migrator {
    fn start(metrics: Option<Arc<Metrics>>) -> Self {
        let (tx, rx) = sync_channel::<Migration>(32);
        let worker = std::thread::Builder::new()
            .name("tuner-migrate".into())
            .spawn(move || {
                for m in rx {
                    match sys::migrate_pages(m.pid, &m.from, &m.to) {
                        Ok(left) => {
                            tracing::debug!(pid = m.pid, pages_left = left, "memory migrated")
                        }
                        Err(e) => {
                            tracing::debug!(pid = m.pid, error = %e, "migrate_pages failed");
                            if let Some(mt) = &metrics {
                                mt.migration_errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    if let Some(mt) = &metrics {
                        mt.migrations.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .ok();
        Migrator {
            tx: worker.as_ref().map(|_| tx),
            worker,
        }
    }

    fn submit(&self, m: Migration) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(m) {
            Ok(()) => {}
            Err(TrySendError::Full(m)) => {
                tracing::debug!(pid = m.pid, "migration queue full; retried on a later scan")
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

impl Drop for Migrator {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

pub struct StockSink {
    cfg: StockConfig,
    topo: Option<Topology>,
    /// Affinity before a strict hint, restored when the hint goes.
    saved_affinity: HashMap<i32, nix::sched::CpuSet>,
    /// The node each process's memory was last moved to.
    migrated: HashMap<i32, u32>,
    migrator: Migrator,
}

impl StockSink {
    pub fn new(cfg: StockConfig, metrics: Option<Arc<Metrics>>) -> Self {
        Self {
            cfg,
            topo: None,
            saved_affinity: HashMap::new(),
            migrated: HashMap::new(),
            migrator: Migrator::start(metrics),
        }
    }

    fn node_cpus(&self, node: u32) -> Option<&CpuSet> {
        self.topo.as_ref()?.node(node).map(|n| &n.cpus)
    }

    fn set_affinity(&mut self, tid: i32, cpus: &CpuSet) -> Result<(), Errno> {
        let pid = Pid::from_raw(tid);
        if let std::collections::hash_map::Entry::Vacant(slot) = self.saved_affinity.entry(tid) {
            slot.insert(nix::sched::sched_getaffinity(pid)?);
        }
        let mut set = nix::sched::CpuSet::new();
        for cpu in cpus.iter() {
            set.set(cpu as usize)?;
        }
        nix::sched::sched_setaffinity(pid, &set)
    }

    fn restore_affinity(&mut self, tid: i32) -> Result<(), Errno> {
        match self.saved_affinity.remove(&tid) {
            Some(set) => nix::sched::sched_setaffinity(Pid::from_raw(tid), &set),
            None => Ok(()),
        }
    }

    /// Writes `attr` (and affinity) to every thread; threads that exited meanwhile are
    /// skipped, and the op fails with `NoSuchTask` only when none was left.
    fn write_threads(
        &mut self,
        pid: i32,
        tids: &[i32],
        hint: Option<&Hint>,
    ) -> Result<(), ApplyError> {
        let class = hint.map_or(HintClass::None, |h| h.class);
        let attr = attr_for(self.cfg.class(class), hint.is_none_or(|h| h.inherit));
        let strict_cpus = hint
            .filter(|h| h.strict)
            .and_then(|h| h.node)
            .and_then(|n| self.node_cpus(n).cloned());
        let tids: Vec<i32> = if tids.is_empty() {
            vec![pid]
        } else {
            tids.to_vec()
        };
        let mut alive = 0;
        for &tid in &tids {
            let res = sys::sched_setattr(tid, &attr).and_then(|()| match &strict_cpus {
                Some(cpus) => self.set_affinity(tid, cpus),
                None => self.restore_affinity(tid),
            });
            match res {
                Ok(()) => alive += 1,
                Err(Errno::ESRCH) => {
                    self.saved_affinity.remove(&tid);
                }
                Err(Errno::EPERM | Errno::EACCES) => {
                    return Err(ApplyError::PermissionDenied(format!(
                        "setting {class} on pid {pid} needs CAP_SYS_NICE"
                    )))
                }
                Err(Errno::EINVAL) => {
                    return Err(ApplyError::Invalid(format!(
                        "sched_setattr refused {class} for tid {tid} (EINVAL)"
                    )))
                }
                Err(errno) => {
                    return Err(ApplyError::Os {
                        op: "sched_setattr",
                        errno,
                    })
                }
            }
        }
        if alive == 0 {
            return Err(ApplyError::NoSuchTask(pid));
        }
        Ok(())
    }

    fn maybe_migrate(&mut self, pid: i32, hint: &Hint) {
        let want = match self.cfg.migrate {
            MigrateMode::Never => false,
            MigrateMode::Strict => hint.strict,
            MigrateMode::Always => true,
        };
        let (Some(node), Some(topo)) = (hint.node.filter(|_| want), self.topo.as_ref()) else {
            return;
        };
        if self.migrated.get(&pid) == Some(&node) || !topo.is_numa() {
            return;
        }
        let words = (topo.nodes.iter().map(|n| n.id).max().unwrap_or(0) / 64 + 1) as usize;
        let mut from = CpuSet::new();
        for n in topo.nodes.iter().filter(|n| n.id != node) {
            from.insert(n.id);
        }
        let mut to = CpuSet::new();
        to.insert(node);
        self.migrator.submit(Migration {
            pid,
            from: from.to_words(words),
            to: to.to_words(words),
        });
        self.migrated.insert(pid, node);
    }
}

impl HintSink for StockSink {
    fn kind(&self) -> Backend {
        Backend::Stock
    }

    fn apply(&mut self, ops: &[HintOp]) -> Vec<Result<(), ApplyError>> {
        ops.iter()
            .map(|op| match op {
                HintOp::Set { target, hint, tids } => {
                    let r = self.write_threads(target.pid, tids, Some(hint));
                    if r.is_ok() {
                        self.maybe_migrate(target.pid, hint);
                    }
                    r
                }
                HintOp::Clear { target, tids } => {
                    self.migrated.remove(&target.pid);
                    self.write_threads(target.pid, tids, None)
                }
            })
            .collect()
    }

    /// Reads the thread's attributes back and names the class they express, when they
    /// match one of the configured stock classes.
    fn get(&mut self, target: Target) -> Result<Option<KernelHint>, ApplyError> {
        let attr = sys::sched_getattr(target.pid).map_err(|e| match e {
            Errno::ESRCH => ApplyError::NoSuchTask(target.pid),
            errno => ApplyError::Os {
                op: "sched_getattr",
                errno,
            },
        })?;
        let base_like = |c: &StockClass| {
            policy_number(c.policy) == attr.sched_policy
                && c.nice == attr.sched_nice
                && (c.slice_us == 0 || c.slice_us * 1000 == attr.sched_runtime)
        };
        let class = HintClass::ALL
            .into_iter()
            .skip(1)
            .find(|c| base_like(&self.cfg.class(*c)));
        // A strict hint shows as affinity equal to one node's CPUs, on a NUMA machine.
        let affinity: Option<CpuSet> = nix::sched::sched_getaffinity(Pid::from_raw(target.pid))
            .ok()
            .map(|aff| {
                let mut set = CpuSet::new();
                for cpu in
                    (0..nix::sched::CpuSet::count()).filter(|c| aff.is_set(*c).unwrap_or(false))
                {
                    set.insert(cpu as u32);
                }
                set
            });
        let node = self
            .topo
            .as_ref()
            .filter(|t| t.is_numa())
            .and_then(|t| t.nodes.iter().find(|n| Some(&n.cpus) == affinity.as_ref()));
        Ok(class.map(|class| KernelHint {
            class,
            node: node.map(|n| n.id),
            strict: node.is_some(),
            inherit: attr.sched_flags & u64::from(uapi::SCHED_FLAG_RESET_ON_FORK) == 0,
            source: None,
            ttl_ms: 0,
            generation: 0,
        }))
    }

    fn covers_new_threads(&self) -> bool {
        false
    }

    fn own_write(&self, hint: &Hint, topo: Option<&Topology>) -> Option<OwnWrite> {
        let c = self.cfg.class(hint.class);
        let cpus = hint
            .node
            .filter(|_| hint.strict)
            .and_then(|n| topo.or(self.topo.as_ref())?.node(n))
            .map(|n| n.cpus.clone());
        Some(OwnWrite::Stock {
            policy: policy_number(c.policy),
            nice: c.nice,
            slice_ns: (c.slice_us > 0).then_some(c.slice_us * 1000),
            cpus,
        })
    }

    fn set_topology(&mut self, topo: &Topology) {
        self.topo = Some(topo.clone());
    }

    fn set_config(&mut self, cfg: &Config) -> Vec<HintClass> {
        let changed = self.cfg.changed_classes(&cfg.stock);
        self.cfg = cfg.stock.clone();
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::hint::{test_hint, HintSource};

    #[test]
    fn classes_map_to_attributes() {
        let cfg = Config::default().stock;
        let a = attr_for(cfg.class(HintClass::Batch), true);
        assert_eq!(
            (a.sched_policy, a.sched_nice, a.sched_runtime, a.sched_flags),
            (uapi::SCHED_BATCH, 0, 12_000_000, 0)
        );
        let a = attr_for(cfg.class(HintClass::Background), false);
        assert_eq!(a.sched_policy, uapi::SCHED_IDLE);
        assert_eq!(a.sched_flags, u64::from(uapi::SCHED_FLAG_RESET_ON_FORK));
        let a = attr_for(cfg.class(HintClass::None), true);
        assert_eq!(
            (a.sched_policy, a.sched_nice, a.sched_runtime),
            (uapi::SCHED_NORMAL, 0, 0)
        );
    }

    /// Writes to a thread of this test process: setting batch and clearing again needs no
    /// privilege (lowering priority and restoring nice 0 from 0 is allowed).
    #[test]
    fn own_thread_round_trip() {
        let tid = nix::unistd::gettid().as_raw();
        let before = sys::sched_getattr(tid).unwrap();
        let mut sink = StockSink::new(Config::default().stock, None);
        let hint = test_hint(HintClass::Batch, HintSource::Admin);
        let t = Target {
            pid: tid,
            scope: super::super::Scope::Thread,
        };
        let r = sink.apply(&[HintOp::Set {
            target: t,
            hint,
            tids: vec![tid],
        }]);
        assert_eq!(r, vec![Ok(())]);
        let during = sys::sched_getattr(tid).unwrap();
        assert_eq!(during.sched_policy, uapi::SCHED_BATCH);
        assert_eq!(
            sink.get(t).unwrap().map(|h| h.class),
            Some(HintClass::Batch)
        );
        // Back to SCHED_OTHER: allowed for an unprivileged caller only from SCHED_BATCH/IDLE
        // with RLIMIT_NICE, so restore only when it works and check what we can.
        let r = sink.apply(&[HintOp::Clear {
            target: t,
            tids: vec![tid],
        }]);
        if r == vec![Ok(())] {
            let after = sys::sched_getattr(tid).unwrap();
            assert_eq!(after.sched_policy, before.sched_policy);
        }
    }

    #[test]
    fn vanished_tasks_are_no_such_task() {
        let mut sink = StockSink::new(Config::default().stock, None);
        let hint = test_hint(HintClass::Batch, HintSource::Rule);
        let t = Target {
            pid: i32::MAX - 1,
            scope: super::super::Scope::Process,
        };
        let r = sink.apply(&[HintOp::Set {
            target: t,
            hint,
            tids: vec![],
        }]);
        assert_eq!(r, vec![Err(ApplyError::NoSuchTask(i32::MAX - 1))]);
    }

    /// A reload replaces the class table: the next write and the own-write record use the new
    /// settings, and the classes that changed are reported for rewriting.
    #[test]
    fn set_config_reports_changed_classes_and_writes_the_new_settings() {
        let mut sink = StockSink::new(Config::default().stock, None);
        let mut cfg = Config::default();
        cfg.stock.classes[HintClass::Batch.index()].nice = 3;
        cfg.stock.classes[HintClass::Batch.index()].slice_us = 20_000;
        assert_eq!(sink.set_config(&cfg), vec![HintClass::Batch]);
        let hint = Hint {
            class: HintClass::Batch,
            node: None,
            strict: false,
            inherit: true,
            ttl_ms: 0,
            source: crate::hint::HintSource::Rule,
        };
        match sink.own_write(&hint, None) {
            Some(OwnWrite::Stock { nice, slice_ns, .. }) => {
                assert_eq!((nice, slice_ns), (3, Some(20_000_000)));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            sink.set_config(&cfg).is_empty(),
            "the same table again changes nothing"
        );
    }
}
