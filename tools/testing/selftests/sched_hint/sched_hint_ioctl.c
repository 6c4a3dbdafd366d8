// SPDX-License-Identifier: GPL-2.0
/*
 * The ABI of /dev/sched_hint: GET_INFO, SET, GET, CLEAR and SET_BATCH,
 * every errno path, pidfd targets, TTL expiry, the sysfs table, the kill
 * switch, and writers racing with thousands of short-lived threads.
 *
 * Needs the sched_hint module loaded, root, and a 'nobody' uid 65534 for
 * the unprivileged cases.
 */
#include "sched_hint_util.h"

#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/time.h>
#include <sys/wait.h>

#include "kselftest_harness.h"

FIXTURE(dev) {
	int fd;
};

FIXTURE_SETUP(dev)
{
	self->fd = sh_open();
	if (self->fd < 0)
		SKIP(return, "cannot open %s: %s", SH_DEV, strerror(errno));
}

FIXTURE_TEARDOWN(dev)
{
	if (self->fd >= 0) {
		sh_clear(self->fd, getpid());
		close(self->fd);
	}
}

/* The struct of a program built against a header in which struct sched_hint_info grew. */
struct sh_grown_info {
	struct sched_hint_info info;
	__u64 tail[8];
};

#define SH_IOC_GET_INFO_GROWN	_IOWR(SCHED_HINT_IOC_MAGIC, 0x00, struct sh_grown_info)

TEST_F(dev, get_info)
{
	struct sched_hint_info info;
	struct sh_grown_info big;
	int n;

	/* Only size and the reserved words are read: the rest may hold anything. */
	memset(&info, 0xff, sizeof(info));
	memset(info.__reserved, 0, sizeof(info.__reserved));
	info.size = sizeof(info);
	ASSERT_EQ(0, sh_ioctl(self->fd, SCHED_HINT_IOC_GET_INFO, &info));
	EXPECT_EQ(sizeof(info), info.size);
	EXPECT_EQ(SCHED_HINT_INFO_SIZE_VER0, info.info_size);
	EXPECT_EQ(SCHED_HINT_ABI_VERSION, info.abi_version);
	EXPECT_EQ(SCHED_HINT_NR_CLASSES, info.nr_classes);
	EXPECT_EQ(SCHED_HINT_F_ALL, info.flags_supported);
	EXPECT_EQ(SCHED_HINT_SIZE_VER0, info.hint_size);
	EXPECT_EQ(1, info.enabled);
	EXPECT_EQ(0, info.__reserved[0]);
	for (n = 0; n < 2; n++) {
		cpu_set_t cpus;

		if (sh_node_cpus(n, &cpus))
			EXPECT_TRUE(info.node_mask[0] & (1ULL << n));
	}
	EXPECT_FALSE(info.node_mask[0] & (1ULL << 63));

	/* The same struct again, as a program that keeps it would send it. */
	ASSERT_EQ(0, sh_ioctl(self->fd, SCHED_HINT_IOC_GET_INFO, &info));

	/* Reserved words are for inputs to come. */
	info.__reserved[3] = 1;
	EXPECT_EQ(-EINVAL, sh_ioctl(self->fd, SCHED_HINT_IOC_GET_INFO, &info));

	/* A larger struct: its unknown tail must be zero, and comes back zeroed. */
	memset(&big, 0, sizeof(big));
	big.info.size = sizeof(big);
	big.tail[7] = 0xab;
	EXPECT_EQ(-E2BIG, sh_ioctl(self->fd, SH_IOC_GET_INFO_GROWN, &big));
	EXPECT_EQ(SCHED_HINT_INFO_SIZE_VER0, big.info.size);
	memset(&big, 0, sizeof(big));
	big.info.size = sizeof(big);
	ASSERT_EQ(0, sh_ioctl(self->fd, SH_IOC_GET_INFO_GROWN, &big));
	EXPECT_EQ(sizeof(big), big.info.size);
	EXPECT_EQ(SCHED_HINT_INFO_SIZE_VER0, big.info.info_size);
	for (n = 0; n < 8; n++)
		ASSERT_EQ(0, big.tail[n]);

	info.size = 8;
	EXPECT_EQ(-EINVAL, sh_ioctl(self->fd, SCHED_HINT_IOC_GET_INFO, &info));
}

TEST_F(dev, set_get_clear)
{
	struct sched_hint h = sh_hint(sh_gettid(), SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE);
	struct sched_hint got;
	__u64 g1;

	h.source = SCHED_HINT_SRC_RULE;
	h.flags = SCHED_HINT_F_INHERIT;
	ASSERT_EQ(0, sh_ioctl(self->fd, SCHED_HINT_IOC_SET, &h));
	g1 = h.generation;
	EXPECT_NE(0, g1);

	ASSERT_EQ(0, sh_get(self->fd, sh_gettid(), &got));
	EXPECT_EQ(SCHED_HINT_CLASS_BATCH, got.hint_class);
	EXPECT_EQ(SCHED_HINT_NODE_NONE, got.node);
	EXPECT_EQ(SCHED_HINT_F_INHERIT, got.flags);
	EXPECT_EQ(SCHED_HINT_SRC_RULE, got.source);
	EXPECT_EQ(0, got.ttl_ms);
	EXPECT_EQ(g1, got.generation);

	/* pid 0 is the calling thread. */
	ASSERT_EQ(0, sh_set(self->fd, 0, SCHED_HINT_CLASS_BACKGROUND, SCHED_HINT_NODE_NONE, 0));
	ASSERT_EQ(0, sh_get(self->fd, 0, &got));
	EXPECT_EQ(SCHED_HINT_CLASS_BACKGROUND, got.hint_class);
	EXPECT_GT(got.generation, g1);

	ASSERT_EQ(0, sh_clear(self->fd, sh_gettid()));
	ASSERT_EQ(0, sh_get(self->fd, sh_gettid(), &got));
	EXPECT_EQ(SCHED_HINT_CLASS_NONE, got.hint_class);
	EXPECT_EQ(SCHED_HINT_NODE_NONE, got.node);
}

