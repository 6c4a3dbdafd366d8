#!/usr/bin/env bash
# The llm-serving phase of `make bench`. Host lane (this host's stock kernel): the llama.cpp
# server of scripts/llm-server.sh serves a fixed request mix (ci/llm_load.py) in three cases,
#   alone   nothing else started by this script,
#   noisy   with neighbours: a CPU hog on every CPU, a memory-bandwidth hog, a build (make -j),
#   tuned   the same neighbours and the tuner (`tuner run --backend stock`, rules only),
# each round with a fresh server, the cases in ABC CBA order. Rows go to OUT/raw.csv as
# "round,serving,NAME.CASE,value"; scripts/bench_report.py turns them into the goals.
# Guest lane (--lane guest): the same cases inside the two-node guest on the patched kernel,
# server, clients and neighbours all in the guest, the tuner's ioctl backend; and two servers
# spread one per node (ci/guest-serving.sh). Rows: "round,serving-guest,NAME.CASE,value".
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
	cat <<USAGE
usage: scripts/bench-serving.sh --out DIR [--lane host|guest] [--rounds N] [--quick]
                                [--tuner PATH] [--clients K] [--requests R] [--n-predict N]
                                [--threads N] [--parallel N] [--guest-parts LIST]
                                [--tuner-config FILE]
  --out DIR      results folder: rows are added to DIR/raw.csv, logs go to DIR/serving/
                 (guest lane: DIR/vm/serving/)
  --lane L       host (default) or guest: the patched kernel in QEMU (scripts/kernel.sh,
                 module.sh must have built it), guest time counted in instructions
                 (-icount), short requests (TCG runs the model some hundred times slower);
                 --clients, --requests, --n-predict, --threads and --parallel are the
                 host lane's
  --guest-parts  placement,bench (default both): the two-server spread, the request mix
  --rounds N     rounds of the three cases (default 5; the report takes medians and a
                 ratio per round)
  --quick        a smoke test of the harness: 2 clients x 2 requests x 8 tokens
                 (default 4 clients x 8 requests x 32 tokens)
  --tuner PATH   the tuner binary (default: target/release/tuner of this tree)
  --threads N    the server's compute threads, for generation and for prompts (default:
                 the number of CPUs, as llama.cpp's own default)
  --parallel N   the server's slots (default 2)
  --tuner-config FILE
                 host lane: TOML added to the tuner's config (an experiment with other
                 settings, e.g. [stock.batch] policy = "idle"); the rows are then not of
                 the defaults, so keep such runs apart
  The tuner runs with its default settings and the embedded rules (which match this server
  and give its threads roles), through a config file written to DIR/serving/tuner.toml
  (its lock and state file live there too).
  That file excludes the task names of the processes that ran before the bench and are not
  of the kinds it starts (python, bash, sh, make, cc, cc1, as, ld, collect2): on a shared
  host the tuner leaves most of the other users' work alone, but not their processes of
  those kinds.
  The scheduling settings of the server's busiest thread (as the measurement starts) and of
  a CPU hog (as it ends) are recorded: serve_sched_* and serve_hog_* (policy, nice, slice).
USAGE
}

out= rounds=5 quick=0 tuner=$SH_ROOT/target/release/tuner lane=host guest_parts=placement,bench
clients=4 requests=8 n_predict=32 threads=$(nproc) parallel=2 tuner_config=
while (($#)); do
	case $1 in
	--out) out=$2; shift ;;
	--lane) lane=$2; shift ;;
	--guest-parts) guest_parts=$2; shift ;;
	--rounds) rounds=$2; shift ;;
	--quick) quick=1 ;;
	--tuner) tuner=$2; shift ;;
	--clients) clients=$2; shift ;;
	--requests) requests=$2; shift ;;
	--n-predict) n_predict=$2; shift ;;
	--threads) threads=$2; shift ;;
	--parallel) parallel=$2; shift ;;
	--tuner-config) tuner_config=$2; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
[[ -n $out ]] || { usage >&2; exit 2; }
[[ $lane == host || $lane == guest ]] || sh_die "--lane takes host or guest, got '$lane'"
[[ $guest_parts =~ ^(placement|bench)(,(placement|bench))?$ ]] ||
	sh_die "--guest-parts takes placement, bench or both, got '$guest_parts'"
for v in "$rounds" "$clients" "$requests" "$n_predict" "$threads" "$parallel"; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || sh_die "counts must be numbers >= 1, got '$v'"
done
((quick)) && clients=2 requests=2 n_predict=8
py=$SH_VENV/bin/python
[[ -x $py ]] || sh_die "no venv python at $py: run 'make setup'"
[[ -x $tuner ]] || sh_die "no tuner at $tuner: cargo build --release -p tuner"

