/*
 * test_engine — the instance engine end to end in-process: lifecycle, state
 * atomicity and hash, timers, ev patterns and emit bounds, manifest triggers,
 * RNG determinism, calls, errors, permissions, logs. Run from the repository
 * root (the shipped schema is read from policy/host_api.json).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <sodium.h>

#include "common/val.h"
#include "worker/engine.h"
#include "tests/support/files.h"
#include "tests/support/vfmt.h"

typedef Moonpen__V1__Status__Code code_t;
#define OK MOONPEN__V1__STATUS__CODE__OK
#define SCRIPT_ERROR MOONPEN__V1__STATUS__CODE__SCRIPT_ERROR
#define BAD_PACK MOONPEN__V1__STATUS__CODE__BAD_PACK
#define INVALID_ARGUMENT MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT

/* ---- helpers ------------------------------------------------------------------ */

typedef struct spec {
	const char *apis;     /* JSON array body, e.g. "\"ecs\",\"ui\"" */
	const char *triggers; /* JSON array body or NULL */
	const char *timers;   /* JSON array body or NULL (no "timers" field) */
	const char *lua;
	const char *schema; /* NULL: policy/host_api.json */
	uint64_t seed;
	Moonpen__Worker__V1__Limits *limits;
} spec;

static eng *create(const spec *sp, eng_out *out)
{
	Moonpen__Worker__V1__Init init = MOONPEN__WORKER__V1__INIT__INIT;
	Moonpen__Worker__V1__PackFile f = MOONPEN__WORKER__V1__PACK_FILE__INIT;
	Moonpen__Worker__V1__PackFile *files[1] = {&f};
	char manifest[4096], timers[2048] = "";
	size_t slen = 0;
	char *schema = sp->schema ? strdup(sp->schema) : tf_slurp("policy/host_api.json", &slen);
	eng *e = NULL;

	if (sp->timers)
		snprintf(timers, sizeof(timers), ",\"timers\":[%s]", sp->timers);
	snprintf(manifest, sizeof(manifest),
		 "{\"id\":\"t\",\"version\":\"1.0.0\",\"engine\":\"lua\",\"entry\":\"main.lua\","
		 "\"apis\":[%s],\"triggers\":[%s]%s}",
		 sp->apis ? sp->apis : "\"ecs\",\"ui\",\"music\",\"quest\"",
		 sp->triggers ? sp->triggers : "", timers);
	if (sp->schema)
		slen = strlen(schema);
	init.instance_id = "inst-1";
	init.pack_id = "t";
	init.pack_version = "1.0.0";
	init.manifest_json.data = (uint8_t *)manifest;
	init.manifest_json.len = strlen(manifest);
	f.path = "main.lua";
	f.data.data = (uint8_t *)sp->lua;
	f.data.len = strlen(sp->lua);
	init.n_files = 1;
	init.files = files;
	init.host_api_json.data = (uint8_t *)schema;
	init.host_api_json.len = slen;
	init.seed = sp->seed;
	init.tick_ms = 50;
	init.limits = sp->limits;
	cr_assert_eq(eng_create(&init, &e, out), 0);
	cr_assert_not_null(out->status);
	free(schema);
	return e;
}

static void out_free(eng_out *o)
{
	if (o->status)
		protobuf_c_message_free_unpacked(&o->status->base, NULL);
	if (o->result)
		protobuf_c_message_free_unpacked(&o->result->base, NULL);
	o->status = NULL;
	o->result = NULL;
}

static eng *must_create(const spec *sp)
{
	eng_out o = {0};
	eng *e = create(sp, &o);

	cr_assert_eq(o.status->code, OK, "create: %s\n%s", o.status->message, o.status->traceback);
	cr_assert_not_null(e);
	out_free(&o);
	return e;
}

static void ev(eng *e, const char *name, val_t *payload, eng_out *o)
{
	Moonpen__V1__SendEvent m = MOONPEN__V1__SEND_EVENT__INIT;

	m.name = (char *)name;
	m.payload = payload;
	cr_assert_eq(eng_event(e, &m, o), 0);
	val_free(payload);
}

static void tick(eng *e, uint32_t n, eng_out *o)
{
	cr_assert_eq(eng_tick(e, n, o), 0);
}

static void call(eng *e, const char *fn, eng_out *o, size_t nargs, ...)
{
	Moonpen__V1__Call m = MOONPEN__V1__CALL__INIT;
	val_t *args[8];
	va_list ap;

	va_start(ap, nargs);
	for (size_t i = 0; i < nargs; i++)
		args[i] = va_arg(ap, val_t *);
	va_end(ap);
	m.function = (char *)fn;
	m.args = args;
	m.n_args = nargs;
	cr_assert_eq(eng_call(e, &m, o), 0);
	for (size_t i = 0; i < nargs; i++)
		val_free(args[i]);
}

static void expect_ok(const eng_out *o)
{
	cr_assert_eq(o->status->code, OK, "status %d: %s\n%s", o->status->code, o->status->message,
		     o->status->traceback);
}

static void expect_fail(const eng_out *o, code_t code, const char *needle)
{
	cr_assert_eq(o->status->code, code, "status %d (want %d): %s", o->status->code, code,
		     o->status->message);
	cr_assert(strstr(o->status->message, needle) != NULL, "message '%s' lacks '%s'",
		  o->status->message, needle);
}

static void expect_effects(const eng_out *o, size_t n, ...)
{
	va_list ap;

	expect_ok(o);
	va_start(ap, n);
	for (size_t i = 0; i < n && i < o->result->n_effects; i++) {
		char got[1024];
		const char *want = va_arg(ap, const char *);
		tv_fmt_effect(o->result->effects[i], got, sizeof(got));
		cr_expect_str_eq(got, want, "effect %zu: got %s", i, got);
	}
	va_end(ap);
	cr_assert_eq(o->result->n_effects, n, "got %zu effects, want %zu", o->result->n_effects, n);
}

static val_t *str(const char *s)
{
	return val_new_string(s, strlen(s));
}

static val_t *rec1(const char *k, val_t *v)
{
	val_t *t = val_new_table();

	cr_assert_eq(val_table_set(t, str(k), v), 0);
	return t;
}

static void hash_of(eng *e, uint8_t h[32])
{
	eng_state_hash(e, h);
}

/* ---- state ------------------------------------------------------------------------ */

