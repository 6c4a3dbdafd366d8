#!/bin/bash
# PID 1 of the sched_hint test guest. The guest's root is the host's / over virtio 9p
# (read-only); the job folder the host prepared is mounted on /mnt. Runs /mnt/job.sh,
# prints its exit status on the console, keeps it in /mnt/rc and powers off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/tmp TMPDIR=/tmp LANG=C.UTF-8

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t debugfs debugfs /sys/kernel/debug
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 shjob /mnt
ip link set lo up 2>/dev/null

# The repository and the cache are shared on their own too: when they live under a folder
# the guest mounts over (/tmp, /run), they reappear at their host paths.
mount_share() {	# mount_share TAG PATH
	[[ -n $2 && ! -d $2 ]] || return 0
	case $2 in
	/tmp/* | /run/* | /dev/* | /mnt/*) mkdir -p "$2" && mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,ro "$1" "$2" ;;
	esac
}

# QEMU's user-mode network, when the host gave one (scripts/vm-run.sh --llm-port).
if [[ -e /sys/class/net/eth0 ]]; then
	ip link set eth0 up
	ip addr add 10.0.2.15/24 dev eth0
	ip route add default via 10.0.2.2
fi

rc=1
if [[ -r /mnt/job.sh ]]; then
	[[ -r /mnt/env ]] && source /mnt/env
	mount_share shroot "${SH_ROOT:-}"
	mount_share shcache "${SCHED_HINT_CACHE:-}"
	cd /tmp || true
	# To a file, not through a pipe: a process the job leaves behind must not hold up the end.
	bash /mnt/job.sh >/mnt/job.log 2>&1 </dev/null
	rc=$?
	cat /mnt/job.log
else
	echo "guest-init: no /mnt/job.sh"
fi
dmesg >/mnt/dmesg.log 2>&1
echo "$rc" >/mnt/rc
echo "SCHED_HINT_VM_RC=$rc"
sync
busybox poweroff -f
