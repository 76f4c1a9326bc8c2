/*
 * test_manifest — mf_parse accepts a full manifest and names every bad field.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common/manifest.h"

static const char full[] =
    "{\"id\":\"dungeon-forest\",\"version\":\"1.3.2\",\"engine\":\"lua\","
    "\"entry\":\"main.lua\",\"apis\":[\"ecs\",\"ui\",\"timer\"],"
    "\"description\":\"waves\",\"tick_ms\":100,\"min_protocol\":2,"
    "\"compat\":[\"1.x\"],\"player_field\":\"player\","
    "\"limits\":{\"memory_mb\":8,\"deadline_ms\":20,\"instructions\":1000000},"
    "\"triggers\":[{\"id\":\"boss\",\"event\":\"OnAreaEnter:*\","
    "\"condition\":\"ctx.count >= 2\",\"action\":\"spawn_boss\",\"throttle_ms\":200},"
    "{\"id\":\"gate\",\"event\":\"OnLever\",\"action\":\"ecs.openGate('n')\"}]}";

Test(manifest, parses_every_field)
{
	mf_manifest *m = NULL;
	char err[256];

	cr_assert_eq(mf_parse(full, strlen(full), &m, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(m->id, "dungeon-forest");
	cr_assert_str_eq(m->version, "1.3.2");
	cr_assert_str_eq(m->engine, "lua");
	cr_assert_str_eq(m->entry, "main.lua");
	cr_assert_eq(m->n_apis, 3);
	cr_assert_str_eq(m->apis[1], "ui");
	cr_assert(mf_uses_api(m, "timer"));
	cr_assert(!mf_uses_api(m, "music"));
	cr_assert_eq(m->tick_ms, 100);
	cr_assert_eq(m->min_protocol, 2);
	cr_assert_str_eq(m->player_field, "player");
	cr_assert_eq(m->mem_bytes, 8u << 20);
	cr_assert_eq(m->deadline_ms, 20);
	cr_assert_eq(m->instructions, 1000000);
	cr_assert_eq(m->n_triggers, 2);
	cr_assert_str_eq(m->triggers[0].id, "boss");
	cr_assert_str_eq(m->triggers[0].event, "OnAreaEnter:*");
	cr_assert_str_eq(m->triggers[0].condition, "ctx.count >= 2");
	cr_assert_str_eq(m->triggers[0].action, "spawn_boss");
	cr_assert_eq(m->triggers[0].throttle_ms, 200);
	cr_assert_null(m->triggers[1].condition);
	cr_assert_eq(m->triggers[1].throttle_ms, 0);
	mf_free(m);
}

Test(manifest, minimal_defaults)
{
	const char *j = "{\"id\":\"a\",\"version\":\"0.0.1\",\"engine\":\"lua\","
			"\"entry\":\"lib/x.lua\"}";
	mf_manifest *m = NULL;
	char err[256];

	cr_assert_eq(mf_parse(j, strlen(j), &m, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(m->n_apis, 0);
	cr_assert_eq(m->n_triggers, 0);
	cr_assert_eq(m->tick_ms, 0);
	cr_assert_eq(m->mem_bytes, 0);
	cr_assert_null(m->player_field);
	mf_free(m);
}

struct bad_case {
	const char *json;
	const char *err;
};

#define HEAD "\"version\":\"1.0.0\",\"engine\":\"lua\",\"entry\":\"main.lua\""

static const struct bad_case bad[] = {
    {"[1]", "manifest: expected a JSON object"},
    {"{\"version\":\"1.0.0\",\"engine\":\"lua\",\"entry\":\"main.lua\"}",
     "missing required field 'id'"},
    {"{\"id\":\"a\",\"engine\":\"lua\",\"entry\":\"main.lua\"}",
     "missing required field 'version'"},
    {"{\"id\":\"a\",\"version\":\"1.0.0\",\"entry\":\"main.lua\"}",
     "missing required field 'engine'"},
    {"{\"id\":\"a\",\"version\":\"1.0.0\",\"engine\":\"lua\"}", "missing required field 'entry'"},
    {"{\"id\":\"Bad Id\"," HEAD "}",
     "field 'id': expected [a-z0-9][a-z0-9._-]{0,63}, got \"Bad Id\""},
    {"{\"id\":7," HEAD "}", "field 'id': expected a string"},
    {"{\"id\":\"a\",\"version\":\"1.0\",\"engine\":\"lua\",\"entry\":\"main.lua\"}",
     "field 'version': expected MAJOR.MINOR.PATCH (digits only), got \"1.0\""},
    {"{\"id\":\"a\",\"version\":\"1.0.0\",\"engine\":\"js\",\"entry\":\"main.lua\"}",
     "field 'engine': only \"lua\" is supported, got \"js\""},
    {"{\"id\":\"a\",\"version\":\"1.0.0\",\"engine\":\"lua\",\"entry\":\"../x.lua\"}",
     "field 'entry': expected a relative path to a .lua file, got \"../x.lua\""},
    {"{\"id\":\"a\"," HEAD ",\"apis\":\"ecs\"}", "field 'apis': expected an array of names"},
    {"{\"id\":\"a\"," HEAD ",\"apis\":[\"ecs\",\"e-x\"]}",
     "field 'apis[2]': expected an identifier"},
    {"{\"id\":\"a\"," HEAD ",\"apis\":[\"ecs\",\"ecs\"]}",
     "field 'apis[2]': 'ecs' is listed twice"},
    {"{\"id\":\"a\"," HEAD ",\"colour\":1}", "unknown field 'colour'"},
    {"{\"id\":\"a\"," HEAD ",\"triggers\":[{\"event\":\"E\",\"action\":\"f\"}]}",
     "missing required field 'triggers[1].id'"},
    {"{\"id\":\"a\"," HEAD ",\"triggers\":[{\"id\":\"t\",\"action\":\"f\"}]}",
     "missing required field 'triggers[1].event'"},
    {"{\"id\":\"a\"," HEAD ",\"triggers\":[{\"id\":\"t\",\"event\":\"a*b\",\"action\":\"f\"}]}",
     "field 'triggers[1].event': expected an event name or a pattern ending in '*', got "
     "\"a*b\""},
    {"{\"id\":\"a\"," HEAD ",\"triggers\":[{\"id\":\"t\",\"event\":\"E\"}]}",
     "missing required field 'triggers[1].action'"},
    {"{\"id\":\"a\"," HEAD ",\"triggers\":[{\"id\":\"t\",\"event\":\"E\",\"action\":\"f\","
     "\"throttle_ms\":-1}]}",
     "field 'triggers[1].throttle_ms': -1 is out of range [0, 4294967295]"},
    {"{\"id\":\"a\"," HEAD ",\"triggers\":[{\"id\":\"t\",\"event\":\"E\",\"action\":\"f\"},"
     "{\"id\":\"t\",\"event\":\"F\",\"action\":\"g\"}]}",
     "field 'triggers[2].id': \"t\" is used twice"},
    {"{\"id\":\"a\"," HEAD ",\"triggers\":[{\"id\":\"t\",\"event\":\"E\",\"action\":\"f\","
     "\"when\":1}]}",
     "unknown field 'triggers[1].when'"},
    {"{\"id\":\"a\"," HEAD ",\"limits\":{\"memory_mb\":0}}",
     "field 'limits.memory_mb': 0 is out of range [1, 4096]"},
    {"{\"id\":\"a\"," HEAD ",\"limits\":{\"cpu\":1}}", "unknown field 'limits.cpu'"},
    {"{\"id\":\"a\"," HEAD ",\"tick_ms\":\"50\"}", "field 'tick_ms': expected an integer"},
    {"{\"id\":\"a\",\"id\":\"b\"," HEAD "}", NULL},
};

Test(manifest, names_each_bad_field)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mf_manifest *m = (mf_manifest *)1;
		char err[256] = "";
		int r = mf_parse(bad[i].json, strlen(bad[i].json), &m, err, sizeof(err));

		cr_assert_eq(r, -EINVAL, "case %zu accepted", i);
		cr_assert_null(m);
		if (bad[i].err != NULL)
			cr_assert_str_eq(err, bad[i].err, "case %zu", i);
		else
			cr_assert(strstr(err, "not valid JSON") != NULL, "case %zu: %s", i, err);
	}
}

Test(manifest, version_cmp_is_numeric)
{
	cr_assert_lt(mf_version_cmp("1.2.0", "1.10.0"), 0);
	cr_assert_gt(mf_version_cmp("2.0.0", "1.99.99"), 0);
	cr_assert_eq(mf_version_cmp("1.3.2", "1.3.2"), 0);
	cr_assert_lt(mf_version_cmp("1.3.2", "1.3.10"), 0);
}

/* ---- rate_limits --------------------------------------------------------------- */

