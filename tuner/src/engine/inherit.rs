//! Settings that reach a task by inheritance rather than by a write: fork and clone copy
//! policy, nice, slice and affinity from the task that creates the new one. A child of a
//! process the tuner hinted, or a thread created in one, holds the tuner's settings without
//! the tuner having written them. They are the tuner's, not an admin's "manual settings":
//! left as manual, every child of a hinted `make` or shell was skipped for good (thousands
//! of skips in a churn run on the stock backend) and kept the inherited settings after the
//! tuner's exit, since nothing recorded them.
//!
//! Only tasks that appeared since the previous pass are looked at: one that was there
//! before the tuner's write and holds the same settings had them from someone else.
//!
//! Stock backend only (its records say what was written). A kernel hint inherited through
//! `SCHED_HINT_F_INHERIT` changes no setting the exclusion step reads, so it never looks
//! manual.

use std::collections::{HashMap, HashSet};

use super::{own_of, Applied, Engine};
use crate::apply::{HintSink, Scope};
use crate::observe::snapshot::Snapshot;
use crate::observe::{ProcObs, TaskObs};
use crate::state::{unix_ms, Settings, TaskRecord};

/// How far up the process tree a hinted ancestor is looked for.
const MAX_ANCESTRY: usize = 16;

/// Whether `t` holds settings it inherited from a thread the tuner wrote (one of
/// `records`): `Some(true)` with a record of what it holds and what that replaced,
/// `Some(false)` when it holds the replaced settings only, `None` when it holds something
/// else (someone else set it).
fn inherited(
    records: &[TaskRecord],
    t: &TaskObs,
    base_slice_ns: Option<u64>,
) -> Option<(bool, TaskRecord)> {
    let mut prior_only = None;
    for rec in records {
        let now = Settings::of(t, base_slice_ns, rec.written.cpus.is_some());
        let took = rec.written.inherited_by(&rec.prior, &now, base_slice_ns);
        let record = || TaskRecord {
            tid: t.tid,
            written: now.clone(),
            prior: rec.prior.clone(),
        };
        match took {
            // The thread that created it may be any of the writes: the first that explains
            // what it holds wins.
            Some(true) => return Some((true, record())),
            Some(false) => prior_only = prior_only.or_else(|| Some((false, record()))),
            None => {}
        }
    }
    prior_only
}

