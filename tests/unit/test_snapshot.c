/*
 * test_snapshot — snapshots in the engine, in-process. The key property: run
 * inputs A then B on one engine; on another run A, snapshot, restore a third
 * from it and run B there: B's effects, returns and the final state hash are
 * the same (timers pending across the snapshot, RNG draws, a throttled
 * trigger, 1 KB and 100 KB of state). And every bad snapshot is refused with a
 * status that names why. The schema is the test's own.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/val.h"
#include "policy/limits.h"
#include "supervisor/wchan.h"
#include "tests/support/daemon.h"
#include "worker/engine.h"
#include "tests/support/vfmt.h"
#include "worker.pb-c.h"

#define OK MOONPEN__V1__STATUS__CODE__OK
#define INVALID_ARGUMENT MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT

static const char schema[] =
    "{\"version\":1,\"apis\":{\"game\":{\"class\":\"deterministic\",\"functions\":{"
    "\"ask\":{\"kind\":\"query\",\"params\":[{\"name\":\"q\",\"type\":\"string\"}]},"
    "\"fx\":{\"kind\":\"effect\",\"params\":[{\"name\":\"v\",\"type\":\"any\"}]}}}}}";

static const char manifest[] =
    "{\"id\":\"snap\",\"version\":\"1.2.0\",\"engine\":\"lua\",\"entry\":\"main.lua\","
    "\"apis\":[\"game\",\"state\"],\"triggers\":[{\"id\":\"hit-trig\",\"event\":\"Hit\","
    "\"action\":\"on_hit\",\"throttle_ms\":500}]}";

static const char lua[] =
    "function on_init(ctx)\n"
    "  state.set('n', 0); game.fx('init')\n"
    "  timer.every(100, 'beat', 'b'); timer.after(250, once, {x = 1})\n"
    "end\n"
    "function beat(tag) state.incr('n'); game.fx(tag .. state.get('n') .. ':' .. "
    "rand.int(1, 1000)) end\n"
    "function once(t) game.fx('once' .. t.x .. '@' .. clock.tick()) end\n"
    "function on_hit(p) game.fx('trig@' .. clock.tick()) end\n"
    "function big(n) state.set('big', string.rep('x', n)); state.set('t', {1, 2, {a = 'b'}, "
    "k = 1.5}) end\n"
    "function roll() return rand.int(1, 1000000), state.get('n') end\n"
    "function later() timer.after(1000, 'once', {x = 9}) end\n"
    "function asks() return game.ask('hp') + 1 end\n"
    "ev.on('Hit', function(p) game.fx('hit' .. rand.int(1, 100)) end)\n";

/* ---- helpers ------------------------------------------------------------------ */

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

/* An Init of the test pack (files[0] is filled; snap may be NULL). */
static void init_fill(Moonpen__Worker__V1__Init *init, Moonpen__Worker__V1__PackFile **files,
		      const char *inst, const char *mf, const uint8_t *snap, size_t len)
{
	Moonpen__Worker__V1__PackFile *f = files[0];

	init->instance_id = (char *)inst;
	init->manifest_json.data = (uint8_t *)mf;
	init->manifest_json.len = strlen(mf);
	f->path = "main.lua";
	f->data.data = (uint8_t *)lua;
	f->data.len = strlen(lua);
	init->n_files = 1;
	init->files = files;
	init->host_api_json.data = (uint8_t *)schema;
	init->host_api_json.len = strlen(schema);
	init->seed = 1234;
	init->tick_ms = 50;
	init->snapshot.data = (uint8_t *)snap;
	init->snapshot.len = len;
	/* these tests are about what a restore reproduces, not deadlines: a slow
	 * machine (or make test-valgrind) must not fail the 100 KB cases */
	static Moonpen__Worker__V1__Limits lim = MOONPEN__WORKER__V1__LIMITS__INIT;
	lim.deadline_ms = 10000;
	init->limits = &lim;
}