static const char state_lua[] =
    "function on_init(ctx) state.set('a', 1); state.set('t', {x = {1, 2}, name = 'n'}) end\n"
    "function get(k) return state.get(k) end\n"
    "function bad()\n"
    "  state.set('a', 2); state.set('new', true); state.set('t', nil)\n"
    "  ui.broadcast('never'); rand.next(); timer.after(50, 'get', 'a')\n"
    "  error('boom')\n"
    "end\n"
    "ev.on('Bad', function(ctx) state.incr('a', 10); ui.broadcast('x'); error('no') end)\n"
    "function copy() local t = state.get('t'); t.name = 'changed'; return state.get('t').name "
    "end\n"
    "function keys() state.set('b', 0); state.set('B', 0); return state.keys() end\n"
    "function incr() return state.incr('a'), state.incr('a', 2.5), state.incr('n') end\n"
    "function setfn() state.set('f', {ok = 1, bad = print}) end\n"
    "function longkey() state.set(string.rep('k', 257), 1) end\n"
    "function ro() state.extra = 1 end\n";

Test(engine, failed_input_changes_nothing)
{
	spec sp = {.lua = state_lua, .seed = 1};
	eng *e = must_create(&sp);
	uint8_t before[32], after[32];
	eng_out o = {0};

	hash_of(e, before);
	call(e, "bad", &o, 0);
	expect_fail(&o, SCRIPT_ERROR, "main.lua:6: boom");
	cr_assert_not_null(o.result);
	cr_assert_eq(o.result->n_effects, 0);
	cr_assert_eq(o.result->state_hash.len, 32);
	cr_assert_eq(memcmp(o.result->state_hash.data, before, 32), 0);
	out_free(&o);
	ev(e, "Bad", NULL, &o);
	expect_fail(&o, SCRIPT_ERROR, "no");
	cr_assert_eq(o.result->n_effects, 0);
	out_free(&o);
	hash_of(e, after);
	cr_assert_eq(memcmp(before, after, 32), 0);
	call(e, "get", &o, 1, str("a"));
	expect_ok(&o);
	cr_assert_eq(o.result->n_returns, 1);
	cr_assert_eq(o.result->returns[0]->int_value, 1);
	out_free(&o);
	call(e, "get", &o, 1, str("t"));
	cr_assert_eq(o.result->returns[0]->kind_case, MOONPEN__V1__VALUE__KIND_TABLE_VALUE);
	out_free(&o);
	tick(e, 3, &o); /* the timer of the failed call was rolled back */
	expect_effects(&o, 0);
	out_free(&o);
	eng_free(e);
}

Test(engine, state_api)
{
	spec sp = {.lua = state_lua, .seed = 1};
	eng *e = must_create(&sp);
	eng_out o = {0};
	char buf[256];

	call(e, "copy", &o, 0);
	expect_ok(&o);
	cr_assert_str_eq(o.result->returns[0]->string_value, "n"); /* get returns a copy */
	out_free(&o);
	call(e, "keys", &o, 0);
	expect_ok(&o);
	tv_fmt_val(o.result->returns[0], buf, sizeof(buf));
	cr_assert_str_eq(buf, "{\"B\",\"a\",\"b\",\"t\"}");
	out_free(&o);
	call(e, "incr", &o, 0);
	expect_ok(&o);
	cr_assert_eq(o.result->n_returns, 3);
	cr_assert_eq(o.result->returns[0]->int_value, 2);
	cr_assert_eq(o.result->returns[1]->float_value, 4.5);
	cr_assert_eq(o.result->returns[2]->int_value, 1);
	out_free(&o);
	call(e, "setfn", &o, 0);
	expect_fail(&o, SCRIPT_ERROR, "state.set: key 'f': value.bad");
	out_free(&o);
	call(e, "longkey", &o, 0);
	expect_fail(&o, SCRIPT_ERROR, "state.set: key must be 1 to 256 bytes, got 257");
	out_free(&o);
	call(e, "ro", &o, 0);
	expect_fail(&o, SCRIPT_ERROR, "read-only");
	out_free(&o);
	eng_free(e);
}

/* The state hash is BLAKE2b-256 of the documented encoding. */
Test(engine, state_hash_is_the_documented_encoding)
{
	spec sp = {.lua = "function on_init() state.set('a', 1); state.set('b', {true, s = 'x'}) "
			  "end\n",
		   .seed = 1};
	eng *e = must_create(&sp);
	static const uint8_t enc[] = {
	    'M', 'P', 'S', 'T', 1,   0,	  0, 0, 2, /* header, 2 keys */
	    0,	 0,   0,   1,	'a',		   /* key "a" */
	    'i', 0,   0,   0,	0,   0,	  0, 0, 1, /* 1 */
	    0,	 0,   0,   1,	'b',		   /* key "b" */
	    'T', 0,   0,   0,	1,   't',	   /* {true, */
	    0,	 0,   0,   1,			   /* one pair: */
	    's', 0,   0,   0,	1,   's',	   /* "s" = */
	    's', 0,   0,   0,	1,   'x',	   /* "x"} */
	};
	uint8_t want[32], got[32];

	crypto_generichash(want, 32, enc, sizeof(enc), NULL, 0);
	hash_of(e, got);
	cr_assert_eq(memcmp(want, got, 32), 0);
	eng_free(e);
}

/* ---- timers and clock ---------------------------------------------------------- */

static const char timer_lua[] =
    "function mark(x) ui.broadcast(x .. '@' .. clock.tick() .. '/' .. clock.now()) end\n"
    "function on_init()\n"
    "  timer.after(100, 'mark', 'a')\n"
    "  timer.every(100, mark, 'e')\n"
    "  timer.after(50, 'mark', 'b')\n"
    "  local id = timer.after(150, 'mark', 'c')\n"
    "  assert(timer.cancel(id) == true and timer.cancel(id) == false)\n"
    "  timer.after(1, 'mark', 'one')\n"
    "end\n"
    "function arm_and_fail() timer.after(50, 'mark', 'z'); error('x') end\n"
    "function stop(id) return timer.cancel(id) end\n"
    "function closure() timer.after(50, function() end) end\n"
    "local function hidden() end\n"
    "function local_fn() timer.every(50, hidden) end\n"
    "function no_such() timer.after(50, 'nope') end\n"
    "function bad_arg() timer.after(50, 'mark', {f = print}) end\n";

Test(engine, timers_fire_in_due_then_id_order)
{
	spec sp = {.lua = timer_lua, .seed = 1};
	eng *e = must_create(&sp);
	eng_out o = {0};

	tick(e, 5, &o);
	expect_effects(
	    &o, 5, "ui.broadcast(\"b@1/50\") @timer:mark", "ui.broadcast(\"one@1/50\") @timer:mark",
	    "ui.broadcast(\"a@2/100\") @timer:mark", "ui.broadcast(\"e@2/100\") @timer:mark",
	    "ui.broadcast(\"e@4/200\") @timer:mark");
	cr_assert_eq(o.result->tick, 5);
	out_free(&o);
	call(e, "arm_and_fail", &o, 0);
	expect_fail(&o, SCRIPT_ERROR, "x");
	out_free(&o);
	call(e, "stop", &o, 1, val_new_int(2)); /* the every timer */
	expect_ok(&o);
	cr_assert_eq(o.result->returns[0]->bool_value, 1);
	out_free(&o);
	tick(e, 10, &o);
	expect_effects(&o, 0);
	cr_assert_eq(o.result->tick, 15);
	cr_assert_eq(eng_tick_now(e), 15);
	out_free(&o);
	eng_free(e);
}

