/*
 * mod_state — the instance's durable key-value store and its canonical
 * encoding (see mod_state.h for the API and the encoding).
 *
 * Runs in moonpen-worker. Keys and values come from scripts: keys are length-
 * checked, values converted by luaval (plain data, bounded depth), the store's
 * size is capped. The store lives in C (not in the Lua heap) so that it can
 * be hashed, journaled and snapshotted without running script code.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <sodium.h>

#include "worker/sandbox.h"
#include "worker/luaval.h"
#include "worker/mod_state.h"

typedef struct entry {
	char *key;
	size_t klen;
	val_t *v;
	uint64_t bytes; /* encoded size of key + value */
} entry;

typedef struct jentry {
	char *key;
	size_t klen;
	val_t *old; /* NULL: the key was absent */
	uint64_t old_bytes;
} jentry;

struct mst_store {
	const hapi_ctx *ctx;
	uint64_t max_bytes, total;
	entry *ents;
	size_t n, cap;
	jentry *jr;
	size_t jn, jcap;
	int journaling;
	uint8_t hash[32], saved_hash[32];
	int hash_ok, saved_hash_ok;
};

/* ---- canonical order and encoding ---------------------------------------------- */

static int kind_rank(const val_t *v)
{
	switch (v->kind_case) {
	case MOONPEN__V1__VALUE__KIND_INT_VALUE:
	case MOONPEN__V1__VALUE__KIND_FLOAT_VALUE:
		return 0;
	case MOONPEN__V1__VALUE__KIND_STRING_VALUE:
	case MOONPEN__V1__VALUE__KIND_BYTES_VALUE:
		return 1;
	case MOONPEN__V1__VALUE__KIND_BOOL_VALUE:
		return 2;
	default:
		return 3;
	}
}

static void str_of(const val_t *v, const uint8_t **p, size_t *n)
{
	if (v->kind_case == MOONPEN__V1__VALUE__KIND_STRING_VALUE) {
		*p = (const uint8_t *)v->string_value;
		*n = strlen(v->string_value);
	} else {
		*p = v->bytes_value.data;
		*n = v->bytes_value.len;
	}
}

static int bytes_cmp(const void *a, size_t an, const void *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);

	if (c != 0)
		return c;
	return an < bn ? -1 : an > bn ? 1 : 0;
}

static int num_cmp(const val_t *a, const val_t *b)
{
	int ai = a->kind_case == MOONPEN__V1__VALUE__KIND_INT_VALUE;
	int bi = b->kind_case == MOONPEN__V1__VALUE__KIND_INT_VALUE;
	long double x = ai ? (long double)a->int_value : (long double)a->float_value;
	long double y = bi ? (long double)b->int_value : (long double)b->float_value;

	if (x != y)
		return x < y ? -1 : 1;
	return bi - ai; /* integer first */
}

static int key_cmp(const val_t *a, const val_t *b)
{
	int ra = kind_rank(a), rb = kind_rank(b);
	const uint8_t *pa, *pb;
	size_t na, nb;

	if (ra != rb)
		return ra - rb;
	if (ra == 0)
		return num_cmp(a, b);
	if (ra == 1) {
		str_of(a, &pa, &na);
		str_of(b, &pb, &nb);
		return bytes_cmp(pa, na, pb, nb);
	}
	if (ra == 2)
		return (int)a->bool_value - (int)b->bool_value;
	return 0;
}

static int pair_cmp(const void *a, const void *b)
{
	const Moonpen__V1__Pair *x = *(Moonpen__V1__Pair *const *)a;
	const Moonpen__V1__Pair *y = *(Moonpen__V1__Pair *const *)b;

	return key_cmp(x->key, y->key);
}

/* Sorts every map part into canonical key order, recursively. */
static void normalize(val_t *v)
{
	Moonpen__V1__Table *t;

	if (v == NULL || v->kind_case != MOONPEN__V1__VALUE__KIND_TABLE_VALUE ||
	    v->table_value == NULL)
		return;
	t = v->table_value;
	for (size_t i = 0; i < t->n_array; i++)
		normalize(t->array[i]);
	for (size_t i = 0; i < t->n_map; i++)
		normalize(t->map[i]->value);
	if (t->n_map > 1)
		qsort(t->map, t->n_map, sizeof(*t->map), pair_cmp);
}

