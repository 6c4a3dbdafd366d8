// SPDX-License-Identifier: GPL-2.0
/*
 * The permission matrix of /dev/sched_hint: callers (root, a holder of
 * CAP_SYS_NICE alone, the owner of the task, another user, root of a child
 * user namespace, root of a child pid namespace) against operations (SET of
 * every class from every class, CLEAR, GET, node hints, pidfd targets,
 * process scope), each with a target RLIMIT_NICE of 0 and of 40.
 *
 * Every row is checked against the errno that the documented rules give.
 * Where sched_setattr(), sched_getattr() or sched_setaffinity() can do the
 * same thing, the same caller also makes that syscall on an equivalent
 * target, and the two must fail (or not) alike: the hint's permissions
 * mirror theirs. The exception is on purpose: a class that raises a task
 * needs CAP_SYS_NICE, where sched_setattr() lets RLIMIT_NICE lower the nice
 * value; the rows where RLIMIT_NICE would allow that are marked "stricter"
 * and not compared.
 *
 * The whole matrix is printed as a reStructuredText simple table, each line
 * behind "# " so that the KTAP output stays valid, for
 * Documentation/userspace-api/sched_hint.rst.
 *
 * Needs root (it becomes every caller itself), /dev/sched_hint usable by
 * uid 65534 (mode 0666), the class table in sysfs and the base slice in
 * debugfs.
 */
#include "sched_hint_util.h"

#include <linux/capability.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>

#include "kselftest_harness.h"

#define UID_USER	65534	/* the unprivileged callers, and their own tasks */
#define UID_OTHER	65533	/* another user */
#define RLIMIT_HIGH	40	/* RLIMIT_NICE that allows down to nice -20 */
#define NICE0_RLIMIT	20	/* RLIMIT_NICE that allows nice 0: 20 - nice */
#define RAISE_NICE	(-5)	/* how sched_setattr() raises a task */
#define RAISE_RLIMIT	(NICE0_RLIMIT - RAISE_NICE)	/* RLIMIT_NICE that allows it */
#define MAX_ROWS	1024
#define BASE_SLICE	"/sys/kernel/debug/sched/base_slice_ns"

enum caller {
	CALLER_ROOT,
	CALLER_CAP_NICE,
	CALLER_OWNER,
	CALLER_OTHER,
	CALLER_USERNS,
	CALLER_PIDNS,
	NR_CALLERS
};

static const struct caller_info {
	const char *name;
	uid_t euid;		/* the caller's euid outside any user namespace */
	int privileged;		/* CAP_SYS_NICE in the initial user namespace */
} callers[NR_CALLERS] = {
	[CALLER_ROOT]		= { "root",		0,		1 },
	[CALLER_CAP_NICE]	= { "CAP_SYS_NICE only",	UID_USER,	1 },
	[CALLER_OWNER]		= { "owner",		UID_USER,	0 },
	[CALLER_OTHER]		= { "other user",	UID_USER,	0 },
	[CALLER_USERNS]		= { "user ns root",	UID_USER,	0 },
	[CALLER_PIDNS]		= { "pid ns root",	0,		1 },
};

enum op {
	OP_SET,		/* SET new_cls, the target in cur */
	OP_CLEAR,	/* CLEAR, the target in cur */
	OP_GET,
	OP_NODE,	/* SET batch with a node, not strict */
	OP_STRICT,	/* SET batch with a strict node the target may run on */
	OP_STRICT_OUT,	/* the same, the target pinned to the CPUs of another node */
	OP_BAD,		/* SET of a class that does not exist */
};

enum via { VIA_PID, VIA_PIDFD, VIA_PROCESS };

/* Where the target lives, seen from the caller. */
enum where { SAME_NS, OUTSIDE_PIDNS, INSIDE_PIDNS };

/* The syscall that does the same thing as the row's hint call. */
enum analog {
	AN_NONE,
	AN_SETATTR,	/* sched_setattr(apolicy, anice), the target in acur */
	AN_GETATTR,	/* sched_getattr() */
	AN_AFFINITY,	/* sched_setaffinity() to the CPUs of the node */
	AN_BADPOLICY,	/* sched_setattr() of a policy that does not exist */
};

enum state { ROW_PLANNED, ROW_READY, ROW_DONE, ROW_SKIPPED, ROW_FAILED };

struct row {
	/* The plan, written before any caller runs. */
	int caller, op, via, where;
	uid_t tuid;			/* uid of the target */
	int cur, new_cls, rlim;		/* class before the call, class set, RLIMIT_NICE */
	int expect;			/* 0 or -errno, from the rules */
	int stricter;			/* refused where sched_setattr() would allow it */
	int analog, compare;		/* AN_*; whether it must give the same errno */
	int acur, apolicy, anice;	/* AN_SETATTR: policy before, policy and nice set */
	/* Written by the caller, in shared memory. */
	pid_t pid, apid;		/* the target, the target of the syscall */
	int pidfd;
	int state, got, agot;
	const char *why;		/* ROW_SKIPPED, ROW_FAILED: what went wrong */
	int err;			/* and its errno */
	int clear_err;			/* the CLEAR by root when the target ended */
};

struct env {
	int fd;				/* root's, for the end of the targets */
	int slice_us[SCHED_HINT_NR_CLASSES];
	int preempt[SCHED_HINT_NR_CLASSES];
	int idle[SCHED_HINT_NR_CLASSES];
	int raises[SCHED_HINT_NR_CLASSES];
	long long base_slice_ns;
	int node_a, node_b;		/* first and second node with CPUs, or -1 */
	cpu_set_t cpus_a, cpus_b, cpus_all;
	struct row *rows;		/* MAP_SHARED: the callers write their results */
	int nr_rows, overflow;
};

