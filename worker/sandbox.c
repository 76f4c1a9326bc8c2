/*
 * sandbox — the configured Lua 5.4 state.
 *
 * Runs in moonpen-worker, after confinement. Trusts the engine that drives it
 * and nothing a script does: every function a script can reach comes from the
 * allowlist in policy/lua_allow.h, chunks are text only, the heap is capped by
 * our allocator, and budgets are enforced by a hook that pcall cannot silence.
 *
 * Budgets. The default arms no hook at all while a script runs: a POSIX timer
 * (CLOCK_MONOTONIC, SIGALRM directed at the thread that runs Lua, never at the
 * process: NNG's threads must not get it) fires at the deadline and its
 * handler arms a hook on every instruction, call and return, the way lua.c
 * handles SIGINT. Once a window has tripped (deadline, instruction budget or
 * memory cap) the hook stays armed and raises again wherever the script goes
 * (pcall, xpcall handlers, coroutines, __close, sort comparators), until the
 * call unwinds to the host. C code that runs long without calling Lua
 * (string.rep, pattern backtracking, table.concat) is not reached by any hook:
 * the memory cap stops what allocates, the supervisor's watchdog (SIGKILL)
 * what does not.
 *
 * Determinism (DESIGN §5): pairs/next iterate in canonical key order, table.sort
 * is a stable merge sort, tostring prints no addresses, %p is refused.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "common/log.h"
#include "worker/sandbox.h"

/* Replacement functions named by the policy table. */
static int sb_format(lua_State *L);
static int sb_sort(lua_State *L);
static int sb_co_resume(lua_State *L);
static int sb_co_wrap(lua_State *L);
static int sb_co_close(lua_State *L);
static int sb_load(lua_State *L);
static int sb_next(lua_State *L);
static int sb_pairs(lua_State *L);
static int sb_print(lua_State *L);
static int sb_rawset(lua_State *L);
static int sb_require(lua_State *L);
static int sb_setmetatable(lua_State *L);
static int sb_tostring(lua_State *L);
static int sb_xpcall(lua_State *L);

#include "policy/lua_allow.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define HOOK_FULL (LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT)
#define COUNT_STEP 1000 /* instructions between two count hooks */
#define MSG_MAX 4096	/* longest error message kept */
#define TB_MAX 8192	/* longest traceback kept */
#define TB_LEVELS1 10	/* traceback: first levels shown ... */
#define TB_LEVELS2 11	/* ... and last levels shown */
#define MODNAME_MAX 128 /* longest module name require() accepts */

enum trip { TRIP_NONE, TRIP_TIMEOUT, TRIP_BUDGET, TRIP_MEMORY, TRIP_CLOSING };

struct sbx {
	lua_State *L;
	sbx_limits lim;
	uint64_t mem_used;
	/* Budget window. tripped, mem_refused and running are also touched by
	 * the SIGALRM handler on this thread. */
	volatile sig_atomic_t tripped;
	volatile sig_atomic_t mem_refused; /* a growth was refused, no growth since */
	lua_State *volatile running;	   /* the thread running Lua now */
	int in_window;
	uint64_t window_ms;
	uint64_t instr;
	int step;
	uint64_t cpu0, cpu_end;
	/* deadline timer */
	timer_t timer;
	int timer_ok;
	pid_t timer_tid;
	/* error handler output (malloc'd), taken by sbx_pcall */
	char *eh_msg;
	char *eh_tb;
	st_code eh_kind;     /* kind of a typed error object, 0: none */
	lua_Integer next_id; /* tostring sequence numbers */
	sbx_lookup_fn lookup;
	void *lookup_ud;
};

/* Registry keys (their addresses). */
static char k_ids, k_modules, k_libs, k_lock, k_globals_mt, k_loading, k_errmt;
static char k_trip_msg[TRIP_CLOSING + 1];

/* The window active on this thread: the SIGALRM handler acts only for it, so a
 * late signal can never touch a freed or idle sandbox. Thread-local, read from
 * a signal handler: initial-exec TLS is async-signal-safe. */
static _Thread_local sbx *tl_window __attribute__((tls_model("initial-exec")));

sbx *sbx_of(lua_State *L)
{
	void *ud = NULL;

	lua_getallocf(L, &ud);
	return ud;
}

lua_State *sbx_L(sbx *s)
{
	return s->L;
}

/* ========================================================================== */
/* Hooks and trips                                                            */
/* ========================================================================== */

static int sbx_msgh(lua_State *L);
static int xpcall_msgh(lua_State *L);
static void sbx_hook(lua_State *L, lua_Debug *ar);

/* Sets T's hook to what the window needs now: full when tripped (or a memory
 * refusal awaits its verdict), the count hook with an instruction budget,
 * none otherwise. Re-checks after setting, in case the timer tripped between
 * the read and the write. */
static void hook_sync(sbx *s, lua_State *T)
{
	lua_Hook h = NULL;
	int mask = 0, count = 0;

	if (s->tripped || s->mem_refused) {
		h = sbx_hook;
		mask = HOOK_FULL;
		count = 1;
	} else if (s->in_window && s->lim.instructions > 0) {
		h = sbx_hook;
		mask = LUA_MASKCOUNT;
		count = s->step;
	}
	if (lua_gethook(T) != h || lua_gethookmask(T) != mask || lua_gethookcount(T) != count)
		lua_sethook(T, h, mask, count);
	if (mask != HOOK_FULL && (s->tripped || s->mem_refused))
		lua_sethook(T, sbx_hook, HOOK_FULL, 1);
}

/* Arms the full hook on the running thread and the main thread. Async-signal
 * safe under Lua's own "reasonable assumptions" for lua_sethook. */
static void arm_all(sbx *s)
{
	lua_State *r = s->running;

	if (s->L == NULL)
		return;
	lua_sethook(s->L, sbx_hook, HOOK_FULL, 1);
	if (r != NULL && r != s->L)
		lua_sethook(r, sbx_hook, HOOK_FULL, 1);
}

static void trip(sbx *s, enum trip why)
{
	if (!s->tripped)
		s->tripped = why;
	arm_all(s);
}

/* Is the hook running for our message handler? It must be let through, or
 * no traceback could ever be taken once the window has tripped. */
static int in_msgh(lua_State *L, lua_Debug *ar)
{
	int r = 0;

	if (ar->event == LUA_HOOKCOUNT || ar->event == LUA_HOOKLINE)
		return 0;
	if (lua_getinfo(L, "f", ar)) {
		lua_CFunction f = lua_tocfunction(L, -1);

		r = f == sbx_msgh || f == xpcall_msgh;
		lua_pop(L, 1);
	}
	return r;
}

static void sbx_hook(lua_State *L, lua_Debug *ar)
{
	sbx *s = sbx_of(L);

	if (ar->event == LUA_HOOKCOUNT && !s->tripped && s->in_window && s->lim.instructions > 0) {
		s->instr += (uint64_t)s->step;
		if (s->instr > s->lim.instructions)
			trip(s, TRIP_BUDGET);
	}
	if (!s->tripped && s->mem_refused)
		trip(s, TRIP_MEMORY); /* the refusal became an error a pcall caught */
	if (!s->tripped) {
		hook_sync(s, L);
		return;
	}
	if (in_msgh(L, ar))
		return;
	lua_sethook(L, sbx_hook, HOOK_FULL, 1);
	/* a preallocated message: raising must not need memory */
	lua_rawgetp(L, LUA_REGISTRYINDEX, &k_trip_msg[s->tripped]);
	lua_error(L);
}

