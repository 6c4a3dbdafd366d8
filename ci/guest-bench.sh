#!/bin/bash
# The guest half of `make bench`: runs as root in a guest booted by scripts/bench.sh, on the
# patched or the baseline kernel (SH_BENCH_KERNEL), and appends "name value" lines to
# $SH_OUT/bench.txt. Guest time is instruction-counted (-icount), so figures do not depend on
# host load. Inputs: SH_BENCH_KERNEL, SH_MODULE, SH_SELFTESTS, SH_WAKEBENCH, SH_BENCH_QUICK,
# SH_BENCH_PHASES (any of hot,lat,numa,ioctl; scripts/bench.sh --phases).
set -u
out=$SH_OUT/bench.txt
: >"$out"
quick=${SH_BENCH_QUICK:-0}
hb_loops=$((quick ? 50 : 200))
lat_s=$((quick ? 3 : 10))
# A guest second of the NUMA phase costs about half a minute of host time (TCG and NUMA
# hinting faults every 100 ms); 5 s runs already found 99.96 % of the pages moved.
numa_s=$((quick ? 5 : 8))
phases=${SH_BENCH_PHASES:-hot,lat,numa,ioctl}
has() { [[ ,$phases, == *,$1,* ]]; }

emit() { echo "$1 $2" | tee -a "$out"; }

