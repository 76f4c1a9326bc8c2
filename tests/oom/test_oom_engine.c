/*
 * Out of memory in the worker engine and the Lua host functions (test
 * process; failing allocator). The instance is examples/packs/key-collection
 * with policy/host_api.json. Each allocation of eng_create, then of an
 * eng_event that runs state.incr, ui.broadcast and ev handlers, is failed in
 * turn (jansson's spared: akheron/jansson#362). Every failed run must end
 * with a clear status (MEMORY_LIMIT, INTERNAL, BAD_PACK for creation) or
 * -ENOMEM, never a crash; after a failed event the instance must still serve
 * the next event; nothing may leak once the engine is freed.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/pack.h"
#include "common/status.h"
#include "tests/oom/failmalloc.h"
#include "worker/engine.h"

struct eng_ctx {
	Moonpen__Worker__V1__Init init;
	Moonpen__V1__SendEvent ev;
	pack *p;
	eng *e;
	eng_out out;
	long before, live;
	int runs;
};

static void setup_pack(struct eng_ctx *c, const char *dir)
{
	static char schema[8192];
	char err[256];
	FILE *f = fopen("policy/host_api.json", "rb");
	size_t n;

	cr_assert_not_null(f, "run from the repository root");
	n = fread(schema, 1, sizeof schema, f);
	fclose(f);
	cr_assert_eq(pack_load_dir(dir, &c->p, err, sizeof err), 0, "%s", err);
	moonpen__worker__v1__init__init(&c->init);
	c->init.instance_id = "oom:1";
	c->init.manifest_json.data = (uint8_t *)c->p->manifest_json;
	c->init.manifest_json.len = c->p->manifest_len;
	c->init.files = c->p->files;
	c->init.n_files = c->p->n_files;
	c->init.host_api_json.data = (uint8_t *)schema;
	c->init.host_api_json.len = n;
	c->init.seed = 1;
	moonpen__v1__send_event__init(&c->ev);
	c->ev.instance_id = "oom:1";
	c->ev.name = "OnPickup:key";
	fm_spare("libjansson");
}

static void setup(struct eng_ctx *c)
{
	setup_pack(c, "examples/packs/key-collection");
}

static void out_free(eng_out *o)
{
	if (o->status)
		protobuf_c_message_free_unpacked(&o->status->base, NULL);
	if (o->result)
		protobuf_c_message_free_unpacked(&o->result->base, NULL);
	memset(o, 0, sizeof *o);
}

static st_code code_of(const eng_out *o)
{
	return o->status ? o->status->code : MOONPEN__V1__STATUS__CODE__OK;
}

static int create(void *arg)
{
	struct eng_ctx *c = arg;

	c->e = NULL;
	memset(&c->out, 0, sizeof c->out);
	c->before = fm_live();
	return eng_create(&c->init, &c->e, &c->out);
}

static void judge_create(void *arg, int r, int failed)
{
	struct eng_ctx *c = arg;
	st_code code = code_of(&c->out);

	c->runs++;
	if (!failed) {
		cr_assert_eq(r, 0);
		cr_assert_eq(code, MOONPEN__V1__STATUS__CODE__OK, "%s",
			     c->out.status ? c->out.status->message : "");
		cr_assert_not_null(c->e);
	} else if (r == 0) {
		cr_assert_not_null(c->out.status, "run %d: a status says why", c->runs);
		if (code != MOONPEN__V1__STATUS__CODE__OK) {
			cr_assert_null(c->e);
			cr_assert(code == MOONPEN__V1__STATUS__CODE__MEMORY_LIMIT ||
				      code == MOONPEN__V1__STATUS__CODE__INTERNAL,
				  "run %d: creation failed with %s: %s", c->runs, st_name(code),
				  c->out.status->message);
		}
	} else {
		cr_assert_eq(r, -ENOMEM, "run %d: %d", c->runs, r);
		cr_assert_null(c->e);
	}
	out_free(&c->out);
	eng_free(c->e);
	c->e = NULL;
	long live = fm_settle(c->before);

	cr_assert_eq(live, c->before, "run %d: %ld blocks leaked", c->runs, live - c->before);
}

Test(oom_engine, create_each_allocation_fails_once)
{
	struct eng_ctx c = {0};

	setup(&c);
	cr_assert_gt(fm_sweep(create, judge_create, &c, 200000, 0), 100);
	pack_free(c.p);
}

Test(oom_engine, create_out_of_memory_from_the_nth_allocation_on)
{
	struct eng_ctx c = {0};

	setup(&c);
	cr_assert_gt(fm_sweep(create, judge_create, &c, 200000, 1), 100);
	pack_free(c.p);
}

/* dungeon-forest: manifest triggers with conditions, a manifest timer */
Test(oom_engine, create_dungeon_forest_each_allocation_fails_once)
{
	struct eng_ctx c = {0};

	setup_pack(&c, "examples/packs/dungeon-forest");
	cr_assert_gt(fm_sweep(create, judge_create, &c, 200000, 0), 100);
	pack_free(c.p);
}

Test(oom_engine, create_dungeon_forest_out_of_memory_from_the_nth_allocation_on)
{
	struct eng_ctx c = {0};

	setup_pack(&c, "examples/packs/dungeon-forest");
	cr_assert_gt(fm_sweep(create, judge_create, &c, 200000, 1), 100);
	pack_free(c.p);
}

static int event(void *arg)
{
	struct eng_ctx *c = arg;

	memset(&c->out, 0, sizeof c->out);
	return eng_event(c->e, &c->ev, &c->out);
}

static void judge_event(void *arg, int r, int failed)
{
	struct eng_ctx *c = arg;
	st_code code = code_of(&c->out);
	eng_out again = {0};

	c->runs++;
	if (r == 0) {
		cr_assert_not_null(c->out.status, "run %d", c->runs);
		cr_assert(code == MOONPEN__V1__STATUS__CODE__OK ||
			      (failed && (code == MOONPEN__V1__STATUS__CODE__MEMORY_LIMIT ||
					  code == MOONPEN__V1__STATUS__CODE__INTERNAL)),
			  "run %d: event failed with %s: %s", c->runs, st_name(code),
			  c->out.status->message);
	} else {
		cr_assert(failed && r == -ENOMEM, "run %d: %d", c->runs, r);
	}
	out_free(&c->out);
	/* the instance survives: the next event is served */
	cr_assert_eq(eng_event(c->e, &c->ev, &again), 0);
	cr_assert_eq(code_of(&again), MOONPEN__V1__STATUS__CODE__OK, "run %d: after OOM: %s",
		     c->runs, again.status ? again.status->message : "");
	out_free(&again);
}

static void event_sweep(int sticky)
{
	struct eng_ctx c = {0};
	long before, live;

	setup(&c);
	before = fm_live();
	cr_assert_eq(create(&c), 0);
	cr_assert_not_null(c.e);
	out_free(&c.out);
	cr_assert_gt(fm_sweep(event, judge_event, &c, 200000, sticky), 5);
	eng_free(c.e);
	live = fm_settle(before);
	cr_assert_eq(live, before, "%ld blocks leaked", live - before);
	pack_free(c.p);
}

Test(oom_engine, event_each_allocation_fails_once)
{
	event_sweep(0);
}

Test(oom_engine, event_out_of_memory_from_the_nth_allocation_on)
{
	event_sweep(1);
}