int sbx_nomem(lua_State *L, const char *fmt, ...)
{
	char what[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return sbx_memory_error(L, "%s: out of memory", what);
}

int sbx_memory_error(lua_State *L, const char *fmt, ...)
{
	char msg[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	trip(sbx_of(L), TRIP_MEMORY);
	return luaL_error(L, "%s", msg);
}

/* ========================================================================== */
/* Allocator                                                                  */
/* ========================================================================== */

/* Lua retries a refused allocation once, after an emergency collection. A
 * refusal right after a refusal is therefore final: the window trips. A
 * single refusal arms the hook, which trips if no growth succeeded since
 * (Lua raised without retrying and a pcall caught the error). */
static void refuse(sbx *s)
{
	if (s->mem_refused) {
		trip(s, TRIP_MEMORY);
		return;
	}
	s->mem_refused = 1;
	arm_all(s);
}

static void *sbx_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	sbx *s = ud;
	void *p;

	if (ptr == NULL)
		osize = 0; /* osize then only tells the object type */
	if (nsize == 0) {
		free(ptr);
		s->mem_used -= osize;
		return NULL;
	}
	if (nsize > osize && s->lim.mem_bytes > 0 &&
	    nsize > s->lim.mem_bytes - (s->mem_used - osize)) {
		refuse(s);
		return NULL;
	}
	p = realloc(ptr, nsize);
	if (p == NULL) {
		if (nsize <= osize)
			return ptr; /* Lua assumes shrinking never fails */
		refuse(s);
		return NULL;
	}
	s->mem_used = s->mem_used - osize + nsize;
	if (nsize > osize)
		s->mem_refused = 0;
	return p;
}

/* ========================================================================== */
/* Deadline timer                                                             */
/* ========================================================================== */

static void on_alarm(int sig, siginfo_t *si, void *uc)
{
	sbx *s = si->si_value.sival_ptr;

	(void)sig;
	(void)uc;
	if (si->si_code != SI_TIMER || s == NULL || s != tl_window)
		return; /* a late or foreign signal */
	trip(s, TRIP_TIMEOUT);
}

static pthread_once_t alarm_once = PTHREAD_ONCE_INIT;
static int alarm_rc;

static void alarm_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_alarm;
	sa.sa_flags = SA_SIGINFO | SA_RESTART; /* NNG calls on this thread restart */
	sigemptyset(&sa.sa_mask);
	alarm_rc = sigaction(SIGALRM, &sa, NULL) == 0 ? 0 : -errno;
}

/* A timer whose SIGALRM goes to the calling thread only (SIGEV_THREAD_ID). */
static int timer_setup(sbx *s)
{
	struct sigevent sev;
	sigset_t set;
	pid_t tid = gettid();

	pthread_once(&alarm_once, alarm_install);
	if (alarm_rc < 0)
		return alarm_rc;
	if (s->timer_ok) {
		timer_delete(s->timer);
		s->timer_ok = 0;
	}
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = SIGALRM;
	sev.sigev_value.sival_ptr = s;
	sev._sigev_un._tid = tid;
	if (timer_create(CLOCK_MONOTONIC, &sev, &s->timer) != 0)
		return -errno;
	s->timer_ok = 1;
	s->timer_tid = tid;
	sigemptyset(&set);
	sigaddset(&set, SIGALRM);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	return 0;
}

static void timer_arm(sbx *s, uint64_t ms)
{
	struct itimerspec its;

	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = (time_t)(ms / 1000);
	its.it_value.tv_nsec = (long)(ms % 1000) * 1000000L;
	if (s->timer_ok && timer_settime(s->timer, 0, &its, NULL) != 0)
		log_error("sandbox: timer_settime: %s", strerror(errno));
}

static uint64_t thread_cpu_us(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void sbx_budget_begin(sbx *s, uint32_t scale)
{
	s->tripped = TRIP_NONE;
	s->mem_refused = 0;
	s->instr = 0;
	s->in_window = 1;
	s->window_ms = (uint64_t)s->lim.deadline_ms * (scale > 0 ? scale : 1);
	s->cpu0 = thread_cpu_us();
	s->cpu_end = 0;
	hook_sync(s, s->L);
	if (s->lim.deadline_ms == 0)
		return;
	if (!s->timer_ok || s->timer_tid != gettid()) {
		int r = timer_setup(s);

		if (r < 0)
			log_error("sandbox: no deadline timer on this thread: %s", strerror(-r));
	}
	tl_window = s;
	timer_arm(s, s->window_ms);
}

/* Disarming is a system call: a signal already queued for this thread is
 * delivered when it returns, while tl_window still names us; the hooks are
 * reset after that. */
void sbx_budget_end(sbx *s)
{
	int mem = s->tripped == TRIP_MEMORY;

	if (s->lim.deadline_ms > 0)
		timer_arm(s, 0);
	if (tl_window == s)
		tl_window = NULL;
	s->cpu_end = thread_cpu_us();
	s->in_window = 0;
	s->tripped = TRIP_NONE;
	s->mem_refused = 0;
	s->running = NULL;
	lua_sethook(s->L, NULL, 0, 0);
	if (mem)
		lua_gc(s->L, LUA_GCCOLLECT, 0); /* give the next window a clean heap */
}

uint64_t sbx_mem_used(const sbx *s)
{
	return s->mem_used;
}

uint64_t sbx_instructions(const sbx *s)
{
	return s->lim.instructions > 0 ? s->instr : 0;
}

uint64_t sbx_cpu_us(const sbx *s)
{
	uint64_t end = s->in_window ? thread_cpu_us() : s->cpu_end;

	return end > s->cpu0 ? end - s->cpu0 : 0;
}

/* ========================================================================== */
/* Canonical key order, pairs, next                                           */
/* ========================================================================== */

int sbx_key_get(lua_State *L, int idx, sbx_key *k)
{
	memset(k, 0, sizeof(*k));
	switch (lua_type(L, idx)) {
	case LUA_TNUMBER:
		k->rank = 0;
		k->is_int = lua_isinteger(L, idx);
		if (k->is_int)
			k->i = lua_tointeger(L, idx);
		else
			k->n = lua_tonumber(L, idx);
		return !k->is_int && isnan(k->n) ? -EINVAL : 0;
	case LUA_TSTRING:
		k->rank = 1;
		k->s = lua_tolstring(L, idx, &k->len);
		return 0;
	case LUA_TBOOLEAN:
		k->rank = lua_toboolean(L, idx) ? 3 : 2;
		return 0;
	default:
		return -EINVAL;
	}
}

/* i <=> f, exactly (no rounding of large integers). */
static int cmp_int_float(lua_Integer i, lua_Number f)
{
	lua_Number fl;
	lua_Integer fi;

	if (f >= 0x1p63)
		return -1;
	if (f < -0x1p63)
		return 1;
	fl = floor(f);
	fi = (lua_Integer)fl;
	if (i != fi)
		return i < fi ? -1 : 1;
	return fl == f ? 0 : -1;
}

int sbx_key_cmp(const sbx_key *a, const sbx_key *b)
{
	int r;

	if (a->rank != b->rank)
		return a->rank < b->rank ? -1 : 1;
	if (a->rank == 1) {
		r = memcmp(a->s, b->s, a->len < b->len ? a->len : b->len);
		if (r != 0)
			return r < 0 ? -1 : 1;
		return a->len == b->len ? 0 : (a->len < b->len ? -1 : 1);
	}
	if (a->rank != 0)
		return 0;
	if (a->is_int && b->is_int)
		return a->i == b->i ? 0 : (a->i < b->i ? -1 : 1);
	if (a->is_int)
		return cmp_int_float(a->i, b->n);
	if (b->is_int)
		return -cmp_int_float(b->i, a->n);
	return a->n == b->n ? 0 : (a->n < b->n ? -1 : 1);
}

static int key_or_raise(lua_State *L, int idx, sbx_key *k, const char *who)
{
	if (sbx_key_get(L, idx, k) < 0)
		return luaL_error(L, "%s: table key of type '%s' has no deterministic order", who,
				  luaL_typename(L, idx));
	return 0;
}

struct kent {
	sbx_key k;
	lua_Integer pos;
};

static int kent_cmp(const void *a, const void *b)
{
	return sbx_key_cmp(&((const struct kent *)a)->k, &((const struct kent *)b)->k);
}

/* Pushes a sequence of t's keys (t at index tidx) in canonical order. The
 * scratch buffer is a userdata: an error leaves nothing to free. */
static void push_sorted_keys(lua_State *L, int tidx, const char *who)
{
	lua_Integer n = 0, i;
	int raw;
	struct kent *e;

	lua_newtable(L);
	raw = lua_gettop(L);
	lua_pushnil(L);
	while (lua_next(L, tidx) != 0) {
		lua_pop(L, 1);
		lua_pushvalue(L, -1);
		lua_rawseti(L, raw, ++n);
	}
	if ((size_t)n > SIZE_MAX / sizeof(*e))
		luaL_error(L, "%s: table too big", who);
	e = lua_newuserdatauv(L, (size_t)n * sizeof(*e) + 1, 0);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, raw, i);
		key_or_raise(L, -1, &e[i - 1].k, who);
		e[i - 1].pos = i;
		lua_pop(L, 1); /* the string stays reachable from raw */
	}
	qsort(e, (size_t)n, sizeof(*e), kent_cmp);
	lua_createtable(L, (int)(n < INT_MAX ? n : INT_MAX), 0);
	for (i = 0; i < n; i++) {
		lua_rawgeti(L, raw, e[i].pos);
		lua_rawseti(L, -2, i + 1);
	}
	lua_replace(L, raw);
	lua_settop(L, raw);
}

