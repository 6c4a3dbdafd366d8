//! Setting a thread's sched_hint class, through the tuner crate's ioctl backend.
//!
//! [`ClassSetter`] is the one external effect of this module, so the benchmark can be driven
//! in tests without the device; [`DeviceSetter`] is the real one: it opens `/dev/sched_hint`
//! with [`tuner::apply::ioctl::IoctlSink`] (which checks the ABI version with GET_INFO) and
//! sends each hint as one `SCHED_HINT_IOC_SET` with scope thread and source admin.

use std::path::Path;

use tuner::apply::ioctl::IoctlSink;
use tuner::apply::{ApplyError, HintOp, HintSink, Scope, Target};
use tuner::hint::{Hint, HintClass, HintSource};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HintError {
    #[error("{0}")]
    Open(ApplyError),
    #[error("cannot hint tid {tid} as {class}: {source}")]
    Set {
        tid: i32,
        class: HintClass,
        source: ApplyError,
    },
    #[error("no sched_hint device was opened (internal error: class {0} asked for one)")]
    NoDevice(HintClass),
}

pub trait ClassSetter {
    /// Gives thread `tid` the class `class` (never [`HintClass::None`]: that sets nothing).
    fn set_thread_class(&mut self, tid: i32, class: HintClass) -> Result<(), HintError>;
}

/// The hint wakebench sets on one of its own threads: a class only, no node, no
/// inheritance, no expiry.
pub fn admin_thread_hint(tid: i32, class: HintClass) -> HintOp {
    let me = std::process::id() as i32;
    HintOp::Set {
        target: Target {
            pid: tid,
            scope: Scope::Thread,
        },
        hint: Hint {
            class,
            node: None,
            strict: false,
            inherit: false,
            ttl_ms: 0,
            source: HintSource::Admin,
        },
        tids: vec![tid],
        owner: (me, tuner::sys::start_ticks(me).unwrap_or(0)),
    }
}

pub struct DeviceSetter {
    sink: IoctlSink,
}

impl DeviceSetter {
    pub fn open(path: &Path) -> Result<Self, HintError> {
        IoctlSink::open(path)
            .map(|sink| Self { sink })
            .map_err(HintError::Open)
    }
}

impl ClassSetter for DeviceSetter {
    fn set_thread_class(&mut self, tid: i32, class: HintClass) -> Result<(), HintError> {
        // One op per call: IoctlSink sends a single SET as SCHED_HINT_IOC_SET.
        let result = self
            .sink
            .apply(&[admin_thread_hint(tid, class)])
            .pop()
            .expect("HintSink::apply returns one result per op");
        result.map_err(|source| HintError::Set { tid, class, source })
    }
}

/// For runs that hint nothing: no device is opened, and being asked is a bug.
pub struct NoDevice;

impl ClassSetter for NoDevice {
    fn set_thread_class(&mut self, _tid: i32, class: HintClass) -> Result<(), HintError> {
        Err(HintError::NoDevice(class))
    }
}

/// Opens the device at `path` when any class needs it.
pub fn setter_for(path: &Path, classes: &[HintClass]) -> Result<Box<dyn ClassSetter>, HintError> {
    if classes.iter().all(|&c| c == HintClass::None) {
        Ok(Box::new(NoDevice))
    } else {
        Ok(Box::new(DeviceSetter::open(path)?))
    }
}

/// Remembers every call; fails the `fail_at`-th one (0-based) when set. Unit tests only.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct RecordingSetter {
    pub calls: Vec<(i32, HintClass)>,
    pub fail_at: Option<usize>,
}

#[cfg(test)]
impl ClassSetter for RecordingSetter {
    fn set_thread_class(&mut self, tid: i32, class: HintClass) -> Result<(), HintError> {
        if self.fail_at == Some(self.calls.len()) {
            return Err(HintError::Set {
                tid,
                class,
                source: ApplyError::PermissionDenied("refused by the test".into()),
            });
        }
        self.calls.push((tid, class));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hint_is_thread_scoped_admin_class_only() {
        let HintOp::Set {
            target, hint, tids, ..
        } = admin_thread_hint(77, HintClass::Latency)
        else {
            panic!("expected a set");
        };
        assert_eq!(target.scope, Scope::Thread);
        assert_eq!(target.pid, 77);
        assert_eq!(tids, vec![77]);
        assert_eq!(hint.source, HintSource::Admin);
        assert_eq!((hint.node, hint.inherit, hint.ttl_ms), (None, false, 0));
        // Through the tuner's own uapi conversion: the struct the ioctl receives.
        let raw = tuner::apply::ioctl::to_uapi(target, Some(&hint));
        assert_eq!(raw.scope, tuner::uapi::SCHED_HINT_SCOPE_THREAD);
        assert_eq!(raw.source, tuner::uapi::SCHED_HINT_SRC_ADMIN);
        assert_eq!(raw.hint_class, tuner::uapi::SCHED_HINT_CLASS_LATENCY);
        assert_eq!(raw.node, tuner::uapi::SCHED_HINT_NODE_NONE);
        assert_eq!(raw.flags, 0);
    }

    #[test]
    fn missing_device_is_a_one_line_error() {
        let path = Path::new("/nonexistent/sched_hint");
        let e = setter_for(path, &[HintClass::None, HintClass::Batch])
            .err()
            .expect("no device");
        assert_eq!(e.to_string(), "device /nonexistent/sched_hint is missing");
    }

    #[test]
    fn no_hints_need_no_device() {
        let path = Path::new("/nonexistent/sched_hint");
        let mut s = setter_for(path, &[HintClass::None, HintClass::None]).unwrap();
        assert!(s.set_thread_class(1, HintClass::Latency).is_err());
    }
}
