/*
 * ilog — an instance's recovery record: the snapshots kept in memory (newest
 * last), the input log since the oldest of them (with each input's outcome, for
 * Rollback and ExportTrace; after a restart, the inputs before the newest
 * snapshot come back with their ticks only: ilog_append_old), and the dead
 * letters. Runs in
 * the supervisor. Log entries are our own packed ToWorker messages; snapshot
 * blobs come from a worker and are hostile: their header is decoded with a size
 * cap and checked (format, instance id, hash length) before it is kept.
 *
 * Not thread-safe: the owner (the instance) serialises every call.
 */
#ifndef MOONPEN_SUP_ILOG_H
#define MOONPEN_SUP_ILOG_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "moonpen.pb-c.h"
#include "worker.pb-c.h"

/* Dead letters listed by GetInstance: the newest ones. */
#define ILOG_MAX_DEAD 32

/* Outcomes (packed Results) of inputs older than the newest snapshot are kept
 * up to this many bytes per instance; past it the oldest are dropped (those
 * since the newest snapshot are always kept: at most snapshot_every). */
#define ILOG_MAX_OUTCOME_BYTES (8u << 20)

typedef struct ilog_ent {
	uint8_t *data; /* a packed ToWorker (any op; seq 0) */
	size_t len;
	int input;	     /* an event, tick or call (else a host_result answering one) */
	int done;	     /* input with its outcome recorded (tick_after, hash_after) */
	uint64_t tick;	     /* input: the instance's tick before it */
	uint64_t tick_after; /* done: the tick of its result */
	uint8_t hash_after[32];
	uint8_t *out; /* done: its Result as answered (packed), or NULL once dropped */
	size_t out_len;
	int ticks_only; /* done, read back from the store (ilog_append_old): its ticks
			 * are known, its hash_after and out are not */
} ilog_ent;

typedef struct ilog_snap {
	uint8_t *data; /* the encoded moonpen.worker.v1.Snapshot, as Init.snapshot */
	size_t len;
	uint64_t tick;	/* instance tick when taken (from the header) */
	uint64_t input; /* inputs applied before it (the supervisor's count) */
	uint8_t hash[32];
	uint64_t seq; /* log position of the first entry after it (see ilog) */
} ilog_snap;

typedef struct ilog_dead {
	uint64_t input, tick;
	char kind[8]; /* "event" | "tick" | "call" */
	char name[128];
	st_code code;
	char message[256];
} ilog_dead;

/* Entries are kept since the OLDEST restore point (a kept snapshot, or the
 * creation while it is one), for Rollback and ExportTrace; ents/n are the
 * ones since the NEWEST snapshot, which a restore replays. Positions ("seq")
 * count entries since the ilog began: all[i] is at seq0 + i. */
typedef struct ilog {
	ilog_ent *ents; /* inputs since the newest snapshot, in order (= all + nall - n) */
	size_t n, cap;
	ilog_ent *all; /* inputs since the oldest restore point; ents points into it */
	size_t nall;
	uint64_t seq0;
	int create_ok;	      /* the creation (fresh Init, on_init) is a restore point */
	uint64_t create_tick; /* ... at this tick, with this Init outcome (packed Result) */
	uint8_t *init_out;
	size_t init_out_len;
	size_t out_bytes; /* outcome bytes kept before the newest snapshot */
	ilog_snap *snaps; /* newest last */
	size_t nsnaps;
	ilog_dead dead[ILOG_MAX_DEAD]; /* ring: the newest ILOG_MAX_DEAD */
	size_t ndead;		       /* ever recorded */
} ilog;

/* Appends tw, packed with seq 0 (tw->seq is set to 0). 0 or -ENOMEM. */
int ilog_append(ilog *l, Moonpen__Worker__V1__ToWorker *tw) __attribute__((warn_unused_result));

/* Appends an entry already packed (a ToWorker read back from the store),
 * copied. 0 or -ENOMEM. */
int ilog_append_raw(ilog *l, const uint8_t *data, size_t len) __attribute__((warn_unused_result));