/* upvalues: sorted keys, table, position */
static int pairs_iter(lua_State *L)
{
	lua_Integer i = lua_tointeger(L, lua_upvalueindex(3));

	for (;;) {
		i++;
		if (lua_rawgeti(L, lua_upvalueindex(1), i) == LUA_TNIL) {
			lua_pushinteger(L, i - 1);
			lua_replace(L, lua_upvalueindex(3));
			return 1;
		}
		lua_pushvalue(L, -1);
		if (lua_rawget(L, lua_upvalueindex(2)) != LUA_TNIL)
			break; /* keys removed during the loop are skipped */
		lua_pop(L, 2);
	}
	lua_pushinteger(L, i);
	lua_replace(L, lua_upvalueindex(3));
	return 2;
}

static int pairs_of(lua_State *L, int t)
{
	push_sorted_keys(L, t, "pairs");
	lua_pushvalue(L, t);
	lua_pushinteger(L, 0);
	lua_pushcclosure(L, pairs_iter, 3);
	lua_pushvalue(L, t);
	lua_pushnil(L);
	return 3;
}

static int sb_pairs(lua_State *L)
{
	if (luaL_getmetafield(L, 1, "__pairs") != LUA_TNIL) {
		lua_pushvalue(L, 1);
		lua_call(L, 1, 3);
		return 3;
	}
	luaL_checktype(L, 1, LUA_TTABLE);
	return pairs_of(L, 1);
}

/* next(t, k): the smallest key after k in canonical order, O(n). Works for a
 * k removed during the traversal, like pairs. */
static int sb_next(lua_State *L)
{
	sbx_key after, best, cur;
	int have = 0, from;

	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 2);
	from = !lua_isnil(L, 2);
	if (from)
		key_or_raise(L, 2, &after, "next");
	lua_pushnil(L); /* 3: best key so far */
	lua_pushnil(L); /* 4: traversal key */
	while (lua_next(L, 1) != 0) {
		lua_pop(L, 1);
		key_or_raise(L, 4, &cur, "next");
		if ((!from || sbx_key_cmp(&cur, &after) > 0) &&
		    (!have || sbx_key_cmp(&cur, &best) < 0)) {
			best = cur; /* its string is kept alive in slot 3 */
			have = 1;
			lua_copy(L, 4, 3);
		}
	}
	if (!have) {
		lua_pushnil(L);
		return 1;
	}
	lua_pushvalue(L, 3);
	lua_pushvalue(L, 3);
	lua_rawget(L, 1);
	return 2;
}

/* ========================================================================== */
/* tostring, string.format, print                                             */
/* ========================================================================== */

static lua_Integer object_id(lua_State *L, int idx)
{
	sbx *s = sbx_of(L);
	lua_Integer id;

	lua_rawgetp(L, LUA_REGISTRYINDEX, &k_ids);
	lua_pushvalue(L, idx);
	if (lua_rawget(L, -2) == LUA_TNUMBER) {
		id = lua_tointeger(L, -1);
		lua_pop(L, 2);
		return id;
	}
	lua_pop(L, 1);
	id = ++s->next_id;
	lua_pushvalue(L, idx);
	lua_pushinteger(L, id);
	lua_rawset(L, -3);
	lua_pop(L, 1);
	return id;
}

const char *sbx_tostring(lua_State *L, int idx)
{
	int tt;
	const char *kind;
	lua_Integer id;

	idx = lua_absindex(L, idx);
	if (luaL_callmeta(L, idx, "__tostring")) {
		if (!lua_isstring(L, -1))
			luaL_error(L, "'__tostring' must return a string");
		return lua_tostring(L, -1);
	}
	switch (lua_type(L, idx)) {
	case LUA_TNIL:
	case LUA_TBOOLEAN:
	case LUA_TNUMBER:
	case LUA_TSTRING:
		return luaL_tolstring(L, idx, NULL); /* no address for these */
	default:
		break;
	}
	tt = luaL_getmetafield(L, idx, "__name");
	kind = tt == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, idx);
	id = object_id(L, idx);
	lua_pushfstring(L, "%s: #%I", kind, (LUAI_UACINT)id);
	if (tt != LUA_TNIL)
		lua_remove(L, -2);
	return lua_tostring(L, -1);
}

static int sb_tostring(lua_State *L)
{
	luaL_checkany(L, 1);
	sbx_tostring(L, 1);
	return 1;
}

static int sb_print(lua_State *L)
{
	(void)L; /* the engine binds print to the instance log */
	return 0;
}

/* Checks the conversions of a format string the way lstrlib.c parses them:
 * '%p' is refused, '%s' arguments that are not strings or numbers are
 * converted here, without addresses. Then calls the stock format (upvalue 1). */
static int sb_format(lua_State *L)
{
	size_t len;
	const char *p = luaL_checklstring(L, 1, &len), *e = p + len;
	int arg = 1, top = lua_gettop(L);

	while (p < e) {
		if (*p++ != '%')
			continue;
		if (p < e && *p == '%') {
			p++;
			continue;
		}
		while (p < e && *p != '\0' && strchr("-+ #0123456789.", *p) != NULL)
			p++;
		if (p >= e)
			break; /* the stock format reports it */
		arg++;
		if (*p == 'p')
			return luaL_error(L, "string.format: '%%p' is not allowed");
		if (*p == 's' && arg <= top && !lua_isstring(L, arg)) {
			sbx_tostring(L, arg);
			lua_replace(L, arg);
		}
		p++;
	}
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, top, 1);
	return 1;
}

