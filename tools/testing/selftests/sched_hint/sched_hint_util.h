/* SPDX-License-Identifier: GPL-2.0 */
/* Helpers shared by the sched_hint selftests. */
#ifndef SCHED_HINT_UTIL_H
#define SCHED_HINT_UTIL_H

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/sched_hint.h>

#define SH_DEV		"/dev/sched_hint"
#define SH_SYSFS	"/sys/kernel/sched_hint"

static inline int sh_open(void)
{
	return open(SH_DEV, O_RDWR | O_CLOEXEC);
}

/* An ioctl's result as 0 or -errno, so that tests compare one value. */
static inline int sh_ioctl(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) < 0 ? -errno : 0;
}

static inline pid_t sh_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* The name of a class, as sysfs spells it. */
static inline const char *sh_class_name(__u32 hint_class)
{
	static const char * const names[SCHED_HINT_NR_CLASSES] = {
		"none", "latency", "interactive", "throughput", "batch", "background",
	};

	return hint_class < SCHED_HINT_NR_CLASSES ? names[hint_class] : "?";
}

static inline struct sched_hint sh_hint(pid_t pid, __u32 hint_class, int node)
{
	struct sched_hint h;

	memset(&h, 0, sizeof(h));
	h.size = sizeof(h);
	h.target_type = SCHED_HINT_TARGET_PID;
	h.target = pid;
	h.scope = SCHED_HINT_SCOPE_THREAD;
	h.hint_class = hint_class;
	h.node = node;
	h.source = SCHED_HINT_SRC_ADMIN;
	return h;
}

static inline int sh_set(int fd, pid_t pid, __u32 hint_class, int node, __u32 flags)
{
	struct sched_hint h = sh_hint(pid, hint_class, node);

	h.flags = flags;
	return sh_ioctl(fd, SCHED_HINT_IOC_SET, &h);
}

static inline int sh_get(int fd, pid_t pid, struct sched_hint *out)
{
	*out = sh_hint(pid, 0, 0);
	return sh_ioctl(fd, SCHED_HINT_IOC_GET, out);
}

static inline int sh_clear(int fd, pid_t pid)
{
	struct sched_hint h = sh_hint(pid, 0, 0);

	return sh_ioctl(fd, SCHED_HINT_IOC_CLEAR, &h);
}

static inline int sh_pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Reads one number from a sysfs file; -errno on failure. */
static inline long long sh_sysfs_read(const char *rel)
{
	char path[256], buf[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", SH_SYSFS, rel);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return strtoll(buf, NULL, 10);
}

/* Writes a string to a sysfs file: 0 or -errno. */
static inline int sh_sysfs_write(const char *rel, const char *val)
{
	char path[256];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", SH_SYSFS, rel);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	close(fd);
	return n < 0 ? -errno : 0;
}

/* Reads the tids of @pid into @tids: how many, up to @max; 0 when it cannot. */
static inline int sh_task_tids(pid_t pid, pid_t *tids, int max)
{
	char path[64];
	struct dirent *d;
	int n = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	dir = opendir(path);
	if (!dir)
		return 0;
	while (n < max && (d = readdir(dir)))
		if (d->d_name[0] != '.')
			tids[n++] = atoi(d->d_name);
	closedir(dir);
	return n;
}

/* The CPUs of a NUMA node, from sysfs; 0 when the node does not exist. */
static inline int sh_node_cpus(int node, cpu_set_t *set)
{
	char path[128], buf[256], *p = buf;
	FILE *f;

	CPU_ZERO(set);
	snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/cpulist", node);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return 0;
	}
	fclose(f);
	while (*p && *p != '\n') {
		long a = strtol(p, &p, 10), b = a;

		if (*p == '-')
			b = strtol(p + 1, &p, 10);
		for (; a <= b; a++)
			CPU_SET(a, set);
		if (*p == ',')
			p++;
	}
	return CPU_COUNT(set);
}

/*
 * Runs @fn(@arg) in a child as uid/gid 65534 without capabilities, with
 * RLIMIT_NICE set to @nice unless it is NULL: the child's exit code, 100
 * when it could not become 65534, -1 when it did not exit.
 */
static inline int sh_as_nobody(int (*fn)(void *), void *arg, const struct rlimit *nice)
{
	pid_t child = fork();
	int status;

	if (child < 0)
		return -1;
	if (!child) {
		if ((nice && setrlimit(RLIMIT_NICE, nice)) || setgroups(0, NULL) ||
		    setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
			_exit(100);
		_exit(fn(arg));
	}
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* struct sched_attr at SCHED_ATTR_SIZE_VER0; glibc may not have it. */
struct sh_sched_attr {
	__u32	size;
	__u32	sched_policy;
	__u64	sched_flags;
	__s32	sched_nice;
	__u32	sched_priority;
	__u64	sched_runtime;
	__u64	sched_deadline;
	__u64	sched_period;
};

/* sched_getattr(@pid): 0 or -errno. */
static inline int sh_sched_getattr(pid_t pid)
{
	struct sh_sched_attr attr;

	return syscall(SYS_sched_getattr, pid, &attr, sizeof(attr), 0) ? -errno : 0;
}

static inline double sh_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

#endif /* SCHED_HINT_UTIL_H */
