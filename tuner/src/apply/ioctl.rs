//! The ioctl backend: hints go to `/dev/sched_hint` on the patched kernel. Every struct and
//! constant comes from the generated [`crate::uapi`]; SETs of a pass go in SET_BATCH calls.

use std::collections::HashSet;
use std::io::ErrorKind;
use std::path::Path;
use std::sync::Arc;

use nix::errno::Errno;

use super::autogroup::Autogroups;
use super::migrate::MemoryMover;
use super::{ApplyError, HintOp, HintSink, Scope, Target};
use crate::config::{Backend, Config, MigrateMode};
use crate::hint::{Hint, HintClass, HintSource, KernelHint};
use crate::metrics::Metrics;
use crate::observe::{OwnWrite, Topology};
use crate::sys::Device;
use crate::uapi::{self, sched_hint, sched_hint_info};

pub struct IoctlSink {
    dev: Device,
    /// GET_INFO's answer; its node mask is refreshed when a hint names a node outside it.
    info: sched_hint_info,
    /// The kernel moves pages to a hinted node only as NUMA balancing finds them.
    memory: MemoryMover,
    autogroups: Autogroups,
}

/// Whether bit `node` (bit n of word n / 64) is set in GET_INFO's `node_mask`.
fn in_node_mask(mask: &[u64], node: u32) -> bool {
    mask.get((node / 64) as usize)
        .is_some_and(|word| word & (1u64 << (node % 64)) != 0)
}

/// What GET_INFO reported, for `tuner status`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeviceInfo {
    pub abi_version: u32,
    pub nr_classes: u32,
    pub flags_supported: u32,
    pub enabled: bool,
    pub nr_node_ids: u32,
    pub hint_size: u32,
    pub online_nodes: Vec<u32>,
}

fn scope_uapi(scope: Scope) -> u32 {
    match scope {
        Scope::Thread => uapi::SCHED_HINT_SCOPE_THREAD,
        Scope::Process => uapi::SCHED_HINT_SCOPE_PROCESS,
    }
}

/// The uapi struct for `target` (and `hint`, for SET).
pub fn to_uapi(target: Target, hint: Option<&Hint>) -> sched_hint {
    let mut h = sched_hint {
        size: uapi::HINT_SIZE,
        target_type: uapi::SCHED_HINT_TARGET_PID,
        target: target.pid,
        scope: scope_uapi(target.scope),
        node: uapi::SCHED_HINT_NODE_NONE,
        ..Default::default()
    };
    if let Some(hint) = hint {
        h.hint_class = hint.class.to_uapi();
        h.node = hint.node.map_or(uapi::SCHED_HINT_NODE_NONE, |n| n as i32);
        h.flags = hint.uapi_flags();
        h.source = hint.source.to_uapi();
        h.ttl_ms = hint.ttl_ms;
    }
    h
}

/// The kernel's answer to GET, `None` when the target holds no hint.
pub fn from_uapi(h: &sched_hint) -> Option<KernelHint> {
    let empty = h.hint_class == uapi::SCHED_HINT_CLASS_NONE && h.node < 0 && h.flags == 0;
    if empty {
        return None;
    }
    Some(KernelHint {
        class: HintClass::from_uapi(h.hint_class).unwrap_or(HintClass::None),
        node: u32::try_from(h.node).ok(),
        strict: h.flags & uapi::SCHED_HINT_F_NODE_STRICT != 0,
        inherit: h.flags & uapi::SCHED_HINT_F_INHERIT != 0,
        source: HintSource::from_uapi(h.source),
        ttl_ms: h.ttl_ms,
        generation: h.generation,
    })
}

