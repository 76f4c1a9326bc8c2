/*
 * spawn — start a worker process: fork, set up the child, exec (runs in the
 * supervisor; the child side runs between fork and exec and uses only
 * async-signal-safe calls). Trusts its caller's options; trusts nothing the
 * child does after exec (see worker/confine.h for the worker's own steps).
 *
 * In the child, in this order (DESIGN.md §2):
 *  1. signals: every handler reset to the default (exec keeps ignored
 *     signals), the mask emptied just before exec;
 *  2. descriptors: stdin and stdout on /dev/null, stderr on o->stderr_fd (or
 *     inherited), every other descriptor closed ("fds_closed");
 *  3. setsid() ("setsid"): its own session and process group, no terminal;
 *  4. PR_SET_PDEATHSIG(SIGKILL), then getppid() against the parent's pid
 *     recorded before fork: a parent that already died means exit
 *     ("pdeathsig"). The signal fires when the *thread* that called
 *     sup_spawn() ends: call it from a thread that lives as long as the worker;
 *  5. rlimits ("rlimits"): AS, CPU, NOFILE, FSIZE, CORE, MEMLOCK, STACK;
 *  6. namespaces, each on its own and best effort, in this order:
 *     a. user ("user_ns"), only when the supervisor is not root: a new user
 *        namespace in which the child is uid/gid 0, mapped to the
 *        supervisor's own uid/gid (setgroups denied). It owns the namespaces
 *        below, so an unprivileged supervisor can create them, and it gives
 *        the exec'd worker the capabilities (inside it only) that its
 *        empty root needs, which the worker then drops. As root it is not
 *        created (and not reported): root needs no help, and mapping the
 *        worker to another uid would lock it out of its socket;
 *     b. net, ipc, uts ("net_ns", "ipc_ns", "uts_ns");
 *     c. mount ("mount_ns"), with every mount made private (MS_REC |
 *        MS_PRIVATE) so that nothing the worker mounts propagates back. The
 *        worker itself replaces its root with an empty one (worker/confine.h:
 *        the exec and the dial still need the filesystem).
 *     One that the kernel refuses (EPERM without root and without a user
 *     namespace, which the kernel may forbid too) is reported as missing with
 *     the call that failed, never silently skipped;
 *  7. execve(o->path, o->argv, o->envp).
 * A failure in steps 1-5 or 7 ends the child with _exit(127) after telling
 * the parent, through a close-on-exec pipe, which step failed and its errno;
 * sup_spawn() then reaps the child and returns that error. A close of the pipe
 * without a failure record means the exec succeeded.
 */
#ifndef MOONPEN_SUP_SPAWN_H
#define MOONPEN_SUP_SPAWN_H

#include <stdint.h>
#include <sys/types.h>

#define SUP_SPAWN_NS_NET 0x1u
#define SUP_SPAWN_NS_IPC 0x2u
#define SUP_SPAWN_NS_UTS 0x4u
#define SUP_SPAWN_NS_MNT 0x8u
#define SUP_SPAWN_NS_USER 0x10u /* applied only when the caller is not root */

#define SUP_SPAWN_MAX_LAYERS 12
#define SUP_SPAWN_REASON_LEN 96

/* Layers the child had in force when it exec'd: static names ("fds_closed",
 * "setsid", "pdeathsig", "rlimits", "user_ns", "net_ns", "ipc_ns", "uts_ns",
 * "mount_ns", in this order) and "layer: reason" for each asked-for layer it
 * could not apply ("uts_ns: unshare: Operation not permitted",
 * "user_ns: write /proc/self/uid_map: Operation not permitted"; pointers into
 * reasons[]: do not copy the struct). */
typedef struct sup_spawn_report {
	const char *layers[SUP_SPAWN_MAX_LAYERS];
	unsigned n_layers;
	const char *missing[SUP_SPAWN_MAX_LAYERS];
	unsigned n_missing;
	char reasons[SUP_SPAWN_MAX_LAYERS][SUP_SPAWN_REASON_LEN];
} sup_spawn_report;

/* An rlimit value meaning "leave the inherited limit alone" (debugging runs
 * under valgrind only, which refuses a child's RLIMIT_NOFILE change). */
#define SUP_SPAWN_RLIMIT_KEEP (UINT64_MAX - 1)

typedef struct sup_spawn_opts {
	const char *path;  /* executable, not searched in PATH */
	char *const *argv; /* argv[0] included, NULL-terminated */
	char *const *envp; /* NULL: an empty environment */
	int stderr_fd;	   /* the child's stderr (a pipe's write end); -1: inherit ours */
	/* rlimits, soft = hard (CPU: hard = soft + 1 s, so SIGXCPU comes first);
	 * RLIM_INFINITY for none. RLIMIT_NPROC is not set: it counts every
	 * process and thread of the uid, the supervisor's included, and seccomp
	 * already forbids the worker any process. */
	uint64_t rlimit_as;	  /* bytes: the Lua cap + MP_WORKER_AS_MARGIN_BYTES */
	uint64_t rlimit_cpu;	  /* seconds over the worker's life: a backstop */
	uint64_t rlimit_nofile;	  /* descriptors */
	uint64_t rlimit_fsize;	  /* bytes a write may extend a file to: 0 */
	uint64_t rlimit_core;	  /* core dump bytes: 0 */
	uint64_t rlimit_memlock;  /* locked bytes: 0 */
	uint64_t rlimit_stack;	  /* also glibc's default thread stack size */
	unsigned namespaces;	  /* SUP_SPAWN_NS_* wanted */
	sup_spawn_report *report; /* filled by sup_spawn() if not NULL */
} sup_spawn_opts;

/* Fills o with the defaults of policy/limits.h (AS = MP_LUA_MEM_BYTES +
 * margin), stderr inherited, an empty environment, every namespace wanted
 * (user, net, ipc, uts, mount; user only takes effect without root), no
 * report. path and argv stay NULL: the caller sets them. */
void sup_spawn_opts_default(sup_spawn_opts *o);

/* Starts o->path as a child set up as described above. Returns 0 with *pid
 * once the exec has succeeded, or a negative errno-style code with err
 * naming the failed step ("execve /x/moonpen-worker: No such file or
 * directory", "setrlimit RLIMIT_AS: Invalid argument"); the failed child is
 * reaped. Safe to call from several threads; the caller reaps the child
 * (sup_spawn_reap) and owns o->stderr_fd (not closed here). */
int sup_spawn(const sup_spawn_opts *o, pid_t *pid, char *err, unsigned long errlen)
    __attribute__((warn_unused_result));

/* Waits up to timeout_ms (< 0: forever, 0: just look) for child pid to end
 * and reaps it. Returns 0 with *wstatus set, -ETIMEDOUT if it still runs, or
 * -errno from waitpid (-ECHILD: not our child, or already reaped). */
int sup_spawn_reap(pid_t pid, int *wstatus, int timeout_ms) __attribute__((warn_unused_result));

/* A wait status in words: "exited 3", "killed by SIGKILL", "killed by SIGSYS
 * (forbidden syscall)", "killed by SIGXCPU (CPU time limit)", "killed by
 * SIGSEGV (core dumped)". Per-thread static storage, valid until the calling
 * thread's next call. */
const char *sup_spawn_describe(int wstatus);

#endif
