#!/bin/bash
# What the guest jobs that run llama.cpp servers share (ci/guest-serving.sh,
# ci/guest-demo.sh): where a process's work ran and where its memory is. Sourced.

# The guest's nodes: CPU lists.
node_cpus() { cat "/sys/devices/system/node/node$1/cpulist"; }

# hint_field PID NAME: NAME (class, node, source) of PID's hint from /proc/PID/sched.
hint_field() { awk -v k="hint.$2" '$1 == k { print $3 }' "/proc/$1/sched" 2>/dev/null; }

# run_samples PID SECONDS: "on node 0, on node 1" over samples every 0.2 s of the threads
# of PID that were running (state R): where its work ran, not where its idle threads sleep.
# One awk a sample reads every thread's stat: forks are slow in an emulated guest.
run_samples() {
	local pid=$1 i node1 counts n0=0 n1=0
	node1=$(cat /sys/devices/system/node/node1/cpulist)
	for ((i = 0; i < $2 * 5; i++)); do
		counts=$(awk -v list="$node1" '
			BEGIN { n = split(list, r, ","); for (i = 1; i <= n; i++) {
				m = split(r[i], ab, "-"); for (c = ab[1]; c <= ab[m]; c++) on1[c] = 1 } }
			{ sub(/^.*\) /, ""); split($0, f, " "); if (f[1] == "R") { if (f[37] in on1) b++; else a++ } }
			END { printf "%d %d\n", a, b }' /proc/"$pid"/task/*/stat 2>/dev/null)
		n0=$((n0 + ${counts% *})) n1=$((n1 + ${counts#* }))
		sleep 0.2
	done
	echo "$n0 $n1"
}

# pages PID KIND: "pages on node 0, on node 1" of PID from numa_maps; KIND "all" counts
# every mapping, "private" only anonymous memory (the model read with --no-mmap, the KV
# cache, the heaps): the shared libraries both servers map are one set of pages and can be
# local to one of them only.
pages() {
	awk -v kind="$2" '
		kind == "private" && !/ anon=/ { next }
		{ for (i = 1; i <= NF; i++) if ($i ~ /^N[01]=/) { split($i, kv, "="); p[substr(kv[1], 2)] += kv[2] } }
		END { printf "%d %d\n", p[0], p[1] }' "/proc/$1/numa_maps"
}

# share NODE "A0 A1": node NODE's share of a pair of per-node counts (0..1, 4 places).
share() {
	awk -v n="$1" -v pair="$2" 'BEGIN { split(pair, c, " "); t = c[1] + c[2]
		printf "%.4f\n", t ? c[n + 1] / t : 0 }'
}
