//! The dry-run backend: logs each operation, changes nothing.

use super::{describe, ApplyError, HintOp, HintSink, Target};
use crate::config::Backend;
use crate::hint::KernelHint;

pub struct DryRunSink {
    ttl: bool,
    log: bool,
}

impl DryRunSink {
    /// `ttl`: behave like a backend whose hints expire (the device exists).
    pub fn new(ttl: bool) -> Self {
        Self { ttl, log: true }
    }

    /// Not even a log line per op (the benchmark).
    pub fn silent(ttl: bool) -> Self {
        Self { ttl, log: false }
    }
}

impl HintSink for DryRunSink {
    fn kind(&self) -> Backend {
        Backend::DryRun
    }

    fn apply(&mut self, ops: &[HintOp]) -> Vec<Result<(), ApplyError>> {
        ops.iter()
            .map(|op| {
                if self.log {
                    tracing::info!(target: "tuner::dry_run", "would {}", describe(op));
                }
                Ok(())
            })
            .collect()
    }

    fn get(&mut self, _target: Target) -> Result<Option<KernelHint>, ApplyError> {
        Err(ApplyError::Unsupported(
            "the dry-run backend holds no hints".into(),
        ))
    }

    fn supports_ttl(&self) -> bool {
        self.ttl
    }
}
