/*
 * inst — instances: the table, request queues, serving, the instance threads
 * and the entry points of inst.h.
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

/* ---- table ---------------------------------------------------------------------- */

static unsigned bucket_of(const char *id)
{
	unsigned h = 2166136261u;

	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h % NBUCKETS;
}

struct inst *inst_find_locked(sup_insts *is, const char *id)
{
	struct inst *in;

	for (in = is->buckets[bucket_of(id)]; in; in = in->hnext)
		if (strcmp(in->id, id) == 0)
			return in;
	return NULL;
}

static void unlink_locked(sup_insts *is, struct inst *in)
{
	struct inst **pp = &is->buckets[bucket_of(in->id)];

	while (*pp && *pp != in)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = in->hnext;
	is->count--;
}

int sup_insts_new(sup *s, sup_insts **out)
{
	sup_insts *is = calloc(1, sizeof *is);

	if (is == NULL)
		return -ENOMEM;
	is->s = s;
	if (sup_spares_start(s, &is->spares) < 0) {
		free(is);
		return -ENOMEM;
	}
	if (sup_pools_new(s, is->spares, &is->pools) < 0) {
		sup_spares_stop(is->spares);
		free(is);
		return -ENOMEM;
	}
	pthread_mutex_init(&is->mu, NULL);
	pthread_cond_init(&is->cv, NULL);
	*out = is;
	return 0;
}

unsigned sup_insts_count(sup_insts *is)
{
	unsigned n;

	pthread_mutex_lock(&is->mu);
	n = is->count;
	pthread_mutex_unlock(&is->mu);
	return n;
}

/* ---- queue ------------------------------------------------------------------------------ */

static void enqueue_locked(struct inst *in, struct job *j)
{
	pthread_mutex_lock(&in->mu);
	if (in->tail)
		in->tail->next = j;
	else
		in->head = j;
	in->tail = j;
	pthread_cond_signal(&in->cv);
	pthread_mutex_unlock(&in->mu);
}

/* The next job, or NULL when the instance must stop. When its pool worker
 * died under a neighbour's input, its slot is restored first (inst_pool_heal),
 * idle or not: so no job is served on a slot whose restore is due. */
struct job *inst_pop(struct inst *in)
{
	struct job *j = NULL;
	int due;

	for (;;) {
		pthread_mutex_lock(&in->mu);
		while (!(due = inst_pool_heal_due_locked(in)) && in->head == NULL && !in->stop)
			pthread_cond_wait(&in->cv, &in->mu);
		if (in->stop || !due)
			break; /* with in->mu held */
		pthread_mutex_unlock(&in->mu);
		(void)inst_pool_heal(in);
	}
	if (!in->stop) { /* not due, not stopping: a job waits */
		j = in->head;
		in->head = j->next;
		if (in->head == NULL)
			in->tail = NULL;
	}
	pthread_mutex_unlock(&in->mu);
	return j;
}

void inst_job_done(struct job *j, Moonpen__V1__Response *r)
{
	sup_api_reply(j->rp, r);
	if (j->req) /* NULL for a create job: the instance owns that request */
		protobuf_c_message_free_unpacked(&j->req->base, NULL);
	free(j);
}

void inst_job_fail(struct job *j, st_code code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	inst_job_done(j, sup_resp_new(code, "%s", msg));
}

/* ---- serving ----------------------------------------------------------------------------- */

void inst_note_result(struct inst *in, const Moonpen__V1__Result *res, int applied)
{
	pthread_mutex_lock(&in->mu);
	/* the outcome of the input just logged, for ExportTrace (none: it starts later) */
	if (res && applied && ilog_set_outcome(&in->ilog, res, in->tick) < 0)
		log_debug("instance %s: outcome of input not kept", in->id);
	if (res) {
		in->tick = res->tick;
		if (res->state_hash.len == sizeof in->hash)
			memcpy(in->hash, res->state_hash.data, sizeof in->hash);
	}
	in->inputs += applied;
	pthread_mutex_unlock(&in->mu);
}

