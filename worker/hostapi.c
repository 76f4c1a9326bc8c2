/*
 * hostapi — declared host APIs as schema-checked effect calls, and the
 * helpers every built-in module uses (globals, read-only module tables).
 *
 * Runs in moonpen-worker, after confinement. Every argument comes from a
 * script: it is converted by luaval (plain data only, depth-bounded) and then
 * checked against the operator's schema before it becomes an Effect. C memory
 * held by a host function is released before any Lua error is raised.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "policy/limits.h"
#include "worker/hostapi.h"
#include "worker/luaval.h"
#include "worker/sandbox.h"

static const char *const builtins[] = {"state", "ev", "timer", "rand", "log", "clock", NULL};

int hapi_is_builtin(const char *name)
{
	for (const char *const *b = builtins; *b != NULL; b++)
		if (strcmp(*b, name) == 0)
			return 1;
	return 0;
}

int hapi_check_pack(const sch_schema *s, const mf_manifest *m, char *err, size_t errlen)
{
	for (size_t i = 0; i < m->n_apis; i++) {
		const sch_api *a;

		if (hapi_is_builtin(m->apis[i]))
			continue;
		a = sch_api_find(s, m->apis[i]);
		if (a == NULL) {
			snprintf(
			    err, errlen,
			    "manifest lists api '%s', which the host API schema does not define",
			    m->apis[i]);
			return -EINVAL;
		}
		if (a->cls != SCH_DETERMINISTIC) {
			snprintf(err, errlen, "api '%s' %s: instance scripts must replay", a->name,
				 a->cls == SCH_IO ? "does io" : "is nondeterministic");
			return -EPERM; /* a permission, not a broken pack: PERMISSION_DENIED */
		}
	}
	return 0;
}

/* ---- effects ------------------------------------------------------------------- */

static void args_free(val_t **args, size_t n)
{
	for (size_t i = 0; i < n; i++)
		val_free(args[i]);
	free(args);
}

void hapi_effects_reset(hapi_ctx *ctx)
{
	for (size_t i = 0; i < ctx->n_effects; i++)
		protobuf_c_message_free_unpacked(&ctx->effects[i]->base, NULL);
	free(ctx->effects);
	ctx->effects = NULL;
	ctx->n_effects = ctx->cap_effects = 0;
	ctx->result_bytes = 0;
}

Moonpen__V1__Effect **hapi_effects_take(hapi_ctx *ctx, size_t *n)
{
	Moonpen__V1__Effect **e = ctx->effects;

	*n = ctx->n_effects;
	ctx->effects = NULL;
	ctx->n_effects = ctx->cap_effects = 0;
	return e;
}

/* Appends {api, fn, args, trigger_id}; takes args on success only. */
static int effect_append(hapi_ctx *ctx, const char *api, const char *fn, val_t **args, size_t n)
{
	Moonpen__V1__Effect *e;

	if (ctx->n_effects == ctx->cap_effects) {
		size_t cap = ctx->cap_effects ? ctx->cap_effects * 2 : 16;
		Moonpen__V1__Effect **p = realloc(ctx->effects, cap * sizeof(*p));
		if (p == NULL)
			return -ENOMEM;
		ctx->effects = p;
		ctx->cap_effects = cap;
	}
	e = malloc(sizeof(*e));
	if (e == NULL)
		return -ENOMEM;
	moonpen__v1__effect__init(e);
	e->api = strdup(api);
	e->fn = strdup(fn);
	e->trigger_id = strdup(ctx->trigger_id != NULL ? ctx->trigger_id : "");
	if (e->api == NULL || e->fn == NULL || e->trigger_id == NULL) {
		protobuf_c_message_free_unpacked(&e->base, NULL);
		return -ENOMEM;
	}
	e->args = args;
	e->n_args = n;
	ctx->result_bytes += protobuf_c_message_get_packed_size(&e->base);
	if (ctx->result_bytes > MP_MAX_RESULT_BYTES) {
		e->args = NULL; /* the caller still owns args on failure */
		e->n_args = 0;
		protobuf_c_message_free_unpacked(&e->base, NULL);
		return -EFBIG;
	}
	ctx->effects[ctx->n_effects++] = e;
	return 0;
}

static const char *param_name(const sch_fn *fn, int i)
{
	return (size_t)i < fn->n_params ? fn->params[i].name : "...";
}

/* Functions, userdata and threads cannot be arguments: say so in the schema's
 * terms before luaval would. */
static int check_lua_types(lua_State *L, const sch_api *a, const sch_fn *fn, int n, char *msg,
			   size_t len)
{
	char want[96];

	for (int i = 0; i < n; i++) {
		int t = lua_type(L, i + 1);
		const sch_type *ty = (size_t)i < fn->n_params ? fn->params[i].type : fn->variadic;

		if (t != LUA_TFUNCTION && t != LUA_TUSERDATA && t != LUA_TLIGHTUSERDATA &&
		    t != LUA_TTHREAD)
			continue;
		if (ty == NULL)
			break; /* too many arguments: sch_check_args says so */
		snprintf(msg, len, "%s.%s: argument #%d '%s' expected %s, got %s", a->name,
			 fn->name, i + 1, param_name(fn, i),
			 sch_type_describe(ty, want, sizeof(want)), lua_typename(L, t));
		return -EINVAL;
	}
	return 0;
}

