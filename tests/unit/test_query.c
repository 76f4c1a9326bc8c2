/*
 * test_query — async host queries in the engine, in-process: a query suspends
 * its input (PENDING with a HostCall), the answer resumes it, abort rolls it
 * back, and every misuse has an exact status. The schema is the test's own.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common/val.h"
#include "worker/engine.h"
#include "tests/support/vfmt.h"

#define OK MOONPEN__V1__STATUS__CODE__OK
#define PENDING MOONPEN__V1__STATUS__CODE__PENDING
#define INVALID_ARGUMENT MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT
#define SCRIPT_ERROR MOONPEN__V1__STATUS__CODE__SCRIPT_ERROR

static const char schema[] =
    "{\"version\":1,\"apis\":{\"game\":{\"class\":\"deterministic\",\"functions\":{"
    "\"ask\":{\"kind\":\"query\",\"params\":[{\"name\":\"q\",\"type\":\"string\"}]},"
    "\"fx\":{\"kind\":\"effect\",\"params\":[{\"name\":\"v\",\"type\":\"any\"}]}}}}}";

/* ---- helpers ------------------------------------------------------------------ */

static eng *create_lim(const char *lua, uint64_t seed, Moonpen__Worker__V1__Limits *lim,
		       Moonpen__V1__Status__Code want, const char *msg)
{
	Moonpen__Worker__V1__Init init = MOONPEN__WORKER__V1__INIT__INIT;
	Moonpen__Worker__V1__PackFile f = MOONPEN__WORKER__V1__PACK_FILE__INIT;
	Moonpen__Worker__V1__PackFile *files[1] = {&f};
	const char *manifest = "{\"id\":\"q\",\"version\":\"1.0.0\",\"engine\":\"lua\","
			       "\"entry\":\"main.lua\",\"apis\":[\"game\",\"state\"]}";
	eng_out o = {0};
	eng *e = NULL;

	init.instance_id = "inst-q";
	init.manifest_json.data = (uint8_t *)manifest;
	init.manifest_json.len = strlen(manifest);
	f.path = "main.lua";
	f.data.data = (uint8_t *)lua;
	f.data.len = strlen(lua);
	init.n_files = 1;
	init.files = files;
	init.host_api_json.data = (uint8_t *)schema;
	init.host_api_json.len = strlen(schema);
	init.seed = seed;
	init.tick_ms = 50;
	init.limits = lim;
	cr_assert_eq(eng_create(&init, &e, &o), 0);
	cr_assert_eq(o.status->code, want, "create: %d %s", o.status->code, o.status->message);
	if (msg != NULL)
		cr_assert(strstr(o.status->message, msg) != NULL, "create: '%s' lacks '%s'",
			  o.status->message, msg);
	protobuf_c_message_free_unpacked(&o.status->base, NULL);
	if (o.result)
		protobuf_c_message_free_unpacked(&o.result->base, NULL);
	return e;
}

static eng *create(const char *lua, uint64_t seed, Moonpen__V1__Status__Code want, const char *msg)
{
	return create_lim(lua, seed, NULL, want, msg);
}

static void out_free(eng_out *o)
{
	if (o->status)
		protobuf_c_message_free_unpacked(&o->status->base, NULL);
	if (o->result)
		protobuf_c_message_free_unpacked(&o->result->base, NULL);
	if (o->host_call)
		protobuf_c_message_free_unpacked(&o->host_call->base, NULL);
	memset(o, 0, sizeof(*o));
}

static void call(eng *e, const char *fn, eng_out *o)
{
	Moonpen__V1__Call m = MOONPEN__V1__CALL__INIT;

	m.function = (char *)fn;
	cr_assert_eq(eng_call(e, &m, o), 0);
}

static void event(eng *e, const char *name, eng_out *o)
{
	Moonpen__V1__SendEvent m = MOONPEN__V1__SEND_EVENT__INIT;

	m.name = (char *)name;
	cr_assert_eq(eng_event(e, &m, o), 0);
}