static int sys_setattr(pid_t pid, __u32 policy, int nice)
{
	struct sh_sched_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.size = sizeof(attr);
	attr.sched_policy = policy;
	attr.sched_nice = nice;
	return syscall(SYS_sched_setattr, pid, &attr, 0) ? -errno : 0;
}

static const char *policy_name(int policy)
{
	return policy == SCHED_IDLE ? "SCHED_IDLE" :
	       policy == SCHED_BATCH ? "SCHED_BATCH" : "SCHED_OTHER";
}

static const struct {
	int err;
	const char *name;
} err_names[] = {
	{ 0, "0" }, { EPERM, "EPERM" }, { ESRCH, "ESRCH" }, { EINVAL, "EINVAL" },
	{ EBADF, "EBADF" }, { EACCES, "EACCES" }, { ENODEV, "ENODEV" },
	{ E2BIG, "E2BIG" }, { EFAULT, "EFAULT" }, { ENOMEM, "ENOMEM" },
	{ ENOTTY, "ENOTTY" }, { EOPNOTSUPP, "EOPNOTSUPP" },
};

/* The name of 0 or -errno. */
static const char *errname(int ret)
{
	int i;

	for (i = 0; i < (int)ARRAY_SIZE(err_names); i++)
		if (err_names[i].err == -ret)
			return err_names[i].name;
	return "another errno";
}

/* A number from a file: -errno on failure. */
static long long read_ll(const char *path)
{
	char buf[64];
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return n ? -errno : -EINVAL;
	buf[n] = '\0';
	return strtoll(buf, NULL, 10);
}

static int write_str(const char *path, const char *s)
{
	ssize_t n;
	int fd;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = write(fd, s, strlen(s));
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -1;
}

/* The rows of the class table as they are now; the class numbers do not count. */
static const char *read_class_table(struct env *e)
{
	static const char * const fields[] = { "slice_us", "wakeup_preempt", "idle" };
	char rel[64];
	long long v;
	int c, f;

	/* NONE has no row in sysfs: the base slice, EEVDF's wakeups, full weight. */
	e->preempt[SCHED_HINT_CLASS_NONE] = 1;
	for (c = 1; c < SCHED_HINT_NR_CLASSES; c++) {
		for (f = 0; f < (int)ARRAY_SIZE(fields); f++) {
			snprintf(rel, sizeof(rel), "classes/%s/%s", sh_class_name(c), fields[f]);
			v = sh_sysfs_read(rel);
			if (v < 0)
				return "cannot read the class table in " SH_SYSFS;
			if (f == 0)
				e->slice_us[c] = v;
			else if (f == 1)
				e->preempt[c] = v;
			else
				e->idle[c] = v;
		}
	}
	return NULL;
}

/*
 * The base slice, from debugfs; mounted in a mount namespace of our own
 * when it is not mounted, so that nothing outlives the test.
 */
static int read_base_slice(struct env *e)
{
	int c;

	e->base_slice_ns = read_ll(BASE_SLICE);
	if (e->base_slice_ns <= 0 && !unshare(CLONE_NEWNS) &&
	    !mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) &&
	    !mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL))
		e->base_slice_ns = read_ll(BASE_SLICE);
	if (e->base_slice_ns <= 0)
		return -1;
	/* As sched_hint_state_raises(): always preempts, or a slice below the base one. */
	for (c = 0; c < SCHED_HINT_NR_CLASSES; c++)
		e->raises[c] = e->preempt[c] == 2 ||
			       (e->slice_us[c] && e->slice_us[c] * 1000LL < e->base_slice_ns);
	return 0;
}

/* The first two online nodes with CPUs, as GET_INFO lists them. */
static void find_nodes(struct env *e)
{
	struct sched_hint_info info;
	cpu_set_t set;
	int n;

	e->node_a = -1;
	e->node_b = -1;
	CPU_ZERO(&e->cpus_all);
	memset(&info, 0, sizeof(info));
	info.size = sizeof(info);
	if (sh_ioctl(e->fd, SCHED_HINT_IOC_GET_INFO, &info))
		return;
	for (n = 0; n < (int)info.nr_node_ids && n < SCHED_HINT_MAX_NODES; n++) {
		if (!((info.node_mask[n / 64] >> (n % 64)) & 1) || !sh_node_cpus(n, &set))
			continue;
		CPU_OR(&e->cpus_all, &e->cpus_all, &set);
		if (e->node_a < 0) {
			e->node_a = n;
			e->cpus_a = set;
		} else if (e->node_b < 0) {
			e->node_b = n;
			e->cpus_b = set;
		}
	}
}

/*
 * What the rules say, in the kernel's order: the hint is checked before the
 * target is looked up; then, without CAP_SYS_NICE in the initial user
 * namespace, another user's task, then a raising class, then leaving a
 * class with the idle weight without RLIMIT_NICE headroom for nice 0; the
 * strict node's affinity checks come last.
 */
static int expect_of(const struct env *e, struct row *r, int new_cls)
{
	if (r->op == OP_BAD)
		return -EINVAL;
	if (r->where == OUTSIDE_PIDNS)
		return -ESRCH;
	if (r->op == OP_GET)
		return 0;
	if (!callers[r->caller].privileged) {
		if (r->tuid != callers[r->caller].euid)
			return -EPERM;
		if (e->raises[new_cls]) {
			/* Where RLIMIT_NICE would let sched_setattr() raise the task. */
			r->stricter = r->rlim >= RAISE_RLIMIT;
			return -EPERM;
		}
		if (e->idle[r->cur] && !e->idle[new_cls] && r->rlim < NICE0_RLIMIT)
			return -EPERM;
	}
	/* After the permission checks: no affinity is revealed to whoever may not touch it. */
	if (r->op == OP_STRICT_OUT)
		return -EINVAL;
	return 0;
}

