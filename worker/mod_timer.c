/*
 * mod_timer — tick-based timers and the instance clock (see mod_timer.h).
 *
 * Runs in moonpen-worker. Timers live in C so that they can be journaled and
 * snapshotted: a timer is (id, due tick, period, global function name, plain
 * data arguments), never a Lua closure.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "worker/sandbox.h"
#include "worker/luaval.h"
#include "worker/mod_timer.h"

#define MTM_MAX_TICKS ((uint64_t)1 << 40) /* ~1700 years at 50 ms: no overflow */

enum jop { J_ADD, J_DEL, J_DUE };

typedef struct jentry {
	enum jop op;
	uint64_t id, old_due;
	mtm_timer *t; /* J_DEL: the removed timer, owned by the journal */
} jentry;

struct mtm_set {
	const hapi_ctx *ctx;
	uint32_t max;
	mtm_timer **ts;
	size_t n, cap;
	uint64_t next_id, saved_next_id;
	jentry *jr;
	size_t jn, jcap;
	int journaling;
	char *const *names; /* manifest timers: names[i] has id i + 1 (borrowed) */
	size_t n_names;
};

static void timer_free(mtm_timer *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nargs; i++)
		val_free(t->args[i]);
	free(t->args);
	free(t->fn);
	free(t);
}

mtm_set *mtm_new(const hapi_ctx *ctx, uint32_t max_timers)
{
	mtm_set *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->ctx = ctx;
	s->max = max_timers;
	s->next_id = 1;
	return s;
}

static void journal_clear(mtm_set *s)
{
	for (size_t i = 0; i < s->jn; i++)
		if (s->jr[i].op == J_DEL)
			timer_free(s->jr[i].t);
	s->jn = 0;
}

void mtm_free(mtm_set *s)
{
	if (s == NULL)
		return;
	journal_clear(s);
	free(s->jr);
	for (size_t i = 0; i < s->n; i++)
		timer_free(s->ts[i]);
	free(s->ts);
	free(s);
}

static long index_of(const mtm_set *s, uint64_t id)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->ts[i]->id == id)
			return (long)i;
	return -1;
}

static int grow(void **arr, size_t *cap, size_t need, size_t size)
{
	size_t c = *cap ? *cap * 2 : 16;
	void *p;

	if (need <= *cap)
		return 0;
	p = realloc(*arr, c * size);
	if (p == NULL)
		return -ENOMEM;
	*arr = p;
	*cap = c;
	return 0;
}

/* Reserves a journal slot (when journaling) and a timer slot. */
static int reserve(mtm_set *s)
{
	if (grow((void **)&s->ts, &s->cap, s->n + 1, sizeof(*s->ts)) < 0)
		return -ENOMEM;
	if (s->journaling && grow((void **)&s->jr, &s->jcap, s->jn + 1, sizeof(*s->jr)) < 0)
		return -ENOMEM;
	return 0;
}

static void journal(mtm_set *s, enum jop op, uint64_t id, uint64_t old_due, mtm_timer *t)
{
	if (s->journaling)
		s->jr[s->jn++] = (jentry){op, id, old_due, t};
	else if (op == J_DEL)
		timer_free(t);
}

static mtm_timer *detach(mtm_set *s, size_t i)
{
	mtm_timer *t = s->ts[i];

	memmove(&s->ts[i], &s->ts[i + 1], (s->n - i - 1) * sizeof(*s->ts));
	s->n--;
	return t;
}

const mtm_timer *mtm_due(const mtm_set *s, uint64_t tick)
{
	const mtm_timer *best = NULL;

	for (size_t i = 0; i < s->n; i++) {
		const mtm_timer *t = s->ts[i];
		if (t->due > tick)
			continue;
		if (best == NULL || t->due < best->due || (t->due == best->due && t->id < best->id))
			best = t;
	}
	return best;
}

uint64_t mtm_next_tick(const mtm_set *s)
{
	uint64_t m = UINT64_MAX;

	for (size_t i = 0; i < s->n; i++)
		if (s->ts[i]->due < m)
			m = s->ts[i]->due;
	return m;
}

size_t mtm_count(const mtm_set *s)
{
	return s->n;
}

int mtm_fire(mtm_set *s, uint64_t id)
{
	long i = index_of(s, id);
	mtm_timer *t;

	if (i < 0)
		return -ENOENT;
	if (reserve(s) < 0)
		return -ENOMEM;
	t = s->ts[i];
	if (t->period > 0) {
		journal(s, J_DUE, id, t->due, NULL);
		t->due += t->period;
		return 0;
	}
	journal(s, J_DEL, id, 0, detach(s, (size_t)i));
	return 0;
}

void mtm_begin(mtm_set *s)
{
	journal_clear(s);
	s->journaling = 1;
	s->saved_next_id = s->next_id;
}

void mtm_commit(mtm_set *s)
{
	journal_clear(s);
	s->journaling = 0;
}