/* Moves the worker's status and result into a new Response. */
Moonpen__V1__Response *inst_take_reply(Moonpen__Worker__V1__FromWorker *fw)
{
	Moonpen__V1__Response *r = malloc(sizeof *r);

	if (r) {
		moonpen__v1__response__init(r);
		r->status = fw->status;
		r->result = fw->result;
		fw->status = NULL;
		fw->result = NULL;
	}
	protobuf_c_message_free_unpacked(&fw->base, NULL);
	return r;
}

void inst_query_begin(struct inst *in, struct job *j, Moonpen__Worker__V1__ToWorker *tw,
		      Moonpen__Worker__V1__FromWorker *fw);

static void serve_input(struct inst *in, struct job *j)
{
	Moonpen__Worker__V1__ToWorker tw = MOONPEN__WORKER__V1__TO_WORKER__INIT;
	Moonpen__Worker__V1__FromWorker *fw = NULL;
	Moonpen__V1__Request *q = j->req;
	uint32_t scale = 1;
	int r, ok;

	if (q->op_case == MOONPEN__V1__REQUEST__OP_EVENT) {
		tw.op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_EVENT;
		tw.event = q->event;
	} else if (q->op_case == MOONPEN__V1__REQUEST__OP_TICK) {
		tw.op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_TICK;
		tw.tick = q->tick;
		scale = q->tick->count > 1 ? q->tick->count : 1;
	} else {
		tw.op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_CALL;
		tw.call = q->call;
	}
	r = inst_input_rpc(in, &tw, inst_hard_ms(in, scale), &fw);
	if (r == -ENOMEM)
		return inst_job_fail(j, MOONPEN__V1__STATUS__CODE__INTERNAL, "%s", "out of memory");
	if (r < 0 && inst_retry_input(in, j, &tw, inst_hard_ms(in, scale), &fw) < 0)
		return; /* answered: restored (dead-lettered) or quarantined */
	if (fw->status->code == MOONPEN__V1__STATUS__CODE__PENDING)
		return inst_query_begin(in, j, &tw, fw); /* its script waits on a host query */
	ok = fw->status->code == MOONPEN__V1__STATUS__CODE__OK;
	if (ok && (r = inst_log_append(in, &tw)) < 0) {
		/* cannot log it, so cannot replay it: the input must not count */
		protobuf_c_message_free_unpacked(&fw->base, NULL);
		return inst_log_failed(in, j, r);
	}
	inst_note_result(in, fw->result, ok);
	inst_job_done(j, inst_take_reply(fw));
	inst_maybe_snapshot(in);
}

/* The requests of this round other than inputs; 1 when j was one (answered). */
static int serve_other(struct inst *in, struct job *j)
{
	switch (j->req->op_case) {
	case MOONPEN__V1__REQUEST__OP_HOST_RESULT:
		inst_serve_host_result(in, j);
		return 1;
	case MOONPEN__V1__REQUEST__OP_ROLLBACK: /* these five: inst_history.c, inst_incident.c */
		inst_serve_rollback(in, j);
		return 1;
	case MOONPEN__V1__REQUEST__OP_RESTORE:
		inst_serve_restore(in, j);
		return 1;
	case MOONPEN__V1__REQUEST__OP_TRACE:
		inst_serve_trace(in, j);
		return 1;
	case MOONPEN__V1__REQUEST__OP_INCIDENT:
		inst_serve_incident(in, j);
		return 1;
	case MOONPEN__V1__REQUEST__OP_SNAPSHOT:
		inst_serve_snapshot(in, j);
		return 1;
	default:
		return 0;
	}
}

