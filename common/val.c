/*
 * val — helpers for moonpen.v1.Value trees.
 *
 * Runs in every process: the supervisor and the client build and decode trees,
 * the worker converts them to and from Lua. A tree decoded from the wire is
 * hostile until val_check() accepted it: it may nest without bound, carry any
 * bytes in string_value, NULL members or a oneof case we do not know.
 */
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/val.h"
#include "common/diag.h"

#define VAL_MAX_NODES 1000000 /* width guard: nodes (keys included) per checked tree */

/* ---- constructors ----------------------------------------------------------- */

static val_t *node_new(Moonpen__V1__Value__KindCase kind)
{
	val_t *v = malloc(sizeof(*v));

	if (v == NULL)
		return NULL;
	moonpen__v1__value__init(v);
	v->kind_case = kind;
	return v;
}

val_t *val_new_nil(void)
{
	val_t *v = node_new(MOONPEN__V1__VALUE__KIND_NIL_VALUE);
	Moonpen__V1__Nil *n = malloc(sizeof(*n));

	if (v == NULL || n == NULL) {
		free(v);
		free(n);
		return NULL;
	}
	moonpen__v1__nil__init(n);
	v->nil_value = n;
	return v;
}

val_t *val_new_bool(int b)
{
	val_t *v = node_new(MOONPEN__V1__VALUE__KIND_BOOL_VALUE);

	if (v != NULL)
		v->bool_value = b ? 1 : 0;
	return v;
}

val_t *val_new_int(int64_t i)
{
	val_t *v = node_new(MOONPEN__V1__VALUE__KIND_INT_VALUE);

	if (v != NULL)
		v->int_value = i;
	return v;
}

val_t *val_new_float(double d)
{
	val_t *v = node_new(MOONPEN__V1__VALUE__KIND_FLOAT_VALUE);

	if (v != NULL)
		v->float_value = d;
	return v;
}

/* A string with an embedded NUL cannot travel as a protobuf-c string (C strings
 * end at the first NUL), so it becomes bytes_value like invalid UTF-8 does. */
val_t *val_new_string(const char *s, size_t len)
{
	val_t *v;
	char *copy;

	if (memchr(s, '\0', len) != NULL || !val_utf8_valid(s, len))
		return val_new_bytes(s, len);
	v = node_new(MOONPEN__V1__VALUE__KIND_STRING_VALUE);
	copy = malloc(len + 1);
	if (v == NULL || copy == NULL) {
		free(v);
		free(copy);
		return NULL;
	}
	memcpy(copy, s, len);
	copy[len] = '\0';
	v->string_value = copy;
	return v;
}

val_t *val_new_bytes(const void *p, size_t len)
{
	val_t *v = node_new(MOONPEN__V1__VALUE__KIND_BYTES_VALUE);
	uint8_t *copy = malloc(len > 0 ? len : 1);

	if (v == NULL || copy == NULL) {
		free(v);
		free(copy);
		return NULL;
	}
	if (len > 0)
		memcpy(copy, p, len);
	v->bytes_value.data = copy;
	v->bytes_value.len = len;
	return v;
}

val_t *val_new_table(void)
{
	val_t *v = node_new(MOONPEN__V1__VALUE__KIND_TABLE_VALUE);
	Moonpen__V1__Table *t = malloc(sizeof(*t));

	if (v == NULL || t == NULL) {
		free(v);
		free(t);
		return NULL;
	}
	moonpen__v1__table__init(t);
	v->table_value = t;
	return v;
}

static int is_table(const val_t *t)
{
	return t != NULL && t->kind_case == MOONPEN__V1__VALUE__KIND_TABLE_VALUE &&
	       t->table_value != NULL;
}

/* Makes room for one more pointer in *arr (n in use). Arrays may come from
 * protobuf-c's decoder, sized exactly, so the capacity is read from the
 * allocator (glibc's malloc_usable_size) rather than assumed; growth doubles. */
static int grow(void **arr, size_t n, size_t elem)
{
	size_t want = n < 4 ? 4 : n * 2;
	void *p;

	if (*arr != NULL && malloc_usable_size(*arr) / elem > n)
		return 0;
	if (n >= SIZE_MAX / 2 / elem)
		return -ENOMEM;
	p = realloc(*arr, want * elem);
	if (p == NULL)
		return -ENOMEM;
	*arr = p;
	return 0;
}

