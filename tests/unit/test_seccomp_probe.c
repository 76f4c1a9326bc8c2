/*
 * test_seccomp_probe — the worker's confinement, probed from outside (a test
 * process forks a child that runs wrk_confine() and then one thing). Forbidden
 * calls must end the child by SIGSYS with a stderr line naming the call;
 * allowed work (memory, threads, clocks, the deadline timer, Lua, an NNG
 * channel dialled before confinement) must run to exit 0.
 *
 * Children end with _exit(): exit() would run the test framework's atexit
 * handlers, which are not confined work.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>

#include "common/log.h"
#include "worker/confine.h"

#include "seccomp_allow.h"

/* exit codes of a child that did not get as far as the probe */
#define EXIT_CONFINE_FAILED 90
#define EXIT_SETUP_FAILED 91
#define EXIT_WRONG_RESULT 92

struct child {
	int status;
	char err[4096]; /* everything the child wrote to stderr */
};

typedef void (*probe_fn)(void *arg);

static void read_all(int fd, pid_t pid, struct child *c, int timeout_ms)
{
	size_t have = 0;
	struct pollfd p = {fd, POLLIN, 0};

	for (;;) {
		ssize_t n;
		if (poll(&p, 1, timeout_ms) <= 0) {
			kill(pid, SIGKILL); /* a hung child fails the test, not the run */
			break;
		}
		n = read(fd, c->err + have, sizeof c->err - 1 - have);
		if (n <= 0)
			break;
		have += (size_t)n;
		if (have == sizeof c->err - 1)
			break;
	}
	c->err[have] = '\0';
}

/* Forks; the child runs setup (before confinement, may be NULL), then
 * wrk_confine(), then probe, then _exit(0). Fills c with the wait status and
 * the child's stderr. */
static void run_child(probe_fn setup, probe_fn probe, void *arg, struct child *c)
{
	int pfd[2];
	pid_t pid;

	cr_assert_eq(pipe(pfd), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		wrk_confine_report rep;
		close(pfd[0]);
		dup2(pfd[1], STDERR_FILENO);
		close(pfd[1]);
		if (setup)
			setup(arg);
		if (wrk_confine(&rep) != 0) {
			dprintf(STDERR_FILENO, "confine failed: %s\n", rep.error);
			_exit(EXIT_CONFINE_FAILED);
		}
		probe(arg);
		_exit(0);
	}
	close(pfd[1]);
	read_all(pfd[0], pid, c, 10000);
	close(pfd[0]);
	cr_assert_eq(waitpid(pid, &c->status, 0), pid);
}

/* The child died of SIGSYS and reported the call by name and number. */
static void assert_forbidden(const struct child *c, const char *name, long nr)
{
	char want[96];

	snprintf(want, sizeof want, "seccomp: forbidden syscall %s (%ld)\n", name, nr);
	cr_assert(WIFSIGNALED(c->status), "child was not killed: status %#x, stderr: %s", c->status,
		  c->err);
	cr_assert_eq(WTERMSIG(c->status), SIGSYS, "killed by signal %d, stderr: %s",
		     WTERMSIG(c->status), c->err);
	cr_assert_str_eq(c->err, want);
}

static void assert_clean_exit(const struct child *c)
{
	cr_assert(WIFEXITED(c->status), "child did not exit: status %#x, stderr: %s", c->status,
		  c->err);
	cr_assert_eq(WEXITSTATUS(c->status), 0, "exit %d, stderr: %s", WEXITSTATUS(c->status),
		     c->err);
	cr_assert_null(strstr(c->err, "forbidden"), "stderr: %s", c->err);
}

/* ---- the report ------------------------------------------------------------ */

