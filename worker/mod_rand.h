/*
 * mod_rand — the instance RNG: xoshiro256** seeded from the instance seed
 * through splitmix64, its state in the snapshot and rolled back with a failed
 * input. Runs in moonpen-worker; arguments come from scripts and are checked.
 *
 * Script API:
 *   rand.next()        a float in [0, 1) (53 random bits)
 *   rand.int(m, n)     an integer in [m, n], unbiased (mask-and-reject, as Lua 5.4)
 *   rand.pick(list)    list[rand.int(1, #list)]; an empty list raises
 *   math.random        Lua 5.4's semantics on this RNG: () float, (m) [1, m],
 *                      (m, n) [m, n], (0) a full 64-bit integer
 *   math.randomseed(n) reseeds this RNG from the integer n (splitmix64, like
 *                      the instance seed); without an argument it raises (there
 *                      is no clock to seed from)
 */
#ifndef MOONPEN_MOD_RAND_H
#define MOONPEN_MOD_RAND_H

#include <stdint.h>

#include <lua.h>

typedef struct mrn_rng {
	uint64_t s[4];
	uint64_t saved[4]; /* at mrn_begin */
} mrn_rng;

/* Seeds s[0..3] with four splitmix64 outputs from seed. */
void mrn_seed(mrn_rng *r, uint64_t seed);
/* The next 64-bit output of xoshiro256**. */
uint64_t mrn_next(mrn_rng *r);
/* A float in [0, 1): the top 53 bits of mrn_next scaled by 2^-53. */
double mrn_float(mrn_rng *r);
/* An integer in [lo, hi] (lo <= hi), unbiased. */
int64_t mrn_range(mrn_rng *r, int64_t lo, int64_t hi);

/* Input boundaries: rollback restores the state saved by begin. */
void mrn_begin(mrn_rng *r);
void mrn_rollback(mrn_rng *r);

/* Snapshots: sets the state to w (restore); -EINVAL when all four words are
 * zero (xoshiro's one invalid state: it would draw only zeros). */
int mrn_import(mrn_rng *r, const uint64_t w[4]) __attribute__((warn_unused_result));

/* Publishes the global `rand` and binds math.random / math.randomseed to r.
 * May raise (run protected). */
void mrn_install(lua_State *L, mrn_rng *r);

#endif
