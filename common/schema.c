/*
 * schema — parse the operator's host API schema and check host-call arguments.
 *
 * Runs in the worker and in tools. The schema is operator configuration
 * (trusted, still validated field by field); the values checked against it
 * come from scripts (hostile: any shape, any depth the luaval bound allows).
 * The format is described in schema.h.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/diag.h"
#include "common/jsonx.h"
#include "common/schema.h"

#define PATH_MAX_LEN 256

static const char *const reserved[] = {
    "state", "ev",	  "timer", "rand", "log",  "clock", "drop", "string",
    "table", "coroutine", "math",  "utf8", "host", "_G",    "_ENV", NULL,
};

static void subpath(char dst[PATH_MAX_LEN], const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Error paths are cut at PATH_MAX_LEN: long names only shorten the message. */
static void subpath(char dst[PATH_MAX_LEN], const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, PATH_MAX_LEN, fmt, ap);
	va_end(ap);
}

static int is_ident(const char *s, int lower_only)
{
	size_t n = strlen(s);

	if (n < 1 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int alpha =
		    (c >= 'a' && c <= 'z') || c == '_' || (!lower_only && c >= 'A' && c <= 'Z');
		if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
			return 0;
	}
	return 1;
}

/* ---- freeing ------------------------------------------------------------------- */

static void type_free(sch_type *t)
{
	if (t == NULL)
		return;
	type_free(t->elem);
	for (size_t i = 0; i < t->n_fields; i++) {
		free(t->fields[i].name);
		type_free(t->fields[i].type);
	}
	free(t->fields);
	free(t);
}

static void fn_free(sch_fn *f)
{
	free(f->name);
	free(f->description);
	for (size_t i = 0; i < f->n_params; i++) {
		free(f->params[i].name);
		free(f->params[i].description);
		type_free(f->params[i].type);
	}
	free(f->params);
	type_free(f->variadic);
	type_free(f->returns);
}

void sch_free(sch_schema *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n_apis; i++) {
		for (size_t j = 0; j < s->apis[i].n_fns; j++)
			fn_free(&s->apis[i].fns[j]);
		free(s->apis[i].fns);
		free(s->apis[i].name);
		free(s->apis[i].description);
	}
	free(s->apis);
	free(s);
}

/* ---- parsing types ------------------------------------------------------------- */

static const char *const kind_names[] = {
    [SCH_STRING] = "string",   [SCH_INTEGER] = "integer", [SCH_NUMBER] = "number",
    [SCH_BOOLEAN] = "boolean", [SCH_TABLE] = "table",	  [SCH_ANY] = "any",
    [SCH_RECORD] = "record",   [SCH_LIST] = "list",	  [SCH_OPTIONAL] = "optional",
};

static int parse_type(json_t *j, const char *path, unsigned depth, sch_type **out, char *err,
		      size_t errlen);

static sch_type *type_new(sch_kind k)
{
	sch_type *t = calloc(1, sizeof(*t));

	if (t != NULL)
		t->kind = k;
	return t;
}

static int field_cmp(const void *a, const void *b)
{
	return strcmp(((const sch_field *)a)->name, ((const sch_field *)b)->name);
}

static int parse_record(json_t *obj, const char *path, unsigned depth, sch_type *t, char *err,
			size_t errlen)
{
	char sub[PATH_MAX_LEN];
	const char *key;
	json_t *v;
	int r;

	if (!json_is_object(obj))
		return diag_fail(err, errlen, "%s.record: expected an object of fields", path);
	t->fields = calloc(json_object_size(obj) + 1, sizeof(*t->fields));
	if (t->fields == NULL)
		return -ENOMEM;
	json_object_foreach(obj, key, v)
	{
		subpath(sub, "%s.record.%s", path, key);
		if (!is_ident(key, 0))
			return diag_fail(err, errlen, "%s: field names must be identifiers", sub);
		t->fields[t->n_fields].name = strdup(key);
		if (t->fields[t->n_fields].name == NULL)
			return -ENOMEM;
		t->n_fields++;
		r = parse_type(v, sub, depth + 1, &t->fields[t->n_fields - 1].type, err, errlen);
		if (r < 0)
			return r;
	}
	qsort(t->fields, t->n_fields, sizeof(*t->fields), field_cmp);
	return 0;
}

