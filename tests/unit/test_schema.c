/*
 * test_schema — the shipped policy/host_api.json parses; every type checks
 * values exactly; each violation produces its exact message. Run from the
 * repository root (the shipped schema is read from policy/).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common/schema.h"
#include "common/val.h"
#include "tests/support/files.h"

static sch_schema *shipped(void)
{
	size_t len;
	char *json = tf_slurp("policy/host_api.json", &len);
	sch_schema *s = NULL;
	char err[256];

	cr_assert_eq(sch_parse(json, len, &s, err, sizeof(err)), 0, "%s", err);
	free(json);
	return s;
}

static val_t *str(const char *s)
{
	return val_new_string(s, strlen(s));
}

/* {k1 = v1, ...} with string keys; NULL-terminated pairs. */
static val_t *rec(const char *k, val_t *v, ...)
{
	val_t *t = val_new_table();
	va_list ap;

	va_start(ap, v);
	while (k != NULL) {
		cr_assert_eq(val_table_set(t, str(k), v), 0);
		k = va_arg(ap, const char *);
		if (k != NULL)
			v = va_arg(ap, val_t *);
	}
	va_end(ap);
	return t;
}

static int call(const sch_schema *s, const char *api, const char *fn, val_t **args, size_t n,
		char *err, size_t errlen)
{
	const sch_api *a = sch_api_find(s, api);
	const sch_fn *f = sch_fn_find(a, fn);

	cr_assert_not_null(f, "%s.%s missing", api, fn);
	return sch_check_args(a, f, args, n, err, errlen);
}

static void free_args(val_t **a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		val_free(a[i]);
}

Test(schema, shipped_policy_declares_the_example_apis)
{
	sch_schema *s = shipped();
	const char *names[][2] = {{"ecs", "spawn"}, {"ecs", "openGate"}, {"ui", "broadcast"},
				  {"ui", "tip"},    {"music", "play"},	 {"quest", "progress"}};

	cr_assert_eq(s->n_apis, 5);
	for (size_t i = 0; i < 6; i++) {
		const sch_api *a = sch_api_find(s, names[i][0]);
		cr_assert_not_null(a);
		cr_assert_eq(a->cls, SCH_DETERMINISTIC);
		cr_assert_not_null(sch_fn_find(a, names[i][1]), "%s", names[i][1]);
		cr_assert_eq(sch_fn_find(a, names[i][1])->kind, SCH_EFFECT);
	}
	cr_assert_eq(sch_fn_find(sch_api_find(s, "ecs"), "spawn")->n_params, 2);
	cr_assert_eq(sch_fn_find(sch_api_find(s, "quest"), "progress")->params[2].type->kind,
		     SCH_INTEGER);
	/* the one query the sample game server answers */
	cr_assert_not_null(sch_api_find(s, "inventory"));
	cr_assert_eq(sch_api_find(s, "inventory")->cls, SCH_DETERMINISTIC);
	cr_assert_not_null(sch_fn_find(sch_api_find(s, "inventory"), "count"));
	cr_assert_eq(sch_fn_find(sch_api_find(s, "inventory"), "count")->kind, SCH_QUERY);
	cr_assert_eq(sch_fn_find(sch_api_find(s, "inventory"), "count")->n_params, 2);
	cr_assert_null(sch_api_find(s, "path"));
	sch_free(s);
}

