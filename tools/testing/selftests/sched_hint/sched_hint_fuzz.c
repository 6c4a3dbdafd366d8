// SPDX-License-Identifier: GPL-2.0
/*
 * Random ioctls on /dev/sched_hint: commands, command sizes, struct sizes,
 * flags, pointers, pids, pidfds and nodes, valid and not, while threads
 * come and go. The kernel
 * must answer each with a result, never a crash; the caller checks dmesg
 * for splats (KASAN, lockdep, WARN) afterwards.
 *
 *   sched_hint_fuzz [CALLS [SEED]]
 */
#include "sched_hint_util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64*: reproducible from the seed that is printed. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

static uint64_t pick(const uint64_t *v, int n)
{
	return v[rnd() % n];
}

static atomic_int churn_stop;
static atomic_int recent_tid;

static void *short_lived(void *arg)
{
	recent_tid = sh_gettid();
	return arg;
}

static void *churn(void *arg)
{
	pthread_t t;

	while (!churn_stop) {
		if (!pthread_create(&t, NULL, short_lived, NULL))
			pthread_join(t, NULL);
	}
	return arg;
}

static char *unmapped;
static char *buf;	/* 2 pages, the second PROT_NONE */
static long page;

static void *random_ptr(void *good)
{
	switch (rnd() % 8) {
	case 0: return NULL;
	case 1: return (void *)(uintptr_t)(rnd() % 4096);
	case 2: return unmapped;
	case 3: return buf + page - (rnd() % 64);	/* straddles into PROT_NONE */
	case 4: return (void *)0xffff888000000000ULL;	/* kernel address */
	case 5: return (void *)(uintptr_t)rnd();
	default: return good;
	}
}

static int32_t random_pid(void)
{
	static const uint64_t special[] = { 0, 1, 2, (uint64_t)-1, 0x3ffffff0, 0x7fffffff };

	switch (rnd() % 6) {
	case 0: return (int32_t)pick(special, 6);
	case 1: return (int32_t)(rnd() % 2000);
	case 2: return recent_tid;
	case 3: return (int32_t)rnd();
	default: return sh_gettid();
	}
}

static void random_hint(struct sched_hint *h, int pidfd)
{
	static const uint64_t sizes[] = { 0, 4, 32, 56, 63, 64, 65, 72, 128, 4096, 4097, 1 << 20 };
	static const uint64_t nodes[] = {
		(uint64_t)-1, 0, 1, 2, 3, 63, 64, 1023, 1024, (uint64_t)INT32_MIN,
	};
	int i;

	memset(h, 0, sizeof(*h));
	h->size = rnd() % 4 ? sizeof(*h) : (uint32_t)pick(sizes, 12);
	if (rnd() % 6)
		h->target_type = SCHED_HINT_TARGET_PID;
	else
		h->target_type = rnd() % 2 ? SCHED_HINT_TARGET_PIDFD : (uint32_t)rnd();
	h->target = h->target_type == SCHED_HINT_TARGET_PIDFD && rnd() % 2 ? pidfd : random_pid();
	h->scope = rnd() % 5 ? (uint32_t)(rnd() % 2) : (uint32_t)rnd();
	h->hint_class = rnd() % 5 ? (uint32_t)(rnd() % SCHED_HINT_NR_CLASSES) : (uint32_t)rnd();
	h->node = rnd() % 3 ? (int32_t)pick(nodes, 10) : (int32_t)rnd();
	h->flags = rnd() % 3 ? (uint32_t)(rnd() & SCHED_HINT_F_ALL) : (uint32_t)rnd();
	h->source = rnd() % 4 ? (uint32_t)(rnd() % SCHED_HINT_NR_SOURCES) : (uint32_t)rnd();
	h->ttl_ms = rnd() % 3 ? rnd() % 2000 : rnd();
	for (i = 0; i < 2; i++)
		h->__reserved[i] = rnd() % 16 ? 0 : rnd();
}

int main(int argc, char **argv)
{
	static const unsigned long cmds[5] = {
		SCHED_HINT_IOC_GET_INFO, SCHED_HINT_IOC_SET, SCHED_HINT_IOC_GET,
		SCHED_HINT_IOC_CLEAR, SCHED_HINT_IOC_SET_BATCH,
	};
	long calls = argc > 1 ? atol(argv[1]) : 100000, i, ok = 0;
	uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 0) : (uint64_t)time(NULL);
	struct sched_hint entries[64];
	__s32 results[64];
	pthread_t churner;
	int fd, pidfd, errs[256] = { 0 };

	rng_state = seed | 1;
	page = sysconf(_SC_PAGESIZE);
	fd = sh_open();
	if (fd < 0) {
		perror(SH_DEV);
		return 1;
	}
	buf = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unmapped = mmap(NULL, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED || unmapped == MAP_FAILED || mprotect(buf + page, page, PROT_NONE))
		return 1;
	pidfd = sh_pidfd_open(getpid());
	pthread_create(&churner, NULL, churn, NULL);
	printf("# fuzz: %ld calls, seed %llu\n", calls, (unsigned long long)seed);

	for (i = 0; i < calls; i++) {
		unsigned long cmd = rnd() % 10 ? cmds[rnd() % 5] : (unsigned long)rnd();
		void *arg;
		int ret, j;

		if (cmd == SCHED_HINT_IOC_SET_BATCH) {
			struct sched_hint_batch *b = (void *)buf;
			int n = rnd() % 65;

			for (j = 0; j < n; j++)
				random_hint(&entries[j], pidfd);
			memset(b, 0, sizeof(*b));
			b->size = rnd() % 8 ? sizeof(*b) : (uint32_t)(rnd() % 128);
			b->count = rnd() % 8 ? (uint32_t)n : (uint32_t)rnd();
			b->entries = (uint64_t)(uintptr_t)random_ptr(entries);
			b->results = (uint64_t)(uintptr_t)random_ptr(results);
			b->entry_size = rnd() % 8 ? sizeof(entries[0]) : (uint32_t)(rnd() % 256);
			if (rnd() % 16 == 0)
				b->__reserved[0] = rnd();
			arg = random_ptr(b);
		} else if (cmd == SCHED_HINT_IOC_GET_INFO) {
			struct sched_hint_info *info = (void *)buf;

			memset(info, 0, sizeof(*info));
			info->size = rnd() % 4 ? sizeof(*info) : (uint32_t)(rnd() % 8192);
			arg = random_ptr(info);
		} else {
			random_hint((struct sched_hint *)buf, pidfd);
			arg = random_ptr(buf);
		}
		/* The size in the command is the caller's struct size: vary it too. */
		if (rnd() % 8 == 0)
			cmd = _IOC(_IOC_DIR(cmd), _IOC_TYPE(cmd), _IOC_NR(cmd),
				   rnd() % 2 ? rnd() % 256 : rnd() % (_IOC_SIZEMASK + 1));
		ret = sh_ioctl(fd, cmd, arg);
		if (!ret)
			ok++;
		errs[-ret & 255]++;
	}
	churn_stop = 1;
	pthread_join(churner, NULL);
	sh_set(fd, 0, SCHED_HINT_CLASS_NONE, 0, 0);
	printf("# fuzz: %ld succeeded", ok);
	for (i = 1; i < 256; i++)
		if (errs[i])
			printf(", %s %d", strerror((int)i), errs[i]);
	printf("\n");
	close(fd);
	return 0;
}
