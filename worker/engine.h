/*
 * engine — one instance's script runtime (runs in moonpen-worker, after
 * confinement). Trusts the Init it was handed by the supervisor; trusts no
 * script: every host function checks its arguments, every budget is enforced
 * here (soft deadline, instruction budget, memory cap) and, as a backstop, by
 * the supervisor's watchdog.
 *
 * The engine never touches a file, a socket or the wall clock on behalf of a
 * script: everything arrives in the Init (pack files, manifest, schema).
 */
#ifndef MOONPEN_ENGINE_H
#define MOONPEN_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "moonpen.pb-c.h"
#include "policy/limits.h"
#include "worker.pb-c.h"

typedef struct eng eng;

/* Instances one worker process hosts (ToWorker.slot < this): one engine, one
 * lua_State and one memory cap each, nothing shared between them. */
#define ENG_MAX_SLOTS MP_WORKER_MAX_SLOTS

/* What an input produced. Both members are heap-allocated protobuf-c messages
 * owned by the caller (free each with protobuf_c_message_free_unpacked). On
 * failure status->code says why and result holds what is still meaningful
 * (tick, state_hash, logs, usage; never the effects of a failed input). */
typedef struct eng_out {
	Moonpen__V1__Status *status;
	Moonpen__V1__Result *result;
	/* status PENDING only: the query the input waits for (call_id, api, fn,
	 * args; timeout_ms left 0). Caller-owned like the others; result is NULL. */
	Moonpen__V1__HostCall *host_call;
} eng_out;

/* Creates the instance: checks the manifest and schema, builds the sandboxed
 * Lua state, loads the entry chunk, runs on_init(ctx) (fresh instances only).
 * Returns 0 with *e set (the instance may still report a script error in
 * out->status, in which case *e is NULL), or -ENOMEM when even the status
 * could not be allocated. Status codes: BAD_PACK (manifest, missing entry,
 * syntax error), INVALID_ARGUMENT (Init fields), SCRIPT_ERROR / TIMEOUT /
 * BUDGET_EXCEEDED / MEMORY_LIMIT from on_init. */
int eng_create(const Moonpen__Worker__V1__Init *init, eng **e, eng_out *out)
    __attribute__((warn_unused_result));

/* Dispatches one event to the matching ev.on handlers (and manifest triggers). */
int eng_event(eng *e, const Moonpen__V1__SendEvent *ev, eng_out *out)
    __attribute__((warn_unused_result));
/* Advances instance time by count ticks (0 = 1), firing due timers in order. */
int eng_tick(eng *e, uint32_t count, eng_out *out) __attribute__((warn_unused_result));
/* Calls a global function by name; its return values go to out->result->returns. */
int eng_call(eng *e, const Moonpen__V1__Call *call, eng_out *out)
    __attribute__((warn_unused_result));
/* Runs on_close(ctx) if the script defines it. The engine stays usable for free. */
int eng_close(eng *e, eng_out *out) __attribute__((warn_unused_result));

/* ---- queries (async host calls) ------------------------------------------------
 * Every event, tick and call runs on its own coroutine. A script calling a
 * host function of kind "query" suspends its input: the engine answers status
 * PENDING with out->host_call (call ids count per instance from 1, roll back
 * with a failed input, and are in the snapshot) and keeps the input open
 * (state journal, timers, RNG, throttles, effects). While an input is pending,
 * event, tick, call and snapshot answer INVALID_ARGUMENT "input pending on
 * query N"; close discards the pending input, then runs on_close. Queries are
 * refused (script error) in the chunk, on_init, on_close, script coroutines
 * and under C functions that cannot yield. The soft deadline and instruction
 * budget restart at each stretch the script runs (waits do not count); usage
 * adds the stretches up. */

/* Resumes the pending input with the answer: the query returns hr->value (no
 * value: nil), or nil, hr->error. The reply is another PENDING or the input's
 * final result (effects of the whole input, returns, tick, state hash), exactly
 * as eng_event / eng_tick / eng_call would answer. A call_id other than the
 * pending one, no pending input or a value that fails val_check is
 * INVALID_ARGUMENT and changes nothing (the input stays pending). */
int eng_host_result(eng *e, const Moonpen__V1__HostResult *hr, eng_out *out)
    __attribute__((warn_unused_result));
/* Rolls the pending input back completely (state, timers, RNG, throttles,
 * effects, call ids) and answers OK with the unchanged tick and state hash;
 * INVALID_ARGUMENT when no input is pending. */
int eng_abort(eng *e, eng_out *out) __attribute__((warn_unused_result));
/* The call id the pending input waits for, 0 when none. */
uint64_t eng_pending(const eng *e);
/* Events, ticks and calls applied (successful ones), counted across restores. */
uint64_t eng_inputs(const eng *e);

/* ---- snapshots (docs/snapshots.md) ------------------------------------------------
 * A restore is eng_create with a non-empty Init.snapshot: the pack and entry
 * chunk load as usual (handlers re-register), on_init does not run, then the
 * snapshot is checked and imported; the status is INVALID_ARGUMENT naming the
 * problem (another instance, pack id or version, seed or tick_ms; a malformed
 * field; "snapshot state hash mismatch"), else OK with the tick and hash. */

/* Encodes a moonpen.worker.v1.Snapshot of the instance into a new buffer (*buf,
 * free() it). Returns 0, -EBUSY while an input is pending on a query (answer
 * "input pending on query N", eng_pending), -EINVAL after close, -EFBIG past
 * MP_SNAPSHOT_MAX_BYTES, -ENOMEM. Runs no script code. */
int eng_snapshot(eng *e, uint8_t **buf, size_t *len) __attribute__((warn_unused_result));

/* Current tick and state hash (32 bytes) without running script code. */
uint64_t eng_tick_now(const eng *e);
void eng_state_hash(eng *e, uint8_t hash[32]);

/* Frees the instance and its Lua state (NULL is fine). */
void eng_free(eng *e);

#endif
