#!/bin/bash
# The guest half of `make demo` (see scripts/demo.sh): a mixed workload, the tuner with the
# local LLM (on the host, reached through QEMU's user-mode network), each hint with its
# provenance, and a before/after table of wakeup latency and NUMA placement.
# Inputs: SH_MODULE, SH_SELFTESTS, SH_TUNER, SH_WAKEBENCH, SH_DEMO_CONFIG.
set -u
demo=/tmp/sched_hint-demo
mkdir -p "$demo"
# The tuner's own output and logs go back to the host with the job folder, whatever the end.
trap 'cp "$demo"/once.txt "$demo"/once.log "$demo"/run.log "$SH_OUT"/ 2>/dev/null' EXIT
say() { printf '\n== %s\n' "$*"; }

insmod "$SH_MODULE" || exit 1
chmod 0666 /dev/sched_hint

# The mix, under the names the tuner will see.
cp "$SH_SELFTESTS/sched_hint_numa_bench" "$demo/llama-server"
cp "$SH_WAKEBENCH" "$demo/frame-render"
cp /usr/bin/yes "$demo/updatedb"
cp /usr/bin/yes "$demo/ffmpeg"
# A small periodic agent that no rule and no heuristic covers: the model's case. Its few ms
# of work per wakeup keep it off the idle heuristic (which a bare `sleep 0.2` loop, slowed
# down in a busy guest, once fell under), and ten wakeups a second with bursts that long
# are not the short bursts of an interactive task.
cp /bin/bash "$demo/metrics-agent"
say "starting the mix"
"$demo/llama-server" --first-touch 1 900 192 >"$demo/llama.out" 2>&1 &
llama=$!
"$demo/updatedb" >/dev/null 2>&1 &
"$demo/updatedb" >/dev/null 2>&1 &
"$demo/ffmpeg" >/dev/null 2>&1 &
"$demo/metrics-agent" -c 'while :; do sleep 0.1; for ((i = 0; i < 2000; i++)); do :; done; done' \
	>/dev/null 2>&1 &
# A list of pids: the kill lines below split it on purpose.
mix=$(jobs -p)
sleep 2
node1_cpus=$(cat /sys/devices/system/node/node1/cpulist)
echo "llama-server pid $llama: 192 MiB first touched on node 1 (CPUs $node1_cpus); 2 x updatedb, 1 x ffmpeg busy-looping; metrics-agent waking 10 times a second for a few ms of work"

# Where llama-server's main thread ran, sampled every 0.1 s for N seconds: "samples on
# node 0, samples on node 1".
placement() {
	local n0=0 n1=0 cpu
	for _ in $(seq $(($1 * 10))); do
		cpu=$(awk '{print $39}' "/proc/$llama/stat" 2>/dev/null) || break
		if [[ -e /sys/devices/system/cpu/cpu$cpu/node1 ]]; then
			n1=$((n1 + 1))
		else
			n0=$((n0 + 1))
		fi
		sleep 0.1
	done
	echo "$n0 $n1"
}

# llama-server's resident pages per node, from numa_maps: "pages on node 0, on node 1".
pages() {
	awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^N[01]=/) { split($i, kv, "="); p[substr(kv[1], 2)] += kv[2] } }
		END { printf "%d %d\n", p[0], p[1] }' "/proc/$llama/numa_maps"
}

# share NODE "A0 A1": node NODE's share of a pair of per-node counts, in percent.
share() {
	awk -v n="$1" -v pair="$2" 'BEGIN { split(pair, c, " "); t = c[1] + c[2]
		printf "%.0f%%", t ? 100 * c[n + 1] / t : 0 }'
}

# hint_field PID NAME: the hint's NAME (class, source...) from PID's /proc sched read-back.
hint_field() {
	awk -v k="hint.$2" '$1 == k { print $3 }' "/proc/$1/sched" 2>/dev/null
}

# unhinted_threads PID N: the threads of PID without a hint, or "starting" while it has
# fewer than N; prints nothing once all N carry one.
unhinted_threads() {
	local tids=(/proc/"$1"/task/*) t c out=
	((${#tids[@]} >= $2)) || { echo starting; return; }
	for t in "${tids[@]}"; do
		c=$(hint_field "${t##*/}" class)
		[[ -z $c || $c == none ]] && out+=" ${t##*/}"
	done
	echo "${out# }"
}

# frame-render: a bursty latency-sensitive loop (300 us of work every 20 ms per worker).
# Each window is a process of its own: where its threads land moves its latency in this
# guest more than anything else, so each side of the table is the median of several. A
# window of 4 s has about 400 wakeups: enough for p50 and p99, not for p99.9. Four busy
# vCPUs on one host thread make each busy guest second cost several on the host.
windows=3
# Arguments, not a function: started in the background, frame-render itself must be `$!`.
frame=(--message-threads 1 --workers 2 --work-us 300 --interval-us 20000 --duration-s 4
	--warmup-s 1 --json)

# check_window FILE: FILE holds a wakebench report with the latency percentiles.
check_window() {
	jq -e '[.p50_us, .p99_us] | all(type == "number")' "$1" >/dev/null 2>&1 && return
	echo "frame-render window $1 gave no latency report:"
	cat "$1"
	# shellcheck disable=SC2086
	kill $mix ${tuner:-} 2>/dev/null
	exit 1
}

