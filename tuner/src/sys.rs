//! The crate's only raw system calls: the sched_hint ioctls, `sched_getattr`/`sched_setattr`
//! and `migrate_pages`. Everything above this file is safe code.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use nix::errno::Errno;

use crate::uapi::{self, sched_attr, sched_hint, sched_hint_batch, sched_hint_info};

/// An open `/dev/sched_hint`.
#[derive(Debug)]
pub struct Device {
    file: File,
}

impl Device {
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Self { file })
    }

    fn ioctl<T>(&self, request: libc::c_ulong, arg: &mut T) -> Result<(), Errno> {
        // SAFETY: `arg` is an exclusive reference to a live, properly aligned `T` whose type is
        // the struct the request number encodes (callers pass the matching `uapi` struct); the
        // kernel reads and writes at most `size_of::<T>()` bytes through it and keeps no
        // reference after the call returns. The fd stays open for the call because `self`
        // borrows the `File`.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), request as _, arg as *mut T) };
        Errno::result(rc).map(drop)
    }

    pub fn get_info(&self, info: &mut sched_hint_info) -> Result<(), Errno> {
        self.ioctl(uapi::ioc::GET_INFO, info)
    }

    pub fn set(&self, hint: &mut sched_hint) -> Result<(), Errno> {
        self.ioctl(uapi::ioc::SET, hint)
    }

    pub fn get(&self, hint: &mut sched_hint) -> Result<(), Errno> {
        self.ioctl(uapi::ioc::GET, hint)
    }

    pub fn clear(&self, hint: &mut sched_hint) -> Result<(), Errno> {
        self.ioctl(uapi::ioc::CLEAR, hint)
    }

    /// SET_BATCH over `entries`; `results` receives 0 or a negative errno per entry.
    /// Returns the number of entries the kernel applied.
    pub fn set_batch(&self, entries: &mut [sched_hint], results: &mut [i32]) -> Result<u32, Errno> {
        assert_eq!(entries.len(), results.len(), "one result slot per entry");
        let mut batch = sched_hint_batch {
            size: uapi::BATCH_SIZE,
            count: u32::try_from(entries.len()).map_err(|_| Errno::E2BIG)?,
            entries: entries.as_mut_ptr() as u64,
            results: results.as_mut_ptr() as u64,
            entry_size: uapi::HINT_SIZE,
            ..Default::default()
        };
        // The pointers inside `batch` stay valid for the call: `entries` and `results` are
        // exclusive borrows that outlive it, each `count` elements long.
        self.ioctl(uapi::ioc::SET_BATCH, &mut batch)?;
        Ok(batch.nr_ok)
    }
}

/// `sched_getattr(tid)`.
pub fn sched_getattr(tid: i32) -> Result<sched_attr, Errno> {
    let mut attr = sched_attr {
        size: uapi::ATTR_SIZE,
        ..Default::default()
    };
    // SAFETY: `attr` is a live `struct sched_attr` and we pass its exact size, so the kernel
    // writes within it; the pointer is not kept after the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_getattr,
            tid,
            &mut attr as *mut sched_attr,
            uapi::ATTR_SIZE,
            0,
        )
    };
    Errno::result(rc).map(|_| attr)
}

/// `sched_setattr(tid, attr)`.
pub fn sched_setattr(tid: i32, attr: &sched_attr) -> Result<(), Errno> {
    let mut attr = *attr;
    attr.size = uapi::ATTR_SIZE;
    // SAFETY: `attr` is a live, initialised `struct sched_attr` whose `size` field is its own
    // size; the kernel only reads it (and on E2BIG writes `size`, which is ours to lose).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            tid,
            &mut attr as *mut sched_attr,
            0,
        )
    };
    Errno::result(rc).map(drop)
}

/// `migrate_pages(pid, maxnode, old_nodes, new_nodes)`: moves the pages of `pid` that lie on
/// `old_nodes` to `new_nodes`. Returns the number of pages that could not be moved.
pub fn migrate_pages(pid: i32, old_nodes: &[u64], new_nodes: &[u64]) -> Result<u64, Errno> {
    assert_eq!(
        old_nodes.len(),
        new_nodes.len(),
        "node masks of equal length"
    );
    // The kernel reads `maxnode - 1` bits, so one more than the mask holds covers all of it.
    let maxnode = (old_nodes.len() * 64 + 1) as libc::c_ulong;
    // SAFETY: both masks are live slices of `maxnode - 1` bits that the kernel only reads
    // during the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_migrate_pages,
            pid,
            maxnode,
            old_nodes.as_ptr(),
            new_nodes.as_ptr(),
        )
    };
    Errno::result(rc).map(|n| n as u64)
}

/// Field 22 of `/proc/PID/stat` (start time in clock ticks since boot), `None` when the
/// process is gone. The command name may hold spaces and parentheses: fields are counted
/// after its last `)`.
pub fn start_ticks(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    // `rest` starts at field 3 (state); field 22 is the 20th after it.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// Whether `owner` (pid, start ticks) is still the same live process.
pub fn is_process(owner: (i32, u64)) -> bool {
    start_ticks(owner.0) == Some(owner.1)
}

/// Whether `tid` is a thread of process `pid` now.
pub fn is_thread_of(pid: i32, tid: i32) -> bool {
    Path::new(&format!("/proc/{pid}/task/{tid}")).exists()
}