/* Creates (snap NULL) or restores; checks the status (and message when given). */
static eng *make(const char *inst, const char *mf, const uint8_t *snap, size_t len,
		 Moonpen__V1__Status__Code want, const char *msg, eng_out *keep)
{
	Moonpen__Worker__V1__Init init = MOONPEN__WORKER__V1__INIT__INIT;
	Moonpen__Worker__V1__PackFile f = MOONPEN__WORKER__V1__PACK_FILE__INIT;
	Moonpen__Worker__V1__PackFile *files[1] = {&f};
	eng_out o = {0};
	eng *e = NULL;

	init_fill(&init, files, inst, mf, snap, len);
	cr_assert_eq(eng_create(&init, &e, &o), 0);
	cr_assert_eq(o.status->code, want, "create: %d %s", o.status->code, o.status->message);
	if (msg != NULL)
		cr_assert_str_eq(o.status->message, msg);
	if (keep != NULL)
		*keep = o;
	else
		out_free(&o);
	return e;
}

static eng *fresh(void)
{
	return make("inst-1", manifest, NULL, 0, OK, NULL, NULL);
}

static void event(eng *e, const char *name, eng_out *o)
{
	Moonpen__V1__SendEvent m = MOONPEN__V1__SEND_EVENT__INIT;

	m.name = (char *)name;
	cr_assert_eq(eng_event(e, &m, o), 0);
}

static void call(eng *e, const char *fn, int64_t arg, eng_out *o)
{
	Moonpen__V1__Call m = MOONPEN__V1__CALL__INIT;
	val_t *a = val_new_int(arg), *args[1] = {a};

	m.function = (char *)fn;
	m.args = args;
	m.n_args = arg >= 0 ? 1 : 0;
	cr_assert_eq(eng_call(e, &m, o), 0);
	val_free(a);
}

/* Appends a rendering of one reply (status, effects, returns, tick, hash byte). */
static void log_out(eng_out *o, char *log, size_t len)
{
	size_t n = strlen(log);

	cr_assert_eq(o->status->code, OK, "%s", o->status->message);
	n += (size_t)snprintf(log + n, len - n, "[t%llu h%02x]",
			      (unsigned long long)o->result->tick, o->result->state_hash.data[0]);
	for (size_t i = 0; i < o->result->n_effects && n < len; i++) {
		tv_fmt_effect(o->result->effects[i], log + n, len - n);
		n = strlen(log);
		n += (size_t)snprintf(log + n, len - n, ";");
	}
	for (size_t i = 0; i < o->result->n_returns && n < len; i++) {
		tv_fmt_val(o->result->returns[i], log + n, len - n);
		n = strlen(log);
		n += (size_t)snprintf(log + n, len - n, ",");
	}
	out_free(o);
}

/* Inputs A: state of 1 KB, a hit (the trigger fires at tick 0), 3 ticks. */
static void inputs_a(eng *e, size_t big)
{
	eng_out o = {0};

	call(e, "big", (int64_t)big, &o);
	log_out(&o, (char[4096]){0}, 4096);
	event(e, "Hit", &o);
	log_out(&o, (char[4096]){0}, 4096);
	call(e, "later", -1, &o);
	log_out(&o, (char[4096]){0}, 4096);
	cr_assert_eq(eng_tick(e, 3, &o), 0);
	log_out(&o, (char[4096]){0}, 4096);
}

/* Inputs B: hits inside and past the throttle window, timers across, draws. */
static void inputs_b(eng *e, char *log, size_t len)
{
	eng_out o = {0};

	event(e, "Hit", &o); /* tick 3: throttled (fired at 0, 500 ms = 10 ticks) */
	log_out(&o, log, len);
	cr_assert_eq(eng_tick(e, 8, &o), 0);
	log_out(&o, log, len);
	event(e, "Hit", &o); /* tick 11: fires */
	log_out(&o, log, len);
	call(e, "roll", -1, &o);
	log_out(&o, log, len);
	cr_assert_eq(eng_tick(e, 15, &o), 0);
	log_out(&o, log, len);
}

