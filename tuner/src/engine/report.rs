//! What one pass reports: a [`Row`] per process, with the [`Action`] taken about it.

use serde::Serialize;

use crate::apply::HintOp;
use crate::classify::external::ProcFacts;
use crate::classify::roles::RoleSet;
use crate::classify::{Decision, Verdict};
use crate::hint::{Hint, HintClass, HintSource, Step};
use crate::observe::{ProcKey, ProcObs, Rates};
use crate::plan::NodePlan;

/// What a pass did about one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Holds no hint and needs none.
    None,
    /// Left alone (see the row's step and rule).
    Excluded,
    /// Holds the hint it should.
    Unchanged,
    New,
    Changed,
    /// The same hint written again before it expires.
    Refresh,
    Clear,
    /// Held back by the write rate limit; tried at the next pass.
    Deferred,
    Failed,
    /// A write failed lately; left alone for a few scans.
    Backoff,
    /// Someone else changed what the tuner wrote: left to them for good.
    Yielded,
    /// Not refreshed within its lifetime (the process is excluded now, or in backoff): put
    /// back as the kernel would drop it. Backends whose hints do not expire by themselves.
    Lapsed,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Excluded => "excluded",
            Action::Unchanged => "unchanged",
            Action::New => "new",
            Action::Changed => "changed",
            Action::Refresh => "refresh",
            Action::Clear => "clear",
            Action::Deferred => "deferred",
            Action::Failed => "failed",
            Action::Backoff => "backoff",
            Action::Yielded => "yielded",
            Action::Lapsed => "lapsed",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One process in a pass's report.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub pid: i32,
    pub comm: String,
    pub uid: u32,
    /// `None` while open or excluded.
    pub class: Option<HintClass>,
    pub excluded: bool,
    pub step: Step,
    pub rule: String,
    pub confidence: f32,
    pub source: Option<HintSource>,
    pub node: Option<u32>,
    pub node_reason: String,
    /// What the process should hold after this pass.
    pub hint: Option<Hint>,
    pub action: Action,
    pub error: Option<String>,
    pub threads: u32,
    pub skipped_threads: usize,
    pub rss_kib: u64,
    pub rates: Option<Rates>,
    /// Each thread's role, when the rule that matched has roles.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RoleRow>,
}

/// One thread's role in a pass's report.
#[derive(Debug, Clone, Serialize)]
pub struct RoleRow {
    pub tid: i32,
    /// `None`: no role; the thread takes the process's class.
    pub role: Option<String>,
    /// The role's class as the trust model allows it.
    pub class: Option<HintClass>,
    /// Which matchers held this scan, or `None` when the role is held from earlier scans.
    pub matched: Option<String>,
    /// Scans in a row the role has not shown (it is held until `role_hold_scans`).
    pub missed_scans: u32,
    /// What was measured this scan.
    pub measured: String,
}

impl Row {
    /// `listener 1, compute 2`: how many threads have each role.
    pub fn role_summary(&self) -> String {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for r in &self.roles {
            let Some(name) = r.role.as_deref() else {
                continue;
            };
            match counts.iter_mut().find(|(n, _)| *n == name) {
                Some((_, c)) => *c += 1,
                None => counts.push((name, 1)),
            }
        }
        counts
            .iter()
            .map(|(n, c)| format!("{n} {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn role_rows(set: &RoleSet) -> Vec<RoleRow> {
    set.threads
        .iter()
        .map(|t| RoleRow {
            tid: t.tid,
            role: t.role.map(|i| set.roles[i].name.clone()),
            class: t.role.map(|i| set.classes[i]),
            matched: t
                .matched
                .as_ref()
                .filter(|(i, _)| Some(*i) == t.role)
                .map(|(_, why)| why.clone()),
            missed_scans: t.missed_scans,
            measured: t.measured.clone(),
        })
        .collect()
}

#[derive(Debug, Default)]
pub struct PassReport {
    pub rows: Vec<Row>,
    pub ops: Vec<HintOp>,
    /// Open processes to ask the external classifier about.
    pub open: Vec<(ProcKey, ProcFacts)>,
    pub pass_us: u64,
}

pub(super) fn row(
    p: &ProcObs,
    d: &Decision,
    roles: Option<&RoleSet>,
    plan: Option<&NodePlan>,
) -> Row {
    Row {
        pid: p.pid,
        comm: p.comm.clone(),
        uid: p.uid,
        class: d.class(),
        excluded: d.verdict == Verdict::Exclude,
        step: d.step,
        rule: d.rule.clone(),
        confidence: d.confidence,
        source: if d.verdict == Verdict::Exclude {
            None
        } else {
            d.source()
        },
        node: plan.and_then(|pl| pl.node),
        node_reason: plan.map(|pl| pl.reason.clone()).unwrap_or_default(),
        hint: None,
        action: Action::None,
        error: None,
        threads: p.nr_threads,
        skipped_threads: d.skipped_tids.len(),
        rss_kib: p.rss_kib,
        rates: p.rates,
        roles: roles.map(role_rows).unwrap_or_default(),
    }
}
