/*
 * trace — the trace JSON model (see trace.h and docs/trace-format.md): building,
 * writing, replay comparisons. Runs in spk and the supervisor. Worker replies
 * reaching the builders were checked by wchan. Trace text is parsed in
 * trace_parse.c.
 */
#include "common/trace.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/trace_priv.h"
#include "common/val.h"
#include "common/val_json.h"
#include "policy/limits.h"

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

/* Sets key to v (stolen, NULL: out of memory). 0 or -ENOMEM. */
static int set(json_t *o, const char *key, json_t *v)
{
	return v && json_object_set_new(o, key, v) == 0 ? 0 : -ENOMEM;
}

void trace_outcome_clear(tr_outcome *o)
{
	free(o->message);
	json_decref(o->effects);
	json_decref(o->returns);
	json_decref(o->logs);
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

/* A JSON string of s made valid UTF-8 as wreply's val_utf8_scrub does (the
 * worker's text is bytes; wchan has scrubbed it already, jansson needs it). */
static json_t *scrubbed(const char *s)
{
	char *c = strdup(s ? s : "");
	json_t *j;

	if (c == NULL)
		return NULL;
	val_utf8_scrub(c);
	j = json_string(c);
	free(c);
	return j;
}

static json_t *log_json(const char *level, const char *message)
{
	json_t *o = json_object();

	if (o && set(o, "level", scrubbed(level)) == 0 && set(o, "message", scrubbed(message)) == 0)
		return o;
	json_decref(o);
	return NULL;
}

/* The log lines of a result as [{"level","message"}] (the line's tick is not
 * kept: it is the input's own, or follows from a tick input's count). */
static json_t *logs_json(const Moonpen__V1__Result *res)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a && res && i < res->n_logs; i++)
		if (json_array_append_new(
			a, log_json(res->logs[i]->level, res->logs[i]->message)) != 0) {
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
	o->logs = logs_json(res);
	if (o->effects == NULL || o->returns == NULL || o->logs == NULL)
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
	o->logs = json_array(); /* the worker died: its lines of this input are lost */
	if (why && why[0])
		o->message = strdup(why);
	if (o->effects == NULL || o->returns == NULL || o->logs == NULL ||
	    (why && why[0] && o->message == NULL)) {
		trace_outcome_clear(o);
		return -ENOMEM;
	}
	return 0;
}

/* ---- building ------------------------------------------------------------------- */

/* *out: a copy of the object j with its keys sorted at every level (what
 * trace_dumps writes, stable across parse and dump). 0, -EINVAL (not an
 * object), -ENOMEM. */
static int canon_object(json_t *j, json_t **out)
{
	char *s;

	if (!json_is_object(j))
		return -EINVAL;
	s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	*out = s ? json_loads(s, JSON_REJECT_DUPLICATES, NULL) : NULL;
	free(s);
	return *out ? 0 : -ENOMEM;
}

/* The schema bytes an Init carries as host_api (empty: the empty schema). */
static int host_api_from_init(const Moonpen__Worker__V1__Init *init, trace *t)
{
	json_t *j;
	int r;

	if (init->host_api_json.len == 0)
		j = json_pack("{s:{}, s:i}", "apis", "version", 1);
	else
		j = json_loadb((const char *)init->host_api_json.data, init->host_api_json.len,
			       JSON_REJECT_DUPLICATES, NULL);
	if (j == NULL)
		return init->host_api_json.len == 0 ? -ENOMEM : -EINVAL;
	r = canon_object(j, &t->host_api);
	json_decref(j);
	return r;
}

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
	r = host_api_from_init(init, t);
	if (r < 0)
		goto out;
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

tr_input *trace_grow_inputs(trace *t)
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
	tr_input *in = trace_grow_inputs(t);
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

tr_answer *trace_grow_answers(tr_input *in)
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
	a = trace_grow_answers(in);
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
	json_decref(t->host_api);
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
	if (r == 0 && o->logs)
		r = set(j, "logs", json_deep_copy(o->logs));
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

const char *trace_kind_name(tr_kind k)
{
	static const char *const names[] = {"event", "tick", "call"};

	return names[k];
}

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
		r = set(j, "kind", json_string(trace_kind_name(in->kind)));
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

int trace_host_api_text(const trace *t, char **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	if (t->host_api == NULL)
		return 0;
	*out = json_dumps(t->host_api, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (*out == NULL)
		return -ENOMEM;
	*len = strlen(*out);
	return 0;
}

/* ,"host_api":{...} on a line of its own, when the trace has one. */
static int cat_host_api(char **buf, size_t *len, size_t *cap, const trace *t)
{
	char *s = NULL;
	size_t n;
	int r = trace_host_api_text(t, &s, &n);

	if (r == 0 && s)
		r = cat(buf, len, cap, ",\n\"host_api\":");
	if (r == 0 && s)
		r = cat(buf, len, cap, s);
	free(s);
	return r;
}

/* The header object, then host_api, then one input per line: readable and
 * diffable. */
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
		r = cat_host_api(&buf, &len, &cap, t);
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

/* Names the first effect (or log line) that differs, or the first one
 * missing or extra. */
static int items_differ(const char *name, const json_t *want, const json_t *got, char *msg,
			size_t len)
{
	size_t i, nw = json_array_size(want), ng = json_array_size(got);
	char what[64];

	for (i = 0; i < nw && i < ng; i++)
		if (!json_equal(json_array_get(want, i), json_array_get(got, i)))
			break;
	snprintf(what, sizeof what, "%s[%zu] (of %zu expected, %zu got)", name, i, nw, ng);
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
		return items_differ("effects", want->effects, got->effects, msg, len);
	if (!json_equal(want->returns, got->returns))
		return differ("returns", want->returns, got->returns, msg, len);
	/* a trace without logs (older) says nothing about them */
	if (want->logs && got->logs && !json_equal(want->logs, got->logs))
		return items_differ("logs", want->logs, got->logs, msg, len);
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
