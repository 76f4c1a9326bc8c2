/*
 * inst — instances, their request queues and their workers (runs in the
 * supervisor; requests were checked by api.c, worker replies by wchan.c).
 *
 * Locks: is->mu (the table) before in->mu (one instance). An instance is
 * found and its queue appended to only under is->mu, and it is removed from
 * the table under is->mu before its thread frees it: so no reference counts.
 */
#include "supervisor/inst.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/wire.h"
#include "policy/limits.h"
#include "supervisor/wchan.h"

#define NBUCKETS 1024

typedef Moonpen__V1__InstanceInfo__State inst_state;

struct job {
	struct job *next;
	Moonpen__V1__Request *req;
	sup_reply *rp;
};

struct logent {
	uint8_t *data; /* a packed ToWorker (event, tick or call) */
	size_t len;
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

	/* only the instance's thread touches these */
	wchan *w;
	uint64_t *restart_ms; /* when recent restarts happened (restart intensity) */
	size_t n_restart_ms;
	struct job *closing; /* the close request, answered after unlinking */
	Moonpen__V1__Response *closing_resp;
	struct logent *log;
	size_t nlog, caplog;
};

struct sup_insts {
	sup *s;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* signalled when a thread ends */
	struct inst *buckets[NBUCKETS];
	unsigned count, threads;
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

static int info_layers(Moonpen__V1__InstanceInfo *fo, const char *layers)
{
	char buf[512], *save = NULL, *tok;
	size_t n = 1;
	const char *p;

	for (p = layers; *p; p++)
		n += *p == ',';
	fo->layers = calloc(n, sizeof *fo->layers);
	if (fo->layers == NULL)
		return -ENOMEM;
	snprintf(buf, sizeof buf, "%s", layers);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		if ((fo->layers[fo->n_layers++] = strdup(tok)) == NULL)
			return -ENOMEM;
	return 0;
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
	    !fo->state_hash.data || info_labels(fo, c) < 0 || info_layers(fo, in->layers) < 0) {
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

/* Starts a worker for in and sends it Init. On success in->w is set and *fw
 * holds the worker's answer (its status may still be an error). */
static int boot(struct inst *in, Moonpen__Worker__V1__FromWorker **fw, char *err, size_t errlen)
{
	sup *s = in->is->s;
	wchan_opts o = {.worker_path = s->cfg.worker,
			.run_dir = s->cfg.run_dir,
			.id = atomic_fetch_add(&s->next_worker, 1),
			.mem_bytes = in->mem_bytes,
			.hello_timeout_ms = s->cfg.spawn_timeout_ms,
			.require = s->cfg.require_layers,
			.wrapper = s->cfg.worker_wrapper};
	Moonpen__Worker__V1__ToWorker tw = MOONPEN__WORKER__V1__TO_WORKER__INIT;
	Moonpen__Worker__V1__Init init;
	Moonpen__Worker__V1__Limits lim;
	const char *why;
	wchan *w;
	int r;

	r = wchan_start(&o, &w, err, errlen);
	if (r < 0)
		return r;
	set_init(in, &init, &lim);
	tw.op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_INIT;
	tw.init = &init;
	r = wchan_rpc(w, &tw, hard_ms(in, 1) + s->cfg.spawn_timeout_ms, fw);
	if (r < 0) {
		wchan_death(w, &why);
		snprintf(err, errlen, "%s", why);
		wchan_free(w);
		return r;
	}
	in->w = w;
	pthread_mutex_lock(&in->mu);
	in->pid = (int)wchan_pid(w);
	snprintf(in->layers, sizeof in->layers, "%s", wchan_layers(w));
	pthread_mutex_unlock(&in->mu);
	if (wchan_missing(w)[0])
		log_warn("instance %s: worker %d could not apply: %s", in->id, in->pid,
			 wchan_missing(w));
	return 0;
}

static int log_append(struct inst *in, Moonpen__Worker__V1__ToWorker *tw)
{
	struct logent e;

	if (in->nlog == in->caplog) {
		size_t ncap = in->caplog ? in->caplog * 2 : 64;
		struct logent *nl = realloc(in->log, ncap * sizeof *nl);
		if (nl == NULL)
			return -ENOMEM;
		in->log = nl;
		in->caplog = ncap;
	}
	tw->seq = 0;
	e.len = protobuf_c_message_get_packed_size(&tw->base);
	e.data = malloc(e.len ? e.len : 1);
	if (e.data == NULL)
		return -ENOMEM;
	protobuf_c_message_pack(&tw->base, e.data);
	in->log[in->nlog++] = e;
	return 0;
}

/* Replays the log into the freshly booted worker. 0, or negative (worker dead
 * or the replay diverged into an error). */
static int replay(struct inst *in, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < in->nlog; i++) {
		ProtobufCMessage *m = NULL;
		Moonpen__Worker__V1__FromWorker *fw = NULL;
		Moonpen__Worker__V1__ToWorker *tw;
		uint32_t scale = 1;
		int r = wire_unpack(&moonpen__worker__v1__to_worker__descriptor, in->log[i].data,
				    in->log[i].len, SIZE_MAX, &m);
		if (r < 0)
			return r;
		tw = (Moonpen__Worker__V1__ToWorker *)m;
		if (tw->op_case == MOONPEN__WORKER__V1__TO_WORKER__OP_TICK && tw->tick->count > 1)
			scale = tw->tick->count;
		r = wchan_rpc(in->w, tw, hard_ms(in, scale), &fw);
		protobuf_c_message_free_unpacked(m, NULL);
		if (r < 0) {
			snprintf(err, errlen, "worker died replaying input %zu", i);
			return r;
		}
		r = fw->status->code == MOONPEN__V1__STATUS__CODE__OK ? 0 : -EPROTO;
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
	snprintf(in->reason, sizeof in->reason, "%s", why);
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

/* The worker died: start another, replay the log. Quarantines on failure, and
 * when the instance restarts too often (restart intensity). */
static void restore(struct inst *in, const char *why)
{
	char err[512] = "";
	int attempt;

	wchan_free(in->w);
	in->w = NULL;
	if (too_many_restarts(in)) {
		snprintf(err, sizeof err, "more than %u worker restarts in %u s; last: %.300s",
			 in->is->s->cfg.restart_max, in->is->s->cfg.restart_window_ms / 1000, why);
		quarantine(in, err);
		return;
	}
	for (attempt = 0; attempt < MP_RESTORE_ATTEMPTS; attempt++) {
		Moonpen__Worker__V1__FromWorker *fw = NULL;
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
			log_info("instance %s restored in worker %d (%zu inputs replayed)", in->id,
				 in->pid, in->nlog);
			return;
		}
		wchan_free(in->w);
		in->w = NULL;
	}
	quarantine(in, err);
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

static void serve_input(struct inst *in, struct job *j)
{
	Moonpen__Worker__V1__ToWorker tw = MOONPEN__WORKER__V1__TO_WORKER__INIT;
	Moonpen__Worker__V1__FromWorker *fw = NULL;
	Moonpen__V1__Request *q = j->req;
	uint32_t scale = 1;
	const char *why;
	st_code code;
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
	r = wchan_rpc(in->w, &tw, hard_ms(in, scale), &fw);
	if (r == -ENOMEM)
		return job_fail(j, MOONPEN__V1__STATUS__CODE__INTERNAL, "%s", "out of memory");
	if (r < 0) {
		char msg[512];
		code = wchan_death(in->w, &why);
		snprintf(msg, sizeof msg, "%s", why);
		restore(in, msg);
		return job_fail(j, code, "%s", msg);
	}
	ok = fw->status->code == MOONPEN__V1__STATUS__CODE__OK;
	if (ok && log_append(in, &tw) < 0) {
		/* cannot log it, so cannot replay it: the input must not count */
		protobuf_c_message_free_unpacked(&fw->base, NULL);
		quarantine(in, "out of memory for the input log");
		return job_fail(j, MOONPEN__V1__STATUS__CODE__INTERNAL, "%s", "out of memory");
	}
	note_result(in, fw->result, ok);
	job_done(j, take_reply(fw));
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
		/* answered by finish(), once the id has left the table */
		in->closing = j;
		if (!quarantined && in->w && wchan_rpc(in->w, &tw, hard_ms(in, 1), &fw) == 0)
			in->closing_resp = take_reply(fw);
		else
			in->closing_resp = sup_resp_new(MOONPEN__V1__STATUS__CODE__OK, "%s",
							"closed (on_close not run)");
		return 0;
	}
	if (quarantined) {
		job_fail(j, MOONPEN__V1__STATUS__CODE__QUARANTINED, "quarantined: %s", reason);
		return 1;
	}
	if (op == MOONPEN__V1__REQUEST__OP_SNAPSHOT) {
		job_fail(j, MOONPEN__V1__STATUS__CODE__UNAVAILABLE, "%s",
			 "snapshot export is not available in this version");
		return 1;
	}
	serve_input(in, j);
	return 1;
}

/* Boots the instance and answers the create job. 1 when it is running. */
static int serve_create(struct inst *in, struct job *j)
{
	Moonpen__Worker__V1__FromWorker *fw = NULL;
	Moonpen__V1__Response *r;
	char err[512];
	int ok;

	if (boot(in, &fw, err, sizeof err) < 0) {
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
	size_t i;

	wchan_free(in->w);
	free(in->restart_ms);
	for (i = 0; i < in->nlog; i++)
		free(in->log[i].data);
	free(in->log);
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

	while (live && (j = pop(in)) != NULL)
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

void sup_insts_submit(sup_insts *is, Moonpen__V1__Request *req, sup_reply *rp)
{
	const char *id;
	struct inst *in;
	struct job *j = calloc(1, sizeof *j);

	switch (req->op_case) {
	case MOONPEN__V1__REQUEST__OP_EVENT:
		id = req->event->instance_id;
		break;
	case MOONPEN__V1__REQUEST__OP_TICK:
		id = req->tick->instance_id;
		break;
	case MOONPEN__V1__REQUEST__OP_CALL:
		id = req->call->instance_id;
		break;
	case MOONPEN__V1__REQUEST__OP_SNAPSHOT:
		id = req->snapshot->instance_id;
		break;
	default:
		id = req->close->instance_id;
		break;
	}
	if (j == NULL) {
		protobuf_c_message_free_unpacked(&req->base, NULL);
		return sup_api_fail(rp, MOONPEN__V1__STATUS__CODE__INTERNAL, "out of memory");
	}
	j->req = req;
	j->rp = rp;
	pthread_mutex_lock(&is->mu);
	in = find_locked(is, id);
	if (in)
		enqueue_locked(in, j);
	pthread_mutex_unlock(&is->mu);
	if (in == NULL)
		job_fail(j, MOONPEN__V1__STATUS__CODE__NOT_FOUND, "no instance '%s'", id);
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
	pthread_mutex_destroy(&is->mu);
	pthread_cond_destroy(&is->cv);
	free(is);
}
