#!/usr/bin/env bash
# Build kernel-rust/sched_hint out of tree against a built kernel.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
	cat <<USAGE
usage: scripts/module.sh [--debug | --kcsan] [--print-ko]
  Builds sched_hint.ko against \$SCHED_HINT_CACHE/build/patched (or patched-debug, patched-kcsan) with
  'make -C \$KDIR M=kernel-rust/sched_hint MO=<cache>', so the clone stays clean.
  KDIR=/path overrides the kernel build directory.
USAGE
}
flavour_flags=() print_ko=0
for a in "$@"; do
	case $a in
	--debug | --kcsan) flavour_flags+=("$a") ;;
	--print-ko) print_ko=1 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
flavour=$(sh_flavour "${flavour_flags[@]}")
kdir=${KDIR:-$SH_CACHE/build/$flavour}
out=$SH_CACHE/module/$flavour
if ((print_ko)); then
	echo "$out/sched_hint.ko"
	exit 0
fi
[[ -f $kdir/Module.symvers ]] || sh_die "no kernel build in $kdir: run 'make kernel'"
mkdir -p "$out"
# kbuild does not rebuild an external Rust module when the kernel's config changes, and a
# module built for another struct module fails to load: start over when the kernel differs.
stamp=$(cat "$kdir/include/config/auto.conf" "$kdir/Module.symvers" | sha256sum | cut -d' ' -f1)
if [[ $(cat "$out/.kernel-stamp" 2>/dev/null) != "$stamp" ]]; then
	find "$out" -mindepth 1 -delete
	echo "$stamp" >"$out/.kernel-stamp"
fi
mapfile -t kargs < <(sh_kmake_args)
sh_log "module: building against $kdir"
make -s -C "$kdir" M="$SH_ROOT/kernel-rust/sched_hint" MO="$out" "${kargs[@]}" modules
[[ -f $out/sched_hint.ko ]] || sh_die "no sched_hint.ko produced"
sh_log "module: $out/sched_hint.ko"
