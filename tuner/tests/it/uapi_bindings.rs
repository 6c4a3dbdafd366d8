//! `src/uapi_bindings.rs` is what bindgen makes of `include/uapi/linux/sched_hint.h` today.
//!
//! The bindings are checked in so that a stock-kernel user builds the tuner without libclang
//! or the kernel tree. This test regenerates them the way they were made and fails on any
//! difference; `SCHED_HINT_BLESS=1` writes the new text instead. Without libclang it prints
//! why it skipped.
//!
//! How they are made: the header is the single source of the ABI. Structs and constants come
//! from bindgen; the ioctl request numbers are computed by clang from the header's own
//! `_IOWR` macros (a wrapper assigns each macro to a `const unsigned long` that bindgen can
//! evaluate); `struct sched_attr` and the `SCHED_*` policies come from the system's uapi
//! headers.

use std::path::{Path, PathBuf};

const IOCTLS: [&str; 5] = [
    "SCHED_HINT_IOC_GET_INFO",
    "SCHED_HINT_IOC_SET",
    "SCHED_HINT_IOC_GET",
    "SCHED_HINT_IOC_CLEAR",
    "SCHED_HINT_IOC_SET_BATCH",
];

fn generate(header: &Path, scratch: &Path) -> String {
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
    let wrapper_path = scratch.join("sched_hint_wrapper.h");
    std::fs::write(&wrapper_path, wrapper).unwrap();
    bindgen::Builder::default()
        .header(wrapper_path.to_string_lossy())
        .allowlist_type("sched_hint|sched_hint_info|sched_hint_batch|sched_attr")
        .allowlist_var(
            "SCHED_HINT_.*|sched_hint_ioc_.*|SCHED_(NORMAL|FIFO|RR|BATCH|IDLE|DEADLINE)|SCHED_FLAG_.*",
        )
        .derive_default(true)
        .layout_tests(true)
        .use_core()
        .generate()
        .unwrap_or_else(|e| panic!("bindgen failed on {}: {e}", header.display()))
        .to_string()
}

#[test]
fn checked_in_bindings_match_the_uapi_header() {
    if let Err(e) = clang_sys::load() {
        println!("skipped: libclang is not loadable here ({e}); the checked-in bindings stand");
        return;
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let header = manifest
        .join("../include/uapi/linux/sched_hint.h")
        .canonicalize()
        .expect("the uapi header");
    let checked_in = manifest.join("src/uapi_bindings.rs");
    let scratch = tuner::observe::synthetic::ScratchDir::new("it-bindgen").unwrap();
    let fresh = generate(&header, scratch.path());
    if std::env::var_os("SCHED_HINT_BLESS").is_some() {
        std::fs::write(&checked_in, &fresh).unwrap();
        println!("wrote {}", checked_in.display());
        return;
    }
    let old = std::fs::read_to_string(&checked_in).unwrap();
    if old != fresh {
        let first = old
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(old.lines().count().min(fresh.lines().count()));
        panic!(
            "{} differs from bindgen's output for {} from line {}: regenerate with \
             SCHED_HINT_BLESS=1 cargo test -p tuner --test it uapi_bindings\n  checked in: {:?}\n  generated:  {:?}",
            checked_in.display(),
            header.display(),
            first + 1,
            old.lines().nth(first),
            fresh.lines().nth(first)
        );
    }
}
