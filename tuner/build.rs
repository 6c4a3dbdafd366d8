//! Generates the Rust view of the sched_hint ABI from `include/uapi/linux/sched_hint.h`.
//!
//! The header is the single source of the ABI: structs and constants come from bindgen, and
//! the ioctl request numbers are computed by clang from the header's own `_IOWR` macros (a
//! tiny wrapper assigns each macro to a `const unsigned long` that bindgen can evaluate).
//! `struct sched_attr` and the `SCHED_*` policies come from the system's uapi headers.

use std::env;
use std::fs;
use std::path::PathBuf;

const IOCTLS: [&str; 5] = [
    "SCHED_HINT_IOC_GET_INFO",
    "SCHED_HINT_IOC_SET",
    "SCHED_HINT_IOC_GET",
    "SCHED_HINT_IOC_CLEAR",
    "SCHED_HINT_IOC_SET_BATCH",
];

fn main() {
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let header = manifest.join("../include/uapi/linux/sched_hint.h");
    let header = header
        .canonicalize()
        .unwrap_or_else(|e| panic!("cannot find the uapi header {}: {e}", header.display()));
    println!("cargo:rerun-if-changed={}", header.display());
    println!("cargo:rerun-if-changed=build.rs");

    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut wrapper = format!(
        "#include \"{}\"\n#include <linux/sched.h>\n#include <linux/sched/types.h>\n",
        header.display()
    );
    for name in IOCTLS {
        // The lower-case twin is a real object whose initializer clang evaluates.
        wrapper.push_str(&format!(
            "const unsigned long {} = {name};\n",
            name.to_lowercase()
        ));
    }
    let wrapper_path = out.join("sched_hint_wrapper.h");
    fs::write(&wrapper_path, wrapper).expect("write the bindgen wrapper header");

    let bindings = bindgen::Builder::default()
        .header(wrapper_path.to_string_lossy())
        .allowlist_type("sched_hint|sched_hint_info|sched_hint_batch|sched_attr")
        .allowlist_var(
            "SCHED_HINT_.*|sched_hint_ioc_.*|SCHED_(NORMAL|FIFO|RR|BATCH|IDLE|DEADLINE)|SCHED_FLAG_.*",
        )
        .derive_default(true)
        .layout_tests(true)
        .use_core()
        .generate()
        .unwrap_or_else(|e| panic!("bindgen failed on {}: {e}", header.display()));
    bindings
        .write_to_file(out.join("sched_hint_uapi.rs"))
        .expect("write the generated bindings");
}
