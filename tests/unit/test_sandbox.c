/*
 * test_sandbox — the Lua sandbox: allowlist, read-only tables, locked globals,
 * budgets (deadline, instructions, memory) that pcall cannot swallow, error
 * reports, deterministic pairs/next/sort/tostring, require.
 *
 * Runs in the test process; scripts here are hostile on purpose.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>

#include "worker/sandbox.h"

#define MIB (1024u * 1024u)

static sbx *mk(uint64_t mem, uint32_t deadline_ms, uint64_t instructions)
{
	sbx_limits lim = {
	    .mem_bytes = mem, .deadline_ms = deadline_ms, .instructions = instructions};
	char err[256] = "";
	sbx *s = sbx_new(&lim, err, sizeof(err));

	cr_assert_not_null(s, "sbx_new: %s", err);
	return s;
}

/* Loads and runs code in one budget window, one result kept on the stack
 * on success. Returns sbx_call's result. */
static int run(sbx *s, const char *code, sbx_err *err)
{
	char msg[512];
	int r;

	r = sbx_load(s, code, strlen(code), "main.lua", msg, sizeof(msg));
	cr_assert_eq(r, 0, "load: %s", msg);
	sbx_budget_begin(s, 1);
	r = sbx_call(s, 0, 1, err);
	sbx_budget_end(s);
	return r;
}

/* Runs code that must succeed and return a string; returns a copy. */
static char *run_str(sbx *s, const char *code)
{
	sbx_err err = {0};
	char *out;

	cr_assert_eq(run(s, code, &err), 0, "script failed: %s", err.message);
	cr_assert_eq(lua_type(sbx_L(s), -1), LUA_TSTRING, "script returned a %s",
		     luaL_typename(sbx_L(s), -1));
	out = strdup(lua_tostring(sbx_L(s), -1));
	lua_pop(sbx_L(s), 1);
	return out;
}

static void expect_str(sbx *s, const char *code, const char *want)
{
	char *got = run_str(s, code);

	cr_assert_str_eq(got, want, "script: %s", code);
	free(got);
}

/* Runs code that must fail with code; returns the message (caller frees). */
static char *run_fail(sbx *s, const char *code, st_code want)
{
	sbx_err err = {0};
	char *msg;

	cr_assert_eq(run(s, code, &err), -1, "script succeeded: %s", code);
	cr_assert_eq(err.code, want, "code %d, want %d (%s) for: %s", err.code, want,
		     err.message ? err.message : "-", code);
	cr_assert_not_null(err.message);
	msg = strdup(err.message);
	sbx_err_clear(&err);
	cr_assert_eq(lua_gettop(sbx_L(s)), 0, "stack not cleaned");
	return msg;
}

