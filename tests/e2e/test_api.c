/*
 * End-to-end: a real moonpend in a temporary folder, driven through
 * libmoonpen and raw NNG sockets. The example packs' exact effect sequences,
 * and every bad input answered with its status while the supervisor serves on.
 */
#include <criterion/criterion.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <string.h>
#include <unistd.h>

#include "client/moonpen.h"
#include "common/val_json.h"
#include "tests/support/daemon.h"
#include "tests/support/resp.h"

static td D;
static mp_client *C;

static void up_examples(void)
{
	cr_assert_eq(td_start(&D, "examples/packs", NULL), 0);
	cr_assert_eq(mp_connect(D.url, &C), 0);
}
static void up_testpacks(void)
{
	cr_assert_eq(td_start(&D, "tests/e2e/packs", NULL), 0);
	cr_assert_eq(mp_connect(D.url, &C), 0);
}
static void down(void)
{
	mp_disconnect(C);
	cr_assert_eq(td_stop(&D, 0), 0, "moonpend did not stop cleanly (log %s)", D.log);
}

static mp_response *create(const char *id, const char *pack, uint64_t seed)
{
	mp_create_opts o = {.instance_id = id, .pack_id = pack, .seed = seed, .tick_ms = 50};
	mp_response *r = NULL;

	cr_assert_eq(mp_create(C, &o, &r), 0);
	return r;
}

static mp_response *event(const char *id, const char *name, const char *json)
{
	val_t *v = NULL;
	char err[256];
	mp_response *r = NULL;

	if (json)
		cr_assert_eq(vjson_parse(json, 32, &v, err, sizeof err), 0, "%s", err);
	cr_assert_eq(mp_event(C, id, name, v, &r), 0);
	val_free(v);
	return r;
}

static mp_response *tick(const char *id, uint32_t n)
{
	mp_response *r = NULL;

	cr_assert_eq(mp_tick(C, id, n, &r), 0);
	return r;
}

#define GOBLINS(w)                                                                                 \
	"ui.broadcast[\"Wave " #w " incoming\"]\n"                                                 \
	"ecs.spawn[\"goblin\",{\"pos\":{\"x\":5,\"y\":0,\"z\":10}}]\n"                             \
	"ecs.spawn[\"goblin\",{\"pos\":{\"x\":10,\"y\":0,\"z\":10}}]\n"                            \
	"ecs.spawn[\"goblin\",{\"pos\":{\"x\":15,\"y\":0,\"z\":10}}]\n"                            \
	"ecs.spawn[\"goblin\",{\"pos\":{\"x\":20,\"y\":0,\"z\":10}}]\n"                            \
	"ecs.spawn[\"goblin\",{\"pos\":{\"x\":25,\"y\":0,\"z\":10}}]\n"

Test(examples, key_collection, .init = up_examples, .fini = down)
{
	TR_EXPECT(create("keys-1", "key-collection", 42), "ok", "");
	TR_EXPECT(event("keys-1", "OnPickup:key", "{\"player\":\"p1\"}"), "ok",
		  "ui.broadcast[\"Keys: 1/3\"]\n");
	TR_EXPECT(event("keys-1", "OnPickup:key", "{\"player\":\"p1\"}"), "ok",
		  "ui.broadcast[\"Keys: 2/3\"]\n");
	TR_EXPECT(event("keys-1", "OnPickup:key", "{\"player\":\"p2\"}"), "ok",
		  "ui.broadcast[\"Keys: 3/3\"]\n"
		  "ecs.spawn[\"boss_ogre\",{\"pos\":{\"x\":12,\"z\":8}}]\n"
		  "music.play[\"boss_theme\"]\n");
	TR_EXPECT(event("keys-1", "OnPickup:coin", "{}"), "ok", "");
}

