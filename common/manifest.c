/*
 * manifest — parse and validate a pack's manifest.json.
 *
 * Runs in the supervisor, the worker and spk. The bytes come from a pack
 * author and are hostile until every field has been checked: unknown fields,
 * duplicate keys, wrong types and out-of-range numbers are refused, and the
 * error names the field ("triggers[1].event").
 *
 * Accepted fields (all others are refused, so that a typo never silently
 * drops a setting):
 *   id            string, [a-z0-9][a-z0-9._-]{0,63}             required
 *   version       MAJOR.MINOR.PATCH, 1..9 digits each           required
 *   engine        "lua"                                         required
 *   entry         pack-relative path of a .lua file             required
 *   apis          array of identifiers, no duplicates           optional
 *   triggers      array of {id, event, condition?, action, throttle_ms? | debounce_ms?}
 *   timers        array of {id, fn, every_ms | after_ms, args?} (MF_MAX_TIMERS,
 *                 manifest.h); args plain JSON data, bounded in count, depth, size
 *   limits        {memory_mb 1..4096, deadline_ms 1..60000, instructions >= 0}
 *   tick_ms       1..60000 (default tick length)
 *   compat        array of strings ("1.x")
 *   min_protocol  integer >= 0
 *   player_field  identifier
 *   rate_limits   {global?, per_player?, triggers?: {<trigger id>: rate}}, each rate
 *                 {per_second 1..1000000, burst? 1..1000000 (default per_second)};
 *                 per_player needs player_field
 *   isolation     "instance" (default: a worker per instance) | "pool" (shared
 *                 pool workers, --pool-size instances each; docs/recovery.md)
 *   description, author, license   strings (informational)
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/diag.h"
#include "common/manifest.h"
#include "common/val_json.h"

#define MF_MAX_APIS 64
#define MF_MAX_TRIGGERS 256
#define MF_MAX_TEXT 65536 /* condition / action / description length */

static const char *const mf_fields[] = {
    "id",	   "version", "engine",	 "entry",	 "apis",	 "triggers",
    "limits",	   "tick_ms", "compat",	 "min_protocol", "player_field", "rate_limits",
    "description", "author",  "license", "isolation",	 "timers",	 NULL,
};
static const char *const trig_fields[] = {
    "id", "event", "condition", "action", "throttle_ms", "debounce_ms", NULL,
};
static const char *const limit_fields[] = {
    "memory_mb",
    "deadline_ms",
    "instructions",
    NULL,
};

/* ---- lexical checks ---------------------------------------------------------- */

static int is_pack_id(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n < 1 || n > 64)
		return 0;
	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
		return 0;
	for (size_t i = 1; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return 0;
	}
	return 1;
}

static int is_ident(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
		if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
			return 0;
	}
	return 1;
}

/* Three dot-separated groups of 1..9 digits. */
static int is_version(const char *s)
{
	int groups = 0;

	if (s == NULL)
		return 0;

	for (;;) {
		size_t d = 0;
		while (s[d] >= '0' && s[d] <= '9')
			d++;
		if (d == 0 || d > 9)
			return 0;
		groups++;
		s += d;
		if (*s == '\0')
			return groups == 3;
		if (*s != '.' || groups == 3)
			return 0;
		s++;
	}
}

/* Relative, '/'-separated, no empty / "." / ".." segment, ends in ".lua". */
static int is_entry_path(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	const char *seg = s;

	if (n < 5 || n > 255 || strcmp(s + n - 4, ".lua") != 0)
		return 0;
	for (const char *p = s;; p++) {
		if (*p == '/' || *p == '\0') {
			size_t len = (size_t)(p - seg);
			if (len == 0 || (len == 1 && seg[0] == '.') ||
			    (len == 2 && seg[0] == '.' && seg[1] == '.'))
				return 0;
			if (*p == '\0')
				return 1;
			seg = p + 1;
			continue;
		}
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
			return 0;
	}
}