/* Converts and checks stack 1..n (the arguments of a.fn) into *out, *nout
 * (trailing nils dropped); raises nothing. */
static int call_args(lua_State *L, hapi_ctx *ctx, const sch_api *a, const sch_fn *fn, int n,
		     val_t ***out, size_t *nout, char *msg, size_t len)
{
	char err[256];
	val_t **args = calloc((size_t)n + 1, sizeof(*args));
	size_t got = 0;
	int r = args == NULL ? -ENOMEM : check_lua_types(L, a, fn, n, msg, len);

	for (; r == 0 && got < (size_t)n; got++) {
		r = lv_to_val_named(L, (int)got + 1, ctx->max_depth, param_name(fn, (int)got),
				    &args[got], err, sizeof(err));
		if (r == -EINVAL)
			snprintf(msg, len, "%s.%s: argument #%zu %s", a->name, fn->name, got + 1,
				 err);
	}
	if (r == 0)
		r = sch_check_args(a, fn, args, got, msg, len);
	while (r == 0 && got > 0 &&
	       (args[got - 1] == NULL ||
		args[got - 1]->kind_case == MOONPEN__V1__VALUE__KIND_NIL_VALUE))
		val_free(args[--got]); /* trailing nils are absent arguments */
	if (r < 0) {
		args_free(args, got);
		return r;
	}
	*out = args;
	*nout = got;
	return 0;
}

/* Converts stack 1..n, checks them, appends the effect. Raises nothing. */
static int effect_build(lua_State *L, hapi_ctx *ctx, const sch_api *a, const sch_fn *fn, int n,
			char *msg, size_t len)
{
	val_t **args = NULL;
	size_t got = 0;
	int r = check_lua_types(L, a, fn, n, msg, len);

	if (r == 0 && ctx->n_effects >= ctx->max_effects) {
		snprintf(msg, len, "%s.%s: more than %u effects in one input", a->name, fn->name,
			 ctx->max_effects);
		r = -ENOSPC; /* a budget, not a bad argument */
	}
	if (r == 0)
		r = call_args(L, ctx, a, fn, n, &args, &got, msg, len);
	if (r == 0) {
		r = effect_append(ctx, a->name, fn->name, args, got);
		if (r < 0)
			args_free(args, got);
	}
	if (r == -ENOMEM)
		snprintf(msg, len, "%s.%s: out of memory", a->name, fn->name);
	if (r == -EFBIG)
		snprintf(msg, len, "%s.%s: the effects of one input exceed %u bytes", a->name,
			 fn->name, MP_MAX_RESULT_BYTES);
	return r;
}

/* ---- queries ------------------------------------------------------------------- */

void hapi_query_clear(hapi_ctx *ctx)
{
	args_free(ctx->q_args, ctx->q_nargs);
	ctx->q_args = NULL;
	ctx->q_nargs = 0;
	ctx->q_api = ctx->q_fn = NULL;
}

/* Raises unless this call can suspend the input: a query yields the thread
 * the engine resumes, through frames that can all yield. */
static void query_where(lua_State *L, const hapi_ctx *ctx, const sch_api *a, const sch_fn *fn)
{
	if (ctx->phase == HAPI_LOADING || ctx->input_thread == NULL)
		luaL_error(L,
			   "query %s.%s cannot be called from the chunk, on_init or on_close "
			   "(call it from a handler, timer, trigger or call)",
			   a->name, fn->name);
	if (L != ctx->input_thread)
		luaL_error(L, "query %s.%s cannot be called from a coroutine", a->name, fn->name);
	if (!lua_isyieldable(L))
		luaL_error(L,
			   "query %s.%s cannot be called from a C function that cannot wait (a "
			   "metamethod, a table.sort comparator, a string.gsub callback...)",
			   a->name, fn->name);
}

/* A query: check, leave the call in ctx, yield to the engine. The answer the
 * engine resumes the thread with becomes this call's results. */
static int query_call(lua_State *L, hapi_ctx *ctx, const sch_api *a, const sch_fn *fn)
{
	int n = lua_gettop(L), r;
	char msg[640];

	query_where(L, ctx, a, fn);
	if (n > SCH_MAX_ARGS)
		return luaL_error(L, "%s.%s: more than %d arguments", a->name, fn->name,
				  SCH_MAX_ARGS);
	hapi_query_clear(ctx);
	r = call_args(L, ctx, a, fn, n, &ctx->q_args, &ctx->q_nargs, msg, sizeof(msg));
	if (r == -ENOMEM)
		return sbx_nomem(L, "%s.%s", a->name, fn->name);
	if (r < 0) /* typed: the input's status is INVALID_ARGUMENT (sandbox.h) */
		return sbx_raise(L, MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT, "%s", msg);
	ctx->q_api = a->name;
	ctx->q_fn = fn->name;
	lua_settop(L, 0);
	return lua_yield(L, 0);
}