Test(examples, dungeon_forest, .init = up_examples, .fini = down)
{
	TR_EXPECT(create("forest-1", "dungeon-forest", 42), "ok", "");
	TR_EXPECT(event("forest-1", "OnLeverSwitch", "{\"player\":\"p1\"}"), "ok",
		  "ui.tip[\"p1\",\"Defeat more waves to open the gate.\"]\n");
	TR_EXPECT(tick("forest-1", 99), "ok", "");
	TR_EXPECT(tick("forest-1", 1), "ok", GOBLINS(1));
	TR_EXPECT(tick("forest-1", 100), "ok", GOBLINS(2));
	TR_EXPECT(event("forest-1", "OnLeverSwitch", "{\"player\":\"p1\"}"), "ok",
		  "ecs.openGate[\"east\"]\n");
	TR_EXPECT(tick("forest-1", 100), "ok",
		  GOBLINS(3) "ecs.spawn[\"ogre\",{\"pos\":{\"x\":20,\"z\":20}}]\n");
}

Test(examples, same_seed_same_hash, .init = up_examples, .fini = down)
{
	char h1[80];
	mp_response *r;

	TR_EXPECT(create("a", "dungeon-forest", 7), "ok", "");
	TR_EXPECT(create("b", "dungeon-forest", 7), "ok", "");
	r = tick("a", 250);
	snprintf(h1, sizeof h1, "%s", tr_hash(r));
	mp_response_free(r);
	r = tick("b", 250);
	cr_expect_eq(strlen(h1), 64);
	cr_expect_str_eq(tr_hash(r), h1);
	mp_response_free(r);
}

Test(errors, unknown_instance_and_pack, .init = up_examples, .fini = down)
{
	mp_response *r = event("nobody", "OnPickup:key", NULL);
	cr_expect_str_eq(tr_code(r), "not_found");
	cr_expect(strstr(tr_msg(r), "nobody") != NULL, "%s", tr_msg(r));
	mp_response_free(r);
	r = create("x", "no-such-pack", 1);
	cr_expect_str_eq(tr_code(r), "not_found");
	cr_expect(strstr(tr_msg(r), "no-such-pack") != NULL, "%s", tr_msg(r));
	mp_response_free(r);
	TR_EXPECT(create("x", "key-collection", 1), "ok", "");
	TR_EXPECT(create("x", "key-collection", 1), "already_exists", "");
}

Test(errors, invalid_fields, .init = up_examples, .fini = down)
{
	char deep[200] = "";
	int i;

	TR_EXPECT(create("bad id!", "key-collection", 1), "invalid_argument", "");
	TR_EXPECT(create("ok-id", "key-collection", 1), "ok", "");
	TR_EXPECT(event("ok-id", "", NULL), "invalid_argument", "");
	for (i = 0; i < 40; i++)
		strcat(deep, "[");
	for (i = 0; i < 40; i++)
		strcat(deep, "]");
	{
		val_t *v = NULL;
		char err[128];
		mp_response *r = NULL;
		/* build past the API depth limit: the client accepts up to 64 */
		cr_assert_eq(vjson_parse(deep, 64, &v, err, sizeof err), 0, "%s", err);
		cr_assert_eq(mp_event(C, "ok-id", "OnPickup:key", v, &r), 0);
		cr_expect_str_eq(tr_code(r), "invalid_argument");
		cr_expect(strstr(tr_msg(r), "payload") != NULL, "%s", tr_msg(r));
		mp_response_free(r);
		val_free(v);
	}
	TR_EXPECT(tick("ok-id", 200000), "invalid_argument", "");
	/* still serving, and the bad inputs changed nothing */
	TR_EXPECT(event("ok-id", "OnPickup:key", "{}"), "ok", "ui.broadcast[\"Keys: 1/3\"]\n");
}

