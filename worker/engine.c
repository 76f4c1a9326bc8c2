/*
 * engine — one instance's script runtime: lifecycle, inputs, dispatch of
 * events, timers and triggers, atomic commit or rollback of each input.
 *
 * Runs in moonpen-worker, after confinement. Trusts the Init it was handed
 * (the supervisor built it) but checks the manifest and schema again; trusts
 * no script. Every input runs as one protected call on a coroutine of its
 * own, in one budget window per stretch (a query suspends it between two
 * messages: see "the body of an input"): a failure anywhere (script error,
 * budget, memory) or an abort discards that input's effects, state changes,
 * timers, RNG draws, trigger throttles, query ids and queued events, so the
 * state hash is as before the input.
 *
 * Who runs what (the trigger_id of effects):
 *   on_init(ctx) "on_init" | on_close(ctx) "on_close" | Call "call:<fn>" |
 *   ev.on handlers "ev:<pattern>" | timers "timer:<fn>" (manifest timers
 *   too) | manifest triggers their id (debounced firings too).
 *
 * Manifest timers start in the init input, before on_init, in manifest order
 * (ids 1..n, see timer.id); a restore takes them from the snapshot instead.
 * A debounced trigger (debounce_ms) keeps one pending firing (eng_pend): each
 * matching event replaces it and pushes its due tick back; a Tick fires it,
 * after that tick's timers, with the last event's name and payload.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "common/manifest.h"
#include "common/schema.h"
#include "common/status.h"
#include "policy/limits.h"
#include "worker/engine.h"
#include "worker/hostapi.h"
#include "worker/luaval.h"
#include "worker/mod_ev.h"
#include "worker/mod_log.h"
#include "worker/mod_rand.h"
#include "worker/mod_state.h"
#include "worker/mod_timer.h"
#include "worker/sandbox.h"
#include "worker/snapshot.h"

#define ENG_MAX_TIMERS 1024
#define ENG_MAX_RETURNS 64
#define ENG_MAX_MSG 4096 /* bytes of an error message kept */

/* A debounced firing waiting for its quiet period. */
typedef struct eng_pend {
	uint64_t due; /* the tick it fires at */
	char *event;  /* the last matching event's name and payload (NULL: nil) */
	val_t *payload;
} eng_pend;

typedef struct eng_trigger {
	const mf_trigger *t;  /* borrowed from the manifest */
	int cond_ref;	      /* compiled condition, or LUA_NOREF (always) */
	int act_ref;	      /* compiled snippet, or LUA_NOREF (a global function name) */
	int64_t last, saved;  /* tick of the last firing, -1: never */
	eng_pend *pend;	      /* pending debounced firing, or NULL */
	eng_pend *saved_pend; /* pend when the input began (rollback) */
} eng_trigger;

typedef struct eng_file {
	char *path;
	char *data;
	size_t len;
} eng_file;

enum input_kind { IN_INIT, IN_EVENT, IN_TICK, IN_CALL, IN_CLOSE };

typedef struct eng_input {
	enum input_kind kind;
	const char *name;     /* event name / function name */
	const val_t *payload; /* event payload (e->in_payload) */
	uint32_t count;	      /* ticks */
	val_t *const *args;   /* call arguments (e->in_args) */
	size_t nargs;
} eng_input;

/* Where the body of the running input stands (see "the body of an input"). */
typedef struct eng_cursor {
	int root_done;	  /* the input's own call was made (all but ticks) */
	int tick_started; /* a tick input advanced the tick at least once */
	uint64_t target;  /* a tick input's last tick */
	int in_event;	  /* an event is being dispatched */
	const char *ev_name;
	const val_t *ev_payload;
	size_t hi, ti; /* next handler, next trigger */
	int tphase;    /* enum trig_phase of trigger ti */
	int last;      /* enum last_call: what the call in progress is */
	int nret;      /* a call's returns, at the bottom of the coroutine's stack */
} eng_cursor;

struct eng {
	sbx *s;
	lua_State *L;
	mf_manifest *mf;
	sch_schema *sch;
	hapi_ctx ctx;
	mst_store *st;
	mtm_set *tm;
	mev_bus *bus;
	mlg_sink *log;
	mrn_rng rng;
	eng_trigger *trig;
	size_t n_trig;
	char **timer_names; /* the manifest timers' ids, for timer.id (borrowed strings) */
	eng_file *files;
	size_t n_files;
	char *instance_id, *pack_id, *pack_version;
	uint64_t seed;
	char **label_keys, **label_vals;
	size_t n_labels;
	eng_input in;  /* the input being run */
	mev_event cur; /* the queued event being dispatched (owned) */
	uint64_t saved_tick;
	st_code fail_code; /* set before raising for non-script failures */
	char tid[MEV_MAX_NAME + 16];
	int closed;
	/* the running input (it may wait for queries across messages) */
	char *in_name; /* owned copies of the request's name, payload, args */
	val_t *in_payload;
	val_t **in_args;
	size_t in_nargs;
	eng_cursor run;
	lua_State *co; /* its coroutine, anchored by co_ref */
	int co_ref;
	uint32_t scale;			      /* deadline scale of each stretch */
	uint64_t acc_cpu, acc_instr;	      /* usage over its stretches */
	uint64_t pending;		      /* the query it waits for, 0: none */
	uint64_t next_call_id, saved_call_id; /* query ids: per instance, from 1 */
	uint64_t inputs;		      /* events, ticks and calls applied */
	char *eh_msg, *eh_tb;		      /* what body_msgh recorded of an error */
};

/* ---- small helpers ------------------------------------------------------------- */

static void err_set(sbx_err *err, st_code code, const char *msg)
{
	sbx_err_clear(err);
	err->code = code;
	err->message = strdup(msg);
}

static void set_tid(eng *e, const char *prefix, const char *name)
{
	snprintf(e->tid, sizeof(e->tid), "%s%s", prefix, name);
	e->ctx.trigger_id = e->tid;
}

/* Pushes global `name` if it is a function and returns 1; else pushes nothing. */
static int push_global_fn(lua_State *L, const char *name)
{
	hapi_push_globals(L);
	lua_pushstring(L, name);
	if (lua_rawget(L, -2) == LUA_TFUNCTION) {
		lua_remove(L, -2);
		return 1;
	}
	lua_pop(L, 2);
	return 0;
}

/* Pushes v on L (nil -> an empty table when as_table); raises with fail_code set. */
static void push_value(eng *e, lua_State *L, const val_t *v, int as_table, const char *what)
{
	int nil = v == NULL || v->kind_case == MOONPEN__V1__VALUE__KIND__NOT_SET ||
		  v->kind_case == MOONPEN__V1__VALUE__KIND_NIL_VALUE;
	int r;

	if (nil && as_table) {
		lua_newtable(L);
		return;
	}
	r = lv_push(L, v, e->ctx.max_depth);

	if (r == -ENOMEM)
		sbx_nomem(L, "%s", what);
	if (r < 0) {
		e->fail_code = MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT;
		luaL_error(L, "%s: nested deeper than %d tables", what, (int)e->ctx.max_depth);
	}
}

/* ---- the body of an input: a coroutine driven by a cursor ----------------------------
 *
 * Every input runs on its own coroutine (e->co) so that a query can suspend it
 * between two messages. The body is a C function that makes the input's script
 * calls one by one with lua_callk: when a query yields somewhere inside a call,
 * the coroutine resumes later in body_k, which carries on from the cursor
 * (e->run). The order of calls is that of DESIGN §4: the input's root call
 * (lifecycle function, event dispatch, call, or each due timer of a tick),
 * each followed by the dispatch of the events it emitted, breadth-first. */

#define NO_CALL (-2) /* next_call: nothing left to call (LUA_MULTRET is -1) */

enum last_call { C_NONE, C_ROOT, C_HANDLER, C_COND, C_ACTION, C_TIMER };
enum trig_phase { TP_CHECK, TP_FIRE, TP_NEXT };

static int throttled(const eng *e, const eng_trigger *tr)
{
	return tr->t->throttle_ms > 0 && tr->last >= 0 &&
	       (e->ctx.tick - (uint64_t)tr->last) * e->ctx.tick_ms < tr->t->throttle_ms;
}

static void begin_event(eng *e, const char *name, const val_t *payload, unsigned depth)
{
	eng_cursor *c = &e->run;

	c->in_event = 1;
	c->ev_name = name;
	c->ev_payload = payload;
	c->hi = c->ti = 0;
	c->tphase = TP_CHECK;
	mev_set_depth(e->bus, depth);
}

/* Pushes a trigger's action and its arguments (the event's name and payload);
 * returns the number of results. */
