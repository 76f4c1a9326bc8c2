/*
 * run — spk run: a pack in one real confined worker, fed from an events file
 * (runs in spk; the events and answers files are untrusted input, checked
 * line by line before the worker starts).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/pack.h"
#include "common/trace.h"
#include "common/val_json.h"
#include "policy/limits.h"
#include "tools/spk/session.h"
#include "tools/spk/spk.h"

#define SPK_INPUT_FILE_MAX (64u << 20)

typedef Moonpen__Worker__V1__ToWorker to_worker;

struct run_opts {
	const char *pack_dir, *events, *record, *host_api, *answers, *wrapper;
	uint64_t seed, tick_ms, deadline_ms;
};

struct inputs {
	to_worker **tw;
	unsigned *line;
	size_t n, cap;
};

struct answers {
	tr_answer *a;
	size_t n, next;
	const char *path;
};

/* ---- the events file ------------------------------------------------------------ */

static int only(json_t *o, const char *a, const char *b, char *err, size_t errlen)
{
	const char *k;
	json_t *v;

	json_object_foreach(o, k, v)
	{
		if (strcmp(k, a) != 0 && (b == NULL || strcmp(k, b) != 0)) {
			snprintf(err, errlen, "unknown member \"%s\" for a \"%s\" line", k, a);
			return -EINVAL;
		}
	}
	return 0;
}

/* One events line into a ToWorker, through the trace model's builder. */
static int event_line(json_t *o, to_worker **out, char *err, size_t errlen)
{
	tr_input in = {0};
	json_int_t n;
	int r;

	if (json_object_get(o, "event")) {
		in.kind = TR_EVENT;
		in.name = (char *)json_string_value(json_object_get(o, "event"));
		in.payload = json_object_get(o, "payload");
		r = only(o, "event", "payload", err, errlen);
	} else if (json_object_get(o, "tick")) {
		in.kind = TR_TICK;
		n = json_integer_value(json_object_get(o, "tick"));
		if (!json_is_integer(json_object_get(o, "tick")) || n < 1 ||
		    n > MP_MAX_TICKS_PER_REQUEST) {
			snprintf(err, errlen, "\"tick\": expected an integer 1..%u",
				 (unsigned)MP_MAX_TICKS_PER_REQUEST);
			return -EINVAL;
		}
		in.count = (uint32_t)n;
		r = only(o, "tick", NULL, err, errlen);
	} else if (json_object_get(o, "call")) {
		in.kind = TR_CALL;
		in.name = (char *)json_string_value(json_object_get(o, "call"));
		in.args = json_object_get(o, "args");
		r = only(o, "call", "args", err, errlen);
		if (r == 0 && in.args &&
		    (!json_is_array(in.args) || json_array_size(in.args) > MP_MAX_CALL_ARGS)) {
			snprintf(err, errlen, "\"args\": expected an array of at most %u values",
				 (unsigned)MP_MAX_CALL_ARGS);
			return -EINVAL;
		}
	} else {
		snprintf(err, errlen, "expected an object with \"event\", \"tick\" or \"call\"");
		return -EINVAL;
	}
	if (r < 0)
		return r;
	if (in.kind != TR_TICK &&
	    (in.name == NULL || in.name[0] == '\0' || strlen(in.name) > MP_MAX_NAME_BYTES)) {
		snprintf(err, errlen, "\"%s\": expected a name of 1..%u bytes",
			 in.kind == TR_EVENT ? "event" : "call", (unsigned)MP_MAX_NAME_BYTES);
		return -EINVAL;
	}
	return trace_input_msg(&in, "spk", out, err, errlen);
}

static int push_input(struct inputs *in, to_worker *tw, unsigned line)
{
	if (in->n == in->cap) {
		size_t ncap = in->cap ? in->cap * 2 : 32;
		to_worker **t = realloc(in->tw, ncap * sizeof *t);
		unsigned *l = t ? realloc(in->line, ncap * sizeof *l) : NULL;
		if (t)
			in->tw = t;
		if (l == NULL)
			return -ENOMEM;
		in->line = l;
		in->cap = ncap;
	}
	in->tw[in->n] = tw;
	in->line[in->n++] = line;
	return 0;
}

static void inputs_free(struct inputs *in)
{
	size_t i;

	for (i = 0; i < in->n; i++)
		protobuf_c_message_free_unpacked(&in->tw[i]->base, NULL);
	free(in->tw);
	free(in->line);
}

/* Calls fn on every non-blank line of text; stops at the first error, which
 * it reports as "path:LINE: ...". */
static int each_line(const char *path, char *text,
		     int (*fn)(void *, json_t *, unsigned, char *, size_t), void *arg, char *err,
		     size_t errlen)
{
	char *line = text, *nl, msg[512];
	unsigned ln = 0;
	json_error_t je;
	int r = 0;

	for (; r == 0 && line && *line; line = nl ? nl + 1 : NULL) {
		json_t *o;
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		ln++;
		if (strspn(line, " \t\r") == strlen(line))
			continue;
		o = json_loads(line, JSON_REJECT_DUPLICATES, &je);
		if (o == NULL || !json_is_object(o)) {
			snprintf(msg, sizeof msg, "%s", o ? "expected a JSON object" : je.text);
			r = -EINVAL;
		} else {
			r = fn(arg, o, ln, msg, sizeof msg);
		}
		json_decref(o);
		if (r < 0)
			snprintf(err, errlen, "%s:%u: %s", path, ln, msg);
	}
	return r;
}

