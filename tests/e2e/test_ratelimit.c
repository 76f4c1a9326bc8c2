/*
 * End-to-end: rate limits of a live moonpend (pack tests/e2e/packs/ratelimit:
 * global 1/s burst 6, per player 1/s burst 2, trigger "enrage" 1/s burst 1).
 * A quick burst hits each bucket in turn; a rejected event is RATE_LIMITED,
 * retryable, names its bucket, and never reaches the script (the count of
 * applied events and the state hash prove it). The sequence runs well within
 * one second, so no bucket refills a whole token in between.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "client/moonpen.h"
#include "common/val_json.h"
#include "tests/support/daemon.h"
#include "tests/support/resp.h"

static td D;
static mp_client *C;

static void up(void)
{
	cr_assert_eq(td_start(&D, "tests/e2e/packs", NULL), 0);
	cr_assert_eq(mp_connect(D.url, &C), 0);
}

static void down(void)
{
	mp_disconnect(C);
	cr_assert_eq(td_stop(&D, 0), 0, "moonpend did not stop cleanly (log %s)", D.log);
}

static void create(const char *id)
{
	mp_create_opts o = {.instance_id = id, .pack_id = "ratelimit", .seed = 1};
	mp_response *r = NULL;

	cr_assert_eq(mp_create(C, &o, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	mp_response_free(r);
}

/* Sends the event; returns its status code name, and its message in msg. */
static const char *event(const char *id, const char *name, const char *json, char *msg, size_t len,
			 int *retryable)
{
	static char code[32];
	mp_response *r = NULL;
	val_t *v = NULL;
	char err[128];

	cr_assert_eq(vjson_parse(json, 8, &v, err, sizeof err), 0, "%s", err);
	cr_assert_eq(mp_event(C, id, name, v, &r), 0);
	val_free(v);
	snprintf(code, sizeof code, "%s", tr_code(r));
	if (msg)
		snprintf(msg, len, "%s", tr_msg(r));
	if (retryable)
		*retryable = r->status && r->status->retryable;
	mp_response_free(r);
	return code;
}

#define OK(id, name, json) cr_expect_str_eq(event(id, name, json, NULL, 0, NULL), "ok")

static void limited(const char *id, const char *name, const char *json, const char *want)
{
	char msg[256];
	int retry = 0;

	cr_expect_str_eq(event(id, name, json, msg, sizeof msg, &retry), "rate_limited");
	cr_expect_str_eq(msg, want);
	cr_expect(retry, "RATE_LIMITED must be retryable");
}

static int64_t applied(const char *id, char *hash, size_t len)
{
	mp_response *r = NULL;
	int64_t n;

	cr_assert_eq(mp_call(C, id, "applied", NULL, 0, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	cr_assert_eq(r->result->n_returns, 1);
	n = r->result->returns[0]->int_value;
	snprintf(hash, len, "%s", tr_hash(r));
	mp_response_free(r);
	return n;
}

Test(ratelimit, each_bucket_in_turn, .init = up, .fini = down)
{
	char h1[80], h2[80];

	create("a");
	create("b");
	OK("a", "hit", "{\"player\":\"p1\"}");
	OK("a", "hit", "{\"player\":\"p1\"}");
	limited("a", "hit", "{\"player\":\"p1\"}",
		"rate limit of player 'p1' exceeded (1/s, burst 2)");
	OK("a", "hit", "{\"player\":\"p2\"}");
	OK("a", "boss.enrage", "{}");
	limited("a", "boss.enrage", "{}", "rate limit of trigger 'enrage' exceeded (1/s, burst 1)");
	OK("a", "hit", "{}");
	OK("a", "hit", "{\"player\":7}");
	limited("a", "hit", "{}", "rate limit of the instance (global) exceeded (1/s, burst 6)");
	/* ticks and calls are not limited; instance b has buckets of its own */
	{
		mp_response *r = NULL;
		cr_assert_eq(mp_tick(C, "a", 1, &r), 0);
		cr_expect_str_eq(tr_code(r), "ok");
		mp_response_free(r);
	}
	OK("b", "hit", "{\"player\":\"p1\"}");
	/* six events reached the script of a; the three rejected ones did not */
	cr_expect_eq(applied("a", h1, sizeof h1), 6);
	cr_expect_eq(applied("b", h2, sizeof h2), 1);
}

Test(ratelimit, rejected_event_changes_nothing, .init = up, .fini = down)
{
	char before[80], after[80];
	mp_response *r = NULL;

	create("c");
	OK("c", "boss.enrage", "{}");
	cr_expect_eq(applied("c", before, sizeof before), 1);
	limited("c", "boss.enrage", "{}", "rate limit of trigger 'enrage' exceeded (1/s, burst 1)");
	cr_expect_eq(applied("c", after, sizeof after), 1);
	cr_expect_str_eq(after, before);
	cr_assert_eq(mp_info(C, "c", &r), 0);
	cr_expect_eq(r->info->inputs, 3, "create's on_init does not count; 1 event + 2 calls");
	mp_response_free(r);
}
