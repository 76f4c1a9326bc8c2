/*
 * spawn — fork, child set-up, exec of a worker (runs in the supervisor).
 * Trusts the caller's options. The child side (section "child") runs between
 * fork and exec in a copy of a multi-threaded process: it calls only
 * async-signal-safe functions, allocates nothing, and reads only data the
 * parent prepared before the fork.
 */
#include "supervisor/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "policy/limits.h"

/* Steps that can fail in the child, in the order they run. */
enum step {
	STEP_STDIO,
	STEP_CLOSE_FDS,
	STEP_SETSID,
	STEP_PDEATHSIG,
	STEP_PARENT_GONE,
	STEP_RLIMIT, /* + index into spawn_ctx.rl */
	STEP_EXEC = STEP_RLIMIT + 16,
};

#define N_RLIMITS 7
#define N_NS 5

/* The call that failed while a namespace was set up, for the report. */
enum ns_stage { NS_UNSHARE, NS_SETGROUPS, NS_UID_MAP, NS_GID_MAP, NS_PRIVATE };

static const char *const ns_stage_name[] = {
    "unshare",
    "write /proc/self/setgroups",
    "write /proc/self/uid_map",
    "write /proc/self/gid_map",
    "mount / MS_REC|MS_PRIVATE",
};

/* One record on the report pipe (well under PIPE_BUF: written atomically). */
struct spawn_msg {
	int failed; /* 0: the layers record sent just before exec; 1: a failure */
	int step;
	int err;
	int ns_err[N_NS];   /* per namespace: 0 applied, errno refused, -1 not asked */
	int ns_stage[N_NS]; /* enum ns_stage: the call that failed */
};

/* Everything the child needs, prepared before fork. */
struct spawn_ctx {
	const sup_spawn_opts *o;
	pid_t parent;
	int devnull, wfd;
	unsigned ns_wanted;	       /* o->namespaces, without the user one as root */
	char uid_map[32], gid_map[32]; /* "0 <our id> 1" */
	struct {
		int res;
		const char *name;
		struct rlimit lim;
	} rl[N_RLIMITS];
};

static const struct {
	unsigned bit;
	int flag;
	const char *layer;
} ns_table[N_NS] = {
    /* first: it owns the others, so that they need no privilege */
    {SUP_SPAWN_NS_USER, CLONE_NEWUSER, "user_ns"}, {SUP_SPAWN_NS_NET, CLONE_NEWNET, "net_ns"},
    {SUP_SPAWN_NS_IPC, CLONE_NEWIPC, "ipc_ns"},	   {SUP_SPAWN_NS_UTS, CLONE_NEWUTS, "uts_ns"},
    {SUP_SPAWN_NS_MNT, CLONE_NEWNS, "mount_ns"},
};

void sup_spawn_opts_default(sup_spawn_opts *o)
{
	memset(o, 0, sizeof *o);
	o->stderr_fd = -1;
#ifdef MP_SANITIZED
	o->rlimit_as = RLIM_INFINITY; /* ASan reserves terabytes of shadow address space */
#else
	o->rlimit_as = (uint64_t)MP_LUA_MEM_BYTES + MP_WORKER_AS_MARGIN_BYTES;
#endif
	o->rlimit_cpu = MP_WORKER_CPU_SECONDS;
	o->rlimit_nofile = MP_WORKER_NOFILE;
	o->rlimit_fsize = MP_WORKER_FSIZE_BYTES;
	o->rlimit_core = MP_WORKER_CORE_BYTES;
	o->rlimit_memlock = MP_WORKER_MEMLOCK_BYTES;
	o->rlimit_stack = MP_WORKER_STACK_BYTES;
	o->namespaces = SUP_SPAWN_NS_USER | SUP_SPAWN_NS_NET | SUP_SPAWN_NS_IPC | SUP_SPAWN_NS_UTS |
			SUP_SPAWN_NS_MNT;
}

/* ---- child: between fork and exec, async-signal-safe only ------------------- */

