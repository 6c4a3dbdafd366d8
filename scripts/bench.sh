#!/usr/bin/env bash
# `make bench`: patched vs baseline kernel in QEMU with two NUMA nodes, N alternating rounds,
# then on this host the tuner's own cost and llama.cpp serving beside noisy neighbours.
# Writes results/bench/<time>/ (raw.csv, results.json, summary.md, *.png) and prints the
# summary table.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
	cat <<USAGE
usage: scripts/bench.sh [--rounds N] [--jobs N] [--quick] [--no-build] [--phases LIST] [--out DIR]
                       [--serving-guest-rounds N]
  Each round boots the baseline kernel and the patched kernel, both with instruction-counted
  guest time (-icount shift=0): guest figures do not move with host load, so guests can run
  side by side.
  --rounds N     rounds (default 5; medians over them, and a ratio per pair)
  --jobs N       guests at a time (default: the number of cores; an -icount guest runs on
                 one host thread)
  --quick        shorter runs (for a smoke test of the pipeline, not for numbers)
  --phases LIST  comma-separated, default all: hot (hot path, the only phase that boots the
                 baseline), lat (latency class), numa, ioctl, llm (N idle/busy pairs: the
                 tuner in the guest, the model on this host), tuner (its cost on this host),
                 llm-serving (the llama.cpp server under a request mix, alone, with noisy
                 neighbours, with neighbours and the tuner, in two lanes: this host's
                 kernel with the tuner's stock backend, and the patched kernel in the
                 guest with the ioctl backend, where two servers are also spread one per
                 node; scripts/bench-serving.sh)
                 Only hot, lat, numa, ioctl, llm and llm-serving build and boot kernels;
                 only hot boots the baseline.
  --llm-only     the same as --phases llm,tuner
  --serving-guest-rounds N
                 rounds of the llm-serving phase's guest lane (default: --rounds): under
                 TCG one round of its quick mode took 25 minutes on a loaded host
  --out DIR      results folder; one that has a raw.csv gets the new rows added to it, so a
                 later run of some phases joins an earlier run's report
  A full run took just under two hours on 2 cores (other work shared them for part of it):
  TCG executes the NUMA phase's hinting faults and the latency phase's four busy vCPUs
  slowly.
USAGE
}
rounds=5 jobs=$(nproc) quick=0 build=1 out= phases=hot,lat,numa,ioctl,llm,tuner,llm-serving
guest_rounds=
while (($#)); do
	case $1 in
	--rounds) rounds=$2; shift ;;
	--jobs) jobs=$2; shift ;;
	--quick) quick=1 ;;
	--no-build) build=0 ;;
	--phases) phases=$2; shift ;;
	--llm-only) phases=llm,tuner ;;
	--out) out=$2; shift ;;
	--serving-guest-rounds) guest_rounds=$2; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