static void roundtrip(size_t big)
{
	eng *e1 = fresh(), *e2 = fresh(), *e3;
	char l1[8192] = "", l3[8192] = "";
	uint8_t h1[32], h3[32], *snap = NULL, *again = NULL;
	size_t len = 0, alen = 0;
	eng_out o = {0};

	inputs_a(e1, big);
	inputs_b(e1, l1, sizeof(l1));
	inputs_a(e2, big);
	cr_assert_eq(eng_snapshot(e2, &snap, &len), 0);
	cr_assert_gt(len, big);
	e3 = make("inst-1", manifest, snap, len, OK, NULL, &o);
	cr_assert_not_null(e3);
	cr_assert_eq(o.result->n_effects, 0, "on_init does not run on a restore");
	cr_assert_eq(o.result->tick, 3);
	cr_assert_eq(eng_tick_now(e3), 3);
	cr_assert_eq(eng_inputs(e3), 4);
	out_free(&o);
	/* a snapshot of the restored engine, before anything ran, is the same bytes */
	cr_assert_eq(eng_snapshot(e3, &again, &alen), 0);
	cr_assert_eq(alen, len);
	cr_assert_arr_eq(again, snap, len);
	free(again);
	inputs_b(e3, l3, sizeof(l3));
	cr_assert_str_eq(l3, l1);
	eng_state_hash(e1, h1);
	eng_state_hash(e3, h3);
	cr_assert_arr_eq(h3, h1, 32);
	free(snap);
	eng_free(e1);
	eng_free(e2);
	eng_free(e3);
}

/* ---- tests ---------------------------------------------------------------------- */

Test(snapshot, restore_continues_exactly_1k)
{
	roundtrip(1024);
}

Test(snapshot, restore_continues_exactly_100k)
{
	roundtrip(100 * 1024);
}

Test(snapshot, the_run_it_replays_is_this_one)
{
	eng *e = fresh();
	char l[8192] = "";

	inputs_a(e, 1024);
	inputs_b(e, l, sizeof(l));
	/* pins the sequence the round trip compares: beats every 2 ticks with RNG
	 * draws, `once` at tick 5, the trigger throttled at 3 and firing at 11,
	 * the timer `later` set at tick 0 (1000 ms = 20 ticks) */
	cr_assert_str_eq(
	    l, "[t3 h8e]game.fx(\"hit18\") @ev:Hit;"
	       "[t11 h6f]game.fx(\"b2:748\") @timer:beat;game.fx(\"once1@5\") @timer:once;"
	       "game.fx(\"b3:737\") @timer:beat;game.fx(\"b4:460\") @timer:beat;"
	       "game.fx(\"b5:744\") @timer:beat;"
	       "[t11 h6f]game.fx(\"hit47\") @ev:Hit;game.fx(\"trig@11\") @hit-trig;"
	       "[t11 h6f]276657,5,"
	       "[t26 hbb]game.fx(\"b6:373\") @timer:beat;game.fx(\"b7:94\") @timer:beat;"
	       "game.fx(\"b8:32\") @timer:beat;game.fx(\"b9:400\") @timer:beat;"
	       "game.fx(\"b10:898\") @timer:beat;game.fx(\"once9@20\") @timer:once;"
	       "game.fx(\"b11:938\") @timer:beat;game.fx(\"b12:262\") @timer:beat;"
	       "game.fx(\"b13:592\") @timer:beat;");
	eng_free(e);
}

static uint8_t *snap_of(size_t *len)
{
	eng *e = fresh();
	uint8_t *snap = NULL;

	inputs_a(e, 1024);
	cr_assert_eq(eng_snapshot(e, &snap, len), 0);
	eng_free(e);
	return snap;
}

