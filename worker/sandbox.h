/*
 * sandbox — the configured Lua 5.4 state (runs in moonpen-worker, after
 * confinement). Trusts nothing the script does: safe libraries only (our own
 * table, never luaL_openlibs), text-only loading, a capped allocator, budgets
 * (soft wall deadline, optional instruction count) whose errors pcall cannot
 * swallow, deterministic pairs/next, tostring without addresses.
 *
 * Budgets: the deadline costs nothing while it has not passed (a timer arms
 * the hook when it does); an instruction budget adds a count hook, which
 * measured 1.5-2.3x slower on CPU-bound scripts. Once tripped, the hook raises
 * again at every instruction, call and return until the call returns to the
 * host: pcall, xpcall handlers, coroutines, __close and sort comparators
 * cannot keep running. __gc metamethods are refused (Lua runs finalizers with
 * hooks off). C code that runs long without calling Lua (string.rep, pattern
 * backtracking, table.concat) is out of any hook's reach: the memory cap stops
 * what allocates, the supervisor's watchdog (SIGKILL) the rest.
 *
 * Iteration order is canonical (see sbx_key below): numbers ascending, then
 * strings bytewise, then false, true; other key types make pairs/next raise.
 *
 * System calls this needs after confinement: timer_create, timer_settime,
 * timer_delete, rt_sigaction, rt_sigprocmask, rt_sigreturn, gettid,
 * clock_gettime (CLOCK_THREAD_CPUTIME_ID).
 */
#ifndef MOONPEN_SANDBOX_H
#define MOONPEN_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "common/status.h"

typedef struct sbx sbx;

typedef struct sbx_limits {
	uint64_t mem_bytes;    /* Lua heap cap (allocator refuses past it); 0: none */
	uint32_t deadline_ms;  /* soft wall deadline per budget window; 0: none */
	uint64_t instructions; /* 0: none (no count hook, full speed) */
} sbx_limits;

/* Why a protected call failed: code is one of SCRIPT_ERROR, TIMEOUT,
 * BUDGET_EXCEEDED, MEMORY_LIMIT, or the kind of a typed error (sbx_raise)
 * that ended the call; message and traceback are malloc'd strings
 * (possibly NULL) owned by the struct: release with sbx_err_clear(). */
typedef struct sbx_err {
	st_code code;
	char *message;
	char *traceback;
} sbx_err;

/* A new state with the safe libraries (policy/lua_allow.h) and read-only
 * library tables; the global table itself is locked by sbx_freeze_globals.
 * math.random / math.randomseed do not exist: the engine installs its own,
 * bound to the instance RNG, in the table sbx_push_lib(s, "math") pushes (the
 * "math" global is a read-only proxy, assigning through it raises). The
 * deadline timer targets the calling thread: run the state's budget windows on
 * the thread that created it (another thread works, at the cost of a new
 * timer). Returns NULL (with err filled) on failure. Free with sbx_free. */
sbx *sbx_new(const sbx_limits *lim, char *err, size_t errlen);
/* Closes the state (pending __close methods are interrupted at once). NULL is fine. */
void sbx_free(sbx *s);
lua_State *sbx_L(sbx *s);

/* Compiles a text chunk (binary chunks are refused) and pushes the function.
 * Its _ENV is the sandbox's global table. A chunkname without '@' or '=' gets
 * an '@', so that messages read "main.lua:3: ...". Returns 0, or -EINVAL with
 * the syntax error in err, or -ENOMEM (memory cap). Raises nothing. */