/* Answers query id with an integer value (or with err when err != NULL). */
static void answer(eng *e, uint64_t id, int64_t v, const char *err, eng_out *o)
{
	Moonpen__V1__HostResult hr = MOONPEN__V1__HOST_RESULT__INIT;
	val_t *val = val_new_int(v);

	hr.call_id = id;
	if (err != NULL) {
		hr.answer_case = MOONPEN__V1__HOST_RESULT__ANSWER_ERROR;
		hr.error = (char *)err;
	} else {
		hr.answer_case = MOONPEN__V1__HOST_RESULT__ANSWER_VALUE;
		hr.value = val;
	}
	cr_assert_eq(eng_host_result(e, &hr, o), 0);
	val_free(val);
}

static void expect(const eng_out *o, Moonpen__V1__Status__Code code, const char *msg)
{
	cr_assert_eq(o->status->code, code, "status %d (want %d): %s\n%s", o->status->code, code,
		     o->status->message, o->status->traceback);
	if (msg != NULL)
		cr_assert_str_eq(o->status->message, msg);
}

/* Asserts PENDING on query id = api.fn(arg) with arg a string. */
static void expect_query(const eng_out *o, uint64_t id, const char *arg)
{
	char want[64];

	snprintf(want, sizeof(want), "waiting for query %llu (game.ask)", (unsigned long long)id);
	expect(o, PENDING, want);
	cr_assert_null(o->result);
	cr_assert_not_null(o->host_call);
	cr_assert_eq(o->host_call->call_id, id);
	cr_assert_str_eq(o->host_call->api, "game");
	cr_assert_str_eq(o->host_call->fn, "ask");
	cr_assert_eq(o->host_call->timeout_ms, 0);
	cr_assert_eq(o->host_call->n_args, 1);
	cr_assert_str_eq(o->host_call->args[0]->string_value, arg);
}

static void expect_effects(const eng_out *o, size_t n, ...)
{
	va_list ap;

	expect(o, OK, NULL);
	cr_assert_eq(o->result->n_effects, n, "got %zu effects, want %zu", o->result->n_effects, n);
	va_start(ap, n);
	for (size_t i = 0; i < n; i++) {
		char got[512];
		tv_fmt_effect(o->result->effects[i], got, sizeof(got));
		cr_assert_str_eq(got, va_arg(ap, const char *));
	}
	va_end(ap);
}

static void hash_of(eng *e, uint8_t h[32])
{
	eng_state_hash(e, h);
}

/* ---- tests ---------------------------------------------------------------------- */

static const char basic_lua[] = "function f()\n"
				"  game.fx('before'); state.set('pre', 1)\n"
				"  local v = game.ask('hp')\n"
				"  game.fx(v); state.set('hp', v); return v, 'done'\n"
				"end\n"
				"function same() state.set('pre', 1); state.set('hp', 42) end\n";

Test(query, value_resumes_the_input_with_its_effects)
{
	eng *e = create(basic_lua, 1, OK, NULL), *ref = create(basic_lua, 1, OK, NULL);
	uint8_t h[32], want[32];
	eng_out o = {0};

	call(e, "f", &o);
	expect_query(&o, 1, "hp");
	cr_assert_eq(eng_pending(e), 1);
	out_free(&o);
	answer(e, 1, 42, NULL, &o);
	expect_effects(&o, 2, "game.fx(\"before\") @call:f", "game.fx(42) @call:f");
	cr_assert_eq(o.result->n_returns, 2);
	cr_assert_eq(o.result->returns[0]->int_value, 42);
	cr_assert_str_eq(o.result->returns[1]->string_value, "done");
	cr_assert_eq(eng_pending(e), 0);
	cr_assert_eq(eng_inputs(e), 1);
	out_free(&o);
	call(ref, "same", &o);
	expect(&o, OK, NULL);
	out_free(&o);
	hash_of(e, h);
	hash_of(ref, want);
	cr_assert_arr_eq(h, want, 32, "state after the answer is {pre=1, hp=42}");
	eng_free(e);
	eng_free(ref);
}

static const char two_lua[] = "ev.on('Ask', function()\n"
			      "  local a = game.ask('a'); local b = game.ask('b'); game.fx(a + b)\n"
			      "end)\n"
			      "function err()\n"
			      "  local v, why = game.ask('x'); game.fx(tostring(v) .. '/' .. why)\n"
			      "end\n";

