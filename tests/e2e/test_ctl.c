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
			    "\"trigger_id\":\"ev:OnPickup:key\"}]");
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
