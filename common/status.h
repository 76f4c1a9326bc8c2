/*
 * status — names and helpers for moonpen.v1.Status codes (all processes).
 */
#ifndef MOONPEN_STATUS_H
#define MOONPEN_STATUS_H

#include "moonpen.pb-c.h"

typedef Moonpen__V1__Status__Code st_code;

/* Lower-case wire-independent name of a code ("ok", "script_error", ...);
 * "unknown" for values outside the enum. Never NULL, static storage. */
const char *st_name(st_code code);
/* Inverse of st_name; returns 0 and sets *out, or -EINVAL. */
int st_from_name(const char *name, st_code *out) __attribute__((warn_unused_result));

/* Allocates a Status with a copy of msg (may be NULL) and traceback (may be
 * NULL); NULL when out of memory. Free with protobuf_c_message_free_unpacked. */
Moonpen__V1__Status *st_new(st_code code, const char *msg, const char *traceback, int retryable);

/* Same, with printf-style formatting of the message. */
Moonpen__V1__Status *st_newf(st_code code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