static int action_call(eng *e, lua_State *L, eng_trigger *tr, const char *name,
		       const val_t *payload, int *nargs)
{
	tr->last = (int64_t)e->ctx.tick;
	e->ctx.trigger_id = tr->t->id;
	e->run.last = C_ACTION;
	if (tr->act_ref != LUA_NOREF) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, tr->act_ref);
		push_value(e, L, payload, 1, "event payload");
		lua_pushstring(L, name);
		*nargs = 2;
		return 0;
	}
	if (!push_global_fn(L, tr->t->action))
		luaL_error(L, "trigger '%s': '%s' is not a global function", tr->t->id,
			   tr->t->action);
	push_value(e, L, payload, 1, "event payload");
	*nargs = 1;
	return 0;
}

/* ---- debounce: one pending firing per trigger, journaled by pointer ---------------- */

static void pend_free(eng_pend *p)
{
	if (p == NULL)
		return;
	free(p->event);
	val_free(p->payload);
	free(p);
}

/* Replaces tr's pending firing; the one the input began with is kept for a
 * rollback (end_input frees whichever loses). */
static void pend_set(eng_trigger *tr, eng_pend *p)
{
	if (tr->pend != tr->saved_pend)
		pend_free(tr->pend);
	tr->pend = p;
}

/* A matching event of a debounced trigger: (re)arms its firing at tick +
 * debounce_ms in ticks (rounded up, at least 1) with this event's name and
 * payload. May raise (memory). */
static void debounce_arm(eng *e, lua_State *L, eng_trigger *tr)
{
	const eng_cursor *c = &e->run;
	eng_pend *p = calloc(1, sizeof(*p));

	if (p != NULL && (p->event = strdup(c->ev_name)) != NULL &&
	    (c->ev_payload == NULL || (p->payload = val_copy(c->ev_payload)) != NULL)) {
		p->due = e->ctx.tick +
			 ((uint64_t)tr->t->debounce_ms + e->ctx.tick_ms - 1) / e->ctx.tick_ms;
		pend_set(tr, p);
		return;
	}
	pend_free(p);
	sbx_nomem(L, "trigger '%s': debounce", tr->t->id);
}

/* The pending firing first in (due, manifest order) with due <= tick, or NULL. */
static eng_trigger *debounce_due(eng *e, uint64_t tick)
{
	eng_trigger *best = NULL;

	for (size_t i = 0; i < e->n_trig; i++) {
		eng_pend *p = e->trig[i].pend;
		if (p != NULL && p->due <= tick && (best == NULL || p->due < best->pend->due))
			best = &e->trig[i];
	}
	return best;
}

static uint64_t debounce_next_tick(const eng *e)
{
	uint64_t m = UINT64_MAX;

	for (size_t i = 0; i < e->n_trig; i++)
		if (e->trig[i].pend != NULL && e->trig[i].pend->due < m)
			m = e->trig[i].pend->due;
	return m;
}

/* Fires tr's pending firing: its action with the last event's name and payload. */
static int debounce_call(eng *e, lua_State *L, eng_trigger *tr, int *nargs)
{
	int r = action_call(e, L, tr, tr->pend->event, tr->pend->payload, nargs);

	pend_set(tr, NULL); /* pushed: the Lua copies are what the action sees */
	return r;
}

static void pend_begin(eng_trigger *tr)
{
	tr->saved_pend = tr->pend;
}

static void pend_end(eng_trigger *tr, int ok)
{
	if (tr->pend == tr->saved_pend)
		return;
	if (ok) {
		pend_free(tr->saved_pend);
		tr->saved_pend = tr->pend;
	} else {
		pend_free(tr->pend);
		tr->pend = tr->saved_pend;
	}
}

/* The next manifest trigger call of the event being dispatched, or NO_CALL. */
static int trigger_next(eng *e, lua_State *L, int *nargs)
{
	eng_cursor *c = &e->run;

	while (c->ti < e->n_trig) {
		eng_trigger *tr = &e->trig[c->ti];

		if (c->tphase == TP_CHECK) {
			if (!mev_match(tr->t->event, c->ev_name) || throttled(e, tr)) {
				c->ti++;
				continue; /* throttles count instance time */
			}
			e->ctx.trigger_id = tr->t->id;
			c->tphase = TP_FIRE;
			if (tr->cond_ref != LUA_NOREF) {
				lua_rawgeti(L, LUA_REGISTRYINDEX, tr->cond_ref);
				push_value(e, L, c->ev_payload, 1, "event payload");
				lua_pushstring(L, c->ev_name);
				c->last = C_COND;
				*nargs = 2;
				return 1;
			}
		}
		if (c->tphase == TP_FIRE) {
			c->tphase = TP_NEXT;
			if (tr->t->debounce_ms == 0)
				return action_call(e, L, tr, c->ev_name, c->ev_payload, nargs);
			debounce_arm(e, L, tr); /* fires later, on a tick */
			continue;
		}
		c->tphase = TP_CHECK;
		c->ti++;
	}
	return NO_CALL;
}

/* Handlers in registration order, then triggers in manifest order. */
static int dispatch_next(eng *e, lua_State *L, int *nargs)
{
	eng_cursor *c = &e->run;

	while (c->hi < mev_n_handlers(e->bus)) {
		const mev_handler *h = mev_handler_at(e->bus, c->hi++);

		if (!mev_match(h->pattern, c->ev_name))
			continue;
		e->ctx.trigger_id = h->trigger_id;
		lua_rawgeti(L, LUA_REGISTRYINDEX, h->ref);
		push_value(e, L, c->ev_payload, 1, "event payload");
		lua_pushstring(L, c->ev_name);
		c->last = C_HANDLER;
		*nargs = 2;
		return 0;
	}
	return trigger_next(e, L, nargs);
}

static void push_ctx(eng *e, lua_State *L)
{
	lua_createtable(L, 0, 6);
	lua_pushstring(L, e->instance_id);
	lua_setfield(L, -2, "instance_id");
	lua_pushstring(L, e->pack_id);
	lua_setfield(L, -2, "pack_id");
	lua_pushstring(L, e->pack_version);
	lua_setfield(L, -2, "pack_version");
	lua_pushinteger(L, (lua_Integer)e->seed);
	lua_setfield(L, -2, "seed");
	lua_pushinteger(L, (lua_Integer)e->ctx.tick);
	lua_setfield(L, -2, "tick");
	lua_createtable(L, 0, (int)e->n_labels);
	for (size_t i = 0; i < e->n_labels; i++) {
		lua_pushstring(L, e->label_vals[i]);
		lua_setfield(L, -2, e->label_keys[i]);
	}
	lua_setfield(L, -2, "labels");
}

static int timer_call(eng *e, lua_State *L, const mtm_timer *t, int *nargs)
{
	uint64_t id = t->id;

	set_tid(e, "timer:", t->fn);
	if (!push_global_fn(L, t->fn))
		luaL_error(L, "timer %d: '%s' is not a global function", (int)id, t->fn);
	luaL_checkstack(L, (int)t->nargs + 8, "too many timer arguments");
	for (size_t i = 0; i < t->nargs; i++)
		push_value(e, L, t->args[i], 0, "timer argument");
	*nargs = (int)t->nargs;
	if (mtm_fire(e->tm, id) < 0) /* re-arm or remove before the call: fn may cancel */
		sbx_nomem(L, "%s", "timer");
	e->run.last = C_TIMER;
	return 0;
}

/* Tick: tick += 1 (skipping ticks where nothing is due), then each due timer,
 * then each due debounced trigger. */
static int tick_next(eng *e, lua_State *L, int *nargs)
{
	eng_cursor *c = &e->run;
	const mtm_timer *t;
	eng_trigger *tr;
	uint64_t next;

	for (;;) {
		if (c->tick_started && (t = mtm_due(e->tm, e->ctx.tick)) != NULL)
			return timer_call(e, L, t, nargs);
		if (c->tick_started && (tr = debounce_due(e, e->ctx.tick)) != NULL)
			return debounce_call(e, L, tr, nargs);
		if (e->ctx.tick >= c->target)
			return NO_CALL;
		next = mtm_next_tick(e->tm);
		if (debounce_next_tick(e) < next)
			next = debounce_next_tick(e);
		e->ctx.tick = next <= e->ctx.tick ? e->ctx.tick + 1
			      : next < c->target  ? next
						  : c->target;
		c->tick_started = 1;
	}
}

static int call_root(eng *e, lua_State *L, int *nargs)
{
	if (!push_global_fn(L, e->in.name) || lua_iscfunction(L, -1)) {
		e->fail_code = MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT;
		return luaL_error(L, "no global function '%s'", e->in.name);
	}
	set_tid(e, "call:", e->in.name);
	luaL_checkstack(L, (int)e->in.nargs + 8, "too many arguments");
	for (size_t i = 0; i < e->in.nargs; i++)
		push_value(e, L, e->in.args[i], 0, "call argument");
	*nargs = (int)e->in.nargs;
	e->run.last = C_ROOT;
	return LUA_MULTRET;
}

/* The manifest's timers, in manifest order (ids 1..n in a fresh instance):
 * ms rounded up to whole ticks, at least 1. May raise (memory). */
