/*
 * fuzz_snapshot — libFuzzer harness for the worker's restore path (runs in
 * the fuzzer only). Input: an encoded moonpen.worker.v1.Snapshot, as it comes
 * back from the supervisor's store or from an operator's RestoreInstance:
 * hostile. It becomes Init.snapshot of a valid Init for a small pack built
 * here (a throttled manifest trigger, timers, state, RNG draws, its own
 * schema), and eng_create restores from it (snap_decode, the identity checks,
 * mst_decode, the state hash, the timer and throttle import). The same bytes
 * go through the supervisor's header check first (ilog_snap_add, as for a
 * worker's TakeSnapshot reply). Asserts:
 *   - ilog_snap_add: 0, -EBADMSG with a message, or -ENOMEM; whatever the
 *     engine restores, the supervisor accepts too, with the same tick and
 *     state hash;
 *   - eng_create returns 0 with a status, and an instance exactly when the
 *     status is OK; a restored instance answers with its tick;
 *   - a snapshot of the restored instance restores again, and the snapshot
 *     of that one is the same bytes with the same state hash (a snapshot is
 *     canonical once it went through the engine);
 *   - the restored instance then takes an event (the trigger and handler) and
 *     20 ticks (the imported timers fire with their imported arguments),
 *     each answered with a status, and snapshots again.
 *
 * Seeds: run with FUZZ_SNAPSHOT_SEEDS=<dir> to write real snapshots of the
 * pack (fresh, after inputs, many timers, varied state) into <dir> and exit;
 * tests/fuzz/make-seeds.sh does it for tests/fuzz/corpus/snapshot.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/val.h"
#include "common/wire.h"
#include "policy/limits.h"
#include "supervisor/ilog.h"
#include "worker/engine.h"
#include "worker.pb-c.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OK MOONPEN__V1__STATUS__CODE__OK

static const char schema[] =
    "{\"version\":1,\"apis\":{\"game\":{\"class\":\"deterministic\",\"functions\":{"
    "\"fx\":{\"kind\":\"effect\",\"params\":[{\"name\":\"v\",\"type\":\"any\"}]}}}}}";

static const char manifest[] =
    "{\"id\":\"fuzz-snap\",\"version\":\"1.0.0\",\"engine\":\"lua\",\"entry\":\"main.lua\","
    "\"apis\":[\"game\",\"state\"],\"triggers\":["
    "{\"id\":\"hit-trig\",\"event\":\"Hit\",\"action\":\"on_hit\",\"throttle_ms\":500},"
    "{\"id\":\"big-hit\",\"event\":\"Hit\",\"condition\":\"(state.get('n') or 0) > 2\","
    "\"action\":\"game.fx('big')\"}]}";

static const char lua[] =
    "function on_init(ctx)\n"
    "  state.set('n', 0); game.fx('init')\n"
    "  timer.every(100, 'beat', 'b'); timer.after(250, once, {x = 1})\n"
    "end\n"
    "function beat(tag) state.incr('n'); game.fx(tag .. state.get('n') .. ':' .. "
    "rand.int(1, 1000)) end\n"
    "function once(t) game.fx('once' .. tostring(type(t) == 'table' and t.x) .. '@' .. "
    "clock.tick()) end\n"
    "function on_hit(p) game.fx('trig@' .. clock.tick()) end\n"
    "function big(n) state.set('big', string.rep('x', n)); state.set('t', {1, 2, {a = 'b'}, "
    "k = 1.5, [-3] = true, f = -0.25}) end\n"
    "function many(n) for i = 1, n do timer.after(i * 50, 'once', {x = i}, i, 'a' .. i) end end\n"
    "function bytes() state.set('raw', '\\0\\255\\1'); state.set('neg', -9007199254740993); "
    "state.set('nest', {{{{1}}}}) end\n"
    "function sum(...) local s = 0; for _, v in ipairs({...}) do s = s + (tonumber(v) or 0) "
    "end; game.fx(s); return s end\n"
    "ev.on('Hit', function(p) game.fx('hit' .. rand.int(1, 100)); state.incr('n') end)\n";

static Moonpen__Worker__V1__Init base = MOONPEN__WORKER__V1__INIT__INIT;
static Moonpen__Worker__V1__Limits limits = MOONPEN__WORKER__V1__LIMITS__INIT;
static Moonpen__Worker__V1__PackFile file = MOONPEN__WORKER__V1__PACK_FILE__INIT;
static Moonpen__Worker__V1__PackFile *files[1] = {&file};

static int strict; /* seed-dump mode: every input must succeed */