say "before: no hints ($windows windows of 4 s, each a new frame-render)"
for i in $(seq "$windows"); do
	"$demo/frame-render" "${frame[@]}" >"$demo/before.$i.json" 2>/dev/null
	check_window "$demo/before.$i.json"
done
before_place=$(placement 6)
before_pages=$(pages)

say "the tuner, one pass, with the local LLM for what the rules leave open"
"$demo/frame-render" --message-threads 1 --workers 2 --work-us 300 --interval-us 20000 \
	--duration-s 600 --warmup-s 0 >/dev/null 2>&1 &
probe=$!
sleep 2
"$SH_TUNER" once --all -c "$SH_DEMO_CONFIG" >"$demo/once.txt" 2>"$demo/once.log"
rc=$?
# What the model was asked and answered, and any trouble on the way.
grep -iE 'warn|error|llm classifier:' "$demo/once.log" | head -5
grep -q 'llm classifier:' "$demo/once.log" ||
	echo "(the model was not asked: rules and heuristics covered every process this time)"
((rc == 0)) || { echo "tuner once failed ($rc)"; cat "$demo/once.log"; exit 1; }
kill "$probe" 2>/dev/null
# Each hint with its provenance: the class, the node, who decided and by which rule or model.
grep -E '^PID|llama-server|frame-render|updatedb|ffmpeg|metrics-agent|processes:' "$demo/once.txt"

say "after: the tuner daemon keeps the hints (the model's answers come from its cache)"
"$SH_TUNER" run -c "$SH_DEMO_CONFIG" >"$demo/run.log" 2>&1 &
tuner=$!
# Each window is a new frame-render, which the daemon has to find and classify by its
# behaviour: its measured window opens only once every one of its threads carries a hint.
frame_threads=4	# main, message thread, 2 workers
for i in $(seq "$windows"); do
	"$demo/frame-render" "${frame[@]}" --start-on-sigusr1 >"$demo/after.$i.json" 2>/dev/null &
	fr=$!
	started=$(date +%s)
	unhinted=
	for _ in $(seq 600); do
		unhinted=$(unhinted_threads "$fr" "$frame_threads")
		[[ -z $unhinted ]] && break
		sleep 0.1
	done
	if [[ -n $unhinted ]]; then
		echo "the daemon did not hint frame-render (pid $fr) within 60 s; unhinted: $unhinted"
		sed -n '1,40p' "$demo/run.log"
		# shellcheck disable=SC2086
		kill "$fr" "$tuner" $mix 2>/dev/null
		exit 1
	fi
	echo "frame-render pid $fr: every thread hinted $(($(date +%s) - started)) s after it started;" \
		"/proc/$fr/sched: class $(hint_field "$fr" class), source $(hint_field "$fr" source) (2 rule, 3 heuristic, 4 model)"
	kill -USR1 "$fr"
	wait "$fr"
	check_window "$demo/after.$i.json"
done
after_place=$(placement 6)
after_pages=$(pages)
"$SH_SELFTESTS/sched_hint_ctl" get "$llama" | sed 's/^/llama-server hint: /'
# The tuner picks the node that holds most of the process's memory; NUMA balancing may have
# moved some of it since the first touch, so compare on the node it picked.
node=$(hint_field "$llama" node)
# shellcheck disable=SC2086
[[ $node == [01] ]] || { echo "llama-server has no node hint (node '$node')"; kill "$tuner" $mix 2>/dev/null; exit 1; }
kill -TERM "$tuner"
wait "$tuner" 2>/dev/null

# median KEY SIDE: the median over SIDE's (before, after) windows of KEY, in whole us.
median() {
	jq -s --arg k "$1" 'map(.[$k]) | sort | .[(length - 1) / 2 | floor] | floor' "$demo/$2".*.json
}
# windows_of KEY SIDE: KEY of each of SIDE's windows, in whole us, in the order they ran.
windows_of() {
	jq -s -r --arg k "$1" 'map(.[$k] | floor | tostring) | join(" ")' "$demo/$2".*.json
}

say "before / after"
printf '%-36s %12s %12s\n' "" before after
for k in p50_us p99_us; do
	printf '%-36s %12s %12s\n' "frame-render wakeup latency $k" "$(median $k before)" "$(median $k after)"
done
printf '%-36s %12s %12s\n' "llama-server samples on node $node (hint)" \
	"$(share "$node" "$before_place")" "$(share "$node" "$after_place")"
printf '%-36s %12s %12s\n' "llama-server pages on node $node" \
	"$(share "$node" "$before_pages")" "$(share "$node" "$after_pages")"
echo "hints set through the device: $(cat /sys/kernel/sched_hint/stats/set)"
echo "frame-render latency: the median of $windows windows; each window, in us:"
for k in p50_us p99_us; do
	printf '  %-8s before %-24s after %s\n' "$k" "$(windows_of $k before)" "$(windows_of $k after)"
done
# The mix shares this script's output; it must not outlive it.
# shellcheck disable=SC2086
kill $mix 2>/dev/null
exit 0
