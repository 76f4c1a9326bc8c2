/*
 * fuzz_to_worker — libFuzzer harness for the worker's side of the worker
 * protocol (runs in the fuzzer only). Input: an encoded ToWorker, decoded with
 * wire_unpack and the worker's size cap, then served as worker/main.c serves
 * it:
 *   - Init: eng_create with it (the pack files, manifest and schema are
 *     fuzzed; limits are clamped to what the supervisor sends: heap at most
 *     64 MiB, deadline at most 100 ms), then one tick if it was created;
 *   - Event, Tick, Call: on a fresh instance of examples/packs/key-collection
 *     with policy/host_api.json (created from a cached Init for every input,
 *     so a crash reproduces from its input alone). Tick counts are clamped to
 *     MP_MAX_TICKS_PER_REQUEST, the supervisor's bound.
 * Every eng_* call must return 0 with a status, and a status OK must come
 * with a result. Run from the repository root (or set MOONPEN_ROOT).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/pack.h"
#include "common/wire.h"
#include "policy/limits.h"
#include "worker/engine.h"
#include "worker.pb-c.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static Moonpen__Worker__V1__Init base_init = MOONPEN__WORKER__V1__INIT__INIT;
static pack *base_pack;

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = malloc(1 << 20);

	if (f == NULL || buf == NULL)
		abort();
	*len = fread(buf, 1, 1 << 20, f);
	fclose(f);
	return buf;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *root = getenv("MOONPEN_ROOT");
	char path[4096], err[256];

	(void)argc;
	(void)argv;
	snprintf(path, sizeof path, "%s/examples/packs/key-collection", root ? root : ".");
	if (pack_load_dir(path, &base_pack, err, sizeof err) < 0) {
		fprintf(stderr, "fuzz_to_worker: %s: %s\n", path, err);
		abort();
	}
	snprintf(path, sizeof path, "%s/policy/host_api.json", root ? root : ".");
	base_init.host_api_json.data = slurp(path, &base_init.host_api_json.len);
	base_init.instance_id = "fuzz:1";
	base_init.pack_id = base_pack->mf->id;
	base_init.pack_version = base_pack->mf->version;
	base_init.manifest_json.data = (uint8_t *)base_pack->manifest_json;
	base_init.manifest_json.len = base_pack->manifest_len;
	base_init.files = base_pack->files;
	base_init.n_files = base_pack->n_files;
	base_init.seed = 42;
	base_init.tick_ms = 50;
	return 0;
}

static void out_check_free(int r, eng_out *o)
{
	if (r != 0 || o->status == NULL)
		abort();
	if (o->status->code == MOONPEN__V1__STATUS__CODE__OK && o->result == NULL)
		abort();
	protobuf_c_message_free_unpacked(&o->status->base, NULL);
	if (o->result)
		protobuf_c_message_free_unpacked(&o->result->base, NULL);
	memset(o, 0, sizeof *o);
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

static void serve(eng *e, const Moonpen__Worker__V1__ToWorker *tw)
{
	eng_out o = {0};
	uint32_t n;

	switch (tw->op_case) {
	case MOONPEN__WORKER__V1__TO_WORKER__OP_EVENT:
		out_check_free(eng_event(e, tw->event, &o), &o);
		break;
	case MOONPEN__WORKER__V1__TO_WORKER__OP_TICK:
		n = tw->tick->count > MP_MAX_TICKS_PER_REQUEST ? MP_MAX_TICKS_PER_REQUEST
							       : tw->tick->count;
		out_check_free(eng_tick(e, n, &o), &o);
		break;
	case MOONPEN__WORKER__V1__TO_WORKER__OP_CALL:
		out_check_free(eng_call(e, tw->call, &o), &o);
		break;
	case MOONPEN__WORKER__V1__TO_WORKER__OP_CLOSE:
		out_check_free(eng_close(e, &o), &o);
		break;
	default:
		break;
	}
}

static eng *create(const Moonpen__Worker__V1__Init *init)
{
	eng_out o = {0};
	eng *e = NULL;
	int r = eng_create(init, &e, &o);

	if (r != 0 || o.status == NULL)
		abort();
	if ((e == NULL) != (o.status->code != MOONPEN__V1__STATUS__CODE__OK))
		abort();
	out_check_free(0, &o);
	return e;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ProtobufCMessage *m = NULL;
	Moonpen__Worker__V1__ToWorker *tw;
	Moonpen__V1__Tick one = MOONPEN__V1__TICK__INIT;
	Moonpen__Worker__V1__ToWorker tick = MOONPEN__WORKER__V1__TO_WORKER__INIT;
	eng *e;

	if (wire_unpack(&moonpen__worker__v1__to_worker__descriptor, data, size,
			MP_WORKER_MSG_MAX_BYTES, &m) < 0)
		return 0;
	tw = (Moonpen__Worker__V1__ToWorker *)m;
	if (tw->op_case == MOONPEN__WORKER__V1__TO_WORKER__OP_INIT) {
		clamp_limits(tw->init);
		e = create(tw->init);
		tick.op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_TICK;
		tick.tick = &one;
		if (e)
			serve(e, &tick);
	} else {
		e = create(&base_init);
		if (e == NULL)
			abort(); /* the example pack must always start */
		serve(e, tw);
	}
	eng_free(e);
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}