static int on_event_line(void *arg, json_t *o, unsigned ln, char *err, size_t errlen)
{
	struct inputs *c = arg;
	to_worker *tw = NULL;
	int r = event_line(o, &tw, err, errlen);

	if (r == 0 && (r = push_input(c, tw, ln)) < 0) {
		protobuf_c_message_free_unpacked(&tw->base, NULL);
		snprintf(err, errlen, "out of memory");
	}
	return r;
}

static int on_answer_line(void *arg, json_t *o, unsigned ln, char *err, size_t errlen)
{
	struct answers *a = arg;
	json_t *v = json_object_get(o, "value"), *e = json_object_get(o, "error");
	tr_answer *n;
	val_t *check = NULL;
	int r;

	(void)ln;
	if ((v == NULL) == (e == NULL) || json_object_size(o) != 1 || (e && !json_is_string(e))) {
		snprintf(err, errlen, "expected {\"value\": ...} or {\"error\": \"...\"}");
		return -EINVAL;
	}
	if (v && (r = vjson_from_json(v, MP_MAX_VALUE_DEPTH, &check, err, errlen)) < 0)
		return r;
	val_free(check);
	n = realloc(a->a, (a->n + 1) * sizeof *n);
	if (n == NULL)
		return -ENOMEM;
	a->a = n;
	memset(&n[a->n], 0, sizeof n[0]);
	n[a->n].value = v ? json_incref(v) : NULL;
	n[a->n].error = e ? strdup(json_string_value(e)) : NULL;
	a->n++;
	return e && n[a->n - 1].error == NULL ? -ENOMEM : 0;
}

static int read_lines(const char *path, int (*fn)(void *, json_t *, unsigned, char *, size_t),
		      void *arg, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len;
	int r = spk_read_file(path, SPK_INPUT_FILE_MAX, &text, &len, err, errlen);

	if (r == 0 && strlen(text) != len) {
		snprintf(err, errlen, "%s: holds a NUL byte", path);
		r = -EINVAL;
	}
	if (r == 0)
		r = each_line(path, text, fn, arg, err, errlen);
	free(text);
	return r;
}

static void answers_free(struct answers *a)
{
	size_t i;

	for (i = 0; i < a->n; i++) {
		json_decref(a->a[i].value);
		free(a->a[i].error);
	}
	free(a->a);
}

/* spk_answer_fn: the next line of the answers file, for whatever query. */
static int next_answer(void *arg, const Moonpen__V1__HostCall *hc, Moonpen__V1__HostResult **out,
		       char *err, size_t errlen)
{
	struct answers *a = arg;

	if (a->next >= a->n) {
		snprintf(err, errlen, "query %s.%s (call %llu): no answer left in %s", hc->api,
			 hc->fn, (unsigned long long)hc->call_id,
			 a->path ? a->path : "(no --answers file)");
		return -ENOENT;
	}
	a->a[a->next].call_id = hc->call_id;
	return trace_answer_msg(&a->a[a->next++], "spk", out, err, errlen);
}

/* ---- running ---------------------------------------------------------------------- */

static int print_input(const tr_input *in)
{
	json_t *j = trace_input_json(in);
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

	if (s)
		printf("%s\n", s);
	fflush(stdout);
	free(s);
	json_decref(j);
	return s ? 0 : -ENOMEM;
}

/* Boots the worker and feeds every input. SPK_OK, SPK_FAIL (a worker was
 * killed: the trace ends with it), or SPK_USAGE with err. */
static int feed(spk_sess *s, struct inputs *ins, struct answers *ans, trace **t, const char *evp,
		char *err, size_t errlen)
{
	Moonpen__Worker__V1__FromWorker *fw = NULL;
	tr_outcome got;
	size_t i;
	int r = spk_sess_boot(s, NULL, 0, &fw, err, errlen);

	if (r < 0)
		return SPK_USAGE;
	r = trace_from_init(spk_sess_init(s), t);
	if (r == 0)
		r = trace_set_init_reply(*t, fw);
	if (r == 0 && fw->status->code != MOONPEN__V1__STATUS__CODE__OK) {
		snprintf(err, errlen, "the pack did not start: %s", fw->status->message);
		r = -EINVAL;
	}
	protobuf_c_message_free_unpacked(&fw->base, NULL);
	if (r < 0)
		return r == -ENOMEM ? (snprintf(err, errlen, "out of memory"), SPK_USAGE)
				    : SPK_USAGE;
	for (i = 0; i < ins->n; i++) {
		char msg[512];
		r = spk_sess_input(s, ins->tw[i], next_answer, ans, *t, &got, msg, sizeof msg);
		if (r < 0) {
			snprintf(err, errlen, "%s:%u: %s", evp, ins->line[i], msg);
			return SPK_USAGE;
		}
		trace_outcome_clear(&got);
		if (print_input(&(*t)->inputs[i]) < 0)
			return snprintf(err, errlen, "out of memory"), SPK_USAGE;
		if ((*t)->inputs[i].out.killed) {
			snprintf(err, errlen, "%s:%u: the worker was killed: %s", evp, ins->line[i],
				 (*t)->inputs[i].out.message);
			return SPK_FAIL;
		}
	}
	if (ans->next < ans->n)
		spk_err(0, "warning: %zu answers in %s were not used", ans->n - ans->next,
			ans->path);
	return SPK_OK;
}