int val_table_push(val_t *t, val_t *item)
{
	Moonpen__V1__Table *tab;

	if (!is_table(t) || item == NULL)
		return -EINVAL;
	tab = t->table_value;
	if (grow((void **)&tab->array, tab->n_array, sizeof(*tab->array)) < 0)
		return -ENOMEM;
	tab->array[tab->n_array++] = item;
	return 0;
}

int val_table_set(val_t *t, val_t *key, val_t *value)
{
	Moonpen__V1__Table *tab;
	Moonpen__V1__Pair *pair;

	if (!is_table(t) || key == NULL || value == NULL)
		return -EINVAL;
	tab = t->table_value;
	pair = malloc(sizeof(*pair));
	if (pair == NULL)
		return -ENOMEM;
	if (grow((void **)&tab->map, tab->n_map, sizeof(*tab->map)) < 0) {
		free(pair);
		return -ENOMEM;
	}
	moonpen__v1__pair__init(pair);
	pair->key = key;
	pair->value = value;
	tab->map[tab->n_map++] = pair;
	return 0;
}

/* ---- copy and free ------------------------------------------------------------ */

void val_free(val_t *v)
{
	if (v != NULL)
		protobuf_c_message_free_unpacked(&v->base, NULL);
}

static val_t *copy_table(const Moonpen__V1__Table *src)
{
	val_t *t = val_new_table();
	size_t i;

	if (t == NULL)
		return NULL;
	for (i = 0; i < src->n_array; i++) {
		val_t *item = val_copy(src->array[i]);

		if (item == NULL || val_table_push(t, item) < 0) {
			val_free(item);
			goto fail;
		}
	}
	for (i = 0; i < src->n_map; i++) {
		const Moonpen__V1__Pair *p = src->map[i];
		val_t *k = val_copy(p->key);
		val_t *v = val_copy(p->value);

		if (k == NULL || v == NULL || val_table_set(t, k, v) < 0) {
			val_free(k);
			val_free(v);
			goto fail;
		}
	}
	return t;
fail:
	val_free(t);
	return NULL;
}

/* A NULL source copies as nil: an absent Value is nil on the wire too. */
val_t *val_copy(const val_t *v)
{
	if (v == NULL)
		return val_new_nil();
	switch (v->kind_case) {
	case MOONPEN__V1__VALUE__KIND_BOOL_VALUE:
		return val_new_bool(v->bool_value);
	case MOONPEN__V1__VALUE__KIND_INT_VALUE:
		return val_new_int(v->int_value);
	case MOONPEN__V1__VALUE__KIND_FLOAT_VALUE:
		return val_new_float(v->float_value);
	case MOONPEN__V1__VALUE__KIND_STRING_VALUE: {
		const char *s = v->string_value != NULL ? v->string_value : "";
		return val_new_string(s, strlen(s));
	}
	case MOONPEN__V1__VALUE__KIND_BYTES_VALUE:
		return val_new_bytes(v->bytes_value.data, v->bytes_value.len);
	case MOONPEN__V1__VALUE__KIND_TABLE_VALUE:
		if (v->table_value == NULL)
			return val_new_table();
		return copy_table(v->table_value);
	default:
		return val_new_nil();
	}
}

/* ---- UTF-8 ---------------------------------------------------------------------- */

/* Length of the sequence starting at lead byte c, with the allowed range of
 * its second byte (excluding overlongs, surrogates and code points > U+10FFFF). */
static int utf8_lead(unsigned char c, unsigned char *lo, unsigned char *hi)
{
	*lo = 0x80;
	*hi = 0xBF;
	if (c >= 0xC2 && c <= 0xDF)
		return 2;
	if (c >= 0xE0 && c <= 0xEF) {
		if (c == 0xE0)
			*lo = 0xA0; /* overlong */
		if (c == 0xED)
			*hi = 0x9F; /* surrogates */
		return 3;
	}
	if (c >= 0xF0 && c <= 0xF4) {
		if (c == 0xF0)
			*lo = 0x90; /* overlong */
		if (c == 0xF4)
			*hi = 0x8F; /* > U+10FFFF */
		return 4;
	}
	return 0;
}

/* Length of the valid UTF-8 sequence at p[0..left) (1 for ASCII), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t left)
{
	unsigned char lo, hi;
	int n, k;

	if (p[0] < 0x80)
		return 1;
	n = utf8_lead(p[0], &lo, &hi);
	if (n == 0 || left < (size_t)n || p[1] < lo || p[1] > hi)
		return 0;
	for (k = 2; k < n; k++)
		if (p[k] < 0x80 || p[k] > 0xBF)
			return 0;
	return (size_t)n;
}

int val_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n;

	while (i < len) {
		n = utf8_seq(p + i, len - i);
		if (n == 0)
			return 0;
		i += n;
	}
	return 1;
}

void val_utf8_scrub(char *s)
{
	unsigned char *p = (unsigned char *)s;
	size_t left = s ? strlen(s) : 0, n;

	while (left > 0) {
		n = utf8_seq(p, left);
		if (n == 0) {
			*p = '?';
			n = 1;
		}
		p += n;
		left -= n;
	}
}

/* ---- checking untrusted trees ------------------------------------------------ */