enum enc_mode { ENC_COUNT, ENC_BUF, ENC_HASH };

struct enc {
	enum enc_mode mode;
	uint64_t len;
	uint8_t *buf; /* ENC_BUF: exactly sized beforehand */
	crypto_generichash_state h;
};

static void put(struct enc *e, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (e->mode == ENC_BUF)
		memcpy(e->buf + e->len, p, n);
	else if (e->mode == ENC_HASH)
		crypto_generichash_update(&e->h, p, n);
	e->len += n;
}

static void put_u8(struct enc *e, uint8_t c)
{
	put(e, &c, 1);
}

static void put_u64(struct enc *e, uint64_t x)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(x >> (56 - 8 * i));
	put(e, b, 8);
}

static void put_u32(struct enc *e, size_t x)
{
	uint8_t b[4] = {(uint8_t)(x >> 24), (uint8_t)(x >> 16), (uint8_t)(x >> 8), (uint8_t)x};

	put(e, b, 4);
}

static void put_value(struct enc *e, const val_t *v);

static void put_table(struct enc *e, const Moonpen__V1__Table *t)
{
	put_u8(e, 'T');
	put_u32(e, t != NULL ? t->n_array : 0);
	for (size_t i = 0; t != NULL && i < t->n_array; i++)
		put_value(e, t->array[i]);
	put_u32(e, t != NULL ? t->n_map : 0);
	for (size_t i = 0; t != NULL && i < t->n_map; i++) {
		put_value(e, t->map[i]->key);
		put_value(e, t->map[i]->value);
	}
}

static void put_value(struct enc *e, const val_t *v)
{
	const uint8_t *p;
	size_t n;
	uint64_t bits;

	switch (v != NULL ? v->kind_case : MOONPEN__V1__VALUE__KIND__NOT_SET) {
	case MOONPEN__V1__VALUE__KIND_BOOL_VALUE:
		put_u8(e, v->bool_value ? 't' : 'f');
		break;
	case MOONPEN__V1__VALUE__KIND_INT_VALUE:
		put_u8(e, 'i');
		put_u64(e, (uint64_t)v->int_value);
		break;
	case MOONPEN__V1__VALUE__KIND_FLOAT_VALUE:
		put_u8(e, 'd');
		memcpy(&bits, &v->float_value, 8);
		put_u64(e, isnan(v->float_value) ? 0x7ff8000000000000ULL : bits);
		break;
	case MOONPEN__V1__VALUE__KIND_STRING_VALUE:
	case MOONPEN__V1__VALUE__KIND_BYTES_VALUE:
		put_u8(e, v->kind_case == MOONPEN__V1__VALUE__KIND_STRING_VALUE ? 's' : 'b');
		str_of(v, &p, &n);
		put_u32(e, n);
		put(e, p, n);
		break;
	case MOONPEN__V1__VALUE__KIND_TABLE_VALUE:
		put_table(e, v->table_value);
		break;
	default:
		put_u8(e, 'n');
	}
}

static void put_state(struct enc *e, const mst_store *st)
{
	put(e, "MPST\x01", 5);
	put_u32(e, st->n);
	for (size_t i = 0; i < st->n; i++) {
		put_u32(e, st->ents[i].klen);
		put(e, st->ents[i].key, st->ents[i].klen);
		put_value(e, st->ents[i].v);
	}
}

static uint64_t entry_bytes(size_t klen, const val_t *v)
{
	struct enc e = {.mode = ENC_COUNT};

	put_value(&e, v);
	return 4 + klen + e.len;
}

int mst_encode(const mst_store *st, uint8_t **buf, size_t *len)
{
	struct enc e = {.mode = ENC_COUNT};

	put_state(&e, st);
	*buf = malloc(e.len ? e.len : 1);
	if (*buf == NULL)
		return -ENOMEM;
	*len = e.len;
	e.mode = ENC_BUF;
	e.buf = *buf;
	e.len = 0;
	put_state(&e, st);
	return 0;
}

void mst_hash(mst_store *st, uint8_t out[32])
{
	struct enc e = {.mode = ENC_HASH};

	if (!st->hash_ok) {
		crypto_generichash_init(&e.h, NULL, 0, 32);
		put_state(&e, st);
		crypto_generichash_final(&e.h, st->hash, 32);
		st->hash_ok = 1;
	}
	memcpy(out, st->hash, 32);
}

