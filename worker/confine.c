/*
 * confine — the worker confines itself (runs in moonpen-worker, before any
 * untrusted byte is read). Trusts the policy compiled into it
 * (policy/seccomp.allow) and nothing that happens after it returns: the
 * SIGSYS handler below runs when script-reachable code (Lua, or a bug in it)
 * makes a forbidden call, and so uses nothing but write(2) and raw syscalls.
 */
#include "worker/confine.h"

#include <errno.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <seccomp.h>

#include "seccomp_allow.h"

/* Syscall numbers below this get a name in the SIGSYS report (x86_64 ends
 * near 470); longer names than WRK_NAME_LEN - 1 are cut. */
#define WRK_NR_MAX 512
#define WRK_NAME_LEN 24

#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1 /* si_code of a seccomp SIGSYS (asm-generic/siginfo.h) */
#endif

/* Filled once by wrk_confine() before the filter exists, read by the SIGSYS
 * handler: static, because a handler must not allocate. */
static char wrk_names[WRK_NR_MAX][WRK_NAME_LEN];
static long wrk_tripwire_nr = -1;

/* ---- report helpers ------------------------------------------------------- */

static void layer_on(wrk_confine_report *rep, const char *name)
{
	if (rep->n_layers < WRK_CONFINE_MAX_LAYERS)
		rep->layers[rep->n_layers++] = name;
}

static void layer_missing(wrk_confine_report *rep, const char *name, const char *why)
{
	unsigned i = rep->n_missing;

	if (i >= WRK_CONFINE_MAX_LAYERS)
		return;
	snprintf(rep->reasons[i], WRK_CONFINE_REASON_LEN, "%s: %s", name, why);
	rep->missing[i] = rep->reasons[i];
	rep->n_missing++;
}

static int step_failed(wrk_confine_report *rep, const char *what, int err)
{
	snprintf(rep->error, sizeof rep->error, "%s: %s", what, strerror(err));
	return -err;
}

/* ---- step 1: the empty root ------------------------------------------------ */

/* Where the empty file system is mounted before it becomes the root: any
 * directory that surely exists will do, and /proc does, since own_mount_ns()
 * has just read it. The mount hides nothing from anyone else: it happens in the
 * worker's own, private mount namespace, and is moved to / at once. */
#define WRK_EMPTY_ROOT_AT "/proc"

/* Nonzero when this process has a mount namespace of its own: a different one
 * from its parent's (moonpend, which spawned it). Never pivot a namespace we
 * share: it would move the supervisor's root (or a test runner's) too. A
 * worker in the user namespace that sup_spawn made for an unprivileged
 * supervisor may not look at its parent's namespaces (EACCES): the parent is
 * then outside our user namespace, and the kernel lets us mount only in a
 * mount namespace that ours owns, so any namespace we can change is ours. */
static int own_mount_ns(wrk_confine_report *rep)
{
	char parent[32], why[96];
	struct stat ours, theirs;

	snprintf(parent, sizeof parent, "/proc/%d/ns/mnt", (int)getppid());
	if (stat("/proc/self/ns/mnt", &ours) != 0) {
		snprintf(why, sizeof why, "stat /proc/self/ns/mnt: %.40s", strerror(errno));
	} else if (stat(parent, &theirs) != 0) {
		if (errno == EACCES || errno == EPERM)
			return 1; /* the parent is beyond our user namespace */
		snprintf(why, sizeof why, "stat %s: %.40s", parent, strerror(errno));
	} else if (ours.st_dev != theirs.st_dev || ours.st_ino != theirs.st_ino) {
		return 1;
	} else {
		snprintf(why, sizeof why, "no mount namespace of its own (see mount_ns)");
	}
	layer_missing(rep, "empty_root", why);
	return 0;
}

/* The root becomes an empty, read-only tmpfs, and the old root is detached
 * from the namespace: no path leads to any file of the host any more, /proc
 * included. pivot_root(".", ".") stacks the old root on the new one; the
 * lazy unmount of "." then takes the old root (and every mount under it)
 * away. Returns 0, or an errno value with what naming the call. */