Test(engine, timers_refuse_closures_and_bad_args)
{
	spec sp = {.lua = timer_lua, .seed = 1};
	eng *e = must_create(&sp);
	eng_out o = {0};

	call(e, "closure", &o, 0);
	expect_fail(&o, SCRIPT_ERROR,
		    "timer.after: argument #2 is a closure or a local function; timers must name "
		    "a global function");
	out_free(&o);
	call(e, "local_fn", &o, 0);
	expect_fail(&o, SCRIPT_ERROR, "snapshots can restore them");
	out_free(&o);
	call(e, "no_such", &o, 0);
	expect_fail(&o, SCRIPT_ERROR, "timer.after: argument #2: no global function 'nope'");
	out_free(&o);
	call(e, "bad_arg", &o, 0);
	expect_fail(&o, SCRIPT_ERROR, "timer.after: argument #3");
	out_free(&o);
	eng_free(e);
}

/* ---- events ------------------------------------------------------------------------ */

static const char ev_lua[] =
    "local function say(tag) return function(ctx, name) ui.broadcast(tag .. ':' .. name) end "
    "end\n"
    "ev.on('OnAreaEnter:*', say('area'))\n"
    "ev.on('combat.*', say('combat'))\n"
    "ev.on('Exact', say('exact'))\n"
    "ev.on('*', say('all'))\n"
    "ev.on('Empty', function(ctx) ui.broadcast(type(ctx) .. tostring(next(ctx))) end)\n"
    "ev.on('a', function() ui.broadcast('a'); ev.emit('b'); ev.emit('c', {n = 1}) end)\n"
    "ev.on('b', function() ui.broadcast('b'); ev.emit('d') end)\n"
    "ev.on('c', function(ctx) ui.broadcast('c' .. ctx.n) end)\n"
    "ev.on('d', function() ui.broadcast('d') end)\n"
    "ev.on('loop', function(ctx) ui.broadcast('l'); ev.emit('loop') end)\n"
    "ev.on('fan', function() for i = 1, 300 do ev.emit('nothing') end end)\n"
    "function late() ev.on('X', print) end\n";

Test(engine, ev_patterns_and_order)
{
	spec sp = {.lua = ev_lua, .apis = "\"ui\"", .seed = 1};
	eng *e = must_create(&sp);
	eng_out o = {0};

	ev(e, "OnAreaEnter:boss_room", NULL, &o);
	expect_effects(&o, 2, "ui.broadcast(\"area:OnAreaEnter:boss_room\") @ev:OnAreaEnter:*",
		       "ui.broadcast(\"all:OnAreaEnter:boss_room\") @ev:*");
	out_free(&o);
	ev(e, "combat.hit", NULL, &o);
	expect_effects(&o, 2, "ui.broadcast(\"combat:combat.hit\") @ev:combat.*",
		       "ui.broadcast(\"all:combat.hit\") @ev:*");
	out_free(&o);
	ev(e, "Exactly", NULL, &o);
	expect_effects(&o, 1, "ui.broadcast(\"all:Exactly\") @ev:*");
	out_free(&o);
	ev(e, "OnAreaEnter", NULL, &o);
	expect_effects(&o, 1, "ui.broadcast(\"all:OnAreaEnter\") @ev:*");
	out_free(&o);
	ev(e, "Empty", NULL, &o);
	/* registration order: '*' was registered before 'Empty' */
	expect_effects(&o, 2, "ui.broadcast(\"all:Empty\") @ev:*",
		       "ui.broadcast(\"tablenil\") @ev:Empty");
	out_free(&o);
	call(e, "late", &o, 0);
	expect_fail(&o, SCRIPT_ERROR,
		    "ev.on must be called at the top level of the chunk (handlers are "
		    "re-registered on every load)");
	out_free(&o);
	eng_free(e);
}

Test(engine, ev_emit_is_breadth_first_and_bounded)
{
	Moonpen__Worker__V1__Limits lim = MOONPEN__WORKER__V1__LIMITS__INIT;
	spec sp = {.lua = ev_lua, .apis = "\"ui\"", .seed = 1, .limits = &lim};
	eng *e;
	eng_out o = {0};

	lim.max_emit_depth = 4;
	e = must_create(&sp);
	ev(e, "a", NULL, &o);
	cr_assert_eq(o.result->n_effects, 8);
	/* a emits b and c; b emits d: a, b, c, d (breadth-first) */
	expect_effects(&o, 8, "ui.broadcast(\"all:a\") @ev:*", "ui.broadcast(\"a\") @ev:a",
		       "ui.broadcast(\"all:b\") @ev:*", "ui.broadcast(\"b\") @ev:b",
		       "ui.broadcast(\"all:c\") @ev:*", "ui.broadcast(\"c1\") @ev:c",
		       "ui.broadcast(\"all:d\") @ev:*", "ui.broadcast(\"d\") @ev:d");
	out_free(&o);
	ev(e, "loop", NULL, &o);
	expect_fail(&o, SCRIPT_ERROR,
		    "ev.emit: event cascade deeper than 4 levels (emitting 'loop')");
	cr_assert_eq(o.result->n_effects, 0);
	out_free(&o);
	ev(e, "fan", NULL, &o);
	expect_fail(&o, SCRIPT_ERROR, "ev.emit: more than 256 events emitted in one input");
	out_free(&o);
	eng_free(e);
}

/* ---- manifest triggers ------------------------------------------------------------ */

static const char trig_json[] =
    "{\"id\":\"greet\",\"event\":\"OnAreaEnter:*\",\"condition\":\"ctx.players >= 2\","
    "\"action\":\"ui.broadcast('hi ' .. ctx.players .. ' ' .. event); "
    "if ctx.fail then ev.emit('boom') end\",\"throttle_ms\":200},"
    "{\"id\":\"lever\",\"event\":\"Lever\",\"action\":\"on_lever\"}";

static const char trig_lua[] = "function on_lever(ctx) ecs.openGate(ctx.gate) end\n"
			       "ev.on('Lever', function() ui.broadcast('handler first') end)\n"
			       "ev.on('boom', function() error('late failure') end)\n";