/* ========================================================================== */
/* table.sort: stable bottom-up merge sort                                    */
/* ========================================================================== */

/* a[i] < a[j], with the comparator at index 2 or the '<' operator. Any
 * answer is tolerated: a merge step always consumes one element. */
static int sort_lt(lua_State *L, int a, lua_Integer i, lua_Integer j)
{
	int r;

	if (lua_isnil(L, 2)) {
		lua_rawgeti(L, a, i);
		lua_rawgeti(L, a, j);
		r = lua_compare(L, -2, -1, LUA_OPLT);
		lua_pop(L, 2);
		return r;
	}
	lua_pushvalue(L, 2);
	lua_rawgeti(L, a, i);
	lua_rawgeti(L, a, j);
	lua_call(L, 2, 1);
	r = lua_toboolean(L, -1);
	lua_pop(L, 1);
	return r;
}

static void sort_merge(lua_State *L, int src, int dst, lua_Integer lo, lua_Integer mid,
		       lua_Integer hi)
{
	lua_Integer i = lo, j = mid, k = lo;

	while (i < mid && j < hi) {
		/* take the right element only when strictly smaller: stable */
		if (sort_lt(L, src, j, i))
			lua_rawgeti(L, src, j++);
		else
			lua_rawgeti(L, src, i++);
		lua_rawseti(L, dst, k++);
	}
	while (i < mid) {
		lua_rawgeti(L, src, i++);
		lua_rawseti(L, dst, k++);
	}
	while (j < hi) {
		lua_rawgeti(L, src, j++);
		lua_rawseti(L, dst, k++);
	}
}

static int sb_sort(lua_State *L)
{
	lua_Integer n, i, w, lo;
	int src = 3, dst = 4;

	luaL_checktype(L, 1, LUA_TTABLE);
	n = luaL_len(L, 1);
	if (n < 2)
		return 0;
	luaL_argcheck(L, n < INT_MAX, 1, "array too big");
	if (!lua_isnoneornil(L, 2))
		luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_settop(L, 2);
	lua_createtable(L, (int)n, 0);
	lua_createtable(L, (int)n, 0);
	for (i = 1; i <= n; i++) {
		lua_geti(L, 1, i);
		lua_rawseti(L, src, i);
	}
	for (w = 1; w < n; w *= 2) {
		for (lo = 1; lo <= n; lo += 2 * w) {
			lua_Integer mid = lo + w <= n + 1 ? lo + w : n + 1;
			lua_Integer hi = lo + 2 * w <= n + 1 ? lo + 2 * w : n + 1;

			sort_merge(L, src, dst, lo, mid, hi);
		}
		src ^= 7; /* swap 3 and 4 */
		dst ^= 7;
	}
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, src, i);
		lua_seti(L, 1, i);
	}
	return 0;
}

/* ========================================================================== */
/* Coroutines: the deadline hook follows the running thread                   */
/* ========================================================================== */

/* Runs lua_resume with s->running pointing at co, so that the SIGALRM
 * handler arms the thread that actually runs. Nothing in between can raise. */
static int resume_tracked(sbx *s, lua_State *from, lua_State *co, int narg, int *nres)
{
	int st;

	s->running = co;
	hook_sync(s, co);
	st = lua_resume(co, from, narg, nres);
	s->running = from;
	if (from != NULL)
		hook_sync(s, from);
	return st;
}

static int reset_tracked(sbx *s, lua_State *from, lua_State *co)
{
	int st;

	s->running = co;
	hook_sync(s, co);
	st = lua_resetthread(co); /* runs pending __close methods on co */
	s->running = from;
	hook_sync(s, from);
	return st;
}

/* lcorolib.c's auxresume. Returns the number of results, or -1 with the
 * error object pushed. */
static int auxresume(lua_State *L, lua_State *co, int narg)
{
	int st, nres;

	if (!lua_checkstack(co, narg)) {
		lua_pushliteral(L, "too many arguments to resume");
		return -1;
	}
	lua_xmove(L, co, narg);
	st = resume_tracked(sbx_of(L), L, co, narg, &nres);
	if (st == LUA_OK || st == LUA_YIELD) {
		if (!lua_checkstack(L, nres + 1)) {
			lua_pop(co, nres);
			lua_pushliteral(L, "too many results to resume");
			return -1;
		}
		lua_xmove(co, L, nres);
		return nres;
	}
	lua_xmove(co, L, 1);
	return -1;
}

static lua_State *getco(lua_State *L)
{
	lua_State *co = lua_tothread(L, 1);

	luaL_argexpected(L, co != NULL, 1, "coroutine");
	return co;
}

static int sb_co_resume(lua_State *L)
{
	lua_State *co = getco(L);
	int r = auxresume(L, co, lua_gettop(L) - 1);

	if (r < 0) {
		lua_pushboolean(L, 0);
		lua_insert(L, -2);
		return 2;
	}
	lua_pushboolean(L, 1);
	lua_insert(L, -(r + 1));
	return r + 1;
}

static int auxwrap(lua_State *L)
{
	lua_State *co = lua_tothread(L, lua_upvalueindex(1));
	int r = auxresume(L, co, lua_gettop(L));

	if (r >= 0)
		return r;
	{
		int st = lua_status(co);

		if (st != LUA_OK && st != LUA_YIELD) {
			st = reset_tracked(sbx_of(L), L, co);
			lua_xmove(co, L, 1);
		}
		if (st != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
			luaL_where(L, 1);
			lua_insert(L, -2);
			lua_concat(L, 2);
		}
	}
	return lua_error(L);
}

static int sb_co_wrap(lua_State *L)
{
	lua_State *co;

	luaL_checktype(L, 1, LUA_TFUNCTION);
	co = lua_newthread(L);
	lua_pushvalue(L, 1);
	lua_xmove(L, co, 1);
	lua_pushcclosure(L, auxwrap, 1);
	return 1;
}

/* lcorolib.c's auxstatus, reduced to "may it be closed?" */
static int closable(lua_State *L, lua_State *co)
{
	lua_Debug ar;

	if (L == co)
		return 0;
	switch (lua_status(co)) {
	case LUA_YIELD:
		return 1;
	case LUA_OK:
		return !lua_getstack(co, 0, &ar); /* suspended-not-started or dead */
	default:
		return 1; /* dead with an error */
	}
}

static int sb_co_close(lua_State *L)
{
	lua_State *co = getco(L);
	int st;

	if (!closable(L, co))
		return luaL_error(L, "cannot close a %s coroutine", L == co ? "running" : "normal");
	st = reset_tracked(sbx_of(L), L, co);
	if (st == LUA_OK) {
		lua_pushboolean(L, 1);
		return 1;
	}
	lua_pushboolean(L, 0);
	lua_xmove(co, L, 1);
	return 2;
}

/* ========================================================================== */
/* load, require, setmetatable, rawset                                        */
/* ========================================================================== */

/* load(chunk [, name [, mode [, env]]]): strings only, text only ('mode' is
 * ignored: always "t"), env defaults to the sandbox globals. Returns the
 * function, or nil and the message, as the stock load does. */