Test(seccomp_probe, report_names_layers)
{
	int pfd[2], status;
	pid_t pid;
	char buf[512] = {0}, want[256];
	ssize_t n;

	cr_assert_eq(pipe(pfd), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		wrk_confine_report rep;
		int r = wrk_confine(&rep);
		/* snprintf, not dprintf: a fresh stdio stream would fstat its fd */
		snprintf(buf, sizeof buf, "%d|%u|%s,%s,%s|%u|%s|%u|%u|%s\n", r, rep.n_layers,
			 rep.layers[0], rep.layers[1], rep.layers[2], rep.n_missing, rep.missing[0],
			 rep.rules, rep.syscalls, wrk_confine_syscall_name(SYS_openat));
		(void)!write(pfd[1], buf, strlen(buf));
		_exit(0);
	}
	close(pfd[1]);
	n = read(pfd[0], buf, sizeof buf - 1);
	cr_assert_gt(n, 0);
	close(pfd[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert_eq(status, 0);
	/* the child shares our mount namespace: no empty root (and our root is left
	 * alone); as root (the test VM) the bounding set can be dropped */
	snprintf(want, sizeof want,
		 "0|3|no_new_privs,caps_dropped,seccomp|%d|empty_root: no mount namespace of "
		 "its own (see mount_ns)|%d|%d|openat\n",
		 geteuid() == 0 ? 1 : 2, SECCOMP_ALLOW_NRULES, SECCOMP_ALLOW_NSYSCALLS);
	cr_assert_str_eq(buf, want);
}

/* ---- forbidden calls: killed by SIGSYS, named on stderr --------------------- */

static void p_openat(void *arg)
{
	(void)arg;
	(void)open("/etc/passwd", O_RDONLY);
}
static void p_socket_inet(void *arg)
{
	(void)arg;
	(void)socket(AF_INET, SOCK_STREAM, 0);
}
static void p_execve(void *arg)
{
	char *argv[] = {"/bin/true", NULL}, *envp[] = {NULL};
	(void)arg;
	execve("/bin/true", argv, envp);
}
static void p_ptrace(void *arg)
{
	(void)arg;
	(void)ptrace(PTRACE_TRACEME, 0, NULL, NULL);
}
static void p_fork(void *arg)
{
	(void)arg;
	(void)fork(); /* glibc: clone(SIGCHLD), no CLONE_THREAD */
}
static void p_raw_fork(void *arg)
{
	(void)arg;
	(void)syscall(SYS_fork);
}
static void p_clone_thread_in_new_netns(void *arg)
{
	(void)arg;
	/* thread flags, but asking for a namespace: the filter stops it first */
	(void)syscall(SYS_clone,
		      CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
			  CLONE_NEWNET,
		      NULL, NULL, NULL, 0);
}
static void p_mprotect_exec(void *arg)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	(void)arg;
	if (p == MAP_FAILED)
		_exit(EXIT_SETUP_FAILED);
	(void)mprotect(p, 4096, PROT_READ | PROT_EXEC);
}
static void p_mmap_exec(void *arg)
{
	(void)arg;
	(void)mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}
static void p_unshare(void *arg)
{
	(void)arg;
	(void)unshare(CLONE_NEWNET);
}
static void p_kill_other(void *arg)
{
	(void)arg;
	(void)kill(1, 0);
}
static void p_tgkill_other(void *arg)
{
	(void)arg;
	(void)syscall(SYS_tgkill, 1, 1, 0);
}
static void p_sigaction_sigsys(void *arg)
{
	struct sigaction sa;
	(void)arg;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	(void)sigaction(SIGSYS, &sa, NULL);
}
static __attribute__((unused)) void p_madvise_mergeable(void *arg)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	(void)arg;
	if (p == MAP_FAILED)
		_exit(EXIT_SETUP_FAILED);
	(void)madvise(p, 4096, MADV_MERGEABLE);
}

#define FORBIDDEN(test, fn, name, nr)                                                              \
	Test(seccomp_probe, test)                                                                  \
	{                                                                                          \
		struct child c;                                                                    \
		run_child(NULL, fn, NULL, &c);                                                     \
		assert_forbidden(&c, name, nr);                                                    \
	}