static void *park(void *arg)
{
	pause();
	return arg;
}

TEST_F(dev, process_scope)
{
	struct sched_hint h = sh_hint(getpid(), SCHED_HINT_CLASS_THROUGHPUT, SCHED_HINT_NODE_NONE);
	pthread_t threads[3];
	struct sched_hint got;
	pid_t tids[16];
	int i, seen;

	for (i = 0; i < 3; i++)
		ASSERT_EQ(0, pthread_create(&threads[i], NULL, park, NULL));
	h.scope = SCHED_HINT_SCOPE_PROCESS;
	ASSERT_EQ(0, sh_ioctl(self->fd, SCHED_HINT_IOC_SET, &h));

	seen = sh_task_tids(getpid(), tids, 16);
	for (i = 0; i < seen; i++) {
		ASSERT_EQ(0, sh_get(self->fd, tids[i], &got));
		EXPECT_EQ(SCHED_HINT_CLASS_THROUGHPUT, got.hint_class);
	}
	EXPECT_EQ(4, seen);

	h.scope = SCHED_HINT_SCOPE_PROCESS;
	ASSERT_EQ(0, sh_ioctl(self->fd, SCHED_HINT_IOC_CLEAR, &h));
	for (i = 0; i < 3; i++) {
		pthread_cancel(threads[i]);
		pthread_join(threads[i], NULL);
	}
	ASSERT_EQ(0, sh_get(self->fd, getpid(), &got));
	EXPECT_EQ(SCHED_HINT_CLASS_NONE, got.hint_class);
}

TEST_F(dev, einval)
{
	pid_t me = sh_gettid();
	struct sched_hint h;

	h = sh_hint(me, SCHED_HINT_NR_CLASSES, SCHED_HINT_NODE_NONE);
	EXPECT_EQ(-EINVAL, sh_ioctl(self->fd, SCHED_HINT_IOC_SET, &h));
	h = sh_hint(me, 99, SCHED_HINT_NODE_NONE);
	EXPECT_EQ(-EINVAL, sh_ioctl(self->fd, SCHED_HINT_IOC_SET, &h));
	h = sh_hint(me, SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE);
	h.flags = 1U << 12;
	EXPECT_EQ(-EINVAL, sh_ioctl(self->fd, SCHED_HINT_IOC_SET, &h));
	h = sh_hint(me, SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE);
	h.flags = SCHED_HINT_F_NODE_STRICT;
	EXPECT_EQ(-EINVAL, sh_ioctl(self->fd, SCHED_HINT_IOC_SET, &h));
	h = sh_hint(me, SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE);
	h.__reserved[1] = 1;
	EXPECT_EQ(-EINVAL, sh_ioctl(self->fd, SCHED_HINT_IOC_SET, &h));
	h = sh_hint(me, SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE);
	h.scope = 2;
	EXPECT_EQ(-EINVAL, sh_ioctl(self->fd, SCHED_HINT_IOC_SET, &h));
	h = sh_hint(me, SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE);
	h.target_type = 9;
	EXPECT_EQ(-EINVAL, sh_ioctl(self->fd, SCHED_HINT_IOC_SET, &h));
	h = sh_hint(me, SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE);
	h.source = SCHED_HINT_NR_SOURCES;
	EXPECT_EQ(-EINVAL, sh_ioctl(self->fd, SCHED_HINT_IOC_SET, &h));
	h = sh_hint(me, SCHED_HINT_CLASS_NONE, SCHED_HINT_NODE_NONE);
	EXPECT_EQ(-EINVAL, sh_ioctl(self->fd, SCHED_HINT_IOC_SET, &h));
	h = sh_hint(-5, SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE);
	EXPECT_EQ(-EINVAL, sh_ioctl(self->fd, SCHED_HINT_IOC_SET, &h));
	h = sh_hint(2, SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE);	/* kthreadd */
	EXPECT_EQ(-EINVAL, sh_ioctl(self->fd, SCHED_HINT_IOC_SET, &h));
	h = sh_hint(me, SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE);
	h.size = SCHED_HINT_SIZE_VER0 - 8;
	EXPECT_EQ(-EINVAL, sh_ioctl(self->fd, SCHED_HINT_IOC_SET, &h));

	/* Nothing was applied by any of them. */
	ASSERT_EQ(0, sh_get(self->fd, me, &h));
	EXPECT_EQ(SCHED_HINT_CLASS_NONE, h.hint_class);
}

/* The struct of a program built against a header in which struct sched_hint grew. */
struct sh_grown_hint {
	struct sched_hint h;
	__u64 tail[2];
};

#define SH_IOC_SET_GROWN	_IOWR(SCHED_HINT_IOC_MAGIC, 0x01, struct sh_grown_hint)

TEST_F(dev, e2big)
{
	struct sh_grown_hint big;

	/* The size comes from the command: a bigger struct has its own command number. */
	memset(&big, 0, sizeof(big));
	big.h = sh_hint(sh_gettid(), SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE);
	big.h.size = sizeof(big);
	big.tail[1] = 0x1234;
	EXPECT_EQ(-E2BIG, sh_ioctl(self->fd, SH_IOC_SET_GROWN, &big));
	EXPECT_EQ(SCHED_HINT_SIZE_VER0, big.h.size);

	/* A bigger struct with a zero tail is what a newer program sends: accepted. */
	big.h.size = sizeof(big);
	big.tail[1] = 0;
	big.tail[0] = 0;
	EXPECT_EQ(0, sh_ioctl(self->fd, SH_IOC_SET_GROWN, &big));
	EXPECT_NE(0, big.h.generation);
	EXPECT_EQ(0, big.tail[0]);
	EXPECT_EQ(0, big.tail[1]);

	/* A command bigger than a page is refused, and told the size the kernel knows. */
	big.h.size = 8192;
	EXPECT_EQ(-E2BIG, sh_ioctl(self->fd, _IOC(_IOC_READ | _IOC_WRITE, SCHED_HINT_IOC_MAGIC,
						  0x01, 8192), &big));
	EXPECT_EQ(SCHED_HINT_SIZE_VER0, big.h.size);
}

