/*
 * snapshot — an instance's restore point as bytes (moonpen.worker.v1.Snapshot):
 * packing, and decoding with every check that needs no engine. Runs in
 * moonpen-worker. A snapshot comes back from the supervisor's store, maybe
 * from an operator's RestoreInstance: its bytes are untrusted and checked
 * field by field before anything is restored from them.
 *
 * What the engine adds on top (worker/engine.c): the identity checks against
 * the Init and manifest (instance, pack id and version, seed, tick_ms), the
 * trigger ids of throttles, the state decoding (mst_decode) and the state
 * hash, recomputed and compared.
 */
#ifndef MOONPEN_SNAPSHOT_H
#define MOONPEN_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "worker.pb-c.h"

typedef Moonpen__Worker__V1__Snapshot snap_t;

#define SNAP_FORMAT 1
#define SNAP_MAX_TIMERS 1024		/* the engine's own cap on pending timers */
#define SNAP_MAX_TIMER_ARGS 1024	/* arguments of one timer */
#define SNAP_MAX_THROTTLES 4096		/* manifest triggers */
#define SNAP_MAX_DUE_AHEAD (1ull << 41) /* ticks a timer may lie in the future */

/* Packs s into a new buffer (*buf, free() it). 0, -EFBIG when the encoding
 * exceeds MP_SNAPSHOT_MAX_BYTES (policy/limits.h), -ENOMEM. */
int snap_pack(const snap_t *s, uint8_t **buf, size_t *len) __attribute__((warn_unused_result));

/* Decodes buf[0..len) (wire_unpack, so nesting is bounded before protobuf-c
 * recurses) and checks it: size <= MP_SNAPSHOT_MAX_BYTES, format 1, a 32-byte
 * state hash, tick_ms in 1..MP_MAX_TICK_MS, 4 RNG words not all zero, next
 * ids >= 1, timers (at most SNAP_MAX_TIMERS, unique ids below next_timer_id,
 * due after the tick, fn a Lua name, args Values within max_depth), throttles
 * (non-empty unique ids, last_tick -1 or at most the tick). Returns 0 and *out
 * (free with protobuf_c_message_free_unpacked), or -EINVAL / -EFBIG with the
 * reason in err ("snapshot: timer 3: fn '1x' is not a name"), or -ENOMEM. */
int snap_decode(const uint8_t *buf, size_t len, unsigned max_depth, snap_t **out, char *err,
		size_t errlen) __attribute__((warn_unused_result));

/* Nonzero for a Lua name (identifier, not a keyword) of any length; s is a
 * NUL-terminated string, not NULL. */
int snap_lua_name(const char *s);

#endif
