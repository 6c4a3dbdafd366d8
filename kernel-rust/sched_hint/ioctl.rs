// SPDX-License-Identifier: GPL-2.0

//! The ioctls of `/dev/sched_hint`: command decoding, argument copying, checking and dispatch.
//!
//! The commands are extensible the way `PIDFD_GET_INFO` is: the kernel matches the command
//! number, type and direction, and takes the size of the caller's struct from the command
//! (`_IOC_SIZE`), so a program built against a newer header, with a bigger struct, reaches the
//! same ioctl. A shorter struct than the kernel's is zero-extended; a longer one is accepted when
//! its unknown tail is zero, else `E2BIG`, and the kernel writes the size it knows into the
//! caller's `size` field. The `size` field must equal the command's size.

use core::mem::size_of;

use kernel::{
    ioctl::{
        _IOC_DIR,
        _IOC_NR,
        _IOC_SIZE,
        _IOC_TYPE,
        _IOWR, //
    },
    page::PAGE_SIZE,
    prelude::*,
    sched_hint::{
        self,
        Attr,
        Scope, //
    },
    sync::aref::ARef,
    task::Task,
    transmute::{
        AsBytes,
        FromBytes, //
    },
    uaccess::{
        copy_struct_from_user,
        copy_struct_to_user,
        UserPtr,
        UserSlice, //
    },
    uapi,
};

use crate::{
    batch,
    stats, //
};

const MAGIC: u32 = uapi::SCHED_HINT_IOC_MAGIC;
// The commands as the first header published them; only their number, type and direction are
// matched.
const GET_INFO: u32 = _IOWR::<uapi::sched_hint_info>(MAGIC, 0x00);
const SET: u32 = _IOWR::<uapi::sched_hint>(MAGIC, 0x01);
const GET: u32 = _IOWR::<uapi::sched_hint>(MAGIC, 0x02);
const CLEAR: u32 = _IOWR::<uapi::sched_hint>(MAGIC, 0x03);
const SET_BATCH: u32 = _IOWR::<uapi::sched_hint_batch>(MAGIC, 0x04);

pub(crate) const HINT_VER0: usize = uapi::SCHED_HINT_SIZE_VER0 as usize;
const INFO_VER0: usize = uapi::SCHED_HINT_INFO_SIZE_VER0 as usize;
const BATCH_VER0: usize = uapi::SCHED_HINT_BATCH_SIZE_VER0 as usize;

/// The size of the caller's struct when `cmd` is `known` at some size of at least `min_size`,
/// as the C `extensible_ioctl_valid()` decides.
fn extensible_size(cmd: u32, known: u32, min_size: usize) -> Option<usize> {
    let same = _IOC_DIR(cmd) == _IOC_DIR(known)
        && _IOC_TYPE(cmd) == _IOC_TYPE(known)
        && _IOC_NR(cmd) == _IOC_NR(known);
    let size = _IOC_SIZE(cmd);
    (same && size >= min_size).then_some(size)
}

/// Runs one ioctl. Unknown commands, and known ones with a size below the first published one,
/// are `ENOTTY`.
pub(crate) fn dispatch(cmd: u32, arg: usize) -> Result<isize> {
    let arg = UserPtr::from_addr(arg);
    let ret = if let Some(size) = extensible_size(cmd, SET, HINT_VER0) {
        stats::outcome(set(arg, size))
    } else if let Some(size) = extensible_size(cmd, GET, HINT_VER0) {
        get(arg, size)
    } else if let Some(size) = extensible_size(cmd, CLEAR, HINT_VER0) {
        stats::outcome(clear(arg, size))
    } else if let Some(size) = extensible_size(cmd, SET_BATCH, BATCH_VER0) {
        stats::outcome(batch::set_batch(arg, size))
    } else if let Some(size) = extensible_size(cmd, GET_INFO, INFO_VER0) {
        get_info(arg, size)
    } else {
        Err(ENOTTY)
    };
    ret.map(|()| 0)
}

/// Writes the size of `T` that this kernel knows into the caller's `size` field, as every
/// `E2BIG` does.
fn write_known_size<T>(arg: UserPtr) -> Result {
    let known = size_of::<T>() as u32;
    UserSlice::new(arg, size_of::<u32>()).writer().write(&known)
}

/// Copies in a size-versioned struct of `user_size` bytes (the command's size) whose first field
/// is its `size`, which must say the same.
pub(crate) fn read_struct<T: FromBytes>(
    arg: UserPtr,
    user_size: usize,
    size_field: impl Fn(&T) -> u32,
) -> Result<T> {
    if user_size > PAGE_SIZE {
        write_known_size::<T>(arg)?;
        return Err(E2BIG);
    }
    let value = match copy_struct_from_user::<T>(arg, user_size) {
        Err(e) if e == E2BIG => {
            write_known_size::<T>(arg)?;
            return Err(E2BIG);
        }
        other => other?,
    };
    if size_field(&value) as usize != user_size {
        return Err(EINVAL);
    }
    Ok(value)
}

