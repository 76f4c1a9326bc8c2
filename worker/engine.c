/*
 * engine — one instance's script runtime: lifecycle, inputs, dispatch of
 * events, timers and triggers, atomic commit or rollback of each input.
 *
 * Runs in moonpen-worker, after confinement. Trusts the Init it was handed
 * (the supervisor built it) but checks the manifest and schema again; trusts
 * no script. Every input runs as one protected call inside one budget window:
 * a failure anywhere (script error, budget, memory) discards that input's
 * effects, state changes, timers, RNG draws, trigger throttles and queued
 * events, so the state hash is as before the input.
 *
 * Who runs what (the trigger_id of effects):
 *   on_init(ctx) "on_init" | on_close(ctx) "on_close" | Call "call:<fn>" |
 *   ev.on handlers "ev:<pattern>" | timers "timer:<fn>" | manifest triggers
 *   their id.
 */
#include <errno.h>
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

#define ENG_MAX_TIMERS 1024
#define ENG_MAX_RETURNS 64

typedef struct eng_trigger {
	const mf_trigger *t; /* borrowed from the manifest */
	int cond_ref;	     /* compiled condition, or LUA_NOREF (always) */
	int act_ref;	     /* compiled snippet, or LUA_NOREF (a global function name) */
	int64_t last, saved; /* tick of the last firing, -1: never */
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
	const val_t *payload; /* event payload (borrowed) */
	uint32_t count;	      /* ticks */
	val_t *const *args;   /* call arguments (borrowed) */
	size_t nargs;
} eng_input;

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

/* Pushes v (nil -> an empty table when as_table); raises with fail_code set. */
static void push_value(eng *e, const val_t *v, int as_table, const char *what)
{
	int nil = v == NULL || v->kind_case == MOONPEN__V1__VALUE__KIND__NOT_SET ||
		  v->kind_case == MOONPEN__V1__VALUE__KIND_NIL_VALUE;
	int r;

	if (nil && as_table) {
		lua_newtable(e->L);
		return;
	}
	r = lv_push(e->L, v, e->ctx.max_depth);

	if (r == -ENOMEM)
		sbx_nomem(e->L, "%s", what);
	if (r < 0) {
		e->fail_code = MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT;
		luaL_error(e->L, "%s: nested deeper than %d tables", what, (int)e->ctx.max_depth);
	}
}

/* ---- dispatch (runs inside the protected body of an input) ----------------------- */

static int cond_true(eng *e, eng_trigger *tr, const char *name, const val_t *payload)
{
	int ok;

	if (tr->cond_ref == LUA_NOREF)
		return 1;
	lua_rawgeti(e->L, LUA_REGISTRYINDEX, tr->cond_ref);
	push_value(e, payload, 1, "event payload");
	lua_pushstring(e->L, name);
	lua_call(e->L, 2, 1);
	ok = lua_toboolean(e->L, -1);
	lua_pop(e->L, 1);
	return ok;
}

static void fire_trigger(eng *e, eng_trigger *tr, const char *name, const val_t *payload)
{
	uint64_t tick = e->ctx.tick;

	if (tr->t->throttle_ms > 0 && tr->last >= 0 &&
	    (tick - (uint64_t)tr->last) * e->ctx.tick_ms < tr->t->throttle_ms)
		return; /* instance time: at most once per throttle window */
	e->ctx.trigger_id = tr->t->id;
	if (!cond_true(e, tr, name, payload))
		return;
	tr->last = (int64_t)tick;
	if (tr->act_ref != LUA_NOREF) {
		lua_rawgeti(e->L, LUA_REGISTRYINDEX, tr->act_ref);
		push_value(e, payload, 1, "event payload");
		lua_pushstring(e->L, name);
		lua_call(e->L, 2, 0);
		return;
	}
	if (!push_global_fn(e->L, tr->t->action))
		luaL_error(e->L, "trigger '%s': '%s' is not a global function", tr->t->id,
			   tr->t->action);
	push_value(e, payload, 1, "event payload");
	lua_call(e->L, 1, 0);
}