/* Decodes snap, lets edit change it, packs it again. */
static uint8_t *edited(const uint8_t *snap, size_t len,
		       void (*edit)(Moonpen__Worker__V1__Snapshot *), size_t *nlen)
{
	Moonpen__Worker__V1__Snapshot *s = moonpen__worker__v1__snapshot__unpack(NULL, len, snap);
	uint8_t *out;

	cr_assert_not_null(s);
	edit(s);
	*nlen = moonpen__worker__v1__snapshot__get_packed_size(s);
	out = malloc(*nlen);
	moonpen__worker__v1__snapshot__pack(s, out);
	moonpen__worker__v1__snapshot__free_unpacked(s, NULL);
	return out;
}

static void tamper_state(Moonpen__Worker__V1__Snapshot *s)
{
	uint8_t *x = memchr(s->state.data, 'x', s->state.len);

	cr_assert_not_null(x);
	*x = 'y'; /* one byte of the big string */
}

static void zero_rng(Moonpen__Worker__V1__Snapshot *s)
{
	memset(s->rng, 0, 4 * sizeof(uint64_t));
}

static void bad_timer_fn(Moonpen__Worker__V1__Snapshot *s)
{
	cr_assert_gt(s->n_timers, 0);
	s->timers[0]->fn[0] = '1';
}

static void bad_format(Moonpen__Worker__V1__Snapshot *s)
{
	s->format = 2;
}

static void unknown_trigger(Moonpen__Worker__V1__Snapshot *s)
{
	cr_assert_eq(s->n_throttles, 1);
	s->throttles[0]->trigger_id[0] = 'X';
}

static void refused(void (*edit)(Moonpen__Worker__V1__Snapshot *), const char *msg)
{
	size_t len, nlen;
	uint8_t *snap = snap_of(&len), *bad = edited(snap, len, edit, &nlen);

	cr_assert_null(make("inst-1", manifest, bad, nlen, INVALID_ARGUMENT, msg, NULL));
	free(snap);
	free(bad);
}

Test(snapshot, tampered_state_is_refused)
{
	refused(tamper_state, "snapshot state hash mismatch");
}

Test(snapshot, malformed_fields_are_refused)
{
	refused(zero_rng, "snapshot: rng must be 4 words, not all zero");
	refused(bad_timer_fn, "snapshot: timer 1: fn is not a function name");
	refused(bad_format, "snapshot: unknown format (this worker reads format 1)");
	refused(unknown_trigger,
		"snapshot throttles trigger 'Xit-trig', which the manifest does not declare");
}

Test(snapshot, another_instance_or_pack_is_refused)
{
	static const char other_ver[] =
	    "{\"id\":\"snap\",\"version\":\"1.3.0\",\"engine\":\"lua\",\"entry\":\"main.lua\","
	    "\"apis\":[\"game\",\"state\"],\"triggers\":[{\"id\":\"hit-trig\",\"event\":\"Hit\","
	    "\"action\":\"on_hit\",\"throttle_ms\":500}]}";
	size_t len;
	uint8_t *snap = snap_of(&len), junk[3] = {0xff, 0xff, 0xff};

	cr_assert_null(make("inst-2", manifest, snap, len, INVALID_ARGUMENT,
			    "snapshot is of instance 'inst-1', not 'inst-2'", NULL));
	cr_assert_null(make("inst-1", other_ver, snap, len, INVALID_ARGUMENT,
			    "snapshot is of pack version '1.2.0', not '1.3.0'", NULL));
	cr_assert_null(make("inst-1", manifest, junk, sizeof(junk), INVALID_ARGUMENT,
			    "snapshot: not a valid Snapshot message", NULL));
	free(snap);
}

