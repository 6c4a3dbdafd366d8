#!/usr/bin/env bash
# Start, stop or query the local llama.cpp server that the tuner's LLM classifier talks to in
# tests and development (and the serving bench): the server embedded in the xllamacpp wheel,
# SmolLM2-135M, one compute thread unless told otherwise, 127.0.0.1 only.
# `make setup` installs both (scripts/setup.sh, install_llm).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
	cat <<USAGE
usage: scripts/llm-server.sh start  [--port N] [--run-dir DIR] [--model PATH] [--alias NAME]
                                    [--ctx N] [--api-key-file FILE] [--watch-pid PID]
                                    [--threads N] [--threads-batch N] [--parallel N]
                                    [--threads-http N] [--no-mmap] [--start-timeout-s N]
       scripts/llm-server.sh stop   [--run-dir DIR]
       scripts/llm-server.sh status [--run-dir DIR]
       scripts/llm-server.sh keygen FILE
  start   launches the server on 127.0.0.1, waits until /health answers ok
          and prints the port on stdout. --port 0 (the default) lets the kernel pick a free
          port. --watch-pid makes the server exit when that process does (for tests).
          --api-key-file makes the server require that key as a bearer token; the file
          must be the caller's and closed to others (chmod 600), as the tuner wants it.
          --threads and --threads-batch size the compute pools for generation and for
          prompt processing (llama.cpp's --threads / --threads-batch), --parallel the
          number of slots (requests decoded together), --threads-http the HTTP worker
          pool (-1: llama.cpp's default). --no-mmap reads the model into the server's
          own memory instead of mapping the file (llama.cpp's --no-mmap): two servers
          then hold two copies, each of which can live on its own NUMA node, where a
          mapped model is one set of page-cache pages on one node. --start-timeout-s
          bounds the wait for /health (default 60; an emulated guest needs minutes).
  stop    sends SIGTERM to the server and waits for it to exit.
  status  prints "running PORT" (exit 0) or "stopped" (exit 3).
  keygen  writes a new random key to FILE (mode 600; FILE must not exist). For the
          service: keygen /etc/sched_hint/llm.key as root, start --api-key-file with it,
          and [llm] api_key_file = "/etc/sched_hint/llm.key".
  Files in the run dir: llm-server.pid, llm-server.port, llm-server.log.
  Defaults: --run-dir \${XDG_RUNTIME_DIR:-/tmp}/sched_hint-llm, --alias smollm2,
  --ctx 4096, --model $SH_MODELS/SmolLM2-135M-Instruct.Q4_1.gguf, --threads 1,
  --threads-batch 1, --parallel 1, --threads-http -1.
  Python: \$SH_VENV/bin/python (venv from scripts/setup.sh).
USAGE
}

# The launcher, run by the venv's python. It keeps the server object alive until SIGTERM or
# SIGINT, or until the watched pid is gone, then drops it so llama.cpp shuts down cleanly.
PY_LAUNCHER='
import os, signal, sys, threading, xllamacpp

(model, alias, port, ctx, key_file, watch, port_file, threads, threads_batch, parallel,
 threads_http, no_mmap) = sys.argv[1:13]
p = xllamacpp.CommonParams()
p.model.path = model
p.model_alias = {alias}
p.hostnames = ["127.0.0.1"]
p.port = int(port)
p.n_ctx = int(ctx)
p.n_parallel = int(parallel)
p.cpuparams.n_threads = int(threads)
p.cpuparams_batch.n_threads = int(threads_batch)
p.n_threads_http = int(threads_http)
p.endpoint_metrics = True
if no_mmap == "1":
    p.load_mode = xllamacpp.llama_load_mode.LLAMA_LOAD_MODE_NONE
if key_file:
    with open(key_file) as f:
        p.api_keys = [f.read().strip()]
stop = threading.Event()
for s in (signal.SIGTERM, signal.SIGINT):
    signal.signal(s, lambda *_: stop.set())
server = xllamacpp.Server(p)
addr = server.listening_address
tmp = port_file + ".tmp"
with open(tmp, "w") as f:
    f.write(addr.rsplit(":", 1)[1] + "\n")
os.replace(tmp, port_file)
watch = int(watch)
while not stop.wait(1.0):
    if watch > 0:
        try:
            os.kill(watch, 0)
        except ProcessLookupError:
            break
del server
os.unlink(port_file)
'

cmd=${1:-}
[[ -n $cmd ]] || { usage >&2; exit 2; }
shift

# A key file that others can read is no secret; one that others can write chooses the key.
check_key_file() {
	local owner mode
	[[ -r $1 ]] || sh_die "cannot read api key file $1"
	read -r owner mode < <(stat -Lc '%u %a' "$1")
	[[ $owner == "$(id -u)" ]] || sh_die "api key file $1 belongs to uid $owner, not to $(id -u)"
	((8#$mode & 8#077)) && sh_die "api key file $1 is open to others (mode $mode): chmod 600 it"
	[[ -s $1 ]] || sh_die "api key file $1 is empty"
}

if [[ $cmd == keygen ]]; then
	[[ $# -eq 1 && $1 != -* ]] || { usage >&2; exit 2; }
	[[ -e $1 ]] && sh_die "$1 exists; remove it first to replace the key"
	(
		umask 077
		set -o noclobber
		printf 'sk-sched-hint-%s\n' "$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')" >"$1"
	)
	sh_log "wrote a new api key to $1 (mode 600)"
	exit 0
fi
port=0 run_dir=${XDG_RUNTIME_DIR:-/tmp}/sched_hint-llm
model=$SH_MODELS/SmolLM2-135M-Instruct.Q4_1.gguf alias=smollm2 ctx=4096 key_file= watch_pid=0
threads=1 threads_batch=1 parallel=1 threads_http=-1 no_mmap=0 start_timeout_s=60
while (($#)); do
	case $1 in
	--port) port=$2; shift 2 ;;
	--run-dir) run_dir=$2; shift 2 ;;
	--model) model=$2; shift 2 ;;
	--alias) alias=$2; shift 2 ;;
	--ctx) ctx=$2; shift 2 ;;
	--api-key-file) key_file=$2; shift 2 ;;
	--watch-pid) watch_pid=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	--threads-batch) threads_batch=$2; shift 2 ;;
	--parallel) parallel=$2; shift 2 ;;
	--threads-http) threads_http=$2; shift 2 ;;
	--no-mmap) no_mmap=1; shift ;;
	--start-timeout-s) start_timeout_s=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
