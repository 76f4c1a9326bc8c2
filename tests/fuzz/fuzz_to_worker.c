/*
 * fuzz_to_worker — libFuzzer harness for the worker's side of the worker
 * protocol (runs in the fuzzer only). Input: a short conversation of the
 * supervisor with one worker process, up to FUZZ_MAX_MSGS records of
 * [2-byte big-endian length][encoded ToWorker]; a trailing partial record is
 * ignored. Each message is decoded with wire_unpack and the worker's size
 * cap, then routed by ToWorker.slot as worker/main.c routes it (its dispatch
 * is static there: the engine is driven directly here), over FUZZ_SLOTS
 * slots: slots 0 and 2 start every input holding a fresh instance of the
 * query pack defined below (created when a message first reaches the slot:
 * undecodable inputs cost no Lua state), slots 1 and 3 start free; a slot past
 * FUZZ_SLOTS is skipped (main.c answers it without touching an engine).
 *   - Init: only on a free slot; eng_create with it (the pack files,
 *     manifest and schema are fuzzed; limits clamped to what the supervisor
 *     sends: heap at most 64 MiB, deadline at most 100 ms);
 *   - Event, Tick, Call, HostResult, Abort, Snapshot, Close: only on an
 *     occupied slot; eng_event / eng_tick (count clamped to
 *     MP_MAX_TICKS_PER_REQUEST) / eng_call / eng_host_result / eng_abort /
 *     eng_snapshot / eng_close (the slot ends after a Close, as in main.c).
 * The pack's handlers, timer, trigger and global functions call host queries
 * (bank.balance, bank.ask), so fuzzed inputs go PENDING and the fuzzed
 * HostResult and Abort messages that follow reach a pending input.
 * Asserts, per answer:
 *   - every eng_* call returns 0 with a status; OK comes with a result;
 *   - PENDING exactly when a HostCall comes back (and no result); its call id
 *     is eng_pending(), and it passes the supervisor's check
 *     (sup_query_check_call: an honest worker never trips it);
 *   - an input left pending stays pending only with the same call id and an
 *     INVALID_ARGUMENT answer (wrong call id, bad value, input refused);
 *   - eng_snapshot is -EBUSY exactly while an input is pending;
 *   - an OK Abort restores the tick and state hash of before the input.
 * Every input starts from fresh instances, so a crash reproduces from its
 * input alone.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"
#include "common/wire.h"
#include "policy/limits.h"
#include "supervisor/query.h"
#include "worker/engine.h"
#include "worker.pb-c.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_SLOTS 4
#define FUZZ_MAX_MSGS 8
#define OK MOONPEN__V1__STATUS__CODE__OK
#define PENDING MOONPEN__V1__STATUS__CODE__PENDING
#define INVALID MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT

static const char schema[] =
    "{\"version\":1,\"apis\":{"
    "\"game\":{\"class\":\"deterministic\",\"functions\":{"
    "\"fx\":{\"kind\":\"effect\",\"params\":[{\"name\":\"v\",\"type\":\"any\"}],"
    "\"variadic\":\"any\"}}},"
    "\"bank\":{\"class\":\"deterministic\",\"functions\":{"
    "\"balance\":{\"kind\":\"query\",\"params\":[{\"name\":\"who\",\"type\":\"string\"}],"
    "\"returns\":\"integer\"},"
    "\"ask\":{\"kind\":\"query\",\"params\":[],\"variadic\":\"any\"}}}}}";

static const char manifest[] =
    "{\"id\":\"fuzz-query\",\"version\":\"1.0.0\",\"engine\":\"lua\",\"entry\":\"main.lua\","
    "\"apis\":[\"game\",\"bank\",\"state\"],\"triggers\":["
    "{\"id\":\"ask-trig\",\"event\":\"Ask\",\"action\":\"on_ask\"}]}";

/* Every way into a query: handlers (one, several, in a loop), a timer, a
 * trigger, a called function, and the refused places (pcall is allowed in
 * 5.4; a sort comparator and a coroutine are not). */