static void child_fail(const struct spawn_ctx *c, int step, int err) __attribute__((noreturn));
static void child_fail(const struct spawn_ctx *c, int step, int err)
{
	struct spawn_msg m;

	memset(&m, 0, sizeof m);
	m.failed = 1;
	m.step = step;
	m.err = err;
	(void)!write(c->wfd, &m, sizeof m);
	_exit(127);
}

/* Handlers are the supervisor's: none may run in the child, and exec keeps
 * ignored signals ignored. Signals stay blocked until just before exec. */
static void child_reset_signals(void)
{
	struct sigaction dfl;
	int sig;

	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	for (sig = 1; sig < NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		if (sigaction(sig, &dfl, NULL) != 0) {
			/* glibc refuses its own signals (32, 33), but an ignored one would
			 * stay ignored across exec: reset it with the raw call (kernel
			 * sigaction layout: handler, flags, restorer, mask) */
			unsigned long ksa[4] = {0, 0, 0, 0}; /* SIG_DFL, no flags, empty mask */
			(void)syscall(SYS_rt_sigaction, sig, ksa, NULL, sizeof(uint64_t));
		}
	}
}

/* Moves fd out of 0-2 so that setting up stdio cannot clobber it. */
static int child_lift(const struct spawn_ctx *c, int fd)
{
	int n;

	if (fd < 0 || fd > 2)
		return fd;
	n = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (n < 0)
		child_fail(c, STEP_STDIO, errno);
	return n;
}

static void child_close_from(const struct spawn_ctx *c, unsigned lo, unsigned hi)
{
	struct rlimit rl;
	unsigned fd;

	if (lo > hi || close_range(lo, hi, 0) == 0)
		return;
	if (errno != ENOSYS)
		child_fail(c, STEP_CLOSE_FDS, errno);
	/* kernels before 5.9: close one by one up to the descriptor limit */
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		child_fail(c, STEP_CLOSE_FDS, errno);
	for (fd = lo; fd <= hi && fd < rl.rlim_cur; fd++)
		(void)close((int)fd);
}

static void child_descriptors(struct spawn_ctx *c)
{
	int err = c->o->stderr_fd;

	c->wfd = child_lift(c, c->wfd);
	c->devnull = child_lift(c, c->devnull);
	err = child_lift(c, err);
	if (dup2(c->devnull, STDIN_FILENO) < 0 || dup2(c->devnull, STDOUT_FILENO) < 0 ||
	    (err >= 0 && dup2(err, STDERR_FILENO) < 0))
		child_fail(c, STEP_STDIO, errno);
	/* everything but 0-2 and the report pipe (close-on-exec) goes now */
	child_close_from(c, 3, (unsigned)c->wfd - 1);
	child_close_from(c, (unsigned)c->wfd + 1, ~0U);
}

static void child_session(const struct spawn_ctx *c)
{
	if (setsid() < 0)
		child_fail(c, STEP_SETSID, errno);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
		child_fail(c, STEP_PDEATHSIG, errno);
	/* the parent may have died before the line above: nobody would kill us */
	if (getppid() != c->parent)
		child_fail(c, STEP_PARENT_GONE, ESRCH);
}

static void child_limits(const struct spawn_ctx *c)
{
	int i;

	for (i = 0; i < N_RLIMITS; i++)
		if (c->rl[i].lim.rlim_max != (rlim_t)SUP_SPAWN_RLIMIT_KEEP &&
		    setrlimit(c->rl[i].res, &c->rl[i].lim) != 0)
			child_fail(c, STEP_RLIMIT + i, errno);
}

/* Writes text to a /proc file. Returns 0 or an errno value. */
static int child_write(const char *path, const char *text)
{
	size_t len = strlen(text);
	int fd = open(path, O_WRONLY | O_CLOEXEC), err = 0;
	ssize_t n;

	if (fd < 0)
		return errno;
	n = write(fd, text, len);
	if (n < 0)
		err = errno;
	else if ((size_t)n != len)
		err = EIO;
	close(fd);
	return err;
}

