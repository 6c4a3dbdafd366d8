// SPDX-License-Identifier: GPL-2.0
/*
 * A tiny command line for /dev/sched_hint, for test scripts:
 *   sched_hint_ctl set PID CLASS [NODE [TTL_MS [FLAGS]]]
 *   sched_hint_ctl get PID
 *   sched_hint_ctl clear PID
 * CLASS is a number (SCHED_HINT_CLASS_*), NODE -1 for none. Exit status 0 on
 * success, else the errno of the failed ioctl.
 */
#include "sched_hint_util.h"

static int print_help(void)
{
	fputs("usage: sched_hint_ctl set PID CLASS [NODE [TTL_MS [FLAGS]]]\n"
	      "       sched_hint_ctl get PID\n"
	      "       sched_hint_ctl clear PID\n", stderr);
	return 2;
}

int main(int argc, char **argv)
{
	struct sched_hint h;
	int fd, ret;

	if (argc < 3)
		return print_help();
	fd = sh_open();
	if (fd < 0) {
		perror(SH_DEV);
		return errno;
	}
	h = sh_hint(atoi(argv[2]), 0, SCHED_HINT_NODE_NONE);
	if (!strcmp(argv[1], "set") && argc >= 4) {
		h.hint_class = strtoul(argv[3], NULL, 0);
		if (argc > 4)
			h.node = atoi(argv[4]);
		if (argc > 5)
			h.ttl_ms = strtoull(argv[5], NULL, 0);
		if (argc > 6)
			h.flags = strtoul(argv[6], NULL, 0);
		ret = sh_ioctl(fd, SCHED_HINT_IOC_SET, &h);
	} else if (!strcmp(argv[1], "get")) {
		ret = sh_ioctl(fd, SCHED_HINT_IOC_GET, &h);
	} else if (!strcmp(argv[1], "clear")) {
		ret = sh_ioctl(fd, SCHED_HINT_IOC_CLEAR, &h);
	} else {
		return print_help();
	}
	if (ret) {
		fprintf(stderr, "sched_hint_ctl %s: %s\n", argv[1], strerror(-ret));
		return -ret;
	}
	printf("pid=%d class=%u node=%d flags=%u source=%u ttl_ms=%llu generation=%llu\n",
	       h.target, h.hint_class, h.node, h.flags, h.source,
	       (unsigned long long)h.ttl_ms, (unsigned long long)h.generation);
	return 0;
}
