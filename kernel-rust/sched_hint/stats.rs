// SPDX-License-Identifier: GPL-2.0

//! Counters of what the device was asked to do, shown under `/sys/kernel/sched_hint/stats/`.

use core::sync::atomic::{
    AtomicU64,
    Ordering, //
};

use kernel::prelude::*;

/// Why a request was refused; one counter each.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    Invalid,
    TooBig,
    NoTask,
    Permission,
    Fault,
    BadFd,
    Disabled,
    Other,
}

impl Reject {
    pub(crate) const ALL: [Reject; 8] = [
        Reject::Invalid,
        Reject::TooBig,
        Reject::NoTask,
        Reject::Permission,
        Reject::Fault,
        Reject::BadFd,
        Reject::Disabled,
        Reject::Other,
    ];

    fn of(err: Error) -> Reject {
        match err {
            e if e == EINVAL => Reject::Invalid,
            e if e == E2BIG => Reject::TooBig,
            e if e == ESRCH => Reject::NoTask,
            e if e == EPERM => Reject::Permission,
            e if e == EFAULT => Reject::Fault,
            e if e == EBADF => Reject::BadFd,
            e if e == EOPNOTSUPP => Reject::Disabled,
            _ => Reject::Other,
        }
    }

    /// The sysfs file name.
    pub(crate) fn file_name(self) -> &'static CStr {
        match self {
            Reject::Invalid => c"rejected_einval",
            Reject::TooBig => c"rejected_e2big",
            Reject::NoTask => c"rejected_esrch",
            Reject::Permission => c"rejected_eperm",
            Reject::Fault => c"rejected_efault",
            Reject::BadFd => c"rejected_ebadf",
            Reject::Disabled => c"rejected_eopnotsupp",
            Reject::Other => c"rejected_other",
        }
    }
}

static SET: AtomicU64 = AtomicU64::new(0);
static CLEARED: AtomicU64 = AtomicU64::new(0);
static REJECTED: [AtomicU64; Reject::ALL.len()] = [const { AtomicU64::new(0) }; Reject::ALL.len()];

pub(crate) fn count_set() {
    SET.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn count_cleared() {
    CLEARED.fetch_add(1, Ordering::Relaxed);
}

/// Counts a refused request and hands its error back.
pub(crate) fn reject(err: Error) -> Error {
    REJECTED[Reject::of(err) as usize].fetch_add(1, Ordering::Relaxed);
    err
}

/// Counts the outcome of a request that changes hints.
pub(crate) fn outcome<T>(res: Result<T>) -> Result<T> {
    res.map_err(reject)
}

pub(crate) fn nr_set() -> u64 {
    SET.load(Ordering::Relaxed)
}

pub(crate) fn nr_cleared() -> u64 {
    CLEARED.load(Ordering::Relaxed)
}

pub(crate) fn nr_rejected(reason: Reject) -> u64 {
    REJECTED[reason as usize].load(Ordering::Relaxed)
}
