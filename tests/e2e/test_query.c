/*
 * End-to-end: async host queries through a live moonpend (pack
 * tests/e2e/packs/query, schema tests/e2e/packs/host_api_query.json, whose
 * "bank.balance" is a query). An event that asks is answered PENDING with the
 * query; the HostResult resumes it and is answered with the input's final
 * result. Also: error answers, two queries in one input, a wrong call id, a
 * timeout (TIMEOUT, nothing changed, a late answer refused), requests queued
 * behind a pending query, and a restore after a worker kill that replays the
 * recorded answer without asking the game server again.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "client/moonpen.h"
#include "common/val_json.h"
#include "tests/support/daemon.h"
#include "tests/support/resp.h"

static td D;
static mp_client *C;

static void start(const char *timeout_ms)
{
	const char *extra[] = {"--host-api", "tests/e2e/packs/host_api_query.json",
			       "--query-timeout-ms", timeout_ms, NULL};

	cr_assert_eq(td_start(&D, "tests/e2e/packs", extra), 0);
	cr_assert_eq(mp_connect(D.url, &C), 0);
}
static void up(void)
{
	start("5000");
}
static void up_short(void)
{
	start("300");
}
static void down(void)
{
	mp_disconnect(C);
	cr_assert_eq(td_stop(&D, 0), 0, "moonpend did not stop cleanly (log %s)", D.log);
}

static void create(const char *id)
{
	mp_create_opts o = {.instance_id = id, .pack_id = "query", .seed = 3};
	mp_response *r = NULL;

	cr_assert_eq(mp_create(C, &o, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	mp_response_free(r);
}

static mp_response *event_on(mp_client *c, const char *id, const char *name, const char *json)
{
	mp_response *r = NULL;
	val_t *v = NULL;
	char err[128];

	cr_assert_eq(vjson_parse(json, 8, &v, err, sizeof err), 0, "%s", err);
	cr_assert_eq(mp_event(c, id, name, v, &r), 0);
	val_free(v);
	return r;
}

/* Sends the event and expects PENDING on bank.balance(player); returns the call id. */
static uint64_t ask(const char *id, const char *name, const char *json, const char *player)
{
	mp_response *r = event_on(C, id, name, json);
	uint64_t call;

	cr_assert_str_eq(tr_code(r), "pending", "%s", tr_msg(r));
	cr_assert_not_null(r->host_call);
	cr_expect_str_eq(r->host_call->api, "bank");
	cr_expect_str_eq(r->host_call->fn, "balance");
	cr_assert_eq(r->host_call->n_args, 1);
	cr_expect_str_eq(r->host_call->args[0]->string_value, player);
	cr_expect_neq(r->host_call->call_id, 0);
	cr_expect_str_eq(tr_effects(r), "", "no effect is visible before the input ends");
	call = r->host_call->call_id;
	mp_response_free(r);
	return call;
}

static mp_response *answer(const char *id, uint64_t call, int64_t amount, const char *error)
{
	mp_response *r = NULL;
	val_t *v = val_new_int(amount);

	cr_assert_eq(mp_host_result(C, id, call, error ? NULL : v, error, &r), 0);
	val_free(v);
	return r;
}

