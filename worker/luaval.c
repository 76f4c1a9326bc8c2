/*
 * luaval — Lua values <-> moonpen.v1.Value trees.
 *
 * Runs in moonpen-worker. Trees come from the supervisor (checked by
 * val_check before they get here, checked again for depth and keys here);
 * Lua values come from scripts and are hostile: they may be cyclic, deep,
 * wide (a shared subtable referenced from many places multiplies the nodes),
 * or hold functions, threads and userdata that cannot leave the sandbox.
 *
 * Neither direction lets a Lua error escape: lv_push builds the value inside
 * lua_pcall, lv_to_val only reads (lua_next, lua_rawgeti, lua_tolstring on
 * strings) and never allocates in the Lua heap.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "worker/luaval.h"
#include "worker/sandbox.h"

/* Values (keys included) one conversion may produce: a table that holds the
 * same subtable twice at every level is a DAG of 2^depth paths. */
#define LV_MAX_NODES 1000000
#define LV_PATH_MAX 160 /* path kept for error messages */
#define LV_KEY_SHOWN 32 /* bytes of a string key shown in a path */

/* ========================================================================== */
/* Value -> Lua                                                               */
/* ========================================================================== */

static int is_nan_float(const val_t *v)
{
	return v->kind_case == MOONPEN__V1__VALUE__KIND_FLOAT_VALUE && isnan(v->float_value);
}

/* Depth, and map keys Lua cannot hold (absent, nil, NaN). */
static int pre_check(const val_t *v, unsigned depth, unsigned max_depth)
{
	const Moonpen__V1__Table *t;
	size_t i;
	int r;

	if (v == NULL || v->kind_case != MOONPEN__V1__VALUE__KIND_TABLE_VALUE)
		return 0;
	if (depth + 1 > max_depth || v->table_value == NULL)
		return -EINVAL;
	t = v->table_value;
	for (i = 0; i < t->n_array; i++)
		if ((r = pre_check(t->array[i], depth + 1, max_depth)) < 0)
			return r;
	for (i = 0; i < t->n_map; i++) {
		const val_t *k = t->map[i] != NULL ? t->map[i]->key : NULL;

		if (k == NULL || k->kind_case == MOONPEN__V1__VALUE__KIND_NIL_VALUE ||
		    k->kind_case == MOONPEN__V1__VALUE__KIND__NOT_SET || is_nan_float(k))
			return -EINVAL;
		if ((r = pre_check(k, depth + 1, max_depth)) < 0 ||
		    (r = pre_check(t->map[i]->value, depth + 1, max_depth)) < 0)
			return r;
	}
	return 0;
}

static void push_val(lua_State *L, const val_t *v);

