/*
 * inst — instances, their request queues and their workers (runs in the
 * supervisor; requests were checked by api.c, worker replies by wchan.c).
 *
 * Locks: is->mu (the table) before in->mu (one instance). An instance is
 * found and its queue appended to only under is->mu, and it is removed from
 * the table under is->mu before its thread frees it: so no reference counts.
 * A pool worker's own lock (pool.c) is taken by an instance's thread for one
 * RPC, holding no other.
 */
#include "supervisor/inst.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/grants.h"
#include "common/log.h"
#include "common/wire.h"
#include "policy/limits.h"
#include "supervisor/ilog.h"
#include "supervisor/pool.h"
#include "supervisor/query.h"
#include "supervisor/ratelimit.h"
#include "supervisor/spare.h"
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

/* ---- table ---------------------------------------------------------------------- */

static unsigned bucket_of(const char *id)
{
	unsigned h = 2166136261u;

	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h % NBUCKETS;
}

static struct inst *find_locked(sup_insts *is, const char *id)
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

/* ---- InstanceInfo ------------------------------------------------------------------- */

static int info_labels(Moonpen__V1__InstanceInfo *fo, const Moonpen__V1__CreateInstance *c)
{
	size_t i;

	if (c->n_labels == 0)
		return 0;
	fo->labels = calloc(c->n_labels, sizeof *fo->labels);
	if (fo->labels == NULL)
		return -ENOMEM;
	for (i = 0; i < c->n_labels; i++) {
		Moonpen__V1__InstanceInfo__LabelsEntry *e = malloc(sizeof *e);
		if (e == NULL)
			return -ENOMEM;
		moonpen__v1__instance_info__labels_entry__init(e);
		fo->labels[fo->n_labels++] = e;
		e->key = strdup(c->labels[i]->key);
		e->value = strdup(c->labels[i]->value);
		if (!e->key || !e->value)
			return -ENOMEM;
	}
	return 0;
}

/* "a,b,c" into a repeated string field (*v, *n). */
static int info_list(char ***v, size_t *n, const char *list)
{
	char buf[512], *save = NULL, *tok;
	size_t cap = 1;
	const char *p;

	for (p = list; *p; p++)
		cap += *p == ',';
	*v = calloc(cap, sizeof **v);
	if (*v == NULL)
		return -ENOMEM;
	snprintf(buf, sizeof buf, "%s", list);
	for (tok = strtok_r(buf, ",", &save); tok && *n < cap; tok = strtok_r(NULL, ",", &save))
		if (((*v)[(*n)++] = strdup(tok)) == NULL)
			return -ENOMEM;
	return 0;
}

static int info_layers(Moonpen__V1__InstanceInfo *fo, const char *layers)
{
	return info_list(&fo->layers, &fo->n_layers, layers);
}

/* Snapshots, log, dead letters, isolation. Caller holds in->mu. */
static int info_recovery(Moonpen__V1__InstanceInfo *fo, const struct inst *in)
{
	const ilog_snap *sn = ilog_snap_newest(&in->ilog);

	fo->snapshot_tick = sn ? sn->tick : 0;
	fo->snapshot_input = sn ? sn->input : 0;
	fo->log_length = (uint32_t)in->ilog.n;
	fo->snapshots = (uint32_t)in->ilog.nsnaps;
	fo->isolation = strdup(in->isolation);
	if (fo->isolation == NULL ||
	    info_list(&fo->missing_layers, &fo->n_missing_layers, in->missing) < 0)
		return -ENOMEM;
	return ilog_dead_to_info(&in->ilog, fo);
}

/* Caller holds in->mu. NULL when out of memory. */
static Moonpen__V1__InstanceInfo *make_info(const struct inst *in)
{
	Moonpen__V1__InstanceInfo *fo = malloc(sizeof *fo);
	const Moonpen__V1__CreateInstance *c = in->create->create;

	if (fo == NULL)
		return NULL;
	moonpen__v1__instance_info__init(fo);
	fo->instance_id = strdup(in->id);
	fo->pack_id = strdup(in->pk->mf->id);
	fo->pack_version = strdup(in->pk->mf->version);
	fo->reason = strdup(in->reason);
	fo->state_hash.data = malloc(sizeof in->hash);
	if (!fo->instance_id || !fo->pack_id || !fo->pack_version || !fo->reason ||
	    !fo->state_hash.data || info_labels(fo, c) < 0 || info_layers(fo, in->layers) < 0 ||
	    info_recovery(fo, in) < 0) {
		protobuf_c_message_free_unpacked(&fo->base, NULL);
		return NULL;
	}
	memcpy(fo->state_hash.data, in->hash, sizeof in->hash);
	fo->state_hash.len = sizeof in->hash;
	fo->seed = c->seed;
	fo->tick_ms = in->tick_ms;
	fo->tick = in->tick;
	fo->state = in->state;
	fo->worker_pid = in->pid;
	fo->inputs = in->inputs;
	fo->restarts = in->restarts;
	return fo;
}

