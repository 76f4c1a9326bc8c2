/*
 * test_trace — common/trace.c (test process only): the host_api and logs
 * members of a trace (docs/trace-format.md): built from Init and worker
 * replies, dumped, parsed back (a stable round trip), refused with the exact
 * message when malformed, and logs compared by trace_outcome_diff.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/trace.h"

#define HASH0 "0000000000000000000000000000000000000000000000000000000000000000"
#define HEAD                                                                                       \
	"{\"format\":1,\"pack\":{\"id\":\"p\",\"version\":\"1.0.0\",\"content_hash\":\"" HASH0     \
	"\"},\"seed\":7,\"tick_ms\":50,"

/* A schema with its keys out of order: the trace keeps them sorted. */
#define SCHEMA                                                                                     \
	"{\"version\":1,\"apis\":{\"ui\":{\"functions\":{\"tip\":{\"params\":[{\"type\":"          \
	"\"string\",\"name\":\"player\"}],\"kind\":\"effect\"}},\"class\":\"deterministic\"}}}"
#define SCHEMA_SORTED                                                                              \
	"{\"apis\":{\"ui\":{\"class\":\"deterministic\",\"functions\":{\"tip\":{\"kind\":"         \
	"\"effect\",\"params\":[{\"name\":\"player\",\"type\":\"string\"}]}}}},\"version\":1}"

static trace *parse_ok(const char *text)
{
	char err[512];
	trace *t = NULL;

	cr_assert_eq(trace_parse(text, strlen(text), &t, err, sizeof err), 0, "%s: %s", text, err);
	cr_assert_not_null(t);
	return t;
}

static void parse_fails(const char *text, const char *msg)
{
	char err[512];
	trace *t = NULL;

	cr_assert_eq(trace_parse(text, strlen(text), &t, err, sizeof err), -EINVAL, "%s", text);
	cr_assert_null(t);
	cr_assert_str_eq(err, msg);
}

static char *compact(const json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);

	cr_assert_not_null(s);
	return s;
}

static void assert_json(const json_t *j, const char *want)
{
	char *s = compact(j);

	cr_assert_str_eq(s, want);
	free(s);
}

/* ---- round trip ---------------------------------------------------------------------- */

static const char round_trip_text[] =
    HEAD "\"init\":{\"status\":\"OK\",\"effects\":[],\"returns\":[],\"logs\":[{\"message\":"
	 "\"ready\",\"level\":\"info\"}]},\"host_api\":" SCHEMA ",\"inputs\":["
	 "{\"index\":0,\"tick\":0,\"kind\":\"tick\",\"count\":2,\"status\":\"OK\",\"effects\":[],"
	 "\"returns\":[],\"logs\":[{\"level\":\"print\",\"message\":\"a\\tb \\u00e9\"},"
	 "{\"level\":\"warn\",\"message\":\"\"}]},"
	 "{\"index\":1,\"tick\":2,\"kind\":\"tick\",\"count\":1,\"status\":\"OK\",\"effects\":[],"
	 "\"returns\":[],\"logs\":[]},"
	 "{\"index\":2,\"tick\":3,\"kind\":\"tick\",\"count\":1,\"status\":\"OK\",\"effects\":[],"
	 "\"returns\":[]}]}";

static const char round_trip_dump[] =
    HEAD "\"init\":{\"status\":\"OK\",\"effects\":[],\"returns\":[],\"logs\":[{\"level\":"
	 "\"info\",\"message\":\"ready\"}]},\n"
	 "\"host_api\":" SCHEMA_SORTED ",\n"
	 "\"inputs\":[\n"
	 "{\"index\":0,\"tick\":0,\"kind\":\"tick\",\"count\":2,\"answers\":[],\"status\":\"OK\","
	 "\"effects\":[],\"returns\":[],\"logs\":[{\"level\":\"print\",\"message\":\"a\\tb "
	 "\xc3\xa9\"},{\"level\":\"warn\",\"message\":\"\"}]},\n"
	 "{\"index\":1,\"tick\":2,\"kind\":\"tick\",\"count\":1,\"answers\":[],\"status\":\"OK\","
	 "\"effects\":[],\"returns\":[],\"logs\":[]},\n"
	 "{\"index\":2,\"tick\":3,\"kind\":\"tick\",\"count\":1,\"answers\":[],\"status\":\"OK\","
	 "\"effects\":[],\"returns\":[]}\n"
	 "]}\n";

