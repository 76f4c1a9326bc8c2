/*
 * End-to-end: recovery (docs/recovery.md). An instance whose worker is killed
 * comes back from its newest in-memory snapshot plus the log since it, and is
 * then indistinguishable from an instance that was never disturbed: same
 * effects, same state hash. An input that kills its worker twice is
 * dead-lettered: answered with its status, listed in GetInstance, skipped by
 * every replay. Runs in the test process against a real moonpend.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "client/moonpen.h"
#include "tests/support/daemon.h"
#include "tests/support/resp.h"
#include "tests/support/sched.h"

#define SNAPSHOT_EVERY 16
#define INPUTS 200
#define RUNAWAY_AT 100

static td D;
static mp_client *C;

static void up(void)
{
	const char *extra[] = {"--snapshot-every", "16", NULL};

	cr_assert_eq(td_start(&D, "tests/e2e/packs", extra), 0);
	cr_assert_eq(mp_connect(D.url, &C), 0);
}
static void down(void)
{
	mp_disconnect(C);
	cr_assert_eq(td_stop(&D, 0), 0, "moonpend did not stop cleanly (log %s)", D.log);
}

static void create_ok(const char *id, uint64_t seed)
{
	mp_create_opts o = {.instance_id = id, .pack_id = "recovery", .seed = seed};
	mp_response *r = NULL;

	cr_assert_eq(mp_create(C, &o, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	mp_response_free(r);
}

static Moonpen__V1__InstanceInfo *info(const char *id, mp_response **keep)
{
	cr_assert_eq(mp_info(C, id, keep), 0);
	cr_assert_str_eq(tr_code(*keep), "ok", "%s", tr_msg(*keep));
	return (*keep)->info;
}

struct out {
	char code[32];
	char hash[130];
	char effects[8192];
};

/* Input i of the schedule: a tick of 3 (timers fire, drawing from the RNG), an
 * event "add", an event "hit" (a trigger throttled to 200 ms of instance
 * time), a call. */
static void input(const char *id, int i, struct out *o)
{
	mp_response *r = NULL;

	cr_assert_eq(ts_input(C, id, i, &r), 0, "%s input %d", id, i);
	snprintf(o->code, sizeof o->code, "%s", tr_code(r));
	snprintf(o->hash, sizeof o->hash, "%s", tr_hash(r));
	snprintf(o->effects, sizeof o->effects, "%s", tr_effects(r));
	cr_assert_str_eq(o->code, "ok", "%s input %d: %s", id, i, tr_msg(r));
	mp_response_free(r);
}

static mp_response *backtrack(const char *id)
{
	mp_response *r = NULL;

	cr_assert_eq(mp_call(C, id, "backtrack", NULL, 0, &r), 0);
	return r;
}

static void expect_dead_letter(const Moonpen__V1__InstanceInfo *fo, uint64_t input)
{
	cr_assert_eq(fo->n_dead_letters, 1);
	cr_expect_eq(fo->dead_letters[0]->input, input);
	cr_expect_str_eq(fo->dead_letters[0]->kind, "call");
	cr_expect_str_eq(fo->dead_letters[0]->name, "backtrack");
	cr_expect_eq(fo->dead_letters[0]->code, MOONPEN__V1__STATUS__CODE__TIMEOUT);
	cr_expect(strstr(fo->dead_letters[0]->message, "hard deadline") != NULL, "%s",
		  fo->dead_letters[0]->message);
}

/* The whole schedule on "a" (a runaway call in the middle, killed twice by the
 * watchdog, then dead-lettered) and on "b" (same seed, never disturbed): every
 * answer and the final state hash must be the same, and the log stays shorter
 * than the snapshot period. */
