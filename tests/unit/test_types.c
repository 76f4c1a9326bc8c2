/*
 * test_types — `spk types`: the exact annotations written for a small schema
 * (records, lists, optionals, variadics, queries, Lua keywords, classes),
 * manifest filtering, errors, and that the whole file is a Lua chunk that
 * compiles. Runs in the test process.
 *
 * tools/spk/ sources are linked into the spk program only (no archive the tests
 * link), so the module under test is compiled into this test directly.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <lauxlib.h>
#include <lualib.h>

#include "tools/spk/types.h"

static const char schema[] =
    "{\"version\":1,\"apis\":{"
    "\"zone\":{\"class\":\"deterministic\",\"description\":\"Zones.\\nTwo lines.\","
    "\"functions\":{"
    "\"mark\":{\"kind\":\"effect\",\"params\":["
    "{\"name\":\"ids\",\"type\":{\"list\":\"integer\"}},"
    "{\"name\":\"spots\",\"type\":{\"list\":{\"record\":{\"x\":\"number\","
    "\"tag\":{\"optional\":\"string\"}}}}},"
    "{\"name\":\"end\",\"type\":\"boolean\",\"optional\":true,\"description\":\"last one\"}],"
    "\"variadic\":{\"optional\":\"any\"}},"
    "\"find\":{\"kind\":\"query\",\"params\":[{\"name\":\"name\",\"type\":\"string\"}],"
    "\"returns\":{\"record\":{\"id\":\"integer\",\"names\":{\"list\":{\"optional\":"
    "\"string\"}}}}},"
    "\"ping\":{\"kind\":\"query\"},"
    "\"end\":{\"kind\":\"effect\",\"variadic\":\"table\"}}},"
    "\"wall\":{\"class\":\"nondeterministic\",\"functions\":{\"now\":{\"kind\":\"query\"}}},"
    "\"ui\":{\"class\":\"deterministic\",\"functions\":{\"say\":{\"kind\":\"effect\","
    "\"params\":[{\"name\":\"text\",\"type\":\"string\"}]}}}}}";

static const char want_ui[] = "---@class ui\n"
			      "ui = {}\n"
			      "\n"
			      "---@param text string\n"
			      "function ui.say(text) end\n"
			      "\n";

static const char want_wall[] =
    "-- api 'wall' is nondeterministic: not available to instance scripts\n\n";

static const char want_zone[] =
    "---Zones.\n"
    "---Two lines.\n"
    "---@class zone\n"
    "zone = {}\n"
    "\n"
    "---@param ... table\n"
    "zone[\"end\"] = function(...) end\n"
    "\n"
    "---@class zone.find.returns\n"
    "---@field id integer\n"
    "---@field names (string|nil)[]\n"
    "\n"
    "---Query: suspends the script until the game server answers.\n"
    "---@async\n"
    "---@param name string\n"
    "---@return zone.find.returns|nil value the answer, or nil when the query failed\n"
    "---@return string? err why the query failed\n"
    "function zone.find(name) end\n"
    "\n"
    "---@class zone.mark.spots\n"
    "---@field tag? string\n"
    "---@field x number\n"
    "\n"
    "---@param ids integer[]\n"
    "---@param spots zone.mark.spots[]\n"
    "---@param end_? boolean last one\n"
    "---@param ... any|nil\n"
    "function zone.mark(ids, spots, end_, ...) end\n"
    "\n"
    "---Query: suspends the script until the game server answers.\n"
    "---@async\n"
    "---@return any|nil value the answer, or nil when the query failed\n"
    "---@return string? err why the query failed\n"
    "function zone.ping() end\n"
    "\n";

/* Runs spk_types_write into a string (caller frees); r gets its result. */
static char *types(const char *sj, const char *mj, int *r, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	cr_assert_not_null(f);
	*r = spk_types_write(sj, strlen(sj), mj, mj ? strlen(mj) : 0, f, err, errlen);
	cr_assert_eq(fclose(f), 0);
	return buf;
}