/* An event pattern: printable, no spaces, '*' only as the last character. */
static int is_event_pattern(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 256)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= ' ' || c == 0x7f)
			return 0;
		if (c == '*' && i != n - 1)
			return 0;
	}
	return 1;
}

static int is_trigger_id(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-' || c == ':'))
			return 0;
	}
	return 1;
}

static int known(const char *const *list, const char *key)
{
	for (; *list != NULL; list++)
		if (strcmp(*list, key) == 0)
			return 1;
	return 0;
}

static int check_fields(json_t *obj, const char *const *allowed, const char *where, char *err,
			size_t errlen)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v)
	{
		(void)v;
		if (!known(allowed, key))
			return diag_fail(err, errlen, "unknown field '%s%s'", where, key);
	}
	return 0;
}

/* ---- typed getters ------------------------------------------------------------ */

/* *out = strdup of the string field, or NULL when absent and !required. */
static int get_str(json_t *obj, const char *key, const char *where, int required, char **out,
		   char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (v == NULL) {
		if (required)
			return diag_fail(err, errlen, "missing required field '%s%s'", where, key);
		return 0;
	}
	if (!json_is_string(v))
		return diag_fail(err, errlen, "field '%s%s': expected a string", where, key);
	if (json_string_length(v) > MF_MAX_TEXT ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return diag_fail(err, errlen, "field '%s%s': too long or contains NUL", where, key);
	*out = strdup(json_string_value(v));
	return *out == NULL ? -ENOMEM : 0;
}

/* Optional integer in [lo, hi]; *out untouched when absent. */
static int get_uint(json_t *obj, const char *key, const char *where, uint64_t lo, uint64_t hi,
		    uint64_t *out, char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);
	json_int_t i;

	if (v == NULL)
		return 0;
	if (!json_is_integer(v))
		return diag_fail(err, errlen, "field '%s%s': expected an integer", where, key);
	i = json_integer_value(v);
	if (i < 0 || (uint64_t)i < lo || (uint64_t)i > hi)
		return diag_fail(err, errlen, "field '%s%s': %lld is out of range [%llu, %llu]",
				 where, key, (long long)i, (unsigned long long)lo,
				 (unsigned long long)hi);
	*out = (uint64_t)i;
	return 0;
}

/* ---- sections ------------------------------------------------------------------ */

/* *a = root[key]: absent (NULL), or an array of at most max entries. */
static int get_array(json_t *root, const char *key, size_t max, json_t **a, char *err,
		     size_t errlen)
{
	*a = json_object_get(root, key);
	if (*a == NULL)
		return 0;
	if (!json_is_array(*a))
		return diag_fail(err, errlen, "field '%s': expected an array", key);
	if (json_array_size(*a) > max)
		return diag_fail(err, errlen, "field '%s': more than %zu entries", key, max);
	return 0;
}

static int parse_apis(json_t *root, mf_manifest *m, char *err, size_t errlen)
{
	json_t *a = json_object_get(root, "apis");
	size_t i;
	json_t *v;

	if (a == NULL)
		return 0;
	if (!json_is_array(a))
		return diag_fail(err, errlen, "field 'apis': expected an array of names");
	if (json_array_size(a) > MF_MAX_APIS)
		return diag_fail(err, errlen, "field 'apis': more than %d entries", MF_MAX_APIS);
	m->apis = calloc(json_array_size(a) + 1, sizeof(*m->apis));
	if (m->apis == NULL)
		return -ENOMEM;
	json_array_foreach(a, i, v)
	{
		if (!json_is_string(v) || !is_ident(json_string_value(v)))
			return diag_fail(err, errlen, "field 'apis[%zu]': expected an identifier",
					 i + 1);
		if (mf_uses_api(m, json_string_value(v)))
			return diag_fail(err, errlen, "field 'apis[%zu]': '%s' is listed twice",
					 i + 1, json_string_value(v));
		m->apis[i] = strdup(json_string_value(v));
		if (m->apis[i] == NULL)
			return -ENOMEM;
		m->n_apis = i + 1;
	}
	return 0;
}

