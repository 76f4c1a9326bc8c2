/*
 * mod_state — the `state` module: an instance's durable key-value store, the
 * only state that survives a snapshot. Runs in moonpen-worker; every key and
 * value comes from a script and is checked (plain data only, bounded depth
 * and size).
 *
 * Script API (module table read-only):
 *   state.get(key)          a deep copy of the value, or nil
 *   state.set(key, value)   value: nil (deletes), boolean, number, string, or a
 *                           table of those (no cycles, nesting <= max_depth);
 *                           anything else raises an error naming the bad part
 *   state.incr(key, d=1)    adds d to a number (absent = 0), returns the result;
 *                           integer overflow raises
 *   state.keys()            the keys, sorted bytewise
 * Keys are non-empty strings of at most 256 bytes. Writes are refused while
 * the entry chunk loads. The store's encoded size is capped (max_bytes).
 *
 * Atomic inputs: every change made between mst_begin and mst_rollback is
 * undone from a journal (old values are kept until mst_commit).
 *
 * Canonical encoding (state hash = BLAKE2b-256 of it, libsodium
 * crypto_generichash, 32 bytes, no key):
 *
 *   state := "MPST" 0x01  u32 n  (key value){n}      keys sorted bytewise
 *                                                    (memcmp; a prefix sorts first)
 *   key   := u32 len  bytes
 *   value := 'f' | 't'                               false / true
 *          | 'i' i64                                 integer
 *          | 'd' f64                                 float: IEEE-754 binary64 bits;
 *                                                    every NaN as 0x7ff8000000000000
 *          | 's' u32 len bytes                       string (valid UTF-8)
 *          | 'b' u32 len bytes                       string (other bytes)
 *          | 'T' u32 n (value){n} u32 m (value value){m}
 *                                                    table: t[1..n] (the array part,
 *                                                    as luaval builds it), then m
 *                                                    key/value pairs in canonical
 *                                                    key order: numbers (by value;
 *                                                    an integer before an equal
 *                                                    float), then strings bytewise,
 *                                                    then false, true
 *          | 'n'                                     nil (only where a Value is unset)
 *   u32 and i64/f64 are big-endian.
 */
#ifndef MOONPEN_MOD_STATE_H
#define MOONPEN_MOD_STATE_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "common/val.h"
#include "worker/hostapi.h"

#define MST_MAX_KEY 256

typedef struct mst_store mst_store;

/* A new empty store; max_bytes caps the encoded size (0: no cap). NULL when
 * out of memory. ctx must outlive the store. */
mst_store *mst_new(const hapi_ctx *ctx, uint64_t max_bytes);
void mst_free(mst_store *st);

/* Publishes the global `state`. May raise (run protected). */
void mst_install(lua_State *L, mst_store *st);

/* Input boundaries: begin starts journaling; commit forgets the journal;
 * rollback undoes every change since begin. */
void mst_begin(mst_store *st);
void mst_commit(mst_store *st);
void mst_rollback(mst_store *st);

/* BLAKE2b-256 of the canonical encoding (cached until the next change). */
void mst_hash(mst_store *st, uint8_t out[32]);

/* The canonical encoding into a new buffer (*buf, free() it). 0 or -ENOMEM. */
int mst_encode(const mst_store *st, uint8_t **buf, size_t *len) __attribute__((warn_unused_result));

/* C access (snapshots, tests). mst_get returns the stored value (borrowed,
 * NULL when absent). mst_put takes v (NULL deletes) on success, journaled when
 * an input is open; -EINVAL for a bad key, -E2BIG past max_bytes, -ENOMEM. */
const val_t *mst_get(const mst_store *st, const char *key, size_t klen);
int mst_put(mst_store *st, const char *key, size_t klen, val_t *v)
    __attribute__((warn_unused_result));
size_t mst_count(const mst_store *st);

/* Loads a snapshot's state: fills the empty store st from the canonical
 * encoding buf[0..len). Accepts exactly what mst_encode produces (the bytes
 * are re-encoded and compared): a bad header, truncation, trailing bytes,
 * keys out of order or repeated, nil values, invalid UTF-8 in an 's' string,
 * a map out of canonical order or tables nested deeper than max_depth are
 * -EINVAL with the place named in err; -E2BIG past max_bytes; -ENOMEM. On
 * failure the store is left empty. Not journaled (call it between inputs). */
int mst_decode(mst_store *st, const uint8_t *buf, size_t len, unsigned max_depth, char *err,
	       size_t errlen) __attribute__((warn_unused_result));

#endif
