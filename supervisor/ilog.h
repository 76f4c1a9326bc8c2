/*
 * ilog — an instance's recovery record: the snapshots kept in memory (newest
 * last), the input log since the newest of them, and the dead letters. Runs in
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

typedef struct ilog_ent {
	uint8_t *data; /* a packed ToWorker (any op; seq 0) */
	size_t len;
} ilog_ent;

typedef struct ilog_snap {
	uint8_t *data; /* the encoded moonpen.worker.v1.Snapshot, as Init.snapshot */
	size_t len;
	uint64_t tick;	/* instance tick when taken (from the header) */
	uint64_t input; /* inputs applied before it (the supervisor's count) */
	uint8_t hash[32];
} ilog_snap;

typedef struct ilog_dead {
	uint64_t input, tick;
	char kind[8]; /* "event" | "tick" | "call" */
	char name[128];
	st_code code;
	char message[256];
} ilog_dead;

typedef struct ilog {
	ilog_ent *ents; /* inputs since the newest snapshot, in order */
	size_t n, cap;
	ilog_snap *snaps; /* newest last */
	size_t nsnaps;
	ilog_dead dead[ILOG_MAX_DEAD]; /* ring: the newest ILOG_MAX_DEAD */
	size_t ndead;		       /* ever recorded */
} ilog;

/* Appends tw, packed with seq 0 (tw->seq is set to 0). 0 or -ENOMEM. */
int ilog_append(ilog *l, Moonpen__Worker__V1__ToWorker *tw) __attribute__((warn_unused_result));

/* Drops the last n entries (all of them when n >= l->n). */
void ilog_truncate(ilog *l, size_t n);

/* Decodes entry i. 0 and *out (free with protobuf_c_message_free_unpacked),
 * -ENOMEM or -EBADMSG. */
int ilog_get(const ilog *l, size_t i, Moonpen__Worker__V1__ToWorker **out)
    __attribute__((warn_unused_result));

/* Keeps blob (copied) as the newest snapshot of instance id, taken after
 * `input` inputs, drops the oldest beyond keep (at least 1 is kept) and empties
 * the log (the snapshot covers all of it). Returns 0, -ENOMEM, or -EBADMSG with
 * err filled when the blob is not a snapshot of this instance. */
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