/* "debounce_ms": 0..2^32-1 (0: off); refused next to "throttle_ms". */
static int parse_debounce(json_t *t, const char *where, mf_trigger *tr, char *err, size_t errlen)
{
	uint64_t deb = 0;
	int r;

	if (json_object_get(t, "debounce_ms") == NULL)
		return 0;
	if (json_object_get(t, "throttle_ms") != NULL)
		return diag_fail(err, errlen,
				 "field '%sdebounce_ms': a trigger has throttle_ms or debounce_ms, "
				 "not both (choose one)",
				 where);
	r = get_uint(t, "debounce_ms", where, 0, UINT32_MAX, &deb, err, errlen);
	tr->debounce_ms = (uint32_t)deb;
	return r;
}

static int parse_trigger(json_t *t, size_t idx, mf_trigger *tr, char *err, size_t errlen)
{
	char where[32];
	uint64_t thr = 0;
	int r;

	snprintf(where, sizeof(where), "triggers[%zu].", idx + 1);
	if (!json_is_object(t))
		return diag_fail(err, errlen, "field 'triggers[%zu]': expected an object", idx + 1);
	r = check_fields(t, trig_fields, where, err, errlen);
	if (r == 0)
		r = get_str(t, "id", where, 1, &tr->id, err, errlen);
	if (r == 0 && !is_trigger_id(tr->id))
		r = diag_fail(err, errlen,
			      "field '%sid': expected 1-64 of [A-Za-z0-9._:-], got \"%s\"", where,
			      tr->id);
	if (r == 0)
		r = get_str(t, "event", where, 1, &tr->event, err, errlen);
	if (r == 0 && !is_event_pattern(tr->event))
		r = diag_fail(err, errlen,
			      "field '%sevent': expected an event name or a pattern ending in '*', "
			      "got \"%s\"",
			      where, tr->event);
	if (r == 0)
		r = get_str(t, "condition", where, 0, &tr->condition, err, errlen);
	if (r == 0)
		r = get_str(t, "action", where, 1, &tr->action, err, errlen);
	if (r == 0 && tr->action[strspn(tr->action, " \t\r\n")] == '\0')
		r = diag_fail(err, errlen, "field '%saction': empty", where);
	if (r == 0)
		r = get_uint(t, "throttle_ms", where, 0, UINT32_MAX, &thr, err, errlen);
	tr->throttle_ms = (uint32_t)thr;
	if (r == 0)
		r = parse_debounce(t, where, tr, err, errlen);
	return r;
}

static int parse_triggers(json_t *root, mf_manifest *m, char *err, size_t errlen)
{
	json_t *a, *v;
	size_t i;
	int r = get_array(root, "triggers", MF_MAX_TRIGGERS, &a, err, errlen);

	if (r < 0 || a == NULL)
		return r;
	m->triggers = calloc(json_array_size(a) + 1, sizeof(*m->triggers));
	if (m->triggers == NULL)
		return -ENOMEM;
	json_array_foreach(a, i, v)
	{
		m->n_triggers = i + 1;
		r = parse_trigger(v, i, &m->triggers[i], err, errlen);
		if (r < 0)
			return r;
		for (size_t j = 0; j < i; j++)
			if (m->triggers[j].id && m->triggers[i].id &&
			    strcmp(m->triggers[j].id, m->triggers[i].id) == 0)
				return diag_fail(err, errlen,
						 "field 'triggers[%zu].id': \"%s\" is used twice",
						 i + 1, m->triggers[i].id);
	}
	return 0;
}

/* ---- timers (started by worker/engine.c at creation) ------------------------- */

static int is_lua_name(const char *s)
{
	static const char *const kw[] = {"and",	  "break", "do",       "else",	"elseif", "end",
					 "false", "for",   "function", "goto",	"if",	  "in",
					 "local", "nil",   "not",      "or",	"repeat", "return",
					 "then",  "true",  "until",    "while", NULL};

	if (!is_ident(s))
		return 0;
	return !known(kw, s);
}