/* In the new user namespace: uid and gid 0 inside, ours outside. An
 * unprivileged process may map its own gid only once setgroups is denied. */
static void child_map_ids(const struct spawn_ctx *c, struct spawn_msg *m, int i)
{
	static const struct {
		const char *path;
		int stage;
	} files[] = {
	    {"/proc/self/setgroups", NS_SETGROUPS},
	    {"/proc/self/uid_map", NS_UID_MAP},
	    {"/proc/self/gid_map", NS_GID_MAP},
	};
	const char *text[] = {"deny", c->uid_map, c->gid_map};
	unsigned k;

	for (k = 0; k < sizeof files / sizeof files[0]; k++) {
		m->ns_err[i] = child_write(files[k].path, text[k]);
		if (m->ns_err[i] != 0) {
			m->ns_stage[i] = files[k].stage;
			return;
		}
	}
}

static void child_namespaces(const struct spawn_ctx *c, struct spawn_msg *m)
{
	int i;

	for (i = 0; i < N_NS; i++) {
		m->ns_err[i] = -1;
		if (!(c->ns_wanted & ns_table[i].bit))
			continue;
		m->ns_stage[i] = NS_UNSHARE;
		m->ns_err[i] = unshare(ns_table[i].flag) == 0 ? 0 : errno;
		if (m->ns_err[i] != 0)
			continue;
		if (ns_table[i].flag == CLONE_NEWUSER)
			child_map_ids(c, m, i);
		/* the copied mounts may be shared with the supervisor's: whatever the
		 * worker mounts must not propagate back */
		if (ns_table[i].flag == CLONE_NEWNS &&
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
			m->ns_err[i] = errno;
			m->ns_stage[i] = NS_PRIVATE;
		}
	}
}

static void child_run(struct spawn_ctx *c) __attribute__((noreturn));
static void child_run(struct spawn_ctx *c)
{
	static char *const no_env[] = {NULL};
	struct spawn_msg m;
	sigset_t none;

	memset(&m, 0, sizeof m);
	child_reset_signals();	 /* 1 */
	child_descriptors(c);	 /* 2 */
	child_session(c);	 /* 3, 4 */
	child_limits(c);	 /* 5 */
	child_namespaces(c, &m); /* 6 */
	(void)!write(c->wfd, &m, sizeof m);
	sigemptyset(&none);
	/* the raw call: a sanitizer's sigprocmask interceptor may refuse in a forked
	 * child, and exec keeps the mask */
	(void)syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(uint64_t));
	execve(c->o->path, c->o->argv, c->o->envp ? c->o->envp : no_env); /* 7 */
	child_fail(c, STEP_EXEC, errno);
}

/* ---- parent ---------------------------------------------------------------- */

static void set_rlimit(struct spawn_ctx *c, int i, int res, const char *name, uint64_t v)
{
	c->rl[i].res = res;
	c->rl[i].name = name;
	c->rl[i].lim.rlim_cur = (rlim_t)v;
	c->rl[i].lim.rlim_max = (rlim_t)v;
}

static void prepare_limits(struct spawn_ctx *c)
{
	const sup_spawn_opts *o = c->o;

	set_rlimit(c, 0, RLIMIT_AS, "setrlimit RLIMIT_AS", o->rlimit_as);
	set_rlimit(c, 1, RLIMIT_CPU, "setrlimit RLIMIT_CPU", o->rlimit_cpu);
	/* one more second before SIGKILL: SIGXCPU names the cause */
	if (o->rlimit_cpu != (uint64_t)RLIM_INFINITY)
		c->rl[1].lim.rlim_max = (rlim_t)(o->rlimit_cpu + 1);
	set_rlimit(c, 2, RLIMIT_NOFILE, "setrlimit RLIMIT_NOFILE", o->rlimit_nofile);
	set_rlimit(c, 3, RLIMIT_FSIZE, "setrlimit RLIMIT_FSIZE", o->rlimit_fsize);
	set_rlimit(c, 4, RLIMIT_CORE, "setrlimit RLIMIT_CORE", o->rlimit_core);
	set_rlimit(c, 5, RLIMIT_MEMLOCK, "setrlimit RLIMIT_MEMLOCK", o->rlimit_memlock);
	set_rlimit(c, 6, RLIMIT_STACK, "setrlimit RLIMIT_STACK", o->rlimit_stack);
}

