/*
 * test_spawn — the supervisor's child set-up between fork and exec, seen from
 * the child: /bin/sh scripts print what they find (limits, descriptors,
 * session, namespaces, signals) on the stderr pipe that sup_spawn hands them.
 */
#include <criterion/criterion.h>
#include <sys/resource.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>

#include <dirent.h>
#include <grp.h>
#include <limits.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>

#include "policy/limits.h"
#include "supervisor/spawn.h"
#include "supervisor/wchan.h"
#include "tests/support/daemon.h"

#define ROLE_ENV "MOONPEN_SPAWN_TEST_ROLE"
#define URL_ENV "MOONPEN_SPAWN_TEST_URL"

/* Reads fd until EOF (or 10 s) into buf. */
static void read_all(int fd, char *buf, size_t len)
{
	struct pollfd p = {fd, POLLIN, 0};
	size_t have = 0;

	while (have < len - 1 && poll(&p, 1, 10000) > 0) {
		ssize_t n = read(fd, buf + have, len - 1 - have);
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	buf[have] = '\0';
}

/* Runs /bin/sh -c script under o (path, argv and stderr set here), returns
 * its stderr in out and its wait status. */
static int run_sh(sup_spawn_opts *o, const char *script, char *out, size_t outlen)
{
	char *argv[] = {"sh", "-c", (char *)script, NULL};
	char err[256] = "";
	int pfd[2], status = -1;
	pid_t pid;

	cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
	o->path = "/bin/sh";
	o->argv = argv;
	o->stderr_fd = pfd[1];
	cr_assert_eq(sup_spawn(o, &pid, err, sizeof err), 0, "sup_spawn: %s", err);
	close(pfd[1]);
	read_all(pfd[0], out, outlen);
	close(pfd[0]);
	cr_assert_eq(sup_spawn_reap(pid, &status, 10000), 0);
	return status;
}

Test(spawn, rlimits_are_set)
{
	sup_spawn_opts o;
	char out[512];
	int st;

	sup_spawn_opts_default(&o);
	o.rlimit_as = 300ull << 20;
	o.rlimit_cpu = 77;
	st = run_sh(
	    &o,
	    "echo n=$(ulimit -n) v=$(ulimit -v) t=$(ulimit -t) f=$(ulimit -f) c=$(ulimit -c) "
	    "l=$(ulimit -l) s=$(ulimit -s) >&2; ulimit -n 33 2>/dev/null || echo locked >&2",
	    out, sizeof out);
	cr_assert_eq(st, 0);
	/* ulimit -v, -l and -s count KiB; hard limits equal soft ones, so no raise */
	cr_assert_str_eq(out, "n=32 v=307200 t=77 f=0 c=0 l=0 s=2048\nlocked\n");
}

Test(spawn, defaults_come_from_policy_limits)
{
	sup_spawn_opts o;

	sup_spawn_opts_default(&o);
#ifdef MP_SANITIZED
	cr_assert_eq(o.rlimit_as, RLIM_INFINITY); /* ASan needs its shadow space */
#else
	cr_assert_eq(o.rlimit_as, (uint64_t)MP_LUA_MEM_BYTES + MP_WORKER_AS_MARGIN_BYTES);
#endif
	cr_assert_eq(o.rlimit_nofile, MP_WORKER_NOFILE);
	cr_assert_eq(o.rlimit_cpu, MP_WORKER_CPU_SECONDS);
	cr_assert_eq(o.rlimit_fsize, 0);
	cr_assert_eq(o.rlimit_core, 0);
	cr_assert_eq(o.rlimit_memlock, 0);
	cr_assert_eq(o.rlimit_stack, MP_WORKER_STACK_BYTES);
	cr_assert_eq(o.stderr_fd, -1);
	cr_assert_eq(o.namespaces, SUP_SPAWN_NS_USER | SUP_SPAWN_NS_NET | SUP_SPAWN_NS_IPC |
				       SUP_SPAWN_NS_UTS | SUP_SPAWN_NS_MNT);
	cr_assert_null(o.envp);
}

Test(spawn, only_stdio_descriptors_survive)
{
	sup_spawn_opts o;
	char out[512];
	int leak = open("/dev/null", O_RDONLY); /* no O_CLOEXEC: only sup_spawn closes it */
	int leak_hi = fcntl(leak, F_DUPFD, 200);

	cr_assert_geq(leak, 3);
	cr_assert_geq(leak_hi, 200);
	sup_spawn_opts_default(&o);
	cr_assert_eq(run_sh(&o,
			    /* exec, not a per-command >&2, which makes sh save fd 1 on
			     * fd 10; ls, not a glob, which would open the directory */
			    "[ /proc/$$/fd/0 -ef /dev/null ] && [ /proc/$$/fd/1 -ef /dev/null ] && "
			    "n=null; exec >&2; ls /proc/$$/fd; echo $n",
			    out, sizeof out),
		     0);
	cr_assert_str_eq(out, "0\n1\n2\nnull\n");
	close(leak);
	close(leak_hi);
}

Test(spawn, environment_is_only_what_is_given)
{
	char *envp[] = {"MOONPEN_X=1", NULL};
	sup_spawn_opts o;
	char out[512];

	/* the exported variables, but PWD, which sh sets itself */
	const char *script = "env | grep -v '^PWD=' >&2; echo end >&2";

	sup_spawn_opts_default(&o);
	cr_assert_eq(run_sh(&o, script, out, sizeof out), 0);
	cr_assert_str_eq(out, "end\n");
	o.envp = envp;
	cr_assert_eq(run_sh(&o, script, out, sizeof out), 0);
	cr_assert_str_eq(out, "MOONPEN_X=1\nend\n");
}

Test(spawn, own_session_and_process_group)
{
	sup_spawn_opts o;
	char out[512];

	sup_spawn_opts_default(&o);
	/* fields 5 and 6 of /proc/PID/stat: process group, session */
	cr_assert_eq(run_sh(&o,
			    "read pid comm state ppid pgrp sid rest < /proc/$$/stat; "
			    "[ $pgrp = $$ ] && [ $sid = $$ ] && echo leader >&2",
			    out, sizeof out),
		     0);
	cr_assert_str_eq(out, "leader\n");
}

Test(spawn, signal_handlers_and_mask_are_reset)
{
	struct sigaction ign, old_usr1;
	sigset_t block, old_mask;
	sup_spawn_opts o;
	char out[512];

	memset(&ign, 0, sizeof ign);
	ign.sa_handler = SIG_IGN;
	cr_assert_eq(sigaction(SIGUSR1, &ign, &old_usr1), 0);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR2);
	cr_assert_eq(pthread_sigmask(SIG_BLOCK, &block, &old_mask), 0);
	sup_spawn_opts_default(&o);
	cr_assert_eq(
	    run_sh(&o, "exec grep -E '^Sig(Blk|Ign)' /proc/self/status >&2", out, sizeof out), 0);
	cr_assert_str_eq(out, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
	sigaction(SIGUSR1, &old_usr1, NULL);
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
}

Test(spawn, failed_exec_names_the_step)
{
	char *argv[] = {"moonpen-worker", NULL};
	sup_spawn_opts o;
	char err[256] = "";
	pid_t pid = -1;

	sup_spawn_opts_default(&o);
	o.path = "/nonexistent/moonpen-worker";
	o.argv = argv;
	cr_assert_eq(sup_spawn(&o, &pid, err, sizeof err), -ENOENT);
	cr_assert_str_eq(err, "execve /nonexistent/moonpen-worker: No such file or directory");
	/* the failed child was reaped already */
	cr_assert_eq(waitpid(-1, NULL, WNOHANG), -1);
	cr_assert_eq(errno, ECHILD);
}

Test(spawn, failed_rlimit_names_the_step)
{
	char *argv[] = {"sh", "-c", "exit 0", NULL};
	sup_spawn_opts o;
	char err[256] = "";
	pid_t pid = -1;

	sup_spawn_opts_default(&o);
	o.path = "/bin/sh";
	o.argv = argv;
	o.rlimit_nofile = 1ull << 40; /* above fs.nr_open, even for root */
	cr_assert_eq(sup_spawn(&o, &pid, err, sizeof err), -EPERM);
	cr_assert_str_eq(err, "setrlimit RLIMIT_NOFILE: Operation not permitted");
}

/* The spawner dies; the worker must follow (SIGKILL), not linger. This test
 * process becomes a subreaper so that the orphan is reparented here. */
Test(spawn, worker_dies_with_its_spawner)
{
	char *argv[] = {"sleep", "30", NULL};
	int pfd[2], status = 0;
	pid_t mid, worker = 0;

	cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
	cr_assert_eq(pipe(pfd), 0);
	mid = fork();
	cr_assert_geq(mid, 0);
	if (mid == 0) {
		sup_spawn_opts o;
		char err[256];
		pid_t pid;
		sup_spawn_opts_default(&o);
		o.path = "/bin/sleep";
		o.argv = argv;
		if (sup_spawn(&o, &pid, err, sizeof err) != 0)
			_exit(1);
		(void)!write(pfd[1], &pid, sizeof pid);
		_exit(0); /* the spawner ends with its worker running */
	}
	close(pfd[1]);
	cr_assert_eq(read(pfd[0], &worker, sizeof worker), (ssize_t)sizeof worker);
	close(pfd[0]);
	cr_assert_eq(waitpid(mid, &status, 0), mid);
	cr_assert_eq(status, 0);
	cr_assert_eq(sup_spawn_reap(worker, &status, 5000), 0, "worker outlived its spawner");
	cr_assert(WIFSIGNALED(status));
	cr_assert_eq(WTERMSIG(status), SIGKILL);
}

/* "net:[4026531840]" for each namespace kind of process pid (0: ours), one per line. */
static void ns_ids(pid_t pid, const char *const *kinds, int n, char ids[][64])
{
	int i;

	for (i = 0; i < n; i++) {
		char path[64];
		ssize_t len;
		if (pid == 0)
			snprintf(path, sizeof path, "/proc/self/ns/%s", kinds[i]);
		else
			snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)pid, kinds[i]);
		len = readlink(path, ids[i], 63);
		cr_assert_gt(len, 0, "readlink %s: %s", path, strerror(errno));
		ids[i][len] = '\0';
	}
}