static int pivot_to_empty(const char **what)
{
	struct statfs sf;

	*what = "mount / MS_REC|MS_PRIVATE"; /* nothing propagates to the host */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
		return errno;
	*what = "mount tmpfs " WRK_EMPTY_ROOT_AT;
	if (mount("moonpen-empty", WRK_EMPTY_ROOT_AT, "tmpfs",
		  MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555") != 0)
		return errno;
	*what = "chdir " WRK_EMPTY_ROOT_AT;
	if (chdir(WRK_EMPTY_ROOT_AT) != 0)
		return errno;
	*what = "pivot_root";
	if (syscall(SYS_pivot_root, ".", ".") != 0)
		return errno;
	*what = "umount2 old root";
	if (umount2(".", MNT_DETACH) != 0)
		return errno;
	*what = "chdir /";
	if (chdir("/") != 0)
		return errno;
	/* trust, but check: / is now the empty read-only tmpfs */
	*what = "statfs / after pivot";
	if (statfs("/", &sf) != 0)
		return errno;
	if (sf.f_type != TMPFS_MAGIC || !(sf.f_flags & ST_RDONLY))
		return EXDEV;
	return 0;
}

/* Best effort like the namespaces it needs: without a mount namespace of our
 * own, or without CAP_SYS_ADMIN in it, the layer is reported missing (and
 * --require-layers empty_root makes that fatal in the supervisor). */
static void set_empty_root(wrk_confine_report *rep)
{
	const char *what = "";
	char why[96];
	int err;

	if (!own_mount_ns(rep))
		return;
	err = pivot_to_empty(&what);
	if (err != 0) {
		snprintf(why, sizeof why, "%s: %.50s", what, strerror(err));
		layer_missing(rep, "empty_root", why);
		return;
	}
	layer_on(rep, "empty_root");
}

/* ---- step 2: no_new_privs ------------------------------------------------- */

static int set_no_new_privs(wrk_confine_report *rep)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return step_failed(rep, "prctl(PR_SET_NO_NEW_PRIVS)", errno);
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return step_failed(rep, "prctl(PR_GET_NO_NEW_PRIVS)", EPERM);
	layer_on(rep, "no_new_privs");
	return 0;
}

/* ---- step 3: capabilities ------------------------------------------------- */

/* The bounding set limits what an exec could grant: irrelevant once exec is
 * forbidden and no_new_privs is set, so dropping it is best effort (it takes
 * CAP_SETPCAP, which an unprivileged worker does not hold). Returns how many
 * capabilities are left in it. */
static int drop_bounding_set(void)
{
	int cap, left = 0;

	for (cap = 0; cap < 64; cap++) {
		int r = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
		if (r < 0)
			break; /* past the last capability this kernel knows */
		if (r == 1 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0)
			left++;
	}
	return left;
}

static int drop_caps(wrk_confine_report *rep)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	unsigned i;

	if (drop_bounding_set() > 0)
		layer_missing(
		    rep, "caps_bounding",
		    "kept without CAP_SETPCAP (harmless: exec is forbidden, no_new_privs)");
	/* EINVAL: a kernel without ambient capabilities has none to clear */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
		return step_failed(rep, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)", errno);
	memset(data, 0, sizeof data);
	if (syscall(SYS_capset, &hdr, data) != 0)
		return step_failed(rep, "capset", errno);
	/* trust, but check: a set that is still non-empty is a failure */
	if (syscall(SYS_capget, &hdr, data) != 0)
		return step_failed(rep, "capget", errno);
	for (i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
		if (data[i].effective || data[i].permitted || data[i].inheritable)
			return step_failed(rep, "capabilities still held after capset", EPERM);
	layer_on(rep, "caps_dropped");
	return 0;
}

/* ---- step 4a: names for the SIGSYS report --------------------------------- */

static void fill_names(void)
{
	long nr;

	for (nr = 0; nr < WRK_NR_MAX; nr++) {
		char *s = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, (int)nr);
		if (s == NULL)
			continue; /* a gap in the table: reported by number only */
		snprintf(wrk_names[nr], WRK_NAME_LEN, "%s", s);
		free(s);
	}
}

const char *wrk_confine_syscall_name(long nr)
{
	if (nr < 0 || nr >= WRK_NR_MAX || wrk_names[nr][0] == '\0')
		return NULL;
	return wrk_names[nr];
}

/* ---- step 4b: the SIGSYS handler ------------------------------------------ */

static size_t put_str(char *buf, size_t at, size_t cap, const char *s)
{
	while (*s && at < cap)
		buf[at++] = *s++;
	return at;
}

static size_t put_num(char *buf, size_t at, size_t cap, long v)
{
	char tmp[24];
	size_t n = 0;
	unsigned long u = v < 0 ? 0UL - (unsigned long)v : (unsigned long)v;

	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u && n < sizeof tmp);
	if (v < 0 && at < cap)
		buf[at++] = '-';
	while (n && at < cap)
		buf[at++] = tmp[--n];
	return at;
}

/* Runs on the thread whose call was stopped. Async-signal-safe: static data,
 * write(2) and raw syscalls only. The forbidden call did not run. */
static void on_sigsys(int sig, siginfo_t *si, void *ctx)
{
	char line[96];
	size_t n = 0;
	long nr = si->si_code == SYS_SECCOMP ? (long)si->si_syscall : -1;
	const char *name = wrk_confine_syscall_name(nr);

	(void)sig;
	(void)ctx;
	n = put_str(line, n, sizeof line - 1, "seccomp: forbidden syscall ");
	n = put_str(line, n, sizeof line - 1, name ? name : "unknown");
	n = put_str(line, n, sizeof line - 1, " (");
	n = put_num(line, n, sizeof line - 1, nr);
	n = put_str(line, n, sizeof line - 1, ")");
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, n);
	/* the tripwire: the filter answers it with SECCOMP_RET_KILL_PROCESS */
	syscall(wrk_tripwire_nr);
	syscall(SYS_exit_group, 128 + SIGSYS); /* not reached while the filter holds */
}

