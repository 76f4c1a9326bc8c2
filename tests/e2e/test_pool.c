/*
 * End-to-end: pool workers (docs/recovery.md). Instances of a pack whose
 * manifest says "isolation": "pool" share a worker, one slot each. When one of
 * them kills it, that input alone fails; its neighbours are restored on a
 * fresh pool worker with their states and effects intact; an instance with a
 * worker of its own never notices. Runs in the test process.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "client/moonpen.h"
#include "common/val_json.h"
#include "tests/support/daemon.h"
#include "tests/support/resp.h"

static td D;
static mp_client *C;

static void start(const char *const *extra)
{
	cr_assert_eq(td_start(&D, "tests/e2e/packs", extra), 0);
	cr_assert_eq(mp_connect(D.url, &C), 0);
}
static void up(void)
{
	start(NULL);
}
static void up_two(void)
{
	const char *extra[] = {"--pool-size", "2", NULL};

	start(extra);
}
static void down(void)
{
	mp_disconnect(C);
	cr_assert_eq(td_stop(&D, 0), 0, "moonpend did not stop cleanly (log %s)", D.log);
}

static void create_ok(const char *id, const char *pack)
{
	mp_create_opts o = {.instance_id = id, .pack_id = pack, .seed = 3};
	mp_response *r = NULL;

	cr_assert_eq(mp_create(C, &o, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s: %s", id, tr_msg(r));
	mp_response_free(r);
}

/* Sends add{n}; returns the effects in eff and the hash in hash. */
static void add(const char *id, int n, char *eff, char *hash)
{
	char json[64], err[64];
	mp_response *r = NULL;
	val_t *v = NULL;

	snprintf(json, sizeof json, "{\"n\":%d}", n);
	cr_assert_eq(vjson_parse(json, 8, &v, err, sizeof err), 0);
	cr_assert_eq(mp_event(C, id, "add", v, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s: %s", id, tr_msg(r));
	if (eff)
		snprintf(eff, 256, "%s", tr_effects(r));
	if (hash)
		snprintf(hash, 130, "%s", tr_hash(r));
	mp_response_free(r);
	val_free(v);
}

static int64_t total(const char *id, char *hash)
{
	mp_response *r = NULL;
	int64_t n;

	cr_assert_eq(mp_call(C, id, "total", NULL, 0, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s: %s", id, tr_msg(r));
	cr_assert_eq(r->result->n_returns, 1);
	n = r->result->returns[0]->int_value;
	if (hash)
		snprintf(hash, 130, "%s", tr_hash(r));
	mp_response_free(r);
	return n;
}

static Moonpen__V1__InstanceInfo *info(const char *id, mp_response **keep)
{
	cr_assert_eq(mp_info(C, id, keep), 0);
	cr_assert_str_eq(tr_code(*keep), "ok", "%s", tr_msg(*keep));
	return (*keep)->info;
}

/* The close answer comes before the instance's thread lets its worker go. */
static int gone_within(pid_t pid, double ms)
{
	double end = td_now_ms() + ms;

	while (td_alive(pid) && td_now_ms() < end)
		usleep(10000);
	return !td_alive(pid);
}

static pid_t pid_of(const char *id, const char *isolation)
{
	mp_response *k;
	Moonpen__V1__InstanceInfo *fo = info(id, &k);
	pid_t pid = fo->worker_pid;

	cr_expect_str_eq(fo->isolation, isolation, "%s", id);
	mp_response_free(k);
	return pid;
}

Test(pool, neighbours_survive_a_runaway, .init = up, .fini = down, .timeout = 60)
{
	char h1[130], h3[130], h[130], eff[256];
	pid_t pool, solo, pool2;
	mp_response *r, *k;

	create_ok("p1", "pooled");
	create_ok("p2", "pooled");
	create_ok("p3", "pooled");
	create_ok("solo", "runaway");
	add("p1", 1, NULL, h1);
	add("p2", 2, NULL, NULL);
	add("p3", 3, NULL, h3);
	add("solo", 4, NULL, NULL);
	pool = pid_of("p1", "pool:pooled#0");
	cr_expect_eq(pid_of("p2", "pool:pooled#0"), pool, "one worker hosts the pool");
	cr_expect_eq(pid_of("p3", "pool:pooled#0"), pool);
	solo = pid_of("solo", "instance");
	cr_expect_neq(solo, pool);

	cr_assert_eq(mp_call(C, "p2", "backtrack", NULL, 0, &r), 0);
	cr_expect_str_eq(tr_code(r), "timeout", "%s", tr_msg(r));
	mp_response_free(r);
	cr_expect(!td_alive(pool), "the pool worker %d must be dead", (int)pool);

	cr_expect_eq(total("p2", NULL), 2, "p2: its state before the failed input");
	pool2 = pid_of("p2", "pool:pooled#0");
	cr_expect_neq(pool2, pool);
	cr_expect_eq(total("p3", h), 3);
	cr_expect_str_eq(h, h3, "p3 keeps its state hash");
	add("p1", 10, eff, h);
	cr_expect_str_eq(eff, "ui.broadcast[\"n=11\"]\n");
	cr_expect_str_neq(h, h1);
	cr_expect_eq(total("p1", NULL), 11);
	cr_expect_eq(pid_of("p1", "pool:pooled#0"), pool2, "restored on the new pool worker");
	cr_expect_eq(pid_of("p3", "pool:pooled#0"), pool2);

	Moonpen__V1__InstanceInfo *fo = info("solo", &k);
	cr_expect_eq(fo->worker_pid, solo, "an instance in its own worker is untouched");
	cr_expect_eq(fo->restarts, 0);
	mp_response_free(k);
	cr_expect_eq(total("solo", NULL), 4);
	fo = info("p2", &k);
	cr_expect_eq(fo->n_dead_letters, 1);
	mp_response_free(k);
}

/* --pool-size 2: a third instance opens a second pool worker; closing both
 * instances of the first ends its worker. */
Test(pool, size_splits_and_empty_pool_ends, .init = up_two, .fini = down)
{
	mp_response *r;
	pid_t first;

	create_ok("q1", "pooled");
	create_ok("q2", "pooled");
	create_ok("q3", "pooled");
	first = pid_of("q1", "pool:pooled#0");
	cr_expect_eq(pid_of("q2", "pool:pooled#0"), first);
	cr_expect_neq(pid_of("q3", "pool:pooled#1"), first);
	add("q1", 5, NULL, NULL);
	add("q3", 6, NULL, NULL);
	cr_expect_eq(total("q1", NULL), 5);
	cr_expect_eq(total("q2", NULL), 0);
	cr_expect_eq(total("q3", NULL), 6);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(mp_close(C, i ? "q2" : "q1", &r), 0);
		cr_expect_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
		mp_response_free(r);
	}
	cr_expect(gone_within(first, 5000), "the empty pool's worker %d must have ended",
		  (int)first);
	cr_expect_eq(total("q3", NULL), 6);
}
