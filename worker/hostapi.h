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
 *   it as "deterministic" (hapi_check_pack says why not, for BAD_PACK);
 * - an argument that does not fit is a script error naming the function, the
 *   argument and what was expected ("ecs.spawn: argument #1 'kind' expected
 *   string, got number");
 * - a "query" function raises (queries need the game server's answer; not
 *   supported by this engine version);
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
	/* The last schema violation of this input ("ecs.spawn: argument #1 ..."):
	 * when the input fails with this message, its status is INVALID_ARGUMENT
	 * rather than SCRIPT_ERROR. Cleared by hapi_effects_reset(). */
	char arg_error[640];
	size_t result_bytes; /* encoded size of this input's effects so far */
} hapi_ctx;

/* Nonzero for the names of the worker's built-in modules, which a manifest may
 * list in "apis" without the schema (state, ev, timer, rand, log, clock). */
int hapi_is_builtin(const char *name);

/* Checks every API the manifest lists: built-in, or defined by the schema with
 * class "deterministic". Returns 0, or -EINVAL with the reason in err
 * ("manifest lists api 'music', which the host API schema does not define"). */
int hapi_check_pack(const sch_schema *s, const mf_manifest *m, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Creates the global table of each listed, schema-defined API. Lua API calls
 * inside: run it protected (lua_pcall of a C function). ctx and s must outlive L. */
void hapi_install(lua_State *L, hapi_ctx *ctx, const sch_schema *s, const mf_manifest *m);

/* Frees the effects collected so far (a failed input) / hands them over to
 * the caller (*n of them; the array and its effects are the caller's). */
void hapi_effects_reset(hapi_ctx *ctx);
Moonpen__V1__Effect **hapi_effects_take(hapi_ctx *ctx, size_t *n);

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