static int parse_compound(json_t *j, const char *path, unsigned depth, sch_type **out, char *err,
			  size_t errlen)
{
	char sub[PATH_MAX_LEN];
	const char *key = NULL;
	json_t *v = NULL;
	sch_type *t;

	if (json_object_size(j) != 1)
		return diag_fail(err, errlen,
				 "%s: a compound type has exactly one of record, list, "
				 "optional",
				 path);
	json_object_foreach(j, key, v)
	{
		break;
	}
	if (strcmp(key, "record") != 0 && strcmp(key, "list") != 0 && strcmp(key, "optional") != 0)
		return diag_fail(err, errlen, "%s: unknown compound type \"%s\"", path, key);
	t = type_new(key[0] == 'r' ? SCH_RECORD : key[0] == 'l' ? SCH_LIST : SCH_OPTIONAL);
	if (t == NULL)
		return -ENOMEM;
	*out = t;
	if (t->kind == SCH_RECORD)
		return parse_record(v, path, depth, t, err, errlen);
	subpath(sub, "%s.%s", path, key);
	return parse_type(v, sub, depth + 1, &t->elem, err, errlen);
}

/* *out is set as soon as it is allocated, so the caller frees partial trees. */
static int parse_type(json_t *j, const char *path, unsigned depth, sch_type **out, char *err,
		      size_t errlen)
{
	*out = NULL;
	if (depth > SCH_MAX_DEPTH)
		return diag_fail(err, errlen, "%s: types nest deeper than %d", path, SCH_MAX_DEPTH);
	if (json_is_object(j))
		return parse_compound(j, path, depth, out, err, errlen);
	if (!json_is_string(j))
		return diag_fail(err, errlen, "%s: expected a type name or a compound type", path);
	for (int k = SCH_STRING; k <= SCH_ANY; k++) {
		if (strcmp(json_string_value(j), kind_names[k]) == 0) {
			*out = type_new((sch_kind)k);
			return *out == NULL ? -ENOMEM : 0;
		}
	}
	return diag_fail(err, errlen, "%s: unknown type \"%s\"", path, json_string_value(j));
}

/* Wraps *t into {"optional": *t} unless it already accepts nil. */
static int make_optional(sch_type **t)
{
	sch_type *o;

	if ((*t)->kind == SCH_OPTIONAL)
		return 0;
	o = type_new(SCH_OPTIONAL);
	if (o == NULL)
		return -ENOMEM;
	o->elem = *t;
	*t = o;
	return 0;
}

/* ---- parsing functions and APIs ---------------------------------------------- */

/* Copies obj.description (optional, a string) into *out. */
static int parse_description(json_t *obj, const char *path, char **out, char *err, size_t errlen)
{
	json_t *d = json_object_get(obj, "description");

	if (d == NULL)
		return 0;
	if (!json_is_string(d))
		return diag_fail(err, errlen, "%s.description: expected a string", path);
	*out = strdup(json_string_value(d));
	return *out == NULL ? -ENOMEM : 0;
}

