/*
 * End-to-end: moonpenctl, the command line scripts drive moonpend with. One
 * JSON object per response on one line; exit 0 for OK, 1 for an error status,
 * 2 for usage, bad JSON arguments or connection errors.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "tests/support/daemon.h"

static td D;

static void up(void)
{
	cr_assert_eq(td_start(&D, "examples/packs", NULL), 0);
}
static void down(void)
{
	cr_assert_eq(td_stop(&D, 0), 0, "log %s", D.log);
}

/* Runs moonpenctl with args (already shell-quoted); returns its exit status and
 * its stdout in out. */
static int ctl(const char *args, char *out, size_t len)
{
	char cmd[2048];
	FILE *f;
	size_t n;
	int st;

	snprintf(cmd, sizeof cmd, "%s --url '%s' %s 2>/dev/null", td_bin("moonpenctl"), D.url,
		 args);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	n = fread(out, 1, len - 1, f);
	out[n] = '\0';
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The one JSON line of out, parsed; asserts it is one line and one object. */
static json_t *parse(const char *out)
{
	json_error_t e;
	json_t *j;

	cr_assert(strchr(out, '\n') == out + strlen(out) - 1, "not one line: %s", out);
	j = json_loads(out, 0, &e);
	cr_assert(json_is_object(j), "not a JSON object: %s (%s)", out, e.text);
	return j;
}

static const char *code(json_t *j)
{
	return json_string_value(json_object_get(json_object_get(j, "status"), "code"));
}

static char *dump(json_t *j)
{
	return json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
}

Test(ctl, session_and_exit_codes, .init = up, .fini = down)
{
	char out[8192];
	json_t *j;
	char *s;

	cr_assert_eq(
	    ctl("create k1 --pack key-collection --seed 5 --label region=eu", out, sizeof out), 0,
	    "%s", out);
	j = parse(out);
	cr_expect_str_eq(code(j), "ok");
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(j, "info"), "pack_id")),
			 "key-collection");
	cr_expect_str_eq(json_string_value(json_object_get(
			     json_object_get(json_object_get(j, "info"), "labels"), "region")),
			 "eu");
	json_decref(j);

	cr_assert_eq(ctl("event k1 OnPickup:key '{\"player\":\"p1\"}'", out, sizeof out), 0);
	j = parse(out);
	s = dump(json_object_get(j, "effects"));
	cr_expect_str_eq(s, "[{\"api\":\"ui\",\"fn\":\"broadcast\",\"args\":[\"Keys: 1/3\"],"
			    "\"trigger_id\":\"key-pickup\"}]");
	cr_expect_eq(strlen(json_string_value(json_object_get(j, "state_hash"))), 64);
	free(s);
	json_decref(j);

	cr_assert_eq(ctl("tick k1 3", out, sizeof out), 0);
	j = parse(out);
	cr_expect_eq(json_integer_value(json_object_get(j, "tick")), 3);
	json_decref(j);

	cr_assert_eq(ctl("list", out, sizeof out), 0);
	j = parse(out);
	cr_expect_eq(json_array_size(json_object_get(j, "instances")), 1);
	json_decref(j);

	/* an error status: exit 1, still one JSON line */
	cr_assert_eq(ctl("event nobody OnPickup:key", out, sizeof out), 1);
	j = parse(out);
	cr_expect_str_eq(code(j), "not_found");
	json_decref(j);
	cr_assert_eq(ctl("call k1 no_such_function '[1, \"two\"]'", out, sizeof out), 1);
	j = parse(out);
	cr_expect_str_eq(code(j), "invalid_argument");
	json_decref(j);

	/* usage and argument errors: exit 2, nothing on stdout */
	cr_expect_eq(ctl("event k1 OnPickup:key '{not json'", out, sizeof out), 2);
	cr_expect_str_eq(out, "");
	cr_expect_eq(ctl("frobnicate", out, sizeof out), 2);
	cr_expect_eq(ctl("create k2", out, sizeof out), 2, "--pack is required");
	cr_expect_eq(ctl("call k1 f 'not-an-array'", out, sizeof out), 2);

	cr_assert_eq(ctl("close k1", out, sizeof out), 0);
	j = parse(out);
	cr_expect_str_eq(code(j), "ok");
	json_decref(j);
}

