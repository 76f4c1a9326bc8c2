/*
 * test_val — common/val.c: constructors, protobuf round trips, copy/equal,
 * UTF-8 validation and val_check()'s refusals with their exact messages.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/val.h"

/* Packs v, unpacks it again and returns the decoded tree. */
static val_t *wire_round_trip(const val_t *v)
{
	size_t len = moonpen__v1__value__get_packed_size(v);
	uint8_t *buf = malloc(len + 1);
	val_t *back;

	cr_assert_not_null(buf);
	cr_assert_eq(moonpen__v1__value__pack(v, buf), len);
	back = moonpen__v1__value__unpack(NULL, len, buf);
	free(buf);
	cr_assert_not_null(back);
	return back;
}

/* Round-trips v through the wire and val_copy(); both must equal v. */
static void assert_round_trips(const val_t *v)
{
	val_t *back = wire_round_trip(v), *copy = val_copy(v);
	char err[128];

	cr_assert_not_null(copy);
	cr_assert(val_equal(v, back));
	cr_assert(val_equal(v, copy));
	cr_assert(val_equal(back, copy));
	cr_assert_eq(back->kind_case, v->kind_case);
	cr_assert_eq(val_check(back, VAL_MAX_DEPTH_DEFAULT, err, sizeof(err)), 0, "%s", err);
	val_free(back);
	val_free(copy);
}

static void push(val_t *t, val_t *item)
{
	cr_assert_not_null(item);
	cr_assert_eq(val_table_push(t, item), 0);
}

static void set(val_t *t, val_t *k, val_t *v)
{
	cr_assert_not_null(k);
	cr_assert_not_null(v);
	cr_assert_eq(val_table_set(t, k, v), 0);
}

static val_t *str(const char *s)
{
	return val_new_string(s, strlen(s));
}

static void expect_check(const val_t *v, unsigned depth, const char *msg)
{
	char err[256];

	cr_assert_eq(val_check(v, depth, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, msg);
}

Test(val, scalars_round_trip)
{
	val_t *v[] = {
	    val_new_nil(),
	    val_new_bool(1),
	    val_new_bool(0),
	    val_new_int(0),
	    val_new_int(INT64_MIN),
	    val_new_int(INT64_MAX),
	    val_new_float(-0.5),
	    val_new_float(1e308),
	    val_new_float(NAN),
	    str(""),
	    str("h\xc3\xa9llo \xe2\x82\xac"),
	    val_new_bytes("\x00\xff\x01", 3),
	    val_new_bytes("", 0),
	    val_new_table(),
	};
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		cr_assert_not_null(v[i]);
		assert_round_trips(v[i]);
		val_free(v[i]);
	}
}

Test(val, scalar_values_are_what_was_built)
{
	val_t *i = val_new_int(-42), *f = val_new_float(2.5), *b = val_new_bool(7);
	val_t *bi = wire_round_trip(i), *bf = wire_round_trip(f), *bb = wire_round_trip(b);

	cr_assert_eq(bi->kind_case, MOONPEN__V1__VALUE__KIND_INT_VALUE);
	cr_assert_eq(bi->int_value, -42);
	cr_assert_eq(bf->kind_case, MOONPEN__V1__VALUE__KIND_FLOAT_VALUE);
	cr_assert_eq(bf->float_value, 2.5);
	cr_assert_eq(bb->kind_case, MOONPEN__V1__VALUE__KIND_BOOL_VALUE);
	cr_assert_eq(bb->bool_value, 1);
	val_free(i);
	val_free(f);
	val_free(b);
	val_free(bi);
	val_free(bf);
	val_free(bb);
}

Test(val, string_picks_bytes_when_not_utf8)
{
	val_t *ok = str("caf\xc3\xa9"), *bad = val_new_string("\xff\xfe", 2);
	val_t *nul = val_new_string("a\0b", 3);

	cr_assert_eq(ok->kind_case, MOONPEN__V1__VALUE__KIND_STRING_VALUE);
	cr_assert_str_eq(ok->string_value, "caf\xc3\xa9");
	cr_assert_eq(bad->kind_case, MOONPEN__V1__VALUE__KIND_BYTES_VALUE);
	cr_assert_eq(bad->bytes_value.len, 2);
	cr_assert_eq(memcmp(bad->bytes_value.data, "\xff\xfe", 2), 0);
	cr_assert_eq(nul->kind_case, MOONPEN__V1__VALUE__KIND_BYTES_VALUE);
	cr_assert_eq(nul->bytes_value.len, 3);
	val_free(ok);
	val_free(bad);
	val_free(nul);
}

