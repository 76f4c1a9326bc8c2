/*
 * lua_allow — what a script can reach in the Lua sandbox (read by a security
 * reviewer; included once, by worker/sandbox.c, after it declared its own
 * replacement functions).
 *
 * This is an allowlist: worker/sandbox.c builds the global table and every
 * library table from these rows only, so anything Lua offers that is not
 * listed here (a new function in a later Lua release included) does not exist
 * for scripts. A row with an own function replaces Lua's stock one; the stock
 * function, if any, is handed to it as upvalue 1.
 *
 * Deliberately absent, with the reason:
 *   io, os, package, debug   files, processes, clock, environment, the registry
 *   dofile, loadfile         read files
 *   collectgarbage           lets a script steer (and time) the collector
 *   warn                     writes to stderr
 *   string.dump              produces binary chunks (bytecode is not verified)
 *   math.random, randomseed  the engine installs ones bound to the instance RNG
 *                            (DESIGN §5); the stock ones seed from the clock
 *
 * Library tables are read-only proxies for scripts (assignment raises, rawset
 * refuses), the string metatable is hidden (getmetatable("") is false), and
 * setmetatable refuses __gc: finalizers run with hooks disabled, so no budget
 * could stop a looping one, and at collector-chosen times, so they are not
 * replayable.
 */
#ifndef MOONPEN_POLICY_LUA_ALLOW_H
#define MOONPEN_POLICY_LUA_ALLOW_H

/* ---- libraries opened ----------------------------------------------------- */

static const struct sbx_allow_lib {
	const char *name;
	lua_CFunction open;
	const char *why;
} sbx_allow_libs[] = {
    {"string", luaopen_string, "text processing (fields below)"},
    {"table", luaopen_table, "array helpers (fields below)"},
    {"math", luaopen_math, "pure arithmetic (fields below)"},
    {"utf8", luaopen_utf8, "pure UTF-8 helpers"},
    {"coroutine", luaopen_coroutine, "script-level concurrency, budgets follow each thread"},
};

/* ---- fields kept in those libraries ------------------------------------- */

static const struct sbx_allow_field {
	const char *lib;
	const char *name;
	lua_CFunction own; /* NULL: Lua's stock value */
	const char *why;
} sbx_allow_fields[] = {
    {"string", "byte", NULL, "pure"},
    {"string", "char", NULL, "pure"},
    {"string", "find", NULL, "pure; backtracking is bounded by the watchdog"},
    {"string", "format", sb_format, "no '%p'; '%s' prints tables without addresses"},
    {"string", "gmatch", NULL, "pure"},
    {"string", "gsub", NULL, "pure; callbacks run under the hook"},
    {"string", "len", NULL, "pure"},
    {"string", "lower", NULL, "pure"},
    {"string", "match", NULL, "pure"},
    {"string", "pack", NULL, "pure"},
    {"string", "packsize", NULL, "pure"},
    {"string", "rep", NULL, "pure; size bounded by the memory cap"},
    {"string", "reverse", NULL, "pure"},
    {"string", "sub", NULL, "pure"},
    {"string", "unpack", NULL, "pure"},
    {"string", "upper", NULL, "pure"},
    {"table", "concat", NULL, "pure"},
    {"table", "insert", NULL, "pure"},
    {"table", "move", NULL, "pure"},
    {"table", "pack", NULL, "pure"},
    {"table", "remove", NULL, "pure"},
    {"table", "sort", sb_sort, "stable merge sort: stock sort picks random pivots"},
    {"table", "unpack", NULL, "pure"},
    {"math", "abs", NULL, "pure"},
    {"math", "acos", NULL, "pure"},
    {"math", "asin", NULL, "pure"},
    {"math", "atan", NULL, "pure"},
    {"math", "ceil", NULL, "pure"},
    {"math", "cos", NULL, "pure"},
    {"math", "deg", NULL, "pure"},
    {"math", "exp", NULL, "pure"},
    {"math", "floor", NULL, "pure"},
    {"math", "fmod", NULL, "pure"},
    {"math", "huge", NULL, "constant"},
    {"math", "log", NULL, "pure"},
    {"math", "max", NULL, "pure"},
    {"math", "maxinteger", NULL, "constant"},
    {"math", "min", NULL, "pure"},
    {"math", "mininteger", NULL, "constant"},
    {"math", "modf", NULL, "pure"},
    {"math", "pi", NULL, "constant"},
    {"math", "rad", NULL, "pure"},
    {"math", "sin", NULL, "pure"},
    {"math", "sqrt", NULL, "pure"},
    {"math", "tan", NULL, "pure"},
    {"math", "tointeger", NULL, "pure"},
    {"math", "type", NULL, "pure"},
    {"math", "ult", NULL, "pure"},
    {"utf8", "char", NULL, "pure"},
    {"utf8", "charpattern", NULL, "constant"},
    {"utf8", "codepoint", NULL, "pure"},
    {"utf8", "codes", NULL, "pure"},
    {"utf8", "len", NULL, "pure"},
    {"utf8", "offset", NULL, "pure"},
    {"coroutine", "close", sb_co_close, "tracks the running thread for the deadline hook"},
    {"coroutine", "create", NULL, "new threads inherit the hook"},
    {"coroutine", "isyieldable", NULL, "pure"},
    {"coroutine", "resume", sb_co_resume, "tracks the running thread for the deadline hook"},
    {"coroutine", "running", NULL, "pure"},
    {"coroutine", "status", NULL, "pure"},
    {"coroutine", "wrap", sb_co_wrap, "tracks the running thread for the deadline hook"},
    {"coroutine", "yield", NULL, "pure"},
};

/* ---- base functions (globals) ------------------------------------------- */

static const struct sbx_allow_base {
	const char *name;
	lua_CFunction own; /* NULL: Lua's stock value */
	const char *why;
} sbx_allow_base[] = {
    {"_G", NULL, "the global table itself (locked by sbx_freeze_globals)"},
    {"_VERSION", NULL, "constant"},
    {"assert", NULL, "pure"},
    {"error", NULL, "pure"},
    {"getmetatable", NULL, "honours __metatable, so protected metatables stay hidden"},
    {"ipairs", NULL, "integer order, deterministic"},
    {"load", sb_load, "text chunks only, from strings only; env defaults to _G"},
    {"next", sb_next, "canonical key order (DESIGN §5), consistent with pairs"},
    {"pairs", sb_pairs, "canonical key order (DESIGN §5); honours __pairs"},
    {"pcall", NULL, "budget errors are re-raised by the hook, so it cannot swallow them"},
    {"print", sb_print, "does nothing until the engine binds it to the log"},
    {"rawequal", NULL, "pure"},
    {"rawget", NULL, "reads only"},
    {"rawlen", NULL, "pure"},
    {"rawset", sb_rawset, "refuses read-only tables (libraries, frozen _G)"},
    {"require", sb_require, "pack modules only, through the engine's lookup"},
    {"select", NULL, "pure"},
    {"setmetatable", sb_setmetatable, "refuses __gc and protected metatables"},
    {"tonumber", NULL, "pure"},
    {"tostring", sb_tostring, "no addresses: 'table: #12'"},
    {"type", NULL, "pure"},
    {"xpcall", sb_xpcall,
     "the handler is skipped once the window tripped: Lua would run it"
     " inside the hook, where no hook can stop it"},
};

#endif