/* Which namespaces to ask for, and the id maps of the user namespace. */
static void prepare_namespaces(struct spawn_ctx *c)
{
	c->ns_wanted = c->o->namespaces;
	/* root needs no user namespace to unshare the others, and a worker mapped
	 * to another uid could not reach its socket in the 0700 run folder */
	if (geteuid() == 0)
		c->ns_wanted &= ~SUP_SPAWN_NS_USER;
	snprintf(c->uid_map, sizeof c->uid_map, "0 %u 1", (unsigned)geteuid());
	snprintf(c->gid_map, sizeof c->gid_map, "0 %u 1", (unsigned)getegid());
}

static const char *step_name(const struct spawn_ctx *c, int step)
{
	switch (step) {
	case STEP_STDIO:
		return "stdio dup2";
	case STEP_CLOSE_FDS:
		return "close_range";
	case STEP_SETSID:
		return "setsid";
	case STEP_PDEATHSIG:
		return "prctl PR_SET_PDEATHSIG";
	case STEP_PARENT_GONE:
		return "parent ended before exec";
	case STEP_EXEC:
		return "execve";
	default:
		if (step >= STEP_RLIMIT && step < STEP_RLIMIT + N_RLIMITS)
			return c->rl[step - STEP_RLIMIT].name;
		return "child set-up";
	}
}

static void fill_report(const sup_spawn_opts *o, const struct spawn_msg *m)
{
	static const char *const base[] = {"fds_closed", "setsid", "pdeathsig", "rlimits"};
	sup_spawn_report *rep = o->report;
	unsigned i;

	if (rep == NULL)
		return;
	memset(rep, 0, sizeof *rep);
	for (i = 0; i < sizeof base / sizeof base[0]; i++)
		rep->layers[rep->n_layers++] = base[i];
	for (i = 0; i < N_NS; i++) {
		if (m->ns_err[i] == 0)
			rep->layers[rep->n_layers++] = ns_table[i].layer;
		else if (m->ns_err[i] > 0) {
			int st = m->ns_stage[i];
			snprintf(rep->reasons[rep->n_missing], SUP_SPAWN_REASON_LEN, "%s: %s: %s",
				 ns_table[i].layer,
				 st >= NS_UNSHARE && st <= NS_PRIVATE ? ns_stage_name[st]
								      : "set-up",
				 strerror(m->ns_err[i]));
			rep->missing[rep->n_missing] = rep->reasons[rep->n_missing];
			rep->n_missing++;
		}
	}
}

/* Reads the child's records until the pipe closes (exec done, or child gone). */
static int await_exec(const struct spawn_ctx *c, int rfd, pid_t pid, char *err,
		      unsigned long errlen)
{
	struct spawn_msg m, got;
	int have = 0, status;

	for (;;) {
		ssize_t n = read(rfd, &m, sizeof m);
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof m)
			break;
		if (m.failed) {
			snprintf(err, errlen, "%s%s%s: %s", step_name(c, m.step),
				 m.step == STEP_EXEC ? " " : "",
				 m.step == STEP_EXEC ? c->o->path : "", strerror(m.err));
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			return m.err > 0 ? -m.err : -ECHILD;
		}
		got = m;
		have = 1;
	}
	if (!have) { /* died before reporting: killed, or out of memory */
		snprintf(err, errlen, "worker child ended before exec");
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		return -ECHILD;
	}
	fill_report(c->o, &got);
	return 0;
}

