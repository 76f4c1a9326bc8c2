/*
 * wchan — one worker process and its PAIR1 channel, seen from the supervisor.
 *
 * Runs in the supervisor; every byte from the worker is hostile: replies are
 * size-capped, decoded, checked against the request's sequence number, and a
 * worker that sends anything unexpected is killed. The hard deadline (the
 * watchdog) is the receive timeout of each RPC: past it the worker gets SIGKILL.
 * A wchan is used by one thread at a time: its instance's thread, or the
 * instance threads of a pool one RPC at a time under the pool's lock; a warm
 * spare is started by the spawner thread and then handed over (spare.h).
 */
#ifndef MOONPEN_SUP_WCHAN_H
#define MOONPEN_SUP_WCHAN_H

#include <stdint.h>
#include <sys/types.h>

#include "common/status.h"
#include "worker.pb-c.h"

typedef struct wchan wchan;

typedef struct wchan_opts {
	const char *worker_path; /* moonpen-worker */
	const char *run_dir;	 /* where w-<id>.sock is created */
	unsigned id;		 /* unique per supervisor run */
	uint64_t mem_bytes;	 /* the instance's Lua cap: RLIMIT_AS adds a margin */
	uint32_t hello_timeout_ms;
	const char *require; /* "a,b": layers that must be in force, else the start fails */
	const char *wrapper; /* debug: space-separated command put before the worker
			      * (absolute path first); NULL or "" in production */
} wchan_opts;

/* Starts a worker: listens on ipc://<run_dir>/w-<id>.sock, spawns the worker
 * (confined by sup_spawn and by itself), waits for its Hello. Returns 0 and
 * *out, or a negative code with err filled (the worker, if any, is killed). */
int wchan_start(const wchan_opts *o, wchan **out, char *err, unsigned long errlen)
    __attribute__((warn_unused_result));

/* Sends m (its seq is set here) and waits up to timeout_ms for the reply, which
 * must echo m's seq and slot (a pool worker hosts several instances).
 * Returns 0 and *out (free with protobuf_c_message_free_unpacked); otherwise
 * the worker is dead or has been killed, and the return is -ETIMEDOUT (hard
 * deadline: SIGKILL sent), -EPIPE (it died), -EBADMSG (it broke the protocol:
 * killed). After a failure, wchan_death() tells what happened. */
int wchan_rpc(wchan *w, Moonpen__Worker__V1__ToWorker *m, uint32_t timeout_ms,
	      Moonpen__Worker__V1__FromWorker **out) __attribute__((warn_unused_result));

/* After a failed RPC: the status code for the failed input (TIMEOUT,
 * WORKER_CRASHED, MEMORY_LIMIT) and a message ("killed by SIGSYS: forbidden
 * syscall openat"). The string lives as long as w. */
st_code wchan_death(const wchan *w, const char **why);

pid_t wchan_pid(const wchan *w);
/* Nonzero while the worker's channel is up (a warm spare that died while it
 * waited reads 0 and must not be handed out). */
int wchan_alive(wchan *w);
/* Confinement layers the worker reported in its Hello ("a,b,c"), and those it
 * could not apply with reasons. Strings live as long as w. */
const char *wchan_layers(const wchan *w);
const char *wchan_missing(const wchan *w);

/* Kills the worker if alive, reaps it, closes the channel, removes the
 * socket file. NULL is fine. */
void wchan_free(wchan *w);

#endif