Test(trace, host_api_and_logs_round_trip)
{
	trace *t = parse_ok(round_trip_text), *t2;
	char *d1, *d2, *api;
	size_t len;

	cr_assert_eq(trace_host_api_text(t, &api, &len), 0);
	cr_assert_str_eq(api, SCHEMA_SORTED);
	cr_assert_eq(len, strlen(SCHEMA_SORTED));
	free(api);
	assert_json(t->init.logs, "[{\"level\":\"info\",\"message\":\"ready\"}]");
	assert_json(t->inputs[0].out.logs, "[{\"level\":\"print\",\"message\":\"a\\tb "
					   "\xc3\xa9\"},{\"level\":\"warn\",\"message\":\"\"}]");
	assert_json(t->inputs[1].out.logs, "[]");
	cr_assert_null(t->inputs[2].out.logs, "absent: not recorded");

	d1 = trace_dumps(t);
	cr_assert_str_eq(d1, round_trip_dump);
	t2 = parse_ok(d1);
	d2 = trace_dumps(t2);
	cr_assert_str_eq(d2, d1);
	cr_assert(json_equal(t->host_api, t2->host_api));
	cr_assert_null(t2->inputs[2].out.logs);
	free(d1);
	free(d2);
	trace_free(t);
	trace_free(t2);
}

Test(trace, a_trace_without_host_api_has_none)
{
	trace *t = parse_ok(HEAD "\"inputs\":[]}");
	char *api = (char *)1;
	size_t len = 1;

	cr_assert_null(t->host_api);
	cr_assert_eq(trace_host_api_text(t, &api, &len), 0);
	cr_assert_null(api);
	cr_assert_eq(len, 0);
	trace_free(t);
}

/* ---- building from Init and replies ----------------------------------------------------- */

static Moonpen__Worker__V1__Init init_with(const char *schema)
{
	Moonpen__Worker__V1__Init init = MOONPEN__WORKER__V1__INIT__INIT;

	init.pack_id = "p";
	init.pack_version = "1.0.0";
	init.seed = 7;
	init.tick_ms = 50;
	init.host_api_json.data = (uint8_t *)schema;
	init.host_api_json.len = strlen(schema);
	return init;
}

Test(trace, from_init_records_the_schema_sorted)
{
	Moonpen__Worker__V1__Init init = init_with("  " SCHEMA "\n");
	trace *t = NULL;
	char *api;
	size_t len;

	cr_assert_eq(trace_from_init(&init, &t), 0);
	cr_assert_eq(trace_host_api_text(t, &api, &len), 0);
	cr_assert_str_eq(api, SCHEMA_SORTED);
	free(api);
	trace_free(t);

	init = init_with(""); /* the worker reads no bytes as the empty schema */
	cr_assert_eq(trace_from_init(&init, &t), 0);
	assert_json(t->host_api, "{\"apis\":{},\"version\":1}");
	trace_free(t);

	init = init_with("[1]");
	cr_assert_eq(trace_from_init(&init, &t), -EINVAL);
	init = init_with("{\"version\":");
	cr_assert_eq(trace_from_init(&init, &t), -EINVAL);
}