FORBIDDEN(openat_etc_passwd, p_openat, "openat", SYS_openat)
FORBIDDEN(socket_af_inet, p_socket_inet, "socket", SYS_socket)
FORBIDDEN(execve_bin_true, p_execve, "execve", SYS_execve)
FORBIDDEN(ptrace_traceme, p_ptrace, "ptrace", SYS_ptrace)
FORBIDDEN(fork_via_glibc_clone, p_fork, "clone", SYS_clone)
FORBIDDEN(raw_fork, p_raw_fork, "fork", SYS_fork)
FORBIDDEN(clone_thread_with_namespace, p_clone_thread_in_new_netns, "clone", SYS_clone)
FORBIDDEN(mprotect_exec, p_mprotect_exec, "mprotect", SYS_mprotect)
FORBIDDEN(mmap_exec, p_mmap_exec, "mmap", SYS_mmap)
FORBIDDEN(unshare_net, p_unshare, "unshare", SYS_unshare)
FORBIDDEN(kill_other_process, p_kill_other, "kill", SYS_kill)
FORBIDDEN(tgkill_other_process, p_tgkill_other, "tgkill", SYS_tgkill)
FORBIDDEN(sigaction_sigsys, p_sigaction_sigsys, "rt_sigaction", SYS_rt_sigaction)

/* prctl is allowed for PR_SET_NAME only: anything else (here making the
 * process dumpable again) is forbidden. */
static void p_prctl_dumpable(void *arg)
{
	(void)arg;
	(void)prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
}
FORBIDDEN(prctl_other_than_set_name, p_prctl_dumpable, "prctl", SYS_prctl)
#ifndef MP_SANITIZED
/* Sanitizer builds add policy/seccomp-sanitizer.allow, which lets the ASan
 * runtime call madvise freely; the production rule is proven here in the
 * normal build. */
FORBIDDEN(madvise_mergeable, p_madvise_mergeable, "madvise", SYS_madvise)
#endif

/* A call through the i386 ABI (int 0x80) fails the architecture check: the
 * kernel kills the process before any rule runs, so there is no report. */
static void p_int80(void *arg)
{
	long ret;
	(void)arg;
	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory"); /* i386 getpid */
	(void)ret;
}

Test(seccomp_probe, foreign_abi_killed_without_report)
{
	struct child c;

	run_child(NULL, p_int80, NULL, &c);
	cr_assert(WIFSIGNALED(c.status), "status %#x, stderr: %s", c.status, c.err);
	cr_assert_eq(WTERMSIG(c.status), SIGSYS);
	cr_assert_str_eq(c.err, "");
}

/* A forbidden call on a second thread kills the whole process. */
static void *thread_opens(void *arg)
{
	(void)arg;
	(void)open("/etc/hostname", O_RDONLY);
	return NULL;
}
static void p_thread_openat(void *arg)
{
	pthread_t t;
	(void)arg;
	if (pthread_create(&t, NULL, thread_opens, NULL) != 0)
		_exit(EXIT_SETUP_FAILED);
	pthread_join(t, NULL);
	_exit(EXIT_WRONG_RESULT); /* the process must not survive its thread's call */
}
FORBIDDEN(openat_from_second_thread, p_thread_openat, "openat", SYS_openat)

/* ---- soft denials: harmless probes fail with an error, the worker goes on ---- */

static void p_soft_denials(void *arg)
{
	int fd;
	(void)arg;
	errno = 0;
	/* NNG's redial after the supervisor hung up */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd != -1 || errno != EACCES)
		_exit(EXIT_WRONG_RESULT);
	/* glibc malloc's lazy read of /proc/sys/vm/overcommit_memory */
	fd = open("/proc/sys/vm/overcommit_memory", O_RDONLY | O_CLOEXEC);
	if (fd != -1 || errno != EACCES)
		_exit(EXIT_WRONG_RESULT + 1);
	/* clone3 hides its flags from the filter: glibc falls back to clone */
	if (syscall(SYS_clone3, NULL, 0) != -1 || errno != ENOSYS)
		_exit(EXIT_WRONG_RESULT + 2);
}

Test(seccomp_probe, soft_denials_return_errors)
{
	struct child c;

	run_child(NULL, p_soft_denials, NULL, &c);
	assert_clean_exit(&c);
}

/* ---- allowed work ------------------------------------------------------------ */

static volatile sig_atomic_t alarms;
static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

static void *thread_work(void *arg)
{
	char *p = malloc(1 << 20);
	if (p == NULL)
		return NULL;
	memset(p, 7, 1 << 20);
	free(p);
	return arg;
}