hb_reps=$((quick ? 1 : 5))
# The measuring functions are called through median_of and bench_loads.
# shellcheck disable=SC2317
hackbench_s() { hackbench -g 4 -l "$hb_loops" -s 100 2>&1 | sed -n 's/^Time: *//p'; }
# shellcheck disable=SC2317
messaging_s() { perf bench sched messaging -g 4 -l "$hb_loops" 2>&1 | sed -n 's/.*Total time: *\([0-9.]*\).*/\1/p'; }
# Both ends of a pipe on one CPU: every operation is a wakeup and a context switch on one
# runqueue, with no cross-CPU interleaving to vary, so under -icount repeated runs agree to
# a few parts in ten thousand (hackbench's spread between runs is percents): the one
# load here that can resolve a sub-percent cost. Microseconds per operation.
# shellcheck disable=SC2317
pipe_pinned_us() { taskset -c 1 perf bench sched pipe -l 50000 2>&1 | sed -n 's/^ *\([0-9.]*\) usecs\/op.*/\1/p'; }
# median_of N CMD: the median of N runs; one hackbench run is a fraction of a second, and its
# spread between runs is larger than the differences this measures.
median_of() {
	local _
	for _ in $(seq "$1"); do "$2"; done | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# The hot path: the same three loads with no hint ever set, with every task hinted, and with
# the hints cleared again. The hinted class has its slice set to 0 (the base slice) so that
# the run measures the cost of the checks, not a different schedule.
hot_path() {
	local tag=$1
	emit "hackbench_s.$tag" "$(median_of "$hb_reps" hackbench_s)"
	emit "messaging_s.$tag" "$(median_of "$hb_reps" messaging_s)"
	emit "pipe_pinned_us.$tag" "$(median_of 5 pipe_pinned_us)"
}

if [[ $SH_BENCH_KERNEL == baseline ]]; then
	hot_path baseline
	exit 0
fi

insmod "$SH_MODULE" || exit 1
chmod 0666 /dev/sched_hint
ctl=$SH_SELFTESTS/sched_hint_ctl
if has hot; then
	hot_path hints_off
	echo 0 >/sys/kernel/sched_hint/classes/throughput/slice_us
	# This shell and everything it starts: class throughput, inherited on fork and kept
	# across execve() (flags 6). With INHERIT alone (flags 2, up to 2026-12-07) every
	# benchmark program dropped the hint when it was exec'd, so the "hints_all" rows measured
	# the hint checks with the static key on and unhinted tasks.
	"$ctl" set $$ 3 -1 0 6 >/dev/null || exit 1
	hot_path hints_all
	"$ctl" clear $$ >/dev/null
	# Cleared: the static key goes off about a second after the last hinted task is freed,
	# so this should cost what hints_off costs. Guest time skips idle periods (-icount).
	sleep 2
	hot_path hints_cleared
	echo 6000 >/sys/kernel/sched_hint/classes/throughput/slice_us
	echo 0 >/sys/kernel/sched_hint/enabled
	echo 1 >/sys/kernel/sched_hint/enabled
fi

# The latency class. Every load here runs on one CPU ($lat_cpu), as in the selftests: when two
# busy vCPUs take turns on TCG's one host thread, guest time runs on while a vCPU waits for
# its turn, and a task is charged for it (in one sampled run a 300 us request gained about
# 1.5 ms of runtime per period), so requests overran their slice and waited with negative lag
# whatever their class; that measured the emulator. The two-CPU wakebench case is kept,
# reported without a goal.
lat_cpu=3
# The CPU-bound rt-app threads every rt-app and cyclictest case runs next to.
rtapp_hogs="{ \"instance\": 2, \"loop\": -1, \"cpus\": [$lat_cpu], \"runtime\": 100000 }"
# wakebench: one request handler (300 us of work every 20 ms, then 2 ms) and its message
# thread next to two CPU-bound background threads; unhinted, then the handler latency-hinted.
lat() {	# lat TAG CLASS WORK_US [WORKERS BACKGROUND CPUS]
	local tag=$1 class=$2 work_us=$3 j
	j=$("$SH_WAKEBENCH" --message-threads 1 --workers "${4:-1}" --work-us "$work_us" \
		--interval-us 20000 --background "${5:-2}" --cpus "${6:-$lat_cpu}" --hint-workers "$class" \
		--duration-s "$lat_s" --warmup-s 1 --json 2>/dev/null | head -n1) ||
		{ echo "wakebench failed: $tag"; return 1; }
	emit "lat_p50_us.$tag" "$(jq -r .p50_us <<<"$j")"
	emit "lat_p99_us.$tag" "$(jq -r .p99_us <<<"$j")"
	emit "lat_p999_us.$tag" "$(jq -r .p999_us <<<"$j")"
	emit "lat_rps.$tag" "$(jq -r .rps <<<"$j")"
	emit "bg_iters_per_s.$tag" "$(jq -r .background_iters_per_s <<<"$j")"
}

# The same question asked by benchmarks not written here. rt-app: one request thread (300 us
# of work released every 20 ms on a fixed grid) next to two CPU-bound rt-app threads:
# wakeup latency, response time (release to end of the work) and missed periods of the
# requests, and the CPU-bound threads' loops per second. rt-app's work is a loop count
# calibrated once, on $lat_cpu before anything else runs there: a calibration next to busy
# vCPUs counts their turns too and gave work from 0.1x to 4x the asked 300 us between runs.
# cyclictest: one SCHED_OTHER thread waking every 1 ms next to the same two threads.
# "hinted": the request or cyclictest process and its threads in class latency (inherited,
# kept across the execve() of the benchmark).
rtapp_json() {	# rtapp_json DIR NAME SECONDS TASK_JSON
	cat >"$1/$2.json" <<JSON
{ "global": { "duration": $3, "calibration": $rtapp_calibration, "default_policy": "SCHED_OTHER",
              "logdir": "$1", "log_basename": "$2", "log_size": 8 },
  "tasks": { "$2": $4 } }
JSON
}
# Nanoseconds per rt-app work loop on $lat_cpu with the CPU to itself, from rt-app's own log.
rtapp_calibrate() {
	local dir=/tmp/rtapp-calibrate out ns
	rm -rf "$dir" && mkdir -p "$dir"
	rtapp_calibration="\"CPU$lat_cpu\"" rtapp_json "$dir" cal 1 \
		"{ \"loop\": 1, \"cpus\": [$lat_cpu], \"run\": 1000 }"
	out=$(rt-app "$dir/cal.json" 2>&1)
	ns=$(sed -n 's/.*pLoad = \([0-9]*\)ns.*/\1/p' <<<"$out" | head -n1)
	if ! [[ $ns =~ ^[1-9][0-9]*$ ]]; then
		printf 'rt-app calibration: no pLoad in its output:\n%s\n' "$out" >&2
		return 1
	fi
	echo "$ns"
}
start_hinted() {	# start_hinted CLASS CMD...: CMD in CLASS (0: none), inherited by its threads
	if (($1)); then
		(SH_CLASS=$1 bash -c '"$0" set $$ "$SH_CLASS" -1 0 6 >/dev/null && exec "${@}"' \
			"$ctl" "${@:2}")
	else
		"${@:2}"
	fi
}
lat_stats() { python3 "$SH_ROOT/ci/lat_stats.py" "$@" | while read -r k v; do emit "$k" "$v"; done; }
rtapp_lat() {	# rtapp_lat TAG CLASS
	local tag=$1 class=$2 d=$((lat_s * 2)) dir=/tmp/rtapp-$1 hog
	rm -rf "$dir" && mkdir -p "$dir"
	rtapp_json "$dir" hog "$d" "$rtapp_hogs"
	rtapp_json "$dir" req "$d" "{ \"instance\": 1, \"loop\": -1, \"cpus\": [$lat_cpu], \"run\": 300,
		\"timer\": { \"ref\": \"unique\", \"period\": 20000 } }"
	rt-app "$dir/hog.json" >"$dir/hog.out" 2>&1 &
	hog=$!
	start_hinted "$class" rt-app "$dir/req.json" >"$dir/req.out" 2>&1 ||
		{ echo "rt-app failed: $tag"; cat "$dir/req.out"; return 1; }
	wait "$hog"
	lat_stats rtapp "$tag" "$dir"/req-req-*.log
	lat_stats hog "$tag" "$d" "$dir"/hog-hog-*.log
}
cyclic_lat() {	# cyclic_lat TAG CLASS
	local tag=$1 class=$2 dir=/tmp/cyclic-$1 hog
	rm -rf "$dir" && mkdir -p "$dir"
	rtapp_json "$dir" hog "$lat_s" "$rtapp_hogs"
	rt-app "$dir/hog.json" >"$dir/hog.out" 2>&1 &
	hog=$!
	start_hinted "$class" cyclictest -q -m -D "$lat_s" -t 1 -a "$lat_cpu" -i 1000 --policy=other \
		-h 20000 >"$dir/cyclic.out" 2>&1 || { echo "cyclictest failed: $tag"; cat "$dir/cyclic.out"; return 1; }
	wait "$hog"
	lat_stats cyclic "$tag" "$dir/cyclic.out"
}

if has lat; then
	rtapp_calibration=$(rtapp_calibrate) || exit 1
	emit rtapp_ns_per_loop "$rtapp_calibration"
	lat unhinted none 300
	lat hinted latency 300
	lat unhinted_2ms none 2000
	lat hinted_2ms latency 2000
	# Two request handlers and four background threads on CPUs 2-3: the emulator's case.
	lat unhinted_2cpu none 300 2 4 2,3
	lat hinted_2cpu latency 300 2 4 2,3
	rtapp_lat unhinted 0
	rtapp_lat hinted 1
	cyclic_lat unhinted 0
	cyclic_lat hinted 1
fi

# NUMA placement: memory first touched on node 0, the task hinted to node 1.
numa() {
	local tag=$1 line
	shift
	line=$("$SH_SELFTESTS/sched_hint_numa_bench" "$@" "$numa_s" 128) || return 1
	echo "$line"
	emit "numa_cpu_share_node1.$tag" "$(sed -n 's/.*cpu_share_node1=\([0-9.]*\).*/\1/p' <<<"$line")"
	emit "numa_page_share_node1.$tag" "$(sed -n 's/.*page_share_node1=\([0-9.]*\).*/\1/p' <<<"$line")"
}
# NUMA balancing scans every second at the fastest by default and a guest run is a few
# seconds long; scan ten times as often (the same for both runs), so that the memory has
# time to follow the task.
nb=/sys/kernel/debug/sched/numa_balancing
if has numa; then
	saved=$(cat "$nb/scan_delay_ms" "$nb/scan_period_min_ms" "$nb/scan_period_max_ms") ||
		{ echo "no $nb"; exit 1; }
	echo 100 >"$nb/scan_delay_ms"
	echo 100 >"$nb/scan_period_min_ms"
	echo 1000 >"$nb/scan_period_max_ms"
	numa unhinted
	numa hinted --hint
	read -r -d '' d pmin pmax <<<"$saved"
	echo "$d" >"$nb/scan_delay_ms"
	echo "$pmin" >"$nb/scan_period_min_ms"
	echo "$pmax" >"$nb/scan_period_max_ms"
fi

# ioctl cost.
if has ioctl; then
	line=$("$SH_SELFTESTS/sched_hint_bench" 500 | tail -n1)
	for kv in $line; do emit "${kv%%=*}" "${kv#*=}"; done
fi
dmesg | grep -E 'BUG:|WARNING:|Oops' && exit 1
exit 0