Test(query, two_queries_in_one_input_and_error_answers)
{
	eng *e = create(two_lua, 1, OK, NULL);
	eng_out o = {0};

	event(e, "Ask", &o);
	expect_query(&o, 1, "a");
	out_free(&o);
	answer(e, 1, 10, NULL, &o);
	expect_query(&o, 2, "b");
	out_free(&o);
	answer(e, 2, 32, NULL, &o);
	expect_effects(&o, 1, "game.fx(42) @ev:Ask");
	out_free(&o);
	call(e, "err", &o);
	expect_query(&o, 3, "x");
	out_free(&o);
	answer(e, 3, 0, "no such thing", &o);
	expect_effects(&o, 1, "game.fx(\"nil/no such thing\") @call:err");
	out_free(&o);
	eng_free(e);
}

static const char abort_lua[] =
    "function on_init() state.set('k', 0) end\n"
    "function timed() end\n"
    "function f()\n"
    "  state.set('k', 1); game.fx('x'); rand.next(); timer.after(50, 'timed')\n"
    "  return game.ask('q')\n"
    "end\n"
    "function r() return rand.int(1, 1000000), state.get('k') end\n";

Test(query, abort_rolls_the_input_back)
{
	eng *e = create(abort_lua, 7, OK, NULL), *fresh = create(abort_lua, 7, OK, NULL);
	uint8_t before[32], after[32];
	eng_out o = {0}, f = {0};

	hash_of(e, before);
	call(e, "f", &o);
	expect_query(&o, 1, "q");
	out_free(&o);
	cr_assert_eq(eng_abort(e, &o), 0);
	expect(&o, OK, NULL);
	cr_assert_eq(o.result->n_effects, 0);
	cr_assert_eq(o.result->tick, 0);
	cr_assert_arr_eq(o.result->state_hash.data, before, 32);
	out_free(&o);
	hash_of(e, after);
	cr_assert_arr_eq(after, before, 32);
	cr_assert_eq(eng_pending(e), 0);
	cr_assert_eq(eng_inputs(e), 0);
	/* RNG rolled back: the same draw as an engine that never ran f */
	call(e, "r", &o);
	call(fresh, "r", &f);
	expect(&o, OK, NULL);
	expect(&f, OK, NULL);
	cr_assert_eq(o.result->returns[0]->int_value, f.result->returns[0]->int_value);
	cr_assert_eq(o.result->returns[1]->int_value, 0);
	out_free(&o);
	out_free(&f);
	/* the timer is gone and call ids rolled back */
	cr_assert_eq(eng_tick(e, 5, &o), 0);
	expect_effects(&o, 0);
	out_free(&o);
	call(e, "f", &o);
	expect_query(&o, 1, "q");
	out_free(&o);
	cr_assert_eq(eng_abort(e, &o), 0);
	out_free(&o);
	cr_assert_eq(eng_abort(e, &o), 0);
	expect(&o, INVALID_ARGUMENT, "no input is pending on a query");
	out_free(&o);
	eng_free(e);
	eng_free(fresh);
}

Test(query, wrong_call_id_and_ops_while_pending)
{
	eng *e = create(basic_lua, 1, OK, NULL);
	uint8_t *snap = NULL;
	size_t len = 0;
	eng_out o = {0};

	answer(e, 1, 1, NULL, &o);
	expect(&o, INVALID_ARGUMENT, "no input is pending on a query");
	out_free(&o);
	call(e, "f", &o);
	expect_query(&o, 1, "hp");
	out_free(&o);
	answer(e, 7, 1, NULL, &o);
	expect(&o, INVALID_ARGUMENT, "host_result answers query 7; the input waits for query 1");
	out_free(&o);
	event(e, "X", &o);
	expect(&o, INVALID_ARGUMENT, "input pending on query 1");
	out_free(&o);
	cr_assert_eq(eng_tick(e, 1, &o), 0);
	expect(&o, INVALID_ARGUMENT, "input pending on query 1");
	out_free(&o);
	call(e, "same", &o);
	expect(&o, INVALID_ARGUMENT, "input pending on query 1");
	out_free(&o);
	cr_assert_eq(eng_snapshot(e, &snap, &len), -EBUSY);
	cr_assert_null(snap);
	/* still pending: the right answer completes it */
	answer(e, 1, 5, NULL, &o);
	expect_effects(&o, 2, "game.fx(\"before\") @call:f", "game.fx(5) @call:f");
	out_free(&o);
	cr_assert_eq(eng_snapshot(e, &snap, &len), 0);
	cr_assert_gt(len, 0);
	free(snap);
	eng_free(e);
}

