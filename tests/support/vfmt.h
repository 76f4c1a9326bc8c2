/*
 * vfmt — test support: compact Lua-like renderings of Values and effects, so
 * engine tests assert exact sequences with one string comparison.
 */
#ifndef MOONPEN_TEST_VFMT_H
#define MOONPEN_TEST_VFMT_H

#include <stddef.h>

#include "common/val.h"

/* {a,b,k=v} in the tree's order; strings quoted, nil as "nil". Truncates. */
void tv_fmt_val(const val_t *v, char *buf, size_t len);
/* "api.fn(arg,arg) @trigger_id". Truncates. */
void tv_fmt_effect(const Moonpen__V1__Effect *ef, char *buf, size_t len);

#endif