static int deadline_timer_fires(void)
{
	struct sigaction sa;
	struct sigevent sev;
	struct itimerspec its = {{0, 0}, {0, 5 * 1000 * 1000}};
	struct timespec start, now;
	timer_t t;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm;
	memset(&sev, 0, sizeof sev);
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = SIGALRM;
	sev._sigev_un._tid = gettid();
	if (sigaction(SIGALRM, &sa, NULL) != 0 || timer_create(CLOCK_MONOTONIC, &sev, &t) != 0 ||
	    timer_settime(t, 0, &its, NULL) != 0)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (!alarms && now.tv_sec - start.tv_sec < 5);
	timer_delete(t);
	return alarms ? 0 : -1;
}

static int lua_runs(void)
{
	lua_State *L = luaL_newstate();
	int r;

	if (L == NULL)
		return -1;
	luaL_requiref(L, "_G", luaopen_base, 1);
	luaL_requiref(L, "string", luaopen_string, 1);
	luaL_requiref(L, "table", luaopen_table, 1);
	lua_settop(L, 0);
	r = luaL_dostring(L, "local t = {} for i = 1, 100000 do t[i] = tostring(i) .. 'x' end "
			     "local s = string.rep('ab', 1 << 22) "
			     "assert(#s == 1 << 23 and #table.concat(t, ',', 1, 10) == 30) "
			     "t = nil s = nil collectgarbage() return 42");
	r = r == 0 && lua_tointeger(L, -1) == 42 ? 0 : -1;
	lua_close(L);
	return r;
}

static void p_allowed_work(void *arg)
{
	struct timespec ts, nap = {0, 1000 * 1000};
	pthread_t t;
	void *ret = NULL;
	char *big;
	(void)arg;

	big = malloc(64 << 20); /* mmap'd */
	if (big == NULL)
		_exit(EXIT_WRONG_RESULT);
	memset(big, 1, 64 << 20);
	big = realloc(big, 96 << 20); /* mremap */
	if (big == NULL)
		_exit(EXIT_WRONG_RESULT);
	free(big);
	if (pthread_create(&t, NULL, thread_work, &ts) != 0 || pthread_join(t, &ret) != 0 ||
	    ret != &ts)
		_exit(EXIT_WRONG_RESULT + 1);
	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0 ||
	    clock_gettime(CLOCK_MONOTONIC, &ts) != 0 || nanosleep(&nap, NULL) != 0)
		_exit(EXIT_WRONG_RESULT + 2);
	if (deadline_timer_fires() != 0)
		_exit(EXIT_WRONG_RESULT + 3);
	if (lua_runs() != 0)
		_exit(EXIT_WRONG_RESULT + 4);
	/* a thread names itself after confinement, as NNG's threads do */
	if (pthread_setname_np(pthread_self(), "probe") != 0)
		_exit(EXIT_WRONG_RESULT + 5);
	log_init("wrk", LOG_INFO);
	log_info("confined and well");
}

Test(seccomp_probe, allowed_work_exits_zero)
{
	struct child c;

	run_child(NULL, p_allowed_work, NULL, &c);
	assert_clean_exit(&c);
	cr_assert_not_null(strstr(c.err, "confined and well"), "stderr: %s", c.err);
}

/* abort() after confinement ends by SIGABRT (tgkill to itself is allowed), so
 * a heap-check failure is not mistaken for a forbidden call. */
static void p_abort(void *arg)
{
	(void)arg;
	abort();
}

Test(seccomp_probe, abort_is_sigabrt)
{
	struct child c;

	run_child(NULL, p_abort, NULL, &c);
	cr_assert(WIFSIGNALED(c.status), "status %#x, stderr: %s", c.status, c.err);
	cr_assert_eq(WTERMSIG(c.status), SIGABRT, "stderr: %s", c.err);
	cr_assert_str_eq(c.err, "");
}

/* ---- the real worker's pattern: dial, confine, then talk ---------------------- */

/*
 * NNG cannot be used in a forked child of a process that has used it, and
 * every Criterion test process has: Criterion's nn_* calls bind to libnng's
 * nanomsg-compatible API (it is linked first). So the child execs this binary
 * afresh, and this constructor plays the worker before Criterion's main runs.
 */