Test(ctl, connection_error_is_exit_2)
{
	char cmd[512];
	int st;

	snprintf(cmd, sizeof cmd, "%s --url ipc:///nonexistent/moonpen.sock list >/dev/null 2>&1",
		 td_bin("moonpenctl"));
	st = system(cmd);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 2, "status %d", st);
}

/* ---- queries and the commands of this round ---------------------------------------------- */

static void up_query(void)
{
	const char *extra[] = {"--host-api", "tests/e2e/packs/host_api_query.json", NULL};

	cr_assert_eq(td_start(&D, "tests/e2e/packs", extra), 0);
}

/* The call id of a PENDING reply printed by moonpenctl. */
static long long pending_call(const char *out)
{
	json_t *j = parse(out), *hc;
	long long id;

	cr_assert_str_eq(code(j), "pending");
	hc = json_object_get(j, "host_call");
	cr_assert_not_null(hc, "%s", out);
	cr_expect_str_eq(json_string_value(json_object_get(hc, "api")), "bank");
	cr_expect_str_eq(json_string_value(json_object_get(hc, "fn")), "balance");
	cr_expect_eq(json_integer_value(json_object_get(hc, "timeout_ms")), 5000);
	id = json_integer_value(json_object_get(hc, "call_id"));
	json_decref(j);
	cr_assert_gt(id, 0);
	return id;
}

static char *effects_of(const char *out)
{
	json_t *j = parse(out);
	char *s = dump(json_object_get(j, "effects"));

	json_decref(j);
	return s;
}

Test(ctl, answer_a_query, .init = up_query, .fini = down)
{
	char out[8192], args[256];
	long long id;
	char *s;
	json_t *j;

	cr_assert_eq(ctl("create q --pack query", out, sizeof out), 0, "%s", out);
	/* PENDING is not ok: exit 1, one JSON line with the query */
	cr_assert_eq(ctl("event q loot '{\"player\":\"p1\"}'", out, sizeof out), 1, "%s", out);
	id = pending_call(out);
	snprintf(args, sizeof args, "answer q %lld 50", id);
	cr_assert_eq(ctl(args, out, sizeof out), 0, "%s", out);
	s = effects_of(out);
	cr_expect_str_eq(s,
			 "[{\"api\":\"ui\",\"fn\":\"broadcast\",\"args\":[\"opening chest for "
			 "p1\"],\"trigger_id\":\"ev:loot\"},{\"api\":\"ui\",\"fn\":\"broadcast\","
			 "\"args\":[\"loot 50\"],\"trigger_id\":\"ev:loot\"}]");
	free(s);

	cr_assert_eq(ctl("event q loot '{\"player\":\"p2\"}'", out, sizeof out), 1, "%s", out);
	id = pending_call(out);
	snprintf(args, sizeof args, "answer q %lld --error 'chest is locked'", id);
	cr_assert_eq(ctl(args, out, sizeof out), 0, "%s", out);
	s = effects_of(out);
	cr_expect(strstr(s, "\"no loot: chest is locked\"") != NULL, "%s", s);
	free(s);

	/* an answer nobody waits for: exit 1, not_found */
	cr_assert_eq(ctl("answer q 999 5", out, sizeof out), 1, "%s", out);
	j = parse(out);
	cr_expect_str_eq(code(j), "not_found");
	cr_expect_str_eq(
	    json_string_value(json_object_get(json_object_get(j, "status"), "message")),
	    "instance 'q' has no pending query 999");
	json_decref(j);
}