/* The size field must say what the command says. */
TEST_F(dev, size_field_mismatch)
{
	struct sh_grown_hint big;
	struct sched_hint_info info;

	memset(&big, 0, sizeof(big));
	big.h = sh_hint(sh_gettid(), SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE);
	big.h.size = sizeof(big);
	EXPECT_EQ(-EINVAL, sh_ioctl(self->fd, SCHED_HINT_IOC_SET, &big));
	EXPECT_EQ(-EINVAL, sh_ioctl(self->fd, SCHED_HINT_IOC_GET, &big));
	EXPECT_EQ(-EINVAL, sh_ioctl(self->fd, SCHED_HINT_IOC_CLEAR, &big));
	big.h.size = SCHED_HINT_SIZE_VER0;
	EXPECT_EQ(-EINVAL, sh_ioctl(self->fd, SH_IOC_SET_GROWN, &big));
	memset(&info, 0, sizeof(info));
	info.size = sizeof(info) + 8;
	EXPECT_EQ(-EINVAL, sh_ioctl(self->fd, SCHED_HINT_IOC_GET_INFO, &info));
}

TEST_F(dev, esrch)
{
	struct sched_hint h;
	pid_t child;
	int status;

	child = fork();
	ASSERT_GE(child, 0);
	if (!child)
		_exit(0);
	ASSERT_EQ(child, waitpid(child, &status, 0));

	h = sh_hint(child, SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE);
	EXPECT_EQ(-ESRCH, sh_ioctl(self->fd, SCHED_HINT_IOC_SET, &h));
	EXPECT_EQ(-ESRCH, sh_ioctl(self->fd, SCHED_HINT_IOC_GET, &h));
	EXPECT_EQ(-ESRCH, sh_ioctl(self->fd, SCHED_HINT_IOC_CLEAR, &h));
	h = sh_hint(0x3ffffff0, SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE);
	EXPECT_EQ(-ESRCH, sh_ioctl(self->fd, SCHED_HINT_IOC_SET, &h));
}

/* A task in a new pid namespace cannot name tasks outside it. */
TEST_F(dev, esrch_other_pid_namespace)
{
	pid_t outside = getpid(), child;
	int status;

	if (unshare(CLONE_NEWPID))
		SKIP(return, "no pid namespaces: %s", strerror(errno));
	child = fork();
	ASSERT_GE(child, 0);
	if (!child) {
		struct sched_hint h = sh_hint(outside, SCHED_HINT_CLASS_BATCH,
					      SCHED_HINT_NODE_NONE);

		if (getpid() != 1)
			_exit(10);
		if (sh_ioctl(self->fd, SCHED_HINT_IOC_SET, &h) != -ESRCH)
			_exit(11);
		/* Our own pid 1 works. */
		h = sh_hint(1, SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE);
		if (sh_ioctl(self->fd, SCHED_HINT_IOC_SET, &h))
			_exit(12);
		_exit(0);
	}
	ASSERT_EQ(child, waitpid(child, &status, 0));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
}

/* A node that cannot be named is EINVAL, as for mbind() and set_mempolicy(). */
TEST_F(dev, bad_node)
{
	struct sched_hint_info info = { .size = sizeof(info) };
	pid_t me = sh_gettid();
	int absent = -1, n;

	ASSERT_EQ(0, sh_ioctl(self->fd, SCHED_HINT_IOC_GET_INFO, &info));
	for (n = 0; n < 64; n++) {
		if (!(info.node_mask[0] & (1ULL << n))) {
			absent = n;
			break;
		}
	}
	ASSERT_GE(absent, 0);
	EXPECT_EQ(-EINVAL, sh_set(self->fd, me, SCHED_HINT_CLASS_BATCH, absent, 0));
	EXPECT_EQ(-EINVAL, sh_set(self->fd, me, SCHED_HINT_CLASS_BATCH, 1000, 0));
	EXPECT_EQ(-EINVAL, sh_set(self->fd, me, SCHED_HINT_CLASS_BATCH, 1 << 20, 0));
	EXPECT_EQ(-EINVAL, sh_set(self->fd, me, SCHED_HINT_CLASS_BATCH, -7, 0));
	/* A bad node fails the same way for a pid that does not exist. */
	EXPECT_EQ(-EINVAL, sh_set(self->fd, 0x3ffffff0, SCHED_HINT_CLASS_BATCH, 1000, 0));
}

TEST_F(dev, enotty)
{
	struct sched_hint h = sh_hint(sh_gettid(), SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE);

	unsigned long bad_nr = _IOWR(SCHED_HINT_IOC_MAGIC, 0x3f, struct sched_hint);

	EXPECT_EQ(-ENOTTY, sh_ioctl(self->fd, bad_nr, &h));
	EXPECT_EQ(-ENOTTY, sh_ioctl(self->fd, _IOWR('x', 0x01, struct sched_hint), &h));
	EXPECT_EQ(-ENOTTY, sh_ioctl(self->fd, _IO(SCHED_HINT_IOC_MAGIC, 0x01), &h));
	EXPECT_EQ(-ENOTTY, sh_ioctl(self->fd, _IOW(SCHED_HINT_IOC_MAGIC, 0x01, struct sched_hint),
				    &h));
	/* Smaller than the first published struct. */
	EXPECT_EQ(-ENOTTY, sh_ioctl(self->fd, _IOC(_IOC_READ | _IOC_WRITE, SCHED_HINT_IOC_MAGIC,
						   0x01, SCHED_HINT_SIZE_VER0 - 8), &h));
}

