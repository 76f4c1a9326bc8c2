/*
 * inst_worker — an instance's worker: boot (a warm spare, its own or a pool
 * slot), RPCs, the input log, replay, restore, restart intensity, quarantine.
 * Runs in the supervisor; requests were checked by reqcheck.c, worker replies
 * by wchan.c. Locks and the split of the module: supervisor/inst_priv.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/grants.h"
#include "common/log.h"
#include "common/wire.h"
#include "supervisor/inst_priv.h"
#include "supervisor/winit.h"

/* ---- workers: boot, input log, restore ------------------------------------------------- */

uint32_t inst_hard_ms(const struct inst *in, uint32_t scale)
{
	return sup_hard_ms(in->deadline_ms, scale, in->is->s->cfg.hard_factor);
}

void inst_set_init(const struct inst *in, Moonpen__Worker__V1__Init *init,
		   Moonpen__Worker__V1__Limits *lim)
{
	const Moonpen__V1__CreateInstance *c = in->create->create;
	const sup *s = in->is->s;
	/* CreateInstance and Init label entries have the same layout (key, value) */
	sup_winit_opts o = {.instance_id = in->id,
			    .pk = in->pk,
			    .host_api = s->host_api,
			    .host_api_len = s->host_api_len,
			    .seed = c->seed,
			    .tick_ms = in->tick_ms,
			    .mem_bytes = in->mem_bytes,
			    .deadline_ms = in->deadline_ms,
			    .labels = (Moonpen__Worker__V1__Init__LabelsEntry **)c->labels,
			    .n_labels = c->n_labels};

	sup_winit_fill(&o, init, lim);
	lim->mem_bytes = in->mem_bytes; /* as the instance computed them */
	lim->deadline_ms = in->deadline_ms;
}

/* Notes its worker's pid and confinement layers for GetInstance. */
static void note_worker(struct inst *in)
{
	char layers[512], missing[512];
	int pid;

	if (in->pool) {
		sup_pool_worker(in->pool, &pid, layers, sizeof layers, missing, sizeof missing);
	} else {
		pid = (int)wchan_pid(in->w);
		snprintf(layers, sizeof layers, "%s", wchan_layers(in->w));
		snprintf(missing, sizeof missing, "%s", wchan_missing(in->w));
	}
	pthread_mutex_lock(&in->mu);
	in->pid = pid;
	snprintf(in->layers, sizeof in->layers, "%s", layers);
	snprintf(in->missing, sizeof in->missing, "%s", missing);
	pthread_mutex_unlock(&in->mu);
	if (missing[0])
		log_warn("instance %s: worker %d could not apply: %s", in->id, pid, missing);
}

/* Sends tw (an Init) to a worker of its own: a warm spare or a fresh one. */
static int boot_own(struct inst *in, Moonpen__Worker__V1__ToWorker *tw, uint32_t ms,
		    Moonpen__Worker__V1__FromWorker **fw, char *err, size_t errlen)
{
	const char *why;
	wchan *w = NULL;
	int r, attempt;

	/* a spare may die between its last check and the Init: then one more try */
	for (r = -EPIPE, attempt = 0; r == -EPIPE && attempt < 2; attempt++) {
		r = sup_spares_get(in->is->spares, in->mem_bytes, 1, &w, err, errlen);
		if (r < 0)
			return r;
		r = wchan_rpc(w, tw, ms, fw);
		if (r < 0) {
			wchan_death(w, &why);
			snprintf(err, errlen, "%s", why);
			wchan_free(w);
		}
	}
	if (r < 0)
		return r;
	in->w = w;
	note_worker(in);
	return 0;
}

/* Sends Init, with the newest snapshot if there is one (the worker restores it
 * instead of running on_init), to a worker for in: a warm spare or a fresh
 * worker, or its slot of a pool worker. On success *fw holds the worker's
 * answer (its status may still be an error). */
