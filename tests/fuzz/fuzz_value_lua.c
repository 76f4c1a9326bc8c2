/*
 * fuzz_value_lua — libFuzzer harness for Value <-> Lua (worker/luaval.c; runs
 * in the fuzzer only). Input: an encoded moonpen.v1.Value, as it arrives from
 * the supervisor in an event payload or call argument.
 *
 * Each input: wire_unpack, val_check (the supervisor's check), lv_push into a
 * sandbox state, lv_to_val back (v1), then push v1 and convert again (v2).
 * Properties checked:
 *   - lv_push refuses only what val_check refuses or what Lua cannot hold
 *     (nil and NaN keys, tables deeper than the bound), and never raises;
 *   - the Lua -> Value direction gives a canonical form: v2 equals v1;
 *   - scalars come back equal to the input, except a bytes_value that holds
 *     valid UTF-8 (it returns as string_value: Lua has one string type).
 * Where the mapping is not lossless (docs/quality.md): bytes vs string, nil
 * items of the array part (holes end the array), map entries with nil values
 * (dropped), map keys that continue the array (1..n move to the array part),
 * integral float keys (Lua normalizes 2.0 to 2), duplicate keys (the last
 * wins), and map order (canonical order on the way back).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>

#include "common/val.h"
#include "common/wire.h"
#include "policy/limits.h"
#include "worker/luaval.h"
#include "worker/sandbox.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sbx *box;

static sbx *get_box(void)
{
	sbx_limits lim = {64u << 20, 1000, 0};
	char err[256];

	if (box == NULL && (box = sbx_new(&lim, err, sizeof err)) == NULL)
		abort();
	return box;
}

/* Pushes v and converts it back; NULL when lv_push refused it. */
static val_t *round_trip(lua_State *L, const val_t *v)
{
	char err[256];
	val_t *out = NULL;
	int top = lua_gettop(L), r;

	r = lv_push(L, v, MP_MAX_VALUE_DEPTH);
	if (r < 0) {
		if (lua_gettop(L) != top || (r != -EINVAL && r != -ENOMEM))
			abort();
		return NULL;
	}
	r = lv_to_val(L, -1, MP_MAX_VALUE_DEPTH, &out, err, sizeof err);
	lua_settop(L, top);
	if (r < 0)
		abort(); /* anything pushed from a Value can come back */
	return out;
}

static int lossless_scalar(const val_t *v)
{
	if (v->kind_case == MOONPEN__V1__VALUE__KIND_TABLE_VALUE)
		return 0;
	if (v->kind_case == MOONPEN__V1__VALUE__KIND_BYTES_VALUE)
		return !val_utf8_valid((const char *)v->bytes_value.data, v->bytes_value.len);
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ProtobufCMessage *m = NULL;
	lua_State *L = sbx_L(get_box());
	val_t *v, *v1, *v2;
	char err[256];

	if (wire_unpack(&moonpen__v1__value__descriptor, data, size, 1u << 20, &m) < 0)
		return 0;
	v = (val_t *)m;
	if (val_check(v, MP_MAX_VALUE_DEPTH, err, sizeof err) < 0)
		goto out;
	v1 = round_trip(L, v);
	if (v1 == NULL)
		goto out;
	if (lossless_scalar(v) && !val_equal(v, v1))
		abort();
	v2 = round_trip(L, v1);
	if (v2 == NULL || !val_equal(v1, v2))
		abort();
	val_free(v1);
	val_free(v2);
	lua_gc(L, LUA_GCCOLLECT);
out:
	val_free(v);
	return 0;
}
