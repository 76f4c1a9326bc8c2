/*
 * val_json — moonpen.v1.Value trees to and from JSON (see val_json.h for the
 * mapping and what it loses). Runs in moonpenctl, the supervisor's HTTP side
 * and tests; JSON text is untrusted: nesting is bounded and base64 checked.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/val_json.h"

#include "common/diag.h"

#define VJSON_BYTES_KEY "$bytes"

/* ---- JSON → Value ---------------------------------------------------------------- */

struct conv {
	unsigned max_depth;
	diag_path path;
	char *err;
	size_t errlen;
};

static int conv_fail(struct conv *c, int r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int conv_fail(struct conv *c, int r, const char *fmt, ...)
{
	char what[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (c->errlen > 0)
		snprintf(c->err, c->errlen, "%s: %s", diag_path_str(&c->path), what);
	return r;
}

static int from_json(struct conv *c, const json_t *j, unsigned depth, val_t **out);

static int from_array(struct conv *c, const json_t *j, unsigned depth, val_t *t)
{
	size_t i, old;
	int r;

	for (i = 0; i < json_array_size(j); i++) {
		val_t *item = NULL;

		old = diag_path_push(&c->path, "[%zu]", i + 1);
		r = from_json(c, json_array_get(j, i), depth, &item);
		diag_path_pop(&c->path, old);
		if (r < 0)
			return r;
		if (val_table_push(t, item) < 0) {
			val_free(item);
			return conv_fail(c, -ENOMEM, "out of memory");
		}
	}
	return 0;
}

static int cmp_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int from_member(struct conv *c, const json_t *obj, const char *k, unsigned depth, val_t *t)
{
	val_t *key = val_new_string(k, strlen(k)), *value = NULL;
	size_t old;
	int r;

	if (key == NULL)
		return conv_fail(c, -ENOMEM, "out of memory");
	old = diag_path_push(&c->path, "%s%s", c->path.len > 0 ? "." : "", k);
	r = from_json(c, json_object_get(obj, k), depth, &value);
	diag_path_pop(&c->path, old);
	if (r < 0)
		goto out;
	r = val_table_set(t, key, value);
	if (r < 0)
		r = conv_fail(c, -ENOMEM, "out of memory");
out:
	if (r < 0) {
		val_free(key);
		val_free(value);
	}
	return r;
}

/* Members in bytewise key order, so the same object always gives the same tree. */
static int from_object(struct conv *c, const json_t *j, unsigned depth, val_t *t)
{
	size_t n = json_object_size(j), i = 0;
	const char **keys;
	const char *k;
	json_t *v;
	int r = 0;

	if (n == 0)
		return 0;
	keys = calloc(n, sizeof(*keys));
	if (keys == NULL)
		return conv_fail(c, -ENOMEM, "out of memory");
	json_object_foreach((json_t *)j, k, v)
	{
		(void)v;
		if (i < n)
			keys[i++] = k;
	}
	qsort(keys, i, sizeof(*keys), cmp_keys);
	for (n = i, i = 0; i < n && r == 0; i++)
		r = from_member(c, j, keys[i], depth, t);
	free(keys);
	return r;
}

static int from_bytes(struct conv *c, const json_t *s, val_t **out)
{
	const char *b64 = json_string_value(s), *end = NULL;
	size_t len = json_string_length(s), binlen = 0;
	unsigned char *bin = malloc(len / 4 * 3 + 3);
	int r = 0;

	if (bin == NULL)
		return conv_fail(c, -ENOMEM, "out of memory");
	if (sodium_base642bin(bin, len / 4 * 3 + 3, b64, len, NULL, &binlen, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != b64 + len) {
		r = conv_fail(c, -EINVAL, "$bytes is not valid base64");
		goto out;
	}
	*out = val_new_bytes(bin, binlen);
	if (*out == NULL)
		r = conv_fail(c, -ENOMEM, "out of memory");
out:
	free(bin);
	return r;
}

static int from_container(struct conv *c, const json_t *j, unsigned depth, val_t **out)
{
	const json_t *b = json_object_get(j, VJSON_BYTES_KEY);
	val_t *t;
	int r;

	if (json_is_object(j) && json_object_size(j) == 1 && json_is_string(b))
		return from_bytes(c, b, out);
	if (depth + 1 > c->max_depth)
		return conv_fail(c, -EINVAL, "tables nested deeper than %u", c->max_depth);
	t = val_new_table();
	if (t == NULL)
		return conv_fail(c, -ENOMEM, "out of memory");
	if (json_is_array(j))
		r = from_array(c, j, depth + 1, t);
	else
		r = from_object(c, j, depth + 1, t);
	if (r < 0) {
		val_free(t);
		return r;
	}
	*out = t;
	return 0;
}

/* depth: tables enclosing j. */
static int from_json(struct conv *c, const json_t *j, unsigned depth, val_t **out)
{
	val_t *v = NULL;

	switch (json_typeof(j)) {
	case JSON_OBJECT:
	case JSON_ARRAY:
		return from_container(c, j, depth, out);
	case JSON_STRING:
		v = val_new_string(json_string_value(j), json_string_length(j));
		break;
	case JSON_INTEGER:
		v = val_new_int((int64_t)json_integer_value(j));
		break;
	case JSON_REAL:
		v = val_new_float(json_real_value(j));
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		v = val_new_bool(json_is_true(j));
		break;
	case JSON_NULL:
		v = val_new_nil();
		break;
	}
	if (v == NULL)
		return conv_fail(c, -ENOMEM, "out of memory");
	*out = v;
	return 0;
}

int vjson_from_json(const json_t *j, unsigned max_depth, val_t **out, char *err, size_t errlen)
{
	struct conv c;

	memset(&c, 0, sizeof(c));
	c.max_depth = max_depth;
	c.err = err;
	c.errlen = errlen;
	if (errlen > 0)
		err[0] = '\0';
	*out = NULL;
	if (j == NULL)
		return conv_fail(&c, -EINVAL, "no JSON value");
	return from_json(&c, j, 0, out);
}

int vjson_parse(const char *text, unsigned max_depth, val_t **out, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *j;
	int r;

	*out = NULL;
	j = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	/* jansson reports an allocation failure before the first token with no text */
	if (j == NULL &&
	    (json_error_code(&jerr) == json_error_out_of_memory || jerr.text[0] == '\0')) {
		if (errlen > 0)
			snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (j == NULL) {
		if (errlen > 0)
			snprintf(err, errlen, "JSON line %d column %d: %s", jerr.line, jerr.column,
				 jerr.text);
		return -EINVAL;
	}
	r = vjson_from_json(j, max_depth, out, err, errlen);
	json_decref(j);
	return r;
}

/* ---- Value → JSON ---------------------------------------------------------------- */

static char *base64(const uint8_t *p, size_t len)
{
	size_t n = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *s = malloc(n);

	if (s != NULL)
		sodium_bin2base64(s, n, p, len, sodium_base64_VARIANT_ORIGINAL);
	return s;
}

static json_t *bytes_to_json(const ProtobufCBinaryData *b)
{
	char *s = base64(b->data, b->len);
	json_t *o;

	if (s == NULL)
		return NULL;
	o = json_pack("{s:s}", VJSON_BYTES_KEY, s);
	free(s);
	return o;
}

/* The string form of a map key (malloc'd), or NULL for keys that have none
 * (nil, NaN, tables) and when out of memory; *skip tells the two apart. */
static char *key_string(const val_t *k, int *skip)
{
	char *s = NULL;

	*skip = 0;
	switch (k != NULL ? k->kind_case : MOONPEN__V1__VALUE__KIND__NOT_SET) {
	case MOONPEN__V1__VALUE__KIND_STRING_VALUE:
		return strdup(k->string_value != NULL ? k->string_value : "");
	case MOONPEN__V1__VALUE__KIND_INT_VALUE:
		return asprintf(&s, "%lld", (long long)k->int_value) < 0 ? NULL : s;
	case MOONPEN__V1__VALUE__KIND_FLOAT_VALUE:
		if (isnan(k->float_value))
			break;
		return asprintf(&s, "%.17g", k->float_value) < 0 ? NULL : s;
	case MOONPEN__V1__VALUE__KIND_BOOL_VALUE:
		return strdup(k->bool_value ? "true" : "false");
	case MOONPEN__V1__VALUE__KIND_BYTES_VALUE:
		return base64(k->bytes_value.data, k->bytes_value.len);
	default:
		break;
	}
	*skip = 1;
	return NULL;
}

static int object_add_array(json_t *o, const Moonpen__V1__Table *t)
{
	char key[24];
	size_t i;

	for (i = 0; i < t->n_array; i++) {
		snprintf(key, sizeof(key), "%zu", i + 1);
		if (json_object_set_new(o, key, vjson_to_json(t->array[i])) < 0)
			return -ENOMEM;
	}
	return 0;
}

static json_t *table_to_object(const Moonpen__V1__Table *t)
{
	json_t *o = json_object();
	size_t i;

	if (o == NULL || object_add_array(o, t) < 0)
		goto fail;
	for (i = 0; i < t->n_map; i++) {
		const Moonpen__V1__Pair *p = t->map[i];
		int skip = 0;
		char *k = p != NULL ? key_string(p->key, &skip) : NULL;
		int r;

		if (p == NULL || skip)
			continue;
		if (k == NULL)
			goto fail;
		r = json_object_set_new(o, k, vjson_to_json(p->value));
		free(k);
		if (r < 0)
			goto fail;
	}
	return o;
fail:
	json_decref(o);
	return NULL;
}

static json_t *table_to_json(const Moonpen__V1__Table *t)
{
	json_t *a;
	size_t i;

	if (t == NULL)
		return json_array();
	if (t->n_map > 0)
		return table_to_object(t);
	a = json_array();
	for (i = 0; a != NULL && i < t->n_array; i++) {
		if (json_array_append_new(a, vjson_to_json(t->array[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

json_t *vjson_to_json(const val_t *v)
{
	switch (v != NULL ? v->kind_case : MOONPEN__V1__VALUE__KIND__NOT_SET) {
	case MOONPEN__V1__VALUE__KIND_BOOL_VALUE:
		return json_boolean(v->bool_value);
	case MOONPEN__V1__VALUE__KIND_INT_VALUE:
		return json_integer((json_int_t)v->int_value);
	case MOONPEN__V1__VALUE__KIND_FLOAT_VALUE:
		if (!isfinite(v->float_value))
			return json_null(); /* JSON cannot spell NaN or inf */
		return json_real(v->float_value);
	case MOONPEN__V1__VALUE__KIND_STRING_VALUE: {
		const char *s = v->string_value != NULL ? v->string_value : "";
		ProtobufCBinaryData b = {strlen(s), (uint8_t *)s};

		/* an unchecked tree may carry bad UTF-8, which JSON strings cannot */
		if (!val_utf8_valid(s, b.len))
			return bytes_to_json(&b);
		return json_stringn(s, b.len);
	}
	case MOONPEN__V1__VALUE__KIND_BYTES_VALUE:
		return bytes_to_json(&v->bytes_value);
	case MOONPEN__V1__VALUE__KIND_TABLE_VALUE:
		return table_to_json(v->table_value);
	default:
		return json_null();
	}
}
