//! One scan-classify-plan-apply pass, and the state that carries between passes.
//!
//! The [`Engine`] owns everything that changes over time (rates, what it wrote, placement
//! and stability state, the external classifier's cache) and nothing that touches the
//! machine: observations come in as a [`Snapshot`], writes go out through a [`HintSink`].
//! The daemon, `tuner once` and the benchmark all drive the same engine.

mod report;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use crate::apply::{ApplyError, HintOp, HintSink, Scope, Target};
use crate::classify::exclude::{infer_base_slice, ThreadContext};
use crate::classify::external::{ExternalError, ExternalVerdict, ProcFacts};
use crate::classify::{self, Decision, Inputs, Verdict};
use crate::config::rules::RuleSet;
use crate::config::Config;
use crate::hint::{Hint, HintClass, HintSource, Step};
use crate::metrics::Metrics;
use crate::observe::rates::RateTracker;
use crate::observe::snapshot::Snapshot;
use crate::observe::{CpuTime, OwnWrite, ProcKey, ProcObs};
use crate::plan::{Candidate, Capacity, NodePlan, Planner};
use crate::ratelimit::TokenBucket;
use report::row;

pub use report::{Action, PassReport, Row};

/// How many scans a target whose write failed is left alone before the next try.
const BACKOFF_SCANS: u64 = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Long-running: heuristic classes must be stable over several scans.
    Daemon,
    /// One pass (`tuner once`): the first measurement counts.
    Once,
}

#[derive(Debug, Clone)]
struct Applied {
    hint: Hint,
    scope: Scope,
    tids: Vec<i32>,
    written_at_ms: u64,
    /// The backend now expresses this hint's class differently (a reload changed it): the
    /// next pass writes it again.
    rewrite: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Stability {
    accepted: Option<(HintClass, String, f32)>,
    candidate: Option<HintClass>,
    count: u32,
}

/// What the engine keeps about one process between passes; dropped when the process leaves
/// or nothing is left in it.
#[derive(Debug, Clone, Default)]
struct Tracked {
    /// The heuristic class so far (see [`Engine::stabilize`]).
    stability: Stability,
    /// The external classifier's answer and when it came.
    external: Option<(ExternalVerdict, u64)>,
    /// When the external classifier was asked, while no answer has come.
    asked_at_ms: Option<u64>,
    /// The hint this engine wrote and the process holds.
    applied: Option<Applied>,
    /// After a failed write: the scan before which it is not tried again.
    backoff_until: Option<u64>,
}

impl Tracked {
    fn is_empty(&self) -> bool {
        self.stability == Stability::default()
            && self.external.is_none()
            && self.asked_at_ms.is_none()
            && self.applied.is_none()
            && self.backoff_until.is_none()
    }
}

/// The writes for one process, applied or deferred together.
struct Work {
    row: usize,
    key: ProcKey,
    priority: (u8, i64),
    ops: Vec<HintOp>,
    action: Action,
    /// After success: `Some` records what is held now, `None` forgets it.
    result: Option<Applied>,
}

pub struct Engine {
    cfg: Arc<Config>,
    rules: RuleSet,
    metrics: Arc<Metrics>,
    mode: Mode,
    self_pid: i32,
    rates: RateTracker,
    planner: Planner,
    procs: HashMap<ProcKey, Tracked>,
    /// What this engine wrote, by thread (the applied hints' threads), for the exclusion step.
    own: HashMap<i32, OwnWrite>,
    limiter: TokenBucket,
    prev_cpu: Vec<CpuTime>,
    ttl_override_ms: Option<u64>,
}

impl Engine {
    pub fn new(cfg: Arc<Config>, rules: RuleSet, metrics: Arc<Metrics>, mode: Mode) -> Self {
        let limiter = TokenBucket::new(cfg.daemon.max_writes_per_s, cfg.daemon.write_burst);
        Engine {
            cfg,
            rules,
            metrics,
            mode,
            self_pid: std::process::id() as i32,
            rates: RateTracker::new(),
            planner: Planner::new(),
            procs: HashMap::new(),
            own: HashMap::new(),
            limiter,
            prev_cpu: Vec::new(),
            ttl_override_ms: None,
        }
    }

    /// Pretend to be another process (tests that treat a fixture pid as the tuner).
    #[cfg(test)]
    pub fn set_self_pid(&mut self, pid: i32) {
        self.self_pid = pid;
    }