/* Appends an entry read back from the store that precedes the newest
 * snapshot (kept for Rollback after a restart), copied. Its outcome is
 * unknown, but an input's ticks follow from the log alone, as the worker
 * counts them: a tick input advances its count (0 counts as 1), events and
 * calls none. So an input is marked done and ticks_only, with tick = *tick
 * and tick_after = *tick advanced; *tick becomes tick_after. 0, -ENOMEM, or
 * -EBADMSG (the entry does not decode). */
int ilog_append_old(ilog *l, const uint8_t *data, size_t len, uint64_t *tick)
    __attribute__((warn_unused_result));

/* Records res (the final OK Result of the newest logged input, answered to
 * the client) as that input's outcome, with tick_before the instance's tick
 * before it. 0, -ENOENT (no input since the newest snapshot), -ENOMEM. */
int ilog_set_outcome(ilog *l, const Moonpen__V1__Result *res, uint64_t tick_before)
    __attribute__((warn_unused_result));

/* Marks the creation as a restore point (a fresh Init), whose reply was res
 * (NULL: none). 0 or -ENOMEM. */
int ilog_set_create(ilog *l, const Moonpen__V1__Result *res) __attribute__((warn_unused_result));

/* The restore point Rollback to tick uses: the newest kept snapshot with
 * tick <= `tick` (*snap set), or the creation (*snap NULL); then the kept
 * entries to replay after it: the inputs whose result tick is <= `tick`
 * (a prefix: ticks never decrease), each with its query answers. *keep is
 * the number of entries after the point that stay. 0, or -ENOENT when
 * `tick` is before the oldest restore point (*oldest_tick says which). */
int ilog_rollback_plan(const ilog *l, uint64_t tick, const ilog_snap **snap, size_t *keep,
		       uint64_t *oldest_tick);

/* Applies a plan: drops the snapshots after snap (NULL: all of them), the
 * entries after its `keep` first, and returns how many entries were dropped
 * from the tail. */
size_t ilog_rollback(ilog *l, const ilog_snap *snap, size_t keep);

/* Empties the log and the snapshots (RestoreInstance); keeps the dead letters. */
void ilog_reset(ilog *l);

/* The oldest restore point from which every later input still has its
 * outcome: *snap (NULL: the creation) and *first, the index in all[] of its
 * first entry. 0, or -ENOENT (none; cannot happen while outcomes since the
 * newest snapshot are kept). */
int ilog_trace_start(const ilog *l, const ilog_snap **snap, size_t *first);

/* Drops the last n entries (all of them when n >= l->n). */
void ilog_truncate(ilog *l, size_t n);

/* Decodes entry i. 0 and *out (free with protobuf_c_message_free_unpacked),
 * -ENOMEM or -EBADMSG. */
int ilog_get(const ilog *l, size_t i, Moonpen__Worker__V1__ToWorker **out)
    __attribute__((warn_unused_result));

/* Keeps blob (copied) as the newest snapshot of instance id, taken after
 * `input` inputs, drops the oldest restore points beyond keep (the creation
 * first; at least 1 is kept) with the entries only they needed, and starts
 * an empty log since it (the entries before stay for Rollback and traces).
 * Returns 0, -ENOMEM, or -EBADMSG with err filled when the blob is not a
 * snapshot of this instance. */
int ilog_snap_add(ilog *l, const uint8_t *blob, size_t len, const char *id, uint64_t input,
		  unsigned keep, char *err, size_t errlen) __attribute__((warn_unused_result));

/* The newest snapshot, or NULL when none was taken. */
const ilog_snap *ilog_snap_newest(const ilog *l);

/* Records a dead letter (the oldest beyond ILOG_MAX_DEAD is forgotten). */
void ilog_dead_add(ilog *l, const ilog_dead *d);

/* Appends the kept dead letters, oldest first, to info. 0 or -ENOMEM (info is
 * then partly filled; free it whole). */
int ilog_dead_to_info(const ilog *l, Moonpen__V1__InstanceInfo *info)
    __attribute__((warn_unused_result));

/* Frees every entry, snapshot and dead letter; l is empty afterwards. */
void ilog_free(ilog *l);

#endif