struct check {
	unsigned max_depth;
	size_t nodes;
	diag_path path;
	char *err;
	size_t errlen;
};

static int check_fail(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int check_fail(struct check *c, const char *fmt, ...)
{
	char what[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (c->errlen > 0)
		snprintf(c->err, c->errlen, "%s: %s", diag_path_str(&c->path), what);
	return -EINVAL;
}

/* Appends a path segment; returns the old length for path_pop(). A path that
 * would overflow ends in "..." and stays that way below. */

static int is_ident(const char *s)
{
	size_t i;

	if (s[0] == '\0' || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (i = 0; s[i] != '\0'; i++) {
		char ch = s[i];

		if (i >= 48)
			return 0;
		if (!(ch == '_' || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9')))
			return 0;
	}
	return 1;
}

/* The path segment that names the value stored under a (valid, scalar) key. */
static size_t push_key(struct check *c, const val_t *k)
{
	switch (k->kind_case) {
	case MOONPEN__V1__VALUE__KIND_INT_VALUE:
		return diag_path_push(&c->path, "[%lld]", (long long)k->int_value);
	case MOONPEN__V1__VALUE__KIND_FLOAT_VALUE:
		return diag_path_push(&c->path, "[%.17g]", k->float_value);
	case MOONPEN__V1__VALUE__KIND_BOOL_VALUE:
		return diag_path_push(&c->path, "[%s]", k->bool_value ? "true" : "false");
	case MOONPEN__V1__VALUE__KIND_STRING_VALUE:
		if (is_ident(k->string_value))
			return diag_path_push(&c->path, "%s%s", c->path.len > 0 ? "." : "",
					      k->string_value);
		return diag_path_push(&c->path, "[\"%.32s\"]", k->string_value);
	default:
		return diag_path_push(&c->path, "[<bytes>]");
	}
}

static int check_node(struct check *c, const val_t *v, unsigned depth);

/* A key must be a scalar, not nil, not NaN; it is checked like a value. */
static int check_key(struct check *c, const Moonpen__V1__Pair *p, size_t i)
{
	const val_t *k = p->key;
	size_t old;
	int r;

	if (k == NULL || k->kind_case == MOONPEN__V1__VALUE__KIND__NOT_SET ||
	    k->kind_case == MOONPEN__V1__VALUE__KIND_NIL_VALUE)
		return check_fail(c, "map key %zu is nil", i + 1);
	if (k->kind_case == MOONPEN__V1__VALUE__KIND_TABLE_VALUE)
		return check_fail(c, "map key %zu is a table", i + 1);
	if (k->kind_case == MOONPEN__V1__VALUE__KIND_FLOAT_VALUE && isnan(k->float_value))
		return check_fail(c, "map key %zu is NaN", i + 1);
	old = diag_path_push(&c->path, "{key %zu}", i + 1);
	r = check_node(c, k, 0);
	diag_path_pop(&c->path, old);
	return r;
}

static int check_table(struct check *c, const Moonpen__V1__Table *t, unsigned depth)
{
	size_t i, old;
	int r;

	if ((t->n_array > 0 && t->array == NULL) || (t->n_map > 0 && t->map == NULL))
		return check_fail(c, "malformed table");
	for (i = 0; i < t->n_array; i++) {
		old = diag_path_push(&c->path, "[%zu]", i + 1);
		r = check_node(c, t->array[i], depth);
		diag_path_pop(&c->path, old);
		if (r < 0)
			return r;
	}
	for (i = 0; i < t->n_map; i++) {
		const Moonpen__V1__Pair *p = t->map[i];

		if (p == NULL)
			return check_fail(c, "map entry %zu is absent", i + 1);
		r = check_key(c, p, i);
		if (r < 0)
			return r;
		old = push_key(c, p->key);
		r = check_node(c, p->value, depth);
		diag_path_pop(&c->path, old);
		if (r < 0)
			return r;
	}
	return 0;
}

/* depth: tables enclosing v. */
static int check_node(struct check *c, const val_t *v, unsigned depth)
{
	if (++c->nodes > VAL_MAX_NODES)
		return check_fail(c, "value has more than %d nodes", VAL_MAX_NODES);
	if (v == NULL)
		return check_fail(c, "value is absent");
	switch (v->kind_case) {
	case MOONPEN__V1__VALUE__KIND__NOT_SET:
	case MOONPEN__V1__VALUE__KIND_NIL_VALUE:
	case MOONPEN__V1__VALUE__KIND_BOOL_VALUE:
	case MOONPEN__V1__VALUE__KIND_INT_VALUE:
	case MOONPEN__V1__VALUE__KIND_FLOAT_VALUE:
		return 0;
	case MOONPEN__V1__VALUE__KIND_STRING_VALUE:
		if (v->string_value == NULL)
			return check_fail(c, "malformed string");
		if (!val_utf8_valid(v->string_value, strlen(v->string_value)))
			return check_fail(c, "string_value is not valid UTF-8");
		return 0;
	case MOONPEN__V1__VALUE__KIND_BYTES_VALUE:
		if (v->bytes_value.len > 0 && v->bytes_value.data == NULL)
			return check_fail(c, "malformed bytes");
		return 0;
	case MOONPEN__V1__VALUE__KIND_TABLE_VALUE:
		if (v->table_value == NULL)
			return check_fail(c, "malformed table");
		if (depth + 1 > c->max_depth)
			return check_fail(c, "tables nested deeper than %u", c->max_depth);
		return check_table(c, v->table_value, depth + 1);
	default:
		return check_fail(c, "unknown value kind %d", (int)v->kind_case);
	}
}

int val_check(const val_t *v, unsigned max_depth, char *err, size_t errlen)
{
	struct check c;

	memset(&c, 0, sizeof(c));
	c.max_depth = max_depth;
	c.err = err;
	c.errlen = errlen;
	if (errlen > 0)
		err[0] = '\0';
	if (v == NULL)
		return 0; /* an absent optional Value (a payload) is nil */
	return check_node(&c, v, 0);
}

/* ---- equality ---------------------------------------------------------------------- */

static int is_nil(const val_t *v)
{
	return v == NULL || v->kind_case == MOONPEN__V1__VALUE__KIND__NOT_SET ||
	       v->kind_case == MOONPEN__V1__VALUE__KIND_NIL_VALUE;
}

static int table_equal(const Moonpen__V1__Table *a, const Moonpen__V1__Table *b)
{
	size_t i;

	if (a == NULL || b == NULL)
		return a == b;
	if (a->n_array != b->n_array || a->n_map != b->n_map)
		return 0;
	for (i = 0; i < a->n_array; i++)
		if (!val_equal(a->array[i], b->array[i]))
			return 0;
	for (i = 0; i < a->n_map; i++) {
		if (a->map[i] == NULL || b->map[i] == NULL) {
			if (a->map[i] != b->map[i])
				return 0;
			continue;
		}
		if (!val_equal(a->map[i]->key, b->map[i]->key) ||
		    !val_equal(a->map[i]->value, b->map[i]->value))
			return 0;
	}
	return 1;
}

/* Absent and nil are the same value; two NaNs are equal (a copy equals its source). */
int val_equal(const val_t *a, const val_t *b)
{
	if (is_nil(a) || is_nil(b))
		return is_nil(a) && is_nil(b);
	if (a->kind_case != b->kind_case)
		return 0;
	switch (a->kind_case) {
	case MOONPEN__V1__VALUE__KIND_BOOL_VALUE:
		return !a->bool_value == !b->bool_value;
	case MOONPEN__V1__VALUE__KIND_INT_VALUE:
		return a->int_value == b->int_value;
	case MOONPEN__V1__VALUE__KIND_FLOAT_VALUE:
		return a->float_value == b->float_value ||
		       (isnan(a->float_value) && isnan(b->float_value));
	case MOONPEN__V1__VALUE__KIND_STRING_VALUE:
		if (a->string_value == NULL || b->string_value == NULL)
			return a->string_value == b->string_value;
		return strcmp(a->string_value, b->string_value) == 0;
	case MOONPEN__V1__VALUE__KIND_BYTES_VALUE:
		return a->bytes_value.len == b->bytes_value.len &&
		       (a->bytes_value.len == 0 ||
			memcmp(a->bytes_value.data, b->bytes_value.data, a->bytes_value.len) == 0);
	case MOONPEN__V1__VALUE__KIND_TABLE_VALUE:
		return table_equal(a->table_value, b->table_value);
	default:
		return 0;
	}
}