/* ---- the store ------------------------------------------------------------------- */

mst_store *mst_new(const hapi_ctx *ctx, uint64_t max_bytes)
{
	mst_store *st = calloc(1, sizeof(*st));

	if (st == NULL)
		return NULL;
	st->ctx = ctx;
	st->max_bytes = max_bytes;
	return st;
}

static void journal_clear(mst_store *st)
{
	for (size_t i = 0; i < st->jn; i++) {
		free(st->jr[i].key);
		val_free(st->jr[i].old);
	}
	st->jn = 0;
}

void mst_free(mst_store *st)
{
	if (st == NULL)
		return;
	journal_clear(st);
	free(st->jr);
	for (size_t i = 0; i < st->n; i++) {
		free(st->ents[i].key);
		val_free(st->ents[i].v);
	}
	free(st->ents);
	free(st);
}

/* Index of key, or -(insertion point) - 1. */
static long find(const mst_store *st, const char *key, size_t klen)
{
	size_t lo = 0, hi = st->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = bytes_cmp(st->ents[mid].key, st->ents[mid].klen, key, klen);
		if (c == 0)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(long)lo - 1;
}

const val_t *mst_get(const mst_store *st, const char *key, size_t klen)
{
	long i = find(st, key, klen);

	return i >= 0 ? st->ents[i].v : NULL;
}

size_t mst_count(const mst_store *st)
{
	return st->n;
}

/* Sets or deletes key without journaling or allocation: takes owned_key (a
 * copy the caller made; freed when the entry exists) and v; frees the value
 * replaced. For an insert the caller guarantees capacity. */
static void apply(mst_store *st, char *owned_key, size_t klen, val_t *v, uint64_t bytes)
{
	long i = find(st, owned_key, klen);

	st->hash_ok = 0;
	if (i >= 0) {
		entry *e = &st->ents[i];
		free(owned_key);
		st->total -= e->bytes;
		val_free(e->v);
		if (v != NULL) {
			e->v = v;
			e->bytes = bytes;
			st->total += bytes;
			return;
		}
		free(e->key);
		memmove(e, e + 1, (st->n - (size_t)i - 1) * sizeof(*e));
		st->n--;
		return;
	}
	if (v == NULL) {
		free(owned_key);
		return;
	}
	i = -i - 1;
	memmove(&st->ents[i + 1], &st->ents[i], (st->n - (size_t)i) * sizeof(*st->ents));
	st->ents[i] = (entry){owned_key, klen, v, bytes};
	st->n++;
	st->total += bytes;
}

static int reserve(void **arr, size_t *cap, size_t need, size_t size)
{
	size_t c = *cap ? *cap : 8;
	void *p;

	if (need <= *cap)
		return 0;
	while (c < need)
		c *= 2;
	p = realloc(*arr, c * size);
	if (p == NULL)
		return -ENOMEM;
	*arr = p;
	*cap = c;
	return 0;
}

static char *memdup(const char *p, size_t n)
{
	char *d = malloc(n + 1);

	if (d != NULL) {
		memcpy(d, p, n);
		d[n] = '\0';
	}
	return d;
}

/* Moves the current value of key into the journal (ownership of jkey too). */
static void journal_push(mst_store *st, char *jkey, size_t klen)
{
	long i = find(st, jkey, klen);
	jentry *j = &st->jr[st->jn++];

	j->key = jkey;
	j->klen = klen;
	j->old = i >= 0 ? st->ents[i].v : NULL;
	j->old_bytes = i >= 0 ? st->ents[i].bytes : 0;
	if (i >= 0)
		st->ents[i].v = NULL; /* apply() frees NULL harmlessly */
}

