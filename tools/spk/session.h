/*
 * session — one instance in a real confined moonpen-worker, driven by spk
 * (runs in the spk process, which is not confined: it never runs pack code
 * itself). Every worker reply is checked by wchan; a worker that dies or
 * overruns its hard deadline is killed and reported as the input's status.
 */
#ifndef MOONPEN_SPK_SESSION_H
#define MOONPEN_SPK_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "common/pack.h"
#include "common/trace.h"
#include "worker.pb-c.h"

typedef struct spk_sess spk_sess;

typedef struct spk_sess_opts {
	const pack *pk;
	const char *host_api; /* schema JSON bytes (may be empty) */
	size_t host_api_len;
	uint64_t seed;
	uint32_t tick_ms; /* 0: the manifest's, else MP_DEFAULT_TICK_MS */
	/* debugging runs (valgrind): as moonpend's --worker-wrapper and --deadline-ms */
	const char *wrapper;  /* NULL or "": none */
	uint32_t deadline_ms; /* default soft deadline; 0: MP_SOFT_DEADLINE_MS */
} spk_sess_opts;

/* Answers one query of the input in progress: fills *out (a malloc'd
 * HostResult, freed by the session) and returns 0, or returns negative with
 * a message in err (the input then fails). */
typedef int (*spk_answer_fn)(void *arg, const Moonpen__V1__HostCall *hc,
			     Moonpen__V1__HostResult **out, char *err, size_t errlen);

/* Prepares a session: a private run folder (mode 0700) and the Init message.
 * No worker yet. 0 and *out, or negative with err. */
int spk_sess_new(const spk_sess_opts *o, spk_sess **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The Init the session sends (snapshot empty); lives as long as s. */
const Moonpen__Worker__V1__Init *spk_sess_init(const spk_sess *s);

/* Starts a fresh worker (killing the previous one) and sends Init, with
 * snapshot as Init.snapshot when snap_len > 0. 0 and *reply (the worker's
 * answer to Init; its status may be an error: free it), or negative with err
 * (the worker could not start or died). */
int spk_sess_boot(spk_sess *s, const uint8_t *snap, size_t snap_len,
		  Moonpen__Worker__V1__FromWorker **reply, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Sends one input (event, tick or call; tw->seq is set here) and serves its
 * queries with answer(), recording input, answers and outcome in rec when not
 * NULL. Fills *got with the outcome (trace_outcome_clear it). Returns 0 (the
 * worker answered, whatever the status; *got.killed when it was killed: the
 * session then has no worker until the next boot), or negative with err (out
 * of memory, a query answer missing). */
int spk_sess_input(spk_sess *s, Moonpen__Worker__V1__ToWorker *tw, spk_answer_fn answer, void *arg,
		   trace *rec, tr_outcome *got, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The instance's current tick (from the last result, or the snapshot's). */
uint64_t spk_sess_tick(const spk_sess *s);

/* Takes a snapshot (TakeSnapshot). 0 and *snap (malloc'd) / *len, or negative
 * with err (the worker refused: its status message is in err). */
int spk_sess_snapshot(spk_sess *s, uint8_t **snap, size_t *len, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Kills the worker, removes the run folder, frees s. NULL is fine. */
void spk_sess_free(spk_sess *s);

#endif