/*
 * The sched_setattr() that does what a class does: a raising class is a
 * lower nice value, an idle one SCHED_IDLE, none SCHED_OTHER at nice 0 and
 * the others SCHED_BATCH. The target starts in SCHED_IDLE when its class
 * has the idle weight, so that leaving it meets the same RLIMIT_NICE check.
 */
static void plan_analog(const struct env *e, struct row *r, int new_cls)
{
	r->analog = AN_SETATTR;
	r->acur = e->idle[r->cur] ? SCHED_IDLE : SCHED_OTHER;
	r->anice = 0;
	if (e->raises[new_cls]) {
		r->apolicy = SCHED_OTHER;
		r->anice = RAISE_NICE;
	} else if (e->idle[new_cls]) {
		r->apolicy = SCHED_IDLE;
	} else if (new_cls == SCHED_HINT_CLASS_NONE) {
		r->apolicy = SCHED_OTHER;
	} else {
		r->apolicy = SCHED_BATCH;
	}
}

static void plan_row(struct env *e, const struct row *tmpl)
{
	struct row *r;
	int new_cls;

	if (e->nr_rows == MAX_ROWS) {
		e->overflow = 1;
		return;
	}
	r = &e->rows[e->nr_rows++];
	*r = *tmpl;
	new_cls = r->op == OP_CLEAR ? SCHED_HINT_CLASS_NONE : r->new_cls;
	r->expect = expect_of(e, r, new_cls);

	switch (r->op) {
	case OP_GET:
		r->analog = AN_GETATTR;
		break;
	case OP_BAD:
		/* A negative policy: the one sched_setattr() refuses before the lookup. */
		r->analog = AN_BADPOLICY;
		break;
	case OP_STRICT:
		/*
		 * sched_setaffinity() accepts CAP_SYS_NICE in the user namespace
		 * of the target, the hint (as sched_setattr()) only in the
		 * initial one. The targets here all belong to the initial one,
		 * where both agree: root of a child user namespace has no
		 * CAP_SYS_NICE over a uid 65533 task there, so both say EPERM.
		 * They would differ for another uid's task created inside that
		 * namespace, which a one-uid map cannot make.
		 */
		r->analog = AN_AFFINITY;
		break;
	case OP_STRICT_OUT:
		/* No equivalent: sched_setaffinity() would change the affinity. */
		r->analog = AN_NONE;
		break;
	default:
		plan_analog(e, r, new_cls);
		break;
	}
	/* sched_setattr() takes no pidfd. */
	if (r->via == VIA_PIDFD && r->where == OUTSIDE_PIDNS)
		r->analog = AN_NONE;
	r->compare = r->analog != AN_NONE && !r->stricter;
}

/* One operation, for each RLIMIT_NICE of the target. */
static void plan_op(struct env *e, struct row *t, int op, int via, int cur, int new_cls)
{
	t->op = op;
	t->via = via;
	t->cur = cur;
	t->new_cls = new_cls;
	t->rlim = 0;
	plan_row(e, t);
	t->rlim = RLIMIT_HIGH;
	plan_row(e, t);
}

/* Every transition when @full, else a few representative rows. */
static void plan_target(struct env *e, int caller, int where, uid_t tuid, int full)
{
	struct row t = { .caller = caller, .where = where, .tuid = tuid };
	int cur, c;

	if (full) {
		for (cur = 0; cur < SCHED_HINT_NR_CLASSES; cur++) {
			for (c = 1; c < SCHED_HINT_NR_CLASSES; c++)
				plan_op(e, &t, OP_SET, VIA_PID, cur, c);
			plan_op(e, &t, OP_CLEAR, VIA_PID, cur, SCHED_HINT_CLASS_NONE);
		}
	} else {
		plan_op(e, &t, OP_SET, VIA_PID, SCHED_HINT_CLASS_NONE, SCHED_HINT_CLASS_BATCH);
		plan_op(e, &t, OP_SET, VIA_PID, SCHED_HINT_CLASS_NONE, SCHED_HINT_CLASS_LATENCY);
		plan_op(e, &t, OP_CLEAR, VIA_PID, SCHED_HINT_CLASS_BACKGROUND,
			SCHED_HINT_CLASS_NONE);
	}
	plan_op(e, &t, OP_GET, VIA_PID, SCHED_HINT_CLASS_NONE, SCHED_HINT_CLASS_NONE);
	plan_op(e, &t, OP_NODE, VIA_PID, SCHED_HINT_CLASS_NONE, SCHED_HINT_CLASS_BATCH);
	plan_op(e, &t, OP_STRICT, VIA_PID, SCHED_HINT_CLASS_NONE, SCHED_HINT_CLASS_BATCH);
	plan_op(e, &t, OP_STRICT_OUT, VIA_PID, SCHED_HINT_CLASS_NONE, SCHED_HINT_CLASS_BATCH);
	plan_op(e, &t, OP_BAD, VIA_PID, SCHED_HINT_CLASS_NONE, SCHED_HINT_NR_CLASSES);
	plan_op(e, &t, OP_SET, VIA_PIDFD, SCHED_HINT_CLASS_NONE, SCHED_HINT_CLASS_BATCH);
	if (!full)
		return;
	plan_op(e, &t, OP_SET, VIA_PIDFD, SCHED_HINT_CLASS_NONE, SCHED_HINT_CLASS_LATENCY);
	plan_op(e, &t, OP_CLEAR, VIA_PIDFD, SCHED_HINT_CLASS_BACKGROUND, SCHED_HINT_CLASS_NONE);
	plan_op(e, &t, OP_SET, VIA_PROCESS, SCHED_HINT_CLASS_NONE, SCHED_HINT_CLASS_BATCH);
	plan_op(e, &t, OP_SET, VIA_PROCESS, SCHED_HINT_CLASS_NONE, SCHED_HINT_CLASS_LATENCY);
	plan_op(e, &t, OP_CLEAR, VIA_PROCESS, SCHED_HINT_CLASS_BACKGROUND, SCHED_HINT_CLASS_NONE);
}

