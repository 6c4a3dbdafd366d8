#!/usr/bin/env bash
# Build the guest-side test programs of tools/testing/selftests/sched_hint.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
	cat <<USAGE
usage: scripts/selftests.sh [--print-dir]
  Compiles this repository's tools/testing/selftests/sched_hint/*.c with the kernel's
  kselftest harness (from the base tree) and include/uapi of this repository into
  \$SCHED_HINT_CACHE/selftests. They run inside the guest, which sees the host's /.
USAGE
}
out=$SH_CACHE/selftests
case ${1:-} in
--print-dir) echo "$out"; exit 0 ;;
-h | --help) usage; exit 0 ;;
"") ;;
*) usage >&2; exit 2 ;;
esac
src=$SH_ROOT/tools/testing/selftests/sched_hint
harness=$(sh_ksrc)/tools/testing/selftests
[[ -f $harness/kselftest_harness.h ]] || sh_die "no kselftest_harness.h in $harness"
mkdir -p "$out"
uapi=$SH_ROOT/include/uapi
# sched_hint_abi_next is sched_hint_abi built against a copy of the uapi header in which
# struct sched_hint grew by a field; the same rule as the selftests' Makefile.
next=$out/next
mkdir -p "$next/linux"
awk '{ print } /__u64\t__reserved\[2\];/ && !done { print "\t__u64\tnext_field;"; done = 1 }' \
	"$uapi/linux/sched_hint.h" >"$next/linux/sched_hint.h.new"
cmp -s "$next/linux/sched_hint.h.new" "$next/linux/sched_hint.h" ||
	mv "$next/linux/sched_hint.h.new" "$next/linux/sched_hint.h"
rm -f "$next/linux/sched_hint.h.new"

build() { # build BIN SOURCE INCLUDE_DIR [CFLAGS...]
	local bin=$1 c=$2 inc=$3
	shift 3
	if [[ $bin -nt $c && $bin -nt $src/sched_hint_util.h && $bin -nt $inc/linux/sched_hint.h ]]; then
		return
	fi
	gcc -O2 -g -Wall -Werror "$@" -I"$harness" -I"$inc" -o "$bin" "$c" -lpthread
}
for c in "$src"/*.c; do
	build "$out/$(basename "$c" .c)" "$c" "$uapi"
done
build "$out/sched_hint_abi_next" "$src/sched_hint_abi.c" "$next" -DSH_NEXT_HEADER
# The ioctl tests as a 32-bit program, through the compat path of a 64-bit kernel. The
# harness casts pointers to uintmax_t in its comparisons, which gcc warns about at -m32.
build "$out/sched_hint_ioctl32" "$src/sched_hint_ioctl.c" "$uapi" -m32 -static \
	-Wno-pointer-to-int-cast
# shellcheck disable=SC2012 # names we chose, for a log line
sh_log "selftests: $(ls "$out" | tr '\n' ' ')"
