#!/bin/bash
# Run for README (the demo section): the interactive class's parameters, frame-render-like
# wakebench next to four unhinted busy processes.
set -u
insmod "$SH_MODULE" || exit 1
d=/tmp/exp-guest; mkdir -p $d
cp /usr/bin/yes $d/hog
for i in 1 2 3 4; do $d/hog >/dev/null 2>&1 & done
sleep 1
c=/sys/kernel/sched_hint/classes/interactive
# run TAG SLICE_US WAKEUP_PREEMPT CLASS
run() {
	echo "$2" >$c/slice_us; echo "$3" >$c/wakeup_preempt
	j=$("$SH_WAKEBENCH" --message-threads 1 --workers 2 --work-us 300 --interval-us 20000 \
		--hint-workers "$4" --duration-s 4 --warmup-s 1 --json 2>/dev/null | head -n1)
	echo "$1 p50=$(jq -r '.p50_us|floor' <<<"$j") p99=$(jq -r '.p99_us|floor' <<<"$j")"
}
cat $c/slice_us $c/wakeup_preempt
for r in 1 2; do
	run none 1500 1 none
	run int-1500-default 1500 1 interactive
	run int-base-default 0 1 interactive
	run int-1500-always 1500 2 interactive
done
echo EXP-DONE