static const char *const ns_kinds[] = {"user", "net", "ipc", "uts", "mnt"};

Test(spawn, namespaces_are_reported)
{
	sup_spawn_opts o;
	sup_spawn_report rep;
	char out[512], ours[5][64];
	int i;

	ns_ids(0, ns_kinds, 5, ours);
	sup_spawn_opts_default(&o);
	o.report = &rep;
	cr_assert_eq(run_sh(&o,
			    "readlink /proc/$$/ns/user /proc/$$/ns/net /proc/$$/ns/ipc "
			    "/proc/$$/ns/uts /proc/$$/ns/mnt >&2",
			    out, sizeof out),
		     0);
	cr_assert_str_eq(rep.layers[0], "fds_closed");
	cr_assert_str_eq(rep.layers[3], "rlimits");
	if (geteuid() != 0 && rep.n_missing > 0) {
		/* a kernel that forbids unprivileged user namespaces: each refusal is said */
		cr_assert_eq(rep.n_layers + rep.n_missing, 9);
		cr_assert_eq(strncmp(rep.missing[0], "user_ns: ", 9), 0, "%s", rep.missing[0]);
		return;
	}
	cr_assert_eq(rep.n_missing, 0, "missing: %s", rep.n_missing ? rep.missing[0] : "");
	/* as root: no user namespace (not needed, not reported); otherwise first */
	i = 4;
	if (geteuid() != 0)
		cr_assert_str_eq(rep.layers[i++], "user_ns");
	cr_assert_str_eq(rep.layers[i++], "net_ns");
	cr_assert_str_eq(rep.layers[i++], "ipc_ns");
	cr_assert_str_eq(rep.layers[i++], "uts_ns");
	cr_assert_str_eq(rep.layers[i++], "mount_ns");
	cr_assert_eq(rep.n_layers, (unsigned)i);
	/* each of the child's namespaces differs from ours; the user one only without root */
	for (i = 0; i < 5; i++) {
		int shared = strstr(out, ours[i]) != NULL;
		cr_assert_eq(shared, i == 0 && geteuid() == 0, "%s namespace %s: %s", ns_kinds[i],
			     shared ? "shared" : "new", out);
	}
}