/// Writes a struct back: no more than the caller's `user_size` bytes, and zeroes the part of a
/// bigger caller struct that this kernel does not know.
pub(crate) fn write_struct<T: AsBytes>(arg: UserPtr, user_size: usize, value: &T) -> Result {
    copy_struct_to_user(arg, user_size, value).map(|_ignored_trailing| ())
}

fn read_hint(arg: UserPtr, user_size: usize) -> Result<uapi::sched_hint> {
    let hint = read_struct(arg, user_size, |h: &uapi::sched_hint| h.size)?;
    check_hint(&hint)?;
    Ok(hint)
}

/// The checks of a `struct sched_hint` that do not depend on how it was copied in.
pub(crate) fn check_hint(hint: &uapi::sched_hint) -> Result {
    if hint.__reserved.iter().any(|&r| r != 0) {
        return Err(EINVAL);
    }
    Ok(())
}

/// A hint that passed every check that does not need the caller's permission, and its target.
pub(crate) struct Checked {
    task: ARef<Task>,
    scope: Scope,
    attr: Attr,
}

/// Checks a hint and finds its target. The hint is checked first, so that a bad hint fails the
/// same way for every pid.
pub(crate) fn check(hint: &uapi::sched_hint) -> Result<Checked> {
    let attr = Attr::from_uapi(hint)?;
    let scope = Scope::try_from(hint.scope)?;
    sched_hint::validate(&attr)?;
    let task = sched_hint::find_task(hint.target_type, hint.target)?;
    Ok(Checked { task, scope, attr })
}

/// Applies a checked hint; returns the generation of the target's new hint.
pub(crate) fn apply(checked: &Checked) -> Result<u64> {
    sched_hint::set(&checked.task, checked.scope, &checked.attr)
}

/// Runs `change`, which changes a hint and returns its generation, for a SET or CLEAR whose
/// struct is `hint`; `hint` with that generation is written back.
///
/// The struct is written first with generation 0, which no hint ever has: that proves it
/// writable, so a call that changed a hint never fails with `EFAULT`. Should the write of the
/// real generation then fail (another thread unmapped the struct meanwhile), the hint is changed,
/// which is not the call's failure, and the caller holds 0, not a generation that looks real.
fn change_and_report(
    arg: UserPtr,
    user_size: usize,
    mut hint: uapi::sched_hint,
    change: impl FnOnce() -> Result<u64>,
) -> Result {
    let blank = uapi::sched_hint {
        generation: 0,
        ..hint
    };
    write_struct(arg, user_size, &blank)?;
    hint.generation = change()?;
    let _ = write_struct(arg, user_size, &hint);
    Ok(())
}

fn set(arg: UserPtr, user_size: usize) -> Result {
    let hint = read_hint(arg, user_size)?;
    let checked = check(&hint)?;
    change_and_report(arg, user_size, hint, || apply(&checked))?;
    stats::count_set();
    Ok(())
}

/// CLEAR: only the target fields and `scope` are used; the hint fields are ignored.
fn clear(arg: UserPtr, user_size: usize) -> Result {
    let hint = read_hint(arg, user_size)?;
    let scope = Scope::try_from(hint.scope)?;
    let task = sched_hint::find_task(hint.target_type, hint.target)?;
    change_and_report(arg, user_size, hint, || sched_hint::clear(&task, scope))?;
    stats::count_cleared();
    Ok(())
}

fn get(arg: UserPtr, user_size: usize) -> Result {
    let mut hint = read_hint(arg, user_size)?;
    let scope = Scope::try_from(hint.scope)?;
    let task = sched_hint::find_task(hint.target_type, hint.target)?;
    let (attr, generation) = sched_hint::get(&task, scope)?;
    attr.to_uapi(&mut hint);
    hint.generation = generation;
    write_struct(arg, user_size, &hint)
}

/// GET_INFO: only `size` and the reserved words are read; the rest of the struct is output.
/// `size` is left as the caller set it, so that a program can send the same struct again.
fn get_info(arg: UserPtr, user_size: usize) -> Result {
    let input = read_struct(arg, user_size, |i: &uapi::sched_hint_info| i.size)?;
    if input.__reserved.iter().any(|&r| r != 0) {
        return Err(EINVAL);
    }
    let mut info = uapi::sched_hint_info {
        size: input.size,
        abi_version: uapi::SCHED_HINT_ABI_VERSION,
        nr_classes: uapi::SCHED_HINT_NR_CLASSES,
        flags_supported: uapi::SCHED_HINT_F_ALL,
        enabled: u32::from(sched_hint::is_enabled()),
        hint_size: size_of::<uapi::sched_hint>() as u32,
        info_size: size_of::<uapi::sched_hint_info>() as u32,
        ..Default::default()
    };
    info.nr_node_ids = sched_hint::online_nodes(&mut info.node_mask);
    write_struct(arg, user_size, &info)
}
