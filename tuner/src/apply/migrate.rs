//! Memory follows a node hint: `migrate_pages` in a worker thread, for both backends. The
//! patched kernel makes the hinted node the task's NUMA-balancing preference, which moves
//! pages only as the task faults on them (slowly, and not at all with balancing off); a
//! stock kernel has no preference at all. Either way a process placed on a node (a spread
//! server instance above all) would keep its memory on the other one for a long while, so
//! the backends move it once per node choice, off the scan loop: a migration of a large
//! process takes far longer than a scan.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::config::MigrateMode;
use crate::hint::Hint;
use crate::metrics::Metrics;
use crate::observe::{CpuSet, ProcKey, Topology};
use crate::sys;

struct Migration {
    /// The process, by pid and start time: the move may run seconds after it was queued.
    owner: ProcKey,
    from: Vec<u64>,
    to: Vec<u64>,
}

/// A worker thread that runs `migrate_pages` off the scan loop.
struct Worker {
    tx: Option<SyncSender<Migration>>,
    thread: Option<JoinHandle<()>>,
    /// Set at exit: the moves still queued are dropped, so stopping waits for one move at
    /// most, not for a queue of large processes (systemd's stop timeout).
    stop: Arc<AtomicBool>,
}

impl Worker {
    fn start(metrics: Option<Arc<Metrics>>) -> Self {
        let (tx, rx) = sync_channel::<Migration>(32);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("tuner-migrate".into())
            .spawn(move || {
                for m in rx {
                    if stopped.load(Ordering::Relaxed) {
                        break;
                    }
                    // A pid reused since the move was queued is another process: the
                    // tuner's CAP_SYS_NICE would move its shared pages too.
                    if !sys::is_process(m.owner) {
                        continue;
                    }
                    let pid = m.owner.0;
                    match sys::migrate_pages(pid, &m.from, &m.to) {
                        Ok(left) => {
                            tracing::debug!(pid, pages_left = left, "memory migrated")
                        }
                        Err(e) => {
                            tracing::debug!(pid, error = %e, "migrate_pages failed");
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
        Worker {
            tx: thread.as_ref().map(|_| tx),
            thread,
            stop,
        }
    }

    /// Queues `m`; `false` when the queue is full (the caller tries again on a later scan).
    fn submit(&self, m: Migration) -> bool {
        let Some(tx) = &self.tx else { return true };
        match tx.try_send(m) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => true,
            Err(TrySendError::Full(m)) => {
                tracing::debug!(
                    pid = m.owner.0,
                    "migration queue full; retried on a later scan"
                );
                false
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Past this many remembered processes, those that are gone are forgotten (the engine does
/// not tell the backends which processes left).
const PRUNE_AT: usize = 4096;

/// What a backend calls after each set and clear: decides whether a hint's node warrants a
/// move, remembers where each process's memory went, and queues the moves.
pub struct MemoryMover {
    mode: MigrateMode,
    topo: Option<Topology>,
    /// The node each process's memory was last moved to, by process (pid and start time:
    /// a reused pid is a new process, moved again).
    moved_to: HashMap<ProcKey, u32>,
    metrics: Option<Arc<Metrics>>,
    /// Started at the first move: a backend opened only to read hints needs none.
    worker: Option<Worker>,
}

impl MemoryMover {
    pub fn new(mode: MigrateMode, metrics: Option<Arc<Metrics>>) -> Self {
        MemoryMover {
            mode,
            topo: None,
            moved_to: HashMap::new(),
            metrics,
            worker: None,
        }
    }

    pub fn set_mode(&mut self, mode: MigrateMode) {
        self.mode = mode;
    }

    pub fn set_topology(&mut self, topo: &Topology) {
        self.topo = Some(topo.clone());
    }

    pub fn topology(&self) -> Option<&Topology> {
        self.topo.as_ref()
    }

    /// The node words `migrate_pages` takes to move `owner`'s memory to `hint`'s node, when
    /// the mode wants a move and it has not been made for this node yet.
    fn wanted(&self, owner: ProcKey, hint: &Hint) -> Option<(u32, Vec<u64>, Vec<u64>)> {
        let want = match self.mode {
            MigrateMode::Never => false,
            MigrateMode::Strict => hint.strict,
            MigrateMode::Always => true,
        };
        let node = hint.node.filter(|_| want)?;
        let topo = self.topo.as_ref().filter(|t| t.is_numa())?;
        if self.moved_to.get(&owner) == Some(&node) || topo.node(node).is_none() {
            return None;
        }
        let words = (topo.nodes.iter().map(|n| n.id).max().unwrap_or(0) / 64 + 1) as usize;
        let mut from = CpuSet::new();
        for n in topo.nodes.iter().filter(|n| n.id != node) {
            from.insert(n.id);
        }
        let mut to = CpuSet::new();
        to.insert(node);
        Some((node, from.to_words(words), to.to_words(words)))
    }

    /// After `hint` was written to a task of process `owner` (the process or one of its
    /// threads: memory is the process's, so it moves once): queues the move, once per node.
    pub fn after_set(&mut self, owner: ProcKey, hint: &Hint) {
        let Some((node, from, to)) = self.wanted(owner, hint) else {
            return;
        };
        if self.moved_to.len() >= PRUNE_AT {
            self.moved_to.retain(|k, _| sys::is_process(*k));
        }
        let metrics = &self.metrics;
        let worker = self
            .worker
            .get_or_insert_with(|| Worker::start(metrics.clone()));
        if worker.submit(Migration { owner, from, to }) {
            self.moved_to.insert(owner, node);
        }
    }

    /// After the process-scope hint of `pid` was cleared: a later hint to the same node
    /// moves its memory again. (A thread's clear leaves the process's hint in place.)
    pub fn after_clear(&mut self, pid: i32) {
        self.moved_to.retain(|k, _| k.0 != pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hint::HintClass;

    fn topo2() -> Topology {
        crate::observe::test_topology("0-1", "2-3")
    }

    fn hint(node: Option<u32>, strict: bool) -> Hint {
        Hint {
            class: HintClass::Throughput,
            node,
            strict,
            inherit: true,
            ttl_ms: 0,
            source: crate::hint::HintSource::Rule,
        }
    }

    const P1: ProcKey = (1, 1);

    #[test]
    fn a_move_is_wanted_once_per_node_and_again_after_a_clear() {
        let mut m = MemoryMover::new(MigrateMode::Strict, None);
        assert!(
            m.wanted(P1, &hint(Some(1), true)).is_none(),
            "no topology yet"
        );
        m.set_topology(&topo2());
        assert!(
            m.wanted(P1, &hint(Some(1), false)).is_none(),
            "soft hint, strict mode"
        );
        assert!(m.wanted(P1, &hint(None, true)).is_none(), "no node");
        assert!(
            m.wanted(P1, &hint(Some(7), true)).is_none(),
            "a node the machine lacks"
        );
        let (node, from, to) = m.wanted(P1, &hint(Some(1), true)).expect("strict node 1");
        assert_eq!((node, from, to), (1, vec![0b01], vec![0b10]));
        m.moved_to.insert(P1, 1);
        assert!(
            m.wanted(P1, &hint(Some(1), true)).is_none(),
            "already moved there"
        );
        assert!(
            m.wanted(P1, &hint(Some(0), true)).is_some(),
            "a new node moves again"
        );
        assert!(
            m.wanted((1, 99), &hint(Some(1), true)).is_some(),
            "pid 1 reused by another process: moved again"
        );
        m.after_clear(1);
        assert!(
            m.wanted(P1, &hint(Some(1), true)).is_some(),
            "cleared: moves again"
        );
        m.set_mode(MigrateMode::Always);
        assert!(
            m.wanted((2, 1), &hint(Some(0), false)).is_some(),
            "always: soft hints too"
        );
        m.set_mode(MigrateMode::Never);
        assert!(m.wanted((2, 1), &hint(Some(0), true)).is_none());
    }
}
