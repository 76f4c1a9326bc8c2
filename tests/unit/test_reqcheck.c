/*
 * reqcheck and wire: every API request check with its exact message, and the
 * nesting bound that runs before protobuf-c's recursive decoder.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/val.h"
#include "common/wire.h"
#include "policy/limits.h"
#include "supervisor/reqcheck.h"

static uint8_t *pack_req(const Moonpen__V1__Request *q, size_t *len)
{
	uint8_t *buf;

	*len = moonpen__v1__request__get_packed_size(q);
	buf = malloc(*len ? *len : 1);
	moonpen__v1__request__pack(q, buf);
	return buf;
}

/* Decodes q's bytes; returns the error text ("" when accepted). */
static const char *check(const Moonpen__V1__Request *q)
{
	static char err[600];
	Moonpen__V1__Request *out = NULL;
	st_code code;
	size_t len;
	uint8_t *buf = pack_req(q, &len);
	int r = sup_req_decode(buf, len, 1 << 20, &out, &code, err, sizeof err);

	if (r == 0) {
		err[0] = '\0';
		cr_assert_eq(code, MOONPEN__V1__STATUS__CODE__OK);
	} else {
		cr_assert_eq(code, MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT);
		cr_assert_not_null(out, "a decodable request is handed back for its id");
		cr_assert_eq(out->id, q->id);
	}
	if (out)
		protobuf_c_message_free_unpacked(&out->base, NULL);
	free(buf);
	return err;
}

Test(reqcheck, create)
{
	Moonpen__V1__Request q = MOONPEN__V1__REQUEST__INIT;
	Moonpen__V1__CreateInstance c = MOONPEN__V1__CREATE_INSTANCE__INIT;
	Moonpen__V1__CreateInstance__LabelsEntry l =
	    MOONPEN__V1__CREATE_INSTANCE__LABELS_ENTRY__INIT;
	Moonpen__V1__CreateInstance__LabelsEntry *lp = &l;

	q.id = 9;
	q.op_case = MOONPEN__V1__REQUEST__OP_CREATE;
	q.create = &c;
	c.instance_id = "dungeon:1";
	c.pack_id = "dungeon-forest";
	cr_expect_str_eq(check(&q), "");
	c.pack_version = "1.2.3";
	c.tick_ms = 60000;
	cr_expect_str_eq(check(&q), "");
	c.instance_id = "";
	cr_expect_str_eq(check(&q),
			 "create: instance_id must be 1-128 characters of [A-Za-z0-9._:-]");
	c.instance_id = "a b";
	cr_expect_str_eq(check(&q),
			 "create: instance_id must be 1-128 characters of [A-Za-z0-9._:-]");
	c.instance_id = "ok";
	c.pack_id = "../etc";
	cr_expect_str_eq(check(&q), "create: pack_id must be 1-64 characters of [A-Za-z0-9._-]");
	c.pack_id = "p";
	c.pack_version = "1.0;rm";
	cr_expect_str_eq(check(&q), "create: pack_version must look like 1.2.3");
	c.pack_version = "";
	c.tick_ms = 60001;
	cr_expect_str_eq(check(&q), "create: tick_ms must be at most 60000");
	c.tick_ms = 0;
	c.n_labels = 1;
	c.labels = &lp;
	l.key = "region";
	l.value = "eu";
	cr_expect_str_eq(check(&q), "");
	l.key = "bad key";
	cr_expect(strstr(check(&q), "label 0: key must be") != NULL);
}

