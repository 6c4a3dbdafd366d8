// SPDX-License-Identifier: GPL-2.0

//! sched_hint: per-task scheduling class and NUMA node hints for userspace.
//!
//! The misc device `/dev/sched_hint` lets a tuner give a task, or every thread of a process, a
//! scheduling class and a preferred NUMA node; `/sys/kernel/sched_hint/` holds the kill switch,
//! the per-class table and counters. Every argument is checked here and again by the scheduler;
//! permissions mirror `sched_setattr()`, and `sched_setaffinity()` for a strict node. Unloading
//! the module removes every hint.
//!
//! The ABI is `include/uapi/linux/sched_hint.h`; see
//! `Documentation/userspace-api/sched_hint.rst`. From userspace:
//!
//! ```c
//! #include <fcntl.h>
//! #include <stdio.h>
//! #include <sys/ioctl.h>
//! #include <unistd.h>
//! #include <linux/sched_hint.h>
//!
//! int main(void)
//! {
//!         struct sched_hint h = {
//!                 .size = sizeof(h),
//!                 .target_type = SCHED_HINT_TARGET_PID,
//!                 .target = getpid(),
//!                 .scope = SCHED_HINT_SCOPE_PROCESS,
//!                 .hint_class = SCHED_HINT_CLASS_BATCH,
//!                 .node = SCHED_HINT_NODE_NONE,
//!                 .source = SCHED_HINT_SRC_ADMIN,
//!                 .ttl_ms = 60000,
//!         };
//!         int fd = open("/dev/sched_hint", O_RDWR | O_CLOEXEC);
//!
//!         if (fd < 0 || ioctl(fd, SCHED_HINT_IOC_SET, &h) < 0) {
//!                 perror("sched_hint");
//!                 return 1;
//!         }
//!         printf("generation %llu\n", (unsigned long long)h.generation);
//!         return 0;
//! }
//! ```

use kernel::{
    fs::File,
    miscdevice::{
        MiscDevice,
        MiscDeviceOptions,
        MiscDeviceRegistration, //
    },
    prelude::*,
    sched_hint,
};

mod batch;
mod ioctl;
mod stats;
mod sysfs_tree;

module! {
    type: SchedHintModule,
    name: "sched_hint",
    authors: ["sched_hint developers"],
    description: "Per-task scheduling class and NUMA node hints for userspace",
    license: "GPL",
}

#[pin_data(PinnedDrop)]
struct SchedHintModule {
    #[pin]
    _miscdev: MiscDeviceRegistration<SchedHintDevice>,
    _sysfs: sysfs_tree::Tree,
}

impl kernel::InPlaceModule for SchedHintModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            _sysfs: sysfs_tree::Tree::new()?,
            _miscdev <- MiscDeviceRegistration::register(MiscDeviceOptions {
                name: c"sched_hint",
            }),
        })
    }
}

#[pinned_drop]
impl PinnedDrop for SchedHintModule {
    fn drop(self: Pin<&mut Self>) {
        // No file of the device is open (each holds a module reference), so no hint can be set
        // behind this: the module leaves no hint behind.
        sched_hint::clear_all();
    }
}

/// An open file of `/dev/sched_hint`; it carries no state, every ioctl stands alone.
struct SchedHintDevice;

#[vtable]
impl MiscDevice for SchedHintDevice {
    type Ptr = KBox<Self>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<KBox<Self>> {
        KBox::new(SchedHintDevice, GFP_KERNEL).map_err(Into::into)
    }

    fn ioctl(_me: &SchedHintDevice, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        ioctl::dispatch(cmd, arg)
    }
}
