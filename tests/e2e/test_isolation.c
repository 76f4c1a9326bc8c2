/*
 * End-to-end: runaway scripts are stopped by the soft deadline or, for C code
 * that runs without hooks, by the supervisor's watchdog; the instance is
 * restored by replay with its state intact; instances are served concurrently.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static void create_ok(const char *id, const char *pack)
{
	mp_create_opts o = {.instance_id = id, .pack_id = pack, .seed = 3};
	mp_response *r = NULL;

	cr_assert_eq(mp_create(C, &o, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	mp_response_free(r);
}

static mp_response *call0(mp_client *c, const char *id, const char *fn)
{
	mp_response *r = NULL;

	cr_assert_eq(mp_call(c, id, fn, NULL, 0, &r), 0);
	return r;
}

static void add(const char *id, int n, char *hash_out)
{
	char json[64];
	val_t *v = NULL;
	mp_response *r = NULL;
	char err[64];

	snprintf(json, sizeof json, "{\"n\":%d}", n);
	cr_assert_eq(vjson_parse(json, 8, &v, err, sizeof err), 0);
	cr_assert_eq(mp_event(C, id, "add", v, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	if (hash_out)
		strcpy(hash_out, tr_hash(r));
	mp_response_free(r);
	val_free(v);
}

static int64_t total(const char *id)
{
	mp_response *r = call0(C, id, "total");
	int64_t n;

	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	cr_assert_eq(r->result->n_returns, 1);
	n = r->result->returns[0]->int_value;
	mp_response_free(r);
	return n;
}

static Moonpen__V1__InstanceInfo *info(const char *id, mp_response **keep)
{
	cr_assert_eq(mp_info(C, id, keep), 0);
	cr_assert_str_eq(tr_code(*keep), "ok");
	return (*keep)->info;
}

Test(runaway, soft_deadline_uncatchable, .init = up, .fini = down)
{
	char h[80];
	const char *fns[] = {"forever", "forever_pcall"};

	create_ok("r", "runaway");
	add("r", 5, h);
	for (int i = 0; i < 2; i++) {
		double t0 = td_now_ms();
		mp_response *r = call0(C, "r", fns[i]);
		cr_expect_str_eq(tr_code(r), "timeout", "%s: %s", fns[i], tr_msg(r));
		cr_expect_lt(td_now_ms() - t0, td_hard_deadline_ms(),
			     "the soft deadline must stop it before the watchdog would");
		cr_expect_str_eq(tr_hash(r), h, "a failed input must not change the state");
		mp_response_free(r);
	}
	cr_expect_eq(total("r"), 5);
	{
		mp_response *k;
		cr_expect_eq(info("r", &k)->restarts, 0, "the soft deadline needs no restart");
		mp_response_free(k);
	}
}

Test(runaway, watchdog_kills_and_restores, .init = up, .fini = down)
{
	char before[80], after[80];
	mp_response *r, *k;
	pid_t old;

	create_ok("r", "runaway");
	create_ok("neighbour", "runaway");
	add("r", 2, NULL);
	add("r", 3, before);
	add("neighbour", 7, NULL);
	old = info("r", &k)->worker_pid;
	mp_response_free(k);

	r = call0(C, "r", "backtrack");
	cr_expect_str_eq(tr_code(r), "timeout", "%s", tr_msg(r));
	cr_expect(strstr(tr_msg(r), "hard deadline") != NULL, "%s", tr_msg(r));
	mp_response_free(r);
	cr_expect(!td_alive(old), "the runaway worker %d must be dead", (int)old);

	Moonpen__V1__InstanceInfo *fo = info("r", &k);
	cr_expect_eq(fo->restarts, 2, "killed, restored, retried once, killed, restored");
	cr_expect_neq(fo->worker_pid, old);
	cr_expect_eq(fo->state, MOONPEN__V1__INSTANCE_INFO__STATE__RUNNING);
	mp_response_free(k);

	cr_expect_eq(total("r"), 5, "restored state = state before the failed input");
	add("r", 1, after);
	cr_expect_eq(total("r"), 6);
	cr_expect_eq(total("neighbour"), 7, "the neighbour never noticed");
	fo = info("neighbour", &k);
	cr_expect_eq(fo->restarts, 0);
	mp_response_free(k);
	cr_expect_str_neq(after, before);
}

struct spin_arg {
	const char *url;
	double done_ms;
	char code[32];
};

static void *spin_thread(void *p)
{
	struct spin_arg *a = p;
	mp_client *c;
	val_t *n = val_new_int(td_slow() ? 600000 : 60000000); /* valgrind: 50x slower */
	const val_t *args[1] = {n};
	mp_response *r = NULL;

	if (mp_connect(a->url, &c) == 0 && mp_call(c, "slow", "spin", args, 1, &r) == 0)
		snprintf(a->code, sizeof a->code, "%s", tr_code(r));
	a->done_ms = td_now_ms();
	mp_response_free(r);
	mp_disconnect(c);
	val_free(n);
	return NULL;
}