Test(snapshot, header_fields)
{
	size_t len;
	uint8_t *snap = snap_of(&len);
	Moonpen__Worker__V1__Snapshot *s = moonpen__worker__v1__snapshot__unpack(NULL, len, snap);

	cr_assert_not_null(s);
	cr_assert_eq(s->format, 1);
	cr_assert_str_eq(s->instance_id, "inst-1");
	cr_assert_str_eq(s->pack_id, "snap");
	cr_assert_str_eq(s->pack_version, "1.2.0");
	cr_assert_eq(s->seed, 1234);
	cr_assert_eq(s->tick_ms, 50);
	cr_assert_eq(s->tick, 3);
	cr_assert_eq(s->inputs, 4);
	cr_assert_eq(s->state_hash.len, 32);
	cr_assert_eq(s->n_rng, 4);
	cr_assert_eq(s->n_timers, 3); /* beat (every), once (after, 250 ms), once (later) */
	cr_assert_eq(s->timers[0]->id, 1);
	cr_assert_str_eq(s->timers[0]->fn, "beat");
	cr_assert_eq(s->timers[0]->period, 2);
	cr_assert_eq(s->timers[0]->due, 4);
	cr_assert_eq(s->timers[1]->due, 5);
	cr_assert_eq(s->timers[2]->due, 20);
	cr_assert_eq(s->next_timer_id, 4);
	cr_assert_eq(s->next_call_id, 1);
	cr_assert_eq(s->n_throttles, 1);
	cr_assert_str_eq(s->throttles[0]->trigger_id, "hit-trig");
	cr_assert_eq(s->throttles[0]->last_tick, 0);
	cr_assert_eq(memcmp(s->state.data, "MPST\x01", 5), 0);
	moonpen__worker__v1__snapshot__free_unpacked(s, NULL);
	free(snap);
}

/* ---- the worker process: slots, TakeSnapshot, queries over the channel --------- */

typedef Moonpen__Worker__V1__FromWorker from_worker;

struct live {
	char dir[64];
	char exe[PATH_MAX];
	wchan *w;
};

static void live_start(struct live *l)
{
	wchan_opts o;
	char err[512] = "";

	cr_assert_not_null(realpath(td_bin("moonpen-worker"), l->exe));
	snprintf(l->dir, sizeof l->dir, "/tmp/moonpen-snap-XXXXXX");
	cr_assert_not_null(mkdtemp(l->dir));
	memset(&o, 0, sizeof o);
	o.worker_path = l->exe;
	o.run_dir = l->dir;
	o.id = 1;
	o.mem_bytes = MP_LUA_MEM_BYTES;
	o.hello_timeout_ms = 10000;
	o.wrapper = getenv("MOONPEN_TEST_WORKER_WRAPPER"); /* make test-valgrind */
	cr_assert_eq(wchan_start(&o, &l->w, err, sizeof err), 0, "wchan_start: %s", err);
}

/* One RPC on slot; checks the status code (and message when given). */
static from_worker *rpc(struct live *l, uint32_t slot, Moonpen__Worker__V1__ToWorker *m,
			Moonpen__V1__Status__Code want, const char *msg)
{
	from_worker *fw = NULL;

	m->slot = slot;
	cr_assert_eq(wchan_rpc(l->w, m, 10000, &fw), 0);
	cr_assert_eq(fw->slot, slot);
	cr_assert_not_null(fw->status);
	cr_assert_eq(fw->status->code, want, "slot %u: status %d (want %d): %s", slot,
		     fw->status->code, want, fw->status->message);
	if (msg != NULL)
		cr_assert_str_eq(fw->status->message, msg);
	return fw;
}

static from_worker *rpc_init(struct live *l, uint32_t slot, const uint8_t *snap, size_t len,
			     Moonpen__V1__Status__Code want, const char *msg)
{
	Moonpen__Worker__V1__ToWorker m = MOONPEN__WORKER__V1__TO_WORKER__INIT;
	Moonpen__Worker__V1__Init init = MOONPEN__WORKER__V1__INIT__INIT;
	Moonpen__Worker__V1__PackFile f = MOONPEN__WORKER__V1__PACK_FILE__INIT;
	Moonpen__Worker__V1__PackFile *files[1] = {&f};

	init_fill(&init, files, "inst-1", manifest, snap, len);
	m.op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_INIT;
	m.init = &init;
	return rpc(l, slot, &m, want, msg);
}

