//! The writes of a pass: what each process should hold (the decision, the plan) against
//! what it holds (what this engine wrote, what others changed since, what lapsed), and what
//! is held once the sink has written.

use std::collections::{HashMap, HashSet};

use super::{clear_ops, report::Row, role_hint, Action, Applied, Engine, Work};
use crate::apply::{ApplyError, HintOp, HintSink, Scope, Target};
use crate::classify::exclude::host_base_slice;
use crate::classify::roles::RoleSet;
use crate::classify::{Decision, Verdict};
use crate::hint::{Hint, HintClass, HintSource};
use crate::observe::snapshot::Snapshot;
use crate::observe::{OwnWrite, ProcKey, ProcObs, TaskObs};
use crate::plan::NodePlan;
use crate::state::{unix_ms, Settings, TaskRecord, ThreadClass};

/// How many scans a target whose write failed is left alone before the next try.
const BACKOFF_SCANS: u64 = 12;

impl Engine {
    /// What each process should hold against what it holds: the writes of a pass, one
    /// [`Work`] per process, in no order yet. A thread whose role (`roles`) gives it another
    /// class than its process's is written one by one, with that class.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn reconcile(
        &mut self,
        snap: &Snapshot,
        decisions: &[Decision],
        roles: &[Option<RoleSet>],
        plans: &HashMap<ProcKey, NodePlan>,
        rows: &mut [Row],
        sink: &dyn HintSink,
        now: u64,
    ) -> Vec<Work> {
        // Every hint has a lifetime. The kernel drops one it was not refreshed within; on a
        // backend without expiry of its own (stock) the engine does: a refresh there only
        // moves the timestamps, and a hint that lapses is put back (`Action::Lapsed`).
        let kernel_ttl = sink.supports_ttl();
        let ttl_ms = self.ttl_override_ms.unwrap_or(self.cfg.daemon.ttl_ms());
        let mut work = Vec::new();
        let base_slice_ns = host_base_slice(&snap.procs, &self.own);
        for (i, (p, d)) in snap.procs.iter().zip(decisions).enumerate() {
            let key = p.key();
            if self.procs.get(&key).is_some_and(|t| t.yielded.is_some()) {
                rows[i].action = Action::Yielded;
                continue;
            }
            if let Some(why) = self.applied_of(key).and_then(|a| changed_by_others(a, p)) {
                // Others win: the tuner withdraws what of its own still stands (the sink
                // leaves every thread someone changed as it is) and never writes here again.
                tracing::info!(pid = p.pid, comm = %p.comm, %why, "changed by someone else; backing off");
                let a = self.applied_of(key).cloned().expect("checked above");
                self.procs.entry(key).or_default().yielded = Some((why, unix_ms()));
                rows[i].action = Action::Yielded;
                let ops = if a.records.is_empty() {
                    Vec::new()
                } else {
                    clear_ops(key, &a)
                };
                if ops.is_empty() {
                    self.forget(key);
                } else {
                    work.push(Work {
                        row: i,
                        key,
                        priority: (0, 0),
                        ops,
                        action: Action::Yielded,
                        result: None,
                    });
                }
                continue;
            }
            // Not refreshed below (excluded now, or in backoff): a hint that outlived its
            // lifetime on a backend without expiry is put back, as the kernel drops it.
            let lapse =
                |a: &Applied| !kernel_ttl && a.hint.ttl_ms > 0 && a.age_ms(now) >= a.hint.ttl_ms;
            let in_backoff = self
                .procs
                .get(&key)
                .and_then(|t| t.backoff_until)
                .is_some_and(|until| until > snap.scan_no);
            if d.verdict == Verdict::Exclude || in_backoff {
                let held = self.applied_of(key).cloned();
                match held {
                    Some(a) if lapse(&a) => {
                        tracing::info!(pid = p.pid, comm = %p.comm, "hint lapsed without refresh; restoring");
                        rows[i].action = Action::Lapsed;
                        work.push(Work {
                            row: i,
                            key,
                            priority: (0, 0),
                            ops: clear_ops(key, &a),
                            action: Action::Lapsed,
                            result: None,
                        });
                        continue;
                    }
                    // Held until it lapses (restored then, or at exit).
                    Some(a) if !kernel_ttl && a.hint.ttl_ms > 0 => {}
                    // Someone else took over the task: forget it, write nothing.
                    Some(_) if d.verdict == Verdict::Exclude => self.forget(key),
                    _ => {}
                }
                rows[i].action = if in_backoff {
                    Action::Backoff
                } else {
                    Action::Excluded
                };
                continue;
            }
            let prev = self.applied_of(key).cloned();
            let node = plans.get(&key).and_then(|pl| pl.node);
            let plan_strict = plans.get(&key).is_some_and(|pl| pl.strict);
            let desired = match d.verdict {
                Verdict::Open => prev.as_ref().map(|a| a.hint),
                Verdict::Class(HintClass::None) if node.is_none() => None,
                Verdict::Class(class) => Some(Hint {
                    class,
                    node,
                    strict: (d.strict || plan_strict) && node.is_some(),
                    inherit: d.inherit,
                    ttl_ms,
                    source: d.source().unwrap_or(HintSource::Heuristic),
                }),
                Verdict::Exclude => unreachable!("handled above"),
            };
            rows[i].hint = desired;
            let skipped: HashSet<i32> = d.skipped_tids.iter().copied().collect();
            let mut thread_classes: Vec<ThreadClass> = match (&roles[i], desired) {
                (Some(set), Some(h)) => {
                    let by_tid = set.classes_by_tid(h.class);
                    p.tasks
                        .iter()
                        .filter(|t| !skipped.contains(&t.tid))
                        .filter_map(|t| {
                            by_tid.get(&t.tid).map(|&(role, class)| ThreadClass {
                                tid: t.tid,
                                class,
                                role: role.to_owned(),
                            })
                        })
                        .collect()
                }
                _ => Vec::new(),
            };
            thread_classes.sort_by_key(|c| c.tid);
            let class_of = |tid: i32| {
                thread_classes
                    .binary_search_by_key(&tid, |c| c.tid)
                    .ok()
                    .map(|k| thread_classes[k].class)
            };
            let (scope, tids): (Scope, Vec<i32>) =
                if skipped.is_empty() && thread_classes.is_empty() {
                    (Scope::Process, p.tasks.iter().map(|t| t.tid).collect())
                } else {
                    (
                        Scope::Thread,
                        p.tasks
                            .iter()
                            .map(|t| t.tid)
                            .filter(|t| !skipped.contains(t))
                            .collect(),
                    )
                };
            let set_ops = |hint: Hint| -> Vec<HintOp> {
                match scope {
                    Scope::Process => vec![HintOp::Set {
                        target: Target { pid: p.pid, scope },
                        hint,
                        tids: tids.clone(),
                        owner: key,
                    }],
                    Scope::Thread => tids
                        .iter()
                        .map(|&t| HintOp::Set {
                            target: Target { pid: t, scope },
                            hint: role_hint(hint, class_of(t)),
                            tids: vec![t],
                            owner: key,
                        })
                        .collect(),
                }
            };
            // A refresh of threads written one by one only because of their roles, on a
            // backend whose process scope reaches every thread: one process-scope write, then
            // the threads whose role class differs again, instead of every thread (a server
            // may have hundreds). It also reaches threads created since the last scan.
            let refresh_ops = |hint: Hint| -> Vec<HintOp> {
                if scope != Scope::Thread || !skipped.is_empty() || !sink.covers_new_threads() {
                    return set_ops(hint);
                }
                let mut ops = vec![HintOp::Set {
                    target: Target {
                        pid: p.pid,
                        scope: Scope::Process,
                    },
                    hint,
                    tids: tids.clone(),
                    owner: key,
                }];
                ops.extend(thread_classes.iter().map(|c| HintOp::Set {
                    target: Target {
                        pid: c.tid,
                        scope: Scope::Thread,
                    },
                    hint: role_hint(hint, Some(c.class)),
                    tids: vec![c.tid],
                    owner: key,
                }));
                ops
            };
            let conf = -((d.confidence * 1000.0) as i64);
            // Thread by thread before and after, the same hint: only the threads that are new
            // or whose role class changed are written (threads come and go with a server's
            // connections, and each would otherwise rewrite them all).
            let mut partial = false;
            let (action, ops, priority) = match (&prev, desired) {
                (None, None) => {
                    rows[i].action = Action::None;
                    continue;
                }
                (Some(a), None) => (Action::Clear, clear_ops(key, a), (0, 0)),
                (None, Some(h)) => (Action::New, set_ops(h), (2, conf)),
                (Some(a), Some(h)) => {
                    let tids_changed = match scope {
                        Scope::Thread => a.tids != tids,
                        Scope::Process => {
                            !sink.covers_new_threads() && {
                                let held: HashSet<i32> = a.tids.iter().copied().collect();
                                !tids.iter().all(|t| held.contains(t))
                            }
                        }
                    };
                    if !a.hint.same_effect(&h)
                        || a.scope != scope
                        || tids_changed
                        || a.rewrite
                        || a.thread_classes != thread_classes
                    {
                        let mut ops = Vec::new();
                        if a.scope == Scope::Process && scope == Scope::Thread {
                            ops.extend(clear_ops(key, a));
                        }
                        partial = a.scope == Scope::Thread
                            && scope == Scope::Thread
                            && a.hint.same_effect(&h)
                            && !a.rewrite;
                        if partial {
                            let held: HashSet<i32> = a.tids.iter().copied().collect();
                            let held_class: HashMap<i32, HintClass> =
                                a.thread_classes.iter().map(|c| (c.tid, c.class)).collect();
                            ops.extend(set_ops(h).into_iter().filter(|op| {
                                match op {
                                    HintOp::Set { target, hint, .. } => {
                                        !held.contains(&target.pid)
                                            || !role_hint(
                                                a.hint,
                                                held_class.get(&target.pid).copied(),
                                            )
                                            .same_effect(hint)
                                    }
                                    HintOp::Clear { .. } => true,
                                }
                            }));
                        } else {
                            ops.extend(set_ops(h));
                        }
                        (Action::Changed, ops, (2, conf))
                    } else if ttl_ms > 0 && a.age_ms(now) >= ttl_ms / 2 {
                        if !kernel_ttl {
                            // The settings persist: nothing to write, only the lifetime and
                            // the state file's timestamp move.
                            if let Some(held) =
                                self.procs.get_mut(&key).and_then(|t| t.applied.as_mut())
                            {
                                held.written_at_ms = now as i64;
                                held.written_unix_ms = unix_ms();
                                held.hint.ttl_ms = ttl_ms;
                            }
                            self.dirty = true;
                            rows[i].action = Action::Refresh;
                            continue;
                        }
                        (Action::Refresh, refresh_ops(h), (1, a.written_at_ms))
                    } else {
                        rows[i].action = Action::Unchanged;
                        continue;
                    }
                }
            };
            rows[i].action = action;
            let result = desired.map(|hint| {
                let strict = hint.strict && hint.node.is_some();
                let written_as = |tid: i32| {
                    sink.own_write(&role_hint(hint, class_of(tid)), Some(&snap.topology))
                        .and_then(|w| written_settings(&w))
                };
                let records = written_as(p.pid)
                    .map(|_| {
                        let written: HashSet<i32> = tids.iter().copied().collect();
                        let earlier: HashMap<i32, &TaskRecord> = prev
                            .iter()
                            .flat_map(|a| &a.records)
                            .map(|r| (r.tid, r))
                            .collect();
                        p.tasks
                            .iter()
                            .filter(|t| written.contains(&t.tid))
                            .filter_map(|t| Some((t, written_as(t.tid)?)))
                            .map(|(t, written)| TaskRecord {
                                tid: t.tid,
                                written,
                                // What was there before the tuner's first write, not its
                                // own earlier value.
                                prior: earlier.get(&t.tid).map_or_else(
                                    || Settings::of(t, base_slice_ns, strict),
                                    |r| r.prior.clone(),
                                ),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                // Threads not written now keep the lifetime of their last write: a partial
                // write moves no timestamp, so the refresh comes before the first expiry.
                let (written_at_ms, written_unix_ms) = match &prev {
                    Some(a) if partial => (a.written_at_ms, a.written_unix_ms),
                    _ => (now as i64, unix_ms()),
                };
                Applied {
                    hint,
                    scope,
                    tids: tids.clone(),
                    written_at_ms,
                    comm: p.comm.clone(),
                    since_unix_ms: prev.as_ref().map_or_else(unix_ms, |a| a.since_unix_ms),
                    written_unix_ms,
                    records,
                    base_slice_ns,
                    rewrite: false,
                    thread_classes: thread_classes.clone(),
                }
            });
            if ops.is_empty() {
                // Only threads that left: nothing to write, the held threads shrink.
                if let Some(held) = result {
                    for t in prev.iter().flat_map(|a| &a.tids) {
                        if !held.tids.contains(t) {
                            self.own.remove(t);
                        }
                    }
                    self.procs.entry(key).or_default().applied = Some(held);
                    self.dirty = true;
                }
                rows[i].action = Action::Unchanged;
                continue;
            }
            work.push(Work {
                row: i,
                key,
                priority,
                ops,
                action,
                result,
            });
        }
        work
    }

    /// After the sink wrote `w`: what is held now, or a backoff after a failure.
    pub(super) fn record(
        &mut self,
        w: &Work,
        results: &[Result<(), ApplyError>],
        rows: &mut [Row],
        sink: &dyn HintSink,
        snap: &Snapshot,
        now: u64,
    ) {
        use std::sync::atomic::Ordering::Relaxed;
        let gone = results
            .iter()
            .filter(|r| matches!(r, Err(ApplyError::NoSuchTask(_))))
            .count();
        let failure = results.iter().find_map(|r| match r {
            Err(ApplyError::NoSuchTask(_)) | Ok(()) => None,
            Err(e) => Some(e.clone()),
        });
        for (op, r) in w.ops.iter().zip(results) {
            if r.is_ok() {
                match op {
                    HintOp::Set { .. } => self.metrics.writes_set.fetch_add(1, Relaxed),
                    HintOp::Clear { .. } => self.metrics.writes_clear.fetch_add(1, Relaxed),
                };
            }
        }
        for e in results.iter().filter_map(|r| r.as_ref().err()) {
            if matches!(e, ApplyError::NoSuchTask(_)) {
                self.metrics.write_error(e.metric_kind());
            }
        }
        if let Some(e) = failure {
            self.metrics.write_error(e.metric_kind());
            tracing::warn!(pid = w.key.0, error = %e, "hint write failed; retried in {BACKOFF_SCANS} scans");
            self.procs.entry(w.key).or_default().backoff_until = Some(snap.scan_no + BACKOFF_SCANS);
            rows[w.row].action = Action::Failed;
            rows[w.row].error = Some(e.to_string());
            return;
        }
        if gone == results.len() {
            self.forget(w.key);
            return;
        }
        let _ = now;
        match &w.result {
            Some(applied) => {
                if let Some(old) = self.procs.get(&w.key).and_then(|t| t.applied.as_ref()) {
                    for t in &old.tids {
                        self.own.remove(t);
                    }
                }
                for &t in &applied.tids {
                    if let Some(own) = sink.own_write(&applied.hint_of(t), Some(&snap.topology)) {
                        self.own.insert(t, own);
                    }
                }
                self.procs.entry(w.key).or_default().applied = Some(applied.clone());
            }
            None => self.forget(w.key),
        }
        tracing::debug!(pid = w.key.0, action = w.action.as_str(), "hint written");
    }
}

/// What the stock backend writes for an [`OwnWrite`], in the state file's terms.
fn written_settings(w: &OwnWrite) -> Option<Settings> {
    match w {
        OwnWrite::Stock {
            policy,
            nice,
            slice_ns,
            cpus,
        } => Some(Settings {
            policy: *policy,
            nice: *nice,
            slice_ns: *slice_ns,
            cpus: cpus.as_ref().map(ToString::to_string),
        }),
        OwnWrite::Kernel => None,
    }
}

/// Why process `p` no longer holds what the tuner wrote to it, or `None` while it does.
fn changed_by_others(a: &Applied, p: &ProcObs) -> Option<String> {
    if a.records.is_empty() {
        return None;
    }
    let tasks: HashMap<i32, &TaskObs> = p.tasks.iter().map(|t| (t.tid, t)).collect();
    a.records.iter().find_map(|r| {
        let t = tasks.get(&r.tid)?;
        let now = Settings::of(t, a.base_slice_ns, r.written.cpus.is_some());
        r.written
            .differs(&now, a.base_slice_ns)
            .map(|why| format!("{why} on tid {}", r.tid))
    })
}