Test(concurrency, instances_served_in_parallel, .init = up, .fini = down)
{
	struct spin_arg a = {.url = D.url};
	pthread_t t;
	double t0, ping_done;
	mp_response *r;

	create_ok("slow", "slow");
	create_ok("fast", "slow");
	t0 = td_now_ms();
	cr_assert_eq(pthread_create(&t, NULL, spin_thread, &a), 0);
	usleep(50000); /* let the spin start */
	r = call0(C, "fast", "ping");
	ping_done = td_now_ms();
	cr_expect_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	mp_response_free(r);
	pthread_join(t, NULL);
	cr_expect_str_eq(a.code, "ok");
	cr_expect_lt(ping_done, a.done_ms,
		     "ping (%.0f ms) must not wait for the other instance's spin (%.0f ms)",
		     ping_done - t0, a.done_ms - t0);
}

/* Restart intensity: past --restart-max restarts in the window the instance is
 * quarantined (every request answered QUARANTINED with the reason) instead of
 * burning a worker per crash; close still works. */
static void up_intensity(void)
{
	const char *extra[] = {"--restart-max", "2", "--restart-window-ms", "600000", NULL};

	cr_assert_eq(td_start(&D, "tests/e2e/packs", extra), 0);
	cr_assert_eq(mp_connect(D.url, &C), 0);
}

Test(runaway, crash_loop_is_quarantined, .init = up_intensity, .fini = down)
{
	mp_response *r, *k;

	create_ok("r", "runaway");
	add("r", 4, NULL);
	/* each call kills a worker twice (a failed input is retried once): the
	 * first is dead-lettered after two restores, the second's kill is one too
	 * many */
	for (int i = 0; i < 2; i++) {
		r = call0(C, "r", "backtrack");
		cr_expect_str_eq(tr_code(r), "timeout", "call %d: %s", i + 1, tr_msg(r));
		mp_response_free(r);
	}
	Moonpen__V1__InstanceInfo *fo = info("r", &k);
	cr_expect_eq(fo->state, MOONPEN__V1__INSTANCE_INFO__STATE__QUARANTINED);
	cr_expect_eq(fo->restarts, 2, "two restores, then the third kill quarantines");
	cr_expect(strstr(fo->reason, "more than 2 worker restarts") != NULL, "%s", fo->reason);
	mp_response_free(k);
	r = call0(C, "r", "total");
	cr_expect_str_eq(tr_code(r), "quarantined");
	cr_expect(strstr(tr_msg(r), "restarts") != NULL, "%s", tr_msg(r));
	mp_response_free(r);
	cr_assert_eq(mp_close(C, "r", &r), 0);
	cr_expect_str_eq(tr_code(r), "ok");
	mp_response_free(r);
}

/* Determinism across processes: two instances with the same seed live in two
 * worker processes (each Lua state with its own string-hash seed and heap
 * addresses); a handler that iterates a string-keyed table with pairs, prints
 * tostring of a table and a function, and draws random numbers must produce the
 * same effects and state hash in both, and pairs must follow the documented
 * canonical order (strings bytewise). */