static void out_free(eng_out *o)
{
	if (o->status)
		protobuf_c_message_free_unpacked(&o->status->base, NULL);
	if (o->result)
		protobuf_c_message_free_unpacked(&o->result->base, NULL);
	if (o->host_call)
		protobuf_c_message_free_unpacked(&o->host_call->base, NULL);
	memset(o, 0, sizeof *o);
}

/* Every eng_* answer: 0 with a status; OK comes with a result. */
static void out_check_free(int r, eng_out *o)
{
	if (r != 0 || o->status == NULL)
		abort();
	if (o->status->code == OK && o->result == NULL)
		abort();
	if (strict && o->status->code != OK) {
		fprintf(stderr, "fuzz_snapshot: seed input failed: %s\n", o->status->message);
		exit(1);
	}
	out_free(o);
}

/* Creates (snap NULL) or restores; NULL when refused. */
static eng *create(const uint8_t *snap, size_t len)
{
	Moonpen__Worker__V1__Init init = base;
	eng_out o = {0};
	eng *e = NULL;

	init.snapshot.data = (uint8_t *)snap;
	init.snapshot.len = len;
	if (eng_create(&init, &e, &o) != 0 || o.status == NULL)
		abort();
	if ((e == NULL) != (o.status->code != OK))
		abort();
	if (e != NULL && (o.result == NULL || o.result->tick != eng_tick_now(e)))
		abort();
	out_free(&o);
	return e;
}

static void event(eng *e, const char *name, int64_t arg)
{
	Moonpen__V1__SendEvent m = MOONPEN__V1__SEND_EVENT__INIT;
	eng_out o = {0};
	val_t *p = val_new_int(arg);

	if (p == NULL)
		abort();
	m.instance_id = "fuzz:1";
	m.name = (char *)name;
	m.payload = p;
	out_check_free(eng_event(e, &m, &o), &o);
	val_free(p);
}

static void call(eng *e, const char *fn, int64_t arg)
{
	Moonpen__V1__Call m = MOONPEN__V1__CALL__INIT;
	val_t *a = val_new_int(arg), *args[1] = {a};
	eng_out o = {0};

	if (a == NULL)
		abort();
	m.instance_id = "fuzz:1";
	m.function = (char *)fn;
	m.args = args;
	m.n_args = 1;
	out_check_free(eng_call(e, &m, &o), &o);
	val_free(a);
}

static void tick(eng *e, uint32_t n)
{
	eng_out o = {0};

	out_check_free(eng_tick(e, n, &o), &o);
}

/* A snapshot; NULL when the engine may refuse one (too big, out of memory). */
static uint8_t *snapshot(eng *e, size_t *len)
{
	uint8_t *buf = NULL;
	int r = eng_snapshot(e, &buf, len);

	if (r == -EFBIG || r == -ENOMEM)
		return NULL;
	if (r != 0 || buf == NULL || *len == 0)
		abort();
	return buf;
}

static void dump_seeds(const char *dir);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = getenv("FUZZ_SNAPSHOT_SEEDS");

	(void)argc;
	(void)argv;
	limits.mem_bytes = 16u << 20;
	limits.deadline_ms = 100;
	limits.instructions = 2000000;
	base.instance_id = "fuzz:1";
	base.pack_id = "fuzz-snap";
	base.pack_version = "1.0.0";
	base.manifest_json.data = (uint8_t *)manifest;
	base.manifest_json.len = strlen(manifest);
	file.path = "main.lua";
	file.data.data = (uint8_t *)lua;
	file.data.len = strlen(lua);
	base.files = files;
	base.n_files = 1;
	base.host_api_json.data = (uint8_t *)schema;
	base.host_api_json.len = strlen(schema);
	base.seed = 4242;
	base.tick_ms = 50;
	base.limits = &limits;
	if (dir != NULL && *dir != '\0')
		dump_seeds(dir); /* exits */
	return 0;
}