/* The instance's gold (a call) and its state hash in hash. */
static int64_t gold(const char *id, char *hash, size_t len)
{
	mp_response *r = NULL;
	int64_t n;

	cr_assert_eq(mp_call(C, id, "gold", NULL, 0, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	n = r->result->returns[0]->int_value;
	if (hash)
		snprintf(hash, len, "%s", tr_hash(r));
	mp_response_free(r);
	return n;
}

Test(query, value_answer_resumes_the_event, .init = up, .fini = down)
{
	mp_response *r;
	uint64_t call;

	create("q");
	r = event_on(C, "q", "loot", "{\"player\":\"p1\"}");
	cr_assert_str_eq(tr_code(r), "pending", "%s", tr_msg(r));
	cr_expect_eq(r->host_call->timeout_ms, 5000);
	call = r->host_call->call_id;
	mp_response_free(r);
	TR_EXPECT(answer("q", call, 50, NULL), "ok",
		  "ui.broadcast[\"opening chest for p1\"]\nui.broadcast[\"loot 50\"]\n");
	cr_expect_eq(gold("q", NULL, 0), 50);
	/* the same query answered twice: the second is refused, nothing changes */
	r = answer("q", call, 50, NULL);
	cr_expect_str_eq(tr_code(r), "not_found");
	mp_response_free(r);
	cr_expect_eq(gold("q", NULL, 0), 50);
}

Test(query, error_answer_reaches_the_script, .init = up, .fini = down)
{
	create("q");
	TR_EXPECT(
	    answer("q", ask("q", "loot", "{\"player\":\"p2\"}", "p2"), 0, "chest is locked"), "ok",
	    "ui.broadcast[\"opening chest for p2\"]\nui.broadcast[\"no loot: chest is locked\"]\n");
	cr_expect_eq(gold("q", NULL, 0), 0);
}

Test(query, two_queries_in_one_input, .init = up, .fini = down)
{
	mp_response *r;
	uint64_t first = 0, second;

	create("q");
	first = ask("q", "trade", "{\"player\":\"a\",\"other\":\"b\"}", "a");
	r = answer("q", first, 10, NULL);
	cr_assert_str_eq(tr_code(r), "pending", "%s", tr_msg(r));
	cr_assert_eq(r->host_call->n_args, 1);
	cr_expect_str_eq(r->host_call->args[0]->string_value, "b");
	second = r->host_call->call_id;
	cr_expect_neq(second, first);
	mp_response_free(r);
	TR_EXPECT(answer("q", second, 20, NULL), "ok", "ui.broadcast[\"trade 10+20\"]\n");
	cr_expect_eq(gold("q", NULL, 0), 30);
}

Test(query, wrong_call_id_is_refused_clearly, .init = up, .fini = down)
{
	mp_response *r;
	char want[200];
	uint64_t call;

	create("q");
	r = answer("q", 77, 1, NULL);
	cr_expect_str_eq(tr_code(r), "not_found");
	cr_expect_str_eq(tr_msg(r), "instance 'q' has no pending query 77");
	mp_response_free(r);
	call = ask("q", "loot", "{\"player\":\"p1\"}", "p1");
	r = answer("q", call + 100, 1, NULL);
	cr_expect_str_eq(tr_code(r), "not_found");
	snprintf(want, sizeof want, "instance 'q' waits for query %llu (bank.balance), not %llu",
		 (unsigned long long)call, (unsigned long long)call + 100);
	cr_expect_str_eq(tr_msg(r), want);
	mp_response_free(r);
	/* the right answer still works */
	TR_EXPECT(answer("q", call, 7, NULL), "ok",
		  "ui.broadcast[\"opening chest for p1\"]\nui.broadcast[\"loot 7\"]\n");
	cr_expect_eq(gold("q", NULL, 0), 7);
}

Test(query, timeout_discards_the_input, .init = up_short, .fini = down)
{
	char before[80], after[80], want[200];
	mp_response *r;
	uint64_t call;

	create("q");
	cr_expect_eq(gold("q", before, sizeof before), 0);
	call = ask("q", "loot", "{\"player\":\"p1\"}", "p1");
	/* this call waits behind the query until it expires (300 ms) */
	cr_expect_eq(gold("q", after, sizeof after), 0);
	cr_expect_str_eq(after, before);
	r = answer("q", call, 50, NULL);
	cr_expect_str_eq(tr_code(r), "timeout");
	snprintf(want, sizeof want,
		 "query %llu (bank.balance) unanswered after 300 ms; the input was discarded",
		 (unsigned long long)call);
	cr_expect_str_eq(tr_msg(r), want);
	mp_response_free(r);
	cr_expect_eq(gold("q", after, sizeof after), 0);
	cr_expect_str_eq(after, before);
	/* the instance goes on */
	TR_EXPECT(event_on(C, "q", "bump", "{}"), "ok", "ui.broadcast[\"bump\"]\n");
}

struct bg {
	const char *url;
	mp_response *r;
	int rc;
	int done;
};

static void *bump_in_background(void *arg)
{
	struct bg *b = arg;
	mp_client *c = NULL;

	b->rc = mp_connect(b->url, &c);
	if (b->rc == 0)
		b->r = event_on(c, "q", "bump", "{}");
	mp_disconnect(c);
	__atomic_store_n(&b->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

Test(query, queued_event_is_served_after_the_answer, .init = up, .fini = down)
{
	struct bg b = {.url = D.url};
	pthread_t t;
	uint64_t call;
	int i;

	create("q");
	call = ask("q", "loot", "{\"player\":\"p1\"}", "p1");
	cr_assert_eq(pthread_create(&t, NULL, bump_in_background, &b), 0);
	/* while the query is pending the bump must wait (it would take ~1 ms) */
	for (i = 0; i < 30; i++) {
		cr_assert(!__atomic_load_n(&b.done, __ATOMIC_SEQ_CST),
			  "an event was served while a query was pending");
		usleep(10000);
	}
	TR_EXPECT(answer("q", call, 5, NULL), "ok",
		  "ui.broadcast[\"opening chest for p1\"]\nui.broadcast[\"loot 5\"]\n");
	pthread_join(t, NULL);
	cr_assert_eq(b.rc, 0);
	TR_EXPECT(b.r, "ok", "ui.broadcast[\"bump\"]\n");
	cr_expect_eq(gold("q", NULL, 0), 6);
}

static pid_t worker_pid(const char *id)
{
	mp_response *r = NULL;
	pid_t pid;

	cr_assert_eq(mp_info(C, id, &r), 0);
	pid = r->info->worker_pid;
	mp_response_free(r);
	cr_assert_gt(pid, 0);
	return pid;
}

static void kill_worker(const char *id)
{
	pid_t pid = worker_pid(id);
	int i;

	cr_assert_eq(kill(pid, SIGKILL), 0);
	for (i = 0; i < 500 && td_alive(pid); i++)
		usleep(2000);
	cr_assert(!td_alive(pid));
}

Test(query, replay_after_a_kill_needs_no_game_server, .init = up, .fini = down)
{
	char before[80], after[80];
	mp_response *r;

	create("q");
	TR_EXPECT(answer("q", ask("q", "loot", "{\"player\":\"p1\"}", "p1"), 40, NULL), "ok",
		  "ui.broadcast[\"opening chest for p1\"]\nui.broadcast[\"loot 40\"]\n");
	TR_EXPECT(event_on(C, "q", "bump", "{}"), "ok", "ui.broadcast[\"bump\"]\n");
	cr_expect_eq(gold("q", before, sizeof before), 41);
	kill_worker("q");
	/* the next input finds the worker dead: the instance is restored by
	 * replaying the log (the event and its recorded answer); nobody is asked */
	cr_expect_eq(gold("q", after, sizeof after), 41);
	cr_expect_str_eq(after, before);
	cr_assert_eq(mp_info(C, "q", &r), 0);
	cr_expect_eq(r->info->restarts, 1);
	mp_response_free(r);
}

Test(query, worker_death_while_pending, .init = up, .fini = down)
{
	mp_response *r;
	uint64_t call;

	create("q");
	call = ask("q", "loot", "{\"player\":\"p1\"}", "p1");
	kill_worker("q");
	r = answer("q", call, 50, NULL);
	cr_expect_str_eq(tr_code(r), "worker_crashed");
	cr_expect(strstr(tr_msg(r), "the input was discarded") != NULL, "%s", tr_msg(r));
	mp_response_free(r);
	/* the same answer again: the same clear status, not a hang */
	r = answer("q", call, 50, NULL);
	cr_expect_str_eq(tr_code(r), "worker_crashed");
	mp_response_free(r);
	cr_expect_eq(gold("q", NULL, 0), 0);
	TR_EXPECT(answer("q", ask("q", "loot", "{\"player\":\"p1\"}", "p1"), 3, NULL), "ok",
		  "ui.broadcast[\"opening chest for p1\"]\nui.broadcast[\"loot 3\"]\n");
}