/* 1: the instance goes on; 0: it has ended. */
static int serve(struct inst *in, struct job *j)
{
	Moonpen__V1__Request__OpCase op = j->req->op_case;
	char reason[256];
	int quarantined;

	pthread_mutex_lock(&in->mu);
	quarantined = in->state == MOONPEN__V1__INSTANCE_INFO__STATE__QUARANTINED;
	snprintf(reason, sizeof reason, "%s", in->reason);
	pthread_mutex_unlock(&in->mu);
	if (op == MOONPEN__V1__REQUEST__OP_CLOSE) {
		Moonpen__Worker__V1__ToWorker tw = MOONPEN__WORKER__V1__TO_WORKER__INIT;
		Moonpen__Worker__V1__Close cl = MOONPEN__WORKER__V1__CLOSE__INIT;
		Moonpen__Worker__V1__FromWorker *fw = NULL;
		tw.op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_CLOSE;
		tw.close = &cl;
		inst_query_abandon(in);
		/* answered by finish(), once the id has left the table */
		in->closing = j;
		if (!quarantined && (in->w || in->slot_live) &&
		    inst_worker_rpc(in, &tw, inst_hard_ms(in, 1), &fw) == 0)
			in->closing_resp = inst_take_reply(fw);
		else
			in->closing_resp = sup_resp_new(MOONPEN__V1__STATUS__CODE__OK, "%s",
							"closed (on_close not run)");
		in->slot_live = 0; /* closed, or gone with its worker */
		return 0;
	}
	/* a quarantined instance serves only Close, Restore and Rollback (which,
	 * when they succeed, lift the quarantine: inst_history.c) */
	if (quarantined && op != MOONPEN__V1__REQUEST__OP_RESTORE &&
	    op != MOONPEN__V1__REQUEST__OP_ROLLBACK) {
		inst_job_fail(j, MOONPEN__V1__STATUS__CODE__QUARANTINED, "quarantined: %s", reason);
		return 1;
	}
	if (serve_other(in, j))
		return 1;
	serve_input(in, j);
	return 1;
}

/* A pack with "isolation": "pool" has its instances hosted in a slot of a
 * shared pool worker; any other has a worker of its own. */
int inst_join_pool(struct inst *in, char *err, size_t errlen)
{
	const char *iso = "instance";
	int r = 0;

	in->snap_due = in->is->s->cfg.snapshot_every;
	if (in->pk->mf->pool) {
		r = sup_pool_join(in->is->pools, in->pk->mf->id, in->mem_bytes, inst_pool_lost, in,
				  &in->pool, &in->slot);
		if (r < 0)
			snprintf(err, errlen, "%s", "out of memory for a pool slot");
		else
			iso = sup_pool_name(in->pool);
	}
	pthread_mutex_lock(&in->mu);
	snprintf(in->isolation, sizeof in->isolation, "%s", iso);
	pthread_mutex_unlock(&in->mu);
	return r;
}

/* Boots the instance and answers the create job. 1 when it is running. */
static int serve_create(struct inst *in, struct job *j)
{
	Moonpen__Worker__V1__FromWorker *fw = NULL;
	Moonpen__V1__Response *r;
	char err[512];
	int ok;

	if (inst_join_pool(in, err, sizeof err) < 0 ||
	    inst_seed_restore(in, j, err, sizeof err) < 0 ||
	    inst_boot(in, &fw, err, sizeof err) < 0) {
		inst_job_fail(j, MOONPEN__V1__STATUS__CODE__UNAVAILABLE,
			      "cannot start a worker: %s", err);
		return 0;
	}
	ok = fw->status->code == MOONPEN__V1__STATUS__CODE__OK;
	pthread_mutex_lock(&in->mu);
	if (ok)
		in->state = MOONPEN__V1__INSTANCE_INFO__STATE__RUNNING;
	pthread_mutex_unlock(&in->mu);
	inst_note_result(in, fw->result, 0);
	if (ok && j->req == NULL && ilog_set_create(&in->ilog, fw->result) < 0)
		log_debug("instance %s: its creation is no restore point (out of memory)", in->id);
	r = inst_take_reply(fw);
	if (r && ok && inst_persist_create(in, err, sizeof err) < 0) { /* durable before answered */
		protobuf_c_message_free_unpacked(&r->base, NULL);
		inst_job_fail(j, MOONPEN__V1__STATUS__CODE__UNAVAILABLE, "%s", err);
		return 0;
	}
	if (r && ok && j->req != NULL)
		inst_store_restored(in); /* RestoreInstance into a free id */
	if (r && ok) {
		pthread_mutex_lock(&in->mu);
		r->info = inst_make_info(in);
		pthread_mutex_unlock(&in->mu);
	}
	inst_job_done(j, r);
	if (ok)
		log_info("instance %s created: pack %s %s, worker %d", in->id, in->pk->mf->id,
			 in->pk->mf->version, in->pid);
	return ok;
}