static int sb_load(lua_State *L)
{
	size_t len;
	const char *chunk, *name;
	int env = !lua_isnone(L, 4);

	if (lua_type(L, 1) != LUA_TSTRING)
		return luaL_error(L, "load: chunk must be a string (got %s)", luaL_typename(L, 1));
	chunk = lua_tolstring(L, 1, &len);
	name = luaL_optstring(L, 2, "=(load)");
	if (luaL_loadbufferx(L, chunk, len, name, "t") != LUA_OK) {
		luaL_pushfail(L);
		lua_insert(L, -2);
		return 2;
	}
	if (env) {
		lua_pushvalue(L, 4);
		if (lua_setupvalue(L, -2, 1) == NULL)
			lua_pop(L, 1);
	}
	return 1;
}

static int modname_ok(const char *name)
{
	size_t n = strlen(name), i;
	int empty = 1;

	if (n == 0 || n > MODNAME_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		char c = name[i];

		if (c == '.') {
			if (empty)
				return 0;
			empty = 1;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			   (c >= '0' && c <= '9') || c == '_' || c == '-') {
			empty = 0;
		} else {
			return 0;
		}
	}
	return !empty;
}

static int require_host(lua_State *L, const char *name)
{
	const char *x = name + 5;

	if (!modname_ok(x) || strchr(x, '.') != NULL)
		return luaL_error(L, "require: invalid module name '%s'", name);
	if (lua_getglobal(L, x) == LUA_TNIL)
		return luaL_error(L, "module '%s' not found: no host module '%s'", name, x);
	return 1;
}

/* Finds the module's text; pushes its path. */
static const char *require_find(lua_State *L, sbx *s, const char *name, size_t *len)
{
	char rel[MODNAME_MAX + 8], lib[MODNAME_MAX + 12];
	const char *src = NULL;
	size_t i;

	snprintf(rel, sizeof(rel), "%s.lua", name);
	for (i = 0; i < strlen(name); i++)
		if (rel[i] == '.')
			rel[i] = '/';
	snprintf(lib, sizeof(lib), "lib/%s", rel);
	if (s->lookup != NULL && (src = s->lookup(s->lookup_ud, rel, len)) != NULL) {
		lua_pushfstring(L, "@%s", rel);
		return src;
	}
	if (s->lookup != NULL && (src = s->lookup(s->lookup_ud, lib, len)) != NULL) {
		lua_pushfstring(L, "@%s", lib);
		return src;
	}
	luaL_error(L, "module '%s' not found: no file '%s', no file '%s'", name, rel, lib);
	return NULL;
}

/* require(name): pack modules ("a.b" -> a/b.lua, then lib/a/b.lua), loaded
 * once and cached; "host.X" is the global host module X. */
static int sb_require(lua_State *L)
{
	sbx *s = sbx_of(L);
	const char *name = luaL_checkstring(L, 1), *src;
	size_t len = 0;

	lua_settop(L, 1);
	if (strncmp(name, "host.", 5) == 0)
		return require_host(L, name);
	if (!modname_ok(name))
		return luaL_error(L, "require: invalid module name '%s'", name);
	lua_rawgetp(L, LUA_REGISTRYINDEX, &k_modules); /* 2 */
	lua_pushvalue(L, 1);
	if (lua_rawget(L, 2) != LUA_TNIL) {
		if (lua_touserdata(L, -1) == &k_loading)
			return luaL_error(L, "require: loop while loading module '%s'", name);
		return 1;
	}
	lua_pop(L, 1);
	src = require_find(L, s, name, &len); /* 3: chunk name */
	if (luaL_loadbufferx(L, src, len, lua_tostring(L, 3), "t") != LUA_OK)
		return lua_error(L);
	lua_pushvalue(L, 1);
	lua_pushlightuserdata(L, &k_loading);
	lua_rawset(L, 2);
	lua_pushvalue(L, 1);
	lua_pushstring(L, lua_tostring(L, 3) + 1);
	if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
		lua_pushvalue(L, 1);
		lua_pushnil(L);
		lua_rawset(L, 2); /* a failed module may be required again */
		return lua_error(L);
	}
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		lua_pushboolean(L, 1);
	}
	lua_pushvalue(L, 1);
	lua_pushvalue(L, -2);
	lua_rawset(L, 2);
	return 1;
}

/* Does the table at idx carry our lock marker in its (hidden) metatable? */
static int is_locked(lua_State *L, int idx)
{
	int r = 0;

	if (lua_getmetatable(L, idx)) {
		r = lua_rawgetp(L, -1, &k_lock) != LUA_TNIL;
		lua_pop(L, 2);
	}
	return r;
}

static int sb_rawset(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TTABLE);
	luaL_checkany(L, 2);
	luaL_checkany(L, 3);
	if (is_locked(L, 1))
		return luaL_error(L, "rawset: table is read-only");
	lua_settop(L, 3);
	lua_rawset(L, 1);
	return 1;
}

static int sb_setmetatable(lua_State *L)
{
	int t = lua_type(L, 2);

	luaL_checktype(L, 1, LUA_TTABLE);
	luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
	if (t == LUA_TTABLE) {
		lua_pushliteral(L, "__gc");
		if (lua_rawget(L, 2) != LUA_TNIL)
			return luaL_error(L, "setmetatable: __gc metamethods are not allowed");
		lua_pop(L, 1);
	}
	if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
		return luaL_error(L, "cannot change a protected metatable");
	lua_settop(L, 2);
	lua_setmetatable(L, 1);
	return 1;
}

/* The message handler xpcall really installs (upvalue 1: the script's). An
 * error raised by the budget hook reaches the handler while the hook is still
 * running, with hooks disabled: a looping handler could never be stopped, so
 * once the window has tripped the script's handler is not called. */
static int xpcall_msgh(lua_State *L)
{
	if (sbx_of(L)->tripped)
		return 1;
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 1);
	return 1;
}

/* lbaselib.c's finishpcall */
static int xpcall_done(lua_State *L, int status, lua_KContext extra)
{
	if (status != LUA_OK && status != LUA_YIELD) {
		lua_pushboolean(L, 0);
		lua_pushvalue(L, -2);
		return 2;
	}
	return lua_gettop(L) - (int)extra;
}

static int sb_xpcall(lua_State *L)
{
	int n = lua_gettop(L), st;

	luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_pushvalue(L, 2);
	lua_pushcclosure(L, xpcall_msgh, 1);
	lua_replace(L, 2);
	lua_pushboolean(L, 1);
	lua_pushvalue(L, 1);
	lua_rotate(L, 3, 2);
	st = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, xpcall_done);
	return xpcall_done(L, st, 2);
}

/* ========================================================================== */
/* Read-only tables and locked globals                                        */
/* ========================================================================== */

/* upvalue 1: the table's name */
static int ro_newindex(lua_State *L)
{
	return luaL_error(L, "cannot modify read-only table '%s'",
			  lua_tostring(L, lua_upvalueindex(1)));
}

/* upvalue 1: the real table */
static int ro_pairs(lua_State *L)
{
	lua_settop(L, 0);
	lua_pushvalue(L, lua_upvalueindex(1));
	return pairs_of(L, 1);
}

void sbx_push_readonly(lua_State *L, int idx, const char *name)
{
	idx = lua_absindex(L, idx);
	lua_newtable(L);
	lua_createtable(L, 0, 5);
	lua_pushvalue(L, idx);
	lua_setfield(L, -2, "__index");
	lua_pushstring(L, name);
	lua_pushcclosure(L, ro_newindex, 1);
	lua_setfield(L, -2, "__newindex");
	lua_pushvalue(L, idx);
	lua_pushcclosure(L, ro_pairs, 1);
	lua_setfield(L, -2, "__pairs");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable"); /* getmetatable(proxy) is false */
	lua_pushboolean(L, 1);
	lua_rawsetp(L, -2, &k_lock);
	lua_setmetatable(L, -2);
}