Test(ctl, usage_of_the_new_commands)
{
	char out[256];
	FILE *f;

	/* no daemon is needed: each fails before connecting (exit 2, nothing on stdout) */
	snprintf(D.url, sizeof D.url, "ipc:///nonexistent/moonpen.sock");
	cr_expect_eq(ctl("answer q 0 5", out, sizeof out), 2);
	cr_expect_str_eq(out, "");
	cr_expect_eq(ctl("answer q 1", out, sizeof out), 2);
	cr_expect_eq(ctl("answer q 1 --error", out, sizeof out), 2);
	cr_expect_eq(ctl("answer q 1 '{not json'", out, sizeof out), 2);
	cr_expect_eq(ctl("answer q x 5", out, sizeof out), 2);
	cr_expect_eq(ctl("rollback q", out, sizeof out), 2);
	cr_expect_eq(ctl("rollback q -3", out, sizeof out), 2);
	cr_expect_eq(ctl("snapshot q --to f", out, sizeof out), 2);
	cr_expect_eq(ctl("snapshot q --out", out, sizeof out), 2);
	cr_expect_eq(ctl("restore q", out, sizeof out), 2);
	cr_expect_eq(ctl("restore q /nonexistent/snap.bin", out, sizeof out), 2);
	f = fopen("/tmp/moonpen-test-empty.snap", "w");
	cr_assert_not_null(f);
	fclose(f);
	cr_expect_eq(ctl("restore q /tmp/moonpen-test-empty.snap", out, sizeof out), 2);
	remove("/tmp/moonpen-test-empty.snap");
	cr_expect_eq(ctl("trace", out, sizeof out), 2);
	cr_expect_eq(ctl("incident a b", out, sizeof out), 2);
	/* well-formed: they get as far as connecting (exit 2: transport error) */
	cr_expect_eq(ctl("trace q", out, sizeof out), 2);
	cr_expect_str_eq(out, "");
}

/* snapshot --out FILE, then restore ID FILE: in place (the state goes back)
 * and into a free id (a copy with the same state hash). */
Test(ctl, snapshot_to_a_file_and_restore, .init = up, .fini = down)
{
	char out[8192], args[600], hash[65], path[400], *first, *again;
	json_t *j;

	snprintf(path, sizeof path, "%s/k.snap", D.dir);
	cr_assert_eq(ctl("create k --pack key-collection --seed 5", out, sizeof out), 0, "%s", out);
	cr_assert_eq(ctl("event k OnPickup:key '{\"player\":\"p1\"}'", out, sizeof out), 0);
	j = parse(out);
	snprintf(hash, sizeof hash, "%s", json_string_value(json_object_get(j, "state_hash")));
	json_decref(j);
	snprintf(args, sizeof args, "snapshot k --out '%s'", path);
	cr_assert_eq(ctl(args, out, sizeof out), 0, "%s", out);
	j = parse(out);
	cr_expect_str_eq(json_string_value(json_object_get(j, "snapshot_file")), path);
	json_decref(j);
	cr_assert_eq(ctl("event k OnPickup:key '{\"player\":\"p2\"}'", out, sizeof out), 0);
	j = parse(out);
	cr_expect_str_neq(json_string_value(json_object_get(j, "state_hash")), hash);
	first = dump(json_object_get(j, "effects"));
	json_decref(j);

	snprintf(args, sizeof args, "restore k '%s'", path);
	cr_assert_eq(ctl(args, out, sizeof out), 0, "%s", out);
	j = parse(out);
	cr_expect_str_eq(code(j), "ok");
	cr_expect_str_eq(json_string_value(json_object_get(j, "state_hash")), hash, "%s", out);
	json_decref(j);
	/* the same pickup again gives what the first one gave */
	cr_assert_eq(ctl("event k OnPickup:key '{\"player\":\"p2\"}'", out, sizeof out), 0);
	j = parse(out);
	again = dump(json_object_get(j, "effects"));
	cr_expect_str_eq(again, first);
	cr_expect_str_eq(again, "[{\"api\":\"ui\",\"fn\":\"broadcast\",\"args\":[\"Keys: 2/3\"],"
				"\"trigger_id\":\"key-pickup\"}]");
	free(first);
	free(again);
	json_decref(j);

	snprintf(args, sizeof args, "restore k2 '%s'", path);
	cr_assert_eq(ctl(args, out, sizeof out), 0, "%s", out);
	j = parse(out);
	cr_expect_str_eq(
	    json_string_value(json_object_get(json_object_get(j, "info"), "instance_id")), "k2",
	    "%s", out);
	cr_expect_str_eq(json_string_value(json_object_get(j, "state_hash")), hash, "%s", out);
	json_decref(j);
}
