#!/bin/bash
# Run for README (the demo section): frame-render-like wakebench next to the demo's four
# busy processes, with and without hints set by hand, no tuner.
set -u
insmod "$SH_MODULE" || exit 1
ctl=$SH_SELFTESTS/sched_hint_ctl
d=/tmp/exp-guest; mkdir -p $d
cp /usr/bin/yes $d/hog
$d/hog >/dev/null 2>&1 &
$d/hog >/dev/null 2>&1 &
$d/hog >/dev/null 2>&1 &
"$SH_SELFTESTS/sched_hint_numa_bench" --first-touch 1 900 192 >/dev/null 2>&1 &
hogs=($(jobs -p))
sleep 1
# run TAG "C1 C2 C3 C4" FRAMECLASS: hog classes (0 clears), the workers' class.
run() {
	local tag=$1 i=0 c j
	for c in $2; do
		if [[ $c == 0 ]]; then "$ctl" clear "${hogs[$i]}" >/dev/null
		else "$ctl" set "${hogs[$i]}" "$c" -1 0 2 >/dev/null || echo "set failed"; fi
		i=$((i + 1))
	done
	j=$("$SH_WAKEBENCH" --message-threads 1 --workers 2 --work-us 300 --interval-us 20000 \
		--hint-workers "$3" --duration-s 4 --warmup-s 1 --json 2>/dev/null | head -n1)
	echo "$tag p50=$(jq -r '.p50_us|floor' <<<"$j") p99=$(jq -r '.p99_us|floor' <<<"$j")"
}
for r in 1 2; do
	run none "0 0 0 0" none
	run demo-hogs "5 5 4 3" none
	run frame-int "0 0 0 0" interactive
	run demo-all "5 5 4 3" interactive
	run frame-lat "0 0 0 0" latency
	run hogs-bg "5 5 5 5" none
done
echo EXP-DONE
