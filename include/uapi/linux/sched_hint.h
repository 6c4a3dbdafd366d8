/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * sched_hint: per-task scheduling class and preferred NUMA node hints.
 *
 * A userspace tuner tells the scheduler what a task is for (its class) and
 * where its memory lives (its preferred node). The scheduler reads the hint
 * on its fast paths; it never waits for userspace. The hints are set through
 * the misc device /dev/sched_hint with the ioctls below.
 *
 * The ioctls are extensible: the kernel takes the size of the caller's
 * struct from the command (_IOC_SIZE), so a program built against a newer
 * header, whose struct grew, calls the same ioctl. A kernel that knows a
 * larger struct zero-fills the tail; a kernel that knows a smaller one
 * accepts the call only when the unknown tail is all zero, else fails with
 * E2BIG and writes the size it knows into the size field. Every struct
 * starts with a __u32 size, which must equal the command's size (EINVAL
 * otherwise). Reserved fields must be zero. Every __u64 sits at a multiple
 * of 8 and every struct grows in steps of 8 bytes, so that 32-bit and
 * 64-bit programs share one layout.
 */
#ifndef _UAPI_LINUX_SCHED_HINT_H
#define _UAPI_LINUX_SCHED_HINT_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define SCHED_HINT_ABI_VERSION		1

/* Classes, from most to least eager to run. */
#define SCHED_HINT_CLASS_NONE		0
#define SCHED_HINT_CLASS_LATENCY	1
#define SCHED_HINT_CLASS_INTERACTIVE	2
#define SCHED_HINT_CLASS_THROUGHPUT	3
#define SCHED_HINT_CLASS_BATCH		4
#define SCHED_HINT_CLASS_BACKGROUND	5
#define SCHED_HINT_NR_CLASSES		6

/* No preferred node. */
#define SCHED_HINT_NODE_NONE		(-1)

/* Hint flags. */
#define SCHED_HINT_F_NODE_STRICT	(1U << 0) /* keep the task on its node */
#define SCHED_HINT_F_INHERIT		(1U << 1) /* children of fork/clone inherit */
#define SCHED_HINT_F_KEEP_ON_EXEC	(1U << 2) /* survive execve() */
#define SCHED_HINT_F_ALL		(SCHED_HINT_F_NODE_STRICT | \
					 SCHED_HINT_F_INHERIT | \
					 SCHED_HINT_F_KEEP_ON_EXEC)

/*
 * Longest TTL a hint may have: seven days. A tuner refreshes its hints long
 * before; a longer value is refused with EINVAL rather than cut short.
 */
#define SCHED_HINT_TTL_MAX_MS		(7ULL * 24 * 60 * 60 * 1000)

/* Who set the hint; stored and reported back, never interpreted. */
#define SCHED_HINT_SRC_UNKNOWN		0
#define SCHED_HINT_SRC_ADMIN		1
#define SCHED_HINT_SRC_RULE		2
#define SCHED_HINT_SRC_HEURISTIC	3
#define SCHED_HINT_SRC_MODEL		4
#define SCHED_HINT_NR_SOURCES		5

/* How struct sched_hint.target is read. */
#define SCHED_HINT_TARGET_PID		0 /* a pid in the caller's pid namespace */
#define SCHED_HINT_TARGET_PIDFD		1 /* a pidfd, immune to pid reuse */

/* Which tasks of the target. */
#define SCHED_HINT_SCOPE_THREAD		0 /* the one task */
#define SCHED_HINT_SCOPE_PROCESS	1 /* every thread of its thread group */

/**
 * struct sched_hint - one hint, for SET, GET and CLEAR
 * @size:	sizeof(struct sched_hint) as userspace knows it
 * @target_type: SCHED_HINT_TARGET_*
 * @target:	the pid or pidfd
 * @scope:	SCHED_HINT_SCOPE_*; GET with PROCESS reads the group leader
 * @hint_class:	SCHED_HINT_CLASS_*
 * @node:	preferred NUMA node, or SCHED_HINT_NODE_NONE
 * @flags:	SCHED_HINT_F_*
 * @source:	SCHED_HINT_SRC_*
 * @ttl_ms:	SET: lifetime in ms, 0 for no expiry, at most
 *		SCHED_HINT_TTL_MAX_MS; GET: ms left, 0 for none
 * @generation:	out: the generation of the target's hint after the call
 * @__reserved:	must be zero
 */
