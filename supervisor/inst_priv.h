/*
 * inst_priv — what the files of the instance module share (supervisor only;
 * not a public surface: include it from supervisor/inst*.c only).
 *
 *   inst.c         the table, the queue, serving requests, the thread, entry points
 *   inst_info.c    InstanceInfo of GetInstance / ListInstances
 *   inst_worker.c  workers: boot, RPCs, the input log, replay, restore, quarantine
 *   inst_snap.c    in-memory snapshots, retries and dead letters
 *   inst_query.c   async queries: PENDING, HostResult, timeouts
 *   inst_restart.c the durable store: the row a create records, restarts
 *   inst_history.c Snapshot/Restore/Rollback/ExportTrace, building traces
 *   inst_incident.c the flight recorder: GetIncident, incidents in the store
 *
 * Locks: is->mu (the table) before in->mu (one instance). An instance is
 * found and its queue appended to only under is->mu, and it is removed from
 * the table under is->mu before its thread frees it: so no reference counts.
 * A pool worker's own lock (pool.c) is taken by an instance's thread for one
 * RPC, holding no other. The pools' lock (ps->mu, pool.c) comes before in->mu:
 * a pool worker's death is told to its other instances (inst_pool_lost) under
 * it; nothing takes it holding in->mu.
 */
#ifndef MOONPEN_SUP_INST_PRIV_H
#define MOONPEN_SUP_INST_PRIV_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "policy/limits.h"
#include "supervisor/ilog.h"
#include "supervisor/inst.h"
#include "supervisor/pool.h"
#include "supervisor/query.h"
#include "supervisor/ratelimit.h"
#include "supervisor/spare.h"
#include "supervisor/store.h"
#include "supervisor/wchan.h"

#define NBUCKETS 1024

typedef Moonpen__V1__InstanceInfo__State inst_state;

struct job {
	struct job *next;
	Moonpen__V1__Request *req;
	sup_reply *rp;
};

struct inst {
	struct inst *hnext; /* bucket chain (is->mu) */
	sup_insts *is;
	char id[MP_MAX_ID_BYTES + 1];
	Moonpen__V1__Request *create; /* the CreateInstance request, kept for Init */
	const pack *pk;
	uint64_t mem_bytes;
	uint32_t deadline_ms, tick_ms;

	pthread_mutex_t mu; /* the fields below, up to the thread-only ones */
	pthread_cond_t cv;
	struct job *head, *tail;
	int stop;
	inst_state state;
	char reason[256];
	int pid;
	char layers[512];
	uint64_t tick, inputs;
	uint8_t hash[32];
	unsigned restarts;
	char missing[512];  /* confinement layers its worker could not apply */
	char isolation[96]; /* "instance" or "pool:<pack>#<n>" */
	ilog ilog;	    /* snapshots, input log, dead letters: changed under mu */
	uint64_t logged;    /* log entries ever kept (the store's index of the next one) */
	int restarted;	    /* loaded from the store at start (inst_restart.c) */
	size_t replay_n;    /* ... the entries its first boot replays (the log's last ones) */
	int pool_lost;	    /* pid of its pool worker that died under a neighbour's
			     * input, its thread to restore its slot (0: none) */

	/* only the instance's thread touches these */
	wchan *w;
	uint64_t *restart_ms; /* when recent restarts happened (restart intensity) */
	size_t n_restart_ms;
	struct job *closing; /* the close request, answered after unlinking */
	Moonpen__V1__Response *closing_resp;
	/* recovery (only the instance's thread) */
	sup_pool *pool;	    /* NULL: its own worker (in->w); else a slot of a pool worker */
	uint32_t slot;	    /* its slot in the pool worker (0 for its own worker) */
	uint64_t pgen;	    /* generation of the pool worker its slot lives in */
	int slot_live;	    /* the slot holds its instance (Init answered OK, no Close) */
	size_t snap_due;    /* log length at which the next snapshot is asked for */
	st_code death_code; /* the last worker failure: status for the failed input */
	char death[256];
	/* queries (H2; only the instance's thread): see "queries" below */
	/* the last worker kill under an input (inst_incident.c), or NULL */
	struct inst_incident *incident;
	uint64_t pending_call; /* call id the pending input waits for; 0: none */
	sup_query q;
	/* rate limits of its pack (NULL: none); under mu, admitted in sup_insts_submit */
	sup_rl *rl;
};

struct sup_insts {
	sup *s;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* signalled when a thread ends */
	struct inst *buckets[NBUCKETS];
	unsigned count, threads;
	sup_spares *spares; /* warm spare workers, and the spawner of pool workers */
	sup_pools *pools;
};

struct inst *inst_find_locked(sup_insts *is, const char *id);

struct job *inst_pop(struct inst *in);