static int globals_newindex(lua_State *L)
{
	if (lua_type(L, 2) == LUA_TSTRING)
		return luaL_error(L, "assignment to undeclared global '%s'", lua_tostring(L, 2));
	return luaL_error(L, "assignment to undeclared global (a %s key)", luaL_typename(L, 2));
}

/* Prepared at creation so that freezing allocates nothing. */
static void make_globals_mt(lua_State *L)
{
	lua_createtable(L, 0, 3);
	lua_pushcfunction(L, globals_newindex);
	lua_setfield(L, -2, "__newindex");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_pushboolean(L, 1);
	lua_rawsetp(L, -2, &k_lock);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &k_globals_mt);
}

void sbx_freeze_globals(sbx *s)
{
	lua_State *L = s->L;

	lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
	lua_rawgetp(L, LUA_REGISTRYINDEX, &k_globals_mt);
	lua_setmetatable(L, -2);
	lua_pop(L, 1);
}

void sbx_push_lib(sbx *s, const char *name)
{
	lua_rawgetp(s->L, LUA_REGISTRYINDEX, &k_libs);
	lua_getfield(s->L, -1, name); /* k_libs has no metatable: raw, no allocation */
	lua_remove(s->L, -2);
}

/* ========================================================================== */
/* Building the state (runs protected, inside lua_pcall)                      */
/* ========================================================================== */

/* Pushes a policy value: our function (with the stock value as upvalue 1)
 * or the stock value, which must exist. */
static void push_allowed(lua_State *L, int stock, const char *name, lua_CFunction own)
{
	lua_getfield(L, stock, name);
	if (own != NULL) {
		lua_pushcclosure(L, own, 1);
		return;
	}
	if (lua_isnil(L, -1))
		luaL_error(L, "sandbox policy names '%s', which this Lua lacks", name);
}

/* Builds the filtered copy of library `lib`, leaves it on the stack. */
static void open_lib(lua_State *L, const struct sbx_allow_lib *lib)
{
	size_t i;
	int stock, real;

	luaL_requiref(L, lib->name, lib->open, 0);
	stock = lua_gettop(L);
	lua_newtable(L);
	real = lua_gettop(L);
	for (i = 0; i < ARRAY_LEN(sbx_allow_fields); i++) {
		if (strcmp(sbx_allow_fields[i].lib, lib->name) != 0)
			continue;
		push_allowed(L, stock, sbx_allow_fields[i].name, sbx_allow_fields[i].own);
		lua_setfield(L, real, sbx_allow_fields[i].name);
	}
	lua_remove(L, stock);
}

/* The string metatable keeps indexing the filtered string table, and hides
 * itself: getmetatable("") is false. */
static void protect_string_mt(lua_State *L, int string_real)
{
	lua_pushliteral(L, "");
	if (!lua_getmetatable(L, -1))
		luaL_error(L, "string metatable missing");
	lua_pushvalue(L, string_real);
	lua_setfield(L, -2, "__index");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_pushboolean(L, 1);
	lua_rawsetp(L, -2, &k_lock);
	lua_pop(L, 2);
}

static void open_libs(lua_State *L, int globals)
{
	size_t i;

	lua_newtable(L);
	lua_pushvalue(L, -1);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &k_libs);
	for (i = 0; i < ARRAY_LEN(sbx_allow_libs); i++) {
		open_lib(L, &sbx_allow_libs[i]);
		if (strcmp(sbx_allow_libs[i].name, "string") == 0)
			protect_string_mt(L, lua_gettop(L));
		lua_pushvalue(L, -1);
		lua_setfield(L, -3, sbx_allow_libs[i].name);
		sbx_push_readonly(L, -1, sbx_allow_libs[i].name);
		lua_setfield(L, globals, sbx_allow_libs[i].name);
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

static void open_base(lua_State *L)
{
	size_t i;
	int stock, globals;

	lua_pushcfunction(L, luaopen_base);
	lua_call(L, 0, 1); /* fills the stock global table */
	stock = lua_gettop(L);
	lua_newtable(L);
	globals = lua_gettop(L);
	for (i = 0; i < ARRAY_LEN(sbx_allow_base); i++) {
		if (strcmp(sbx_allow_base[i].name, "_G") == 0)
			lua_pushvalue(L, globals);
		else
			push_allowed(L, stock, sbx_allow_base[i].name, sbx_allow_base[i].own);
		lua_setfield(L, globals, sbx_allow_base[i].name);
	}
	/* Our table replaces the stock one: nothing unlisted stays reachable. */
	lua_pushvalue(L, globals);
	lua_rawseti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
	luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
	lua_pushvalue(L, globals);
	lua_setfield(L, -2, LUA_GNAME);
	lua_pop(L, 1);
	open_libs(L, globals);
	lua_settop(L, stock - 1);
}

/* ========================================================================== */
/* Typed errors (sbx_raise)                                                   */
/* ========================================================================== */

/* Pushes the message of the typed error at idx (its one user value). */
static void terr_push_message(lua_State *L, int idx)
{
	lua_getiuservalue(L, idx, 1);
}

static int terr_tostring(lua_State *L)
{
	terr_push_message(L, 1);
	return 1;
}

/* e.kind: the status name ("invalid_argument"); e.message: the message. */
static int terr_index(lua_State *L)
{
	const char *k = lua_tostring(L, 2);

	if (k != NULL && strcmp(k, "kind") == 0)
		lua_pushstring(L, st_name(sbx_error_kind(L, 1)));
	else if (k != NULL && strcmp(k, "message") == 0)
		terr_push_message(L, 1);
	else
		lua_pushnil(L);
	return 1;
}

/* "failed: " .. e reads as "failed: <message>". */
static int terr_concat(lua_State *L)
{
	sbx_tostring(L, 1);
	sbx_tostring(L, 2);
	lua_concat(L, 2);
	return 1;
}

static void make_error_mt(lua_State *L)
{
	lua_createtable(L, 0, 4);
	lua_pushcfunction(L, terr_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pushcfunction(L, terr_index);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, terr_concat);
	lua_setfield(L, -2, "__concat");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable"); /* hidden: scripts can neither read nor reuse it */
	lua_rawsetp(L, LUA_REGISTRYINDEX, &k_errmt);
}

int sbx_raise(lua_State *L, st_code code, const char *fmt, ...)
{
	char msg[MSG_MAX + 1];
	st_code *k;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	luaL_checkstack(L, 3, "typed error");
	k = lua_newuserdatauv(L, sizeof(*k), 1);
	*k = code;
	lua_pushstring(L, msg);
	lua_setiuservalue(L, -2, 1);
	lua_rawgetp(L, LUA_REGISTRYINDEX, &k_errmt);
	lua_setmetatable(L, -2);
	return lua_error(L);
}

st_code sbx_error_kind(lua_State *L, int idx)
{
	st_code code = MOONPEN__V1__STATUS__CODE__OK;

	idx = lua_absindex(L, idx);
	if (lua_type(L, idx) != LUA_TUSERDATA || !lua_checkstack(L, 2) || !lua_getmetatable(L, idx))
		return code;
	lua_rawgetp(L, LUA_REGISTRYINDEX, &k_errmt);
	if (lua_rawequal(L, -1, -2))
		code = *(const st_code *)lua_touserdata(L, idx);
	lua_pop(L, 2);
	return code;
}

/* The message of a typed error, malloc'd; NULL when idx is not one. Runs no
 * Lua code (the user value is a string already). */
static char *terr_text(lua_State *L, int idx)
{
	const char *m;
	size_t len;
	char *r = NULL;

	idx = lua_absindex(L, idx);
	if (sbx_error_kind(L, idx) == MOONPEN__V1__STATUS__CODE__OK || !lua_checkstack(L, 1))
		return NULL;
	terr_push_message(L, idx);
	m = lua_tolstring(L, -1, &len);
	if (m != NULL)
		r = strndup(m, len < MSG_MAX ? len : MSG_MAX);
	lua_pop(L, 1);
	return r;
}

static int sbx_init(lua_State *L)
{
	static const char *const trip_msgs[] = {
	    "error",
	    "deadline exceeded",
	    "instruction budget exceeded",
	    "memory limit exceeded",
	    "state closing",
	};
	size_t i;

	open_base(L);
	lua_newtable(L); /* tostring numbers, weak keys */
	lua_createtable(L, 0, 1);
	lua_pushliteral(L, "k");
	lua_setfield(L, -2, "__mode");
	lua_setmetatable(L, -2);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &k_ids);
	lua_newtable(L);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &k_modules);
	make_globals_mt(L);
	make_error_mt(L);
	for (i = 0; i < ARRAY_LEN(trip_msgs); i++) {
		lua_pushstring(L, trip_msgs[i]);
		lua_rawsetp(L, LUA_REGISTRYINDEX, &k_trip_msg[i]);
	}
	return 0;
}

