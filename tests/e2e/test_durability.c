/*
 * End-to-end: durability (docs/durability.md). moonpend is SIGKILLed at
 * random points while client threads drive instances, restarted on the same
 * state folder, and every instance must come back with every acknowledged
 * input applied exactly once and no unacknowledged one applied twice, equal to
 * a reference run fed exactly the applied inputs (tests/e2e/durability_run.h).
 * Also: a restarted instance keeps its identity; a closed one stays gone; a
 * quarantined one stays quarantined; a missing pack version quarantines
 * until it returns; pooled instances; queries across a kill; a store that
 * refuses an input; Rollback after a restart (also to an older kept
 * snapshot); a clean stop; `power` mode;
 * one state folder, one moonpend. Runs in the test process against real
 * moonpend daemons.
 */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include "tests/e2e/durability_run.h"

Test(durability, crash_restart_equals_reference, .timeout = 120)
{
	dr_cfg c = {.instances = 8,
		    .threads = 4,
		    .kills = 3,
		    .min_run_ms = 150,
		    .max_run_ms = 600,
		    .durability = "process",
		    .seed = 20261121};
	dr_result res;
	int r = dr_crash_run(&c, &res);

	cr_log_info("kills %d, acknowledged %d, in flight %d (applied %d), inputs compared %d, "
		    "hashes %d",
		    res.kills, res.acked, res.in_flight, res.in_flight_applied,
		    res.compared_effects, res.compared_hashes);
	cr_assert_eq(r, 0, "%s", res.fail);
	cr_expect_eq(res.kills, 3);
	cr_expect_eq(res.compared_hashes, 8, "every instance's final hash compared");
	cr_expect_gt(res.acked, 100, "the clients got work done between the kills");
	cr_expect_eq(res.compared_effects, res.acked, "every acknowledged input compared");
}

/* ---- restarts of one daemon ------------------------------------------------------------------ */

static dr_daemon D;
static mp_client *C;

static void up_with(const char *durability, const char *const *extra)
{
	cr_assert_eq(dr_init(&D), 0);
	cr_assert_eq(dr_start(&D, durability, extra, NULL), 0, "log %s", D.log);
	cr_assert_eq(mp_connect(D.url, &C), 0);
}

static void restart_with(const char *durability, const char *const *extra)
{
	mp_disconnect(C);
	C = NULL;
	dr_kill9(&D);
	cr_assert_eq(dr_start(&D, durability, extra, NULL), 0, "log %s", D.log);
	cr_assert_eq(mp_connect(D.url, &C), 0);
}

static void down(void)
{
	mp_disconnect(C);
	C = NULL;
	cr_expect_eq(dr_stop(&D), 0, "moonpend did not stop cleanly (log %s)", D.log);
	dr_remove(&D);
}

static mp_response *info(const char *id)
{
	mp_response *r = NULL;

	cr_assert_eq(mp_info(C, id, &r), 0);
	return r;
}