static void expect_fail(sbx *s, const char *code, st_code want, const char *needle)
{
	char *msg = run_fail(s, code, want);

	cr_assert_not_null(strstr(msg, needle), "message '%s' lacks '%s'", msg, needle);
	free(msg);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define SCRIPT_ERR MOONPEN__V1__STATUS__CODE__SCRIPT_ERROR
#define TIMEOUT MOONPEN__V1__STATUS__CODE__TIMEOUT
#define BUDGET MOONPEN__V1__STATUS__CODE__BUDGET_EXCEEDED
#define MEMLIM MOONPEN__V1__STATUS__CODE__MEMORY_LIMIT

/* ---- allowlist ------------------------------------------------------------ */

Test(sandbox, absent_globals_are_nil)
{
	sbx *s = mk(16 * MIB, 1000, 0);

	expect_str(s,
		   "for _, n in ipairs({'io', 'os', 'debug', 'package', 'dofile', 'loadfile',"
		   " 'collectgarbage', 'warn', 'utf8x'}) do"
		   "  if _G[n] ~= nil then return n end end "
		   "if string.dump ~= nil then return 'string.dump' end "
		   "if ('').dump ~= nil then return 'method dump' end "
		   "if math.random ~= nil or math.randomseed ~= nil then return 'random' end "
		   "return 'none'",
		   "none");
	expect_str(s,
		   "for _, n in ipairs({'assert', 'error', 'ipairs', 'next', 'pairs', 'pcall',"
		   " 'xpcall', 'print', 'rawequal', 'rawget', 'rawlen', 'rawset', 'select',"
		   " 'setmetatable', 'getmetatable', 'tonumber', 'tostring', 'type', 'load',"
		   " 'require', 'string', 'table', 'math', 'utf8', 'coroutine'}) do"
		   "  if _G[n] == nil then return n end end "
		   "assert(_G._G == _G and _VERSION == 'Lua 5.4') "
		   "return tostring(select('#', print('x')))",
		   "0");
	sbx_free(s);
}

Test(sandbox, load_is_text_only)
{
	sbx *s = mk(16 * MIB, 1000, 0);

	expect_str(s,
		   "local f, e = load('\\27Lua\\84\\0\\25\\147\\13\\10\\26\\10', 'bin', 'b') "
		   "assert(f == nil) return e",
		   "attempt to load a binary chunk (mode is 't')");
	expect_fail(s, "return load(function() return nil end)", SCRIPT_ERR,
		    "load: chunk must be a string (got function)");
	expect_str(s, "return load('return x', 'c', 't', {x = 'env'})()", "env");
	expect_str(s, "y_default = 'g' return load('return y_default')()", "g");
	sbx_free(s);
}

Test(sandbox, library_tables_read_only)
{
	sbx *s = mk(16 * MIB, 1000, 0);

	expect_fail(s, "string.rep = nil", SCRIPT_ERR,
		    "main.lua:1: cannot modify read-only table 'string'");
	expect_fail(s, "string.x = 1", SCRIPT_ERR, "cannot modify read-only table 'string'");
	expect_fail(s, "math.pi = 3", SCRIPT_ERR, "cannot modify read-only table 'math'");
	expect_fail(s, "rawset(table, 'insert', print)", SCRIPT_ERR, "rawset: table is read-only");
	expect_fail(s, "setmetatable(coroutine, nil)", SCRIPT_ERR,
		    "cannot change a protected metatable");
	expect_fail(s, "table.insert(utf8, 1)", SCRIPT_ERR, "read-only table 'utf8'");
	expect_str(s, "return tostring(getmetatable(string))", "false");
	expect_str(s, "return string.rep('ab', 2) .. ('x'):rep(2)", "ababxx");
	expect_str(s, "local n = 0 for k in pairs(table) do n = n + 1 end return tostring(n)", "7");
	sbx_free(s);
}

Test(sandbox, string_metatable_protected)
{
	sbx *s = mk(16 * MIB, 1000, 0);

	expect_str(s, "return tostring(getmetatable(''))", "false");
	expect_fail(s, "getmetatable('').__index = {}", SCRIPT_ERR, "index a boolean value");
	expect_fail(s, "local s = 'x' s.upper = 1", SCRIPT_ERR, "index a string value");
	expect_fail(s, "setmetatable('', {})", SCRIPT_ERR, "table expected");
	sbx_free(s);
}

Test(sandbox, gc_metamethods_refused)
{
	sbx *s = mk(16 * MIB, 1000, 0);

	expect_fail(s, "setmetatable({}, {__gc = function() while true do end end})", SCRIPT_ERR,
		    "setmetatable: __gc metamethods are not allowed");
	expect_fail(s, "setmetatable({}, {__gc = true})", SCRIPT_ERR, "__gc");
	sbx_free(s);
}

Test(sandbox, globals_locked_after_freeze)
{
	sbx *s = mk(16 * MIB, 1000, 0);

	expect_str(s, "early = 'yes' function handler() return 'h' end return early", "yes");
	sbx_freeze_globals(s);
	expect_fail(s, "late = 1", SCRIPT_ERR,
		    "main.lua:1: assignment to undeclared global 'late'");
	expect_fail(s, "_G.late2 = 1", SCRIPT_ERR, "assignment to undeclared global 'late2'");
	expect_fail(s, "rawset(_G, 'late3', 1)", SCRIPT_ERR, "rawset: table is read-only");
	expect_fail(s, "setmetatable(_G, nil)", SCRIPT_ERR, "cannot change a protected metatable");
	expect_str(s, "return tostring(undeclared_read) .. handler() .. early", "nilhyes");
	expect_str(s, "local t = {} t.x = 1 rawset(t, 'y', 2) return tostring(t.x + t.y)", "3");
	sbx_free(s);
}

/* ---- deadline --------------------------------------------------------------- */

static void expect_timeout(const char *code)
{
	sbx *s = mk(16 * MIB, 50, 0);
	double t0 = now_s();
	char *msg = run_fail(s, code, TIMEOUT);
	double dt = now_s() - t0;

	cr_assert_str_eq(msg, "deadline of 50 ms exceeded");
	cr_assert_lt(dt, 2.0, "took %.3f s", dt);
	cr_assert_geq(dt, 0.045, "stopped early: %.3f s", dt);
	free(msg);
	/* the state is usable for the next window */
	expect_str(s, "return 'again'", "again");
	sbx_free(s);
}

Test(sandbox, deadline_plain_loop)
{
	expect_timeout("while true do end");
}

Test(sandbox, deadline_pcall_wrapped_loop)
{
	expect_timeout("while true do pcall(function() while true do end end) end");
}

Test(sandbox, deadline_pcall_returns_then_escapes)
{
	expect_timeout("pcall(function() while true do end end) return 'escaped'");
}

Test(sandbox, deadline_xpcall_handler_loops)
{
	expect_timeout("xpcall(function() while true do end end,"
		       " function() while true do end end) return 'escaped'");
}

Test(sandbox, deadline_xpcall_handler_loops_on_plain_error)
{
	expect_timeout("xpcall(error, function() while true do end end, 'x') return 'escaped'");
}

Test(sandbox, xpcall_handler_still_works)
{
	sbx *s = mk(16 * MIB, 1000, 0);

	expect_str(s,
		   "local ok, m = xpcall(error, function(e) return 'handled: ' .. e end, 'x', 0)"
		   " assert(not ok) return m",
		   "handled: x");
	expect_str(s, "return select(2, xpcall(function(a, b) return a .. b end, print, 'p', 'q'))",
		   "pq");
	sbx_free(s);
}

Test(sandbox, deadline_coroutine_loop)
{
	expect_timeout("local co = coroutine.create(function() while true do end end)"
		       " local ok = coroutine.resume(co) return 'escaped'");
}

Test(sandbox, deadline_nested_coroutines)
{
	expect_timeout("local inner = coroutine.wrap(function() while true do end end)"
		       " local outer = coroutine.create(function()"
		       "   while true do pcall(inner) end end)"
		       " while true do coroutine.resume(outer) end");
}

Test(sandbox, deadline_close_metamethod_loops)
{
	expect_timeout("do local x <close> = setmetatable({}, {__close = function()"
		       " while true do end end}) end return 'escaped'");
}

Test(sandbox, deadline_close_during_unwind)
{
	expect_timeout("pcall(function() local x <close> = setmetatable({}, {__close ="
		       " function() while true do end end}) while true do end end)"
		       " return 'escaped'");
}

Test(sandbox, deadline_sort_comparator_loops)
{
	expect_timeout("table.sort({3, 2, 1}, function(a, b) while true do end end)"
		       " return 'escaped'");
}

Test(sandbox, deadline_error_tostring_loops)
{
	expect_timeout("error(setmetatable({}, {__tostring = function() while true do end end}))");
}

Test(sandbox, deadline_every_call_in_window_fails)
{
	sbx *s = mk(16 * MIB, 50, 0);
	sbx_err err = {0};
	char msg[128];

	cr_assert_eq(sbx_load(s, "while true do end", 17, "loop", msg, sizeof(msg)), 0);
	cr_assert_eq(sbx_load(s, "return 1", 8, "one", msg, sizeof(msg)), 0);
	lua_insert(sbx_L(s), -2);
	sbx_budget_begin(s, 1);
	cr_assert_eq(sbx_call(s, 0, 0, &err), -1);
	cr_assert_eq(err.code, TIMEOUT);
	sbx_err_clear(&err);
	cr_assert_eq(sbx_call(s, 0, 1, &err), -1, "a tripped window ran more code");
	cr_assert_eq(err.code, TIMEOUT);
	sbx_err_clear(&err);
	sbx_budget_end(s);
	cr_assert_eq(lua_gettop(sbx_L(s)), 0);
	sbx_free(s);
}

Test(sandbox, deadline_scaled_and_fast_scripts_unaffected)
{
	sbx *s = mk(16 * MIB, 50, 0);
	char *msg;
	double t0;

	expect_str(s, "local n = 0 for i = 1, 1000 do n = n + i end return tostring(n)", "500500");
	cr_assert_eq(sbx_load(s, "while true do end", 17, "x", (char[64]){0}, 64), 0);
	t0 = now_s();
	sbx_budget_begin(s, 3);
	{
		sbx_err err = {0};

		cr_assert_eq(sbx_call(s, 0, 0, &err), -1);
		cr_assert_eq(err.code, TIMEOUT);
		cr_assert_str_eq(err.message, "deadline of 150 ms exceeded");
		sbx_err_clear(&err);
	}
	sbx_budget_end(s);
	cr_assert_geq(now_s() - t0, 0.14);
	msg = run_str(s, "return 'ok'");
	free(msg);
	sbx_free(s);
}

Test(sandbox, resume_through_sbx_resume_is_bounded)
{
	sbx *s = mk(16 * MIB, 50, 0);
	lua_State *L = sbx_L(s), *co;
	sbx_err err = {0};
	char msg[128];
	int nres = 0;

	co = lua_newthread(L);
	const char *code = "local n = ... coroutine.yield(n + 1) while true do end";

	cr_assert_eq(sbx_load(s, code, strlen(code), "co.lua", msg, sizeof(msg)), 0, "%s", msg);
	lua_xmove(L, co, 1);
	lua_pushinteger(co, 41);
	sbx_budget_begin(s, 1);
	cr_assert_eq(sbx_resume(s, L, co, 1, &nres, &err), 1);
	cr_assert_eq(nres, 1);
	cr_assert_eq(lua_tointeger(co, -1), 42);
	lua_pop(co, 1);
	cr_assert_eq(sbx_resume(s, L, co, 0, &nres, &err), -1);
	cr_assert_eq(err.code, TIMEOUT);
	cr_assert_not_null(err.traceback);
	cr_assert_not_null(strstr(err.traceback, "co.lua:1:"), "%s", err.traceback);
	sbx_err_clear(&err);
	sbx_budget_end(s);
	sbx_free(s);
}

/* ---- instruction budget ------------------------------------------------------ */

Test(sandbox, instruction_budget)
{
	sbx *s = mk(16 * MIB, 0, 100000);
	char *msg;

	expect_str(s, "local n = 0 for i = 1, 100 do n = n + i end return tostring(n)", "5050");
	cr_assert_lt(sbx_instructions(s), 100000);
	msg = run_fail(s, "local i = 0 while true do i = i + 1 end", BUDGET);
	cr_assert_str_eq(msg, "instruction budget of 100000 exceeded");
	free(msg);
	cr_assert_geq(sbx_instructions(s), 100000);
	msg = run_fail(s,
		       "while true do pcall(function() local i = 0"
		       " while true do i = i + 1 end end) end",
		       BUDGET);
	free(msg);
	msg = run_fail(s,
		       "local co = coroutine.wrap(function() while true do end end)"
		       " pcall(co) while true do pcall(co) end",
		       BUDGET);
	free(msg);
	expect_str(s, "return 'fresh window'", "fresh window");
	sbx_free(s);
}

Test(sandbox, no_budget_counts_nothing)
{
	sbx *s = mk(16 * MIB, 1000, 0);

	expect_str(s, "for i = 1, 10000 do end return 'ok'", "ok");
	cr_assert_eq(sbx_instructions(s), 0);
	sbx_free(s);
}

/* ---- memory ------------------------------------------------------------------- */

static void expect_memlimit(const char *code)
{
	sbx *s = mk(8 * MIB, 5000, 0);
	char *msg = run_fail(s, code, MEMLIM);

	cr_assert_str_eq(msg, "memory limit of 8388608 bytes exceeded");
	free(msg);
	cr_assert_leq(sbx_mem_used(s), 8 * MIB);
	expect_str(s, "local t = {} for i = 1, 1000 do t[i] = i end return tostring(#t)", "1000");
	cr_assert_lt(sbx_mem_used(s), 2 * MIB, "heap not released: %llu",
		     (unsigned long long)sbx_mem_used(s));
	sbx_free(s);
}

Test(sandbox, memory_string_doubling)
{
	expect_memlimit("local s = 'x' while true do s = s .. s end");
}

Test(sandbox, memory_table_bomb)
{
	expect_memlimit("local t = {} for i = 1, 1e9 do t[i] = {i} end");
}

Test(sandbox, memory_pcall_retried)
{
	expect_memlimit("local keep = {} while true do"
			" pcall(function() keep[#keep + 1] = string.rep('x', 1 << 16) end) end");
}

Test(sandbox, memory_huge_rep_caught)
{
	expect_memlimit("for i = 1, 100 do pcall(string.rep, 'x', 1 << 30) end return 'escaped'");
}

Test(sandbox, memory_error_caught_then_loop)
{
	expect_memlimit(
	    "local ok = pcall(function() local s = 'x' while true do s = s .. s end end)"
	    " return 'escaped'");
}

/* Garbage that outgrows the cap is collected, not reported: only live data
 * beyond the cap is a memory_limit. */
Test(sandbox, memory_churn_under_cap_is_fine)
{
	/* no deadline pressure: this is about the cap only (valgrind is slow) */
	sbx *s = mk(8 * MIB, 120000, 0);

	expect_str(s,
		   "local keep = string.rep('k', 3 << 20)"
		   /* 42 MB of garbage through an 8 MiB cap */
		   " for i = 1, 60 do local g = string.rep('x', 700000 + i) end"
		   " return tostring(#keep)",
		   "3145728");
	sbx_free(s);
}

/* ---- error reports ---------------------------------------------------------- */

Test(sandbox, script_error_message_and_traceback)
{
	sbx *s = mk(16 * MIB, 1000, 0);
	sbx_err err = {0};

	cr_assert_eq(run(s, "local function inner() error('boom') end\ninner()", &err), -1);
	cr_assert_eq(err.code, SCRIPT_ERR);
	cr_assert_str_eq(err.message, "main.lua:1: boom");
	cr_assert_not_null(err.traceback);
	cr_assert_not_null(strstr(err.traceback, "stack traceback:"), "%s", err.traceback);
	cr_assert_not_null(strstr(err.traceback, "main.lua:1: in"), "%s", err.traceback);
	cr_assert_not_null(strstr(err.traceback, "main.lua:2: in main chunk"), "%s", err.traceback);
	sbx_err_clear(&err);
	sbx_free(s);
}

Test(sandbox, error_objects_converted_safely)
{
	sbx *s = mk(16 * MIB, 1000, 0);

	expect_fail(s, "error(setmetatable({}, {__tostring = function() error('no') end}))",
		    SCRIPT_ERR, "(error object is a table value)");
	expect_fail(s, "error(setmetatable({}, {__tostring = function() return 'custom' end}))",
		    SCRIPT_ERR, "custom");
	expect_fail(s, "error({})", SCRIPT_ERR, "(error object is a table value)");
	expect_fail(s, "error(42)", SCRIPT_ERR, "42");
	expect_fail(s, "error()", SCRIPT_ERR, "(error object is a nil value)");
	sbx_free(s);
}

Test(sandbox, syntax_error_from_load)
{
	sbx *s = mk(16 * MIB, 1000, 0);
	char msg[256];

	cr_assert_eq(sbx_load(s, "x = = 1", 7, "bad.lua", msg, sizeof(msg)), -EINVAL);
	cr_assert_not_null(strstr(msg, "bad.lua:1:"), "%s", msg);
	cr_assert_eq(sbx_load(s, "\x1bLua", 4, "bin.lua", msg, sizeof(msg)), -EINVAL);
	cr_assert_not_null(strstr(msg, "binary"), "%s", msg);
	cr_assert_eq(lua_gettop(sbx_L(s)), 0);
	sbx_free(s);
}

/* ---- determinism -------------------------------------------------------------- */

#define CANON_KEYS "-2,1,1.5,3,10,A,a,ab,b,false,true,"

Test(sandbox, pairs_canonical_order)
{
	sbx *s = mk(16 * MIB, 1000, 0);

	expect_str(s,
		   "local function keys(t) local o = {}"
		   " for k in pairs(t) do o[#o + 1] = tostring(k) .. ',' end"
		   " return table.concat(o) end "
		   "local a = {} a.b = 1 a[true] = 1 a[3] = 1 a.ab = 1 a[false] = 1 a[1.5] = 1"
		   " a[1] = 1 a.a = 1 a[-2] = 1 a.A = 1 a[10] = 1 "
		   "local b = {[10] = 1, A = 1, [-2] = 1, a = 1, [1] = 1, [false] = 1, ab = 1,"
		   " [3] = 1, [true] = 1, b = 1, [1.5] = 1} "
		   "assert(keys(a) == keys(b), keys(a) .. ' vs ' .. keys(b)) return keys(a)",
		   CANON_KEYS);
	sbx_free(s);
}

Test(sandbox, pairs_same_in_two_states)
{
	const char *code = "local t = {} for i = 1, 200 do t['k' .. (i * 7919 % 1000)] = i end"
			   " local o = {} for k, v in pairs(t) do o[#o + 1] = k end"
			   " return table.concat(o, ',')";
	sbx *a = mk(16 * MIB, 1000, 0), *b = mk(16 * MIB, 1000, 0);
	char *ra = run_str(a, code), *rb = run_str(b, code);

	cr_assert_str_eq(ra, rb);
	for (char *p = ra, *q; (q = strchr(p, ',')) != NULL; p = q + 1) {
		char *r = strchr(q + 1, ',');
		size_t la = (size_t)(q - p), lb = r ? (size_t)(r - q - 1) : strlen(q + 1);
		int c = memcmp(p, q + 1, la < lb ? la : lb);

		cr_assert(c < 0 || (c == 0 && la < lb), "not bytewise ascending at %.20s", p);
	}
	free(ra);
	free(rb);
	sbx_free(a);
	sbx_free(b);
}

Test(sandbox, next_matches_pairs)
{
	sbx *s = mk(16 * MIB, 1000, 0);

	expect_str(s,
		   "local t = {b = 1, [true] = 2, [2] = 3, a = 4, [0.5] = 5} "
		   "local o = {} local k = next(t) "
		   "while k ~= nil do o[#o + 1] = tostring(k) k = next(t, k) end "
		   "return table.concat(o, ',')",
		   "0.5,2,a,b,true");
	expect_str(s,
		   "local t = {a = 1, b = 2, c = 3, d = 4} local o = {}"
		   " for k in pairs(t) do t[k] = nil o[#o + 1] = k end"
		   " return table.concat(o) .. tostring(next(t))",
		   "abcdnil");
	expect_fail(s, "for k in pairs({[{}] = 1}) do end", SCRIPT_ERR,
		    "pairs: table key of type 'table' has no deterministic order");
	expect_fail(s, "next({[print] = 1})", SCRIPT_ERR,
		    "next: table key of type 'function' has no deterministic order");
	expect_str(s,
		   "local t = setmetatable({}, {__pairs = function(t)"
		   " return function(_, k) if not k then return 1, 'x' end end, t, nil end})"
		   " for k, v in pairs(t) do return v end",
		   "x");
	sbx_free(s);
}

Test(sandbox, tostring_has_no_addresses)
{
	sbx *s = mk(16 * MIB, 1000, 0);
	char *r;

	expect_str(s,
		   "local t = {} local a, b = tostring(t), tostring(print)"
		   " assert(tostring(t) == a) return a .. '|' .. b .. '|' .."
		   " tostring(coroutine.create(print)) .. '|' .. string.format('%s', t) .. '|' .."
		   " tostring(setmetatable({}, {__name = 'Foo'}))",
		   "table: #1|function: #2|thread: #3|table: #1|Foo: #4");
	r = run_str(s, "return tostring(function() end) .. tostring({})");
	cr_assert_null(strstr(r, "0x"), "%s", r);
	free(r);
	expect_fail(s, "return string.format('%p', {})", SCRIPT_ERR,
		    "string.format: '%p' is not allowed");
	expect_fail(s, "return string.format('%5p', 1)", SCRIPT_ERR, "'%p' is not allowed");
	expect_str(s, "return string.format('%%p %d %5.1f %s %q', 3, 1.25, 'x', 'y')",
		   "%p 3   1.2 x \"y\"");
	expect_str(s,
		   "return tostring(setmetatable({}, {__tostring = function() return 'T' end}))"
		   " .. tostring(1.5) .. tostring(7) .. tostring(nil)",
		   "T1.57nil");
	sbx_free(s);
}

Test(sandbox, sort_is_stable_and_safe)
{
	sbx *s = mk(16 * MIB, 1000, 0);

	expect_str(s,
		   "local t = {} for i = 1, 300 do t[i] = {k = i * 37 % 5, i = i} end"
		   " table.sort(t, function(a, b) return a.k < b.k end)"
		   " for j = 2, 300 do local p, q = t[j - 1], t[j]"
		   "   assert(p.k < q.k or (p.k == q.k and p.i < q.i), 'unstable at ' .. j) end"
		   " return 'stable'",
		   "stable");
	expect_str(s,
		   "local t = {5, 3, 9, 1, 1, -4, 2.5} table.sort(t)"
		   " return table.concat(t, ',')",
		   "-4,1,1,2.5,3,5,9");
	expect_str(s,
		   "local t = {} for i = 1, 100 do t[i] = i end"
		   " table.sort(t, function() return true end) local n = 0"
		   " for i = 1, 100 do n = n + t[i] end return tostring(n)",
		   "5050");
	expect_str(s,
		   "local t = {'b', 'a'} table.sort(t, function(x, y) return x > y end)"
		   " return table.concat(t)",
		   "ba");
	expect_fail(s, "table.sort({1, 'x'})", SCRIPT_ERR, "attempt to compare");
	expect_fail(s, "table.sort({1, 2}, function() error('cmp') end)", SCRIPT_ERR, "cmp");
	sbx_free(s);
}

/* ---- require ------------------------------------------------------------------- */

static int lookups;

static const char *lookup(void *ud, const char *path, size_t *len)
{
	static const char *files[][2] = {
	    {"lib/util/m.lua", "counter = (counter or 0) + 1 return {n = counter, p = ...}"},
	    {"top.lua", "return 'top'"},
	    {"lib/bad.lua", "error('module failed')"},
	    {"lib/loop.lua", "return require('loop')"},
	};
	size_t i;

	(void)ud;
	lookups++;
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (strcmp(files[i][0], path) == 0) {
			*len = strlen(files[i][1]);
			return files[i][1];
		}
	return NULL;
}

Test(sandbox, require_modules)
{
	sbx *s = mk(16 * MIB, 1000, 0);

	sbx_set_lookup(s, lookup, NULL);
	expect_str(s,
		   "local a = require('util.m') local b = require('util.m')"
		   " assert(a == b and a.n == 1 and counter == 1) return a.p",
		   "util.m");
	expect_str(s, "return require('top')", "top");
	expect_fail(s, "require('no.such')", SCRIPT_ERR,
		    "module 'no.such' not found: no file 'no/such.lua', no file 'lib/no/such.lua'");
	expect_fail(s, "require('../etc/passwd')", SCRIPT_ERR, "invalid module name");
	expect_fail(s, "require('bad')", SCRIPT_ERR, "lib/bad.lua:1: module failed");
	expect_fail(s, "require('loop')", SCRIPT_ERR, "loop while loading module 'loop'");
	expect_str(s, "assert(require('host.math') == math) return 'host'", "host");
	expect_fail(s, "require('host.nothing')", SCRIPT_ERR, "no host module 'nothing'");
	sbx_free(s);
}

/* ---- host-side helpers ------------------------------------------------------------ */

static int fake_random(lua_State *L)
{
	lua_pushinteger(L, 4); /* chosen by fair dice roll */
	return 1;
}

static int install_random(lua_State *L)
{
	sbx *s = sbx_of(L);

	sbx_push_lib(s, "math");
	lua_pushcfunction(L, fake_random);
	lua_setfield(L, -2, "random");
	return 0;
}

Test(sandbox, engine_can_bind_math_random)
{
	sbx *s = mk(16 * MIB, 1000, 0);
	lua_State *L = sbx_L(s);

	lua_pushcfunction(L, install_random);
	cr_assert_eq(lua_pcall(L, 0, 0, 0), LUA_OK);
	expect_str(s, "return tostring(math.random(6))", "4");
	expect_fail(s, "math.random = nil", SCRIPT_ERR, "read-only table 'math'");
	sbx_push_lib(s, "nope");
	cr_assert(lua_isnil(L, -1));
	lua_pop(L, 1);
	sbx_free(s);
}

Test(sandbox, memory_accounting)
{
	sbx *s = mk(16 * MIB, 1000, 0);
	uint64_t before = sbx_mem_used(s);

	cr_assert_gt(before, 1000);
	cr_assert_lt(before, 256 * 1024, "base state uses %llu", (unsigned long long)before);
	expect_str(s, "big = string.rep('x', 1 << 20) return 'ok'", "ok");
	cr_assert_gt(sbx_mem_used(s), (1 << 20) + 1000, "%llu then %llu",
		     (unsigned long long)before, (unsigned long long)sbx_mem_used(s));
	sbx_free(s);
}

Test(sandbox, tiny_cap_fails_creation)
{
	sbx_limits lim = {.mem_bytes = 4096, .deadline_ms = 10, .instructions = 0};
	char err[256] = "";

	cr_assert_null(sbx_new(&lim, err, sizeof(err)));
	cr_assert_neq(err[0], '\0');
}

/* ---- typed errors (sbx_raise) ------------------------------------------------- */

#define DENIED MOONPEN__V1__STATUS__CODE__PERMISSION_DENIED
#define INVALID MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT

/* deny(x) raises a typed PERMISSION_DENIED "denied: <x>"; bad() INVALID_ARGUMENT */
static int t_deny(lua_State *L)
{
	return sbx_raise(L, DENIED, "denied: %s", luaL_optstring(L, 1, "?"));
}

static int t_bad(lua_State *L)
{
	return sbx_raise(L, INVALID, "f: argument #1 'x' expected string, got %s",
			 luaL_typename(L, 1));
}

static sbx *mk_typed(void)
{
	sbx *s = mk(16 * MIB, 1000, 0);

	lua_pushcfunction(sbx_L(s), t_deny);
	lua_setglobal(sbx_L(s), "deny");
	lua_pushcfunction(sbx_L(s), t_bad);
	lua_setglobal(sbx_L(s), "bad");
	return s;
}

static void expect_exact(sbx *s, const char *code, st_code want, const char *msg)
{
	char *got = run_fail(s, code, want);

	cr_assert_str_eq(got, msg, "script: %s", code);
	free(got);
}

Test(sandbox, typed_error_kind_is_the_status)
{
	sbx *s = mk_typed();

	expect_exact(s, "deny('music')", DENIED, "denied: music");
	expect_exact(s, "bad(1)", INVALID, "f: argument #1 'x' expected string, got number");
	/* caught and rethrown: the same object, the same kind */
	expect_exact(s, "local ok, e = pcall(deny, 'a'); error(e)", DENIED, "denied: a");
	expect_exact(s, "local ok, e = pcall(deny, 'a'); error(e, 2)", DENIED, "denied: a");
	expect_exact(s, "local ok, e = xpcall(bad, function(m) return m end, 1); error(e)", INVALID,
		     "f: argument #1 'x' expected string, got number");
	/* its text, or a look-alike string, is the script's own error */
	expect_exact(s, "local ok, e = pcall(deny, 'a'); error(tostring(e), 0)", SCRIPT_ERR,
		     "denied: a");
	expect_exact(s, "error('denied: a', 0)", SCRIPT_ERR, "denied: a");
	expect_exact(s, "error(e.message, 0)", SCRIPT_ERR,
		     "main.lua:1: attempt to index a nil value (global 'e')");
	/* through coroutine.wrap and coroutine.resume */
	expect_exact(s, "coroutine.wrap(function() bad({}) end)()", INVALID,
		     "f: argument #1 'x' expected string, got table");
	expect_exact(s, "local ok, e = coroutine.resume(coroutine.create(deny), 'c'); error(e)",
		     DENIED, "denied: c");
	sbx_free(s);
}

Test(sandbox, typed_error_as_scripts_see_it)
{
	sbx *s = mk_typed();

	expect_str(s,
		   "local ok, e = pcall(deny, 'x')\n"
		   "return table.concat({tostring(ok), type(e), e.kind, e.message, tostring(e),\n"
		   "  'got ' .. e, e .. '!', tostring(getmetatable(e)), tostring(e.other)}, '|')",
		   "false|userdata|permission_denied|denied: x|denied: x|got denied: x|denied: "
		   "x!|false|nil");
	/* cannot be forged, altered or its metatable reused */
	expect_str(s,
		   "local ok, e = pcall(deny, 'x')\n"
		   "local a = pcall(setmetatable, {}, getmetatable(e))\n"
		   "local b = pcall(function() e.kind = 'ok' end)\n"
		   "local c = pcall(rawset, e, 'kind', 'ok')\n"
		   "return tostring(a) .. tostring(b) .. tostring(c) .. e.kind",
		   "falsefalsefalsepermission_denied");
	sbx_free(s);
}

Test(sandbox, typed_error_from_sbx_resume)
{
	sbx *s = mk_typed();
	lua_State *L = sbx_L(s), *co = lua_newthread(L);
	const char *code = "coroutine.yield(1); bad(true)";
	sbx_err err = {0};
	char msg[128];
	int nres = 0;

	cr_assert_eq(sbx_load(s, code, strlen(code), "co.lua", msg, sizeof(msg)), 0, "%s", msg);
	lua_xmove(L, co, 1);
	sbx_budget_begin(s, 1);
	cr_assert_eq(sbx_resume(s, L, co, 0, &nres, &err), 1);
	lua_pop(co, nres);
	cr_assert_eq(sbx_resume(s, L, co, 0, &nres, &err), -1);
	cr_assert_eq(err.code, INVALID);
	cr_assert_str_eq(err.message, "f: argument #1 'x' expected string, got boolean");
	cr_assert_eq(sbx_error_kind(co, -1), INVALID);
	sbx_err_clear(&err);
	sbx_budget_end(s);
	lua_pushliteral(L, "denied: x");
	cr_assert_eq(sbx_error_kind(L, -1), MOONPEN__V1__STATUS__CODE__OK);
	lua_pop(L, 2);
	sbx_free(s);
}