#define ROLE_ENV "MOONPEN_SECCOMP_PROBE_ROLE"
#define URL_ENV "MOONPEN_SECCOMP_PROBE_URL"

static volatile int pipe_gone;

static void on_pipe_gone(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	(void)p;
	(void)ev;
	(void)arg;
	pipe_gone = 1;
}

/* Echoes two messages with their first byte incremented ("ping" -> "qing"),
 * or one and then waits for the parent to hang up. */
static int worker_talk(nng_socket s, int hangup)
{
	struct timespec nap = {0, 10 * 1000 * 1000};
	char *buf = NULL;
	size_t len = 0;
	int i;

	for (i = 0; i < (hangup ? 1 : 2); i++) {
		if (nng_recv(s, &buf, &len, NNG_FLAG_ALLOC) != 0)
			return EXIT_WRONG_RESULT;
		buf[0] = (char)(buf[0] + 1);
		if (nng_send(s, buf, len, NNG_FLAG_ALLOC) != 0)
			return EXIT_WRONG_RESULT + 1;
	}
	if (!hangup)
		return 0;
	/* NNG redials at once (socket() is soft-denied); the worker leaves on
	 * its pipe-removed event */
	for (i = 0; i < 300 && !pipe_gone; i++)
		nanosleep(&nap, NULL);
	if (!pipe_gone)
		return EXIT_WRONG_RESULT + 2;
	nap.tv_nsec = 200 * 1000 * 1000; /* let a few redials fail */
	nanosleep(&nap, NULL);
	return 0;
}

__attribute__((constructor)) static void worker_role(void)
{
	const char *role = getenv(ROLE_ENV), *url = getenv(URL_ENV);
	wrk_confine_report rep;
	nng_socket s;
	int r;

	if (role == NULL || url == NULL)
		return;
	if (nng_pair1_open(&s) != 0 ||
	    nng_pipe_notify(s, NNG_PIPE_EV_REM_POST, on_pipe_gone, NULL) != 0 ||
	    nng_dial(s, url, NULL, 0) != 0)
		_exit(EXIT_SETUP_FAILED);
	if (wrk_confine(&rep) != 0)
		_exit(EXIT_CONFINE_FAILED);
	r = worker_talk(s, strcmp(role, "hangup") == 0);
	if (r == 0)
		nng_close(s);
	_exit(r);
}

static void talk_to_worker(const char *role, struct child *c)
{
	char url[128], role_env[64], url_env[160];
	char *argv[] = {"seccomp-probe-worker", NULL}, *envp[] = {role_env, url_env, NULL};
	char *buf = NULL;
	size_t len = 0;
	nng_socket s;
	int pfd[2], i, hangup = strcmp(role, "hangup") == 0;
	pid_t pid;

	snprintf(url, sizeof url, "ipc:///tmp/moonpen-seccomp-%d.sock", (int)getpid());
	snprintf(role_env, sizeof role_env, "%s=%s", ROLE_ENV, role);
	snprintf(url_env, sizeof url_env, "%s=%s", URL_ENV, url);
	cr_assert_eq(nng_pair1_open(&s), 0);
	cr_assert_eq(nng_setopt_ms(s, NNG_OPT_RECVTIMEO, 5000), 0);
	cr_assert_eq(nng_setopt_ms(s, NNG_OPT_SENDTIMEO, 5000), 0);
	cr_assert_eq(nng_listen(s, url, NULL, 0), 0);
	cr_assert_eq(pipe(pfd), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(pfd[1], STDERR_FILENO);
		execve("/proc/self/exe", argv, envp);
		_exit(127);
	}
	close(pfd[1]);
	for (i = 0; i < (hangup ? 1 : 2); i++) {
		cr_assert_eq(nng_send(s, "ping", 5, 0), 0);
		cr_assert_eq(nng_recv(s, &buf, &len, NNG_FLAG_ALLOC), 0);
		cr_assert_eq(len, 5);
		cr_assert_str_eq(buf, "qing");
		nng_free(buf, len);
	}
	nng_close(s);
	read_all(pfd[0], pid, c, 10000);
	close(pfd[0]);
	cr_assert_eq(waitpid(pid, &c->status, 0), pid);
	unlink(url + strlen("ipc://"));
}