void mtm_rollback(mtm_set *s)
{
	while (s->jn > 0) {
		jentry *j = &s->jr[--s->jn];
		long i = index_of(s, j->id);

		if (j->op == J_ADD && i >= 0)
			timer_free(detach(s, (size_t)i));
		else if (j->op == J_DUE && i >= 0)
			s->ts[i]->due = j->old_due;
		else if (j->op == J_DEL)
			s->ts[s->n++] = j->t; /* capacity: it was removed in this input */
	}
	s->journaling = 0;
	s->next_id = s->saved_next_id;
}

/* ---- manifest timers ------------------------------------------------------------- */

void mtm_set_names(mtm_set *s, char *const *names, size_t n)
{
	s->names = names;
	s->n_names = n;
}

int mtm_start(mtm_set *s, uint64_t ticks, int every, const char *fn, val_t *const *args,
	      size_t nargs, uint64_t *id)
{
	mtm_timer *t = calloc(1, sizeof(*t));
	int r = 0;

	if (t == NULL || (t->fn = strdup(fn)) == NULL ||
	    (t->args = calloc(nargs + 1, sizeof(*t->args))) == NULL)
		r = -ENOMEM;
	for (; r == 0 && t->nargs < nargs; t->nargs++)
		if ((t->args[t->nargs] = val_copy(args[t->nargs])) == NULL)
			r = -ENOMEM;
	if (r == 0 && s->n >= s->max)
		r = -ENOSPC;
	if (r == 0)
		r = reserve(s);
	if (r < 0) {
		timer_free(t);
		return r;
	}
	t->id = s->next_id++;
	t->due = s->ctx->tick + ticks;
	t->period = every ? ticks : 0;
	s->ts[s->n++] = t;
	journal(s, J_ADD, t->id, 0, NULL);
	*id = t->id;
	return 0;
}

/* ---- snapshots ------------------------------------------------------------------- */

const mtm_timer *mtm_at(const mtm_set *s, size_t i)
{
	return i < s->n ? s->ts[i] : NULL;
}

uint64_t mtm_next_id(const mtm_set *s)
{
	return s->next_id;
}

void mtm_set_next_id(mtm_set *s, uint64_t id)
{
	s->next_id = id;
}

int mtm_import(mtm_set *s, mtm_timer *t)
{
	if (index_of(s, t->id) >= 0)
		return -EEXIST;
	if (s->n >= s->max)
		return -ENOSPC;
	if (grow((void **)&s->ts, &s->cap, s->n + 1, sizeof(*s->ts)) < 0)
		return -ENOMEM;
	s->ts[s->n++] = t;
	return 0;
}

/* ---- Lua: timer ------------------------------------------------------------------- */

static mtm_set *self(lua_State *L)
{
	return lua_touserdata(L, lua_upvalueindex(1));
}

static uint64_t ms_to_ticks(lua_State *L, const char *fn, uint32_t tick_ms)
{
	double ms, ticks;

	if (lua_type(L, 1) != LUA_TNUMBER)
		luaL_error(L, "%s: argument #1 'ms' expected number, got %s", fn,
			   luaL_typename(L, 1));
	ms = lua_tonumber(L, 1);
	if (!(ms >= 0))
		luaL_error(L, "%s: argument #1 'ms' must be >= 0", fn);
	ticks = ceil(ms / (double)tick_ms);
	if (ticks > (double)MTM_MAX_TICKS)
		luaL_error(L, "%s: argument #1 'ms' is too large", fn);
	return ticks < 1 ? 1 : (uint64_t)ticks;
}

/* Pushes the name of the global whose value is the function at idx (the
 * smallest such name, bytewise, for determinism), or nothing and returns 0. */
static int global_name_of(lua_State *L, int idx)
{
	int top = lua_gettop(L), found = 0;

	hapi_push_globals(L);
	lua_pushnil(L);
	while (lua_next(L, top + 1) != 0) {
		if (lua_type(L, -2) == LUA_TSTRING && lua_rawequal(L, -1, idx) &&
		    (!found || strcmp(lua_tostring(L, -2), lua_tostring(L, top + 2)) < 0)) {
			lua_pushvalue(L, -2);
			if (found)
				lua_replace(L, top + 2);
			else
				lua_insert(L, top + 2);
			found = 1;
		}
		lua_pop(L, 1);
	}
	if (found)
		lua_replace(L, top + 1); /* name over globals */
	lua_settop(L, top + found);
	return found;
}

/* Pushes the global function name for argument #2 or raises. */
static void resolve_fn(lua_State *L, const char *fn)
{
	if (lua_type(L, 2) == LUA_TSTRING) {
		hapi_push_globals(L);
		lua_pushvalue(L, 2);
		if (lua_rawget(L, -2) != LUA_TFUNCTION)
			luaL_error(L, "%s: argument #2: no global function '%s'", fn,
				   lua_tostring(L, 2));
		lua_pop(L, 2);
		lua_pushvalue(L, 2);
		return;
	}
	if (lua_type(L, 2) != LUA_TFUNCTION)
		luaL_error(L, "%s: argument #2 'fn' expected a global function or its name, got %s",
			   fn, luaL_typename(L, 2));
	if (!global_name_of(L, 2))
		luaL_error(L,
			   "%s: argument #2 is a closure or a local function; timers must name a "
			   "global function (define it at the top level of the chunk and pass it "
			   "or its name) so that snapshots can restore them",
			   fn);
}

