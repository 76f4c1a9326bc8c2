/*
 * test_ilog — an instance's recovery record (supervisor/ilog.c): the log keeps
 * packed inputs in order and drops its tail; a snapshot blob is checked before
 * it is kept, the newest `keep` are kept and the log is emptied; dead letters
 * keep the newest ILOG_MAX_DEAD; the log is kept since the oldest restore
 * point (Rollback plans, trace starts, reset); entries read back from the store
 * before the newest snapshot carry their counted ticks but no outcome (Rollback
 * reaches them, traces start after them). Also the manifest's "isolation" field, which
 * picks per-instance or pooled workers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common/manifest.h"
#include "supervisor/ilog.h"

static void append_call(ilog *l, const char *fn)
{
	Moonpen__Worker__V1__ToWorker tw = MOONPEN__WORKER__V1__TO_WORKER__INIT;
	Moonpen__V1__Call c = MOONPEN__V1__CALL__INIT;

	c.instance_id = "i";
	c.function = (char *)fn;
	tw.seq = 99;
	tw.op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_CALL;
	tw.call = &c;
	cr_assert_eq(ilog_append(l, &tw), 0);
	cr_expect_eq(tw.seq, 0, "logged with seq 0");
}

static const char *call_at(const ilog *l, size_t i)
{
	static char fn[64];
	Moonpen__Worker__V1__ToWorker *tw = NULL;

	cr_assert_eq(ilog_get(l, i, &tw), 0);
	cr_assert_eq(tw->op_case, MOONPEN__WORKER__V1__TO_WORKER__OP_CALL);
	snprintf(fn, sizeof fn, "%s", tw->call->function);
	protobuf_c_message_free_unpacked(&tw->base, NULL);
	return fn;
}

/* An encoded Snapshot header; the caller frees *out. */
static size_t snapshot(const char *id, uint32_t format, uint64_t tick, size_t hashlen,
		       uint8_t **out)
{
	Moonpen__Worker__V1__Snapshot s = MOONPEN__WORKER__V1__SNAPSHOT__INIT;
	uint8_t hash[32];

	memset(hash, (int)tick, sizeof hash);
	s.format = format;
	s.instance_id = (char *)id;
	s.tick = tick;
	s.state_hash.data = hash;
	s.state_hash.len = hashlen;
	*out = malloc(protobuf_c_message_get_packed_size(&s.base) + 1);
	cr_assert_not_null(*out);
	return protobuf_c_message_pack(&s.base, *out);
}

Test(ilog, appends_in_order_and_truncates_the_tail)
{
	ilog l = {0};
	char name[16];

	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof name, "f%d", i);
		append_call(&l, name);
	}
	cr_assert_eq(l.n, 100);
	cr_expect_str_eq(call_at(&l, 0), "f0");
	cr_expect_str_eq(call_at(&l, 99), "f99");
	ilog_truncate(&l, 3);
	cr_assert_eq(l.n, 97);
	cr_expect_str_eq(call_at(&l, 96), "f96");
	cr_expect_eq(ilog_get(&l, 97, &(Moonpen__Worker__V1__ToWorker *){NULL}), -EINVAL);
	ilog_truncate(&l, 1000);
	cr_expect_eq(l.n, 0);
	ilog_free(&l);
}

Test(ilog, snapshot_kept_checked_and_log_emptied)
{
	ilog l = {0};
	uint8_t *b = NULL;
	char err[256];
	size_t n;

	cr_expect_null(ilog_snap_newest(&l));
	for (int i = 1; i <= 6; i++) {
		append_call(&l, "x");
		n = snapshot("inst", 1, (uint64_t)i * 10, 32, &b);
		cr_assert_eq(ilog_snap_add(&l, b, n, "inst", (uint64_t)i, 4, err, sizeof err), 0,
			     "%s", err);
		free(b);
		cr_expect_eq(l.n, 0, "the snapshot covers the whole log");
	}
	cr_expect_eq(l.nsnaps, 4, "only the newest 4 are kept");
	cr_expect_eq(l.snaps[0].tick, 30);
	cr_expect_eq(ilog_snap_newest(&l)->tick, 60);
	cr_expect_eq(ilog_snap_newest(&l)->input, 6);
	cr_expect_eq(ilog_snap_newest(&l)->hash[0], 60);

	append_call(&l, "kept");
	n = snapshot("other", 1, 70, 32, &b);
	cr_expect_eq(ilog_snap_add(&l, b, n, "inst", 7, 4, err, sizeof err), -EBADMSG);
	cr_expect(strstr(err, "another instance") != NULL, "%s", err);
	free(b);
	n = snapshot("inst", 2, 70, 32, &b);
	cr_expect_eq(ilog_snap_add(&l, b, n, "inst", 7, 4, err, sizeof err), -EBADMSG);
	free(b);
	n = snapshot("inst", 1, 70, 31, &b);
	cr_expect_eq(ilog_snap_add(&l, b, n, "inst", 7, 4, err, sizeof err), -EBADMSG);
	free(b);
	cr_expect_eq(
	    ilog_snap_add(&l, (const uint8_t *)"\xff\xff\xff", 3, "inst", 7, 4, err, sizeof err),
	    -EBADMSG);
	cr_expect_eq(l.n, 1, "a refused snapshot leaves the log alone");
	cr_expect_eq(ilog_snap_newest(&l)->tick, 60);
	ilog_free(&l);
}