void sup_insts_info(sup_insts *is, const char *id, sup_reply *rp)
{
	Moonpen__V1__Response *r;
	struct inst *in;

	pthread_mutex_lock(&is->mu);
	in = find_locked(is, id);
	if (in == NULL) {
		pthread_mutex_unlock(&is->mu);
		return sup_api_fail(rp, MOONPEN__V1__STATUS__CODE__NOT_FOUND, "no instance '%s'",
				    id);
	}
	r = sup_resp_new(MOONPEN__V1__STATUS__CODE__OK, "%s", "");
	pthread_mutex_lock(&in->mu);
	if (r && (r->info = make_info(in)) == NULL) {
		protobuf_c_message_free_unpacked(&r->base, NULL);
		r = NULL;
	}
	pthread_mutex_unlock(&in->mu);
	pthread_mutex_unlock(&is->mu);
	sup_api_reply(rp, r);
}

void sup_insts_list(sup_insts *is, sup_reply *rp)
{
	Moonpen__V1__Response *r = sup_resp_new(MOONPEN__V1__STATUS__CODE__OK, "%s", "");
	struct inst *in;
	unsigned b;

	pthread_mutex_lock(&is->mu);
	if (r && (r->instances = calloc(is->count + 1, sizeof *r->instances)) == NULL) {
		protobuf_c_message_free_unpacked(&r->base, NULL);
		r = NULL;
	}
	for (b = 0; r && b < NBUCKETS; b++)
		for (in = is->buckets[b]; r && in; in = in->hnext) {
			pthread_mutex_lock(&in->mu);
			r->instances[r->n_instances] = make_info(in);
			pthread_mutex_unlock(&in->mu);
			if (r->instances[r->n_instances++] == NULL) {
				protobuf_c_message_free_unpacked(&r->base, NULL);
				r = NULL;
			}
		}
	pthread_mutex_unlock(&is->mu);
	sup_api_reply(rp, r);
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

/* The next job, or NULL when the instance must stop. */
static struct job *pop(struct inst *in)
{
	struct job *j = NULL;

	pthread_mutex_lock(&in->mu);
	while (in->head == NULL && !in->stop)
		pthread_cond_wait(&in->cv, &in->mu);
	if (!in->stop) {
		j = in->head;
		in->head = j->next;
		if (in->head == NULL)
			in->tail = NULL;
	}
	pthread_mutex_unlock(&in->mu);
	return j;
}

static void job_done(struct job *j, Moonpen__V1__Response *r)
{
	sup_api_reply(j->rp, r);
	if (j->req) /* NULL for a create job: the instance owns that request */
		protobuf_c_message_free_unpacked(&j->req->base, NULL);
	free(j);
}

static void job_fail(struct job *j, st_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void job_fail(struct job *j, st_code code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	job_done(j, sup_resp_new(code, "%s", msg));
}

/* ---- workers: boot, input log, restore ------------------------------------------------- */

static uint32_t hard_ms(const struct inst *in, uint32_t scale)
{
	uint64_t ms = (uint64_t)in->deadline_ms * scale * in->is->s->cfg.hard_factor;

	if (ms < MP_HARD_DEADLINE_FLOOR_MS)
		ms = MP_HARD_DEADLINE_FLOOR_MS;
	return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

static void set_init(const struct inst *in, Moonpen__Worker__V1__Init *init,
		     Moonpen__Worker__V1__Limits *lim)
{
	const Moonpen__V1__CreateInstance *c = in->create->create;
	const sup *s = in->is->s;

	moonpen__worker__v1__init__init(init);
	moonpen__worker__v1__limits__init(lim);
	lim->mem_bytes = in->mem_bytes;
	lim->deadline_ms = in->deadline_ms;
	lim->instructions = in->pk->mf->instructions;
	lim->max_effects = MP_MAX_EFFECTS;
	lim->max_logs = MP_MAX_LOGS;
	lim->max_value_depth = MP_MAX_VALUE_DEPTH;
	lim->max_emit_depth = MP_MAX_EMIT_DEPTH;
	init->instance_id = (char *)in->id;
	init->pack_id = in->pk->mf->id;
	init->pack_version = in->pk->mf->version;
	init->manifest_json.data = (uint8_t *)in->pk->manifest_json;
	init->manifest_json.len = in->pk->manifest_len;
	init->n_files = in->pk->n_files;
	init->files = in->pk->files;
	init->host_api_json.data = (uint8_t *)s->host_api;
	init->host_api_json.len = s->host_api_len;
	init->seed = c->seed;
	init->tick_ms = in->tick_ms;
	init->limits = lim;
	/* CreateInstance and Init label entries have the same layout (key, value) */
	init->n_labels = c->n_labels;
	init->labels = (Moonpen__Worker__V1__Init__LabelsEntry **)c->labels;
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
static int boot(struct inst *in, Moonpen__Worker__V1__FromWorker **fw, char *err, size_t errlen)
{
	Moonpen__Worker__V1__ToWorker tw = MOONPEN__WORKER__V1__TO_WORKER__INIT;
	uint32_t ms = hard_ms(in, 1) + in->is->s->cfg.spawn_timeout_ms;
	const ilog_snap *sn = ilog_snap_newest(&in->ilog);
	Moonpen__Worker__V1__Init init;
	Moonpen__Worker__V1__Limits lim;
	int r;

	set_init(in, &init, &lim);
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
static int worker_rpc(struct inst *in, Moonpen__Worker__V1__ToWorker *tw, uint32_t ms,
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
static int log_append(struct inst *in, Moonpen__Worker__V1__ToWorker *tw)
{
	int r;

	pthread_mutex_lock(&in->mu);
	r = ilog_append(&in->ilog, tw);
	pthread_mutex_unlock(&in->mu);
	return r;
}

static void log_truncate(struct inst *in, size_t n)
{
	pthread_mutex_lock(&in->mu);
	ilog_truncate(&in->ilog, n);
	pthread_mutex_unlock(&in->mu);
}

/* Replays the log since the newest snapshot into the freshly booted worker.
 * A PENDING answer is normal: that input waited on a query, and the next entry
 * is its host_result. 0, or negative (worker dead or the replay diverged). */
static int replay(struct inst *in, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < in->ilog.n; i++) {
		Moonpen__Worker__V1__FromWorker *fw = NULL;
		Moonpen__Worker__V1__ToWorker *tw = NULL;
		uint32_t scale = 1;
		st_code code;
		int r = ilog_get(&in->ilog, i, &tw);

		if (r < 0) {
			snprintf(err, errlen, "log entry %zu does not decode", i);
			return r;
		}
		if (tw->op_case == MOONPEN__WORKER__V1__TO_WORKER__OP_TICK && tw->tick->count > 1)
			scale = tw->tick->count;
		r = worker_rpc(in, tw, hard_ms(in, scale), &fw);
		protobuf_c_message_free_unpacked(&tw->base, NULL);
		if (r < 0) {
			snprintf(err, errlen, "worker died replaying input %zu: %s", i, in->death);
			return r;
		}
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

static void quarantine(struct inst *in, const char *why)
{
	pthread_mutex_lock(&in->mu);
	in->state = MOONPEN__V1__INSTANCE_INFO__STATE__QUARANTINED;
	snprintf(in->reason, sizeof in->reason, "%.255s", why);
	pthread_mutex_unlock(&in->mu);
	log_error("instance %s quarantined: %s", in->id, why);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Records a restart; nonzero when it is one too many for the window. */
static int too_many_restarts(struct inst *in)
{
	const sup_config *c = &in->is->s->cfg;
	uint64_t now = now_ms(), *v;
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

/* Boots a fresh worker (or pool slot) from the newest snapshot and replays the
 * log since it. 0; or -1 when every attempt failed: then it is quarantined. */
static int reboot(struct inst *in, const char *why)
{
	char err[512] = "";
	int attempt;

	drop_worker(in);
	for (attempt = 0; attempt < MP_RESTORE_ATTEMPTS; attempt++) {
		Moonpen__Worker__V1__FromWorker *fw = NULL;
		const ilog_snap *sn = ilog_snap_newest(&in->ilog);
		int ok;
		if (boot(in, &fw, err, sizeof err) < 0)
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
			log_info("instance %s restored in worker %d from %s %" PRIu64
				 " (%zu inputs replayed) after: %s",
				 in->id, in->pid,
				 sn ? "its snapshot at tick" : "its creation, tick",
				 sn ? sn->tick : 0, in->ilog.n, why);
			return 0;
		}
		drop_worker(in);
	}
	quarantine(in, err);
	return -1;
}

/* The worker died: start another, restore. Quarantines on failure, and when
 * the instance restarts too often (restart intensity). 0 when restored. */
static int restore(struct inst *in, const char *why)
{
	char err[512];

	drop_worker(in);
	if (too_many_restarts(in)) {
		snprintf(err, sizeof err, "more than %u worker restarts in %u s; last: %.300s",
			 in->is->s->cfg.restart_max, in->is->s->cfg.restart_window_ms / 1000, why);
		quarantine(in, err);
		return -1;
	}
	return reboot(in, why);
}

/* worker_rpc for an input: a slot whose pool worker was replaced under it
 * (a neighbour's input killed it) is restored first, without counting against
 * its own restart intensity, then the input goes to the fresh worker. */
static int input_rpc(struct inst *in, Moonpen__Worker__V1__ToWorker *tw, uint32_t ms,
		     Moonpen__Worker__V1__FromWorker **fw)
{
	int r = worker_rpc(in, tw, ms, fw);

	if (r != -ESTALE)
		return r;
	if (reboot(in, "its pool worker was replaced") < 0) {
		in->death_code = MOONPEN__V1__STATUS__CODE__QUARANTINED;
		snprintf(in->death, sizeof in->death, "%s", "restore on a new pool worker failed");
		return -EPIPE;
	}
	return worker_rpc(in, tw, ms, fw);
}

/* ---- serving ----------------------------------------------------------------------------- */

static void note_result(struct inst *in, const Moonpen__V1__Result *res, int applied)
{
	pthread_mutex_lock(&in->mu);
	if (res) {
		in->tick = res->tick;
		if (res->state_hash.len == sizeof in->hash)
			memcpy(in->hash, res->state_hash.data, sizeof in->hash);
	}
	in->inputs += applied;
	pthread_mutex_unlock(&in->mu);
}

/* Moves the worker's status and result into a new Response. */
static Moonpen__V1__Response *take_reply(Moonpen__Worker__V1__FromWorker *fw)
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

/* ---- snapshots and dead letters ------------------------------------------------------ */

/* Snapshots are taken only between inputs: never while an input waits on a
 * query (in->pending_call != 0), whose host results are still to come. */
static int snapshot_allowed(const struct inst *in)
{
	return in->pending_call == 0;
}

/* Asks the worker for a snapshot once snapshot_every inputs are logged, keeps
 * the newest keep_snapshots and empties the log (the snapshot covers it). A
 * worker that cannot snapshot is asked again snapshot_every inputs later. */
static void maybe_snapshot(struct inst *in)
{
	const sup_config *c = &in->is->s->cfg;
	Moonpen__Worker__V1__ToWorker tw = MOONPEN__WORKER__V1__TO_WORKER__INIT;
	Moonpen__Worker__V1__TakeSnapshot ts = MOONPEN__WORKER__V1__TAKE_SNAPSHOT__INIT;
	Moonpen__Worker__V1__FromWorker *fw = NULL;
	char err[256] = "";
	int r;

	if (in->ilog.n < in->snap_due || !snapshot_allowed(in))
		return;
	in->snap_due = in->ilog.n + c->snapshot_every; /* unless it works */
	tw.op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_SNAPSHOT;
	tw.snapshot = &ts;
	r = input_rpc(in, &tw, hard_ms(in, 1), &fw);
	if (r < 0) { /* the log is whole: nothing acknowledged is lost */
		if (r != -ENOMEM)
			restore(in, in->death);
		return;
	}
	if (fw->status->code != MOONPEN__V1__STATUS__CODE__OK) {
		snprintf(err, sizeof err, "%s", fw->status->message);
	} else {
		pthread_mutex_lock(&in->mu);
		r = ilog_snap_add(&in->ilog, fw->snapshot.data, fw->snapshot.len, in->id,
				  in->inputs, c->keep_snapshots, err, sizeof err);
		pthread_mutex_unlock(&in->mu);
		if (r == 0)
			in->snap_due = c->snapshot_every;
	}
	protobuf_c_message_free_unpacked(&fw->base, NULL);
	if (err[0])
		log_debug("instance %s: no snapshot: %s", in->id, err);
}

/* Records tw, which killed its worker MP_DEAD_LETTER_KILLS times: answered
 * with its status, never logged, so no replay ever sees it. */
static void dead_letter(struct inst *in, const Moonpen__Worker__V1__ToWorker *tw, st_code code,
			const char *msg)
{
	ilog_dead d = {.code = code};
	const char *kind = "tick", *name = "";

	if (tw->op_case == MOONPEN__WORKER__V1__TO_WORKER__OP_EVENT) {
		kind = "event";
		name = tw->event->name;
	} else if (tw->op_case == MOONPEN__WORKER__V1__TO_WORKER__OP_CALL) {
		kind = "call";
		name = tw->call->function;
	}
	snprintf(d.kind, sizeof d.kind, "%s", kind);
	snprintf(d.name, sizeof d.name, "%.127s", name);
	snprintf(d.message, sizeof d.message, "%.255s", msg);
	pthread_mutex_lock(&in->mu);
	d.input = in->inputs;
	d.tick = in->tick;
	ilog_dead_add(&in->ilog, &d);
	pthread_mutex_unlock(&in->mu);
	log_warn("instance %s: %s '%s' dead-lettered (input %" PRIu64 ", tick %" PRIu64 "): %s",
		 in->id, d.kind, d.name, d.input, d.tick, msg);
}

/* The worker died under a live input: restore, and send the input once more to
 * the restored worker (the death may not have been its fault); when it kills
 * MP_DEAD_LETTER_KILLS workers, restore again and dead-letter it. 0 with *fw
 * when a retry was answered; negative when j has been answered. */
static int retry_input(struct inst *in, struct job *j, Moonpen__Worker__V1__ToWorker *tw,
		       uint32_t ms, Moonpen__Worker__V1__FromWorker **fw)
{
	char msg[300];
	st_code code;
	int kills, r;

	for (kills = 1;; kills++) {
		code = in->death_code;
		snprintf(msg, sizeof msg, "%s", in->death);
		if (code == MOONPEN__V1__STATUS__CODE__QUARANTINED || restore(in, msg) < 0)
			break; /* quarantined: the input is answered with its status */
		if (kills >= MP_DEAD_LETTER_KILLS) {
			dead_letter(in, tw, code, msg);
			snprintf(msg + strlen(msg), sizeof msg - strlen(msg),
				 " (dead-lettered: it killed %d workers)", kills);
			break;
		}
		r = input_rpc(in, tw, ms, fw);
		if (r == 0)
			return 0;
		if (r == -ENOMEM) {
			job_fail(j, MOONPEN__V1__STATUS__CODE__INTERNAL, "%s", "out of memory");
			return r;
		}
	}
	job_fail(j, code, "%s", msg);
	return -EPIPE;
}

static void query_begin(struct inst *in, struct job *j, Moonpen__Worker__V1__ToWorker *tw,
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
	r = input_rpc(in, &tw, hard_ms(in, scale), &fw);
	if (r == -ENOMEM)
		return job_fail(j, MOONPEN__V1__STATUS__CODE__INTERNAL, "%s", "out of memory");
	if (r < 0 && retry_input(in, j, &tw, hard_ms(in, scale), &fw) < 0)
		return; /* answered: restored (dead-lettered) or quarantined */
	if (fw->status->code == MOONPEN__V1__STATUS__CODE__PENDING)
		return query_begin(in, j, &tw, fw); /* its script waits on a host query */
	ok = fw->status->code == MOONPEN__V1__STATUS__CODE__OK;
	if (ok && log_append(in, &tw) < 0) {
		/* cannot log it, so cannot replay it: the input must not count */
		protobuf_c_message_free_unpacked(&fw->base, NULL);
		quarantine(in, "out of memory for the input log");
		return job_fail(j, MOONPEN__V1__STATUS__CODE__INTERNAL, "%s", "out of memory");
	}
	note_result(in, fw->result, ok);
	job_done(j, take_reply(fw));
	maybe_snapshot(in);
}

/* ---- queries (H2, a.k.a. H4 above; rules in supervisor/query.h) ------------------------
 * An input whose script waits on a host query is answered PENDING and logged;
 * the thread then serves only HostResults and a close (next_job) until the
 * query is answered, fails, or expires. in->pending_call mirrors in->q.call_id
 * for the snapshot rule (snapshot_allowed). */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void query_set(struct inst *in)
{
	in->pending_call = in->q.call_id;
}

/* Drops the pending input and its host results from the log tail. */
static void query_unlog(struct inst *in)
{
	if (in->ilog.n > in->q.log_start)
		log_truncate(in, in->ilog.n - in->q.log_start);
}

/* Tells the worker to discard the pending input (its log entries are gone
 * already). A worker that dies or refuses is replaced from the log. */
static void query_send_abort(struct inst *in)
{
	Moonpen__Worker__V1__ToWorker tw = MOONPEN__WORKER__V1__TO_WORKER__INIT;
	Moonpen__Worker__V1__Abort ab = MOONPEN__WORKER__V1__ABORT__INIT;
	Moonpen__Worker__V1__FromWorker *fw = NULL;
	char why[300];
	int r;

	tw.op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_ABORT;
	tw.abort = &ab;
	r = input_rpc(in, &tw, hard_ms(in, 1), &fw);
	if (r == 0 && fw->status->code == MOONPEN__V1__STATUS__CODE__OK) {
		protobuf_c_message_free_unpacked(&fw->base, NULL);
		return;
	}
	if (r == 0)
		snprintf(why, sizeof why, "worker refused to abort a query: %.200s",
			 fw->status->message);
	else
		snprintf(why, sizeof why, "%s", r == -ENOMEM ? "out of memory" : in->death);
	if (fw)
		protobuf_c_message_free_unpacked(&fw->base, NULL);
	log_warn("instance %s: %s; restoring it", in->id, why);
	restore(in, why);
}

/* Discards the pending input: out of the log, aborted in the worker, its call
 * id remembered with code and msg for later answers. */
static void query_discard(struct inst *in, st_code code, const char *msg)
{
	query_unlog(in);
	sup_query_end(&in->q, code, msg);
	query_set(in);
	query_send_abort(in);
}

/* The worker broke the protocol with its PENDING reply: it is replaced
 * (restored from the log, without the input) and the input fails. */
static void query_broken(struct inst *in, struct job *j, const char *why)
{
	char msg[400];

	snprintf(msg, sizeof msg, "worker broke the protocol: %.300s", why);
	log_error("instance %s: %s", in->id, msg);
	query_unlog(in);
	sup_query_end(&in->q, MOONPEN__V1__STATUS__CODE__WORKER_CRASHED, msg);
	query_set(in);
	restore(in, msg);
	job_fail(j, MOONPEN__V1__STATUS__CODE__WORKER_CRASHED, "%s", msg);
}

/* The worker answered j's input (tw) PENDING on a query (fw): log the input,
 * answer PENDING with the query, wait for its HostResult. */
static void query_begin(struct inst *in, struct job *j, Moonpen__Worker__V1__ToWorker *tw,
			Moonpen__Worker__V1__FromWorker *fw)
{
	uint32_t timeout = in->is->s->cfg.query_timeout_ms;
	char err[256];

	if (sup_query_check_call(fw->host_call, err, sizeof err) < 0) {
		protobuf_c_message_free_unpacked(&fw->base, NULL);
		in->q.log_start = in->ilog.n;
		return query_broken(in, j, err);
	}
	sup_query_begin(&in->q, fw->host_call, in->ilog.n, now_ms(), timeout);
	query_set(in);
	if (log_append(in, tw) < 0) {
		protobuf_c_message_free_unpacked(&fw->base, NULL);
		query_discard(in, MOONPEN__V1__STATUS__CODE__INTERNAL, "out of memory");
		return job_fail(j, MOONPEN__V1__STATUS__CODE__INTERNAL, "%s", "out of memory");
	}
	job_done(j, sup_query_pending_reply(fw, timeout));
}

/* The worker died while resuming the input: the input is discarded, the
 * instance restored without it, and the HostResult answered with the death. */
static void query_died(struct inst *in, struct job *j)
{
	st_code code = in->death_code;
	char msg[600], why[300];

	snprintf(why, sizeof why, "%s", in->death);
	snprintf(msg, sizeof msg, "query %" PRIu64 " (%s): %.250s; the input was discarded",
		 in->q.call_id, in->q.what, why);
	query_unlog(in);
	sup_query_end(&in->q, code, msg);
	query_set(in);
	restore(in, why);
	job_fail(j, code, "%s", msg);
}

/* The input ended after its answers (fw): OK keeps it and its answers in the
 * log; an error (the input changed nothing) takes them out. */
static void query_final(struct inst *in, struct job *j, Moonpen__Worker__V1__ToWorker *tw,
			Moonpen__Worker__V1__FromWorker *fw)
{
	int ok = fw->status->code == MOONPEN__V1__STATUS__CODE__OK;

	if (!ok)
		query_unlog(in);
	if (ok && log_append(in, tw) < 0) {
		protobuf_c_message_free_unpacked(&fw->base, NULL);
		query_discard(in, MOONPEN__V1__STATUS__CODE__INTERNAL, "out of memory");
		return job_fail(j, MOONPEN__V1__STATUS__CODE__INTERNAL, "%s", "out of memory");
	}
	sup_query_end(&in->q, MOONPEN__V1__STATUS__CODE__OK, "");
	query_set(in);
	note_result(in, fw->result, ok);
	job_done(j, take_reply(fw));
	maybe_snapshot(in);
}

/* A HostResult (j) for the pending query: to the worker, whose reply answers
 * it (final, or PENDING on the next query). */
static void query_answer(struct inst *in, struct job *j)
{
	Moonpen__Worker__V1__ToWorker tw = MOONPEN__WORKER__V1__TO_WORKER__INIT;
	Moonpen__Worker__V1__FromWorker *fw = NULL;
	uint32_t timeout = in->is->s->cfg.query_timeout_ms;
	char err[256];
	int r;

	tw.op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_HOST_RESULT;
	tw.host_result = j->req->host_result;
	r = input_rpc(in, &tw, hard_ms(in, 1), &fw);
	if (r == -ENOMEM) /* the query stays pending: the game server may retry */
		return job_fail(j, MOONPEN__V1__STATUS__CODE__INTERNAL, "%s", "out of memory");
	if (r < 0)
		return query_died(in, j);
	if (fw->status->code != MOONPEN__V1__STATUS__CODE__PENDING)
		return query_final(in, j, &tw, fw);
	if (sup_query_check_call(fw->host_call, err, sizeof err) < 0) {
		protobuf_c_message_free_unpacked(&fw->base, NULL);
		return query_broken(in, j, err);
	}
	if (log_append(in, &tw) < 0) {
		protobuf_c_message_free_unpacked(&fw->base, NULL);
		query_discard(in, MOONPEN__V1__STATUS__CODE__INTERNAL, "out of memory");
		return job_fail(j, MOONPEN__V1__STATUS__CODE__INTERNAL, "%s", "out of memory");
	}
	sup_query_begin(&in->q, fw->host_call, in->q.log_start, now_ms(), timeout);
	query_set(in);
	job_done(j, sup_query_pending_reply(fw, timeout));
}

/* Any HostResult: the pending query's answer, or a clear refusal (a call id
 * that expired, failed, or was never asked). */
static void serve_host_result(struct inst *in, struct job *j)
{
	const Moonpen__V1__HostResult *h = j->req->host_result;
	char msg[400];
	st_code code;

	if (sup_query_match(&in->q, in->id, h->call_id, &code, msg, sizeof msg) < 0)
		return job_fail(j, code, "%s", msg);
	query_answer(in, j);
}

/* Past the deadline: the input is discarded, a late answer gets TIMEOUT. */
static void query_expire(struct inst *in)
{
	char msg[300];

	query_unlog(in);
	sup_query_timeout(&in->q, msg, sizeof msg);
	query_set(in);
	log_warn("instance %s: %s", in->id, msg);
	query_send_abort(in);
}

/* Before a close: a pending input is discarded (on_close sees no half input). */
static void query_abandon(struct inst *in)
{
	if (in->q.call_id != 0)
		query_discard(in, MOONPEN__V1__STATUS__CODE__NOT_FOUND,
			      "the instance was closed while the query was pending");
}

static int answers_query(const struct job *j)
{
	return j->req->op_case == MOONPEN__V1__REQUEST__OP_HOST_RESULT ||
	       j->req->op_case == MOONPEN__V1__REQUEST__OP_CLOSE;
}

/* While a query is pending: the first queued HostResult or close (the other
 * jobs keep their order). NULL when the instance must stop (*stop set) or the
 * deadline passed. */
static struct job *pop_answer(struct inst *in, uint64_t deadline_ms, int *stop)
{
	struct job *j = NULL, *prev, **pp;
	struct timespec ts;
	uint64_t now;

	pthread_mutex_lock(&in->mu);
	for (;;) {
		if ((*stop = in->stop) != 0)
			break;
		prev = NULL;
		for (pp = &in->head; *pp && !answers_query(*pp); pp = &(*pp)->next)
			prev = *pp;
		if (*pp) {
			j = *pp;
			*pp = j->next;
			if (in->tail == j)
				in->tail = prev;
			break;
		}
		if ((now = now_ms()) >= deadline_ms)
			break;
		clock_gettime(CLOCK_REALTIME, &ts); /* in->cv runs on the realtime clock */
		ts.tv_sec += (time_t)((deadline_ms - now) / 1000);
		ts.tv_nsec += (long)((deadline_ms - now) % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&in->cv, &in->mu, &ts);
	}
	pthread_mutex_unlock(&in->mu);
	return j;
}

/* The next job to serve (NULL: stop). While a query is pending, only its
 * answers and a close are taken; past its deadline the input is discarded. */
static struct job *next_job(struct inst *in)
{
	struct job *j;
	int stop;

	for (;;) {
		if (in->q.call_id == 0)
			return pop(in);
		j = pop_answer(in, in->q.deadline_ms, &stop);
		if (j != NULL || stop)
			return j;
		query_expire(in);
	}
}

/* ---- requests waiting for their implementation (H3 / lead: fill in) ----------------------
 * Each answers UNAVAILABLE until the snapshot machinery serves it. */

static void serve_rollback(struct inst *in, struct job *j)
{
	(void)in;
	job_fail(j, MOONPEN__V1__STATUS__CODE__UNAVAILABLE, "%s", "rollback: not implemented yet");
}

static void serve_restore(struct inst *in, struct job *j)
{
	(void)in;
	job_fail(j, MOONPEN__V1__STATUS__CODE__UNAVAILABLE, "%s", "restore: not implemented yet");
}

static void serve_trace(struct inst *in, struct job *j)
{
	(void)in;
	job_fail(j, MOONPEN__V1__STATUS__CODE__UNAVAILABLE, "%s", "trace: not implemented yet");
}

static void serve_incident(struct inst *in, struct job *j)
{
	(void)in;
	job_fail(j, MOONPEN__V1__STATUS__CODE__UNAVAILABLE, "%s", "incident: not implemented yet");
}

/* RestoreInstance for an id that is not live: creates the instance from the
 * snapshot. Owns j (answers it). */
static void restore_new_instance(sup_insts *is, struct job *j)
{
	(void)is;
	job_fail(j, MOONPEN__V1__STATUS__CODE__UNAVAILABLE, "%s",
		 "restore into a new instance: not implemented yet");
}

/* The requests of this round other than inputs; 1 when j was one (answered). */
static int serve_other(struct inst *in, struct job *j)
{
	switch (j->req->op_case) {
	case MOONPEN__V1__REQUEST__OP_HOST_RESULT:
		serve_host_result(in, j);
		return 1;
	case MOONPEN__V1__REQUEST__OP_ROLLBACK:
		serve_rollback(in, j);
		return 1;
	case MOONPEN__V1__REQUEST__OP_RESTORE:
		serve_restore(in, j);
		return 1;
	case MOONPEN__V1__REQUEST__OP_TRACE:
		serve_trace(in, j);
		return 1;
	case MOONPEN__V1__REQUEST__OP_INCIDENT:
		serve_incident(in, j);
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
		query_abandon(in);
		/* answered by finish(), once the id has left the table */
		in->closing = j;
		if (!quarantined && (in->w || in->slot_live) &&
		    worker_rpc(in, &tw, hard_ms(in, 1), &fw) == 0)
			in->closing_resp = take_reply(fw);
		else
			in->closing_resp = sup_resp_new(MOONPEN__V1__STATUS__CODE__OK, "%s",
							"closed (on_close not run)");
		in->slot_live = 0; /* closed, or gone with its worker */
		return 0;
	}
	if (quarantined) {
		job_fail(j, MOONPEN__V1__STATUS__CODE__QUARANTINED, "quarantined: %s", reason);
		return 1;
	}
	if (serve_other(in, j))
		return 1;
	if (op == MOONPEN__V1__REQUEST__OP_SNAPSHOT) {
		job_fail(j, MOONPEN__V1__STATUS__CODE__UNAVAILABLE, "%s",
			 "snapshot export is not available in this version");
		return 1;
	}
	serve_input(in, j);
	return 1;
}

/* A pack with "isolation": "pool" has its instances hosted in a slot of a
 * shared pool worker; any other has a worker of its own. */
static int join_pool(struct inst *in, char *err, size_t errlen)
{
	const char *iso = "instance";
	int r = 0;

	in->snap_due = in->is->s->cfg.snapshot_every;
	if (in->pk->mf->pool) {
		r = sup_pool_join(in->is->pools, in->pk->mf->id, in->mem_bytes, &in->pool,
				  &in->slot);
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

	if (join_pool(in, err, sizeof err) < 0 || boot(in, &fw, err, sizeof err) < 0) {
		job_fail(j, MOONPEN__V1__STATUS__CODE__UNAVAILABLE, "cannot start a worker: %s",
			 err);
		return 0;
	}
	ok = fw->status->code == MOONPEN__V1__STATUS__CODE__OK;
	pthread_mutex_lock(&in->mu);
	if (ok)
		in->state = MOONPEN__V1__INSTANCE_INFO__STATE__RUNNING;
	pthread_mutex_unlock(&in->mu);
	note_result(in, fw->result, 0);
	r = take_reply(fw);
	if (r && ok) {
		pthread_mutex_lock(&in->mu);
		r->info = make_info(in);
		pthread_mutex_unlock(&in->mu);
	}
	job_done(j, r);
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
	if (in->closing)
		job_done(in->closing, in->closing_resp);
	for (; j; j = next) {
		next = j->next;
		if (stopping)
			job_fail(j, MOONPEN__V1__STATUS__CODE__UNAVAILABLE, "%s",
				 "supervisor is shutting down");
		else
			job_fail(j, MOONPEN__V1__STATUS__CODE__NOT_FOUND,
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
	struct job *j = pop(in);
	int live = j ? serve_create(in, j) : 0;

	while (live && (j = next_job(in)) != NULL)
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
	in->mem_bytes = m->mem_bytes ? m->mem_bytes : c->mem_bytes;
	if (in->mem_bytes > MP_MAX_LUA_MEM_BYTES)
		in->mem_bytes = MP_MAX_LUA_MEM_BYTES;
	in->deadline_ms = m->deadline_ms ? m->deadline_ms : c->deadline_ms;
	if (in->deadline_ms > MP_MAX_DEADLINE_MS)
		in->deadline_ms = MP_MAX_DEADLINE_MS;
	in->tick_ms = req->create->tick_ms ? req->create->tick_ms
					   : (m->tick_ms ? m->tick_ms : MP_DEFAULT_TICK_MS);
	in->state = MOONPEN__V1__INSTANCE_INFO__STATE__STARTING;
	if (sup_rl_new(m, SUP_RL_MAX_PLAYERS, now_ns(), &in->rl) < 0) {
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

void sup_insts_create(sup_insts *is, Moonpen__V1__Request *req, sup_reply *rp)
{
	const Moonpen__V1__CreateInstance *c = req->create;
	const char *why = NULL;
	const pack *pk = sup_packs_find(is->s->packs, c->pack_id, c->pack_version, &why);
	struct job *j = NULL;
	struct inst *in = NULL;
	st_code code = MOONPEN__V1__STATUS__CODE__OK;
	char msg[600];

	pthread_mutex_lock(&is->mu);
	if (find_locked(is, c->instance_id)) {
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
		j->req = NULL; /* the create request is owned by the instance */
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
		r = sup_rl_admit(in->rl, now_ns(), q->event->name, who, msg, len);
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
	in = find_locked(is, id);
	if (in && (admitted = admit_locked(in, req, msg, sizeof msg)))
		enqueue_locked(in, j);
	pthread_mutex_unlock(&is->mu);
	if (in == NULL && req->op_case == MOONPEN__V1__REQUEST__OP_RESTORE)
		restore_new_instance(is, j);
	else if (in == NULL)
		job_fail(j, MOONPEN__V1__STATUS__CODE__NOT_FOUND, "no instance '%s'", id);
	else if (!admitted)
		job_fail(j, MOONPEN__V1__STATUS__CODE__RATE_LIMITED, "%s", msg);
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
