/*
 * mod_ev — event handlers and the per-input event queue (see mod_ev.h).
 *
 * Runs in moonpen-worker. Handlers are Lua functions kept in the registry;
 * queued events are plain data (Value trees) so that nothing a script emits
 * can carry a reference back into the Lua state.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "worker/sandbox.h"
#include "worker/luaval.h"
#include "worker/mod_ev.h"

struct mev_bus {
	const hapi_ctx *ctx;
	uint32_t max_depth, max_events;
	mev_handler *hs;
	size_t nh, caph;
	mev_event *q; /* ring of capacity capq */
	size_t head, nq, capq;
	uint32_t emitted;
	unsigned depth;
};

mev_bus *mev_new(const hapi_ctx *ctx, uint32_t max_depth, uint32_t max_events)
{
	mev_bus *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return NULL;
	b->ctx = ctx;
	b->max_depth = max_depth;
	b->max_events = max_events;
	return b;
}

void mev_event_clear(mev_event *ev)
{
	free(ev->name);
	val_free(ev->payload);
	ev->name = NULL;
	ev->payload = NULL;
}

void mev_reset(mev_bus *b)
{
	mev_event ev;

	while (mev_pop(b, &ev))
		mev_event_clear(&ev);
	b->emitted = 0;
	b->depth = 0;
}

void mev_free(mev_bus *b)
{
	if (b == NULL)
		return;
	mev_reset(b);
	for (size_t i = 0; i < b->nh; i++) {
		free(b->hs[i].pattern);
		free(b->hs[i].trigger_id);
	}
	free(b->hs);
	free(b->q);
	free(b);
}

int mev_pattern_ok(const char *p)
{
	size_t n = strlen(p);
	const char *star = strchr(p, '*');

	return n > 0 && n <= MEV_MAX_NAME && (star == NULL || star == p + n - 1);
}

int mev_match(const char *pattern, const char *name)
{
	size_t n = strlen(pattern);

	if (n > 0 && pattern[n - 1] == '*')
		return strncmp(pattern, name, n - 1) == 0;
	return strcmp(pattern, name) == 0;
}

size_t mev_n_handlers(const mev_bus *b)
{
	return b->nh;
}

const mev_handler *mev_handler_at(const mev_bus *b, size_t i)
{
	return i < b->nh ? &b->hs[i] : NULL;
}

int mev_push(mev_bus *b, const char *name, val_t *payload, unsigned depth)
{
	mev_event *slot;
	char *copy;

	if (b->nq == b->capq) {
		size_t cap = b->capq ? b->capq * 2 : 16;
		mev_event *q = malloc(cap * sizeof(*q));
		if (q == NULL)
			return -ENOMEM;
		for (size_t i = 0; i < b->nq; i++)
			q[i] = b->q[(b->head + i) % b->capq];
		free(b->q);
		b->q = q;
		b->capq = cap;
		b->head = 0;
	}
	copy = strdup(name);
	if (copy == NULL)
		return -ENOMEM;
	slot = &b->q[(b->head + b->nq) % b->capq];
	slot->name = copy; /* owned by the queue until mev_pop hands it over */
	slot->payload = payload;
	slot->depth = depth;
	b->nq++;
	return 0;
}

int mev_pop(mev_bus *b, mev_event *ev)
{
	if (b->nq == 0)
		return 0;
	*ev = b->q[b->head];
	b->head = (b->head + 1) % b->capq;
	b->nq--;
	return 1;
}

void mev_set_depth(mev_bus *b, unsigned depth)
{
	b->depth = depth;
}

/* ---- Lua ------------------------------------------------------------------------- */

static mev_bus *self(lua_State *L)
{
	return lua_touserdata(L, lua_upvalueindex(1));
}