int inst_boot(struct inst *in, Moonpen__Worker__V1__FromWorker **fw, char *err, size_t errlen)
{
	Moonpen__Worker__V1__ToWorker tw = MOONPEN__WORKER__V1__TO_WORKER__INIT;
	uint32_t ms = inst_hard_ms(in, 1) + in->is->s->cfg.spawn_timeout_ms;
	const ilog_snap *sn = ilog_snap_newest(&in->ilog);
	Moonpen__Worker__V1__Init init;
	Moonpen__Worker__V1__Limits lim;
	int r;

	inst_set_init(in, &init, &lim);
	if (sn) {
		init.snapshot.data = sn->data;
		init.snapshot.len = sn->len;
	}
	tw.op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_INIT;
	tw.init = &init;
	tw.slot = in->slot;
	in->slot_live = 0;
	if (in->pool) {
		r = sup_pool_rpc(in->pool, &in->pgen, 1, &tw, ms, fw, &in->death_code, err, errlen);
		if (r < 0)
			return r;
		in->slot_live = (*fw)->status->code == MOONPEN__V1__STATUS__CODE__OK;
		note_worker(in);
		return 0;
	}
	return boot_own(in, &tw, ms, fw, err, errlen);
}

/* One RPC with the instance's worker: its own, or its slot of a pool worker.
 * Returns as wchan_rpc; after a worker failure in->death_code and in->death
 * say what happened. -ESTALE: its pool worker was replaced since its slot was
 * set up (another instance's input killed it): restore before going on.
 * H4: every RPC of an instance goes through here (or input_rpc). */
int inst_worker_rpc(struct inst *in, Moonpen__Worker__V1__ToWorker *tw, uint32_t ms,
		    Moonpen__Worker__V1__FromWorker **fw)
{
	const char *why;
	int r;

	tw->slot = in->slot;
	if (in->pool)
		return sup_pool_rpc(in->pool, &in->pgen, 0, tw, ms, fw, &in->death_code, in->death,
				    sizeof in->death);
	if (in->w == NULL) {
		in->death_code = MOONPEN__V1__STATUS__CODE__UNAVAILABLE;
		snprintf(in->death, sizeof in->death, "%s", "the instance has no worker");
		return -EPIPE;
	}
	r = wchan_rpc(in->w, tw, ms, fw);
	if (r < 0 && r != -ENOMEM) {
		in->death_code = wchan_death(in->w, &why);
		snprintf(in->death, sizeof in->death, "%s", why);
	}
	return r;
}

/* Lets the worker go: its own is killed; a pool slot that still holds the
 * instance is closed (the pool worker lives on for the others). */
static void drop_worker(struct inst *in)
{
	if (in->pool) {
		if (in->slot_live)
			sup_pool_close_slot(in->pool, in->slot, in->pgen);
		in->slot_live = 0;
		return;
	}
	wchan_free(in->w);
	in->w = NULL;
}

/* The input log (agreed with H4, whose query handling calls both): entries
 * are packed ToWorker messages of any op, in the order they were sent (an
 * event, tick or call, then each host_result that answered its queries).
 * log_append: 0 or -ENOMEM. log_truncate drops the last n entries (a query
 * timeout removes its input and host results). */
int inst_log_append(struct inst *in, Moonpen__Worker__V1__ToWorker *tw)
{
	const ilog_ent *e;
	int r;

	pthread_mutex_lock(&in->mu);
	r = ilog_append(&in->ilog, tw);
	pthread_mutex_unlock(&in->mu);
	if (r < 0)
		return r;
	/* durable before the caller answers; only this thread changes the log, so
	 * the entry stays put without the lock while the store commits it */
	e = &in->ilog.ents[in->ilog.n - 1];
	r = sst_append_input(in->is->s->store, in->id, in->logged, e->data, e->len);
	if (r == -EEXIST && sst_truncate(in->is->s->store, in->id, in->logged) == 0)
		/* a discarded tail the store kept (its truncate failed): gone now */
		r = sst_append_input(in->is->s->store, in->id, in->logged, e->data, e->len);
	if (r < 0) {
		log_error("instance %s: the store refused input %" PRIu64 ": %s", in->id,
			  in->logged, strerror(-r));
		pthread_mutex_lock(&in->mu);
		ilog_truncate(&in->ilog, 1);
		pthread_mutex_unlock(&in->mu);
		return r == -ENOMEM ? -EIO : r;
	}
	in->logged++;
	return 0;
}

