/*
 * status — names and constructors for moonpen.v1.Status (every process).
 * Trusts nothing about the codes it is given: a value outside the enum is
 * named "unknown".
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"

/* Indexed by code; the enum is dense from 0 (OK) to 15 (ALREADY_EXISTS). */
static const char *const st_names[] = {
    [MOONPEN__V1__STATUS__CODE__OK] = "ok",
    [MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT] = "invalid_argument",
    [MOONPEN__V1__STATUS__CODE__NOT_FOUND] = "not_found",
    [MOONPEN__V1__STATUS__CODE__SCRIPT_ERROR] = "script_error",
    [MOONPEN__V1__STATUS__CODE__BUDGET_EXCEEDED] = "budget_exceeded",
    [MOONPEN__V1__STATUS__CODE__TIMEOUT] = "timeout",
    [MOONPEN__V1__STATUS__CODE__MEMORY_LIMIT] = "memory_limit",
    [MOONPEN__V1__STATUS__CODE__PERMISSION_DENIED] = "permission_denied",
    [MOONPEN__V1__STATUS__CODE__WORKER_CRASHED] = "worker_crashed",
    [MOONPEN__V1__STATUS__CODE__RATE_LIMITED] = "rate_limited",
    [MOONPEN__V1__STATUS__CODE__BAD_PACK] = "bad_pack",
    [MOONPEN__V1__STATUS__CODE__UNAVAILABLE] = "unavailable",
    [MOONPEN__V1__STATUS__CODE__QUARANTINED] = "quarantined",
    [MOONPEN__V1__STATUS__CODE__INTERNAL] = "internal",
    [MOONPEN__V1__STATUS__CODE__PENDING] = "pending",
    [MOONPEN__V1__STATUS__CODE__ALREADY_EXISTS] = "already_exists",
};

#define ST_N_NAMES (sizeof(st_names) / sizeof(st_names[0]))

const char *st_name(st_code code)
{
	int i = (int)code;

	if (i < 0 || (size_t)i >= ST_N_NAMES || st_names[i] == NULL)
		return "unknown";
	return st_names[i];
}

int st_from_name(const char *name, st_code *out)
{
	size_t i;

	if (name == NULL)
		return -EINVAL;
	for (i = 0; i < ST_N_NAMES; i++) {
		if (st_names[i] != NULL && strcmp(st_names[i], name) == 0) {
			*out = (st_code)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* Every string member is malloc'd (even when empty) so that both
 * protobuf_c_message_free_unpacked() and a plain free() of a member are safe. */
Moonpen__V1__Status *st_new(st_code code, const char *msg, const char *traceback, int retryable)
{
	Moonpen__V1__Status *s = malloc(sizeof(*s));
	char *m = strdup(msg != NULL ? msg : "");
	char *tb = strdup(traceback != NULL ? traceback : "");

	if (s == NULL || m == NULL || tb == NULL) {
		free(s);
		free(m);
		free(tb);
		return NULL;
	}
	moonpen__v1__status__init(s);
	s->code = code;
	s->message = m;
	s->traceback = tb;
	s->retryable = retryable ? 1 : 0;
	return s;
}

Moonpen__V1__Status *st_newf(st_code code, const char *fmt, ...)
{
	Moonpen__V1__Status *s;
	char *msg = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	s = st_new(code, msg, NULL, 0);
	free(msg);
	return s;
}
