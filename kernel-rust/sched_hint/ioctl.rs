// SPDX-License-Identifier: GPL-2.0

//! The ioctls of `/dev/sched_hint`: argument copying, checking and dispatch.
//!
//! Every struct is size-versioned: `size` first, `copy_struct_from_user()` semantics, and on
//! `E2BIG` the size the kernel knows is written back into the caller's `size` field.

use core::mem::size_of;

use kernel::{
    ioctl::_IOWR,
    prelude::*,
    sched_hint::{self, Attr, Scope},
    transmute::AsBytes,
    uaccess::{UserPtr, UserSlice},
    uapi,
};

use crate::stats;

const MAGIC: u32 = uapi::SCHED_HINT_IOC_MAGIC;
pub(crate) const GET_INFO: u32 = _IOWR::<uapi::sched_hint_info>(MAGIC, 0x00);
pub(crate) const SET: u32 = _IOWR::<uapi::sched_hint>(MAGIC, 0x01);
pub(crate) const GET: u32 = _IOWR::<uapi::sched_hint>(MAGIC, 0x02);
pub(crate) const CLEAR: u32 = _IOWR::<uapi::sched_hint>(MAGIC, 0x03);
pub(crate) const SET_BATCH: u32 = _IOWR::<uapi::sched_hint_batch>(MAGIC, 0x04);

const HINT_VER0: usize = uapi::SCHED_HINT_SIZE_VER0 as usize;
const INFO_VER0: usize = uapi::SCHED_HINT_INFO_SIZE_VER0 as usize;
const BATCH_VER0: usize = uapi::SCHED_HINT_BATCH_SIZE_VER0 as usize;

/// Runs one ioctl. Unknown commands are `ENOTTY`.
pub(crate) fn dispatch(cmd: u32, arg: usize) -> Result<isize> {
    let arg = UserPtr::from_addr(arg);
    match cmd {
        GET_INFO => get_info(arg),
        SET => set(arg),
        GET => get(arg),
        CLEAR => clear(arg),
        SET_BATCH => set_batch(arg),
        _ => Err(ENOTTY),
    }
    .map(|()| 0)
}

/// Reads the `size` field that every struct starts with.
fn user_size(arg: UserPtr) -> Result<usize> {
    let size: u32 = UserSlice::new(arg, size_of::<u32>()).reader().read()?;
    Ok(size as usize)
}

/// Writes the size of `T` that this kernel knows into the caller's `size` field, as every
/// `E2BIG` does.
fn write_known_size<T>(arg: UserPtr) -> Result {
    let known = size_of::<T>() as u32;
    UserSlice::new(arg, size_of::<u32>()).writer().write(&known)
}

/// Copies a size-versioned struct in, with the size it was read with; on `E2BIG` tells the
/// caller the size this kernel knows.
///
/// The size is read from user memory once: the copy's own `size` field may have been changed
/// by another thread since, and is not used again.
fn read_versioned<T: kernel::transmute::FromBytes>(
    arg: UserPtr,
    min_size: usize,
) -> Result<(T, usize)> {
    let usize = user_size(arg)?;
    match sched_hint::copy_struct_from_user::<T>(arg, usize, min_size) {
        Err(e) if e == E2BIG => {
            write_known_size::<T>(arg)?;
            Err(E2BIG)
        }
        Err(e) => Err(e),
        Ok(value) => Ok((value, usize)),
    }
}

/// Writes a struct back, no more bytes than the caller's struct holds (`usize`), and zeroes the
/// part of a larger caller struct that this kernel does not know.
fn write_versioned<T: AsBytes>(arg: UserPtr, usize: usize, value: &T) -> Result {
    let bytes = value.as_bytes();
    let n = usize.min(bytes.len());
    let mut writer = UserSlice::new(arg, usize).writer();
    writer.write_slice(&bytes[..n])?;
    let zeros = [0u8; 64];
    let mut left = usize - n;
    while left > 0 {
        let chunk = left.min(zeros.len());
        writer.write_slice(&zeros[..chunk])?;
        left -= chunk;
    }
    Ok(())
}

fn read_hint(arg: UserPtr) -> Result<(uapi::sched_hint, usize)> {
    let (hint, usize): (uapi::sched_hint, usize) = read_versioned(arg, HINT_VER0)?;
    if hint.__reserved.iter().any(|&r| r != 0) {
        return Err(EINVAL);
    }
    Ok((hint, usize))
}

fn attr_of(hint: &uapi::sched_hint) -> Attr {
    Attr {
        class: hint.hint_class,
        node: hint.node,
        flags: hint.flags,
        source: hint.source,
        ttl_ms: hint.ttl_ms,
    }
}

