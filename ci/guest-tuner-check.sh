#!/usr/bin/env bash
# Inside the VM (patched kernel, sched_hint module loaded): the tuner applies hints through
# /dev/sched_hint and this script reads them back from the kernel. Written for bash, kept to
# what busybox sh also runs. Exit 0 when every check passes; the first failure exits 1.
set -euo pipefail

usage() {
	cat <<USAGE
usage: guest-tuner-check.sh [--tuner PATH]
  Starts two stand-in workloads (comm "rustc" and "pipewire", copies of the tuner in its
  internal bench-child mode), runs 'tuner once' and 'tuner run' with the ioctl backend,
  and checks with 'tuner hint get' (the GET ioctl) and /proc/<pid>/sched that the kernel
  holds what was decided: classes, sources, admin hints left alone, TTL, clear on exit.
  Then two instances of one server (python3 holding 64 MiB, first touched on node 0)
  under a rule with spread = true: one per node, strict, and each one's private memory
  moved to its node by the tuner.
USAGE
}

TUNER=${TUNER:-tuner}
while [ $# -gt 0 ]; do
	case $1 in
	--tuner) TUNER=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done

WORK=$(mktemp -d)
PIDS=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT

fail() { echo "guest-tuner-check: FAIL: $*" >&2; exit 1; }
ok() { echo "guest-tuner-check: ok: $*"; }

[ -c /dev/sched_hint ] || fail "/dev/sched_hint is missing (module not loaded?)"
TUNER=$(command -v "$TUNER") || fail "tuner binary not found"

# Stand-in workloads: the tuner binary under another name gets that comm; its bench-child
# mode idles with N threads until stdin closes (the fifo writer below keeps it open).
start() { # name threads fd -> pid in $STARTED; fd keeps the fifo's write end open
	ln -sf "$TUNER" "$WORK/$1"
	mkfifo "$WORK/$1.in"
	"$WORK/$1" bench-child --threads "$2" <"$WORK/$1.in" &
	STARTED=$!
	eval "exec $3>\"\$WORK/$1.in\""
	PIDS="$PIDS $STARTED"
}
start rustc 2 8
RUSTC=$STARTED
start pipewire 3 9
PIPEWIRE=$STARTED
sleep 1

cat >"$WORK/tuner.toml" <<TOML
[daemon]
interval_ms = 200
ttl_scans = 10
backend = "ioctl"
on_exit = "clear"
# The guest's / is the host's, read-only: state and lock live in the scratch folder.
state_file = "$WORK/state.json"
lock_path = "$WORK/tuner.lock"
TOML
T() { "$TUNER" -q --config "$WORK/tuner.toml" "$@"; }

get() { T hint get "$1" --json; }
expect() { # pid class source
	out=$(get "$1")
	grep -q "\"class\": \"$2\"" <<<"$out" || fail "pid $1: want class $2, kernel says: $out"
	grep -q "\"source\": \"$3\"" <<<"$out" || fail "pid $1: want source $3, kernel says: $out"
}

# Output captured first: `grep -q` quits at the first match, and the writer must not see EPIPE.
st=$(T status) || fail "tuner status failed"
grep -q "^device .*abi 1" <<<"$st" || fail "tuner status does not show the device: $st"
ok "status shows the device"

T once --ttl-ms 0 --sample-ms 200 >"$WORK/once.txt" || fail "tuner once failed: $(cat "$WORK/once.txt")"
grep -q "rule:compiler" "$WORK/once.txt" || fail "once did not decide rustc: $(cat "$WORK/once.txt")"
expect "$RUSTC" batch rule
expect "$PIPEWIRE" latency rule
ok "once set rule hints the kernel reports back"

if grep -q '^hint\.' "/proc/$RUSTC/sched"; then
	grep -q '^hint\.class.*4' "/proc/$RUSTC/sched" || grep -q '^hint\.class.*batch' "/proc/$RUSTC/sched" ||
		fail "/proc/$RUSTC/sched: $(grep '^hint\.' "/proc/$RUSTC/sched")"
	ok "/proc/<pid>/sched agrees"