static from_worker *rpc_tick(struct live *l, uint32_t slot, uint32_t n,
			     Moonpen__V1__Status__Code want, const char *msg)
{
	Moonpen__Worker__V1__ToWorker m = MOONPEN__WORKER__V1__TO_WORKER__INIT;
	Moonpen__V1__Tick t = MOONPEN__V1__TICK__INIT;

	t.count = n;
	m.op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_TICK;
	m.tick = &t;
	return rpc(l, slot, &m, want, msg);
}

static from_worker *rpc_op(struct live *l, uint32_t slot, Moonpen__Worker__V1__ToWorker__OpCase op,
			   Moonpen__V1__Status__Code want, const char *msg)
{
	Moonpen__Worker__V1__ToWorker m = MOONPEN__WORKER__V1__TO_WORKER__INIT;
	Moonpen__Worker__V1__TakeSnapshot ts = MOONPEN__WORKER__V1__TAKE_SNAPSHOT__INIT;
	Moonpen__Worker__V1__Close c = MOONPEN__WORKER__V1__CLOSE__INIT;
	Moonpen__Worker__V1__Abort ab = MOONPEN__WORKER__V1__ABORT__INIT;
	Moonpen__V1__Call call = MOONPEN__V1__CALL__INIT;

	m.op_case = op;
	m.snapshot = &ts;
	m.close = &c;
	m.abort = &ab;
	call.function = "asks";
	m.call = &call;
	return rpc(l, slot, &m, want, msg);
}

static from_worker *rpc_answer(struct live *l, uint32_t slot, uint64_t id, int64_t v,
			       Moonpen__V1__Status__Code want, const char *msg)
{
	Moonpen__Worker__V1__ToWorker m = MOONPEN__WORKER__V1__TO_WORKER__INIT;
	Moonpen__V1__HostResult hr = MOONPEN__V1__HOST_RESULT__INIT;
	Moonpen__V1__Value val = MOONPEN__V1__VALUE__INIT;

	val.kind_case = MOONPEN__V1__VALUE__KIND_INT_VALUE;
	val.int_value = v;
	hr.call_id = id;
	hr.answer_case = MOONPEN__V1__HOST_RESULT__ANSWER_VALUE;
	hr.value = &val;
	m.op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_HOST_RESULT;
	m.host_result = &hr;
	return rpc(l, slot, &m, want, msg);
}

static void fw_free(from_worker *fw)
{
	protobuf_c_message_free_unpacked(&fw->base, NULL);
}

/* Renders a tick's effects and hash. */
static void fw_log(const from_worker *fw, char *log, size_t len)
{
	size_t n = (size_t)snprintf(log, len, "t%llu ", (unsigned long long)fw->result->tick);

	for (size_t i = 0; i < 32; i++)
		n += (size_t)snprintf(log + n, len - n, "%02x", fw->result->state_hash.data[i]);
	for (size_t i = 0; i < fw->result->n_effects && n < len; i++) {
		tv_fmt_effect(fw->result->effects[i], log + n, len - n);
		n = strlen(log);
	}
}