static void plan(struct env *e)
{
	plan_target(e, CALLER_ROOT, SAME_NS, UID_USER, 1);
	plan_target(e, CALLER_CAP_NICE, SAME_NS, UID_OTHER, 1);
	plan_target(e, CALLER_OWNER, SAME_NS, UID_USER, 1);
	plan_target(e, CALLER_OTHER, SAME_NS, UID_OTHER, 1);
	plan_target(e, CALLER_OTHER, SAME_NS, 0, 0);
	plan_target(e, CALLER_USERNS, SAME_NS, UID_USER, 1);
	plan_target(e, CALLER_USERNS, SAME_NS, UID_OTHER, 0);
	plan_target(e, CALLER_PIDNS, OUTSIDE_PIDNS, UID_USER, 0);
	plan_target(e, CALLER_PIDNS, INSIDE_PIDNS, UID_USER, 1);
}

/* How a target is made: as root, then it becomes its uid and sleeps. */
struct tspec {
	uid_t uid;
	int rlim;
	int policy;		/* SCHED_OTHER or SCHED_IDLE, at nice 0 */
	int hint_class;		/* set by root, on every thread */
	const cpu_set_t *cpus;	/* its affinity */
	int threads;
};

enum step {
	STEP_OK, STEP_RLIMIT, STEP_POLICY, STEP_AFFINITY, STEP_THREAD, STEP_HINT,
	STEP_UID, STEP_PIPE,
};

static const char * const step_names[] = {
	[STEP_OK]	= "ok",
	[STEP_RLIMIT]	= "target: setrlimit(RLIMIT_NICE)",
	[STEP_POLICY]	= "target: sched_setattr()",
	[STEP_AFFINITY]	= "target: sched_setaffinity()",
	[STEP_THREAD]	= "target: pthread_create()",
	[STEP_HINT]	= "target: its starting hint, set by root",
	[STEP_UID]	= "target: setresuid()",
	[STEP_PIPE]	= "target: died before it was ready",
};

static void *sleeper(void *arg)
{
	for (;;)
		pause();
	return arg;
}

static int drop_to(uid_t uid)
{
	if (setgroups(0, NULL) || setresgid(uid, uid, uid) || setresuid(uid, uid, uid))
		return -1;
	return 0;
}

/* In the new target, as root: STEP_OK, or the step that failed with errno set. */
static int target_setup(int fd, const struct tspec *t)
{
	struct sched_hint h = sh_hint(0, t->hint_class, SCHED_HINT_NODE_NONE);
	struct rlimit rl = { t->rlim, t->rlim };
	pthread_t thread;
	int ret;

	if (setrlimit(RLIMIT_NICE, &rl))
		return STEP_RLIMIT;
	ret = sys_setattr(0, t->policy, 0);
	if (ret) {
		errno = -ret;
		return STEP_POLICY;
	}
	if (CPU_COUNT(t->cpus) && sched_setaffinity(0, sizeof(*t->cpus), t->cpus))
		return STEP_AFFINITY;
	if (t->threads > 1) {
		ret = pthread_create(&thread, NULL, sleeper, NULL);
		if (ret) {
			errno = ret;
			return STEP_THREAD;
		}
	}
	/* On every thread; none inherited from the test either. */
	h.scope = SCHED_HINT_SCOPE_PROCESS;
	ret = sh_ioctl(fd, t->hint_class ? SCHED_HINT_IOC_SET : SCHED_HINT_IOC_CLEAR, &h);
	if (ret) {
		errno = -ret;
		return STEP_HINT;
	}
	/* glibc changes the ids of every thread. */
	if (t->uid && drop_to(t->uid))
		return STEP_UID;
	return STEP_OK;
}

static void row_stop(struct row *r, int state, const char *why, int err)
{
	r->state = state;
	r->why = why;
	r->err = err;
}

/* Forks a target into *@slot; on failure, marks @r failed and returns -1. */
static int spawn(int fd, const struct tspec *t, pid_t *slot, struct row *r)
{
	unsigned char msg[2];
	pid_t pid;
	int p[2];

	if (pipe2(p, O_CLOEXEC)) {
		row_stop(r, ROW_FAILED, "pipe2()", errno);
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		row_stop(r, ROW_FAILED, "fork()", errno);
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (!pid) {
		close(p[0]);
		msg[0] = target_setup(fd, t);
		msg[1] = msg[0] ? errno : 0;
		if (write(p[1], msg, sizeof(msg)) != sizeof(msg) || msg[0])
			_exit(1);
		close(p[1]);
		for (;;)
			pause();
	}
	*slot = pid;
	close(p[1]);
	if (read(p[0], msg, sizeof(msg)) != sizeof(msg)) {
		msg[0] = STEP_PIPE;
		msg[1] = EPIPE;
	}
	close(p[0]);
	if (msg[0]) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		*slot = 0;
		/* A container's root may lack CAP_SYS_RESOURCE: no RLIMIT_NICE 40. */
		if (msg[0] == STEP_RLIMIT && msg[1] == EPERM)
			row_stop(r, ROW_SKIPPED, "root cannot raise RLIMIT_NICE", 0);
		else
			row_stop(r, ROW_FAILED, step_names[msg[0]], msg[1]);
		return -1;
	}
	return 0;
}