void inst_log_failed(struct inst *in, struct job *j, int r)
{
	if (r == -ENOMEM) {
		inst_quarantine(in, "out of memory for the input log");
		return inst_job_fail(j, MOONPEN__V1__STATUS__CODE__INTERNAL, "%s", "out of memory");
	}
	inst_restore(in, "the durable store refused an input"); /* the worker applied it */
	inst_job_fail(j, MOONPEN__V1__STATUS__CODE__UNAVAILABLE,
		      "the durable store could not record the input (%s); it was not applied: "
		      "retry",
		      strerror(-r));
}

void inst_log_truncate(struct inst *in, size_t n)
{
	if (n > in->ilog.n)
		n = in->ilog.n;
	pthread_mutex_lock(&in->mu);
	ilog_truncate(&in->ilog, n);
	pthread_mutex_unlock(&in->mu);
	in->logged -= n;
	if (sst_truncate(in->is->s->store, in->id, in->logged) < 0)
		log_error("instance %s: the store kept %zu discarded inputs", in->id, n);
}

int inst_replay_rpc(struct inst *in, size_t i, const char *what,
		    Moonpen__Worker__V1__FromWorker **fw, char *err, size_t errlen)
{
	Moonpen__Worker__V1__ToWorker *tw = NULL;
	uint32_t scale = 1;
	int r = ilog_get(&in->ilog, i, &tw);

	*fw = NULL;
	if (r < 0) {
		snprintf(err, errlen, "%s %zu does not decode", what, i);
		return r;
	}
	if (tw->op_case == MOONPEN__WORKER__V1__TO_WORKER__OP_TICK && tw->tick->count > 1)
		scale = tw->tick->count;
	r = inst_worker_rpc(in, tw, inst_hard_ms(in, scale), fw);
	protobuf_c_message_free_unpacked(&tw->base, NULL);
	if (r < 0)
		snprintf(err, errlen, "worker died replaying %s %zu: %s", what, i, in->death);
	return r;
}

/* Replays the log since the newest snapshot into the freshly booted worker.
 * A PENDING answer is normal: that input waited on a query, and the next entry
 * is its host_result. 0, or negative (worker dead or the replay diverged). */
static int replay(struct inst *in, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < in->ilog.n; i++) {
		Moonpen__Worker__V1__FromWorker *fw = NULL;
		st_code code;
		int r = inst_replay_rpc(in, i, "input", &fw, err, errlen);

		if (r < 0)
			return r;
		code = fw->status->code;
		r = code == MOONPEN__V1__STATUS__CODE__OK ||
			    code == MOONPEN__V1__STATUS__CODE__PENDING
			? 0
			: -EPROTO;
		if (r < 0)
			snprintf(err, errlen, "replay of input %zu failed: %s", i,
				 fw->status->message);
		protobuf_c_message_free_unpacked(&fw->base, NULL);
		if (r < 0)
			return r;
	}
	return 0;
}

void inst_quarantine(struct inst *in, const char *why)
{
	pthread_mutex_lock(&in->mu);
	in->state = MOONPEN__V1__INSTANCE_INFO__STATE__QUARANTINED;
	snprintf(in->reason, sizeof in->reason, "%.255s", why);
	pthread_mutex_unlock(&in->mu);
	log_error("instance %s quarantined: %s", in->id, why);
	if (sst_set_status(in->is->s->store, in->id, MOONPEN__V1__INSTANCE_INFO__STATE__QUARANTINED,
			   why) < 0)
		log_error("instance %s: the store did not record its quarantine", in->id);
}