static val_t *players(int n, int fail)
{
	val_t *t = rec1("players", val_new_int(n));

	if (fail)
		cr_assert_eq(val_table_set(t, str("fail"), val_new_bool(1)), 0);
	return t;
}

Test(engine, triggers_condition_action_throttle)
{
	spec sp = {.lua = trig_lua, .triggers = trig_json, .seed = 1};
	eng *e = must_create(&sp);
	eng_out o = {0};

	ev(e, "Lever", rec1("gate", str("north")), &o);
	expect_effects(&o, 2, "ui.broadcast(\"handler first\") @ev:Lever",
		       "ecs.openGate(\"north\") @lever");
	out_free(&o);
	ev(e, "OnAreaEnter:hall", players(1, 0), &o);
	expect_effects(&o, 0);
	out_free(&o);
	/* fires, then the input fails later: its throttle stamp is rolled back too */
	ev(e, "OnAreaEnter:hall", players(2, 1), &o);
	expect_fail(&o, SCRIPT_ERROR, "late failure");
	out_free(&o);
	ev(e, "OnAreaEnter:hall", players(2, 0), &o);
	expect_effects(&o, 1, "ui.broadcast(\"hi 2 OnAreaEnter:hall\") @greet");
	out_free(&o);
	ev(e, "OnAreaEnter:hall", players(3, 0), &o); /* same tick: throttled */
	expect_effects(&o, 0);
	out_free(&o);
	tick(e, 3, &o); /* 150 ms of instance time: still inside the window */
	out_free(&o);
	ev(e, "OnAreaEnter:hall", players(3, 0), &o);
	expect_effects(&o, 0);
	out_free(&o);
	tick(e, 1, &o); /* 200 ms */
	out_free(&o);
	ev(e, "OnAreaEnter:x", players(4, 0), &o);
	expect_effects(&o, 1, "ui.broadcast(\"hi 4 OnAreaEnter:x\") @greet");
	out_free(&o);
	eng_free(e);
}

Test(engine, bad_triggers_are_bad_packs)
{
	eng_out o = {0};
	spec s1 = {.lua = trig_lua,
		   .triggers = "{\"id\":\"t1\",\"event\":\"E\",\"condition\":\"ctx.x >=\","
			       "\"action\":\"on_lever\"}"};
	spec s2 = {.lua = trig_lua,
		   .triggers = "{\"id\":\"t2\",\"event\":\"E\",\"action\":\"nope\"}"};

	cr_assert_null(create(&s1, &o));
	expect_fail(&o, BAD_PACK, "trigger 't1': condition does not compile");
	out_free(&o);
	cr_assert_null(create(&s2, &o));
	expect_fail(&o, BAD_PACK, "trigger 't2': action 'nope' is not a global function");
	out_free(&o);
}

/* ---- rand ----------------------------------------------------------------------- */

static const char rand_lua[] =
    "function draws()\n"
    "  return rand.int(1, 1000000), rand.next(), math.random(0), math.random(5, 7),\n"
    "         rand.pick({'a', 'b', 'c'}), math.random()\n"
    "end\n"
    "function bounds()\n"
    "  local seen = {}\n"
    "  for i = 1, 1000 do\n"
    "    local r = math.random(3); assert(r >= 1 and r <= 3 and math.type(r) == 'integer')\n"
    "    seen[r] = true\n"
    "    local f = math.random(); assert(f >= 0 and f < 1)\n"
    "    local x = rand.int(-2, 2); assert(x >= -2 and x <= 2)\n"
    "  end\n"
    "  return seen[1] and seen[2] and seen[3]\n"
    "end\n"
    "function fail_after_draw() rand.next(); error('x') end\n"
    "function empty() return math.random(2, 1) end\n"
    "function reseed() math.randomseed(42); return math.random(0) end\n";

static void draws(eng *e, char *buf, size_t len)
{
	eng_out o = {0};
	size_t n = 0;

	call(e, "draws", &o, 0);
	expect_ok(&o);
	cr_assert_eq(o.result->n_returns, 6);
	for (size_t i = 0; i < 6; i++) {
		char item[64];
		tv_fmt_val(o.result->returns[i], item, sizeof(item));
		n += (size_t)snprintf(buf + n, len - n, "%s ", item);
	}
	out_free(&o);
}

/* xoshiro256** seeded by splitmix64(42): first output, computed independently. */
static uint64_t reference_first(uint64_t seed)
{
	uint64_t s[4], x = seed;

	for (int i = 0; i < 4; i++) {
		uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		s[i] = z ^ (z >> 31);
	}
	x = s[1] * 5;
	x = (x << 7) | (x >> 57);
	return x * 9;
}

Test(engine, rand_is_deterministic_per_seed)
{
	spec s42 = {.lua = rand_lua, .apis = "", .seed = 42};
	spec s43 = {.lua = rand_lua, .apis = "", .seed = 43};
	eng *a = must_create(&s42), *b = must_create(&s42), *c = must_create(&s43);
	char da[512], db[512], dc[512];
	eng_out o = {0};

	draws(a, da, sizeof(da));
	draws(b, db, sizeof(db));
	draws(c, dc, sizeof(dc));
	cr_assert_str_eq(da, db);
	cr_assert_str_neq(da, dc);
	call(a, "reseed", &o, 0);
	expect_ok(&o);
	cr_assert_eq((uint64_t)o.result->returns[0]->int_value, reference_first(42));
	out_free(&o);
	call(a, "bounds", &o, 0);
	expect_ok(&o);
	cr_assert_eq(o.result->returns[0]->bool_value, 1);
	out_free(&o);
	/* a failed input gives its draws back */
	call(b, "fail_after_draw", &o, 0);
	expect_fail(&o, SCRIPT_ERROR, "x");
	out_free(&o);
	draws(b, db, sizeof(db));
	draws(c, dc, sizeof(dc)); /* advance c: irrelevant */
	call(a, "empty", &o, 0);
	expect_fail(&o, SCRIPT_ERROR, "math.random: interval is empty");
	out_free(&o);
	eng_free(a);
	eng_free(b);
	eng_free(c);
}

Test(engine, rand_rollback_restores_the_sequence)
{
	spec s = {.lua = rand_lua, .apis = "", .seed = 7};
	eng *a = must_create(&s), *b = must_create(&s);
	char da[512], db[512];
	eng_out o = {0};

	call(a, "fail_after_draw", &o, 0);
	expect_fail(&o, SCRIPT_ERROR, "x");
	out_free(&o);
	draws(a, da, sizeof(da));
	draws(b, db, sizeof(db));
	cr_assert_str_eq(da, db);
	eng_free(a);
	eng_free(b);
}

