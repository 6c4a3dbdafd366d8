#!/usr/bin/env bash
# `make vm-test`: build the patched kernel, the module and the guest tests, boot the VM with two
# NUMA nodes, run ci/guest-tests.sh inside, print its TAP summary and fail when any check fails.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
	cat <<USAGE
usage: scripts/vm-test.sh [--debug] [--no-build] [--inject-failure] [--out DIR]
  --debug           use the debug kernel (KASAN, lockdep) and fuzz 100,000 ioctls
  --no-build        use what is already built
  --inject-failure  add a guest check that fails (to see the host command fail)
  --out DIR         keep the console log and results there (default results/vm-test[-debug])
USAGE
}
debug=0 build=1 inject=0 out=
while (($#)); do
	case $1 in
	--debug) debug=1 ;;
	--no-build) build=0 ;;
	--inject-failure) inject=1 ;;
	--out) out=$2; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
flavour_args=() fuzz_calls=20000 suffix=
if ((debug)); then
	flavour_args=(--debug) fuzz_calls=100000 suffix=-debug
fi
out=${out:-$SH_ROOT/results/vm-test$suffix}

if ((build)); then
	"$SH_ROOT/scripts/kernel.sh" "${flavour_args[@]}"
	"$SH_ROOT/scripts/module.sh" "${flavour_args[@]}"
	"$SH_ROOT/scripts/selftests.sh"
	if [[ -f $SH_ROOT/tuner/Cargo.toml ]]; then
		(cd "$SH_ROOT" && cargo build --release -q -p tuner)
	fi
fi
kdir=$("$SH_ROOT/scripts/kernel.sh" "${flavour_args[@]}" --print-dir)
ko=$("$SH_ROOT/scripts/module.sh" "${flavour_args[@]}" --print-ko)
tests=$("$SH_ROOT/scripts/selftests.sh" --print-dir)
envs=(--env "SH_MODULE=$ko" --env "SH_SELFTESTS=$tests" --env "SH_FUZZ_CALLS=$fuzz_calls"
	--env "SH_INJECT_FAIL=$inject")
tuner=$SH_ROOT/target/release/tuner
[[ -x $tuner ]] && envs+=(--env "SH_TUNER=$tuner")

start=$(date +%s)
set +e
"$SH_ROOT/scripts/vm-run.sh" --kernel "$kdir" --job "$SH_ROOT/ci/guest-tests.sh" --out "$out" \
	--timeout $((debug ? 1800 : 900)) "${envs[@]}"
rc=$?
set -e
log=$out/job.log
if [[ -f $log ]]; then
	echo "---- guest TAP ($out/console.log) ----"
	grep -E '^(ok|not ok) |^# Totals|^# .*(PASSED|FAILED|p99|samples|wakeups|fuzz|ioctl bench|weight)' "$log" || true
fi
sh_log "vm-test$suffix: guest exit status $rc after $(($(date +%s) - start)) s"
exit "$rc"