static mp_response *raw_request(const void *buf, size_t len)
{
	nng_socket s;
	nng_msg *msg;
	mp_response *r;

	cr_assert_eq(nng_req0_open(&s), 0);
	cr_assert_eq(nng_setopt_ms(s, NNG_OPT_RECVTIMEO, 10000), 0);
	cr_assert_eq(nng_dial(s, D.url, NULL, 0), 0);
	cr_assert_eq(nng_send(s, (void *)buf, len, 0), 0);
	cr_assert_eq(nng_recvmsg(s, &msg, 0), 0);
	r = moonpen__v1__response__unpack(NULL, nng_msg_len(msg), nng_msg_body(msg));
	cr_assert_not_null(r, "the answer must be a Response");
	nng_msg_free(msg);
	nng_close(s);
	return r;
}

Test(errors, malformed_and_oversized, .init = up_examples, .fini = down)
{
	static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x99, 0x01};
	Moonpen__V1__Request q = MOONPEN__V1__REQUEST__INIT;
	Moonpen__V1__SendEvent ev = MOONPEN__V1__SEND_EVENT__INIT;
	Moonpen__V1__Value v = MOONPEN__V1__VALUE__INIT;
	size_t big = 2u << 20, len;
	uint8_t *buf;
	mp_response *r;

	r = raw_request(garbage, sizeof garbage);
	cr_expect_str_eq(tr_code(r), "invalid_argument");
	cr_expect(strstr(tr_msg(r), "malformed") != NULL, "%s", tr_msg(r));
	mp_response_free(r);

	r = raw_request("", 0); /* decodes as a Request with no operation */
	cr_expect_str_eq(tr_code(r), "invalid_argument");
	mp_response_free(r);

	v.kind_case = MOONPEN__V1__VALUE__KIND_BYTES_VALUE;
	v.bytes_value.len = big;
	v.bytes_value.data = calloc(1, big);
	ev.instance_id = "x";
	ev.name = "OnPickup:key";
	ev.payload = &v;
	q.id = 77;
	q.op_case = MOONPEN__V1__REQUEST__OP_EVENT;
	q.event = &ev;
	len = moonpen__v1__request__get_packed_size(&q);
	buf = malloc(len);
	moonpen__v1__request__pack(&q, buf);
	r = raw_request(buf, len);
	cr_expect_str_eq(tr_code(r), "invalid_argument");
	cr_expect(strstr(tr_msg(r), "exceeds") != NULL, "%s", tr_msg(r));
	mp_response_free(r);
	free(buf);
	free(v.bytes_value.data);

	TR_EXPECT(create("after", "key-collection", 1), "ok", "");
	TR_EXPECT(event("after", "OnPickup:key", "{}"), "ok", "ui.broadcast[\"Keys: 1/3\"]\n");
}

Test(errors, bad_packs, .init = up_testpacks, .fini = down)
{
	mp_response *r = create("s", "syntax-error", 1);

	cr_expect_str_eq(tr_code(r), "bad_pack");
	cr_expect(strstr(tr_msg(r), "main.lua") != NULL, "%s", tr_msg(r));
	mp_response_free(r);
	r = event("s", "x", NULL);
	cr_expect_str_eq(tr_code(r), "not_found");
	mp_response_free(r);

	TR_EXPECT(create("b", "bad-args", 1), "ok", "");
	r = event("b", "spawn_number", NULL);
	cr_expect_str_eq(tr_code(r), "invalid_argument", "%s", tr_msg(r));
	/* the kind of the typed error object, and its exact message, cross the worker */
	cr_expect_str_eq(tr_msg(r), "ecs.spawn: argument #1 'kind' expected string, got number");
	cr_expect_str_eq(tr_effects(r), "");
	mp_response_free(r);
	TR_EXPECT(event("b", "spawn_ok", NULL), "ok", "ecs.spawn[\"goblin\"]\n");
}