/* Handlers in registration order, then triggers in manifest order. */
static void dispatch(eng *e, const char *name, const val_t *payload, unsigned depth)
{
	mev_set_depth(e->bus, depth);
	for (size_t i = 0; i < mev_n_handlers(e->bus); i++) {
		const mev_handler *h = mev_handler_at(e->bus, i);
		if (!mev_match(h->pattern, name))
			continue;
		e->ctx.trigger_id = h->trigger_id;
		lua_rawgeti(e->L, LUA_REGISTRYINDEX, h->ref);
		push_value(e, payload, 1, "event payload");
		lua_pushstring(e->L, name);
		lua_call(e->L, 2, 0);
	}
	for (size_t i = 0; i < e->n_trig; i++)
		if (mev_match(e->trig[i].t->event, name))
			fire_trigger(e, &e->trig[i], name, payload);
}

/* Dispatches queued (emitted) events, oldest first, until none is left. */
static void drain(eng *e)
{
	while (mev_pop(e->bus, &e->cur)) {
		dispatch(e, e->cur.name, e->cur.payload, e->cur.depth);
		mev_event_clear(&e->cur);
	}
	mev_set_depth(e->bus, 0);
}

/* ---- input bodies ------------------------------------------------------------------ */

static void push_ctx(eng *e)
{
	lua_State *L = e->L;

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

static void body_lifecycle(eng *e, const char *fn)
{
	if (!push_global_fn(e->L, fn))
		return;
	e->ctx.trigger_id = fn;
	push_ctx(e);
	lua_call(e->L, 1, 0);
	drain(e);
}

static void fire_timer(eng *e, const mtm_timer *t)
{
	uint64_t id = t->id;
	int nargs = (int)t->nargs;

	set_tid(e, "timer:", t->fn);
	if (!push_global_fn(e->L, t->fn))
		luaL_error(e->L, "timer %d: '%s' is not a global function", (int)id, t->fn);
	for (size_t i = 0; i < t->nargs; i++)
		push_value(e, t->args[i], 0, "timer argument");
	if (mtm_fire(e->tm, id) < 0) /* re-arm or remove before the call: fn may cancel */
		sbx_nomem(e->L, "%s", "timer");
	lua_call(e->L, nargs, 0);
	drain(e);
}

static void body_tick(eng *e)
{
	uint64_t target = e->ctx.tick + (e->in.count ? e->in.count : 1);
	const mtm_timer *t;

	while (e->ctx.tick < target) {
		uint64_t next = mtm_next_tick(e->tm);
		/* skip the ticks where nothing is due: same result as stepping one by one */
		e->ctx.tick = next <= e->ctx.tick ? e->ctx.tick + 1 : next < target ? next : target;
		while ((t = mtm_due(e->tm, e->ctx.tick)) != NULL)
			fire_timer(e, t);
	}
}

static int body_call(eng *e)
{
	int base = lua_gettop(e->L);

	if (!push_global_fn(e->L, e->in.name) || lua_iscfunction(e->L, -1)) {
		e->fail_code = MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT;
		return luaL_error(e->L, "no global function '%s'", e->in.name);
	}
	set_tid(e, "call:", e->in.name);
	luaL_checkstack(e->L, (int)e->in.nargs + 8, "too many arguments");
	for (size_t i = 0; i < e->in.nargs; i++)
		push_value(e, e->in.args[i], 0, "call argument");
	lua_call(e->L, (int)e->in.nargs, LUA_MULTRET);
	drain(e);
	return lua_gettop(e->L) - base;
}

/* The protected body of every input: upvalue-free, e as argument 1. */
static int body(lua_State *L)
{
	eng *e = lua_touserdata(L, 1);

	lua_settop(L, 0);
	switch (e->in.kind) {
	case IN_INIT:
		body_lifecycle(e, "on_init");
		return 0;
	case IN_CLOSE:
		body_lifecycle(e, "on_close");
		return 0;
	case IN_EVENT:
		dispatch(e, e->in.name, e->in.payload, 0);
		drain(e);
		return 0;
	case IN_TICK:
		body_tick(e);
		return 0;
	case IN_CALL:
		return body_call(e);
	}
	return 0;
}

/* ---- input boundaries ------------------------------------------------------------ */

static void begin_input(eng *e)
{
	mst_begin(e->st);
	mtm_begin(e->tm);
	mrn_begin(&e->rng);
	mev_reset(e->bus);
	hapi_effects_reset(&e->ctx);
	for (size_t i = 0; i < e->n_trig; i++)
		e->trig[i].saved = e->trig[i].last;
	e->saved_tick = e->ctx.tick;
	e->fail_code = 0;
	e->ctx.trigger_id = NULL;
}

static void end_input(eng *e, int ok)
{
	mev_event_clear(&e->cur);
	mev_reset(e->bus);
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

/* Converts the n values on top of the stack; pops them. */
static int take_returns(eng *e, int n, val_t ***ret, size_t *nret, sbx_err *err)
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
		r = lv_to_val(e->L, lua_gettop(e->L) - n + 1 + (int)*nret, e->ctx.max_depth,
			      &v[*nret], why, sizeof(why));
		if (r == 0)
			bytes += protobuf_c_message_get_packed_size(&v[(*nret)++]->base);
		if (r == 0 && e->ctx.result_bytes + bytes > MP_MAX_RESULT_BYTES) {
			snprintf(why, sizeof(why), "the result of one input exceeds %u bytes",
				 MP_MAX_RESULT_BYTES);
			r = -EFBIG;
		}
	}
	lua_pop(e->L, n);
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

/* Runs e->in as one atomic input in one budget window and fills out. */
static int run_input(eng *e, uint32_t scale, eng_out *out)
{
	sbx_err err = {0};
	Moonpen__V1__Usage *u;
	val_t **ret = NULL;
	size_t nret = 0;
	int base = lua_gettop(e->L), ok, r;

	begin_input(e);
	sbx_budget_begin(e->s, scale ? scale : 1);
	lua_pushcfunction(e->L, body);
	lua_pushlightuserdata(e->L, e);
	ok = sbx_call(e->s, 1, LUA_MULTRET, &err) == 0;
	if (ok && e->in.kind == IN_CALL)
		ok = take_returns(e, lua_gettop(e->L) - base, &ret, &nret, &err) == 0;
	u = usage_new(e);
	sbx_budget_end(e->s);
	lua_settop(e->L, base);
	if (!ok && e->fail_code != 0)
		err.code = e->fail_code;
	else if (!ok && err.code == MOONPEN__V1__STATUS__CODE__SCRIPT_ERROR &&
		 e->ctx.arg_error[0] && err.message && strstr(err.message, e->ctx.arg_error))
		err.code =
		    MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT; /* a schema violation ended it */
	end_input(e, ok);
	r = status_out(out, ok ? NULL : &err);
	if (r == 0)
		r = result_new(e, ok, u, ret, nret, out);
	else {
		free(u);
		free_vals(ret, nret);
	}
	sbx_err_clear(&err);
	return r;
}

static int closed_out(eng_out *out)
{
	out->status =
	    st_new(MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT, "instance is closed", NULL, 0);
	return out->status != NULL ? 0 : -ENOMEM;
}

/* ---- public inputs ------------------------------------------------------------------ */

int eng_event(eng *e, const Moonpen__V1__SendEvent *ev, eng_out *out)
{
	out->status = NULL;
	out->result = NULL;
	if (e->closed)
		return closed_out(out);
	if (ev->name == NULL || ev->name[0] == '\0' || strlen(ev->name) > MEV_MAX_NAME) {
		out->status = st_new(MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT,
				     "event name must be 1 to 256 bytes", NULL, 0);
		return out->status != NULL ? 0 : -ENOMEM;
	}
	e->in = (eng_input){.kind = IN_EVENT, .name = ev->name, .payload = ev->payload};
	return run_input(e, 1, out);
}

int eng_tick(eng *e, uint32_t count, eng_out *out)
{
	out->status = NULL;
	out->result = NULL;
	if (e->closed)
		return closed_out(out);
	e->in = (eng_input){.kind = IN_TICK, .count = count ? count : 1};
	return run_input(e, e->in.count, out);
}

int eng_call(eng *e, const Moonpen__V1__Call *call, eng_out *out)
{
	out->status = NULL;
	out->result = NULL;
	if (e->closed)
		return closed_out(out);
	if (call->function == NULL || call->function[0] == '\0' ||
	    strlen(call->function) > MEV_MAX_NAME || call->n_args > MP_MAX_CALL_ARGS) {
		out->status = st_new(MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT,
				     "call: bad function name or too many arguments", NULL, 0);
		return out->status != NULL ? 0 : -ENOMEM;
	}
	e->in = (eng_input){
	    .kind = IN_CALL, .name = call->function, .args = call->args, .nargs = call->n_args};
	return run_input(e, 1, out);
}

int eng_close(eng *e, eng_out *out)
{
	out->status = NULL;
	out->result = NULL;
	if (e->closed)
		return closed_out(out);
	e->in = (eng_input){.kind = IN_CLOSE};
	e->closed = 1;
	return run_input(e, 1, out);
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
	if (e->s != NULL)
		sbx_free(e->s);
	mst_free(e->st);
	mtm_free(e->tm);
	mev_free(e->bus);
	mev_event_clear(&e->cur);
	mlg_free(e->log);
	hapi_effects_reset(&e->ctx);
	free(e->trig);
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

static int is_name(const char *s)
{
	static const char *const kw[] = {"and",	  "break", "do",       "else",	"elseif", "end",
					 "false", "for",   "function", "goto",	"if",	  "in",
					 "local", "nil",   "not",      "or",	"repeat", "return",
					 "then",  "true",  "until",    "while", NULL};

	if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
		return 0;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
		      (*p >= '0' && *p <= '9')))
			return 0;
	for (const char *const *k = kw; *k; k++)
		if (strcmp(*k, s) == 0)
			return 0;
	return 1;
}

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

		*tr = (eng_trigger){t, LUA_NOREF, LUA_NOREF, -1, -1};
		if (t->condition != NULL)
			r = compile(e, t->id, "condition", "return (", t->condition, "\n)",
				    &tr->cond_ref, err, errlen);
		if (r == 0 && !is_name(t->action))
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
	if (init->snapshot.len > 0) {
		snprintf(err, errlen, "restoring a snapshot is not supported by this engine");
		return -ENOTSUP;
	}
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
	return hapi_check_pack(e->sch, e->mf, err, errlen);
}

