//! The sched_hint ABI as bindgen generated it from `include/uapi/linux/sched_hint.h`.
//!
//! Nothing here is typed by hand: structs and `SCHED_HINT_*` constants come from bindgen (with
//! `struct sched_attr` and the `SCHED_*` policies from the system's uapi headers), the
//! ioctl request numbers from clang evaluating the header's `_IOWR` macros. The output is
//! checked in as `uapi_bindings.rs`, so building the tuner needs neither libclang nor the
//! kernel tree; `tests/it/uapi_bindings.rs` regenerates it where libclang exists and fails on
//! any difference (`SCHED_HINT_BLESS=1` rewrites it). The tests below check that the sizes
//! equal the header's `*_SIZE_VER0` and that the request numbers agree with the `_IOWR`
//! encoding nix computes from the magic, number and struct size.

#[allow(non_camel_case_types, non_upper_case_globals, dead_code, clippy::all)]
mod generated {
    include!("uapi_bindings.rs");
}

pub use generated::{sched_attr, sched_hint, sched_hint_batch, sched_hint_info};
pub use generated::{
    SCHED_BATCH, SCHED_DEADLINE, SCHED_FIFO, SCHED_FLAG_RESET_ON_FORK, SCHED_HINT_ABI_VERSION,
    SCHED_HINT_BATCH_MAX, SCHED_HINT_BATCH_SIZE_VER0, SCHED_HINT_CLASS_BACKGROUND,
    SCHED_HINT_CLASS_BATCH, SCHED_HINT_CLASS_INTERACTIVE, SCHED_HINT_CLASS_LATENCY,
    SCHED_HINT_CLASS_NONE, SCHED_HINT_CLASS_THROUGHPUT, SCHED_HINT_F_ALL, SCHED_HINT_F_INHERIT,
    SCHED_HINT_F_KEEP_ON_EXEC, SCHED_HINT_F_NODE_STRICT, SCHED_HINT_INFO_SIZE_VER0,
    SCHED_HINT_IOC_MAGIC, SCHED_HINT_MAX_NODES, SCHED_HINT_NODE_NONE, SCHED_HINT_NR_CLASSES,
    SCHED_HINT_NR_SOURCES, SCHED_HINT_SCOPE_PROCESS, SCHED_HINT_SCOPE_THREAD, SCHED_HINT_SIZE_VER0,
    SCHED_HINT_SRC_ADMIN, SCHED_HINT_SRC_HEURISTIC, SCHED_HINT_SRC_MODEL, SCHED_HINT_SRC_RULE,
    SCHED_HINT_SRC_UNKNOWN, SCHED_HINT_TARGET_PID, SCHED_HINT_TARGET_PIDFD, SCHED_HINT_TTL_MAX_MS,
    SCHED_IDLE, SCHED_NORMAL, SCHED_RR,
};

/// Request numbers, as the header's `_IOWR` macros define them.
pub mod ioc {
    pub const GET_INFO: core::ffi::c_ulong = super::generated::sched_hint_ioc_get_info;
    pub const SET: core::ffi::c_ulong = super::generated::sched_hint_ioc_set;
    pub const GET: core::ffi::c_ulong = super::generated::sched_hint_ioc_get;
    pub const CLEAR: core::ffi::c_ulong = super::generated::sched_hint_ioc_clear;
    pub const SET_BATCH: core::ffi::c_ulong = super::generated::sched_hint_ioc_set_batch;
}

/// `sizeof(struct sched_hint)` as this build knows it, for the `size` fields.
pub const HINT_SIZE: u32 = std::mem::size_of::<sched_hint>() as u32;
pub const INFO_SIZE: u32 = std::mem::size_of::<sched_hint_info>() as u32;
pub const BATCH_SIZE: u32 = std::mem::size_of::<sched_hint_batch>() as u32;
pub const ATTR_SIZE: u32 = std::mem::size_of::<sched_attr>() as u32;

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;

    #[test]
    fn generated_sizes_match_the_header_versions() {
        assert_eq!(size_of::<sched_hint>() as u32, SCHED_HINT_SIZE_VER0);
        assert_eq!(
            size_of::<sched_hint_info>() as u32,
            SCHED_HINT_INFO_SIZE_VER0
        );
        assert_eq!(
            size_of::<sched_hint_batch>() as u32,
            SCHED_HINT_BATCH_SIZE_VER0
        );
    }

    #[test]
    fn request_numbers_match_the_iowr_encoding() {
        let magic = SCHED_HINT_IOC_MAGIC as u8;
        let rw = |nr: u8, size: usize| nix::request_code_readwrite!(magic, nr, size);
        assert_eq!(ioc::GET_INFO, rw(0, size_of::<sched_hint_info>()));
        assert_eq!(ioc::SET, rw(1, size_of::<sched_hint>()));
        assert_eq!(ioc::GET, rw(2, size_of::<sched_hint>()));
        assert_eq!(ioc::CLEAR, rw(3, size_of::<sched_hint>()));
        assert_eq!(ioc::SET_BATCH, rw(4, size_of::<sched_hint_batch>()));
    }

    #[test]
    fn node_mask_covers_max_nodes() {
        let info = sched_hint_info::default();
        assert_eq!(info.node_mask.len() * 64, SCHED_HINT_MAX_NODES as usize);
    }

    #[test]
    fn flag_all_is_the_union_of_flags() {
        assert_eq!(
            SCHED_HINT_F_ALL,
            SCHED_HINT_F_NODE_STRICT | SCHED_HINT_F_INHERIT | SCHED_HINT_F_KEEP_ON_EXEC
        );
    }
}