static int add_handler(mev_bus *b, const char *pattern, int ref)
{
	mev_handler *h;
	size_t n = strlen(pattern) + 4;

	if (b->nh == b->caph) {
		size_t cap = b->caph ? b->caph * 2 : 8;
		mev_handler *p = realloc(b->hs, cap * sizeof(*p));
		if (p == NULL)
			return -ENOMEM;
		b->hs = p;
		b->caph = cap;
	}
	h = &b->hs[b->nh];
	h->pattern = strdup(pattern);
	h->trigger_id = malloc(n);
	if (h->pattern == NULL || h->trigger_id == NULL) {
		free(h->pattern);
		free(h->trigger_id);
		return -ENOMEM;
	}
	snprintf(h->trigger_id, n, "ev:%s", pattern);
	h->ref = ref;
	b->nh++;
	return 0;
}

static int l_on(lua_State *L)
{
	mev_bus *b = self(L);
	const char *p;
	int ref;

	if (b->ctx->phase != HAPI_LOADING)
		return luaL_error(L, "ev.on must be called at the top level of the chunk "
				     "(handlers are re-registered on every load)");
	if (lua_type(L, 1) != LUA_TSTRING)
		return luaL_error(L, "ev.on: argument #1 'pattern' expected string, got %s",
				  luaL_typename(L, 1));
	p = lua_tostring(L, 1);
	if (!mev_pattern_ok(p) || strlen(p) != lua_rawlen(L, 1))
		return luaL_error(L,
				  "ev.on: bad pattern '%s' (an event name, optionally ending "
				  "in a single '*')",
				  p);
	if (lua_type(L, 2) != LUA_TFUNCTION)
		return luaL_error(L, "ev.on: argument #2 'fn' expected function, got %s",
				  luaL_typename(L, 2));
	if (b->nh >= MEV_MAX_HANDLERS)
		return luaL_error(L, "ev.on: more than %d handlers", MEV_MAX_HANDLERS);
	lua_settop(L, 2);
	ref = luaL_ref(L, LUA_REGISTRYINDEX);
	if (add_handler(b, p, ref) < 0) {
		luaL_unref(L, LUA_REGISTRYINDEX, ref);
		return sbx_nomem(L, "%s", "ev.on");
	}
	return 0;
}

static int l_emit(lua_State *L)
{
	mev_bus *b = self(L);
	const char *name;
	val_t *payload = NULL;
	char err[256];
	int r;

	hapi_refuse_loading(L, b->ctx, "ev.emit");
	if (lua_type(L, 1) != LUA_TSTRING)
		return luaL_error(L, "ev.emit: argument #1 'name' expected string, got %s",
				  luaL_typename(L, 1));
	name = lua_tostring(L, 1);
	if (lua_rawlen(L, 1) == 0 || lua_rawlen(L, 1) > MEV_MAX_NAME ||
	    strlen(name) != lua_rawlen(L, 1) || strchr(name, '*') != NULL)
		return luaL_error(L, "ev.emit: bad event name (1 to %d bytes, no '*')",
				  MEV_MAX_NAME);
	if (b->depth + 1 > b->max_depth)
		return luaL_error(L, "ev.emit: event cascade deeper than %d levels (emitting '%s')",
				  (int)b->max_depth, name);
	if (b->emitted >= b->max_events)
		return luaL_error(L, "ev.emit: more than %d events emitted in one input",
				  (int)b->max_events);
	if (!lua_isnoneornil(L, 2)) {
		r = lv_to_val_named(L, 2, b->ctx->max_depth, "payload", &payload, err, sizeof(err));
		if (r == -EINVAL)
			return luaL_error(L, "ev.emit: argument #2 %s", err);
		if (r < 0)
			return sbx_nomem(L, "%s", "ev.emit");
	}
	if (mev_push(b, name, payload, b->depth + 1) < 0) {
		val_free(payload);
		return sbx_nomem(L, "%s", "ev.emit");
	}
	b->emitted++;
	return 0;
}

void mev_install(lua_State *L, mev_bus *b)
{
	static const luaL_Reg fns[] = {{"on", l_on}, {"emit", l_emit}, {NULL, NULL}};

	lua_createtable(L, 0, 2);
	lua_pushlightuserdata(L, b);
	luaL_setfuncs(L, fns, 1);
	hapi_publish(L, "ev");
}
