//! A sink that records every operation and can be told to fail, for tests.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use super::autogroup::SessionWant;
use super::{ApplyError, HintOp, HintSink, Target};
use crate::config::{Backend, Config, StockConfig};
use crate::hint::{Hint, HintClass, KernelHint};
use crate::observe::{OwnWrite, Topology};

#[derive(Clone, Default)]
pub struct RecordingSink {
    log: Arc<Mutex<Vec<HintOp>>>,
    /// Pids whose ops fail with the given error.
    pub fail: HashMap<i32, ApplyError>,
    pub admin: HashSet<i32>,
    pub ttl: bool,
    pub covers_new_threads: bool,
    /// Report writes as visible kernel hints (like the ioctl backend).
    pub kernel_like: bool,
    /// Express classes as the stock backend does: a reload reports the classes whose
    /// `[stock.*]` settings changed.
    pub stock: Option<StockConfig>,
    /// Every `set_sessions` call, in order.
    pub sessions: Arc<Mutex<Vec<Vec<SessionWant>>>>,
}

impl RecordingSink {
    pub fn new() -> Self {
        Self {
            ttl: true,
            covers_new_threads: true,
            kernel_like: true,
            ..Default::default()
        }
    }

    /// Every op applied so far (a handle that stays valid after the sink moves).
    pub fn ops(&self) -> Arc<Mutex<Vec<HintOp>>> {
        self.log.clone()
    }

    pub fn take(&self) -> Vec<HintOp> {
        std::mem::take(&mut *self.log.lock().expect("recording lock"))
    }
}

impl HintSink for RecordingSink {
    fn kind(&self) -> Backend {
        Backend::DryRun
    }

    fn apply(&mut self, ops: &[HintOp]) -> Vec<Result<(), ApplyError>> {
        let mut log = self.log.lock().expect("recording lock");
        ops.iter()
            .map(|op| {
                if let Some(e) = self.fail.get(&op.target().pid) {
                    return Err(e.clone());
                }
                log.push(op.clone());
                Ok(())
            })
            .collect()
    }

    fn get(&mut self, target: Target) -> Result<Option<KernelHint>, ApplyError> {
        let log = self.log.lock().expect("recording lock");
        let last = log.iter().rev().find(|op| op.target().pid == target.pid);
        Ok(match last {
            Some(HintOp::Set { hint, .. }) => Some(KernelHint {
                class: hint.class,
                node: hint.node,
                strict: hint.strict,
                inherit: hint.inherit,
                source: Some(hint.source),
                ttl_ms: hint.ttl_ms,
                generation: log.len() as u64,
            }),
            _ => None,
        })
    }

    fn admin_hinted(&mut self, pids: &[i32]) -> HashSet<i32> {
        pids.iter()
            .copied()
            .filter(|p| self.admin.contains(p))
            .collect()
    }

    fn supports_ttl(&self) -> bool {
        self.ttl
    }

    fn covers_new_threads(&self) -> bool {
        self.covers_new_threads
    }

    /// As the kernel's classes: background has the idle weight.
    fn session_nice(&self, class: HintClass) -> i32 {
        if class == HintClass::Background {
            19
        } else {
            0
        }
    }

    fn set_sessions(&mut self, want: &[SessionWant]) {
        self.sessions
            .lock()
            .expect("recording lock")
            .push(want.to_vec());
    }

    fn own_write(&self, _hint: &Hint, _topo: Option<&Topology>) -> Option<OwnWrite> {
        self.kernel_like.then_some(OwnWrite::Kernel)
    }

    fn set_config(&mut self, cfg: &Config) -> Vec<HintClass> {
        match self.stock.replace(cfg.stock.clone()) {
            Some(old) => old.changed_classes(&cfg.stock),
            None => Vec::new(),
        }
    }
}

/// The pids that `ops` set a hint on, sorted (a pid set twice is there twice).
pub fn set_pids(ops: &[HintOp]) -> Vec<i32> {
    sorted_pids(ops, |o| matches!(o, HintOp::Set { .. }))
}

/// The processes (owner pids) that `ops` set a hint on, sorted, each once.
pub fn set_owners(ops: &[HintOp]) -> Vec<i32> {
    let mut v: Vec<i32> = ops
        .iter()
        .filter_map(|o| match o {
            HintOp::Set { owner, .. } => Some(owner.0),
            HintOp::Clear { .. } => None,
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The pids that `ops` cleared, sorted (a pid cleared twice is there twice).
pub fn cleared_pids(ops: &[HintOp]) -> Vec<i32> {
    sorted_pids(ops, |o| matches!(o, HintOp::Clear { .. }))
}

fn sorted_pids(ops: &[HintOp], keep: impl Fn(&HintOp) -> bool) -> Vec<i32> {
    let mut v: Vec<i32> = ops
        .iter()
        .filter(|o| keep(o))
        .map(|o| o.target().pid)
        .collect();
    v.sort();
    v
}
