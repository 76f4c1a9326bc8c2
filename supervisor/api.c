/*
 * api — REQ/REP endpoint of moonpend (runs in the supervisor; every request
 * byte is hostile: transport cap, API cap, decode + check, then meaning).
 */
#include "supervisor/api.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "common/log.h"
#include "common/val.h"
#include "common/wire.h"
#include "policy/limits.h"
#include "supervisor/inst.h"

enum slot_state { SLOT_RECV, SLOT_WAIT, SLOT_SEND };

struct sup_reply {
	sup_api *api;
	nng_aio *aio;
	nng_ctx ctx;
	enum slot_state state;
	uint64_t req_id;
};

struct sup_api {
	sup *s;
	nng_socket sock;
	struct sup_reply *slots;
	unsigned nslots;
	char ipc_path[512];
};

/* ---- responses ------------------------------------------------------------- */

static Moonpen__V1__Response *resp_vnew(st_code code, const char *fmt, va_list ap)
{
	Moonpen__V1__Response *r = malloc(sizeof *r);
	char msg[1024];

	if (r == NULL)
		return NULL;
	moonpen__v1__response__init(r);
	vsnprintf(msg, sizeof msg, fmt, ap);
	r->status = st_new(code, msg, NULL, code == MOONPEN__V1__STATUS__CODE__UNAVAILABLE);
	if (r->status == NULL) {
		free(r);
		return NULL;
	}
	return r;
}

Moonpen__V1__Response *sup_resp_new(st_code code, const char *fmt, ...)
{
	Moonpen__V1__Response *r;
	va_list ap;

	va_start(ap, fmt);
	r = resp_vnew(code, fmt, ap);
	va_end(ap);
	return r;
}

void sup_api_fail(sup_reply *rp, st_code code, const char *fmt, ...)
{
	Moonpen__V1__Response *r;
	va_list ap;

	va_start(ap, fmt);
	r = resp_vnew(code, fmt, ap);
	va_end(ap);
	sup_api_reply(rp, r);
}

void sup_api_reply(sup_reply *rp, Moonpen__V1__Response *resp)
{
	Moonpen__V1__Response fallback = MOONPEN__V1__RESPONSE__INIT;
	Moonpen__V1__Status oom = MOONPEN__V1__STATUS__INIT;
	nng_msg *msg = NULL;

	if (resp == NULL) { /* out of memory: answer without allocating a tree */
		oom.code = MOONPEN__V1__STATUS__CODE__INTERNAL;
		oom.message = "out of memory";
		oom.retryable = 1;
		fallback.status = &oom;
	}
	(resp ? resp : &fallback)->id = rp->req_id;
	if (wire_pack(resp ? &resp->base : &fallback.base, &msg) < 0)
		msg = NULL;
	if (resp)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	if (msg == NULL) {
		/* cannot even answer: drop it (the client times out) and serve again */
		rp->state = SLOT_RECV;
		nng_ctx_recv(rp->ctx, rp->aio);
		return;
	}
	rp->state = SLOT_SEND;
	nng_aio_set_msg(rp->aio, msg);
	nng_ctx_send(rp->ctx, rp->aio);
}

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
	snprintf(err, len, "instance_id must be 1-%d characters of [A-Za-z0-9._:-]", MP_MAX_ID_BYTES);
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
			snprintf(err, len, "label %zu: key must be 1-64 of [A-Za-z0-9._-/], value at most 256 bytes of UTF-8", i);
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

/* ---- dispatch table: op, its checks, who serves it ------------------------------ */

enum route { ROUTE_CREATE, ROUTE_INSTANCE, ROUTE_INFO, ROUTE_LIST };

static const struct op {
	Moonpen__V1__Request__OpCase op;
	const char *name;
	int (*check)(const Moonpen__V1__Request *, char *, size_t);
	enum route route;
} ops[] = {
    {MOONPEN__V1__REQUEST__OP_CREATE, "create", check_create, ROUTE_CREATE},
    {MOONPEN__V1__REQUEST__OP_EVENT, "event", check_event, ROUTE_INSTANCE},
    {MOONPEN__V1__REQUEST__OP_TICK, "tick", check_tick, ROUTE_INSTANCE},
    {MOONPEN__V1__REQUEST__OP_CALL, "call", check_call, ROUTE_INSTANCE},
    {MOONPEN__V1__REQUEST__OP_SNAPSHOT, "snapshot", check_snapshot, ROUTE_INSTANCE},
    {MOONPEN__V1__REQUEST__OP_CLOSE, "close", check_close, ROUTE_INSTANCE},
    {MOONPEN__V1__REQUEST__OP_INFO, "info", check_info, ROUTE_INFO},
    {MOONPEN__V1__REQUEST__OP_LIST, "list", check_list, ROUTE_LIST},
};