TEST_F(dev, efault)
{
	long page = sysconf(_SC_PAGESIZE);
	struct sched_hint *ro, *edge;
	char *two;

	EXPECT_EQ(-EFAULT, sh_ioctl(self->fd, SCHED_HINT_IOC_SET, (void *)8));
	EXPECT_EQ(-EFAULT, sh_ioctl(self->fd, SCHED_HINT_IOC_GET_INFO, NULL));

	/* A struct that runs off the end of mapped memory. */
	two = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, two);
	ASSERT_EQ(0, munmap(two + page, page));
	edge = (void *)(two + page - 16);
	edge->size = sizeof(*edge);
	EXPECT_EQ(-EFAULT, sh_ioctl(self->fd, SCHED_HINT_IOC_SET, edge));
	EXPECT_EQ(-EFAULT, sh_ioctl(self->fd, SCHED_HINT_IOC_GET, two + page));
	munmap(two, page);

	/* GET into read-only memory: the write back faults. */
	ro = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ro);
	*ro = sh_hint(sh_gettid(), 0, 0);
	ASSERT_EQ(0, mprotect(ro, page, PROT_READ));
	EXPECT_EQ(-EFAULT, sh_ioctl(self->fd, SCHED_HINT_IOC_GET, ro));
	munmap(ro, page);
}

/* A SET whose struct cannot be written back fails before it changes anything. */
TEST_F(dev, set_readonly_changes_nothing)
{
	long page = sysconf(_SC_PAGESIZE);
	struct sched_hint *ro, got;

	ro = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ro);
	*ro = sh_hint(sh_gettid(), SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE);
	ASSERT_EQ(0, mprotect(ro, page, PROT_READ));
	EXPECT_EQ(-EFAULT, sh_ioctl(self->fd, SCHED_HINT_IOC_SET, ro));
	ASSERT_EQ(0, sh_get(self->fd, sh_gettid(), &got));
	EXPECT_EQ(SCHED_HINT_CLASS_NONE, got.hint_class);

	ASSERT_EQ(0, sh_set(self->fd, 0, SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE, 0));
	EXPECT_EQ(-EFAULT, sh_ioctl(self->fd, SCHED_HINT_IOC_CLEAR, ro));
	ASSERT_EQ(0, sh_get(self->fd, sh_gettid(), &got));
	EXPECT_EQ(SCHED_HINT_CLASS_BATCH, got.hint_class);
	munmap(ro, page);
}

static struct sched_hint_batch sh_batch(struct sched_hint *e, __s32 *res, __u32 count)
{
	struct sched_hint_batch b;

	memset(&b, 0, sizeof(b));
	b.size = sizeof(b);
	b.count = count;
	b.entries = (__u64)(unsigned long)e;
	b.results = (__u64)(unsigned long)res;
	b.entry_size = sizeof(*e);
	return b;
}

/*
 * An entry that cannot be read fails alone; a results array that cannot
 * be written fails the call before any entry is applied.
 */
TEST_F(dev, batch_faults)
{
	long page = sysconf(_SC_PAGESIZE);
	struct sched_hint_batch b;
	struct sched_hint *e, got;
	pid_t me = sh_gettid();
	__s32 *res;
	char *two;
	int per_page = page / sizeof(*e), i;

	/* Entries 0..per_page-1 on a mapped page, the next ones on an unmapped one. */
	two = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, two);
	e = (struct sched_hint *)two;
	for (i = 0; i < per_page; i++)
		e[i] = sh_hint(me, SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE);
	ASSERT_EQ(0, munmap(two + page, page));
	res = calloc(per_page + 2, sizeof(*res));
	ASSERT_NE(NULL, res);
	b = sh_batch(e, res, per_page + 2);
	ASSERT_EQ(0, sh_ioctl(self->fd, SCHED_HINT_IOC_SET_BATCH, &b));
	EXPECT_EQ(per_page, b.nr_ok);
	EXPECT_EQ(0, res[per_page - 1]);
	EXPECT_EQ(-EFAULT, res[per_page]);
	EXPECT_EQ(-EFAULT, res[per_page + 1]);
	ASSERT_EQ(0, sh_clear(self->fd, me));

	/* Results that run into an unmapped page: EFAULT, nothing applied. */
	b = sh_batch(e, (__s32 *)(two + page - 2 * sizeof(__s32)), 4);
	EXPECT_EQ(-EFAULT, sh_ioctl(self->fd, SCHED_HINT_IOC_SET_BATCH, &b));
	ASSERT_EQ(0, sh_get(self->fd, me, &got));
	EXPECT_EQ(SCHED_HINT_CLASS_NONE, got.hint_class);
	free(res);
	munmap(two, page);
}

static void sh_on_alarm(int sig)
{
}

/* A batch refused for its header counts as a rejection, as a refused SET does. */
TEST_F(dev, batch_header_refusals_are_counted)
{
	long long before = sh_sysfs_read("stats/rejected_einval");
	struct sched_hint e = sh_hint(sh_gettid(), SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE);
	struct sched_hint_batch b;
	__s32 res;

	ASSERT_GE(before, 0);
	b = sh_batch(&e, &res, 1);
	b.size = 8;
	EXPECT_EQ(-EINVAL, sh_ioctl(self->fd, SCHED_HINT_IOC_SET_BATCH, &b));
	b = sh_batch(&e, &res, SCHED_HINT_BATCH_MAX + 1);
	EXPECT_EQ(-EINVAL, sh_ioctl(self->fd, SCHED_HINT_IOC_SET_BATCH, &b));
	EXPECT_EQ(before + 2, sh_sysfs_read("stats/rejected_einval"));
}

/*
 * A signal that a handler catches does not cut a batch short: its work is
 * bounded, like one long system call's, and a caller would have to resume
 * a cut one. Only a fatal signal stops it, and its caller never sees that.
 */
