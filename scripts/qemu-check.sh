#!/usr/bin/env bash
# Does this QEMU run a guest that patches its static keys? See sh_jump_label_accel_ok in lib.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
	cat <<USAGE
usage: scripts/qemu-check.sh [--kernel BUILD_DIR] [--seconds N] [--out DIR]
  Boots BUILD_DIR (default: the patched kernel) on the qemu-system-x86_64 in PATH, one host
  thread per vCPU unless SCHED_HINT_ACCEL says otherwise, and toggles sched_schedstats for N
  seconds (default 120) under load (ci/guest-static-keys.sh). Exit 0: the guest survived.
  Exit 1: it died, with the console's Oops printed. The kernel needs CONFIG_JUMP_LABEL=y
  (configs/ sets it), or there is nothing to patch. Everywhere else vm-run.sh gives such a
  kernel one host thread for all vCPUs and refuses a thread per vCPU (lib.sh).
USAGE
}

kdir= seconds=120 out=
while (($#)); do
	case $1 in
	--kernel) kdir=$2; shift ;;
	--seconds) seconds=$2; shift ;;
	--out) out=$2; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
kdir=${kdir:-$("$SH_ROOT/scripts/kernel.sh" --print-dir)}
out=${out:-$SH_ROOT/results/qemu-check}
for opt in CONFIG_JUMP_LABEL=y CONFIG_SCHEDSTATS=y CONFIG_SYSCTL=y; do
	sh_config_has "$kdir" "$opt" || sh_die "$kdir/.config lacks $opt: nothing to check"
done
sh_log "qemu-check: $(qemu-system-x86_64 --version | head -n1), accel ${SCHED_HINT_ACCEL:-tcg}, $seconds s"
rc=0
SCHED_HINT_ACCEL=${SCHED_HINT_ACCEL:-tcg} SH_ALLOW_JUMP_LABEL_MTTCG=1 "$SH_ROOT/scripts/vm-run.sh" --kernel "$kdir" --job "$SH_ROOT/ci/guest-static-keys.sh" \
	--out "$out" --timeout $((seconds + 300)) --env "QEMU_CHECK_S=$seconds" || rc=$?
if ((rc == 0)); then
	grep -a 'qemu-check: survived' "$out/job.log"
	exit 0
fi
sh_log "qemu-check: the guest died (vm-run rc=$rc); console:"
grep -a -m1 -A4 -E 'Oops:|BUG:|Kernel panic' "$out/console.log" >&2 || tail -n 20 "$out/console.log" >&2
grep -a 'toggles after' "$out/console.log" | tail -n1 >&2 || true
exit 1