Test(trace, replies_record_their_log_lines)
{
	Moonpen__Worker__V1__Init init = init_with(SCHEMA);
	Moonpen__Worker__V1__FromWorker fw = MOONPEN__WORKER__V1__FROM_WORKER__INIT;
	Moonpen__V1__Status st = MOONPEN__V1__STATUS__INIT;
	Moonpen__V1__Result res = MOONPEN__V1__RESULT__INIT;
	Moonpen__V1__LogLine l0 = MOONPEN__V1__LOG_LINE__INIT, l1 = MOONPEN__V1__LOG_LINE__INIT;
	Moonpen__V1__LogLine *lines[] = {&l0, &l1};
	Moonpen__V1__Tick tk = MOONPEN__V1__TICK__INIT;
	Moonpen__Worker__V1__ToWorker tw = MOONPEN__WORKER__V1__TO_WORKER__INIT;
	char bad_utf8[] = "caf\xff!";
	trace *t = NULL;

	l0.level = "info";
	l0.message = "hello";
	l0.tick = 3;
	l1.level = "error";
	l1.message = bad_utf8;
	res.logs = lines;
	res.n_logs = 2;
	st.code = MOONPEN__V1__STATUS__CODE__OK;
	fw.status = &st;
	fw.result = &res;
	tw.op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_TICK;
	tw.tick = &tk;
	tk.count = 1;
	cr_assert_eq(trace_from_init(&init, &t), 0);
	cr_assert_eq(trace_set_init_reply(t, &fw), 0);
	cr_assert_eq(trace_begin_input(t, 0, &tw), 0);
	cr_assert_eq(trace_end_input(t, &fw), 0);
	cr_assert_eq(trace_begin_input(t, 0, &tw), 0);
	cr_assert_eq(trace_end_killed(t, MOONPEN__V1__STATUS__CODE__TIMEOUT, "hard deadline"), 0);
	assert_json(t->init.logs, "[{\"level\":\"info\",\"message\":\"hello\"},{\"level\":"
				  "\"error\",\"message\":\"caf?!\"}]");
	cr_assert(json_equal(t->init.logs, t->inputs[0].out.logs));
	assert_json(t->inputs[1].out.logs, "[]");
	/* a reply without a result (a failed Init, say): no lines, recorded as such */
	fw.result = NULL;
	cr_assert_eq(trace_begin_input(t, 0, &tw), 0);
	cr_assert_eq(trace_end_input(t, &fw), 0);
	assert_json(t->inputs[2].out.logs, "[]");
	trace_free(t);
}

/* ---- refused ------------------------------------------------------------------------- */

Test(trace, a_bad_host_api_is_refused)
{
	static const char *const cases[][2] = {
	    {"[1]", "host_api: expected an object"},
	    {"\"x\"", "host_api: expected an object"},
	    {"{\"version\":1,\"apis\":{\"ui\":{\"class\":\"deterministic\",\"functions\":{\"tip\":"
	     "{\"kind\":\"effect\",\"params\":[{\"name\":\"p\",\"type\":\"strng\"}]}}}}}",
	     "host_api: apis.ui.functions.tip.params[1].type: unknown type \"strng\""},
	    {"{\"version\":1,\"apis\":[]}", "host_api: apis: expected an object"},
	    {"{\"version\":2,\"apis\":{}}", "host_api: version: expected 1"},
	};
	char text[2048];
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(text, sizeof text, HEAD "\"host_api\":%s,\"inputs\":[]}", cases[i][0]);
		parse_fails(text, cases[i][1]);
	}
}

Test(trace, a_host_api_too_big_is_refused)
{
	size_t n = TRACE_MAX_HOST_API, off;
	char *text = malloc(n + 512);

	cr_assert_not_null(text);
	off = (size_t)sprintf(text, HEAD "\"host_api\":{\"version\":1,\"apis\":{},"
					 "\"description\":\"");
	memset(text + off, 'a', n);
	strcpy(text + off + n, "\"},\"inputs\":[]}");
	parse_fails(text, "host_api: larger than 1048576 bytes (as compact JSON)");
	/* just under the cap: accepted */
	off = (size_t)sprintf(text, HEAD "\"host_api\":{\"version\":1,\"apis\":{},"
					 "\"description\":\"");
	n = TRACE_MAX_HOST_API - strlen("{\"apis\":{},\"description\":\"\",\"version\":1}");
	memset(text + off, 'a', n);
	strcpy(text + off + n, "\"},\"inputs\":[]}");
	trace_free(parse_ok(text));
	free(text);
}

