/*
 * trace — the trace JSON model (see trace.h and docs/trace-format.md). Runs in
 * spk and the supervisor. Worker replies reaching the builders were checked by
 * wchan; trace text given to trace_parse() is untrusted and fully checked.
 */
#include "common/trace.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/val_json.h"
#include "policy/limits.h"

#define TRACE_MAX_RETURNS 256 /* values a call may return, as recorded */

typedef Moonpen__Worker__V1__ToWorker to_worker;
typedef Moonpen__Worker__V1__FromWorker from_worker;

/* ---- content hash ------------------------------------------------------------ */

int trace_content_hash(Moonpen__Worker__V1__PackFile *const *files, size_t n, uint8_t out[32])
{
	crypto_generichash_state st;
	size_t i;

	for (i = 1; i < n; i++)
		if (strcmp(files[i - 1]->path, files[i]->path) >= 0)
			return -EINVAL;
	crypto_generichash_init(&st, NULL, 0, 32);
	for (i = 0; i < n; i++) {
		uint64_t len = files[i]->data.len;
		uint8_t le[8];
		unsigned b;

		for (b = 0; b < 8; b++)
			le[b] = (uint8_t)(len >> (8 * b));
		crypto_generichash_update(&st, (const uint8_t *)files[i]->path,
					  strlen(files[i]->path) + 1);
		crypto_generichash_update(&st, le, sizeof le);
		crypto_generichash_update(&st, files[i]->data.data, len);
	}
	crypto_generichash_final(&st, out, 32);
	return 0;
}

char *trace_hex32(const uint8_t h[32], char buf[65])
{
	return sodium_bin2hex(buf, 65, h, 32);
}

/* ---- outcomes ------------------------------------------------------------------ */

void trace_outcome_clear(tr_outcome *o)
{
	free(o->message);
	json_decref(o->effects);
	json_decref(o->returns);
	memset(o, 0, sizeof *o);
}