fi

T hint set "$RUSTC" --class background >/dev/null
expect "$RUSTC" background admin
T once --ttl-ms 0 --sample-ms 200 >/dev/null
expect "$RUSTC" background admin
ok "an admin hint survives a tuner pass"

T hint clear "$RUSTC" >/dev/null
h=$(get "$RUSTC")
grep -q '"hint": null' <<<"$h" || fail "clear left: $h"
ok "clear"

# Not through T: a shell function in the background is a subshell, and SIGTERM would kill
# that subshell instead of reaching the daemon.
"$TUNER" -q --config "$WORK/tuner.toml" run &
DAEMON=$!
PIDS="$PIDS $DAEMON"
sleep 2
expect "$RUSTC" batch rule
h=$(get "$RUSTC")
grep -Eq '"ttl_ms": 0,?$' <<<"$h" && fail "daemon hints carry no ttl: $h"
ok "the daemon hints with a ttl"
kill -TERM "$DAEMON"
wait "$DAEMON" || fail "daemon exit status $?"
h=$(get "$RUSTC")
grep -q '"hint": null' <<<"$h" || fail "on_exit = clear left: $h"
ok "SIGTERM clears the daemon's hints"

# Two instances of one "server": the same executable and rule, each with 64 MiB of private
# memory first touched on node 0. The tuner must put them one per node, keep each there
# (strict), and move each one's memory to its node (migrate_pages, in its worker).
node_cpus() { cat "/sys/devices/system/node/node$1/cpulist"; }
if [ -e /sys/devices/system/node/node1 ]; then
	for i in 1 2; do
		taskset -c "$(node_cpus 0)" python3 -c 'import time; b = b"x" * (64 << 20); time.sleep(3600)' \
			sched-hint-spread-check &
		PIDS="$PIDS $!"
		eval "SRV$i=\$!"
	done
	sleep 3
	# Free to run anywhere again: an affinity someone set is an admin's, left alone.
	taskset -a -p -c "$(cat /sys/devices/system/cpu/online)" "$SRV1" >/dev/null
	taskset -a -p -c "$(cat /sys/devices/system/cpu/online)" "$SRV2" >/dev/null
	cat >"$WORK/spread.rules.toml" <<TOML
[[rule]]
name = "spread-check"
cmdline = ["*sched-hint-spread-check*"]
class = "throughput"
spread = true
TOML
	cat >>"$WORK/tuner.toml" <<TOML
[rules]
defaults = false
paths = ["$WORK/spread.rules.toml"]
TOML
	T once --all --ttl-ms 0 --sample-ms 200 >"$WORK/spread.txt" || fail "tuner once failed: $(cat "$WORK/spread.txt")"
	# private_share PID NODE: the percentage of PID's anonymous pages on NODE.
	private_share() {
		awk -v n="N$2" '!/ anon=/ { next }
			{ for (i = 1; i <= NF; i++) if ($i ~ /^N[0-9]+=/) { split($i, kv, "="); t += kv[2]; if (kv[1] == n) on += kv[2] } }
			END { printf "%d\n", t ? 100 * on / t : 0 }' "/proc/$1/numa_maps"
	}
	nodes=""
	for pid in "$SRV1" "$SRV2"; do
		h=$(get "$pid")
		node=$(sed -n 's/.*"node": \([0-9]*\).*/\1/p' <<<"$h")
		[ -n "$node" ] || fail "spread instance $pid has no node: $h; tuner once said: $(cat "$WORK/spread.txt")"
		grep -q '"strict": true' <<<"$h" || fail "spread instance $pid is not kept on its node: $h"
		share=$(private_share "$pid" "$node")
		[ "$share" -ge 95 ] || fail "spread instance $pid on node $node holds only $share % of its private pages there"
		nodes="$nodes $node"
	done
	[ "$nodes" = " 0 1" ] || [ "$nodes" = " 1 0" ] || fail "instances not one per node: nodes$nodes"
	ok "two instances spread one per node, strict, private pages moved (nodes$nodes)"
fi

echo "guest-tuner-check: all checks passed"
