/*
 * test_luaval — Value trees <-> Lua values: round trips of every kind,
 * canonical map order, and the refusals (cycle, depth, functions, threads,
 * unorderable keys) with the path of the offending value.
 *
 * Runs in the test process, on a sandboxed state.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include <lauxlib.h>

#include "common/val.h"
#include "worker/luaval.h"
#include "worker/sandbox.h"

static sbx *S;
static lua_State *L;

static void setup(void)
{
	sbx_limits lim = {.mem_bytes = 32u << 20, .deadline_ms = 0, .instructions = 0};
	char err[128];

	S = sbx_new(&lim, err, sizeof(err));
	cr_assert_not_null(S, "%s", err);
	L = sbx_L(S);
}

static void teardown(void)
{
	sbx_free(S);
}

/* Runs code returning one value, left on the stack. */
static void eval(const char *code)
{
	char err[256];
	sbx_err e = {0};

	cr_assert_eq(sbx_load(S, code, strlen(code), "t.lua", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(sbx_call(S, 0, 1, &e), 0, "%s", e.message);
}

/* v -> Lua -> Value, must give back an equal tree; frees v. */
static void round_trip(val_t *v)
{
	val_t *back = NULL;
	char err[256] = "";
	int top = lua_gettop(L);

	cr_assert_not_null(v);
	cr_assert_eq(lv_push(L, v, 32), 0);
	cr_assert_eq(lua_gettop(L), top + 1);
	cr_assert_eq(lv_to_val(L, -1, 32, &back, err, sizeof(err)), 0, "%s", err);
	cr_assert(val_equal(v, back), "round trip changed the value");
	lua_pop(L, 1);
	val_free(v);
	val_free(back);
}

static val_t *pair_table(void)
{
	val_t *t = val_new_table(), *inner = val_new_table();

	cr_assert_eq(val_table_push(t, val_new_int(1)), 0);
	cr_assert_eq(val_table_push(t, val_new_string("two", 3)), 0);
	cr_assert_eq(val_table_push(inner, val_new_bool(1)), 0);
	cr_assert_eq(val_table_push(t, inner), 0);
	/* canonical order: numbers, strings, false, true */
	cr_assert_eq(val_table_set(t, val_new_int(-5), val_new_float(0.5)), 0);
	cr_assert_eq(val_table_set(t, val_new_float(2.5), val_new_float(0.25)), 0);
	cr_assert_eq(val_table_set(t, val_new_int(10), val_new_bytes("\xff\x00", 2)), 0);
	cr_assert_eq(val_table_set(t, val_new_string("a", 1), val_new_int(INT64_MIN)), 0);
	cr_assert_eq(val_table_set(t, val_new_string("b", 1), val_new_table()), 0);
	cr_assert_eq(val_table_set(t, val_new_bool(0), val_new_string("no", 2)), 0);
	cr_assert_eq(val_table_set(t, val_new_bool(1), val_new_string("yes", 3)), 0);
	return t;
}

TestSuite(luaval, .init = setup, .fini = teardown);

Test(luaval, scalars_round_trip)
{
	round_trip(val_new_bool(1));
	round_trip(val_new_bool(0));
	round_trip(val_new_int(0));
	round_trip(val_new_int(INT64_MAX));
	round_trip(val_new_int(INT64_MIN));
	round_trip(val_new_float(3.0));
	round_trip(val_new_float(-1e300));
	round_trip(val_new_float(INFINITY));
	round_trip(val_new_string("h\xc3\xa9llo", 6));
	round_trip(val_new_string("", 0));
	round_trip(val_new_bytes("\xff\xfe", 2));
	round_trip(val_new_bytes("a\0b", 3));
}

Test(luaval, nil_round_trip)
{
	val_t *v = val_new_nil(), *back = NULL;
	char err[64];

	cr_assert_eq(lv_push(L, v, 32), 0);
	cr_assert(lua_isnil(L, -1));
	cr_assert_eq(lv_to_val(L, -1, 32, &back, err, sizeof(err)), 0);
	cr_assert_eq(back->kind_case, MOONPEN__V1__VALUE__KIND_NIL_VALUE);
	lua_pop(L, 1);
	cr_assert_eq(lv_push(L, NULL, 32), 0);
	cr_assert(lua_isnil(L, -1));
	lua_pop(L, 1);
	val_free(v);
	val_free(back);
}

Test(luaval, tables_round_trip)
{
	val_t *deep = pair_table(), *cur = deep;
	int i;

	round_trip(pair_table());
	round_trip(val_new_table());
	for (i = 0; i < 30; i++) {
		val_t *t = val_new_table();

		cr_assert_eq(val_table_set(t, val_new_string("next", 4), cur), 0);
		cur = t;
	}
	round_trip(cur); /* 31 levels of tables, under the limit of 32 */
}

Test(luaval, lua_side_shapes)
{
	val_t *v = NULL;
	char err[256];
	const Moonpen__V1__Table *t;

	eval("return {10, 20, 30, nil, 50, x = 1.0, [0] = 'z', [-1] = true, s = 'h\\xc3\\xa9',"
	     " b = '\\xff', [false] = 0}");
	cr_assert_eq(lv_to_val(L, -1, 32, &v, err, sizeof(err)), 0, "%s", err);
	lua_pop(L, 1);
	cr_assert_eq(v->kind_case, MOONPEN__V1__VALUE__KIND_TABLE_VALUE);
	t = v->table_value;
	cr_assert_eq(t->n_array, 3);
	cr_assert_eq(t->array[2]->int_value, 30);
	cr_assert_eq(t->n_map, 7);
	cr_assert_eq(t->map[0]->key->int_value, -1);
	cr_assert_eq(t->map[1]->key->int_value, 0);
	cr_assert_eq(t->map[2]->key->int_value, 5);
	cr_assert_str_eq(t->map[3]->key->string_value, "b");
	cr_assert_eq(t->map[3]->value->kind_case, MOONPEN__V1__VALUE__KIND_BYTES_VALUE);
	cr_assert_str_eq(t->map[4]->key->string_value, "s");
	cr_assert_eq(t->map[4]->value->kind_case, MOONPEN__V1__VALUE__KIND_STRING_VALUE);
	cr_assert_str_eq(t->map[4]->value->string_value, "h\xc3\xa9");
	cr_assert_str_eq(t->map[5]->key->string_value, "x");
	cr_assert_eq(t->map[5]->value->kind_case, MOONPEN__V1__VALUE__KIND_FLOAT_VALUE);
	cr_assert_float_eq(t->map[5]->value->float_value, 1.0, 0);
	cr_assert_eq(t->map[6]->key->kind_case, MOONPEN__V1__VALUE__KIND_BOOL_VALUE);
	cr_assert_eq(t->map[6]->key->bool_value, 0);
	cr_assert_eq(t->map[2]->value->int_value, 50);
	val_free(v);
}

Test(luaval, booleans_sort_last)
{
	val_t *v = NULL;
	char err[256];

	eval("return {[true] = 1, [false] = 2, z = 3, [2.5] = 4}");
	cr_assert_eq(lv_to_val(L, -1, 32, &v, err, sizeof(err)), 0, "%s", err);
	lua_pop(L, 1);
	cr_assert_eq(v->table_value->n_map, 4);
	cr_assert_float_eq(v->table_value->map[0]->key->float_value, 2.5, 0);
	cr_assert_str_eq(v->table_value->map[1]->key->string_value, "z");
	cr_assert_eq(v->table_value->map[2]->key->bool_value, 0);
	cr_assert_eq(v->table_value->map[3]->key->bool_value, 1);
	val_free(v);
}

static void expect_refused(const char *code, const char *root, const char *want)
{
	val_t *v = (val_t *)1;
	char err[256] = "";
	int top;

	eval(code);
	top = lua_gettop(L);
	cr_assert_eq(lv_to_val_named(L, -1, 32, root, &v, err, sizeof(err)), -EINVAL);
	cr_assert_null(v);
	cr_assert_str_eq(err, want);
	cr_assert_eq(lua_gettop(L), top, "stack changed");
	lua_pop(L, 1);
}

Test(luaval, refusals_name_the_path)
{
	expect_refused("return {items = {1, 2, function() end}}", "payload",
		       "payload.items[3]: cannot convert a function");
	expect_refused("return {items = {1, 2, function() end}}", NULL,
		       "items[3]: cannot convert a function");
	expect_refused("return print", NULL, "cannot convert a function");
	expect_refused("return {a = {['odd key'] = coroutine.create(print)}}", "arg",
		       "arg.a[\"odd key\"]: cannot convert a thread");
	expect_refused("local t = {x = {}} t.x.back = t return t", "state",
		       "state.x.back: cycle: the table contains itself");
	expect_refused("return {[{}] = 1}", "m",
		       "m: table key of type 'table' cannot be converted");
	expect_refused("local t = {} for i = 1, 40 do t = {t} end return t", "d",
		       "d[1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1][1]"
		       "[1][1][1][1][1][1][1][1]: tables nested deeper than 32");
}

Test(luaval, shared_subtables_are_fine)
{
	val_t *v = NULL;
	char err[256];

	eval("local s = {1} return {a = s, b = s}");
	cr_assert_eq(lv_to_val(L, -1, 32, &v, err, sizeof(err)), 0, "%s", err);
	lua_pop(L, 1);
	cr_assert(val_equal(v->table_value->map[0]->value, v->table_value->map[1]->value));
	val_free(v);
}

Test(luaval, exponential_dag_refused)
{
	val_t *v = NULL;
	char err[256];

	eval("local t = {} for i = 1, 30 do t = {t, t} end return t");
	cr_assert_eq(lv_to_val(L, -1, 32, &v, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "more than 1000000 values"), "%s", err);
	lua_pop(L, 1);
}

Test(luaval, push_refuses_depth)
{
	val_t *cur = val_new_int(1);
	int i, top = lua_gettop(L);

	for (i = 0; i < 33; i++) {
		val_t *t = val_new_table();

		cr_assert_eq(val_table_push(t, cur), 0);
		cur = t;
	}
	cr_assert_eq(lv_push(L, cur, 32), -EINVAL);
	cr_assert_eq(lua_gettop(L), top);
	cr_assert_eq(lv_push(L, cur, 33), 0);
	lua_pop(L, 1);
	val_free(cur);
}

Test(luaval, push_refuses_nil_key)
{
	val_t *t = val_new_table();

	cr_assert_eq(val_table_set(t, val_new_nil(), val_new_int(1)), 0);
	cr_assert_eq(lv_push(L, t, 32), -EINVAL);
	val_free(t);
	t = val_new_table();
	cr_assert_eq(val_table_set(t, val_new_float(NAN), val_new_int(1)), 0);
	cr_assert_eq(lv_push(L, t, 32), -EINVAL);
	val_free(t);
}

/* Out of Lua memory: lv_push reports -ENOMEM and leaves the stack as it was. */
Test(luaval, push_out_of_memory)
{
	sbx_limits lim = {.mem_bytes = 256u << 10, .deadline_ms = 0, .instructions = 0};
	char err[128];
	sbx *small = sbx_new(&lim, err, sizeof(err));
	lua_State *l2;
	val_t *t = val_new_table();
	char big[4096];
	int i;

	cr_assert_not_null(small, "%s", err);
	l2 = sbx_L(small);
	memset(big, 'x', sizeof(big));
	for (i = 0; i < 200; i++) {
		big[0] = (char)('a' + i % 26);
		big[1] = (char)('a' + i / 26);
		cr_assert_eq(val_table_push(t, val_new_string(big, sizeof(big))), 0);
	}
	cr_assert_eq(lv_push(l2, t, 32), -ENOMEM);
	cr_assert_eq(lua_gettop(l2), 0);
	val_free(t);
	sbx_free(small);
}
