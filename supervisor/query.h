/*
 * query — the supervisor's side of async host queries, for one instance.
 * Runs in the supervisor, in the instance's thread; the HostCall comes from a
 * worker (hostile: checked here before a game server sees it), the HostResult
 * from a game server (checked by reqcheck, matched here).
 *
 * Life of a query: an input (event, tick, call) reaches a script that calls a
 * host API function of kind "query"; the worker answers the input with status
 * PENDING and a HostCall. The supervisor answers the client the same way
 * (timeout_ms filled in), logs the input, and waits for a HostResult with that
 * call_id; other requests for the instance wait in its queue. The HostResult is
 * logged and sent to the worker, whose reply (final, or another PENDING)
 * answers it. Past the timeout the worker is told to Abort (the input rolls
 * back), the input and its answers leave the log, and the call id is
 * remembered so that a late answer gets TIMEOUT with a clear message.
 *
 * This module keeps the state and the rules; inst.c does the I/O.
 */
#ifndef MOONPEN_SUP_QUERY_H
#define MOONPEN_SUP_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "moonpen.pb-c.h"
#include "worker.pb-c.h"

/* Finished queries remembered for late or repeated answers. */
#define SUP_QUERY_GONE 16

typedef struct sup_query_gone {
	uint64_t call_id;
	st_code code;
	char message[256];
} sup_query_gone;

typedef struct sup_query {
	uint64_t call_id;     /* the query the pending input waits for; 0: none */
	uint64_t deadline_ms; /* monotonic ms past which it is aborted */
	uint32_t timeout_ms;
	size_t log_start; /* input-log length before the pending input */
	char what[160];	  /* "api.fn", for messages */
	uint64_t started_ms;
	sup_query_gone gone[SUP_QUERY_GONE]; /* ring of finished queries */
	size_t ngone;			     /* ever recorded */
} sup_query;

/* Checks a worker's HostCall before it goes to a game server: call_id not 0,
 * api and fn 1..128 bytes of valid UTF-8, at most MP_MAX_CALL_ARGS arguments
 * that pass val_check. 0, or -EBADMSG with the reason in err (the worker broke
 * the protocol). hc may be NULL (-EBADMSG). */
int sup_query_check_call(const Moonpen__V1__HostCall *hc, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Records the pending query hc (checked) of the input logged from log index
 * log_start, due to expire timeout_ms after now_ms. */
void sup_query_begin(sup_query *q, const Moonpen__V1__HostCall *hc, size_t log_start,
		     uint64_t now_ms, uint32_t timeout_ms);

/* The client's answer to the worker's PENDING reply fw: a new Response that
 * takes fw's status and host_call (timeout_ms set to timeout_ms; a status
 * without a message gets one naming the query); fw is freed. NULL when out of
 * memory (fw freed all the same). */
Moonpen__V1__Response *sup_query_pending_reply(Moonpen__Worker__V1__FromWorker *fw,
					       uint32_t timeout_ms);

/* Matches a HostResult against the pending query. 0 when it answers it;
 * otherwise -ENOENT with the status for the HostResult in *code and msg:
 * TIMEOUT (or the recorded code) for a query that was discarded, NOT_FOUND
 * for a call id this instance is not waiting for. */
int sup_query_match(const sup_query *q, const char *inst_id, uint64_t call_id, st_code *code,
		    char *msg, size_t msglen) __attribute__((warn_unused_result));

/* Nonzero when a query is pending and now_ms is past its deadline. */
int sup_query_expired(const sup_query *q, uint64_t now_ms);

/* Ends the pending query. When code is not OK its input was discarded: the
 * call id is remembered with code and the message (later answers get them).
 * No-op when nothing is pending. */
void sup_query_end(sup_query *q, st_code code, const char *message);

/* Ends the pending query after its timeout: remembered as TIMEOUT "query N
 * (api.fn) unanswered after X ms; the input was discarded" (also written to
 * msg). */
void sup_query_timeout(sup_query *q, char *msg, size_t msglen);

#endif