Test(worker, pool_slots_snapshot_and_queries)
{
	struct live l;
	from_worker *fw, *a, *b;
	char la[4096], lb[4096];
	uint8_t *snap;
	size_t len;

	live_start(&l);
	fw_free(rpc_init(&l, 0, NULL, 0, OK, NULL));
	fw_free(rpc_tick(&l, 5, 1, MOONPEN__V1__STATUS__CODE__NOT_FOUND, "no instance in slot 5"));
	fw_free(rpc_init(&l, 0, NULL, 0, MOONPEN__V1__STATUS__CODE__ALREADY_EXISTS,
			 "slot 0 already holds an instance"));
	fw_free(rpc_tick(&l, 5000, 1, INVALID_ARGUMENT, "slot 5000 is out of range (0..1023)"));
	fw_free(rpc_tick(&l, 0, 3, OK, NULL));
	/* TakeSnapshot, restored into slot 7 of the same worker */
	fw = rpc_op(&l, 0, MOONPEN__WORKER__V1__TO_WORKER__OP_SNAPSHOT, OK, NULL);
	cr_assert_gt(fw->snapshot.len, 0);
	len = fw->snapshot.len;
	snap = malloc(len);
	memcpy(snap, fw->snapshot.data, len);
	fw_free(fw);
	fw = rpc_init(&l, 7, snap, len, OK, NULL);
	cr_assert_eq(fw->result->tick, 3);
	cr_assert_eq(fw->result->n_effects, 0);
	fw_free(fw);
	free(snap);
	a = rpc_tick(&l, 0, 8, OK, NULL);
	b = rpc_tick(&l, 7, 8, OK, NULL);
	fw_log(a, la, sizeof la);
	fw_log(b, lb, sizeof lb);
	cr_assert_str_eq(lb, la);
	cr_assert_eq(a->result->n_effects, 5);
	fw_free(a);
	fw_free(b);
	/* a query over the channel, in slot 7: PENDING, snapshot refused, answer */
	fw = rpc_op(&l, 7, MOONPEN__WORKER__V1__TO_WORKER__OP_CALL,
		    MOONPEN__V1__STATUS__CODE__PENDING, "waiting for query 1 (game.ask)");
	cr_assert_not_null(fw->host_call);
	cr_assert_eq(fw->host_call->call_id, 1);
	cr_assert_str_eq(fw->host_call->args[0]->string_value, "hp");
	fw_free(fw);
	fw_free(rpc_op(&l, 7, MOONPEN__WORKER__V1__TO_WORKER__OP_SNAPSHOT, INVALID_ARGUMENT,
		       "input pending on query 1"));
	fw_free(rpc_tick(&l, 0, 1, OK, NULL)); /* the neighbour slot is not blocked */
	fw = rpc_answer(&l, 7, 1, 41, OK, NULL);
	cr_assert_eq(fw->result->n_returns, 1);
	cr_assert_eq(fw->result->returns[0]->int_value, 42);
	fw_free(fw);
	fw_free(rpc_op(&l, 7, MOONPEN__WORKER__V1__TO_WORKER__OP_CALL,
		       MOONPEN__V1__STATUS__CODE__PENDING, "waiting for query 2 (game.ask)"));
	fw_free(rpc_op(&l, 7, MOONPEN__WORKER__V1__TO_WORKER__OP_ABORT, OK, NULL));
	/* Close frees the slot; the worker goes on for slot 0 */
	fw_free(rpc_op(&l, 7, MOONPEN__WORKER__V1__TO_WORKER__OP_CLOSE, OK, NULL));
	fw_free(rpc_tick(&l, 7, 1, MOONPEN__V1__STATUS__CODE__NOT_FOUND, "no instance in slot 7"));
	fw_free(rpc_tick(&l, 0, 1, OK, NULL));
	fw_free(rpc_op(&l, 0, MOONPEN__WORKER__V1__TO_WORKER__OP_CLOSE, OK, NULL));
	wchan_free(l.w);
	cr_assert_eq(rmdir(l.dir), 0);
}

/* ---- debounce and manifest timers across a snapshot ---------------------------- */

static const char manifest_deb[] =
    "{\"id\":\"snap\",\"version\":\"1.2.0\",\"engine\":\"lua\",\"entry\":\"main.lua\","
    "\"apis\":[\"game\",\"state\"],\"triggers\":[{\"id\":\"hit-trig\",\"event\":\"Hit\","
    "\"action\":\"on_hit\",\"throttle_ms\":500},{\"id\":\"settle\",\"event\":\"Move:*\","
    "\"action\":\"game.fx(event .. ':' .. ctx.n .. '@' .. clock.tick())\","
    "\"debounce_ms\":120}],"
    "\"timers\":[{\"id\":\"pulse\",\"every_ms\":400,\"fn\":\"once\",\"args\":[{\"x\":7}]}]}";

