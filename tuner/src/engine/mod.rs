//! One scan-classify-plan-apply pass, and the state that carries between passes.
//!
//! The [`Engine`] owns everything that changes over time (rates, what it wrote, placement
//! and stability state, the external classifier's cache) and nothing that touches the
//! machine: observations come in as a [`Snapshot`], writes go out through a [`HintSink`].
//! The daemon, `tuner once` and the benchmark all drive the same engine.

mod asks;
mod inherit;
mod reconcile;
mod report;
mod resume;
#[cfg(test)]
mod role_tests;
mod sessions;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use crate::apply::{ApplyError, HintOp, HintSink, Restore, Scope, Target};
use crate::classify::exclude::{host_base_slice, ThreadContext};
use crate::classify::external::{ExternalError, ExternalVerdict, ProcFacts};
use crate::classify::roles::{self as thread_roles, RoleMemory, RoleSet};
use crate::classify::{self, Decision, Inputs, Verdict};
use crate::config::rules::RuleSet;
use crate::config::{Config, OnRestart};
use crate::hint::{Hint, HintClass, HintSource, Step};
use crate::metrics::Metrics;
use crate::observe::rates::RateTracker;
use crate::observe::snapshot::Snapshot;
use crate::observe::{CpuTime, OwnWrite, ProcKey, ProcObs};
use crate::plan::{Candidate, Capacity, Planner};
use crate::ratelimit::TokenBucket;
use crate::state::{unix_ms, Entry, Settings, TaskRecord, ThreadClass, Writer, Yielded};
use report::row;

pub use report::{Action, PassReport, RoleRow, Row};

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
    /// The engine's clock at the latest write or refresh; below zero for a write an earlier
    /// run made before this run's clock started.
    written_at_ms: i64,
    /// The backend now expresses this hint's class differently (a reload changed it): the
    /// next pass writes it again.
    rewrite: bool,
    comm: String,
    /// Wall-clock time of the first write (the state file's `since`).
    since_unix_ms: u64,
    /// Wall-clock time of the latest write or refresh (the state file's `written`, from
    /// which a lifetime runs).
    written_unix_ms: u64,
    /// Stock backend: each thread's settings as written and as they were before.
    records: Vec<TaskRecord>,
    /// The base slice when the records were taken.
    base_slice_ns: Option<u64>,
    /// Threads whose role gave them another class than `hint`'s, by tid (then `scope` is
    /// `Thread`).
    thread_classes: Vec<ThreadClass>,
}

impl Applied {
    /// The hint thread `tid` holds: the process's, or its role's class.
    fn hint_of(&self, tid: i32) -> Hint {
        role_hint(
            self.hint,
            self.thread_classes
                .iter()
                .find(|c| c.tid == tid)
                .map(|c| c.class),
        )
    }

    /// Time since the latest write or refresh, by the engine's clock at `now_ms`.
    fn age_ms(&self, now_ms: u64) -> u64 {
        (now_ms as i64).saturating_sub(self.written_at_ms).max(0) as u64
    }
}

/// Writes the state before the sink writes (so a crash mid-pass leaves a record of every
/// write that may have happened) and after.
pub type Journal = Box<dyn FnMut(Vec<Entry>, Vec<Yielded>) -> Result<(), String> + Send>;

#[derive(Debug, Clone, Default, PartialEq)]
struct Stability {
    accepted: Option<(HintClass, String, f32)>,
    candidate: Option<HintClass>,
    count: u32,
    /// Consecutive scans the heuristics left the process open.
    open_scans: u32,
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
    /// Someone else changed what the tuner wrote: why, and since when. The tuner never
    /// writes to this process again.
    yielded: Option<(String, u64)>,
    /// Each thread's role so far, while a rule with roles decides the process.
    roles: HashMap<i32, RoleMemory>,
}