static int parse_param(json_t *p, const char *path, sch_fn *f, char *err, size_t errlen)
{
	static const char *const keys[] = {"name", "type", "optional", "description", NULL};
	json_t *name = json_object_get(p, "name"), *opt = json_object_get(p, "optional");
	char sub[PATH_MAX_LEN];
	sch_param *pa = &f->params[f->n_params];
	int r;

	if (!json_is_object(p))
		return diag_fail(err, errlen, "%s: expected an object {name, type}", path);
	r = jsonx_check_keys(p, keys, path, err, errlen);
	if (r < 0)
		return r;
	if (!json_is_string(name) || !is_ident(json_string_value(name), 0))
		return diag_fail(err, errlen, "%s.name: expected an identifier", path);
	if (opt != NULL && !json_is_boolean(opt))
		return diag_fail(err, errlen, "%s.optional: expected a boolean", path);
	pa->name = strdup(json_string_value(name));
	if (pa->name == NULL)
		return -ENOMEM;
	f->n_params++;
	r = parse_description(p, path, &pa->description, err, errlen);
	if (r < 0)
		return r;
	if (json_object_get(p, "type") == NULL)
		return diag_fail(err, errlen, "%s.type: missing", path);
	subpath(sub, "%s.type", path);
	r = parse_type(json_object_get(p, "type"), sub, 1, &pa->type, err, errlen);
	if (r == 0 && json_is_true(opt))
		r = make_optional(&pa->type);
	if (r == 0 && f->n_params > 1 && pa[-1].type->kind == SCH_OPTIONAL &&
	    pa->type->kind != SCH_OPTIONAL)
		r = diag_fail(err, errlen, "%s: a required parameter cannot follow an optional one",
			      path);
	return r;
}

static int parse_params(json_t *a, const char *path, sch_fn *f, char *err, size_t errlen)
{
	char sub[PATH_MAX_LEN];
	size_t i;
	json_t *p;
	int r;

	if (a == NULL)
		return 0;
	if (!json_is_array(a) || json_array_size(a) > SCH_MAX_PARAMS)
		return diag_fail(err, errlen,
				 "%s.params: expected an array of at most %d parameters", path,
				 SCH_MAX_PARAMS);
	f->params = calloc(json_array_size(a) + 1, sizeof(*f->params));
	if (f->params == NULL)
		return -ENOMEM;
	json_array_foreach(a, i, p)
	{
		subpath(sub, "%s.params[%zu]", path, i + 1);
		r = parse_param(p, sub, f, err, errlen);
		if (r < 0)
			return r;
		for (size_t k = 0; k < i; k++)
			if (strcmp(f->params[k].name, f->params[i].name) == 0)
				return diag_fail(err, errlen, "%s.name: \"%s\" is used twice", sub,
						 f->params[i].name);
	}
	return 0;
}

static int parse_fn(json_t *j, const char *path, sch_fn *f, char *err, size_t errlen)
{
	static const char *const keys[] = {"kind",    "params",	     "variadic",
					   "returns", "description", NULL};
	json_t *kind = json_object_get(j, "kind");
	char sub[PATH_MAX_LEN];
	int r;

	if (!json_is_object(j))
		return diag_fail(err, errlen, "%s: expected an object", path);
	r = jsonx_check_keys(j, keys, path, err, errlen);
	if (r < 0)
		return r;
	if (!json_is_string(kind) || (strcmp(json_string_value(kind), "effect") != 0 &&
				      strcmp(json_string_value(kind), "query") != 0))
		return diag_fail(err, errlen, "%s.kind: expected \"effect\" or \"query\"", path);
	f->kind = strcmp(json_string_value(kind), "query") == 0 ? SCH_QUERY : SCH_EFFECT;
	r = parse_description(j, path, &f->description, err, errlen);
	if (r == 0)
		r = parse_params(json_object_get(j, "params"), path, f, err, errlen);
	if (r == 0 && json_object_get(j, "variadic") != NULL) {
		subpath(sub, "%s.variadic", path);
		r = parse_type(json_object_get(j, "variadic"), sub, 1, &f->variadic, err, errlen);
	}
	if (r == 0 && json_object_get(j, "returns") != NULL) {
		subpath(sub, "%s.returns", path);
		r = parse_type(json_object_get(j, "returns"), sub, 1, &f->returns, err, errlen);
	}
	return r;
}

static int fn_cmp(const void *a, const void *b)
{
	return strcmp(((const sch_fn *)a)->name, ((const sch_fn *)b)->name);
}

static int parse_class(json_t *c, const char *path, sch_api *a, char *err, size_t errlen)
{
	const char *s = json_is_string(c) ? json_string_value(c) : "";

	if (strcmp(s, "deterministic") == 0)
		a->cls = SCH_DETERMINISTIC;
	else if (strcmp(s, "nondeterministic") == 0)
		a->cls = SCH_NONDETERMINISTIC;
	else if (strcmp(s, "io") == 0)
		a->cls = SCH_IO;
	else
		return diag_fail(
		    err, errlen,
		    "%s.class: expected \"deterministic\", \"nondeterministic\" or \"io\"", path);
	return 0;
}

