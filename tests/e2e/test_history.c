/*
 * End-to-end: an instance's history (docs/recovery.md, "History"):
 * SnapshotInstance and RestoreInstance (in place and into a new id),
 * Rollback to a tick (the state hash equals the one answered at that point),
 * ExportTrace and GetIncident, both replayed equal by `spk replay`. Runs in
 * the test process against a real moonpend with the recovery pack (timers,
 * RNG draws and a throttled trigger: everything a snapshot must carry).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/moonpen.h"
#include "common/val_json.h"
#include "policy/limits.h"
#include "tests/support/daemon.h"
#include "tests/support/resp.h"
#include "tests/support/sched.h"
#include "worker.pb-c.h"

static td D;
static mp_client *C;

static void up(void)
{
	const char *extra[] = {"--snapshot-every", "3", "--keep-snapshots", "3", NULL};

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

struct out {
	uint64_t tick;
	char hash[65];
	char effects[2048];
};

/* Input i of the schedule (as test_recovery): tick 3, event add, event hit
 * (throttled trigger), call total. */
static void input(const char *id, int i, struct out *o)
{
	mp_response *r = NULL;

	cr_assert_eq(ts_input(C, id, i, &r), 0, "%s input %d", id, i);
	cr_assert_str_eq(tr_code(r), "ok", "%s input %d: %s", id, i, tr_msg(r));
	o->tick = r->result->tick;
	snprintf(o->hash, sizeof o->hash, "%s", tr_hash(r));
	snprintf(o->effects, sizeof o->effects, "%s", tr_effects(r));
	mp_response_free(r);
}

static void expect_same(const struct out *a, const struct out *b, int i)
{
	cr_expect_eq(a->tick, b->tick, "input %d", i);
	cr_expect_str_eq(a->hash, b->hash, "input %d", i);
	cr_expect_str_eq(a->effects, b->effects, "input %d", i);
}