/// A kernel errno, in the terms of the hint it refused.
pub fn map_errno(errno: Errno, pid: i32, hint: Option<&Hint>) -> ApplyError {
    match errno {
        Errno::ESRCH => ApplyError::NoSuchTask(pid),
        Errno::EPERM | Errno::EACCES => ApplyError::PermissionDenied(match hint {
            Some(h) if h.class.is_raising() => {
                format!("hinting pid {pid} as {} needs CAP_SYS_NICE", h.class)
            }
            _ => format!("pid {pid} belongs to another user (needs CAP_SYS_NICE)"),
        }),
        // Kernels before the EINVAL change answered a bad node with ENODEV.
        Errno::ENODEV => ApplyError::BadNode(hint.and_then(|h| h.node).unwrap_or(u32::MAX)),
        Errno::EINVAL => {
            ApplyError::Invalid("invalid class, flags, node or reserved field (EINVAL)".into())
        }
        Errno::E2BIG => {
            ApplyError::Invalid("the kernel does not know this struct size (E2BIG)".into())
        }
        Errno::ENOTTY => {
            ApplyError::Unsupported("the device does not know this ioctl (ENOTTY)".into())
        }
        other => ApplyError::Os {
            op: "sched_hint ioctl",
            errno: other,
        },
    }
}

impl IoctlSink {
    pub fn open(path: &Path) -> Result<Self, ApplyError> {
        let dev = Device::open(path).map_err(|e| match e.kind() {
            ErrorKind::NotFound => ApplyError::DeviceMissing(path.to_path_buf()),
            ErrorKind::PermissionDenied => {
                ApplyError::PermissionDenied(format!("cannot open {}", path.display()))
            }
            _ => ApplyError::Unsupported(format!(
                "cannot open {}: {}",
                path.display(),
                e.to_string().to_lowercase()
            )),
        })?;
        let mut info = sched_hint_info {
            size: uapi::INFO_SIZE,
            ..Default::default()
        };
        dev.get_info(&mut info).map_err(|e| map_errno(e, 0, None))?;
        if info.abi_version != uapi::SCHED_HINT_ABI_VERSION {
            return Err(ApplyError::Unsupported(format!(
                "{} speaks sched_hint abi {}, this tuner abi {}",
                path.display(),
                info.abi_version,
                uapi::SCHED_HINT_ABI_VERSION
            )));
        }
        Ok(Self {
            dev,
            info,
            memory: MemoryMover::new(MigrateMode::Never, None),
            autogroups: Autogroups::default(),
        })
    }

    /// Moves each process's memory to its hint's node as `mode` says ([`MemoryMover`]).
    pub fn with_migration(mut self, mode: MigrateMode, metrics: Option<Arc<Metrics>>) -> Self {
        self.memory = MemoryMover::new(mode, metrics);
        self
    }

    pub fn info(&self) -> DeviceInfo {
        let online_nodes = (0..uapi::SCHED_HINT_MAX_NODES)
            .filter(|&n| in_node_mask(&self.info.node_mask, n))
            .collect();
        DeviceInfo {
            abi_version: self.info.abi_version,
            nr_classes: self.info.nr_classes,
            flags_supported: self.info.flags_supported,
            enabled: self.info.enabled != 0,
            nr_node_ids: self.info.nr_node_ids,
            hint_size: self.info.hint_size,
            online_nodes,
        }
    }

    /// `hint`'s node when the kernel would refuse it, by the node mask of the last GET_INFO.
    fn refused_node(&self, hint: &Hint) -> Option<u32> {
        hint.node
            .filter(|&n| !in_node_mask(&self.info.node_mask, n))
    }

    /// Reads GET_INFO again, for a node that came online since; keeps the old answer when
    /// that fails.
    fn refresh_info(&mut self) {
        let mut info = sched_hint_info {
            size: uapi::INFO_SIZE,
            ..Default::default()
        };
        match self.dev.get_info(&mut info) {
            Ok(()) if info.abi_version == self.info.abi_version => self.info = info,
            Ok(()) => tracing::debug!(
                abi = info.abi_version,
                "GET_INFO changed abi; kept the node mask"
            ),
            Err(e) => tracing::debug!(error = %e, "GET_INFO failed; kept the node mask"),
        }
    }

    fn set_batch(&self, sets: &[(usize, Target, Hint)], results: &mut [Result<(), ApplyError>]) {
        for chunk in sets.chunks(uapi::SCHED_HINT_BATCH_MAX as usize) {
            let mut entries: Vec<sched_hint> =
                chunk.iter().map(|(_, t, h)| to_uapi(*t, Some(h))).collect();
            // A kernel that fails before it fills the slots leaves them "not attempted".
            let mut codes = vec![-(Errno::ECANCELED as i32); entries.len()];
            let call = self
                .dev
                .set_batch(&mut entries, &mut codes)
                .map(|_nr_ok| ());
            for ((i, t, h), code) in chunk.iter().zip(&codes) {
                results[*i] = batch_outcome(call, *code).map_err(|e| map_errno(e, t.pid, Some(h)));
            }
        }
    }
}