/* ---- calls and errors ----------------------------------------------------------- */

static const char call_lua[] =
    "function add(a, b) return a + b, 'sum', {a, b, k = true} end\n"
    "function give_fn() return print end\n"
    "local function inner() error('kaboom') end\n"
    "function boom() inner() end\n"
    "function spawn_bad() ecs.spawn(5) end\n"
    "function spawn_ok() ecs.spawn('orc', {pos = {x = 1, z = 2.5}}) end\n"
    "function music_on() music.play('x') end\n"
    "function req() return require('host.ui') == ui, rawequal(ui, _G.ui) "
    "end\n";

Test(engine, call_returns_values)
{
	spec sp = {.lua = call_lua, .seed = 1};
	eng *e = must_create(&sp);
	eng_out o = {0};
	char buf[128];

	call(e, "add", &o, 2, val_new_int(2), val_new_int(3));
	expect_ok(&o);
	cr_assert_eq(o.result->n_returns, 3);
	cr_assert_eq(o.result->returns[0]->int_value, 5);
	cr_assert_str_eq(o.result->returns[1]->string_value, "sum");
	tv_fmt_val(o.result->returns[2], buf, sizeof(buf));
	cr_assert_str_eq(buf, "{2,3,k=true}");
	out_free(&o);
	call(e, "nope", &o, 0);
	expect_fail(&o, INVALID_ARGUMENT, "no global function 'nope'");
	out_free(&o);
	call(e, "give_fn", &o, 0);
	expect_fail(&o, SCRIPT_ERROR, "return value #1");
	out_free(&o);
	call(e, "spawn_ok", &o, 0);
	expect_effects(&o, 1, "ecs.spawn(\"orc\",{pos={x=1,z=2.5}}) @call:spawn_ok");
	out_free(&o);
	call(e, "req", &o, 0); /* require("host.ui") is the global ui */
	expect_ok(&o);
	cr_assert_eq(o.result->returns[0]->bool_value, 1);
	cr_assert_eq(o.result->returns[1]->bool_value, 1);
	out_free(&o);
	eng_free(e);
}

Test(engine, script_error_has_traceback)
{
	spec sp = {.lua = call_lua, .seed = 1};
	eng *e = must_create(&sp);
	eng_out o = {0};

	call(e, "boom", &o, 0);
	expect_fail(&o, SCRIPT_ERROR, "main.lua:3: kaboom");
	cr_assert(o.status->traceback != NULL && strstr(o.status->traceback, "main.lua") != NULL,
		  "traceback: %s", o.status->traceback);
	out_free(&o);
	call(e, "spawn_bad", &o, 0);
	/* a call that breaks the host API schema is INVALID_ARGUMENT, naming the argument */
	expect_fail(&o, MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT,
		    "ecs.spawn: argument #1 'kind' expected string, got number");
	out_free(&o);
	eng_free(e);
}

Test(engine, unlisted_api_is_guarded)
{
	spec sp = {.lua = call_lua, .apis = "\"ecs\",\"ui\"", .seed = 1};
	eng *e = must_create(&sp);
	eng_out o = {0};

	call(e, "music_on", &o, 0);
	expect_fail(&o, MOONPEN__V1__STATUS__CODE__PERMISSION_DENIED,
		    "pack 't' does not list api 'music' in its manifest");
	cr_assert_str_eq(o.status->message, "pack 't' does not list api 'music' in its manifest");
	out_free(&o);
	eng_free(e);
}

Test(engine, api_missing_from_schema_is_bad_pack)
{
	spec sp = {.lua = call_lua, .apis = "\"ecs\",\"path\"", .seed = 1};
	eng_out o = {0};

	cr_assert_null(create(&sp, &o));
	expect_fail(&o, BAD_PACK,
		    "manifest lists api 'path', which the host API schema does "
		    "not define");
	out_free(&o);
}

static const char odd_schema[] =
    "{\"version\":1,\"apis\":{"
    "\"net\":{\"class\":\"io\",\"functions\":{\"get\":{\"kind\":\"effect\"}}},"
    "\"path\":{\"class\":\"deterministic\",\"functions\":{"
    "\"find\":{\"kind\":\"query\",\"params\":[{\"name\":\"to\",\"type\":\"string\"}]}}}}}";

Test(engine, io_api_refused_and_queries_raise)
{
	spec io = {.lua = "", .apis = "\"net\"", .schema = odd_schema};
	spec q = {.lua = "function f() return path.find('x') end\n",
		  .apis = "\"path\",\"state\"",
		  .schema = odd_schema};
	eng_out o = {0};
	eng *e;

	cr_assert_null(create(&io, &o));
	expect_fail(&o, MOONPEN__V1__STATUS__CODE__PERMISSION_DENIED,
		    "api 'net' does io: instance scripts must replay");
	out_free(&o);
	e = must_create(&q);
	call(e, "f", &o, 0);
	/* queries suspend the input now (tests/unit/test_query.c) */
	expect_fail(&o, MOONPEN__V1__STATUS__CODE__PENDING, "waiting for query 1 (path.find)");
	cr_assert_not_null(o.host_call);
	protobuf_c_message_free_unpacked(&o.host_call->base, NULL);
	o.host_call = NULL;
	out_free(&o);
	eng_free(e);
}

Test(engine, load_errors)
{
	spec syn = {.lua = "function f(\n"};
	spec top = {.lua = "ui.broadcast('at load')\n"};
	spec rt = {.lua = "local x = nil; x.y = 1\n"};
	eng_out o = {0};

	cr_assert_null(create(&syn, &o));
	expect_fail(&o, BAD_PACK, "main.lua:2:");
	out_free(&o);
	cr_assert_null(create(&top, &o));
	expect_fail(&o, SCRIPT_ERROR, "ui.broadcast cannot be called while the chunk loads");
	out_free(&o);
	cr_assert_null(create(&rt, &o));
	expect_fail(&o, SCRIPT_ERROR, "attempt to index a nil value");
	out_free(&o);
}