static int fork_child(struct spawn_ctx *c, int rfd, pid_t *pid)
{
	sigset_t all, old;
	int r;

	/* no supervisor handler may run in the child before it resets them */
	sigfillset(&all);
	r = pthread_sigmask(SIG_SETMASK, &all, &old);
	if (r != 0)
		return -r;
	*pid = _Fork(); /* no atfork handlers: the child only makes raw calls */
	if (*pid == 0) {
		close(rfd);
		child_run(c);
	}
	r = *pid < 0 ? -errno : 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

int sup_spawn(const sup_spawn_opts *o, pid_t *pid, char *err, unsigned long errlen)
{
	struct spawn_ctx c;
	int pfd[2] = {-1, -1}, r;

	memset(&c, 0, sizeof c);
	c.o = o;
	c.parent = getpid();
	prepare_limits(&c);
	prepare_namespaces(&c);
	c.devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (c.devnull < 0) {
		r = -errno;
		snprintf(err, errlen, "open /dev/null: %s", strerror(-r));
		return r;
	}
	if (pipe2(pfd, O_CLOEXEC) != 0) {
		r = -errno;
		snprintf(err, errlen, "pipe2: %s", strerror(-r));
		goto out;
	}
	c.wfd = pfd[1];
	r = fork_child(&c, pfd[0], pid);
	close(pfd[1]);
	if (r < 0) {
		snprintf(err, errlen, "fork: %s", strerror(-r));
		goto out;
	}
	r = await_exec(&c, pfd[0], *pid, err, errlen);
out:
	if (pfd[0] >= 0)
		close(pfd[0]);
	close(c.devnull);
	return r;
}

/* ---- reaping ---------------------------------------------------------------- */

static int wait_now(pid_t pid, int *wstatus, int flags)
{
	pid_t r;

	do
		r = waitpid(pid, wstatus, flags);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return r == 0 ? -ETIMEDOUT : 0;
}

static long ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

int sup_spawn_reap(pid_t pid, int *wstatus, int timeout_ms)
{
	struct timespec t0, nap = {0, 1000000L};
	struct pollfd p;
	int fd, r;

	if (timeout_ms < 0)
		return wait_now(pid, wstatus, 0);
	r = wait_now(pid, wstatus, WNOHANG);
	if (r != -ETIMEDOUT || timeout_ms == 0)
		return r;
	fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd >= 0) {
		p.fd = fd;
		p.events = POLLIN;
		do
			r = poll(&p, 1, timeout_ms);
		while (r < 0 && errno == EINTR);
		close(fd);
		return wait_now(pid, wstatus, WNOHANG);
	}
	/* no pidfd (kernel < 5.3): look every millisecond */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while ((r = wait_now(pid, wstatus, WNOHANG)) == -ETIMEDOUT && ms_since(&t0) < timeout_ms)
		nanosleep(&nap, NULL);
	return r;
}

/* ---- describing an end -------------------------------------------------------- */

static const char *signal_cause(int sig)
{
	switch (sig) {
	case SIGSYS:
		return " (forbidden syscall)";
	case SIGXCPU:
		return " (CPU time limit)";
	case SIGKILL:
		return "";
	default:
		return NULL;
	}
}

const char *sup_spawn_describe(int wstatus)
{
	static _Thread_local char buf[80];
	const char *name, *cause;

	if (WIFEXITED(wstatus)) {
		snprintf(buf, sizeof buf, "exited %d", WEXITSTATUS(wstatus));
	} else if (WIFSIGNALED(wstatus)) {
		int sig = WTERMSIG(wstatus);
		name = sigabbrev_np(sig);
		cause = signal_cause(sig);
		if (cause == NULL)
			cause = WCOREDUMP(wstatus) ? " (core dumped)" : "";
		if (name)
			snprintf(buf, sizeof buf, "killed by SIG%s%s", name, cause);
		else
			snprintf(buf, sizeof buf, "killed by signal %d%s", sig, cause);
	} else {
		snprintf(buf, sizeof buf, "wait status %#x", (unsigned)wstatus);
	}
	return buf;
}
