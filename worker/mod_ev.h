/*
 * mod_ev — the `ev` module: handlers registered by the entry chunk and the
 * queue of events an input dispatches. Runs in moonpen-worker; names,
 * patterns and payloads come from scripts (and the game server) and are
 * checked and bounded.
 *
 * Script API:
 *   ev.on(pattern, fn)     only at the top level of the entry chunk: handlers
 *                          are not durable state, they are re-registered on
 *                          every load (a restore runs the chunk again); later
 *                          calls raise
 *   ev.emit(name, payload) queues an internal event (payload: plain data or
 *                          nil, deep-copied now)
 * Patterns: an exact event name ("OnLeverSwitch"), or a prefix followed by a
 * single trailing '*' that matches any rest, empty included ("OnAreaEnter:*"
 * matches "OnAreaEnter:boss_room"; "combat.*" matches "combat.hit"; "*" matches
 * every event). '*' anywhere else is refused.
 *
 * Dispatch (driven by the engine): an event calls every matching handler in
 * registration order as fn(payload, name) (payload nil -> an empty table), then
 * the manifest triggers. Emitted events join a FIFO queue and are dispatched
 * after the current event's handlers and triggers have all run (breadth-
 * first), within the same input. An event emitted while dispatching an event
 * of depth d has depth d + 1 (the input's own event, timer or call is depth
 * 0); past max_depth, or past max_events emitted in one input, ev.emit raises.
 */
#ifndef MOONPEN_MOD_EV_H
#define MOONPEN_MOD_EV_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "common/val.h"
#include "worker/hostapi.h"

#define MEV_MAX_NAME 256
#define MEV_MAX_EVENTS 256 /* events emitted per input */
#define MEV_MAX_HANDLERS 1024

typedef struct mev_handler {
	char *pattern;
	char *trigger_id; /* "ev:<pattern>" */
	int ref;	  /* the function, in the Lua registry */
} mev_handler;

typedef struct mev_event {
	char *name;
	val_t *payload; /* NULL: nil */
	unsigned depth;
} mev_event;

typedef struct mev_bus mev_bus;

/* A new bus; NULL when out of memory. ctx must outlive it. */
mev_bus *mev_new(const hapi_ctx *ctx, uint32_t max_depth, uint32_t max_events);
void mev_free(mev_bus *b);

/* Publishes the global `ev`. May raise (run protected). */
void mev_install(lua_State *L, mev_bus *b);

/* Nonzero when name matches pattern (rules above). */
int mev_match(const char *pattern, const char *name);
/* Nonzero for a valid pattern (non-empty, <= MEV_MAX_NAME, '*' only last). */
int mev_pattern_ok(const char *pattern);

size_t mev_n_handlers(const mev_bus *b);
const mev_handler *mev_handler_at(const mev_bus *b, size_t i);

/* Queue: push takes name (copied) and payload (owned on success); pop moves
 * the oldest event into *ev (release with mev_event_clear) and returns 1, or
 * returns 0 when empty. */
int mev_push(mev_bus *b, const char *name, val_t *payload, unsigned depth)
    __attribute__((warn_unused_result));
int mev_pop(mev_bus *b, mev_event *ev);
void mev_event_clear(mev_event *ev);
/* Depth of the event being dispatched now (emits get depth + 1). */
void mev_set_depth(mev_bus *b, unsigned depth);
/* Empties the queue and resets the per-input emit count (input start, failure). */
void mev_reset(mev_bus *b);

#endif