/* Builds the sandbox and installs the modules. */
static int build(eng *e, const Moonpen__Worker__V1__Init *init, char *err, size_t errlen)
{
	sbx_limits lim;
	int r;

	set_limits(e, init, &lim);
	r = make_modules(e, init, &lim);
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
	r = compile_triggers(e, err, errlen);
	if (r == 0) {
		sbx_freeze_globals(e->s);
		e->ctx.phase = HAPI_RUNNING;
	}
	return r;
}

int eng_create(const Moonpen__Worker__V1__Init *init, eng **ep, eng_out *out)
{
	eng *e = calloc(1, sizeof(*e));
	st_code code = MOONPEN__V1__STATUS__CODE__INTERNAL;
	sbx_err serr = {0};
	char err[1024] = "";
	int r;

	*ep = NULL;
	out->status = NULL;
	out->result = NULL;
	if (e == NULL)
		return -ENOMEM;
	r = check_init(e, init, &code, err, sizeof(err));
	if (r == 0) {
		code = MOONPEN__V1__STATUS__CODE__INTERNAL;
		r = build(e, init, err, sizeof(err));
	}
	if (r == 0)
		r = load_entry(e, &code, &serr, err, sizeof(err));
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
	e->in = (eng_input){.kind = IN_INIT};
	r = run_input(e, 1, out);
	if (r < 0 || out->status->code != MOONPEN__V1__STATUS__CODE__OK) {
		eng_free(e);
		return r;
	}
	*ep = e;
	return 0;
}