int mst_put(mst_store *st, const char *key, size_t klen, val_t *v)
{
	long i = find(st, key, klen);
	uint64_t nb = 0, ob = i >= 0 ? st->ents[i].bytes : 0;
	char *ekey = NULL, *jkey = NULL;

	if (klen == 0 || klen > MST_MAX_KEY)
		return -EINVAL;
	if (v != NULL) {
		normalize(v);
		nb = entry_bytes(klen, v);
		if (st->max_bytes > 0 && st->total - ob + nb > st->max_bytes)
			return -E2BIG;
	}
	if (reserve((void **)&st->ents, &st->cap, st->n + 1, sizeof(*st->ents)) < 0 ||
	    reserve((void **)&st->jr, &st->jcap, st->jn + 1, sizeof(*st->jr)) < 0)
		return -ENOMEM;
	ekey = memdup(key, klen);
	if (st->journaling)
		jkey = memdup(key, klen);
	if (ekey == NULL || (st->journaling && jkey == NULL)) {
		free(ekey);
		free(jkey);
		return -ENOMEM;
	}
	if (st->journaling)
		journal_push(st, jkey, klen);
	apply(st, ekey, klen, v, nb);
	return 0;
}

void mst_begin(mst_store *st)
{
	journal_clear(st);
	st->journaling = 1;
	memcpy(st->saved_hash, st->hash, 32);
	st->saved_hash_ok = st->hash_ok;
}

void mst_commit(mst_store *st)
{
	journal_clear(st);
	st->journaling = 0;
}

void mst_rollback(mst_store *st)
{
	while (st->jn > 0) {
		jentry *j = &st->jr[--st->jn];
		/* capacity: an entry restored here was removed in this input */
		apply(st, j->key, j->klen, j->old, j->old_bytes);
	}
	st->journaling = 0;
	memcpy(st->hash, st->saved_hash, 32);
	st->hash_ok = st->saved_hash_ok;
}

/* ---- the Lua module ------------------------------------------------------------------ */

static mst_store *self(lua_State *L)
{
	return lua_touserdata(L, lua_upvalueindex(1));
}

static const char *check_key(lua_State *L, const char *fn, size_t *klen)
{
	const char *k;

	if (lua_type(L, 1) != LUA_TSTRING)
		luaL_error(L, "state.%s: argument #1 'key' expected string, got %s", fn,
			   luaL_typename(L, 1));
	k = lua_tolstring(L, 1, klen);
	if (*klen == 0 || *klen > MST_MAX_KEY)
		luaL_error(L, "state.%s: key must be 1 to %d bytes, got %d", fn, MST_MAX_KEY,
			   (int)*klen);
	return k;
}

static int put_or_raise(lua_State *L, mst_store *st, const char *fn, const char *k, size_t klen,
			val_t *v)
{
	int r = mst_put(st, k, klen, v);

	if (r == 0)
		return 0;
	val_free(v);
	if (r == -E2BIG)
		return luaL_error(L, "state.%s: the instance state would exceed %I bytes", fn,
				  (lua_Integer)st->max_bytes);
	return sbx_nomem(L, "state.%s", fn);
}

static int l_get(lua_State *L)
{
	mst_store *st = self(L);
	size_t klen;
	const char *k = check_key(L, "get", &klen);
	const val_t *v = mst_get(st, k, klen);

	if (v == NULL) {
		lua_pushnil(L);
		return 1;
	}
	if (lv_push(L, v, st->ctx->max_depth + 1) < 0)
		return sbx_nomem(L, "%s", "state.get");
	return 1;
}

static int l_set(lua_State *L)
{
	mst_store *st = self(L);
	size_t klen;
	const char *k;
	val_t *v = NULL;
	char err[256];

	hapi_refuse_loading(L, st->ctx, "state.set");
	k = check_key(L, "set", &klen);
	if (!lua_isnoneornil(L, 2)) {
		int r = lv_to_val_named(L, 2, st->ctx->max_depth, "value", &v, err, sizeof(err));
		if (r == -EINVAL)
			return luaL_error(L, "state.set: key '%s': %s", k, err);
		if (r < 0)
			return sbx_nomem(L, "%s", "state.set");
	}
	put_or_raise(L, st, "set", k, klen, v);
	return 0;
}

