#!/usr/bin/env bash
# Build the guest-side test programs of tools/testing/selftests/sched_hint.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
	cat <<USAGE
usage: scripts/selftests.sh [--print-dir]
  Builds tools/testing/selftests/sched_hint through its kselftest Makefile, in the
  kernel work tree with the series applied (scripts/kernel.sh --tree-only), against
  that tree's exported uapi headers, into \$SCHED_HINT_CACHE/selftests. The series
  carries the same files as this repository (make check-series compares them). The
  Makefile adds a 32-bit sched_hint_ioctl32 where gcc can build one (gcc-multilib).
  The programs run inside the guest, which sees the host's /.
USAGE
}
out=$SH_CACHE/selftests
case ${1:-} in
--print-dir) echo "$out"; exit 0 ;;
-h | --help) usage; exit 0 ;;
"") ;;
*) usage >&2; exit 2 ;;
esac
tree=$("$SH_ROOT/scripts/kernel.sh" --tree-only)
headers=$SH_CACHE/build/headers
mapfile -t kargs < <(sh_kmake_args)
# 'make headers' needs no .config; its own build folder keeps it apart from kernel builds.
make -s -C "$tree" O="$headers" "${kargs[@]}" headers
mkdir -p "$out"
make -s -C "$tree/tools/testing/selftests/sched_hint" OUTPUT="$out" \
	KHDR_INCLUDES="-isystem $headers/usr/include"
[[ -x $out/sched_hint_ioctl32 ]] || sh_die "no 32-bit sched_hint_ioctl32: is gcc-multilib installed?"
sh_log "selftests: $(cd "$out" && echo sched_hint_*)"