    /// Lifetime of written hints instead of `ttl_scans x interval_ms` (0: no expiry).
    pub fn set_ttl_ms(&mut self, ttl_ms: Option<u64>) {
        self.ttl_override_ms = ttl_ms;
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.cfg
    }

    /// A reloaded configuration; state that depends on it is rebuilt.
    pub fn set_config(&mut self, cfg: Arc<Config>, rules: RuleSet) {
        if cfg.daemon.max_writes_per_s != self.cfg.daemon.max_writes_per_s
            || cfg.daemon.write_burst != self.cfg.daemon.write_burst
        {
            self.limiter = TokenBucket::new(cfg.daemon.max_writes_per_s, cfg.daemon.write_burst);
        }
        for t in self.procs.values_mut() {
            t.stability = Stability::default();
        }
        self.cfg = cfg;
        self.rules = rules;
    }

    /// Marks the held hints of `classes` for writing again on the next pass (after a reload
    /// changed what the backend makes of them).
    pub fn rewrite_classes(&mut self, classes: &[HintClass]) {
        for t in self.procs.values_mut() {
            if let Some(a) = t
                .applied
                .as_mut()
                .filter(|a| classes.contains(&a.hint.class))
            {
                a.rewrite = true;
            }
        }
    }

    /// Computes rates against the previous snapshot; call once per snapshot.
    pub fn prepare(&mut self, snap: &mut Snapshot) {
        self.rates.update(snap.at_ms, &mut snap.procs);
    }

    /// Number of processes holding a hint from this engine.
    pub fn applied_count(&self) -> usize {
        self.applied().count()
    }

    /// The hints this engine wrote, by process.
    fn applied(&self) -> impl Iterator<Item = (&ProcKey, &Applied)> {
        self.procs
            .iter()
            .filter_map(|(k, t)| t.applied.as_ref().map(|a| (k, a)))
    }

    fn applied_of(&self, key: ProcKey) -> Option<&Applied> {
        self.procs.get(&key)?.applied.as_ref()
    }

    /// The external classifier's answer about a process, if one is held.
    fn external(&self, key: ProcKey) -> Option<&ExternalVerdict> {
        self.procs.get(&key)?.external.as_ref().map(|(v, _)| v)
    }