/// One entry's fate from the call's result and the entry's slot. The kernel fills every slot
/// with -ECANCELED before it applies anything, then each entry's own result, and keeps the
/// slots it wrote when the call stops early (EFAULT for a slot it could no longer write): an
/// entry with 0 was applied whatever the call returned; one still -ECANCELED was not
/// attempted, and fails with the call's error.
fn batch_outcome(call: Result<(), Errno>, code: i32) -> Result<(), Errno> {
    let canceled = -(Errno::ECANCELED as i32);
    match (call, code) {
        (_, 0) => Ok(()),
        (Err(e), c) if c == canceled => Err(e),
        (_, c) => Err(Errno::from_raw(-c)),
    }
}

impl HintSink for IoctlSink {
    fn kind(&self) -> Backend {
        Backend::Ioctl
    }

    fn apply(&mut self, ops: &[HintOp]) -> Vec<Result<(), ApplyError>> {
        let mut results: Vec<Result<(), ApplyError>> = vec![Ok(()); ops.len()];
        let mut sets = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            match op {
                HintOp::Set {
                    target,
                    hint,
                    owner,
                    ..
                } => match super::check_owner(*owner, target.pid) {
                    Ok(()) => sets.push((i, *target, *hint)),
                    Err(e) => results[i] = Err(e),
                },
                HintOp::Clear {
                    target, restore, ..
                } => {
                    // The same check as a set's: the process named (pid and start time)
                    // must still be there; a gone one is `NoSuchTask`, not a failure.
                    if let Some(r) = restore {
                        if let Err(e) = super::check_owner(r.owner, target.pid) {
                            results[i] = Err(e);
                            continue;
                        }
                    }
                    let mut h = to_uapi(*target, None);
                    results[i] = self
                        .dev
                        .clear(&mut h)
                        .map_err(|e| map_errno(e, target.pid, None));
                }
            }
        }
        // A node that is absent, offline or without CPUs is EINVAL from the kernel (ENODEV
        // before), which does not say what was wrong: refuse it here as `BadNode`, by the
        // node mask GET_INFO reported (read again first, in case the node came online).
        if sets.iter().any(|(_, _, h)| self.refused_node(h).is_some()) {
            self.refresh_info();
        }
        sets.retain(|(i, _, h)| match self.refused_node(h) {
            Some(node) => {
                results[*i] = Err(ApplyError::BadNode(node));
                false
            }
            None => true,
        });
        match sets.len() {
            0 => {}
            1 => {
                let (i, t, h) = sets[0];
                let mut raw = to_uapi(t, Some(&h));
                results[i] = self
                    .dev
                    .set(&mut raw)
                    .map_err(|e| map_errno(e, t.pid, Some(&h)));
            }
            _ => self.set_batch(&sets, &mut results),
        }
        for (op, r) in ops.iter().zip(&results) {
            match (op, r) {
                // Memory is the process's: a thread's set moves it once, by its owner.
                (HintOp::Set { owner, hint, .. }, Ok(())) => self.memory.after_set(*owner, hint),
                (HintOp::Clear { target, .. }, _) if target.scope == Scope::Process => {
                    self.memory.after_clear(target.pid)
                }
                _ => {}
            }
        }
        results
    }

    fn get(&mut self, target: Target) -> Result<Option<KernelHint>, ApplyError> {
        let mut h = to_uapi(target, None);
        self.dev
            .get(&mut h)
            .map_err(|e| map_errno(e, target.pid, None))?;
        Ok(from_uapi(&h))
    }

    fn admin_hinted(&mut self, pids: &[i32]) -> HashSet<i32> {
        pids.iter()
            .copied()
            .filter(|&pid| {
                let mut h = to_uapi(
                    Target {
                        pid,
                        scope: Scope::Process,
                    },
                    None,
                );
                self.dev.get(&mut h).is_ok() && h.source == uapi::SCHED_HINT_SRC_ADMIN
            })
            .collect()
    }

    fn supports_ttl(&self) -> bool {
        true
    }

    /// The background class runs with the idle load weight (its sysfs default), which ranks
    /// a task only inside its session where autogroups are on.
    fn session_nice(&self, class: HintClass) -> i32 {
        if class == HintClass::Background {
            19
        } else {
            0
        }
    }

    fn autogroups(&mut self) -> Option<&mut Autogroups> {
        Some(&mut self.autogroups)
    }

    fn own_write(&self, _hint: &Hint, _topo: Option<&Topology>) -> Option<OwnWrite> {
        Some(OwnWrite::Kernel)
    }

    fn set_topology(&mut self, topo: &Topology) {
        self.memory.set_topology(topo);
    }

    /// The kernel holds the classes' settings itself: none of them changes here.
    fn set_config(&mut self, cfg: &Config) -> Vec<HintClass> {
        self.memory.set_mode(cfg.plan.migrate);
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hint::test_hint;
    use crate::observe::ProcKey;

    #[test]
    fn a_failed_batch_call_fails_only_the_entries_it_did_not_apply() {
        let canceled = -(Errno::ECANCELED as i32);
        let efault = Err(Errno::EFAULT);
        assert_eq!(batch_outcome(efault, 0), Ok(()));
        assert_eq!(batch_outcome(efault, canceled), Err(Errno::EFAULT));
        assert_eq!(
            batch_outcome(efault, -(Errno::ESRCH as i32)),
            Err(Errno::ESRCH)
        );
        assert_eq!(batch_outcome(Ok(()), 0), Ok(()));
        assert_eq!(
            batch_outcome(Ok(()), -(Errno::EPERM as i32)),
            Err(Errno::EPERM)
        );
    }

    #[test]
    fn uapi_round_trip() {
        let hint = Hint {
            class: HintClass::Batch,
            node: Some(1),
            strict: true,
            inherit: true,
            ttl_ms: 30_000,
            source: HintSource::Heuristic,
        };
        let t = Target {
            pid: 42,
            scope: Scope::Process,
        };
        let raw = to_uapi(t, Some(&hint));
        assert_eq!(raw.size, uapi::SCHED_HINT_SIZE_VER0);
        assert_eq!(raw.scope, uapi::SCHED_HINT_SCOPE_PROCESS);
        assert_eq!(raw.hint_class, uapi::SCHED_HINT_CLASS_BATCH);
        assert_eq!(
            raw.flags,
            uapi::SCHED_HINT_F_NODE_STRICT | uapi::SCHED_HINT_F_INHERIT
        );
        assert_eq!(raw.__reserved, [0, 0]);
        let back = from_uapi(&raw).unwrap();
        assert_eq!(
            (
                back.class,
                back.node,
                back.strict,
                back.inherit,
                back.source
            ),
            (
                HintClass::Batch,
                Some(1),
                true,
                true,
                Some(HintSource::Heuristic)
            )
        );
        let empty = to_uapi(t, None);
        assert_eq!(empty.node, uapi::SCHED_HINT_NODE_NONE);
        assert_eq!(from_uapi(&empty), None);
    }

    #[test]
    fn errnos_map_to_errors() {
        let lat = Hint {
            class: HintClass::Latency,
            node: Some(3),
            strict: false,
            inherit: true,
            ttl_ms: 0,
            source: HintSource::Rule,
        };
        assert_eq!(
            map_errno(Errno::ESRCH, 5, Some(&lat)),
            ApplyError::NoSuchTask(5)
        );
        // Kernels before the EINVAL change answered a bad node with ENODEV.
        assert_eq!(
            map_errno(Errno::ENODEV, 5, Some(&lat)),
            ApplyError::BadNode(3)
        );
        let e = map_errno(Errno::EPERM, 5, Some(&lat)).to_string();
        assert_eq!(
            e,
            "permission denied: hinting pid 5 as latency needs CAP_SYS_NICE"
        );
    }

    /// A sink over `/dev/null`, whose GET_INFO said that only the nodes in `online` exist:
    /// every ioctl that reaches it fails with ENOTTY.
    fn sink_with_nodes(online: &[u32]) -> IoctlSink {
        let mut info = sched_hint_info {
            size: uapi::INFO_SIZE,
            abi_version: uapi::SCHED_HINT_ABI_VERSION,
            ..Default::default()
        };
        for &n in online {
            info.node_mask[(n / 64) as usize] |= 1u64 << (n % 64);
        }
        IoctlSink {
            dev: Device::open(Path::new("/dev/null")).unwrap(),
            info,
            memory: MemoryMover::new(MigrateMode::Never, None),
            autogroups: Autogroups::default(),
        }
    }

    /// A set on this test's own process (the sink checks that the target is still the
    /// process it names before any ioctl).
    fn set(node: Option<u32>) -> HintOp {
        let pid = std::process::id() as i32;
        HintOp::Set {
            target: Target {
                pid,
                scope: Scope::Process,
            },
            hint: Hint {
                node,
                ..test_hint(HintClass::Batch, HintSource::Rule)
            },
            tids: vec![pid],
            owner: (pid, crate::sys::start_ticks(pid).unwrap_or(0)),
        }
    }

    // The kernel answers a node that is absent, offline or without CPUs with EINVAL (older
    // kernels: ENODEV); the sink checks GET_INFO's node mask first so the caller still hears
    // which node was wrong, in a single SET and in a batch, and the others still go out.
    #[test]
    fn a_node_outside_the_info_mask_is_bad_node_before_any_ioctl() {
        let mut sink = sink_with_nodes(&[0, 65]);
        let unsupported =
            ApplyError::Unsupported("the device does not know this ioctl (ENOTTY)".into());
        assert_eq!(
            sink.apply(&[set(Some(1))]),
            vec![Err(ApplyError::BadNode(1))]
        );
        assert_eq!(
            sink.apply(&[set(Some(uapi::SCHED_HINT_MAX_NODES))]),
            vec![Err(ApplyError::BadNode(uapi::SCHED_HINT_MAX_NODES))]
        );
        assert_eq!(
            sink.apply(&[set(Some(1)), set(Some(65)), set(None)]),
            vec![
                Err(ApplyError::BadNode(1)),
                Err(unsupported.clone()),
                Err(unsupported.clone())
            ]
        );
        assert_eq!(sink.apply(&[set(Some(0))]), vec![Err(unsupported)]);
    }

    /// Issue 19, item e: a set and a clear reach the device only for the process they name
    /// (pid and start time). A pid that names another process now is `Reused`; a process
    /// that is gone is `NoSuchTask` (a clear said `Reused`, counted as a failure and backed
    /// off from).
    #[test]
    fn writes_reach_the_device_only_for_the_process_they_name() {
        let mut sink = sink_with_nodes(&[0]);
        let me = std::process::id() as i32;
        let start = crate::sys::start_ticks(me).unwrap();
        let HintOp::Set {
            target, hint, tids, ..
        } = set(None)
        else {
            unreachable!()
        };
        let set_as = |owner| HintOp::Set {
            target,
            hint,
            tids: tids.clone(),
            owner,
        };
        let clear_of = |owner: ProcKey| HintOp::Clear {
            target: Target {
                pid: owner.0,
                scope: Scope::Process,
            },
            tids: vec![owner.0],
            restore: Some(super::super::Restore {
                owner,
                base_slice_ns: None,
                tasks: Vec::new(),
            }),
        };
        let gone = (i32::MAX - 1, 1);
        assert_eq!(
            sink.apply(&[
                set_as((me, start + 1)),
                clear_of((me, start + 1)),
                set_as(gone),
                clear_of(gone),
            ]),
            vec![
                Err(ApplyError::Reused(me)),
                Err(ApplyError::Reused(me)),
                Err(ApplyError::NoSuchTask(gone.0)),
                Err(ApplyError::NoSuchTask(gone.0)),
            ]
        );
    }

    #[test]
    fn missing_device_is_reported_as_such() {
        let e = IoctlSink::open(Path::new("/nonexistent/sched_hint"))
            .err()
            .unwrap();
        assert_eq!(
            e,
            ApplyError::DeviceMissing("/nonexistent/sched_hint".into())
        );
    }
}