Test(reqcheck, event_tick_call)
{
	Moonpen__V1__Request q = MOONPEN__V1__REQUEST__INIT;
	Moonpen__V1__SendEvent ev = MOONPEN__V1__SEND_EVENT__INIT;
	Moonpen__V1__Tick t = MOONPEN__V1__TICK__INIT;
	Moonpen__V1__Call c = MOONPEN__V1__CALL__INIT;
	Moonpen__V1__Value bad = MOONPEN__V1__VALUE__INIT;
	Moonpen__V1__Value *args[1] = {&bad};

	q.op_case = MOONPEN__V1__REQUEST__OP_EVENT;
	q.event = &ev;
	ev.instance_id = "i";
	ev.name = "OnAreaEnter:boss_room";
	cr_expect_str_eq(check(&q), "");
	ev.name = "has space";
	cr_expect(strstr(check(&q), "event: event name must be") == check(&q));
	ev.name = "ok";
	bad.kind_case = MOONPEN__V1__VALUE__KIND_STRING_VALUE;
	bad.string_value = "\xff\xfe";
	ev.payload = &bad;
	cr_expect(strncmp(check(&q), "event: payload: ", 16) == 0, "%s", check(&q));

	q.op_case = MOONPEN__V1__REQUEST__OP_TICK;
	q.tick = &t;
	t.instance_id = "i";
	t.count = 100000;
	cr_expect_str_eq(check(&q), "");
	t.count = 100001;
	cr_expect_str_eq(check(&q), "tick: count must be at most 100000");

	q.op_case = MOONPEN__V1__REQUEST__OP_CALL;
	q.call = &c;
	c.instance_id = "i";
	c.function = "spawn_wave";
	cr_expect_str_eq(check(&q), "");
	c.function = "1abc";
	cr_expect_str_eq(check(&q), "call: function must be a Lua identifier of at most 128 bytes");
	c.function = "os.exit";
	cr_expect_str_eq(check(&q), "call: function must be a Lua identifier of at most 128 bytes");
	c.function = "f";
	c.n_args = 1;
	c.args = args;
	cr_expect(strncmp(check(&q), "call: args[0]: ", 15) == 0, "%s", check(&q));
}

Test(reqcheck, no_op_malformed_oversized)
{
	static const uint8_t garbage[] = {0x0a, 0xff, 0xff, 0xff};
	Moonpen__V1__Request q = MOONPEN__V1__REQUEST__INIT;
	Moonpen__V1__Request *out = NULL;
	char err[256];
	st_code code;

	q.id = 3;
	cr_expect_str_eq(check(&q), "request has no operation");
	cr_expect_eq(sup_req_decode(garbage, sizeof garbage, 1024, &out, &code, err, sizeof err),
		     -EINVAL);
	cr_expect_null(out);
	cr_expect_str_eq(err, "malformed request: not a moonpen.v1.Request");
	cr_expect_eq(sup_req_decode(garbage, sizeof garbage, 2, &out, &code, err, sizeof err),
		     -EINVAL);
	cr_expect_str_eq(err, "request of 4 bytes exceeds the limit of 2 bytes");
}

/* A Value nested n tables deep, written by hand in the wire format: each level
 * is Value{table_value(7) = Table{array(1) = <inner Value>}}. */
static uint8_t *nested_value(unsigned n, size_t *len)
{
	size_t cap = 16 + (size_t)n * 12, o = cap;
	uint8_t *buf = malloc(cap);
	size_t inner = 0;

	for (unsigned i = 0; i < n; i++) {
		/* prepend: Table.array field 1 */
		size_t l = inner, k = 0;
		uint8_t v[10];
		do {
			v[k++] = (uint8_t)((l & 0x7f) | (l > 0x7f ? 0x80 : 0));
			l >>= 7;
		} while (l);
		o -= k;
		memcpy(buf + o, v, k);
		buf[--o] = 0x0a;
		inner = cap - o;
		l = inner;
		k = 0;
		do {
			v[k++] = (uint8_t)((l & 0x7f) | (l > 0x7f ? 0x80 : 0));
			l >>= 7;
		} while (l);
		o -= k;
		memcpy(buf + o, v, k);
		buf[--o] = 0x3a; /* Value.table_value field 7 */
		inner = cap - o;
	}
	memmove(buf, buf + o, inner);
	*len = inner;
	return buf;
}