Test(determinism, two_processes_same_effects, .init = up, .fini = down)
{
	mp_response *a = NULL, *b = NULL, *ka, *kb;
	char ea[65536];

	create_ok("d1", "determinism");
	create_ok("d2", "determinism");
	cr_expect_neq(info("d1", &ka)->worker_pid, info("d2", &kb)->worker_pid);
	mp_response_free(ka);
	mp_response_free(kb);
	cr_assert_eq(mp_event(C, "d1", "walk", NULL, &a), 0);
	snprintf(ea, sizeof ea, "%s", tr_effects(a));
	cr_assert_eq(mp_event(C, "d2", "walk", NULL, &b), 0);
	cr_expect_str_eq(tr_code(a), "ok", "%s", tr_msg(a));
	cr_expect_str_eq(tr_effects(b), ea);
	cr_expect_eq(a->result->n_effects, 40 + 3 + 2, "every key once, then tostring and rand");
	/* canonical order: "apple" < "key0" < ... < "mango" < "zebra" (bytewise) */
	cr_expect(strncmp(ea, "ui.broadcast[\"apple=2\"]\nui.broadcast[\"key", 40) == 0, "%s", ea);
	cr_expect(strstr(ea, "ui.broadcast[\"mango=3\"]\nui.broadcast[\"zebra=1\"]\n") != NULL,
		  "%s", ea);
	cr_expect(strstr(ea, "0x") == NULL, "no address may leak: %s", ea);
	mp_response_free(a);
	mp_response_free(b);
}

/* ---- warm spare workers ------------------------------------------------------------ */

/* The live (not zombie) children of moonpend, i.e. its workers: up to max pids
 * in out; returns how many. */
static int workers(pid_t *out, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d)) != NULL && n < max) {
		char path[300], buf[512], *p;
		int ppid = 0;
		FILE *f;
		pid_t pid = (pid_t)atoi(e->d_name);
		if (pid <= 0)
			continue;
		snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
		if ((f = fopen(path, "re")) == NULL)
			continue;
		if (fgets(buf, sizeof buf, f) && (p = strrchr(buf, ')')) != NULL &&
		    sscanf(p + 2, "%*c %d", &ppid) == 1 && ppid == D.pid && td_alive(pid))
			out[n++] = pid;
		fclose(f);
	}
	closedir(d);
	return n;
}

/* Waits (up to 10 s) until moonpend has exactly n workers, none of them
 * skip; fills out. Returns 1 when it happened. */
static int await_workers(int n, pid_t skip, pid_t *out)
{
	double end = td_now_ms() + 10000;

	do {
		int have = workers(out, 16), i, ok = have == n;
		for (i = 0; i < have; i++)
			ok = ok && out[i] != skip;
		if (ok)
			return 1;
		usleep(10000);
	} while (td_now_ms() < end);
	return 0;
}

static int has_pid(const pid_t *v, int n, pid_t pid)
{
	for (int i = 0; i < n; i++)
		if (v[i] == pid)
			return 1;
	return 0;
}

static void up_spares(const char *n)
{
	const char *extra[] = {"--spare-workers", n, NULL};

	cr_assert_eq(td_start(&D, "tests/e2e/packs", extra), 0);
	cr_assert_eq(mp_connect(D.url, &C), 0);
}
static void up_two_spares(void)
{
	up_spares("2");
}
static void up_one_spare(void)
{
	up_spares("1");
}

/* A create takes a warm spare (and a replacement starts); SIGTERM leaves no
 * worker behind, spares included. */
Test(spares, taken_replaced_and_gone_on_shutdown, .init = up_two_spares)
{
	pid_t spares[16], all[16];
	mp_response *k;
	pid_t taken;

	cr_assert(await_workers(2, 0, spares), "two spares must be started ahead of need");
	create_ok("r", "runaway");
	taken = info("r", &k)->worker_pid;
	mp_response_free(k);
	cr_expect(has_pid(spares, 2, taken), "the instance must get a warm spare (%d)", (int)taken);
	cr_assert(await_workers(3, 0, all), "the spare taken must be replaced");
	mp_disconnect(C);
	cr_assert_eq(td_stop(&D, 0), 0, "moonpend did not stop cleanly");
	for (int i = 0; i < 3; i++)
		cr_expect(!td_alive(all[i]), "worker %d outlived moonpend", (int)all[i]);
}

/* A spare that dies while it waits is replaced, never handed out. */
Test(spares, dead_spare_replaced_not_handed_out, .init = up_one_spare, .fini = down)
{
	pid_t spare[16], fresh[16];
	mp_response *k;
	pid_t got;

	cr_assert(await_workers(1, 0, spare));
	cr_assert_eq(kill(spare[0], SIGKILL), 0);
	cr_assert(await_workers(1, spare[0], fresh), "the dead spare must be replaced");
	create_ok("r", "runaway");
	got = info("r", &k)->worker_pid;
	mp_response_free(k);
	cr_expect_neq(got, spare[0]);
	cr_expect(td_alive(got));
	add("r", 2, NULL);
	cr_expect_eq(total("r"), 2);
}