Test(ilog, dead_letters_keep_the_newest)
{
	Moonpen__V1__InstanceInfo fo = MOONPEN__V1__INSTANCE_INFO__INIT;
	ilog l = {0};

	for (int i = 0; i < ILOG_MAX_DEAD + 5; i++) {
		ilog_dead d = {
		    .input = (uint64_t)i, .tick = 7, .code = MOONPEN__V1__STATUS__CODE__TIMEOUT};
		snprintf(d.kind, sizeof d.kind, "call");
		snprintf(d.name, sizeof d.name, "f%d", i);
		snprintf(d.message, sizeof d.message, "killed");
		ilog_dead_add(&l, &d);
	}
	cr_assert_eq(ilog_dead_to_info(&l, &fo), 0);
	cr_assert_eq(fo.n_dead_letters, ILOG_MAX_DEAD);
	cr_expect_eq(fo.dead_letters[0]->input, 5, "oldest kept first");
	cr_expect_eq(fo.dead_letters[ILOG_MAX_DEAD - 1]->input, ILOG_MAX_DEAD + 4);
	cr_expect_str_eq(fo.dead_letters[0]->name, "f5");
	cr_expect_str_eq(fo.dead_letters[0]->kind, "call");
	cr_expect_eq(fo.dead_letters[0]->code, MOONPEN__V1__STATUS__CODE__TIMEOUT);
	for (size_t i = 0; i < fo.n_dead_letters; i++)
		protobuf_c_message_free_unpacked(&fo.dead_letters[i]->base, NULL);
	free(fo.dead_letters);
	ilog_free(&l);
}

static int parse_isolation(const char *value, mf_manifest **m, char *err, size_t errlen)
{
	char json[256];

	snprintf(
	    json, sizeof json,
	    "{\"id\":\"p\",\"version\":\"1.0.0\",\"engine\":\"lua\",\"entry\":\"main.lua\"%s%s}",
	    value ? ",\"isolation\":" : "", value ? value : "");
	return mf_parse(json, strlen(json), m, err, errlen);
}

Test(manifest_isolation, instance_by_default_pool_on_request)
{
	mf_manifest *m = NULL;
	char err[256];

	cr_assert_eq(parse_isolation(NULL, &m, err, sizeof err), 0, "%s", err);
	cr_expect_eq(m->pool, 0);
	mf_free(m);
	cr_assert_eq(parse_isolation("\"instance\"", &m, err, sizeof err), 0, "%s", err);
	cr_expect_eq(m->pool, 0);
	mf_free(m);
	cr_assert_eq(parse_isolation("\"pool\"", &m, err, sizeof err), 0, "%s", err);
	cr_expect_eq(m->pool, 1);
	mf_free(m);
	m = NULL;
	cr_expect_eq(parse_isolation("\"process\"", &m, err, sizeof err), -EINVAL);
	cr_expect(strstr(err, "field 'isolation'") != NULL, "%s", err);
	cr_expect_eq(parse_isolation("1", &m, err, sizeof err), -EINVAL);
	cr_expect(strstr(err, "isolation") != NULL, "%s", err);
}

/* ---- retention since the oldest restore point, outcomes, rollback (H3) ---- */

/* A call "fN" logged and answered: its result tick is `after`. */
static void input_done(ilog *l, int i, uint64_t before, uint64_t after)
{
	Moonpen__V1__Result res = MOONPEN__V1__RESULT__INIT;
	uint8_t hash[32];
	char name[16];

	snprintf(name, sizeof name, "f%d", i);
	append_call(l, name);
	memset(hash, i, sizeof hash);
	res.tick = after;
	res.state_hash.data = hash;
	res.state_hash.len = 32;
	cr_assert_eq(ilog_set_outcome(l, &res, before), 0);
}