static void start_manifest_timers(eng *e, lua_State *L)
{
	for (size_t i = 0; i < e->mf->n_timers; i++) {
		const mf_timer *mt = &e->mf->timers[i];
		uint64_t ticks = ((uint64_t)mt->ms + e->ctx.tick_ms - 1) / e->ctx.tick_ms, id;
		int r = mtm_start(e->tm, ticks ? ticks : 1, mt->every, mt->fn, mt->args, mt->nargs,
				  &id);

		if (r < 0)
			sbx_nomem(L, "timer '%s'", mt->id);
	}
}

/* The input's own calls; starts the root event dispatch of an event input. */
static int root_next(eng *e, lua_State *L, int *nargs)
{
	eng_cursor *c = &e->run;
	const char *fn = e->in.kind == IN_INIT ? "on_init" : "on_close";

	if (e->in.kind == IN_TICK)
		return tick_next(e, L, nargs);
	if (c->root_done)
		return NO_CALL;
	c->root_done = 1;
	switch (e->in.kind) {
	case IN_EVENT:
		begin_event(e, e->in.name, e->in.payload, 0);
		return NO_CALL;
	case IN_CALL:
		return call_root(e, L, nargs);
	default:
		if (e->in.kind == IN_INIT)
			start_manifest_timers(e, L);
		if (!push_global_fn(L, fn))
			return NO_CALL;
		e->ctx.trigger_id = fn;
		push_ctx(e, L);
		c->last = C_ROOT;
		*nargs = 1;
		return 0;
	}
}

/* Pushes the next script call of the input (function and *nargs arguments)
 * and returns its number of results, or NO_CALL when the input is done. */
static int next_call(eng *e, lua_State *L, int *nargs)
{
	eng_cursor *c = &e->run;
	int r;

	for (;;) {
		if (c->in_event) {
			if ((r = dispatch_next(e, L, nargs)) != NO_CALL)
				return r;
			c->in_event = 0;
			mev_event_clear(&e->cur);
			mev_set_depth(e->bus, 0);
			continue;
		}
		if (mev_pop(e->bus, &e->cur)) { /* emitted events, oldest first */
			begin_event(e, e->cur.name, e->cur.payload, e->cur.depth);
			continue;
		}
		if ((r = root_next(e, L, nargs)) != NO_CALL || !c->in_event)
			return r;
	}
}

/* Takes the results of the call that just returned. */
static void after_call(eng *e, lua_State *L)
{
	eng_cursor *c = &e->run;

	if (c->last == C_COND) {
		if (!lua_toboolean(L, -1))
			c->tphase = TP_NEXT;
		lua_pop(L, 1);
	} else if (c->last == C_ROOT && e->in.kind == IN_CALL) {
		c->nret = lua_gettop(L); /* the call's results stay at the bottom */
	}
	c->last = C_NONE;
}

static int body_k(lua_State *L, int status, lua_KContext k);

static int machine(eng *e, lua_State *L)
{
	int nargs = 0, nres;

	while ((nres = next_call(e, L, &nargs)) != NO_CALL) {
		lua_callk(L, nargs, nres, (lua_KContext)(intptr_t)e, body_k);
		after_call(e, L);
	}
	return e->run.nret;
}

/* Where the body goes on after a query answered inside one of its calls. */
static int body_k(lua_State *L, int status, lua_KContext k)
{
	eng *e = (eng *)(intptr_t)k;

	(void)status;
	after_call(e, L);
	return machine(e, L);
}

/* The coroutine's function: e as argument 1. */
static int body(lua_State *L)
{
	eng *e = lua_touserdata(L, 1);

	lua_settop(L, 0);
	return machine(e, L);
}

static int call_tostring(lua_State *L)
{
	luaL_callmeta(L, 1, "__tostring");
	return 1;
}

/* The text of the error object at 1 as sbx_call gives it: a string as is, a
 * number as text, a typed error's message, the result of __tostring (run
 * protected, under the budget) when it is a string, else "(error object is
 * a <type> value)". Leaves the stack as it found it. May raise (memory). */
static char *error_text(lua_State *L)
{
	int top = lua_gettop(L), t = lua_type(L, 1), ok = 0;
	const char *m = NULL;
	size_t len = 0;
	char buf[64];

	if (t == LUA_TSTRING || t == LUA_TNUMBER || sbx_error_kind(L, 1) != 0) {
		m = sbx_tostring(L, 1);
		ok = 1;
	} else if (luaL_getmetafield(L, 1, "__tostring") != LUA_TNIL) {
		lua_pushcfunction(L, call_tostring);
		lua_pushvalue(L, 1);
		ok = lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING;
		m = ok ? lua_tostring(L, -1) : NULL;
	}
	if (ok)
		lua_tolstring(L, -1, &len);
	else
		snprintf(buf, sizeof(buf), "(error object is a %s value)", luaL_typename(L, 1));
	m = ok ? strndup(m, len < ENG_MAX_MSG ? len : ENG_MAX_MSG) : strdup(buf);
	lua_settop(L, top);
	return (char *)m;
}

/* Message handler of the body's pcall: records the traceback of the failing
 * point and the message (error_text) and returns the error object unchanged,
 * so that the kind of a typed error survives the rethrow. Upvalue: e. */
static int body_msgh(lua_State *L)
{
	eng *e = lua_touserdata(L, lua_upvalueindex(1));

	lua_settop(L, 1);
	free(e->eh_msg);
	free(e->eh_tb);
	e->eh_msg = e->eh_tb = NULL;
	luaL_traceback(L, L, NULL, 1);
	e->eh_tb = strdup(lua_tostring(L, -1));
	lua_settop(L, 1);
	e->eh_msg = error_text(L);
	return 1;
}

/* The end of the body's pcall: results are returned; an error (its to-be-
 * closed variables already closed by the pcall, inside the budget) is raised
 * again, so that the coroutine dies with it and sbx_resume classifies it. */
static int co_main_k(lua_State *L, int status, lua_KContext k)
{
	(void)k;
	if (status == LUA_OK || status == LUA_YIELD)
		return lua_gettop(L) - 1; /* above the message handler */
	return lua_error(L);
}

/* The coroutine's function (e as argument 1): body under a pcall that can
 * yield (lua_pcallk), which runs pending __close methods on an error exactly
 * as the protected call of sbx_call would. */
static int co_main(lua_State *L)
{
	eng *e = lua_touserdata(L, 1);
	int st;

	lua_settop(L, 0);
	lua_pushlightuserdata(L, e);
	lua_pushcclosure(L, body_msgh, 1);
	lua_pushcfunction(L, body);
	lua_pushlightuserdata(L, e);
	st = lua_pcallk(L, 1, LUA_MULTRET, 1, (lua_KContext)(intptr_t)e, co_main_k);
	return co_main_k(L, st, (lua_KContext)(intptr_t)e);
}

/* Runs protected on the main thread: a new coroutine for the input, anchored
 * in the registry, with its function and e pushed. */
static int new_co(lua_State *L)
{
	eng *e = lua_touserdata(L, 1);
	lua_State *co = lua_newthread(L);
	int ref = luaL_ref(L, LUA_REGISTRYINDEX);

	e->co = co;
	e->co_ref = ref;
	lua_pushcfunction(co, co_main);
	lua_pushlightuserdata(co, e);
	return 0;
}

static void release_co(eng *e)
{
	if (e->co != NULL)
		luaL_unref(e->L, LUA_REGISTRYINDEX, e->co_ref);
	e->co = NULL;
	e->co_ref = LUA_NOREF;
	e->ctx.input_thread = NULL;
}

/* ---- input boundaries ------------------------------------------------------------ */

static void begin_input(eng *e)
{
	mst_begin(e->st);
	mtm_begin(e->tm);
	mrn_begin(&e->rng);
	mev_reset(e->bus);
	hapi_effects_reset(&e->ctx);
	for (size_t i = 0; i < e->n_trig; i++) {
		e->trig[i].saved = e->trig[i].last;
		pend_begin(&e->trig[i]);
	}
	e->saved_tick = e->ctx.tick;
	e->fail_code = 0;
	e->ctx.trigger_id = NULL;
	e->ctx.input_thread = NULL;
	hapi_query_clear(&e->ctx);
	e->saved_call_id = e->next_call_id;
	e->pending = 0;
}

static void end_input(eng *e, int ok)
{
	mev_event_clear(&e->cur);
	mev_reset(e->bus);
	for (size_t i = 0; i < e->n_trig; i++)
		pend_end(&e->trig[i], ok);
	if (ok) {
		mst_commit(e->st);
		mtm_commit(e->tm);
		return;
	}
	mst_rollback(e->st);
	mtm_rollback(e->tm);
	mrn_rollback(&e->rng);
	hapi_effects_reset(&e->ctx);
	for (size_t i = 0; i < e->n_trig; i++)
		e->trig[i].last = e->trig[i].saved;
	e->ctx.tick = e->saved_tick;
	e->next_call_id = e->saved_call_id;
	hapi_query_clear(&e->ctx);
	e->pending = 0;
}

/* ---- results --------------------------------------------------------------------- */

