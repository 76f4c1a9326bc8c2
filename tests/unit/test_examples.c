/*
 * test_examples — the two example packs, loaded from examples/packs/ on disk
 * with the shipped policy/host_api.json, produce their exact effect
 * sequences (seed 42, tick_ms 50), and key-collection's vault asks the query
 * inventory.count with exact arguments and acts on each kind of answer. Run
 * from the repository root.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common/manifest.h"
#include "common/schema.h"
#include "common/val.h"
#include "worker/engine.h"
#include "tests/support/files.h"
#include "tests/support/vfmt.h"

#define OK MOONPEN__V1__STATUS__CODE__OK

static void out_free(eng_out *o)
{
	if (o->status)
		protobuf_c_message_free_unpacked(&o->status->base, NULL);
	if (o->result)
		protobuf_c_message_free_unpacked(&o->result->base, NULL);
	if (o->host_call)
		protobuf_c_message_free_unpacked(&o->host_call->base, NULL);
	o->status = NULL;
	o->result = NULL;
	o->host_call = NULL;
}

/* Creates an instance of examples/packs/<pack> with seed 42, tick_ms 50. */
static eng *load_pack(const char *pack)
{
	Moonpen__Worker__V1__Init init = MOONPEN__WORKER__V1__INIT__INIT;
	Moonpen__Worker__V1__PackFile f = MOONPEN__WORKER__V1__PACK_FILE__INIT;
	Moonpen__Worker__V1__PackFile *files[1] = {&f};
	char path[256];
	size_t mlen, llen, slen;
	char *manifest, *lua, *schema = tf_slurp("policy/host_api.json", &slen);
	eng_out o = {0};
	eng *e = NULL;

	snprintf(path, sizeof(path), "examples/packs/%s/manifest.json", pack);
	manifest = tf_slurp(path, &mlen);
	snprintf(path, sizeof(path), "examples/packs/%s/main.lua", pack);
	lua = tf_slurp(path, &llen);
	init.instance_id = "example-1";
	init.pack_id = (char *)pack;
	init.pack_version = "1.0.0";
	init.manifest_json = (ProtobufCBinaryData){mlen, (uint8_t *)manifest};
	f.path = "main.lua";
	f.data = (ProtobufCBinaryData){llen, (uint8_t *)lua};
	init.n_files = 1;
	init.files = files;
	init.host_api_json = (ProtobufCBinaryData){slen, (uint8_t *)schema};
	init.seed = 42;
	init.tick_ms = 50;
	cr_assert_eq(eng_create(&init, &e, &o), 0);
	cr_assert_eq(o.status->code, OK, "%s: %s", pack, o.status->message);
	cr_assert_not_null(e);
	cr_assert_eq(o.result->n_effects, 0); /* on_init only sets state */
	out_free(&o);
	free(manifest);
	free(lua);
	free(schema);
	return e;
}

static void expect_effects(const eng_out *o, const char *const *want, size_t n)
{
	cr_assert_eq(o->status->code, OK, "%s", o->status->message);
	for (size_t i = 0; i < n && i < o->result->n_effects; i++) {
		char got[512];
		tv_fmt_effect(o->result->effects[i], got, sizeof(got));
		cr_expect_str_eq(got, want[i], "effect %zu: got %s", i, got);
	}
	cr_assert_eq(o->result->n_effects, n, "got %zu effects, want %zu", o->result->n_effects, n);
}

static void event(eng *e, const char *name, const char *key, val_t *v, eng_out *o)
{
	Moonpen__V1__SendEvent m = MOONPEN__V1__SEND_EVENT__INIT;
	val_t *payload = NULL;

	if (key != NULL) {
		payload = val_new_table();
		cr_assert_eq(val_table_set(payload, val_new_string(key, strlen(key)), v), 0);
	}
	m.name = (char *)name;
	m.payload = payload;
	cr_assert_eq(eng_event(e, &m, o), 0);
	val_free(payload);
}