/* upvalues: ctx, api, fn (light userdata) */
static int host_call(lua_State *L)
{
	hapi_ctx *ctx = lua_touserdata(L, lua_upvalueindex(1));
	const sch_api *a = lua_touserdata(L, lua_upvalueindex(2));
	const sch_fn *fn = lua_touserdata(L, lua_upvalueindex(3));
	int n = lua_gettop(L), r;
	char msg[640];

	if (fn->kind == SCH_QUERY)
		return query_call(L, ctx, a, fn);
	if (ctx->phase == HAPI_LOADING) {
		snprintf(msg, sizeof(msg), "%s.%s", a->name, fn->name);
		hapi_refuse_loading(L, ctx, msg);
	}
	if (n > SCH_MAX_ARGS)
		return sbx_raise(L, MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT,
				 "%s.%s: more than %d arguments", a->name, fn->name, SCH_MAX_ARGS);
	r = effect_build(L, ctx, a, fn, n, msg, sizeof(msg));
	if (r == -ENOMEM)
		return sbx_nomem(L, "%s.%s", a->name, fn->name);
	if (r == -EFBIG) /* a memory budget: uncatchable, the input changes nothing */
		return sbx_memory_error(L, "%s", msg);
	if (r == -EINVAL) /* the arguments break the schema: a typed error, not a string */
		return sbx_raise(L, MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT, "%s", msg);
	if (r < 0)
		return luaL_error(L, "%s", msg);
	return 0;
}

/* ---- guards for the APIs a pack does not list ---------------------------------- */

/* Every use of a guard (index, assignment, call) raises PERMISSION_DENIED.
 * upvalue 1: the message. */
static int guard_raise(lua_State *L)
{
	return sbx_raise(L, MOONPEN__V1__STATUS__CODE__PERMISSION_DENIED, "%s",
			 lua_tostring(L, lua_upvalueindex(1)));
}

/* Global `a->name` becomes an immutable userdata whose every use raises
 * "pack 'x' does not list api 'music' in its manifest" (rather than a nil
 * global, whose error would read like a typo and be a SCRIPT_ERROR). */
static void install_guard(lua_State *L, const sch_api *a, const mf_manifest *m)
{
	static const char *const events[] = {"__index", "__newindex", "__call", "__len", NULL};

	lua_newuserdatauv(L, 0, 0);
	lua_createtable(L, 0, 5);
	lua_pushfstring(L, "pack '%s' does not list api '%s' in its manifest", m->id, a->name);
	for (const char *const *ev = events; *ev != NULL; ev++) {
		lua_pushvalue(L, -1);
		lua_pushcclosure(L, guard_raise, 1);
		lua_setfield(L, -3, *ev);
	}
	lua_pop(L, 1);
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable"); /* hidden */
	lua_setmetatable(L, -2);
	hapi_push_globals(L);
	lua_pushstring(L, a->name);
	lua_pushvalue(L, -3);
	lua_rawset(L, -3);
	lua_pop(L, 2);
}

void hapi_install_guards(lua_State *L, const sch_schema *s, const mf_manifest *m)
{
	for (size_t i = 0; s != NULL && i < s->n_apis; i++)
		if (!mf_uses_api(m, s->apis[i].name))
			install_guard(L, &s->apis[i], m);
}

void hapi_install(lua_State *L, hapi_ctx *ctx, const sch_schema *s, const mf_manifest *m)
{
	hapi_install_guards(L, s, m);
	for (size_t i = 0; i < m->n_apis; i++) {
		const sch_api *a = hapi_is_builtin(m->apis[i]) ? NULL : sch_api_find(s, m->apis[i]);

		if (a == NULL)
			continue;
		lua_createtable(L, 0, (int)a->n_fns);
		for (size_t j = 0; j < a->n_fns; j++) {
			lua_pushlightuserdata(L, ctx);
			lua_pushlightuserdata(L, (void *)a);
			lua_pushlightuserdata(L, (void *)&a->fns[j]);
			lua_pushcclosure(L, host_call, 3);
			lua_setfield(L, -2, a->fns[j].name);
		}
		hapi_publish(L, a->name);
	}
}

/* ---- helpers for every module --------------------------------------------------- */

void hapi_push_globals(lua_State *L)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
}

void hapi_publish(lua_State *L, const char *name)
{
	int t = lua_gettop(L);

	sbx_push_readonly(L, t, name); /* writes and rawset raise, pairs works */
	hapi_push_globals(L);
	lua_pushstring(L, name);
	lua_pushvalue(L, t + 1);
	lua_rawset(L, -3); /* raw: the global table is locked against scripts */
	lua_settop(L, t - 1);
}

void hapi_refuse_loading(lua_State *L, const hapi_ctx *ctx, const char *what)
{
	if (ctx->phase == HAPI_LOADING)
		luaL_error(L,
			   "%s cannot be called while the chunk loads (the chunk runs again on "
			   "every restore): call it from on_init or a handler",
			   what);
}