impl Engine {
    /// Adopts what inherited the tuner's settings since the last pass, as the tuner's own:
    ///
    /// - a thread created in a process the tuner holds gets a record (what it holds, and what
    ///   the write it inherited replaced), so that it is not taken for manually set and a
    ///   clear puts it back too; the process is written again as for any new thread;
    /// - a child process is held as holding its nearest hinted ancestor's hint, with that
    ///   ancestor's replaced settings as what a clear puts back. From then on it is
    ///   classified on its own like any process the tuner hinted: the same class keeps the
    ///   hint, another class rewrites it, "no hint" (or the tuner's exit) restores, and a
    ///   change by anyone else makes the tuner yield.
    ///
    /// A task holding anything that is neither the write nor what it replaced was set by
    /// someone else, and stays so.
    pub(super) fn adopt_inherited(&mut self, snap: &Snapshot, sink: &dyn HintSink) {
        let mut changed = self.adopt_threads(snap);
        let by_pid: HashMap<i32, &ProcObs> = snap.procs.iter().map(|p| (p.pid, p)).collect();
        let mut adopted = 0u64;
        for p in snap.procs.iter().filter(|p| !p.kthread) {
            if self.seen_procs.contains(&p.key())
                || self
                    .procs
                    .get(&p.key())
                    .is_some_and(|t| t.applied.is_some() || t.yielded.is_some())
            {
                continue;
            }
            let excluded = crate::classify::exclude::process_exclusion(
                p,
                &self.cfg.exclude,
                self.self_pid,
                &snap.protected,
            );
            if excluded.is_some() {
                continue;
            }
            let Some((ancestor, a)) = self.hinted_ancestor(p, &by_pid) else {
                continue;
            };
            let mut took_any = false;
            let mut records = Vec::with_capacity(p.tasks.len());
            for t in &p.tasks {
                match inherited(&a.records, t, a.base_slice_ns) {
                    Some((took, rec)) => {
                        took_any |= took;
                        records.push(rec);
                    }
                    None => break,
                }
            }
            if records.len() != p.tasks.len() || !took_any {
                continue;
            }
            let held = Applied {
                hint: a.hint,
                scope: Scope::Process,
                tids: p.tasks.iter().map(|t| t.tid).collect(),
                // The lifetime is the ancestor's write's: the child took it from that.
                written_at_ms: a.written_at_ms,
                rewrite: false,
                comm: p.comm.clone(),
                since_unix_ms: unix_ms(),
                written_unix_ms: a.written_unix_ms,
                records,
                base_slice_ns: a.base_slice_ns,
                // A child process takes its ancestor's process hint, not a thread's role.
                thread_classes: Vec::new(),
            };
            tracing::debug!(pid = p.pid, comm = %p.comm, ancestor, class = %a.hint.class, "inherited the tuner's hint; adopted");
            self.own_writes(&held, sink, &snap.topology);
            self.procs.entry(p.key()).or_default().applied = Some(held);
            adopted += 1;
        }
        if adopted > 0 {
            self.metrics
                .inherited
                .fetch_add(adopted, std::sync::atomic::Ordering::Relaxed);
            changed = true;
        }
        self.dirty |= changed;
        self.seen_procs = snap.procs.iter().map(ProcObs::key).collect();
        self.seen_tids = snap
            .procs
            .iter()
            .flat_map(|p| p.tasks.iter().map(|t| t.tid))
            .collect::<HashSet<i32>>();
    }

    /// Threads created in processes the tuner holds since its write. They are not added to
    /// the held threads, so that the pass writes the process again (the stock backend
    /// writes thread by thread): the record makes the new thread the tuner's in between,
    /// and keeps what it replaced for the clear.
    fn adopt_threads(&mut self, snap: &Snapshot) -> bool {
        let mut changed = false;
        for p in snap.procs.iter().filter(|p| !p.kthread) {
            let Some(a) = self
                .procs
                .get_mut(&p.key())
                .and_then(|t| t.applied.as_mut())
            else {
                continue;
            };
            if a.records.is_empty() {
                continue;
            }
            let new: Vec<TaskRecord> = p
                .tasks
                .iter()
                .filter(|t| {
                    !self.seen_tids.contains(&t.tid) && !a.records.iter().any(|r| r.tid == t.tid)
                })
                .filter_map(|t| match inherited(&a.records, t, a.base_slice_ns) {
                    Some((true, rec)) => Some(rec),
                    _ => None,
                })
                .collect();
            if new.is_empty() {
                continue;
            }
            tracing::debug!(pid = p.pid, comm = %p.comm, threads = new.len(), "new threads inherited the tuner's settings");
            for r in &new {
                self.own.insert(r.tid, own_of(&r.written));
            }
            a.records.extend(new);
            changed = true;
        }
        changed
    }

    /// The nearest ancestor of `p` that holds a hint of this engine's, with its pid. A
    /// parent that started after its child is a reused pid, not the parent.
    fn hinted_ancestor(
        &self,
        p: &ProcObs,
        by_pid: &HashMap<i32, &ProcObs>,
    ) -> Option<(i32, Applied)> {
        let mut cur = p;
        for _ in 0..MAX_ANCESTRY {
            let parent = by_pid
                .get(&cur.ppid)
                .filter(|q| q.pid != cur.pid && q.start_ticks <= cur.start_ticks)?;
            if let Some(a) = self.applied_of(parent.key()) {
                return Some((parent.pid, a.clone()));
            }
            cur = parent;
        }
        None
    }
}
