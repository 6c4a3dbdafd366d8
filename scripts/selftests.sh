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
for c in "$src"/*.c; do
	bin=$out/$(basename "$c" .c)
	if [[ $bin -nt $c && $bin -nt $src/sched_hint_util.h && $bin -nt $SH_ROOT/include/uapi/linux/sched_hint.h ]]; then
		continue
	fi
	gcc -O2 -g -Wall -Werror -I"$harness" -I"$SH_ROOT/include/uapi" -o "$bin" "$c" -lpthread
done
# shellcheck disable=SC2012 # names we chose, for a log line
sh_log "selftests: $(ls "$out" | tr '\n' ' ')"
