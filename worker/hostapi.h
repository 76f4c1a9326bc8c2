/*
 * hostapi — the declared host APIs (ecs, ui, music, quest, ...) as Lua tables
 * whose functions check every call against the operator's schema and append
 * an Effect to the running input; plus the context every host module shares.
 *
 * Runs in moonpen-worker, after confinement. Trusts the schema (operator) and
 * the manifest only after common/ checked them; trusts nothing a script passes.
 *
 * Rules:
 * - a pack sees an API only when its manifest lists it AND the schema defines
 *   it as "deterministic" (hapi_check_pack says why not: BAD_PACK or
 *   PERMISSION_DENIED); a schema API the manifest does not list is a guard
 *   global whose every use raises a typed PERMISSION_DENIED error ("pack 'x'
 *   does not list api 'music' in its manifest");
 * - an argument that does not fit raises a typed INVALID_ARGUMENT error
 *   (sbx_raise) naming the function, the argument and what was expected
 *   ("ecs.spawn: argument #1 'kind' expected string, got number");
 * - a "query" function checks its arguments like an effect, then suspends
 *   the input (it yields to the engine, which answers PENDING with a
 *   HostCall); it returns the game server's answer, or nil and an error
 *   string. It is refused (a script error naming where) while the chunk
 *   loads, in on_init / on_close, inside a script coroutine and under a C
 *   function that cannot yield (metamethods, table.sort comparators,
 *   string.gsub callbacks);
 * - an effect is {api, fn, args (deep copies), trigger_id}; at most
 *   max_effects per input; none while the entry chunk loads (it runs again on
 *   every restore and would repeat them).
 */
#ifndef MOONPEN_HOSTAPI_H
#define MOONPEN_HOSTAPI_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "common/manifest.h"
#include "common/schema.h"
#include "moonpen.pb-c.h"

typedef enum hapi_phase {
	HAPI_LOADING, /* the entry chunk runs: registration only */
	HAPI_RUNNING, /* on_init, inputs */
} hapi_phase;

/* What every host function needs to know about the instance and the input
 * being run. Owned by the engine, shared (by pointer) with every module. */
typedef struct hapi_ctx {
	hapi_phase phase;
	uint64_t tick;		       /* instance time, in ticks */
	uint32_t tick_ms;	       /* tick length */
	const char *trigger_id;	       /* who runs now ("ev:OnX", "timer:f", a trigger id...) */
	unsigned max_depth;	       /* table nesting of values crossing the boundary */
	uint32_t max_effects;	       /* per input */
	Moonpen__V1__Effect **effects; /* this input's effects, in order */
	size_t n_effects, cap_effects;
	size_t result_bytes; /* encoded size of this input's effects so far */
	/* Queries (functions of kind "query"). input_thread: the coroutine the
	 * running input's body runs on, set by the engine (NULL: queries are
	 * refused, e.g. in on_init). A query call checks its arguments, leaves
	 * them here (q_api, q_fn borrowed from the schema; q_args owned) and
	 * yields out to the engine, which takes them and later resumes the
	 * thread with the answer: value, or nil and an error string. */
	lua_State *input_thread;
	const char *q_api, *q_fn;
	val_t **q_args;
	size_t q_nargs;
} hapi_ctx;

/* Nonzero for the names of the worker's built-in modules, which a manifest may
 * list in "apis" without the schema (state, ev, timer, rand, log, clock). */
int hapi_is_builtin(const char *name);

/* Checks every API the manifest lists: built-in, or defined by the schema with
 * class "deterministic". Returns 0; or -EINVAL (status BAD_PACK) with the
 * reason in err ("manifest lists api 'music', which the host API schema does
 * not define"); or -EPERM (status PERMISSION_DENIED) for an API of class
 * "nondeterministic" or "io" ("api 'clock_wall' is nondeterministic: instance
 * scripts must replay", "api 'net' does io: instance scripts must replay"). */
int hapi_check_pack(const sch_schema *s, const mf_manifest *m, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Creates the global table of each listed, schema-defined API, and a guard
 * for every other schema API (hapi_install_guards). Lua API calls inside: run
 * it protected (lua_pcall of a C function). ctx, s and m must outlive L. */
void hapi_install(lua_State *L, hapi_ctx *ctx, const sch_schema *s, const mf_manifest *m);
/* Sets global <api> to a guard for every schema API that m does not list:
 * indexing, assigning, calling or taking the length of it raises a typed
 * PERMISSION_DENIED error "pack '<id>' does not list api '<api>' in its
 * manifest". Called by hapi_install; may raise memory errors. */
void hapi_install_guards(lua_State *L, const sch_schema *s, const mf_manifest *m);

/* Frees the effects collected so far (a failed input) / hands them over to
 * the caller (*n of them; the array and its effects are the caller's). */
void hapi_effects_reset(hapi_ctx *ctx);
Moonpen__V1__Effect **hapi_effects_take(hapi_ctx *ctx, size_t *n);

/* Frees the query a call left in ctx (q_*), if any, and clears it. */
void hapi_query_clear(hapi_ctx *ctx);

/* ---- helpers shared by the built-in modules (all may raise Lua errors) ---- */

/* Pushes the sandbox's global table (the one scripts see as _G / _ENV). */
void hapi_push_globals(lua_State *L);
/* Pops the table on top, makes it read-only (a proxy: writes raise, its
 * metatable is hidden) and stores it as global `name`. */
void hapi_publish(lua_State *L, const char *name);
/* Raises "<what> cannot be called while the chunk loads (...)" when the
 * entry chunk is running. */
void hapi_refuse_loading(lua_State *L, const hapi_ctx *ctx, const char *what);

#endif