static Moonpen__V1__Usage *usage_new(eng *e)
{
	Moonpen__V1__Usage *u = malloc(sizeof(*u));

	if (u == NULL)
		return NULL;
	moonpen__v1__usage__init(u);
	u->instructions = sbx_instructions(e->s);
	u->cpu_us = sbx_cpu_us(e->s);
	u->mem_bytes = sbx_mem_used(e->s);
	return u;
}

static void free_vals(val_t **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		val_free(v[i]);
	free(v);
}

/* Builds out->result (effects only when ok) and takes returns. */
static int result_new(eng *e, int ok, Moonpen__V1__Usage *u, val_t **ret, size_t nret, eng_out *out)
{
	Moonpen__V1__Result *res = malloc(sizeof(*res));
	uint8_t *hash = malloc(32);

	if (res == NULL || hash == NULL) {
		free(res);
		free(hash);
		free(u);
		free_vals(ret, nret);
		return -ENOMEM;
	}
	moonpen__v1__result__init(res);
	if (ok)
		res->effects = hapi_effects_take(&e->ctx, &res->n_effects);
	hapi_effects_reset(&e->ctx);
	res->returns = ret;
	res->n_returns = nret;
	res->tick = e->ctx.tick;
	mst_hash(e->st, hash);
	res->state_hash.data = hash;
	res->state_hash.len = 32;
	res->usage = u;
	res->logs = mlg_take(e->log, &res->n_logs);
	out->result = res;
	return 0;
}

static int status_out(eng_out *out, const sbx_err *err)
{
	if (err == NULL)
		out->status = st_new(MOONPEN__V1__STATUS__CODE__OK, NULL, NULL, 0);
	else
		out->status = st_new(err->code, err->message, err->traceback, 0);
	return out->status != NULL ? 0 : -ENOMEM;
}

/* Converts the n values on top of T's stack; pops them. */
static int take_returns(eng *e, lua_State *T, int n, val_t ***ret, size_t *nret, sbx_err *err)
{
	char why[256] = "out of memory", msg[320];
	val_t **v = calloc((size_t)n + 1, sizeof(*v));
	int r = v == NULL ? -ENOMEM : 0;
	size_t bytes = 0;

	*nret = 0;
	if (r == 0 && n > ENG_MAX_RETURNS) {
		snprintf(why, sizeof(why), "more than %d return values", ENG_MAX_RETURNS);
		r = -E2BIG;
	}
	while (r == 0 && *nret < (size_t)n) {
		r = lv_to_val(T, lua_gettop(T) - n + 1 + (int)*nret, e->ctx.max_depth, &v[*nret],
			      why, sizeof(why));
		if (r == 0)
			bytes += protobuf_c_message_get_packed_size(&v[(*nret)++]->base);
		if (r == 0 && e->ctx.result_bytes + bytes > MP_MAX_RESULT_BYTES) {
			snprintf(why, sizeof(why), "the result of one input exceeds %u bytes",
				 MP_MAX_RESULT_BYTES);
			r = -EFBIG;
		}
	}
	lua_pop(T, n);
	if (r < 0) {
		snprintf(msg, sizeof(msg), "return value #%zu: %s", *nret + (r != -EFBIG), why);
		err_set(err,
			r == -EFBIG ? MOONPEN__V1__STATUS__CODE__MEMORY_LIMIT
				    : MOONPEN__V1__STATUS__CODE__SCRIPT_ERROR,
			msg);
		free_vals(v, *nret);
		*ret = NULL;
		*nret = 0;
		return -1;
	}
	*ret = v;
	return 0;
}

/* ---- running an input: stretches between queries ------------------------------------ */

/* The Usage of the input so far: every stretch it ran, never the waits. */
static Moonpen__V1__Usage *usage_acc(eng *e)
{
	Moonpen__V1__Usage *u = usage_new(e);

	if (u != NULL) {
		u->instructions = e->acc_instr;
		u->cpu_us = e->acc_cpu;
	}
	return u;
}

/* Ends the budget window of a stretch (counting what it used). */
static void stretch_end(eng *e)
{
	e->acc_cpu += sbx_cpu_us(e->s);
	e->acc_instr += sbx_instructions(e->s);
	sbx_budget_end(e->s);
}

static void input_copy_free(eng *e)
{
	free(e->in_name);
	val_free(e->in_payload);
	free_vals(e->in_args, e->in_nargs);
	e->in_name = NULL;
	e->in_payload = NULL;
	e->in_args = NULL;
	e->in_nargs = 0;
}

static void error_text_clear(eng *e)
{
	free(e->eh_msg);
	free(e->eh_tb);
	e->eh_msg = e->eh_tb = NULL;
}

/* A script failure reads as under sbx_call: the message body_msgh took with
 * tostring and the traceback of the failing point (budget trips keep their
 * own message). */
static void take_error_text(eng *e, sbx_err *err)
{
	int trip = err->code == MOONPEN__V1__STATUS__CODE__TIMEOUT ||
		   err->code == MOONPEN__V1__STATUS__CODE__BUDGET_EXCEEDED ||
		   err->code == MOONPEN__V1__STATUS__CODE__MEMORY_LIMIT;

	if (!trip && e->eh_msg != NULL) {
		free(err->message);
		err->message = e->eh_msg;
		e->eh_msg = NULL;
	}
	if (e->eh_tb != NULL) {
		free(err->traceback);
		err->traceback = e->eh_tb;
		e->eh_tb = NULL;
	}
	error_text_clear(e);
}

/* Ends the input: commit or roll back, answer with its result. nres values
 * (a call's returns) are on the coroutine when ok. */
static int finish(eng *e, int ok, int nres, sbx_err *err, eng_out *out)
{
	Moonpen__V1__Usage *u;
	val_t **ret = NULL;
	size_t nret = 0;
	int r;

	if (ok && e->in.kind == IN_CALL)
		ok = take_returns(e, e->co, nres, &ret, &nret, err) == 0;
	u = usage_acc(e);
	sbx_budget_end(e->s);
	release_co(e);
	if (!ok)
		take_error_text(e, err);
	if (!ok && e->fail_code != 0)
		err->code = e->fail_code;
	/* else err->code is the kind of the typed error object that ended the input
	 * (sbx_raise: INVALID_ARGUMENT, PERMISSION_DENIED...) or SCRIPT_ERROR */
	end_input(e, ok);
	if (ok && e->in.kind != IN_INIT && e->in.kind != IN_CLOSE)
		e->inputs++;
	r = status_out(out, ok ? NULL : err);
	if (r == 0)
		r = result_new(e, ok, u, ret, nret, out);
	else {
		free(u);
		free_vals(ret, nret);
	}
	sbx_err_clear(err);
	input_copy_free(e);
	return r;
}

/* The input yielded on a query: answer PENDING with the HostCall; the input
 * stays open (journals, effects, coroutine) until host_result or abort. */
static int suspend(eng *e, eng_out *out)
{
	Moonpen__V1__HostCall *hc = malloc(sizeof(*hc));
	char *api = strdup(e->ctx.q_api), *fn = strdup(e->ctx.q_fn);

	stretch_end(e);
	if (hc == NULL || api == NULL || fn == NULL) {
		free(hc);
		free(api);
		free(fn);
		return -ENOMEM;
	}
	moonpen__v1__host_call__init(hc);
	hc->call_id = e->next_call_id++;
	hc->api = api;
	hc->fn = fn;
	hc->args = e->ctx.q_args; /* moved */
	hc->n_args = e->ctx.q_nargs;
	e->ctx.q_args = NULL;
	e->ctx.q_nargs = 0;
	hapi_query_clear(&e->ctx);
	e->pending = hc->call_id;
	out->status = st_newf(MOONPEN__V1__STATUS__CODE__PENDING, "waiting for query %llu (%s.%s)",
			      (unsigned long long)hc->call_id, api, fn);
	out->host_call = hc;
	return out->status != NULL ? 0 : -ENOMEM;
}

/* Runs the input's coroutine for one stretch, inside the budget window the
 * caller began, with nargs values pushed on it (the first: the body's e; later:
 * a query's answer). */
static int stretch(eng *e, int nargs, eng_out *out)
{
	sbx_err err = {0};
	int nres = 0, st = sbx_resume(e->s, NULL, e->co, nargs, &nres, &err);

	if (st == 1 && e->ctx.q_api != NULL)
		return suspend(e, out);
	if (st == 1) { /* coroutine.yield on the input's own thread */
		err_set(&err, MOONPEN__V1__STATUS__CODE__SCRIPT_ERROR,
			"attempt to yield from outside a coroutine");
		st = -1;
	}
	e->acc_cpu += sbx_cpu_us(e->s);
	e->acc_instr += sbx_instructions(e->s);
	return finish(e, st == 0, nres, &err, out);
}