/* As root: the target of the row, the target of its syscall, its pidfd. */
static void prepare_row(const struct env *e, int fd, struct row *r)
{
	struct tspec t = {
		.uid = r->tuid,
		.rlim = r->rlim,
		.policy = SCHED_OTHER,
		.hint_class = r->cur,
		.cpus = &e->cpus_all,
		.threads = r->via == VIA_PROCESS ? 2 : 1,
	};

	if ((r->op == OP_NODE || r->op == OP_STRICT) && e->node_a < 0) {
		row_stop(r, ROW_SKIPPED, "no node with CPUs", 0);
		return;
	}
	if (r->op == OP_STRICT_OUT) {
		if (e->node_b < 0) {
			row_stop(r, ROW_SKIPPED,
				 "a strict node outside the affinity needs two nodes with CPUs", 0);
			return;
		}
		t.cpus = &e->cpus_b;
	}
	if (spawn(fd, &t, &r->pid, r))
		return;
	if (r->via == VIA_PIDFD) {
		r->pidfd = sh_pidfd_open(r->pid);
		if (r->pidfd < 0) {
			row_stop(r, ROW_FAILED, "pidfd_open()", errno);
			return;
		}
	}
	/* A fresh target for a syscall that changes it, none for one that cannot reach it. */
	r->apid = r->pid;
	if (r->where != OUTSIDE_PIDNS && (r->analog == AN_SETATTR || r->analog == AN_AFFINITY)) {
		t.policy = r->analog == AN_SETATTR ? r->acur : SCHED_OTHER;
		t.hint_class = SCHED_HINT_CLASS_NONE;
		t.cpus = &e->cpus_all;
		t.threads = 1;
		if (spawn(fd, &t, &r->apid, r))
			return;
	}
	r->state = ROW_READY;
}

static int hint_call(const struct env *e, int fd, const struct row *r)
{
	struct sched_hint h = sh_hint(r->pid, SCHED_HINT_CLASS_BATCH, SCHED_HINT_NODE_NONE);
	unsigned long cmd = SCHED_HINT_IOC_SET;

	if (r->via == VIA_PIDFD) {
		h.target_type = SCHED_HINT_TARGET_PIDFD;
		h.target = r->pidfd;
	} else if (r->via == VIA_PROCESS) {
		h.scope = SCHED_HINT_SCOPE_PROCESS;
	}
	switch (r->op) {
	case OP_SET:
	case OP_BAD:
		h.hint_class = r->new_cls;
		break;
	case OP_CLEAR:
		cmd = SCHED_HINT_IOC_CLEAR;
		break;
	case OP_GET:
		cmd = SCHED_HINT_IOC_GET;
		break;
	case OP_NODE:
		h.node = e->node_a;
		break;
	case OP_STRICT:
	case OP_STRICT_OUT:
		h.node = e->node_a;
		h.flags = SCHED_HINT_F_NODE_STRICT;
		break;
	}
	return sh_ioctl(fd, cmd, &h);
}

static int analog_call(const struct env *e, const struct row *r)
{
	switch (r->analog) {
	case AN_SETATTR:
		return sys_setattr(r->apid, r->apolicy, r->anice);
	case AN_BADPOLICY:
		return sys_setattr(r->apid, ~0U, 0);
	case AN_GETATTR:
		return sh_sched_getattr(r->apid);
	case AN_AFFINITY:
		return sched_setaffinity(r->apid, sizeof(e->cpus_a), &e->cpus_a) ? -errno : 0;
	}
	return 0;
}

static void run_rows(const struct env *e, int fd, int caller, int where)
{
	struct row *r;
	int i;

	for (i = 0; i < e->nr_rows; i++) {
		r = &e->rows[i];
		if (r->caller != caller || r->where != where || r->state != ROW_READY)
			continue;
		r->got = hint_call(e, fd, r);
		if (r->analog != AN_NONE)
			r->agot = analog_call(e, r);
		r->state = ROW_DONE;
	}
}

/* Whether the caller made the target in its own pid namespace. */
static int in_pidns(const struct row *r)
{
	return r->where == INSIDE_PIDNS;
}

static void prepare_rows(const struct env *e, int fd, int caller, int inside)
{
	struct row *r;
	int i;

	for (i = 0; i < e->nr_rows; i++) {
		r = &e->rows[i];
		if (r->caller == caller && r->state == ROW_PLANNED &&
		    inside == in_pidns(r))
			prepare_row(e, fd, r);
	}
}

/* Rows of @caller that did not run: why. */
static void stop_rows(const struct env *e, int caller, int state, const char *why, int err)
{
	struct row *r;
	int i;

	for (i = 0; i < e->nr_rows; i++) {
		r = &e->rows[i];
		if (r->caller == caller && (r->state == ROW_PLANNED || r->state == ROW_READY))
			row_stop(r, state, why, err);
	}
}