/* args: an array of at most MF_MAX_TIMER_ARGS plain values, each nested at
 * most MF_TIMER_ARGS_DEPTH deep, MF_TIMER_ARGS_BYTES encoded in all. */
static int parse_timer_args(json_t *a, const char *where, mf_timer *tm, char *err, size_t errlen)
{
	size_t i, bytes = 0;
	char why[200];
	json_t *v;
	int r;

	if (a == NULL)
		return 0;
	if (!json_is_array(a))
		return diag_fail(err, errlen, "field '%sargs': expected an array", where);
	if (json_array_size(a) > MF_MAX_TIMER_ARGS)
		return diag_fail(err, errlen, "field '%sargs': more than %d arguments", where,
				 MF_MAX_TIMER_ARGS);
	tm->args = calloc(json_array_size(a) + 1, sizeof(*tm->args));
	if (tm->args == NULL)
		return -ENOMEM;
	json_array_foreach(a, i, v)
	{
		r = vjson_from_json(v, MF_TIMER_ARGS_DEPTH, &tm->args[i], why, sizeof(why));
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			return diag_fail(err, errlen, "field '%sargs[%zu]': %s", where, i + 1, why);
		tm->nargs = i + 1;
		bytes += protobuf_c_message_get_packed_size(&tm->args[i]->base);
		if (bytes > MF_TIMER_ARGS_BYTES)
			return diag_fail(err, errlen, "field '%sargs': more than %d bytes encoded",
					 where, MF_TIMER_ARGS_BYTES);
	}
	return 0;
}

/* Exactly one of every_ms / after_ms, 1..MF_MAX_TIMER_MS. */
static int parse_timer_period(json_t *t, const char *where, mf_timer *tm, char *err, size_t errlen)
{
	int every = json_object_get(t, "every_ms") != NULL;
	int after = json_object_get(t, "after_ms") != NULL;
	uint64_t ms = 0;
	int r;

	if (every == after)
		return diag_fail(err, errlen,
				 "field '%.*s': expected exactly one of 'every_ms' and 'after_ms'",
				 (int)strlen(where) - 1, where);
	r = get_uint(t, every ? "every_ms" : "after_ms", where, 1, MF_MAX_TIMER_MS, &ms, err,
		     errlen);
	tm->ms = (uint32_t)ms;
	tm->every = every;
	return r;
}

static int parse_timer(json_t *t, size_t idx, mf_timer *tm, char *err, size_t errlen)
{
	static const char *const fields[] = {"id", "fn", "every_ms", "after_ms", "args", NULL};
	char where[32];
	int r;

	snprintf(where, sizeof(where), "timers[%zu].", idx + 1);
	if (!json_is_object(t))
		return diag_fail(err, errlen, "field 'timers[%zu]': expected an object", idx + 1);
	r = check_fields(t, fields, where, err, errlen);
	if (r == 0)
		r = get_str(t, "id", where, 1, &tm->id, err, errlen);
	if (r == 0 && !is_trigger_id(tm->id))
		r = diag_fail(err, errlen,
			      "field '%sid': expected 1-64 of [A-Za-z0-9._:-], got \"%s\"", where,
			      tm->id);
	if (r == 0)
		r = get_str(t, "fn", where, 1, &tm->fn, err, errlen);
	if (r == 0 && !is_lua_name(tm->fn))
		r = diag_fail(err, errlen,
			      "field '%sfn': expected the name of a global function, got \"%s\"",
			      where, tm->fn);
	if (r == 0)
		r = parse_timer_period(t, where, tm, err, errlen);
	if (r == 0)
		r = parse_timer_args(json_object_get(t, "args"), where, tm, err, errlen);
	return r;
}