/* ---- the instance's thread ------------------------------------------------------------------ */

static void inst_free(struct inst *in)
{
	wchan_free(in->w);
	if (in->pool) /* closes its slot if it still holds the instance */
		sup_pool_leave(in->is->pools, in->pool, in->slot, in->slot_live ? in->pgen : 0);
	free(in->restart_ms);
	sup_rl_free(in->rl);
	ilog_free(&in->ilog);
	inst_incident_free(in);
	if (in->create)
		protobuf_c_message_free_unpacked(&in->create->base, NULL);
	pthread_mutex_destroy(&in->mu);
	pthread_cond_destroy(&in->cv);
	free(in);
}

static void finish(struct inst *in)
{
	sup_insts *is = in->is;
	struct job *j, *next;
	int stopping;

	pthread_mutex_lock(&is->mu);
	unlink_locked(is, in);
	pthread_mutex_lock(&in->mu);
	j = in->head;
	in->head = in->tail = NULL;
	stopping = in->stop;
	pthread_mutex_unlock(&in->mu);
	pthread_mutex_unlock(&is->mu);
	if (in->closing && sst_drop_instance(is->s->store, in->id) < 0)
		log_error("instance %s: closed, but the store still holds it", in->id);
	if (in->closing)
		inst_job_done(in->closing, in->closing_resp);
	for (; j; j = next) {
		next = j->next;
		if (stopping)
			inst_job_fail(j, MOONPEN__V1__STATUS__CODE__UNAVAILABLE, "%s",
				      "supervisor is shutting down");
		else
			inst_job_fail(j, MOONPEN__V1__STATUS__CODE__NOT_FOUND,
				      "instance '%s' was closed", in->id);
	}
	inst_free(in);
	pthread_mutex_lock(&is->mu);
	is->threads--;
	pthread_cond_broadcast(&is->cv);
	pthread_mutex_unlock(&is->mu);
}

static void *inst_main(void *arg)
{
	struct inst *in = arg;
	struct job *j = in->restarted ? NULL : inst_pop(in);
	int live = in->restarted ? inst_restart_boot(in) : j ? serve_create(in, j) : 0;

	while (live && (j = inst_next_job(in)) != NULL)
		live = serve(in, j);
	finish(in);
	return NULL;
}

/* ---- entry points ---------------------------------------------------------------------------- */

static struct inst *inst_new(sup_insts *is, Moonpen__V1__Request *req, const pack *pk)
{
	struct inst *in = calloc(1, sizeof *in);
	const mf_manifest *m = pk->mf;
	const sup_config *c = &is->s->cfg;

	if (in == NULL)
		return NULL;
	in->is = is;
	snprintf(in->id, sizeof in->id, "%s", req->create->instance_id);
	in->create = req;
	in->pk = pk;
	in->mem_bytes = sup_winit_mem_bytes(pk, c->mem_bytes);
	in->deadline_ms = sup_winit_deadline_ms(pk, c->deadline_ms);
	in->tick_ms = sup_winit_tick_ms(pk, req->create->tick_ms);
	in->state = MOONPEN__V1__INSTANCE_INFO__STATE__STARTING;
	if (sup_rl_new(m, SUP_RL_MAX_PLAYERS, inst_now_ns(), &in->rl) < 0) {
		free(in);
		return NULL;
	}
	pthread_mutex_init(&in->mu, NULL);
	pthread_cond_init(&in->cv, NULL);
	return in;
}

static int start_thread(struct inst *in)
{
	pthread_attr_t attr;
	pthread_t t;
	int r;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, MP_INST_THREAD_STACK);
	r = pthread_create(&t, &attr, inst_main, in);
	pthread_attr_destroy(&attr);
	return -r;
}

