/*
 * mod_log — script log lines into the input's result (see mod_log.h).
 *
 * Runs in moonpen-worker. Text comes from scripts: each line is capped, the
 * number of lines per input is capped, and nothing is written anywhere but
 * the result the supervisor receives.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "worker/mod_log.h"
#include "worker/sandbox.h"

struct mlg_sink {
	const hapi_ctx *ctx;
	uint32_t max;
	Moonpen__V1__LogLine **lines;
	size_t n, cap;
	uint64_t dropped;
};

mlg_sink *mlg_new(const hapi_ctx *ctx, uint32_t max_lines)
{
	mlg_sink *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->ctx = ctx;
	s->max = max_lines;
	return s;
}

static void lines_free(Moonpen__V1__LogLine **l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		protobuf_c_message_free_unpacked(&l[i]->base, NULL);
	free(l);
}

void mlg_free(mlg_sink *s)
{
	if (s == NULL)
		return;
	lines_free(s->lines, s->n);
	free(s);
}

/* Appends regardless of the cap (the caller checked it). */
static int append(mlg_sink *s, const char *level, const char *msg, size_t len)
{
	Moonpen__V1__LogLine *l;

	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		Moonpen__V1__LogLine **p = realloc(s->lines, cap * sizeof(*p));
		if (p == NULL)
			return -ENOMEM;
		s->lines = p;
		s->cap = cap;
	}
	l = malloc(sizeof(*l));
	if (l == NULL)
		return -ENOMEM;
	moonpen__v1__log_line__init(l);
	l->level = strdup(level);
	l->message = strndup(msg, len);
	if (l->level == NULL || l->message == NULL) {
		protobuf_c_message_free_unpacked(&l->base, NULL);
		return -ENOMEM;
	}
	l->tick = s->ctx->tick;
	s->lines[s->n++] = l;
	return 0;
}

int mlg_add(mlg_sink *s, const char *level, const char *msg)
{
	if (s->n >= s->max) {
		s->dropped++;
		return 0;
	}
	return append(s, level, msg, strlen(msg));
}

Moonpen__V1__LogLine **mlg_take(mlg_sink *s, size_t *n)
{
	Moonpen__V1__LogLine **l;
	char note[64];

	if (s->dropped > 0) {
		snprintf(note, sizeof(note), "%llu log lines dropped",
			 (unsigned long long)s->dropped);
		(void)append(s, "warn", note, strlen(note)); /* best effort */
	}
	l = s->lines;
	*n = s->n;
	s->lines = NULL;
	s->n = s->cap = 0;
	s->dropped = 0;
	return l;
}

/* ---- Lua ----------------------------------------------------------------------- */

/* Builds the message on the Lua stack (a luaL_Buffer: no C memory held if a
 * Lua error is raised), then copies it into a line. */
static int emit(lua_State *L, mlg_sink *s, const char *level)
{
	int n = lua_gettop(L);
	luaL_Buffer b;
	size_t len;
	const char *msg;

	if (s->n >= s->max) {
		s->dropped++;
		return 0;
	}
	luaL_buffinit(L, &b);
	for (int i = 1; i <= n; i++) {
		if (i > 1)
			luaL_addchar(&b, '\t');
		sbx_tostring(L, i); /* no addresses; __tostring under the budget */
		luaL_addvalue(&b);
	}
	luaL_pushresult(&b);
	msg = lua_tolstring(L, -1, &len);
	if (append(s, level, msg, len > MLG_MAX_LINE ? MLG_MAX_LINE : len) < 0)
		return sbx_nomem(L, "%s", "log");
	return 0;
}

static mlg_sink *self(lua_State *L)
{
	return lua_touserdata(L, lua_upvalueindex(1));
}

static int l_debug(lua_State *L)
{
	return emit(L, self(L), "debug");
}
static int l_info(lua_State *L)
{
	return emit(L, self(L), "info");
}
static int l_warn(lua_State *L)
{
	return emit(L, self(L), "warn");
}
static int l_error(lua_State *L)
{
	return emit(L, self(L), "error");
}
static int l_print(lua_State *L)
{
	return emit(L, self(L), "print");
}

void mlg_install(lua_State *L, mlg_sink *s)
{
	static const luaL_Reg fns[] = {
	    {"debug", l_debug}, {"info", l_info}, {"warn", l_warn},
	    {"error", l_error}, {NULL, NULL},
	};

	hapi_push_globals(L);
	lua_pushstring(L, "print");
	lua_pushlightuserdata(L, s);
	lua_pushcclosure(L, l_print, 1);
	lua_rawset(L, -3);
	lua_pop(L, 1);
	lua_createtable(L, 0, 4);
	lua_pushlightuserdata(L, s);
	luaL_setfuncs(L, fns, 1);
	hapi_publish(L, "log");
}