/* As root: the end of a target, hint-free. The caller reaps it. */
static int end_target(int fd, pid_t pid)
{
	struct sched_hint h = sh_hint(pid, 0, 0);
	int ret;

	if (pid <= 0)
		return 0;
	h.scope = SCHED_HINT_SCOPE_PROCESS;
	ret = sh_ioctl(fd, SCHED_HINT_IOC_CLEAR, &h);
	kill(pid, SIGKILL);
	return ret;
}

static void end_targets(const struct env *e, int fd, int caller, int inside)
{
	struct row *r;
	int i;

	for (i = 0; i < e->nr_rows; i++) {
		r = &e->rows[i];
		if (r->caller != caller || inside != in_pidns(r))
			continue;
		r->clear_err = end_target(fd, r->pid);
		if (r->apid != r->pid && !r->clear_err)
			r->clear_err = end_target(fd, r->apid);
	}
}

static void reap_all(void)
{
	for (;;) {
		if (waitpid(-1, NULL, 0) < 0 && errno != EINTR)
			break;
	}
}

/* CAP_SYS_NICE and nothing else, as uid 65534: no libcap. */
static int become_cap_nice(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	memset(data, 0, sizeof(data));
	data[CAP_TO_INDEX(CAP_SYS_NICE)].permitted = CAP_TO_MASK(CAP_SYS_NICE);
	data[CAP_TO_INDEX(CAP_SYS_NICE)].effective = CAP_TO_MASK(CAP_SYS_NICE);
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) || drop_to(UID_USER))
		return -1;
	return syscall(SYS_capset, &hdr, data) ? -1 : 0;
}

/*
 * uid 65534, root of a user namespace of its own: every capability there,
 * none in the initial one, where the hint and sched_setattr() look.
 * Returns ROW_SKIPPED when user namespaces are not available, ROW_FAILED,
 * or 0.
 */
static int become_userns_root(const char **why)
{
	*why = "setresuid(65534)";
	if (drop_to(UID_USER))
		return ROW_FAILED;
	/* Dropping root made us undumpable: /proc/self would be root's. */
	*why = "prctl(PR_SET_DUMPABLE)";
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))
		return ROW_FAILED;
	*why = "unshare(CLONE_NEWUSER) as uid 65534";
	if (unshare(CLONE_NEWUSER))
		return ROW_SKIPPED;
	*why = "writing the id maps";
	if (write_str("/proc/self/setgroups", "deny") ||
	    write_str("/proc/self/uid_map", "0 65534 1") ||
	    write_str("/proc/self/gid_map", "0 65534 1"))
		return ROW_FAILED;
	*why = "uid 0 in the user namespace";
	errno = EINVAL;
	return getuid() ? ROW_FAILED : 0;
}

/*
 * Root in a new pid namespace: the targets outside first, by pid and by a
 * pidfd opened outside, while the namespace holds no pid but ours; then
 * targets of its own, inside.
 */
static void pidns_main(const struct env *e)
{
	pid_t child;
	int fd;

	if (unshare(CLONE_NEWPID)) {
		stop_rows(e, CALLER_PIDNS, ROW_SKIPPED, "unshare(CLONE_NEWPID)", errno);
		_exit(0);
	}
	child = fork();
	if (child < 0) {
		stop_rows(e, CALLER_PIDNS, ROW_FAILED, "fork() into the pid namespace", errno);
		_exit(0);
	}
	if (child) {
		waitpid(child, NULL, 0);
		_exit(0);
	}
	fd = sh_open();
	if (fd < 0 || getpid() != 1) {
		stop_rows(e, CALLER_PIDNS, ROW_FAILED, "open() in the pid namespace", errno);
		_exit(0);
	}
	run_rows(e, fd, CALLER_PIDNS, OUTSIDE_PIDNS);
	prepare_rows(e, fd, CALLER_PIDNS, 1);
	run_rows(e, fd, CALLER_PIDNS, INSIDE_PIDNS);
	end_targets(e, fd, CALLER_PIDNS, 1);
	reap_all();
	_exit(0);
}

/*
 * One caller, in a child: makes its targets as root (they are its children),
 * becomes the caller, and runs its rows. The targets outside a pid namespace
 * are ended by the test, which reaps them as their subreaper.
 */
static void caller_main(const struct env *e, int caller)
{
	const char *why = NULL;
	int fd, state = 0;

	fd = sh_open();
	if (fd < 0) {
		stop_rows(e, caller, ROW_FAILED, "open() as root", errno);
		_exit(0);
	}
	prepare_rows(e, fd, caller, 0);
	close(fd);

	switch (caller) {
	case CALLER_CAP_NICE:
		why = "setresuid(65534) keeping CAP_SYS_NICE";
		state = become_cap_nice() ? ROW_FAILED : 0;
		break;
	case CALLER_OWNER:
	case CALLER_OTHER:
		why = "setresuid(65534)";
		state = drop_to(UID_USER) ? ROW_FAILED : 0;
		break;
	case CALLER_USERNS:
		state = become_userns_root(&why);
		break;
	case CALLER_PIDNS:
		pidns_main(e);
		break;
	}
	if (state) {
		stop_rows(e, caller, state, why, errno);
		_exit(0);
	}
	fd = sh_open();
	if (fd < 0) {
		stop_rows(e, caller, ROW_FAILED, "open() as the caller", errno);
		_exit(0);
	}
	run_rows(e, fd, caller, SAME_NS);
	_exit(0);
}

#define NR_COLS		7
#define CELL_LEN	96

struct cells {
	char c[NR_COLS][CELL_LEN];
};