/* ---- restart from the store (inst_restart.c) ---------------------------------------------- */

struct inst *inst_alloc(sup_insts *is, Moonpen__V1__Request *req, const pack *pk)
{
	return inst_new(is, req, pk);
}

void inst_discard(struct inst *in)
{
	inst_free(in);
}

int inst_adopt(sup_insts *is, struct inst *in)
{
	int r = -EEXIST;

	pthread_mutex_lock(&is->mu);
	if (inst_find_locked(is, in->id) == NULL && (r = start_thread(in)) == 0) {
		in->hnext = is->buckets[bucket_of(in->id)];
		is->buckets[bucket_of(in->id)] = in;
		is->count++;
		is->threads++;
	}
	pthread_mutex_unlock(&is->mu);
	return r;
}

void sup_insts_create(sup_insts *is, Moonpen__V1__Request *req, sup_reply *rp)
{
	inst_create_first(is, req, NULL, rp);
}

void inst_create_first(sup_insts *is, Moonpen__V1__Request *req, Moonpen__V1__Request *first,
		       sup_reply *rp)
{
	const Moonpen__V1__CreateInstance *c = req->create;
	const char *why = NULL;
	const pack *pk = sup_packs_find(is->s->packs, c->pack_id, c->pack_version, &why);
	struct job *j = NULL;
	struct inst *in = NULL;
	st_code code = MOONPEN__V1__STATUS__CODE__OK;
	char msg[600];

	pthread_mutex_lock(&is->mu);
	if (inst_find_locked(is, c->instance_id)) {
		code = MOONPEN__V1__STATUS__CODE__ALREADY_EXISTS;
		snprintf(msg, sizeof msg, "instance '%s' already exists", c->instance_id);
	} else if (pk == NULL) {
		code = why ? MOONPEN__V1__STATUS__CODE__BAD_PACK
			   : MOONPEN__V1__STATUS__CODE__NOT_FOUND;
		snprintf(msg, sizeof msg, "pack '%s'%s%s %s%s", c->pack_id,
			 c->pack_version[0] ? " " : "", c->pack_version,
			 why ? "cannot be loaded: " : "not found", why ? why : "");
	} else if (grants_check(is->s->grants, pk->mf, msg, sizeof msg) < 0) {
		code = MOONPEN__V1__STATUS__CODE__PERMISSION_DENIED;
	} else if (is->count >= MP_MAX_INSTANCES) {
		code = MOONPEN__V1__STATUS__CODE__UNAVAILABLE;
		snprintf(msg, sizeof msg, "instance limit (%d) reached", MP_MAX_INSTANCES);
	} else if ((j = calloc(1, sizeof *j)) == NULL || (in = inst_new(is, req, pk)) == NULL) {
		code = MOONPEN__V1__STATUS__CODE__INTERNAL;
		snprintf(msg, sizeof msg, "out of memory");
	} else {
		j->req = first; /* NULL: the create request, owned by the instance */
		j->rp = rp;
		in->head = in->tail = j;
		if (start_thread(in) < 0) {
			code = MOONPEN__V1__STATUS__CODE__UNAVAILABLE;
			snprintf(msg, sizeof msg, "cannot start the instance thread");
			in->create = NULL;
			inst_free(in);
			in = NULL;
			j = NULL; /* freed below */
		} else {
			in->hnext = is->buckets[bucket_of(in->id)];
			is->buckets[bucket_of(in->id)] = in;
			is->count++;
			is->threads++;
		}
	}
	pthread_mutex_unlock(&is->mu);
	if (code != MOONPEN__V1__STATUS__CODE__OK) {
		free(j);
		protobuf_c_message_free_unpacked(&req->base, NULL);
		if (first)
			protobuf_c_message_free_unpacked(&first->base, NULL);
		sup_api_fail(rp, code, "%s", msg);
	}
}