/* Pushes and returns the sum cur + delta as a new Value; raises on overflow. */
static val_t *add(lua_State *L, const char *k, const val_t *cur)
{
	int cur_int = cur == NULL || cur->kind_case == MOONPEN__V1__VALUE__KIND_INT_VALUE;
	int64_t ci = cur == NULL ? 0 : cur_int ? cur->int_value : 0, s;
	double cf = cur != NULL && !cur_int ? cur->float_value : 0;
	val_t *v;

	if (cur != NULL && cur->kind_case != MOONPEN__V1__VALUE__KIND_INT_VALUE &&
	    cur->kind_case != MOONPEN__V1__VALUE__KIND_FLOAT_VALUE)
		luaL_error(L, "state.incr: the value of '%s' is not a number", k);
	if (lua_isnoneornil(L, 2))
		lua_pushinteger(L, 1);
	else if (lua_type(L, 2) != LUA_TNUMBER)
		luaL_error(L, "state.incr: argument #2 'delta' expected number, got %s",
			   luaL_typename(L, 2));
	else
		lua_pushvalue(L, 2);
	if (cur_int && lua_isinteger(L, -1)) {
		if (__builtin_add_overflow(ci, (int64_t)lua_tointeger(L, -1), &s))
			luaL_error(L, "state.incr: integer overflow on '%s'", k);
		lua_pushinteger(L, s);
		v = val_new_int(s);
	} else {
		double d = (cur_int ? (double)ci : cf) + lua_tonumber(L, -1);
		lua_pushnumber(L, d);
		v = val_new_float(d);
	}
	if (v == NULL)
		sbx_nomem(L, "%s", "state.incr");
	return v;
}

static int l_incr(lua_State *L)
{
	mst_store *st = self(L);
	size_t klen;
	const char *k;
	val_t *v;

	hapi_refuse_loading(L, st->ctx, "state.incr");
	k = check_key(L, "incr", &klen);
	v = add(L, k, mst_get(st, k, klen));
	put_or_raise(L, st, "incr", k, klen, v);
	return 1;
}

