#!/usr/bin/env bash
# `make demo`, README's main job: boot the patched kernel with two NUMA nodes, start two real
# llama.cpp servers beside a mixed workload, run the tuner with the local LLM server, print
# each hint with its provenance and a before/after table of the servers' request latency,
# tokens/s and placement.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
	cat <<USAGE
usage: scripts/demo.sh [--no-build] [--out DIR]
  Starts the local LLM server (scripts/llm-server.sh) on the host's loopback, boots the VM
  with a restricted user-mode NIC whose only way out is that server, and runs
  ci/guest-demo.sh inside: two llama.cpp servers (scripts/llm-server.sh in the guest), a
  mix of busy and periodic programs, the tuner. Guest time is instruction-counted
  (vm-run.sh --icount --icount-sleep), so the before/after figures do not move with host
  load, while the guest still waits for the model in host time. Output and logs: DIR
  (default results/demo).
USAGE
}
build=1 out=$SH_ROOT/results/demo
while (($#)); do
	case $1 in
	--no-build) build=0 ;;
	--out) out=$2; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
if ((build)); then
	# `make setup` built these; here each is a no-op unless something changed since.
	"$SH_ROOT/scripts/kernel.sh"
	"$SH_ROOT/scripts/module.sh"
	(cd "$SH_ROOT" && cargo build --release -q -p tuner)
fi
run=$(mktemp -d "${TMPDIR:-/tmp}/sched_hint-demo.XXXXXX")
trap '"$SH_ROOT/scripts/llm-server.sh" stop --run-dir "$run" >/dev/null 2>&1 || true; rm -rf "$run"' EXIT
port=$("$SH_ROOT/scripts/llm-server.sh" start --run-dir "$run")
sh_log "local LLM server on 127.0.0.1:$port"
mkdir -p "$out"
set +e
"$SH_ROOT/scripts/vm-run.sh" --kernel "$("$SH_ROOT/scripts/kernel.sh" --print-dir)" \
	--job "$SH_ROOT/ci/guest-demo.sh" --out "$out" --timeout 1500 --llm-port "$port" --icount --icount-sleep \
	--env "SH_MODULE=$("$SH_ROOT/scripts/module.sh" --print-ko)" \
	--env "SH_TUNER=$SH_ROOT/target/release/tuner" \
	--env "SH_DEMO_CONFIG=$SH_ROOT/configs/demo-tuner.toml"
rc=$?
set -e
cat "$out/job.log"
cp "$run/llm-server.log" "$out/llm-server.log" 2>/dev/null || true
sh_log "demo: guest exit status $rc (logs in $out)"
exit "$rc"