static const char lua[] =
    "function on_init(ctx) state.set('gold', 0); timer.every(100, 'beat') end\n"
    "function beat() state.incr('beats')\n"
    "  if state.get('beats') % 3 == 1 then state.set('t', bank.balance('timer')) end end\n"
    "ev.on('loot', function(p)\n"
    "  local who = type(p) == 'table' and p.player or p\n"
    "  local v, err = bank.balance(tostring(who))\n"
    "  if v == nil then game.fx('no loot: ' .. tostring(err)); return end\n"
    "  state.set('gold', (state.get('gold') or 0) + (math.tointeger(v) or 1)); game.fx(v)\n"
    "end)\n"
    "ev.on('ask', function(p)\n"
    "  local a, b = bank.ask(p); state.set('last', a); game.fx(a, b)\n"
    "  return bank.ask(a, b)\n"
    "end)\n"
    "ev.on('many', function(p)\n"
    "  local n = 0\n"
    "  for i = 1, (math.tointeger(p) or 3) % 5 do\n"
    "    n = n + (math.tointeger(bank.balance('p' .. i)) or 0) end\n"
    "  state.set('gold', n); game.fx(n)\n"
    "end)\n"
    "ev.on('pcall', function(p) local ok, v = pcall(bank.balance, 'x'); game.fx(ok, v);"
    " error(v) end)\n"
    "ev.on('sort', function(p) table.sort({3, 1, 2}, function(a, b) bank.balance('s');"
    " return a < b end) end)\n"
    "ev.on('co', function(p) coroutine.wrap(function() bank.balance('c') end)() end)\n"
    "function ask(...) local v = bank.ask(...); state.set('call', v);"
    " return v, bank.balance('again') end\n"
    "function on_ask(p) game.fx('trig', bank.ask(p)) end\n"
    "function on_close(ctx) state.set('closed', true) end\n";

static Moonpen__Worker__V1__Init base_init = MOONPEN__WORKER__V1__INIT__INIT;
static Moonpen__Worker__V1__Limits limits = MOONPEN__WORKER__V1__LIMITS__INIT;
static Moonpen__Worker__V1__PackFile file = MOONPEN__WORKER__V1__PACK_FILE__INIT;
static Moonpen__Worker__V1__PackFile *files[1] = {&file};
static int verbose; /* FUZZ_VERBOSE=1: print every answer (replaying one input) */

/* One slot: its engine, and the tick and state hash from before its pending
 * input (what an Abort must restore). */
typedef struct slot {
	eng *e;
	int base; /* holds the query pack, created when a message first reaches it */
	uint64_t tick0;
	uint8_t hash0[32];
} slot;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	verbose = getenv("FUZZ_VERBOSE") != NULL;
	limits.mem_bytes = 16u << 20;
	limits.deadline_ms = 100;
	limits.instructions = 2000000;
	file.path = "main.lua";
	file.data.data = (uint8_t *)lua;
	file.data.len = strlen(lua);
	base_init.instance_id = "fuzz:1";
	base_init.pack_id = "fuzz-query";
	base_init.pack_version = "1.0.0";
	base_init.manifest_json.data = (uint8_t *)manifest;
	base_init.manifest_json.len = strlen(manifest);
	base_init.files = files;
	base_init.n_files = 1;
	base_init.host_api_json.data = (uint8_t *)schema;
	base_init.host_api_json.len = strlen(schema);
	base_init.seed = 42;
	base_init.tick_ms = 50;
	base_init.limits = &limits;
	return 0;
}

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

/* The shape of any answer, and what a PENDING one promises the supervisor. */
static void check_out(int r, const eng_out *o, const eng *e)
{
	char err[256];

	if (r != 0 || o->status == NULL)
		abort();
	if (verbose)
		fprintf(stderr, "  %s %s (pending %llu)\n", st_name(o->status->code),
			o->status->message ? o->status->message : "",
			e ? (unsigned long long)eng_pending(e) : 0ULL);
	if (o->status->code == OK && o->result == NULL)
		abort();
	if ((o->status->code == PENDING) != (o->host_call != NULL))
		abort();
	if (o->host_call == NULL)
		return;
	if (o->result != NULL || e == NULL || o->host_call->call_id != eng_pending(e))
		abort();
	if (sup_query_check_call(o->host_call, err, sizeof err) < 0) {
		fprintf(stderr, "fuzz_to_worker: the supervisor refuses the query: %s\n", err);
		abort();
	}
}

/* An input (event, tick, call, host result) was answered with o: the pending
 * state must agree with the answer. */
static void check_pending(const eng_out *o, const eng *e, uint64_t before)
{
	uint64_t now = eng_pending(e);

	if (o->status->code == PENDING || now == 0)
		return;
	if (now != before || o->status->code != INVALID)
		abort();
}

static void check_abort(const eng_out *o, slot *s, uint64_t before)
{
	uint8_t h[32];

	if (before == 0) {
		if (o->status->code != INVALID)
			abort();
		return;
	}
	if (o->status->code != OK || eng_pending(s->e) != 0)
		abort();
	eng_state_hash(s->e, h);
	if (eng_tick_now(s->e) != s->tick0 || memcmp(h, s->hash0, 32) != 0)
		abort();
	if (o->result->tick != s->tick0 || o->result->state_hash.len != 32 ||
	    memcmp(o->result->state_hash.data, s->hash0, 32) != 0)
		abort();
}

static void snapshot(eng *e)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int r = eng_snapshot(e, &buf, &len);

	if ((r == -EBUSY) != (eng_pending(e) != 0))
		abort();
	if (r == 0 && (buf == NULL || len == 0))
		abort();
	free(buf);
}

