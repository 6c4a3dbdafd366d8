// SPDX-License-Identifier: GPL-2.0
/*
 * ioctl cost: median latency of a single SET, and of a 1,000-entry
 * SET_BATCH over 1,000 live threads, with a GET_INFO round trip as the
 * baseline of a bare ioctl in the same run.
 *
 *   sched_hint_bench [ROUNDS]
 */
#include "sched_hint_util.h"

#include <pthread.h>
#include <stdatomic.h>

#define NR_THREADS 1000

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[n / 2];
}

static atomic_int tids[NR_THREADS];
static atomic_int go_home;

static void *parked(void *arg)
{
	tids[(long)arg] = sh_gettid();
	while (!go_home)
		usleep(100000);
	return NULL;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 2000, i, fd = sh_open();
	static struct sched_hint entries[NR_THREADS];
	static __s32 results[NR_THREADS];
	static pthread_t threads[NR_THREADS];
	struct sched_hint_info info;
	struct sched_hint_batch b;
	double *t = calloc(rounds, sizeof(double)), t_info, t_set, t_batch;
	pthread_attr_t attr;

	if (fd < 0 || !t) {
		perror(SH_DEV);
		return 1;
	}
	for (i = 0; i < rounds; i++) {
		double t0 = sh_now_us();

		info.size = sizeof(info);
		if (sh_ioctl(fd, SCHED_HINT_IOC_GET_INFO, &info))
			return 1;
		t[i] = sh_now_us() - t0;
	}
	t_info = median(t, rounds);

	for (i = 0; i < rounds; i++) {
		__u32 cls = i & 1 ? SCHED_HINT_CLASS_BATCH : SCHED_HINT_CLASS_THROUGHPUT;
		double t0 = sh_now_us();

		if (sh_set(fd, 0, cls, SCHED_HINT_NODE_NONE, 0))
			return 1;
		t[i] = sh_now_us() - t0;
	}
	t_set = median(t, rounds);

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	for (i = 0; i < NR_THREADS; i++)
		if (pthread_create(&threads[i], &attr, parked, (void *)(long)i))
			return 1;
	for (i = 0; i < NR_THREADS; i++)
		while (!tids[i])
			usleep(1000);
	memset(&b, 0, sizeof(b));
	b.size = sizeof(b);
	b.count = NR_THREADS;
	b.entries = (__u64)(unsigned long)entries;
	b.results = (__u64)(unsigned long)results;
	b.entry_size = sizeof(entries[0]);
	for (i = 0; i < 20; i++) {
		double t0;
		int j;

		for (j = 0; j < NR_THREADS; j++)
			entries[j] = sh_hint(tids[j], i & 1 ? SCHED_HINT_CLASS_BATCH
							 : SCHED_HINT_CLASS_BACKGROUND,
					     SCHED_HINT_NODE_NONE);
		t0 = sh_now_us();
		if (sh_ioctl(fd, SCHED_HINT_IOC_SET_BATCH, &b) || b.nr_ok != NR_THREADS)
			return 1;
		t[i] = sh_now_us() - t0;
	}
	t_batch = median(t, 20);
	go_home = 1;
	for (i = 0; i < NR_THREADS; i++)
		pthread_join(threads[i], NULL);

	printf("# ioctl bench (medians): GET_INFO %.1f us, SET %.1f us (%.2fx GET_INFO)\n",
	       t_info, t_set, t_set / t_info);
	printf("# ioctl bench (medians): SET_BATCH x%d %.0f us (%.2f us per entry, %.2fx a SET)\n",
	       NR_THREADS, t_batch, t_batch / NR_THREADS, t_batch / NR_THREADS / t_set);
	printf("ioctl_get_info_us=%.2f ioctl_set_us=%.2f ioctl_batch1000_us=%.1f\n",
	       t_info, t_set, t_batch);
	return 0;
}