static const char where_lua[] =
    "function p1() local ok, v = pcall(game.ask, 'p'); return ok, v end\n"
    "function p2() return pcall(function() return game.ask('q') + 1 end) end\n"
    "function meta() local t = setmetatable({}, {__index = function(_, k) return "
    "game.ask(k) end}); return t.m end\n"
    "function sort() local t = {3, 1, 2}; table.sort(t, function(a, b) game.ask('s'); "
    "return a < b end) end\n"
    "function gsub() return (string.gsub('a', 'a', function() return game.ask('g') end)) end\n"
    "function co() return coroutine.wrap(function() return game.ask('c') end)() end\n"
    "function y() coroutine.yield(1) end\n"
    "function badarg() return game.ask(5) end\n";

Test(query, where_a_query_may_wait)
{
	eng *e = create(where_lua, 1, OK, NULL);
	eng_out o = {0};

	call(e, "p1", &o); /* pcall yields (lua_pcallk) */
	expect_query(&o, 1, "p");
	out_free(&o);
	answer(e, 1, 5, NULL, &o);
	expect(&o, OK, NULL);
	cr_assert_eq(o.result->n_returns, 2);
	cr_assert_eq(o.result->returns[0]->bool_value, 1);
	cr_assert_eq(o.result->returns[1]->int_value, 5);
	out_free(&o);
	call(e, "p2", &o);
	expect_query(&o, 2, "q");
	out_free(&o);
	answer(e, 2, 9, NULL, &o);
	expect(&o, OK, NULL);
	cr_assert_eq(o.result->returns[1]->int_value, 10);
	out_free(&o);
	call(e, "meta", &o); /* Lua 5.4 metamethods called from Lua may yield */
	expect_query(&o, 3, "m");
	out_free(&o);
	answer(e, 3, 4, NULL, &o);
	expect(&o, OK, NULL);
	cr_assert_eq(o.result->returns[0]->int_value, 4);
	out_free(&o);
	call(e, "sort", &o);
	expect(&o, SCRIPT_ERROR, NULL);
	cr_assert(strstr(o.status->message, "query game.ask cannot be called from a C function "
					    "that cannot wait") != NULL,
		  "%s", o.status->message);
	out_free(&o);
	call(e, "gsub", &o);
	expect(&o, SCRIPT_ERROR, NULL);
	cr_assert(strstr(o.status->message, "cannot be called from a C function") != NULL);
	out_free(&o);
	call(e, "co", &o);
	expect(&o, SCRIPT_ERROR, NULL);
	cr_assert(strstr(o.status->message, "query game.ask cannot be called from a coroutine") !=
		      NULL,
		  "%s", o.status->message);
	out_free(&o);
	call(e, "y", &o);
	expect(&o, SCRIPT_ERROR, "attempt to yield from outside a coroutine");
	out_free(&o);
	call(e, "badarg", &o);
	expect(&o, INVALID_ARGUMENT, NULL);
	cr_assert(strstr(o.status->message,
			 "game.ask: argument #1 'q' expected string, got number") != NULL,
		  "%s", o.status->message);
	out_free(&o);
	cr_assert_eq(eng_pending(e), 0);
	cr_assert_eq(eng_inputs(e), 3);
	eng_free(e);
}

Test(query, refused_in_on_init)
{
	eng *e = create("function on_init() game.ask('i') end\n", 1, SCRIPT_ERROR,
			"query game.ask cannot be called from the chunk, on_init or on_close");

	cr_assert_null(e);
}

static const char timers_lua[] =
    "function on_init() timer.after(50, 'a'); timer.after(50, 'b') end\n"
    "function a() game.fx('a:' .. game.ask('ta')) end\n"
    "function b() game.fx('b:' .. clock.tick()) end\n";

Test(query, a_timer_waits_and_the_tick_goes_on)
{
	eng *e = create(timers_lua, 1, OK, NULL);
	eng_out o = {0};

	cr_assert_eq(eng_tick(e, 3, &o), 0);
	expect_query(&o, 1, "ta");
	out_free(&o);
	answer(e, 1, 8, NULL, &o);
	expect_effects(&o, 2, "game.fx(\"a:8\") @timer:a", "game.fx(\"b:1\") @timer:b");
	cr_assert_eq(o.result->tick, 3);
	cr_assert_eq(eng_tick_now(e), 3);
	out_free(&o);
	eng_free(e);
}

