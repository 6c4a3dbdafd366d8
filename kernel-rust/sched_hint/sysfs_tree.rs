// SPDX-License-Identifier: GPL-2.0

//! `/sys/kernel/sched_hint/`: the kill switch, the ABI version, the per-class table and the
//! counters, one value per file.

use core::fmt::Write;

use kernel::{
    new_mutex,
    prelude::*,
    sched_hint::{
        self,
        Class,
        ClassParams, //
    },
    sync::{
        Arc,
        Mutex, //
    },
    sysfs::{
        parse_u32,
        Attribute,
        AttributeOps,
        Dir,
        ShowBuffer, //
    },
    uapi,
};

use crate::stats::{
    self,
    Reject, //
};

#[derive(Clone, Copy)]
enum ClassField {
    SliceUs,
    WakeupPreempt,
    Idle,
}

impl ClassField {
    const ALL: [(ClassField, &'static CStr); 3] = [
        (ClassField::SliceUs, c"slice_us"),
        (ClassField::WakeupPreempt, c"wakeup_preempt"),
        (ClassField::Idle, c"idle"),
    ];

    fn get(self, p: &ClassParams) -> u32 {
        match self {
            ClassField::SliceUs => p.slice_us,
            ClassField::WakeupPreempt => p.wakeup_preempt,
            ClassField::Idle => p.idle,
        }
    }

    fn set(self, p: &mut ClassParams, value: u32) {
        match self {
            ClassField::SliceUs => p.slice_us = value,
            ClassField::WakeupPreempt => p.wakeup_preempt = value,
            ClassField::Idle => p.idle = value,
        }
    }
}

/// Held while a class file reads its row, changes one field and writes the row back, so that
/// two writers of one row cannot lose each other's change.
type RowLock = Arc<Mutex<()>>;

/// What one file shows, and what a write to it changes.
enum File {
    Enabled,
    AbiVersion,
    Class(Class, ClassField, RowLock),
    Set,
    Cleared,
    Rejected(Reject),
    Active,
    Expired,
    Generation,
    FastPath,
    FastPathOn,
}

fn show_u64(out: &mut ShowBuffer<'_>, value: u64) -> Result {
    writeln!(out, "{value}").map_err(|_| EINVAL)
}

impl AttributeOps for File {
    fn show(&self, out: &mut ShowBuffer<'_>) -> Result {
        let value = match self {
            File::Enabled => u64::from(sched_hint::is_enabled()),
            File::AbiVersion => u64::from(uapi::SCHED_HINT_ABI_VERSION),
            File::Class(class, field, _) => {
                u64::from(field.get(&sched_hint::class_params(*class)?))
            }
            File::Set => stats::nr_set(),
            File::Cleared => stats::nr_cleared(),
            File::Rejected(reason) => stats::nr_rejected(*reason),
            File::Active => sched_hint::stats().nr_active,
            File::Expired => sched_hint::stats().nr_expired,
            File::Generation => sched_hint::stats().generation,
            File::FastPath => u64::from(sched_hint::stats().fast_path),
            File::FastPathOn => sched_hint::stats().nr_fast_path_on,
        };
        show_u64(out, value)
    }

    fn store(&self, input: &[u8]) -> Result {
        let value = parse_u32(input)?;
        match self {
            File::Enabled => match value {
                0 | 1 => {
                    sched_hint::set_enabled(value == 1);
                    Ok(())
                }
                _ => Err(EINVAL),
            },
            File::Class(class, field, lock) => {
                let _row = lock.lock();
                // The scheduler validates the whole row; a refused write changes nothing.
                let mut params = sched_hint::class_params(*class)?;
                field.set(&mut params, value);
                sched_hint::set_class_params(*class, &params)
            }
            _ => Err(EPERM),
        }
    }
}

/// The directories and files; dropping it removes them.
pub(crate) struct Tree {
    files: KVec<Pin<KBox<Attribute<File>>>>,
    _dirs: KVec<Dir>,
}

impl Tree {
    pub(crate) fn new() -> Result<Self> {
        let mut files = KVec::new();
        let mut dirs = KVec::new();
        let root = Dir::new_in_kernel(c"sched_hint")?;

        files.push(
            Attribute::new(&root, c"enabled", 0o644, File::Enabled)?,
            GFP_KERNEL,
        )?;
        files.push(
            Attribute::new(&root, c"abi_version", 0o444, File::AbiVersion)?,
            GFP_KERNEL,
        )?;

        let classes = root.new_child(c"classes")?;
        let lock: RowLock = Arc::pin_init(new_mutex!(()), GFP_KERNEL)?;
        for class in Class::HINTED {
            let dir = classes.new_child(class.name())?;
            for (field, fname) in ClassField::ALL {
                let file = File::Class(class, field, lock.clone());
                files.push(Attribute::new(&dir, fname, 0o644, file)?, GFP_KERNEL)?;
            }
            dirs.push(dir, GFP_KERNEL)?;
        }

        let stats_dir = root.new_child(c"stats")?;
        let counters = [
            (c"set", File::Set),
            (c"cleared", File::Cleared),
            (c"active", File::Active),
            (c"expired", File::Expired),
            (c"generation", File::Generation),
            (c"fast_path", File::FastPath),
            (c"fast_path_on", File::FastPathOn),
        ];
        for (name, file) in counters {
            files.push(Attribute::new(&stats_dir, name, 0o444, file)?, GFP_KERNEL)?;
        }
        for reason in Reject::ALL {
            files.push(
                Attribute::new(
                    &stats_dir,
                    reason.file_name(),
                    0o444,
                    File::Rejected(reason),
                )?,
                GFP_KERNEL,
            )?;
        }

        dirs.push(classes, GFP_KERNEL)?;
        dirs.push(stats_dir, GFP_KERNEL)?;
        dirs.push(root, GFP_KERNEL)?;
        Ok(Self { files, _dirs: dirs })
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        // Files first, so that no read runs while the directories go.
        self.files.clear();
    }
}