static int install_sigsys_handler(wrk_confine_report *rep)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigfillset(&sa.sa_mask); /* nothing (the deadline's SIGALRM) interrupts the report */
	if (sigaction(SIGSYS, &sa, NULL) != 0)
		return step_failed(rep, "sigaction(SIGSYS)", errno);
	return 0;
}

/* ---- step 4c: the filter --------------------------------------------------- */

static uint32_t rule_action(const struct seccomp_allow_rule *ru)
{
	switch (ru->action) {
	case SECCOMP_ALLOW_ERRNO:
		return SCMP_ACT_ERRNO((uint32_t)ru->err);
	case SECCOMP_ALLOW_KILL:
		return SCMP_ACT_KILL_PROCESS;
	default:
		return SCMP_ACT_ALLOW;
	}
}

/* The tripwire is the policy's unconditional kill rule; without one the
 * handler could not end the process the way the design says. */
static int find_tripwire(wrk_confine_report *rep)
{
	size_t i;

	for (i = 0; i < SECCOMP_ALLOW_NRULES; i++) {
		const struct seccomp_allow_rule *ru = &seccomp_allow_rules[i];
		if (ru->action == SECCOMP_ALLOW_KILL && ru->ncmp == 0) {
			wrk_tripwire_nr = ru->nr;
			return 0;
		}
	}
	return step_failed(rep, "policy/seccomp.allow has no unconditional kill rule", EINVAL);
}

static int add_rules(scmp_filter_ctx f, wrk_confine_report *rep)
{
	uint64_t pid = (uint64_t)getpid();
	char what[80];
	size_t i;

	for (i = 0; i < SECCOMP_ALLOW_NRULES; i++) {
		const struct seccomp_allow_rule *ru = &seccomp_allow_rules[i];
		struct scmp_arg_cmp cmp[3];
		unsigned k;
		int r;

		memcpy(cmp, ru->cmp, sizeof cmp);
		for (k = 0; k < ru->ncmp; k++)
			if (ru->pid_mask & (1u << k))
				cmp[k].datum_a = pid;
		r = seccomp_rule_add_exact_array(f, rule_action(ru), ru->nr, ru->ncmp, cmp);
		if (r < 0) {
			snprintf(what, sizeof what, "seccomp rule '%s' (seccomp.allow:%d)",
				 ru->name, ru->line);
			return step_failed(rep, what, -r);
		}
	}
	return 0;
}

static int load_filter(wrk_confine_report *rep)
{
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_TRAP);
	int r;

	if (f == NULL)
		return step_failed(rep, "seccomp_init", ENOMEM);
	/* any other ABI (i386 int 0x80, x32) is killed before the rules run */
	r = seccomp_attr_set(f, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (r < 0) {
		r = step_failed(rep, "seccomp_attr_set(ACT_BADARCH)", -r);
		goto out;
	}
	/* NNG's threads already run: the filter goes on all of them at once */
	r = seccomp_attr_set(f, SCMP_FLTATR_CTL_TSYNC, 1);
	if (r < 0) {
		r = step_failed(rep, "seccomp_attr_set(CTL_TSYNC)", -r);
		goto out;
	}
	r = add_rules(f, rep);
	if (r < 0)
		goto out;
	r = seccomp_load(f);
	if (r < 0) {
		r = step_failed(rep, "seccomp_load", -r);
		goto out;
	}
	rep->rules = SECCOMP_ALLOW_NRULES;
	rep->syscalls = SECCOMP_ALLOW_NSYSCALLS;
	layer_on(rep, "seccomp");
out:
	seccomp_release(f);
	return r;
}

static int set_seccomp(wrk_confine_report *rep)
{
	int r = find_tripwire(rep);

	if (r < 0)
		return r;
	fill_names();
	r = install_sigsys_handler(rep);
	if (r < 0)
		return r;
	return load_filter(rep);
}

/* ---- the ordered steps ------------------------------------------------------ */

int wrk_confine(wrk_confine_report *rep)
{
	int r;

	memset(rep, 0, sizeof *rep);
	/* 1. no file reachable: needs CAP_SYS_ADMIN (in the worker's user
	 *    namespace without root), so before step 3; needs /proc, so first */
	set_empty_root(rep);
	/* 2. exec can never grant privileges; allows step 4 without CAP_SYS_ADMIN */
	r = set_no_new_privs(rep);
	if (r < 0)
		return r;
	/* 3. no capability survives (root in tests and containers) */
	r = drop_caps(rep);
	if (r < 0)
		return r;
	/* 4. the allowlist, on every thread, with the SIGSYS report */
	return set_seccomp(rep);
}

int wrk_confine_debug(wrk_confine_report *rep)
{
	int r;

	memset(rep, 0, sizeof *rep);
	/* valgrind reads its own files while the worker runs */
	layer_missing(rep, "empty_root", "disabled for a debugging run (--no-seccomp)");
	r = set_no_new_privs(rep);
	if (r == 0)
		r = drop_caps(rep);
	if (r == 0)
		layer_missing(rep, "seccomp", "disabled for a debugging run (--no-seccomp)");
	return r;
}