static const char replay_lua[] =
    "function on_init() state.set('n', 0) end\n"
    "ev.on('Go', function()\n"
    "  local r = rand.int(1, 1000)\n"
    "  local v = game.ask('v' .. r)\n"
    "  state.incr('n', v); game.fx(r .. ':' .. v .. ':' .. rand.int(1, 1000))\n"
    "end)\n";

/* One run: Go (answer 3), Go (answer 4). Effects appended to log. */
static void replay_run(eng *e, char *log, size_t len, uint8_t h[32])
{
	eng_out o = {0};
	int64_t ans[2] = {3, 4};

	for (int i = 0; i < 2; i++) {
		event(e, "Go", &o);
		expect(&o, PENDING, NULL);
		strncat(log, o.host_call->args[0]->string_value, len - strlen(log) - 1);
		out_free(&o);
		answer(e, (uint64_t)i + 1, ans[i], NULL, &o);
		expect(&o, OK, NULL);
		tv_fmt_effect(o.result->effects[0], log + strlen(log), len - strlen(log));
		out_free(&o);
	}
	hash_of(e, h);
}

Test(query, same_answers_replay_to_the_same_effects_and_hash)
{
	eng *a = create(replay_lua, 99, OK, NULL), *b = create(replay_lua, 99, OK, NULL);
	char la[1024] = "", lb[1024] = "";
	uint8_t ha[32], hb[32];

	replay_run(a, la, sizeof(la), ha);
	replay_run(b, lb, sizeof(lb), hb);
	cr_assert_str_eq(la, lb);
	cr_assert_arr_eq(ha, hb, 32);
	cr_assert(strstr(la, ":3:") != NULL && strstr(la, ":4:") != NULL, "%s", la);
	eng_free(a);
	eng_free(b);
}

Test(query, close_discards_the_pending_input)
{
	eng *e = create("function on_close() game.fx('bye') end\n"
			"function f() state.set('x', 1); "
			"game.ask('z') end\n",
			1, OK, NULL);
	uint8_t before[32];
	eng_out o = {0};

	hash_of(e, before);
	call(e, "f", &o);
	expect_query(&o, 1, "z");
	out_free(&o);
	cr_assert_eq(eng_close(e, &o), 0);
	expect_effects(&o, 1, "game.fx(\"bye\") @on_close");
	cr_assert_arr_eq(o.result->state_hash.data, before, 32);
	out_free(&o);
	answer(e, 1, 1, NULL, &o);
	expect(&o, INVALID_ARGUMENT, "instance is closed");
	out_free(&o);
	eng_free(e);
}

static const char budget_lua[] =
    "function spin(n) local x = 0; for i = 1, n do x = x + i end; return x end\n"
    "function f() spin(120000); local v = game.ask('b'); spin(120000); return v end\n"
    "function g() spin(220000) end\n";

/* The instruction budget counts each stretch the script runs: two stretches
 * of about 60% of it pass; one of 110% fails. Usage adds them up. */
Test(query, the_budget_restarts_at_each_stretch)
{
	Moonpen__Worker__V1__Limits lim = MOONPEN__WORKER__V1__LIMITS__INIT;
	eng *e;
	eng_out o = {0};

	lim.instructions = 400000;
	lim.deadline_ms = 10000;
	e = create_lim(budget_lua, 1, &lim, OK, NULL);
	call(e, "g", &o);
	expect(&o, MOONPEN__V1__STATUS__CODE__BUDGET_EXCEEDED,
	       "instruction budget of 400000 exceeded");
	out_free(&o);
	call(e, "f", &o);
	expect_query(&o, 1, "b");
	out_free(&o);
	answer(e, 1, 3, NULL, &o);
	expect(&o, OK, NULL);
	cr_assert_eq(o.result->returns[0]->int_value, 3);
	cr_assert_gt(o.result->usage->instructions, 400000, "usage: %llu",
		     (unsigned long long)o.result->usage->instructions);
	out_free(&o);
	eng_free(e);
}