Test(val, nested_tables_round_trip)
{
	/* {1, "two", {x=5, y=0, z=10}, pos={inner={true}}, [7]=false, [2.5]="f"} */
	val_t *t = val_new_table(), *xyz = val_new_table(), *pos = val_new_table();
	val_t *inner = val_new_table(), *back;

	push(t, val_new_int(1));
	push(t, str("two"));
	set(xyz, str("x"), val_new_int(5));
	set(xyz, str("y"), val_new_int(0));
	set(xyz, str("z"), val_new_int(10));
	push(t, xyz);
	push(inner, val_new_bool(1));
	set(pos, str("inner"), inner);
	set(t, str("pos"), pos);
	set(t, val_new_int(7), val_new_bool(0));
	set(t, val_new_float(2.5), str("f"));
	assert_round_trips(t);

	back = wire_round_trip(t);
	cr_assert_eq(back->table_value->n_array, 3);
	cr_assert_eq(back->table_value->n_map, 3);
	cr_assert_str_eq(back->table_value->map[0]->key->string_value, "pos");
	cr_assert_eq(back->table_value->array[2]->table_value->map[2]->value->int_value, 10);
	val_free(back);
	val_free(t);
}

Test(val, equal_distinguishes)
{
	val_t *a = val_new_int(1), *b = val_new_float(1.0), *n = val_new_nil();
	val_t absent = MOONPEN__V1__VALUE__INIT;
	val_t *t1 = val_new_table(), *t2 = val_new_table();

	cr_assert_not(val_equal(a, b));
	cr_assert(val_equal(n, &absent));
	cr_assert(val_equal(n, NULL));
	cr_assert_not(val_equal(n, a));
	push(t1, val_new_int(1));
	push(t2, val_new_int(2));
	cr_assert_not(val_equal(t1, t2));
	val_free(a);
	val_free(b);
	val_free(n);
	val_free(t1);
	val_free(t2);
}

Test(val, push_and_set_refuse_non_tables)
{
	val_t *i = val_new_int(1), *item = val_new_int(2);

	cr_assert_eq(val_table_push(i, item), -EINVAL);
	cr_assert_eq(val_table_set(i, item, item), -EINVAL);
	val_free(i);
	val_free(item);
}

