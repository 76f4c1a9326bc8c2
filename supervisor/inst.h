/*
 * inst — the instances of moonpend. Runs in the supervisor.
 *
 * Each instance has one worker (wchan), or a slot in a shared pool worker
 * (pool.h, packs with "isolation": "pool"), and one thread that serves its
 * request queue in arrival order (per-instance ordering); instances are served
 * concurrently. The instance keeps in-memory snapshots and the log of inputs
 * since the newest one so that, when its worker dies (watchdog, crash,
 * forbidden syscall), a fresh worker (a warm spare: spare.h) restores the
 * snapshot, the log is replayed without the failed input, and that input is
 * retried once, then dead-lettered (docs/recovery.md).
 */
#ifndef MOONPEN_SUP_INST_H
#define MOONPEN_SUP_INST_H

#include "moonpen.pb-c.h"
#include "supervisor/api.h"
#include "supervisor/sup.h"

typedef struct sup_insts sup_insts;

/* 0 and *out, or -ENOMEM. */
int sup_insts_new(sup *s, sup_insts **out) __attribute__((warn_unused_result));

/* Serve a checked request. Each takes ownership of req and answers through rp
 * (now or later, from the instance's thread). */
void sup_insts_create(sup_insts *is, Moonpen__V1__Request *req, sup_reply *rp);
void sup_insts_submit(sup_insts *is, Moonpen__V1__Request *req, sup_reply *rp);

/* Answer at once from the table (req stays the caller's). */
void sup_insts_info(sup_insts *is, const char *id, sup_reply *rp);
void sup_insts_list(sup_insts *is, sup_reply *rp);

/* Number of live instances. */
unsigned sup_insts_count(sup_insts *is);

/* Stops every instance: pending requests are answered UNAVAILABLE, workers
 * are killed and reaped, threads end. Blocks until all are gone, then frees. */
void sup_insts_shutdown(sup_insts *is);

#endif