if [[ $lane == guest ]]; then
	kdir=$("$SH_ROOT/scripts/kernel.sh" --print-dir)
	[[ -f $kdir/arch/x86/boot/bzImage ]] || sh_die "no patched kernel in $kdir: run scripts/kernel.sh"
	mkdir -p "$out/vm"
	[[ -s $out/raw.csv ]] || echo "round,kernel,name,value" >"$out/raw.csv"
	sh_log "serving, guest lane: $guest_parts, $rounds rounds (log: $out/vm/serving/job.log)"
	rc=0
	"$SH_ROOT/scripts/vm-run.sh" --kernel "$kdir" --job "$SH_ROOT/ci/guest-serving.sh" --icount \
		--out "$out/vm/serving" --timeout 5400 --mem-mib 2048 \
		--env "SH_MODULE=$("$SH_ROOT/scripts/module.sh" --print-ko)" --env "SH_TUNER=$tuner" \
		--env "SH_SERVING_PARTS=$guest_parts" --env "SH_SERVING_ROUNDS=$rounds" \
		--env "SH_SERVING_QUICK=$quick" \
		>/dev/null || rc=$?
	# "name.case@round value" and the placement's "name.server value" (round 1).
	while read -r name value; do
		r=1
		[[ $name == *@* ]] && r=${name##*@} name=${name%@*}
		echo "$r,serving-guest,$name,$value" >>"$out/raw.csv"
	done < <(cat "$out/vm/serving/bench.txt" 2>/dev/null)
	((rc == 0)) || { tail -n 20 "$out/vm/serving/job.log" >&2; sh_die "guest lane failed ($rc)"; }
	exit 0
fi

work=$out/serving
mkdir -p "$work"
[[ -s $out/raw.csv ]] || echo "round,kernel,name,value" >"$out/raw.csv"
# The task names of the processes that run before the bench starts and are none of the kinds
# it starts itself, as a TOML list: the tuner is to leave the host's other users alone (on a
# shared host it would otherwise hint their jobs too, for as long as the tuned case runs).
# Names with quotes, backslashes or glob characters are left out of the list.
foreign_comms() {
	local own=" python bash sh make cc cc1 as ld collect2 " p c list=()
	for p in /proc/[0-9]*; do
		# Kernel threads have an empty command line; the tuner excludes them anyway.
		[[ -n $(tr -d '\0' 2>/dev/null <"$p/cmdline") ]] || continue
		c=$(cat "$p/comm" 2>/dev/null) || continue
		[[ $own == *" $c "* || $c == *[\"\\*?[]* ]] && continue
		list+=("\"$c\"")
	done
	printf '[%s]\n' "$(printf '%s\n' "${list[@]}" | sort -u | paste -sd, -)"
}

cfg=$work/tuner.toml
cat >"$cfg" <<EOF
# Written by scripts/bench-serving.sh: the defaults, the stock backend, a short interval so
# that the hints land within the warm-up, and private lock and state files.
[daemon]
interval_ms = 1000
backend = "stock"
lock_path = "$work/tuner.lock"
state_file = "$work/tuner-state.json"
on_exit = "clear"

[exclude]
comm = $(foreign_comms)
EOF
if [[ -n $tuner_config ]]; then
	[[ -r $tuner_config ]] || sh_die "cannot read --tuner-config $tuner_config"
	{ echo "# Added by --tuner-config $tuner_config"; cat "$tuner_config"; } >>"$cfg"
fi
"$tuner" config check "$cfg" >&2

# Everything this script starts, by pid: each neighbour leads its own process group.
server_dir=$work/server
neighbours=() tuner_pid=
stop_neighbours() {
	local p
	for p in "${neighbours[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
	for p in "${neighbours[@]}"; do wait "$p" 2>/dev/null || true; done
	neighbours=()
}
stop_tuner() {
	[[ -n $tuner_pid ]] || return 0
	kill -TERM "$tuner_pid" 2>/dev/null || true
	wait "$tuner_pid" 2>/dev/null || true
	tuner_pid=
}
cleanup() {
	stop_tuner
	stop_neighbours
	"$SH_ROOT/scripts/llm-server.sh" stop --run-dir "$server_dir" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# The build-like job: a tree of C files that make -B rebuilds in a loop.
build_dir=$work/build-job
bash "$SH_ROOT/ci/build-job.sh" "$build_dir" 16 1000

start_neighbours() {
	local i
	for ((i = 0; i < $(nproc); i++)); do
		setsid bash -c 'while :; do :; done' &
		neighbours+=($!)
	done
	# Two 128 MiB arrays copied into each other: a stream through memory, past any cache.
	setsid "$py" -c '
import numpy as np
a = np.ones(16 << 20)
b = np.empty_like(a)
while True:
    np.copyto(b, a)
' &
	neighbours+=($!)
	# shellcheck disable=SC2016 # the inner shell expands its own arguments
	setsid bash -c 'while :; do make -s -B -j"$1" -C "$2" >/dev/null 2>&1; done' _ "$(nproc)" "$build_dir" &
	neighbours+=($!)
}

# "policy nice slice_us" of the thread of PID that has used the most CPU.
busiest_sched() {
	local pid=$1 best= most=-1 t ticks
	for t in /proc/"$pid"/task/*; do
		ticks=$(awk '{print $14 + $15}' "$t/stat" 2>/dev/null) || continue
		((ticks > most)) && most=$ticks best=$t
	done
	[[ -n $best ]] || { echo "- - -"; return; }
	# SCHED_IDLE tasks have no se.slice line: "-" then.
	echo "$(awk '{print $41, $19}' "$best/stat")" \
		"$(awk '/^se.slice/ {s = int($3 / 1000)} END {print (s == "" ? "-" : s)}' "$best/sched")"
}

# row ROUND NAME VALUE
row() { echo "$1,serving,$2,$3" >>"$out/raw.csv"; }

run_case() {
	local r=$1 case=$2 port spid sched log=$work/round$1-$2 i hinted=0
	port=$("$SH_ROOT/scripts/llm-server.sh" start --run-dir "$server_dir" --threads "$threads" \
		--threads-batch "$threads" --parallel "$parallel" --watch-pid $$ 2>>"$log.log")
	spid=$(<"$server_dir/llm-server.pid")
	[[ $case == alone ]] || start_neighbours
	if [[ $case == tuned ]]; then
		"$tuner" -c "$cfg" run --backend stock >>"$log.tuner.log" 2>&1 &
		tuner_pid=$!
		# The rule applies at the first scan; give it 30 s on a loaded host.
		for ((i = 0; i < 60; i++)); do
			if "$tuner" -c "$cfg" hint get "$spid" --backend stock --json 2>/dev/null |
				grep -q '"class": "throughput"'; then
				hinted=1
				break
			fi
			sleep 0.5
		done
		row "$r" "serve_tuner_hinted.$case" "$hinted"
		((hinted)) || sh_log "round $r: the tuner did not hint the server within 30 s"
	fi
	[[ $case == alone ]] || sleep 2
	row "$r" "serve_host_load1.$case" "$(cut -d' ' -f1 /proc/loadavg)"
	# The measurement: its warm-up request puts CPU time on the compute thread, whose
	# settings are read a second in (what the server holds while it is measured).
	"$py" "$SH_ROOT/ci/llm_load.py" --url "http://127.0.0.1:$port" --clients "$clients" \
		--requests "$requests" --n-predict "$n_predict" --tag "$case" >"$log.txt" 2>>"$log.log" &
	local load_pid=$!
	sleep 1
	read -r -a sched <<<"$(busiest_sched "$spid")"
	if ! wait "$load_pid"; then
		sh_log "round $r, $case: requests failed (see $log.log)"
	fi
	row "$r" "serve_sched_policy.$case" "${sched[0]}"
	row "$r" "serve_sched_nice.$case" "${sched[1]}"
	row "$r" "serve_sched_slice_us.$case" "${sched[2]}"
	# A CPU hog's settings at the end: what the tuner's heuristics made of it by then.
	if ((${#neighbours[@]})); then
		read -r -a sched <<<"$(busiest_sched "${neighbours[0]}")"
		row "$r" "serve_hog_policy.$case" "${sched[0]}"
		row "$r" "serve_hog_nice.$case" "${sched[1]}"
		row "$r" "serve_hog_slice_us.$case" "${sched[2]}"
	fi
	while read -r name value; do row "$r" "$name" "$value"; done <"$log.txt"
	stop_tuner
	stop_neighbours
	"$SH_ROOT/scripts/llm-server.sh" stop --run-dir "$server_dir" >/dev/null 2>>"$log.log"
	sh_log "round $r, $case: $(grep -E '^serve_(tokens_per_s|ttft_p99_ms|errors)\.' "$log.txt" | tr '\n' ' ')"
}

sh_log "serving: $rounds rounds x (alone, noisy, tuned), $clients clients x $requests requests x $n_predict tokens, server $threads threads, $parallel slots"
for r in $(seq "$rounds"); do
	cases=(alone noisy tuned)
	((r % 2)) || cases=(tuned noisy alone)
	for c in "${cases[@]}"; do run_case "$r" "$c"; done
done