/* Event, tick, call, host result, abort on an occupied slot. */
static void run_input(slot *s, const Moonpen__Worker__V1__ToWorker *tw)
{
	uint64_t before = eng_pending(s->e);
	eng_out o = {0};
	uint32_t n;
	int r;

	if (before == 0) {
		s->tick0 = eng_tick_now(s->e);
		eng_state_hash(s->e, s->hash0);
	}
	switch (tw->op_case) {
	case MOONPEN__WORKER__V1__TO_WORKER__OP_EVENT:
		r = eng_event(s->e, tw->event, &o);
		break;
	case MOONPEN__WORKER__V1__TO_WORKER__OP_TICK:
		n = tw->tick->count > MP_MAX_TICKS_PER_REQUEST ? MP_MAX_TICKS_PER_REQUEST
							       : tw->tick->count;
		r = eng_tick(s->e, n, &o);
		break;
	case MOONPEN__WORKER__V1__TO_WORKER__OP_CALL:
		r = eng_call(s->e, tw->call, &o);
		break;
	case MOONPEN__WORKER__V1__TO_WORKER__OP_HOST_RESULT:
		r = eng_host_result(s->e, tw->host_result, &o);
		break;
	default: /* abort */
		r = eng_abort(s->e, &o);
		check_out(r, &o, s->e);
		check_abort(&o, s, before);
		out_free(&o);
		return;
	}
	check_out(r, &o, s->e);
	check_pending(&o, s->e, before);
	out_free(&o);
}

static void clamp_limits(Moonpen__Worker__V1__Init *init)
{
	Moonpen__Worker__V1__Limits *l = init->limits;

	if (l == NULL)
		return;
	if (l->mem_bytes == 0 || l->mem_bytes > (64u << 20))
		l->mem_bytes = 64u << 20;
	if (l->deadline_ms == 0 || l->deadline_ms > 100)
		l->deadline_ms = 100;
}

static eng *create(const Moonpen__Worker__V1__Init *init)
{
	eng_out o = {0};
	eng *e = NULL;
	int r = eng_create(init, &e, &o);

	if (r != 0 || o.status == NULL || o.host_call != NULL)
		abort();
	if ((e == NULL) != (o.status->code != OK))
		abort();
	check_out(0, &o, e);
	out_free(&o);
	return e;
}

static void close_slot(slot *s)
{
	eng_out o = {0};

	check_out(eng_close(s->e, &o), &o, s->e);
	if (o.status->code == PENDING || eng_pending(s->e) != 0)
		abort();
	out_free(&o);
	eng_free(s->e); /* main.c: the slot ends once the reply is sent */
	s->e = NULL;
}

/* One message, routed by slot as worker/main.c's handle() does. */
static void serve(slot *slots, Moonpen__Worker__V1__ToWorker *tw)
{
	slot *s;

	if (tw->slot >= FUZZ_SLOTS)
		return;
	s = &slots[tw->slot];
	if (s->base) {
		s->base = 0;
		if ((s->e = create(&base_init)) == NULL)
			abort(); /* the query pack must always start */
	}
	if (tw->op_case == MOONPEN__WORKER__V1__TO_WORKER__OP_INIT) {
		if (s->e == NULL) {
			clamp_limits(tw->init);
			s->e = create(tw->init);
		}
		return;
	}
	if (s->e == NULL)
		return; /* main.c: NOT_FOUND "no instance in slot N" */
	switch (tw->op_case) {
	case MOONPEN__WORKER__V1__TO_WORKER__OP_SNAPSHOT:
		snapshot(s->e);
		break;
	case MOONPEN__WORKER__V1__TO_WORKER__OP_CLOSE:
		close_slot(s);
		break;
	case MOONPEN__WORKER__V1__TO_WORKER__OP_EVENT:
	case MOONPEN__WORKER__V1__TO_WORKER__OP_TICK:
	case MOONPEN__WORKER__V1__TO_WORKER__OP_CALL:
	case MOONPEN__WORKER__V1__TO_WORKER__OP_HOST_RESULT:
	case MOONPEN__WORKER__V1__TO_WORKER__OP_ABORT:
		run_input(s, tw);
		break;
	default:
		break; /* main.c: a protocol violation, the worker exits */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	slot slots[FUZZ_SLOTS] = {{0}};
	size_t off = 0, len, i;
	int nmsg = 0;

	slots[0].base = slots[2].base = 1;
	while (nmsg++ < FUZZ_MAX_MSGS && size - off >= 2) {
		ProtobufCMessage *m = NULL;

		len = (size_t)data[off] << 8 | data[off + 1];
		off += 2;
		if (len > size - off)
			break;
		if (wire_unpack(&moonpen__worker__v1__to_worker__descriptor, data + off, len,
				MP_WORKER_MSG_MAX_BYTES, &m) == 0) {
			serve(slots, (Moonpen__Worker__V1__ToWorker *)m);
			protobuf_c_message_free_unpacked(m, NULL);
		}
		off += len;
	}
	for (i = 0; i < FUZZ_SLOTS; i++)
		eng_free(slots[i].e);
	return 0;
}
