#!/bin/bash
# The guest half of `make demo` (see scripts/demo.sh): two real llama.cpp servers beside a
# mixed workload, the tuner with the local LLM (on the host, reached through QEMU's
# user-mode network) for what its rules leave open, each hint with its provenance, and a
# before/after table: the servers' request latency and tokens/s, where their threads ran
# and where their memory is.
# Inputs: SH_MODULE, SH_TUNER, SH_DEMO_CONFIG.
set -u
# shellcheck source=ci/guest-lib.sh
source "$SH_ROOT/ci/guest-lib.sh"
demo=/tmp/sched_hint-demo
mkdir -p "$demo"
py=$SCHED_HINT_CACHE/venv/bin/python
say() { printf '\n== %s\n' "$*"; }
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	local d
	# The tuner's own output and logs go back to the host with the job folder.
	cp "$demo"/once.txt "$demo"/once.log "$demo"/run.log "$SH_OUT"/ 2>/dev/null
	[[ -n ${tuner:-} ]] && kill "$tuner" 2>/dev/null
	# shellcheck disable=SC2086 # a list of pids
	[[ -n ${mix:-} ]] && kill $mix 2>/dev/null
	for d in "$demo"/srv-*/; do "$SH_ROOT/scripts/llm-server.sh" stop --run-dir "$d" >/dev/null 2>&1; done
}
trap cleanup EXIT
die() { echo "demo: $*"; exit 1; }

insmod "$SH_MODULE" || exit 1
chmod 0666 /dev/sched_hint
cfg=$SH_DEMO_CONFIG
"$SH_TUNER" config check "$cfg" >/dev/null || die "bad tuner config"

say "starting two llama.cpp servers (SmolLM2-135M, 2 compute threads each) and the mix"
# As a naive launcher would: both started on node 0's CPUs, so both models (read into
# memory, --no-mmap) are first touched there; then their threads may run anywhere.
declare -A port pid
for s in a b; do
	started=$(date +%s)
	port[$s]=$(taskset -c "$(node_cpus 0)" "$SH_ROOT/scripts/llm-server.sh" start \
		--run-dir "$demo/srv-$s" --ctx 512 --start-timeout-s 1200 --no-mmap \
		--threads 2 --threads-batch 2 2>>"$demo/srv-$s.log") ||
		die "server $s did not start: $(tail -n 3 "$demo/srv-$s.log")"
	pid[$s]=$(cat "$demo/srv-$s/llm-server.pid")
	taskset -a -p -c 0-3 "${pid[$s]}" >/dev/null
	echo "server $s: pid ${pid[$s]}, port ${port[$s]}, up in $(($(date +%s) - started)) s"
done
pa=${pid[a]} pb=${pid[b]}
cp /usr/bin/yes "$demo/updatedb"
cp /usr/bin/yes "$demo/ffmpeg"
# A small periodic agent that no rule and no heuristic covers: the model's case. Its few ms
# of work per wakeup keep it off the idle heuristic, and ten wakeups a second with bursts
# that long are not the short bursts of an interactive task.
cp /bin/bash "$demo/metrics-agent"
"$demo/updatedb" >/dev/null 2>&1 &
"$demo/updatedb" >/dev/null 2>&1 &
"$demo/ffmpeg" >/dev/null 2>&1 &
"$demo/metrics-agent" -c 'while :; do sleep 0.1; for ((i = 0; i < 2000; i++)); do :; done; done' \
	>/dev/null 2>&1 &
# A list of pids: the kill lines split it on purpose.
mix=$(jobs -p)
echo "2 x updatedb and 1 x ffmpeg busy-looping, metrics-agent waking 10 times a second"

# measure SIDE: both servers under the same request mix at once (2 requests of 8 tokens
# each, one client), while their running threads are sampled; then their private pages.
measure() {
	local s loads=()
	for s in a b; do
		"$py" "$SH_ROOT/ci/llm_load.py" --url "http://127.0.0.1:${port[$s]}" --tag "$s" \
			--clients 1 --requests 2 --n-predict 8 --timeout-s 1200 \
			>"$demo/$1.$s.txt" 2>>"$demo/load.log" &
		loads+=($!)
	done
	sleep 2
	# Both servers' running threads over the same 5 s.
	for s in a b; do
		run_samples "${pid[$s]}" 5 >"$demo/$1.run.$s" &
		loads+=($!)
	done
	wait "${loads[@]}"
	for s in a b; do
		grep -q '^serve_tokens_per_s' "$demo/$1.$s.txt" ||
			die "server $s gave no figures ($1): $(tail -n 3 "$demo/load.log")"
		pages "${pid[$s]}" private >"$demo/$1.pages.$s"
	done
}