static int parse_api(json_t *j, const char *path, sch_api *a, char *err, size_t errlen)
{
	static const char *const keys[] = {"class", "functions", "description", NULL};
	json_t *fns = json_object_get(j, "functions"), *v;
	char sub[PATH_MAX_LEN];
	const char *key;
	int r;

	if (!json_is_object(j))
		return diag_fail(err, errlen, "%s: expected an object", path);
	r = jsonx_check_keys(j, keys, path, err, errlen);
	if (r == 0)
		r = parse_class(json_object_get(j, "class"), path, a, err, errlen);
	if (r == 0)
		r = parse_description(j, path, &a->description, err, errlen);
	if (r == 0 && !json_is_object(fns))
		r = diag_fail(err, errlen, "%s.functions: expected an object", path);
	if (r < 0)
		return r;
	a->fns = calloc(json_object_size(fns) + 1, sizeof(*a->fns));
	if (a->fns == NULL)
		return -ENOMEM;
	json_object_foreach(fns, key, v)
	{
		subpath(sub, "%s.functions.%s", path, key);
		if (!is_ident(key, 0))
			return diag_fail(err, errlen, "%s: function names must be identifiers",
					 sub);
		a->fns[a->n_fns].name = strdup(key);
		if (a->fns[a->n_fns].name == NULL)
			return -ENOMEM;
		r = parse_fn(v, sub, &a->fns[a->n_fns++], err, errlen);
		if (r < 0)
			return r;
	}
	qsort(a->fns, a->n_fns, sizeof(*a->fns), fn_cmp);
	return 0;
}

static int api_cmp(const void *a, const void *b)
{
	return strcmp(((const sch_api *)a)->name, ((const sch_api *)b)->name);
}

static int check_api_name(const char *key, const char *path, char *err, size_t errlen)
{
	if (!is_ident(key, 1))
		return diag_fail(err, errlen, "%s: API names must match [a-z_][a-z0-9_]*", path);
	for (const char *const *r = reserved; *r != NULL; r++)
		if (strcmp(*r, key) == 0)
			return diag_fail(err, errlen,
					 "%s: \"%s\" is reserved for a built-in module", path, key);
	return 0;
}

static int parse_root(json_t *root, sch_schema *s, char *err, size_t errlen)
{
	static const char *const keys[] = {"version", "apis", "description", NULL};
	json_t *apis = json_object_get(root, "apis"), *v;
	char sub[PATH_MAX_LEN];
	const char *key;
	int r;

	if (!json_is_object(root))
		return diag_fail(err, errlen, "schema: expected a JSON object");
	r = jsonx_check_keys(root, keys, "schema", err, errlen);
	if (r < 0)
		return r;
	r = jsonx_check_v1(root, err, errlen);
	if (r < 0)
		return r;
	s->version = 1;
	if (!json_is_object(apis))
		return diag_fail(err, errlen, "apis: expected an object");
	s->apis = calloc(json_object_size(apis) + 1, sizeof(*s->apis));
	if (s->apis == NULL)
		return -ENOMEM;
	json_object_foreach(apis, key, v)
	{
		subpath(sub, "apis.%s", key);
		r = check_api_name(key, sub, err, errlen);
		if (r < 0)
			return r;
		s->apis[s->n_apis].name = strdup(key);
		if (s->apis[s->n_apis].name == NULL)
			return -ENOMEM;
		r = parse_api(v, sub, &s->apis[s->n_apis++], err, errlen);
		if (r < 0)
			return r;
	}
	qsort(s->apis, s->n_apis, sizeof(*s->apis), api_cmp);
	return 0;
}

