#!/usr/bin/env bash
# `make vm-test`: build the patched kernel, the module and the guest tests, boot the VM with two
# NUMA nodes, run ci/guest-tests.sh inside, print its TAP summary and fail when any check fails.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
	cat <<USAGE
usage: scripts/vm-test.sh [--debug | --kcsan | --baseline] [--no-build] [--inject-failure]
                          [--races] [--out DIR]
  Boots the guest three times: once for the ABI, module, fuzz and tuner checks (TCG, one
  host thread for all vCPUs as the jump-label kernel needs, see vm-run.sh), once for the
  scheduling-behaviour tests with instruction-counted guest time (-icount), whose timings
  do not depend on host load, and once more with two CPUs online (maxcpus=2) for the class
  tests, since the base slice scales with the CPU count.
  --races           a fourth boot for the race tests (class rows, exec, size flips) with
                    a host thread per vCPU: on one thread the vCPUs take turns too
                    seldom for a race to land. Not in make test: such a guest can die
                    with "Oops: int3" while the kernel patches its own static keys at
                    boot (it did, once).
  --debug           use the debug kernel (KASAN, lockdep, Smack) and fuzz 300,000 ioctls, with
                    -icount for the functional phase too (the script says why)
  --kcsan           one boot of the KCSAN kernel (strict mode) for KUnit, the ioctl,
                    adversarial and race tests and the fuzzer: a data race reported in
                    the hint code fails, one elsewhere in the kernel is counted (make
                    vm-test-kcsan; not in make test)
  --baseline        run the scheduling tests on the unpatched kernel instead (hinted cases skip)
  --no-build        use what is already built
  --inject-failure  add a guest check that fails (to see the host command fail)
  --out DIR         keep the console logs and results there (default results/vm-test[-FLAVOUR])
  SCHED_HINT_TUNER=PATH runs that tuner binary in the guest instead of target/release/tuner
USAGE
}
debug=0 kcsan=0 baseline=0 build=1 inject=0 races=0 out=
while (($#)); do
	case $1 in
	--debug) debug=1 ;;
	--kcsan) kcsan=1 ;;
	--baseline) baseline=1 ;;
	--no-build) build=0 ;;
	--inject-failure) inject=1 ;;
	--races) races=1 ;;
	--out) out=$2; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
flavour_args=() fuzz_calls=20000 suffix=
((debug)) && flavour_args=(--debug) fuzz_calls=300000 suffix=-debug
((kcsan)) && flavour_args=(--kcsan) suffix=-kcsan
((baseline)) && flavour_args=(--baseline) suffix=-baseline
((debug + kcsan + baseline > 1)) && { usage >&2; sh_die "--debug, --kcsan and --baseline exclude each other"; }
out=${out:-$SH_ROOT/results/vm-test$suffix}

if ((build)); then
	"$SH_ROOT/scripts/kernel.sh" "${flavour_args[@]}"
	((baseline)) || "$SH_ROOT/scripts/module.sh" "${flavour_args[@]}"
	"$SH_ROOT/scripts/selftests.sh"
	((baseline)) || (cd "$SH_ROOT" && cargo build --release -q -p tuner)
fi
kdir=$("$SH_ROOT/scripts/kernel.sh" "${flavour_args[@]}" --print-dir)
tests=$("$SH_ROOT/scripts/selftests.sh" --print-dir)
envs=(--env "SH_SELFTESTS=$tests" --env "SH_FUZZ_CALLS=$fuzz_calls" --env "SH_INJECT_FAIL=$inject")
# configs/debug.config adds Smack: the guest then checks that GET asks the LSM.
((debug)) && envs+=(--env SH_LSM=smack)
if ((!baseline)); then
	envs+=(--env "SH_MODULE=$("$SH_ROOT/scripts/module.sh" "${flavour_args[@]}" --print-ko)")
	tuner=${SCHED_HINT_TUNER:-$SH_ROOT/target/release/tuner}
	[[ -x $tuner ]] && envs+=(--env "SH_TUNER=$tuner")
fi