Test(wire, nesting_bomb_refused_before_decoding)
{
	ProtobufCMessage *m = NULL;
	size_t len;
	uint8_t *ok = nested_value(20, &len);

	cr_expect_eq(wire_unpack(&moonpen__v1__value__descriptor, ok, len, 1 << 20, &m), 0);
	char err[128];
	cr_expect_eq(val_check((val_t *)m, 32, err, sizeof err), 0, "%s", err);
	protobuf_c_message_free_unpacked(m, NULL);
	free(ok);
	/* 200000 levels in ~1.2 MB: protobuf-c alone would recurse 400000 frames deep */
	uint8_t *bomb = nested_value(200000, &len);
	m = NULL;
	cr_expect_eq(wire_unpack(&moonpen__v1__value__descriptor, bomb, len, 1 << 22, &m),
		     -EBADMSG);
	cr_expect_null(m);
	free(bomb);
}

/* ---- queries, rollback, restore, traces ------------------------------------------ */

Test(reqcheck, host_result)
{
	Moonpen__V1__Request q = MOONPEN__V1__REQUEST__INIT;
	Moonpen__V1__HostResult h = MOONPEN__V1__HOST_RESULT__INIT;
	Moonpen__V1__Value v = MOONPEN__V1__VALUE__INIT;
	char long_err[1100];

	q.op_case = MOONPEN__V1__REQUEST__OP_HOST_RESULT;
	q.host_result = &h;
	h.instance_id = "i";
	h.call_id = 3;
	cr_expect_str_eq(check(&q), "host_result: exactly one answer is needed: value or error");
	h.answer_case = MOONPEN__V1__HOST_RESULT__ANSWER_VALUE;
	h.value = &v;
	v.kind_case = MOONPEN__V1__VALUE__KIND_INT_VALUE;
	v.int_value = 7;
	cr_expect_str_eq(check(&q), "");
	v.kind_case = MOONPEN__V1__VALUE__KIND_STRING_VALUE;
	v.string_value = "\xc0\x80";
	cr_expect(strncmp(check(&q), "host_result: value: ", 20) == 0, "%s", check(&q));
	h.answer_case = MOONPEN__V1__HOST_RESULT__ANSWER_ERROR;
	h.error = "no path";
	cr_expect_str_eq(check(&q), "");
	h.error = "";
	cr_expect_str_eq(check(&q), "host_result: error must be 1-1024 bytes of UTF-8");
	memset(long_err, 'x', sizeof long_err - 1);
	long_err[sizeof long_err - 1] = '\0';
	h.error = long_err;
	cr_expect_str_eq(check(&q), "host_result: error must be 1-1024 bytes of UTF-8");
	h.error = "ok";
	h.call_id = 0;
	cr_expect_str_eq(check(&q),
			 "host_result: call_id must be the call_id of a pending query (not 0)");
	h.call_id = 1;
	h.instance_id = "bad id";
	cr_expect_str_eq(check(&q),
			 "host_result: instance_id must be 1-128 characters of [A-Za-z0-9._:-]");
}

Test(reqcheck, host_result_value_depth)
{
	Moonpen__V1__Request q = MOONPEN__V1__REQUEST__INIT;
	Moonpen__V1__HostResult h = MOONPEN__V1__HOST_RESULT__INIT;
	Moonpen__V1__Value v[40];
	Moonpen__V1__Table t[40];
	Moonpen__V1__Value *item[40];
	int i;

	for (i = 0; i < 40; i++) {
		moonpen__v1__value__init(&v[i]);
		moonpen__v1__table__init(&t[i]);
		v[i].kind_case = MOONPEN__V1__VALUE__KIND_TABLE_VALUE;
		v[i].table_value = &t[i];
		if (i + 1 < 40) {
			item[i] = &v[i + 1];
			t[i].array = &item[i];
			t[i].n_array = 1;
		}
	}
	q.op_case = MOONPEN__V1__REQUEST__OP_HOST_RESULT;
	q.host_result = &h;
	h.instance_id = "i";
	h.call_id = 1;
	h.answer_case = MOONPEN__V1__HOST_RESULT__ANSWER_VALUE;
	h.value = &v[0];
	cr_expect(strncmp(check(&q), "host_result: value: ", 20) == 0, "%s", check(&q));
	h.value = &v[40 - 32];
	cr_expect_str_eq(check(&q), "");
}