sbx *sbx_new(const sbx_limits *lim, char *err, size_t errlen)
{
	sbx *s = calloc(1, sizeof(*s));
	int r;

	if (s == NULL) {
		snprintf(err, errlen, "sandbox: out of memory");
		return NULL;
	}
	s->lim = *lim;
	s->step = lim->instructions > 0 && lim->instructions < COUNT_STEP ? (int)lim->instructions
									  : COUNT_STEP;
	s->L = lua_newstate(sbx_alloc, s);
	if (s->L == NULL) {
		snprintf(err, errlen, "sandbox: cannot create a Lua state in %llu bytes",
			 (unsigned long long)lim->mem_bytes);
		goto fail;
	}
	lua_pushcfunction(s->L, sbx_init);
	if (lua_pcall(s->L, 0, 0, 0) != LUA_OK) {
		snprintf(err, errlen, "sandbox: %s",
			 lua_type(s->L, -1) == LUA_TSTRING ? lua_tostring(s->L, -1)
							   : "init failed");
		goto fail;
	}
	if (lim->deadline_ms > 0 && (r = timer_setup(s)) < 0) {
		snprintf(err, errlen, "sandbox: deadline timer: %s", strerror(-r));
		goto fail;
	}
	s->tripped = TRIP_NONE;
	s->mem_refused = 0;
	return s;
fail:
	sbx_free(s);
	return NULL;
}

/* Closing runs pending __close methods of the main thread: with the window
 * "tripped" they are interrupted at their first instruction. */
void sbx_free(sbx *s)
{
	if (s == NULL)
		return;
	if (s->timer_ok)
		timer_delete(s->timer);
	if (tl_window == s)
		tl_window = NULL;
	if (s->L != NULL) {
		s->running = NULL;
		s->tripped = TRIP_CLOSING;
		lua_sethook(s->L, sbx_hook, HOOK_FULL, 1);
		lua_close(s->L);
	}
	free(s->eh_msg);
	free(s->eh_tb);
	free(s);
}

void sbx_set_lookup(sbx *s, sbx_lookup_fn fn, void *ud)
{
	s->lookup = fn;
	s->lookup_ud = ud;
}

int sbx_load(sbx *s, const char *chunk, size_t len, const char *chunkname, char *err, size_t errlen)
{
	char name[256];
	int st;

	/* "main.lua" reads as "main.lua:3:" in messages, not [string "main.lua"] */
	if (chunkname == NULL)
		chunkname = "=chunk";
	snprintf(name, sizeof(name), "%s%s", chunkname[0] == '@' || chunkname[0] == '=' ? "" : "@",
		 chunkname);
	if (!lua_checkstack(s->L, 1)) {
		snprintf(err, errlen, "%s: out of memory", chunkname);
		return -ENOMEM;
	}
	st = luaL_loadbufferx(s->L, chunk, len, name, "t");
	if (st == LUA_OK)
		return 0;
	snprintf(err, errlen, "%s",
		 lua_type(s->L, -1) == LUA_TSTRING ? lua_tostring(s->L, -1) : "load failed");
	lua_pop(s->L, 1);
	return st == LUA_ERRMEM ? -ENOMEM : -EINVAL;
}

/* ========================================================================== */
/* Protected calls, error reports                                             */
/* ========================================================================== */

struct tbuf {
	char *p;
	size_t n, cap;
};

static void tb_add(struct tbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void tb_add(struct tbuf *b, const char *fmt, ...)
{
	va_list ap;
	int w;

	if (b->n + 1 >= b->cap)
		return;
	va_start(ap, fmt);
	w = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
	va_end(ap);
	if (w > 0)
		b->n = b->n + (size_t)w < b->cap ? b->n + (size_t)w : b->cap - 1;
}

static int last_level(lua_State *L)
{
	lua_Debug ar;
	int li = 1, le = 1;

	while (lua_getstack(L, le, &ar)) {
		li = le;
		le *= 2;
	}
	while (li < le) {
		int m = (li + le) / 2;

		if (lua_getstack(L, m, &ar))
			li = m + 1;
		else
			le = m;
	}
	return le - 1;
}

static void tb_frame(struct tbuf *b, lua_State *L1, lua_Debug *ar)
{
	lua_getinfo(L1, "Slnt", ar);
	if (ar->currentline > 0)
		tb_add(b, "\n\t%s:%d: in ", ar->short_src, ar->currentline);
	else
		tb_add(b, "\n\t%s: in ", ar->short_src);
	if (*ar->namewhat != '\0')
		tb_add(b, "%s '%s'", ar->namewhat, ar->name);
	else if (*ar->what == 'm')
		tb_add(b, "main chunk");
	else if (*ar->what != 'C')
		tb_add(b, "function <%s:%d>", ar->short_src, ar->linedefined);
	else
		tb_add(b, "?");
	if (ar->istailcall)
		tb_add(b, "\n\t(...tail calls...)");
}

/* luaL_traceback's format, built with malloc only: it must work when the Lua
 * heap is full. NULL when out of memory. */
static char *traceback(lua_State *L1, int level)
{
	struct tbuf b = {malloc(TB_MAX), 0, TB_MAX};
	lua_Debug ar;
	int last = last_level(L1);
	int limit = last - level > TB_LEVELS1 + TB_LEVELS2 ? TB_LEVELS1 : -1;

	if (b.p == NULL)
		return NULL;
	b.p[0] = '\0';
	tb_add(&b, "stack traceback:");
	while (lua_getstack(L1, level++, &ar)) {
		if (limit-- == 0) {
			int skip = last - level - TB_LEVELS2 + 1;

			tb_add(&b, "\n\t...\t(skipping %d levels)", skip);
			level += skip;
		} else {
			tb_frame(&b, L1, &ar);
		}
	}
	return b.p;
}

static char *strndup_cap(const char *s, size_t len)
{
	return strndup(s, len < MSG_MAX ? len : MSG_MAX);
}

/* __tostring of an error object, run protected: a failure or a non-string
 * gives NULL. A looping __tostring is stopped by the hook (deadline). */
static int call_tostring(lua_State *L)
{
	luaL_callmeta(L, 1, "__tostring");
	return 1;
}

/* Numbers are printed here, not by lua_tolstring, which would allocate a
 * string in the Lua heap (this also runs unprotected, after a failure). */
static char *number_text(lua_State *L, int idx)
{
	char buf[64];

	if (lua_isinteger(L, idx))
		snprintf(buf, sizeof(buf), "%lld", (long long)lua_tointeger(L, idx));
	else
		snprintf(buf, sizeof(buf), "%.14g", (double)lua_tonumber(L, idx));
	return strdup(buf);
}

/* The text of an error object, never raising, never looping (a __tostring is
 * run protected and under the hook; it is skipped once the window tripped). */
static char *error_text(lua_State *L, int idx)
{
	size_t len;
	const char *m;
	char buf[64];

	idx = lua_absindex(L, idx);
	if (lua_type(L, idx) == LUA_TSTRING) {
		m = lua_tolstring(L, idx, &len);
		return strndup_cap(m, len);
	}
	if (lua_type(L, idx) == LUA_TNUMBER)
		return number_text(L, idx);
	if ((m = terr_text(L, idx)) != NULL)
		return (char *)m;
	if (!sbx_of(L)->tripped && lua_checkstack(L, 3) &&
	    luaL_getmetafield(L, idx, "__tostring") != LUA_TNIL) {
		lua_pop(L, 1);
		lua_pushcfunction(L, call_tostring);
		lua_pushvalue(L, idx);
		if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING) {
			m = lua_tolstring(L, -1, &len);
			m = strndup_cap(m, len);
			lua_pop(L, 1);
			return (char *)m;
		}
		lua_pop(L, 1);
	}
	snprintf(buf, sizeof(buf), "(error object is a %s value)", luaL_typename(L, idx));
	return strdup(buf);
}