int sch_parse(const char *json, size_t len, sch_schema **out, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root = NULL;
	sch_schema *s;
	int r;

	*out = NULL;
	if (errlen > 0)
		err[0] = '\0';
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	if (len == 0) {
		s->version = 1;
		*out = s;
		return 0;
	}
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	/* jansson reports an allocation failure before the first token with no text */
	if (root == NULL &&
	    (json_error_code(&jerr) == json_error_out_of_memory || jerr.text[0] == '\0')) {
		diag_fail(err, errlen, "out of memory");
		r = -ENOMEM; /* not the operator's fault: never "not valid JSON" */
		goto out;
	}
	if (root == NULL) {
		r = diag_fail(err, errlen, "schema is not valid JSON: %s (line %d, column %d)",
			      jerr.text, jerr.line, jerr.column);
		goto out;
	}
	r = parse_root(root, s, err, errlen);
	if (r == -ENOMEM)
		diag_fail(err, errlen, "out of memory");
out:
	json_decref(root);
	if (r < 0)
		sch_free(s);
	else
		*out = s;
	return r;
}

/* ---- lookups --------------------------------------------------------------------- */

const sch_api *sch_api_find(const sch_schema *s, const char *name)
{
	sch_api key = {.name = (char *)name};

	if (s == NULL || s->n_apis == 0)
		return NULL;
	return bsearch(&key, s->apis, s->n_apis, sizeof(*s->apis), api_cmp);
}

const sch_fn *sch_fn_find(const sch_api *a, const char *name)
{
	sch_fn key = {.name = (char *)name};

	if (a == NULL || a->n_fns == 0)
		return NULL;
	return bsearch(&key, a->fns, a->n_fns, sizeof(*a->fns), fn_cmp);
}

const char *sch_kind_name(sch_kind k)
{
	if ((unsigned)k > SCH_OPTIONAL)
		return "unknown";
	return kind_names[k];
}

const char *sch_class_name(sch_class c)
{
	switch (c) {
	case SCH_DETERMINISTIC:
		return "deterministic";
	case SCH_NONDETERMINISTIC:
		return "nondeterministic";
	case SCH_IO:
		return "io";
	}
	return "unknown";
}

/* ---- checking values ------------------------------------------------------------ */

static int is_nil(const val_t *v)
{
	return v == NULL || v->kind_case == MOONPEN__V1__VALUE__KIND__NOT_SET ||
	       v->kind_case == MOONPEN__V1__VALUE__KIND_NIL_VALUE;
}

const char *sch_val_type(const val_t *v)
{
	if (is_nil(v))
		return "nil";
	switch (v->kind_case) {
	case MOONPEN__V1__VALUE__KIND_BOOL_VALUE:
		return "boolean";
	case MOONPEN__V1__VALUE__KIND_INT_VALUE:
	case MOONPEN__V1__VALUE__KIND_FLOAT_VALUE:
		return "number";
	case MOONPEN__V1__VALUE__KIND_STRING_VALUE:
	case MOONPEN__V1__VALUE__KIND_BYTES_VALUE:
		return "string";
	case MOONPEN__V1__VALUE__KIND_TABLE_VALUE:
		return "table";
	default:
		return "unknown";
	}
}

/* "string", "integer", ..., "record", "list of string", "string or nil". */
static void describe(const sch_type *t, char *buf, size_t len)
{
	if (len == 0)
		return;
	char inner[96];

	switch (t->kind) {
	case SCH_LIST:
		describe(t->elem, inner, sizeof(inner));
		snprintf(buf, len, "list of %s", inner);
		break;
	case SCH_OPTIONAL:
		describe(t->elem, inner, sizeof(inner));
		snprintf(buf, len, "%s or nil", inner);
		break;
	default:
		snprintf(buf, len, "%s", kind_names[t->kind]);
	}
}

char *sch_type_describe(const sch_type *t, char *buf, size_t len)
{
	describe(t, buf, len);
	return buf;
}

static int mismatch(const sch_type *t, const val_t *v, const char *path, const char *why, char *err,
		    size_t errlen)
{
	char want[128];

	describe(t, want, sizeof(want));
	return diag_fail(err, errlen, "'%s' expected %s, got %s%s", path, want, sch_val_type(v),
			 why);
}