static int l_keys(lua_State *L)
{
	mst_store *st = self(L);

	lua_createtable(L, (int)st->n, 0);
	for (size_t i = 0; i < st->n; i++) {
		lua_pushlstring(L, st->ents[i].key, st->ents[i].klen);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	return 1;
}

void mst_install(lua_State *L, mst_store *st)
{
	static const luaL_Reg fns[] = {
	    {"get", l_get}, {"set", l_set}, {"incr", l_incr}, {"keys", l_keys}, {NULL, NULL},
	};

	lua_createtable(L, 0, 4);
	lua_pushlightuserdata(L, st);
	luaL_setfuncs(L, fns, 1);
	hapi_publish(L, "state");
}

/* ---- decoding (snapshots) ------------------------------------------------------------- */

struct dec {
	const uint8_t *p, *end;
	unsigned max_depth;
};

static int get(struct dec *d, void *out, size_t n)
{
	if ((size_t)(d->end - d->p) < n)
		return -EINVAL;
	memcpy(out, d->p, n);
	d->p += n;
	return 0;
}

static int get_u32(struct dec *d, uint32_t *x)
{
	uint8_t b[4];

	if (get(d, b, 4) < 0)
		return -EINVAL;
	*x = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
	return 0;
}

static int get_u64(struct dec *d, uint64_t *x)
{
	uint8_t b[8];

	if (get(d, b, 8) < 0)
		return -EINVAL;
	*x = 0;
	for (int i = 0; i < 8; i++)
		*x = *x << 8 | b[i];
	return 0;
}

static int get_value(struct dec *d, unsigned depth, val_t **out);

static int get_str(struct dec *d, int utf8, val_t **out)
{
	uint32_t n;

	if (get_u32(d, &n) < 0 || (size_t)(d->end - d->p) < n)
		return -EINVAL;
	if (utf8 && !val_utf8_valid((const char *)d->p, n))
		return -EINVAL;
	*out = utf8 ? val_new_string((const char *)d->p, n) : val_new_bytes(d->p, n);
	d->p += n;
	return *out != NULL ? 0 : -ENOMEM;
}

/* A table: n array items, then m key/value pairs (keys: no table, no nil). */
static int get_table(struct dec *d, unsigned depth, val_t **out)
{
	val_t *t = val_new_table(), *k = NULL, *v = NULL;
	uint32_t n = 0, m = 0;
	int r = t == NULL ? -ENOMEM : depth > d->max_depth ? -EINVAL : get_u32(d, &n);

	for (uint32_t i = 0; r == 0 && i < n; i++) {
		r = get_value(d, depth, &v);
		if (r == 0 && (r = val_table_push(t, v)) < 0)
			val_free(v);
	}
	if (r == 0)
		r = get_u32(d, &m);
	for (uint32_t i = 0; r == 0 && i < m; i++) {
		k = v = NULL;
		r = get_value(d, depth, &k);
		if (r == 0 && k->kind_case == MOONPEN__V1__VALUE__KIND_TABLE_VALUE)
			r = -EINVAL;
		if (r == 0)
			r = get_value(d, depth, &v);
		if (r == 0)
			r = val_table_set(t, k, v);
		if (r < 0) {
			val_free(k);
			val_free(v);
		}
	}
	if (r < 0) {
		val_free(t);
		return r;
	}
	*out = t;
	return 0;
}

static int get_value(struct dec *d, unsigned depth, val_t **out)
{
	uint8_t tag;
	uint64_t x;
	double f;

	*out = NULL;
	if (get(d, &tag, 1) < 0)
		return -EINVAL;
	switch (tag) {
	case 'f':
	case 't':
		*out = val_new_bool(tag == 't');
		break;
	case 'i':
	case 'd':
		if (get_u64(d, &x) < 0)
			return -EINVAL;
		memcpy(&f, &x, 8);
		*out = tag == 'i' ? val_new_int((int64_t)x) : val_new_float(f);
		break;
	case 's':
	case 'b':
		return get_str(d, tag == 's', out);
	case 'T':
		return get_table(d, depth + 1, out);
	default: /* 'n' included: the store holds no nil */
		return -EINVAL;
	}
	return *out != NULL ? 0 : -ENOMEM;
}

static void clear(mst_store *st)
{
	for (size_t i = 0; i < st->n; i++) {
		free(st->ents[i].key);
		val_free(st->ents[i].v);
	}
	st->n = 0;
	st->total = 0;
	st->hash_ok = 0;
}

static int decode_entries(mst_store *st, struct dec *d, char *err, size_t errlen)
{
	uint32_t n, klen;
	val_t *v;
	int r;

	if ((size_t)(d->end - d->p) < 5 || memcmp(d->p, "MPST\x01", 5) != 0) {
		snprintf(err, errlen, "state: bad header");
		return -EINVAL;
	}
	d->p += 5;
	if (get_u32(d, &n) < 0) {
		snprintf(err, errlen, "state: truncated");
		return -EINVAL;
	}
	for (uint32_t i = 0; i < n; i++) {
		const char *key;

		if (get_u32(d, &klen) < 0 || (size_t)(d->end - d->p) < klen || klen == 0 ||
		    klen > MST_MAX_KEY) {
			snprintf(err, errlen, "state: entry %u: bad key", i + 1);
			return -EINVAL;
		}
		key = (const char *)d->p;
		d->p += klen;
		r = get_value(d, 0, &v);
		if (r == 0 && (r = mst_put(st, key, klen, v)) < 0)
			val_free(v);
		if (r < 0) {
			snprintf(err, errlen, "state: entry %u: %s", i + 1,
				 r == -ENOMEM  ? "out of memory"
				 : r == -E2BIG ? "the state exceeds the instance's cap"
					       : "bad value");
			return r;
		}
	}
	if (d->p != d->end) {
		snprintf(err, errlen, "state: trailing bytes");
		return -EINVAL;
	}
	return 0;
}

int mst_decode(mst_store *st, const uint8_t *buf, size_t len, unsigned max_depth, char *err,
	       size_t errlen)
{
	static const uint8_t none[1];
	struct dec d;
	if (buf == NULL) /* no state bytes: refused below, without NULL + 0 */
		buf = none;
	d = (struct dec){buf, buf + len, max_depth};
	uint8_t *again = NULL;
	size_t alen = 0;
	int r = st->n == 0 && !st->journaling ? 0 : -EINVAL;

	if (r < 0)
		snprintf(err, errlen, "state: the store is not empty");
	if (r == 0)
		r = decode_entries(st, &d, err, errlen);
	if (r == 0 && (r = mst_encode(st, &again, &alen)) < 0)
		snprintf(err, errlen, "state: out of memory");
	if (r == 0 && (alen != len || memcmp(again, buf, len) != 0)) {
		snprintf(err, errlen, "state: not in canonical form (keys or map out of order)");
		r = -EINVAL;
	}
	free(again);
	if (r < 0)
		clear(st);
	return r;
}