static mp_response *snapshot_ok(const char *id)
{
	mp_response *r = NULL;

	cr_assert_eq(mp_snapshot(C, id, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	cr_assert_gt(r->snapshot.len, 0);
	return r;
}

/* A snapshot taken, restored in place and into a copy: both then answer the
 * same inputs exactly as the original did after the snapshot. */
Test(history, snapshot_restore_in_place_and_copy, .init = up, .fini = down, .timeout = 60)
{
	static struct out before[10], after[10], again[10];
	mp_response *snap, *r = NULL;
	int i;

	create_ok("a", 7);
	for (i = 0; i < 10; i++)
		input("a", i, &before[i]);
	snap = snapshot_ok("a");
	for (i = 0; i < 10; i++)
		input("a", 10 + i, &after[i]);

	cr_assert_eq(mp_restore(C, "a", snap->snapshot.data, snap->snapshot.len, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	cr_expect_eq(r->result->tick, before[9].tick);
	cr_expect_str_eq(tr_hash(r), before[9].hash);
	cr_expect_eq(r->info->inputs, 10);
	cr_expect_eq(r->info->log_length, 0);
	mp_response_free(r);
	for (i = 0; i < 10; i++) {
		input("a", 10 + i, &again[i]);
		expect_same(&after[i], &again[i], 10 + i);
	}

	/* into a free id: a copy, created from the blob */
	cr_assert_eq(mp_restore(C, "copy", snap->snapshot.data, snap->snapshot.len, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	cr_expect_str_eq(r->info->instance_id, "copy");
	cr_expect_str_eq(r->info->pack_id, "recovery");
	cr_expect_eq(r->info->seed, 7);
	cr_expect_eq(r->info->tick, before[9].tick);
	cr_expect_str_eq(tr_hash(r), before[9].hash);
	mp_response_free(r);
	for (i = 0; i < 10; i++) {
		input("copy", 10 + i, &again[i]);
		expect_same(&after[i], &again[i], 10 + i);
	}
	mp_response_free(snap);
}

static void restore_expect(const char *id, const void *blob, size_t len, const char *code,
			   const char *msg_part)
{
	mp_response *r = NULL;

	cr_assert_eq(mp_restore(C, id, blob, len, &r), 0);
	cr_expect_str_eq(tr_code(r), code, "%s", tr_msg(r));
	cr_expect(strstr(tr_msg(r), msg_part) != NULL, "message: %s", tr_msg(r));
	mp_response_free(r);
}

/* A snapshot header of our own making (the worker never sees these). */
static uint8_t *fake_snapshot(uint32_t format, const char *pack, size_t *len)
{
	Moonpen__Worker__V1__Snapshot s = MOONPEN__WORKER__V1__SNAPSHOT__INIT;
	static uint8_t hash[32];
	uint8_t *buf;

	s.format = format;
	s.instance_id = "b";
	s.pack_id = (char *)pack;
	s.pack_version = "1.0.0";
	s.tick_ms = 50;
	s.state_hash.data = hash;
	s.state_hash.len = 32;
	*len = protobuf_c_message_get_packed_size(&s.base);
	buf = malloc(*len);
	cr_assert_not_null(buf);
	protobuf_c_message_pack(&s.base, buf);
	return buf;
}

/* The blob with one bit of its header's state hash flipped. */
static uint8_t *tamper_hash(const uint8_t *blob, size_t n, size_t *len)
{
	Moonpen__Worker__V1__Snapshot *s = moonpen__worker__v1__snapshot__unpack(NULL, n, blob);
	uint8_t *buf;

	cr_assert_not_null(s);
	cr_assert_eq(s->state_hash.len, 32);
	s->state_hash.data[0] ^= 1;
	*len = protobuf_c_message_get_packed_size(&s->base);
	buf = malloc(*len);
	cr_assert_not_null(buf);
	protobuf_c_message_pack(&s->base, buf);
	moonpen__worker__v1__snapshot__free_unpacked(s, NULL);
	return buf;
}

Test(history, restore_refuses_bad_blobs, .init = up, .fini = down, .timeout = 60)
{
	static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
	struct out o;
	mp_response *snap, *r = NULL;
	uint8_t *f;
	size_t len, i;
	char hex[65];

	create_ok("b", 3);
	input("b", 0, &o);
	restore_expect("b", junk, sizeof junk, "invalid_argument", "does not decode");
	f = fake_snapshot(2, "recovery", &len);
	restore_expect("b", f, len, "invalid_argument", "header refused (format 2");
	free(f);
	f = fake_snapshot(1, "nope", &len);
	restore_expect("b", f, len, "not_found", "pack nope 1.0.0, which is not installed");
	restore_expect("fresh", f, len, "not_found", "pack nope 1.0.0, which is not installed");
	free(f);
	/* the state does not match its hash: the worker refuses, b is unchanged */
	snap = snapshot_ok("b");
	f = tamper_hash(snap->snapshot.data, snap->snapshot.len, &len);
	restore_expect("b", f, len, "invalid_argument", "(the instance is unchanged)");
	free(f);
	mp_response_free(snap);
	cr_assert_eq(mp_info(C, "b", &r), 0);
	cr_expect_str_eq(tr_code(r), "ok");
	cr_expect_eq(r->info->state, MOONPEN__V1__INSTANCE_INFO__STATE__RUNNING);
	cr_assert_eq(r->info->state_hash.len, 32);
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", r->info->state_hash.data[i]);
	cr_expect_str_eq(hex, o.hash);
	mp_response_free(r);
}

/* Rollback to tick T: the state after the last input whose result tick is
 * <= T (events at T included); the inputs after it are dropped, and sending
 * them again gives what they gave the first time. */
Test(history, rollback_to_a_tick, .init = up, .fini = down, .timeout = 60)
{
	static struct out o[32], again[32];
	mp_response *r = NULL;
	uint64_t target;
	int i, last = -1;

	create_ok("r", 11);
	for (i = 0; i < 32; i++)
		input("r", i, &o[i]);
	target = o[24].tick; /* input 24 is a tick; 25-27 are events and a call at it */
	for (i = 0; i < 32; i++)
		if (o[i].tick <= target)
			last = i;
	cr_assert_eq(last, 27);
	/* snapshots every 3 entries, the newest 3 kept: after inputs 23, 26, 29 */

	cr_assert_eq(mp_rollback(C, "r", target, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	cr_expect_eq(r->result->tick, target);
	cr_expect_str_eq(tr_hash(r), o[27].hash);
	cr_expect_eq(r->info->inputs, 28);
	mp_response_free(r);
	for (i = 28; i < 32; i++) {
		input("r", i, &again[i]);
		expect_same(&o[i], &again[i], i);
	}

	/* at a tick no input ended on: the last input before it */
	cr_assert_eq(mp_rollback(C, "r", o[31].tick - 1, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	cr_expect_eq(r->result->tick, o[27].tick);
	cr_expect_str_eq(tr_hash(r), o[27].hash);
	mp_response_free(r);

	/* the oldest kept snapshot is the one after input 23 (tick 18) */
	cr_assert_eq(mp_rollback(C, "r", 0, &r), 0);
	cr_expect_str_eq(tr_code(r), "invalid_argument");
	cr_expect_str_eq(tr_msg(r), "tick 0 is before the oldest kept snapshot (tick 18)");
	mp_response_free(r);
}

/* Writes text to a temporary file; returns its path (static). */
static const char *save(const char *name, const uint8_t *data, size_t len)
{
	static char path[512];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", D.dir, name);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(data, 1, len, f), len);
	fclose(f);
	return path;
}

/* spk replay of a trace file with the pack (and schema) of the test: its
 * exit status, stdout in out. */
static const char *replay_args = "--pack tests/e2e/packs/recovery";

static int spk_replay(const char *path, char *out, size_t len)
{
	return td_spk_replay(path, replay_args, out, len);
}

static json_t *trace_of(mp_response *r)
{
	json_error_t e;
	json_t *j = json_loadb((const char *)r->trace_json.data, r->trace_json.len, 0, &e);

	cr_assert_not_null(j, "trace is not JSON: %s", e.text);
	return j;
}

/* Exports the trace of id, replays it with spk; returns its input count. */
static size_t export_and_replay(const char *id, int from_snapshot, const char *final_hash)
{
	mp_response *r = NULL;
	char out[4096], want[200];
	json_t *j, *ins;
	size_t n;

	cr_assert_eq(mp_trace(C, id, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	j = trace_of(r);
	ins = json_object_get(j, "inputs");
	n = json_array_size(ins);
	cr_expect_eq(json_object_get(j, "start_snapshot") != NULL, from_snapshot);
	cr_expect_eq(json_object_get(j, "init") != NULL, !from_snapshot);
	cr_expect_str_eq(
	    json_string_value(json_object_get(json_array_get(ins, n - 1), "state_hash")),
	    final_hash);
	json_decref(j);
	cr_expect_eq(
	    spk_replay(save("trace.json", r->trace_json.data, r->trace_json.len), out, sizeof out),
	    0, "%s", out);
	snprintf(want, sizeof want, "replay: %zu inputs equal, final state_hash %s", n, final_hash);
	cr_expect(strstr(out, want) != NULL, "spk said: %s", out);
	mp_response_free(r);
	return n;
}

Test(history, export_trace_replays_equal, .init = up, .fini = down, .timeout = 90)
{
	static struct out o[30];
	int i;

	create_ok("t", 5);
	for (i = 0; i < 7; i++)
		input("t", i, &o[i]);
	/* creation + 2 snapshots: still within --keep-snapshots 3, from creation */
	cr_expect_eq(export_and_replay("t", 0, o[6].hash), 7);
	for (; i < 30; i++)
		input("t", i, &o[i]);
	/* from the oldest of 3 kept snapshots (after inputs 23, 26, 29) */
	cr_expect_eq(export_and_replay("t", 1, o[29].hash), 6);
}

Test(history, incident_replays_the_kill, .init = up, .fini = down, .timeout = 90)
{
	static struct out o[5];
	mp_response *r = NULL;
	char out[4096];
	json_t *j, *last;
	size_t n;
	int i;

	create_ok("k", 9);
	cr_assert_eq(mp_incident(C, "k", &r), 0);
	cr_expect_str_eq(tr_code(r), "not_found");
	cr_expect_str_eq(tr_msg(r), "no incident recorded for instance k");
	mp_response_free(r);
	for (i = 0; i < 5; i++)
		input("k", i, &o[i]);
	cr_assert_eq(mp_call(C, "k", "backtrack", NULL, 0, &r), 0);
	cr_expect_str_eq(tr_code(r), "timeout", "%s", tr_msg(r));
	mp_response_free(r);

	cr_assert_eq(mp_incident(C, "k", &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	j = trace_of(r);
	/* the snapshot after input 2 (every 3 entries), inputs 3-4, the kill */
	cr_expect(json_object_get(j, "start_snapshot") != NULL);
	n = json_array_size(json_object_get(j, "inputs"));
	cr_expect_eq(n, 3);
	last = json_array_get(json_object_get(j, "inputs"), n - 1);
	cr_expect_str_eq(json_string_value(json_object_get(last, "name")), "backtrack");
	cr_expect_str_eq(json_string_value(json_object_get(last, "status")), "TIMEOUT");
	cr_expect(json_is_true(json_object_get(last, "killed")));
	cr_expect_eq(json_integer_value(json_object_get(last, "tick")), o[4].tick);
	json_decref(j);
	cr_expect_eq(spk_replay(save("incident.json", r->trace_json.data, r->trace_json.len), out,
				sizeof out),
		     0, "%s", out);
	cr_expect(strstr(out, "replay: 3 inputs equal") != NULL, "spk said: %s", out);
	mp_response_free(r);
}

/* ---- a trace with query answers (the query pack and its host API) ---- */

static void up_query(void)
{
	const char *extra[] = {"--host-api", "tests/e2e/packs/host_api_query.json", NULL};

	replay_args = "--pack tests/e2e/packs/query --host-api tests/e2e/packs/host_api_query.json";
	cr_assert_eq(td_start(&D, "tests/e2e/packs", extra), 0);
	cr_assert_eq(mp_connect(D.url, &C), 0);
}

/* An event of the query pack; returns the response. */
static mp_response *event(const char *id, const char *name, const char *json)
{
	mp_response *r = NULL;
	val_t *v = NULL;
	char err[128];

	cr_assert_eq(vjson_parse(json, 8, &v, err, sizeof err), 0, "%s", err);
	cr_assert_eq(mp_event(C, id, name, v, &r), 0);
	val_free(v);
	return r;
}

static mp_response *answer(const char *id, mp_response *pending, int64_t amount)
{
	mp_response *r = NULL;
	val_t *v = val_new_int(amount);

	cr_assert_str_eq(tr_code(pending), "pending", "%s", tr_msg(pending));
	cr_assert_eq(mp_host_result(C, id, pending->host_call->call_id, v, NULL, &r), 0);
	val_free(v);
	mp_response_free(pending);
	return r;
}

Test(history, trace_with_query_answers_replays_equal, .init = up_query, .fini = down, .timeout = 60)
{
	mp_response *r, *c = NULL;
	char hash[65];
	json_t *j, *ins;

	{
		mp_create_opts o = {.instance_id = "q", .pack_id = "query", .seed = 2};
		cr_assert_eq(mp_create(C, &o, &c), 0);
		cr_assert_str_eq(tr_code(c), "ok", "%s", tr_msg(c));
		mp_response_free(c);
	}
	r = answer("q", event("q", "loot", "{\"player\":\"p1\"}"), 40);
	cr_expect_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	mp_response_free(r);
	r = answer("q", event("q", "trade", "{\"player\":\"p1\",\"other\":\"p2\"}"), 5);
	r = answer("q", r, 7);
	cr_expect_str_eq(tr_effects(r), "ui.broadcast[\"trade 5+7\"]\n");
	mp_response_free(r);
	r = event("q", "bump", "{}");
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	snprintf(hash, sizeof hash, "%s", tr_hash(r));
	mp_response_free(r);

	cr_assert_eq(mp_trace(C, "q", &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	j = trace_of(r);
	ins = json_object_get(j, "inputs");
	cr_assert_eq(json_array_size(ins), 3);
	cr_expect_eq(json_array_size(json_object_get(json_array_get(ins, 1), "answers")), 2);
	cr_expect_eq(
	    json_integer_value(json_object_get(
		json_array_get(json_object_get(json_array_get(ins, 1), "answers"), 1), "value")),
	    7);
	json_decref(j);
	{
		char out[4096], want[200];
		cr_expect_eq(spk_replay(save("q.json", r->trace_json.data, r->trace_json.len), out,
					sizeof out),
			     0, "%s", out);
		snprintf(want, sizeof want, "replay: 3 inputs equal, final state_hash %s", hash);
		cr_expect(strstr(out, want) != NULL, "spk said: %s", out);
	}
	mp_response_free(r);
}

/* ---- the reply limit: a trace bigger than a client receives ---------------------------------- */

static void up_wide(void)
{
	const char *extra[] = {"--snapshot-every", "1000", NULL};

	cr_assert_eq(td_start(&D, "tests/e2e/packs", extra), 0);
	cr_assert_eq(mp_connect(D.url, &C), 0);
	/* under valgrind, rendering a 70 MB trace takes minutes, not 1 s */
	if (td_slow())
		cr_assert_eq(mp_set_timeouts(C, MP_SEND_TIMEOUT_MS, 0), 0);
}

/* n "wide" events of the log-flood pack (about 1 MiB of log lines each). */
static void wide(int n)
{
	for (int i = 0; i < n; i++) {
		mp_response *r = NULL;
		cr_assert_eq(mp_event(C, "w", "wide", NULL, &r), 0);
		cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
		cr_assert_eq(r->result->n_logs, 256);
		mp_response_free(r);
	}
}

Test(history, trace_over_the_reply_limit_is_refused_by_name, .init = up_wide, .fini = down,
     .timeout = 1200)
{
	mp_create_opts o = {.instance_id = "w", .pack_id = "log-flood", .seed = 1};
	mp_response *r = NULL;
	char want[160];

	cr_assert_eq(mp_create(C, &o, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	mp_response_free(r);
	/* ~20 MB: more than the old 16 MiB client cap, received whole */
	wide(20);
	cr_assert_eq(mp_trace(C, "w", &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	cr_expect_gt(r->trace_json.len, 16u << 20);
	mp_response_free(r);
	/* ~70 MiB: over MP_API_REPLY_MAX_BYTES, answered by name (not dropped) */
	wide(50);
	cr_assert_eq(mp_trace(C, "w", &r), 0);
	cr_expect_str_eq(tr_code(r), "unavailable");
	snprintf(want, sizeof want, "over the reply limit of %u bytes (MP_API_REPLY_MAX_BYTES)",
		 MP_API_REPLY_MAX_BYTES);
	cr_expect(strstr(tr_msg(r), want) != NULL, "%s", tr_msg(r));
	cr_expect(!r->status->retryable);
	mp_response_free(r);
	/* the instance still serves */
	wide(1);
	cr_assert_eq(mp_info(C, "w", &r), 0);
	cr_expect_eq(r->info->inputs, 71);
	mp_response_free(r);
}
