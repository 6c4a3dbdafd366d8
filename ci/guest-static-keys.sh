#!/bin/bash
# Guest job of scripts/qemu-check.sh: toggle an upstream static key that sits on every
# enqueue and dequeue (sched_schedstats) while hackbench and a pipe ping-pong keep all vCPUs
# scheduling. Each toggle is a text_poke batch: int3 in, new bytes, old first byte out, with
# an IPI to every CPU in between. Where QEMU gets this wrong, the guest panics with
# "Oops: int3" and the job never prints its verdict.
set -u
f=/proc/sys/kernel/sched_schedstats
[[ -w $f ]] || { echo "qemu-check: no $f (needs CONFIG_SCHEDSTATS and CONFIG_SYSCTL)"; exit 2; }
dur_s=${QEMU_CHECK_S:-120}
end=$((SECONDS + dur_s))
load() { while ((SECONDS < end)); do "$@" >/dev/null 2>&1; done; }
load hackbench -g 4 -l 200 -s 100 &
load perf bench sched pipe -l 20000 &
n=0
while ((SECONDS < end)); do
	echo 1 >"$f"
	echo 0 >"$f"
	n=$((n + 2))
	((n % 20)) || echo "qemu-check: $n toggles after $SECONDS s" >/dev/console
done
wait
echo "qemu-check: survived $n toggles of sched_schedstats in $dur_s s"
((n > 0))
