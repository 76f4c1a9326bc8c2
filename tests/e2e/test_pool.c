/*
 * End-to-end: pool workers (docs/recovery.md). Instances of a pack whose
 * manifest says "isolation": "pool" share a worker, one slot each. When one of
 * them kills it, that input alone fails; its neighbours are restored at once
 * (no request of theirs needed) on a fresh pool worker with their states and
 * effects intact; an instance with a worker of its own never notices. Runs in
 * the test process.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/moonpen.h"
#include "common/val_json.h"
#include "tests/support/daemon.h"
#include "tests/support/files.h"
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
static void up_three(void)
{
	const char *extra[] = {"--pool-size", "3", "--snapshot-every", "2", NULL};

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

/* The worker pid GetInstance shows, and the state hash it reports (hex). */
static pid_t pid_hash(const char *id, char *hash)
{
	mp_response *k;
	Moonpen__V1__InstanceInfo *fo = info(id, &k);
	pid_t pid = fo->worker_pid;
	size_t i;

	hash[0] = '\0';
	for (i = 0; i < fo->state_hash.len && i < 64; i++)
		sprintf(hash + 2 * i, "%02x", fo->state_hash.data[i]);
	mp_response_free(k);
	return pid;
}

/* Polls GetInstance (no input) until id shows the live worker want; 0 when it
 * did by the deadline, -1 when not. */
static int shows_within(const char *id, pid_t want, double ms)
{
	double end = td_now_ms() + ms;
	char h[130];

	for (;;) {
		if (pid_hash(id, h) == want && td_alive(want))
			return 0;
		if (td_now_ms() >= end)
			return -1;
		usleep(5000);
	}
}

static unsigned restarts_of(const char *id)
{
	mp_response *k;
	unsigned n = info(id, &k)->restarts;

	mp_response_free(k);
	return n;
}

/* The log lines of neighbour restores of id in pool:pooled#0: how many, and in
 * last the start of the last one. */
static unsigned neighbour_lines(const char *log, const char *id, const char **last)
{
	char needle[128];
	const char *p = log;
	unsigned n = 0;

	snprintf(needle, sizeof needle,
		 "\"inst_id\":\"%s\",\"pool\":\"pool:pooled#0\",\"dead_worker\":", id);
	*last = NULL;
	while ((p = strstr(p, needle)) != NULL) {
		*last = p++;
		n++;
	}
	return n;
}

/* --pool-size 3: p1, p2, p3 share pool #0; their twins t2, t3 (same inputs)
 * share pool #1. p1's runaway kills pool #0's worker (twice: it is retried
 * once, then dead-lettered; p1 is answered once restored on the last worker).
 * p2 and p3 move to that worker by their own threads while nobody sends them
 * anything, keep their state hashes, and answer their next event exactly as
 * their undisturbed twins. */