static val_t *s(const char *x)
{
	return val_new_string(x, strlen(x));
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char *const tip[] = {
    "ui.tip(\"p1\",\"Defeat more waves to open the gate.\") @lever-too-early",
};

#define GOBLINS                                                                                    \
	"ecs.spawn(\"goblin\",{pos={x=5,y=0,z=10}}) @timer:spawn_wave",                            \
	    "ecs.spawn(\"goblin\",{pos={x=10,y=0,z=10}}) @timer:spawn_wave",                       \
	    "ecs.spawn(\"goblin\",{pos={x=15,y=0,z=10}}) @timer:spawn_wave",                       \
	    "ecs.spawn(\"goblin\",{pos={x=20,y=0,z=10}}) @timer:spawn_wave",                       \
	    "ecs.spawn(\"goblin\",{pos={x=25,y=0,z=10}}) @timer:spawn_wave"

static const char *const wave1[] = {
    "ui.broadcast(\"Wave 1 incoming\") @timer:spawn_wave",
    GOBLINS,
};

static const char *const waves23[] = {
    "ui.broadcast(\"Wave 2 incoming\") @timer:spawn_wave",     GOBLINS,
    "ui.broadcast(\"Wave 3 incoming\") @timer:spawn_wave",     GOBLINS,
    "ecs.spawn(\"ogre\",{pos={x=20,z=20}}) @timer:spawn_wave",
};

static const char *const waves123[] = {
    "ui.broadcast(\"Wave 1 incoming\") @timer:spawn_wave",     GOBLINS,
    "ui.broadcast(\"Wave 2 incoming\") @timer:spawn_wave",     GOBLINS,
    "ui.broadcast(\"Wave 3 incoming\") @timer:spawn_wave",     GOBLINS,
    "ecs.spawn(\"ogre\",{pos={x=20,z=20}}) @timer:spawn_wave",
};

static const char *const gate[] = {"ecs.openGate(\"east\") @lever-opens-gate"};
static const char *const greet[] = {
    "ui.broadcast(\"The ogre lord awaits 2 challengers\") @boss-room-greeting",
};

Test(examples, dungeon_forest)
{
	eng *e = load_pack("dungeon-forest"), *b = load_pack("dungeon-forest");
	eng_out o = {0};

	event(e, "OnLeverSwitch", "player", s("p1"), &o);
	expect_effects(&o, tip, N(tip));
	out_free(&o);
	cr_assert_eq(eng_tick(e, 99, &o), 0); /* the first wave is due at tick 100 (5000 ms) */
	expect_effects(&o, NULL, 0);
	out_free(&o);
	cr_assert_eq(eng_tick(e, 1, &o), 0);
	expect_effects(&o, wave1, N(wave1));
	cr_assert_eq(o.result->tick, 100);
	out_free(&o);
	event(e, "OnLeverSwitch", "player", s("p1"), &o); /* wave 1 < 2: still a tip */
	expect_effects(&o, tip, N(tip));
	out_free(&o);
	cr_assert_eq(eng_tick(e, 200, &o), 0);
	expect_effects(&o, waves23, N(waves23));
	cr_assert_eq(o.result->tick, 300);
	out_free(&o);
	event(e, "OnLeverSwitch", "player", s("p1"), &o);
	expect_effects(&o, gate, N(gate));
	out_free(&o);
	/* the manifest trigger: a full party, throttled to once per 10 s */
	event(e, "OnAreaEnter:boss_room", "players", val_new_int(1), &o);
	expect_effects(&o, NULL, 0);
	out_free(&o);
	event(e, "OnAreaEnter:boss_room", "players", val_new_int(2), &o);
	expect_effects(&o, greet, N(greet));
	out_free(&o);
	event(e, "OnAreaEnter:boss_room", "players", val_new_int(2), &o);
	expect_effects(&o, NULL, 0);
	out_free(&o);
	/* the same 300 ticks in one input give the same waves and the same state */
	cr_assert_eq(eng_tick(b, 300, &o), 0);
	expect_effects(&o, waves123, N(waves123));
	out_free(&o);
	{
		uint8_t ha[32], hb[32];
		eng_state_hash(e, ha);
		eng_state_hash(b, hb);
		cr_assert_eq(memcmp(ha, hb, 32), 0);
	}
	eng_free(e);
	eng_free(b);
}

/* The wave timer is a manifest timer (started before on_init), not timer.every. */
Test(examples, dungeon_forest_declares_its_wave_timer)
{
	size_t len;
	char *json = tf_slurp("examples/packs/dungeon-forest/manifest.json", &len), err[256];
	mf_manifest *m = NULL;

	cr_assert_eq(mf_parse(json, len, &m, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(m->n_timers, 1);
	cr_assert_str_eq(m->timers[0].id, "waves");
	cr_assert_str_eq(m->timers[0].fn, "spawn_wave");
	cr_assert_eq(m->timers[0].every, 1);
	cr_assert_eq(m->timers[0].ms, 5000);
	cr_assert_eq(m->timers[0].nargs, 0);
	mf_free(m);
	free(json);
}

static const char *const key1[] = {"ui.broadcast(\"Keys: 1/3\") @key-pickup"};
static const char *const key2[] = {"ui.broadcast(\"Keys: 2/3\") @key-pickup"};
static const char *const key3[] = {
    "ui.broadcast(\"Keys: 3/3\") @key-pickup",
    "ecs.spawn(\"boss_ogre\",{pos={x=12,z=8}}) @boss-arrives",
    "music.play(\"boss_theme\") @boss-arrives",
};

Test(examples, key_collection)
{
	eng *e = load_pack("key-collection"), *b = load_pack("key-collection");
	const char *const *want[] = {key1, key2, key3};
	size_t nwant[] = {1, 1, 3};
	eng_out o = {0}, ob = {0};

	event(e, "OnPickup:coin", "player", s("p1"), &o);
	expect_effects(&o, NULL, 0);
	out_free(&o);
	for (int i = 0; i < 3; i++) {
		event(e, "OnPickup:key", "player", s("p1"), &o);
		expect_effects(&o, want[i], nwant[i]);
		event(b, "OnPickup:key", "player", s("p1"), &ob);
		cr_assert_eq(memcmp(o.result->state_hash.data, ob.result->state_hash.data, 32), 0);
		out_free(&o);
		out_free(&ob);
	}
	eng_free(e);
	eng_free(b);
}

/* ---- key-collection's vault: the query inventory.count ------------------------------------ */

#define PENDING MOONPEN__V1__STATUS__CODE__PENDING

/* Sends OnAreaEnter:vault for player and expects PENDING on exactly
 * inventory.count(player, "key") with call id want_call, nothing else. */
static void vault_asks(eng *e, const char *player, uint64_t want_call)
{
	eng_out o = {0};
	char got[128], want[128];

	snprintf(want, sizeof(want), "\"%s\"", player);
	event(e, "OnAreaEnter:vault", "player", s(player), &o);
	cr_assert_eq(o.status->code, PENDING, "%d: %s", o.status->code, o.status->message);
	cr_assert_null(o.result, "no effect is visible before the input ends");
	cr_assert_not_null(o.host_call);
	cr_expect_eq(o.host_call->call_id, want_call);
	cr_expect_str_eq(o.host_call->api, "inventory");
	cr_expect_str_eq(o.host_call->fn, "count");
	cr_assert_eq(o.host_call->n_args, 2);
	tv_fmt_val(o.host_call->args[0], got, sizeof(got));
	cr_expect_str_eq(got, want);
	tv_fmt_val(o.host_call->args[1], got, sizeof(got));
	cr_expect_str_eq(got, "\"key\"");
	cr_expect_eq(eng_pending(e), want_call);
	out_free(&o);
}

/* Answers call with an integer (err NULL) or an error text. */
static void vault_answer(eng *e, uint64_t call, int64_t keys, const char *err, eng_out *o)
{
	Moonpen__V1__HostResult hr = MOONPEN__V1__HOST_RESULT__INIT;
	val_t *v = val_new_int(keys);

	cr_assert_not_null(v);
	hr.instance_id = "example-1";
	hr.call_id = call;
	if (err != NULL) {
		hr.answer_case = MOONPEN__V1__HOST_RESULT__ANSWER_ERROR;
		hr.error = (char *)err;
	} else {
		hr.answer_case = MOONPEN__V1__HOST_RESULT__ANSWER_VALUE;
		hr.value = v;
	}
	cr_assert_eq(eng_host_result(e, &hr, o), 0);
	val_free(v);
	cr_expect_eq(eng_pending(e), 0);
}

static const char *const vault_shut[] = {
    "ui.tip(\"p2\",\"The vault needs 3 keys: you hold 2.\") @ev:OnAreaEnter:vault",
};
static const char *const vault_opens[] = {
    "ecs.openGate(\"vault\") @ev:OnAreaEnter:vault",
    "ui.broadcast(\"p1 opens the vault\") @ev:OnAreaEnter:vault",
};
static const char *const vault_silent[] = {
    "ui.tip(\"p1\",\"The vault door does not answer.\") @ev:OnAreaEnter:vault",
};

Test(examples, key_collection_vault_asks_the_inventory)
{
	eng *e = load_pack("key-collection");
	eng_out o = {0};
	uint8_t before[32], after[32];

	event(e, "OnPickup:key", "player", s("p1"), &o);
	expect_effects(&o, key1, N(key1));
	out_free(&o);
	eng_state_hash(e, before);
	/* call ids count per instance from 1 */
	vault_asks(e, "p2", 1);
	vault_answer(e, 1, 2, NULL, &o);
	expect_effects(&o, vault_shut, N(vault_shut));
	cr_expect_eq(o.result->n_logs, 0);
	out_free(&o);
	vault_asks(e, "p1", 2);
	vault_answer(e, 2, 3, NULL, &o);
	expect_effects(&o, vault_opens, N(vault_opens));
	out_free(&o);
	/* the game server's error: a tip, and the reason in the log */
	vault_asks(e, "p1", 3);
	vault_answer(e, 3, 0, "inventory offline", &o);
	expect_effects(&o, vault_silent, N(vault_silent));
	cr_assert_eq(o.result->n_logs, 1);
	cr_expect_str_eq(o.result->logs[0]->level, "warn");
	cr_expect_str_eq(o.result->logs[0]->message, "inventory.count failed: inventory offline");
	out_free(&o);
	/* the vault reads the inventory; it never changes the instance's state */
	eng_state_hash(e, after);
	cr_expect_eq(memcmp(before, after, 32), 0);
	eng_free(e);
}

/* The shipped schema declares the query the example uses, exactly as
 * key-collection calls it: inventory.count(player: string, item: string) ->
 * integer, deterministic (usable by instance scripts), its arguments checked. */
Test(examples, shipped_schema_declares_inventory_count)
{
	size_t len;
	char *json = tf_slurp("policy/host_api.json", &len), err[256] = "";
	sch_schema *sc = NULL;
	const sch_api *a;
	const sch_fn *f;
	val_t *ok[2] = {s("p1"), s("key")}, *bad[2] = {s("p1"), val_new_int(7)};

	cr_assert_eq(sch_parse(json, len, &sc, err, sizeof(err)), 0, "%s", err);
	a = sch_api_find(sc, "inventory");
	cr_assert_not_null(a);
	cr_expect_eq(a->cls, SCH_DETERMINISTIC);
	cr_assert_eq(a->n_fns, 1);
	f = sch_fn_find(a, "count");
	cr_assert_not_null(f);
	cr_expect_eq(f->kind, SCH_QUERY);
	cr_assert_eq(f->n_params, 2);
	cr_expect_str_eq(f->params[0].name, "player");
	cr_expect_eq(f->params[0].type->kind, SCH_STRING);
	cr_expect_str_eq(f->params[1].name, "item");
	cr_expect_eq(f->params[1].type->kind, SCH_STRING);
	cr_expect_null(f->variadic);
	cr_assert_not_null(f->returns);
	cr_expect_eq(f->returns->kind, SCH_INTEGER);
	cr_expect_eq(sch_check_args(a, f, ok, 2, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(sch_check_args(a, f, bad, 2, err, sizeof(err)), -EINVAL);
	cr_expect_str_eq(err, "inventory.count: argument #2 'item' expected string, got number");
	for (size_t i = 0; i < 2; i++) {
		val_free(ok[i]);
		val_free(bad[i]);
	}
	sch_free(sc);
	free(json);
}
