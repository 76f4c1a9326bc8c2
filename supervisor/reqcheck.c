/*
 * reqcheck — decode and check an API request (runs in the supervisor, on
 * bytes from any client: hostile until every check passed). Pure: no
 * sockets, no state, so that tests and the fuzzer can drive it directly.
 */
#include "supervisor/reqcheck.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/val.h"
#include "common/wire.h"
#include "policy/limits.h"

/* ---- checks of meaning ------------------------------------------------------- */

static int name_ok(const char *s, size_t max, const char *extra)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > max)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr(extra, c)))
			return 0;
	}
	return 1;
}

#define ID_CHARS "._:-"
#define EVENT_CHARS "._:-*/"

static int check_id(const char *id, char *err, size_t len)
{
	if (name_ok(id, MP_MAX_ID_BYTES, ID_CHARS))
		return 0;
	snprintf(err, len, "instance_id must be 1-%d characters of [A-Za-z0-9._:-]",
		 MP_MAX_ID_BYTES);
	return -EINVAL;
}

static int check_value(const Moonpen__V1__Value *v, const char *what, char *err, size_t len)
{
	char why[256];

	if (v == NULL || val_check(v, MP_MAX_VALUE_DEPTH, why, sizeof why) == 0)
		return 0;
	snprintf(err, len, "%s: %s", what, why);
	return -EINVAL;
}

static int check_create(const Moonpen__V1__Request *q, char *err, size_t len)
{
	const Moonpen__V1__CreateInstance *c = q->create;
	size_t i;

	if (check_id(c->instance_id, err, len) < 0)
		return -EINVAL;
	if (!name_ok(c->pack_id, 64, "._-")) {
		snprintf(err, len, "pack_id must be 1-64 characters of [A-Za-z0-9._-]");
		return -EINVAL;
	}
	if (c->pack_version[0] && !name_ok(c->pack_version, 32, ".")) {
		snprintf(err, len, "pack_version must look like 1.2.3");
		return -EINVAL;
	}
	if (c->tick_ms > MP_MAX_TICK_MS) {
		snprintf(err, len, "tick_ms must be at most %d", MP_MAX_TICK_MS);
		return -EINVAL;
	}
	if (c->n_labels > MP_MAX_LABELS) {
		snprintf(err, len, "at most %d labels", MP_MAX_LABELS);
		return -EINVAL;
	}
	for (i = 0; i < c->n_labels; i++)
		if (!name_ok(c->labels[i]->key, 64, "._-/") || strlen(c->labels[i]->value) > 256 ||
		    !val_utf8_valid(c->labels[i]->value, strlen(c->labels[i]->value))) {
			snprintf(err, len,
				 "label %zu: key must be 1-64 of [A-Za-z0-9._-/], value at most "
				 "256 bytes of UTF-8",
				 i);
			return -EINVAL;
		}
	return 0;
}

static int check_event(const Moonpen__V1__Request *q, char *err, size_t len)
{
	if (check_id(q->event->instance_id, err, len) < 0)
		return -EINVAL;
	if (!name_ok(q->event->name, MP_MAX_NAME_BYTES, EVENT_CHARS)) {
		snprintf(err, len, "event name must be 1-%d characters of [A-Za-z0-9._:-*/]",
			 MP_MAX_NAME_BYTES);
		return -EINVAL;
	}
	return check_value(q->event->payload, "payload", err, len);
}

static int check_tick(const Moonpen__V1__Request *q, char *err, size_t len)
{
	if (check_id(q->tick->instance_id, err, len) < 0)
		return -EINVAL;
	if (q->tick->count > MP_MAX_TICKS_PER_REQUEST) {
		snprintf(err, len, "count must be at most %d", MP_MAX_TICKS_PER_REQUEST);
		return -EINVAL;
	}
	return 0;
}

static int check_call(const Moonpen__V1__Request *q, char *err, size_t len)
{
	size_t i;
	char what[32];

	if (check_id(q->call->instance_id, err, len) < 0)
		return -EINVAL;
	if (!name_ok(q->call->function, MP_MAX_NAME_BYTES, "_") ||
	    (q->call->function[0] >= '0' && q->call->function[0] <= '9')) {
		snprintf(err, len, "function must be a Lua identifier of at most %d bytes",
			 MP_MAX_NAME_BYTES);
		return -EINVAL;
	}
	if (q->call->n_args > MP_MAX_CALL_ARGS) {
		snprintf(err, len, "at most %d arguments", MP_MAX_CALL_ARGS);
		return -EINVAL;
	}
	for (i = 0; i < q->call->n_args; i++) {
		snprintf(what, sizeof what, "args[%zu]", i);
		if (check_value(q->call->args[i], what, err, len) < 0)
			return -EINVAL;
	}
	return 0;
}

static int check_target(const char *id, char *err, size_t len)
{
	return check_id(id, err, len);
}

static int check_snapshot(const Moonpen__V1__Request *q, char *err, size_t len)
{
	return check_target(q->snapshot->instance_id, err, len);
}
static int check_close(const Moonpen__V1__Request *q, char *err, size_t len)
{
	return check_target(q->close->instance_id, err, len);
}
static int check_info(const Moonpen__V1__Request *q, char *err, size_t len)
{
	return check_target(q->info->instance_id, err, len);
}
static int check_list(const Moonpen__V1__Request *q, char *err, size_t len)
{
	(void)q;
	(void)err;
	(void)len;
	return 0;
}

/* ---- queries, snapshots, traces ------------------------------------------------- */

