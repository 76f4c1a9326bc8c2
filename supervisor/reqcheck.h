/*
 * reqcheck — decoding and checking of API requests (runs in the supervisor).
 * Three checks in order: the size cap, protobuf decoding with
 * protobuf_c_message_check(), then the meaning of every field of the
 * operation (ids, names, counts, label sizes, Value depth and UTF-8).
 */
#ifndef MOONPEN_SUP_REQCHECK_H
#define MOONPEN_SUP_REQCHECK_H

#include <stddef.h>

#include "common/status.h"
#include "moonpen.pb-c.h"

/* Decodes buf[0..len) (at most max bytes) and checks it. Returns 0 with *out
 * (free with protobuf_c_message_free_unpacked) and *code OK; or -EINVAL with
 * *code INVALID_ARGUMENT and the reason in err, and *out either NULL (not
 * decodable) or the decoded request (so its id can be echoed; the caller frees
 * it); or -ENOMEM with *code INTERNAL and *out NULL when decoding ran out of
 * memory. */
int sup_req_decode(const void *buf, size_t len, size_t max, Moonpen__V1__Request **out,
		   st_code *code, char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
