#!/bin/bash
# llama.cpp serving in the guest on the patched kernel (scripts/bench-serving.sh --lane
# guest): the real server of scripts/llm-server.sh, run inside the guest, and the tuner's
# ioctl backend with its rules and thread roles (no manual hints). Two parts:
#   placement  two servers started with their memory on node 0; the tuner spreads them one
#              per node. Where each one's running threads were sampled and where its pages
#              are, before and after.
#   bench      one server under a fixed request mix (ci/llm_load.py, in the guest too),
#              alone, beside noisy neighbours, and beside them with the tuner; rounds in
#              ABC CBA order on one server (a start costs minutes under TCG).
# Appends "name value" lines to $SH_OUT/bench.txt (bench lines as "name.case@round value").
# Inputs: SH_MODULE, SH_TUNER, SH_SERVING_PARTS (default placement,bench), SH_SERVING_ROUNDS,
# SH_SERVING_QUICK.
set -u
# shellcheck source=ci/guest-lib.sh
source "$SH_ROOT/ci/guest-lib.sh"
out=$SH_OUT/bench.txt
: >"$out"
parts=${SH_SERVING_PARTS:-placement,bench}
rounds=${SH_SERVING_ROUNDS:-5}
quick=${SH_SERVING_QUICK:-0}
work=/tmp/serving
mkdir -p "$work"
py=$SCHED_HINT_CACHE/venv/bin/python
emit() { echo "$1 $2" | tee -a "$out"; }
die() { echo "guest-serving: $*"; exit 1; }
has() { [[ ,$parts, == *,$1,* ]]; }

insmod "$SH_MODULE" || die "insmod failed"
[[ -x $py ]] || die "no venv python at $py"
# Everything started here goes when the job ends, whatever the end.
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	local d
	[[ -n ${tuner:-} ]] && kill "$tuner" 2>/dev/null
	# The tuner's and the clients' logs go back to the host with the job folder.
	cp "$work"/tuner.log "$work"/load.log "$SH_OUT"/ 2>/dev/null
	pkill -f "$work/hog" 2>/dev/null
	for d in "$work"/srv-*/; do "$SH_ROOT/scripts/llm-server.sh" stop --run-dir "$d" >/dev/null 2>&1; done
}
trap cleanup EXIT

# start_server NAME ARGS...: a server in $work/srv-NAME; prints its port.
start_server() {
	local name=$1
	shift
	"$SH_ROOT/scripts/llm-server.sh" start --run-dir "$work/srv-$name" --ctx 512 \
		--start-timeout-s 1800 "$@" 2>>"$work/srv-$name.log"
}
server_pid() { cat "$work/srv-$1/llm-server.pid"; }

# The tuner's config: the ioctl backend, the embedded rules (with the server's roles), no
# model (the bench measures what rules and roles do), a short interval.
cat >"$work/tuner.toml" <<CONF
[daemon]
interval_ms = 1000
backend = "ioctl"
on_exit = "clear"
state_file = "$work/tuner-state.json"
lock_path = "$work/tuner.lock"
[external]
enabled = false
[observe]
threads = true
CONF
"$SH_TUNER" config check "$work/tuner.toml" || die "bad tuner config"
start_tuner() {
	"$SH_TUNER" -c "$work/tuner.toml" run >>"$work/tuner.log" 2>&1 &
	tuner=$!
}
stop_tuner() {
	[[ -n ${tuner:-} ]] || return 0
	kill -TERM "$tuner" 2>/dev/null
	wait "$tuner" 2>/dev/null
	tuner=
}

# load URL TAG CLIENTS REQUESTS N_PREDICT: the request mix; "name.TAG value" lines on stdout.
load() {
	"$py" "$SH_ROOT/ci/llm_load.py" --url "$1" --tag "$2" --clients "$3" --requests "$4" \
		--n-predict "$5" --timeout-s 1800
}

n_predict=$((quick ? 8 : 16))

