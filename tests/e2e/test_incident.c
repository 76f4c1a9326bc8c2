/*
 * End-to-end: the flight recorder survives a restart of moonpend
 * (docs/recovery.md, "GetIncident"; docs/durability.md). With --durability
 * process, an incident (a worker killed by a runaway input) is stored; after
 * a SIGKILL and a restart on the same state folder GetIncident answers the
 * same trace byte for byte, `spk replay` reproduces the kill from it, a newer
 * kill replaces it, a RestoreInstance keeps it, and closing the instance
 * removes it from the store. In
 * memory mode nothing survives a restart. Runs in the test process against
 * real moonpend daemons (the "recovery" test pack).
 */
#include <criterion/criterion.h>
#include <jansson.h>

#include "tests/e2e/durability_run.h"
#include "tests/support/files.h"
#include "tests/support/sched.h"

static dr_daemon D;
static mp_client *C;

/* A snapshot every 3 entries; a short soft deadline (the hard one is then
 * its 1 s floor) unless the workers run under valgrind (td_slow). */
static const char *const *flags(void)
{
	static const char *const fast[] = {"--snapshot-every", "3", "--deadline-ms", "50", NULL};
	static const char *const slow[] = {"--snapshot-every", "3", NULL};

	return td_slow() ? slow : fast;
}

static void start(const char *durability)
{
	cr_assert_eq(dr_start(&D, durability, flags(), NULL), 0, "log %s", D.log);
	cr_assert_eq(mp_connect(D.url, &C), 0);
}

static void restart(const char *durability)
{
	mp_disconnect(C);
	C = NULL;
	dr_kill9(&D);
	start(durability);
}

static void down(void)
{
	mp_disconnect(C);
	C = NULL;
	cr_expect_eq(dr_stop(&D), 0, "moonpend did not stop cleanly (log %s)", D.log);
	dr_remove(&D);
}

static void up_process(void)
{
	cr_assert_eq(dr_init(&D), 0);
	start("process");
}

static void up_memory(void)
{
	cr_assert_eq(dr_init(&D), 0);
	start("memory");
}