static void describe_op(const struct env *e, const struct row *r, char *buf, size_t len)
{
	const char *via = r->via == VIA_PIDFD ? "pidfd: " :
			  r->via == VIA_PROCESS ? "process (2 threads): " : "";

	switch (r->op) {
	case OP_SET:
		snprintf(buf, len, "%sSET %s from %s", via, sh_class_name(r->new_cls),
			 sh_class_name(r->cur));
		break;
	case OP_CLEAR:
		snprintf(buf, len, "%sCLEAR from %s", via, sh_class_name(r->cur));
		break;
	case OP_GET:
		snprintf(buf, len, "%sGET", via);
		break;
	case OP_NODE:
		snprintf(buf, len, "%sSET batch, node %d", via, e->node_a);
		break;
	case OP_STRICT:
		snprintf(buf, len, "%sSET batch, node %d strict", via, e->node_a);
		break;
	case OP_STRICT_OUT:
		snprintf(buf, len, "%sSET batch, node %d strict, pinned to node %d", via,
			 e->node_a, e->node_b);
		break;
	case OP_BAD:
		snprintf(buf, len, "%sSET class %d", via, r->new_cls);
		break;
	}
}

static void describe_analog(const struct env *e, const struct row *r, char *buf, size_t len)
{
	char nice[16] = "";

	switch (r->analog) {
	case AN_NONE:
		snprintf(buf, len, "none");
		break;
	case AN_SETATTR:
		if (r->anice)
			snprintf(nice, sizeof(nice), ", nice %d", r->anice);
		snprintf(buf, len, "sched_setattr(%s%s)%s%s", policy_name(r->apolicy), nice,
			 r->acur == SCHED_IDLE ? " from " : "",
			 r->acur == SCHED_IDLE ? policy_name(r->acur) : "");
		break;
	case AN_GETATTR:
		snprintf(buf, len, "sched_getattr()");
		break;
	case AN_AFFINITY:
		snprintf(buf, len, "sched_setaffinity(node %d)", e->node_a);
		break;
	case AN_BADPOLICY:
		snprintf(buf, len, "sched_setattr(policy -1)");
		break;
	}
}

static void describe_target(const struct row *r, char *buf, size_t len)
{
	snprintf(buf, len, "uid %u%s", (unsigned int)r->tuid,
		 r->where == OUTSIDE_PIDNS ? ", outside" :
		 r->where == INSIDE_PIDNS ? ", inside" : "");
}

static void row_cells(const struct env *e, const struct row *r, struct cells *out)
{
	char an[64];

	snprintf(out->c[0], CELL_LEN, "%s", callers[r->caller].name);
	describe_target(r, out->c[1], CELL_LEN);
	describe_op(e, r, out->c[2], CELL_LEN);
	snprintf(out->c[3], CELL_LEN, "%d", r->rlim);
	describe_analog(e, r, an, sizeof(an));
	if (r->state != ROW_DONE) {
		snprintf(out->c[4], CELL_LEN, "%s",
			 r->state == ROW_SKIPPED ? "skipped" : "not run");
		snprintf(out->c[5], CELL_LEN, "%s", an);
		snprintf(out->c[6], CELL_LEN, "%s", r->why ? r->why : "");
		return;
	}
	snprintf(out->c[4], CELL_LEN, "%s", errname(r->got));
	if (r->analog == AN_NONE)
		snprintf(out->c[5], CELL_LEN, "none");
	else
		snprintf(out->c[5], CELL_LEN, "%s: %s%s", an, errname(r->agot),
			 r->compare ? "" : " (not compared)");
	if (r->got != r->expect)
		snprintf(out->c[6], CELL_LEN, "FAIL: expected %s", errname(r->expect));
	else if (r->compare && r->agot != r->got)
		snprintf(out->c[6], CELL_LEN, "FAIL: the syscall differs");
	else if (r->stricter)
		snprintf(out->c[6], CELL_LEN, "stricter");
	else if (r->analog == AN_NONE)
		snprintf(out->c[6], CELL_LEN, "no syscall does this");
}

static void print_cells(const int *w, const char * const *text)
{
	char line[NR_COLS * (CELL_LEN + 1) + 1];
	int j, n = 0;

	for (j = 0; j < NR_COLS; j++)
		n += snprintf(line + n, sizeof(line) - n, "%s%-*s", j ? " " : "",
			      j == NR_COLS - 1 ? 0 : w[j], text[j]);
	while (n > 0 && line[n - 1] == ' ')
		line[--n] = '\0';
	printf("# %s\n", line);
}

static void print_rule(const int *w)
{
	char rule[NR_COLS][CELL_LEN];
	const char *text[NR_COLS];
	int j;

	for (j = 0; j < NR_COLS; j++) {
		memset(rule[j], '=', w[j]);
		rule[j][w[j]] = '\0';
		text[j] = rule[j];
	}
	print_cells(w, text);
}

