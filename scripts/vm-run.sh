#!/usr/bin/env bash
# Boot a kernel in QEMU (TCG) with two NUMA nodes, the host's / as a read-only 9p root,
# run a job script as root inside, and return its exit status.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

usage() {
	cat <<USAGE
usage: scripts/vm-run.sh --kernel BUILD_DIR --job SCRIPT [--out DIR] [--timeout SEC]
                         [--env NAME=VALUE]... [--cmdline ARGS] [--mem-mib N] [--icount]
                         [--icount-sleep]
                         [--llm-port PORT]
  Guest: 4 vCPUs as 2 sockets x 2 cores, NUMA node 0 = CPUs 0-1, node 1 = CPUs 2-3,
  N/2 MiB each (default N=2048). SCRIPT runs as root with \$SH_ROOT (this repository)
  and \$SH_OUT (the job folder, kept as DIR on the host) in its environment. DIR gets
  console.log (the serial console), job.log, dmesg.log and rc. Exit status: the job's,
  or 124 on timeout, or 125 when the guest died without a verdict.
  --llm-port gives the guest a virtio NIC on QEMU's restricted user-mode network whose only
  way out is 10.0.2.100:8080, forwarded to 127.0.0.1:PORT on the host (the local LLM server).
  --icount runs the vCPUs in one thread with guest time tied to executed instructions
  (1 ns each): timings inside the guest no longer depend on host load (Documentation/results/README.md,
  "Benchmarks", says what that buys and what it costs).
  --icount-sleep (with --icount) lets guest time follow the host clock while every vCPU is
  idle, instead of jumping to the next timer: needed when the guest waits on the host (the
  LLM server), whose answer would otherwise arrive after the guest's timeouts.
  SCHED_HINT_ACCEL picks the QEMU accelerator: /dev/kvm here is a nested hypervisor that
  hangs ordinary guests. Default: tcg, or tcg,thread=single (one host thread for all vCPUs)
  for a kernel with CONFIG_JUMP_LABEL=y, which multi-threaded TCG breaks (scripts/lib.sh).
USAGE
}

kdir= job= out= timeout_s=600 cmdline_extra= mem_mib=2048 envs=() icount=0 icount_sleep=off llm_port=
while (($#)); do
	case $1 in
	--kernel) kdir=$2; shift ;;
	--job) job=$2; shift ;;
	--out) out=$2; shift ;;
	--timeout) timeout_s=$2; shift ;;
	--env) envs+=("$2"); shift ;;
	--cmdline) cmdline_extra=$2; shift ;;
	--mem-mib) mem_mib=$2; shift ;;
	--icount) icount=1 ;;
	--icount-sleep) icount_sleep=on ;;
	--llm-port) llm_port=$2; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
[[ -n $kdir && -n $job ]] || { usage >&2; exit 2; }
image=$kdir/arch/x86/boot/bzImage
[[ -f $image ]] || sh_die "no kernel image at $image: run 'make kernel'"
[[ -f $job ]] || sh_die "no job script $job"
out=${out:-$(mktemp -d "${TMPDIR:-/tmp}/sched_hint-vm.XXXXXX")}
mkdir -p "$out"
rm -f "$out/rc" "$out/console.log" "$out/job.log" "$out/dmesg.log"
cp "$job" "$out/job.sh"
{
	printf 'export SH_ROOT=%q SH_OUT=/mnt SH_KDIR=%q SCHED_HINT_CACHE=%q\n' "$SH_ROOT" "$kdir" "$SH_CACHE"
	# The kernel's own KTAP printer, for the guest scripts that report checks.
	printf 'export SH_KTAP=%q\n' "$(sh_ksrc)/tools/testing/selftests/kselftest/ktap_helpers.sh"
	for e in "${envs[@]}"; do printf 'export %q\n' "$e"; done
} >"$out/env"

half=$((mem_mib / 2))
# A thread per vCPU kills a guest whose kernel patches its static keys (lib.sh), so such a
# kernel gets one host thread for all vCPUs unless the user picked an accelerator.
default_accel=tcg
sh_config_has "$kdir" CONFIG_JUMP_LABEL=y && default_accel=tcg,thread=single
accel=(-accel "${SCHED_HINT_ACCEL:-$default_accel}")
((icount)) && accel=(-accel tcg,thread=single -icount "shift=0,sleep=$icount_sleep,align=off")
if [[ -z ${SH_ALLOW_JUMP_LABEL_MTTCG:-} ]] && ! sh_jump_label_accel_ok "$kdir" "${accel[@]}"; then
	sh_die "$kdir has CONFIG_JUMP_LABEL=y, which multi-threaded TCG breaks (scripts/lib.sh): set SCHED_HINT_ACCEL=tcg,thread=single"
fi
qemu=(qemu-system-x86_64 "${accel[@]}" -cpu max -m "$mem_mib" -smp 4,sockets=2,cores=2,threads=1
	-object "memory-backend-ram,id=m0,size=${half}M" -object "memory-backend-ram,id=m1,size=${half}M"
	-numa node,nodeid=0,cpus=0-1,memdev=m0 -numa node,nodeid=1,cpus=2-3,memdev=m1
	-kernel "$image"
	-append "console=ttyS0 root=/dev/root rootfstype=9p rootflags=trans=virtio,version=9p2000.L,cache=loose,msize=262144 ro init=$SH_ROOT/ci/guest-init.sh panic=-1 loglevel=6 $cmdline_extra"
	-fsdev local,id=root,path=/,security_model=none,readonly=on,multidevs=remap
	-device virtio-9p-pci,fsdev=root,mount_tag=/dev/root
	-fsdev "local,id=job,path=$out,security_model=none"
	-device virtio-9p-pci,fsdev=job,mount_tag=shjob
	-fsdev "local,id=repo,path=$SH_ROOT,security_model=none,readonly=on"
	-device virtio-9p-pci,fsdev=repo,mount_tag=shroot
	-fsdev "local,id=cache,path=$SH_CACHE,security_model=none,readonly=on"
	-device virtio-9p-pci,fsdev=cache,mount_tag=shcache
	-display none -monitor none -serial stdio -no-reboot)
if [[ -n $llm_port ]]; then
	# One bridge process per guest connection (a 'tcp:' target connects only once, at start).
	bridge="$(command -v python3) $SH_ROOT/scripts/tcp_bridge.py 127.0.0.1 $llm_port"
	[[ $bridge != *,* ]] || sh_die "--llm-port: a comma in '$bridge' would split QEMU's option"
	qemu+=(-netdev "user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:8080-cmd:$bridge"
		-device virtio-net-pci,netdev=n0)
else
	qemu+=(-nic none)
fi
printf '%q ' "${qemu[@]}" >"$out/qemu.cmdline"
sh_log "booting $(basename "$kdir") kernel (log: $out/console.log)"
set +e
timeout --foreground -k 10 "$timeout_s" "${qemu[@]}" </dev/null >"$out/console.log" 2>&1
qrc=$?
set -e
if ((qrc == 124)); then
	sh_log "guest timed out after ${timeout_s}s; last console lines:"
	tail -n 30 "$out/console.log" >&2
	exit 124
fi
if [[ ! -s $out/rc ]]; then
	sh_log "guest ended without a verdict (qemu rc=$qrc); last console lines:"
	tail -n 30 "$out/console.log" >&2
	exit 125
fi
rc=$(cat "$out/rc")
[[ $rc =~ ^[0-9]+$ ]] || rc=125
exit "$rc"
