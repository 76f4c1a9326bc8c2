/*
 * luaval — conversion between Lua values and moonpen.v1.Value trees (runs in
 * the worker). Values from the supervisor are checked (depth) before they are
 * pushed; values from scripts are checked for cycles, depth, and types that
 * cannot leave the sandbox (functions, userdata, threads), and the error names
 * the offending path ("payload.items[3]").
 */
#ifndef MOONPEN_LUAVAL_H
#define MOONPEN_LUAVAL_H

#include <stddef.h>

#include <lua.h>

#include "common/val.h"

/* Pushes v (NULL pushes nil). Tables nested deeper than max_depth are refused.
 * Returns 0, or -EINVAL (depth), -ENOMEM; pushes nothing on failure. Must be
 * called where a Lua memory error cannot escape (it protects itself). */
int lv_push(lua_State *L, const val_t *v, unsigned max_depth) __attribute__((warn_unused_result));

/* Converts the value at idx into a new tree (*out, free with val_free).
 * Integer-valued keys 1..n with no holes become the array part; every other key
 * goes to the map part, sorted in the canonical order (numbers, then strings
 * bytewise, then booleans). Returns 0, -EINVAL with err naming what (cycle,
 * depth, function, userdata, thread, NaN key) and where, or -ENOMEM. */
int lv_to_val(lua_State *L, int idx, unsigned max_depth, val_t **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* lv_to_val, with the error path starting at root ("payload" gives
 * "payload.items[3]: cannot convert a function"; lv_to_val gives
 * "items[3]: cannot convert a function", or just "cannot convert a function"
 * for the value itself). A conversion produces at most a million nodes (a
 * subtable referenced twice is converted twice). */
int lv_to_val_named(lua_State *L, int idx, unsigned max_depth, const char *root, val_t **out,
		    char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