static void handle(sup_reply *rp, nng_msg *msg)
{
	sup *s = rp->api->s;
	ProtobufCMessage *m = NULL;
	Moonpen__V1__Request *q;
	const struct op *op = NULL;
	char err[512];
	size_t len = nng_msg_len(msg), i;
	int r;

	rp->req_id = 0;
	r = wire_unpack(&moonpen__v1__request__descriptor, nng_msg_body(msg), len,
			s->cfg.max_request_bytes, &m);
	nng_msg_free(msg);
	if (r == -EMSGSIZE)
		return sup_api_fail(rp, MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT,
				    "request of %zu bytes exceeds the limit of %u bytes", len,
				    s->cfg.max_request_bytes);
	if (r < 0)
		return sup_api_fail(rp, MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT,
				    "malformed request: not a moonpen.v1.Request");
	q = (Moonpen__V1__Request *)m;
	rp->req_id = q->id;
	for (i = 0; i < sizeof ops / sizeof ops[0]; i++)
		if (ops[i].op == q->op_case)
			op = &ops[i];
	if (op == NULL) {
		protobuf_c_message_free_unpacked(m, NULL);
		return sup_api_fail(rp, MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT,
				    "request has no operation");
	}
	if (strlen(q->trace_id) > MP_MAX_NAME_BYTES || op->check(q, err, sizeof err) < 0) {
		if (strlen(q->trace_id) > MP_MAX_NAME_BYTES)
			snprintf(err, sizeof err, "trace_id longer than %d bytes", MP_MAX_NAME_BYTES);
		protobuf_c_message_free_unpacked(m, NULL);
		return sup_api_fail(rp, MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT, "%s: %s",
				    op->name, err);
	}
	if (atomic_load(&s->stopping)) {
		protobuf_c_message_free_unpacked(m, NULL);
		return sup_api_fail(rp, MOONPEN__V1__STATUS__CODE__UNAVAILABLE,
				    "supervisor is shutting down");
	}
	switch (op->route) {
	case ROUTE_CREATE:
		return sup_insts_create(s->insts, q, rp);
	case ROUTE_INSTANCE:
		return sup_insts_submit(s->insts, q, rp);
	case ROUTE_INFO:
		sup_insts_info(s->insts, q->info->instance_id, rp);
		break;
	case ROUTE_LIST:
		sup_insts_list(s->insts, rp);
		break;
	}
	protobuf_c_message_free_unpacked(m, NULL);
}

static void slot_cb(void *arg)
{
	sup_reply *rp = arg;
	int r = nng_aio_result(rp->aio);

	switch (rp->state) {
	case SLOT_RECV:
		if (r == NNG_ECLOSED || r == NNG_ECANCELED)
			return;
		if (r != 0) {
			nng_ctx_recv(rp->ctx, rp->aio);
			return;
		}
		rp->state = SLOT_WAIT;
		handle(rp, nng_aio_get_msg(rp->aio));
		return;
	case SLOT_SEND:
		if (r != 0)
			nng_msg_free(nng_aio_get_msg(rp->aio));
		if (r == NNG_ECLOSED || r == NNG_ECANCELED)
			return;
		rp->state = SLOT_RECV;
		nng_ctx_recv(rp->ctx, rp->aio);
		return;
	case SLOT_WAIT:
		return;
	}
}

/* ---- start / stop ---------------------------------------------------------------- */

int sup_api_start(sup *s, sup_api **out, char *err, unsigned long errlen)
{
	sup_api *a = calloc(1, sizeof *a);
	unsigned i;
	int r;

	if (a == NULL)
		return -ENOMEM;
	a->s = s;
	a->slots = calloc(s->cfg.api_contexts, sizeof *a->slots);
	if (a->slots == NULL) {
		free(a);
		return -ENOMEM;
	}
	if ((r = nng_rep0_open(&a->sock)) != 0 ||
	    (r = nng_setopt_size(a->sock, NNG_OPT_RECVMAXSZ, MP_TRANSPORT_MAX_BYTES)) != 0)
		goto fail;
	for (i = 0; i < s->cfg.api_contexts; i++) {
		sup_reply *rp = &a->slots[i];
		rp->api = a;
		if ((r = nng_aio_alloc(&rp->aio, slot_cb, rp)) != 0 ||
		    (r = nng_ctx_open(&rp->ctx, a->sock)) != 0)
			goto fail;
		a->nslots++;
	}
	if (strncmp(s->cfg.listen, "ipc://", 6) == 0) {
		snprintf(a->ipc_path, sizeof a->ipc_path, "%s", s->cfg.listen + 6);
		unlink(a->ipc_path); /* stale socket of a killed run */
	}
	if ((r = nng_listen(a->sock, s->cfg.listen, NULL, 0)) != 0)
		goto fail;
	if (a->ipc_path[0])
		chmod(a->ipc_path, 0660);
	for (i = 0; i < a->nslots; i++) {
		a->slots[i].state = SLOT_RECV;
		nng_ctx_recv(a->slots[i].ctx, a->slots[i].aio);
	}
	*out = a;
	return 0;
fail:
	snprintf(err, errlen, "API %s: %s", s->cfg.listen, nng_strerror(r));
	a->ipc_path[0] = '\0';
	sup_api_stop(a);
	return wire_errno(r);
}

void sup_api_stop(sup_api *a)
{
	unsigned i;

	if (a == NULL)
		return;
	for (i = 0; i < a->nslots; i++)
		nng_aio_stop(a->slots[i].aio);
	nng_close(a->sock);
	for (i = 0; i < a->nslots; i++) {
		nng_ctx_close(a->slots[i].ctx);
		nng_aio_free(a->slots[i].aio);
	}
	if (a->ipc_path[0])
		unlink(a->ipc_path);
	free(a->slots);
	free(a);
}
