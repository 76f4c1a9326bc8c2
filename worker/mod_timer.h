/*
 * mod_timer — instance time: the `timer` and `clock` modules. Runs in
 * moonpen-worker; arguments come from scripts and are checked.
 *
 * Script API:
 *   timer.after(ms, fn, ...)   runs fn(...) once, ceil(ms / tick_ms) ticks from
 *                              now (at least 1); returns an integer id
 *   timer.every(ms, fn, ...)   the same, re-armed every period after it fires
 *   timer.cancel(id)           true when a pending timer was removed
 *   timer.id(name)             the id of the manifest timer `name` (raises for
 *                              a name the manifest does not declare)
 *   clock.now()                tick * tick_ms: instance time in ms (integer)
 *   clock.tick()               the current tick
 * fn is a global function or the name of one: a closure is refused, because a
 * snapshot must be able to restore the timer by name. Extra arguments must be
 * plain data (deep-copied at the call). Timers cannot be started while the
 * entry chunk loads (start them in on_init).
 *
 * Firing order (the engine's Tick): for each tick, tick += 1, then every timer
 * with due_tick <= tick fires in order (due_tick, id): ids grow in creation
 * order, so timers due on the same tick fire in the order they were created.
 * An `every` timer is re-armed at due_tick + period before its function runs
 * (so the function may cancel it); an `after` timer is removed before its
 * function runs. A timer created while timers fire is due at the earliest on
 * the next tick. Every change is journaled and undone if the input fails.
 */
#ifndef MOONPEN_MOD_TIMER_H
#define MOONPEN_MOD_TIMER_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "common/val.h"
#include "worker/hostapi.h"

typedef struct mtm_timer {
	uint64_t id;
	uint64_t due;	 /* tick it fires at */
	uint64_t period; /* ticks; 0 for `after` */
	char *fn;	 /* global function name */
	val_t **args;
	size_t nargs;
} mtm_timer;

typedef struct mtm_set mtm_set;

/* A new empty set (at most max_timers pending). NULL when out of memory. */
mtm_set *mtm_new(const hapi_ctx *ctx, uint32_t max_timers);
void mtm_free(mtm_set *s);

/* Publishes the globals `timer` and `clock`. May raise (run protected). */
void mtm_install(lua_State *L, mtm_set *s);

/* Input boundaries (journal of adds, removals, re-arms and the next id). */
void mtm_begin(mtm_set *s);
void mtm_commit(mtm_set *s);
void mtm_rollback(mtm_set *s);

/* The pending timer first in (due, id) order with due <= tick, or NULL
 * (borrowed: valid until the next change). */
const mtm_timer *mtm_due(const mtm_set *s, uint64_t tick);
/* The smallest due tick, UINT64_MAX when nothing is pending. */
uint64_t mtm_next_tick(const mtm_set *s);
/* Marks a timer fired: re-arms an `every`, removes an `after`. 0, -ENOENT,
 * -ENOMEM (nothing changed). */
int mtm_fire(mtm_set *s, uint64_t id) __attribute__((warn_unused_result));
/* Number of pending timers. */
size_t mtm_count(const mtm_set *s);

/* ---- manifest timers ---- */

/* Names the manifest's timers for timer.id: names[i] (borrowed, must outlive
 * s) has id i + 1, because the engine starts them first (mtm_start) in a
 * fresh set. */
void mtm_set_names(mtm_set *s, char *const *names, size_t n);
/* Starts a timer from C, as timer.every / timer.after would (journaled; due
 * ticks from the current tick, period ticks when every): fn is not checked,
 * args are deep-copied. 0 and *id, -ENOSPC (max_timers pending), -ENOMEM. */
int mtm_start(mtm_set *s, uint64_t ticks, int every, const char *fn, val_t *const *args,
	      size_t nargs, uint64_t *id) __attribute__((warn_unused_result));

/* ---- snapshots ---- */

/* The i-th pending timer (i < mtm_count), in no particular order (borrowed). */
const mtm_timer *mtm_at(const mtm_set *s, size_t i);
/* The id the next timer gets / sets it (restore). */
uint64_t mtm_next_id(const mtm_set *s);
void mtm_set_next_id(mtm_set *s, uint64_t id);
/* Adds a restored timer as it is (id, due, period, fn, args; t is taken on
 * success). Not journaled: call it between inputs. 0, -EEXIST (same id),
 * -ENOSPC (max_timers pending), -ENOMEM. */
int mtm_import(mtm_set *s, mtm_timer *t) __attribute__((warn_unused_result));

#endif