static void move(eng *e, const char *name, int64_t n, eng_out *o)
{
	Moonpen__V1__SendEvent m = MOONPEN__V1__SEND_EVENT__INIT;
	val_t *p = val_new_table();

	cr_assert_eq(val_table_set(p, val_new_string("n", 1), val_new_int(n)), 0);
	m.name = (char *)name;
	m.payload = p;
	cr_assert_eq(eng_event(e, &m, o), 0);
	val_free(p);
}

/* Before the snapshot: a burst at tick 0, one more at tick 1 (settle due 4). */
static void deb_a(eng *e)
{
	eng_out o = {0};

	move(e, "Move:a", 1, &o);
	log_out(&o, (char[4096]){0}, 4096);
	move(e, "Move:b", 2, &o);
	log_out(&o, (char[4096]){0}, 4096);
	cr_assert_eq(eng_tick(e, 1, &o), 0);
	log_out(&o, (char[4096]){0}, 4096);
	move(e, "Move:c", 3, &o);
	log_out(&o, (char[4096]){0}, 4096);
}

/* After: the window ends at tick 4; a new one opens at 5 and ends at 8. */
static void deb_b(eng *e, char *log, size_t len)
{
	eng_out o = {0};

	cr_assert_eq(eng_tick(e, 4, &o), 0);
	log_out(&o, log, len);
	move(e, "Move:d", 4, &o);
	log_out(&o, log, len);
	cr_assert_eq(eng_tick(e, 5, &o), 0);
	log_out(&o, log, len);
}

Test(snapshot, pending_debounce_and_manifest_timers_survive_a_restore)
{
	eng *e1 = make("inst-1", manifest_deb, NULL, 0, OK, NULL, NULL);
	eng *e2 = make("inst-1", manifest_deb, NULL, 0, OK, NULL, NULL), *e3;
	char l1[8192] = "", l3[8192] = "";
	uint8_t *snap = NULL;
	size_t len = 0;
	eng_out o = {0};

	deb_a(e1);
	deb_b(e1, l1, sizeof(l1));
	deb_a(e2);
	cr_assert_eq(eng_snapshot(e2, &snap, &len), 0);
	e3 = make("inst-1", manifest_deb, snap, len, OK, NULL, &o);
	cr_assert_not_null(e3);
	cr_assert_eq(o.result->n_effects, 0, "nothing runs on a restore");
	out_free(&o);
	deb_b(e3, l3, sizeof(l3));
	cr_assert_str_eq(l3, l1);
	/* settle fires once per quiet period with the last payload; the manifest
	 * timer (400 ms = 8 ticks, id 1) is not started again by the restore */
	cr_assert_str_eq(l1, "[t5 h64]game.fx(\"b1:596\") @timer:beat;game.fx(\"b2:831\") "
			     "@timer:beat;game.fx(\"Move:c:3@4\") @settle;game.fx(\"once1@5\") "
			     "@timer:once;[t5 h64]"
			     "[t10 h3e]game.fx(\"b3:658\") @timer:beat;game.fx(\"once7@8\") "
			     "@timer:once;game.fx(\"b4:748\") @timer:beat;game.fx(\"Move:d:4@8\") "
			     "@settle;game.fx(\"b5:737\") @timer:beat;");
	free(snap);
	eng_free(e1);
	eng_free(e2);
	eng_free(e3);
}

static void pending_on_throttle(Moonpen__Worker__V1__Snapshot *s)
{
	s->throttles[0]->pending_due = s->tick + 1;
	s->throttles[0]->pending_event = strdup("Hit");
}

static void pending_in_the_past(Moonpen__Worker__V1__Snapshot *s)
{
	s->throttles[0]->pending_due = s->tick;
	s->throttles[0]->pending_event = strdup("Hit");
}

Test(snapshot, bad_pending_debounce_is_refused)
{
	refused(pending_on_throttle, "snapshot holds a debounced firing of trigger 'hit-trig', "
				     "which the manifest does not debounce");
	refused(pending_in_the_past, "snapshot: trigger 'hit-trig': bad pending debounce");
}