uint64_t inst_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Records a restart; nonzero when it is one too many for the window. */
static int too_many_restarts(struct inst *in)
{
	const sup_config *c = &in->is->s->cfg;
	uint64_t now = inst_now_ms(), *v;
	size_t i, n = 0;

	for (i = 0; i < in->n_restart_ms; i++) /* forget those outside the window */
		if (now - in->restart_ms[i] < c->restart_window_ms)
			in->restart_ms[n++] = in->restart_ms[i];
	in->n_restart_ms = n;
	if (n >= c->restart_max)
		return 1;
	v = realloc(in->restart_ms, (n + 1) * sizeof *v);
	if (v == NULL)
		return 1; /* cannot even count: do not loop */
	in->restart_ms = v;
	in->restart_ms[in->n_restart_ms++] = now;
	return 0;
}

/* The line of a restore that worked. dead_pid: the pool worker whose death
 * under a neighbour's input it repaired (structured fields name both), or 0. */
static void log_restored(struct inst *in, const ilog_snap *sn, const char *why, int dead_pid,
			 uint64_t t0)
{
	char id[6 * MP_MAX_ID_BYTES + 8], pool[6 * MP_MAX_ID_BYTES + 200];
	char fields[sizeof id + sizeof pool + 200];
	int pid;

	pthread_mutex_lock(&in->mu);
	pid = in->pid;
	pthread_mutex_unlock(&in->mu);
	if (dead_pid != 0) {
		snprintf(fields, sizeof fields,
			 "\"inst_id\":\"%s\",\"pool\":\"%s\",\"dead_worker\":%d,\"worker\":%d,"
			 "\"elapsed_ms\":%" PRIu64 ",\"cause\":\"pool_neighbour\"",
			 log_json_str(id, sizeof id, in->id),
			 log_json_str(pool, sizeof pool, sup_pool_name(in->pool)), dead_pid, pid,
			 inst_now_ms() - t0);
	}
	log_msg(LOG_INFO, dead_pid ? fields : NULL,
		"instance %s restored in worker %d from %s %" PRIu64
		" (%zu inputs replayed) after: %s",
		in->id, pid, sn ? "its snapshot at tick" : "its creation, tick", sn ? sn->tick : 0,
		in->ilog.n, why);
}

/* Boots a fresh worker (or pool slot) from the newest snapshot and replays the
 * log since it (dead_pid: log_restored). 0; or -1 when every attempt failed:
 * then it is quarantined. */
static int reboot(struct inst *in, const char *why, int dead_pid)
{
	uint64_t t0 = inst_now_ms();
	char err[512] = "";
	int attempt;

	drop_worker(in);
	for (attempt = 0; attempt < MP_RESTORE_ATTEMPTS; attempt++) {
		Moonpen__Worker__V1__FromWorker *fw = NULL;
		const ilog_snap *sn = ilog_snap_newest(&in->ilog);
		int ok;
		if (inst_boot(in, &fw, err, sizeof err) < 0)
			continue;
		ok = fw->status->code == MOONPEN__V1__STATUS__CODE__OK;
		if (!ok)
			snprintf(err, sizeof err, "init failed on restore: %s",
				 fw->status->message);
		protobuf_c_message_free_unpacked(&fw->base, NULL);
		if (ok && replay(in, err, sizeof err) == 0) {
			pthread_mutex_lock(&in->mu);
			in->restarts++;
			pthread_mutex_unlock(&in->mu);
			log_restored(in, sn, why, dead_pid, t0);
			return 0;
		}
		drop_worker(in);
	}
	inst_quarantine(in, err);
	return -1;
}