TEST_F_TIMEOUT(dev, batch_runs_through_signals, 300)
{
	struct sigaction sa = { .sa_handler = sh_on_alarm };
	struct itimerval every = { { 0, 200 }, { 0, 200 } }, off = {};
	int n = SCHED_HINT_BATCH_MAX, i, round, bad = 0;
	struct sched_hint *e = calloc(n, sizeof(*e));
	__s32 *res = calloc(n, sizeof(*res));
	struct sched_hint_batch b;

	ASSERT_NE(NULL, e);
	ASSERT_NE(NULL, res);
	for (i = 0; i < n; i++)
		e[i] = sh_hint(sh_gettid(), SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE);
	ASSERT_EQ(0, sigaction(SIGALRM, &sa, NULL));	/* no SA_RESTART */
	ASSERT_EQ(0, setitimer(ITIMER_REAL, &every, NULL));
	for (round = 0; round < 20; round++) {
		b = sh_batch(e, res, n);
		if (sh_ioctl(self->fd, SCHED_HINT_IOC_SET_BATCH, &b) || b.nr_ok != n)
			bad++;
		for (i = 0; i < n; i++)
			bad += res[i] != 0;
	}
	setitimer(ITIMER_REAL, &off, NULL);
	EXPECT_EQ(0, bad);
	free(e);
	free(res);
}

/*
 * GET with process scope reads the process's leader as it is at the time
 * of the call: after a thread other than the leader calls execve(), that
 * thread, with the hint it kept.
 */
static void *exec_with_hint(void *arg)
{
	int fd = sh_open();

	if (fd < 0 || sh_set(fd, 0, SCHED_HINT_CLASS_BACKGROUND, SCHED_HINT_NODE_NONE,
			     SCHED_HINT_F_KEEP_ON_EXEC))
		_exit(3);
	close(fd);
	execlp("sleep", "sleep", "30", (char *)NULL);
	_exit(4);
}

TEST_F(dev, get_process_after_exec_from_a_thread)
{
	struct sched_hint h;
	char path[64], comm[32] = "";
	int i, status;
	pid_t child;
	FILE *f;

	child = fork();
	ASSERT_GE(child, 0);
	if (!child) {
		pthread_t t;

		if (pthread_create(&t, NULL, exec_with_hint, NULL))
			_exit(2);
		pause();
		_exit(5);
	}
	snprintf(path, sizeof(path), "/proc/%d/comm", child);
	for (i = 0; i < 500 && strncmp(comm, "sleep", 5); i++) {
		usleep(10000);
		f = fopen(path, "r");
		if (f) {
			if (!fgets(comm, sizeof(comm), f))
				comm[0] = '\0';
			fclose(f);
		}
	}
	ASSERT_EQ(0, strncmp(comm, "sleep", 5)) TH_LOG("the thread did not exec");
	h = sh_hint(child, 0, 0);
	h.scope = SCHED_HINT_SCOPE_PROCESS;
	ASSERT_EQ(0, sh_ioctl(self->fd, SCHED_HINT_IOC_GET, &h));
	EXPECT_EQ(SCHED_HINT_CLASS_BACKGROUND, h.hint_class);
	kill(child, SIGKILL);
	ASSERT_EQ(child, waitpid(child, &status, 0));
	/* The process is gone: nothing to read, by pid or as a process. */
	EXPECT_EQ(-ESRCH, sh_ioctl(self->fd, SCHED_HINT_IOC_GET, &h));
}

/*
 * A strict node hint acts like sched_setaffinity(): a node on none of
 * whose CPUs the task may run is EINVAL.
 */
TEST_F(dev, strict_node_outside_affinity)
{
	cpu_set_t node0, node1, saved;
	struct sched_hint got;
	pid_t me = sh_gettid();

	if (sh_node_cpus(0, &node0) < 1 || sh_node_cpus(1, &node1) < 1)
		SKIP(return, "needs two nodes with CPUs");
	ASSERT_EQ(0, sched_getaffinity(0, sizeof(saved), &saved));
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(node0), &node0));
	EXPECT_EQ(-EINVAL, sh_set(self->fd, me, SCHED_HINT_CLASS_BATCH, 1,
				  SCHED_HINT_F_NODE_STRICT));
	ASSERT_EQ(0, sh_get(self->fd, me, &got));
	EXPECT_EQ(SCHED_HINT_CLASS_NONE, got.hint_class);
	/* A soft preference for that node is fine, and so is the node it may use. */
	EXPECT_EQ(0, sh_set(self->fd, me, SCHED_HINT_CLASS_BATCH, 1, 0));
	EXPECT_EQ(0, sh_set(self->fd, me, SCHED_HINT_CLASS_BATCH, 0, SCHED_HINT_F_NODE_STRICT));
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(saved), &saved));
}

static int unprivileged_cases(void *arg)
{
	pid_t root_task = *(pid_t *)arg;
	int fd = sh_open();

	if (fd < 0)
		return 1;
	/* Raising a class needs CAP_SYS_NICE, also for one's own task. */
	if (sh_set(fd, 0, SCHED_HINT_CLASS_LATENCY, SCHED_HINT_NODE_NONE, 0) != -EPERM)
		return 2;
	if (sh_set(fd, 0, SCHED_HINT_CLASS_INTERACTIVE, SCHED_HINT_NODE_NONE, 0) != -EPERM)
		return 3;
	/* Lowering one's own task is fine. */
	if (sh_set(fd, 0, SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE, 0))
		return 4;
	if (sh_clear(fd, 0))
		return 5;
	/* Another user's task is out of reach, lowering or clearing. */
	if (sh_set(fd, root_task, SCHED_HINT_CLASS_BACKGROUND, SCHED_HINT_NODE_NONE, 0) != -EPERM)
		return 6;
	if (sh_clear(fd, root_task) != -EPERM)
		return 7;
	/* Class table writes need root. */
	if (sh_sysfs_write("classes/batch/slice_us", "5000") != -EACCES)
		return 8;
	close(fd);
	return 0;
}

