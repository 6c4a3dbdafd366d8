//! What one pass reports: a [`Row`] per process, with the [`Action`] taken about it.

use serde::Serialize;

use crate::apply::HintOp;
use crate::classify::external::ProcFacts;
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
}

#[derive(Debug, Default)]
pub struct PassReport {
    pub rows: Vec<Row>,
    pub ops: Vec<HintOp>,
    /// Open processes to ask the external classifier about.
    pub open: Vec<(ProcKey, ProcFacts)>,
    pub pass_us: u64,
}

pub(super) fn row(p: &ProcObs, d: &Decision, plan: Option<&NodePlan>) -> Row {
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
    }
}
