/*
 * ratelimit — token buckets that bound how fast game servers may feed events
 * to one instance. Runs in the supervisor; the rates come from the pack's
 * manifest (checked by mf_parse), the event name and the payload from a
 * client (checked by reqcheck, still untrusted: a player id is only a key).
 *
 * Semantics (docs/protocol.md, "Rate limits"). Only events are limited
 * (ticks, calls and the other requests are not). The buckets that apply to an
 * event are: the bucket of every manifest trigger with a rate whose event
 * pattern matches the event name (exact name, or prefix before a final '*'),
 * the bucket of the player named by the payload's player_field (a string or an
 * integer; events without it skip this bucket), and the instance's global
 * bucket. The event is admitted only when every one of them holds a whole
 * token, and then each of them spends one; a rejected event spends nothing.
 * Buckets start full and refill continuously at per_second, up to burst.
 *
 * Pure and clock-free: the caller passes the monotonic time in nanoseconds,
 * so tests inject their own clock. Not thread-safe: one owner (the instance
 * table serializes calls under the instance's lock).
 *
 * Memory: at most max_players player buckets. When a new player needs one
 * and the table is full, every bucket that has refilled to its burst is
 * dropped (a full bucket and a fresh one behave the same, so nobody notices);
 * if none is full, the bucket with the most tokens (then the least recently
 * used) is dropped, which can only make that player's next event more
 * likely to pass.
 */
#ifndef MOONPEN_SUP_RATELIMIT_H
#define MOONPEN_SUP_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "common/manifest.h"
#include "policy/limits.h"
#include "moonpen.pb-c.h"

/* Player buckets kept per instance (see "Memory" above). */
#define SUP_RL_MAX_PLAYERS MP_RL_MAX_PLAYERS
/* Player ids are keys of at most this many bytes; longer ids are cut, so ids
 * sharing these first bytes share a bucket (stricter, never laxer). */
#define SUP_RL_KEY_MAX 128

typedef struct sup_rl sup_rl;

/* Buckets for the rates of manifest m (which must outlive the limiter), all
 * full at time now_ns. 0 and *out; *out is NULL when m sets no rate at all (then
 * every event is admitted without a limiter). -ENOMEM, or -EINVAL when
 * max_players is 0. */
int sup_rl_new(const mf_manifest *m, size_t max_players, uint64_t now_ns, sup_rl **out)
    __attribute__((warn_unused_result));
void sup_rl_free(sup_rl *rl);

/* Admits or rejects one event at time now_ns (times before the last one seen
 * count as equal to it). player may be NULL (no player bucket). Returns 0
 * (admitted, tokens spent) or -EAGAIN (rejected, nothing spent: msg names the
 * bucket, e.g. "rate limit of trigger 'boss_enrage' exceeded (1/s, burst 1)").
 * Never allocates. rl NULL admits everything. */
int sup_rl_admit(sup_rl *rl, uint64_t now_ns, const char *event, const char *player, char *msg,
		 size_t msglen) __attribute__((warn_unused_result));

/* The player an event payload names: the value of map key `field` (a string,
 * or an integer printed in decimal), cut to SUP_RL_KEY_MAX bytes, in
 * buf[0..len). Returns 1 when found, 0 when field is NULL, the payload is not
 * a table or has no such string/integer entry. */
int sup_rl_player(const char *field, const Moonpen__V1__Value *payload, char *buf, size_t len);

/* Player buckets currently held (for tests and metrics). */
size_t sup_rl_players(const sup_rl *rl);

#endif