/* The game server's error text for a failed query: the script sees it. */
#define MAX_QUERY_ERROR_BYTES 1024

static int check_host_result(const Moonpen__V1__Request *q, char *err, size_t len)
{
	const Moonpen__V1__HostResult *h = q->host_result;

	if (check_id(h->instance_id, err, len) < 0)
		return -EINVAL;
	if (h->call_id == 0) {
		snprintf(err, len, "call_id must be the call_id of a pending query (not 0)");
		return -EINVAL;
	}
	switch (h->answer_case) {
	case MOONPEN__V1__HOST_RESULT__ANSWER_VALUE:
		return check_value(h->value, "value", err, len);
	case MOONPEN__V1__HOST_RESULT__ANSWER_ERROR:
		if (h->error[0] == '\0' || strlen(h->error) > MAX_QUERY_ERROR_BYTES ||
		    !val_utf8_valid(h->error, strlen(h->error))) {
			snprintf(err, len, "error must be 1-%d bytes of UTF-8",
				 MAX_QUERY_ERROR_BYTES);
			return -EINVAL;
		}
		return 0;
	default:
		snprintf(err, len, "exactly one answer is needed: value or error");
		return -EINVAL;
	}
}

static int check_rollback(const Moonpen__V1__Request *q, char *err, size_t len)
{
	return check_target(q->rollback->instance_id, err, len);
}

static int check_restore(const Moonpen__V1__Request *q, char *err, size_t len)
{
	size_t n = q->restore->snapshot.len;

	if (check_id(q->restore->instance_id, err, len) < 0)
		return -EINVAL;
	if (n == 0 || n > MP_SNAPSHOT_MAX_BYTES) {
		snprintf(err, len,
			 "snapshot must be 1-%u bytes (a blob from SnapshotInstance), got %zu",
			 MP_SNAPSHOT_MAX_BYTES, n);
		return -EINVAL;
	}
	return 0;
}

static int check_trace(const Moonpen__V1__Request *q, char *err, size_t len)
{
	return check_target(q->trace->instance_id, err, len);
}

static int check_incident(const Moonpen__V1__Request *q, char *err, size_t len)
{
	return check_target(q->incident->instance_id, err, len);
}

/* ---- the table: each operation and its checks ---------------------------------- */

static const struct op {
	Moonpen__V1__Request__OpCase op;
	const char *name;
	int (*check)(const Moonpen__V1__Request *, char *, size_t);
} ops[] = {
    {MOONPEN__V1__REQUEST__OP_CREATE, "create", check_create},
    {MOONPEN__V1__REQUEST__OP_EVENT, "event", check_event},
    {MOONPEN__V1__REQUEST__OP_TICK, "tick", check_tick},
    {MOONPEN__V1__REQUEST__OP_CALL, "call", check_call},
    {MOONPEN__V1__REQUEST__OP_SNAPSHOT, "snapshot", check_snapshot},
    {MOONPEN__V1__REQUEST__OP_CLOSE, "close", check_close},
    {MOONPEN__V1__REQUEST__OP_INFO, "info", check_info},
    {MOONPEN__V1__REQUEST__OP_LIST, "list", check_list},
    {MOONPEN__V1__REQUEST__OP_HOST_RESULT, "host_result", check_host_result},
    {MOONPEN__V1__REQUEST__OP_ROLLBACK, "rollback", check_rollback},
    {MOONPEN__V1__REQUEST__OP_RESTORE, "restore", check_restore},
    {MOONPEN__V1__REQUEST__OP_TRACE, "trace", check_trace},
    {MOONPEN__V1__REQUEST__OP_INCIDENT, "incident", check_incident},
};

int sup_req_decode(const void *buf, size_t len, size_t max, Moonpen__V1__Request **out,
		   st_code *code, char *err, size_t errlen)
{
	ProtobufCMessage *m = NULL;
	Moonpen__V1__Request *q;
	const struct op *op = NULL;
	char why[512];
	size_t i;
	int r;

	*out = NULL;
	*code = MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT;
	r = wire_unpack(&moonpen__v1__request__descriptor, buf, len, max, &m);
	if (r == -EMSGSIZE) {
		snprintf(err, errlen, "request of %zu bytes exceeds the limit of %zu bytes", len,
			 max);
		return -EINVAL;
	}
	if (r == -ENOMEM) {
		/* our failure, not the client's: a retry may succeed */
		*code = MOONPEN__V1__STATUS__CODE__INTERNAL;
		snprintf(err, errlen, "out of memory decoding the request");
		return -ENOMEM;
	}
	if (r < 0) {
		snprintf(err, errlen, "malformed request: not a moonpen.v1.Request");
		return -EINVAL;
	}
	q = (Moonpen__V1__Request *)m;
	*out = q; /* from here the caller may echo q->id */
	for (i = 0; i < sizeof ops / sizeof ops[0]; i++)
		if (ops[i].op == q->op_case)
			op = &ops[i];
	if (op == NULL) {
		snprintf(err, errlen, "request has no operation");
		return -EINVAL;
	}
	if (strlen(q->trace_id) > MP_MAX_NAME_BYTES) {
		snprintf(err, errlen, "trace_id longer than %d bytes", MP_MAX_NAME_BYTES);
		return -EINVAL;
	}
	if (op->check(q, why, sizeof why) < 0) {
		snprintf(err, errlen, "%s: %s", op->name, why);
		return -EINVAL;
	}
	*code = MOONPEN__V1__STATUS__CODE__OK;
	return 0;
}