TEST_F(dev, eperm_unprivileged)
{
	pid_t me = getpid();
	struct sched_hint got;
	int rc;

	rc = sh_as_nobody(unprivileged_cases, &me, NULL);
	if (rc == 1)
		SKIP(return, "%s is not usable by uid 65534 (mode 0666 expected)", SH_DEV);
	ASSERT_NE(100, rc) TH_LOG("cannot become uid 65534");
	EXPECT_EQ(0, rc) TH_LOG("unprivileged case %d failed", rc);
	ASSERT_EQ(0, sh_get(self->fd, me, &got));
	EXPECT_EQ(SCHED_HINT_CLASS_NONE, got.hint_class);
}

/*
 * GET asks the LSM as sched_getattr() does (security_task_getscheduler()).
 * Smack refuses a task read across two labels without a rule, unless the
 * caller has CAP_MAC_OVERRIDE: the reader here is uid 65534, labelled
 * "shcaller"; one target is labelled "shtarget", the other "shcaller".
 */
#define SH_SMACK_ATTR	"/proc/self/attr/smack/current"

struct lsm_reads {
	int getattr[2], get_pid[2], get_process[2];
};

static int smack_label_self(const char *label)
{
	int fd = open(SH_SMACK_ATTR, O_WRONLY);
	ssize_t n = -1;

	if (fd >= 0) {
		n = write(fd, label, strlen(label));
		close(fd);
	}
	return n == (ssize_t)strlen(label) ? 0 : -1;
}

static pid_t labelled_sleeper(const char *label)
{
	char path[64], got[32] = "";
	pid_t child = fork();
	int i, fd;
	ssize_t n;

	if (!child) {
		if (smack_label_self(label))
			_exit(1);
		pause();
		_exit(0);
	}
	snprintf(path, sizeof(path), "/proc/%d/attr/smack/current", child);
	for (i = 0; i < 500 && strcmp(got, label); i++) {
		fd = open(path, O_RDONLY);
		n = fd >= 0 ? read(fd, got, sizeof(got) - 1) : -1;
		got[n > 0 ? n : 0] = '\0';
		if (fd >= 0)
			close(fd);
		if (strcmp(got, label))
			usleep(10000);
	}
	return strcmp(got, label) ? -1 : child;
}

static int get_errno(int fd, pid_t pid, __u32 scope)
{
	struct sched_hint h = sh_hint(pid, 0, 0);

	h.scope = scope;
	return sh_ioctl(fd, SCHED_HINT_IOC_GET, &h);
}

TEST_F(dev, get_asks_the_lsm_as_sched_getattr_does)
{
	struct lsm_reads *r;
	pid_t target[2], reader;
	int fd, i, status;

	fd = open(SH_SMACK_ATTR, O_RDONLY);
	if (fd < 0)
		SKIP(return, "no Smack (%s: %s): no LSM here refuses a read",
		     SH_SMACK_ATTR, strerror(errno));
	close(fd);
	if (access("/sys/fs/smackfs/load2", W_OK))
		ASSERT_EQ(0, mount("smackfs", "/sys/fs/smackfs", "smackfs", 0, NULL));
	/* The reader may use the device node, whatever its label. */
	fd = open("/sys/fs/smackfs/load2", O_WRONLY);
	ASSERT_GE(fd, 0);
	ASSERT_GT(write(fd, "shcaller _ rw", 13), 0);
	close(fd);
	r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, r);
	target[0] = labelled_sleeper("shtarget");
	target[1] = labelled_sleeper("shcaller");
	ASSERT_GT(target[0], 0);
	ASSERT_GT(target[1], 0);

	reader = fork();
	ASSERT_GE(reader, 0);
	if (!reader) {
		if (smack_label_self("shcaller") || setgroups(0, NULL) ||
		    setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
			_exit(100);
		for (i = 0; i < 2; i++) {
			r->getattr[i] = sh_sched_getattr(target[i]);
			r->get_pid[i] = get_errno(self->fd, target[i], SCHED_HINT_SCOPE_THREAD);
			r->get_process[i] = get_errno(self->fd, target[i],
						      SCHED_HINT_SCOPE_PROCESS);
		}
		_exit(0);
	}
	ASSERT_EQ(reader, waitpid(reader, &status, 0));
	for (i = 0; i < 2; i++) {
		kill(target[i], SIGKILL);
		waitpid(target[i], NULL, 0);
	}
	ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));
	/* Smack did refuse, and the label alone made the difference. */
	ASSERT_EQ(-EACCES, r->getattr[0]);
	ASSERT_EQ(0, r->getattr[1]);
	for (i = 0; i < 2; i++) {
		EXPECT_EQ(r->getattr[i], r->get_pid[i]) TH_LOG("target %d, thread scope", i);
		EXPECT_EQ(r->getattr[i], r->get_process[i]) TH_LOG("target %d, process", i);
	}
	munmap(r, sizeof(*r));
}

TEST_F(dev, pidfd_target)
{
	struct sched_hint h, got;
	int pidfd, status, fd;
	pid_t child;

	child = fork();
	ASSERT_GE(child, 0);
	if (!child) {
		pause();
		_exit(0);
	}
	pidfd = sh_pidfd_open(child);
	if (pidfd < 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		SKIP(return, "pidfd_open: %s", strerror(errno));
	}

	h = sh_hint(0, SCHED_HINT_CLASS_BACKGROUND, SCHED_HINT_NODE_NONE);
	h.target_type = SCHED_HINT_TARGET_PIDFD;
	h.target = pidfd;
	EXPECT_EQ(0, sh_ioctl(self->fd, SCHED_HINT_IOC_SET, &h));
	ASSERT_EQ(0, sh_get(self->fd, child, &got));
	EXPECT_EQ(SCHED_HINT_CLASS_BACKGROUND, got.hint_class);

	/* Once the process is reaped the pidfd names nobody, even if the pid is reused. */
	kill(child, SIGKILL);
	ASSERT_EQ(child, waitpid(child, &status, 0));
	EXPECT_EQ(-ESRCH, sh_ioctl(self->fd, SCHED_HINT_IOC_SET, &h));

	/* A descriptor that is not a pidfd. */
	fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	ASSERT_GE(fd, 0);
	h.target = fd;
	EXPECT_EQ(-EBADF, sh_ioctl(self->fd, SCHED_HINT_IOC_SET, &h));
	h.target = 9999;
	EXPECT_EQ(-EBADF, sh_ioctl(self->fd, SCHED_HINT_IOC_SET, &h));
	close(fd);
	close(pidfd);
}