static int parse_timers(json_t *root, mf_manifest *m, char *err, size_t errlen)
{
	json_t *a, *v;
	size_t i;
	int r = get_array(root, "timers", MF_MAX_TIMERS, &a, err, errlen);

	if (r < 0 || a == NULL)
		return r;
	m->timers = calloc(json_array_size(a) + 1, sizeof(*m->timers));
	if (m->timers == NULL)
		return -ENOMEM;
	json_array_foreach(a, i, v)
	{
		m->n_timers = i + 1;
		r = parse_timer(v, i, &m->timers[i], err, errlen);
		if (r < 0)
			return r;
		for (size_t j = 0; j < i; j++)
			if (m->timers[j].id && m->timers[i].id &&
			    strcmp(m->timers[j].id, m->timers[i].id) == 0)
				return diag_fail(err, errlen,
						 "field 'timers[%zu].id': \"%s\" is used twice",
						 i + 1, m->timers[i].id);
	}
	return 0;
}

static int parse_limits(json_t *root, mf_manifest *m, char *err, size_t errlen)
{
	json_t *l = json_object_get(root, "limits");
	uint64_t mem = 0, dl = 0, ins = 0;
	int r;

	if (l == NULL)
		return 0;
	if (!json_is_object(l))
		return diag_fail(err, errlen, "field 'limits': expected an object");
	r = check_fields(l, limit_fields, "limits.", err, errlen);
	if (r == 0)
		r = get_uint(l, "memory_mb", "limits.", 1, 4096, &mem, err, errlen);
	if (r == 0)
		r = get_uint(l, "deadline_ms", "limits.", 1, 60000, &dl, err, errlen);
	if (r == 0)
		r = get_uint(l, "instructions", "limits.", 0, (uint64_t)1 << 53, &ins, err, errlen);
	m->mem_bytes = mem << 20;
	m->deadline_ms = (uint32_t)dl;
	m->instructions = ins;
	return r;
}

static int parse_compat(json_t *root, char *err, size_t errlen)
{
	json_t *a = json_object_get(root, "compat");
	size_t i;
	json_t *v;

	if (a == NULL)
		return 0;
	if (!json_is_array(a))
		return diag_fail(err, errlen, "field 'compat': expected an array of strings");
	json_array_foreach(a, i, v)
	{
		if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 32)
			return diag_fail(err, errlen,
					 "field 'compat[%zu]': expected a short string", i + 1);
	}
	return 0;
}

static int parse_header(json_t *root, mf_manifest *m, char *err, size_t errlen)
{
	char *tmp = NULL;
	int r = get_str(root, "id", "", 1, &m->id, err, errlen);

	if (r == 0 && !is_pack_id(m->id))
		r = diag_fail(err, errlen,
			      "field 'id': expected [a-z0-9][a-z0-9._-]{0,63}, got \"%s\"", m->id);
	if (r == 0)
		r = get_str(root, "version", "", 1, &m->version, err, errlen);
	if (r == 0 && !is_version(m->version))
		r = diag_fail(
		    err, errlen,
		    "field 'version': expected MAJOR.MINOR.PATCH (digits only), got \"%s\"",
		    m->version);
	if (r == 0)
		r = get_str(root, "engine", "", 1, &m->engine, err, errlen);
	if (r == 0 && (m->engine == NULL || strcmp(m->engine, "lua") != 0))
		r = diag_fail(err, errlen, "field 'engine': only \"lua\" is supported, got \"%s\"",
			      m->engine ? m->engine : "");
	if (r == 0)
		r = get_str(root, "entry", "", 1, &m->entry, err, errlen);
	if (r == 0 && !is_entry_path(m->entry))
		r = diag_fail(err, errlen,
			      "field 'entry': expected a relative path to a .lua file, got \"%s\"",
			      m->entry);
	if (r == 0)
		r = get_str(root, "player_field", "", 0, &m->player_field, err, errlen);
	if (r == 0 && m->player_field != NULL && !is_ident(m->player_field))
		r = diag_fail(err, errlen, "field 'player_field': expected an identifier");
	for (const char *const *k = (const char *const[]){"description", "author", "license", NULL};
	     r == 0 && *k != NULL; k++) {
		r = get_str(root, *k, "", 0, &tmp, err, errlen);
		free(tmp);
		tmp = NULL;
	}
	return r;
}

