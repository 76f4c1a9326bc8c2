/*
 * fuzz_from_worker — libFuzzer harness for the supervisor's side of the worker
 * protocol (runs in the fuzzer only). Input: the bytes a compromised worker
 * may send on its PAIR1 channel. Applies what the supervisor applies to a
 * reply: wire_unpack with the reply size cap (supervisor/wchan.c
 * recv_reply), the sequence and status checks of wchan_rpc, the Hello checks
 * of wait_hello, and the Value checks (val_check on every returned Value and
 * effect argument) that a reply must pass before its values reach a client.
 * The first byte of the input chooses the expected sequence number.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"
#include "common/val.h"
#include "common/wire.h"
#include "policy/limits.h"
#include "worker.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int values_ok(Moonpen__V1__Value **v, size_t n)
{
	char err[128];
	size_t i;

	for (i = 0; i < n; i++)
		if (val_check(v[i], MP_MAX_VALUE_DEPTH, err, sizeof err) < 0)
			return 0;
	return 1;
}

/* The meaning checks of a reply; returns 1 when the supervisor would take it. */
static int reply_ok(const Moonpen__Worker__V1__FromWorker *fw, uint64_t seq)
{
	const Moonpen__V1__Result *res = fw->result;
	size_t i;

	if (fw->seq != seq || fw->status == NULL)
		return 0;
	(void)st_name(fw->status->code); /* out-of-enum codes must name "unknown" */
	if (res == NULL)
		return 1;
	if (res->state_hash.len != 0 && res->state_hash.len != 32)
		return 0;
	if (!values_ok(res->returns, res->n_returns))
		return 0;
	for (i = 0; i < res->n_effects; i++)
		if (!values_ok(res->effects[i]->args, res->effects[i]->n_args))
			return 0;
	return 1;
}

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ProtobufCMessage *m = NULL;
	Moonpen__Worker__V1__FromWorker *fw;
	uint64_t seq;

	if (size < 1)
		return 0;
	seq = data[0];
	if (wire_unpack(&moonpen__worker__v1__from_worker__descriptor, data + 1, size - 1,
			MP_WORKER_REPLY_MAX_BYTES, &m) < 0)
		return 0;
	fw = (Moonpen__Worker__V1__FromWorker *)m;
	(void)hello_ok(fw);
	(void)reply_ok(fw, seq);
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}
