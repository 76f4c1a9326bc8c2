/*
 * fuzz_request — libFuzzer harness for the API request decoder (runs in the
 * fuzzer only). Input: the bytes a client sends to moonpend's API socket,
 * entirely hostile. Drives sup_req_decode(): size cap, nesting bound,
 * protobuf-c decoding and check, then the semantic checks of every operation.
 * Asserts the decoder's contract: OK only with a request, INVALID_ARGUMENT
 * otherwise with a NUL-terminated reason, and an accepted request re-packs.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/val.h"
#include "supervisor/reqcheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_accepted(const Moonpen__V1__Request *q)
{
	size_t len = moonpen__v1__request__get_packed_size(q);
	uint8_t *buf = malloc(len ? len : 1);

	if (buf == NULL)
		abort();
	if (moonpen__v1__request__pack(q, buf) != len)
		abort();
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Moonpen__V1__Request *q = NULL;
	st_code code = MOONPEN__V1__STATUS__CODE__INTERNAL;
	char err[256];
	int r;

	memset(err, 'x', sizeof err);
	r = sup_req_decode(data, size, 1u << 20, &q, &code, err, sizeof err);
	if (r == 0) {
		if (q == NULL || code != MOONPEN__V1__STATUS__CODE__OK)
			abort();
		check_accepted(q);
	} else {
		if (!((r == -EINVAL && code == MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT) ||
		      (r == -ENOMEM && code == MOONPEN__V1__STATUS__CODE__INTERNAL)) ||
		    memchr(err, '\0', sizeof err) == NULL)
			abort();
	}
	if (q)
		protobuf_c_message_free_unpacked(&q->base, NULL);
	return 0;
}