#define RL_HEAD                                                                                    \
	"{\"id\":\"a\"," HEAD ",\"player_field\":\"player\","                                      \
	"\"triggers\":[{\"id\":\"boss_enrage\",\"event\":\"boss.*\",\"action\":\"f\"},"            \
	"{\"id\":\"gate\",\"event\":\"OnLever\",\"action\":\"g\"}],"

Test(manifest, rate_limits)
{
	const char *j = RL_HEAD "\"rate_limits\":{\"global\":{\"per_second\":100,\"burst\":200},"
				"\"per_player\":{\"per_second\":5},"
				"\"triggers\":{\"boss_enrage\":{\"per_second\":1,\"burst\":1}}}}";
	mf_manifest *m = NULL;
	char err[256];

	cr_assert_eq(mf_parse(j, strlen(j), &m, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(m->rate_global.per_second, 100);
	cr_assert_eq(m->rate_global.burst, 200);
	cr_assert_eq(m->rate_player.per_second, 5);
	cr_assert_eq(m->rate_player.burst, 5); /* burst defaults to the rate */
	cr_assert_eq(m->triggers[0].rate.per_second, 1);
	cr_assert_eq(m->triggers[0].rate.burst, 1);
	cr_assert_eq(m->triggers[1].rate.per_second, 0); /* no limit */
	mf_free(m);
}

static const struct bad_case bad_rates[] = {
    {RL_HEAD "\"rate_limits\":[]}", "field 'rate_limits': expected an object"},
    {RL_HEAD "\"rate_limits\":{\"local\":{}}}", "unknown field 'rate_limits.local'"},
    {RL_HEAD "\"rate_limits\":{\"global\":5}}",
     "field 'rate_limits.global': expected {\"per_second\": N, \"burst\": N}"},
    {RL_HEAD "\"rate_limits\":{\"global\":{\"burst\":5}}}",
     "missing required field 'rate_limits.global.per_second'"},
    {RL_HEAD "\"rate_limits\":{\"global\":{\"per_second\":0}}}",
     "field 'rate_limits.global.per_second': 0 is out of range [1, 1000000]"},
    {RL_HEAD "\"rate_limits\":{\"global\":{\"per_second\":1,\"burst\":2000000}}}",
     "field 'rate_limits.global.burst': 2000000 is out of range [1, 1000000]"},
    {RL_HEAD "\"rate_limits\":{\"global\":{\"per_second\":1,\"rate\":2}}}",
     "unknown field 'rate_limits.global.rate'"},
    {RL_HEAD "\"rate_limits\":{\"triggers\":{\"nope\":{\"per_second\":1}}}}",
     "field 'rate_limits.triggers.nope': no trigger has this id"},
    {RL_HEAD "\"rate_limits\":{\"triggers\":[]}}",
     "field 'rate_limits.triggers': expected an object"},
    {"{\"id\":\"a\"," HEAD ",\"rate_limits\":{\"per_player\":{\"per_second\":1}}}",
     "field 'rate_limits.per_player': needs 'player_field' (the payload field naming the "
     "player)"},
};

Test(manifest, rate_limits_bad)
{
	for (size_t i = 0; i < sizeof(bad_rates) / sizeof(bad_rates[0]); i++) {
		mf_manifest *m = (mf_manifest *)1;
		char err[256] = "";
		int r =
		    mf_parse(bad_rates[i].json, strlen(bad_rates[i].json), &m, err, sizeof(err));

		cr_assert_eq(r, -EINVAL, "case %zu accepted", i);
		cr_assert_null(m);
		cr_assert_str_eq(err, bad_rates[i].err, "case %zu", i);
	}
}

/* ---- timers and debounce ------------------------------------------------------- */

Test(manifest, timers_and_debounce)
{
	const char *j = "{\"id\":\"a\"," HEAD ",\"timers\":["
			"{\"id\":\"waves\",\"every_ms\":5000,\"fn\":\"spawn_wave\","
			"\"args\":[3,\"goblin\",{\"x\":1.5,\"tags\":[true,null]}]},"
			"{\"id\":\"intro\",\"after_ms\":1,\"fn\":\"_intro2\"}],"
			"\"triggers\":[{\"id\":\"t\",\"event\":\"Move:*\",\"action\":\"f\","
			"\"debounce_ms\":250}]}";
	mf_manifest *m = NULL;
	char err[256];

	cr_assert_eq(mf_parse(j, strlen(j), &m, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(m->n_timers, 2);
	cr_assert_str_eq(m->timers[0].id, "waves");
	cr_assert_str_eq(m->timers[0].fn, "spawn_wave");
	cr_assert_eq(m->timers[0].ms, 5000);
	cr_assert_eq(m->timers[0].every, 1);
	cr_assert_eq(m->timers[0].nargs, 3);
	cr_assert_eq(m->timers[0].args[0]->int_value, 3);
	cr_assert_str_eq(m->timers[0].args[1]->string_value, "goblin");
	cr_assert_eq(m->timers[0].args[2]->kind_case, MOONPEN__V1__VALUE__KIND_TABLE_VALUE);
	cr_assert_str_eq(m->timers[1].id, "intro");
	cr_assert_eq(m->timers[1].ms, 1);
	cr_assert_eq(m->timers[1].every, 0);
	cr_assert_eq(m->timers[1].nargs, 0);
	cr_assert_eq(m->triggers[0].debounce_ms, 250);
	cr_assert_eq(m->triggers[0].throttle_ms, 0);
	mf_free(m);
}

#define TIMER(body) "{\"id\":\"a\"," HEAD ",\"timers\":[" body "]}"
#define TRIG(extra)                                                                                \
	"{\"id\":\"a\"," HEAD                                                                      \
	",\"triggers\":[{\"id\":\"t\",\"event\":\"E\",\"action\":\"f\"" extra "}]}"

static const struct bad_case bad_timers[] = {
    {"{\"id\":\"a\"," HEAD ",\"timers\":{}}", "field 'timers': expected an array"},
    {TIMER("1"), "field 'timers[1]': expected an object"},
    {TIMER("{\"fn\":\"f\",\"every_ms\":5}"), "missing required field 'timers[1].id'"},
    {TIMER("{\"id\":\"a b\",\"fn\":\"f\",\"every_ms\":5}"),
     "field 'timers[1].id': expected 1-64 of [A-Za-z0-9._:-], got \"a b\""},
    {TIMER("{\"id\":\"w\",\"every_ms\":5}"), "missing required field 'timers[1].fn'"},
    {TIMER("{\"id\":\"w\",\"fn\":\"end\",\"every_ms\":5}"),
     "field 'timers[1].fn': expected the name of a global function, got \"end\""},
    {TIMER("{\"id\":\"w\",\"fn\":\"a.b\",\"every_ms\":5}"),
     "field 'timers[1].fn': expected the name of a global function, got \"a.b\""},
    {TIMER("{\"id\":\"w\",\"fn\":\"f\"}"),
     "field 'timers[1]': expected exactly one of 'every_ms' and 'after_ms'"},
    {TIMER("{\"id\":\"w\",\"fn\":\"f\",\"every_ms\":5,\"after_ms\":5}"),
     "field 'timers[1]': expected exactly one of 'every_ms' and 'after_ms'"},
    {TIMER("{\"id\":\"w\",\"fn\":\"f\",\"every_ms\":0}"),
     "field 'timers[1].every_ms': 0 is out of range [1, 86400000]"},
    {TIMER("{\"id\":\"w\",\"fn\":\"f\",\"after_ms\":86400001}"),
     "field 'timers[1].after_ms': 86400001 is out of range [1, 86400000]"},
    {TIMER("{\"id\":\"w\",\"fn\":\"f\",\"after_ms\":1.5}"),
     "field 'timers[1].after_ms': expected an integer"},
    {TIMER("{\"id\":\"w\",\"fn\":\"f\",\"every_ms\":5,\"period\":1}"),
     "unknown field 'timers[1].period'"},
    {TIMER("{\"id\":\"w\",\"fn\":\"f\",\"every_ms\":5},{\"id\":\"w\",\"fn\":\"g\",\"after_ms\":5}"),
     "field 'timers[2].id': \"w\" is used twice"},
    {TIMER("{\"id\":\"w\",\"fn\":\"f\",\"every_ms\":5,\"args\":{\"a\":1}}"),
     "field 'timers[1].args': expected an array"},
    {TIMER("{\"id\":\"w\",\"fn\":\"f\",\"every_ms\":5,"
	   "\"args\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]}"),
     "field 'timers[1].args': more than 16 arguments"},
    {TIMER("{\"id\":\"w\",\"fn\":\"f\",\"every_ms\":5,\"args\":[1,[[[[[[[[[1]]]]]]]]]]}"),
     "field 'timers[1].args[2]': [1][1][1][1][1][1][1][1]: tables nested deeper than 8"},
    {TIMER("{\"id\":\"w\",\"fn\":\"f\",\"every_ms\":5,\"args\":[{\"$bytes\":\"!!\"}]}"), NULL},
    {TRIG(",\"debounce_ms\":100,\"throttle_ms\":100"),
     "field 'triggers[1].debounce_ms': a trigger has throttle_ms or debounce_ms, not both "
     "(choose one)"},
    {TRIG(",\"throttle_ms\":0,\"debounce_ms\":100"),
     "field 'triggers[1].debounce_ms': a trigger has throttle_ms or debounce_ms, not both "
     "(choose one)"},
    {TRIG(",\"debounce_ms\":-5"),
     "field 'triggers[1].debounce_ms': -5 is out of range [0, 4294967295]"},
    {TRIG(",\"debounce_ms\":\"5\""), "field 'triggers[1].debounce_ms': expected an integer"},
};

Test(manifest, timers_and_debounce_bad)
{
	for (size_t i = 0; i < sizeof(bad_timers) / sizeof(bad_timers[0]); i++) {
		mf_manifest *m = (mf_manifest *)1;
		char err[256] = "";
		int r =
		    mf_parse(bad_timers[i].json, strlen(bad_timers[i].json), &m, err, sizeof(err));

		cr_assert_eq(r, -EINVAL, "case %zu accepted", i);
		cr_assert_null(m);
		if (bad_timers[i].err != NULL)
			cr_expect_str_eq(err, bad_timers[i].err, "case %zu: %s", i, err);
		else
			cr_expect(strstr(err, "field 'timers[1].args[1]': ") == err, "case %zu: %s",
				  i, err);
	}
}

/* At most MF_MAX_TIMERS (64) timers; one timer's args at most 4096 bytes encoded. */
Test(manifest, timer_bounds)
{
	char j[16384], err[256];
	size_t n = (size_t)snprintf(j, sizeof j, "{\"id\":\"a\"," HEAD ",\"timers\":[");
	mf_manifest *m = NULL;

	for (int i = 0; i < MF_MAX_TIMERS + 1; i++)
		n += (size_t)snprintf(j + n, sizeof j - n,
				      "%s{\"id\":\"t%d\",\"fn\":\"f\",\"after_ms\":1}",
				      i ? "," : "", i);
	snprintf(j + n, sizeof j - n, "]}");
	cr_assert_eq(mf_parse(j, strlen(j), &m, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "field 'timers': more than 64 entries");
	/* 64 are fine */
	n = (size_t)(strstr(j, ",{\"id\":\"t64\"") - j);
	snprintf(j + n, sizeof j - n, "]}");
	cr_assert_eq(mf_parse(j, strlen(j), &m, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(m->n_timers, 64);
	mf_free(m);
	n = (size_t)snprintf(j, sizeof j,
			     "{\"id\":\"a\"," HEAD ",\"timers\":[{\"id\":\"w\",\"fn\":\"f\","
			     "\"after_ms\":1,\"args\":[\"%04100d\"]}]}",
			     0);
	cr_assert_eq(mf_parse(j, n, &m, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "field 'timers[1].args': more than 4096 bytes encoded");
}
