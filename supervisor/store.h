/*
 * store — moonpend's durable store (docs/durability.md): packs seen,
 * instances, snapshots, input logs, dead letters and each instance's last
 * incident (the flight recorder's trace) in one SQLite database in WAL mode,
 * <state_dir>/moonpen.db. Runs in the supervisor; the values it is
 * given were checked by their callers, the database file is the operator's
 * and is read back defensively (types, sizes and input continuity checked).
 *
 * Thread-safe: every instance thread calls it concurrently. One writer thread
 * owns the write connection and commits every request that is waiting, from
 * every thread, as one transaction (grouped commit); each write call blocks
 * until its transaction is durable in the configured mode, and one thread's
 * writes commit in the order it made them. The caller's buffers are read in
 * place while it waits (no copies).
 *
 * Durability "memory" keeps no store: sst_open() gives a NULL store, and every
 * function below accepts NULL and does nothing (writes return 0, sst_load
 * visits nothing), so callers need no branches.
 *
 * Indices: an input's index is its position in the instance's log stream,
 * counting every entry ever logged (events, ticks, calls and the host_result
 * answers of their queries; 0 = the first after create); a snapshot's input
 * index is the number of entries it covers. The entries replayed after a
 * snapshot are those with index >= it, contiguous (sst_load checks).
 *
 * Errors: negative errno values. -EIO (I/O error or unexpected SQLite
 * failure), -ENOSPC (disk full), -ENOMEM, -EBUSY (locked past the busy
 * timeout, or another moonpend holds the state folder), -EEXIST (duplicate
 * input index, or a pack id+version seen before with other contents),
 * -EBADMSG (corrupt or foreign database), -EINVAL (bad argument). Write
 * failures are logged with SQLite's message; sst_open and sst_load also
 * write it to err.
 */
#ifndef MOONPEN_SUP_STORE_H
#define MOONPEN_SUP_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct sst sst;

/* Schema version stored in PRAGMA user_version. 2 added the incidents table;
 * sst_open migrates a version 1 file (the previous release's) in place, in
 * one transaction, and refuses every other version. */
#define SST_SCHEMA_VERSION 2
/* The database file inside the state folder. */
#define SST_DB_NAME "moonpen.db"

typedef struct sst_label {
	const char *key, *value;
} sst_label;

/* An instance's row. status is a Moonpen__V1__InstanceInfo__State value. */
typedef struct sst_instance {
	const char *id;
	const char *pack_id, *pack_version; /* the version bound at create */
	uint64_t seed;
	uint32_t tick_ms;
	const sst_label *labels;
	size_t n_labels;
	int status;
	const char *reason; /* NULL is taken as "" */
	int64_t created_ms; /* Unix ms; 0: now (sst_put_instance) */
} sst_instance;

typedef struct sst_snapshot {
	uint64_t input; /* inputs covered */
	uint64_t tick;
	uint8_t hash[32];
	const uint8_t *blob; /* an encoded worker Snapshot */
	size_t len;
} sst_snapshot;

typedef struct sst_input {
	uint64_t index;
	const uint8_t *data; /* a packed ToWorker */
	size_t len;
} sst_input;

typedef struct sst_dead_letter {
	uint64_t input, tick;
	const char *kind; /* "event" | "tick" | "call" */
	const char *name;
	int code; /* Moonpen__V1__Status__Code */
	const char *message;
} sst_dead_letter;

/* One instance as sst_load found it. Every pointer is valid only during the
 * visit. A restart boots from snap and replays inputs; the older snapshots
 * and the history (the inputs between the oldest of them and snap) are what
 * a Rollback to an older point needs: history[0] is at index older[0].input,
 * history and inputs are contiguous. Older snapshots are handed over only
 * when every input from them up to snap is stored (with sst_set_history on;
 * off, older and history are empty). incident is the instance's last
 * incident as sst_put_incident stored it (trace text, NUL-terminated, of
 * incident_len bytes without NUL), or NULL. */
typedef struct sst_loaded {
	sst_instance inst;
	const sst_snapshot *snap; /* the newest snapshot, or NULL */
	const sst_input *inputs;  /* after snap (from index 0 without one), in order */
	size_t n_inputs;
	const sst_snapshot *older; /* the other kept snapshots, oldest first (none without snap) */
	size_t n_older;
	const sst_input *history; /* from older[0].input up to snap->input (excluded) */
	size_t n_history;
	const sst_dead_letter *dead; /* oldest first */
	size_t n_dead;
	const char *incident; /* the newest incident's trace JSON, or NULL */
	size_t incident_len;
	int incident_code;   /* its Moonpen__V1__Status__Code (0 without one) */
	int64_t incident_ms; /* when it was stored, Unix ms (0 without one) */
} sst_loaded;

/* Returns 0 to go on, or a negative value that stops sst_load (returned). */
typedef int (*sst_visit_fn)(void *ud, const sst_loaded *l);

/* Counters since sst_open (a NULL store gives zeros). */
typedef struct sst_stats {
	uint64_t commits;   /* transactions committed (grouped commits) */
	uint64_t requests;  /* write calls served */
	uint64_t appends;   /* of which sst_append_input */
	uint64_t max_group; /* most requests in one transaction */
	uint64_t failures;  /* write calls that returned an error */
	uint64_t pending;   /* write calls waiting now (queued or being committed) */
	uint64_t queued;    /* of which not yet taken by the writer */
} sst_stats;