/* Runs e->in as one atomic input (it may stop at queries) and fills out. */
static int run_input(eng *e, uint32_t scale, eng_out *out)
{
	sbx_err err = {0};

	begin_input(e);
	e->run = (eng_cursor){.target = e->ctx.tick + e->in.count};
	e->scale = scale ? scale : 1;
	e->acc_cpu = e->acc_instr = 0;
	sbx_budget_begin(e->s, e->scale);
	lua_pushcfunction(e->L, new_co);
	lua_pushlightuserdata(e->L, e);
	if (sbx_call(e->s, 1, 0, &err) < 0)
		return finish(e, 0, 0, &err, out);
	if (e->in.kind != IN_INIT && e->in.kind != IN_CLOSE)
		e->ctx.input_thread = e->co; /* queries may suspend it */
	return stretch(e, 1, out);
}

/* Copies what the input needs (it may outlive the request across queries). */
static int input_copy(eng *e, const char *name, const val_t *payload, val_t *const *args,
		      size_t nargs)
{
	e->in_name = name != NULL ? strdup(name) : NULL;
	e->in_payload = payload != NULL ? val_copy(payload) : NULL;
	e->in_args = calloc(nargs + 1, sizeof(*e->in_args));
	if ((name != NULL && e->in_name == NULL) || (payload != NULL && e->in_payload == NULL) ||
	    e->in_args == NULL)
		goto nomem;
	for (; e->in_nargs < nargs; e->in_nargs++)
		if ((e->in_args[e->in_nargs] = val_copy(args[e->in_nargs])) == NULL)
			goto nomem;
	e->in.name = e->in_name;
	e->in.payload = e->in_payload;
	e->in.args = e->in_args;
	e->in.nargs = e->in_nargs;
	return 0;
nomem:
	input_copy_free(e);
	return -ENOMEM;
}

static int closed_out(eng_out *out)
{
	out->status =
	    st_new(MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT, "instance is closed", NULL, 0);
	return out->status != NULL ? 0 : -ENOMEM;
}

/* ---- public inputs ------------------------------------------------------------------ */

/* Clears out; answers (and returns 1) when the instance cannot take an input. */
static int refuse(eng *e, eng_out *out, int *r)
{
	out->status = NULL;
	out->result = NULL;
	out->host_call = NULL;
	*r = 0;
	if (e->closed) {
		*r = closed_out(out);
		return 1;
	}
	if (e->pending == 0)
		return 0;
	out->status = st_newf(MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT,
			      "input pending on query %llu", (unsigned long long)e->pending);
	*r = out->status != NULL ? 0 : -ENOMEM;
	return 1;
}

int eng_event(eng *e, const Moonpen__V1__SendEvent *ev, eng_out *out)
{
	int r;

	if (refuse(e, out, &r))
		return r;
	if (ev->name == NULL || ev->name[0] == '\0' || strlen(ev->name) > MEV_MAX_NAME) {
		out->status = st_new(MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT,
				     "event name must be 1 to 256 bytes", NULL, 0);
		return out->status != NULL ? 0 : -ENOMEM;
	}
	e->in = (eng_input){.kind = IN_EVENT};
	if (input_copy(e, ev->name, ev->payload, NULL, 0) < 0)
		return -ENOMEM;
	return run_input(e, 1, out);
}

int eng_tick(eng *e, uint32_t count, eng_out *out)
{
	int r;

	if (refuse(e, out, &r))
		return r;
	e->in = (eng_input){.kind = IN_TICK, .count = count ? count : 1};
	return run_input(e, e->in.count, out);
}

int eng_call(eng *e, const Moonpen__V1__Call *call, eng_out *out)
{
	int r;

	if (refuse(e, out, &r))
		return r;
	if (call->function == NULL || call->function[0] == '\0' ||
	    strlen(call->function) > MEV_MAX_NAME || call->n_args > MP_MAX_CALL_ARGS) {
		out->status = st_new(MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT,
				     "call: bad function name or too many arguments", NULL, 0);
		return out->status != NULL ? 0 : -ENOMEM;
	}
	e->in = (eng_input){.kind = IN_CALL};
	if (input_copy(e, call->function, NULL, call->args, call->n_args) < 0)
		return -ENOMEM;
	return run_input(e, 1, out);
}

/* Rolls the input pending on a query back completely. */
static void drop_pending(eng *e)
{
	release_co(e);
	end_input(e, 0);
	input_copy_free(e);
}

int eng_close(eng *e, eng_out *out)
{
	out->status = NULL;
	out->result = NULL;
	out->host_call = NULL;
	if (e->closed)
		return closed_out(out);
	if (e->pending != 0)
		drop_pending(e); /* closing discards an input left waiting */
	e->in = (eng_input){.kind = IN_CLOSE};
	e->closed = 1;
	return run_input(e, 1, out);
}

/* ---- queries: answers and abort --------------------------------------------------- */

static int not_pending(eng *e, const Moonpen__V1__HostResult *hr, eng_out *out)
{
	if (e->closed)
		return closed_out(out);
	if (e->pending == 0)
		out->status = st_new(MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT,
				     "no input is pending on a query", NULL, 0);
	else
		out->status = st_newf(
		    MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT,
		    "host_result answers query %llu; the input waits for query %llu",
		    (unsigned long long)(hr ? hr->call_id : 0), (unsigned long long)e->pending);
	return out->status != NULL ? 0 : -ENOMEM;
}

/* Runs protected on the main thread: pushes the answer (value | nil, error). */
static int push_answer(lua_State *L)
{
	const Moonpen__V1__HostResult *hr = lua_touserdata(L, 1);
	eng *e = lua_touserdata(L, 2);

	lua_settop(L, 0);
	if (hr->answer_case == MOONPEN__V1__HOST_RESULT__ANSWER_ERROR) {
		lua_pushnil(L);
		lua_pushstring(L, hr->error != NULL ? hr->error : "");
		return 2;
	}
	if (lv_push(L, hr->answer_case == MOONPEN__V1__HOST_RESULT__ANSWER_VALUE ? hr->value : NULL,
		    e->ctx.max_depth) < 0)
		return sbx_nomem(L, "%s", "query answer");
	return 1;
}

int eng_host_result(eng *e, const Moonpen__V1__HostResult *hr, eng_out *out)
{
	sbx_err err = {0};
	char why[256];
	int n, base;

	out->status = NULL;
	out->result = NULL;
	out->host_call = NULL;
	if (e->closed || e->pending == 0 || hr->call_id != e->pending)
		return not_pending(e, hr, out);
	if (hr->answer_case == MOONPEN__V1__HOST_RESULT__ANSWER_VALUE && hr->value != NULL &&
	    val_check(hr->value, e->ctx.max_depth, why, sizeof(why)) < 0) {
		out->status = st_newf(MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT,
				      "host_result value: %s", why);
		return out->status != NULL ? 0 : -ENOMEM;
	}
	e->pending = 0;
	sbx_budget_begin(e->s, e->scale); /* a new stretch: the wait did not count */
	base = lua_gettop(e->L);
	lua_pushcfunction(e->L, push_answer);
	lua_pushlightuserdata(e->L, (void *)hr);
	lua_pushlightuserdata(e->L, e);
	if (sbx_call(e->s, 2, LUA_MULTRET, &err) < 0)
		return finish(e, 0, 0, &err, out);
	n = lua_gettop(e->L) - base;
	if (!lua_checkstack(e->co, n + 1)) {
		lua_settop(e->L, base);
		err_set(&err, MOONPEN__V1__STATUS__CODE__MEMORY_LIMIT,
			"query answer: out of memory");
		return finish(e, 0, 0, &err, out);
	}
	lua_xmove(e->L, e->co, n);
	return stretch(e, n, out);
}

int eng_abort(eng *e, eng_out *out)
{
	out->status = NULL;
	out->result = NULL;
	out->host_call = NULL;
	if (e->closed || e->pending == 0)
		return not_pending(e, NULL, out);
	drop_pending(e);
	out->status = st_new(MOONPEN__V1__STATUS__CODE__OK, NULL, NULL, 0);
	if (out->status == NULL)
		return -ENOMEM;
	return result_new(e, 0, usage_acc(e), NULL, 0, out);
}

uint64_t eng_pending(const eng *e)
{
	return e->pending;
}

uint64_t eng_inputs(const eng *e)
{
	return e->inputs;
}

uint64_t eng_tick_now(const eng *e)
{
	return e->ctx.tick;
}

void eng_state_hash(eng *e, uint8_t hash[32])
{
	mst_hash(e->st, hash);
}

/* ---- creation ---------------------------------------------------------------------- */

static void files_free(eng *e)
{
	for (size_t i = 0; i < e->n_files; i++) {
		free(e->files[i].path);
		free(e->files[i].data);
	}
	free(e->files);
}