Test(engine, budgets_fail_the_input_atomically)
{
	spec sp = {
	    .lua = "function on_init() state.set('a', 1) end\n"
		   "function spin() state.set('a', 5); ui.broadcast('x'); while true do end end\n"
		   "function hog() state.set('a', 6); local s, t = string.rep('x', 1 << 20), {}\n"
		   "  for i = 1, 1000 do t[i] = s .. i end end\n",
	    .seed = 1};
	eng *e = must_create(&sp);
	uint8_t before[32];
	eng_out o = {0};

	hash_of(e, before);
	call(e, "spin", &o, 0);
	cr_assert_eq(o.status->code, MOONPEN__V1__STATUS__CODE__TIMEOUT, "%s", o.status->message);
	cr_assert_eq(o.result->n_effects, 0);
	cr_assert_eq(memcmp(o.result->state_hash.data, before, 32), 0);
	out_free(&o);
	call(e, "get", &o, 1, str("a")); /* no such function: the engine still serves */
	expect_fail(&o, INVALID_ARGUMENT, "no global function 'get'");
	out_free(&o);
	eng_free(e);

	/* the memory cap, alone: a deadline long enough that only the cap can stop it,
	 * even under valgrind */
	Moonpen__Worker__V1__Limits lim = MOONPEN__WORKER__V1__LIMITS__INIT;
	lim.deadline_ms = 20000;
	sp.limits = &lim;
	e = must_create(&sp);
	hash_of(e, before);
	call(e, "hog", &o, 0);
	cr_assert_eq(o.status->code, MOONPEN__V1__STATUS__CODE__MEMORY_LIMIT, "%s",
		     o.status->message);
	cr_assert_eq(memcmp(o.result->state_hash.data, before, 32), 0);
	out_free(&o);
	eng_free(e);
}

/* ---- logs and bounds ------------------------------------------------------------- */

Test(engine, logs_and_effect_bounds)
{
	Moonpen__Worker__V1__Limits lim = MOONPEN__WORKER__V1__LIMITS__INIT;
	spec sp = {.lua = "function talk() print('a', 1, nil, true); log.warn('w')\n"
			  "  for i = 1, 4 do log.info(i) end end\n"
			  "function many() for i = 1, 4 do ui.broadcast('x') end end\n",
		   .seed = 1,
		   .limits = &lim};
	eng *e;
	eng_out o = {0};

	lim.max_logs = 3;
	lim.max_effects = 3;
	e = must_create(&sp);
	tick(e, 2, &o);
	out_free(&o);
	call(e, "talk", &o, 0);
	expect_ok(&o);
	cr_assert_eq(o.result->n_logs, 4);
	cr_assert_str_eq(o.result->logs[0]->level, "print");
	cr_assert_str_eq(o.result->logs[0]->message, "a\t1\tnil\ttrue");
	cr_assert_eq(o.result->logs[0]->tick, 2);
	cr_assert_str_eq(o.result->logs[1]->level, "warn");
	cr_assert_str_eq(o.result->logs[2]->message, "1");
	cr_assert_str_eq(o.result->logs[3]->message, "3 log lines dropped");
	out_free(&o);
	call(e, "many", &o, 0);
	expect_fail(&o, SCRIPT_ERROR, "ui.broadcast: more than 3 effects in one input");
	out_free(&o);
	eng_free(e);
}

/* ---- determinism across engines ------------------------------------------------------ */

static const char det_lua[] =
    "function on_init() state.set('inv', {sword = 1, shield = 2, apple = 3, zed = 4}) end\n"
    "ev.on('Count', function(ctx)\n"
    "  local inv = state.get('inv')\n"
    "  for k, v in pairs(inv) do ui.broadcast(k .. '=' .. v + rand.int(1, 6)) end\n"
    "  inv[ctx.item] = (inv[ctx.item] or 0) + 1; state.set('inv', inv)\n"
    "end)\n";

Test(engine, same_inputs_same_hash)
{
	spec sp = {.lua = det_lua, .seed = 99};
	eng *a = must_create(&sp), *b = must_create(&sp);
	uint8_t ha[32], hb[32];
	eng_out oa = {0}, ob = {0};

	for (int i = 0; i < 3; i++) {
		ev(a, "Count", rec1("item", str(i ? "apple" : "gem")), &oa);
		ev(b, "Count", rec1("item", str(i ? "apple" : "gem")), &ob);
		expect_ok(&oa);
		cr_assert_eq(oa.result->n_effects, ob.result->n_effects);
		for (size_t j = 0; j < oa.result->n_effects; j++) {
			char x[256], y[256];
			tv_fmt_effect(oa.result->effects[j], x, sizeof(x));
			tv_fmt_effect(ob.result->effects[j], y, sizeof(y));
			cr_assert_str_eq(x, y);
		}
		cr_assert_eq(memcmp(oa.result->state_hash.data, ob.result->state_hash.data, 32), 0);
		out_free(&oa);
		out_free(&ob);
	}
	hash_of(a, ha);
	hash_of(b, hb);
	cr_assert_eq(memcmp(ha, hb, 32), 0);
	eng_free(a);
	eng_free(b);
}

Test(engine, close_runs_on_close_once)
{
	spec sp = {.lua = "function on_close(ctx) ui.broadcast('bye ' .. ctx.instance_id .. ' ' .. "
			  "ctx.pack_id .. ' ' .. ctx.pack_version) end\n",
		   .seed = 1};
	eng *e = must_create(&sp);
	eng_out o = {0};

	cr_assert_eq(eng_close(e, &o), 0);
	expect_effects(&o, 1, "ui.broadcast(\"bye inst-1 t 1.0.0\") @on_close");
	out_free(&o);
	tick(e, 1, &o);
	expect_fail(&o, INVALID_ARGUMENT, "instance is closed");
	out_free(&o);
	eng_free(e);
}

/* ---- typed errors and permissions (moonpen issue 4) ---------------------------- */

static const char typed_lua[] =
    "function bad() ecs.spawn(5) end\n"
    "function rethrow() local ok, e = pcall(ecs.spawn, 5); error(e) end\n"
    "function restring() local ok, e = pcall(ecs.spawn, 5); error(tostring(e), 0) end\n"
    "function lookalike() error('ecs.spawn: argument #1 \\'kind\\' expected string, got "
    "number', 0) end\n"
    "function inspect()\n"
    "  local ok, e = pcall(ecs.spawn, 5)\n"
    "  return ok, type(e), e.kind, e.message, tostring(e), 'x: ' .. e, getmetatable(e)\n"
    "end\n"
    "function guard_caught() local ok, e = pcall(function() return music.play end)\n"
    "  return ok, e.kind, tostring(e) end\n"
    "function via_coroutine() local co = coroutine.wrap(function() ecs.spawn(true) end)\n"
    "  co() end\n"
    "function via_resume() local ok, e = coroutine.resume(coroutine.create(function()\n"
    "  ui.tip('p') end)); error(e) end\n"
    "function cannot_forge() local ok, e = pcall(ecs.spawn, 5)\n"
    "  return pcall(setmetatable, {}, getmetatable(e)) end\n";

static void expect_exact(const eng_out *o, code_t code, const char *msg)
{
	cr_assert_eq(o->status->code, code, "status %d (want %d): %s", o->status->code, code,
		     o->status->message);
	cr_assert_str_eq(o->status->message, msg);
}