static void create(const char *id, uint64_t seed, uint32_t tick_ms)
{
	const char *keys[] = {"zone", "mode"}, *values[] = {"forest-2", "hard"};
	mp_create_opts o = {.instance_id = id,
			    .pack_id = "recovery",
			    .seed = seed,
			    .tick_ms = tick_ms,
			    .label_keys = keys,
			    .label_values = values,
			    .n_labels = 2};
	mp_response *r = NULL;

	cr_assert_eq(mp_create(C, &o, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	mp_response_free(r);
}

static void inputs(const char *id, int n)
{
	dr_op op = {0};
	mp_response *r = NULL;

	for (int i = 0; i < n; i++) {
		op.kind = (unsigned char)(i % 3);
		op.arg = (unsigned short)(1 + i % 3);
		cr_assert_eq(dr_send(C, id, &op, &r), 0);
		cr_assert_str_eq(tr_code(r), "ok", "%s input %d: %s", id, i, tr_msg(r));
		mp_response_free(r);
		r = NULL;
	}
}

/* An input that is served after the restarted instance has booted. */
static void barrier(const char *id, const char *code)
{
	mp_response *r = NULL;

	cr_assert_eq(mp_tick(C, id, 1, &r), 0);
	cr_assert_str_eq(tr_code(r), code, "%s", tr_msg(r));
	mp_response_free(r);
}

static void same_info(const Moonpen__V1__InstanceInfo *a, const Moonpen__V1__InstanceInfo *b)
{
	cr_expect_str_eq(a->pack_id, b->pack_id);
	cr_expect_str_eq(a->pack_version, b->pack_version);
	cr_expect_eq(a->seed, b->seed);
	cr_expect_eq(a->tick_ms, b->tick_ms);
	cr_expect_eq(a->tick, b->tick);
	cr_expect_eq(a->inputs, b->inputs);
	cr_expect_eq(a->state, b->state);
	cr_assert_eq(a->state_hash.len, 32);
	cr_assert_eq(b->state_hash.len, 32);
	cr_expect_arr_eq(a->state_hash.data, b->state_hash.data, 32);
	cr_assert_eq(a->n_labels, 2);
	cr_assert_eq(b->n_labels, 2);
	for (size_t i = 0; i < 2; i++) {
		cr_expect_str_eq(a->labels[i]->key, b->labels[i]->key);
		cr_expect_str_eq(a->labels[i]->value, b->labels[i]->value);
	}
}

/* 37 inputs: two snapshots (every 16) and 5 inputs after the newest. */
static void identity_survives(const char *durability)
{
	mp_response *before, *after;

	up_with(durability, NULL);
	create("keeper", 0xfeedfacecafebeefull, 40);
	inputs("keeper", 37);
	before = info("keeper");
	cr_assert_str_eq(tr_code(before), "ok");
	cr_expect_eq(before->info->inputs, 37);
	restart_with(durability, NULL);
	barrier("keeper", "ok"); /* GetInstance answers at once; this waits for the boot */
	after = info("keeper");
	cr_assert_str_eq(tr_code(after), "ok", "%s", tr_msg(after));
	cr_expect_eq(after->info->inputs, 38);
	cr_expect_eq(after->info->seed, 0xfeedfacecafebeefull);
	cr_expect_eq(after->info->tick_ms, 40);
	cr_expect_eq(after->info->tick, before->info->tick + 1);
	mp_response_free(before);
	mp_response_free(after);
	down();
}

Test(durability, restarted_instance_keeps_its_identity, .timeout = 60)
{
	mp_response *before, *after;

	up_with("process", NULL);
	create("keeper", 0xfeedfacecafebeefull, 40);
	inputs("keeper", 37);
	before = info("keeper");
	cr_assert_str_eq(tr_code(before), "ok");
	cr_expect_eq(before->info->inputs, 37);
	cr_expect_eq(before->info->snapshot_input, 32);
	restart_with("process", NULL);
	/* moonpend answers GetInstance at once, while the instance boots: wait for it */
	for (int i = 0; i < 2000; i++) {
		after = info("keeper");
		if (after->info &&
		    after->info->state != MOONPEN__V1__INSTANCE_INFO__STATE__STARTING)
			break;
		mp_response_free(after);
		usleep(5000);
	}
	cr_assert_str_eq(tr_code(after), "ok", "%s", tr_msg(after));
	same_info(before->info, after->info);
	cr_expect_eq(after->info->state, MOONPEN__V1__INSTANCE_INFO__STATE__RUNNING);
	mp_response_free(before);
	mp_response_free(after);
	down();
}

Test(durability, power_mode_survives_a_kill, .timeout = 60)
{
	identity_survives("power");
}

Test(durability, closed_instance_does_not_come_back, .timeout = 60)
{
	mp_response *r = NULL;

	up_with("process", NULL);
	create("gone", 1, 0);
	create("stays", 2, 0);
	inputs("gone", 20);
	inputs("stays", 3);
	cr_assert_eq(mp_close(C, "gone", &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	mp_response_free(r);
	restart_with("process", NULL);
	r = info("gone");
	cr_expect_str_eq(tr_code(r), "not_found", "%s", tr_msg(r));
	mp_response_free(r);
	barrier("stays", "ok");
	r = info("stays");
	cr_expect_eq(r->info->inputs, 4);
	mp_response_free(r);
	cr_assert_eq(mp_list(C, &r), 0);
	cr_expect_eq(r->n_instances, 1);
	mp_response_free(r);
	down();
}

Test(durability, quarantined_instance_comes_back_quarantined, .timeout = 60)
{
	const char *const extra[] = {"--restart-max", "1", "--deadline-ms", "50", NULL};
	mp_response *r = NULL;
	char reason[256];

	up_with("process", extra);
	create("sick", 3, 0);
	inputs("sick", 4);
	cr_assert_eq(mp_call(C, "sick", "backtrack", NULL, 0, &r), 0); /* kills its worker */
	mp_response_free(r);
	r = info("sick");
	cr_assert_eq(r->info->state, MOONPEN__V1__INSTANCE_INFO__STATE__QUARANTINED);
	snprintf(reason, sizeof reason, "%s", r->info->reason);
	cr_expect(strstr(reason, "restarts") != NULL, "%s", reason);
	mp_response_free(r);
	restart_with("process", extra);
	r = info("sick");
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	cr_expect_eq(r->info->state, MOONPEN__V1__INSTANCE_INFO__STATE__QUARANTINED);
	cr_expect_str_eq(r->info->reason, reason);
	cr_expect_eq(r->info->worker_pid, 0, "no worker for a quarantined instance");
	mp_response_free(r);
	barrier("sick", "quarantined");
	cr_assert_eq(mp_close(C, "sick", &r), 0, "an operator can still close it");
	cr_expect_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	mp_response_free(r);
	down();
}

Test(durability, one_state_folder_one_moonpend, .timeout = 60)
{
	dr_daemon second;
	char cmd[700], line[512] = "";
	FILE *f;
	int st = 0;

	up_with("process", NULL);
	second = D; /* the same state folder, its own run folder and log */
	snprintf(second.run, sizeof second.run, "%s/run2", D.dir);
	snprintf(second.url, sizeof second.url, "ipc://%s/api.sock", second.run);
	snprintf(second.log, sizeof second.log, "%s/second.log", D.dir);
	cr_assert_eq(dr_start(&second, "process", NULL, &st), -1, "the second one must not serve");
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) != 0);
	snprintf(cmd, sizeof cmd, "grep -o 'another moonpend uses this state folder' '%s'",
		 second.log);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	cr_expect_not_null(fgets(line, sizeof line, f), "log of the second moonpend: %s",
			   second.log);
	pclose(f);
	cr_expect_str_eq(line, "another moonpend uses this state folder\n");
	create("still-served", 4, 0); /* the first one is untouched */
	down();
}

Test(durability, pooled_instance_survives_a_kill, .timeout = 60)
{
	mp_response *r = NULL;
	char json[32], err[64];
	val_t *v = NULL;

	up_with("process", NULL);
	for (int i = 0; i < 20; i++) {
		if (i == 0) {
			mp_create_opts o = {.instance_id = "p", .pack_id = "pooled", .seed = 5};
			cr_assert_eq(mp_create(C, &o, &r), 0);
		} else {
			snprintf(json, sizeof json, "{\"n\":%d}", i);
			cr_assert_eq(vjson_parse(json, 8, &v, err, sizeof err), 0);
			cr_assert_eq(mp_event(C, "p", "add", v, &r), 0);
			val_free(v);
		}
		cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
		mp_response_free(r);
	}
	restart_with("process", NULL);
	cr_assert_eq(mp_call(C, "p", "total", NULL, 0, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	cr_assert_eq(r->result->n_returns, 1);
	cr_assert_eq(r->result->returns[0]->kind_case, MOONPEN__V1__VALUE__KIND_INT_VALUE);
	cr_expect_eq(r->result->returns[0]->int_value, 190, "1 + ... + 19");
	mp_response_free(r);
	r = info("p");
	cr_expect_eq(r->info->inputs, 20);
	cr_expect(strncmp(r->info->isolation, "pool:", 5) == 0, "%s", r->info->isolation);
	mp_response_free(r);
	down();
}

static mp_response *loot(const char *id)
{
	mp_response *r = NULL;
	val_t *v = NULL;
	char err[64];

	cr_assert_eq(vjson_parse("{\"player\":\"ann\"}", 8, &v, err, sizeof err), 0);
	cr_assert_eq(mp_event(C, id, "loot", v, &r), 0);
	val_free(v);
	cr_assert_str_eq(tr_code(r), "pending", "%s", tr_msg(r));
	cr_assert_not_null(r->host_call);
	return r;
}

static int64_t gold(const char *id)
{
	mp_response *r = NULL;
	int64_t g;

	cr_assert_eq(mp_call(C, id, "gold", NULL, 0, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	cr_assert_eq(r->result->n_returns, 1);
	g = r->result->returns[0]->int_value;
	mp_response_free(r);
	return g;
}

/* An answered query survives a kill (its answer is in the log); an input whose
 * query is still pending at the kill is discarded by the restart. */
Test(durability, queries_across_a_kill, .timeout = 60)
{
	const char *const extra[] = {"--host-api", "tests/e2e/packs/host_api_query.json", NULL};
	mp_create_opts o = {.instance_id = "q", .pack_id = "query", .seed = 9};
	mp_response *r = NULL, *p;
	val_t *v = val_new_int(30);
	uint64_t call;

	up_with("process", extra);
	cr_assert_eq(mp_create(C, &o, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	mp_response_free(r);
	p = loot("q");
	cr_assert_eq(mp_host_result(C, "q", p->host_call->call_id, v, NULL, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	mp_response_free(r);
	mp_response_free(p);
	p = loot("q"); /* pending when moonpend dies */
	call = p->host_call->call_id;
	mp_response_free(p);
	restart_with("process", extra);
	cr_expect_eq(gold("q"), 30, "the answered loot counts, the pending one does not");
	cr_assert_eq(mp_host_result(C, "q", call, v, NULL, &r), 0);
	cr_expect_str_neq(tr_code(r), "ok", "a late answer to a discarded query");
	mp_response_free(r);
	r = info("q");
	cr_expect_eq(r->info->inputs, 2, "the loot and the gold call");
	mp_response_free(r);
	p = loot("q"); /* the instance goes on */
	cr_assert_eq(mp_host_result(C, "q", p->host_call->call_id, v, NULL, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	mp_response_free(r);
	mp_response_free(p);
	cr_expect_eq(gold("q"), 60);
	val_free(v);
	down();
}

/* A pack version that is gone quarantines its instances, with the reason,
 * without writing it back: once the version is installed again, they run. */
Test(durability, missing_pack_version_quarantines_until_it_returns, .timeout = 60)
{
	char cmd[2000], a[300], b[300], reason[256];
	const char *extra_a[] = {"--packs", a, NULL}, *extra_b[] = {"--packs", b, NULL};
	mp_response *r;

	cr_assert_eq(dr_init(&D), 0);
	snprintf(a, sizeof a, "%s/packs-a", D.dir);
	snprintf(b, sizeof b, "%s/packs-b", D.dir);
	snprintf(cmd, sizeof cmd,
		 "mkdir -p '%s' '%s' && cp -r tests/e2e/packs/recovery '%s/' && "
		 "cp -r tests/e2e/packs/recovery '%s/' && "
		 "sed -i 's/\"1.0.0\"/\"2.0.0\"/' '%s/recovery/manifest.json'",
		 a, b, a, b, b);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(dr_start(&D, "process", extra_a, NULL), 0, "log %s", D.log);
	cr_assert_eq(mp_connect(D.url, &C), 0);
	create("old", 11, 0);
	inputs("old", 5);
	restart_with("process", extra_b); /* only recovery 2.0.0 installed */
	r = info("old");
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	cr_expect_eq(r->info->state, MOONPEN__V1__INSTANCE_INFO__STATE__QUARANTINED);
	snprintf(reason, sizeof reason, "%s", r->info->reason);
	cr_expect_str_eq(reason, "pack recovery 1.0.0 is no longer installed");
	mp_response_free(r);
	barrier("old", "quarantined");
	restart_with("process", extra_a); /* 1.0.0 is back */
	barrier("old", "ok");
	r = info("old");
	cr_expect_eq(r->info->state, MOONPEN__V1__INSTANCE_INFO__STATE__RUNNING);
	cr_expect_str_eq(r->info->pack_version, "1.0.0");
	cr_expect_eq(r->info->inputs, 6);
	mp_response_free(r);
	down();
}

static void add(const char *id, int n, const char *code)
{
	mp_response *r = NULL;
	char json[32], err[64];
	val_t *v = NULL;

	snprintf(json, sizeof json, "{\"n\":%d}", n);
	cr_assert_eq(vjson_parse(json, 8, &v, err, sizeof err), 0);
	cr_assert_eq(mp_event(C, id, "add", v, &r), 0);
	val_free(v);
	cr_assert_str_eq(tr_code(r), code, "%s", tr_msg(r));
	if (strcmp(code, "unavailable") == 0)
		cr_expect(strstr(tr_msg(r), "not applied") != NULL, "%s", tr_msg(r));
	mp_response_free(r);
}

static int64_t total(const char *id)
{
	mp_response *r = NULL;
	int64_t t;

	cr_assert_eq(mp_call(C, id, "total", NULL, 0, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	cr_assert_eq(r->result->n_returns, 1);
	t = r->result->returns[0]->int_value;
	mp_response_free(r);
	return t;
}

/* The store cannot take an input (another connection holds the write lock
 * past the busy timeout): the input is answered UNAVAILABLE, not applied
 * (its worker is restored without it), and a restart agrees. */
Test(durability, store_failure_answers_unavailable_and_applies_nothing, .timeout = 60)
{
	char path[400];
	sqlite3 *db = NULL;

	up_with("process", NULL);
	create("s", 12, 0);
	add("s", 1, "ok");
	add("s", 2, "ok");
	snprintf(path, sizeof path, "%s/moonpen.db", D.dir);
	cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	add("s", 100, "unavailable"); /* waits out the store's busy timeout (5 s) */
	cr_assert_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	add("s", 4, "ok");
	cr_expect_eq(total("s"), 7, "1 + 2 + 4: the refused 100 was not applied");
	restart_with("process", NULL);
	cr_expect_eq(total("s"), 7);
	down();
}

/* Rollback after a restart, to a point after the newest stored snapshot (the
 * restart replays the stored log with each input's outcome), and the
 * rolled-back log is what the next restart finds. */
Test(durability, rollback_after_a_restart, .timeout = 60)
{
	uint64_t tick[37];
	char hash[37][65];
	mp_response *r = NULL;
	dr_op op = {0};

	up_with("process", NULL);
	create("rb", 21, 0);
	for (int i = 0; i < 37; i++) { /* ticks and events; snapshots after entries 16, 32 */
		op.kind = (unsigned char)(i % 2 ? 1 : 0);
		op.arg = (unsigned short)(1 + i % 3);
		cr_assert_eq(dr_send(C, "rb", &op, &r), 0);
		cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
		tick[i] = r->result->tick;
		dr_hash(r, hash[i]);
		mp_response_free(r);
	}
	restart_with("process", NULL);
	cr_assert_eq(mp_rollback(C, "rb", tick[35], &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	cr_expect_eq(r->result->tick, tick[35]);
	cr_expect_str_eq(tr_hash(r), hash[35], "the state after input 35, the last at that tick");
	mp_response_free(r);
	restart_with("process", NULL);
	cr_assert_eq(mp_tick(C, "rb", 1, &r), 0); /* served once the restart has booted it */
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	cr_expect_eq(r->result->tick, tick[35] + 1, "the rolled-back inputs stay gone");
	mp_response_free(r);
	r = info("rb");
	cr_expect_eq(r->info->inputs, 37, "36 kept and the tick");
	mp_response_free(r);
	down();
}

/* The inputs of the trace of id (ExportTrace), with its start and final hash. */
static size_t trace_inputs(const char *id, int *from_snapshot, char *last_hash, size_t hl)
{
	mp_response *r = NULL;
	json_error_t e;
	json_t *j, *ins;
	size_t n;

	cr_assert_eq(mp_trace(C, id, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	j = json_loadb((const char *)r->trace_json.data, r->trace_json.len, 0, &e);
	cr_assert_not_null(j, "trace is not JSON: %s", e.text);
	ins = json_object_get(j, "inputs");
	n = json_array_size(ins);
	*from_snapshot = json_object_get(j, "start_snapshot") != NULL;
	snprintf(last_hash, hl, "%s",
		 n ? json_string_value(json_object_get(json_array_get(ins, n - 1), "state_hash"))
		   : "");
	json_decref(j);
	mp_response_free(r);
	return n;
}

/* Rollback after a restart to a tick that only an OLDER kept snapshot covers:
 * the restart loads every kept snapshot and the inputs since the oldest (their
 * outcomes are not stored: ExportTrace starts at the newest snapshot), and
 * the rolled-back state survives the next restart. */
Test(durability, rollback_to_an_older_snapshot_after_a_restart, .timeout = 60)
{
	const char *extra[] = {"--snapshot-every", "4", "--keep-snapshots", "3", NULL};
	uint64_t tick[14];
	char hash[14][65], last[65];
	mp_response *r = NULL;
	dr_op op = {0};
	uint32_t snaps;
	int from_snap;

	up_with("process", extra);
	create("old", 33, 0);
	for (int i = 0; i < 14; i++) { /* ticks of 1..3 and events; snapshots after 4, 8, 12 */
		op.kind = (unsigned char)(i % 2 ? 1 : 0);
		op.arg = (unsigned short)(1 + i % 3);
		cr_assert_eq(dr_send(C, "old", &op, &r), 0);
		cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
		tick[i] = r->result->tick;
		dr_hash(r, hash[i]);
		mp_response_free(r);
	}
	r = info("old");
	snaps = r->info->snapshots;
	cr_expect_eq(snaps, 3, "the snapshots after inputs 4, 8 and 12");
	mp_response_free(r);
	restart_with("process", extra);
	barrier("old", "ok"); /* input 14, served once the instance has booted */
	r = info("old");
	cr_expect_eq(r->info->snapshots, snaps, "every kept snapshot is back");
	mp_response_free(r);
	cr_expect_eq(trace_inputs("old", &from_snap, last, sizeof last), 3,
		     "inputs 12..14: the outcomes of those before the newest snapshot are gone");
	cr_expect(from_snap);
	cr_assert_eq(mp_rollback(C, "old", 0, &r), 0);
	cr_expect_str_eq(tr_code(r), "invalid_argument", "before the oldest kept snapshot");
	mp_response_free(r);
	/* tick[5] (after an event) is covered by the snapshot after input 4 only */
	cr_assert_lt(tick[5], tick[7]);
	cr_assert_eq(mp_rollback(C, "old", tick[5], &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	cr_expect_eq(r->result->tick, tick[5]);
	cr_expect_str_eq(tr_hash(r), hash[5], "the state after input 5, the last at that tick");
	mp_response_free(r);
	r = info("old");
	cr_expect_eq(r->info->inputs, 6);
	cr_expect_eq(r->info->tick, tick[5]);
	cr_expect_eq(r->info->snapshots, 1, "the snapshot after input 4");
	mp_response_free(r);
	restart_with("process", extra);
	r = info("old");
	cr_expect_eq(r->info->snapshots, 1);
	mp_response_free(r);
	cr_assert_eq(mp_tick(C, "old", 1, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	cr_expect_eq(r->result->tick, tick[5] + 1, "the rolled-back inputs stay gone");
	mp_response_free(r);
	r = info("old");
	cr_expect_eq(r->info->inputs, 7, "6 kept and the tick");
	mp_response_free(r);
	cr_assert_eq(mp_rollback(C, "old", tick[5], &r), 0); /* once more, after the restart */
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	cr_expect_str_eq(tr_hash(r), hash[5]);
	mp_response_free(r);
	down();
}

/* A clean stop (SIGTERM) keeps every instance for the next start. */
Test(durability, clean_stop_keeps_instances, .timeout = 60)
{
	mp_response *r;

	up_with("process", NULL);
	create("calm", 8, 0);
	inputs("calm", 20);
	mp_disconnect(C);
	C = NULL;
	cr_assert_eq(dr_stop(&D), 0, "log %s", D.log);
	cr_assert_eq(dr_start(&D, "process", NULL, NULL), 0, "log %s", D.log);
	cr_assert_eq(mp_connect(D.url, &C), 0);
	barrier("calm", "ok");
	r = info("calm");
	cr_expect_eq(r->info->inputs, 21);
	cr_expect_eq(r->info->state, MOONPEN__V1__INSTANCE_INFO__STATE__RUNNING);
	mp_response_free(r);
	down();
}