Test(pool, neighbours_restore_without_a_request, .init = up_three, .fini = down, .timeout = 120)
{
	const char *nb[2] = {"p2", "p3"}, *twin[2] = {"t2", "t3"}, *last;
	char before[2][130], h[130], eff[256], teff[256], th[130], want[32];
	pid_t pool, other, now;
	mp_response *r;
	unsigned n;
	size_t len;
	char *log;
	int i;

	create_ok("p1", "pooled");
	for (i = 0; i < 2; i++)
		create_ok(nb[i], "pooled");
	for (i = 0; i < 2; i++)
		create_ok(twin[i], "pooled");
	for (i = 0; i < 2; i++) { /* 3 inputs each: a snapshot (every 2) and a log entry */
		add(nb[i], 2 + i, NULL, NULL);
		add(twin[i], 2 + i, NULL, NULL);
		add(nb[i], 5, NULL, NULL);
		add(twin[i], 5, NULL, NULL);
		add(nb[i], 7 * (i + 1), NULL, NULL);
		add(twin[i], 7 * (i + 1), NULL, NULL);
	}
	add("p1", 1, NULL, NULL);
	pool = pid_of("p1", "pool:pooled#0");
	other = pid_of("t2", "pool:pooled#1");
	cr_assert_neq(other, pool);
	for (i = 0; i < 2; i++) {
		cr_assert_eq(pid_hash(nb[i], before[i]), pool, "%s in pool #0", nb[i]);
		cr_assert_eq(strlen(before[i]), 64, "%s has a state hash", nb[i]);
		pid_hash(twin[i], h);
		cr_assert_str_eq(h, before[i], "%s and %s start as twins", nb[i], twin[i]);
		cr_assert_eq(restarts_of(nb[i]), 0);
	}

	cr_assert_eq(mp_call(C, "p1", "backtrack", NULL, 0, &r), 0);
	cr_expect_str_eq(tr_code(r), "timeout", "%s", tr_msg(r));
	mp_response_free(r);
	cr_assert(!td_alive(pool), "the pool worker %d must be dead", (int)pool);
	now = pid_of("p1", "pool:pooled#0"); /* p1 was restored before its answer */
	cr_assert(now != pool && td_alive(now));

	for (i = 0; i < 2; i++) { /* nothing is sent to p2, p3: GetInstance only */
		cr_assert_eq(shows_within(nb[i], now, 30000 + 20 * td_hard_deadline_ms()), 0,
			     "%s was not restored on worker %d without a request (log %s)", nb[i],
			     (int)now, D.log);
		pid_hash(nb[i], h);
		cr_expect_str_eq(h, before[i], "%s keeps its state hash", nb[i]);
	}
	cr_expect_eq(pid_of("t2", "pool:pooled#1"), other, "pool #1 is untouched");
	cr_expect_eq(restarts_of("t2"), 0);

	for (i = 0; i < 2; i++) {
		add(nb[i], 4, eff, h);
		add(twin[i], 4, teff, th);
		cr_expect_str_eq(eff, teff, "%s answers as its twin %s", nb[i], twin[i]);
		cr_expect_str_eq(h, th, "%s has its twin's state hash", nb[i]);
	}
	cr_expect_str_eq(eff, "ui.broadcast[\"n=26\"]\n");
	cr_expect_eq(pid_of("p2", "pool:pooled#0"), now);

	/* one structured line per neighbour restore (one, or two when it was
	 * restored between p1's two kills), each counted in info.restarts, the
	 * last naming the worker it is on now */
	log = tf_slurp(D.log, &len);
	snprintf(want, sizeof want, "\"worker\":%d,", (int)now);
	for (i = 0; i < 2; i++) {
		n = neighbour_lines(log, nb[i], &last);
		cr_expect(n >= 1 && n <= 2, "%s: %u neighbour restores logged (log %s)", nb[i], n,
			  D.log);
		cr_expect_eq(restarts_of(nb[i]), n, "%s: info.restarts counts them", nb[i]);
		cr_expect(last && strstr(last, want) && strstr(last, want) < strchr(last, '\n'),
			  "%s: its last restore names worker %d", nb[i], (int)now);
	}
	snprintf(want, sizeof want, "\"dead_worker\":%d,", (int)pool);
	cr_expect_not_null(strstr(log, want), "a restore names the dead worker %d", (int)pool);
	free(log);
}

/* A neighbour closed before the kill is left alone (its slot's notice went
 * with it); the other neighbour is still restored without a request. */
Test(pool, closed_neighbour_is_left_alone, .init = up_three, .fini = down, .timeout = 120)
{
	pid_t pool, now;
	mp_response *r;

	create_ok("c1", "pooled");
	create_ok("c2", "pooled");
	create_ok("c3", "pooled");
	add("c3", 9, NULL, NULL);
	pool = pid_of("c1", "pool:pooled#0");
	cr_assert_eq(mp_close(C, "c2", &r), 0);
	cr_expect_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	mp_response_free(r);
	cr_assert_eq(mp_call(C, "c1", "backtrack", NULL, 0, &r), 0);
	cr_expect_str_eq(tr_code(r), "timeout", "%s", tr_msg(r));
	mp_response_free(r);
	now = pid_of("c1", "pool:pooled#0");
	cr_assert(now != pool && td_alive(now));
	cr_assert_eq(shows_within("c3", now, 30000 + 20 * td_hard_deadline_ms()), 0,
		     "c3 was not restored (log %s)", D.log);
	cr_assert_eq(mp_info(C, "c2", &r), 0);
	cr_expect_str_eq(tr_code(r), "not_found", "%s", tr_msg(r));
	mp_response_free(r);
	cr_expect_eq(total("c3", NULL), 9);
}