Test(seccomp_probe, nng_channel_dialled_before_confinement_works)
{
	struct child c;

	talk_to_worker("echo", &c);
	assert_clean_exit(&c);
}

Test(seccomp_probe, supervisor_hangup_is_not_a_forbidden_call)
{
	struct child c;

	talk_to_worker("hangup", &c);
	assert_clean_exit(&c);
}

/* ---- the empty root ------------------------------------------------------------ */

static int write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), r = -1;

	if (fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text))
		r = 0;
	if (fd >= 0)
		close(fd);
	return r;
}

/* Before confinement, what sup_spawn gives a worker: a mount namespace of its
 * own, and without root the user namespace (uid 0 inside) that allows it. */
static int own_mount_namespace(void)
{
	char uid_map[32], gid_map[32];

	if (geteuid() == 0)
		return unshare(CLONE_NEWNS);
	snprintf(uid_map, sizeof uid_map, "0 %u 1", (unsigned)geteuid());
	snprintf(gid_map, sizeof gid_map, "0 %u 1", (unsigned)getegid());
	if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0 ||
	    write_text("/proc/self/setgroups", "deny") != 0 ||
	    write_text("/proc/self/uid_map", uid_map) != 0 ||
	    write_text("/proc/self/gid_map", gid_map) != 0)
		return -1;
	return 0;
}

/* The child confines itself in its own mount namespace, says which layers it
 * has, and waits (confined) until we close ctl; we look at it from outside. */
static void empty_root_child(int out, int ctl)
{
	wrk_confine_report rep;
	char buf[256], c;
	int r;

	if (own_mount_namespace() != 0)
		_exit(EXIT_SETUP_FAILED);
	r = wrk_confine(&rep);
	snprintf(buf, sizeof buf, "%d|%s,%s,%s,%s|%u\n", r, rep.layers[0], rep.layers[1],
		 rep.layers[2], rep.layers[3], rep.n_missing);
	(void)!write(out, buf, strlen(buf));
	(void)!read(ctl, &c, 1); /* EOF once the parent has looked */
	_exit(0);
}

Test(seccomp_probe, confined_worker_sees_an_empty_root)
{
	char buf[256] = "", root[64], etc[80], ns[64], ours[64], theirs[64];
	int outp[2], ctlp[2], status;
	struct dirent *e;
	struct stat st;
	ssize_t n;
	DIR *d;
	pid_t pid;

	cr_assert_eq(pipe(outp), 0);
	cr_assert_eq(pipe(ctlp), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(outp[0]);
		close(ctlp[1]);
		empty_root_child(outp[1], ctlp[0]);
	}
	close(outp[1]);
	close(ctlp[0]);
	n = read(outp[0], buf, sizeof buf - 1);
	cr_assert_gt(n, 0, "the child said nothing (status of setup: see exit code)");
	cr_assert_str_eq(buf, "0|empty_root,no_new_privs,caps_dropped,seccomp|0\n");
	/* its root holds nothing: no /etc, no /proc, no binary */
	snprintf(root, sizeof root, "/proc/%d/root", (int)pid);
	d = opendir(root);
	cr_assert_not_null(d, "opendir %s: %s", root, strerror(errno));
	while ((e = readdir(d)) != NULL)
		cr_assert(strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0,
			  "the confined root holds '%s'", e->d_name);
	closedir(d);
	snprintf(etc, sizeof etc, "%s/etc", root);
	cr_assert_eq(stat(etc, &st), -1);
	cr_assert_eq(errno, ENOENT);
	/* and ours is untouched: the pivot happened in its namespace only */
	cr_assert_eq(stat("/etc", &st), 0);
	snprintf(ns, sizeof ns, "/proc/%d/ns/mnt", (int)pid);
	cr_assert_gt(readlink("/proc/self/ns/mnt", ours, sizeof ours - 1), 0);
	cr_assert_gt(readlink(ns, theirs, sizeof theirs - 1), 0);
	cr_assert_str_neq(ours, theirs);
	close(ctlp[1]);
	close(outp[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert_eq(status, 0, "status %#x", status);
}