has() { [[ ,$phases, == *,$1,* ]]; }
for p in ${phases//,/ }; do
	[[ $p =~ ^(hot|lat|numa|ioctl|llm|tuner|llm-serving)$ ]] || { usage >&2; sh_die "unknown phase '$p'"; }
done
vm=0
for p in hot lat numa ioctl llm llm-serving; do has "$p" && vm=1; done
out=${out:-$SH_ROOT/results/bench/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"

if ((build && vm)); then
	"$SH_ROOT/scripts/kernel.sh"
	if has hot; then "$SH_ROOT/scripts/kernel.sh" --baseline; fi
	"$SH_ROOT/scripts/module.sh"
	"$SH_ROOT/scripts/selftests.sh"
fi
if ((build)); then (cd "$SH_ROOT" && cargo build --release -q -p tuner -p sched-hint-wakebench); fi
if ((vm)); then
	patched=$("$SH_ROOT/scripts/kernel.sh" --print-dir)
	baseline=
	if has hot; then baseline=$("$SH_ROOT/scripts/kernel.sh" --baseline --print-dir); fi
	envs=(--env "SH_MODULE=$("$SH_ROOT/scripts/module.sh" --print-ko)"
		--env "SH_SELFTESTS=$("$SH_ROOT/scripts/selftests.sh" --print-dir)"
		--env "SH_WAKEBENCH=$SH_ROOT/target/release/wakebench" --env "SH_BENCH_QUICK=$quick"
		--env "SH_BENCH_PHASES=$phases")
fi

[[ -s $out/environment.txt ]] || echo "host: $(uname -r), $(nproc) cores" >"$out/environment.txt"
# The guest lines once per folder, by the first run that boots guests.
if ((vm)) && ! grep -q '^qemu: ' "$out/environment.txt"; then
	{
		echo "qemu: $(qemu-system-x86_64 --version | head -n1)"
		echo "patched: $(make -s -C "$SH_CACHE/linux" kernelversion) + $(wc -l <"$SH_ROOT/patches/series") patches ($(git -C "$SH_CACHE/linux" rev-parse --short HEAD))"
		if has hot; then echo "baseline: $(make -s -C "$(sh_ksrc)" kernelversion)"; fi
		echo "guest: 4 vCPUs (2 sockets x 2 cores), 2 NUMA nodes x 1 GiB, -icount shift=0"
	} >>"$out/environment.txt"
fi
# One line per invocation: a folder may collect the phases of several, and each may come
# from a different commit of this tree (the tuner and wakebench are built from it).
tree=$(git -C "$SH_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$SH_ROOT" diff --quiet HEAD 2>/dev/null || tree+=-dirty
echo "run $(date -u +%FT%TZ) at $tree: phases $phases, rounds $rounds, jobs $jobs, quick $quick, host load $(cut -d' ' -f1-3 /proc/loadavg)" \
	>>"$out/environment.txt"
cat "$out/environment.txt"

[[ -s $out/raw.csv ]] || echo "round,kernel,name,value" >"$out/raw.csv"
kernels=patched
has hot && kernels="baseline patched"
guests=()
if has hot || has lat || has numa || has ioctl; then
	for r in $(seq "$rounds"); do
		for kernel in $kernels; do guests+=("$kernel-$r"); done
	done
fi
# One guest: "kernel-round".
bench_guest() {
	local kernel=${1%-*} kdir=$patched
	[[ $kernel == baseline ]] && kdir=$baseline
	"$SH_ROOT/scripts/vm-run.sh" --kernel "$kdir" --job "$SH_ROOT/ci/guest-bench.sh" --icount \
		--out "$out/vm/$1" --timeout 3600 "${envs[@]}" --env "SH_BENCH_KERNEL=$kernel" >/dev/null
}
# Up to $jobs guests at once, each leaving its exit status beside its folder; the rows go
# into raw.csv in round order afterwards.
if ((vm)); then mkdir -p "$out/vm"; fi
for i in "${!guests[@]}"; do
	while (($(jobs -rp | wc -l) >= jobs)); do wait -n || true; done
	g=${guests[$i]}
	sh_log "guest $g ($((i + 1)) of ${#guests[@]})"
	{
		rc=0
		bench_guest "$g" || rc=$?
		echo "$rc" >"$out/vm/$g.rc"
	} &
done
wait
for g in "${guests[@]}"; do
	[[ $(cat "$out/vm/$g.rc" 2>/dev/null) == 0 ]] || sh_die "guest $g failed (see $out/vm/$g/console.log)"
	while read -r name value; do
		echo "${g##*-},${g%-*},$name,$value" >>"$out/raw.csv"
	done <"$out/vm/$g/bench.txt"
done
[[ ! -f $out/vm/patched-1/qemu.cmdline ]] || cp "$out/vm/patched-1/qemu.cmdline" "$out/qemu.cmdline"

# The LLM off the hot path: one patched boot, the tuner in the guest and the local LLM server
# on this host (through QEMU's user-mode network), N pairs of idle/busy measurements. Lines
# are "name@pair". Its failure is reported, but does not throw away the rounds above.
rc=0
if has llm; then
	sh_log "LLM phase: $rounds idle/busy pairs"
	llm_run=$(mktemp -d "${TMPDIR:-/tmp}/sched_hint-bench-llm.XXXXXX")
	trap '"$SH_ROOT/scripts/llm-server.sh" stop --run-dir "$llm_run" >/dev/null 2>&1 || true; rm -rf "$llm_run"' EXIT
	if port=$("$SH_ROOT/scripts/llm-server.sh" start --run-dir "$llm_run") &&
		"$SH_ROOT/scripts/vm-run.sh" --kernel "$patched" --job "$SH_ROOT/ci/guest-bench-llm.sh" --icount --icount-sleep \
			--out "$out/vm/llm" --timeout 3600 --llm-port "$port" "${envs[@]}" \
			--env "SH_BENCH_PAIRS=$rounds" --env "SH_TUNER=$SH_ROOT/target/release/tuner" >/dev/null; then
		while read -r name value; do
			# Lines without "@pair" are measured once: round 1.
			[[ $name == *@* ]] || name+=@1
			echo "${name##*@},llm,${name%@*},$value" >>"$out/raw.csv"
		done <"$out/vm/llm/bench.txt"
	else
		rc=1
		sh_log "LLM phase failed (see $out/vm/llm/job.log); the report has no row for it"
		tail -n 5 "$out/vm/llm/job.log" >&2 || true
	fi
	cp "$llm_run/llm-server.log" "$out/llm-server.log" 2>/dev/null || true
fi

# llama.cpp serving on this host's kernel, beside noisy neighbours, with and without the
# tuner. Like the LLM phase, its failure is reported without throwing away the rest.
if has llm-serving; then
	serving=(--out "$out" --rounds "$rounds")
	((quick)) && serving+=(--quick)
	sh_log "llm-serving phase, guest lane (patched kernel)"
	"$SH_ROOT/scripts/bench-serving.sh" --lane guest "${serving[@]}" \
		${guest_rounds:+--rounds "$guest_rounds"} || {
		rc=1
		sh_log "llm-serving guest lane failed (see $out/vm/serving/)"
	}
	sh_log "llm-serving phase, host lane ($(uname -r))"
	"$SH_ROOT/scripts/bench-serving.sh" --lane host "${serving[@]}" || {
		rc=1
		sh_log "llm-serving host lane failed (see $out/serving/)"
	}
fi

# The tuner's own cost, on this host.
if has tuner; then
	sh_log "tuner bench on this host"
	"$SH_ROOT/target/release/tuner" bench --procs 1000 --passes 30 --steady-s 20 \
		>"$out/tuner-bench.txt" 2>"$out/tuner-bench.log" || sh_die "tuner bench failed (see $out/tuner-bench.log)"
fi

"$SH_VENV/bin/python" "$SH_ROOT/scripts/bench_report.py" "$out"
exit "$rc"
