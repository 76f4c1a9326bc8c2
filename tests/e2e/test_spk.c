/*
 * End-to-end: spk, the pack author's tool (test process only). Every command
 * runs as a real process ($BUILD/bin/spk) that starts real confined workers;
 * the tests assert exit codes, exact output lines and exact trace contents.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/moonpen.h"
#include "common/pack.h"
#include "common/trace.h"
#include "common/val_json.h"
#include "tests/support/daemon.h"
#include "tests/support/files.h"
#include "tests/support/resp.h"

#define DUNGEON "examples/packs/dungeon-forest"
#define DIRTY "tests/e2e/packs/spk-dirty"

static char T[256];			  /* this test's temporary folder */
static char out_path[300], err_path[300]; /* the last command's stdout and stderr */

static void setup(void)
{
	snprintf(T, sizeof T, "/tmp/spk-test-XXXXXX");
	cr_assert_not_null(mkdtemp(T));
	snprintf(out_path, sizeof out_path, "%s/stdout", T);
	snprintf(err_path, sizeof err_path, "%s/stderr", T);
}

static void teardown(void)
{
	char cmd[300];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", T);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(spk, .init = setup, .fini = teardown, .timeout = 120);

/* Path of a file in T (static ring of buffers). */
static const char *tp(const char *name)
{
	static char bufs[8][400];
	static unsigned next;
	char *b = bufs[next++ % 8];

	snprintf(b, 400, "%s/%s", T, name);
	return b;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "%s", path);
	cr_assert_eq(fputs(text, f) >= 0, 1);
	cr_assert_eq(fclose(f), 0);
}

/* Runs spk with the NULL-terminated arguments; stdout and stderr go to files.
 * Returns the exit status (-1 when killed). */