struct sched_hint {
	__u32	size;
	__u32	target_type;
	__s32	target;
	__u32	scope;
	__u32	hint_class;
	__s32	node;
	__u32	flags;
	__u32	source;
	__u64	ttl_ms;
	__u64	generation;
	__u64	__reserved[2];
};

#define SCHED_HINT_SIZE_VER0		64

/* Bits of node_mask: one per possible node id. */
#define SCHED_HINT_MAX_NODES		1024

/**
 * struct sched_hint_info - what the running kernel supports, for GET_INFO
 * @size:	sizeof as userspace knows it; left as it is, but for E2BIG
 * @abi_version: SCHED_HINT_ABI_VERSION
 * @nr_classes:	SCHED_HINT_NR_CLASSES
 * @flags_supported: SCHED_HINT_F_* the kernel understands
 * @enabled:	1 while hints are honoured, 0 after the kill switch
 * @nr_node_ids: one past the highest possible node id
 * @hint_size:	sizeof(struct sched_hint) as the kernel knows it
 * @info_size:	sizeof(struct sched_hint_info) as the kernel knows it
 * @node_mask:	bitmap of the online nodes that have CPUs (bit n of word n / 64)
 * @__reserved:	must be zero
 *
 * Only @size and @__reserved are read; the rest is output.
 */
struct sched_hint_info {
	__u32	size;
	__u32	abi_version;
	__u32	nr_classes;
	__u32	flags_supported;
	__u32	enabled;
	__u32	nr_node_ids;
	__u32	hint_size;
	__u32	info_size;
	__u64	node_mask[SCHED_HINT_MAX_NODES / 64];
	__u64	__reserved[4];
};

#define SCHED_HINT_INFO_SIZE_VER0	192

/* Upper bound of sched_hint_batch.count. */
#define SCHED_HINT_BATCH_MAX		4096

/**
 * struct sched_hint_batch - many SETs in one call, for SET_BATCH
 * @size:	sizeof(struct sched_hint_batch) as userspace knows it
 * @count:	number of entries, at most SCHED_HINT_BATCH_MAX
 * @entries:	user pointer to @count struct sched_hint, each @entry_size bytes
 * @results:	user pointer to @count __s32: 0 or a negative errno per entry
 * @entry_size:	sizeof(struct sched_hint) as userspace knows it
 * @nr_ok:	out: number of entries that were applied
 * @__reserved:	must be zero
 *
 * Before any entry is applied every @results slot is set to -ECANCELED
 * (not attempted); a @results array that cannot be written fails the call
 * with EFAULT and nothing applied. One bad entry, one that cannot be read
 * (-EFAULT) included, does not stop the others. A slot that can no longer
 * be written stops the batch (EFAULT; the entry of that slot was applied).
 * Once entries have been attempted, @nr_ok is written back: the number of
 * entries applied.
 */
struct sched_hint_batch {
	__u32	size;
	__u32	count;
	__u64	entries;
	__u64	results;
	__u32	entry_size;
	__u32	nr_ok;
	__u64	__reserved[2];
};

#define SCHED_HINT_BATCH_SIZE_VER0	48

#define SCHED_HINT_IOC_MAGIC		0xE7

#define SCHED_HINT_IOC_GET_INFO		_IOWR(SCHED_HINT_IOC_MAGIC, 0x00, struct sched_hint_info)
#define SCHED_HINT_IOC_SET		_IOWR(SCHED_HINT_IOC_MAGIC, 0x01, struct sched_hint)
#define SCHED_HINT_IOC_GET		_IOWR(SCHED_HINT_IOC_MAGIC, 0x02, struct sched_hint)
#define SCHED_HINT_IOC_CLEAR		_IOWR(SCHED_HINT_IOC_MAGIC, 0x03, struct sched_hint)
#define SCHED_HINT_IOC_SET_BATCH	_IOWR(SCHED_HINT_IOC_MAGIC, 0x04, struct sched_hint_batch)

#endif /* _UAPI_LINUX_SCHED_HINT_H */
