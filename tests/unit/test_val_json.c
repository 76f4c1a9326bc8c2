/*
 * test_val_json — common/val_json.c: JSON → Value and Value → JSON for every
 * kind, bytes as base64, nesting, the lossy table mapping, depth and syntax
 * errors with their exact messages.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/val_json.h"

static val_t *parse_ok(const char *text)
{
	char err[256];
	val_t *v = NULL;

	cr_assert_eq(vjson_parse(text, VAL_MAX_DEPTH_DEFAULT, &v, err, sizeof(err)), 0, "%s: %s",
		     text, err);
	cr_assert_not_null(v);
	return v;
}

static void parse_fails(const char *text, unsigned depth, const char *msg)
{
	char err[256];
	val_t *v = NULL;

	cr_assert_eq(vjson_parse(text, depth, &v, err, sizeof(err)), -EINVAL, "%s", text);
	cr_assert_null(v);
	cr_assert_str_eq(err, msg);
}

/* Dumps v compactly; the caller frees. */
static char *dump(const val_t *v)
{
	json_t *j = vjson_to_json(v);
	char *s;

	cr_assert_not_null(j);
	s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
	json_decref(j);
	cr_assert_not_null(s);
	return s;
}

static void assert_dump(const val_t *v, const char *want)
{
	char *s = dump(v);

	cr_assert_str_eq(s, want);
	free(s);
}

/* text → Value → text gives back exactly text */
static void assert_json_round_trip(const char *text)
{
	val_t *v = parse_ok(text);

	assert_dump(v, text);
	val_free(v);
}

static val_t *str(const char *s)
{
	return val_new_string(s, strlen(s));
}

static void set(val_t *t, val_t *k, val_t *v)
{
	cr_assert_eq(val_table_set(t, k, v), 0);
}

static void push(val_t *t, val_t *v)
{
	cr_assert_eq(val_table_push(t, v), 0);
}

Test(val_json, scalars_from_json)
{
	val_t *n = parse_ok("null"), *t = parse_ok("true"), *f = parse_ok("false");
	val_t *i = parse_ok("-9007199254740993"), *r = parse_ok("2.5"),
	      *s = parse_ok("\"h\\u00e9\"");

	cr_assert_eq(n->kind_case, MOONPEN__V1__VALUE__KIND_NIL_VALUE);
	cr_assert_eq(t->kind_case, MOONPEN__V1__VALUE__KIND_BOOL_VALUE);
	cr_assert_eq(t->bool_value, 1);
	cr_assert_eq(f->bool_value, 0);
	cr_assert_eq(i->kind_case, MOONPEN__V1__VALUE__KIND_INT_VALUE);
	cr_assert_eq(i->int_value, -9007199254740993LL);
	cr_assert_eq(r->kind_case, MOONPEN__V1__VALUE__KIND_FLOAT_VALUE);
	cr_assert_eq(r->float_value, 2.5);
	cr_assert_eq(s->kind_case, MOONPEN__V1__VALUE__KIND_STRING_VALUE);
	cr_assert_str_eq(s->string_value, "h\xc3\xa9");
	val_free(n);
	val_free(t);
	val_free(f);
	val_free(i);
	val_free(r);
	val_free(s);
}

Test(val_json, scalars_to_json)
{
	val_t *v[] = {val_new_nil(),	       val_new_bool(1),	   val_new_bool(0),
		      val_new_int(-7),	       val_new_float(2.0), val_new_float(NAN),
		      val_new_float(INFINITY), str("a\"b\\"),	   val_new_table()};
	const char *want[] = {"null", "true", "false",		"-7", "2.0",
			      "null", "null", "\"a\\\"b\\\\\"", "[]"};
	size_t k;

	for (k = 0; k < sizeof(v) / sizeof(v[0]); k++) {
		assert_dump(v[k], want[k]);
		val_free(v[k]);
	}
	assert_dump(NULL, "null");
}

Test(val_json, object_keys_sorted_bytewise)
{
	val_t *v = parse_ok("{\"b\":1,\"B\":2,\"a\":[true,null,1.5,\"x\"],\"\xc3\xa9\":3}");
	Moonpen__V1__Table *t = v->table_value;

	cr_assert_eq(v->kind_case, MOONPEN__V1__VALUE__KIND_TABLE_VALUE);
	cr_assert_eq(t->n_array, 0);
	cr_assert_eq(t->n_map, 4);
	cr_assert_str_eq(t->map[0]->key->string_value, "B");
	cr_assert_str_eq(t->map[1]->key->string_value, "a");
	cr_assert_str_eq(t->map[2]->key->string_value, "b");
	cr_assert_str_eq(t->map[3]->key->string_value, "\xc3\xa9");
	cr_assert_eq(t->map[1]->value->table_value->n_array, 4);
	cr_assert_eq(t->map[1]->value->table_value->array[1]->kind_case,
		     MOONPEN__V1__VALUE__KIND_NIL_VALUE);
	assert_dump(v, "{\"B\":2,\"a\":[true,null,1.5,\"x\"],\"b\":1,\"\xc3\xa9\":3}");
	val_free(v);
}