impl Tracked {
    fn is_empty(&self) -> bool {
        self.stability == Stability::default()
            && self.external.is_none()
            && self.asked_at_ms.is_none()
            && self.applied.is_none()
            && self.backoff_until.is_none()
            && self.yielded.is_none()
            && self.roles.is_empty()
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
    backend: &'static str,
    journal: Option<Journal>,
    /// The state changed in a way the journal has not recorded yet.
    dirty: bool,
    /// Entries of an earlier run, taken up at the next pass (see [`Engine::resume`]).
    resume: Option<(Vec<Entry>, OnRestart)>,
    /// Whom the external classifier is asked about next.
    asks: asks::AskQueue,
    /// The processes and threads of the previous pass: what appears since may have
    /// inherited the tuner's settings (see [`inherit`]).
    seen_procs: HashSet<ProcKey>,
    seen_tids: HashSet<i32>,
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
            backend: "dry-run",
            journal: None,
            dirty: false,
            resume: None,
            asks: asks::AskQueue::default(),
            seen_procs: HashSet::new(),
            seen_tids: HashSet::new(),
        }
    }

    /// Records every change in the state through `journal`, naming `backend` in it.
    pub fn set_journal(&mut self, backend: &'static str, journal: Journal) {
        self.backend = backend;
        self.journal = Some(journal);
    }

    /// The hints held now, as state-file entries.
    pub fn entries(&self) -> Vec<Entry> {
        let mut v: Vec<Entry> = self
            .applied()
            .map(|(k, a)| Entry {
                pid: k.0,
                start_ticks: k.1,
                comm: a.comm.clone(),
                hint: a.hint,
                backend: self.backend.to_owned(),
                per_thread: a.scope == Scope::Thread,
                by: Writer::Daemon,
                since_unix_ms: a.since_unix_ms,
                written_unix_ms: a.written_unix_ms,
                tasks: a.records.clone(),
                thread_classes: a.thread_classes.clone(),
            })
            .collect();
        v.sort_by_key(|e| e.pid);
        v
    }

    /// The processes this engine backed off from, and why.
    pub fn yielded(&self) -> Vec<Yielded> {
        let mut v: Vec<Yielded> = self
            .procs
            .iter()
            .filter_map(|(k, t)| {
                t.yielded.as_ref().map(|(why, since)| Yielded {
                    pid: k.0,
                    start_ticks: k.1,
                    comm: String::new(),
                    reason: why.clone(),
                    since_unix_ms: *since,
                })
            })
            .collect();
        v.sort_by_key(|y| y.pid);
        v
    }

    fn journal(&mut self, extra: Vec<Entry>) -> Result<(), String> {
        if self.journal.is_none() {
            return Ok(());
        }
        let mut entries = self.entries();
        for e in extra {
            match entries.iter_mut().find(|x| x.key() == e.key()) {
                // Until the sink has written, the file keeps what the process held before
                // too: the threads of both records.
                Some(x) => {
                    for t in e.tasks {
                        if !x.tasks.iter().any(|r| r.tid == t.tid) {
                            x.tasks.push(t);
                        }
                    }
                }
                None => entries.push(e),
            }
        }
        let yielded = self.yielded();
        let j = self.journal.as_mut().expect("checked above");
        j(entries, yielded)
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
            // Roles are held by name; a reloaded rule may name them differently.
            t.roles.clear();
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
        let base_slice_ns = host_base_slice(&snap.procs, &self.own);
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
        let d = classify::decide(
            p,
            &inp,
            snap.allowed_cpus.get(&p.pid),
            ext,
            Some(&mut lines),
        );
        thread_roles::assign(p, &inp, &d, Some(&mut lines));
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

    /// Each thread's role after this scan ([`RoleMemory`]): what it showed, or a role it
    /// showed within the last `role_hold_scans` scans. A process whose rule has no roles (or
    /// no longer matches) forgets them.
    fn settle_roles(&mut self, key: ProcKey, set: Option<RoleSet>) -> Option<RoleSet> {
        let Some(mut set) = set else {
            if let Some(t) = self.procs.get_mut(&key) {
                t.roles.clear();
            }
            return None;
        };
        let hold = if self.mode == Mode::Once {
            1
        } else {
            self.cfg.rules.role_hold_scans
        };
        let memory = &mut self.procs.entry(key).or_default().roles;
        let seen: HashSet<i32> = set.threads.iter().map(|t| t.tid).collect();
        memory.retain(|tid, _| seen.contains(tid));
        let RoleSet { roles, threads, .. } = &mut set;
        for t in threads.iter_mut() {
            let now = t.matched.as_ref().map(|(i, _)| roles[*i].name.as_str());
            let m = memory.entry(t.tid).or_default();
            let held = m.update(now, hold);
            t.role = held.and_then(|n| roles.iter().position(|r| r.name == n));
            t.missed_scans = m.missed;
            if m.held.is_none() {
                memory.remove(&t.tid);
            }
        }
        Some(set)
    }

    /// Holds heuristic classes until `stable_scans` consecutive scans agree. The flag says
    /// whether an open verdict has settled (the heuristics left it open for as many scans),
    /// so that only such processes go to the external classifier: one still settling
    /// on a class is decided by the next scans without it.
    fn stabilize(&mut self, key: ProcKey, d: Decision) -> (Decision, bool) {
        if d.step != Step::Heuristic {
            if let Some(t) = self.procs.get_mut(&key) {
                t.stability = Stability::default();
            }
            return (d, true);
        }
        let need = if self.mode == Mode::Once {
            1
        } else {
            self.cfg.heuristics.stable_scans
        };
        let heuristics = self.cfg.heuristics.enabled;
        let st = &mut self.procs.entry(key).or_default().stability;
        let kept = |st: &Stability, base: &Decision| {
            st.accepted.as_ref().map(|(class, rule, conf)| Decision {
                verdict: Verdict::Class(*class),
                rule: rule.clone(),
                confidence: *conf,
                ..base.clone()
            })
        };
        let d = match d.verdict {
            Verdict::Class(c) => {
                st.open_scans = 0;
                if st.accepted.as_ref().map(|a| a.0) == Some(c) {
                    st.candidate = None;
                    st.count = 0;
                    return (d, true);
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
                    return (d, true);
                }
                kept(st, &d).unwrap_or(Decision {
                    verdict: Verdict::Open,
                    rule: format!("settling: {c} {}/{need}", st.count),
                    confidence: 0.0,
                    ..d
                })
            }
            _ => {
                st.open_scans = st.open_scans.saturating_add(1);
                kept(st, &d).unwrap_or(d)
            }
        };
        let settled = !heuristics || st.open_scans >= need;
        (d, settled)
    }

    /// Classification only, for what the external classifier should be asked before a pass
    /// (`tuner once`). Does not change state.
    pub fn open_facts(&self, snap: &Snapshot) -> Vec<(ProcKey, ProcFacts)> {
        let decisions = self.classify(snap, &HashSet::new());
        let open: Vec<&ProcObs> = snap
            .procs
            .iter()
            .zip(&decisions)
            .filter(|(p, d)| d.verdict == Verdict::Open && p.rates.is_some())
            .map(|(p, _)| p)
            .collect();
        // In the order a fresh queue deals them: a fair share per uid for the first batch.
        let cands: Vec<asks::Candidate> = open
            .iter()
            .map(|p| asks::Candidate {
                key: p.key(),
                uid: p.uid,
            })
            .collect();
        let order = asks::AskQueue::default().pick(&cands, snap.at_ms, cands.len(), 1, 1);
        order
            .iter()
            .filter_map(|k| open.iter().find(|p| p.key() == *k))
            .map(|p| (p.key(), classify::facts(p)))
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
        let restores = self.take_up(snap, sink);
        self.adopt_inherited(snap, sink);
        if !restores.is_empty() {
            let results = sink.apply(&restores);
            let failed = results.iter().filter(|r| r.is_err()).count();
            tracing::info!(
                restored = restores.len() - failed,
                failed,
                "hints of an earlier run restored"
            );
        }
        let mut admin = sink.admin_hinted(&pids);
        // Hints this engine wrote for [[manual]] entries carry the admin source too.
        let ours: Vec<(ProcKey, HintSource)> =
            self.applied().map(|(k, a)| (*k, a.hint.source)).collect();
        for (key, source) in &ours {
            // A hint with the admin source on a process the tuner hinted as anything else
            // came through the device from someone else.
            if admin.contains(&key.0) && *source != HintSource::Admin {
                let why = "a hint was set through the device by someone else".to_owned();
                tracing::info!(pid = key.0, "{why}; backing off");
                self.forget(*key);
                self.procs.entry(*key).or_default().yielded = Some((why, unix_ms()));
                self.dirty = true;
            }
            admin.remove(&key.0);
        }

        let raw = self.classify(snap, &admin);
        let mut settled = HashSet::new();
        let decisions: Vec<Decision> = snap
            .procs
            .iter()
            .zip(raw)
            .map(|(p, d)| {
                let (d, done) = self.stabilize(p.key(), d);
                if done {
                    settled.insert(p.key());
                }
                let kept = self.applied_of(p.key()).map(|a| &a.hint);
                classify::trust::regate(d, p, kept, &self.cfg)
            })
            .collect();
        let found: Vec<Option<RoleSet>> = {
            let inp = self.inputs(snap, &admin);
            snap.procs
                .iter()
                .zip(&decisions)
                .map(|(p, d)| thread_roles::assign(p, &inp, d, None))
                .collect()
        };
        let roles: Vec<Option<RoleSet>> = snap
            .procs
            .iter()
            .zip(found)
            .map(|(p, set)| self.settle_roles(p.key(), set))
            .collect();

        let cands: Vec<Candidate<'_>> = snap
            .procs
            .iter()
            .zip(&decisions)
            .filter(|(_, d)| {
                matches!(d.verdict, Verdict::Class(c) if c != HintClass::None) || d.node.is_some()
            })
            .map(|(proc, decision)| Candidate {
                proc,
                decision,
                allowed_cpus: snap.allowed_cpus.get(&proc.pid),
                held_node: self.applied_of(proc.key()).and_then(|a| a.hint.node),
            })
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
            .zip(&roles)
            .map(|((p, d), r)| row(p, d, r.as_ref(), plans.get(&p.key())))
            .collect();
        let mut work = self.reconcile(snap, &decisions, &roles, &plans, &mut rows, sink, now);

        // Rate limit: clears, then refreshes (oldest first), then new and changed hints. A
        // process's writes go together or not at all, charged as one request (a server
        // written thread by thread may have more threads than the burst); after the first
        // refusal the rest wait too, so what was refused is first in line at the next pass
        // instead of losing its tokens to smaller writes behind it.
        work.sort_by_key(|w| w.priority);
        let mut ops = Vec::new();
        let mut batch: Vec<usize> = Vec::new();
        let mut refused = false;
        for (i, w) in work.iter().enumerate() {
            refused = refused || !self.limiter.try_take_n(now, w.ops.len());
            if !refused {
                batch.push(i);
                ops.extend(w.ops.iter().cloned());
            } else {
                rows[w.row].action = Action::Deferred;
                self.metrics
                    .writes_deferred
                    .fetch_add(w.ops.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let intended: Vec<Entry> = batch
            .iter()
            .filter_map(|&i| {
                let w = &work[i];
                w.result.as_ref().map(|a| entry_of(w.key, a, self.backend))
            })
            .collect();
        if !ops.is_empty() {
            if let Err(e) = self.journal(intended) {
                // No record, no write: a crash now would leave changes nobody can undo.
                tracing::error!("cannot record the state, writing nothing this pass: {e}");
                ops.clear();
                for &i in &batch {
                    rows[work[i].row].action = Action::Deferred;
                }
                batch.clear();
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
        self.dirty |= !gone.is_empty() || !ops.is_empty() || !restores.is_empty();
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
        crate::observe::shrink_map(&mut self.procs);
        self.asks.retain(&live);

        let open = if self.cfg.external.enabled {
            self.pick_open(snap, &decisions, &settled, now)
        } else {
            Vec::new()
        };

        let sessions = self.session_wants(snap, sink);
        sink.set_sessions(&sessions);

        if std::mem::take(&mut self.dirty) {
            if let Err(e) = self.journal(Vec::new()) {
                tracing::error!("cannot record the state: {e}");
                self.dirty = true;
            }
        }
        self.count(&decisions, snap.procs.len());
        let pass_us = t0.elapsed().as_micros() as u64;
        PassReport {
            rows,
            ops,
            open,
            pass_us,
        }
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

    /// The open processes the external classifier is asked about after this pass: a fair
    /// share per uid, each process backing off each time it is asked ([`asks`]).
    fn pick_open(
        &mut self,
        snap: &Snapshot,
        decisions: &[Decision],
        settled: &HashSet<ProcKey>,
        now: u64,
    ) -> Vec<(ProcKey, ProcFacts)> {
        let cands: Vec<asks::Candidate> = snap
            .procs
            .iter()
            .zip(decisions)
            .filter(|(p, d)| {
                d.verdict == Verdict::Open
                    && p.rates.is_some()
                    && settled.contains(&p.key())
                    && self
                        .procs
                        .get(&p.key())
                        .is_none_or(|t| t.asked_at_ms.is_none())
            })
            .map(|(p, _)| asks::Candidate {
                key: p.key(),
                uid: p.uid,
            })
            .collect();
        // First wait: two scans; longest: the life of an answer (or ten minutes).
        let base_ms = self.cfg.daemon.interval_ms.saturating_mul(2);
        let max_ms = match self.cfg.external.cache_ttl_ms {
            0 => 600_000,
            ttl => ttl,
        };
        let picked = self
            .asks
            .pick(&cands, now, self.cfg.external.max_batch, base_ms, max_ms);
        picked
            .into_iter()
            .filter_map(|k| snap.procs.iter().find(|p| p.key() == k))
            .map(|p| (p.key(), classify::facts(p)))
            .collect()
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
                if self.asks.outcome(false) {
                    tracing::info!("external classifier answers again");
                }
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
                // Once when it starts failing, not on every pass while it stays down.
                if self.asks.outcome(true) {
                    tracing::warn!(error = %e, "external classifier failed");
                } else {
                    tracing::debug!(error = %e, "external classifier still failing");
                }
            }
        }
    }

    /// Clears for every hint this engine holds (shutdown with `on_exit = "clear"`): each
    /// puts back what the hint replaced.
    pub fn clear_all_ops(&self) -> Vec<HintOp> {
        self.applied().flat_map(|(k, a)| clear_ops(*k, a)).collect()
    }

    /// After the exit clear: the state holds nothing more (or what failed to clear).
    pub fn cleared(&mut self, ops: &[HintOp], results: &[Result<(), ApplyError>]) {
        for (op, r) in ops.iter().zip(results) {
            let failed = matches!(r, Err(e) if !matches!(e, ApplyError::NoSuchTask(_) | ApplyError::Reused(_)));
            if let (
                HintOp::Clear {
                    restore: Some(rs), ..
                },
                false,
            ) = (op, failed)
            {
                self.forget(rs.owner);
            }
        }
        let _ = self.journal(Vec::new());
    }
}

/// The clear that puts back what `a` replaced, in process `key` only: one process-scope
/// clear, whether the hint went to the process or thread by thread. On the kernel it clears
/// every thread of the group, so threads created after the last scan, which inherited the
/// hint and were never written or recorded, lose it too; the stock backend puts back each
/// thread it has a record of (and those created since that still show its write).
fn clear_ops(key: ProcKey, a: &Applied) -> Vec<HintOp> {
    vec![HintOp::Clear {
        target: Target {
            pid: key.0,
            scope: Scope::Process,
        },
        tids: a.tids.clone(),
        restore: Some(Restore {
            owner: key,
            base_slice_ns: a.base_slice_ns,
            tasks: a.records.clone(),
        }),
    }]
}

/// `h` as a thread whose role gives it `class` holds it. A raised class is not passed on to
/// the threads and children it creates (as for a rule's own raised class): they take the
/// process's hint at the next scan, or a role of their own.
fn role_hint(h: Hint, class: Option<HintClass>) -> Hint {
    match class {
        Some(c) if c != h.class => Hint {
            class: c,
            inherit: h.inherit && !c.is_raising(),
            ..h
        },
        _ => h,
    }
}

/// The [`OwnWrite`] a thread holding `s` shows (the inverse of [`written_settings`]).
fn own_of(s: &Settings) -> OwnWrite {
    OwnWrite::Stock {
        policy: s.policy,
        nice: s.nice,
        slice_ns: s.slice_ns,
        cpus: s.cpu_set(),
    }
}

fn entry_of(key: ProcKey, a: &Applied, backend: &str) -> Entry {
    Entry {
        pid: key.0,
        start_ticks: key.1,
        comm: a.comm.clone(),
        hint: a.hint,
        backend: backend.to_owned(),
        per_thread: a.scope == Scope::Thread,
        by: Writer::Daemon,
        since_unix_ms: a.since_unix_ms,
        written_unix_ms: a.written_unix_ms,
        tasks: a.records.clone(),
        thread_classes: a.thread_classes.clone(),
    }
}
#[cfg(test)]
mod live_tests;
#[cfg(test)]
mod tests;
