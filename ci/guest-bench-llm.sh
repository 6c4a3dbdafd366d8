#!/bin/bash
# The LLM phase of `make bench` (see scripts/bench.sh), in a guest on the patched kernel:
# wakeup latency of latency-hinted request handlers next to CPU hogs while the tuner in this
# guest is busy having the local LLM server classify, against the same with no tuner and the
# server idle. The server runs on the host (reached at 10.0.2.100:8080 through QEMU's
# user-mode network), as a model on its own cores or accelerator would: under -icount the
# guest made no progress with the model loaded inside it. Pairs alternate their order.
# Appends "name@pair value" lines to $SH_OUT/bench.txt.
# Inputs: SH_MODULE, SH_TUNER, SH_WAKEBENCH, SH_BENCH_QUICK, SH_BENCH_PAIRS.
set -u
out=$SH_OUT/bench.txt
: >"$out"
quick=${SH_BENCH_QUICK:-0}
pairs=${SH_BENCH_PAIRS:-5}
lat_s=$((quick ? 3 : 6))
work=/tmp/llm-bench
mkdir -p "$work"

emit() { echo "$1 $2" | tee -a "$out"; }
die() { echo "guest-bench-llm: $*"; exit 1; }

insmod "$SH_MODULE" || die "insmod failed"

url=http://10.0.2.100:8080
curl -fsS --retry 5 --max-time 300 "$url/health" | grep -q '"ok"' || die "no LLM server at $url"
pick() { awk -v m="$1" '$1 == m { print $2 }'; }	# pick NAME: its value from metrics on stdin
metric() { curl -fsS --max-time 5 "$1" 2>/dev/null | pick "$2"; }
tuner_metrics=http://127.0.0.1:9464/metrics
# await_metric NAME MIN TRIES: polls the tuner's NAME every 0.5 s until it reaches MIN and
# prints the last value; fails when TRIES polls did not get there.
await_metric() {
	local v i
	for ((i = 0; i < $3; i++)); do
		v=$(metric "$tuner_metrics" "$1")
		((${v:-0} >= $2)) && break
		sleep 0.5
	done
	echo "${v:-0}"
	((${v:-0} >= $2))
}
llm_tokens() {
	local p d
	p=$(metric "$url/metrics" llamacpp:prompt_tokens_total)
	d=$(metric "$url/metrics" llamacpp:tokens_predicted_total)
	awk -v a="${p:-0}" -v b="${d:-0}" 'BEGIN { printf "%d\n", a + b }'
}

# Something for the model to classify: active processes that no rule covers, each its own
# binary so each is its own question.
for i in 1 2 3 4; do
	cp /bin/bash "$work/svc-$i"
	"$work/svc-$i" -c 'while :; do sleep 0.25; done' &
done
cat >"$work/tuner.toml" <<CONF
[daemon]
interval_ms = 1000
ttl_scans = 10
backend = "ioctl"
on_exit = "clear"
state_file = "$work/state.json"
lock_path = "$work/tuner.lock"
[exclude]
comm = ["wakebench", "wb-*"]
[rules]
defaults = false
paths = []
[heuristics]
enabled = false
# Everything active goes to the model, and every answer is asked again a second later: the
# server never rests while the tuner runs.
[external]
enabled = true
kind = "llm"
endpoint = "http://10.0.2.100:8080"
timeout_ms = 600000
max_batch = 4
min_confidence = 0.0
cache_ttl_ms = 1000
[llm]
model = "smollm2"
cache_path = ""
health_wait_ms = 60000
retry_down_ms = 1000
[llm.ceilings]
default = "latency"
[metrics]
enabled = true
listen = "127.0.0.1:9464"
CONF
"$SH_TUNER" config check "$work/tuner.toml" || die "bad tuner config"

lat() {
	"$SH_WAKEBENCH" --message-threads 1 --workers 2 --work-us 300 --interval-us 20000 \
		--background 4 --cpus 2,3 --hint-workers latency --duration-s "$lat_s" --warmup-s 1 \
		--json 2>/dev/null | head -n1
}

# One measurement; "busy" runs it with the tuner up and a request in flight.
measure() {
	local mode=$1 pair=$2 tuner= j t0 t1 b0 b1 reqs=0
	if [[ $mode == busy ]]; then
		"$SH_TUNER" run -c "$work/tuner.toml" >"$work/tuner-$pair.log" 2>&1 &
		tuner=$!
		await_metric tuner_external_requests_total 1 600 >/dev/null ||
			die "the tuner sent no request to the model (log: $(tail -n3 "$work/tuner-$pair.log"))"
	fi
	t0=$(llm_tokens)
	b0=$(metric "$url/metrics" llamacpp:requests_processing)
	j=$(lat) || die "wakebench failed"
	b1=$(metric "$url/metrics" llamacpp:requests_processing)
	t1=$(llm_tokens)
	if [[ -n $tuner ]]; then
		reqs=$(metric "$tuner_metrics" tuner_external_requests_total)
		kill -TERM "$tuner"
		wait "$tuner"
	fi
	emit "llm_lat_p50_us.$mode@$pair" "$(jq -r .p50_us <<<"$j")"
	emit "llm_lat_p99_us.$mode@$pair" "$(jq -r .p99_us <<<"$j")"
	emit "llm_rps.$mode@$pair" "$(jq -r .rps <<<"$j")"
	# Evidence that the server worked (or rested) during the measurement: tokens counted and
	# requests in progress at both ends (a request can outlast the window).
	emit "llm_tokens.$mode@$pair" "$((t1 - t0))"
	emit "llm_processing.$mode@$pair" "$(awk -v a="${b0:-0}" -v b="${b1:-0}" 'BEGIN { print (a < b ? a : b) }')"
	[[ $mode == busy ]] && emit "llm_requests.busy@$pair" "${reqs:-0}"
	return 0
}

for p in $(seq "$pairs"); do
	if ((p % 2)); then
		measure idle "$p" && measure busy "$p"
	else
		measure busy "$p" && measure idle "$p"
	fi || exit 1
done

# What one binary costs in model requests with the shipped answer cache (the pairs above
# expire every answer after a second to keep the server busy): the tuner runs a number of
# passes, then its counters say how many requests it sent and how many binaries it learned.
sed '/^cache_ttl_ms/d' "$work/tuner.toml" >"$work/tuner-cached.toml"
passes=$((quick ? 10 : 20))
"$SH_TUNER" run -c "$work/tuner-cached.toml" >"$work/tuner-cached.log" 2>&1 &
tuner=$!
scans=$(await_metric tuner_scans_total "$passes" 1200)
reached=$?
m=$(curl -fsS --max-time 5 "$tuner_metrics")
kill -TERM "$tuner"
wait "$tuner"
((reached == 0)) || die "the tuner made $scans of $passes passes (log: $(tail -n3 "$work/tuner-cached.log"))"
emit llm_cache_passes "$scans"
emit llm_cache_requests "$(pick tuner_llm_requests_total <<<"$m")"
emit llm_cache_binaries "$(pick tuner_llm_cached_binaries <<<"$m")"
emit llm_cache_dropped "$(pick tuner_llm_dropped_total <<<"$m")"
# shellcheck disable=SC2046 # one pid per word
kill $(jobs -p) 2>/dev/null
exit 0