if has placement; then
	echo "== placement: two servers, both first started on node 0"
	ports=()
	for s in a b; do
		# Started on node 0's CPUs, so that the model (read into memory, --no-mmap) is first
		# touched there; then every thread may run anywhere again.
		ports+=("$(taskset -c "$(node_cpus 0)" "$SH_ROOT/scripts/llm-server.sh" start \
			--run-dir "$work/srv-$s" --ctx 512 --start-timeout-s 1800 --no-mmap \
			--threads 2 --threads-batch 2 2>>"$work/srv-$s.log")") || die "server $s did not start ($(tail -n 3 "$work/srv-$s.log"))"
		taskset -a -p -c 0-3 "$(server_pid "$s")" >/dev/null
	done
	pa=$(server_pid a) pb=$(server_pid b)
	echo "servers: a pid $pa port ${ports[0]}, b pid $pb port ${ports[1]}"
	# Requests to both at once, long enough to sample: the compute threads run.
	# busy N: starts N requests to each server (their pids in $loads); `wait "${loads[@]}"`,
	# not a bare wait, which would wait for the tuner too.
	busy() {
		loads=()
		load "http://127.0.0.1:${ports[0]}" a 1 "$1" "$n_predict" >"$work/busy-a.txt" 2>&1 &
		loads+=($!)
		load "http://127.0.0.1:${ports[1]}" b 1 "$1" "$n_predict" >"$work/busy-b.txt" 2>&1 &
		loads+=($!)
	}
	# both_samples: both servers' running threads sampled over the same 6 s.
	both_samples() {
		local p1 p2
		run_samples "$pa" 6 >"$work/samples-a" &
		p1=$!
		run_samples "$pb" 6 >"$work/samples-b" &
		p2=$!
		wait "$p1" "$p2"
	}
	busy 2
	sleep 2
	both_samples
	before_a=$(<"$work/samples-a") before_b=$(<"$work/samples-b")
	wait "${loads[@]}"
	echo "before the tuner: running-thread samples on node 0 / node 1: a $before_a, b $before_b;" \
		"private pages: a $(pages "$pa" private), b $(pages "$pb" private)"
	start_tuner
	# Hinted, each with a node, and the two nodes different.
	for ((i = 0; i < 300; i++)); do
		na=$(hint_field "$pa" node) nb=$(hint_field "$pb" node)
		[[ $na == [01] && $nb == [01] && $na != "$nb" ]] && break
		sleep 1
	done
	[[ $na == [01] && $nb == [01] && $na != "$nb" ]] ||
		{ sed -n '1,60p' "$work/tuner.log"; die "the tuner did not spread the servers (nodes '$na' '$nb')"; }
	echo "tuner: server a on node $na, b on node $nb (/proc/PID/sched hint.node) after ${i} s"
	"$SH_TUNER" -c "$work/tuner.toml" explain "$pa" 2>&1 | sed 's/^/explain a: /' | head -n 40
	# Memory moves in the tuner's worker; give it time to finish (pages stop changing).
	prev=
	for ((i = 0; i < 30; i++)); do
		cur="$(pages "$pa" private) $(pages "$pb" private)"
		[[ $cur == "$prev" ]] && break
		prev=$cur
		sleep 1
	done
	echo "private pages on node 0 / node 1 after ${i} s: a $(pages "$pa" private), b $(pages "$pb" private)"
	busy 2
	sleep 2
	both_samples
	after_a=$(<"$work/samples-a") after_b=$(<"$work/samples-b")
	wait "${loads[@]}"
	for s in a b; do
		pid=$pa node=$na before=$before_a after=$after_a
		[[ $s == b ]] && pid=$pb node=$nb before=$before_b after=$after_b
		emit "place_node.$s" "$node"
		emit "place_run_share_before.$s" "$(share "$node" "$before")"
		emit "place_run_share.$s" "$(share "$node" "$after")"
		emit "place_run_samples.$s" "$(awk -v p="$after" 'BEGIN { split(p, c, " "); print c[1] + c[2] }')"
		emit "place_private_pages_share.$s" "$(share "$node" "$(pages "$pid" private)")"
		emit "place_all_pages_share.$s" "$(share "$node" "$(pages "$pid" all)")"
		emit "place_private_mib.$s" "$(pages "$pid" private | awk '{ printf "%d\n", ($1 + $2) * 4 / 1024 }')"
	done
	stop_tuner
	for s in a b; do "$SH_ROOT/scripts/llm-server.sh" stop --run-dir "$work/srv-$s" >/dev/null 2>&1; done
fi

if has bench; then
	echo "== bench: one server, alone / noisy / tuned, $rounds rounds"
	port=$(start_server bench --threads 4 --threads-batch 4 --parallel 2) ||
		die "server did not start ($(tail -n 3 "$work/srv-bench.log"))"
	spid=$(server_pid bench)
	url=http://127.0.0.1:$port
	# The build-like job: C files that make -B rebuilds in a loop (smaller than the host's).
	bash "$SH_ROOT/ci/build-job.sh" "$work/build" 8 300
	cp /bin/bash "$work/hog"
	neighbours() {
		local i
		for i in 0 1 2 3; do "$work/hog" -c 'while :; do :; done' & done
		"$work/hog" -c "exec \"$py\" -c 'import numpy as np
a = np.ones(8 << 20); b = np.empty_like(a)
while True: np.copyto(b, a)'" &
		"$work/hog" -c "while :; do make -s -B -j4 -C $work/build >/dev/null 2>&1; done" &
	}
	stop_neighbours() {
		pkill -f "$work/hog" 2>/dev/null
		pkill -f "np.copyto" 2>/dev/null
		pkill -x make 2>/dev/null
		sleep 1
	}
	load "$url" warmup 1 1 4 >/dev/null 2>&1
	for ((r = 1; r <= rounds; r++)); do
		cases=(alone noisy tuned)
		((r % 2)) || cases=(tuned noisy alone)
		for c in "${cases[@]}"; do
			[[ $c == alone ]] || neighbours
			hinted=0
			if [[ $c == tuned ]]; then
				start_tuner
				for ((i = 0; i < 120; i++)); do
					[[ $(hint_field "$spid" class) == throughput ]] && { hinted=1; break; }
					sleep 1
				done
				emit "serve_tuner_hinted.$c@$r" "$hinted"
				((hinted)) || echo "round $r: the server (pid $spid) was not hinted throughput within 120 s:" \
					"$(hint_field "$spid" class); tuner: $(tail -n 5 "$work/tuner.log")"
			fi
			[[ $c == alone ]] || sleep 3
			load "$url" "$c" 2 "$((quick ? 1 : 2))" "$n_predict" >"$work/load-$c-$r.txt" 2>>"$work/load.log" ||
				echo "round $r, $c: requests failed"
			while read -r name value; do emit "$name@$r" "$value"; done <"$work/load-$c-$r.txt"
			stop_tuner
			[[ $c == alone ]] || stop_neighbours
			echo "round $r, $c: $(grep -E '^serve_(tokens_per_s|ttft_p99_ms)' "$work/load-$c-$r.txt" | tr '\n' ' ')"
		done
	done
fi
exit 0