/* Builds the timer from stack args 3..top; raises nothing. */
static int make_timer(lua_State *L, mtm_set *s, const char *name, mtm_timer **out, char *err,
		      size_t errlen)
{
	int n = lua_gettop(L) - 3; /* 1 ms, 2 fn, 3.. args, top: the resolved name */
	mtm_timer *t = calloc(1, sizeof(*t));
	char why[200];
	int r = 0;

	if (t == NULL || (t->fn = strdup(name)) == NULL ||
	    (n > 0 && (t->args = calloc((size_t)n, sizeof(*t->args))) == NULL))
		r = -ENOMEM;
	for (int i = 0; r == 0 && i < n; i++) {
		r = lv_to_val(L, 3 + i, s->ctx->max_depth, &t->args[i], why, sizeof(why));
		if (r == -EINVAL)
			snprintf(err, errlen, "argument #%d: %s", 3 + i, why);
		if (r == 0)
			t->nargs++;
	}
	if (r < 0) {
		timer_free(t);
		return r;
	}
	*out = t;
	return 0;
}

static int start(lua_State *L, int every)
{
	const char *fn = every ? "timer.every" : "timer.after";
	mtm_set *s = self(L);
	mtm_timer *t = NULL;
	char err[256];
	uint64_t ticks;
	int r;

	hapi_refuse_loading(L, s->ctx, fn);
	ticks = ms_to_ticks(L, fn, s->ctx->tick_ms);
	resolve_fn(L, fn);
	if (s->n >= s->max)
		return luaL_error(L, "%s: more than %d pending timers", fn, (int)s->max);
	r = make_timer(L, s, lua_tostring(L, -1), &t, err, sizeof(err));
	if (r == 0 && reserve(s) < 0) {
		timer_free(t);
		r = -ENOMEM;
	}
	if (r == -EINVAL)
		return luaL_error(L, "%s: %s", fn, err);
	if (r < 0)
		return sbx_nomem(L, "%s", fn);
	t->id = s->next_id++;
	t->due = s->ctx->tick + ticks;
	t->period = every ? ticks : 0;
	s->ts[s->n++] = t;
	journal(s, J_ADD, t->id, 0, NULL);
	lua_pushinteger(L, (lua_Integer)t->id);
	return 1;
}

static int l_after(lua_State *L)
{
	return start(L, 0);
}

static int l_every(lua_State *L)
{
	return start(L, 1);
}

static int l_cancel(lua_State *L)
{
	mtm_set *s = self(L);
	int isint = 0;
	lua_Integer id = lua_tointegerx(L, 1, &isint);
	long i;

	if (!isint)
		return luaL_error(L, "timer.cancel: argument #1 'id' expected integer, got %s",
				  luaL_typename(L, 1));
	i = index_of(s, (uint64_t)id);
	if (i >= 0 && reserve(s) < 0)
		return sbx_nomem(L, "%s", "timer.cancel");
	if (i >= 0)
		journal(s, J_DEL, (uint64_t)id, 0, detach(s, (size_t)i));
	lua_pushboolean(L, i >= 0);
	return 1;
}

static int l_id(lua_State *L)
{
	mtm_set *s = self(L);
	const char *name;

	if (lua_type(L, 1) != LUA_TSTRING)
		return luaL_error(L, "timer.id: argument #1 'name' expected string, got %s",
				  luaL_typename(L, 1));
	name = lua_tostring(L, 1);
	for (size_t i = 0; i < s->n_names; i++)
		if (strcmp(s->names[i], name) == 0) {
			lua_pushinteger(L, (lua_Integer)i + 1);
			return 1;
		}
	return luaL_error(L, "timer.id: the manifest declares no timer '%s'", name);
}

/* ---- Lua: clock ------------------------------------------------------------------- */

static int l_now(lua_State *L)
{
	const hapi_ctx *ctx = lua_touserdata(L, lua_upvalueindex(1));

	uint64_t ms = ctx->tick * (uint64_t)ctx->tick_ms;

	lua_pushinteger(L, (lua_Integer)ms);
	return 1;
}

static int l_tick(lua_State *L)
{
	const hapi_ctx *ctx = lua_touserdata(L, lua_upvalueindex(1));

	lua_pushinteger(L, (lua_Integer)ctx->tick);
	return 1;
}

void mtm_install(lua_State *L, mtm_set *s)
{
	static const luaL_Reg tfns[] = {
	    {"after", l_after}, {"every", l_every}, {"cancel", l_cancel},
	    {"id", l_id},	{NULL, NULL},
	};
	static const luaL_Reg cfns[] = {{"now", l_now}, {"tick", l_tick}, {NULL, NULL}};

	lua_createtable(L, 0, 4);
	lua_pushlightuserdata(L, s);
	luaL_setfuncs(L, tfns, 1);
	hapi_publish(L, "timer");
	lua_createtable(L, 0, 2);
	lua_pushlightuserdata(L, (void *)s->ctx);
	luaL_setfuncs(L, cfns, 1);
	hapi_publish(L, "clock");
}
