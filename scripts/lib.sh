# shellcheck shell=bash
# The variables are for the scripts that source this file.
# shellcheck disable=SC2034
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

# sh_flavour [--baseline] [--debug | --kcsan]: the name of a kernel build, the one place that
# maps the scripts' flags to it: patched, baseline, and either with -debug (configs/debug.config)
# or -kcsan (configs/kcsan.config). Its build is $SH_CACHE/build/NAME, its module
# $SH_CACHE/module/NAME.
sh_flavour() {
	local name=patched extra=
	while (($#)); do
		case $1 in
		--baseline) name=baseline ;;
		--debug) [[ -z $extra ]] || sh_die "--debug and --kcsan exclude each other"; extra=-debug ;;
		--kcsan) [[ -z $extra ]] || sh_die "--debug and --kcsan exclude each other"; extra=-kcsan ;;
		*) sh_die "sh_flavour: unknown flag '$1'" ;;
		esac
		shift
	done
	printf '%s\n' "$name$extra"
}

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

# sh_config_has BUILD_DIR LINE: BUILD_DIR/.config has LINE (e.g. CONFIG_JUMP_LABEL=y) verbatim.
sh_config_has() {
	grep -qxF "$2" "$1/.config" 2>/dev/null
}

# Multi-threaded TCG runs a guest that patches its own code (static keys with
# CONFIG_JUMP_LABEL) unsafely: a vCPU traps on an int3 that text_poke put in, the kernel's
# handler does not take it for part of a patch, and the guest dies with "Oops: int3".
# scripts/qemu-check.sh toggles sched_schedstats under load: the unpatched 7.3.4 died so in
# four boots of four under QEMU 7.2, within 13 to 62 s, and ran 356 toggles in two boots
# under 10.0; the patched kernel, its hint key never on, died at an upstream site under
# 10.0 in two boots of two (after more than 160 and 620 toggles). With one host thread for
# all vCPUs, 7.2 ran both kernels unharmed: 64 and 540 toggles.
sh_jump_label_accel_ok() {	# sh_jump_label_accel_ok KERNEL_BUILD_DIR ACCEL_ARGS...
	local kdir=$1
	shift
	[[ $* != *tcg* || $* == *thread=single* ]] || ! sh_config_has "$kdir" CONFIG_JUMP_LABEL=y
}