int sbx_load(sbx *s, const char *chunk, size_t len, const char *chunkname, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Starts a budget window (one input): arms the deadline timer for
 * deadline_ms * scale (scale 0 counts as 1), resets the instruction counter
 * and the tripped state. One window per thread at a time. */
void sbx_budget_begin(sbx *s, uint32_t scale);
/* Ends the window: disarms the timer and the hook, clears the tripped state,
 * and after a memory trip runs a full collection so the next window starts
 * with the garbage gone. */
void sbx_budget_end(sbx *s);

/* Calls the function under nargs arguments at the top of the stack, inside the
 * current budget window, with a traceback handler. Returns 0 on success (results
 * pushed as lua_pcall would), or -1 with *err filled and the function and its
 * arguments popped. Codes: TIMEOUT ("deadline of 50 ms exceeded"),
 * BUDGET_EXCEEDED ("instruction budget of N exceeded"), MEMORY_LIMIT ("memory
 * limit of N bytes exceeded"), otherwise SCRIPT_ERROR with the error message
 * (non-string error objects through a __tostring run protected, else "(error
 * object is a table value)"). The traceback is that of the failing point.
 * Once a budget trips, every later sbx_call in the same window fails the same
 * way. Outside a window there is no deadline or instruction budget; the memory
 * cap always holds. Raises nothing. */
int sbx_call(sbx *s, int nargs, int nresults, sbx_err *err);
void sbx_err_clear(sbx_err *err);

/* Bytes the Lua heap holds now / instructions counted in this window (0 when
 * no instruction budget is set) / thread CPU time in this window. */
uint64_t sbx_mem_used(const sbx *s);
uint64_t sbx_instructions(const sbx *s);
uint64_t sbx_cpu_us(const sbx *s);

/* Registers how require() finds pack modules: lookup(ud, "lib/waves.lua", &len)
 * returns the file's bytes or NULL. Names are mapped "a.b" -> "a/b.lua", then
 * "lib/a/b.lua"; "host.X" returns the global module X. Results are cached. */
typedef const char *(*sbx_lookup_fn)(void *ud, const char *path, size_t *len);
void sbx_set_lookup(sbx *s, sbx_lookup_fn fn, void *ud);

/* Locks the global table: creating a global raises "assignment to undeclared
 * global 'x'" (reading an undeclared one gives nil; rawset(_G, ...) and
 * setmetatable(_G, ...) are refused). Globals that exist may still be
 * reassigned (spk lint flags that). Called by the engine once the entry chunk
 * has run; host code may still lua_setglobal existing names. Allocates
 * nothing. */
void sbx_freeze_globals(sbx *s);

/* ---- additions (engine and luaval use them) ------------------------------- */

/* The sandbox that owns L (any thread of the state). */
sbx *sbx_of(lua_State *L);

/* sbx_call on thread T instead of the main thread (T must be the thread that
 * is running now, e.g. the L a host function was handed, or s's main thread). */
int sbx_pcall(sbx *s, lua_State *T, int nargs, int nresults, sbx_err *err);

/* Resumes coroutine co from thread `from` (NULL: the main thread) with nargs
 * arguments already pushed on co, inside the current budget window, keeping
 * the deadline hook on the thread that runs. Engines that run scripts in
 * coroutines must resume them through this, never with lua_resume directly,
 * or a deadline that passes inside co is not noticed. Returns 0 when co
 * returned, 1 when it yielded (*nres values on co's stack either way), or -1
 * with *err filled (the error object stays on co, which is dead). Error
 * objects that are not strings or numbers are named by type. */
int sbx_resume(sbx *s, lua_State *from, lua_State *co, int nargs, int *nres, sbx_err *err);

/* Pushes the real (writable) table of the library `name` ("math", ...), or nil.
 * Scripts only see read-only proxies of these tables: the engine installs
 * math.random / math.randomseed here. Allocates nothing for the names of
 * policy/lua_allow.h libraries (already interned); other names may raise a
 * memory error, so call it from protected code. */
void sbx_push_lib(sbx *s, const char *name);

/* Pushes a read-only proxy of the table at idx (reads pass through, writes
 * raise "cannot modify read-only table 'name'", rawset refuses, pairs works,
 * the metatable is hidden). For host modules. Raises on memory errors: call
 * it from protected code. */
void sbx_push_readonly(lua_State *L, int idx, const char *name);

/* Pushes tostring(v) as scripts see it (honours __tostring and __name; tables,
 * functions, threads and userdata print as "table: #12", a per-state number
 * given at first print, never an address) and returns it. May raise. */
const char *sbx_tostring(lua_State *L, int idx);

/*
 * Canonical key order, the only iteration order scripts can observe (pairs,
 * next) and the order of Value maps: numbers first (integers and floats
 * together, ascending numerically), then strings (bytewise, a prefix first),
 * then false, then true. Keys of any other type (tables, functions, threads,
 * userdata) have no deterministic order: pairs/next raise "pairs: table key of
 * type 'table' has no deterministic order".
 */
typedef struct sbx_key {
	int rank; /* 0 number, 1 string, 2 false, 3 true */
	int is_int;
	lua_Integer i;
	lua_Number n;
	const char *s; /* points into the Lua string: valid while it is reachable */
	size_t len;
} sbx_key;

/* Reads the key at idx. Returns 0, or -EINVAL (unorderable type, NaN). */
int sbx_key_get(lua_State *L, int idx, sbx_key *k) __attribute__((warn_unused_result));
/* <0, 0, >0 as a sorts before, equals, after b. */
int sbx_key_cmp(const sbx_key *a, const sbx_key *b);

/* For host functions that ran out of memory: trips the window as MEMORY_LIMIT
 * (uncatchable, like an allocator refusal) and raises "<what>: out of memory",
 * what formatted printf-style. Never returns. */
int sbx_nomem(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Same trip, with the whole message given (a host-side memory budget such as
 * the result size of one input). Never returns. */
int sbx_memory_error(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- typed errors ---------------------------------------------------------- */

/*
 * A typed error is the object host functions raise when the failure is not the
 * script's own bug: a full userdata owned by the sandbox carrying {kind,
 * message}. The engine maps the kind of the object that ended an input to the
 * input's status (sbx_call / sbx_pcall / sbx_resume put it in err->code), with
 * no string matching. Scripts cannot forge one: they cannot create userdata,
 * and the metatable is hidden (getmetatable gives false). What scripts see:
 * tostring(e) and e.message give the message, e.kind the status name
 * ("invalid_argument"), `..` concatenates its message. A script that catches
 * one with pcall and rethrows the same object (error(e)) keeps its kind; a
 * script that raises a string, even an identical one (error(tostring(e))), is
 * a SCRIPT_ERROR. No position is prepended: the traceback says where.
 */

/* Raises a typed error of kind code (INVALID_ARGUMENT, PERMISSION_DENIED,
 * ...; SCRIPT_ERROR is allowed and then only the object differs from a
 * string), message printf-style (cut at 4096 bytes). Allocates in the Lua
 * heap: a refusal there is a MEMORY_LIMIT as usual. Never returns. */
int sbx_raise(lua_State *L, st_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The kind of the typed error at idx, or 0 (OK) when the value is not one.
 * Runs no Lua code and allocates nothing (uses 2 stack slots, checked), so it
 * also works on a dead coroutine's stack. */
st_code sbx_error_kind(lua_State *L, int idx);

#endif