/* The instance a queued request is for ("" for the ops that have none). */
static const char *req_instance_id(const Moonpen__V1__Request *q)
{
	switch (q->op_case) {
	case MOONPEN__V1__REQUEST__OP_EVENT:
		return q->event->instance_id;
	case MOONPEN__V1__REQUEST__OP_TICK:
		return q->tick->instance_id;
	case MOONPEN__V1__REQUEST__OP_CALL:
		return q->call->instance_id;
	case MOONPEN__V1__REQUEST__OP_SNAPSHOT:
		return q->snapshot->instance_id;
	case MOONPEN__V1__REQUEST__OP_CLOSE:
		return q->close->instance_id;
	case MOONPEN__V1__REQUEST__OP_HOST_RESULT:
		return q->host_result->instance_id;
	case MOONPEN__V1__REQUEST__OP_ROLLBACK:
		return q->rollback->instance_id;
	case MOONPEN__V1__REQUEST__OP_RESTORE:
		return q->restore->instance_id;
	case MOONPEN__V1__REQUEST__OP_TRACE:
		return q->trace->instance_id;
	case MOONPEN__V1__REQUEST__OP_INCIDENT:
		return q->incident->instance_id;
	default:
		return "";
	}
}

/* Rate limits (supervisor/ratelimit.h): events only, judged on arrival, so a
 * rejected event is never queued, logged or sent to the worker. Caller holds
 * is->mu. 1 when admitted; 0 with the reason in msg. */
static int admit_locked(struct inst *in, const Moonpen__V1__Request *q, char *msg, size_t len)
{
	char player[SUP_RL_KEY_MAX + 1];
	const char *who = NULL;
	int r = 0;

	if (q->op_case != MOONPEN__V1__REQUEST__OP_EVENT)
		return 1;
	pthread_mutex_lock(&in->mu);
	if (in->rl != NULL) {
		if (sup_rl_player(in->pk->mf->player_field, q->event->payload, player,
				  sizeof player))
			who = player;
		r = sup_rl_admit(in->rl, inst_now_ns(), q->event->name, who, msg, len);
	}
	pthread_mutex_unlock(&in->mu);
	return r == 0;
}

void sup_insts_submit(sup_insts *is, Moonpen__V1__Request *req, sup_reply *rp)
{
	const char *id = req_instance_id(req);
	struct job *j = calloc(1, sizeof *j);
	struct inst *in;
	char msg[300];
	int admitted = 1;

	if (j == NULL) {
		protobuf_c_message_free_unpacked(&req->base, NULL);
		return sup_api_fail(rp, MOONPEN__V1__STATUS__CODE__INTERNAL, "out of memory");
	}
	j->req = req;
	j->rp = rp;
	pthread_mutex_lock(&is->mu);
	in = inst_find_locked(is, id);
	if (in && (admitted = admit_locked(in, req, msg, sizeof msg)))
		enqueue_locked(in, j);
	pthread_mutex_unlock(&is->mu);
	if (in == NULL && req->op_case == MOONPEN__V1__REQUEST__OP_RESTORE)
		inst_restore_new(is, j);
	else if (in == NULL)
		inst_job_fail(j, MOONPEN__V1__STATUS__CODE__NOT_FOUND, "no instance '%s'", id);
	else if (!admitted)
		inst_job_fail(j, MOONPEN__V1__STATUS__CODE__RATE_LIMITED, "%s", msg);
}

void sup_insts_shutdown(sup_insts *is)
{
	struct inst *in;
	unsigned b;

	pthread_mutex_lock(&is->mu);
	for (b = 0; b < NBUCKETS; b++)
		for (in = is->buckets[b]; in; in = in->hnext) {
			pthread_mutex_lock(&in->mu);
			in->stop = 1;
			pthread_cond_signal(&in->cv);
			pthread_mutex_unlock(&in->mu);
		}
	while (is->threads > 0)
		pthread_cond_wait(&is->cv, &is->mu);
	pthread_mutex_unlock(&is->mu);
	sup_pools_free(is->pools);   /* empty by now: every instance left its pool */
	sup_spares_stop(is->spares); /* the spares die; no worker is left */
	pthread_mutex_destroy(&is->mu);
	pthread_cond_destroy(&is->cv);
	free(is);
}
