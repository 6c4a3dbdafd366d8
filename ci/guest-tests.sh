#!/bin/bash
# The guest half of `make vm-test`: runs as root inside the test VM (see scripts/vm-test.sh)
# and prints KTAP through the kernel's ktap_helpers.sh ($SH_KTAP, set by scripts/vm-run.sh).
# Each check is one "ok N name" / "not ok N name" line; the exit status is non-zero when any
# check failed. Inputs from the environment: SH_PHASE (functional: the ABI,
# module and tuner checks; sched: the scheduling-behaviour tests, run in a guest with
# instruction-counted time; small: the class tests on two CPUs (maxcpus=2); baseline: those
# tests on the unpatched kernel, no module;
# races: the race tests, in a guest with a host thread per vCPU; kcsan: the functional
# tests that exercise the hint code's locking, on a KCSAN kernel), SH_LSM (smack: the kernel
# has Smack, and the LSM test must run rather than skip), SH_MODULE
# (sched_hint.ko), SH_SELFTESTS (folder of test binaries), SH_TUNER (tuner binary,
# optional), SH_FUZZ_CALLS, SH_INJECT_FAIL (1: add a check that fails, to prove the host
# notices).
set -u
# shellcheck source=/dev/null
source "${SH_KTAP:?set by scripts/vm-run.sh}"

check() {	# check NAME COMMAND...: runs COMMAND, its output indented as KTAP diagnostics
	local name=$1 rc
	shift
	echo "# -- $name"
	# Through a file, not a pipe: a process the check leaves behind must not hold up the run.
	timeout -k 10 "${SH_CHECK_TIMEOUT_S:-900}" bash -c '"$@"' check "$@" >/tmp/check.out 2>&1
	rc=$?
	sed 's/^/#   /' /tmp/check.out
	((rc == 124)) && echo "#   timed out"
	if ((rc == 0)); then
		ktap_test_pass "$name"
	elif ((rc == KSFT_SKIP)); then
		ktap_test_skip "$name"
	else
		echo "#   exit status $rc"
		ktap_test_fail "$name"
	fi
}

export splat_re='BUG:|WARNING:|KASAN|UBSAN|general protection|Oops|possible circular locking|inconsistent lock state|suspicious RCU usage|rcu_preempt detected stalls|Call Trace'
# Kernel warnings of any kind since boot. A KCSAN report (only the KCSAN kernel has them) is
# judged by kcsan_clean, by where the race is.
splats() {
	dmesg | grep -E "$splat_re" | grep -v 'BUG: KCSAN' || true
}

kunit_results() {
	local r=/sys/kernel/debug/kunit/sched_hint/results
	[[ -r $r ]] || { echo "no $r"; return 1; }
	cat "$r"
	grep -q '^ok [0-9]* sched_hint' "$r" && ! grep -q 'not ok' "$r"
}

numa_nodes() {
	cat /sys/devices/system/node/node0/cpulist /sys/devices/system/node/node1/cpulist
}

load_module() {
	insmod "$SH_MODULE" || return 1
	for _ in $(seq 50); do [[ -c /dev/sched_hint ]] && break; sleep 0.1; done
	[[ -c /dev/sched_hint ]] || { echo "no /dev/sched_hint"; return 1; }
	# What configs/99-sched-hint.rules does on a real system: the ioctls check permissions.
	chmod 0666 /dev/sched_hint
	ls -l /dev/sched_hint
	find /sys/kernel/sched_hint -type f | sort | head -40
}

run_selftest() {	# prints the harness's TAP; 4 = all skipped is passed through
	"$SH_SELFTESTS/$1"
}

