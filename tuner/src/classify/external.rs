//! The contract between the rule pipeline and an external classifier (the local LLM).
//!
//! The pipeline hands over the processes that exclusions, rules and heuristics left open and
//! goes on without waiting; an implementation answers later, in its own task. It chooses a
//! class only: NUMA placement comes from the planner's measurements.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use crate::hint::HintClass;

/// What an external classifier is told about one process. Every string here is
/// attacker-controlled (a process names itself); implementations must sanitise before use.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcFacts {
    pub pid: i32,
    pub uid: u32,
    pub comm: String,
    pub exe: Option<PathBuf>,
    pub cmdline: Vec<String>,
    pub cgroup: String,
    pub nr_threads: u32,
    /// CPU use over the last scan interval, 100.0 = one full core.
    pub cpu_pct: f64,
    pub voluntary_ctxsw_per_s: f64,
    pub involuntary_ctxsw_per_s: f64,
    pub rss_kib: u64,
}

/// One answer. `pid` must be one of the pids asked about.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalVerdict {
    pub pid: i32,
    pub class: HintClass,
    /// 0.0..=1.0, as the implementation estimates it.
    pub confidence: f32,
}

#[derive(Debug, thiserror::Error)]
pub enum ExternalError {
    #[error("classifier unavailable: {0}")]
    Unavailable(String),
    #[error("classifier timed out after {0} ms")]
    Timeout(u64),
    #[error("classifier answered badly: {0}")]
    BadAnswer(String),
}

pub type ExternalFuture =
    Pin<Box<dyn Future<Output = Result<Vec<ExternalVerdict>, ExternalError>> + Send + 'static>>;

/// A classifier consulted only for what exclusions, rules and heuristics leave open.
/// `classify` must not block: the returned future is spawned on its own task.
pub trait ExternalClassifier: Send + Sync + 'static {
    /// Short name for provenance and metrics ("llm").
    fn name(&self) -> &'static str;
    fn classify(&self, facts: Vec<ProcFacts>) -> ExternalFuture;
    /// The answers already known (a cache), at once and without a request; none by default.
    fn cached(&self, _facts: &[ProcFacts]) -> Vec<ExternalVerdict> {
        Vec::new()
    }
}