Test(lifecycle, info_list_close, .init = up_examples, .fini = down)
{
	mp_response *r;
	pid_t worker;

	TR_EXPECT(create("k1", "key-collection", 1), "ok", "");
	TR_EXPECT(create("k2", "key-collection", 2), "ok", "");
	cr_assert_eq(mp_info(C, "k1", &r), 0);
	cr_assert_str_eq(tr_code(r), "ok");
	cr_assert_not_null(r->info);
	cr_expect_str_eq(r->info->pack_id, "key-collection");
	cr_expect_str_eq(r->info->pack_version, "1.0.0");
	cr_expect_eq(r->info->seed, 1);
	cr_expect_eq(r->info->state, MOONPEN__V1__INSTANCE_INFO__STATE__RUNNING);
	worker = r->info->worker_pid;
	cr_expect(worker > 0 && td_alive(worker));
	{
		/* the layers in force: set up by the spawner, then by the worker itself */
		const char *want[] = {"fds_closed",   "setsid",	      "pdeathsig", "rlimits",
				      "no_new_privs", "caps_dropped", "seccomp"};
		/* under valgrind (td_slow) workers run without seccomp, reported missing */
		size_t nwant = sizeof want / sizeof want[0] - (td_slow() ? 1 : 0);
		for (size_t k = 0; k < nwant; k++) {
			int found = 0;
			for (size_t l = 0; l < r->info->n_layers; l++)
				found |= strcmp(r->info->layers[l], want[k]) == 0;
			cr_expect(found, "layer %s not reported", want[k]);
		}
	}
	mp_response_free(r);
	cr_assert_eq(mp_list(C, &r), 0);
	cr_expect_eq(r->n_instances, 2);
	mp_response_free(r);
	cr_assert_eq(mp_close(C, "k1", &r), 0);
	cr_expect_str_eq(tr_code(r), "ok");
	mp_response_free(r);
	cr_assert_eq(mp_info(C, "k1", &r), 0);
	cr_expect_str_eq(tr_code(r), "not_found");
	mp_response_free(r);
	for (int i = 0; i < 200 && td_alive(worker); i++)
		usleep(10000);
	cr_expect(!td_alive(worker), "closed instance's worker %d still runs", (int)worker);
}

Test(lifecycle, sigterm_leaves_nothing, .init = up_examples)
{
	mp_response *r;
	pid_t w1, w2;

	TR_EXPECT(create("k1", "key-collection", 1), "ok", "");
	TR_EXPECT(create("k2", "dungeon-forest", 1), "ok", "");
	cr_assert_eq(mp_info(C, "k1", &r), 0);
	w1 = r->info->worker_pid;
	mp_response_free(r);
	cr_assert_eq(mp_info(C, "k2", &r), 0);
	w2 = r->info->worker_pid;
	mp_response_free(r);
	mp_disconnect(C);
	cr_assert_eq(td_stop(&D, 0), 0, "exit status or leftover sockets (log %s)", D.log);
	cr_expect(!td_alive(w1) && !td_alive(w2), "workers outlived the supervisor");
}

/* --require-layers: a worker that lacks a required confinement layer is
 * refused, with the layer named; layers it has pass. */
static void up_require_missing(void)
{
	const char *extra[] = {"--require-layers", "no_new_privs,no_such_layer", NULL};

	cr_assert_eq(td_start(&D, "examples/packs", extra), 0);
	cr_assert_eq(mp_connect(D.url, &C), 0);
}

Test(lifecycle, required_layer_missing_refuses_worker, .init = up_require_missing, .fini = down)
{
	mp_response *r = create("k", "key-collection", 1);

	cr_expect_str_eq(tr_code(r), "unavailable");
	cr_expect(strstr(tr_msg(r), "required confinement layer 'no_such_layer' is not in force"),
		  "%s", tr_msg(r));
	mp_response_free(r);
}

static void up_require_present(void)
{
	const char *extra[] = {"--require-layers", "no_new_privs,caps_dropped,rlimits,fds_closed",
			       NULL};

	cr_assert_eq(td_start(&D, "examples/packs", extra), 0);
	cr_assert_eq(mp_connect(D.url, &C), 0);
}

Test(lifecycle, required_layers_present_pass, .init = up_require_present, .fini = down)
{
	TR_EXPECT(create("k", "key-collection", 1), "ok", "");
}