static void input_logs_fail(const char *logs, const char *msg)
{
	char text[2048];

	snprintf(text, sizeof text,
		 HEAD "\"inputs\":[{\"index\":0,\"tick\":0,\"kind\":\"tick\",\"count\":1,"
		      "\"status\":\"OK\",\"effects\":[],\"returns\":[],\"logs\":%s}]}",
		 logs);
	parse_fails(text, msg);
}

Test(trace, bad_logs_are_refused)
{
	input_logs_fail("[{\"level\":\"trace\",\"message\":\"x\"}]",
			"inputs[0].logs[0].level: expected \"debug\", \"info\", \"warn\", "
			"\"error\" or \"print\"");
	input_logs_fail("[{\"level\":\"info\",\"message\":\"x\"},{\"level\":\"info\","
			"\"message\":7}]",
			"inputs[0].logs[1].message: expected a string");
	input_logs_fail("[{\"level\":\"info\"}]", "inputs[0].logs[0].message: expected a string");
	input_logs_fail("[{\"level\":\"info\",\"message\":\"x\",\"tick\":3}]",
			"inputs[0].logs[0]: unknown member \"tick\"");
	input_logs_fail("[\"x\"]", "inputs[0].logs[0]: expected an object");
	input_logs_fail("{}", "inputs[0].logs: expected an array");
	parse_fails(HEAD "\"init\":{\"status\":\"OK\",\"effects\":[],\"returns\":[],\"logs\":[{"
			 "\"level\":7,\"message\":\"x\"}]},\"inputs\":[]}",
		    "init.logs[0].level: expected \"debug\", \"info\", \"warn\", \"error\" or "
		    "\"print\"");
}

Test(trace, too_many_log_lines_are_refused)
{
	size_t cap = 64 + 258 * 40, i, off;
	char *logs = malloc(cap), *text = malloc(cap + 512);

	off = (size_t)sprintf(logs, "[");
	for (i = 0; i < 258; i++)
		off += (size_t)sprintf(logs + off, "%s{\"level\":\"info\",\"message\":\"l\"}",
				       i ? "," : "");
	strcpy(logs + off, "]");
	sprintf(text,
		HEAD "\"inputs\":[{\"index\":0,\"tick\":0,\"kind\":\"tick\",\"count\":1,"
		     "\"status\":\"OK\",\"effects\":[],\"returns\":[],\"logs\":%s}]}",
		logs);
	parse_fails(text, "inputs[0].logs: more than 257 lines");
	free(logs);
	free(text);
}

/* ---- replay's comparison ------------------------------------------------------------------- */

Test(trace, logs_are_compared_only_when_recorded)
{
	trace *t = parse_ok(round_trip_text);
	tr_outcome got = {0};
	char msg[1024];

	got.status = MOONPEN__V1__STATUS__CODE__OK;
	got.effects = json_array();
	got.returns = json_array();
	got.logs = json_loads("[{\"level\":\"print\",\"message\":\"a\\tb \\u00e9\"},"
			      "{\"level\":\"warn\",\"message\":\"\"}]",
			      0, NULL);
	cr_assert_eq(trace_outcome_diff(&t->inputs[0].out, &got, msg, sizeof msg), 0, "%s", msg);
	cr_assert_eq(trace_outcome_diff(&t->inputs[1].out, &got, msg, sizeof msg), 1);
	cr_assert_str_eq(msg, "logs[0] (of 0 expected, 2 got): expected null, got "
			      "{\"level\":\"print\",\"message\":\"a\\tb \xc3\xa9\"}");
	/* input 2 has no logs member: whatever the replay logged is not compared */
	cr_assert_eq(trace_outcome_diff(&t->inputs[2].out, &got, msg, sizeof msg), 0, "%s", msg);
	json_array_remove(got.logs, 1);
	json_array_append_new(got.logs, json_pack("{s:s, s:s}", "level", "info", "message", "x"));
	cr_assert_eq(trace_outcome_diff(&t->inputs[0].out, &got, msg, sizeof msg), 1);
	cr_assert_str_eq(msg, "logs[1] (of 2 expected, 2 got): expected {\"level\":\"warn\","
			      "\"message\":\"\"}, got {\"level\":\"info\",\"message\":\"x\"}");
	trace_outcome_clear(&got);
	trace_free(t);
}