/// Validates and applies one hint; shared by SET and SET_BATCH.
fn apply(hint: &uapi::sched_hint) -> Result<u64> {
    let attr = attr_of(hint);
    let scope = Scope::try_from(hint.scope)?;
    // Check the hint before the target, so that a bad hint fails the same way for every pid.
    sched_hint::validate(&attr)?;
    let task = sched_hint::find_task(hint.target_type, hint.target)?;
    sched_hint::set(&task, scope, &attr)
}

fn set(arg: UserPtr) -> Result {
    stats::outcome((|| {
        let (mut hint, usize) = read_hint(arg)?;
        hint.generation = apply(&hint)?;
        stats::count_set();
        write_versioned(arg, usize, &hint)
    })())
}

fn clear(arg: UserPtr) -> Result {
    stats::outcome((|| {
        let (mut hint, usize) = read_hint(arg)?;
        let scope = Scope::try_from(hint.scope)?;
        let task = sched_hint::find_task(hint.target_type, hint.target)?;
        hint.generation = sched_hint::clear(&task, scope)?;
        stats::count_cleared();
        write_versioned(arg, usize, &hint)
    })())
}

fn get(arg: UserPtr) -> Result {
    let (mut hint, usize) = read_hint(arg)?;
    let task = sched_hint::find_task(hint.target_type, hint.target)?;
    let task = match Scope::try_from(hint.scope)? {
        Scope::Thread => task,
        Scope::Process => sched_hint::group_leader(&task),
    };
    let (attr, generation) = sched_hint::get(&task);
    hint.hint_class = attr.class;
    hint.node = attr.node;
    hint.flags = attr.flags;
    hint.source = attr.source;
    hint.ttl_ms = attr.ttl_ms;
    hint.generation = generation;
    write_versioned(arg, usize, &hint)
}

fn get_info(arg: UserPtr) -> Result {
    let usize = user_size(arg)?;
    if usize < INFO_VER0 {
        return Err(EINVAL);
    }
    if usize > kernel::page::PAGE_SIZE {
        write_known_size::<uapi::sched_hint_info>(arg)?;
        return Err(E2BIG);
    }
    let mut info: uapi::sched_hint_info = Default::default();
    info.size = size_of::<uapi::sched_hint_info>() as u32;
    info.abi_version = uapi::SCHED_HINT_ABI_VERSION;
    info.nr_classes = uapi::SCHED_HINT_NR_CLASSES;
    info.flags_supported = uapi::SCHED_HINT_F_ALL;
    info.enabled = u32::from(sched_hint::is_enabled());
    info.hint_size = size_of::<uapi::sched_hint>() as u32;
    info.nr_node_ids = sched_hint::online_nodes(&mut info.node_mask);
    write_versioned(arg, usize, &info)
}

/// The address of element `index` of a user array of `elem_size`-byte elements.
fn element(base: u64, index: usize, elem_size: usize) -> Result<UserPtr> {
    let offset = index.checked_mul(elem_size).ok_or(EINVAL)?;
    let addr = usize::try_from(base)
        .ok()
        .and_then(|b| b.checked_add(offset))
        .ok_or(EFAULT)?;
    Ok(UserPtr::from_addr(addr))
}

/// One SET of a batch: the entry's own errors go into its result slot, counted as rejections.
fn batch_entry(entry: UserPtr, entry_size: usize) -> Result {
    let hint: uapi::sched_hint = sched_hint::copy_struct_from_user(entry, entry_size, HINT_VER0)?;
    if hint.size as usize != entry_size || hint.__reserved.iter().any(|&r| r != 0) {
        return Err(EINVAL);
    }
    apply(&hint)?;
    Ok(())
}

fn set_batch(arg: UserPtr) -> Result {
    let (mut batch, usize): (uapi::sched_hint_batch, usize) = read_versioned(arg, BATCH_VER0)?;
    if batch.__reserved.iter().any(|&r| r != 0) {
        return Err(stats::reject(EINVAL));
    }
    let count = batch.count as usize;
    let entry_size = batch.entry_size as usize;
    if count > uapi::SCHED_HINT_BATCH_MAX as usize
        || entry_size < HINT_VER0
        || entry_size > kernel::page::PAGE_SIZE
    {
        return Err(stats::reject(EINVAL));
    }

    let mut nr_ok = 0u32;
    for i in 0..count {
        let entry = element(batch.entries, i, entry_size)?;
        let result: i32 = match stats::outcome(batch_entry(entry, entry_size)) {
            Ok(()) => {
                stats::count_set();
                nr_ok += 1;
                0
            }
            Err(e) => e.to_errno(),
        };
        let slot = element(batch.results, i, size_of::<i32>())?;
        UserSlice::new(slot, size_of::<i32>())
            .writer()
            .write(&result)?;
    }
    batch.nr_ok = nr_ok;
    write_versioned(arg, usize, &batch)
}