static int check_int(val_t *v)
{
	double d;

	if (v->kind_case == MOONPEN__V1__VALUE__KIND_INT_VALUE)
		return 1;
	if (v->kind_case != MOONPEN__V1__VALUE__KIND_FLOAT_VALUE)
		return 0;
	d = v->float_value;
	if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || floor(d) != d)
		return 0;
	v->kind_case = MOONPEN__V1__VALUE__KIND_INT_VALUE;
	v->int_value = (int64_t)d;
	return 1;
}

static int check_record(const sch_type *t, val_t *v, const char *path, char *err, size_t errlen);
static int check_list(const sch_type *t, val_t *v, const char *path, char *err, size_t errlen);

static int check_scalar(const sch_type *t, val_t *v, const char *path, char *err, size_t errlen)
{
	Moonpen__V1__Value__KindCase k = v->kind_case;

	switch (t->kind) {
	case SCH_STRING:
		if (k == MOONPEN__V1__VALUE__KIND_BYTES_VALUE)
			return mismatch(t, v, path, " (not valid UTF-8)", err, errlen);
		return k == MOONPEN__V1__VALUE__KIND_STRING_VALUE
			   ? 0
			   : mismatch(t, v, path, "", err, errlen);
	case SCH_INTEGER:
		if (k == MOONPEN__V1__VALUE__KIND_FLOAT_VALUE && !check_int(v))
			return mismatch(t, v, path, " (not an integral value)", err, errlen);
		return check_int(v) ? 0 : mismatch(t, v, path, "", err, errlen);
	case SCH_NUMBER:
		return (k == MOONPEN__V1__VALUE__KIND_INT_VALUE ||
			k == MOONPEN__V1__VALUE__KIND_FLOAT_VALUE)
			   ? 0
			   : mismatch(t, v, path, "", err, errlen);
	case SCH_BOOLEAN:
		return k == MOONPEN__V1__VALUE__KIND_BOOL_VALUE
			   ? 0
			   : mismatch(t, v, path, "", err, errlen);
	case SCH_TABLE:
		return k == MOONPEN__V1__VALUE__KIND_TABLE_VALUE
			   ? 0
			   : mismatch(t, v, path, "", err, errlen);
	default:
		return 0;
	}
}

/* Whether v has the Lua type that t needs (details are checked later). */
static int lua_type_ok(const sch_type *t, const val_t *v)
{
	switch (t->kind) {
	case SCH_STRING:
		return strcmp(sch_val_type(v), "string") == 0;
	case SCH_INTEGER:
	case SCH_NUMBER:
		return strcmp(sch_val_type(v), "number") == 0;
	case SCH_BOOLEAN:
		return strcmp(sch_val_type(v), "boolean") == 0;
	case SCH_TABLE:
	case SCH_RECORD:
	case SCH_LIST:
		return strcmp(sch_val_type(v), "table") == 0;
	default:
		return 1;
	}
}

int sch_check_value(const sch_type *t, val_t *v, const char *path, char *err, size_t errlen)
{
	if (t->kind == SCH_OPTIONAL && is_nil(v))
		return 0;
	if (t->kind == SCH_OPTIONAL && !lua_type_ok(t->elem, v))
		return mismatch(t, v, path, "", err, errlen);
	if (t->kind == SCH_OPTIONAL)
		return sch_check_value(t->elem, v, path, err, errlen);
	if (is_nil(v))
		return mismatch(t, v, path, "", err, errlen);
	switch (t->kind) {
	case SCH_ANY:
		return 0;
	case SCH_RECORD:
		return check_record(t, v, path, err, errlen);
	case SCH_LIST:
		return check_list(t, v, path, err, errlen);
	default:
		return check_scalar(t, v, path, err, errlen);
	}
}

static val_t *record_get(val_t *v, const char *name)
{
	Moonpen__V1__Table *tb = v->table_value;

	for (size_t i = 0; tb != NULL && i < tb->n_map; i++) {
		val_t *k = tb->map[i]->key;
		if (k != NULL && k->kind_case == MOONPEN__V1__VALUE__KIND_STRING_VALUE &&
		    strcmp(k->string_value, name) == 0)
			return tb->map[i]->value;
	}
	return NULL;
}

