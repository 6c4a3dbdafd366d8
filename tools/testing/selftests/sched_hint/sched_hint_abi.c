// SPDX-License-Identifier: GPL-2.0
/*
 * One program, built twice: against include/uapi/linux/sched_hint.h as it
 * is (sched_hint_abi), and against a copy in which struct sched_hint grew
 * by a field, as a later header may make it (sched_hint_abi_next, built
 * with -DSH_NEXT_HEADER and that copy first on the include path). Both
 * must work on this kernel: the ioctls take the struct size from the
 * command, so a program built against either header reaches them.
 */
#include "sched_hint_util.h"

#include <assert.h>

#include "kselftest_harness.h"

#ifdef SH_NEXT_HEADER
static_assert(sizeof(struct sched_hint) > SCHED_HINT_SIZE_VER0, "the grown header is not used");
#else
static_assert(sizeof(struct sched_hint) == SCHED_HINT_SIZE_VER0, "the header has grown");
#endif

FIXTURE(abi) {
	int fd;
};

FIXTURE_SETUP(abi)
{
	self->fd = sh_open();
	if (self->fd < 0)
		SKIP(return, "cannot open %s: %s", SH_DEV, strerror(errno));
	TH_LOG("struct sched_hint: %zu bytes", sizeof(struct sched_hint));
}

FIXTURE_TEARDOWN(abi)
{
	if (self->fd >= 0) {
		sh_clear(self->fd, 0);
		close(self->fd);
	}
}

TEST_F(abi, set_get_clear)
{
	struct sched_hint h, got;

	h = sh_hint(0, SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE);
	ASSERT_EQ(0, sh_ioctl(self->fd, SCHED_HINT_IOC_SET, &h));
	EXPECT_NE(0, h.generation);
	got = sh_hint(0, 0, 0);
	ASSERT_EQ(0, sh_ioctl(self->fd, SCHED_HINT_IOC_GET, &got));
	EXPECT_EQ(SCHED_HINT_CLASS_BATCH, got.hint_class);
	EXPECT_EQ(h.generation, got.generation);
	ASSERT_EQ(0, sh_clear(self->fd, 0));
}

#ifdef SH_NEXT_HEADER
/* The field this kernel does not know: zero is accepted, anything else is E2BIG. */
TEST_F(abi, unknown_field)
{
	struct sched_hint h = sh_hint(0, SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE);

	h.next_field = 1;
	EXPECT_EQ(-E2BIG, sh_ioctl(self->fd, SCHED_HINT_IOC_SET, &h));
	EXPECT_EQ(SCHED_HINT_SIZE_VER0, h.size);
}
#endif

TEST_F(abi, batch_and_info)
{
	struct sched_hint_info info;
	struct sched_hint_batch b;
	struct sched_hint e[2];
	__s32 res[2];

	e[0] = sh_hint(0, SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE);
	e[1] = sh_hint(0, SCHED_HINT_CLASS_BACKGROUND, SCHED_HINT_NODE_NONE);
	memset(&b, 0, sizeof(b));
	b.size = sizeof(b);
	b.count = 2;
	b.entries = (__u64)(unsigned long)e;
	b.results = (__u64)(unsigned long)res;
	b.entry_size = sizeof(e[0]);
	ASSERT_EQ(0, sh_ioctl(self->fd, SCHED_HINT_IOC_SET_BATCH, &b));
	EXPECT_EQ(2, b.nr_ok);
	EXPECT_EQ(0, res[0]);
	EXPECT_EQ(0, res[1]);

	memset(&info, 0, sizeof(info));
	info.size = sizeof(info);
	ASSERT_EQ(0, sh_ioctl(self->fd, SCHED_HINT_IOC_GET_INFO, &info));
	EXPECT_EQ(SCHED_HINT_SIZE_VER0, info.hint_size);
}

TEST_HARNESS_MAIN
