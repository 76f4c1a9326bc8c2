/*
 * confine — the worker confines itself (runs in moonpen-worker, once, after
 * it dialled the supervisor's channel and before it reads any byte from it).
 * Trusts nothing that comes later: every step fails hard, and a worker whose
 * confinement failed must exit without running a script.
 *
 * wrk_confine() runs these steps, in this order:
 *  1. empty_root    only in a mount namespace of the worker's own (sup_spawn
 *                   made it: "mount_ns"; checked against the parent's, so a
 *                   worker started by hand never pivots its caller's root):
 *                   an empty, read-only tmpfs becomes / by pivot_root, the
 *                   old root is detached, cwd is /. Nothing of the host's
 *                   file system (/etc, /proc, the binary) is reachable any
 *                   more. It runs after the dial (the ipc socket is a path)
 *                   and needs CAP_SYS_ADMIN in the namespace's owner (root,
 *                   or uid 0 of the worker's user namespace): so before 3.
 *                   Best effort: when it cannot be applied it is reported
 *                   missing with the failed call ("empty_root: pivot_root:
 *                   Operation not permitted"); the supervisor's
 *                   --require-layers makes that fatal.
 *  2. no_new_privs  prctl(PR_SET_NO_NEW_PRIVS): nothing this process execs can
 *                   gain privileges (setuid bits and file capabilities are
 *                   ignored), and step 4 may load a filter without
 *                   CAP_SYS_ADMIN. Must precede 4.
 *  3. caps_dropped  ambient set cleared, bounding set dropped when we hold
 *                   CAP_SETPCAP (it only matters for exec, which step 4 forbids),
 *                   then effective, permitted and inheritable sets zeroed with
 *                   capset and checked with capget. The worker runs as root in
 *                   tests; as another user it holds nothing and this is a check.
 *  4. seccomp       the allowlist of policy/seccomp.allow, through libseccomp:
 *                   a. the syscall name table for the SIGSYS report is filled
 *                      (static memory: the handler may not allocate);
 *                   b. the SIGSYS handler is installed (before the filter, which
 *                      forbids installing it later);
 *                   c. the filter: architecture check first (any ABI other than
 *                      the native one kills the process), the rules with their
 *                      argument filters, default action SIGSYS trap; loaded on
 *                      every thread at once (TSYNC: NNG's threads already run).
 *                   A forbidden call never runs: the handler writes
 *                   "seccomp: forbidden syscall NAME (NR)\n" to fd 2, then calls
 *                   the policy's tripwire, which the kernel answers by killing
 *                   the whole process with SIGSYS (docs/security.md).
 */
#ifndef MOONPEN_WRK_CONFINE_H
#define MOONPEN_WRK_CONFINE_H

#define WRK_CONFINE_MAX_LAYERS 8
#define WRK_CONFINE_REASON_LEN 128

/* What wrk_confine() did. layers[] names the layers in force ("empty_root",
 * "no_new_privs", "caps_dropped", "seccomp"), static strings; missing[] holds
 * "layer: reason" for each layer that could not be applied but is not fatal
 * (pointers into reasons[]: do not copy the struct); error says which step
 * failed and why when wrk_confine() returned < 0. The worker copies layers
 * and missing into its Hello. */
typedef struct wrk_confine_report {
	const char *layers[WRK_CONFINE_MAX_LAYERS];
	unsigned n_layers;
	const char *missing[WRK_CONFINE_MAX_LAYERS];
	unsigned n_missing;
	char reasons[WRK_CONFINE_MAX_LAYERS][WRK_CONFINE_REASON_LEN];
	char error[WRK_CONFINE_REASON_LEN];
	unsigned rules;	   /* allowlist rules loaded */
	unsigned syscalls; /* distinct syscalls they name */
} wrk_confine_report;

/* Runs steps 1-4 above on the calling process (all its threads). Call it once,
 * after the channel is dialled and before any message is read. Returns 0 when
 * every step is in force, or a negative errno-style code with rep->error set
 * ("seccomp_load: Invalid argument"); the caller must then exit. The process
 * may be partly confined after a failure. rep must not be NULL. */
int wrk_confine(wrk_confine_report *rep) __attribute__((warn_unused_result));

/* DEBUGGING ONLY (a worker run under valgrind, whose own system calls no
 * allowlist can predict and which reads its own files): steps 2 and 3, and
 * "empty_root" and "seccomp" reported as missing with the reason, so that the supervisor and `info`
 * show it. moonpend only asks for it when its operator set --worker-wrapper. */
int wrk_confine_debug(wrk_confine_report *rep) __attribute__((warn_unused_result));

/* Name of syscall nr on this architecture from the table that wrk_confine()
 * filled ("openat"), or NULL before wrk_confine() or for an unknown number.
 * Static storage. */
const char *wrk_confine_syscall_name(long nr);

#endif