unload_with_active_hints() {
	local ctl=$SH_SELFTESTS/sched_hint_ctl pid i
	sleep infinity &
	pid=$!
	for i in $(seq 100); do
		if ((i > 1)); then insmod "$SH_MODULE" || return 1; fi
		for _ in $(seq 50); do [[ -c /dev/sched_hint ]] && break; sleep 0.02; done
		"$ctl" set "$pid" 4 1 60000 >/dev/null || { echo "set failed in cycle $i"; return 1; }
		"$ctl" set $$ 5 -1 >/dev/null || return 1
		grep -q 'hint.class.*batch' "/proc/$pid/sched" || { echo "hint not visible in cycle $i"; return 1; }
		rmmod sched_hint || { echo "rmmod failed in cycle $i"; return 1; }
		grep -q 'hint.class.*none' "/proc/$pid/sched" || { echo "hint left behind after unload $i"; return 1; }
		grep -q 'hint.class.*none' "/proc/$$/sched" || return 1
	done
	kill "$pid"
	echo "100 load/set/unload cycles, no hint left behind"
	insmod "$SH_MODULE" && chmod 0666 /dev/sched_hint
}

fuzz() {
	local before after
	before=$(splats | wc -l)
	"$SH_SELFTESTS/sched_hint_fuzz" "${SH_FUZZ_CALLS:-20000}" || return 1
	after=$(splats | wc -l)
	((after == before)) || { splats; return 1; }
}

tuner_in_guest() {
	local t=$SH_TUNER ctl=$SH_SELFTESTS/sched_hint_ctl pid out
	[[ -x $t ]] || { echo "no tuner binary"; return 4; }
	# A process the embedded rules know: rsync is a batch job.
	cp /bin/sleep /tmp/rsync
	/tmp/rsync 600 &
	pid=$!
	# The guest's / is the host's, read-only: the state file goes to /tmp.
	printf '[daemon]\nstate_file = "/tmp/tuner-state.json"\n' >/tmp/tuner-once.toml
	out=$("$t" --config /tmp/tuner-once.toml once --backend ioctl --json 2>&1) ||
		{ echo "$out"; kill $pid; return 1; }
	echo "$out" | head -c 2000
	echo
	"$ctl" get "$pid" || { kill $pid; return 1; }
	grep -q "class=[1-5]" <<<"$("$ctl" get "$pid")" || { echo "tuner set no hint on rsync ($pid)"; kill $pid; return 1; }
	kill $pid
}

# Fails on any splat from the first load of sched_hint on. One from before it (a KASAN kernel
# under TCG reports a wild access in an early interrupt, before any of this code exists) is
# printed, not counted.
no_splats() {
	local log first s
	log=$(dmesg)
	first=$(grep -n -m1 'sched_hint' <<<"$log" | cut -d: -f1)
	if [[ -n $first ]]; then
		s=$(head -n $((first - 1)) <<<"$log" | grep -E "$splat_re" || true)
		[[ -z $s ]] || echo "boot-time splat before sched_hint was loaded (not counted): $s"
		log=$(tail -n +"$first" <<<"$log")
	fi
	s=$(grep -E "$splat_re" <<<"$log" | grep -v 'BUG: KCSAN' || true)
	[[ -z $s ]] || { echo "$s"; return 1; }
	echo "dmesg clean since sched_hint was first loaded"
}

# The KCSAN lane: a data race between accesses in the hint code fails: its report's title,
# which names the function of each access (inlined helpers included), names sched_hint_*,
# task_hint_* or another *hint_* function. Strict mode also reports races elsewhere in the
# kernel, some on paths that the hint code calls (mod_delayed_work_on() against itself):
# those are counted and listed by title, not failed on. Other splats are dmesg_clean's.
kcsan_clean() {
	local log titles ours
	log=$(dmesg)
	grep -qi 'kcsan' <<<"$log" || { echo "no sign of KCSAN in dmesg: is this the KCSAN kernel?"; return 1; }
	titles=$(grep -o 'BUG: KCSAN: .*' <<<"$log" | sed 's|+0x[0-9a-f]*/0x[0-9a-f]*||g' || true)
	ours=$(grep -E 'sched_hint|task_hint|hint_' <<<"$titles" || true)
	echo "KCSAN reports since boot: $(grep -c . <<<"$titles"), naming the hint code: $(grep -c . <<<"$ours")"
	[[ -z $titles ]] || sort <<<"$titles" | uniq -c | sort -rn
	awk '/==================/ { if (r ~ /BUG: KCSAN/ && r ~ /sched_hint_/) n++; r = ""; next }
		{ r = r $0 "\n" } END { printf "of them with a sched_hint_ function on a printed stack (an interrupted one included): %d\n", n }' <<<"$log"
	[[ -z $ours ]]
}

