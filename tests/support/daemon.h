/*
 * daemon — test support: a real moonpend in a temporary folder (test
 * processes only). Binaries come from $BUILD/bin (default build/bin).
 */
#ifndef MOONPEN_TEST_DAEMON_H
#define MOONPEN_TEST_DAEMON_H

#include <sys/types.h>

typedef struct td {
	char dir[256]; /* temporary folder, removed by td_stop */
	char url[320]; /* ipc://<dir>/run/api.sock */
	char run[300]; /* run folder */
	char log[300]; /* moonpend's stderr */
	pid_t pid;
} td;

/* Starts moonpend with --packs packs_dir (NULL: examples/packs) and extra
 * flags (NULL-terminated, may be NULL), waits until its API socket exists.
 * Returns 0, or -1 (the log says why). */
int td_start(td *d, const char *packs_dir, const char *const *extra);

/* Forks and execs moonpend --listen url --packs packs --run-dir run
 * --state-dir state (plus the debugging flags of td_slow()) and extra
 * (NULL-terminated, may be NULL), its stderr appended to log; the daemon gets
 * pdeathsig when the calling thread ends. Returns its pid, or -1. */
pid_t td_exec(const char *url, const char *packs, const char *run, const char *state,
	      const char *log, int pdeathsig, const char *const *extra);

/* Nonzero when a REQ socket can dial url (the API listens). */
int td_api_answers(const char *url);

/* SIGTERM, waits for the exit. Returns the exit status (0 expected); also
 * fails (-2) when the run folder still holds a socket file afterwards. The
 * temporary folder is removed unless keep is set. */
int td_stop(td *d, int keep);

/* Path of a built program: "$BUILD/bin/<name>". Static buffer. */
const char *td_bin(const char *name);

/* Nonzero while pid exists (and is not a zombie). */
int td_alive(pid_t pid);

/* Nonzero when the tests run their workers under a debugging wrapper
 * (MOONPEN_TEST_WORKER_WRAPPER, set by make test-valgrind): everything is
 * tens of times slower, so moonpend gets a 1 s soft deadline. */
int td_slow(void);

/* The hard deadline moonpend enforces for one input (ms): max(1000, 10 x soft). */
double td_hard_deadline_ms(void);

/* Milliseconds on CLOCK_MONOTONIC. */
double td_now_ms(void);

/* Runs `spk replay 'trace_path' args` (args: more flags, may be ""; under
 * td_slow() the worker wrapper and a 1 s deadline are added) and puts what it
 * printed (stdout and stderr) in out. Its exit status, or -1. */
int td_spk_replay(const char *trace_path, const char *args, char *out, size_t outlen);

#endif
