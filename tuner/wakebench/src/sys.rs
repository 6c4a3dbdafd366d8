//! The crate's raw system calls: the futex wait/wake pair behind every wakeup, plus thin safe
//! wrappers for the clock, the thread id, CPU affinity and the fair slice (the tuner's
//! `sched_setattr`). Only the futex needs `unsafe`.

use std::io;
use std::ptr;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use nix::errno::Errno;
use nix::sched::CpuSet;
use nix::sys::signal::{SigSet, Signal};
use nix::time::{clock_gettime, ClockId};
use nix::unistd::Pid;
use tuner::uapi::{self, sched_attr};

/// CLOCK_MONOTONIC in nanoseconds; the waker and the woken thread read the same clock.
pub fn monotonic_ns() -> u64 {
    // CLOCK_MONOTONIC always exists on Linux; a failure here is a broken libc or kernel.
    let ts = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("clock_gettime(CLOCK_MONOTONIC)");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// The kernel id of the calling thread, which is what sched_hint targets.
pub fn gettid() -> i32 {
    nix::unistd::gettid().as_raw()
}

/// Pins the calling thread to `set`.
pub fn pin_current_thread(set: &CpuSet) -> Result<(), Errno> {
    nix::sched::sched_setaffinity(Pid::from_raw(0), set)
}

/// The CPUs the calling thread may run on.
pub fn current_affinity() -> Result<CpuSet, Errno> {
    nix::sched::sched_getaffinity(Pid::from_raw(0))
}

fn sigusr1() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGUSR1);
    set
}

/// Blocks SIGUSR1 in the calling thread and in every thread it starts afterwards, so that the
/// signal waits for [`wait_sigusr1`] instead of ending the process.
pub fn block_sigusr1() -> Result<(), Errno> {
    sigusr1().thread_block()
}

/// Waits until SIGUSR1 is pending for this thread or the process, and takes it.
pub fn wait_sigusr1() -> Result<(), Errno> {
    sigusr1().wait().map(drop)
}

/// Gives thread `tid` SCHED_OTHER at nice 0 with a custom EEVDF slice of `slice_ns`, through
/// the tuner's `sched_setattr` wrapper and its generated `struct sched_attr`.
pub fn set_fair_slice(tid: i32, slice_ns: u64) -> Result<(), Errno> {
    let attr = sched_attr {
        sched_policy: uapi::SCHED_NORMAL,
        sched_runtime: slice_ns,
        ..Default::default()
    };
    tuner::sys::sched_setattr(tid, &attr)
}

/// Sleeps while `word` holds `expected`. Returns on a wake, when the word already differs
/// (EAGAIN), on a signal (EINTR) or when `timeout` runs out; callers re-check the word.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> io::Result<()> {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs() as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, 4-byte aligned `AtomicU32` borrowed for the whole call, so the
    // kernel reads a valid futex word; FUTEX_PRIVATE_FLAG is right because every waiter and
    // waker is a thread of this process. `ts_ptr` is null or points at `ts`, a local that
    // outlives the call (FUTEX_WAIT takes a relative timeout). The last two arguments are
    // ignored by FUTEX_WAIT.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ts_ptr,
            ptr::null::<u32>(),
            0u32,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EINTR) | Some(libc::ETIMEDOUT) => Ok(()),
        _ => Err(err),
    }
}

/// Wakes at most `n` threads sleeping on `word`; returns how many were woken.
pub fn futex_wake(word: &AtomicU32, n: u32) -> io::Result<usize> {
    // SAFETY: as in `futex_wait`, `word` is a live aligned futex word of this process;
    // FUTEX_WAKE only reads the address as a key and takes no further pointers.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            n.min(i32::MAX as u32),
            ptr::null::<libc::timespec>(),
            ptr::null::<u32>(),
            0u32,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    #[test]
    fn wait_returns_at_once_when_the_word_differs() {
        let w = AtomicU32::new(1);
        futex_wait(&w, 0, None).unwrap();
    }

    #[test]
    fn wait_times_out() {
        let w = AtomicU32::new(0);
        let t0 = monotonic_ns();
        futex_wait(&w, 0, Some(Duration::from_millis(20))).unwrap();
        assert!(monotonic_ns() - t0 >= 15_000_000);
    }

    #[test]
    fn wake_releases_a_waiter() {
        let w = Arc::new(AtomicU32::new(0));
        let w2 = Arc::clone(&w);
        let h = std::thread::spawn(move || {
            while w2.load(Ordering::Acquire) == 0 {
                futex_wait(&w2, 0, None).unwrap();
            }
        });
        std::thread::sleep(Duration::from_millis(10));
        w.store(1, Ordering::Release);
        futex_wake(&w, 1).unwrap();
        h.join().unwrap();
    }
}