Test(spawn, no_namespaces_when_none_asked)
{
	sup_spawn_opts o;
	sup_spawn_report rep;
	char out[512];

	sup_spawn_opts_default(&o);
	o.namespaces = 0;
	o.report = &rep;
	cr_assert_eq(run_sh(&o, "true", out, sizeof out), 0);
	cr_assert_eq(rep.n_layers, 4);
	cr_assert_eq(rep.n_missing, 0);
}

/* ---- ipc:// reaches the supervisor from a new network namespace --------------- */

/* A spawned copy of this binary (exec'd: NNG is not fork-safe) plays a worker
 * that dials and says hello, before Criterion's main runs. */
__attribute__((constructor)) static void dialer_role(void)
{
	const char *role = getenv(ROLE_ENV), *url = getenv(URL_ENV);
	nng_socket s;

	if (role == NULL || url == NULL)
		return;
	if (nng_pair1_open(&s) != 0 || nng_dial(s, url, NULL, 0) != 0 ||
	    nng_send(s, "hello", 6, 0) != 0)
		_exit(3);
	nng_close(s);
	_exit(0);
}

Test(spawn, ipc_channel_crosses_network_namespace)
{
	char url[128], role_env[64], url_env[160];
	char *argv[] = {"spawn-test-dialer", NULL}, *envp[] = {role_env, url_env, NULL};
	char err[256] = "", *buf = NULL;
	sup_spawn_opts o;
	sup_spawn_report rep;
	nng_socket s;
	size_t len = 0;
	int status = -1;
	pid_t pid;

	if (geteuid() != 0)
		cr_skip_test("a new network namespace needs root here");
	snprintf(url, sizeof url, "ipc:///tmp/moonpen-spawn-%d.sock", (int)getpid());
	snprintf(role_env, sizeof role_env, "%s=dial", ROLE_ENV);
	snprintf(url_env, sizeof url_env, "%s=%s", URL_ENV, url);
	cr_assert_eq(nng_pair1_open(&s), 0);
	cr_assert_eq(nng_setopt_ms(s, NNG_OPT_RECVTIMEO, 5000), 0);
	cr_assert_eq(nng_listen(s, url, NULL, 0), 0);
	sup_spawn_opts_default(&o);
	o.path = "/proc/self/exe";
	o.argv = argv;
	o.envp = envp;
	o.report = &rep;
#ifndef MP_SANITIZED		  /* sanitizer builds keep RLIMIT_AS unset: ASan's shadow */
	o.rlimit_as = 1ull << 30; /* this test binary maps more than a worker */
#endif
	cr_assert_eq(sup_spawn(&o, &pid, err, sizeof err), 0, "%s", err);
	cr_assert_str_eq(rep.layers[4], "net_ns");
	cr_assert_eq(nng_recv(s, &buf, &len, NNG_FLAG_ALLOC), 0);
	cr_assert_str_eq(buf, "hello");
	nng_free(buf, len);
	cr_assert_eq(sup_spawn_reap(pid, &status, 5000), 0);
	cr_assert_eq(status, 0);
	nng_close(s);
	unlink(url + strlen("ipc://"));
}