static int record(const trace *t, const char *path, char *err, size_t errlen)
{
	char *text = trace_dumps(t);
	int r;

	if (text == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r = spk_write_file(path, text, strlen(text), err, errlen);
	free(text);
	return r;
}

static int run_opts_parse(int argc, char **argv, struct run_opts *o)
{
	const char *seed = NULL, *tick = NULL, *deadline = NULL;
	int i, k;

	for (i = 1; i < argc; i++) {
		if ((k = spk_opt(argc, argv, &i, "--seed", &seed)) ||
		    (k = spk_opt(argc, argv, &i, "--events", &o->events)) ||
		    (k = spk_opt(argc, argv, &i, "--tick-ms", &tick)) ||
		    (k = spk_opt(argc, argv, &i, "--record", &o->record)) ||
		    (k = spk_opt(argc, argv, &i, "--host-api", &o->host_api)) ||
		    (k = spk_opt(argc, argv, &i, "--answers", &o->answers)) ||
		    (k = spk_opt(argc, argv, &i, "--worker-wrapper", &o->wrapper)) ||
		    (k = spk_opt(argc, argv, &i, "--deadline-ms", &deadline))) {
			if (k < 0)
				return spk_err(SPK_USAGE, "run: %s needs a value", argv[i]);
		} else if (argv[i][0] != '-' && o->pack_dir == NULL) {
			o->pack_dir = argv[i];
		} else {
			return spk_err(SPK_USAGE, "run: unexpected argument \"%s\"", argv[i]);
		}
	}
	if (o->pack_dir == NULL || o->events == NULL)
		return spk_err(SPK_USAGE, "usage: spk run PACK_DIR --events FILE.jsonl [--seed N] "
					  "[--tick-ms MS] [--record TRACE] [--host-api SCHEMA] "
					  "[--answers FILE.jsonl] [--deadline-ms MS] "
					  "[--worker-wrapper CMD]");
	if (seed && spk_u64(seed, 0, UINT64_MAX, &o->seed) < 0)
		return spk_err(SPK_USAGE, "run: --seed: expected an unsigned integer");
	if (deadline && spk_u64(deadline, 1, MP_MAX_DEADLINE_MS, &o->deadline_ms) < 0)
		return spk_err(SPK_USAGE, "run: --deadline-ms: expected 1..%d", MP_MAX_DEADLINE_MS);
	if (tick && spk_u64(tick, 1, MP_MAX_TICK_MS, &o->tick_ms) < 0)
		return spk_err(SPK_USAGE, "run: --tick-ms: expected 1..%u",
			       (unsigned)MP_MAX_TICK_MS);
	return SPK_OK;
}

int spk_cmd_run(int argc, char **argv)
{
	struct run_opts o = {0};
	struct inputs ins = {0};
	struct answers ans = {0};
	char err[1024], *schema = NULL;
	size_t schema_len = 0;
	spk_sess *s = NULL;
	trace *t = NULL;
	pack *pk = NULL;
	int code = run_opts_parse(argc, argv, &o);

	if (code != SPK_OK)
		return code;
	ans.path = o.answers;
	code = SPK_USAGE;
	if (pack_load_dir(o.pack_dir, &pk, err, sizeof err) < 0 ||
	    spk_host_api(o.host_api, &schema, &schema_len, err, sizeof err) < 0 ||
	    read_lines(o.events, on_event_line, &ins, err, sizeof err) < 0 ||
	    (o.answers && read_lines(o.answers, on_answer_line, &ans, err, sizeof err) < 0))
		goto out;
	{
		spk_sess_opts so = {pk,
				    schema,
				    schema_len,
				    o.seed,
				    (uint32_t)o.tick_ms,
				    o.wrapper,
				    (uint32_t)o.deadline_ms};
		if (spk_sess_new(&so, &s, err, sizeof err) < 0)
			goto out;
	}
	code = feed(s, &ins, &ans, &t, o.events, err, sizeof err);
	if (t && o.record && code != SPK_USAGE && record(t, o.record, err, sizeof err) < 0)
		code = SPK_USAGE;
out:
	if (code != SPK_OK)
		spk_err(code, "%s", err);
	spk_sess_free(s);
	trace_free(t);
	inputs_free(&ins);
	answers_free(&ans);
	free(schema);
	pack_free(pk);
	return code;
}