/* H3 (inst_priv.h): one attempt, no restart counted, no quarantine here. */
int inst_rebuild(struct inst *in, Moonpen__Worker__V1__FromWorker **init_reply, char *err,
		 size_t errlen)
{
	Moonpen__Worker__V1__FromWorker *fw = NULL;
	int r;

	drop_worker(in);
	if (inst_boot(in, &fw, err, errlen) < 0)
		return -EPIPE;
	if (fw->status->code != MOONPEN__V1__STATUS__CODE__OK) {
		snprintf(err, errlen, "the worker refused the snapshot: %s", fw->status->message);
		protobuf_c_message_free_unpacked(&fw->base, NULL);
		drop_worker(in);
		return -EINVAL;
	}
	r = replay(in, err, errlen);
	if (r < 0) {
		protobuf_c_message_free_unpacked(&fw->base, NULL);
		drop_worker(in);
		return r;
	}
	if (init_reply)
		*init_reply = fw;
	else
		protobuf_c_message_free_unpacked(&fw->base, NULL);
	return 0;
}

/* The worker died: start another, restore. Quarantines on failure, and when
 * the instance restarts too often (restart intensity). 0 when restored. */
int inst_restore(struct inst *in, const char *why)
{
	char err[512];

	drop_worker(in);
	if (too_many_restarts(in)) {
		snprintf(err, sizeof err, "more than %u worker restarts in %u s; last: %.300s",
			 in->is->s->cfg.restart_max, in->is->s->cfg.restart_window_ms / 1000, why);
		inst_quarantine(in, err);
		return -1;
	}
	return reboot(in, why, 0);
}

/* worker_rpc for an input: a slot whose pool worker was replaced under it
 * (a neighbour's input killed it) is restored first, without counting against
 * its own restart intensity, then the input goes to the fresh worker. */
int inst_input_rpc(struct inst *in, Moonpen__Worker__V1__ToWorker *tw, uint32_t ms,
		   Moonpen__Worker__V1__FromWorker **fw)
{
	int r = inst_worker_rpc(in, tw, ms, fw);

	if (r != -ESTALE)
		return r;
	if (reboot(in, "its pool worker was replaced", 0) < 0) {
		in->death_code = MOONPEN__V1__STATUS__CODE__QUARANTINED;
		snprintf(in->death, sizeof in->death, "%s", "restore on a new pool worker failed");
		return -EPIPE;
	}
	return inst_worker_rpc(in, tw, ms, fw);
}

/* ---- pool neighbours ---------------------------------------------------------------- */

void inst_pool_lost(void *arg, int pid)
{
	struct inst *in = arg;

	pthread_mutex_lock(&in->mu);
	in->pool_lost = pid != 0 ? pid : -1;
	if (in->pid == pid)
		in->pid = 0; /* GetInstance: no worker until its slot is restored */
	pthread_cond_signal(&in->cv);
	pthread_mutex_unlock(&in->mu);
}

int inst_pool_heal_due_locked(const struct inst *in)
{
	return in->pool_lost != 0;
}

/* Caller holds in->mu: a Close is queued (the close goes first: it needs no
 * restore, as with a request that finds its slot stale). */
static int close_queued_locked(const struct inst *in)
{
	const struct job *j;

	for (j = in->head; j; j = j->next)
		if (j->req && j->req->op_case == MOONPEN__V1__REQUEST__OP_CLOSE)
			return 1;
	return 0;
}

int inst_pool_heal(struct inst *in)
{
	char why[160];
	int pid, skip;

	pthread_mutex_lock(&in->mu);
	pid = in->pool_lost;
	in->pool_lost = 0;
	skip = in->stop || close_queued_locked(in) ||
	       in->state == MOONPEN__V1__INSTANCE_INFO__STATE__QUARANTINED;
	pthread_mutex_unlock(&in->mu);
	if (pid == 0)
		return 0;
	if (skip || in->pool == NULL || !in->slot_live || !sup_pool_stale(in->pool, in->pgen))
		return 1; /* nothing to do: stopping, closing, or restored already */
	snprintf(why, sizeof why, "its pool worker %d (%s) died under another instance's input",
		 pid, sup_pool_name(in->pool));
	reboot(in, why, pid); /* a failure quarantines it, as when a request finds it stale */
	return 1;
}