/* ---- reaping and describing --------------------------------------------------- */

Test(spawn, reap_times_out_then_reaps)
{
	char *argv[] = {"sleep", "30", NULL};
	sup_spawn_opts o;
	char err[256];
	pid_t pid;
	int status = 0;
	struct timespec t0, t1;

	sup_spawn_opts_default(&o);
	o.path = "/bin/sleep";
	o.argv = argv;
	cr_assert_eq(sup_spawn(&o, &pid, err, sizeof err), 0, "%s", err);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(sup_spawn_reap(pid, &status, 100), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_assert_geq((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000, 90);
	cr_assert_eq(sup_spawn_reap(pid, &status, 0), -ETIMEDOUT);
	cr_assert_eq(kill(pid, SIGKILL), 0);
	cr_assert_eq(sup_spawn_reap(pid, &status, -1), 0);
	cr_assert_str_eq(sup_spawn_describe(status), "killed by SIGKILL");
	cr_assert_eq(sup_spawn_reap(pid, &status, 0), -ECHILD);
}

Test(spawn, describe_wait_statuses)
{
	cr_assert_str_eq(sup_spawn_describe(3 << 8), "exited 3");
	cr_assert_str_eq(sup_spawn_describe(0), "exited 0");
	cr_assert_str_eq(sup_spawn_describe(SIGSYS), "killed by SIGSYS (forbidden syscall)");
	cr_assert_str_eq(sup_spawn_describe(SIGSYS | 0x80), "killed by SIGSYS (forbidden syscall)");
	cr_assert_str_eq(sup_spawn_describe(SIGXCPU), "killed by SIGXCPU (CPU time limit)");
	cr_assert_str_eq(sup_spawn_describe(SIGSEGV | 0x80), "killed by SIGSEGV (core dumped)");
	cr_assert_str_eq(sup_spawn_describe(SIGABRT), "killed by SIGABRT");
}

/* An exited child's status through the whole path: spawn, exit 3, reap. */
Test(spawn, exit_status_round_trip)
{
	sup_spawn_opts o;
	char out[16];

	sup_spawn_opts_default(&o);
	cr_assert_str_eq(sup_spawn_describe(run_sh(&o, "exit 3", out, sizeof out)), "exited 3");
}

/* ---- a real worker: its namespaces, its empty root, the exact layers ----------- */

#define NOBODY 65534

struct live {
	char dir[64];
	char exe[PATH_MAX];
	wchan *w;
};

/* A run folder (owned by uid, mode 0700) and the worker's absolute path. */
static void live_prepare(struct live *l, uid_t uid)
{
	cr_assert_not_null(realpath(td_bin("moonpen-worker"), l->exe), "no %s",
			   td_bin("moonpen-worker"));
	snprintf(l->dir, sizeof l->dir, "/tmp/moonpen-spawn-XXXXXX");
	cr_assert_not_null(mkdtemp(l->dir));
	cr_assert_eq(chown(l->dir, uid, uid), 0);
}

/* Starts a worker through wchan (as moonpend does) and waits for its Hello. */
static void live_start(struct live *l)
{
	wchan_opts o;
	char err[512] = "";

	memset(&o, 0, sizeof o);
	o.worker_path = l->exe;
	o.run_dir = l->dir;
	o.id = 1;
	o.mem_bytes = MP_LUA_MEM_BYTES;
	o.hello_timeout_ms = 10000;
	cr_assert_eq(wchan_start(&o, &l->w, err, sizeof err), 0, "wchan_start: %s", err);
}

static void live_stop(struct live *l)
{
	wchan_free(l->w);
	cr_assert_eq(rmdir(l->dir), 0, "rmdir %s: %s", l->dir, strerror(errno));
}

/* Seen from outside: the worker's / holds nothing (no /etc, no /proc), and is
 * a read-only tmpfs. */
static void assert_empty_root(pid_t pid)
{
	char root[64], etc[80];
	struct dirent *e;
	struct statfs sf;
	struct stat st;
	DIR *d;

	snprintf(root, sizeof root, "/proc/%d/root", (int)pid);
	d = opendir(root);
	cr_assert_not_null(d, "opendir %s: %s", root, strerror(errno));
	while ((e = readdir(d)) != NULL)
		cr_assert(strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0,
			  "the worker's root holds '%s'", e->d_name);
	closedir(d);
	snprintf(etc, sizeof etc, "%s/etc", root);
	cr_assert_eq(stat(etc, &st), -1, "the worker sees /etc");
	cr_assert_eq(errno, ENOENT);
	cr_assert_eq(statfs(root, &sf), 0);
	cr_assert_eq(sf.f_type, TMPFS_MAGIC);
	cr_assert(sf.f_flags & ST_RDONLY, "the worker's root is writable");
}

/* Each namespace of pid differs from ours; the user one only when want_user. */
static void assert_own_namespaces(pid_t pid, int want_user)
{
	char ours[5][64], theirs[5][64];
	int i;

	ns_ids(0, ns_kinds, 5, ours);
	ns_ids(pid, ns_kinds, 5, theirs);
	for (i = 0; i < 5; i++)
		cr_assert_eq(strcmp(ours[i], theirs[i]) != 0, i > 0 || want_user,
			     "%s namespace: ours %s, the worker's %s", ns_kinds[i], ours[i],
			     theirs[i]);
}

/* The layers of a worker whose supervisor runs as we do now. */
static void assert_live_worker(struct live *l)
{
	pid_t pid = wchan_pid(l->w);
	int root = geteuid() == 0;

	if (!root && strncmp(wchan_missing(l->w), "user_ns: ", 9) == 0) {
		/* a kernel without unprivileged user namespaces: said, not hidden */
		cr_assert_null(strstr(wchan_layers(l->w), "empty_root"));
		live_stop(l);
		cr_skip_test("unprivileged user namespaces are disabled here");
	}
	cr_assert_str_eq(wchan_layers(l->w),
			 root ? "fds_closed,setsid,pdeathsig,rlimits,net_ns,ipc_ns,uts_ns,mount_ns,"
				"empty_root,no_new_privs,caps_dropped,seccomp"
			      : "fds_closed,setsid,pdeathsig,rlimits,user_ns,net_ns,ipc_ns,uts_ns,"
				"mount_ns,empty_root,no_new_privs,caps_dropped,seccomp");
	cr_assert_str_eq(wchan_missing(l->w), "");
	assert_own_namespaces(pid, !root);
	assert_empty_root(pid);
	live_stop(l);
}

Test(spawn, worker_runs_in_empty_root_and_own_namespaces)
{
	struct live l;

	live_prepare(&l, geteuid());
	live_start(&l);
	assert_live_worker(&l);
}

/* The path of a supervisor that is not root: here, root drops to nobody first
 * (dumpable again, as after an exec, so that its child may write its id maps). */
Test(spawn, unprivileged_worker_gets_a_user_namespace)
{
	struct live l;

	if (geteuid() != 0)
		cr_skip_test("needs root to become another user (the test above is this path)");
	live_prepare(&l, NOBODY);
	cr_assert_eq(setgroups(0, NULL), 0);
	cr_assert_eq(setresgid(NOBODY, NOBODY, NOBODY), 0);
	cr_assert_eq(setresuid(NOBODY, NOBODY, NOBODY), 0);
	cr_assert_eq(prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), 0);
	live_start(&l);
	assert_live_worker(&l);
}