/* Seed-dump mode: FUZZ_SNAPSHOT_SEEDS=<dir>. */
static void dump(eng *src, const char *dir, const char *name)
{
	char path[4096];
	size_t len = 0;
	uint8_t *buf = snapshot(src, &len);
	FILE *f;
	eng *e;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (buf == NULL || f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
		fprintf(stderr, "fuzz_snapshot: cannot write %s\n", path);
		exit(1);
	}
	e = create(buf, len); /* a seed must restore */
	if (e == NULL) {
		fprintf(stderr, "fuzz_snapshot: seed %s does not restore\n", name);
		exit(1);
	}
	eng_free(e);
	free(buf);
}

static void dump_seeds(const char *dir)
{
	eng *e = create(NULL, 0);

	strict = 1;
	if (e == NULL)
		abort();
	dump(e, dir, "fresh");
	call(e, "big", 64);
	event(e, "Hit", 1);
	tick(e, 3);
	dump(e, dir, "after-inputs");
	event(e, "Hit", 2);
	event(e, "Hit", 3);
	tick(e, 12);
	call(e, "bytes", 0);
	dump(e, dir, "varied-state");
	call(e, "many", 40);
	dump(e, dir, "many-timers");
	tick(e, 100);
	dump(e, dir, "later");
	eng_free(e);
	exit(0);
}

static void check_canonical(const uint8_t *s1, size_t len1, eng *e1)
{
	uint8_t h1[32], h2[32], *s2;
	size_t len2 = 0;
	eng *e2 = create(s1, len1);

	if (e2 == NULL) /* the engine's own snapshot must restore */
		abort();
	s2 = snapshot(e2, &len2);
	if (s2 != NULL && (len2 != len1 || memcmp(s1, s2, len1) != 0))
		abort();
	eng_state_hash(e1, h1);
	eng_state_hash(e2, h2);
	if (memcmp(h1, h2, 32) != 0 || eng_tick_now(e1) != eng_tick_now(e2) ||
	    eng_inputs(e1) != eng_inputs(e2))
		abort();
	free(s2);
	eng_free(e2);
}

/* The supervisor's view: 1 with the header's tick and hash when accepted. */
static int sup_header(const uint8_t *data, size_t size, uint64_t *tick, uint8_t hash[32])
{
	ilog l;
	char err[256];
	int r;

	memset(&l, 0, sizeof l);
	memset(err, 'x', sizeof err);
	r = ilog_snap_add(&l, data, size, "fuzz:1", 1, 2, err, sizeof err);
	if (r == 0) {
		const ilog_snap *sn = ilog_snap_newest(&l);
		if (sn == NULL || sn->len != size)
			abort();
		*tick = sn->tick;
		memcpy(hash, sn->hash, 32);
	} else if ((r != -EBADMSG && r != -ENOMEM) || memchr(err, '\0', sizeof err) == NULL) {
		abort();
	}
	ilog_free(&l);
	return r == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t sup_hash[32], hash[32];
	uint64_t sup_tick = 0;
	int sup_ok;
	uint8_t *s1;
	size_t len1 = 0;
	eng *e;

	if (size == 0) /* a fresh instance: not the restore path */
		return 0;
	sup_ok = sup_header(data, size, &sup_tick, sup_hash);
	e = create(data, size);
	if (e == NULL)
		return 0;
	eng_state_hash(e, hash);
	if (!sup_ok || sup_tick != eng_tick_now(e) || memcmp(sup_hash, hash, 32) != 0)
		abort();
	s1 = snapshot(e, &len1);
	if (s1 != NULL)
		check_canonical(s1, len1, e);
	free(s1);
	event(e, "Hit", 7);
	tick(e, 20);
	s1 = snapshot(e, &len1);
	free(s1);
	eng_free(e);
	return 0;
}