Test(reqcheck, rollback_restore_trace_incident)
{
	Moonpen__V1__Request q = MOONPEN__V1__REQUEST__INIT;
	Moonpen__V1__Rollback rb = MOONPEN__V1__ROLLBACK__INIT;
	Moonpen__V1__RestoreInstance rs = MOONPEN__V1__RESTORE_INSTANCE__INIT;
	Moonpen__V1__ExportTrace tr = MOONPEN__V1__EXPORT_TRACE__INIT;
	Moonpen__V1__GetIncident gi = MOONPEN__V1__GET_INCIDENT__INIT;
	uint8_t blob[4] = {1, 2, 3, 4};

	q.op_case = MOONPEN__V1__REQUEST__OP_ROLLBACK;
	q.rollback = &rb;
	rb.instance_id = "i";
	rb.tick = 120;
	cr_expect_str_eq(check(&q), "");
	rb.instance_id = "";
	cr_expect_str_eq(check(&q),
			 "rollback: instance_id must be 1-128 characters of [A-Za-z0-9._:-]");

	q.op_case = MOONPEN__V1__REQUEST__OP_RESTORE;
	q.restore = &rs;
	rs.instance_id = "i";
	cr_expect_str_eq(check(&q), "restore: snapshot must be 1-16777216 bytes (a blob from "
				    "SnapshotInstance), got 0");
	rs.snapshot.data = blob;
	rs.snapshot.len = sizeof blob;
	cr_expect_str_eq(check(&q), "");

	q.op_case = MOONPEN__V1__REQUEST__OP_TRACE;
	q.trace = &tr;
	tr.instance_id = "i";
	cr_expect_str_eq(check(&q), "");
	tr.instance_id = "x/y";
	cr_expect_str_eq(check(&q),
			 "trace: instance_id must be 1-128 characters of [A-Za-z0-9._:-]");

	q.op_case = MOONPEN__V1__REQUEST__OP_INCIDENT;
	q.incident = &gi;
	gi.instance_id = "i";
	cr_expect_str_eq(check(&q), "");
	gi.instance_id = "";
	cr_expect_str_eq(check(&q),
			 "incident: instance_id must be 1-128 characters of [A-Za-z0-9._:-]");
}

Test(reqcheck, restore_snapshot_too_big)
{
	Moonpen__V1__Request q = MOONPEN__V1__REQUEST__INIT;
	Moonpen__V1__RestoreInstance rs = MOONPEN__V1__RESTORE_INSTANCE__INIT;
	static char err[600];
	Moonpen__V1__Request *out = NULL;
	st_code code;
	size_t len;
	uint8_t *buf;

	q.op_case = MOONPEN__V1__REQUEST__OP_RESTORE;
	q.restore = &rs;
	rs.instance_id = "i";
	rs.snapshot.len = MP_SNAPSHOT_MAX_BYTES + 1;
	rs.snapshot.data = calloc(1, rs.snapshot.len);
	buf = pack_req(&q, &len);
	cr_assert_eq(sup_req_decode(buf, len, 64u << 20, &out, &code, err, sizeof err), -EINVAL);
	cr_expect_str_eq(err, "restore: snapshot must be 1-16777216 bytes (a blob from "
			      "SnapshotInstance), got 16777217");
	protobuf_c_message_free_unpacked(&out->base, NULL);
	free(buf);
	free(rs.snapshot.data);
}