static void snap_at(ilog *l, uint64_t tick, uint64_t input, unsigned keep)
{
	uint8_t *b;
	size_t len = snapshot("i", 1, tick, 32, &b);
	char err[128];

	cr_assert_eq(ilog_snap_add(l, b, len, "i", input, keep, err, sizeof err), 0, "%s", err);
	free(b);
}

/* Inputs i = 0..11 at tick i -> i+1, a snapshot after every 3 (ticks 3, 6,
 * 9, 12), keep 3: the creation goes first, then the snapshot at 3. */
static void history(ilog *l)
{
	Moonpen__V1__Result init = MOONPEN__V1__RESULT__INIT;

	cr_assert_eq(ilog_set_create(l, &init), 0);
	for (int i = 0; i < 12; i++) {
		input_done(l, i, (uint64_t)i, (uint64_t)i + 1);
		if (i % 3 == 2)
			snap_at(l, (uint64_t)i + 1, (uint64_t)i + 1, 3);
	}
}

Test(ilog, keeps_the_log_since_the_oldest_snapshot)
{
	const ilog_snap *sn = NULL;
	size_t first = 9;
	ilog l = {0};

	history(&l);
	cr_expect_eq(l.create_ok, 0);
	cr_assert_eq(l.nsnaps, 3);
	cr_expect_eq(l.snaps[0].tick, 6);
	cr_expect_eq(l.n, 0, "the newest snapshot covers every input");
	cr_expect_eq(l.nall, 6, "inputs 6..11 are kept for rollback");
	cr_expect_eq(l.seq0, 6);
	cr_assert_eq(ilog_trace_start(&l, &sn, &first), 0);
	cr_expect_eq(sn, &l.snaps[0]);
	cr_expect_eq(first, 0);
	ilog_free(&l);
}

Test(ilog, creation_is_a_restore_point_until_keep_is_reached)
{
	const ilog_snap *sn = &(ilog_snap){0};
	size_t first = 9;
	ilog l = {0};

	cr_assert_eq(ilog_set_create(&l, NULL), 0);
	for (int i = 0; i < 6; i++) {
		input_done(&l, i, (uint64_t)i, (uint64_t)i + 1);
		if (i % 3 == 2)
			snap_at(&l, (uint64_t)i + 1, (uint64_t)i + 1, 3);
	}
	cr_expect_eq(l.create_ok, 1);
	cr_expect_eq(l.nall, 6);
	cr_assert_eq(ilog_trace_start(&l, &sn, &first), 0);
	cr_expect_null(sn);
	cr_expect_eq(first, 0);
	ilog_free(&l);
}

Test(ilog, rollback_plan_replays_inputs_ending_at_or_before_the_tick)
{
	const ilog_snap *sn = NULL;
	uint64_t oldest = 0;
	size_t keep = 0;
	ilog l = {0};

	history(&l);
	cr_assert_eq(ilog_rollback_plan(&l, 10, &sn, &keep, &oldest), 0);
	cr_expect_eq(sn, &l.snaps[1], "the snapshot at tick 9");
	cr_expect_eq(keep, 1, "input 9 ends at tick 10; input 10 at 11");
	cr_expect_eq(ilog_rollback(&l, sn, keep), 2, "inputs 10 and 11 dropped");
	cr_expect_eq(l.nsnaps, 2);
	cr_expect_eq(l.n, 1);
	cr_expect_str_eq(call_at(&l, 0), "f9");
	cr_expect_eq(ilog_rollback_plan(&l, 5, &sn, &keep, &oldest), -ENOENT);
	cr_expect_eq(oldest, 6);
	ilog_free(&l);
}

Test(ilog, reset_keeps_the_dead_letters_only)
{
	ilog_dead d = {.input = 4, .code = MOONPEN__V1__STATUS__CODE__TIMEOUT};
	ilog l = {0};

	history(&l);
	ilog_dead_add(&l, &d);
	ilog_reset(&l);
	cr_expect_eq(l.nall, 0);
	cr_expect_eq(l.n, 0);
	cr_expect_eq(l.nsnaps, 0);
	cr_expect_eq(l.create_ok, 0);
	cr_expect_eq(l.ndead, 1);
	append_call(&l, "after");
	cr_expect_str_eq(call_at(&l, 0), "after");
	ilog_free(&l);
}

/* ---- entries read back from the store before the newest snapshot (restart) ---- */

/* Appends tw as ilog_append_old does on a restart; returns its result. */
static int append_old(ilog *l, Moonpen__Worker__V1__ToWorker *tw, uint64_t *tick)
{
	uint8_t buf[256];
	size_t len = protobuf_c_message_get_packed_size(&tw->base);

	cr_assert_leq(len, sizeof buf);
	protobuf_c_message_pack(&tw->base, buf);
	return ilog_append_old(l, buf, len, tick);
}