TEST_F(dev, batch_partial_failure)
{
	struct sched_hint e[5];
	__s32 res[5];
	struct sched_hint_batch b;
	struct sched_hint got;
	pid_t me = sh_gettid();

	e[0] = sh_hint(me, SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE);
	e[1] = sh_hint(me, 77, SCHED_HINT_NODE_NONE);
	e[2] = sh_hint(0x3ffffff0, SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE);
	e[3] = sh_hint(me, SCHED_HINT_CLASS_BATCH, 1000);
	e[4] = sh_hint(me, SCHED_HINT_CLASS_THROUGHPUT, SCHED_HINT_NODE_NONE);
	e[4].__reserved[0] = 3;
	memset(res, 0x5a, sizeof(res));
	memset(&b, 0, sizeof(b));
	b.size = sizeof(b);
	b.count = 5;
	b.entries = (__u64)(unsigned long)e;
	b.results = (__u64)(unsigned long)res;
	b.entry_size = sizeof(e[0]);
	ASSERT_EQ(0, sh_ioctl(self->fd, SCHED_HINT_IOC_SET_BATCH, &b));
	EXPECT_EQ(1, b.nr_ok);
	EXPECT_EQ(0, res[0]);
	EXPECT_EQ(-EINVAL, res[1]);
	EXPECT_EQ(-ESRCH, res[2]);
	EXPECT_EQ(-EINVAL, res[3]);
	EXPECT_EQ(-EINVAL, res[4]);
	ASSERT_EQ(0, sh_get(self->fd, me, &got));
	EXPECT_EQ(SCHED_HINT_CLASS_BATCH, got.hint_class);

	b.count = SCHED_HINT_BATCH_MAX + 1;
	EXPECT_EQ(-EINVAL, sh_ioctl(self->fd, SCHED_HINT_IOC_SET_BATCH, &b));
	b.count = 1;
	b.entry_size = 16;
	EXPECT_EQ(-EINVAL, sh_ioctl(self->fd, SCHED_HINT_IOC_SET_BATCH, &b));
	b.entry_size = sizeof(e[0]);
	b.results = 16;
	EXPECT_EQ(-EFAULT, sh_ioctl(self->fd, SCHED_HINT_IOC_SET_BATCH, &b));
	b.results = (__u64)(unsigned long)res;
	b.entries = 16;
	EXPECT_EQ(0, sh_ioctl(self->fd, SCHED_HINT_IOC_SET_BATCH, &b));
	EXPECT_EQ(-EFAULT, res[0]);
	b.__reserved[0] = 1;
	EXPECT_EQ(-EINVAL, sh_ioctl(self->fd, SCHED_HINT_IOC_SET_BATCH, &b));
}

TEST_F(dev, ttl_expiry)
{
	struct sched_hint h = sh_hint(sh_gettid(), SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE);
	long long expired = sh_sysfs_read("stats/expired");
	struct sched_hint got;
	int i;

	ASSERT_GE(expired, 0);
	h.ttl_ms = 200;
	ASSERT_EQ(0, sh_ioctl(self->fd, SCHED_HINT_IOC_SET, &h));
	ASSERT_EQ(0, sh_get(self->fd, sh_gettid(), &got));
	EXPECT_EQ(SCHED_HINT_CLASS_BATCH, got.hint_class);
	EXPECT_GT(got.ttl_ms, 0);
	EXPECT_LE(got.ttl_ms, 200);
	for (i = 0; i < 50; i++) {
		usleep(100 * 1000);
		ASSERT_EQ(0, sh_get(self->fd, sh_gettid(), &got));
		if (got.hint_class == SCHED_HINT_CLASS_NONE)
			break;
	}
	EXPECT_EQ(SCHED_HINT_CLASS_NONE, got.hint_class);
	EXPECT_GE(sh_sysfs_read("stats/expired"), expired + 1);
}

TEST(sysfs_table)
{
	long long slice = sh_sysfs_read("classes/latency/slice_us");
	long long rej = sh_sysfs_read("stats/rejected_einval");
	struct sched_hint h = sh_hint(0, 42, SCHED_HINT_NODE_NONE);
	char buf[32];
	int fd;

	if (slice == -ENOENT)
		SKIP(return, "%s not present", SH_SYSFS);
	ASSERT_GE(slice, 0);
	EXPECT_EQ(SCHED_HINT_ABI_VERSION, sh_sysfs_read("abi_version"));
	EXPECT_EQ(1, sh_sysfs_read("enabled"));
	EXPECT_EQ(-EINVAL, sh_sysfs_write("classes/latency/slice_us", "50"));
	EXPECT_EQ(-EINVAL, sh_sysfs_write("classes/latency/slice_us", "200000"));
	EXPECT_EQ(-EINVAL, sh_sysfs_write("classes/latency/slice_us", "abc"));
	EXPECT_EQ(-EINVAL, sh_sysfs_write("classes/latency/slice_us", "-1"));
	EXPECT_EQ(-ERANGE, sh_sysfs_write("classes/latency/slice_us", "99999999999"));
	EXPECT_EQ(-EINVAL, sh_sysfs_write("classes/batch/wakeup_preempt", "3"));
	EXPECT_EQ(-EINVAL, sh_sysfs_write("classes/background/idle", "2"));
	EXPECT_EQ(-EINVAL, sh_sysfs_write("enabled", "2"));
	EXPECT_EQ(slice, sh_sysfs_read("classes/latency/slice_us"));

	EXPECT_EQ(0, sh_sysfs_write("classes/latency/slice_us", "700\n"));
	EXPECT_EQ(700, sh_sysfs_read("classes/latency/slice_us"));
	snprintf(buf, sizeof(buf), "%lld", slice);
	EXPECT_EQ(0, sh_sysfs_write("classes/latency/slice_us", buf));
	EXPECT_EQ(slice, sh_sysfs_read("classes/latency/slice_us"));

	fd = sh_open();
	ASSERT_GE(fd, 0);
	EXPECT_EQ(-EINVAL, sh_ioctl(fd, SCHED_HINT_IOC_SET, &h));
	close(fd);
	EXPECT_EQ(rej + 1, sh_sysfs_read("stats/rejected_einval"));
}