/* Message handler of sbx_pcall: records the message and the traceback of
 * the failing thread (malloc'd, outside the Lua heap) and returns the error
 * object unchanged. */
static int sbx_msgh(lua_State *L)
{
	sbx *s = sbx_of(L);

	free(s->eh_msg);
	free(s->eh_tb);
	s->eh_msg = error_text(L, 1);
	s->eh_kind = sbx_error_kind(L, 1);
	s->eh_tb = traceback(L, 1);
	lua_settop(L, 1);
	return 1;
}

static void fill_err(sbx *s, lua_State *T, int status, sbx_err *err)
{
	char buf[128];

	if (status == LUA_ERRMEM && !s->tripped)
		s->tripped = TRIP_MEMORY; /* uncatchable from now on */
	switch (s->tripped) {
	case TRIP_TIMEOUT:
		err->code = MOONPEN__V1__STATUS__CODE__TIMEOUT;
		snprintf(buf, sizeof(buf), "deadline of %llu ms exceeded",
			 (unsigned long long)s->window_ms);
		break;
	case TRIP_BUDGET:
		err->code = MOONPEN__V1__STATUS__CODE__BUDGET_EXCEEDED;
		snprintf(buf, sizeof(buf), "instruction budget of %llu exceeded",
			 (unsigned long long)s->lim.instructions);
		break;
	case TRIP_MEMORY:
	case TRIP_CLOSING:
		err->code = MOONPEN__V1__STATUS__CODE__MEMORY_LIMIT;
		snprintf(buf, sizeof(buf), "memory limit of %llu bytes exceeded",
			 (unsigned long long)s->lim.mem_bytes);
		break;
	default:
		err->message = s->eh_msg;
		s->eh_msg = NULL;
		if (err->message == NULL && T != NULL && lua_gettop(T) > 0) {
			err->message = error_text(T, -1);
			s->eh_kind = sbx_error_kind(T, -1);
		}
		/* the kind of a typed error object, never a message's text */
		err->code = s->eh_kind != MOONPEN__V1__STATUS__CODE__OK
				? s->eh_kind
				: MOONPEN__V1__STATUS__CODE__SCRIPT_ERROR;
		break;
	}
	if (err->message == NULL)
		err->message = strdup(s->tripped ? buf : "error in error handling");
	err->traceback = s->eh_tb;
	s->eh_tb = NULL;
}

static void trip_err(sbx *s, sbx_err *err)
{
	fill_err(s, NULL, LUA_ERRRUN, err);
}

int sbx_pcall(sbx *s, lua_State *T, int nargs, int nresults, sbx_err *err)
{
	int base = lua_gettop(T) - nargs, st;
	lua_State *prev = s->running;

	memset(err, 0, sizeof(*err));
	free(s->eh_msg);
	free(s->eh_tb);
	s->eh_msg = s->eh_tb = NULL;
	s->eh_kind = MOONPEN__V1__STATUS__CODE__OK;
	if (s->tripped || !lua_checkstack(T, 1)) {
		lua_settop(T, base - 1);
		if (!s->tripped)
			s->tripped = TRIP_MEMORY;
		trip_err(s, err);
		return -1;
	}
	lua_pushcfunction(T, sbx_msgh);
	lua_insert(T, base);
	s->running = T;
	hook_sync(s, T);
	st = lua_pcall(T, nargs, nresults, base);
	s->running = prev;
	if (st == LUA_OK) {
		lua_remove(T, base);
		return 0;
	}
	fill_err(s, T, st, err);
	lua_settop(T, base - 1);
	return -1;
}

int sbx_call(sbx *s, int nargs, int nresults, sbx_err *err)
{
	return sbx_pcall(s, s->L, nargs, nresults, err);
}

/* The message of an error left on a dead coroutine, without running any
 * Lua code (the coroutine cannot run it, and we may be unprotected). */
static char *co_error_text(lua_State *co)
{
	char buf[64];
	size_t len;
	const char *m;

	if ((m = terr_text(co, -1)) != NULL)
		return (char *)m;
	switch (lua_type(co, -1)) {
	case LUA_TSTRING:
		m = lua_tolstring(co, -1, &len);
		return strndup_cap(m, len);
	case LUA_TNUMBER:
		return number_text(co, -1);
	default:
		snprintf(buf, sizeof(buf), "(error object is a %s value)", luaL_typename(co, -1));
		return strdup(buf);
	}
}

int sbx_resume(sbx *s, lua_State *from, lua_State *co, int nargs, int *nres, sbx_err *err)
{
	lua_State *prev = s->running;
	int st;

	memset(err, 0, sizeof(*err));
	*nres = 0;
	if (s->tripped) {
		trip_err(s, err);
		return -1;
	}
	st = resume_tracked(s, from, co, nargs, nres);
	s->running = prev;
	if (st == LUA_OK || st == LUA_YIELD)
		return st == LUA_YIELD ? 1 : 0;
	free(s->eh_msg);
	free(s->eh_tb);
	s->eh_msg = !s->tripped && st != LUA_ERRMEM ? co_error_text(co) : NULL;
	s->eh_kind = s->eh_msg != NULL ? sbx_error_kind(co, -1) : MOONPEN__V1__STATUS__CODE__OK;
	s->eh_tb = traceback(co, 0);
	fill_err(s, NULL, st, err);
	return -1;
}

void sbx_err_clear(sbx_err *err)
{
	if (err == NULL)
		return;
	free(err->message);
	free(err->traceback);
	err->message = NULL;
	err->traceback = NULL;
	err->code = MOONPEN__V1__STATUS__CODE__OK;
}