void eng_free(eng *e)
{
	if (e == NULL)
		return;
	input_copy_free(e); /* an input left pending on a query */
	hapi_query_clear(&e->ctx);
	free(e->eh_msg);
	free(e->eh_tb);
	if (e->s != NULL)
		sbx_free(e->s);
	mst_free(e->st);
	mtm_free(e->tm);
	mev_free(e->bus);
	mev_event_clear(&e->cur);
	mlg_free(e->log);
	hapi_effects_reset(&e->ctx);
	for (size_t i = 0; i < e->n_trig; i++) {
		if (e->trig[i].saved_pend != e->trig[i].pend)
			pend_free(e->trig[i].saved_pend);
		pend_free(e->trig[i].pend);
	}
	free(e->trig);
	free(e->timer_names);
	files_free(e);
	for (size_t i = 0; i < e->n_labels; i++) {
		free(e->label_keys[i]);
		free(e->label_vals[i]);
	}
	free(e->label_keys);
	free(e->label_vals);
	free(e->instance_id);
	free(e->pack_id);
	free(e->pack_version);
	mf_free(e->mf);
	sch_free(e->sch);
	free(e);
}

static const char *lookup(void *ud, const char *path, size_t *len)
{
	eng *e = ud;

	for (size_t i = 0; i < e->n_files; i++) {
		if (strcmp(e->files[i].path, path) == 0) {
			*len = e->files[i].len;
			return e->files[i].data;
		}
	}
	return NULL;
}

static int copy_files(eng *e, const Moonpen__Worker__V1__Init *init)
{
	e->files = calloc(init->n_files + 1, sizeof(*e->files));
	if (e->files == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < init->n_files; i++) {
		const Moonpen__Worker__V1__PackFile *f = init->files[i];
		eng_file *d = &e->files[e->n_files++];

		d->path = strdup(f->path != NULL ? f->path : "");
		d->data = malloc(f->data.len + 1);
		if (d->path == NULL || d->data == NULL)
			return -ENOMEM;
		if (f->data.len > 0)
			memcpy(d->data, f->data.data, f->data.len);
		d->data[f->data.len] = '\0';
		d->len = f->data.len;
	}
	return 0;
}

static int copy_identity(eng *e, const Moonpen__Worker__V1__Init *init)
{
	e->instance_id = strdup(init->instance_id != NULL ? init->instance_id : "");
	e->pack_id = strdup(e->mf->id);
	e->pack_version = strdup(e->mf->version);
	e->seed = init->seed;
	e->label_keys = calloc(init->n_labels + 1, sizeof(char *));
	e->label_vals = calloc(init->n_labels + 1, sizeof(char *));
	if (e->instance_id == NULL || e->pack_id == NULL || e->pack_version == NULL ||
	    e->label_keys == NULL || e->label_vals == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < init->n_labels; i++) {
		e->label_keys[i] = strdup(init->labels[i]->key ? init->labels[i]->key : "");
		e->label_vals[i] = strdup(init->labels[i]->value ? init->labels[i]->value : "");
		e->n_labels = i + 1;
		if (e->label_keys[i] == NULL || e->label_vals[i] == NULL)
			return -ENOMEM;
	}
	return 0;
}

/* A failure of creation: status only (and the logs gathered so far). */
static int create_fail(eng *e, st_code code, const char *msg, const char *tb, eng_out *out)
{
	out->status = st_new(code, msg, tb, 0);
	if (out->status == NULL)
		return -ENOMEM;
	if (e->s != NULL && e->log != NULL && result_new(e, 0, usage_new(e), NULL, 0, out) < 0)
		out->result = NULL; /* the status alone still says why */
	return 0;
}

static uint64_t pick(uint64_t a, uint64_t b, uint64_t c)
{
	return a ? a : b ? b : c;
}

/* Limits: the Init's, else the manifest's, else policy/limits.h. */
static void set_limits(eng *e, const Moonpen__Worker__V1__Init *init, sbx_limits *lim)
{
	const Moonpen__Worker__V1__Limits *l = init->limits;
	Moonpen__Worker__V1__Limits zero = MOONPEN__WORKER__V1__LIMITS__INIT;

	if (l == NULL)
		l = &zero;
	lim->mem_bytes = pick(l->mem_bytes, e->mf->mem_bytes, MP_LUA_MEM_BYTES);
	lim->deadline_ms = (uint32_t)pick(l->deadline_ms, e->mf->deadline_ms, MP_SOFT_DEADLINE_MS);
	lim->instructions = pick(l->instructions, e->mf->instructions, MP_INSTRUCTIONS);
	e->ctx.max_effects = (uint32_t)pick(l->max_effects, MP_MAX_EFFECTS, 0);
	e->ctx.max_depth = (unsigned)pick(l->max_value_depth, MP_MAX_VALUE_DEPTH, 0);
	e->ctx.tick_ms = (uint32_t)pick(init->tick_ms, e->mf->tick_ms, MP_DEFAULT_TICK_MS);
	e->ctx.phase = HAPI_LOADING;
}

static int make_modules(eng *e, const Moonpen__Worker__V1__Init *init, const sbx_limits *lim)
{
	const Moonpen__Worker__V1__Limits *l = init->limits;

	e->st = mst_new(&e->ctx, lim->mem_bytes);
	e->tm = mtm_new(&e->ctx, ENG_MAX_TIMERS);
	e->bus = mev_new(&e->ctx, (uint32_t)pick(l ? l->max_emit_depth : 0, MP_MAX_EMIT_DEPTH, 0),
			 MEV_MAX_EVENTS);
	e->log = mlg_new(&e->ctx, (uint32_t)pick(l ? l->max_logs : 0, MP_MAX_LOGS, 0));
	mrn_seed(&e->rng, init->seed);
	return e->st && e->tm && e->bus && e->log ? 0 : -ENOMEM;
}

static int install(lua_State *L)
{
	eng *e = lua_touserdata(L, 1);

	mst_install(L, e->st);
	mtm_install(L, e->tm);
	mev_install(L, e->bus);
	mlg_install(L, e->log);
	mrn_install(L, &e->rng);
	hapi_install(L, &e->ctx, e->sch, e->mf);
	return 0;
}

/* ---- creation: triggers ---------------------------------------------------------- */

/* Compiles "local ctx, event = ... <pre><src><post>" into a registry ref. */
static int compile(eng *e, const char *id, const char *what, const char *pre, const char *src,
		   const char *post, int *ref, char *err, size_t errlen)
{
	size_t n = strlen(pre) + strlen(src) + strlen(post) + 32;
	char *code = malloc(n), name[128], why[512];
	int r;

	if (code == NULL)
		return -ENOMEM;
	snprintf(code, n, "local ctx, event = ...; %s%s%s", pre, src, post);
	snprintf(name, sizeof(name), "=trigger %s %s", id, what);
	r = sbx_load(e->s, code, strlen(code), name, why, sizeof(why));
	free(code);
	if (r < 0) {
		snprintf(err, errlen, "trigger '%s': %s does not compile: %s", id, what, why);
		return -EINVAL;
	}
	*ref = luaL_ref(e->L, LUA_REGISTRYINDEX);
	return 0;
}

static int compile_triggers(eng *e, char *err, size_t errlen)
{
	int r = 0;

	e->trig = calloc(e->mf->n_triggers + 1, sizeof(*e->trig));
	if (e->trig == NULL)
		return -ENOMEM;
	for (size_t i = 0; r == 0 && i < e->mf->n_triggers; i++) {
		eng_trigger *tr = &e->trig[e->n_trig++];
		const mf_trigger *t = &e->mf->triggers[i];

		*tr = (eng_trigger){t, LUA_NOREF, LUA_NOREF, -1, -1, NULL, NULL};
		if (t->condition != NULL)
			r = compile(e, t->id, "condition", "return (", t->condition, "\n)",
				    &tr->cond_ref, err, errlen);
		if (r == 0 && !snap_lua_name(t->action))
			r = compile(e, t->id, "action", "", t->action, "\n", &tr->act_ref, err,
				    errlen);
		else if (r == 0 && !push_global_fn(e->L, t->action)) {
			snprintf(err, errlen, "trigger '%s': action '%s' is not a global function",
				 t->id, t->action);
			r = -EINVAL;
		} else if (r == 0)
			lua_pop(e->L, 1);
	}
	return r;
}

/* Every manifest timer names a global function once the chunk has run. */
static int check_timers(eng *e, char *err, size_t errlen)
{
	for (size_t i = 0; i < e->mf->n_timers; i++) {
		const mf_timer *mt = &e->mf->timers[i];

		if (!push_global_fn(e->L, mt->fn)) {
			snprintf(err, errlen, "timer '%s': fn '%s' is not a global function",
				 mt->id, mt->fn);
			return -EINVAL;
		}
		lua_pop(e->L, 1);
	}
	return 0;
}

struct prep {
	eng *e;
	char *err;
	size_t errlen;
	int r;
};

/* Runs protected (a struct prep as argument 1). */
static int prepare_p(lua_State *L)
{
	struct prep *p = lua_touserdata(L, 1);

	lua_settop(L, 0);
	p->r = compile_triggers(p->e, p->err, p->errlen);
	if (p->r == 0)
		p->r = check_timers(p->e, p->err, p->errlen);
	return 0;
}

/* Compiles the triggers and checks the timers' functions in a protected call:
 * luaL_ref and lua_pushstring raise when memory runs out. */