Test(schema, spawn_accepts_valid_calls)
{
	sch_schema *s = shipped();
	char err[256] = "";
	val_t *a1[1] = {str("goblin")};
	val_t *a2[2] = {
	    str("goblin"),
	    rec("pos", rec("x", val_new_int(5), "y", val_new_float(0), "z", val_new_int(10), NULL),
		NULL)};
	val_t *a3[2] = {str("ogre"),
			rec("pos", rec("x", val_new_int(20), "z", val_new_int(20), NULL), NULL)};
	val_t *a4[3] = {str("ogre"), val_new_nil(), val_new_nil()};

	cr_assert_eq(call(s, "ecs", "spawn", a1, 1, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(call(s, "ecs", "spawn", a2, 2, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(call(s, "ecs", "spawn", a3, 2, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(call(s, "ecs", "spawn", a4, 3, err, sizeof(err)), 0, "%s", err);
	free_args(a1, 1);
	free_args(a2, 2);
	free_args(a3, 2);
	free_args(a4, 3);
	sch_free(s);
}

struct bad {
	const char *api, *fn;
	val_t *args[4];
	size_t n;
	const char *msg;
};

Test(schema, each_violation_has_its_exact_message)
{
	sch_schema *s = shipped();
	struct bad cases[] = {
	    {"ecs",
	     "spawn",
	     {val_new_int(5)},
	     1,
	     "ecs.spawn: argument #1 'kind' expected string, got number"},
	    {"ecs", "spawn", {NULL}, 0, "ecs.spawn: argument #1 'kind' expected string, got nil"},
	    {"ecs",
	     "spawn",
	     {str("g"), str("x")},
	     2,
	     "ecs.spawn: argument #2 'opts' expected record or nil, got string"},
	    {"ecs",
	     "spawn",
	     {str("g"), rec("pos", rec("x", val_new_int(1), NULL), NULL)},
	     2,
	     "ecs.spawn: argument #2 'opts.pos.z' expected number, got nil"},
	    {"ecs",
	     "spawn",
	     {str("g"), rec("pos", rec("x", str("1"), "z", val_new_int(1), NULL), NULL)},
	     2,
	     "ecs.spawn: argument #2 'opts.pos.x' expected number, got string"},
	    {"ecs",
	     "spawn",
	     {str("g"), rec("pso", val_new_int(1), NULL)},
	     2,
	     "ecs.spawn: argument #2 'opts' has unknown field 'pso'"},
	    {"ecs",
	     "spawn",
	     {str("g"), val_new_nil(), str("extra")},
	     3,
	     "ecs.spawn: expected at most 2 arguments, got 3"},
	    {"ecs",
	     "openGate",
	     {val_new_bool(1)},
	     1,
	     "ecs.openGate: argument #1 'gate' expected string, got boolean"},
	    {"ecs",
	     "openGate",
	     {val_new_bytes("\xff", 1)},
	     1,
	     "ecs.openGate: argument #1 'gate' expected string, got string (not valid UTF-8)"},
	    {"ui",
	     "tip",
	     {str("p1"), val_new_table()},
	     2,
	     "ui.tip: argument #2 'text' expected string, got table"},
	    {"quest",
	     "progress",
	     {str("p"), str("k"), val_new_float(1.5)},
	     3,
	     "quest.progress: argument #3 'delta' expected integer, got number (not an "
	     "integral value)"},
	    {"quest",
	     "progress",
	     {str("p"), str("k"), str("1")},
	     3,
	     "quest.progress: argument #3 'delta' expected integer, got string"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[256] = "";
		int r =
		    call(s, cases[i].api, cases[i].fn, cases[i].args, cases[i].n, err, sizeof(err));
		cr_assert_eq(r, -EINVAL, "case %zu accepted", i);
		cr_assert_str_eq(err, cases[i].msg, "case %zu: %s", i, err);
		free_args(cases[i].args, cases[i].n);
	}
	sch_free(s);
}

Test(schema, integer_accepts_integral_float_and_converts)
{
	sch_schema *s = shipped();
	char err[256] = "";
	val_t *a[3] = {str("p"), str("k"), val_new_float(3.0)};

	cr_assert_eq(call(s, "quest", "progress", a, 3, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(a[2]->kind_case, MOONPEN__V1__VALUE__KIND_INT_VALUE);
	cr_assert_eq(a[2]->int_value, 3);
	free_args(a, 3);
	sch_free(s);
}

static const char every_type[] =
    "{\"version\":1,\"apis\":{\"t\":{\"class\":\"deterministic\",\"functions\":{"
    "\"f\":{\"kind\":\"effect\",\"params\":["
    "{\"name\":\"s\",\"type\":\"string\"},{\"name\":\"i\",\"type\":\"integer\"},"
    "{\"name\":\"n\",\"type\":\"number\"},{\"name\":\"b\",\"type\":\"boolean\"},"
    "{\"name\":\"t\",\"type\":\"table\"},{\"name\":\"a\",\"type\":\"any\"},"
    "{\"name\":\"l\",\"type\":{\"list\":\"integer\"}},"
    "{\"name\":\"o\",\"type\":{\"optional\":\"string\"}}],\"variadic\":\"number\"},"
    "\"q\":{\"kind\":\"query\",\"returns\":\"number\"}}}}}";

static val_t *list3(int64_t a, int64_t b, val_t *c)
{
	val_t *t = val_new_table();

	cr_assert_eq(val_table_push(t, val_new_int(a)), 0);
	cr_assert_eq(val_table_push(t, val_new_int(b)), 0);
	cr_assert_eq(val_table_push(t, c), 0);
	return t;
}

Test(schema, every_type)
{
	sch_schema *s = NULL;
	char err[256] = "";
	const sch_api *a;
	val_t *ok[10] = {
	    str("s"),	     val_new_int(1),	val_new_float(2.5),	     val_new_bool(0),
	    val_new_table(), str("any"),	list3(1, 2, val_new_int(3)), val_new_nil(),
	    val_new_int(7),  val_new_float(8.5)};
	val_t *badl[7] = {str("s"),	   val_new_int(1), val_new_int(2),	 val_new_bool(1),
			  val_new_table(), val_new_nil(),  list3(1, 2, str("x"))};
	val_t *badv[9] = {str("s"),	   val_new_int(1),  val_new_int(2),
			  val_new_bool(1), val_new_table(), str("a"),
			  val_new_table(), str("o"),	    val_new_bool(1)};

	cr_assert_eq(sch_parse(every_type, strlen(every_type), &s, err, sizeof(err)), 0, "%s", err);
	a = sch_api_find(s, "t");
	cr_assert_eq(sch_fn_find(a, "q")->kind, SCH_QUERY);
	cr_assert_eq(sch_fn_find(a, "q")->returns->kind, SCH_NUMBER);
	cr_assert_eq(sch_check_args(a, sch_fn_find(a, "f"), ok, 10, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(sch_check_args(a, sch_fn_find(a, "f"), badl, 7, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "t.f: argument #6 'a' expected any, got nil");
	val_free(badl[5]);
	badl[5] = val_new_int(0);
	cr_assert_eq(sch_check_args(a, sch_fn_find(a, "f"), badl, 7, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "t.f: argument #7 'l[3]' expected integer, got string");
	cr_assert_eq(sch_check_args(a, sch_fn_find(a, "f"), badv, 9, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "t.f: argument #9 '...' expected number, got boolean");
	free_args(ok, 10);
	free_args(badl, 7);
	free_args(badv, 9);
	sch_free(s);
}

struct bad_schema {
	const char *json;
	const char *msg;
};

Test(schema, bad_schemas_are_named)
{
	static const struct bad_schema cases[] = {
	    {"{\"version\":2,\"apis\":{}}", "version: expected 1"},
	    {"{\"version\":1}", "apis: expected an object"},
	    {"{\"version\":1,\"apis\":{\"state\":{\"class\":\"deterministic\","
	     "\"functions\":{}}}}",
	     "apis.state: \"state\" is reserved for a built-in module"},
	    {"{\"version\":1,\"apis\":{\"x\":{\"class\":\"pure\",\"functions\":{}}}}",
	     "apis.x.class: expected \"deterministic\", \"nondeterministic\" or \"io\""},
	    {"{\"version\":1,\"apis\":{\"x\":{\"class\":\"io\",\"functions\":{\"f\":"
	     "{\"kind\":\"effect\",\"params\":[{\"name\":\"a\",\"type\":\"strng\"}]}}}}}",
	     "apis.x.functions.f.params[1].type: unknown type \"strng\""},
	    {"{\"version\":1,\"apis\":{\"x\":{\"class\":\"io\",\"functions\":{\"f\":"
	     "{\"kind\":\"call\"}}}}}",
	     "apis.x.functions.f.kind: expected \"effect\" or \"query\""},
	    {"{\"version\":1,\"apis\":{\"x\":{\"class\":\"io\",\"functions\":{\"f\":"
	     "{\"kind\":\"effect\",\"params\":[{\"name\":\"a\",\"type\":{\"set\":\"x\"}}]}}}}}",
	     "apis.x.functions.f.params[1].type: unknown compound type \"set\""},
	    {"{\"version\":1,\"apis\":{\"x\":{\"class\":\"io\",\"functions\":{\"f\":"
	     "{\"kind\":\"effect\",\"params\":[{\"name\":\"a\",\"type\":\"string\","
	     "\"optional\":true},{\"name\":\"b\",\"type\":\"string\"}]}}}}}",
	     "apis.x.functions.f.params[2]: a required parameter cannot follow an optional "
	     "one"},
	    {"{\"version\":1,\"apis\":{\"x\":{\"class\":\"io\",\"functions\":{\"f\":"
	     "{\"kind\":\"effect\",\"params\":[{\"name\":\"a\",\"type\":{\"record\":"
	     "{\"p\":{\"list\":7}}}}]}}}}}",
	     "apis.x.functions.f.params[1].type.record.p.list: expected a type name or a "
	     "compound type"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sch_schema *s = (sch_schema *)1;
		char err[256] = "";
		cr_assert_eq(sch_parse(cases[i].json, strlen(cases[i].json), &s, err, sizeof(err)),
			     -EINVAL, "case %zu", i);
		cr_assert_null(s);
		cr_assert_str_eq(err, cases[i].msg, "case %zu: %s", i, err);
	}
}

/* ---- classes and descriptions (moonpen issue 4) --------------------------------- */

Test(schema, classes_and_descriptions_parse)
{
	static const char json[] =
	    "{\"version\":1,\"description\":\"d\",\"apis\":{"
	    "\"clock_wall\":{\"class\":\"nondeterministic\",\"description\":\"Wall time.\","
	    "\"functions\":{\"now\":{\"kind\":\"query\",\"description\":\"ms since 1970\","
	    "\"returns\":\"integer\"}}},"
	    "\"net\":{\"class\":\"io\",\"functions\":{\"get\":{\"kind\":\"query\",\"params\":"
	    "[{\"name\":\"url\",\"type\":\"string\",\"description\":\"where\"}]}}},"
	    "\"ui\":{\"class\":\"deterministic\",\"functions\":{}}}}";
	sch_schema *s = NULL;
	char err[256] = "";

	cr_assert_eq(sch_parse(json, strlen(json), &s, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(sch_api_find(s, "clock_wall")->cls, SCH_NONDETERMINISTIC);
	cr_assert_eq(sch_api_find(s, "net")->cls, SCH_IO);
	cr_assert_eq(sch_api_find(s, "ui")->cls, SCH_DETERMINISTIC);
	cr_assert_str_eq(sch_class_name(SCH_NONDETERMINISTIC), "nondeterministic");
	cr_assert_str_eq(sch_class_name(SCH_IO), "io");
	cr_assert_str_eq(sch_api_find(s, "clock_wall")->description, "Wall time.");
	cr_assert_str_eq(sch_fn_find(sch_api_find(s, "clock_wall"), "now")->description,
			 "ms since 1970");
	cr_assert_str_eq(sch_fn_find(sch_api_find(s, "net"), "get")->params[0].description,
			 "where");
	cr_assert_null(sch_api_find(s, "ui")->description);
	sch_free(s);
}

Test(schema, descriptions_must_be_strings)
{
	static const struct bad_schema cases[] = {
	    {"{\"version\":1,\"description\":1,\"apis\":{}}", "description: expected a string"},
	    {"{\"version\":1,\"apis\":{\"x\":{\"class\":\"io\",\"description\":[],"
	     "\"functions\":{}}}}",
	     "apis.x.description: expected a string"},
	    {"{\"version\":1,\"apis\":{\"x\":{\"class\":\"io\",\"functions\":{\"f\":"
	     "{\"kind\":\"effect\",\"description\":true}}}}}",
	     "apis.x.functions.f.description: expected a string"},
	    {"{\"version\":1,\"apis\":{\"x\":{\"class\":\"io\",\"functions\":{\"f\":"
	     "{\"kind\":\"effect\",\"params\":[{\"name\":\"a\",\"type\":\"string\","
	     "\"description\":{}}]}}}}}",
	     "apis.x.functions.f.params[1].description: expected a string"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sch_schema *s = (sch_schema *)1;
		char err[256] = "";

		cr_assert_eq(sch_parse(cases[i].json, strlen(cases[i].json), &s, err, sizeof(err)),
			     -EINVAL, "case %zu", i);
		cr_assert_null(s);
		cr_assert_str_eq(err, cases[i].msg, "case %zu", i);
	}
}