/* The matrix as a reStructuredText simple table, behind "# ". */
static void print_table(const struct env *e)
{
	static const char * const head[NR_COLS] = {
		"Caller", "Target", "Operation", "RLIMIT_NICE", "Result",
		"The same through a syscall", "Note",
	};
	const char *text[NR_COLS];
	struct cells *cells;
	int w[NR_COLS], i, j, len;

	cells = calloc(e->nr_rows, sizeof(*cells));
	if (!cells)
		return;
	for (j = 0; j < NR_COLS; j++)
		w[j] = strlen(head[j]);
	for (i = 0; i < e->nr_rows; i++) {
		row_cells(e, &e->rows[i], &cells[i]);
		for (j = 0; j < NR_COLS; j++) {
			len = strlen(cells[i].c[j]);
			if (len > w[j])
				w[j] = len;
		}
	}
	printf("# Callers: root has every capability; CAP_SYS_NICE only is uid 65534 with\n");
	printf("# that capability alone; owner and other user are uid 65534 without any;\n");
	printf("# user ns root is uid 65534 mapped to 0 in a user namespace of its own; pid ns\n");
	printf("# root is root in a child pid namespace, its targets outside or inside it.\n");
	printf("# Targets are sleeping processes at nice 0, of the uid given (outside any user\n");
	printf("# namespace) and RLIMIT_NICE given, put in their starting class by root.\n");
	printf("# Raising classes (base slice %lld ns):", e->base_slice_ns);
	for (i = 1; i < SCHED_HINT_NR_CLASSES; i++)
		if (e->raises[i])
			printf(" %s", sh_class_name(i));
	printf("; classes with the idle weight:");
	for (i = 1; i < SCHED_HINT_NR_CLASSES; i++)
		if (e->idle[i])
			printf(" %s", sh_class_name(i));
	printf(".\n#\n");
	print_rule(w);
	print_cells(w, head);
	print_rule(w);
	for (i = 0; i < e->nr_rows; i++) {
		for (j = 0; j < NR_COLS; j++)
			text[j] = cells[i].c[j];
		print_cells(w, text);
	}
	print_rule(w);
	fflush(stdout);
	free(cells);
}

static void row_name(const struct env *e, const struct row *r, char *buf, size_t len)
{
	char target[CELL_LEN], op[CELL_LEN];

	describe_target(r, target, sizeof(target));
	describe_op(e, r, op, sizeof(op));
	snprintf(buf, len, "caller %s, target %s, %s, RLIMIT_NICE %d",
		 callers[r->caller].name, target, op, r->rlim);
}

static int open_as_nobody(void *unused)
{
	int fd = sh_open();

	if (fd < 0)
		return 1;
	close(fd);
	return 0;
}

FIXTURE(perm) {
	struct env env;
};

FIXTURE_SETUP(perm)
{
	struct env *e = &self->env;
	const char *why;

	e->fd = -1;
	if (geteuid())
		SKIP(return, "needs root: it becomes each caller itself");
	e->fd = sh_open();
	if (e->fd < 0)
		SKIP(return, "cannot open %s: %s", SH_DEV, strerror(errno));
	if (sh_as_nobody(open_as_nobody, NULL, NULL))
		SKIP(return, "%s is not usable by uid 65534 (mode 0666 expected)", SH_DEV);
	why = read_class_table(e);
	if (why)
		SKIP(return, "%s", why);
	if (read_base_slice(e))
		SKIP(return, "cannot read %s (debugfs): the rows that raise depend on it",
		     BASE_SLICE);
	find_nodes(e);
	e->rows = mmap(NULL, MAX_ROWS * sizeof(*e->rows), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, e->rows);
}

FIXTURE_TEARDOWN(perm)
{
	struct env *e = &self->env;

	if (e->rows && e->rows != MAP_FAILED)
		munmap(e->rows, MAX_ROWS * sizeof(*e->rows));
	if (e->fd >= 0)
		close(e->fd);
}

TEST_F_TIMEOUT(perm, matrix, 300)
{
	struct env *e = &self->env;
	int caller, status, i, skipped = 0, compared = 0, stricter = 0;
	const char *last_skip = NULL;
	char name[3 * CELL_LEN];
	struct row *r;
	pid_t pid;

	plan(e);
	ASSERT_EQ(0, e->overflow) TH_LOG("more than %d rows", MAX_ROWS);
	/* The targets of a caller that exits come to us to be reaped. */
	ASSERT_EQ(0, prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0));

	for (caller = 0; caller < NR_CALLERS; caller++) {
		fflush(stdout);
		fflush(stderr);
		pid = fork();
		ASSERT_LE(0, pid);
		if (!pid)
			caller_main(e, caller);
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
			TH_LOG("caller %s: wait status %#x", callers[caller].name, status);
		end_targets(e, e->fd, caller, 0);
		reap_all();
	}

	for (i = 0; i < e->nr_rows; i++) {
		r = &e->rows[i];
		row_name(e, r, name, sizeof(name));
		if (r->state == ROW_SKIPPED) {
			if (r->why != last_skip)
				TH_LOG("SKIP %s: %s", name, r->why);
			last_skip = r->why;
			skipped++;
			continue;
		}
		if (r->state != ROW_DONE) {
			EXPECT_EQ(ROW_DONE, r->state)
				TH_LOG("%s: not run: %s: %s", name,
				       r->why ? r->why : "the caller died", strerror(r->err));
			continue;
		}
		EXPECT_EQ(r->expect, r->got) {
			TH_LOG("%s: expected %s, got %s (%d)", name, errname(r->expect),
			       errname(r->got), r->got);
		}
		if (r->compare) {
			compared++;
			EXPECT_EQ(r->agot, r->got) {
				char an[64];

				describe_analog(e, r, an, sizeof(an));
				TH_LOG("%s: the hint gave %s, %s gave %s (%d)", name,
				       errname(r->got), an, errname(r->agot), r->agot);
			}
		}
		stricter += r->stricter;
		EXPECT_EQ(0, r->clear_err)
			TH_LOG("%s: CLEAR by root at the end: %s", name, errname(r->clear_err));
	}

	print_table(e);
	TH_LOG("%d rows: %d compared with a syscall, %d stricter, %d skipped",
	       e->nr_rows, compared, stricter, skipped);
}

TEST_HARNESS_MAIN
