//! Applying hints: one trait, [`HintSink`], with a backend per mechanism.
//!
//! - [`ioctl::IoctlSink`]: `/dev/sched_hint` on the patched kernel, types generated from the
//!   uapi header;
//! - [`stock::StockSink`]: unpatched kernels, through `sched_setattr` (EEVDF slice, nice,
//!   `SCHED_BATCH`, `SCHED_IDLE`), `sched_setaffinity` for strict hints and `migrate_pages`
//!   in a worker thread;
//! - [`dry_run::DryRunSink`]: logs what would be written;
//! - `recording::RecordingSink` (unit tests only): remembers every operation.
//!
//! [`open`] picks one: `auto` is the device when it exists, else stock. Ops carry a
//! [`Hint`]; [`HintSink::get`] reads back a [`KernelHint`] (both in [`crate::hint`]).

pub mod autogroup;
pub mod dry_run;
pub mod ioctl;
pub mod migrate;
#[cfg(test)]
pub mod recording;
pub mod stock;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::config::{Backend, Config};
use crate::hint::{Hint, HintClass, KernelHint};
use crate::metrics::{write_kind, Metrics};
use crate::observe::{OwnWrite, ProcKey, Topology};
use crate::state::TaskRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The one thread `pid` names.
    Thread,
    /// Every thread of the thread group.
    Process,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Target {
    pub pid: i32,
    pub scope: Scope,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HintOp {
    /// `tids`: the threads the target covers as last observed (backends without a process
    /// scope of their own write each). `owner`: the process (pid and start time) the target
    /// belongs to; a pid that names another process by the time of the write is left alone.
    Set {
        target: Target,
        hint: Hint,
        tids: Vec<i32>,
        owner: ProcKey,
    },
    /// `restore`: what the tuner replaced, put back only where its own value still stands
    /// and only in the same process; `None` where no record exists (the stock backend then
    /// changes nothing, the kernel backend clears its hint).
    Clear {
        target: Target,
        tids: Vec<i32>,
        restore: Option<Restore>,
    },
}

/// What a clear puts back, and the process it must still be.
#[derive(Debug, Clone, PartialEq)]
pub struct Restore {
    /// Pid and start time of the process written: a reused pid is left alone.
    pub owner: ProcKey,
    /// The slice a thread nobody configured has, so a base slice reads as such.
    pub base_slice_ns: Option<u64>,
    pub tasks: Vec<TaskRecord>,
}

impl HintOp {
    pub fn target(&self) -> Target {
        match self {
            HintOp::Set { target, .. } | HintOp::Clear { target, .. } => *target,
        }
    }
}

/// Whether `owner` is still the process it was when observed (pid and start time), before a
/// write to it or to `tid`, one of its threads: `Reused` when the pid names another process
/// now, `NoSuchTask` when it is gone. A check, then the write: the window between them is
/// the few microseconds of one system call, not a scan interval.
pub fn check_owner(owner: ProcKey, tid: i32) -> Result<(), ApplyError> {
    let (pid, _) = owner;
    if !crate::sys::is_process(owner) {
        return Err(if crate::sys::start_ticks(pid).is_some() {
            ApplyError::Reused(pid)
        } else {
            ApplyError::NoSuchTask(pid)
        });
    }
    if tid != pid && !crate::sys::is_thread_of(pid, tid) {
        return Err(ApplyError::NoSuchTask(tid));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApplyError {
    #[error("no such task: {0}")]
    NoSuchTask(i32),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("node {0} is offline or absent")]
    BadNode(u32),
    #[error("the kernel rejected the hint: {0}")]
    Invalid(String),
    #[error("device {} is missing", .0.display())]
    DeviceMissing(PathBuf),
    #[error("{op} failed: {errno}")]
    Os {
        op: &'static str,
        errno: nix::errno::Errno,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("pid {0} is another process now (its start time changed); left alone")]
    Reused(i32),
}

impl ApplyError {
    /// The `kind` label this failure is counted under in `tuner_write_errors_total`.
    pub fn metric_kind(&self) -> &'static str {
        match self {
            ApplyError::NoSuchTask(_) => write_kind::GONE,
            ApplyError::PermissionDenied(_) => write_kind::PERMISSION,
            ApplyError::BadNode(_) => write_kind::NODE,
            ApplyError::Invalid(_) => write_kind::INVALID,
            ApplyError::DeviceMissing(_)
            | ApplyError::Os { .. }
            | ApplyError::Unsupported(_)
            | ApplyError::Reused(_) => write_kind::OTHER,
        }
    }
}

pub trait HintSink: Send {
    /// Which backend this is (never [`Backend::Auto`]).
    fn kind(&self) -> Backend;

    /// Applies `ops` in order; one result per op. One failure does not stop the others.
    fn apply(&mut self, ops: &[HintOp]) -> Vec<Result<(), ApplyError>>;

    /// The hint a target holds, `None` when it holds none.
    fn get(&mut self, target: Target) -> Result<Option<KernelHint>, ApplyError>;

    /// Of `pids`, those whose hint an admin set (which the daemon must leave alone).
    fn admin_hinted(&mut self, _pids: &[i32]) -> HashSet<i32> {
        HashSet::new()
    }

    /// Whether hints expire in the kernel (and so need refreshing).
    fn supports_ttl(&self) -> bool {
        false
    }

    /// Takes up what an earlier run wrote to `owner` (its state file's records) as if this
    /// sink had written it: the stock backend's strict pins.
    fn adopt(&mut self, _owner: ProcKey, _records: &[TaskRecord]) {}

    /// The autogroup nice that holding `class` asks of a process's session (see
    /// [`autogroup`]): above 0 for a class that gives up CPU share, else 0.
    fn session_nice(&self, _class: HintClass) -> i32 {
        0
    }

    /// The autogroup nices this backend writes, where it writes any.
    fn autogroups(&mut self) -> Option<&mut autogroup::Autogroups> {
        None
    }

    /// Brings the sessions' autogroups to `want` (every session with a live member, 0
    /// where it asks nothing). A daemon calls it after each pass.
    fn set_sessions(&mut self, want: &[autogroup::SessionWant]) {
        if let Some(a) = self.autogroups() {
            a.apply(want);
        }
    }

    /// Keeps what [`HintSink::set_sessions`] wrote in `file`, taking up what an earlier run
    /// left there (a daemon, at its start).
    fn keep_sessions_in(&mut self, file: &std::path::Path) {
        if let Some(a) = self.autogroups() {
            a.keep_in(file);
        }
    }

    /// Puts back every autogroup nice written (a daemon, at its exit).
    fn restore_sessions(&mut self) {
        if let Some(a) = self.autogroups() {
            a.restore_all(autogroup::RESTORE_PATIENCE);
        }
    }

    /// Whether a process-scope hint reaches threads created after it was set.
    fn covers_new_threads(&self) -> bool {
        true
    }

    /// What a successful write of `hint` leaves on the thread, so the exclusion step does not
    /// take it for someone else's setting. `None`: nothing visible changes.
    fn own_write(&self, _hint: &Hint, _topo: Option<&Topology>) -> Option<OwnWrite> {
        None
    }

    /// Called after each observation.
    fn set_topology(&mut self, _topo: &Topology) {}

    /// A reloaded configuration (SIGHUP). Returns the classes this backend now expresses
    /// differently, whose holders must be written again; none where a hint means the same.
    fn set_config(&mut self, _cfg: &Config) -> Vec<HintClass> {
        Vec::new()
    }
}

/// Whether this process may change other users' tasks and raise classes: root or
/// CAP_SYS_NICE in the effective set.
pub fn check_privileges() -> Result<(), ApplyError> {
    const CAP_SYS_NICE: u32 = 23;
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let capeff = procfs::process::Process::myself()
        .and_then(|p| p.status())
        .map(|s| s.capeff)
        .unwrap_or(0);
    if capeff & (1 << CAP_SYS_NICE) != 0 {
        return Ok(());
    }
    Err(ApplyError::PermissionDenied(
        "applying hints needs root or CAP_SYS_NICE (run as root, or use --dry-run)".into(),
    ))
}

/// Resolves `auto`: the device when it exists, else the stock backend.
pub fn resolve(choice: Backend, device: &Path) -> Backend {
    match choice {
        Backend::Auto if device.exists() => Backend::Ioctl,
        Backend::Auto => Backend::Stock,
        other => other,
    }
}

/// Opens the backend `choice` resolves to. Real backends check privileges first, so an
/// unprivileged run fails before it writes anything.
pub fn open(
    choice: Backend,
    cfg: &Config,
    metrics: Arc<Metrics>,
) -> Result<Box<dyn HintSink>, ApplyError> {
    open_with(choice, cfg, metrics, true)
}

/// Like [`open`], but leaves the privilege check to the kernel (`tuner hint` on one's own
/// processes needs none).
pub fn open_unchecked(
    choice: Backend,
    cfg: &Config,
    metrics: Arc<Metrics>,
) -> Result<Box<dyn HintSink>, ApplyError> {
    open_with(choice, cfg, metrics, false)
}

fn open_with(
    choice: Backend,
    cfg: &Config,
    metrics: Arc<Metrics>,
    check: bool,
) -> Result<Box<dyn HintSink>, ApplyError> {
    let device = &cfg.daemon.device;
    match resolve(choice, device) {
        Backend::Ioctl => {
            if !device.exists() {
                return Err(ApplyError::DeviceMissing(device.clone()));
            }
            if check {
                check_privileges()?;
            }
            Ok(Box::new(
                ioctl::IoctlSink::open(device)?.with_migration(cfg.plan.migrate, Some(metrics)),
            ))
        }
        Backend::Stock => {
            if check {
                check_privileges()?;
            }
            Ok(Box::new(stock::StockSink::new(
                cfg.stock.clone(),
                cfg.plan.migrate,
                Some(metrics),
            )))
        }
        Backend::DryRun | Backend::Auto => Ok(Box::new(dry_run::DryRunSink::new(device.exists()))),
    }
}

/// Short text of an op for logs.
pub fn describe(op: &HintOp) -> String {
    match op {
        HintOp::Set {
            target, hint, tids, ..
        } => format!(
            "set pid {} ({:?}, {} threads) class={} node={} strict={} inherit={} ttl_ms={} source={}",
            target.pid,
            target.scope,
            tids.len(),
            hint.class,
            hint.node.map_or("-".into(), |n| n.to_string()),
            hint.strict,
            hint.inherit,
            hint.ttl_ms,
            hint.source
        ),
        HintOp::Clear { target, tids, .. } => format!("clear pid {} ({:?}, {} threads)", target.pid, target.scope, tids.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_prefers_the_device() {
        let dir = crate::observe::synthetic::ScratchDir::new("dev").unwrap();
        let dev = dir.path().join("sched_hint");
        assert_eq!(resolve(Backend::Auto, &dev), Backend::Stock);
        std::fs::write(&dev, "").unwrap();
        assert_eq!(resolve(Backend::Auto, &dev), Backend::Ioctl);
        assert_eq!(resolve(Backend::DryRun, &dev), Backend::DryRun);
    }

    #[test]
    fn each_error_is_counted_under_its_own_kind() {
        let kinds = [
            (ApplyError::NoSuchTask(1), "gone"),
            (ApplyError::PermissionDenied(String::new()), "permission"),
            (ApplyError::BadNode(1), "node"),
            (ApplyError::Invalid(String::new()), "invalid"),
            (ApplyError::DeviceMissing(PathBuf::new()), "other"),
            (
                ApplyError::Os {
                    op: "test",
                    errno: nix::errno::Errno::EIO,
                },
                "other",
            ),
            (ApplyError::Unsupported(String::new()), "other"),
        ];
        for (e, kind) in kinds {
            assert_eq!(e.metric_kind(), kind, "{e:?}");
            assert!(write_kind::ALL.contains(&kind));
        }
    }

    #[test]
    fn forced_ioctl_without_device_is_device_missing() {
        let mut cfg = Config::default();
        cfg.daemon.device = "/nonexistent/sched_hint".into();
        let e = open(Backend::Ioctl, &cfg, Metrics::new())
            .err()
            .expect("no device");
        assert_eq!(
            e,
            ApplyError::DeviceMissing("/nonexistent/sched_hint".into())
        );
    }
}
