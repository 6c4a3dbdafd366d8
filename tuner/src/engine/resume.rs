//! What carries over into an engine's first pass: the hints an earlier run left in the state
//! file (taken up as this engine's own, or restored, per `on_restart`), and for `tuner
//! explain` the hints held now and the classifier's cached answers.

use super::{clear_ops, own_of, Applied, Engine};
use crate::apply::{HintOp, HintSink, Scope};
use crate::classify;
use crate::classify::exclude::host_base_slice;
use crate::classify::external::{ExternalClassifier, ProcFacts};
use crate::classify::roles::RoleMemory;
use crate::config::OnRestart;
use crate::observe::snapshot::Snapshot;
use crate::observe::{ProcKey, Topology};
use crate::state::{unix_ms, Entry, Settings, Writer};

impl Engine {
    /// Hints an earlier run wrote (the state file): at the next pass, each one whose
    /// process is still the same (pid and start time) is taken back as this engine's own
    /// (`adopt`; a lapsed stock hint then stays only where the pass hints the process the
    /// same way again) or restored (`restore`). Entries of another backend, kernel hints
    /// that lapsed, and entries whose process is gone are dropped.
    pub fn resume(&mut self, entries: Vec<Entry>, on_restart: OnRestart) {
        self.resume = Some((entries, on_restart));
    }

    /// Hints held now (the state file's entries of `backend`), taken as this engine's own at
    /// the next pass without writing anything: `tuner explain` starts from them.
    pub fn hold(&mut self, backend: &'static str, entries: Vec<Entry>) {
        self.backend = backend;
        self.resume = Some((entries, OnRestart::Adopt));
    }

    /// The external classifier's cached answers about `pids` in `snap`, held as if just
    /// answered (no request is made): `tuner explain` shows what the model said.
    pub fn take_cached(&mut self, snap: &Snapshot, pids: &[i32], ext: &dyn ExternalClassifier) {
        let (keys, facts): (Vec<ProcKey>, Vec<ProcFacts>) = snap
            .procs
            .iter()
            .filter(|p| pids.contains(&p.pid))
            .map(|p| (p.key(), classify::facts(p)))
            .unzip();
        let answers = ext.cached(&facts);
        if !answers.is_empty() {
            self.on_external(&keys, Ok(answers), snap.at_ms);
        }
    }

    /// Takes up the entries [`Engine::resume`] left, against this snapshot.
    pub(super) fn take_up(&mut self, snap: &Snapshot, sink: &mut dyn HintSink) -> Vec<HintOp> {
        let Some((entries, on_restart)) = self.resume.take() else {
            return Vec::new();
        };
        // The file is rewritten with what this run holds even when nothing is restored: it
        // may name writes that never came (journalled, then the run died), or processes gone.
        self.dirty = true;
        let now = unix_ms();
        let base = host_base_slice(&snap.procs, &self.own);
        let mut ops = Vec::new();
        for e in entries {
            let Some(p) = snap.procs.iter().find(|p| p.key() == e.key()) else {
                continue;
            };
            if e.backend != self.backend || e.by != Writer::Daemon {
                continue;
            }
            // Journalled before the write, and the write never came (the run died first):
            // nothing of the tuner's is there.
            let mut e = e;
            e.tasks.retain(|r| {
                let Some(t) = p.tasks.iter().find(|t| t.tid == r.tid) else {
                    return false;
                };
                let now = Settings::of(t, base, r.written.cpus.is_some());
                !(r.written.differs(&now, base).is_some() && r.prior.differs(&now, base).is_none())
            });
            if e.tasks.is_empty() && e.backend == "stock" {
                continue;
            }
            let a = Applied {
                hint: e.hint,
                scope: if e.per_thread {
                    Scope::Thread
                } else {
                    Scope::Process
                },
                tids: if e.tasks.is_empty() {
                    p.tasks.iter().map(|t| t.tid).collect()
                } else {
                    e.tasks.iter().map(|t| t.tid).collect()
                },
                // The lifetime runs from the earlier write, not from this run's start.
                written_at_ms: snap.at_ms as i64
                    - now.saturating_sub(e.written_unix_ms).min(i64::MAX as u64) as i64,
                comm: p.comm.clone(),
                since_unix_ms: e.since_unix_ms,
                written_unix_ms: e.written_unix_ms,
                records: e.tasks.clone(),
                base_slice_ns: base,
                rewrite: false,
                thread_classes: e.thread_classes.clone(),
            };
            if on_restart == OnRestart::Restore {
                ops.extend(clear_ops(e.key(), &a));
                continue;
            }
            if e.lapsed(now) && a.records.is_empty() {
                // The kernel dropped it when it lapsed: nothing is held.
                continue;
            }
            // A stock hint that lapsed while no tuner ran is held as lapsed: the first pass
            // puts it back unless it hints the process the same way again (then it is
            // refreshed), as the kernel would drop it and the pass write it anew. Restoring it
            // here would leave the process looking manually set to this pass's snapshot,
            // unhinted until the next: every other `tuner once` would undo the one before.
            self.own_writes(&a, sink, &snap.topology);
            sink.adopt(e.key(), &a.records);
            let tracked = self.procs.entry(e.key()).or_default();
            // The roles written are held as if just seen: a thread's rates need two scans,
            // and without them the first pass would take every role away and write again.
            for c in &a.thread_classes {
                tracked.roles.insert(
                    c.tid,
                    RoleMemory {
                        held: Some(c.role.clone()),
                        missed: 0,
                    },
                );
            }
            tracked.applied = Some(a);
        }
        ops
    }

    /// Records `a`'s threads as holding the tuner's own settings, for the exclusion step: as
    /// each was written (the state's records), else as the sink writes the hint.
    pub(super) fn own_writes(&mut self, a: &Applied, sink: &dyn HintSink, topo: &Topology) {
        if !a.records.is_empty() {
            for r in &a.records {
                self.own.insert(r.tid, own_of(&r.written));
            }
            return;
        }
        for &t in &a.tids {
            if let Some(own) = sink.own_write(&a.hint_of(t), Some(topo)) {
                self.own.insert(t, own);
            }
        }
    }
}