TEST_F(dev, kill_switch)
{
	struct sched_hint_info info = { .size = sizeof(info) };
	struct sched_hint got;
	pid_t me = sh_gettid();

	ASSERT_EQ(0, sh_set(self->fd, me, SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE, 0));
	EXPECT_GE(sh_sysfs_read("stats/active"), 1);
	ASSERT_EQ(0, sh_sysfs_write("enabled", "0"));
	ASSERT_EQ(0, sh_get(self->fd, me, &got));
	EXPECT_EQ(SCHED_HINT_CLASS_NONE, got.hint_class);
	EXPECT_EQ(0, sh_sysfs_read("stats/active"));
	EXPECT_EQ(-EOPNOTSUPP,
		  sh_set(self->fd, me, SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE, 0));
	ASSERT_EQ(0, sh_ioctl(self->fd, SCHED_HINT_IOC_GET_INFO, &info));
	EXPECT_EQ(0, info.enabled);
	ASSERT_EQ(0, sh_sysfs_write("enabled", "1"));
	EXPECT_EQ(0, sh_set(self->fd, me, SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE, 0));
}

/* fork() keeps a hint only with SCHED_HINT_F_INHERIT; execve() drops it without KEEP_ON_EXEC. */
TEST_F(dev, fork_and_exec)
{
	int pipefd[2], status;
	struct sched_hint got;
	pid_t child;
	char c;

	ASSERT_EQ(0, sh_set(self->fd, 0, SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE, 0));
	ASSERT_EQ(0, pipe(pipefd));
	child = fork();
	ASSERT_GE(child, 0);
	if (!child) {
		close(pipefd[1]);
		read(pipefd[0], &c, 1);
		_exit(0);
	}
	ASSERT_EQ(0, sh_get(self->fd, child, &got));
	EXPECT_EQ(SCHED_HINT_CLASS_NONE, got.hint_class);
	close(pipefd[0]);
	close(pipefd[1]);
	waitpid(child, &status, 0);

	ASSERT_EQ(0, sh_set(self->fd, 0, SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE,
			    SCHED_HINT_F_INHERIT));
	ASSERT_EQ(0, pipe(pipefd));
	child = fork();
	ASSERT_GE(child, 0);
	if (!child) {
		close(pipefd[1]);
		read(pipefd[0], &c, 1);
		/* exec drops the inherited hint: sleep runs unhinted. */
		execlp("sleep", "sleep", "2", (char *)NULL);
		_exit(127);
	}
	ASSERT_EQ(0, sh_get(self->fd, child, &got));
	EXPECT_EQ(SCHED_HINT_CLASS_BATCH, got.hint_class);
	close(pipefd[0]);
	ASSERT_EQ(1, write(pipefd[1], "x", 1));
	close(pipefd[1]);
	usleep(500 * 1000);
	ASSERT_EQ(0, sh_get(self->fd, child, &got));
	EXPECT_EQ(SCHED_HINT_CLASS_NONE, got.hint_class);
	kill(child, SIGKILL);
	waitpid(child, &status, 0);
}

#define RACE_THREADS	10000
#define RACE_WRITERS	4
#define RACE_SLOTS	64

static atomic_int race_tids[RACE_SLOTS];
static atomic_int race_done;
static atomic_long race_bad, race_ok, race_gone;

static void *short_lived(void *arg)
{
	race_tids[(long)arg % RACE_SLOTS] = sh_gettid();
	return NULL;
}

static void *race_writer(void *arg)
{
	int fd = sh_open(), i = 0;

	if (fd < 0) {
		race_bad++;
		return NULL;
	}
	while (!race_done) {
		pid_t tid = race_tids[i++ % RACE_SLOTS];
		int ret;

		if (!tid)
			continue;
		ret = (i & 1) ? sh_set(fd, tid, SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE,
				       SCHED_HINT_F_INHERIT)
			      : sh_clear(fd, tid);
		if (!ret)
			race_ok++;
		else if (ret == -ESRCH)
			race_gone++;
		else
			race_bad++;
	}
	close(fd);
	return arg;
}

/* Thread creation is slow under an emulated CPU: allow minutes, not the default 30 s. */
TEST_F_TIMEOUT(dev, race_short_lived_threads, 600)
{
	pthread_t writers[RACE_WRITERS], t;
	long i;

	for (i = 0; i < RACE_WRITERS; i++)
		ASSERT_EQ(0, pthread_create(&writers[i], NULL, race_writer, NULL));
	for (i = 0; i < RACE_THREADS; i++) {
		ASSERT_EQ(0, pthread_create(&t, NULL, short_lived, (void *)i));
		ASSERT_EQ(0, pthread_join(t, NULL));
	}
	race_done = 1;
	for (i = 0; i < RACE_WRITERS; i++)
		pthread_join(writers[i], NULL);
	TH_LOG("%ld applied, %ld raced with exit (ESRCH), %ld other errors",
	       (long)race_ok, (long)race_gone, (long)race_bad);
	EXPECT_EQ(0, race_bad);
	EXPECT_GT(race_ok + race_gone, 0);
}

TEST_HARNESS_MAIN
