/*
 * Out of memory in the API request decoder (test process; failing allocator,
 * tests/oom/failmalloc.c). Every allocation of sup_req_decode is made to fail
 * in turn, alone and from then on: each run must end in a clean refusal
 * (INTERNAL "out of memory", never INVALID_ARGUMENT: the client did nothing
 * wrong), and no block may leak.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/reqcheck.h"
#include "tests/oom/failmalloc.h"

struct req_ctx {
	uint8_t *buf;
	size_t len;
	long before;
	Moonpen__V1__Request *q;
	st_code code;
	char err[256];
	int runs;
};

static int decode(void *arg)
{
	struct req_ctx *c = arg;

	c->q = NULL;
	c->before = fm_live();
	return sup_req_decode(c->buf, c->len, 1 << 20, &c->q, &c->code, c->err, sizeof c->err);
}

static void judge(void *arg, int r, int failed)
{
	struct req_ctx *c = arg;

	c->runs++;
	if (!failed) {
		cr_assert_eq(r, 0, "the request is valid: %s", c->err);
		cr_assert_eq(c->code, MOONPEN__V1__STATUS__CODE__OK);
		cr_assert_not_null(c->q);
		cr_assert_eq(c->q->id, 77);
	} else {
		cr_assert_eq(r, -ENOMEM, "run %d: got %d (%s)", c->runs, r, c->err);
		cr_assert_eq(c->code, MOONPEN__V1__STATUS__CODE__INTERNAL);
		cr_assert_null(c->q);
		cr_assert_str_eq(c->err, "out of memory decoding the request");
	}
	if (c->q)
		protobuf_c_message_free_unpacked(&c->q->base, NULL);
	long live = fm_settle(c->before);

	cr_assert_eq(live, c->before, "run %d: %ld blocks leaked", c->runs, live - c->before);
}

static Moonpen__V1__Value *v_int(int64_t i)
{
	Moonpen__V1__Value *v = malloc(sizeof *v);

	cr_assert_not_null(v);
	moonpen__v1__value__init(v);
	v->kind_case = MOONPEN__V1__VALUE__KIND_INT_VALUE;
	v->int_value = i;
	return v;
}

/* A Call with a table argument {1, 2, {3}, k = "x"}: many small allocations. */
static uint8_t *sample(size_t *len)
{
	Moonpen__V1__Request q = MOONPEN__V1__REQUEST__INIT;
	Moonpen__V1__Call call = MOONPEN__V1__CALL__INIT;
	Moonpen__V1__Table t = MOONPEN__V1__TABLE__INIT, inner = MOONPEN__V1__TABLE__INIT;
	Moonpen__V1__Value tv = MOONPEN__V1__VALUE__INIT, iv = MOONPEN__V1__VALUE__INIT;
	Moonpen__V1__Value key = MOONPEN__V1__VALUE__INIT, val = MOONPEN__V1__VALUE__INIT;
	Moonpen__V1__Pair pair = MOONPEN__V1__PAIR__INIT, *pairs[1] = {&pair};
	Moonpen__V1__Value *arr[3], *inarr[1], *args[2];
	uint8_t *buf;

	arr[0] = v_int(1);
	arr[1] = v_int(2);
	inarr[0] = v_int(3);
	inner.n_array = 1;
	inner.array = inarr;
	iv.kind_case = MOONPEN__V1__VALUE__KIND_TABLE_VALUE;
	iv.table_value = &inner;
	arr[2] = &iv;
	key.kind_case = MOONPEN__V1__VALUE__KIND_STRING_VALUE;
	key.string_value = "k";
	val.kind_case = MOONPEN__V1__VALUE__KIND_STRING_VALUE;
	val.string_value = "x";
	pair.key = &key;
	pair.value = &val;
	t.n_array = 3;
	t.array = arr;
	t.n_map = 1;
	t.map = pairs;
	tv.kind_case = MOONPEN__V1__VALUE__KIND_TABLE_VALUE;
	tv.table_value = &t;
	args[0] = &tv;
	args[1] = v_int(-7);
	call.instance_id = "dungeon:1";
	call.function = "open_gate";
	call.n_args = 2;
	call.args = args;
	q.id = 77;
	q.trace_id = "trace-1";
	q.op_case = MOONPEN__V1__REQUEST__OP_CALL;
	q.call = &call;
	*len = moonpen__v1__request__get_packed_size(&q);
	buf = malloc(*len);
	cr_assert_not_null(buf);
	moonpen__v1__request__pack(&q, buf);
	free(arr[0]);
	free(arr[1]);
	free(inarr[0]);
	free(args[1]);
	return buf;
}

Test(oom_reqcheck, each_allocation_fails_once)
{
	struct req_ctx c = {0};
	unsigned long n;

	c.buf = sample(&c.len);
	n = fm_sweep(decode, judge, &c, 10000, 0);
	cr_assert_gt(n, 10, "a Call with a table argument needs more than 10 allocations, got %lu",
		     n);
	cr_assert_eq((unsigned long)c.runs, n + 1, "every allocation was failed once");
	free(c.buf);
}

Test(oom_reqcheck, out_of_memory_from_the_nth_allocation_on)
{
	struct req_ctx c = {0};
	unsigned long n;

	c.buf = sample(&c.len);
	n = fm_sweep(decode, judge, &c, 10000, 1);
	cr_assert_gt(n, 10);
	free(c.buf);
}
