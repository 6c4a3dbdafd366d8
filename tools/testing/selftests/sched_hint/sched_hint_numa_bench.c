// SPDX-License-Identifier: GPL-2.0
/*
 * NUMA placement of a memory-bound task: its memory is first touched on
 * node 0, then the task runs unpinned, optionally hinted to node 1, and
 * keeps touching the memory. Reports the share of CPU samples on node 1
 * and the share of the buffer's pages on node 1 at the end, as NUMA
 * balancing (which takes the hinted node as preferred) moves them.
 *
 *   sched_hint_numa_bench [--hint] [--first-touch NODE] [SECONDS [MIB]]
 */
#include "sched_hint_util.h"

#include <sys/mman.h>

/* Pages of the mapping at @addr per node, from /proc/self/numa_maps. */
static void pages_per_node(void *addr, long *n0, long *n1)
{
	char line[4096], want[32];
	FILE *f = fopen("/proc/self/numa_maps", "r");

	*n0 = *n1 = 0;
	if (!f)
		return;
	snprintf(want, sizeof(want), "%lx ", (unsigned long)addr);
	while (fgets(line, sizeof(line), f)) {
		char *p;

		if (strncmp(line, want, strlen(want)))
			continue;
		p = strstr(line, " N0=");
		if (p)
			*n0 = atol(p + 4);
		p = strstr(line, " N1=");
		if (p)
			*n1 = atol(p + 4);
	}
	fclose(f);
}

int main(int argc, char **argv)
{
	int hint = 0, first = 0, i = 1;
	double seconds = 20, end;
	long mib = 128, page = sysconf(_SC_PAGESIZE), samples = 0, on1 = 0, n0, n1;
	cpu_set_t node0, node1, all, touch;
	size_t len, off;
	char *buf;
	int fd = -1;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--hint"))
			hint = 1;
		else if (!strcmp(argv[i], "--first-touch") && i + 1 < argc)
			first = atoi(argv[++i]);
		else
			return 2;
	}
	if (i < argc)
		seconds = atof(argv[i++]);
	if (i < argc)
		mib = atol(argv[i++]);
	len = (size_t)mib << 20;
	if (!sh_node_cpus(0, &node0) || !sh_node_cpus(1, &node1)) {
		fprintf(stderr, "needs NUMA nodes 0 and 1 with CPUs\n");
		return 4;
	}
	CPU_OR(&all, &node0, &node1);
	buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return 1;
	/* First touch on one node. */
	touch = first ? node1 : node0;
	if (sched_setaffinity(0, sizeof(touch), &touch))
		return 1;
	for (off = 0; off < len; off += page)
		buf[off] = 1;
	if (sched_setaffinity(0, sizeof(all), &all))
		return 1;
	if (hint) {
		fd = sh_open();
		if (fd < 0 || sh_set(fd, 0, SCHED_HINT_CLASS_THROUGHPUT, 1, 0)) {
			perror("sched_hint");
			return 1;
		}
	}
	end = sh_now_us() + seconds * 1e6;
	while (sh_now_us() < end) {
		/* Every page: the share reported is of the whole buffer. */
		for (off = 0; off < len; off += page)
			buf[off]++;
		samples++;
		if (CPU_ISSET(sched_getcpu(), &node1))
			on1++;
	}
	pages_per_node(buf, &n0, &n1);
	printf("numa_hint=%d cpu_share_node1=%.4f page_share_node1=%.4f ",
	       hint, (double)on1 / samples, n0 + n1 ? (double)n1 / (n0 + n1) : 0.0);
	printf("pages_node0=%ld pages_node1=%ld samples=%ld\n", n0, n1, samples);
	if (fd >= 0)
		sh_clear(fd, 0);
	return 0;
}
