/*
 * pool — shared pool workers for packs whose manifest says "isolation":
 * "pool". Runs in the supervisor; every byte from a pool worker is hostile
 * (each RPC goes through wchan, which checks seq and slot).
 *
 * A pool worker hosts up to --pool-size instances, one slot each (ToWorker.slot).
 * The instance threads sharing it serialise their RPCs on it. When it dies,
 * its generation number moves on: the instance whose input killed it restores
 * its slot at once, and every other instance of that worker is told at once
 * (its lost callback), so that its own thread restores its slot (its snapshot,
 * then its log) on the fresh worker without waiting for a request; an RPC
 * still made with the stale generation gets -ESTALE (restore, then go on).
 * Instances of other pool workers, and per-instance workers, are untouched.
 */
#ifndef MOONPEN_SUP_POOL_H
#define MOONPEN_SUP_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/status.h"
#include "supervisor/spare.h"
#include "supervisor/sup.h"
#include "worker.pb-c.h"

typedef struct sup_pools sup_pools;
typedef struct sup_pool sup_pool;

/* 0 and *out, or -ENOMEM. Pool workers are spawned through sp (the spawner
 * thread outlives every instance thread). */
int sup_pools_new(sup *s, sup_spares *sp, sup_pools **out) __attribute__((warn_unused_result));

/* Told that the pool worker hosting a slot died under another slot's RPC:
 * arg as given to sup_pool_join, pid the dead worker's. Called by the thread
 * whose RPC saw the death, holding the pools' lock (ps->mu, taken before any
 * instance's lock): it must only take the instance's own lock and return. */
typedef void (*sup_pool_lost_fn)(void *arg, int pid);

/* Takes a free slot in a pool worker of pack_id, making a new pool (no worker
 * yet: the first Init starts it) when every pool of the pack is full. lost
 * (may be NULL) is called with arg whenever a worker the slot lives in dies
 * under another slot's RPC, until sup_pool_leave. 0 with *out and *slot, or
 * -ENOMEM. */
int sup_pool_join(sup_pools *ps, const char *pack_id, uint64_t mem_bytes, sup_pool_lost_fn lost,
		  void *arg, sup_pool **out, uint32_t *slot) __attribute__((warn_unused_result));

/* Nonzero when gen is not the pool's current worker generation (the worker the
 * slot was set up in has died since: restore the slot with an Init). */
int sup_pool_stale(sup_pool *p, uint64_t gen);

/* Sends Close to the slot's instance if it lives in the current worker (gen),
 * so that the slot can take an Init again (a restore that failed half-way). */
void sup_pool_close_slot(sup_pool *p, uint32_t slot, uint64_t gen);

/* Gives the slot back (its lost callback is not called any more once this
 * returns); when the slot's instance still lives in the current worker (gen),
 * it is sent Close first. The last instance to leave frees the pool and its
 * worker. */
void sup_pool_leave(sup_pools *ps, sup_pool *p, uint32_t slot, uint64_t gen);

/* One RPC on the pool worker, for the instance in m->slot. With init set (m is
 * an Init), a dead worker is replaced first and *gen takes the worker's
 * generation; otherwise *gen must be the current one, else -ESTALE (the worker
 * was replaced since: restore the slot with an Init). 0 and *out as wchan_rpc;
 * on a worker failure the worker is dropped (the generation moves on), code and
 * why (whylen bytes) say what happened, and the return is negative. */
int sup_pool_rpc(sup_pool *p, uint64_t *gen, int init, Moonpen__Worker__V1__ToWorker *m,
		 uint32_t timeout_ms, Moonpen__Worker__V1__FromWorker **out, st_code *code,
		 char *why, size_t whylen) __attribute__((warn_unused_result));

/* "pool:<pack>#<n>", the pool's name (lives as long as p). */
const char *sup_pool_name(const sup_pool *p);

/* The current worker's pid (0 when none), confinement layers and missing
 * layers, copied into the buffers. */
void sup_pool_worker(sup_pool *p, int *pid, char *layers, size_t llen, char *missing, size_t mlen);

/* Frees every pool (their workers are killed). Call once no instance uses one. */
void sup_pools_free(sup_pools *ps);

#endif
