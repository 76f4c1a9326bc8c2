/*
 * mod_rand — the instance RNG (xoshiro256**, splitmix64 seeding) and its Lua
 * bindings. Runs in moonpen-worker; the only source of randomness a script
 * can reach, so that replay with the same seed gives the same draws.
 */
#include <errno.h>

#include <lauxlib.h>

#include "worker/hostapi.h"
#include "worker/mod_rand.h"
#include "worker/sandbox.h"

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void mrn_seed(mrn_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t mrn_next(mrn_rng *r)
{
	uint64_t *s = r->s;
	uint64_t out = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

static double to_float(uint64_t x)
{
	return (double)(x >> 11) * 0x1.0p-53;
}

double mrn_float(mrn_rng *r)
{
	return to_float(mrn_next(r));
}

/* ran projected into [0, n]: Lua 5.4's method (smallest 2^b-1 >= n as a mask,
 * draw again while outside), which has no modulo bias. */
static uint64_t project(mrn_rng *r, uint64_t ran, uint64_t n)
{
	uint64_t lim = n;

	if ((n & (n + 1)) == 0)
		return ran & n;
	lim |= lim >> 1;
	lim |= lim >> 2;
	lim |= lim >> 4;
	lim |= lim >> 8;
	lim |= lim >> 16;
	lim |= lim >> 32;
	while ((ran &= lim) > n)
		ran = mrn_next(r);
	return ran;
}

int64_t mrn_range(mrn_rng *r, int64_t lo, int64_t hi)
{
	uint64_t p = project(r, mrn_next(r), (uint64_t)hi - (uint64_t)lo);

	return (int64_t)(p + (uint64_t)lo);
}

void mrn_begin(mrn_rng *r)
{
	for (int i = 0; i < 4; i++)
		r->saved[i] = r->s[i];
}

void mrn_rollback(mrn_rng *r)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = r->saved[i];
}

/* ---- Lua ----------------------------------------------------------------------- */

static mrn_rng *self(lua_State *L)
{
	return lua_touserdata(L, lua_upvalueindex(1));
}

static lua_Integer int_arg(lua_State *L, int i, const char *fn, const char *name)
{
	int ok = 0;
	lua_Integer v = lua_tointegerx(L, i, &ok);

	if (!ok)
		luaL_error(L, "%s: argument #%d '%s' expected integer, got %s", fn, i, name,
			   lua_type(L, i) == LUA_TNUMBER ? "non-integral number"
							 : luaL_typename(L, i));
	return v;
}

static int l_next(lua_State *L)
{
	lua_pushnumber(L, mrn_float(self(L)));
	return 1;
}

static int l_int(lua_State *L)
{
	lua_Integer lo = int_arg(L, 1, "rand.int", "m"), hi = int_arg(L, 2, "rand.int", "n");

	if (lo > hi)
		return luaL_error(L, "rand.int: interval is empty (m = %I > n = %I)", lo, hi);
	lua_pushinteger(L, mrn_range(self(L), lo, hi));
	return 1;
}

static int l_pick(lua_State *L)
{
	lua_Unsigned n;

	if (lua_type(L, 1) != LUA_TTABLE)
		return luaL_error(L, "rand.pick: argument #1 'list' expected table, got %s",
				  luaL_typename(L, 1));
	n = lua_rawlen(L, 1);
	if (n == 0)
		return luaL_error(L, "rand.pick: the list is empty");
	lua_rawgeti(L, 1, mrn_range(self(L), 1, (lua_Integer)n));
	return 1;
}

/* math.random with Lua 5.4's semantics (the draw comes first, as there). */
static int l_random(lua_State *L)
{
	mrn_rng *r = self(L);
	uint64_t rv = mrn_next(r);
	lua_Integer lo, hi;

	switch (lua_gettop(L)) {
	case 0:
		lua_pushnumber(L, to_float(rv));
		return 1;
	case 1:
		lo = 1;
		hi = int_arg(L, 1, "math.random", "m");
		if (hi == 0) {
			lua_pushinteger(L, (lua_Integer)rv);
			return 1;
		}
		break;
	case 2:
		lo = int_arg(L, 1, "math.random", "m");
		hi = int_arg(L, 2, "math.random", "n");
		break;
	default:
		return luaL_error(L, "math.random: wrong number of arguments");
	}
	if (lo > hi)
		return luaL_error(L, "math.random: interval is empty");
	uint64_t u = project(r, rv, (uint64_t)hi - (uint64_t)lo) + (uint64_t)lo;

	lua_pushinteger(L, (lua_Integer)u); /* two's complement wrap back into [lo, hi] */
	return 1;
}

static int l_randomseed(lua_State *L)
{
	if (lua_isnoneornil(L, 1))
		return luaL_error(L, "math.randomseed: a seed is required (instances have no "
				     "clock to seed from)");
	mrn_seed(self(L), (uint64_t)int_arg(L, 1, "math.randomseed", "n"));
	return 0;
}

void mrn_install(lua_State *L, mrn_rng *r)
{
	static const luaL_Reg fns[] = {
	    {"next", l_next},
	    {"int", l_int},
	    {"pick", l_pick},
	    {NULL, NULL},
	};

	lua_createtable(L, 0, 3);
	lua_pushlightuserdata(L, r);
	luaL_setfuncs(L, fns, 1);
	hapi_publish(L, "rand");
	/* the real math table behind the read-only proxy scripts see */
	sbx_push_lib(sbx_of(L), "math");
	if (lua_type(L, -1) != LUA_TTABLE)
		luaL_error(L, "the sandbox has no math library");
	lua_pushlightuserdata(L, r);
	lua_pushcclosure(L, l_random, 1);
	lua_setfield(L, -2, "random");
	lua_pushlightuserdata(L, r);
	lua_pushcclosure(L, l_randomseed, 1);
	lua_setfield(L, -2, "randomseed");
	lua_pop(L, 1);
}

int mrn_import(mrn_rng *r, const uint64_t w[4])
{
	if ((w[0] | w[1] | w[2] | w[3]) == 0)
		return -EINVAL;
	for (int i = 0; i < 4; i++)
		r->s[i] = r->saved[i] = w[i];
	return 0;
}
