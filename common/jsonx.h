/*
 * jsonx — strict checks shared by the parsers of operator JSON files
 * (common/grants.c, common/schema.c). Runs wherever those run; the JSON is
 * validated, never trusted: every failure is a diag_fail() message.
 */
#ifndef MOONPEN_JSONX_H
#define MOONPEN_JSONX_H

#include <stddef.h>

#include <jansson.h>

/* 0 when every key of the object obj is in the NULL-terminated list allowed,
 * else -EINVAL with "<path>: unknown key \"<key>\"" in err. */
int jsonx_check_keys(json_t *obj, const char *const *allowed, const char *path, char *err,
		     size_t errlen);

/* 0 when root holds "version": 1 and, if present, a string "description";
 * else -EINVAL with "version: expected 1" or "description: expected a
 * string" in err. */
int jsonx_check_v1(json_t *root, char *err, size_t errlen);

#endif