Test(val, utf8_validation)
{
	cr_assert(val_utf8_valid("", 0));
	cr_assert(val_utf8_valid("abc", 3));
	cr_assert(val_utf8_valid("\xe2\x82\xac", 3));	      /* U+20AC */
	cr_assert(val_utf8_valid("\xf0\x9f\x98\x80", 4));     /* U+1F600 */
	cr_assert(val_utf8_valid("\xf4\x8f\xbf\xbf", 4));     /* U+10FFFF */
	cr_assert_not(val_utf8_valid("\xc0\x80", 2));	      /* overlong NUL */
	cr_assert_not(val_utf8_valid("\xe0\x80\xaf", 3));     /* overlong '/' */
	cr_assert_not(val_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
	cr_assert_not(val_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
	cr_assert_not(val_utf8_valid("\xe2\x82", 2));	      /* truncated */
	cr_assert_not(val_utf8_valid("\x80", 1));	      /* stray continuation */
	cr_assert_not(val_utf8_valid("\xe2\x28\xa1", 3));     /* bad continuation */
}

/* {{{...}}} nested n deep */
static val_t *nest(unsigned n)
{
	val_t *v = val_new_int(1);
	unsigned i;

	for (i = 0; i < n; i++) {
		val_t *t = val_new_table();

		push(t, v);
		v = t;
	}
	return v;
}

Test(val, check_depth)
{
	val_t *two = nest(2), *three = nest(3), *scalar = val_new_int(3);
	char err[64];

	cr_assert_eq(val_check(two, 2, err, sizeof(err)), 0);
	cr_assert_str_eq(err, "");
	cr_assert_eq(val_check(scalar, 0, err, sizeof(err)), 0);
	expect_check(three, 2, "[1][1]: tables nested deeper than 2");
	expect_check(two, 0, "(root): tables nested deeper than 0");
	val_free(two);
	val_free(three);
	val_free(scalar);
}

Test(val, check_invalid_utf8_names_path)
{
	/* {1, {key="\xc0\x80"}} with the bad string forced into string_value */
	val_t *t = val_new_table(), *inner = val_new_table(), *s = str("ok"), *root = str("x");

	free(s->string_value);
	s->string_value = strdup("\xc0\x80");
	push(t, val_new_int(1));
	set(inner, str("key"), s);
	push(t, inner);
	expect_check(t, 8, "[2].key: string_value is not valid UTF-8");
	free(root->string_value);
	root->string_value = strdup("\xff");
	expect_check(root, 8, "(root): string_value is not valid UTF-8");
	val_free(t);
	val_free(root);
}

Test(val, check_path_of_odd_keys)
{
	val_t *t = val_new_table(), *inner = val_new_table();

	set(inner, val_new_int(3), val_new_table());
	set(t, str("a b"), inner);
	expect_check(t, 2, "[\"a b\"][3]: tables nested deeper than 2");
	val_free(t);
}

Test(val, check_bad_keys)
{
	val_t *nan = val_new_table(), *nil = val_new_table(), *tab = val_new_table();
	val_t *absent = val_new_table(), *deep = val_new_table(), *mid = val_new_table();

	set(nan, val_new_float(NAN), val_new_int(1));
	expect_check(nan, 4, "(root): map key 1 is NaN");
	set(nil, str("fine"), val_new_int(1));
	set(nil, val_new_nil(), val_new_int(1));
	expect_check(nil, 4, "(root): map key 2 is nil");
	set(tab, val_new_table(), val_new_int(1));
	expect_check(tab, 4, "(root): map key 1 is a table");
	set(absent, val_new_int(1), val_new_int(2));
	val_free(absent->table_value->map[0]->key);
	absent->table_value->map[0]->key = NULL;
	expect_check(absent, 4, "(root): map key 1 is nil");
	set(mid, str("k"), val_new_int(1));
	set(mid, val_new_float(NAN), val_new_int(1));
	push(deep, mid);
	expect_check(deep, 4, "[1]: map key 2 is NaN");
	val_free(nan);
	val_free(nil);
	val_free(tab);
	val_free(absent);
	val_free(deep);
}

Test(val, check_malformed_oneof)
{
	val_t *v = val_new_int(1), *t = val_new_table(), *s = str("x");

	v->kind_case = (Moonpen__V1__Value__KindCase)99;
	expect_check(v, 4, "(root): unknown value kind 99");
	v->kind_case = MOONPEN__V1__VALUE__KIND_INT_VALUE;
	push(t, v);
	push(t, s);
	free(s->string_value);
	s->string_value = NULL;
	expect_check(t, 4, "[2]: malformed string");
	val_free(t);
}

Test(val, check_absent_values)
{
	val_t *t = val_new_table();
	char err[64];

	cr_assert_eq(val_check(NULL, 4, err, sizeof(err)), 0); /* absent payload: nil */
	set(t, str("k"), val_new_int(1));
	val_free(t->table_value->map[0]->value);
	t->table_value->map[0]->value = NULL; /* a Pair decoded without its value */
	expect_check(t, 4, "k: value is absent");
	val_free(t);
}

Test(val, check_width, .timeout = 60)
{
	val_t *t = val_new_table();
	char err[128];
	int i;

	for (i = 0; i < 999999; i++)
		push(t, val_new_int(i));
	cr_assert_eq(val_check(t, 1, err, sizeof(err)), 0, "%s", err); /* 1,000,000 nodes */
	push(t, val_new_int(-1));
	expect_check(t, 1, "[1000000]: value has more than 1000000 nodes");
	val_free(t);
}

Test(val, check_truncates_err)
{
	val_t *three = nest(3);
	char err[8];

	cr_assert_eq(val_check(three, 1, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "[1]: ta");
	val_free(three);
}

Test(val, utf8_scrub_replaces_each_bad_byte)
{
	char s1[] = "a\xff"
		    "b\xe2\x82\xac"
		    "\xed\xa0\x80"
		    "c";
	char s2[] = "ok\xe2\x82";
	char s3[] = "";

	val_utf8_scrub(s1);
	cr_expect_str_eq(s1, "a?b\xe2\x82\xac???c"); /* euro sign kept, surrogate replaced */
	val_utf8_scrub(s2);
	cr_expect_str_eq(s2, "ok??"); /* truncated sequence at the end */
	val_utf8_scrub(s3);
	cr_expect_str_eq(s3, "");
	val_utf8_scrub(NULL);
	cr_expect(val_utf8_valid(s1, strlen(s1)));
}
