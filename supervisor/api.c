/*
 * api — REQ/REP endpoint of moonpend (runs in the supervisor; every request
 * byte is hostile: transport cap, API cap, decode + check, then meaning).
 */
#include "supervisor/api.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "common/log.h"
#include "client/moonpen.h"
#include "common/wire.h"
#include "policy/limits.h"
#include "supervisor/inst.h"
#include "supervisor/reqcheck.h"

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
	/* retrying later can help only when the supervisor was busy or limited */
	r->status = st_new(code, msg, NULL,
			   code == MOONPEN__V1__STATUS__CODE__UNAVAILABLE ||
			       code == MOONPEN__V1__STATUS__CODE__RATE_LIMITED);
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

/* the two are equal today: clang-tidy sees "both sides equivalent" */
_Static_assert(MP_API_REPLY_MAX_BYTES <= MP_RECV_MAX_BYTES, // NOLINT(misc-redundant-expression)
	       "moonpend must never answer more than libmoonpen receives");

/* resp, or, when it packs to more than a client receives, an UNAVAILABLE
 * answer naming its size in its place (resp is freed then; NULL: out of
 * memory). Replies to inputs stay far below (MP_MAX_RESULT_BYTES): what can
 * grow past it is a trace (a snapshot and every input logged since). */
static Moonpen__V1__Response *bounded(Moonpen__V1__Response *resp)
{
	size_t len = protobuf_c_message_get_packed_size(&resp->base);

	if (len <= MP_API_REPLY_MAX_BYTES)
		return resp;
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	log_warn("an answer of %zu bytes was not sent (over the %u-byte reply limit)", len,
		 MP_API_REPLY_MAX_BYTES);
	resp = sup_resp_new(MOONPEN__V1__STATUS__CODE__UNAVAILABLE,
			    "the answer is %zu bytes, over the reply limit of %u bytes "
			    "(MP_API_REPLY_MAX_BYTES); nothing was changed by this request",
			    len, MP_API_REPLY_MAX_BYTES);
	if (resp)
		resp->status->retryable = 0; /* the same request gives the same answer */
	return resp;
}

void sup_api_reply(sup_reply *rp, Moonpen__V1__Response *resp)
{
	Moonpen__V1__Response fallback = MOONPEN__V1__RESPONSE__INIT;
	Moonpen__V1__Status oom = MOONPEN__V1__STATUS__INIT;
	nng_msg *msg = NULL;

	if (resp)
		resp = bounded(resp);
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

static void handle(sup_reply *rp, nng_msg *msg)
{
	sup *s = rp->api->s;
	Moonpen__V1__Request *q = NULL;
	st_code code;
	char err[600];
	int r;

	r = sup_req_decode(nng_msg_body(msg), nng_msg_len(msg), s->cfg.max_request_bytes, &q, &code,
			   err, sizeof err);
	nng_msg_free(msg);
	rp->req_id = q ? q->id : 0;
	if (r < 0 || q == NULL) {
		if (q)
			protobuf_c_message_free_unpacked(&q->base, NULL);
		return sup_api_fail(rp, code, "%s", err);
	}
	if (atomic_load(&s->stopping)) {
		protobuf_c_message_free_unpacked(&q->base, NULL);
		return sup_api_fail(rp, MOONPEN__V1__STATUS__CODE__UNAVAILABLE,
				    "supervisor is shutting down");
	}
	switch (q->op_case) {
	case MOONPEN__V1__REQUEST__OP_CREATE:
		return sup_insts_create(s->insts, q, rp);
	case MOONPEN__V1__REQUEST__OP_INFO:
		sup_insts_info(s->insts, q->info->instance_id, rp);
		break;
	case MOONPEN__V1__REQUEST__OP_LIST:
		sup_insts_list(s->insts, rp);
		break;
	default:
		return sup_insts_submit(s->insts, q, rp);
	}
	protobuf_c_message_free_unpacked(&q->base, NULL);
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
