# shellcheck shell=bash
# Shared paths and tool settings for the sched_hint scripts. Sourced, never run.

SH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SH_CACHE=${SCHED_HINT_CACHE:-$HOME/.cache/sched_hint}
SH_TOOLS=$SH_CACHE/tools
SH_VENV=$SH_CACHE/venv
SH_MODELS=$SH_CACHE/models
SH_JOBS=${JOBS:-$(nproc)}

# Debian's rustc-web pair: the kernel needs the rust-src that matches the compiler,
# which the rustup toolchain earlier in PATH does not have.
SH_RUSTC=${RUSTC_KERNEL:-/usr/bin/rustc}
SH_RUSTDOC=${RUSTDOC_KERNEL:-/usr/bin/rustdoc}
SH_BINDGEN=${BINDGEN_KERNEL:-$SH_TOOLS/bin/bindgen}
SH_LLVM=${LLVM_SUFFIX:--19}

sh_log() { printf '[sched_hint] %s\n' "$*" >&2; }
sh_die() { printf '[sched_hint] error: %s\n' "$*" >&2; exit 1; }

# The base tree: a user's own KSRC, else the unpacked Debian linux-source.
sh_ksrc() {
	if [[ -n ${KSRC:-} ]]; then
		printf '%s\n' "$KSRC"
		return
	fi
	local d
	d=$(find "$SH_CACHE/src" -maxdepth 1 -type d -name 'linux-source-*' 2>/dev/null | sort -V | tail -n1)
	[[ -n $d ]] || sh_die "no kernel source in $SH_CACHE/src: run 'make setup' or set KSRC="
	printf '%s\n' "$d"
}

# Every kernel make gets the same tool choice (plain `make` in PATH would pick rustup's rustc).
sh_kmake_args() {
	printf '%s\n' "LLVM=$SH_LLVM" "RUSTC=$SH_RUSTC" "HOSTRUSTC=$SH_RUSTC" \
		"RUSTDOC=$SH_RUSTDOC" "BINDGEN=$SH_BINDGEN" "-j$SH_JOBS"
}

# sh_kconfig SRC BUILD FRAGMENT...: BUILD/.config from SRC's tinyconfig plus the fragments.
sh_kconfig() {
	local src=$1 build=$2 kargs
	shift 2
	mapfile -t kargs < <(sh_kmake_args)
	make -s -C "$src" O="$build" "${kargs[@]}" tinyconfig >/dev/null
	KCONFIG_CONFIG=$build/.config "$src/scripts/kconfig/merge_config.sh" -m -O "$build" \
		"$build/.config" "$@" >/dev/null
	make -s -C "$src" O="$build" "${kargs[@]}" olddefconfig >/dev/null
}

# QEMU 7.2 (bookworm's) runs a guest that patches its own code (static keys with
# CONFIG_JUMP_LABEL) unsafely under multi-threaded TCG: a vCPU traps on an int3 that text_poke
# put in, the kernel's handler does not take it for part of a patch, and the guest dies with
# "Oops: int3". The unpatched 7.3.4 kernel toggling sched_schedstats under load died that way
# in four boots of four, within 13 to 62 s; under QEMU 10.0 it survived 356 toggles in two
# boots (scripts/qemu-check.sh). 10 is the oldest major version seen to work here.
SH_QEMU_MIN_MAJOR=10

# The major version of the qemu-system-x86_64 in PATH, 0 when there is none.
sh_qemu_major() {
	local v
	v=$(qemu-system-x86_64 --version 2>/dev/null | sed -n '1s/^QEMU emulator version \([0-9]*\)\..*/\1/p')
	echo "${v:-0}"
}