run_unskipped() {	# run_unskipped BIN TEST: one harness test, which must not skip
	"$SH_SELFTESTS/$1" -t "$2" | tee /tmp/unskipped.out
	local rc=${PIPESTATUS[0]}
	if grep -q '# SKIP' /tmp/unskipped.out; then
		echo "$2 skipped, but this kernel is meant to run it"
		return 1
	fi
	return "$rc"
}

export -f kcsan_clean run_unskipped splats kunit_results numa_nodes load_module run_selftest unload_with_active_hints \
	fuzz tuner_in_guest no_splats

ktap_print_header
case ${SH_PHASE:-functional} in
functional)
	check numa_nodes numa_nodes
	check kunit_sched_hint kunit_results
	check module_load load_module
	check selftest_ioctl run_selftest sched_hint_ioctl
	check selftest_adversarial run_selftest sched_hint_adversarial
	check selftest_ioctl_32bit run_selftest sched_hint_ioctl32
	check selftest_abi_this_header run_selftest sched_hint_abi
	check selftest_abi_grown_header run_selftest sched_hint_abi_next
	check selftest_permission_matrix run_selftest sched_hint_perm
	[[ ${SH_LSM:-} == smack ]] &&
		check selftest_get_asks_the_lsm run_unskipped sched_hint_ioctl \
			get_asks_the_lsm_as_sched_getattr_does
	check module_unload_with_active_hints unload_with_active_hints
	check ioctl_fuzz fuzz
	check ioctl_bench "$SH_SELFTESTS/sched_hint_bench" 500
	if [[ -n ${SH_TUNER:-} ]]; then
		check tuner_applies_hints tuner_in_guest
		check tuner_guest_check bash "$SH_ROOT/ci/guest-tuner-check.sh" --tuner "$SH_TUNER"
	fi
	;;
sched)
	check module_load load_module
	check selftest_sched run_selftest sched_hint_sched
	;;
small)
	check two_cpus_online test "$(nproc)" -eq 2
	check module_load load_module
	check selftest_sched_two_cpus "$SH_SELFTESTS/sched_hint_sched" \
		-t latency_class_wakeup -t interactive_class_wakeup -t cpu_share_bound \
		-t latency_burst_not_cut_by_wakers
	;;
races)
	check module_load load_module
	check selftest_races "$SH_SELFTESTS/sched_hint_adversarial" \
		-t class_row_writers_lose_nothing -t get_process_scope_races_exec_and_exit \
		-t size_flip_writes_nothing_past_the_struct
	;;
kcsan)
	check kunit_sched_hint kunit_results
	check module_load load_module
	check selftest_ioctl run_selftest sched_hint_ioctl
	check selftest_adversarial run_selftest sched_hint_adversarial
	check selftest_permission_matrix run_selftest sched_hint_perm
	check module_unload_with_active_hints unload_with_active_hints
	check ioctl_fuzz fuzz
	check kcsan_no_race_in_hint_code kcsan_clean
	;;
baseline)
	check numa_nodes numa_nodes
	check no_sched_hint_device test ! -e /dev/sched_hint
	check selftest_sched_unhinted run_selftest sched_hint_sched
	;;
esac
[[ ${SH_INJECT_FAIL:-0} == 1 ]] && check injected_failure false
check dmesg_clean no_splats
# The plan comes last: which checks run depends on the phase and on what the guest has.
ktap_set_plan $((KTAP_TESTNO - 1))
ktap_finished