static const sch_field *field_find(const sch_type *t, const val_t *k)
{
	if (k == NULL || k->kind_case != MOONPEN__V1__VALUE__KIND_STRING_VALUE)
		return NULL;
	for (size_t i = 0; i < t->n_fields; i++)
		if (strcmp(t->fields[i].name, k->string_value) == 0)
			return &t->fields[i];
	return NULL;
}

static int check_record(const sch_type *t, val_t *v, const char *path, char *err, size_t errlen)
{
	Moonpen__V1__Table *tb;
	char sub[PATH_MAX_LEN];
	int r;

	if (v->kind_case != MOONPEN__V1__VALUE__KIND_TABLE_VALUE)
		return mismatch(t, v, path, "", err, errlen);
	tb = v->table_value;
	if (tb != NULL && tb->n_array > 0)
		return diag_fail(err, errlen, "'%s' expected record, got a table with list items",
				 path);
	for (size_t i = 0; tb != NULL && i < tb->n_map; i++) {
		if (field_find(t, tb->map[i]->key) == NULL) {
			val_t *k = tb->map[i]->key;
			return diag_fail(
			    err, errlen, "'%s' has unknown field %s%s%s", path,
			    k->kind_case == MOONPEN__V1__VALUE__KIND_STRING_VALUE ? "'" : "(",
			    k->kind_case == MOONPEN__V1__VALUE__KIND_STRING_VALUE ? k->string_value
										  : sch_val_type(k),
			    k->kind_case == MOONPEN__V1__VALUE__KIND_STRING_VALUE ? "'" : " key)");
		}
	}
	for (size_t i = 0; i < t->n_fields; i++) {
		subpath(sub, "%s.%s", path, t->fields[i].name);
		r = sch_check_value(t->fields[i].type, record_get(v, t->fields[i].name), sub, err,
				    errlen);
		if (r < 0)
			return r;
	}
	return 0;
}

static int check_list(const sch_type *t, val_t *v, const char *path, char *err, size_t errlen)
{
	Moonpen__V1__Table *tb;
	char sub[PATH_MAX_LEN];
	int r;

	if (v->kind_case != MOONPEN__V1__VALUE__KIND_TABLE_VALUE)
		return mismatch(t, v, path, "", err, errlen);
	tb = v->table_value;
	if (tb != NULL && tb->n_map > 0)
		return diag_fail(err, errlen, "'%s' expected list, got a table with non-list keys",
				 path);
	for (size_t i = 0; tb != NULL && i < tb->n_array; i++) {
		subpath(sub, "%s[%zu]", path, i + 1);
		r = sch_check_value(t->elem, tb->array[i], sub, err, errlen);
		if (r < 0)
			return r;
	}
	return 0;
}

int sch_check_args(const sch_api *a, const sch_fn *fn, val_t **args, size_t nargs, char *err,
		   size_t errlen)
{
	char msg[512], path[96];
	size_t max = fn->variadic != NULL ? SCH_MAX_ARGS : fn->n_params;
	int r;

	while (nargs > 0 && is_nil(args[nargs - 1]))
		nargs--;
	if (nargs > max)
		return diag_fail(err, errlen, "%s.%s: expected at most %zu argument%s, got %zu",
				 a->name, fn->name, max, max == 1 ? "" : "s", nargs);
	for (size_t i = 0; i < fn->n_params || i < nargs; i++) {
		const sch_type *t = i < fn->n_params ? fn->params[i].type : fn->variadic;
		snprintf(path, sizeof(path), "%s", i < fn->n_params ? fn->params[i].name : "...");
		r = sch_check_value(t, i < nargs ? args[i] : NULL, path, msg, sizeof(msg));
		if (r < 0)
			return diag_fail(err, errlen, "%s.%s: argument #%zu %s", a->name, fn->name,
					 i + 1, msg);
	}
	return 0;
}