static void create_k(void)
{
	mp_create_opts o = {.instance_id = "k", .pack_id = "recovery", .seed = 9};
	mp_response *r = NULL;

	cr_assert_eq(mp_create(C, &o, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	mp_response_free(r);
}

/* Inputs from..to-1 of the schedule; returns the tick after the last. */
static uint64_t inputs(int from, int to)
{
	mp_response *r = NULL;
	uint64_t tick = 0;

	for (int i = from; i < to; i++) {
		cr_assert_eq(ts_input(C, "k", i, &r), 0, "input %d", i);
		cr_assert_str_eq(tr_code(r), "ok", "input %d: %s", i, tr_msg(r));
		tick = r->result->tick;
		mp_response_free(r);
	}
	return tick;
}

/* The runaway call: its workers are killed at the hard deadline (twice: it is
 * retried once, then dead-lettered). */
static void kill_worker(void)
{
	mp_response *r = NULL;

	cr_assert_eq(mp_call(C, "k", "backtrack", NULL, 0, &r), 0);
	cr_assert_str_eq(tr_code(r), "timeout", "%s", tr_msg(r));
	mp_response_free(r);
}

/* GetIncident of k, expected OK: its trace text (malloc'd) and length. */
static char *incident(size_t *len)
{
	mp_response *r = NULL;
	char *text;

	cr_assert_eq(mp_incident(C, "k", &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	cr_assert_gt(r->trace_json.len, 0);
	text = malloc(r->trace_json.len + 1);
	cr_assert_not_null(text);
	memcpy(text, r->trace_json.data, r->trace_json.len);
	text[r->trace_json.len] = '\0';
	*len = r->trace_json.len;
	mp_response_free(r);
	return text;
}

static void expect_no_incident(const char *msg)
{
	mp_response *r = NULL;

	cr_assert_eq(mp_incident(C, "k", &r), 0);
	cr_expect_str_eq(tr_code(r), "not_found", "%s", tr_msg(r));
	cr_expect_str_eq(tr_msg(r), msg);
	mp_response_free(r);
}

/* The trace's input count; its last input is the kill of backtrack at tick. */
static size_t expect_kill(const char *text, size_t len, uint64_t tick)
{
	json_error_t e;
	json_t *j = json_loadb(text, len, 0, &e), *ins, *last;
	size_t n;

	cr_assert_not_null(j, "not JSON: %s", e.text);
	cr_expect(json_object_get(j, "start_snapshot") != NULL);
	ins = json_object_get(j, "inputs");
	n = json_array_size(ins);
	cr_assert_gt(n, 0);
	last = json_array_get(ins, n - 1);
	cr_expect_str_eq(json_string_value(json_object_get(last, "name")), "backtrack");
	cr_expect_str_eq(json_string_value(json_object_get(last, "status")), "TIMEOUT");
	cr_expect(json_is_true(json_object_get(last, "killed")));
	cr_expect_eq(json_integer_value(json_object_get(last, "tick")), tick);
	json_decref(j);
	return n;
}

/* spk replay of the trace text: its exit status, its output in out. */
static int spk_replay(const char *text, size_t len, char *out, size_t outlen)
{
	char path[300];
	FILE *f;

	snprintf(path, sizeof path, "%s/incident.json", D.dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(text, 1, len, f), len);
	fclose(f);
	return td_spk_replay(path, "--pack " DR_PACKS "/recovery", out, outlen);
}

/* A count from the store, read while moonpend runs (WAL: a reader of its own). */
static long long store_count(const char *sql)
{
	char path[300];

	snprintf(path, sizeof path, "%s/moonpen.db", D.dir);
	return tf_sql_count(path, sql);
}

/* RestoreInstance of k from a snapshot of its own (the store resets its rows). */
static void restore_in_place(void)
{
	mp_response *snap = NULL, *r = NULL;

	cr_assert_eq(mp_snapshot(C, "k", &snap), 0);
	cr_assert_str_eq(tr_code(snap), "ok", "%s", tr_msg(snap));
	cr_assert_eq(mp_restore(C, "k", snap->snapshot.data, snap->snapshot.len, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	cr_expect_eq(r->info->log_length, 0, "reset to the snapshot");
	mp_response_free(r);
	mp_response_free(snap);
}

/* How many dead letters info lists for k. */
static size_t dead_letters(void)
{
	mp_response *r = NULL;
	size_t n;

	cr_assert_eq(mp_info(C, "k", &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	n = r->info->n_dead_letters;
	mp_response_free(r);
	return n;
}

Test(incident, survives_a_restart, .init = up_process, .fini = down, .timeout = 120)
{
	char out[4096], *before, *after, *newer;
	size_t blen, alen, nlen;
	uint64_t tick;

	create_k();
	tick = inputs(0, 5);
	kill_worker();
	before = incident(&blen);
	/* the snapshot after input 2 (every 3 entries), inputs 3-4, the kill */
	cr_expect_eq(expect_kill(before, blen, tick), 3);
	cr_expect_eq(store_count("SELECT count(*) FROM incidents WHERE instance = 'k'"), 1);
	cr_expect_eq(store_count("SELECT length(trace) FROM incidents WHERE instance = 'k'"),
		     (long long)blen, "the store holds the text served");

	restart("process");
	after = incident(&alen);
	cr_assert_eq(alen, blen, "the same length after the restart");
	cr_expect_arr_eq(after, before, blen, "byte for byte the same trace");
	cr_expect_eq(spk_replay(after, alen, out, sizeof out), 0, "%s", out);
	cr_expect(strstr(out, "replay: 3 inputs equal") != NULL, "spk said: %s", out);
	free(after);

	/* a newer kill replaces it (also in the store) */
	tick = inputs(5, 6);
	kill_worker();
	newer = incident(&nlen);
	cr_expect(nlen != blen || memcmp(newer, before, blen) != 0, "a new incident");
	/* from the snapshot the restarted instance took after input 5 (inputs 3-4
	 * replayed, then 5: 3 entries), the kill alone */
	cr_expect_eq(expect_kill(newer, nlen, tick), 1);
	cr_expect_eq(store_count("SELECT count(*) FROM incidents WHERE instance = 'k'"), 1);
	cr_expect_eq(store_count("SELECT length(trace) FROM incidents WHERE instance = 'k'"),
		     (long long)nlen);
	cr_expect_eq(dead_letters(), 2, "each runaway call was dead-lettered");
	restore_in_place();
	after = incident(&alen);
	cr_expect(alen == nlen && memcmp(after, newer, nlen) == 0, "a restore keeps it");
	free(after);
	restart("process");
	after = incident(&alen);
	cr_expect(alen == nlen && memcmp(after, newer, nlen) == 0, "the newer one came back");
	cr_expect_eq(dead_letters(), 2, "the restore and the restart keep the dead letters");
	free(after);
	free(newer);
	free(before);

	/* closed: the incident goes with the instance */
	{
		mp_response *r = NULL;
		cr_assert_eq(mp_close(C, "k", &r), 0);
		cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
		mp_response_free(r);
	}
	cr_expect_eq(store_count("SELECT count(*) FROM incidents"), 0);
	restart("process");
	expect_no_incident("no instance 'k'");
}

/* Memory mode keeps incidents in memory only: after a restart there is none
 * (nor the instance); a new instance of the same id starts without one. */
Test(incident, memory_mode_loses_it_on_restart, .init = up_memory, .fini = down, .timeout = 90)
{
	char *text;
	size_t len;
	uint64_t tick;

	create_k();
	tick = inputs(0, 5);
	kill_worker();
	text = incident(&len);
	cr_expect_eq(expect_kill(text, len, tick), 3);
	free(text);
	{
		char db[300];
		snprintf(db, sizeof db, "%s/moonpen.db", D.dir);
		cr_expect_eq(access(db, F_OK), -1, "memory mode keeps no store");
	}
	restart("memory");
	expect_no_incident("no instance 'k'");
	create_k();
	expect_no_incident("no incident recorded for instance k");
}
