/*
 * fuzz_from_worker — libFuzzer harness for the supervisor's side of the worker
 * protocol (runs in the fuzzer only). Input: [expected seq: 1 byte][expected
 * slot: 2 bytes, big-endian][the bytes a compromised worker may send on its
 * PAIR1 channel]. Applies what the supervisor applies to a reply:
 *   - wire_unpack with the reply size cap (supervisor/wchan.c recv_reply);
 *   - the checks of wchan_rpc, the very same code (supervisor/wreply.c):
 *     seq and slot echoed, a status with a code inside the enum, every
 *     returned Value and effect argument present and passing val_check, a
 *     state hash of 0 or 32 bytes, text fields made valid UTF-8 in place;
 *   - the Hello checks of wait_hello;
 *   - for a PENDING reply that passed, what the instance thread does
 *     (supervisor/inst_query.c): sup_query_check_call on its HostCall, then
 *     for an accepted one sup_query_begin, sup_query_pending_reply (the
 *     client's Response, which must pack) and sup_query_match / timeout on
 *     its call id.
 * Asserts: an accepted HostCall has a call id, api and fn of 1..128 bytes of
 * UTF-8, at most MP_MAX_CALL_ARGS arguments passing val_check; the query it
 * starts matches its call id, and after its timeout answers TIMEOUT.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"
#include "common/val.h"
#include "common/wire.h"
#include "policy/limits.h"
#include "supervisor/query.h"
#include "supervisor/wreply.h"
#include "worker.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PENDING MOONPEN__V1__STATUS__CODE__PENDING

static int hello_ok(const Moonpen__Worker__V1__FromWorker *fw)
{
	size_t i, len = 0;

	if (fw->seq != 0 || fw->hello == NULL)
		return 0;
	for (i = 0; i < fw->hello->n_layers; i++)
		len += strlen(fw->hello->layers[i]);
	for (i = 0; i < fw->hello->n_missing; i++)
		len += strlen(fw->hello->missing[i]);
	return len < MP_WORKER_REPLY_MAX_BYTES;
}

/* ---- PENDING: the instance thread's side (inst_query.c) -------------------------- */

/* What sup_query_check_call accepted must hold what its contract says. */
static void check_accepted(const Moonpen__V1__HostCall *hc)
{
	size_t i, na = strlen(hc->api), nf = strlen(hc->fn);

	if (hc->call_id == 0 || na == 0 || na > MP_MAX_NAME_BYTES || nf == 0 ||
	    nf > MP_MAX_NAME_BYTES || !val_utf8_valid(hc->api, na) || !val_utf8_valid(hc->fn, nf) ||
	    hc->n_args > MP_MAX_CALL_ARGS)
		abort();
	for (i = 0; i < hc->n_args; i++)
		if (hc->args[i] == NULL || val_check(hc->args[i], MP_MAX_VALUE_DEPTH, NULL, 0) < 0)
			abort();
}

/* The client's PENDING Response must pack (it goes on the API socket). */
static void check_response(Moonpen__V1__Response *resp, uint64_t call_id)
{
	size_t len;
	uint8_t *buf;

	if (resp->status == NULL || resp->status->code != PENDING || resp->host_call == NULL ||
	    resp->host_call->call_id != call_id || resp->host_call->timeout_ms != 5000 ||
	    resp->status->message == NULL || resp->status->message[0] == '\0')
		abort();
	len = moonpen__v1__response__get_packed_size(resp);
	buf = malloc(len ? len : 1);
	if (buf != NULL && moonpen__v1__response__pack(resp, buf) != len)
		abort();
	free(buf);
}

/* Takes fw (a checked PENDING reply): begin, reply, match, timeout. */
static void pending(Moonpen__Worker__V1__FromWorker *fw)
{
	sup_query q;
	Moonpen__V1__Response *resp;
	uint64_t id;
	st_code code;
	char err[256], msg[512];

	if (sup_query_check_call(fw->host_call, err, sizeof err) < 0) {
		if (err[0] == '\0')
			abort(); /* a refusal names its reason */
		protobuf_c_message_free_unpacked(&fw->base, NULL);
		return;
	}
	check_accepted(fw->host_call);
	memset(&q, 0, sizeof q);
	id = fw->host_call->call_id;
	sup_query_begin(&q, fw->host_call, 3, 1000, 5000);
	resp = sup_query_pending_reply(fw, 5000); /* fw freed */
	if (resp != NULL) {
		check_response(resp, id);
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	}
	if (sup_query_match(&q, "fuzz:1", id, &code, msg, sizeof msg) != 0 ||
	    sup_query_expired(&q, 5999) || !sup_query_expired(&q, 6001))
		abort();
	if (sup_query_match(&q, "fuzz:1", id + 1, &code, msg, sizeof msg) != -ENOENT ||
	    code != MOONPEN__V1__STATUS__CODE__NOT_FOUND)
		abort();
	sup_query_timeout(&q, msg, sizeof msg);
	if (sup_query_match(&q, "fuzz:1", id, &code, msg, sizeof msg) != -ENOENT ||
	    code != MOONPEN__V1__STATUS__CODE__TIMEOUT)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ProtobufCMessage *m = NULL;
	Moonpen__Worker__V1__FromWorker *fw;
	uint64_t seq;
	uint32_t slot;

	if (size < 3)
		return 0;
	seq = data[0];
	slot = (uint32_t)data[1] << 8 | data[2];
	if (wire_unpack(&moonpen__worker__v1__from_worker__descriptor, data + 3, size - 3,
			MP_WORKER_REPLY_MAX_BYTES, &m) < 0)
		return 0;
	fw = (Moonpen__Worker__V1__FromWorker *)m;
	(void)hello_ok(fw);
	if (sup_wreply_ok(fw, seq, slot) && fw->status->code == PENDING) {
		pending(fw);
		return 0;
	}
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}