/* A restarted log: the snapshot at tick 5, then tick(2), its query's answer,
 * an event, tick(0: one tick), a call, the newest snapshot at tick 8, and one
 * input replayed with its outcome. */
static void restarted(ilog *l)
{
	Moonpen__Worker__V1__ToWorker tw = MOONPEN__WORKER__V1__TO_WORKER__INIT;
	Moonpen__V1__Tick t = MOONPEN__V1__TICK__INIT;
	Moonpen__V1__SendEvent ev = MOONPEN__V1__SEND_EVENT__INIT;
	Moonpen__V1__Call c = MOONPEN__V1__CALL__INIT;
	Moonpen__V1__HostResult hr = MOONPEN__V1__HOST_RESULT__INIT;
	uint64_t tick = 5;

	snap_at(l, 5, 2, 3);
	t.count = 2;
	tw.op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_TICK;
	tw.tick = &t;
	cr_assert_eq(append_old(l, &tw, &tick), 0);
	tw.op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_HOST_RESULT;
	tw.host_result = &hr;
	cr_assert_eq(append_old(l, &tw, &tick), 0);
	ev.name = "hit";
	tw.op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_EVENT;
	tw.event = &ev;
	cr_assert_eq(append_old(l, &tw, &tick), 0);
	t.count = 0;
	tw.op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_TICK;
	tw.tick = &t;
	cr_assert_eq(append_old(l, &tw, &tick), 0);
	c.function = "f";
	tw.op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_CALL;
	tw.call = &c;
	cr_assert_eq(append_old(l, &tw, &tick), 0);
	cr_assert_eq(tick, 8, "5 + 2 + 1");
	snap_at(l, 8, 5, 3);
	input_done(l, 9, 8, 9);
}

Test(ilog, entries_read_back_carry_their_ticks_but_no_outcome)
{
	static const uint64_t before[] = {5, 0, 7, 7, 8}, after[] = {7, 0, 7, 8, 8};
	uint8_t junk[] = {0xff, 0xff, 0xff};
	uint64_t tick = 3;
	ilog l = {0};

	restarted(&l);
	cr_assert_eq(l.nsnaps, 2);
	cr_assert_eq(l.nall, 6);
	cr_assert_eq(l.n, 1, "only the replayed input follows the newest snapshot");
	for (size_t i = 0; i < 5; i++) {
		const ilog_ent *e = &l.all[i];
		cr_expect_eq(e->input, i != 1, "entry %zu", i);
		cr_expect_eq(e->done, i != 1, "entry %zu", i);
		cr_expect_eq(e->ticks_only, i != 1, "entry %zu", i);
		cr_expect_null(e->out, "entry %zu: no outcome", i);
		if (e->input) {
			cr_expect_eq(e->tick, before[i], "entry %zu", i);
			cr_expect_eq(e->tick_after, after[i], "entry %zu", i);
		}
	}
	cr_expect_eq(l.all[5].ticks_only, 0);
	cr_expect_not_null(l.all[5].out);
	cr_expect_eq(ilog_append_old(&l, junk, sizeof junk, &tick), -EBADMSG);
	cr_expect_eq(tick, 3);
	cr_expect_eq(l.nall, 6);
	ilog_free(&l);
}

Test(ilog, restarted_log_rolls_back_to_older_snapshots_and_traces_from_the_newest)
{
	const ilog_snap *sn = NULL;
	uint64_t oldest = 0;
	size_t keep = 0, first = 0;
	ilog l = {0};

	restarted(&l);
	cr_assert_eq(ilog_trace_start(&l, &sn, &first), 0);
	cr_expect_eq(sn, &l.snaps[1], "the inputs before the newest snapshot lack outcomes");
	cr_expect_eq(first, 5);
	cr_assert_eq(ilog_rollback_plan(&l, 7, &sn, &keep, &oldest), 0);
	cr_expect_eq(sn, &l.snaps[0], "the older snapshot at tick 5");
	cr_expect_eq(keep, 3, "tick(2), its answer and the event end at tick 7");
	cr_expect_eq(ilog_rollback_plan(&l, 4, &sn, &keep, &oldest), -ENOENT);
	cr_expect_eq(oldest, 5);
	cr_assert_eq(ilog_rollback_plan(&l, 7, &sn, &keep, &oldest), 0);
	cr_expect_eq(ilog_rollback(&l, sn, keep), 3, "tick(0), the call and the input after");
	cr_expect_eq(l.nsnaps, 1);
	cr_expect_eq(l.n, 3);
	cr_expect_eq(ilog_trace_start(&l, &sn, &first), -ENOENT,
		     "no restore point is followed by outcomes only");
	ilog_free(&l);
}