[[ $port =~ ^[0-9]+$ && $ctx =~ ^[0-9]+$ && $watch_pid =~ ^[0-9]+$ ]] ||
	sh_die "--port, --ctx and --watch-pid take numbers"
[[ $threads =~ ^[1-9][0-9]*$ && $threads_batch =~ ^[1-9][0-9]*$ && $parallel =~ ^[1-9][0-9]*$ ]] ||
	sh_die "--threads, --threads-batch and --parallel take numbers >= 1"
[[ $threads_http =~ ^(-1|[1-9][0-9]*)$ ]] || sh_die "--threads-http takes -1 or a number >= 1"
[[ $start_timeout_s =~ ^[1-9][0-9]*$ ]] || sh_die "--start-timeout-s takes a number >= 1"

pid_file=$run_dir/llm-server.pid
port_file=$run_dir/llm-server.port
log_file=$run_dir/llm-server.log

# Prints the pid of the live server started from this run dir, or fails.
live_pid() {
	local pid
	[[ -s $pid_file ]] || return 1
	pid=$(<"$pid_file")
	[[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
	# A stale pid file may name a reused pid: only a process running our launcher counts.
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'xllamacpp' || return 1
	printf '%s\n' "$pid"
}

health_ok() {
	curl -fsS --max-time 2 "http://127.0.0.1:$1/health" 2>/dev/null | grep -q '"ok"'
}

do_start() {
	local py=$SH_VENV/bin/python pid
	[[ -x $py ]] || sh_die "no venv python at $py: run 'make setup'"
	[[ -s $model ]] || sh_die "no model at $model: run 'make setup'"
	[[ -z $key_file ]] || check_key_file "$key_file"
	if pid=$(live_pid); then
		sh_die "already running (pid $pid, port $(cat "$port_file" 2>/dev/null)) in $run_dir"
	fi
	mkdir -p "$run_dir"
	rm -f "$pid_file" "$port_file"
	setsid "$py" -c "$PY_LAUNCHER" "$model" "$alias" "$port" "$ctx" "$key_file" "$watch_pid" \
		"$port_file" "$threads" "$threads_batch" "$parallel" "$threads_http" "$no_mmap" </dev/null >"$log_file" 2>&1 &
	pid=$!
	printf '%s\n' "$pid" >"$pid_file"
	local i
	for ((i = 0; i < start_timeout_s * 10; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 20 "$log_file" >&2
			rm -f "$pid_file"
			sh_die "server exited during start-up (log: $log_file)"
		fi
		if [[ -s $port_file ]] && health_ok "$(<"$port_file")"; then
			sh_log "llm server pid $pid on 127.0.0.1:$(<"$port_file") (log: $log_file)"
			cat "$port_file"
			return
		fi
		sleep 0.1
	done
	kill "$pid" 2>/dev/null || true
	sh_die "server did not become healthy in $start_timeout_s s (log: $log_file)"
}

do_stop() {
	local pid i
	if ! pid=$(live_pid); then
		rm -f "$pid_file" "$port_file"
		sh_log "llm server: not running"
		return
	fi
	kill -TERM "$pid"
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		sh_log "llm server pid $pid ignored SIGTERM for 10 s, sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$pid_file" "$port_file"
	sh_log "llm server pid $pid stopped"
}

do_status() {
	local pid port
	if pid=$(live_pid) && [[ -s $port_file ]]; then
		port=$(<"$port_file")
		if health_ok "$port"; then
			echo "running $port"
			return 0
		fi
		echo "starting $port"
		return 3
	fi
	echo "stopped"
	return 3
}

case $cmd in
start) do_start ;;
stop) do_stop ;;
status) do_status ;;
-h | --help) usage ;;
*) usage >&2; exit 2 ;;
esac