void inst_job_done(struct job *j, Moonpen__V1__Response *r);

void inst_job_fail(struct job *j, st_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void inst_note_result(struct inst *in, const Moonpen__V1__Result *res, int applied);

Moonpen__V1__Response *inst_take_reply(Moonpen__Worker__V1__FromWorker *fw);

Moonpen__V1__InstanceInfo *inst_make_info(const struct inst *in);

uint32_t inst_hard_ms(const struct inst *in, uint32_t scale);

/* The instance's worker Init and Limits (supervisor/winit.h), snapshot empty;
 * every pointer borrowed from in. */
void inst_set_init(const struct inst *in, Moonpen__Worker__V1__Init *init,
		   Moonpen__Worker__V1__Limits *lim);

int inst_boot(struct inst *in, Moonpen__Worker__V1__FromWorker **fw, char *err, size_t errlen);

int inst_worker_rpc(struct inst *in, Moonpen__Worker__V1__ToWorker *tw, uint32_t ms,
		    Moonpen__Worker__V1__FromWorker **fw);

/* Sends log entry i to the worker again (the hard limit scaled by its tick
 * count) and sets *fw to the answer, the caller's to free. On failure err
 * says "<what> <i> does not decode" or "worker died replaying <what> <i>". */
int inst_replay_rpc(struct inst *in, size_t i, const char *what,
		    Moonpen__Worker__V1__FromWorker **fw, char *err, size_t errlen);

/* *out = a Request (op create) holding a copy of c in which every member is
 * malloc'd, as an instance's stored create request must be (packed and
 * unpacked: free it with protobuf_c_message_free_unpacked). 0 or negative. */
int inst_create_req(const Moonpen__V1__CreateInstance *c, Moonpen__V1__Request **out);

int inst_log_append(struct inst *in, Moonpen__Worker__V1__ToWorker *tw);

/* inst_log_append failed with r after the worker applied j's input: the
 * worker is restored without it and j answered (UNAVAILABLE when the store
 * refused it: retryable; out of memory quarantines). */
void inst_log_failed(struct inst *in, struct job *j, int r);

void inst_log_truncate(struct inst *in, size_t n);

void inst_quarantine(struct inst *in, const char *why);

uint64_t inst_now_ms(void);

int inst_restore(struct inst *in, const char *why);

/* ---- pool neighbours (docs/recovery.md "Pools") ----
 * The pool's lost callback (pool.h) for in: notes the dead worker's pid in
 * in->pool_lost, shows no worker in GetInstance while in->pid was that pid,
 * and wakes the instance's thread. Takes only in->mu. */
void inst_pool_lost(void *arg, int pid);

/* On the instance's thread, between jobs: when its pool worker died under a
 * neighbour's input (in->pool_lost), restores its slot on a fresh worker from
 * its newest snapshot and log (the path an RPC finding its slot stale takes:
 * counted in info.restarts, not in its restart intensity; a failure
 * quarantines it), unless it stops, a Close is queued, it is quarantined, or
 * its slot was restored already. 1 when a notice was taken (restored or not),
 * 0 when there was none. */
int inst_pool_heal(struct inst *in);

/* Caller holds in->mu: nonzero when a notice waits (the thread must wake). */
int inst_pool_heal_due_locked(const struct inst *in);

int inst_input_rpc(struct inst *in, Moonpen__Worker__V1__ToWorker *tw, uint32_t ms,
		   Moonpen__Worker__V1__FromWorker **fw);

void inst_maybe_snapshot(struct inst *in);

int inst_retry_input(struct inst *in, struct job *j, Moonpen__Worker__V1__ToWorker *tw, uint32_t ms,
		     Moonpen__Worker__V1__FromWorker **fw);

uint64_t inst_now_ns(void);

void inst_query_begin(struct inst *in, struct job *j, Moonpen__Worker__V1__ToWorker *tw,
		      Moonpen__Worker__V1__FromWorker *fw);

void inst_serve_host_result(struct inst *in, struct job *j);

void inst_query_abandon(struct inst *in);

struct job *inst_next_job(struct inst *in);

/* ---- durability (inst_restart.c; docs/durability.md) ---- */

/* A new instance (not yet running, not in the table) for the CreateInstance
 * req of pack pk; takes req on success. NULL: out of memory. */
struct inst *inst_alloc(sup_insts *is, Moonpen__V1__Request *req, const pack *pk);

/* Puts in (from inst_alloc) in the table and starts its thread. 0, -EEXIST or
 * a negative errno (then in is still the caller's: inst_discard). */
int inst_adopt(sup_insts *is, struct inst *in) __attribute__((warn_unused_result));

/* Frees an instance that never ran. */
void inst_discard(struct inst *in);

/* Its pool slot or "instance" isolation, before its first boot. */
int inst_join_pool(struct inst *in, char *err, size_t errlen);

/* The instance thread's first step for a restarted instance: boots it from
 * its loaded snapshot and log (a quarantined one stays without a worker),
 * a few at a time. Returns 1 (the instance serves requests, quarantined or
 * not), 0 when moonpend stopped before its turn. */
int inst_restart_boot(struct inst *in);

/* Records a created instance (its pack version and row) in the store before
 * its create is answered. 0, or a negative errno with err filled. */
int inst_persist_create(struct inst *in, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The row of in for the store (labels point into in->create; *labels is
 * malloc'd: free it). 0 or -ENOMEM. */
int inst_store_row(const struct inst *in, int status, const char *reason, sst_instance *row,
		   sst_label **labels) __attribute__((warn_unused_result));

/* ---- history (inst_history.c: SnapshotInstance, RestoreInstance, Rollback,
 * ExportTrace; inst_incident.c: GetIncident; docs/recovery.md) ---- */

struct trace;

/* The last worker kill under an input (flight recorder): what the restore
 * used (snapshot, or the creation when snap is NULL), the log entries after
 * it, and the fatal input; or, once rendered (a store is open: it was
 * stored) or loaded from the store, only the trace text, which GetIncident
 * then answers as it is. Owned by the instance (only its thread). */
struct inst_incident {
	char *text; /* the rendered trace JSON (NUL-terminated), or NULL: the copies below */
	size_t text_len;
	uint8_t *snap; /* Init.snapshot (NULL: fresh Init) */
	size_t snap_len;
	uint8_t *init_out; /* the creation's Init outcome (packed Result), or NULL */
	size_t init_out_len;
	ilog_ent *ents; /* copies, with their outcomes */
	size_t n;
	uint64_t tick; /* the instance's tick before the fatal input */
	st_code code;
	char why[256];
};

/* Serve one request each (own j, answer it). */
void inst_serve_snapshot(struct inst *in, struct job *j);
void inst_serve_restore(struct inst *in, struct job *j);
void inst_serve_rollback(struct inst *in, struct job *j);
void inst_serve_trace(struct inst *in, struct job *j);
void inst_serve_incident(struct inst *in, struct job *j);

/* RestoreInstance of an id that is not live: checks the blob, then creates
 * the instance with create_first() (inst.c), whose first boot restores it.
 * Owns j (answers it). */
void inst_restore_new(sup_insts *is, struct job *j);

/* For serve_create: when the first job is a RestoreInstance, seeds the log
 * with its snapshot (the boot restores it). 0 or negative with err. */
int inst_seed_restore(struct inst *in, struct job *j, char *err, size_t errlen);

/* Stores the seeded snapshot of a restored instance once its row is stored. */
void inst_store_restored(struct inst *in);

/* A trace of in from a restore point: snap (NULL: the creation, with its
 * Init outcome init_out when known), then ents (inputs with their outcomes,
 * answers; the last input may be open). 0 and *out (trace_free), -ENOMEM or
 * -EINVAL (a logged input does not fit a trace). */
int inst_trace_build(const struct inst *in, const uint8_t *snap, size_t snap_len,
		     const uint8_t *init_out, size_t init_out_len, const ilog_ent *ents, size_t n,
		     struct trace **out) __attribute__((warn_unused_result));

/* Answers j OK with text (malloc'd trace JSON, taken) as Response.trace_json;
 * NULL text: INTERNAL "out of memory". */
void inst_answer_text(struct job *j, char *text);

/* Records the worker's death under tw (in->death_code, in->death) as the
 * instance's incident, before the restore, replacing the one before. With a
 * store, renders its trace and stores it (sst_put_incident; a failure is
 * logged, the incident still serves from memory). */
void inst_record_incident(struct inst *in, const Moonpen__Worker__V1__ToWorker *tw);

/* A restarted instance's incident from the store (l->incident, served as it
 * is until a newer kill replaces it); none when l has none. 0 or -ENOMEM. */
int inst_incident_load(struct inst *in, const sst_loaded *l) __attribute__((warn_unused_result));

/* Frees the incident of in (inst_free). */
void inst_incident_free(struct inst *in);

/* Boots a fresh worker from the newest snapshot (or the creation) and
 * replays the log since it, counting no restart (Rollback, RestoreInstance).
 * 0, or negative with err (the instance has no worker then). */
int inst_rebuild(struct inst *in, Moonpen__Worker__V1__FromWorker **init_reply, char *err,
		 size_t errlen);

/* Creates an instance for the CreateInstance req whose first job is `first`
 * (a RestoreInstance) instead of the create itself; answers rp on failure. */
void inst_create_first(sup_insts *is, Moonpen__V1__Request *req, Moonpen__V1__Request *first,
		       sup_reply *rp);

#endif
