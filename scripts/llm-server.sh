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
                                    [--threads-http N]
       scripts/llm-server.sh stop   [--run-dir DIR]
       scripts/llm-server.sh status [--run-dir DIR]
  start   launches the server on 127.0.0.1, waits until /health answers ok
          and prints the port on stdout. --port 0 (the default) lets the kernel pick a free
          port. --watch-pid makes the server exit when that process does (for tests).
          --api-key-file makes the server require that key as a bearer token.
          --threads and --threads-batch size the compute pools for generation and for
          prompt processing (llama.cpp's --threads / --threads-batch), --parallel the
          number of slots (requests decoded together), --threads-http the HTTP worker
          pool (-1: llama.cpp's default).
  stop    sends SIGTERM to the server and waits for it to exit.
  status  prints "running PORT" (exit 0) or "stopped" (exit 3).
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
 threads_http) = sys.argv[1:12]
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
port=0 run_dir=${XDG_RUNTIME_DIR:-/tmp}/sched_hint-llm
model=$SH_MODELS/SmolLM2-135M-Instruct.Q4_1.gguf alias=smollm2 ctx=4096 key_file= watch_pid=0
threads=1 threads_batch=1 parallel=1 threads_http=-1
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
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
[[ $port =~ ^[0-9]+$ && $ctx =~ ^[0-9]+$ && $watch_pid =~ ^[0-9]+$ ]] ||
	sh_die "--port, --ctx and --watch-pid take numbers"
[[ $threads =~ ^[1-9][0-9]*$ && $threads_batch =~ ^[1-9][0-9]*$ && $parallel =~ ^[1-9][0-9]*$ ]] ||
	sh_die "--threads, --threads-batch and --parallel take numbers >= 1"
[[ $threads_http =~ ^(-1|[1-9][0-9]*)$ ]] || sh_die "--threads-http takes -1 or a number >= 1"

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
	[[ -z $key_file || -r $key_file ]] || sh_die "cannot read api key file $key_file"
	if pid=$(live_pid); then
		sh_die "already running (pid $pid, port $(cat "$port_file" 2>/dev/null)) in $run_dir"
	fi
	mkdir -p "$run_dir"
	rm -f "$pid_file" "$port_file"
	setsid "$py" -c "$PY_LAUNCHER" "$model" "$alias" "$port" "$ctx" "$key_file" "$watch_pid" \
		"$port_file" "$threads" "$threads_batch" "$parallel" "$threads_http" </dev/null >"$log_file" 2>&1 &
	pid=$!
	printf '%s\n' "$pid" >"$pid_file"
	local i
	for ((i = 0; i < 600; i++)); do
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
	sh_die "server did not become healthy in 60 s (log: $log_file)"
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