    fn inputs<'a>(&'a self, snap: &'a Snapshot, admin: &'a HashSet<i32>) -> Inputs<'a> {
        let base_slice_ns = infer_base_slice(
            snap.procs
                .iter()
                .filter(|p| !p.kthread)
                .flat_map(|p| p.tasks.iter()),
            &self.own,
        );
        Inputs {
            cfg: &self.cfg,
            rules: &self.rules,
            self_pid: self.self_pid,
            protected: &snap.protected,
            admin_hinted: admin,
            threads: ThreadContext {
                base_slice_ns,
                allowed_cpus: Some(&snap.topology.online_cpus),
                own: Some(&self.own),
            },
        }
    }

    /// The classification steps for one process, a line each (`tuner explain`).
    pub fn trace(&self, snap: &Snapshot, pid: i32) -> Option<Vec<String>> {
        let p = snap.procs.iter().find(|p| p.pid == pid)?;
        let admin = HashSet::new();
        let inp = self.inputs(snap, &admin);
        let mut lines = Vec::new();
        let ext = self.external(p.key());
        classify::decide(
            p,
            &inp,
            snap.allowed_cpus.get(&p.pid),
            ext,
            Some(&mut lines),
        );
        Some(lines)
    }

    fn classify(&self, snap: &Snapshot, admin: &HashSet<i32>) -> Vec<Decision> {
        let inp = self.inputs(snap, admin);
        snap.procs
            .iter()
            .map(|p| {
                let ext = self.external(p.key());
                classify::decide(p, &inp, snap.allowed_cpus.get(&p.pid), ext, None)
            })
            .collect()
    }

    /// Holds heuristic classes until `stable_scans` consecutive scans agree.
    fn stabilize(&mut self, key: ProcKey, d: Decision) -> Decision {
        if d.step != Step::Heuristic {
            if let Some(t) = self.procs.get_mut(&key) {
                t.stability = Stability::default();
            }
            return d;
        }
        let need = if self.mode == Mode::Once {
            1
        } else {
            self.cfg.heuristics.stable_scans
        };
        let st = &mut self.procs.entry(key).or_default().stability;
        let kept = |st: &Stability, base: &Decision| {
            st.accepted.as_ref().map(|(class, rule, conf)| Decision {
                verdict: Verdict::Class(*class),
                rule: rule.clone(),
                confidence: *conf,
                ..base.clone()
            })
        };
        match d.verdict {
            Verdict::Class(c) => {
                if st.accepted.as_ref().map(|a| a.0) == Some(c) {
                    st.candidate = None;
                    st.count = 0;
                    return d;
                }
                if st.candidate == Some(c) {
                    st.count += 1;
                } else {
                    st.candidate = Some(c);
                    st.count = 1;
                }
                if st.count >= need {
                    st.accepted = Some((c, d.rule.clone(), d.confidence));
                    st.candidate = None;
                    st.count = 0;
                    return d;
                }
                kept(st, &d).unwrap_or(Decision {
                    verdict: Verdict::Open,
                    rule: format!("settling: {c} {}/{need}", st.count),
                    confidence: 0.0,
                    ..d
                })
            }
            _ => kept(st, &d).unwrap_or(d),
        }
    }

    /// Classification only, for what the external classifier should be asked before a pass
    /// (`tuner once`). Does not change state.
    pub fn open_facts(&self, snap: &Snapshot) -> Vec<(ProcKey, ProcFacts)> {
        let decisions = self.classify(snap, &HashSet::new());
        snap.procs
            .iter()
            .zip(&decisions)
            .filter(|(p, d)| d.verdict == Verdict::Open && p.rates.is_some())
            .map(|(p, _)| (p.key(), classify::facts(p)))
            .collect()
    }

    /// One pass over `snap` (after [`Engine::prepare`]): classify, plan, write through `sink`.
    pub fn pass(&mut self, snap: &Snapshot, sink: &mut dyn HintSink) -> PassReport {
        let t0 = Instant::now();
        let now = snap.at_ms;
        sink.set_topology(&snap.topology);
        let pids: Vec<i32> = snap
            .procs
            .iter()
            .filter(|p| !p.kthread)
            .map(|p| p.pid)
            .collect();
        let mut admin = sink.admin_hinted(&pids);
        // Hints this engine wrote for [[manual]] entries carry the admin source too.
        let ours: HashSet<i32> = self.applied().map(|(k, _)| k.0).collect();
        admin.retain(|pid| !ours.contains(pid));

        let raw = self.classify(snap, &admin);
        let decisions: Vec<Decision> = snap
            .procs
            .iter()
            .zip(raw)
            .map(|(p, d)| self.stabilize(p.key(), d))
            .collect();

        let cands: Vec<Candidate<'_>> = snap
            .procs
            .iter()
            .zip(&decisions)
            .filter(|(_, d)| {
                matches!(d.verdict, Verdict::Class(c) if c != HintClass::None) || d.node.is_some()
            })
            .map(|(proc, decision)| Candidate { proc, decision })
            .collect();
        let cap = Capacity::new(&snap.topology, &self.prev_cpu, &snap.cpu_times);
        let plans = self
            .planner
            .plan(&cands, &snap.topology, cap, &self.cfg.plan);
        self.prev_cpu = snap.cpu_times.clone();

        let mut rows: Vec<Row> = snap
            .procs
            .iter()
            .zip(&decisions)
            .map(|(p, d)| row(p, d, plans.get(&p.key())))
            .collect();
        let mut work = self.reconcile(snap, &decisions, &plans, &mut rows, sink, now);

        // Rate limit: clears, then refreshes (oldest first), then new and changed hints.
        work.sort_by_key(|w| w.priority);
        let mut ops = Vec::new();
        let mut batch: Vec<usize> = Vec::new();
        for (i, w) in work.iter().enumerate() {
            let mut ok = true;
            for _ in 0..w.ops.len() {
                ok &= self.limiter.try_take(now);
            }
            if ok {
                batch.push(i);
                ops.extend(w.ops.iter().cloned());
            } else {
                rows[w.row].action = Action::Deferred;
                self.metrics
                    .writes_deferred
                    .fetch_add(w.ops.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let results = if ops.is_empty() {
            Vec::new()
        } else {
            sink.apply(&ops)
        };
        let mut results = results.into_iter();
        for i in batch {
            let w = &work[i];
            let res: Vec<Result<(), ApplyError>> = results.by_ref().take(w.ops.len()).collect();
            self.record(w, &res, &mut rows, sink, snap, now);
        }

        // Forget what left.
        let live: HashSet<ProcKey> = snap.procs.iter().map(ProcObs::key).collect();
        let gone: Vec<ProcKey> = self
            .applied()
            .map(|(k, _)| *k)
            .filter(|k| !live.contains(k))
            .collect();
        for k in gone {
            self.forget(k);
        }
        let ttl = self.cfg.external.cache_ttl_ms;
        let timeout = self.cfg.external.timeout_ms * 2;
        self.procs.retain(|k, t| {
            if !live.contains(k) {
                return false;
            }
            t.backoff_until = t.backoff_until.filter(|until| *until > snap.scan_no);
            t.external = t
                .external
                .take()
                .filter(|(_, at)| ttl == 0 || now.saturating_sub(*at) < ttl);
            t.asked_at_ms = t.asked_at_ms.filter(|at| now.saturating_sub(*at) < timeout);
            !t.is_empty()
        });

        let open = if self.cfg.external.enabled {
            snap.procs
                .iter()
                .zip(&decisions)
                .filter(|(p, d)| {
                    d.verdict == Verdict::Open
                        && p.rates.is_some()
                        && self
                            .procs
                            .get(&p.key())
                            .is_none_or(|t| t.asked_at_ms.is_none())
                })
                .take(self.cfg.external.max_batch)
                .map(|(p, _)| (p.key(), classify::facts(p)))
                .collect()
        } else {
            Vec::new()
        };

        self.count(&decisions, snap.procs.len());
        let pass_us = t0.elapsed().as_micros() as u64;
        PassReport {
            rows,
            ops,
            open,
            pass_us,
        }
    }

    fn reconcile(
        &mut self,
        snap: &Snapshot,
        decisions: &[Decision],
        plans: &HashMap<ProcKey, NodePlan>,
        rows: &mut [Row],
        sink: &dyn HintSink,
        now: u64,
    ) -> Vec<Work> {
        let ttl_ms = if sink.supports_ttl() {
            self.ttl_override_ms.unwrap_or(self.cfg.daemon.ttl_ms())
        } else {
            0
        };
        let mut work = Vec::new();
        for (i, (p, d)) in snap.procs.iter().zip(decisions).enumerate() {
            let key = p.key();
            if d.verdict == Verdict::Exclude {
                if self.applied_of(key).is_some() {
                    // Someone else took over the task: forget it, write nothing.
                    self.forget(key);
                }
                rows[i].action = Action::Excluded;
                continue;
            }
            if self
                .procs
                .get(&key)
                .and_then(|t| t.backoff_until)
                .is_some_and(|until| until > snap.scan_no)
            {
                rows[i].action = Action::Backoff;
                continue;
            }
            let prev = self.applied_of(key).cloned();
            let node = plans.get(&key).and_then(|pl| pl.node);
            let desired = match d.verdict {
                Verdict::Open => prev.as_ref().map(|a| a.hint),
                Verdict::Class(HintClass::None) if node.is_none() => None,
                Verdict::Class(class) => Some(Hint {
                    class,
                    node,
                    strict: d.strict && node.is_some(),
                    inherit: d.inherit,
                    ttl_ms,
                    source: d.source().unwrap_or(HintSource::Heuristic),
                }),
                Verdict::Exclude => unreachable!("handled above"),
            };
            rows[i].hint = desired;
            let skipped: HashSet<i32> = d.skipped_tids.iter().copied().collect();
            let (scope, tids): (Scope, Vec<i32>) = if skipped.is_empty() {
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
                    }],
                    Scope::Thread => tids
                        .iter()
                        .map(|&t| HintOp::Set {
                            target: Target { pid: t, scope },
                            hint,
                            tids: vec![t],
                        })
                        .collect(),
                }
            };
            let clear_ops = |a: &Applied| -> Vec<HintOp> {
                match a.scope {
                    Scope::Process => vec![HintOp::Clear {
                        target: Target {
                            pid: p.pid,
                            scope: Scope::Process,
                        },
                        tids: a.tids.clone(),
                    }],
                    Scope::Thread => a
                        .tids
                        .iter()
                        .map(|&t| HintOp::Clear {
                            target: Target {
                                pid: t,
                                scope: Scope::Thread,
                            },
                            tids: vec![t],
                        })
                        .collect(),
                }
            };
            let conf = -((d.confidence * 1000.0) as i64);
            let (action, ops, priority) = match (&prev, desired) {
                (None, None) => {
                    rows[i].action = Action::None;
                    continue;
                }
                (Some(a), None) => (Action::Clear, clear_ops(a), (0, 0)),
                (None, Some(h)) => (Action::New, set_ops(h), (2, conf)),
                (Some(a), Some(h)) => {
                    let tids_changed = match scope {
                        Scope::Thread => a.tids != tids,
                        Scope::Process => {
                            !sink.covers_new_threads() && !tids.iter().all(|t| a.tids.contains(t))
                        }
                    };
                    if !a.hint.same_effect(&h) || a.scope != scope || tids_changed || a.rewrite {
                        let mut ops = Vec::new();
                        if a.scope == Scope::Process && scope == Scope::Thread {
                            ops.extend(clear_ops(a));
                        }
                        ops.extend(set_ops(h));
                        (Action::Changed, ops, (2, conf))
                    } else if ttl_ms > 0 && now.saturating_sub(a.written_at_ms) >= ttl_ms / 2 {
                        (Action::Refresh, set_ops(h), (1, a.written_at_ms as i64))
                    } else {
                        rows[i].action = Action::Unchanged;
                        continue;
                    }
                }
            };
            rows[i].action = action;
            let result = desired.map(|hint| Applied {
                hint,
                scope,
                tids: tids.clone(),
                written_at_ms: now,
                rewrite: false,
            });
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

    fn record(
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
                if let Some(own) = sink.own_write(&applied.hint, Some(&snap.topology)) {
                    for &t in &applied.tids {
                        self.own.insert(t, own.clone());
                    }
                }
                self.procs.entry(w.key).or_default().applied = Some(applied.clone());
            }
            None => self.forget(w.key),
        }
        tracing::debug!(pid = w.key.0, action = w.action.as_str(), "hint written");
    }

    fn forget(&mut self, key: ProcKey) {
        if let Some(a) = self.procs.get_mut(&key).and_then(|t| t.applied.take()) {
            for t in a.tids {
                self.own.remove(&t);
            }
        }
    }

    fn count(&self, decisions: &[Decision], nprocs: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        for d in decisions {
            self.metrics.decision(if d.verdict == Verdict::Open {
                None
            } else {
                Some(d.step)
            });
        }
        let mut hinted = [0u64; 6];
        for (_, a) in self.applied() {
            hinted[a.hint.class.index()] += 1;
        }
        self.metrics.set_hinted(&hinted);
        self.metrics.processes.store(nprocs as u64, Relaxed);
        self.metrics.scans.fetch_add(1, Relaxed);
    }

    /// Marks processes as asked, so they are not asked again while the answer is pending.
    pub fn mark_pending(&mut self, keys: &[ProcKey], now_ms: u64) {
        for k in keys {
            self.procs.entry(*k).or_default().asked_at_ms = Some(now_ms);
        }
    }

    /// Stores the external classifier's answer for the processes asked about; it takes
    /// effect at the next pass.
    pub fn on_external(
        &mut self,
        asked: &[ProcKey],
        answer: Result<Vec<ExternalVerdict>, ExternalError>,
        now_ms: u64,
    ) {
        use std::sync::atomic::Ordering::Relaxed;
        for k in asked {
            if let Some(t) = self.procs.get_mut(k) {
                t.asked_at_ms = None;
            }
        }
        match answer {
            Ok(verdicts) => {
                for v in verdicts {
                    // Answers about pids that were not asked about are ignored.
                    if let Some(key) = asked.iter().find(|k| k.0 == v.pid) {
                        self.metrics.external_answers.fetch_add(1, Relaxed);
                        self.procs.entry(*key).or_default().external = Some((v, now_ms));
                    }
                }
            }
            Err(e) => {
                self.metrics.external_errors.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, "external classifier failed");
            }
        }
    }

    /// Clears for every hint this engine holds (shutdown with `on_exit = "clear"`).
    pub fn clear_all_ops(&self) -> Vec<HintOp> {
        let mut ops = Vec::new();
        for (key, a) in self.applied() {
            match a.scope {
                Scope::Process => ops.push(HintOp::Clear {
                    target: Target {
                        pid: key.0,
                        scope: Scope::Process,
                    },
                    tids: a.tids.clone(),
                }),
                Scope::Thread => ops.extend(a.tids.iter().map(|&t| HintOp::Clear {
                    target: Target {
                        pid: t,
                        scope: Scope::Thread,
                    },
                    tids: vec![t],
                })),
            }
        }
        ops
    }
}
#[cfg(test)]
mod tests;
