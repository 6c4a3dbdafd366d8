// SPDX-License-Identifier: GPL-2.0

//! SET_BATCH: many SETs in one call, each with its own result.
//!
//! Before any entry is applied, every result slot is set to `-ECANCELED` ("not attempted"), so
//! a results array that cannot be written fails the call with nothing changed, and a call that
//! stops early leaves no slot that looks like success. Then, entry by entry:
//! - an entry that cannot be read is `-EFAULT` in its slot, like any other bad entry, and the
//!   batch goes on;
//! - a fatal signal stops the batch before the next entry (`EINTR`, which the dying caller
//!   never sees); other signals wait for the end of the batch, whose work is bounded by
//!   `SCHED_HINT_BATCH_MAX`, as they would for one long system call;
//! - a slot that can no longer be written (another thread unmapped it) stops the batch:
//!   `EFAULT`; the entry of that slot was applied and is counted.
//!
//! Once entries have been attempted, the header's `nr_ok` is written back: the number of
//! entries that were applied.

use core::mem::size_of;

use kernel::{
    current,
    page::PAGE_SIZE,
    prelude::*,
    task::cond_resched,
    uaccess::{
        copy_struct_from_user,
        UserPtr,
        UserSlice, //
    },
    uapi,
};

use crate::{
    ioctl::{
        apply,
        check,
        check_hint,
        read_struct,
        write_struct,
        HINT_VER0, //
    },
    stats,
};

/// The address of element `index` of a user array of `elem_size`-byte elements.
fn element(base: u64, index: usize, elem_size: usize) -> Result<UserPtr> {
    let offset = index.checked_mul(elem_size).ok_or(EINVAL)?;
    let addr = usize::try_from(base)
        .ok()
        .and_then(|b| b.checked_add(offset))
        .ok_or(EFAULT)?;
    Ok(UserPtr::from_addr(addr))
}

/// One SET of a batch; its errors go into its result slot.
fn entry(entry: UserPtr, entry_size: usize) -> Result {
    let hint: uapi::sched_hint = copy_struct_from_user(entry, entry_size)?;
    if hint.size as usize != entry_size {
        return Err(EINVAL);
    }
    check_hint(&hint)?;
    apply(&check(&hint)?)?;
    Ok(())
}

/// Sets every result slot to `-ECANCELED`, a few at a time.
fn cancel_all(results: u64, count: usize) -> Result {
    const CHUNK: usize = 64;
    let cancelled = [ECANCELED.to_errno(); CHUNK];
    let mut done = 0;
    while done < count {
        let n = (count - done).min(CHUNK);
        let slots = element(results, done, size_of::<i32>())?;
        let bytes: &[u8] = kernel::transmute::AsBytes::as_bytes(&cancelled[..n]);
        UserSlice::new(slots, bytes.len())
            .writer()
            .write_slice(bytes)?;
        done += n;
    }
    Ok(())
}

fn write_result(results: u64, index: usize, result: i32) -> Result {
    let slot = element(results, index, size_of::<i32>())?;
    UserSlice::new(slot, size_of::<i32>())
        .writer()
        .write(&result)
}

/// Why a batch stopped before its last entry.
enum Stop {
    Killed,
    Fault,
}

/// Applies the entries in order; returns how many were applied and why it stopped early, if it
/// did.
fn run(batch: &uapi::sched_hint_batch, count: usize, entry_size: usize) -> (u32, Option<Stop>) {
    let mut nr_ok = 0u32;
    for i in 0..count {
        if current!().fatal_signal_pending() {
            return (nr_ok, Some(Stop::Killed));
        }
        cond_resched();
        let applied = element(batch.entries, i, entry_size)
            .and_then(|e| stats::outcome(entry(e, entry_size)));
        let result = match applied {
            Ok(()) => {
                stats::count_set();
                nr_ok += 1;
                0
            }
            Err(e) => e.to_errno(),
        };
        if write_result(batch.results, i, result).is_err() {
            return (nr_ok, Some(Stop::Fault));
        }
    }
    (nr_ok, None)
}

pub(crate) fn set_batch(arg: UserPtr, user_size: usize) -> Result {
    let mut batch = read_struct(arg, user_size, |b: &uapi::sched_hint_batch| b.size)?;
    if batch.__reserved.iter().any(|&r| r != 0) {
        return Err(EINVAL);
    }
    let count = batch.count as usize;
    let entry_size = batch.entry_size as usize;
    if count > uapi::SCHED_HINT_BATCH_MAX as usize || !(HINT_VER0..=PAGE_SIZE).contains(&entry_size)
    {
        return Err(EINVAL);
    }
    cancel_all(batch.results, count)?;

    let (nr_ok, stop) = run(&batch, count, entry_size);
    batch.nr_ok = nr_ok;
    write_struct(arg, user_size, &batch)?;
    match stop {
        None => Ok(()),
        Some(Stop::Killed) => Err(EINTR),
        Some(Stop::Fault) => Err(EFAULT),
    }
}