Test(engine, typed_error_kinds_follow_the_object_not_the_text)
{
	spec sp = {.lua = typed_lua, .apis = "\"ecs\",\"ui\"", .seed = 1};
	eng *e = must_create(&sp);
	const char *m = "ecs.spawn: argument #1 'kind' expected string, got number";
	eng_out o = {0};

	call(e, "bad", &o, 0);
	expect_exact(&o, INVALID_ARGUMENT, m);
	cr_assert(o.status->traceback && strstr(o.status->traceback, "main.lua:1"));
	out_free(&o);
	call(e, "rethrow", &o, 0); /* the same object rethrown keeps its kind */
	expect_exact(&o, INVALID_ARGUMENT, m);
	out_free(&o);
	call(e, "restring", &o, 0); /* its text raised as a string is the script's error */
	expect_exact(&o, SCRIPT_ERROR, m);
	out_free(&o);
	call(e, "lookalike", &o, 0);
	expect_exact(&o, SCRIPT_ERROR, m);
	out_free(&o);
	call(e, "via_coroutine", &o, 0);
	expect_exact(&o, INVALID_ARGUMENT,
		     "ecs.spawn: argument #1 'kind' expected string, got boolean");
	out_free(&o);
	call(e, "via_resume", &o, 0);
	expect_exact(&o, INVALID_ARGUMENT, "ui.tip: argument #2 'text' expected string, got nil");
	out_free(&o);
	eng_free(e);
}

Test(engine, typed_error_as_scripts_see_it)
{
	spec sp = {.lua = typed_lua, .apis = "\"ecs\"", .seed = 1};
	eng *e = must_create(&sp);
	const char *m = "ecs.spawn: argument #1 'kind' expected string, got number";
	char want[160];
	eng_out o = {0};

	call(e, "inspect", &o, 0);
	expect_ok(&o);
	cr_assert_eq(o.result->n_returns, 7);
	cr_assert_eq(o.result->returns[0]->bool_value, 0);
	cr_assert_str_eq(o.result->returns[1]->string_value, "userdata");
	cr_assert_str_eq(o.result->returns[2]->string_value, "invalid_argument");
	cr_assert_str_eq(o.result->returns[3]->string_value, m);
	cr_assert_str_eq(o.result->returns[4]->string_value, m);
	snprintf(want, sizeof(want), "x: %s", m);
	cr_assert_str_eq(o.result->returns[5]->string_value, want);
	cr_assert_eq(o.result->returns[6]->bool_value, 0); /* getmetatable(e) == false */
	out_free(&o);
	call(e, "guard_caught", &o, 0); /* ui is not listed: a guard */
	expect_ok(&o);
	cr_assert_eq(o.result->returns[0]->bool_value, 0);
	cr_assert_str_eq(o.result->returns[1]->string_value, "permission_denied");
	cr_assert_str_eq(o.result->returns[2]->string_value,
			 "pack 't' does not list api 'music' in its manifest");
	out_free(&o);
	call(e, "cannot_forge", &o, 0);
	expect_ok(&o);
	cr_assert_eq(o.result->returns[0]->bool_value, 0); /* metatable false: not a table */
	out_free(&o);
	eng_free(e);
}

Test(engine, guard_at_load_and_nondeterministic_class_are_permission_denied)
{
	static const char schema[] =
	    "{\"version\":1,\"apis\":{"
	    "\"clock_wall\":{\"class\":\"nondeterministic\",\"functions\":{\"now\":{\"kind\":"
	    "\"query\"}}},"
	    "\"ui\":{\"class\":\"deterministic\",\"functions\":{\"broadcast\":{\"kind\":"
	    "\"effect\",\"params\":[{\"name\":\"text\",\"type\":\"string\"}]}}}}}";
	spec nd = {.lua = "", .apis = "\"ui\",\"clock_wall\"", .schema = schema};
	spec load = {.lua = "local f = ui.broadcast\n", .apis = "", .schema = schema};
	spec assign = {.lua = "function f() ui.x = 1 end\nfunction g() return #clock_wall end\n",
		       .apis = "",
		       .schema = schema};
	eng_out o = {0};
	eng *e;

	cr_assert_null(create(&nd, &o));
	expect_exact(&o, MOONPEN__V1__STATUS__CODE__PERMISSION_DENIED,
		     "api 'clock_wall' is nondeterministic: instance scripts must replay");
	out_free(&o);
	cr_assert_null(create(&load, &o));
	expect_exact(&o, MOONPEN__V1__STATUS__CODE__PERMISSION_DENIED,
		     "pack 't' does not list api 'ui' in its manifest");
	out_free(&o);
	e = must_create(&assign);
	call(e, "f", &o, 0);
	expect_exact(&o, MOONPEN__V1__STATUS__CODE__PERMISSION_DENIED,
		     "pack 't' does not list api 'ui' in its manifest");
	out_free(&o);
	call(e, "g", &o, 0);
	expect_exact(&o, MOONPEN__V1__STATUS__CODE__PERMISSION_DENIED,
		     "pack 't' does not list api 'clock_wall' in its manifest");
	out_free(&o);
	eng_free(e);
}

/* A timer's arguments are pushed with room checked (more than Lua's 20 free
 * stack slots), and a queued emit from a timer is dispatched within the tick. */
Test(engine, timer_with_many_args)
{
	spec sp = {.lua =
		       "function on_init() timer.after(50, 'sum', 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, "
		       "11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, "
		       "29, 30) end\n"
		       "function sum(...) local s = 0; for _, v in ipairs({...}) do s = s + v end; "
		       "state.set('s', s); ev.emit('Summed', {s = s}) end\n"
		       "ev.on('Summed', function(p) ui.broadcast('sum ' .. p.s) end)\n"
		       "function get() return state.get('s') end\n",
		   .seed = 1};
	eng *e = must_create(&sp);
	eng_out o = {0};

	tick(e, 1, &o);
	expect_effects(&o, 1, "ui.broadcast(\"sum 465\") @ev:Summed");
	out_free(&o);
	call(e, "get", &o, 0);
	expect_ok(&o);
	cr_assert_eq(o.result->returns[0]->int_value, 465);
	out_free(&o);
	eng_free(e);
}

/* ---- manifest timers ------------------------------------------------------------ */

static const char mtimer_json[] =
    "{\"id\":\"waves\",\"every_ms\":120,\"fn\":\"wave\",\"args\":[\"w\",{\"n\":2}]},"
    "{\"id\":\"once\",\"after_ms\":50,\"fn\":\"once\"},"
    "{\"id\":\"late\",\"after_ms\":1000,\"fn\":\"once\",\"args\":[7]}";