static int spk(const char *arg0, ...)
{
	const char *argv[32];
	va_list ap;
	int n = 0, st;
	pid_t pid;

	argv[n++] = td_bin("spk");
	argv[n++] = arg0;
	va_start(ap, arg0);
	while (n < 27 && (argv[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	if (td_slow() && (strcmp(arg0, "run") == 0 || strcmp(arg0, "replay") == 0)) {
		/* make test-valgrind: the worker under its own valgrind, as moonpend's */
		argv[n++] = "--worker-wrapper";
		argv[n++] = getenv("MOONPEN_TEST_WORKER_WRAPPER");
		argv[n++] = "--deadline-ms";
		argv[n++] = "1000";
	}
	argv[n] = NULL;
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
			_exit(126);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *out_text(void)
{
	size_t len;
	return tf_slurp(out_path, &len);
}

static char *err_text(void)
{
	size_t len;
	return tf_slurp(err_path, &len);
}

static trace *load_trace(const char *path)
{
	char err[512], *text;
	size_t len;
	trace *t = NULL;

	text = tf_slurp(path, &len);
	cr_assert_eq(trace_parse(text, len, &t, err, sizeof err), 0, "%s: %s", path, err);
	free(text);
	return t;
}

/* Compact JSON with sorted keys, for exact comparisons. */
static char *canon(const json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);

	cr_assert_not_null(s);
	return s;
}

static void assert_json(const json_t *j, const char *want)
{
	char *s = canon(j);

	cr_assert_str_eq(s, want);
	free(s);
}

static const char dungeon_events[] =
    "{\"event\": \"OnLeverSwitch\", \"payload\": {\"player\": \"ada\"}}\n"
    "\n"
    "{\"tick\": 100}\n"
    "{\"event\": \"OnLeverSwitch\", \"payload\": {\"player\": \"ada\"}}\n"
    "{\"event\": \"OnAreaEnter:boss_room\", \"payload\": {\"players\": 3}}\n"
    "{\"call\": \"spawn_wave\", \"args\": []}\n"
    "{\"event\": \"OnLeverSwitch\", \"payload\": {\"player\": \"bo\"}}\n";

static int record_dungeon(void)
{
	write_text(tp("events.jsonl"), dungeon_events);
	return spk("run", DUNGEON, "--seed", "7", "--events", tp("events.jsonl"), "--record",
		   tp("trace.json"), NULL);
}

/* ---- run --record ---------------------------------------------------------------- */

Test(spk, run_records_the_exact_effects)
{
	char hex[65], *out, *line;
	trace *t;
	pack *pk;
	char err[256];
	size_t i;

	cr_assert_eq(record_dungeon(), 0, "stderr: %s", err_text());
	t = load_trace(tp("trace.json"));
	cr_assert_str_eq(t->pack_id, "dungeon-forest");
	cr_assert_str_eq(t->pack_version, "1.0.0");
	cr_assert_eq(t->seed, 7);
	cr_assert_eq(t->tick_ms, 50);
	cr_assert_eq(t->has_init, 1);
	cr_assert_eq(t->init.status, MOONPEN__V1__STATUS__CODE__OK);
	/* the content hash is the pack's own (pack.h) */
	cr_assert_eq(pack_load_dir(DUNGEON, &pk, err, sizeof err), 0);
	cr_assert_str_eq(trace_hex32(t->content_hash, hex), trace_hex32(pk->hash, err));
	pack_free(pk);

	cr_assert_eq(t->n_inputs, 6);
	cr_assert_eq(t->inputs[0].kind, TR_EVENT);
	cr_assert_eq(t->inputs[0].tick, 0);
	assert_json(t->inputs[0].out.effects,
		    "[{\"api\":\"ui\",\"args\":[\"ada\",\"Defeat more waves to open the gate.\"],"
		    "\"fn\":\"tip\",\"trigger\":\"lever-too-early\"}]");
	cr_assert_eq(t->inputs[1].kind, TR_TICK);
	cr_assert_eq(t->inputs[1].count, 100);
	assert_json(json_array_get(t->inputs[1].out.effects, 0),
		    "{\"api\":\"ui\",\"args\":[\"Wave 1 incoming\"],\"fn\":\"broadcast\","
		    "\"trigger\":\"timer:spawn_wave\"}");
	cr_assert_eq(json_array_size(t->inputs[1].out.effects), 6);
	for (i = 1; i <= 5; i++) {
		char want[200];
		snprintf(want, sizeof want,
			 "{\"api\":\"ecs\",\"args\":[\"goblin\",{\"pos\":{\"x\":%zu,\"y\":0,"
			 "\"z\":10}}],\"fn\":\"spawn\",\"trigger\":\"timer:spawn_wave\"}",
			 5 * i);
		assert_json(json_array_get(t->inputs[1].out.effects, i), want);
	}
	cr_assert_eq(t->inputs[2].tick, 100, "tick before the input");
	assert_json(t->inputs[3].out.effects,
		    "[{\"api\":\"ui\",\"args\":[\"The ogre lord awaits 3 challengers\"],"
		    "\"fn\":\"broadcast\",\"trigger\":\"boss-room-greeting\"}]");
	cr_assert_eq(t->inputs[4].kind, TR_CALL);
	assert_json(json_array_get(t->inputs[4].out.effects, 0),
		    "{\"api\":\"ui\",\"args\":[\"Wave 2 "
		    "incoming\"],\"fn\":\"broadcast\",\"trigger\":\"call:spawn_wave\"}");
	cr_assert_eq(t->inputs[4].out.has_hash, 1);
	cr_assert_neq(memcmp(t->inputs[4].out.state_hash, t->inputs[3].out.state_hash, 32), 0);
	assert_json(t->inputs[5].out.effects, "[{\"api\":\"ecs\",\"args\":[\"east\"],\"fn\":"
					      "\"openGate\",\"trigger\":\"lever-opens-gate\"}]");

	/* stdout: one JSON line per input, the same objects as the trace's */
	out = out_text();
	line = out;
	for (i = 0; i < t->n_inputs; i++) {
		char *nl = strchr(line, '\n');
		json_t *got, *want = trace_input_json(&t->inputs[i]);
		cr_assert_not_null(nl, "line %zu missing: %s", i, out);
		*nl = '\0';
		got = json_loads(line, 0, NULL);
		cr_assert(json_equal(got, want), "line %zu: %s", i, line);
		json_decref(got);
		json_decref(want);
		line = nl + 1;
	}
	cr_assert_str_eq(line, "");
	free(out);
	trace_free(t);
}

/* ---- replay ------------------------------------------------------------------------ */

Test(spk, replay_of_a_recorded_trace_is_equal)
{
	char *out;

	cr_assert_eq(record_dungeon(), 0);
	cr_assert_eq(spk("replay", tp("trace.json"), "--pack", DUNGEON, NULL), 0, "%s", err_text());
	out = out_text();
	cr_assert(strncmp(out, "replay: 6 inputs equal, final state_hash ", 41) == 0, "%s", out);
	free(out);
	/* the trace next to no pack: --pack is needed */
	cr_assert_eq(spk("replay", tp("trace.json"), NULL), 2);
}

/* Replaces the first `from` in the file with `to`. */
static void tamper(const char *path, const char *from, const char *to)
{
	size_t len;
	char *text = tf_slurp(path, &len), *hit = strstr(text, from);
	char *res = malloc(len + strlen(to) + 1);

	cr_assert_not_null(hit, "%s not in %s", from, path);
	memcpy(res, text, (size_t)(hit - text));
	strcpy(res + (hit - text), to);
	strcat(res, hit + strlen(from));
	write_text(path, res);
	free(res);
	free(text);
}

Test(spk, replay_of_a_tampered_trace_names_the_input)
{
	char *out;

	cr_assert_eq(record_dungeon(), 0);
	tamper(tp("trace.json"), "awaits 3 challengers", "awaits 4 challengers");
	cr_assert_eq(spk("replay", tp("trace.json"), "--pack", DUNGEON, NULL), 1);
	out = out_text();
	cr_assert_str_eq(out, "divergence at input 3 (tick 100, event OnAreaEnter:boss_room): "
			      "effects[0] (of 1 expected, 1 got): expected {\"api\":\"ui\",\"fn\":"
			      "\"broadcast\",\"args\":[\"The ogre lord awaits 4 challengers\"],"
			      "\"trigger\":\"boss-room-greeting\"}, got {\"api\":\"ui\",\"fn\":"
			      "\"broadcast\",\"args\":[\"The ogre lord awaits 3 challengers\"],"
			      "\"trigger\":\"boss-room-greeting\"}\n");
	free(out);
}

Test(spk, replay_checks_the_state_hash_and_the_pack)
{
	trace *t;
	char hex[65], *err;

	cr_assert_eq(record_dungeon(), 0);
	t = load_trace(tp("trace.json"));
	tamper(tp("trace.json"), trace_hex32(t->inputs[4].out.state_hash, hex),
	       "00000000000000000000000000000000000000000000000000000000000000ff");
	cr_assert_eq(spk("replay", tp("trace.json"), "--pack", DUNGEON, NULL), 1);
	err = out_text();
	cr_assert(strstr(err, "divergence at input 4 (tick 100, call spawn_wave): "
			      "state_hash: expected 0000") != NULL,
		  "%s", err);
	free(err);
	/* another pack's folder: refused before any worker runs */
	cr_assert_eq(
	    spk("replay", tp("trace.json"), "--pack", "examples/packs/key-collection", NULL), 2);
	err = err_text();
	cr_assert(strstr(err, "the trace is of pack dungeon-forest 1.0.0") != NULL, "%s", err);
	free(err);
	trace_free(t);
}

Test(spk, replay_refuses_a_malformed_trace_naming_the_field)
{
	char *err;

	cr_assert_eq(record_dungeon(), 0);
	tamper(tp("trace.json"), "\"fn\":\"tip\"", "\"fn\":7");
	cr_assert_eq(spk("replay", tp("trace.json"), "--pack", DUNGEON, NULL), 2);
	err = err_text();
	cr_assert(strstr(err, "inputs[0].effects[0].fn: expected a string") != NULL, "%s", err);
	free(err);
	cr_assert_eq(record_dungeon(), 0);
	tamper(tp("trace.json"), "\"tick_ms\":50", "\"tick_ms\":0");
	cr_assert_eq(spk("replay", tp("trace.json"), "--pack", DUNGEON, NULL), 2);
	err = err_text();
	cr_assert(strstr(err, "tick_ms: expected 1..") != NULL, "%s", err);
	free(err);
}

/* ---- replay --restore-every -------------------------------------------------------------- */

Test(spk, restore_every_keeps_a_clean_pack_equal)
{
	cr_assert_eq(record_dungeon(), 0);
	cr_assert_eq(
	    spk("replay", tp("trace.json"), "--pack", DUNGEON, "--restore-every", "1", NULL), 0,
	    "%s%s", out_text(), err_text());
	cr_assert_eq(
	    spk("replay", tp("trace.json"), "--pack", DUNGEON, "--restore-every", "2", NULL), 0,
	    "%s%s", out_text(), err_text());
}

Test(spk, restore_every_exposes_state_kept_outside_state)
{
	char *out;

	write_text(tp("bumps.jsonl"), "{\"event\":\"bump\"}\n{\"event\":\"bump\"}\n"
				      "{\"event\":\"bump\"}\n{\"event\":\"bump\"}\n"
				      "{\"event\":\"bump\"}\n");
	cr_assert_eq(
	    spk("run", DIRTY, "--events", tp("bumps.jsonl"), "--record", tp("d.json"), NULL), 0,
	    "%s", err_text());
	/* in one worker the pack is consistent */
	cr_assert_eq(spk("replay", tp("d.json"), "--pack", DIRTY, NULL), 0);
	/* restored from a snapshot before input 2, its local counter restarts */
	cr_assert_eq(spk("replay", tp("d.json"), "--pack", DIRTY, "--restore-every", "2", NULL), 1);
	out = out_text();
	cr_assert_str_eq(out, "divergence at input 2 (tick 0, event bump): effects[0] (of 1 "
			      "expected, 1 got): expected {\"api\":\"ui\",\"fn\":\"broadcast\","
			      "\"args\":[\"bump 3 n=3\"],\"trigger\":\"ev:bump\"}, got {\"api\":"
			      "\"ui\",\"fn\":\"broadcast\",\"args\":[\"bump 1 n=3\"],\"trigger\":"
			      "\"ev:bump\"}\n");
	free(out);
	cr_assert_eq(spk("replay", tp("d.json"), "--pack", DIRTY, "--restore-every", "3", NULL), 1);
	out = out_text();
	cr_assert(strncmp(out, "divergence at input 3 (tick 0, event bump)", 42) == 0, "%s", out);
	free(out);
}

/* ---- incidents and queries ---------------------------------------------------------------- */

Test(spk, a_worker_kill_is_recorded_and_replayed)
{
	trace *t;

	write_text(tp("k.jsonl"), "{\"event\":\"add\",\"payload\":{\"n\":2}}\n"
				  "{\"call\":\"backtrack\"}\n");
	cr_assert_eq(spk("run", "tests/e2e/packs/runaway", "--events", tp("k.jsonl"), "--record",
			 tp("k.json"), NULL),
		     1);
	t = load_trace(tp("k.json"));
	cr_assert_eq(t->n_inputs, 2);
	cr_assert_eq(t->inputs[1].out.killed, 1);
	cr_assert_eq(t->inputs[1].out.status, MOONPEN__V1__STATUS__CODE__TIMEOUT);
	trace_free(t);
	/* the same kill on replay counts as equal */
	cr_assert_eq(spk("replay", tp("k.json"), "--pack", "tests/e2e/packs/runaway", NULL), 0,
		     "%s%s", out_text(), err_text());
}

Test(spk, queries_are_answered_from_the_answers_file)
{
	const char *pk = "tests/e2e/packs/query", *api = "tests/e2e/packs/host_api_query.json";
	char *err;
	trace *t;

	write_text(tp("q.jsonl"), "{\"event\":\"loot\",\"payload\":{\"player\":\"ada\"}}\n"
				  "{\"event\":\"trade\",\"payload\":{\"player\":\"ada\",\"other\":"
				  "\"bob\"}}\n"
				  "{\"event\":\"loot\",\"payload\":{\"player\":\"cy\"}}\n");
	write_text(tp("a.jsonl"),
		   "{\"value\": 10}\n{\"value\": 3}\n{\"value\": 4}\n{\"error\": \"closed\"}\n");
	cr_assert_eq(spk("run", pk, "--host-api", api, "--events", tp("q.jsonl"), "--answers",
			 tp("a.jsonl"), "--record", tp("q.json"), NULL),
		     0, "%s", err_text());
	t = load_trace(tp("q.json"));
	cr_assert_eq(t->inputs[1].n_answers, 2);
	cr_assert_eq(t->inputs[1].answers[0].call_id, 2);
	assert_json(t->inputs[1].out.effects, "[{\"api\":\"ui\",\"args\":[\"trade 3+4\"],\"fn\":"
					      "\"broadcast\",\"trigger\":\"ev:trade\"}]");
	cr_assert_str_eq(t->inputs[2].answers[0].error, "closed");
	trace_free(t);
	cr_assert_eq(spk("replay", tp("q.json"), "--pack", pk, "--host-api", api, "--restore-every",
			 "1", NULL),
		     0, "%s%s", out_text(), err_text());
	/* one answer short: an input error naming the events line */
	write_text(tp("a.jsonl"), "{\"value\": 10}\n{\"value\": 3}\n{\"value\": 4}\n");
	cr_assert_eq(spk("run", pk, "--host-api", api, "--events", tp("q.jsonl"), "--answers",
			 tp("a.jsonl"), NULL),
		     2);
	err = err_text();
	cr_assert(strstr(err, "q.jsonl:3: query bank.balance (call 4): no answer left in") != NULL,
		  "%s", err);
	free(err);
}

/* ---- the host API schema and log lines in the trace ------------------------------------------ */

/* The file's schema as the trace holds it: compact, keys sorted. */
static char *schema_canon(const char *path)
{
	json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, NULL);
	char *s;

	cr_assert_not_null(j, "%s", path);
	s = canon(j);
	json_decref(j);
	return s;
}

Test(spk, replay_uses_the_schema_recorded_in_the_trace)
{
	const char *pk = "tests/e2e/packs/query", *api = "tests/e2e/packs/host_api_query.json";
	char *want, *got, *out;
	size_t len;
	trace *t;

	write_text(tp("q.jsonl"), "{\"event\":\"loot\",\"payload\":{\"player\":\"ada\"}}\n"
				  "{\"event\":\"trade\",\"payload\":{\"player\":\"ada\",\"other\":"
				  "\"bob\"}}\n");
	write_text(tp("a.jsonl"), "{\"value\": 10}\n{\"value\": 3}\n{\"value\": 4}\n");
	cr_assert_eq(spk("run", pk, "--host-api", api, "--events", tp("q.jsonl"), "--answers",
			 tp("a.jsonl"), "--record", tp("q.json"), NULL),
		     0, "%s", err_text());
	t = load_trace(tp("q.json"));
	want = schema_canon(api);
	cr_assert_eq(trace_host_api_text(t, &got, &len), 0);
	cr_assert_str_eq(got, want);
	free(got);
	free(want);
	trace_free(t);
	/* no --host-api: the trace's own schema (it defines 'bank', the default does not) */
	cr_assert_eq(spk("replay", tp("q.json"), "--pack", pk, NULL), 0, "%s%s", out_text(),
		     err_text());
	out = out_text();
	cr_assert(strncmp(out, "replay: 2 inputs equal, final state_hash ", 41) == 0, "%s", out);
	free(out);
	/* --host-api overrides it */
	cr_assert_eq(
	    spk("replay", tp("q.json"), "--pack", pk, "--host-api", "policy/host_api.json", NULL),
	    1);
	out = out_text();
	cr_assert_str_eq(out, "divergence at init: status: expected OK, got BAD_PACK (manifest "
			      "lists api 'bank', which the host API schema does not define)\n");
	free(out);
	/* the same trace without host_api (as before it was recorded): the default
	 * schema, which cannot start the pack; naming the file still works */
	out = tf_slurp(tp("q.json"), &len);
	got = strstr(out, "\n\"host_api\":");
	cr_assert_not_null(got);
	memmove(got, strstr(got + 1, "\n"), strlen(strstr(got + 1, "\n")) + 1);
	cr_assert_null(strstr(out, "host_api"));
	write_text(tp("old.json"), out);
	free(out);
	cr_assert_eq(spk("replay", tp("old.json"), "--pack", pk, NULL), 1);
	out = out_text();
	cr_assert(strstr(out, "got BAD_PACK (manifest lists api 'bank'") != NULL, "%s", out);
	free(out);
	cr_assert_eq(spk("replay", tp("old.json"), "--pack", pk, "--host-api", api, NULL), 0);
}

#define LOGS "tests/e2e/packs/spk-logs"

static const char logs_events[] = "{\"event\":\"greet\",\"payload\":{\"player\":\"ada\"}}\n"
				  "{\"event\":\"flood\",\"payload\":{\"lines\":300}}\n"
				  "{\"tick\":1}\n";

static const char greet_logs[] =
    "[{\"level\":\"debug\",\"message\":\"greeting\\tada\"},{\"level\":\"print\",\"message\":"
    "\"hello ada\\t42\"},{\"level\":\"warn\",\"message\":\"careful\"},{\"level\":\"error\","
    "\"message\":\"greets=1\"}]";

/* The logs of the trace's init and inputs, as the flood input holds 256
 * lines and the worker's note. */
static void assert_logs(const trace *t)
{
	json_t *flood;
	char want[64];
	size_t i;

	cr_assert_eq(t->n_inputs, 3);
	assert_json(t->init.logs, "[{\"level\":\"info\",\"message\":\"ready\"}]");
	assert_json(t->inputs[0].out.logs, greet_logs);
	flood = t->inputs[1].out.logs;
	cr_assert_eq(json_array_size(flood), 257);
	for (i = 0; i < 256; i++) {
		snprintf(want, sizeof want, "{\"level\":\"info\",\"message\":\"line %zu\"}", i + 1);
		assert_json(json_array_get(flood, i), want);
	}
	assert_json(json_array_get(flood, 256),
		    "{\"level\":\"warn\",\"message\":\"44 log lines dropped\"}");
	assert_json(t->inputs[2].out.logs, "[]");
}

Test(spk, log_lines_are_recorded_and_replayed)
{
	json_t *j, *in;
	char *out;
	size_t i;
	trace *t;

	write_text(tp("l.jsonl"), logs_events);
	cr_assert_eq(spk("run", LOGS, "--events", tp("l.jsonl"), "--record", tp("l.json"), NULL), 0,
		     "%s", err_text());
	t = load_trace(tp("l.json"));
	assert_logs(t);
	trace_free(t);
	cr_assert_eq(spk("replay", tp("l.json"), "--pack", LOGS, "--restore-every", "1", NULL), 0,
		     "%s%s", out_text(), err_text());

	/* one recorded line edited: a divergence naming the input and the line */
	tamper(tp("l.json"), "greets=1", "greets=2");
	cr_assert_eq(spk("replay", tp("l.json"), "--pack", LOGS, NULL), 1);
	out = out_text();
	cr_assert_str_eq(out,
			 "divergence at input 0 (tick 0, event greet): logs[3] (of 4 "
			 "expected, 4 got): expected {\"level\":\"error\",\"message\":"
			 "\"greets=2\"}, got {\"level\":\"error\",\"message\":\"greets=1\"}\n");
	free(out);

	/* an older trace (no logs members) is not compared on its log lines */
	j = json_load_file(tp("l.json"), JSON_REJECT_DUPLICATES, NULL);
	cr_assert_not_null(j);
	cr_assert_eq(json_object_del(json_object_get(j, "init"), "logs"), 0);
	json_array_foreach(json_object_get(j, "inputs"), i, in)
	    cr_assert_eq(json_object_del(in, "logs"), 0);
	cr_assert_eq(json_dump_file(j, tp("l.json"), JSON_COMPACT), 0);
	json_decref(j);
	cr_assert_eq(spk("replay", tp("l.json"), "--pack", LOGS, NULL), 0, "%s%s", out_text(),
		     err_text());
}

/* moonpend's ExportTrace and spk run record the same log lines and schema for
 * the same inputs (both read the worker's reply after wreply's checks). */
Test(spk, moonpend_traces_carry_the_same_logs_and_schema)
{
	static const char *const payloads[] = {"{\"player\":\"ada\"}", "{\"lines\":300}"};
	static const char *const names[] = {"greet", "flood"};
	mp_create_opts co = {.instance_id = "l", .pack_id = "spk-logs", .seed = 0};
	mp_response *r = NULL;
	mp_client *c = NULL;
	char verr[128], *a, *b;
	size_t i, len;
	trace *mt, *st;
	td d;

	write_text(tp("l.jsonl"), logs_events);
	cr_assert_eq(spk("run", LOGS, "--events", tp("l.jsonl"), "--record", tp("l.json"), NULL), 0,
		     "%s", err_text());
	cr_assert_eq(td_start(&d, "tests/e2e/packs", NULL), 0);
	cr_assert_eq(mp_connect(d.url, &c), 0);
	cr_assert_eq(mp_create(c, &co, &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	mp_response_free(r);
	for (i = 0; i < 2; i++) {
		val_t *p = NULL;
		cr_assert_eq(vjson_parse(payloads[i], 8, &p, verr, sizeof verr), 0);
		cr_assert_eq(mp_event(c, "l", names[i], p, &r), 0);
		cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
		mp_response_free(r);
		val_free(p);
	}
	cr_assert_eq(mp_tick(c, "l", 1, &r), 0);
	mp_response_free(r);
	cr_assert_eq(mp_trace(c, "l", &r), 0);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	a = strndup((const char *)r->trace_json.data, r->trace_json.len);
	cr_assert_not_null(a);
	write_text(tp("m.json"), a);
	free(a);
	mp_response_free(r);
	mp_disconnect(c);
	cr_assert_eq(td_stop(&d, 0), 0);

	mt = load_trace(tp("m.json"));
	st = load_trace(tp("l.json"));
	assert_logs(mt);
	cr_assert(json_equal(mt->init.logs, st->init.logs));
	for (i = 0; i < 3; i++)
		cr_assert(json_equal(mt->inputs[i].out.logs, st->inputs[i].out.logs), "input %zu",
			  i);
	/* both ran the default schema, policy/host_api.json */
	cr_assert_eq(trace_host_api_text(mt, &a, &len), 0);
	cr_assert_eq(trace_host_api_text(st, &b, &len), 0);
	cr_assert_str_eq(a, b);
	free(b);
	b = schema_canon("policy/host_api.json");
	cr_assert_str_eq(a, b);
	free(a);
	free(b);
	trace_free(mt);
	trace_free(st);
	cr_assert_eq(spk("replay", tp("m.json"), "--pack", LOGS, NULL), 0, "%s%s", out_text(),
		     err_text());
}

/* ---- events file errors -------------------------------------------------------------------- */

static void bad_events(const char *text, const char *want)
{
	char *err;

	write_text(tp("bad.jsonl"), text);
	cr_assert_eq(spk("run", DUNGEON, "--events", tp("bad.jsonl"), NULL), 2);
	err = err_text();
	cr_assert(strstr(err, want) != NULL, "want \"%s\" in: %s", want, err);
	free(err);
}

Test(spk, a_bad_events_line_is_named)
{
	bad_events("{\"tick\": 1}\n{\"event\": \"x\",}\n", "bad.jsonl:2: ");
	bad_events("{\"tick\": 1}\n\n{\"tick\": 0}\n",
		   "bad.jsonl:3: \"tick\": expected an integer");
	bad_events("{\"event\": \"x\", \"player\": 1}\n",
		   "bad.jsonl:1: unknown member \"player\" for a \"event\" line");
	bad_events("[1]\n", "bad.jsonl:1: expected a JSON object");
	bad_events("{\"call\": \"f\", \"args\": 3}\n", "bad.jsonl:1: \"args\": expected an array");
	bad_events("{\"sleep\": 3}\n", "bad.jsonl:1: expected an object with");
}

/* ---- lint, init, help ---------------------------------------------------------------------- */

Test(spk, lint_reports_each_finding_with_its_line)
{
	char *out;

	cr_assert_eq(spk("lint", "tests/e2e/packs/spk-lint", NULL), 1);
	out = out_text();
#define L "tests/e2e/packs/spk-lint/"
	cr_assert_str_eq(
	    out,
	    L "lib/util.lua:3: syntax: <name> or '...' expected near 'return'\n" L
	      "main.lua:6: timer.every with an anonymous function: name a global function "
	      "(timer.every(ms, \"fn\")) so that a snapshot can restore the timer\n" L
	      "main.lua:15: assignment to 'count' (a local of the chunk, line 2) inside a "
	      "function: data kept outside `state` is lost by a snapshot and restore\n" L
	      "main.lua:16: assignment to global 'leaked' inside a function: globals are frozen "
	      "once the entry chunk has run; keep durable data in `state`\n" L
	      "main.lua:17: ev.on inside a function: register handlers at the top level of the "
	      "chunk (a restore re-runs only the chunk)\n" L
	      "main.lua:18: timer.after with the local function 'helper': a timer must name a "
	      "global function so that a snapshot can restore it\n" L
	      "manifest.json:6: apis: \"weather\" is not in the host API schema\n");
#undef L
	free(out);
	cr_assert_eq(spk("lint", DIRTY, NULL), 1);
	out = out_text();
	cr_assert(strstr(out, DIRTY "/main.lua:7: assignment to 'bumps'") == out, "%s", out);
	free(out);
	cr_assert_eq(spk("lint", "tests/e2e/packs/syntax-error", NULL), 1);
	out = out_text();
	cr_assert(strstr(out, "tests/e2e/packs/syntax-error/main.lua:") == out, "%s", out);
	free(out);
	cr_assert_eq(spk("lint", DUNGEON, NULL), 0, "%s", out_text());
	cr_assert_eq(spk("lint", "examples/packs/key-collection", NULL), 0, "%s", out_text());
	cr_assert_eq(spk("lint", tp("no-such-pack"), NULL), 2);
}

Test(spk, init_creates_a_pack_that_lint_and_run_accept)
{
	char *out;

	cr_assert_eq(spk("init", tp("hello-pack"), NULL), 0, "%s", err_text());
	cr_assert_eq(spk("init", tp("hello-pack"), NULL), 2, "never over existing files");
	cr_assert_eq(spk("lint", tp("hello-pack"), NULL), 0, "%s", out_text());
	cr_assert_eq(spk("run", tp("hello-pack"), "--events", tp("hello-pack/events.jsonl"), NULL),
		     0, "%s", err_text());
	out = out_text();
	cr_assert(strstr(out, "\"args\":[\"hello ada (#1)\"]") != NULL, "%s", out);
	cr_assert(strstr(out, "\"args\":[\"heartbeat 1\"]") != NULL, "%s", out);
	cr_assert(strstr(out,
			 "\"kind\":\"call\",\"name\":\"greetings\",\"args\":[],"
			 "\"answers\":[],\"status\":\"OK\",\"effects\":[],\"returns\":[1]") != NULL,
		  "%s", out);
	free(out);
	cr_assert_eq(spk("init", tp("Bad Name"), NULL), 2);
	cr_assert_eq(spk("init", tp("Bad Name"), "--id", "ok-id", NULL), 0);
}

Test(spk, a_trace_in_a_hidden_folder_of_its_pack_finds_the_pack)
{
	cr_assert_eq(spk("init", tp("p"), NULL), 0);
	cr_assert_eq(mkdir(tp("p/.traces"), 0700), 0);
	cr_assert_eq(spk("run", tp("p"), "--events", tp("p/events.jsonl"), "--record",
			 tp("p/.traces/t.json"), NULL),
		     0);
	cr_assert_eq(spk("replay", tp("p/.traces/t.json"), NULL), 0, "%s", err_text());
}

Test(spk, help_and_usage)
{
	char *out;

	cr_assert_eq(spk("--help", NULL), 0);
	out = out_text();
	cr_assert(strstr(out, "spk replay TRACE.json") != NULL);
	free(out);
	cr_assert_eq(spk("frobnicate", NULL), 2);
	cr_assert_eq(spk("run", DUNGEON, NULL), 2, "--events is required");
	cr_assert_eq(spk("replay", tp("t.json"), "--restore-every", "0", NULL), 2);
}

Test(spk, types_writes_the_declarations)
{
	size_t len;
	char *text, *err;

	cr_assert_eq(spk("types", "--pack", DUNGEON, "-o", tp("api.lua"), NULL), 0, "%s",
		     err_text());
	text = tf_slurp(tp("api.lua"), &len);
	cr_assert(strncmp(text, "---@meta\n", 9) == 0, "%s", text);
	cr_assert(strstr(text, "dungeon-forest") != NULL);
	free(text);
	cr_assert_eq(spk("types", "--schema", tp("missing.json"), NULL), 2);
	err = err_text();
	cr_assert(strstr(err, "missing.json: No such file or directory") != NULL, "%s", err);
	free(err);
}