/* A JSON array of Values; NULL when out of memory. */
static json_t *vals_json(Moonpen__V1__Value *const *v, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a && i < n; i++)
		if (json_array_append_new(a, vjson_to_json(v[i])) != 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *effect_json(const Moonpen__V1__Effect *ef)
{
	json_t *o = json_pack("{s:s, s:s, s:o?}", "api", ef->api, "fn", ef->fn, "args",
			      vals_json(ef->args, ef->n_args));

	if (o && json_object_get(o, "args") == NULL) {
		json_decref(o);
		return NULL;
	}
	if (o && ef->trigger_id && ef->trigger_id[0] &&
	    json_object_set_new(o, "trigger", json_string(ef->trigger_id)) != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *effects_json(const Moonpen__V1__Result *res)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a && res && i < res->n_effects; i++)
		if (json_array_append_new(a, effect_json(res->effects[i])) != 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

int trace_outcome_from_reply(tr_outcome *o, const from_worker *fw)
{
	const Moonpen__V1__Result *res = fw->result;

	memset(o, 0, sizeof *o);
	o->status = fw->status ? fw->status->code : MOONPEN__V1__STATUS__CODE__INTERNAL;
	if (fw->status && fw->status->message && fw->status->message[0] &&
	    (o->message = strdup(fw->status->message)) == NULL)
		goto nomem;
	o->effects = effects_json(res);
	o->returns = res ? vals_json(res->returns, res->n_returns) : json_array();
	if (o->effects == NULL || o->returns == NULL)
		goto nomem;
	if (res && res->state_hash.len == 32) {
		o->has_hash = 1;
		memcpy(o->state_hash, res->state_hash.data, 32);
	}
	return 0;
nomem:
	trace_outcome_clear(o);
	return -ENOMEM;
}

int trace_outcome_killed(tr_outcome *o, st_code code, const char *why)
{
	memset(o, 0, sizeof *o);
	o->status = code;
	o->killed = 1;
	o->effects = json_array();
	o->returns = json_array();
	if (why && why[0])
		o->message = strdup(why);
	if (o->effects == NULL || o->returns == NULL || (why && why[0] && o->message == NULL)) {
		trace_outcome_clear(o);
		return -ENOMEM;
	}
	return 0;
}

/* ---- building ------------------------------------------------------------------- */

int trace_from_init(const Moonpen__Worker__V1__Init *init, trace **out)
{
	trace *t = calloc(1, sizeof *t);
	int r = -ENOMEM;

	if (t == NULL)
		return -ENOMEM;
	t->pack_id = strdup(init->pack_id);
	t->pack_version = strdup(init->pack_version);
	if (t->pack_id == NULL || t->pack_version == NULL)
		goto out;
	r = trace_content_hash(init->files, init->n_files, t->content_hash);
	if (r < 0)
		goto out;
	t->seed = init->seed;
	t->tick_ms = init->tick_ms;
	if (init->snapshot.len > 0) {
		r = -ENOMEM;
		t->start_snapshot = malloc(init->snapshot.len);
		if (t->start_snapshot == NULL)
			goto out;
		memcpy(t->start_snapshot, init->snapshot.data, init->snapshot.len);
		t->snapshot_len = init->snapshot.len;
	}
	*out = t;
	return 0;
out:
	trace_free(t);
	return r;
}

int trace_set_init_reply(trace *t, const from_worker *fw)
{
	int r;

	if (t->has_init)
		trace_outcome_clear(&t->init);
	r = trace_outcome_from_reply(&t->init, fw);
	t->has_init = r == 0;
	return r;
}

static tr_input *open_input(trace *t)
{
	if (t->n_inputs == 0 || t->inputs[t->n_inputs - 1].done)
		return NULL;
	return &t->inputs[t->n_inputs - 1];
}

static tr_input *grow_inputs(trace *t)
{
	tr_input *in;

	if (t->n_inputs == t->cap_inputs) {
		size_t ncap = t->cap_inputs ? t->cap_inputs * 2 : 16;
		tr_input *n = realloc(t->inputs, ncap * sizeof *n);
		if (n == NULL)
			return NULL;
		t->inputs = n;
		t->cap_inputs = ncap;
	}
	in = &t->inputs[t->n_inputs];
	memset(in, 0, sizeof *in);
	in->index = t->n_inputs;
	return in;
}

static int fill_input(tr_input *in, const to_worker *tw)
{
	switch (tw->op_case) {
	case MOONPEN__WORKER__V1__TO_WORKER__OP_EVENT:
		in->kind = TR_EVENT;
		in->name = strdup(tw->event->name);
		in->payload = vjson_to_json(tw->event->payload);
		return in->name && in->payload ? 0 : -ENOMEM;
	case MOONPEN__WORKER__V1__TO_WORKER__OP_TICK:
		in->kind = TR_TICK;
		in->count = tw->tick->count ? tw->tick->count : 1;
		return 0;
	case MOONPEN__WORKER__V1__TO_WORKER__OP_CALL:
		in->kind = TR_CALL;
		in->name = strdup(tw->call->function);
		in->args = vals_json(tw->call->args, tw->call->n_args);
		return in->name && in->args ? 0 : -ENOMEM;
	default:
		return -EINVAL;
	}
}

static void input_clear(tr_input *in)
{
	size_t i;

	free(in->name);
	json_decref(in->payload);
	json_decref(in->args);
	for (i = 0; i < in->n_answers; i++) {
		json_decref(in->answers[i].value);
		free(in->answers[i].error);
	}
	free(in->answers);
	trace_outcome_clear(&in->out);
	memset(in, 0, sizeof *in);
}

int trace_begin_input(trace *t, uint64_t tick, const to_worker *tw)
{
	tr_input *in = grow_inputs(t);
	int r;

	if (in == NULL)
		return -ENOMEM;
	in->tick = tick;
	r = fill_input(in, tw);
	if (r < 0) {
		input_clear(in);
		return r;
	}
	t->n_inputs++;
	return 0;
}

static tr_answer *grow_answers(tr_input *in)
{
	if (in->n_answers == in->cap_answers) {
		size_t ncap = in->cap_answers ? in->cap_answers * 2 : 4;
		tr_answer *n = realloc(in->answers, ncap * sizeof *n);
		if (n == NULL)
			return NULL;
		in->answers = n;
		in->cap_answers = ncap;
	}
	memset(&in->answers[in->n_answers], 0, sizeof in->answers[0]);
	return &in->answers[in->n_answers];
}

int trace_add_answer(trace *t, const Moonpen__V1__HostResult *hr)
{
	tr_input *in = open_input(t);
	tr_answer *a;

	if (in == NULL)
		return -EINVAL;
	a = grow_answers(in);
	if (a == NULL)
		return -ENOMEM;
	a->call_id = hr->call_id;
	if (hr->answer_case == MOONPEN__V1__HOST_RESULT__ANSWER_ERROR)
		a->error = strdup(hr->error ? hr->error : "");
	else
		a->value = vjson_to_json(hr->value);
	if (a->error == NULL && a->value == NULL)
		return -ENOMEM;
	in->n_answers++;
	return 0;
}

int trace_end_input(trace *t, const from_worker *fw)
{
	tr_input *in = open_input(t);
	int r;

	if (in == NULL)
		return -EINVAL;
	r = trace_outcome_from_reply(&in->out, fw);
	in->done = r == 0;
	return r;
}

int trace_end_killed(trace *t, st_code code, const char *why)
{
	tr_input *in = open_input(t);
	int r;

	if (in == NULL)
		return -EINVAL;
	r = trace_outcome_killed(&in->out, code, why);
	in->done = r == 0;
	return r;
}

void trace_free(trace *t)
{
	size_t i;

	if (t == NULL)
		return;
	free(t->pack_id);
	free(t->pack_version);
	free(t->start_snapshot);
	trace_outcome_clear(&t->init);
	for (i = 0; i < t->n_inputs; i++)
		input_clear(&t->inputs[i]);
	free(t->inputs);
	free(t);
}

/* ---- JSON text: writing -------------------------------------------------------- */

static json_t *u64_json(uint64_t v)
{
	char buf[24];

	if (v <= (uint64_t)INT64_MAX)
		return json_integer((json_int_t)v);
	snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
	return json_string(buf);
}

static const char *status_name(st_code c)
{
	const ProtobufCEnumValue *v =
	    protobuf_c_enum_descriptor_get_value(&moonpen__v1__status__code__descriptor, (int)c);

	return v ? v->name : "UNKNOWN";
}

/* Sets key to v (stolen, NULL: out of memory). 0 or -ENOMEM. */
static int set(json_t *o, const char *key, json_t *v)
{
	return v && json_object_set_new(o, key, v) == 0 ? 0 : -ENOMEM;
}

json_t *trace_outcome_json(const tr_outcome *o)
{
	json_t *j = json_object();
	char hex[65];
	int r;

	if (j == NULL)
		return NULL;
	r = set(j, "status", json_string(status_name(o->status)));
	if (r == 0 && o->message)
		r = set(j, "message", json_string(o->message));
	if (r == 0 && o->killed)
		r = set(j, "killed", json_true());
	if (r == 0)
		r = set(j, "effects", json_deep_copy(o->effects ? o->effects : json_array()));
	if (r == 0)
		r = set(j, "returns", json_deep_copy(o->returns ? o->returns : json_array()));
	if (r == 0 && o->has_hash)
		r = set(j, "state_hash", json_string(trace_hex32(o->state_hash, hex)));
	if (r < 0) {
		json_decref(j);
		return NULL;
	}
	return j;
}

static json_t *answers_json(const tr_input *in)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a && i < in->n_answers; i++) {
		const tr_answer *an = &in->answers[i];
		json_t *o = json_object();
		int r = o ? set(o, "call_id", u64_json(an->call_id)) : -ENOMEM;
		if (r == 0)
			r = an->error ? set(o, "error", json_string(an->error))
				      : set(o, "value", json_deep_copy(an->value));
		if (r < 0 || json_array_append_new(a, o) != 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static const char *const kind_names[] = {"event", "tick", "call"};

json_t *trace_input_json(const tr_input *in)
{
	json_t *j = json_object(), *o;
	int r;

	if (j == NULL)
		return NULL;
	r = set(j, "index", u64_json(in->index));
	if (r == 0)
		r = set(j, "tick", u64_json(in->tick));
	if (r == 0)
		r = set(j, "kind", json_string(kind_names[in->kind]));
	if (r == 0 && in->kind != TR_TICK)
		r = set(j, "name", json_string(in->name));
	if (r == 0 && in->kind == TR_EVENT)
		r = set(j, "payload", json_deep_copy(in->payload ? in->payload : json_null()));
	if (r == 0 && in->kind == TR_TICK)
		r = set(j, "count", json_integer(in->count));
	if (r == 0 && in->kind == TR_CALL)
		r = set(j, "args", json_deep_copy(in->args));
	if (r == 0)
		r = set(j, "answers", answers_json(in));
	o = r == 0 && in->done ? trace_outcome_json(&in->out) : NULL;
	if (r == 0 && in->done && (o == NULL || json_object_update(j, o) != 0))
		r = -ENOMEM;
	json_decref(o);
	if (r < 0) {
		json_decref(j);
		return NULL;
	}
	return j;
}

static json_t *header_json(const trace *t)
{
	json_t *j = json_object();
	char hex[65];
	int r = j ? 0 : -ENOMEM;

	if (r == 0)
		r = set(j, "format", json_integer(TRACE_FORMAT));
	if (r == 0)
		r = set(j, "pack",
			json_pack("{s:s, s:s, s:s}", "id", t->pack_id, "version", t->pack_version,
				  "content_hash", trace_hex32(t->content_hash, hex)));
	if (r == 0)
		r = set(j, "seed", u64_json(t->seed));
	if (r == 0)
		r = set(j, "tick_ms", json_integer(t->tick_ms));
	if (r == 0 && t->start_snapshot) {
		size_t n =
		    sodium_base64_ENCODED_LEN(t->snapshot_len, sodium_base64_VARIANT_ORIGINAL);
		char *b = malloc(n);
		if (b)
			sodium_bin2base64(b, n, t->start_snapshot, t->snapshot_len,
					  sodium_base64_VARIANT_ORIGINAL);
		r = set(j, "start_snapshot", b ? json_string(b) : NULL);
		free(b);
	}
	if (r == 0 && t->has_init)
		r = set(j, "init", trace_outcome_json(&t->init));
	if (r < 0) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* Appends s to the growing buffer; 0 or -ENOMEM. */
static int cat(char **buf, size_t *len, size_t *cap, const char *s)
{
	size_t n = strlen(s);

	if (*len + n + 1 > *cap) {
		size_t ncap = (*cap ? *cap : 256);
		char *b;
		while (ncap < *len + n + 1)
			ncap *= 2;
		b = realloc(*buf, ncap);
		if (b == NULL)
			return -ENOMEM;
		*buf = b;
		*cap = ncap;
	}
	memcpy(*buf + *len, s, n + 1);
	*len += n;
	return 0;
}

/* The header object, then one input per line: readable and diffable. */
char *trace_dumps(const trace *t)
{
	const size_t flags = JSON_PRESERVE_ORDER | JSON_COMPACT;
	json_t *h = header_json(t);
	char *hs = h ? json_dumps(h, flags) : NULL, *buf = NULL;
	size_t len = 0, cap = 0, i;
	int r = hs ? 0 : -ENOMEM;

	if (r == 0)
		hs[strlen(hs) - 1] = '\0'; /* drop the closing brace */
	if (r == 0)
		r = cat(&buf, &len, &cap, hs);
	if (r == 0)
		r = cat(&buf, &len, &cap, ",\n\"inputs\":[");
	for (i = 0; r == 0 && i < t->n_inputs; i++) {
		json_t *in = trace_input_json(&t->inputs[i]);
		char *s = in ? json_dumps(in, flags) : NULL;
		r = s ? cat(&buf, &len, &cap, i ? ",\n" : "\n") : -ENOMEM;
		if (r == 0)
			r = cat(&buf, &len, &cap, s);
		free(s);
		json_decref(in);
	}
	if (r == 0)
		r = cat(&buf, &len, &cap, "\n]}\n");
	free(hs);
	json_decref(h);
	if (r < 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

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
		if (grow_answers(in) == NULL)
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
			   kind_names[in->kind], in->kind == TR_TICK ? "never" : "always");
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
	static const char *const keys[] = {"index",  "tick",	"kind",	   "name",	 "payload",
					   "count",  "args",	"answers", "status",	 "message",
					   "killed", "effects", "returns", "state_hash", NULL};
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
		if (strcmp(kind, kind_names[in->kind]) == 0)
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

static int parse_header(struct perr *e, json_t *root, trace *t)
{
	static const char *const keys[] = {"format", "pack",	       "seed",	 "tick_ms",
					   "init",   "start_snapshot", "inputs", NULL};
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
	if (init && t->start_snapshot)
		return bad(e, "init", "a trace that starts from a snapshot has no init");
	if (init && !json_is_object(init))
		return bad(e, "init", "expected an object");
	if (init) {
		static const char *const ikeys[] = {"status",  "message",    "killed", "effects",
						    "returns", "state_hash", NULL};
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
		tr_input *in = grow_inputs(t);
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

/* ---- replay ------------------------------------------------------------------------- */

/* Compact JSON of j into buf, "..." when it does not fit. */
static void show(const json_t *j, char *buf, size_t len)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);

	snprintf(buf, len, "%s", s ? s : "(out of memory)");
	if (s && strlen(s) >= len && len > 4)
		memcpy(buf + len - 4, "...", 4);
	free(s);
}

static int differ(const char *what, const json_t *want, const json_t *got, char *msg, size_t len)
{
	char a[2048], b[2048];

	show(want, a, sizeof a);
	show(got, b, sizeof b);
	snprintf(msg, len, "%s: expected %s, got %s", what, a, b);
	return 1;
}

/* Names the first effect that differs, or the first one missing or extra. */
static int effects_differ(const json_t *want, const json_t *got, char *msg, size_t len)
{
	size_t i, nw = json_array_size(want), ng = json_array_size(got);
	char what[64];

	for (i = 0; i < nw && i < ng; i++)
		if (!json_equal(json_array_get(want, i), json_array_get(got, i)))
			break;
	snprintf(what, sizeof what, "effects[%zu] (of %zu expected, %zu got)", i, nw, ng);
	if (i < nw && i < ng)
		return differ(what, json_array_get(want, i), json_array_get(got, i), msg, len);
	if (i < nw)
		return differ(what, json_array_get(want, i), json_null(), msg, len);
	return differ(what, json_null(), json_array_get(got, i), msg, len);
}

int trace_outcome_diff(const tr_outcome *want, const tr_outcome *got, char *msg, size_t len)
{
	char a[65], b[65];

	if (want->status != got->status || want->killed != got->killed) {
		snprintf(msg, len, "status: expected %s%s, got %s%s (%s)",
			 status_name(want->status), want->killed ? " (worker killed)" : "",
			 status_name(got->status), got->killed ? " (worker killed)" : "",
			 got->message ? got->message : "");
		return 1;
	}
	if (!json_equal(want->effects, got->effects))
		return effects_differ(want->effects, got->effects, msg, len);
	if (!json_equal(want->returns, got->returns))
		return differ("returns", want->returns, got->returns, msg, len);
	if (want->has_hash != got->has_hash ||
	    (want->has_hash && memcmp(want->state_hash, got->state_hash, 32) != 0)) {
		snprintf(msg, len, "state_hash: expected %s, got %s",
			 want->has_hash ? trace_hex32(want->state_hash, a) : "none",
			 got->has_hash ? trace_hex32(got->state_hash, b) : "none");
		return 1;
	}
	return 0;
}

/* A malloc'd Value array from a JSON array (already checked by the parser or
 * the caller). */
static int vals_from_json(json_t *a, Moonpen__V1__Value ***out, size_t *n, char *err, size_t errlen)
{
	size_t i, na = json_array_size(a);
	int r = 0;

	*n = 0;
	*out = na ? calloc(na, sizeof **out) : NULL;
	if (na && *out == NULL)
		return -ENOMEM;
	for (i = 0; i < na && r == 0; i++) {
		r = vjson_from_json(json_array_get(a, i), MP_MAX_VALUE_DEPTH, &(*out)[i], err,
				    errlen);
		if (r == 0)
			(*n)++;
	}
	return r;
}

static int event_msg(const tr_input *in, const char *id, to_worker *tw, char *err, size_t errlen)
{
	Moonpen__V1__SendEvent *ev = malloc(sizeof *ev);

	if (ev == NULL)
		return -ENOMEM;
	moonpen__v1__send_event__init(ev);
	tw->op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_EVENT;
	tw->event = ev;
	ev->instance_id = strdup(id);
	ev->name = strdup(in->name);
	if (ev->instance_id == NULL || ev->name == NULL)
		return -ENOMEM;
	if (in->payload == NULL || json_is_null(in->payload))
		return 0;
	return vjson_from_json(in->payload, MP_MAX_VALUE_DEPTH, &ev->payload, err, errlen);
}

static int tick_msg(const tr_input *in, const char *id, to_worker *tw)
{
	Moonpen__V1__Tick *tk = malloc(sizeof *tk);

	if (tk == NULL)
		return -ENOMEM;
	moonpen__v1__tick__init(tk);
	tw->op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_TICK;
	tw->tick = tk;
	tk->count = in->count;
	tk->instance_id = strdup(id);
	return tk->instance_id ? 0 : -ENOMEM;
}

static int call_msg(const tr_input *in, const char *id, to_worker *tw, char *err, size_t errlen)
{
	Moonpen__V1__Call *c = malloc(sizeof *c);

	if (c == NULL)
		return -ENOMEM;
	moonpen__v1__call__init(c);
	tw->op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_CALL;
	tw->call = c;
	c->instance_id = strdup(id);
	c->function = strdup(in->name);
	if (c->instance_id == NULL || c->function == NULL)
		return -ENOMEM;
	return vals_from_json(in->args, &c->args, &c->n_args, err, errlen);
}

int trace_input_msg(const tr_input *in, const char *instance_id, to_worker **out, char *err,
		    size_t errlen)
{
	to_worker *tw = malloc(sizeof *tw);
	int r;

	if (errlen)
		err[0] = '\0';
	if (tw == NULL)
		return -ENOMEM;
	moonpen__worker__v1__to_worker__init(tw);
	if (in->kind == TR_EVENT)
		r = event_msg(in, instance_id, tw, err, errlen);
	else if (in->kind == TR_TICK)
		r = tick_msg(in, instance_id, tw);
	else
		r = call_msg(in, instance_id, tw, err, errlen);
	if (r < 0) {
		protobuf_c_message_free_unpacked(&tw->base, NULL);
		return r;
	}
	*out = tw;
	return 0;
}

int trace_answer_msg(const tr_answer *a, const char *instance_id, Moonpen__V1__HostResult **out,
		     char *err, size_t errlen)
{
	Moonpen__V1__HostResult *hr = malloc(sizeof *hr);
	int r = 0;

	if (errlen)
		err[0] = '\0';
	if (hr == NULL)
		return -ENOMEM;
	moonpen__v1__host_result__init(hr);
	hr->call_id = a->call_id;
	hr->instance_id = strdup(instance_id);
	if (a->error) {
		hr->answer_case = MOONPEN__V1__HOST_RESULT__ANSWER_ERROR;
		hr->error = strdup(a->error);
		if (hr->error == NULL)
			r = -ENOMEM;
	} else {
		hr->answer_case = MOONPEN__V1__HOST_RESULT__ANSWER_VALUE;
		r = vjson_from_json(a->value, MP_MAX_VALUE_DEPTH, &hr->value, err, errlen);
	}
	if (r == 0 && hr->instance_id == NULL)
		r = -ENOMEM;
	if (r < 0) {
		protobuf_c_message_free_unpacked(&hr->base, NULL);
		return r;
	}
	*out = hr;
	return 0;
}