# run_phase NAME [vm-run options]: boots once, prints the guest's TAP lines, returns its status.
run_phase() {
	local phase=$1 rc
	shift
	set +e
	"$SH_ROOT/scripts/vm-run.sh" --kernel "$kdir" --job "$SH_ROOT/ci/guest-tests.sh" \
		--out "$out/$phase" "${envs[@]}" --env "SH_PHASE=$phase" "$@"
	rc=$?
	set -e
	echo "---- $phase: guest TAP (console: $out/$phase/console.log) ----"
	local log=$out/$phase/job.log failed=0
	grep -qs '^not ok ' "$log" && failed=1
	[[ -f $log ]] && { grep -E '^(ok|not ok) |^# Totals|^#   # .*(PASSED|FAILED|p99|samples|wakeups|fuzz|ioctl bench|weight|cycles)' \
		"$log" || true; }
	if ((failed)); then
		# What a failing check said, so that a red run names its cause where only this
		# output is kept: a kselftest's failing cases whole, any other check's last lines.
		echo "---- $phase: what the failing checks said ----"
		awk '/^# -- / { n = 0; sub_n = 0; subfail = 0; next }
			/^#   #  RUN / { sub_n = 0 }
			{ buf[n++ % 30] = $0; sub_buf[sub_n++] = $0 }
			/^#   not ok / { for (i = 0; i < sub_n; i++) print sub_buf[i]; subfail = 1 }
			/^#   ok / { sub_n = 0 }
			/^not ok / && !subfail { for (i = n > 30 ? n - 30 : 0; i < n - 1; i++) print buf[i % 30] }' \
			"$log"
	elif ((rc)); then
		# A guest that died or hung before its checks ended printed no "not ok": show how it ended.
		echo "---- $phase: the guest failed without a failing check; the end of its console ----"
		tail -n 30 "$out/$phase/console.log" 2>/dev/null || true
	fi
	return "$rc"
}

start=$(date +%s)
rc=0
if ((baseline)); then
	run_phase baseline --icount --timeout 1200 || rc=$?
elif ((kcsan)); then
	# Like the debug kernel, the KCSAN one boots reliably with guest time counted in
	# instructions; -icount-sleep keeps its timers in step with the host.
	run_phase kcsan --icount --icount-sleep --timeout 2400 || rc=$?
else
	# The debug kernel, on one host thread without -icount, stops at boot with every vCPU
	# halted in default_idle and nothing left to wake them (two boots of two); with guest
	# time counted in instructions it boots and runs.
	debug_accel=()
	((debug)) && debug_accel=(--icount --icount-sleep)
	run_phase functional --timeout $((debug ? 2400 : 1200)) "${debug_accel[@]}" || rc=$?
	((debug)) || run_phase sched --icount --icount-sleep --timeout 1200 || rc=$((rc ? rc : $?))
	# A machine with two CPUs, whose base slice (1.4 ms) is shorter than on four: the classes
	# whose row is relative to it must still do what they promise there.
	((debug)) || run_phase small --icount --icount-sleep --timeout 900 --cmdline maxcpus=2 ||
		rc=$((rc ? rc : $?))
	# The totals below sum every phase folder: drop a race phase an earlier run left.
	((races)) || rm -rf "$out/races"
	if ((races && !debug)); then
		SCHED_HINT_ACCEL=tcg,thread=multi SH_ALLOW_JUMP_LABEL_MTTCG=1 \
			run_phase races --timeout 600 || rc=$((rc ? rc : $?))
	fi
fi
pass=0 fail=0 skip=0
for t in "$out"/*/job.log; do
	[[ -f $t ]] || continue
	read -r p f s < <(sed -n 's/^# Totals: pass:\([0-9]*\) fail:\([0-9]*\).*skip:\([0-9]*\).*/\1 \2 \3/p' "$t" | tail -n1)
	pass=$((pass + ${p:-0})) fail=$((fail + ${f:-0})) skip=$((skip + ${s:-0}))
done
echo "vm-test$suffix: $pass passed, $fail failed, $skip skipped"
sh_log "vm-test$suffix: guest exit status $rc after $(($(date +%s) - start)) s"
exit "$rc"