static void expect_compiles(const char *text)
{
	lua_State *L = luaL_newstate();

	cr_assert_not_null(L);
	cr_assert_eq(luaL_loadbufferx(L, text, strlen(text), "=types", "t"), LUA_OK, "%s",
		     lua_tostring(L, -1));
	lua_close(L);
}

/* The part after the built-in modules: from the first schema API on. */
static const char *apis_part(const char *text)
{
	const char *p = strstr(text, "function math.randomseed(n) end\n\n");

	cr_assert_not_null(p);
	return p + strlen("function math.randomseed(n) end\n\n");
}

Test(types, exact_annotations_for_a_small_schema)
{
	char err[256] = "", want[4096];
	int r;
	char *out = types(schema, NULL, &r, err, sizeof(err));

	cr_assert_eq(r, 0, "%s", err);
	cr_assert_eq(strncmp(out, "---@meta\n", 9), 0);
	snprintf(want, sizeof(want), "%s%s%s", want_ui, want_wall, want_zone);
	cr_assert_str_eq(apis_part(out), want);
	expect_compiles(out);
	free(out);
}

Test(types, built_in_modules_and_hooks_are_annotated)
{
	static const char *const lines[] = {
	    "---@class moonpen.ctx\n",
	    "---@param ctx moonpen.ctx\nfunction on_init(ctx) end\n",
	    "---@param ctx moonpen.ctx\nfunction on_close(ctx) end\n",
	    "---@field kind string status name",
	    "---@param key string\n---@param delta? number\n---@return number\n"
	    "function state.incr(key, delta) end\n",
	    "---@param fn fun(payload: table, name: string)\nfunction ev.on(pattern, fn) end\n",
	    "---@return integer id\nfunction timer.every(ms, fn, ...) end\n",
	    "---@return integer ms tick * tick_ms\nfunction clock.now() end\n",
	    "function rand.int(m, n) end\n",
	    "---@overload fun(m: integer): integer\n",
	    "function log.warn(...) end\n",
	};
	char err[256] = "";
	int r;
	char *out = types("", NULL, &r, err, sizeof(err));

	cr_assert_eq(r, 0, "%s", err);
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		cr_assert_not_null(strstr(out, lines[i]), "missing: %s", lines[i]);
	cr_assert_str_eq(apis_part(out), ""); /* an empty schema declares nothing more */
	expect_compiles(out);
	free(out);
}

Test(types, manifest_selects_the_apis_it_lists)
{
	static const char mf[] = "{\"id\":\"p\",\"version\":\"1.0.0\",\"engine\":\"lua\","
				 "\"entry\":\"main.lua\",\"apis\":[\"state\",\"ui\"]}";
	char err[256] = "";
	int r;
	char *out = types(schema, mf, &r, err, sizeof(err));

	cr_assert_eq(r, 0, "%s", err);
	cr_assert_not_null(strstr(out, "from the host API schema for pack 'p'.\n"));
	cr_assert_str_eq(apis_part(out), want_ui);
	expect_compiles(out);
	free(out);
}

Test(types, errors_are_named)
{
	static const char mf[] = "{\"id\":\"p\",\"version\":\"1.0.0\",\"engine\":\"lua\","
				 "\"entry\":\"main.lua\",\"apis\":[\"ui\",\"path\"]}";
	char err[256] = "";
	int r;

	free(types(schema, mf, &r, err, sizeof(err)));
	cr_assert_eq(r, -EINVAL);
	cr_assert_str_eq(err, "manifest lists api 'path', which the host API schema does not "
			      "define");
	free(types("{\"version\":2,\"apis\":{}}", NULL, &r, err, sizeof(err)));
	cr_assert_eq(r, -EINVAL);
	cr_assert_str_eq(err, "host API schema: version: expected 1");
	free(types(schema, "{\"id\":\"p\"}", &r, err, sizeof(err)));
	cr_assert_eq(r, -EINVAL);
	cr_assert_eq(strncmp(err, "manifest: ", 10), 0, "%s", err);
}