say "before: no hints"
measure before

say "the tuner, one pass, with the local LLM for what the rules leave open"
"$SH_TUNER" once --all -c "$cfg" >"$demo/once.txt" 2>"$demo/once.log"
rc=$?
# What the model was asked and answered, and any trouble on the way.
grep -iE 'warn|error|llm classifier:' "$demo/once.log" | head -5
if grep -q 'external classifier failed' "$demo/once.log"; then
	echo "(the model did not answer in time: what it was asked about stays open for the daemon)"
elif ! grep -q 'llm classifier:' "$demo/once.log"; then
	echo "(the model was not asked: rules and heuristics covered every process this time)"
fi
((rc == 0)) || { cat "$demo/once.log"; die "tuner once failed ($rc)"; }
# Each hint with its provenance: the class, the node, who decided and by which rule or model.
grep -E "^PID|^ *($pa|$pb) |updatedb|ffmpeg|metrics-agent|processes:" "$demo/once.txt"

say "after: the tuner daemon keeps the hints and spreads the servers one per node"
"$SH_TUNER" run -c "$cfg" >"$demo/run.log" 2>&1 &
tuner=$!
started=$(date +%s)
for ((i = 0; i < 600; i++)); do
	na=$(hint_field "$pa" node) nb=$(hint_field "$pb" node)
	[[ $na == [01] && $nb == [01] && $na != "$nb" ]] && break
	sleep 0.5
done
[[ $na == [01] && $nb == [01] && $na != "$nb" ]] ||
	{ sed -n '1,40p' "$demo/run.log"; die "the daemon did not spread the servers (nodes '$na' '$nb')"; }
echo "servers spread $(($(date +%s) - started)) s after the daemon started: a on node $na, b on node $nb;" \
	"/proc/PID/sched: class $(hint_field "$pa" class), source $(hint_field "$pa" source) (2 rule, 3 heuristic, 4 model)"
# The daemon moves their memory in its worker; wait until the pages stop moving.
prev=
for ((i = 0; i < 60; i++)); do
	cur="$(pages "$pa" private) $(pages "$pb" private)"
	[[ $cur == "$prev" ]] && break
	prev=$cur
	sleep 2
done
measure after
"$SH_TUNER" -c "$cfg" explain "$pa" 2>/dev/null | grep -iE 'node|role|class|rule' | head -n 12 | sed 's/^/explain server a: /'
kill -TERM "$tuner"
wait "$tuner" 2>/dev/null
tuner=

# fig SIDE SERVER NAME: NAME from that side's llm_load figures, rounded.
fig() { awk -v k="$3.$2" '$1 == k { printf "%.1f", $2 }' "$demo/$1.$2.txt"; }
say "before / after (the same 2 requests x 8 tokens to each server, the mix busy throughout)"
printf '%-44s %12s %12s\n' "" before after
for s in a b; do
	node=$na
	[[ $s == b ]] && node=$nb
	printf '%-44s %12s %12s\n' "server $s tokens/s" "$(fig before "$s" serve_tokens_per_s)" "$(fig after "$s" serve_tokens_per_s)"
	printf '%-44s %12s %12s\n' "server $s time to first token p99, ms" "$(fig before "$s" serve_ttft_p99_ms)" "$(fig after "$s" serve_ttft_p99_ms)"
	printf '%-44s %12s %12s\n' "server $s request latency p99, ms" "$(fig before "$s" serve_latency_p99_ms)" "$(fig after "$s" serve_latency_p99_ms)"
	printf '%-44s %12s %12s\n' "server $s running threads on node $node (hint)" \
		"$(share "$node" "$(cat "$demo/before.run.$s")")" "$(share "$node" "$(cat "$demo/after.run.$s")")"
	printf '%-44s %12s %12s\n' "server $s private pages on node $node" \
		"$(share "$node" "$(cat "$demo/before.pages.$s")")" "$(share "$node" "$(cat "$demo/after.pages.$s")")"
done
echo "hints set through the device: $(cat /sys/kernel/sched_hint/stats/set)"
exit 0
