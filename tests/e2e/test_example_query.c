/*
 * End-to-end: the shipped example's async query through a real moonpend with
 * the shipped policy (policy/host_api.json, policy/grants.json) and
 * examples/packs. key-collection's vault event is answered PENDING with the
 * exact HostCall inventory.count(player, "key"); each kind of answer (enough
 * keys, too few, an error) gives its exact effects; and the sample game server
 * (build/bin/game-server, the program `make demo` runs) answers the query
 * from its own inventory and prints the exact query, answer and effects.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "client/moonpen.h"
#include "common/val_json.h"
#include "policy/limits.h"
#include "tests/support/daemon.h"
#include "tests/support/resp.h"

static td D;
static mp_client *C;

static void up(void)
{
	cr_assert_eq(td_start(&D, "examples/packs", NULL), 0);
	cr_assert_eq(mp_connect(D.url, &C), 0);
}
static void down(void)
{
	mp_disconnect(C);
	cr_assert_eq(td_stop(&D, 0), 0, "moonpend did not stop cleanly (log %s)", D.log);
}

static mp_response *event(const char *id, const char *name, const char *json)
{
	val_t *v = NULL;
	char err[256];
	mp_response *r = NULL;

	cr_assert_eq(vjson_parse(json, 8, &v, err, sizeof err), 0, "%s", err);
	cr_assert_eq(mp_event(C, id, name, v, &r), 0);
	val_free(v);
	return r;
}

/* Sends OnAreaEnter:vault for player; expects PENDING on exactly
 * inventory.count(player, "key") with call id want_call. */
static void vault_asks(const char *id, const char *player, uint64_t want_call)
{
	char payload[64], msg[80];
	mp_response *r;
	char *args;
	json_t *j;

	snprintf(payload, sizeof payload, "{\"player\":\"%s\"}", player);
	r = event(id, "OnAreaEnter:vault", payload);
	cr_assert_str_eq(tr_code(r), "pending", "%s", tr_msg(r));
	snprintf(msg, sizeof msg, "waiting for query %" PRIu64 " (inventory.count)", want_call);
	cr_expect_str_eq(tr_msg(r), msg);
	cr_assert_not_null(r->host_call);
	cr_expect_eq(r->host_call->call_id, want_call);
	cr_expect_str_eq(r->host_call->api, "inventory");
	cr_expect_str_eq(r->host_call->fn, "count");
	cr_expect_eq(r->host_call->timeout_ms, MP_QUERY_TIMEOUT_MS);
	cr_expect_str_eq(tr_effects(r), "", "no effect is visible before the input ends");
	j = mp_response_to_json(r);
	cr_assert_not_null(j);
	args = json_dumps(json_object_get(json_object_get(j, "host_call"), "args"), JSON_COMPACT);
	cr_assert_not_null(args);
	snprintf(payload, sizeof payload, "[\"%s\",\"key\"]", player);
	cr_expect_str_eq(args, payload);
	free(args);
	json_decref(j);
	mp_response_free(r);
}

static mp_response *answer(const char *id, uint64_t call, int64_t keys, const char *error)
{
	mp_response *r = NULL;
	val_t *v = val_new_int(keys);

	cr_assert_not_null(v);
	cr_assert_eq(mp_host_result(C, id, call, error ? NULL : v, error, &r), 0);
	val_free(v);
	return r;
}

#define KEYS                                                                                       \
	"ui.broadcast[\"Keys: 3/3\"]\n"                                                            \
	"ecs.spawn[\"boss_ogre\",{\"pos\":{\"x\":12,\"z\":8}}]\n"                                  \
	"music.play[\"boss_theme\"]\n"

