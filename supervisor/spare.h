/*
 * spare — warm spare workers and the long-lived spawner thread. Runs in the
 * supervisor; trusts its configuration, and nothing a worker sends (each spare
 * is a wchan: its Hello was checked when it started).
 *
 * One thread keeps --spare-workers workers started and confined (Hello
 * received), waiting for an Init, so that creating or restoring an instance
 * does not wait for fork and exec; it replaces a spare that is handed out or
 * that died while it waited. The same thread spawns on request the workers
 * that must outlive the thread that asks for them (pool workers): a worker's
 * PR_SET_PDEATHSIG fires when the thread that spawned it ends.
 */
#ifndef MOONPEN_SUP_SPARE_H
#define MOONPEN_SUP_SPARE_H

#include <stddef.h>
#include <stdint.h>

#include "supervisor/sup.h"
#include "supervisor/wchan.h"

typedef struct sup_spares sup_spares;

/* Starts the spawner thread, which fills s->cfg.spare_workers spares (0: none)
 * in the background. 0 and *out, -ENOMEM, or -errno from pthread_create. */
int sup_spares_start(sup *s, sup_spares **out) __attribute__((warn_unused_result));

/* A confined worker waiting for its Init, whose address-space limit fits
 * mem_bytes (a Lua cap): a live warm spare when one fits (a replacement is then
 * started in the background), else a new one, spawned by the calling thread
 * when in_caller is set (it must outlive the worker), else by the spawner
 * thread (the call waits for it). 0 and *out (free with wchan_free), or a
 * negative code with err filled. */
int sup_spares_get(sup_spares *sp, uint64_t mem_bytes, int in_caller, wchan **out, char *err,
		   size_t errlen) __attribute__((warn_unused_result));

/* Live spares ready now (for tests and metrics). */
unsigned sup_spares_ready(sup_spares *sp);

/* Stops the thread, kills and reaps every spare, fails pending requests with
 * -ECANCELED, frees sp. Call after every worker it spawned on request is
 * freed. NULL is fine. */
void sup_spares_stop(sup_spares *sp);

#endif