/* ---- rate_limits (read by supervisor/ratelimit.c) ------------------------------ */

static int parse_rate(json_t *o, const char *where, mf_rate *out, char *err, size_t errlen)
{
	static const char *const fields[] = {"per_second", "burst", NULL};
	uint64_t ps = 0, burst = 0;
	char w[160];
	int r;

	if (!json_is_object(o))
		return diag_fail(err, errlen,
				 "field '%s': expected {\"per_second\": N, \"burst\": N}", where);
	snprintf(w, sizeof w, "%s.", where);
	r = check_fields(o, fields, w, err, errlen);
	if (r == 0 && json_object_get(o, "per_second") == NULL)
		r = diag_fail(err, errlen, "missing required field '%sper_second'", w);
	if (r == 0)
		r = get_uint(o, "per_second", w, 1, 1000000, &ps, err, errlen);
	if (r == 0)
		r = get_uint(o, "burst", w, 1, 1000000, &burst, err, errlen);
	out->per_second = (uint32_t)ps;
	out->burst = (uint32_t)(burst ? burst : ps);
	return r;
}

static int parse_trigger_rates(json_t *t, mf_manifest *m, char *err, size_t errlen)
{
	const char *key;
	char where[128];
	json_t *v;
	size_t i;
	int r;

	if (!json_is_object(t))
		return diag_fail(err, errlen, "field 'rate_limits.triggers': expected an object");
	json_object_foreach(t, key, v)
	{
		for (i = 0; i < m->n_triggers &&
			    (m->triggers[i].id == NULL || strcmp(m->triggers[i].id, key) != 0);
		     i++)
			;
		snprintf(where, sizeof where, "rate_limits.triggers.%.64s", key);
		if (i == m->n_triggers)
			return diag_fail(err, errlen, "field '%s': no trigger has this id", where);
		r = parse_rate(v, where, &m->triggers[i].rate, err, errlen);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_rate_limits(json_t *root, mf_manifest *m, char *err, size_t errlen)
{
	static const char *const fields[] = {"global", "per_player", "triggers", NULL};
	json_t *rl = json_object_get(root, "rate_limits"), *v;
	int r;

	if (rl == NULL)
		return 0;
	if (!json_is_object(rl))
		return diag_fail(err, errlen, "field 'rate_limits': expected an object");
	r = check_fields(rl, fields, "rate_limits.", err, errlen);
	if (r == 0 && (v = json_object_get(rl, "global")) != NULL)
		r = parse_rate(v, "rate_limits.global", &m->rate_global, err, errlen);
	if (r == 0 && (v = json_object_get(rl, "per_player")) != NULL) {
		r = parse_rate(v, "rate_limits.per_player", &m->rate_player, err, errlen);
		if (r == 0 && m->player_field == NULL)
			r = diag_fail(err, errlen,
				      "field 'rate_limits.per_player': needs 'player_field' (the "
				      "payload field naming the player)");
	}
	if (r == 0 && (v = json_object_get(rl, "triggers")) != NULL)
		r = parse_trigger_rates(v, m, err, errlen);
	return r;
}

/* ---- isolation (read by supervisor/inst.c and pool.c) ------------------------- */

static int parse_isolation(json_t *root, mf_manifest *m, char *err, size_t errlen)
{
	char *iso = NULL;
	int r = get_str(root, "isolation", "", 0, &iso, err, errlen);

	if (r == 0 && iso != NULL) {
		if (strcmp(iso, "pool") == 0)
			m->pool = 1;
		else if (strcmp(iso, "instance") != 0)
			r = diag_fail(err, errlen,
				      "field 'isolation': expected \"instance\" or \"pool\"");
	}
	free(iso);
	return r;
}

static int parse_root(json_t *root, mf_manifest *m, char *err, size_t errlen)
{
	uint64_t tick = 0, proto = 0;
	int r;

	if (!json_is_object(root))
		return diag_fail(err, errlen, "manifest: expected a JSON object");
	r = check_fields(root, mf_fields, "", err, errlen);
	if (r == 0)
		r = parse_header(root, m, err, errlen);
	if (r == 0)
		r = parse_apis(root, m, err, errlen);
	if (r == 0)
		r = parse_triggers(root, m, err, errlen);
	if (r == 0)
		r = parse_timers(root, m, err, errlen);
	if (r == 0)
		r = parse_rate_limits(root, m, err, errlen);
	if (r == 0)
		r = parse_isolation(root, m, err, errlen);
	if (r == 0)
		r = parse_limits(root, m, err, errlen);
	if (r == 0)
		r = parse_compat(root, err, errlen);
	if (r == 0)
		r = get_uint(root, "tick_ms", "", 1, 60000, &tick, err, errlen);
	if (r == 0)
		r = get_uint(root, "min_protocol", "", 0, UINT32_MAX, &proto, err, errlen);
	m->tick_ms = (uint32_t)tick;
	m->min_protocol = (uint32_t)proto;
	return r;
}

/* ---- public ---------------------------------------------------------------------- */

int mf_parse(const char *json, size_t len, mf_manifest **out, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root = NULL;
	mf_manifest *m = NULL;
	int r;

	*out = NULL;
	if (errlen > 0)
		err[0] = '\0';
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	/* jansson reports an allocation failure before the first token with no text */
	if (root == NULL &&
	    (json_error_code(&jerr) == json_error_out_of_memory || jerr.text[0] == '\0')) {
		snprintf(err, errlen, "out of memory");
		r = -ENOMEM; /* not the author's fault: never "not valid JSON" */
		goto out;
	}
	if (root == NULL) {
		r = diag_fail(err, errlen, "manifest is not valid JSON: %s (line %d, column %d)",
			      jerr.text, jerr.line, jerr.column);
		goto out;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		r = -ENOMEM;
		goto out;
	}
	r = parse_root(root, m, err, errlen);
out:
	if (r == -ENOMEM)
		diag_fail(err, errlen, "out of memory");
	json_decref(root);
	if (r < 0)
		mf_free(m);
	else
		*out = m;
	return r;
}

void mf_free(mf_manifest *m)
{
	if (m == NULL)
		return;
	free(m->id);
	free(m->version);
	free(m->engine);
	free(m->entry);
	for (size_t i = 0; i < m->n_apis; i++)
		free(m->apis[i]);
	free(m->apis);
	for (size_t i = 0; i < m->n_triggers; i++) {
		free(m->triggers[i].id);
		free(m->triggers[i].event);
		free(m->triggers[i].condition);
		free(m->triggers[i].action);
	}
	free(m->triggers);
	for (size_t i = 0; i < m->n_timers; i++) {
		free(m->timers[i].id);
		free(m->timers[i].fn);
		for (size_t j = 0; j < m->timers[i].nargs; j++)
			val_free(m->timers[i].args[j]);
		free(m->timers[i].args);
	}
	free(m->timers);
	free(m->player_field);
	free(m);
}

/* Reads one numeric group and advances *s past it and its dot. */
static unsigned long long next_group(const char **s)
{
	unsigned long long n = 0;

	while (**s >= '0' && **s <= '9') {
		if (n < 1000000000000ULL)
			n = n * 10 + (unsigned long long)(**s - '0');
		(*s)++;
	}
	if (**s == '.')
		(*s)++;
	return n;
}

int mf_version_cmp(const char *a, const char *b)
{
	for (int i = 0; i < 3; i++) {
		unsigned long long x = next_group(&a), y = next_group(&b);
		if (x != y)
			return x < y ? -1 : 1;
	}
	return 0;
}

int mf_uses_api(const mf_manifest *m, const char *api)
{
	for (size_t i = 0; i < m->n_apis; i++)
		if (m->apis[i] != NULL && strcmp(m->apis[i], api) == 0)
			return 1;
	return 0;
}