/* Opens (creating it if needed) <dir>/moonpen.db: dir made 0700 if missing
 * (with its parents), the file 0600, no symlink followed. durability is
 * "memory" (0 and *out = NULL: no store), "process" (commits survive a crash
 * of moonpend: WAL, synchronous=NORMAL) or "power" (they also survive power
 * loss: synchronous=FULL, fsync per commit group). group_commit_ms bounds how
 * long a commit waits to gather more requests; keep_snapshots (>= 1) is how
 * many snapshots are kept per instance. Checks the file (quick_check,
 * application id, schema version; a version 1 file is migrated to 2) and
 * takes an exclusive lock on the folder. Returns 0 and *out (free with
 * sst_close), or a negative errno with err filled: -EBADMSG for a file that
 * is not a moonpen store, of an unknown schema version ("store schema
 * version N, this moonpend knows 2") or corrupt, -EBUSY when another process
 * holds the folder. */
int sst_open(const char *dir, const char *durability, uint32_t group_commit_ms,
	     unsigned keep_snapshots, sst **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Commits what is waiting, stops the writer, closes the database. NULL: no-op.
 * No other call on st may be running or follow. */
void sst_close(sst *st);

/* Records a pack version seen. 0 when new or seen before with the same hash;
 * -EEXIST when this id+version was seen with other contents (kept as first
 * seen). */
int sst_note_pack(sst *st, const char *id, const char *version, const uint8_t hash[32])
    __attribute__((warn_unused_result));

/* sst_put_instance's reset: what of an existing row's children goes. */
#define SST_RESET_NONE 0
#define SST_RESET_LOG 1 /* snapshots, inputs; dead letters and the incident stay */
#define SST_RESET_ALL 2 /* every child row */

/* Inserts or updates the instance's row (created_ms of an existing row is
 * kept). reset SST_RESET_LOG (1) also deletes its snapshots and inputs in the
 * same transaction (RestoreInstance over a live id: what failed or killed the
 * instance is still its history, its dead letters and incident stay, as they
 * do in memory); SST_RESET_ALL its dead letters and incident too (a create:
 * nothing of an older instance of the id may survive). -EINVAL for another
 * reset value. */
int sst_put_instance(sst *st, const sst_instance *in, int reset)
    __attribute__((warn_unused_result));

/* Sets status and reason (NULL: "") of an instance; -ENOENT if it has no row. */
int sst_set_status(sst *st, const char *id, int status, const char *reason)
    __attribute__((warn_unused_result));

/* Removes the instance and all its rows, its incident too (close). 0 even if
 * it had none. */
int sst_drop_instance(sst *st, const char *id) __attribute__((warn_unused_result));

/* Appends one input (a packed ToWorker) at index; returns once it is durable.
 * -EEXIST when that index is already stored, -ENOENT when the instance has no
 * row, -E2BIG past 256 MiB. */
int sst_append_input(sst *st, const char *id, uint64_t index, const uint8_t *data, size_t len)
    __attribute__((warn_unused_result));

/* Deletes the inputs with index >= from and the snapshots covering more than
 * from inputs: the tail after a discarded input, or a Rollback to a snapshot
 * that covers `from` inputs. */
int sst_truncate(sst *st, const char *id, uint64_t from) __attribute__((warn_unused_result));

/* Stores a snapshot covering `input` inputs (replacing one at the same
 * index), then deletes the inputs it covers (index < input) and all but the
 * newest keep_snapshots snapshots of the instance, in one transaction.
 * -ENOENT when the instance has no row, -E2BIG past 256 MiB. */
int sst_put_snapshot(sst *st, const char *id, uint64_t input, uint64_t tick, const uint8_t hash[32],
		     const uint8_t *blob, size_t len) __attribute__((warn_unused_result));

/* Retention of inputs (default off): off, sst_put_snapshot deletes the
 * inputs the new snapshot covers; on, only those that no kept snapshot needs
 * (index below the oldest kept snapshot's input), so that a Rollback to any
 * kept snapshot can replay from it after a restart too (moonpend turns it on;
 * sst_load then hands over the older snapshots and the inputs since the
 * oldest as sst_loaded.older and .history). */
void sst_set_history(sst *st, int on);

/* Records a dead letter of the instance. */
int sst_put_dead_letter(sst *st, const char *id, const sst_dead_letter *d)
    __attribute__((warn_unused_result));

/* Stores the instance's last incident (the flight recorder, docs/recovery.md):
 * the status code of the kill and the incident's trace JSON (len bytes, no
 * NUL; read in place), replacing the one before (one per instance, the
 * newest), stamped with the time now. -ENOENT when the instance has no row,
 * -E2BIG past 256 MiB, -EINVAL for an empty text or one holding a NUL. */
int sst_put_incident(sst *st, const char *id, int code, const char *trace_json, size_t len)
    __attribute__((warn_unused_result));

/* Calls fn for every stored instance (oldest created first), from one read
 * transaction on its own connection, so fn may call the write functions.
 * Returns 0, fn's negative value, or a negative errno with err filled
 * (-EBADMSG names the instance whose rows are inconsistent). */
int sst_load(sst *st, sst_visit_fn fn, void *ud, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Copies the counters into *out. */
void sst_get_stats(sst *st, sst_stats *out);

#endif