Test(recovery, restore_equals_undisturbed_run, .init = up, .fini = down, .timeout = 120)
{
	static struct out oa, ob;
	mp_response *r, *ka, *kb;
	int i, pulses = 0, hits = 0;

	create_ok("a", 7);
	create_ok("b", 7);
	for (i = 0; i < INPUTS; i++) {
		if (i == RUNAWAY_AT) {
			r = backtrack("a");
			cr_expect_str_eq(tr_code(r), "timeout", "%s", tr_msg(r));
			cr_expect(strstr(tr_msg(r), "dead-lettered") != NULL, "%s", tr_msg(r));
			mp_response_free(r);
		}
		input("a", i, &oa);
		input("b", i, &ob);
		cr_assert_str_eq(oa.effects, ob.effects, "input %d", i);
		cr_assert_str_eq(oa.hash, ob.hash, "input %d", i);
		pulses += strstr(ob.effects, "pulse ") != NULL;
		hits += strstr(ob.effects, "hit ") != NULL;
		if (i % 10 == 9) {
			cr_assert_lt(info("a", &ka)->log_length, SNAPSHOT_EVERY + 1, "input %d", i);
			mp_response_free(ka);
		}
	}
	cr_expect_gt(pulses, 10, "the timers must fire");
	cr_expect(hits > 0 && hits < INPUTS / 4, "the throttle must hold some hits back (%d)",
		  hits);

	Moonpen__V1__InstanceInfo *fa = info("a", &ka), *fb = info("b", &kb);
	cr_expect_eq(fa->state_hash.len, 32);
	cr_expect(fa->state_hash.len == fb->state_hash.len &&
		      memcmp(fa->state_hash.data, fb->state_hash.data, fa->state_hash.len) == 0,
		  "final state hashes differ");
	cr_expect_eq(fa->tick, fb->tick);
	cr_expect_eq(fa->inputs, INPUTS);
	cr_expect_eq(fb->inputs, INPUTS);
	cr_expect_eq(fa->restarts, 2, "killed twice, restored twice");
	cr_expect_eq(fb->restarts, 0);
	cr_expect_str_eq(fa->isolation, "instance");
	expect_dead_letter(fa, RUNAWAY_AT);
	cr_expect_eq(fb->n_dead_letters, 0);
	cr_expect_lt(fa->log_length, SNAPSHOT_EVERY + 1);
	cr_expect(fa->snapshots >= 1 && fa->snapshots <= 4, "%u snapshots", fa->snapshots);
	cr_expect_eq(fa->snapshot_input + fa->log_length, INPUTS,
		     "the snapshot and the log since it cover every input");
	cr_expect_gt(fa->snapshot_tick, 0);
	mp_response_free(ka);
	mp_response_free(kb);
}

static int64_t total(const char *id, char *hash)
{
	mp_response *r = NULL;
	int64_t n;

	cr_assert_eq(mp_call(C, id, "total", NULL, 0, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	cr_assert_eq(r->result->n_returns, 1);
	n = r->result->returns[0]->int_value;
	if (hash)
		snprintf(hash, 130, "%s", tr_hash(r));
	mp_response_free(r);
	return n;
}

/* A worker that dies under an input by no fault of the input (killed from
 * outside while idle) costs one restore and a retry: the input is answered
 * normally. The dead letter recorded before is skipped by that replay. */
Test(dead_letter, skipped_by_replay_and_retry_succeeds, .init = up, .fini = down)
{
	char h0[130], h1[130];
	mp_response *r, *k;
	struct out o;
	pid_t pid;

	create_ok("d", 5);
	input("d", 1, &o); /* add 1 */
	cr_assert_eq(total("d", h0), 1);
	r = backtrack("d");
	cr_expect_str_eq(tr_code(r), "timeout", "%s", tr_msg(r));
	cr_expect(strstr(tr_msg(r), "dead-lettered") != NULL, "%s", tr_msg(r));
	mp_response_free(r);

	Moonpen__V1__InstanceInfo *fo = info("d", &k);
	cr_expect_eq(fo->restarts, 2);
	cr_expect_eq(fo->inputs, 2, "the dead letter is not an applied input");
	cr_expect_eq(fo->state, MOONPEN__V1__INSTANCE_INFO__STATE__RUNNING);
	expect_dead_letter(fo, 2);
	pid = fo->worker_pid;
	mp_response_free(k);

	cr_assert_eq(kill(pid, SIGKILL), 0);
	cr_assert_eq(total("d", h1), 1, "restored by a replay that skips the dead letter");
	cr_expect_str_eq(h1, h0);
	fo = info("d", &k);
	cr_expect_eq(fo->restarts, 3);
	cr_expect_neq(fo->worker_pid, pid);
	cr_expect_eq(fo->n_dead_letters, 1, "the retried input was not dead-lettered");
	mp_response_free(k);
}