static void push_table(lua_State *L, const Moonpen__V1__Table *t)
{
	size_t i;

	luaL_checkstack(L, 4, "value nested too deep");
	lua_createtable(L, t->n_array < INT_MAX ? (int)t->n_array : INT_MAX,
			t->n_map < INT_MAX ? (int)t->n_map : INT_MAX);
	for (i = 0; i < t->n_array; i++) {
		push_val(L, t->array[i]);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	for (i = 0; i < t->n_map; i++) {
		push_val(L, t->map[i]->key);
		push_val(L, t->map[i]->value);
		lua_rawset(L, -3);
	}
}

static void push_val(lua_State *L, const val_t *v)
{
	if (v == NULL) {
		lua_pushnil(L);
		return;
	}
	switch (v->kind_case) {
	case MOONPEN__V1__VALUE__KIND_BOOL_VALUE:
		lua_pushboolean(L, v->bool_value);
		break;
	case MOONPEN__V1__VALUE__KIND_INT_VALUE:
		lua_pushinteger(L, (lua_Integer)v->int_value);
		break;
	case MOONPEN__V1__VALUE__KIND_FLOAT_VALUE:
		lua_pushnumber(L, (lua_Number)v->float_value);
		break;
	case MOONPEN__V1__VALUE__KIND_STRING_VALUE:
		lua_pushstring(L, v->string_value != NULL ? v->string_value : "");
		break;
	case MOONPEN__V1__VALUE__KIND_BYTES_VALUE:
		lua_pushlstring(L, (const char *)v->bytes_value.data, v->bytes_value.len);
		break;
	case MOONPEN__V1__VALUE__KIND_TABLE_VALUE:
		push_table(L, v->table_value);
		break;
	default:
		lua_pushnil(L);
		break;
	}
}

static int push_protected(lua_State *L)
{
	const val_t *v = lua_touserdata(L, 1);

	lua_settop(L, 0);
	push_val(L, v);
	return 1;
}

int lv_push(lua_State *L, const val_t *v, unsigned max_depth)
{
	int st;

	if (pre_check(v, 0, max_depth) < 0)
		return -EINVAL;
	if (!lua_checkstack(L, 3))
		return -ENOMEM;
	lua_pushcfunction(L, push_protected);
	lua_pushlightuserdata(L, (void *)v);
	st = lua_pcall(L, 1, 1, 0);
	if (st == LUA_OK)
		return 0;
	lua_pop(L, 1);
	return st == LUA_ERRMEM ? -ENOMEM : -EINVAL;
}

/* ========================================================================== */
/* Lua -> Value                                                               */
/* ========================================================================== */

struct conv {
	lua_State *L;
	unsigned max_depth;
	const void **open; /* tables on the current path, for cycle detection */
	size_t nodes;
	char path[LV_PATH_MAX];
	size_t plen;
	char *err;
	size_t errlen;
};

struct ent {
	sbx_key k;
	val_t *key;
	val_t *val;
};

static int fail(struct conv *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct conv *c, const char *fmt, ...)
{
	char what[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (c->errlen == 0)
		return -EINVAL;
	if (c->plen > 0)
		snprintf(c->err, c->errlen, "%s: %s", c->path, what);
	else
		snprintf(c->err, c->errlen, "%s", what);
	return -EINVAL;
}

static void path_add(struct conv *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void path_add(struct conv *c, const char *fmt, ...)
{
	va_list ap;
	int w;

	if (c->plen + 1 >= sizeof(c->path))
		return;
	va_start(ap, fmt);
	w = vsnprintf(c->path + c->plen, sizeof(c->path) - c->plen, fmt, ap);
	va_end(ap);
	if (w > 0)
		c->plen = c->plen + (size_t)w < sizeof(c->path) ? c->plen + (size_t)w
								: sizeof(c->path) - 1;
}

static int is_ident(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

/* Appends the path segment of the key at idx: .name, ["odd key"], [3]. */
static void path_key(struct conv *c, int idx)
{
	size_t len, i;
	const char *s;

	switch (lua_type(c->L, idx)) {
	case LUA_TSTRING:
		s = lua_tolstring(c->L, idx, &len);
		if (is_ident(s, len)) {
			path_add(c, "%s%.*s", c->plen > 0 ? "." : "", (int)len, s);
			return;
		}
		path_add(c, "[\"");
		for (i = 0; i < len && i < LV_KEY_SHOWN; i++) {
			unsigned char ch = (unsigned char)s[i];

			if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
				path_add(c, "%c", ch);
			else
				path_add(c, "\\x%02x", ch);
		}
		path_add(c, "%s\"]", len > LV_KEY_SHOWN ? "..." : "");
		return;
	case LUA_TNUMBER:
		if (lua_isinteger(c->L, idx))
			path_add(c, "[%lld]", (long long)lua_tointeger(c->L, idx));
		else
			path_add(c, "[%.14g]", (double)lua_tonumber(c->L, idx));
		return;
	case LUA_TBOOLEAN:
		path_add(c, "[%s]", lua_toboolean(c->L, idx) ? "true" : "false");
		return;
	default:
		path_add(c, "[?]");
		return;
	}
}

static int conv(struct conv *c, int idx, unsigned depth, val_t **out);

static void ents_free(struct ent *e, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		val_free(e[i].key);
		val_free(e[i].val);
	}
	free(e);
}

static int ent_cmp(const void *a, const void *b)
{
	return sbx_key_cmp(&((const struct ent *)a)->k, &((const struct ent *)b)->k);
}

/* Converts the pair (key at -2, value at -1) into e. */
static int conv_pair(struct conv *c, unsigned depth, struct ent *e)
{
	size_t mark = c->plen;
	int r;

	path_key(c, -2);
	if (sbx_key_get(c->L, -2, &e->k) < 0) {
		c->plen = mark;
		c->path[mark] = '\0';
		return fail(c, "table key of type '%s' cannot be converted",
			    luaL_typename(c->L, -2));
	}
	r = conv(c, -2, depth, &e->key);
	if (r == 0)
		r = conv(c, -1, depth, &e->val);
	c->plen = mark;
	c->path[mark] = '\0';
	return r;
}

/* Every key that is not in the array part 1..n, sorted canonically. */
static int conv_map(struct conv *c, int idx, lua_Integer n, unsigned depth, val_t *t)
{
	struct ent *e = NULL, *grown;
	size_t ne = 0, cap = 0, i;
	int r = 0;

	lua_pushnil(c->L);
	while (r == 0 && lua_next(c->L, idx) != 0) {
		if (lua_isinteger(c->L, -2) && lua_tointeger(c->L, -2) >= 1 &&
		    lua_tointeger(c->L, -2) <= n) {
			lua_pop(c->L, 1);
			continue;
		}
		if (ne == cap) {
			cap = cap ? cap * 2 : 8;
			grown = realloc(e, cap * sizeof(*e));
			if (grown == NULL) {
				r = -ENOMEM;
				break;
			}
			e = grown;
		}
		memset(&e[ne], 0, sizeof(e[ne]));
		r = conv_pair(c, depth, &e[ne++]);
		lua_pop(c->L, 1);
	}
	if (r == 0 && ne > 0)
		qsort(e, ne, sizeof(*e), ent_cmp);
	for (i = 0; r == 0 && i < ne; i++) {
		r = val_table_set(t, e[i].key, e[i].val);
		if (r == 0)
			e[i].key = e[i].val = NULL;
	}
	ents_free(e, ne);
	return r;
}

static int conv_array(struct conv *c, int idx, unsigned depth, val_t *t, lua_Integer *n)
{
	size_t mark = c->plen;
	val_t *item;
	int r = 0;

	for (*n = 0; r == 0 && lua_rawgeti(c->L, idx, *n + 1) != LUA_TNIL; (*n)++) {
		path_add(c, "[%lld]", (long long)*n + 1);
		item = NULL;
		r = conv(c, -1, depth, &item);
		if (r == 0 && (r = val_table_push(t, item)) < 0)
			val_free(item);
		c->plen = mark;
		c->path[mark] = '\0';
		lua_pop(c->L, 1);
	}
	if (r == 0)
		lua_pop(c->L, 1); /* the nil that ended the array */
	return r;
}

static int conv_table(struct conv *c, int idx, unsigned depth, val_t **out)
{
	const void *p = lua_topointer(c->L, idx);
	lua_Integer n = 0;
	int top = lua_gettop(c->L), r;
	unsigned i;
	val_t *t;

	if (depth + 1 > c->max_depth)
		return fail(c, "tables nested deeper than %u", c->max_depth);
	for (i = 0; i < depth; i++)
		if (c->open[i] == p)
			return fail(c, "cycle: the table contains itself");
	if (!lua_checkstack(c->L, 4) || (t = val_new_table()) == NULL)
		return -ENOMEM;
	c->open[depth] = p;
	r = conv_array(c, idx, depth + 1, t, &n);
	if (r == 0)
		r = conv_map(c, idx, n, depth + 1, t);
	lua_settop(c->L, top);
	if (r < 0) {
		val_free(t);
		return r;
	}
	*out = t;
	return 0;
}

/* depth: tables enclosing the value at idx. */
static int conv(struct conv *c, int idx, unsigned depth, val_t **out)
{
	size_t len;
	const char *s;

	idx = lua_absindex(c->L, idx);
	*out = NULL;
	if (++c->nodes > LV_MAX_NODES)
		return fail(c, "more than %d values (shared subtables count each time)",
			    LV_MAX_NODES);
	switch (lua_type(c->L, idx)) {
	case LUA_TNIL:
		*out = val_new_nil();
		break;
	case LUA_TBOOLEAN:
		*out = val_new_bool(lua_toboolean(c->L, idx));
		break;
	case LUA_TNUMBER:
		if (lua_isinteger(c->L, idx))
			*out = val_new_int((int64_t)lua_tointeger(c->L, idx));
		else
			*out = val_new_float((double)lua_tonumber(c->L, idx));
		break;
	case LUA_TSTRING:
		s = lua_tolstring(c->L, idx, &len);
		*out = val_new_string(s, len);
		break;
	case LUA_TTABLE:
		return conv_table(c, idx, depth, out);
	default:
		return fail(c, "cannot convert a %s", luaL_typename(c->L, idx));
	}
	return *out != NULL ? 0 : -ENOMEM;
}

int lv_to_val_named(lua_State *L, int idx, unsigned max_depth, const char *root, val_t **out,
		    char *err, size_t errlen)
{
	struct conv c;
	int r;

	memset(&c, 0, sizeof(c));
	c.L = L;
	c.max_depth = max_depth;
	c.err = err;
	c.errlen = errlen;
	if (errlen > 0)
		err[0] = '\0';
	*out = NULL;
	c.open = calloc((size_t)max_depth + 1, sizeof(*c.open));
	if (c.open == NULL)
		return -ENOMEM;
	if (root != NULL)
		path_add(&c, "%s", root);
	r = conv(&c, idx, 0, out);
	free(c.open);
	if (r == -ENOMEM && errlen > 0)
		snprintf(err, errlen, "out of memory");
	return r;
}

int lv_to_val(lua_State *L, int idx, unsigned max_depth, val_t **out, char *err, size_t errlen)
{
	return lv_to_val_named(L, idx, max_depth, NULL, out, err, errlen);
}