static const char mtimer_lua[] =
    "function wave(tag, opts) ui.broadcast(tag .. opts.n .. '@' .. clock.tick()) end\n"
    "function once(x) ui.broadcast('once ' .. tostring(x) .. '@' .. clock.tick()) end\n"
    "function on_init(ctx)\n"
    "  ui.broadcast('ids ' .. timer.id('waves') .. ' ' .. timer.id('once') .. ' ' ..\n"
    "    timer.id('late') .. ' ' .. timer.after(50, 'once', 'own') .. ' ' ..\n"
    "    tostring(timer.cancel(timer.id('late'))))\n"
    "end\n"
    "function stop() return timer.cancel(timer.id('waves')) end\n"
    "function bad_id() return timer.id('nope') end\n";

Test(engine, manifest_timers_start_before_on_init)
{
	spec sp = {.lua = mtimer_lua, .timers = mtimer_json, .seed = 1};
	eng_out o = {0};
	eng *e = create(&sp, &o);

	cr_assert_not_null(e);
	/* started in manifest order before on_init: ids 1..3, on_init's own is 4 */
	expect_effects(&o, 1, "ui.broadcast(\"ids 1 2 3 4 true\") @on_init");
	out_free(&o);
	/* 120 ms at 50 ms a tick: 3 ticks (rounded up); 50 ms: 1 tick */
	tick(e, 9, &o);
	expect_effects(&o, 5, "ui.broadcast(\"once nil@1\") @timer:once",
		       "ui.broadcast(\"once own@1\") @timer:once",
		       "ui.broadcast(\"w2@3\") @timer:wave", "ui.broadcast(\"w2@6\") @timer:wave",
		       "ui.broadcast(\"w2@9\") @timer:wave");
	out_free(&o);
	call(e, "stop", &o, 0);
	expect_ok(&o);
	cr_assert_eq(o.result->n_returns, 1);
	cr_assert_eq(o.result->returns[0]->bool_value, 1);
	out_free(&o);
	tick(e, 30, &o); /* "late" (20 ticks) was cancelled in on_init */
	expect_effects(&o, 0);
	out_free(&o);
	call(e, "bad_id", &o, 0);
	expect_fail(&o, SCRIPT_ERROR, "timer.id: the manifest declares no timer 'nope'");
	out_free(&o);
	eng_free(e);
}

Test(engine, manifest_timer_fn_must_be_a_global_function)
{
	spec sp = {.lua = mtimer_lua,
		   .timers = "{\"id\":\"t1\",\"every_ms\":100,\"fn\":\"wave\"},"
			     "{\"id\":\"t2\",\"after_ms\":100,\"fn\":\"nope\"}"};
	eng_out o = {0};

	cr_assert_null(create(&sp, &o));
	expect_fail(&o, BAD_PACK, "timer 't2': fn 'nope' is not a global function");
	cr_assert_str_eq(o.status->message, "timer 't2': fn 'nope' is not a global function");
	out_free(&o);
}

/* ---- debounce ------------------------------------------------------------------- */

static const char deb_json[] =
    "{\"id\":\"settle\",\"event\":\"Move:*\",\"condition\":\"ctx.ok ~= false\","
    "\"action\":\"ui.broadcast(event .. ' ' .. ctx.n .. '@' .. clock.tick())\","
    "\"debounce_ms\":120},"
    "{\"id\":\"saved\",\"event\":\"Move:*\",\"action\":\"on_saved\",\"debounce_ms\":1},"
    "{\"id\":\"boomer\",\"event\":\"Move:*\",\"condition\":\"ctx.boom\","
    "\"action\":\"ev.emit('boom')\"}";

static const char deb_lua[] =
    "function on_saved(ctx) ui.tip('p', 'saved ' .. ctx.n .. '@' .. clock.tick()) end\n"
    "ev.on('boom', function() error('late failure') end)\n";

static val_t *move(int n, int ok, int boom)
{
	val_t *t = rec1("n", val_new_int(n));

	if (!ok)
		cr_assert_eq(val_table_set(t, str("ok"), val_new_bool(0)), 0);
	if (boom)
		cr_assert_eq(val_table_set(t, str("boom"), val_new_bool(1)), 0);
	return t;
}

Test(engine, debounce_fires_once_after_the_quiet_period)
{
	spec sp = {.lua = deb_lua, .triggers = deb_json, .seed = 1};
	eng *e = must_create(&sp);
	eng_out o = {0};

	/* a burst at tick 0: nothing fires yet; "settle" is due at 0 + 3 ticks */
	ev(e, "Move:a", move(1, 1, 0), &o);
	expect_effects(&o, 0);
	out_free(&o);
	ev(e, "Move:b", move(2, 1, 0), &o);
	expect_effects(&o, 0);
	out_free(&o);
	ev(e, "Move:c", move(3, 0, 0), &o); /* settle's condition is false: not counted */
	expect_effects(&o, 0);
	out_free(&o);
	/* tick 1: "saved" (1 ms = 1 tick) fires with the last payload (n = 3) */
	tick(e, 2, &o);
	expect_effects(&o, 1, "ui.tip(\"p\",\"saved 3@1\") @saved");
	out_free(&o);
	/* tick 2: a new event pushes settle back to 5 */
	ev(e, "Move:d", move(4, 1, 0), &o);
	expect_effects(&o, 0);
	out_free(&o);
	tick(e, 2, &o); /* ticks 3, 4 */
	expect_effects(&o, 1, "ui.tip(\"p\",\"saved 4@3\") @saved");
	out_free(&o);
	tick(e, 1, &o); /* tick 5 */
	expect_effects(&o, 1, "ui.broadcast(\"Move:d 4@5\") @settle");
	out_free(&o);
	tick(e, 10, &o); /* fired once */
	expect_effects(&o, 0);
	out_free(&o);
	eng_free(e);
}

Test(engine, debounce_is_rolled_back_with_a_failed_input)
{
	spec sp = {.lua = deb_lua, .triggers = deb_json, .seed = 1};
	eng *e = must_create(&sp);
	eng_out o = {0};

	ev(e, "Move:e", move(5, 1, 0), &o); /* tick 0: settle due 3, saved due 1 */
	out_free(&o);
	ev(e, "Move:x", move(9, 1, 1), &o); /* re-arms both, then fails: undone */
	expect_fail(&o, SCRIPT_ERROR, "late failure");
	out_free(&o);
	tick(e, 3, &o); /* a Tick skips to the due ticks: 1, then 3 */
	expect_effects(&o, 2, "ui.tip(\"p\",\"saved 5@1\") @saved",
		       "ui.broadcast(\"Move:e 5@3\") @settle");
	cr_assert_eq(o.result->tick, 3);
	out_free(&o);
	eng_free(e);
}
