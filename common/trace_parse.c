/*
 * trace_parse — trace_parse(): trace text into the model of trace.h, every
 * field checked (docs/trace-format.md). Runs in spk (replay), tests and the
 * fuzzer; the text is untrusted. A file of its own so that programs that only
 * build traces (moonpend) do not link the schema parser (host_api is checked
 * with common/schema.h, which needs libm).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/schema.h"
#include "common/trace.h"
#include "common/trace_priv.h"
#include "common/val_json.h"
#include "policy/limits.h"

#define TRACE_MAX_RETURNS 256		 /* values a call may return, as recorded */
#define TRACE_MAX_LOGS (MP_MAX_LOGS + 1) /* the worker's cap, plus its "dropped" note */

/* ---- JSON text: parsing (untrusted) ------------------------------------------------ */

struct perr {
	char *err;
	size_t len;
};

static int bad(struct perr *e, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(struct perr *e, const char *path, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	snprintf(e->err, e->len, "%s: %s", path, what);
	return -EINVAL;
}

/* dst = path + suffix (+ "[i]"), truncated to len (paths are short in practice). */
static void pj(char *dst, size_t len, const char *path, const char *suffix)
{
	size_t a = strlen(path), b = strlen(suffix);

	if (a >= len)
		a = len - 1;
	memmove(dst, path, a); /* pji passes dst as path */
	if (b > len - 1 - a)
		b = len - 1 - a;
	memcpy(dst + a, suffix, b);
	dst[a + b] = '\0';
}

static void pji(char *dst, size_t len, const char *path, const char *suffix, size_t i)
{
	char idx[32];

	pj(dst, len, path, suffix);
	snprintf(idx, sizeof idx, "[%zu]", i);
	pj(dst, len, dst, idx);
}

/* Refuses members of o not in allowed (NULL-terminated). */
static int only_keys(struct perr *e, const char *path, json_t *o, const char *const *allowed)
{
	const char *k;
	json_t *v;
	size_t i;

	json_object_foreach(o, k, v)
	{
		for (i = 0; allowed[i] && strcmp(allowed[i], k) != 0; i++)
			;
		if (allowed[i] == NULL)
			return bad(e, path, "unknown member \"%s\"", k);
	}
	return 0;
}

static int get_u64(struct perr *e, const char *path, json_t *j, uint64_t *out)
{
	const char *s;
	char *end;

	if (json_is_integer(j) && json_integer_value(j) >= 0) {
		*out = (uint64_t)json_integer_value(j);
		return 0;
	}
	s = json_string_value(j);
	if (s && s[0] >= '0' && s[0] <= '9' && strlen(s) <= 20) {
		errno = 0;
		*out = strtoull(s, &end, 10);
		if (errno == 0 && *end == '\0')
			return 0;
	}
	return bad(e, path, "expected a non-negative integer");
}

static int get_str(struct perr *e, const char *path, json_t *j, size_t max, char **out)
{
	const char *s = json_string_value(j);

	if (s == NULL)
		return bad(e, path, "expected a string");
	if (json_string_length(j) > max || strlen(s) != json_string_length(j))
		return bad(e, path, "string longer than %zu bytes or holding a NUL", max);
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

static int get_hex32(struct perr *e, const char *path, json_t *j, uint8_t out[32])
{
	const char *s = json_string_value(j);
	size_t n = 0, i;

	for (i = 0; s && i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			break;
	if (s == NULL || i != 64 || s[64] != '\0' ||
	    sodium_hex2bin(out, 32, s, 64, NULL, &n, NULL) != 0 || n != 32)
		return bad(e, path, "expected 64 lowercase hex digits");
	return 0;
}

/* A JSON value that converts to a Value within the depth limit. */
static int check_value(struct perr *e, const char *path, json_t *j)
{
	char verr[256];
	val_t *v = NULL;
	int r = vjson_from_json(j, MP_MAX_VALUE_DEPTH, &v, verr, sizeof verr);

	val_free(v);
	if (r == -EINVAL)
		return bad(e, path, "%s", verr);
	return r;
}

static int check_values(struct perr *e, const char *path, json_t *a, size_t max)
{
	char p[256];
	json_t *v;
	size_t i;
	int r;

	if (!json_is_array(a))
		return bad(e, path, "expected an array");
	if (json_array_size(a) > max)
		return bad(e, path, "more than %zu values", max);
	json_array_foreach(a, i, v)
	{
		pji(p, sizeof p, path, "", i);
		if ((r = check_value(e, p, v)) < 0)
			return r;
	}
	return 0;
}

static int check_effect(struct perr *e, const char *path, json_t *ef)
{
	static const char *const keys[] = {"api", "fn", "args", "trigger", NULL};
	char p[256];
	int r;

	if (!json_is_object(ef))
		return bad(e, path, "expected an object");
	if ((r = only_keys(e, path, ef, keys)) < 0)
		return r;
	pj(p, sizeof p, path, ".api");
	if (!json_is_string(json_object_get(ef, "api")))
		return bad(e, p, "expected a string");
	pj(p, sizeof p, path, ".fn");
	if (!json_is_string(json_object_get(ef, "fn")))
		return bad(e, p, "expected a string");
	pj(p, sizeof p, path, ".trigger");
	if (json_object_get(ef, "trigger") && !json_is_string(json_object_get(ef, "trigger")))
		return bad(e, p, "expected a string");
	pj(p, sizeof p, path, ".args");
	return check_values(e, p, json_object_get(ef, "args"), MP_MAX_CALL_ARGS);
}

static int parse_status(struct perr *e, const char *path, json_t *j, st_code *out)
{
	const ProtobufCEnumValue *v = NULL;

	if (json_is_string(j))
		v = protobuf_c_enum_descriptor_get_value_by_name(
		    &moonpen__v1__status__code__descriptor, json_string_value(j));
	if (v == NULL || v->value == MOONPEN__V1__STATUS__CODE__PENDING)
		return bad(e, path, "expected a final status name (\"OK\", \"SCRIPT_ERROR\", ...)");
	*out = (st_code)v->value;
	return 0;
}

static int check_log(struct perr *e, const char *path, json_t *o, json_t **out)
{
	static const char *const keys[] = {"level", "message", NULL};
	static const char *const levels[] = {"debug", "info", "warn", "error", "print", NULL};
	const char *level = json_string_value(json_object_get(o, "level"));
	char p[256], *msg = NULL;
	size_t i;
	int r;

	if (!json_is_object(o))
		return bad(e, path, "expected an object");
	if ((r = only_keys(e, path, o, keys)) < 0)
		return r;
	for (i = 0; level && levels[i] && strcmp(level, levels[i]) != 0; i++)
		;
	pj(p, sizeof p, path, ".level");
	if (level == NULL || levels[i] == NULL)
		return bad(e, p, "expected \"debug\", \"info\", \"warn\", \"error\" or \"print\"");
	pj(p, sizeof p, path, ".message");
	if ((r = get_str(e, p, json_object_get(o, "message"), TRACE_MAX_LOG_BYTES, &msg)) < 0)
		return r;
	free(msg);
	*out =
	    json_pack("{s:s, s:O}", "level", levels[i], "message", json_object_get(o, "message"));
	return *out ? 0 : -ENOMEM;
}

/* logs: an array of {"level","message"}, rebuilt in that member order. */
static int parse_logs(struct perr *e, const char *path, json_t *arr, json_t **out)
{
	char p[256];
	json_t *o, *l = NULL;
	size_t i;
	int r;

	if (!json_is_array(arr))
		return bad(e, path, "expected an array");
	if (json_array_size(arr) > TRACE_MAX_LOGS)
		return bad(e, path, "more than %u lines", (unsigned)TRACE_MAX_LOGS);
	if ((*out = json_array()) == NULL)
		return -ENOMEM;
	json_array_foreach(arr, i, o)
	{
		pji(p, sizeof p, path, "", i);
		if ((r = check_log(e, p, o, &l)) < 0)
			return r;
		if (json_array_append_new(*out, l) != 0)
			return -ENOMEM;
	}
	return 0;
}

/* The outcome members of o (an input or "init"). */
static int parse_outcome(struct perr *e, const char *path, json_t *o, tr_outcome *out)
{
	json_t *effects = json_object_get(o, "effects"), *k = json_object_get(o, "killed");
	char p[256];
	json_t *ef;
	size_t i;
	int r;

	pj(p, sizeof p, path, ".status");
	if ((r = parse_status(e, p, json_object_get(o, "status"), &out->status)) < 0)
		return r;
	pj(p, sizeof p, path, ".message");
	if (json_object_get(o, "message") &&
	    (r = get_str(e, p, json_object_get(o, "message"), 65536, &out->message)) < 0)
		return r;
	pj(p, sizeof p, path, ".killed");
	if (k && !json_is_boolean(k))
		return bad(e, p, "expected a boolean");
	out->killed = json_is_true(k);
	pj(p, sizeof p, path, ".effects");
	if (!json_is_array(effects))
		return bad(e, p, "expected an array");
	json_array_foreach(effects, i, ef)
	{
		pji(p, sizeof p, path, ".effects", i);
		if ((r = check_effect(e, p, ef)) < 0)
			return r;
	}
	pj(p, sizeof p, path, ".returns");
	if ((r = check_values(e, p, json_object_get(o, "returns"), TRACE_MAX_RETURNS)) < 0)
		return r;
	out->effects = json_incref(effects);
	out->returns = json_incref(json_object_get(o, "returns"));
	pj(p, sizeof p, path, ".logs");
	if (json_object_get(o, "logs") &&
	    (r = parse_logs(e, p, json_object_get(o, "logs"), &out->logs)) < 0)
		return r;
	pj(p, sizeof p, path, ".state_hash");
	out->has_hash = json_object_get(o, "state_hash") != NULL;
	if (out->has_hash &&
	    (r = get_hex32(e, p, json_object_get(o, "state_hash"), out->state_hash)) < 0)
		return r;
	return 0;
}

static int parse_answer(struct perr *e, const char *path, json_t *o, tr_answer *a)
{
	static const char *const keys[] = {"call_id", "value", "error", NULL};
	json_t *v = json_object_get(o, "value"), *er = json_object_get(o, "error");
	char p[256];
	int r;

	if (!json_is_object(o))
		return bad(e, path, "expected an object");
	if ((r = only_keys(e, path, o, keys)) < 0)
		return r;
	pj(p, sizeof p, path, ".call_id");
	if ((r = get_u64(e, p, json_object_get(o, "call_id"), &a->call_id)) < 0)
		return r;
	if ((v == NULL) == (er == NULL))
		return bad(e, path, "expected exactly one of \"value\" and \"error\"");
	if (er) {
		pj(p, sizeof p, path, ".error");
		return get_str(e, p, er, 65536, &a->error);
	}
	pj(p, sizeof p, path, ".value");
	if ((r = check_value(e, p, v)) < 0)
		return r;
	a->value = json_incref(v);
	return 0;
}

static int parse_answers(struct perr *e, const char *path, json_t *arr, tr_input *in)
{
	char p[256];
	json_t *o;
	size_t i;
	int r;

	if (arr == NULL)
		return 0;
	if (!json_is_array(arr))
		return bad(e, path, "expected an array");
	json_array_foreach(arr, i, o)
	{
		pji(p, sizeof p, path, "", i);
		if (trace_grow_answers(in) == NULL)
			return -ENOMEM;
		r = parse_answer(e, p, o, &in->answers[in->n_answers]);
		in->n_answers++; /* counted even when half-filled: input_clear frees it */
		if (r < 0)
			return r;
	}
	return 0;
}

/* The members that belong to the kind; the others must be absent. */
static int parse_kind_fields(struct perr *e, const char *path, json_t *o, tr_input *in)
{
	json_t *name = json_object_get(o, "name"), *payload = json_object_get(o, "payload");
	json_t *count = json_object_get(o, "count"), *args = json_object_get(o, "args");
	char p[256];
	uint64_t n;
	int r;

	if ((in->kind == TR_TICK) != (name == NULL) || (in->kind != TR_EVENT && payload) ||
	    (in->kind != TR_TICK && count) || (in->kind != TR_CALL && args))
		return bad(e, path,
			   "a %s input has \"name\" %s, \"payload\" only for "
			   "events, \"count\" only for ticks, \"args\" only for calls",
			   trace_kind_name(in->kind), in->kind == TR_TICK ? "never" : "always");
	pj(p, sizeof p, path, ".name");
	if (name && (r = get_str(e, p, name, MP_MAX_NAME_BYTES, &in->name)) < 0)
		return r;
	if (in->name && in->name[0] == '\0')
		return bad(e, p, "empty name");
	pj(p, sizeof p, path, ".payload");
	if (payload && (r = check_value(e, p, payload)) < 0)
		return r;
	in->payload = payload ? json_incref(payload) : (in->kind == TR_EVENT ? json_null() : NULL);
	pj(p, sizeof p, path, ".count");
	if (count && ((r = get_u64(e, p, count, &n)) < 0 || n == 0 || n > MP_MAX_TICKS_PER_REQUEST))
		return r < 0 ? r : bad(e, p, "expected 1..%u", (unsigned)MP_MAX_TICKS_PER_REQUEST);
	in->count = count ? (uint32_t)n : 0;
	pj(p, sizeof p, path, ".args");
	if (in->kind == TR_CALL && args == NULL)
		in->args = json_array();
	else if (args && (r = check_values(e, p, args, MP_MAX_CALL_ARGS)) < 0)
		return r;
	else if (args)
		in->args = json_incref(args);
	return 0;
}

static int parse_input(struct perr *e, size_t i, json_t *o, tr_input *in, uint64_t prev_tick)
{
	static const char *const keys[] = {
	    "index",  "tick",	 "kind",   "name",    "payload", "count",      "args", "answers",
	    "status", "message", "killed", "effects", "returns", "state_hash", "logs", NULL};
	const char *kind = json_string_value(json_object_get(o, "kind"));
	char path[64], p[96];
	uint64_t idx = 0;
	int r;

	snprintf(path, sizeof path, "inputs[%zu]", i);
	if (!json_is_object(o))
		return bad(e, path, "expected an object");
	if ((r = only_keys(e, path, o, keys)) < 0)
		return r;
	pj(p, sizeof p, path, ".index");
	if ((r = get_u64(e, p, json_object_get(o, "index"), &idx)) < 0)
		return r;
	if (idx != i)
		return bad(e, p, "is %llu, expected %zu", (unsigned long long)idx, i);
	in->index = idx;
	pj(p, sizeof p, path, ".tick");
	if ((r = get_u64(e, p, json_object_get(o, "tick"), &in->tick)) < 0)
		return r;
	if (in->tick < prev_tick)
		return bad(e, p, "goes back in time (previous input at tick %llu)",
			   (unsigned long long)prev_tick);
	pj(p, sizeof p, path, ".kind");
	for (in->kind = TR_EVENT; kind && in->kind <= TR_CALL; in->kind++)
		if (strcmp(kind, trace_kind_name(in->kind)) == 0)
			break;
	if (kind == NULL || in->kind > TR_CALL)
		return bad(e, p, "expected \"event\", \"tick\" or \"call\"");
	if ((r = parse_kind_fields(e, path, o, in)) < 0)
		return r;
	pj(p, sizeof p, path, ".answers");
	if ((r = parse_answers(e, p, json_object_get(o, "answers"), in)) < 0)
		return r;
	r = parse_outcome(e, path, o, &in->out);
	in->done = r == 0;
	return r;
}

static int parse_pack(struct perr *e, json_t *o, trace *t)
{
	static const char *const keys[] = {"id", "version", "content_hash", NULL};
	int r;

	if (!json_is_object(o))
		return bad(e, "pack", "expected an object");
	if ((r = only_keys(e, "pack", o, keys)) < 0 ||
	    (r = get_str(e, "pack.id", json_object_get(o, "id"), MP_MAX_ID_BYTES, &t->pack_id)) <
		0 ||
	    (r = get_str(e, "pack.version", json_object_get(o, "version"), 64, &t->pack_version)) <
		0)
		return r;
	return get_hex32(e, "pack.content_hash", json_object_get(o, "content_hash"),
			 t->content_hash);
}

static int parse_snapshot(struct perr *e, json_t *j, trace *t)
{
	const char *s = json_string_value(j);
	size_t n = s ? json_string_length(j) : 0, len = 0;

	if (s == NULL || n == 0 || n / 4 * 3 > MP_SNAPSHOT_MAX_BYTES)
		return bad(e, "start_snapshot", "expected non-empty base64 of at most %u bytes",
			   (unsigned)MP_SNAPSHOT_MAX_BYTES);
	t->start_snapshot = malloc(n / 4 * 3 + 3);
	if (t->start_snapshot == NULL)
		return -ENOMEM;
	if (sodium_base642bin(t->start_snapshot, n / 4 * 3 + 3, s, n, NULL, &len, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    len == 0)
		return bad(e, "start_snapshot", "not valid padded base64");
	t->snapshot_len = len;
	return 0;
}

/* host_api: an object the worker's schema parser accepts, bounded. */
static int parse_host_api(struct perr *e, json_t *j, trace *t)
{
	char serr[512], *s = NULL;
	sch_schema *sch = NULL;
	size_t n;
	int r;

	if (!json_is_object(j))
		return bad(e, "host_api", "expected an object");
	s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	if (s == NULL)
		return -ENOMEM;
	n = strlen(s);
	if (n > TRACE_MAX_HOST_API)
		r = bad(e, "host_api", "larger than %u bytes (as compact JSON)",
			(unsigned)TRACE_MAX_HOST_API);
	else
		r = sch_parse(s, n, &sch, serr, sizeof serr);
	sch_free(sch);
	if (r == -EINVAL && n <= TRACE_MAX_HOST_API)
		r = bad(e, "host_api", "%s", serr);
	if (r == 0 && (t->host_api = json_loads(s, JSON_REJECT_DUPLICATES, NULL)) == NULL)
		r = -ENOMEM;
	free(s);
	return r;
}

static int parse_header(struct perr *e, json_t *root, trace *t)
{
	static const char *const keys[] = {"format",   "pack",	 "seed",
					   "tick_ms",  "init",	 "start_snapshot",
					   "host_api", "inputs", NULL};
	json_t *f = json_object_get(root, "format"), *init = json_object_get(root, "init");
	uint64_t tick_ms = 0;
	int r;

	if (!json_is_object(root))
		return bad(e, "trace", "expected a JSON object");
	if ((r = only_keys(e, "trace", root, keys)) < 0)
		return r;
	if (!json_is_integer(f) || json_integer_value(f) != TRACE_FORMAT)
		return bad(e, "format", "expected %d", TRACE_FORMAT);
	if ((r = parse_pack(e, json_object_get(root, "pack"), t)) < 0 ||
	    (r = get_u64(e, "seed", json_object_get(root, "seed"), &t->seed)) < 0 ||
	    (r = get_u64(e, "tick_ms", json_object_get(root, "tick_ms"), &tick_ms)) < 0)
		return r;
	if (tick_ms == 0 || tick_ms > MP_MAX_TICK_MS)
		return bad(e, "tick_ms", "expected 1..%u", (unsigned)MP_MAX_TICK_MS);
	t->tick_ms = (uint32_t)tick_ms;
	if (json_object_get(root, "start_snapshot") &&
	    (r = parse_snapshot(e, json_object_get(root, "start_snapshot"), t)) < 0)
		return r;
	if (json_object_get(root, "host_api") &&
	    (r = parse_host_api(e, json_object_get(root, "host_api"), t)) < 0)
		return r;
	if (init && t->start_snapshot)
		return bad(e, "init", "a trace that starts from a snapshot has no init");
	if (init && !json_is_object(init))
		return bad(e, "init", "expected an object");
	if (init) {
		static const char *const ikeys[] = {"status",  "message", "killed",	"effects",
						    "returns", "logs",	  "state_hash", NULL};
		if ((r = only_keys(e, "init", init, ikeys)) < 0)
			return r;
		r = parse_outcome(e, "init", init, &t->init);
		t->has_init = 1; /* so that trace_free releases a partial outcome */
	}
	return r;
}

static int parse_inputs(struct perr *e, json_t *arr, trace *t)
{
	uint64_t prev = 0;
	json_t *o;
	size_t i;
	int r;

	if (!json_is_array(arr))
		return bad(e, "inputs", "expected an array");
	json_array_foreach(arr, i, o)
	{
		tr_input *in = trace_grow_inputs(t);
		if (in == NULL)
			return -ENOMEM;
		t->n_inputs++;
		if ((r = parse_input(e, i, o, in, prev)) < 0)
			return r;
		prev = in->tick;
		if (in->out.killed && i + 1 != json_array_size(arr))
			return bad(e, "inputs", "input %zu killed its worker but is not the last",
				   i);
	}
	return 0;
}

int trace_parse(const char *text, size_t len, trace **out, char *err, size_t errlen)
{
	struct perr e = {err, errlen};
	json_error_t je;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	trace *t = NULL;
	int r;

	if (errlen)
		err[0] = '\0';
	if (root == NULL) {
		snprintf(err, errlen, "JSON line %d column %d: %s", je.line, je.column, je.text);
		return -EINVAL;
	}
	t = calloc(1, sizeof *t);
	r = t ? parse_header(&e, root, t) : -ENOMEM;
	if (r == 0)
		r = parse_inputs(&e, json_object_get(root, "inputs"), t);
	json_decref(root);
	if (r < 0) {
		if (r == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		trace_free(t);
		return r;
	}
	*out = t;
	return 0;
}