Test(example_query, vault_asks_the_game_server, .init = up, .fini = down, .timeout = 60)
{
	mp_create_opts o = {.instance_id = "keys-1", .pack_id = "key-collection", .seed = 42};
	mp_response *r = NULL;
	char hash[80], info_hash[65];

	cr_assert_eq(mp_create(C, &o, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	mp_response_free(r);
	TR_EXPECT(event("keys-1", "OnPickup:key", "{\"player\":\"p1\"}"), "ok",
		  "ui.broadcast[\"Keys: 1/3\"]\n");
	TR_EXPECT(event("keys-1", "OnPickup:key", "{\"player\":\"p1\"}"), "ok",
		  "ui.broadcast[\"Keys: 2/3\"]\n");
	r = event("keys-1", "OnPickup:key", "{\"player\":\"p1\"}");
	cr_expect_str_eq(tr_effects(r), KEYS);
	snprintf(hash, sizeof hash, "%s", tr_hash(r));
	mp_response_free(r);

	vault_asks("keys-1", "p1", 1);
	r = answer("keys-1", 1, 3, NULL);
	cr_expect_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	cr_expect_str_eq(tr_effects(r),
			 "ecs.openGate[\"vault\"]\nui.broadcast[\"p1 opens the vault\"]\n");
	cr_expect_str_eq(tr_hash(r), hash, "the vault reads the inventory, state is unchanged");
	mp_response_free(r);

	vault_asks("keys-1", "p2", 2);
	TR_EXPECT(answer("keys-1", 2, 1, NULL), "ok",
		  "ui.tip[\"p2\",\"The vault needs 3 keys: you hold 1.\"]\n");

	vault_asks("keys-1", "p2", 3);
	r = answer("keys-1", 3, 0, "no such player");
	cr_expect_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	cr_expect_str_eq(tr_effects(r), "ui.tip[\"p2\",\"The vault door does not answer.\"]\n");
	cr_assert_eq(r->result->n_logs, 1);
	cr_expect_str_eq(r->result->logs[0]->level, "warn");
	cr_expect_str_eq(r->result->logs[0]->message, "inventory.count failed: no such player");
	mp_response_free(r);

	/* 3 pickups and 3 vault visits applied, the state unchanged by the visits */
	cr_assert_eq(mp_info(C, "keys-1", &r), 0);
	cr_expect_eq(r->info->inputs, 6);
	cr_assert_eq(r->info->state_hash.len, 32);
	for (size_t i = 0; i < 32; i++)
		snprintf(info_hash + 2 * i, 3, "%02x", r->info->state_hash.data[i]);
	cr_expect_str_eq(info_hash, hash);
	mp_response_free(r);
}

/* The sample game server's key session, as `make demo` prints it: the query,
 * the answer from its inventory (2 keys, then 3), the effects. */
static const char want_vault_shut[] =
    "== keys-1: event OnAreaEnter:vault {player=\"p1\"}\n"
    "  query #1 inventory.count(\"p1\", \"key\"), answer within 5000 ms\n"
    "  answer 2\n"
    "  effect ui.tip(\"p1\", \"The vault needs 3 keys: you hold 2.\")\n"
    "  tick 0, hash cbffc3667f4b65a7...\n"
    "== keys-1: event OnPickup:key {player=\"p1\"}\n";
static const char want_vault_opens[] =
    "== keys-1: event OnAreaEnter:vault {player=\"p1\"}\n"
    "  query #2 inventory.count(\"p1\", \"key\"), answer within 5000 ms\n"
    "  answer 3\n"
    "  effect ecs.openGate(\"vault\")\n"
    "  effect ui.broadcast(\"p1 opens the vault\")\n"
    "  tick 0, hash dc1119297cf57dd6...\n"
    "== forest-1: info\n";

Test(example_query, sample_game_server_answers_the_query, .init = up, .fini = down, .timeout = 120)
{
	static char out[1 << 16];
	char cmd[1024];
	FILE *f;
	size_t n;
	int st;

	snprintf(cmd, sizeof cmd, "'%s' --url '%s'", td_bin("game-server"), D.url);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	n = fread(out, 1, sizeof out - 1, f);
	out[n] = '\0';
	st = pclose(f);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "game-server failed (%d):\n%s", st, out);
	cr_expect(strstr(out, want_vault_shut) != NULL, "missing:\n%s\nin:\n%s", want_vault_shut,
		  out);
	cr_expect(strstr(out, want_vault_opens) != NULL, "missing:\n%s\nin:\n%s", want_vault_opens,
		  out);
	cr_expect(n > 17 && strcmp(out + n - 17, "session complete\n") == 0, "%s", out);
}
