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

#include <stdint.h>

#include "moonpen.pb-c.h"
#include "worker.pb-c.h"

typedef struct eng eng;

/* What an input produced. Both members are heap-allocated protobuf-c messages
 * owned by the caller (free each with protobuf_c_message_free_unpacked). On
 * failure status->code says why and result holds what is still meaningful
 * (tick, state_hash, logs, usage; never the effects of a failed input). */
typedef struct eng_out {
	Moonpen__V1__Status *status;
	Moonpen__V1__Result *result;
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

/* Current tick and state hash (32 bytes) without running script code. */
uint64_t eng_tick_now(const eng *e);
void eng_state_hash(eng *e, uint8_t hash[32]);

/* Frees the instance and its Lua state (NULL is fine). */
void eng_free(eng *e);

#endif