Test(val_json, nested_round_trips)
{
	assert_json_round_trip("{\"pos\":{\"x\":5,\"y\":0,\"z\":10},\"tags\":[\"a\",[1,[2.5]]]}");
	assert_json_round_trip("[[],{\"k\":[]},null,false]");
}

Test(val_json, bytes_as_base64)
{
	val_t *b = val_new_bytes("\x00\x01\xff", 3), *e = val_new_bytes("", 0), *back;

	assert_dump(b, "{\"$bytes\":\"AAH/\"}");
	assert_dump(e, "{\"$bytes\":\"\"}");
	back = parse_ok("{\"$bytes\":\"AAH/\"}");
	cr_assert_eq(back->kind_case, MOONPEN__V1__VALUE__KIND_BYTES_VALUE);
	cr_assert(val_equal(back, b));
	val_free(back);
	back = parse_ok("[{\"$bytes\":\"\"}]");
	cr_assert(val_equal(back->table_value->array[0], e));
	val_free(back);
	val_free(b);
	val_free(e);
	parse_fails("{\"$bytes\":\"AAH\"}", 4, "(root): $bytes is not valid base64");
	parse_fails("[1,{\"$bytes\":\"!!!!\"}]", 4, "[2]: $bytes is not valid base64");
}

Test(val_json, bytes_object_with_more_members_is_a_table)
{
	val_t *v = parse_ok("{\"$bytes\":\"AAH/\",\"x\":1}");

	cr_assert_eq(v->kind_case, MOONPEN__V1__VALUE__KIND_TABLE_VALUE);
	cr_assert_eq(v->table_value->n_map, 2);
	val_free(v);
}

Test(val_json, mixed_tables_become_objects)
{
	/* {10, 20, name="n", [7]=true, [false]=1, [2.5]="f", [bytes]=0, [nan]=dropped} */
	val_t *t = val_new_table();

	push(t, val_new_int(10));
	push(t, val_new_int(20));
	set(t, str("name"), str("n"));
	set(t, val_new_int(7), val_new_bool(1));
	set(t, val_new_bool(0), val_new_int(1));
	set(t, val_new_float(2.5), str("f"));
	set(t, val_new_bytes("\xff", 1), val_new_int(0));
	set(t, val_new_float(NAN), val_new_int(9));
	assert_dump(t, "{\"1\":10,\"2\":20,\"name\":\"n\",\"7\":true,\"false\":1,\"2.5\":\"f\","
		       "\"/w==\":0}");
	val_free(t);
}

Test(val_json, later_key_with_same_form_wins)
{
	val_t *t = val_new_table();

	push(t, str("array"));
	set(t, str("1"), str("map"));
	assert_dump(t, "{\"1\":\"map\"}");
	val_free(t);
}

Test(val_json, invalid_utf8_string_dumps_as_bytes)
{
	val_t *s = str("ok");

	free(s->string_value);
	s->string_value = strdup("\xff");
	assert_dump(s, "{\"$bytes\":\"/w==\"}");
	val_free(s);
}

Test(val_json, depth_limit)
{
	val_t *v = NULL;
	char err[128];
	json_t *j = json_loads("[[[1]]]", 0, NULL);

	assert_json_round_trip("[[[1]]]");
	parse_fails("[[[1]]]", 2, "[1][1]: tables nested deeper than 2");
	parse_fails("{\"a\":{\"b c\":{}}}", 2, "a.b c: tables nested deeper than 2");
	parse_fails("[]", 0, "(root): tables nested deeper than 0");
	cr_assert_not_null(j);
	cr_assert_eq(vjson_from_json(j, 3, &v, err, sizeof(err)), 0);
	cr_assert_eq(
	    v->table_value->array[0]->table_value->array[0]->table_value->array[0]->int_value, 1);
	val_free(v);
	cr_assert_eq(vjson_from_json(j, 2, &v, err, sizeof(err)), -EINVAL);
	cr_assert_null(v);
	json_decref(j);
	v = parse_ok("5");
	cr_assert_eq(v->int_value, 5); /* a scalar is depth 0 */
	val_free(v);
}

Test(val_json, malformed_json)
{
	parse_fails("{\"a\":", 4, "JSON line 1 column 5: unexpected token near end of file");
	parse_fails("[1,2", 4, "JSON line 1 column 4: ']' expected near end of file");
	parse_fails("{\"a\":1,\"a\":2}", 4,
		    "JSON line 1 column 10: duplicate object key near '\"a\"'");
	parse_fails("", 4, "JSON line 1 column 0: unexpected token near end of file");
}

Test(val_json, from_json_null_input)
{
	val_t *v = NULL;
	char err[64];

	cr_assert_eq(vjson_from_json(NULL, 4, &v, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "(root): no JSON value");
}