static int prepare(eng *e, char *err, size_t errlen)
{
	struct prep p = {e, err, errlen, 0};

	lua_pushcfunction(e->L, prepare_p);
	lua_pushlightuserdata(e->L, &p);
	if (lua_pcall(e->L, 1, 0, 0) != LUA_OK) {
		lua_pop(e->L, 1);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return p.r;
}

/* ---- creation: steps ----------------------------------------------------------------- */

/* Parses and checks everything that needs no Lua. *code says which status. */
static int check_init(eng *e, const Moonpen__Worker__V1__Init *init, st_code *code, char *err,
		      size_t errlen)
{
	char why[400];
	int r;

	*code = MOONPEN__V1__STATUS__CODE__BAD_PACK;
	r = mf_parse((const char *)init->manifest_json.data, init->manifest_json.len, &e->mf, why,
		     sizeof(why));
	if (r < 0) {
		if (r == -ENOMEM)
			*code = MOONPEN__V1__STATUS__CODE__INTERNAL;
		snprintf(err, errlen, "manifest: %s", r == -ENOMEM ? "out of memory" : why);
		return r;
	}
	*code = MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT;
	if (init->pack_id != NULL && init->pack_id[0] != '\0' &&
	    strcmp(init->pack_id, e->mf->id) != 0) {
		snprintf(err, errlen, "Init.pack_id '%s' is not the manifest's id '%s'",
			 init->pack_id, e->mf->id);
		return -EINVAL;
	}
	if (init->pack_version != NULL && init->pack_version[0] != '\0' &&
	    strcmp(init->pack_version, e->mf->version) != 0) {
		snprintf(err, errlen, "Init.pack_version '%s' is not the manifest's version '%s'",
			 init->pack_version, e->mf->version);
		return -EINVAL;
	}
	r = sch_parse((const char *)init->host_api_json.data, init->host_api_json.len, &e->sch, why,
		      sizeof(why));
	if (r < 0) {
		if (r == -ENOMEM)
			*code = MOONPEN__V1__STATUS__CODE__INTERNAL;
		snprintf(err, errlen, "host API schema: %s", r == -ENOMEM ? "out of memory" : why);
		return r;
	}
	*code = MOONPEN__V1__STATUS__CODE__BAD_PACK;
	r = hapi_check_pack(e->sch, e->mf, err, errlen);
	if (r == -EPERM) /* a nondeterministic or io API: a permission the pack lacks */
		*code = MOONPEN__V1__STATUS__CODE__PERMISSION_DENIED;
	return r;
}

/* timer.id: the manifest timers' names, ids 1..n. */
static int name_timers(eng *e)
{
	e->timer_names = calloc(e->mf->n_timers + 1, sizeof(*e->timer_names));
	if (e->timer_names == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < e->mf->n_timers; i++)
		e->timer_names[i] = e->mf->timers[i].id;
	mtm_set_names(e->tm, e->timer_names, e->mf->n_timers);
	return 0;
}

/* Builds the sandbox and installs the modules. */
static int build(eng *e, const Moonpen__Worker__V1__Init *init, char *err, size_t errlen)
{
	sbx_limits lim;
	int r;

	set_limits(e, init, &lim);
	r = make_modules(e, init, &lim);
	if (r == 0)
		r = name_timers(e);
	if (r == 0)
		r = copy_files(e, init);
	if (r == 0)
		r = copy_identity(e, init);
	if (r < 0)
		return r;
	e->s = sbx_new(&lim, err, errlen);
	if (e->s == NULL)
		return -ENOMEM;
	e->L = sbx_L(e->s);
	sbx_set_lookup(e->s, lookup, e);
	lua_pushcfunction(e->L, install);
	lua_pushlightuserdata(e->L, e);
	if (lua_pcall(e->L, 1, 0, 0) != LUA_OK) {
		snprintf(err, errlen, "installing host modules: %s", lua_tostring(e->L, -1));
		lua_pop(e->L, 1);
		return -ENOMEM;
	}
	return 0;
}

/* Loads and runs the entry chunk (registration phase). */
static int load_entry(eng *e, st_code *code, sbx_err *serr, char *err, size_t errlen)
{
	size_t len = 0;
	const char *src = lookup(e, e->mf->entry, &len);
	char name[300], why[512];
	int r;

	*code = MOONPEN__V1__STATUS__CODE__BAD_PACK;
	if (src == NULL) {
		snprintf(err, errlen, "entry '%s' is not in the pack", e->mf->entry);
		return -EINVAL;
	}
	snprintf(name, sizeof(name), "@%s", e->mf->entry);
	if (sbx_load(e->s, src, len, name, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s", why);
		return -EINVAL;
	}
	sbx_budget_begin(e->s, 1);
	r = sbx_call(e->s, 0, 0, serr);
	sbx_budget_end(e->s);
	if (r < 0) {
		*code = serr->code;
		snprintf(err, errlen, "%s", serr->message ? serr->message : "error");
		return -EINVAL;
	}
	r = prepare(e, err, errlen);
	if (r == 0) {
		sbx_freeze_globals(e->s);
		e->ctx.phase = HAPI_RUNNING;
	}
	return r;
}

/* ---- snapshots ------------------------------------------------------------------------ */

static int timer_id_cmp(const void *a, const void *b)
{
	const Moonpen__Worker__V1__SnapTimer *x = *(Moonpen__Worker__V1__SnapTimer *const *)a;
	const Moonpen__Worker__V1__SnapTimer *y = *(Moonpen__Worker__V1__SnapTimer *const *)b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/* Points sn's timers and throttles at the engine's (borrowed), sorted by id. */
static void snap_fill(eng *e, snap_t *sn, Moonpen__Worker__V1__SnapTimer *tv,
		      Moonpen__Worker__V1__SnapTimer **tp, Moonpen__Worker__V1__SnapThrottle *hv,
		      Moonpen__Worker__V1__SnapThrottle **hp)
{
	for (size_t i = 0; i < mtm_count(e->tm); i++) {
		const mtm_timer *t = mtm_at(e->tm, i);

		moonpen__worker__v1__snap_timer__init(&tv[i]);
		tv[i].id = t->id;
		tv[i].due = t->due;
		tv[i].period = t->period;
		tv[i].fn = t->fn;
		tv[i].args = t->args;
		tv[i].n_args = t->nargs;
		tp[i] = &tv[i];
	}
	sn->n_timers = mtm_count(e->tm);
	sn->timers = tp;
	qsort(tp, sn->n_timers, sizeof(*tp), timer_id_cmp);
	for (size_t i = 0; i < e->n_trig; i++) {
		moonpen__worker__v1__snap_throttle__init(&hv[i]);
		hv[i].trigger_id = (char *)e->trig[i].t->id;
		hv[i].last_tick = e->trig[i].last;
		if (e->trig[i].pend != NULL) {
			hv[i].pending_due = e->trig[i].pend->due;
			hv[i].pending_event = e->trig[i].pend->event;
			hv[i].pending_payload = e->trig[i].pend->payload;
		}
		hp[i] = &hv[i];
	}
	sn->n_throttles = e->n_trig;
	sn->throttles = hp;
}

int eng_snapshot(eng *e, uint8_t **buf, size_t *len)
{
	snap_t sn = MOONPEN__WORKER__V1__SNAPSHOT__INIT;
	size_t nt = mtm_count(e->tm);
	Moonpen__Worker__V1__SnapTimer *tv = calloc(nt + 1, sizeof(*tv)),
				       **tp = calloc(nt + 1, sizeof(*tp));
	Moonpen__Worker__V1__SnapThrottle *hv = calloc(e->n_trig + 1, sizeof(*hv)),
					  **hp = calloc(e->n_trig + 1, sizeof(*hp));
	uint8_t hash[32];
	int r = e->pending ? -EBUSY : e->closed ? -EINVAL : 0;

	*buf = NULL;
	*len = 0;
	if (r == 0 && (tv == NULL || tp == NULL || hv == NULL || hp == NULL))
		r = -ENOMEM;
	if (r == 0)
		r = mst_encode(e->st, &sn.state.data, &sn.state.len);
	if (r < 0)
		goto out;
	sn.format = SNAP_FORMAT;
	sn.instance_id = e->instance_id;
	sn.pack_id = e->pack_id;
	sn.pack_version = e->pack_version;
	sn.seed = e->seed;
	sn.tick_ms = e->ctx.tick_ms;
	sn.tick = e->ctx.tick;
	mst_hash(e->st, hash);
	sn.state_hash.data = hash;
	sn.state_hash.len = 32;
	sn.inputs = e->inputs;
	sn.rng = e->rng.s;
	sn.n_rng = 4;
	sn.next_timer_id = mtm_next_id(e->tm);
	sn.next_call_id = e->next_call_id;
	snap_fill(e, &sn, tv, tp, hv, hp);
	r = snap_pack(&sn, buf, len);
out:
	free(sn.state.data);
	free(tv);
	free(tp);
	free(hv);
	free(hp);
	return r;
}

/* The snapshot belongs to this Init and pack. */
static int snap_identity(eng *e, const Moonpen__Worker__V1__Init *init, const snap_t *sn, char *err,
			 size_t errlen)
{
	const char *inst = init->instance_id != NULL ? init->instance_id : "";

	if (strcmp(sn->instance_id, inst) != 0)
		snprintf(err, errlen, "snapshot is of instance '%s', not '%s'", sn->instance_id,
			 inst);
	else if (strcmp(sn->pack_id, e->mf->id) != 0)
		snprintf(err, errlen, "snapshot is of pack '%s', not '%s'", sn->pack_id, e->mf->id);
	else if (strcmp(sn->pack_version, e->mf->version) != 0)
		snprintf(err, errlen, "snapshot is of pack version '%s', not '%s'",
			 sn->pack_version, e->mf->version);
	else if (init->seed != 0 && init->seed != sn->seed)
		snprintf(err, errlen, "snapshot seed %llu is not Init.seed %llu",
			 (unsigned long long)sn->seed, (unsigned long long)init->seed);
	else if (init->tick_ms != 0 && init->tick_ms != sn->tick_ms)
		snprintf(err, errlen, "snapshot tick_ms %u is not Init.tick_ms %u", sn->tick_ms,
			 init->tick_ms);
	else
		return 0;
	return -EINVAL;
}

static eng_trigger *trigger_find(eng *e, const char *id)
{
	for (size_t i = 0; i < e->n_trig; i++)
		if (strcmp(e->trig[i].t->id, id) == 0)
			return &e->trig[i];
	return NULL;
}

static void timer_drop(mtm_timer *t)
{
	for (size_t i = 0; i < t->nargs; i++)
		val_free(t->args[i]);
	free(t->args);
	free(t->fn);
	free(t);
}

static int import_timer(eng *e, const Moonpen__Worker__V1__SnapTimer *st)
{
	mtm_timer *t = calloc(1, sizeof(*t));
	int r = 0;

	if (t == NULL)
		return -ENOMEM;
	*t = (mtm_timer){.id = st->id, .due = st->due, .period = st->period};
	t->fn = strdup(st->fn);
	t->args = calloc(st->n_args + 1, sizeof(*t->args));
	if (t->fn == NULL || t->args == NULL)
		r = -ENOMEM;
	for (; r == 0 && t->nargs < st->n_args; t->nargs++)
		if ((t->args[t->nargs] = val_copy(st->args[t->nargs])) == NULL)
			r = -ENOMEM;
	if (r == 0)
		r = mtm_import(e->tm, t);
	if (r < 0)
		timer_drop(t);
	return r;
}

/* A trigger's throttle stamp and pending debounced firing (checked by restore). */
static int import_throttle(eng *e, const Moonpen__Worker__V1__SnapThrottle *st)
{
	eng_trigger *tr = trigger_find(e, st->trigger_id);
	eng_pend *p;

	tr->last = st->last_tick;
	if (st->pending_due == 0)
		return 0;
	p = calloc(1, sizeof(*p));
	if (p == NULL || (p->event = strdup(st->pending_event)) == NULL ||
	    (st->pending_payload != NULL && (p->payload = val_copy(st->pending_payload)) == NULL)) {
		pend_free(p);
		return -ENOMEM;
	}
	p->due = st->pending_due;
	tr->pend = tr->saved_pend = p;
	return 0;
}

/* Timers, RNG, throttles and counters, once the state checked out. */
static int import_rest(eng *e, const snap_t *sn, char *err, size_t errlen)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < sn->n_timers; i++)
		r = import_timer(e, sn->timers[i]);
	if (r < 0) {
		snprintf(err, errlen, "snapshot: timers: %s",
			 r == -ENOMEM ? "out of memory" : "more than the engine holds");
		return r;
	}
	mtm_set_next_id(e->tm, sn->next_timer_id);
	if (mrn_import(&e->rng, sn->rng) < 0) {
		snprintf(err, errlen, "snapshot: rng words are all zero");
		return -EINVAL;
	}
	for (size_t i = 0; i < sn->n_throttles && r == 0; i++)
		r = import_throttle(e, sn->throttles[i]);
	if (r < 0) {
		snprintf(err, errlen, "snapshot: out of memory");
		return r;
	}
	e->ctx.tick = sn->tick;
	e->ctx.tick_ms = sn->tick_ms;
	e->seed = sn->seed;
	e->inputs = sn->inputs;
	e->next_call_id = sn->next_call_id;
	return 0;
}

/* Restore, after the chunk ran (handlers registered, triggers compiled). */
static int restore(eng *e, const snap_t *sn, char *err, size_t errlen)
{
	uint8_t hash[32];
	int r;

	for (size_t i = 0; i < sn->n_throttles; i++) {
		const eng_trigger *tr = trigger_find(e, sn->throttles[i]->trigger_id);

		if (tr == NULL) {
			snprintf(err, errlen,
				 "snapshot throttles trigger '%s', which the manifest "
				 "does not declare",
				 sn->throttles[i]->trigger_id);
			return -EINVAL;
		}
		if (sn->throttles[i]->pending_due != 0 && tr->t->debounce_ms == 0) {
			snprintf(err, errlen,
				 "snapshot holds a debounced firing of trigger '%s', which the "
				 "manifest does not debounce",
				 tr->t->id);
			return -EINVAL;
		}
	}
	r = mst_decode(e->st, sn->state.data, sn->state.len, e->ctx.max_depth + 1, err, errlen);
	if (r < 0)
		return r;
	mst_hash(e->st, hash);
	if (memcmp(hash, sn->state_hash.data, 32) != 0) {
		snprintf(err, errlen, "snapshot state hash mismatch");
		return -EINVAL;
	}
	return import_rest(e, sn, err, errlen);
}

/* Decodes Init.snapshot (when there is one) and checks it belongs here. */
static int snap_load(eng *e, const Moonpen__Worker__V1__Init *init, snap_t **sn, char *err,
		     size_t errlen)
{
	int r;

	*sn = NULL;
	if (init->snapshot.len == 0)
		return 0;
	r = snap_decode(init->snapshot.data, init->snapshot.len, e->ctx.max_depth, sn, err, errlen);
	if (r == 0 && (r = snap_identity(e, init, *sn, err, errlen)) < 0) {
		protobuf_c_message_free_unpacked(&(*sn)->base, NULL);
		*sn = NULL;
	}
	return r;
}

/* Every step of creation but on_init; *code says which status a failure has. */
static int create_steps(eng *e, const Moonpen__Worker__V1__Init *init, snap_t **sn, st_code *code,
			sbx_err *serr, char *err, size_t errlen)
{
	int r = check_init(e, init, code, err, errlen);

	if (r == 0) {
		*code = MOONPEN__V1__STATUS__CODE__INTERNAL;
		r = build(e, init, err, errlen);
	}
	if (r == 0) {
		*code = MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT;
		r = snap_load(e, init, sn, err, errlen);
	}
	if (r == 0)
		r = load_entry(e, code, serr, err, errlen);
	if (r == 0 && *sn != NULL) {
		*code = MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT;
		r = restore(e, *sn, err, errlen); /* on_init does not run again */
	}
	return r;
}

int eng_create(const Moonpen__Worker__V1__Init *init, eng **ep, eng_out *out)
{
	eng *e = calloc(1, sizeof(*e));
	st_code code = MOONPEN__V1__STATUS__CODE__INTERNAL;
	sbx_err serr = {0};
	snap_t *sn = NULL;
	char err[1024] = "";
	int r;

	*ep = NULL;
	out->status = NULL;
	out->result = NULL;
	out->host_call = NULL;
	if (e == NULL)
		return -ENOMEM;
	e->co_ref = LUA_NOREF;
	e->next_call_id = 1;
	r = create_steps(e, init, &sn, &code, &serr, err, sizeof(err));
	if (sn != NULL)
		protobuf_c_message_free_unpacked(&sn->base, NULL);
	if (r < 0) {
		if (r == -ENOMEM && code == MOONPEN__V1__STATUS__CODE__BAD_PACK)
			code =
			    MOONPEN__V1__STATUS__CODE__INTERNAL; /* the pack is fine; we are not */
		if (r == -ENOMEM && err[0] == '\0')
			snprintf(err, sizeof(err), "out of memory");
		r = create_fail(e, code, err, serr.traceback, out);
		sbx_err_clear(&serr);
		eng_free(e);
		return r;
	}
	if (init->snapshot.len > 0) { /* restored: answer with its tick and hash */
		out->status = st_new(MOONPEN__V1__STATUS__CODE__OK, NULL, NULL, 0);
		r = out->status == NULL ? -ENOMEM : result_new(e, 1, usage_new(e), NULL, 0, out);
	} else {
		e->in = (eng_input){.kind = IN_INIT};
		r = run_input(e, 1, out);
	}
	if (r < 0 || out->status->code != MOONPEN__V1__STATUS__CODE__OK) {
		eng_free(e);
		return r;
	}
	*ep = e;
	return 0;
}
