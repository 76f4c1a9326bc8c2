/*
 * inst_restart — instances and the durable store: the row a create records,
 * and the restart of every stored instance (docs/durability.md).
 * Runs in the supervisor; the store's rows were checked by store.c (types,
 * input continuity) but are read defensively again: a snapshot blob goes
 * through ilog's header check, every log entry is decoded with a size cap
 * before it reaches a worker, and a worker whose answer disagrees with the
 * stored snapshot quarantines the instance instead of serving it.
 */
#include "supervisor/inst_restart.h"

#include <errno.h>
#include <inttypes.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/wire.h"
#include "supervisor/inst_priv.h"

/* Restarted instances boot at most this many at a time: a thousand boots at
 * once would starve the main thread (the API would start seconds late) and
 * the spawner alike. Module-private; moonpend runs one supervisor. */
#define RESTART_PARALLEL 4
static sem_t boot_slots;

/* ---- what a create records ------------------------------------------------------------ */

int inst_store_row(const struct inst *in, int status, const char *reason, sst_instance *row,
		   sst_label **labels)
{
	const Moonpen__V1__CreateInstance *c = in->create->create;
	size_t i;

	*labels = calloc(c->n_labels ? c->n_labels : 1, sizeof **labels);
	if (*labels == NULL)
		return -ENOMEM;
	for (i = 0; i < c->n_labels; i++) {
		(*labels)[i].key = c->labels[i]->key;
		(*labels)[i].value = c->labels[i]->value;
	}
	memset(row, 0, sizeof *row);
	row->id = in->id;
	row->pack_id = in->pk->mf->id;
	row->pack_version = in->pk->mf->version; /* the bound version, never "newest" */
	row->seed = c->seed;
	row->tick_ms = in->tick_ms;
	row->labels = *labels;
	row->n_labels = c->n_labels;
	row->status = status;
	row->reason = reason;
	return 0;
}

int inst_persist_create(struct inst *in, char *err, size_t errlen)
{
	sst *st = in->is->s->store;
	const ilog_snap *sn;
	sst_label *labels = NULL;
	sst_instance row;
	int r = sst_note_pack(st, in->pk->mf->id, in->pk->mf->version, in->pk->hash);

	if (r == -EEXIST) /* replays of older instances may now diverge: say so, go on */
		log_warn("pack %s %s differs from the one first seen under this version",
			 in->pk->mf->id, in->pk->mf->version);
	if (r < 0 && r != -EEXIST)
		goto out;
	r = inst_store_row(in, MOONPEN__V1__INSTANCE_INFO__STATE__RUNNING, "", &row, &labels);
	if (r == 0) /* reset: nothing of an older instance of this id may survive */
		r = sst_put_instance(st, &row, SST_RESET_ALL);
	if (r == 0 && (sn = ilog_snap_newest(&in->ilog)) != NULL) /* created by a restore */
		r = sst_put_snapshot(st, in->id, in->logged, sn->tick, sn->hash, sn->data, sn->len);
out:
	free(labels);
	if (r < 0)
		snprintf(err, errlen, "the durable store could not record the instance: %s",
			 strerror(-r));
	return r;
}

/* ---- loading ------------------------------------------------------------------------------ */

struct restore_ctx {
	sup_insts *is;
	struct inst **list; /* read, started once the whole store is read */
	size_t n, cap;
	unsigned running, quarantined, skipped;
	char *err;
	size_t errlen;
};

int inst_create_req(const Moonpen__V1__CreateInstance *c, Moonpen__V1__Request **out)
{
	Moonpen__V1__Request q = MOONPEN__V1__REQUEST__INIT;
	ProtobufCMessage *m = NULL;
	size_t len;
	uint8_t *buf;
	int r;

	q.op_case = MOONPEN__V1__REQUEST__OP_CREATE;
	q.create = (Moonpen__V1__CreateInstance *)c;
	len = protobuf_c_message_get_packed_size(&q.base);
	if ((buf = malloc(len ? len : 1)) == NULL)
		return -ENOMEM;
	protobuf_c_message_pack(&q.base, buf);
	r = wire_unpack(&moonpen__v1__request__descriptor, buf, len, SIZE_MAX, &m);
	free(buf);
	if (r == 0)
		*out = (Moonpen__V1__Request *)m;
	return r;
}

/* The CreateInstance of a stored row, as a request the instance owns: built
 * on the stack, then packed and unpacked so that every part is malloc'd. */
static int create_of_row(const sst_instance *row, Moonpen__V1__Request **out)
{
	Moonpen__V1__CreateInstance__LabelsEntry *ents = NULL, **ptrs = NULL;
	Moonpen__V1__CreateInstance c = MOONPEN__V1__CREATE_INSTANCE__INIT;
	size_t i;
	int r = -ENOMEM;

	ents = calloc(row->n_labels + 1, sizeof *ents);
	ptrs = calloc(row->n_labels + 1, sizeof *ptrs);
	if (ents == NULL || ptrs == NULL)
		goto out;
	for (i = 0; i < row->n_labels; i++) {
		moonpen__v1__create_instance__labels_entry__init(&ents[i]);
		ents[i].key = (char *)row->labels[i].key;
		ents[i].value = (char *)row->labels[i].value;
		ptrs[i] = &ents[i];
	}
	c.instance_id = (char *)row->id;
	c.pack_id = (char *)row->pack_id;
	c.pack_version = (char *)row->pack_version;
	c.seed = row->seed;
	c.tick_ms = row->tick_ms;
	c.n_labels = row->n_labels;
	c.labels = ptrs;
	r = inst_create_req(&c, out);
out:
	free(ptrs);
	free(ents);
	return r;
}

/* Inputs the instance had applied when the snapshot blob was taken (its
 * header); 0 when it does not decode (ilog_snap_add refuses it then). */
static uint64_t snap_inputs(const uint8_t *blob, size_t len)
{
	ProtobufCMessage *m = NULL;
	uint64_t n;

	if (wire_unpack(&moonpen__worker__v1__snapshot__descriptor, blob, len,
			MP_SNAPSHOT_MAX_BYTES, &m) < 0)
		return 0;
	n = ((Moonpen__Worker__V1__Snapshot *)m)->inputs;
	protobuf_c_message_free_unpacked(m, NULL);
	return n;
}

/* Puts the older snapshots and the history (the inputs between them and the
 * newest snapshot) in the log, as they were before the restart, without
 * their outcomes (ilog_append_old). The ticks the inputs lead to must meet
 * each next snapshot's. 0, -ENOMEM, or -EBADMSG with why filled. */
static int fill_history(struct inst *in, const sst_loaded *l, char *why, size_t whylen)
{
	const sup_config *c = &in->is->s->cfg;
	size_t k, h = 0;
	int r = 0;

	for (k = 0; r == 0 && k < l->n_older; k++) {
		const sst_snapshot *s = &l->older[k], *next = k + 1 < l->n_older ? s + 1 : l->snap;
		uint64_t tick = s->tick;
		r = ilog_snap_add(&in->ilog, s->blob, s->len, in->id, snap_inputs(s->blob, s->len),
				  c->keep_snapshots, why, whylen);
		for (; r == 0 && h < l->n_history && l->history[h].index < next->input; h++)
			r = ilog_append_old(&in->ilog, l->history[h].data, l->history[h].len,
					    &tick);
		if (r == -EBADMSG && why[0] == '\0') /* h is past the failed one */
			snprintf(why, whylen, "stored input %" PRIu64 " does not decode",
				 l->history[h - 1].index);
		if (r == 0 && tick != next->tick) {
			snprintf(why, whylen,
				 "the stored inputs after the snapshot at tick %" PRIu64
				 " reach tick %" PRIu64 ", not the next snapshot's %" PRIu64,
				 s->tick, tick, next->tick);
			r = -EBADMSG;
		}
	}
	return r;
}

/* The older snapshots and history as the log's start; when they are not
 * consistent, they are left out with a warning (a Rollback then reaches
 * back to the newest snapshot only, as before they were kept). */
static int fill_older(struct inst *in, const sst_loaded *l)
{
	char why[300] = "";
	int r = fill_history(in, l, why, sizeof why);

	if (r == -EBADMSG) {
		log_warn("instance %s: older snapshots not restored: %s", in->id, why);
		ilog_reset(&in->ilog);
		r = 0;
	}
	return r;
}

/* Fills the instance's log from the loaded rows. 0, -ENOMEM, or -EBADMSG
 * with why filled (a snapshot that is not this instance's). */
static int fill_log(struct inst *in, const sst_loaded *l, char *why, size_t whylen)
{
	const sup_config *c = &in->is->s->cfg;
	size_t i;
	int r = 0;

	if (l->snap && (r = fill_older(in, l)) < 0)
		return r;
	if (l->snap) {
		r = ilog_snap_add(&in->ilog, l->snap->blob, l->snap->len, in->id,
				  snap_inputs(l->snap->blob, l->snap->len), c->keep_snapshots, why,
				  whylen);
		in->inputs = r == 0 ? ilog_snap_newest(&in->ilog)->input : 0;
		in->tick = l->snap->tick;
		memcpy(in->hash, l->snap->hash, sizeof in->hash);
	}
	for (i = 0; r == 0 && i < l->n_inputs; i++)
		r = ilog_append_raw(&in->ilog, l->inputs[i].data, l->inputs[i].len);
	in->replay_n = l->n_inputs;
	in->logged = (l->snap ? l->snap->input : 0) + l->n_inputs;
	for (i = 0; i < l->n_dead; i++) {
		const sst_dead_letter *d = &l->dead[i];
		ilog_dead dl = {.input = d->input, .tick = d->tick, .code = (st_code)d->code};
		snprintf(dl.kind, sizeof dl.kind, "%s", d->kind);
		snprintf(dl.name, sizeof dl.name, "%.127s", d->name);
		snprintf(dl.message, sizeof dl.message, "%.255s", d->message);
		ilog_dead_add(&in->ilog, &dl);
	}
	return r;
}

/* The pack of a row: its version, or (to hold a quarantined instance whose
 * version is gone) the newest of its id, with the reason in why. */
static const pack *row_pack(const sup_packs *ps, const sst_instance *row, char *why, size_t len)
{
	const pack *pk = sup_packs_find(ps, row->pack_id, row->pack_version, NULL);

	if (pk != NULL)
		return pk;
	snprintf(why, len, "pack %s %s is no longer installed", row->pack_id, row->pack_version);
	return sup_packs_find(ps, row->pack_id, NULL, NULL);
}

static int keep(struct restore_ctx *x, struct inst *in)
{
	if (x->n == x->cap) {
		size_t ncap = x->cap ? x->cap * 2 : 64;
		struct inst **nl = realloc(x->list, ncap * sizeof *nl);
		if (nl == NULL)
			return -ENOMEM;
		x->list = nl;
		x->cap = ncap;
	}
	x->list[x->n++] = in;
	return 0;
}

/* Starts every instance read (their boots run in parallel, in their threads,
 * after the read: a boot does not slow the read down). */
static int start_all(struct restore_ctx *x)
{
	size_t i;
	int r = 0;

	for (i = 0; i < x->n; i++) {
		if (r == 0 && (r = inst_adopt(x->is, x->list[i])) < 0)
			snprintf(x->err, x->errlen, "instance '%s': %s", x->list[i]->id,
				 strerror(-r));
		if (r < 0)
			inst_discard(x->list[i]);
	}
	return r;
}

/* The instance of one stored row, kept for start_all. */
static int restore_one(struct restore_ctx *x, const sst_loaded *l)
{
	const sst_instance *row = &l->inst;
	Moonpen__V1__Request *req = NULL;
	char why[300] = "";
	const pack *pk = row_pack(x->is->s->packs, row, why, sizeof why);
	struct inst *in;
	int r;

	if (pk == NULL) {
		log_error("instance %s not restored: %s (kept in the store)", row->id, why);
		x->skipped++;
		return 0;
	}
	if ((r = create_of_row(row, &req)) < 0)
		return r;
	if ((in = inst_alloc(x->is, req, pk)) == NULL) {
		protobuf_c_message_free_unpacked(&req->base, NULL);
		return -ENOMEM;
	}
	in->restarted = 1;
	r = fill_log(in, l, why[0] ? why + strlen(why) : why, sizeof why - strlen(why));
	if (r == -ENOMEM)
		goto fail;
	if ((r = inst_incident_load(in, l)) < 0) /* the flight recorder (inst_incident.c) */
		goto fail;
	if (row->status == MOONPEN__V1__INSTANCE_INFO__STATE__QUARANTINED && !why[0])
		snprintf(why, sizeof why, "%s", row->reason[0] ? row->reason : "quarantined");
	if (why[0]) { /* not written back: the row keeps what it said (a pack
		       * installed again brings the instance back at the next start) */
		in->state = MOONPEN__V1__INSTANCE_INFO__STATE__QUARANTINED;
		snprintf(in->reason, sizeof in->reason, "%.255s", why);
		log_warn("instance %s restored quarantined: %s", in->id, why);
		x->quarantined++;
	} else {
		x->running++;
	}
	if ((r = keep(x, in)) == 0)
		return 0;
fail:
	snprintf(x->err, x->errlen, "instance '%s': %s", row->id,
		 r == -ENOMEM ? "out of memory" : strerror(-r));
	inst_discard(in);
	return r;
}

static int restore_visit(void *ud, const sst_loaded *l)
{
	return restore_one(ud, l);
}

int sup_insts_restore_all(sup_insts *is, sst *st, char *err, size_t errlen)
{
	struct restore_ctx x = {.is = is, .err = err, .errlen = errlen};
	uint64_t t0 = inst_now_ms();
	int r;

	err[0] = '\0';
	if (sem_init(&boot_slots, 0, RESTART_PARALLEL) != 0) {
		snprintf(err, errlen, "sem_init: %s", strerror(errno));
		return -errno;
	}
	r = sst_load(st, restore_visit, &x, err, errlen);
	if (r < 0) {
		for (size_t i = 0; i < x.n; i++)
			inst_discard(x.list[i]);
	} else {
		r = start_all(&x);
	}
	free(x.list);
	if (r < 0 && err[0] == '\0')
		snprintf(err, errlen, "%s", strerror(-r));
	if (r == 0 && x.running + x.quarantined + x.skipped > 0)
		log_info("store: %u instances read in %" PRIu64
			 " ms (%u booting, %u quarantined, %u skipped)",
			 x.running + x.quarantined, inst_now_ms() - t0, x.running, x.quarantined,
			 x.skipped);
	return r;
}

/* ---- the first boot of a restarted instance (its own thread) ------------------------------- */

/* Tells the worker to drop the input whose query was pending when moonpend
 * stopped, and takes it (and its answers) out of the log and the store. */
static int drop_pending(struct inst *in, size_t from, char *err, size_t errlen)
{
	Moonpen__Worker__V1__ToWorker tw = MOONPEN__WORKER__V1__TO_WORKER__INIT;
	Moonpen__Worker__V1__Abort ab = MOONPEN__WORKER__V1__ABORT__INIT;
	Moonpen__Worker__V1__FromWorker *fw = NULL;
	int r;

	tw.op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_ABORT;
	tw.abort = &ab;
	r = inst_worker_rpc(in, &tw, inst_hard_ms(in, 1), &fw);
	if (r == 0 && fw->status->code != MOONPEN__V1__STATUS__CODE__OK)
		r = -EPROTO;
	if (fw)
		protobuf_c_message_free_unpacked(&fw->base, NULL);
	if (r < 0) {
		snprintf(err, errlen, "worker did not abort the pending input: %s",
			 r == -EPROTO ? "refused" : in->death);
		return r;
	}
	log_info("instance %s: input %zu waited on a query when moonpend stopped: discarded",
		 in->id, from);
	inst_log_truncate(in, in->ilog.n - from);
	return 0;
}

/* Replays one entry; *pending set when the worker waits on a query. */
static int replay_entry(struct inst *in, size_t i, int *pending, char *err, size_t errlen)
{
	Moonpen__Worker__V1__FromWorker *fw = NULL;
	int r = inst_replay_rpc(in, i, "stored input", &fw, err, errlen);

	if (r < 0)
		return r;
	*pending = fw->status->code == MOONPEN__V1__STATUS__CODE__PENDING;
	if (fw->status->code == MOONPEN__V1__STATUS__CODE__OK)
		inst_note_result(in, fw->result, 1);
	else if (!*pending)
		r = -EPROTO;
	if (r < 0)
		snprintf(err, errlen, "replay of stored input %zu failed: %.200s", i,
			 fw->status->message);
	protobuf_c_message_free_unpacked(&fw->base, NULL);
	return r;
}

struct raw {
	uint8_t *data;
	size_t len;
};

/* Takes the loaded entries (the log's last replay_n) out of the log, copied:
 * replay_loaded puts each back just before it replays it, so that its
 * outcome lands on it (inst_note_result records the newest input's), as when
 * it was first served. NULL when out of memory. */
static struct raw *take_tail(struct inst *in, size_t n)
{
	struct raw *t = calloc(n ? n : 1, sizeof *t);
	size_t i;

	for (i = 0; t && i < n; i++) {
		const ilog_ent *e = &in->ilog.ents[in->ilog.n - n + i];
		if ((t[i].data = malloc(e->len ? e->len : 1)) == NULL)
			break;
		memcpy(t[i].data, e->data, e->len);
		t[i].len = e->len;
	}
	if (t && i < n) {
		while (i-- > 0)
			free(t[i].data);
		free(t);
		return NULL;
	}
	pthread_mutex_lock(&in->mu);
	if (t)
		ilog_truncate(&in->ilog, n);
	pthread_mutex_unlock(&in->mu);
	return t;
}

/* Replays the loaded entries; an input still waiting on a query at the end
 * is dropped. */
static int replay_loaded(struct inst *in, char *err, size_t errlen)
{
	size_t n = in->replay_n, done = 0, i, pend = SIZE_MAX;
	struct raw *t = take_tail(in, n);
	int r = t ? 0 : -ENOMEM, pending = 0;

	while (r == 0 && done < n) {
		Moonpen__Worker__V1__ToWorker *tw = NULL;
		int is_answer = 0;
		pthread_mutex_lock(&in->mu);
		r = ilog_append_raw(&in->ilog, t[done].data, t[done].len);
		pthread_mutex_unlock(&in->mu);
		if (r < 0)
			break;
		done++;
		if (ilog_get(&in->ilog, in->ilog.n - 1, &tw) == 0) {
			is_answer = tw->op_case == MOONPEN__WORKER__V1__TO_WORKER__OP_HOST_RESULT;
			protobuf_c_message_free_unpacked(&tw->base, NULL);
		}
		r = replay_entry(in, in->ilog.n - 1, &pending, err, errlen);
		if (pending && !is_answer)
			pend = in->ilog.n - 1;
		if (!pending)
			pend = SIZE_MAX;
	}
	if (r == -ENOMEM)
		snprintf(err, errlen, "%s", "out of memory replaying the stored log");
	pthread_mutex_lock(&in->mu); /* a failed replay quarantines: keep the log whole */
	for (; t && r < 0 && done < n; done++)
		if (ilog_append_raw(&in->ilog, t[done].data, t[done].len) < 0)
			break;
	pthread_mutex_unlock(&in->mu);
	for (i = 0; t && i < n; i++)
		free(t[i].data);
	free(t);
	if (r == 0 && pend != SIZE_MAX)
		r = drop_pending(in, pend, err, errlen);
	return r;
}

/* Boots the worker with the stored snapshot and checks its answer against it. */
static int boot_checked(struct inst *in, char *err, size_t errlen)
{
	const ilog_snap *sn = ilog_snap_newest(&in->ilog);
	Moonpen__Worker__V1__FromWorker *fw = NULL;
	const Moonpen__V1__Result *res;
	int r;

	if ((r = inst_join_pool(in, err, errlen)) < 0 || (r = inst_boot(in, &fw, err, errlen)) < 0)
		return r;
	res = fw->result;
	if (fw->status->code != MOONPEN__V1__STATUS__CODE__OK) {
		snprintf(err, errlen, "init failed on restart: %.200s", fw->status->message);
		r = -EPROTO;
	} else if (sn && (res == NULL || res->tick != sn->tick || res->state_hash.len != 32 ||
			  memcmp(res->state_hash.data, sn->hash, 32) != 0)) {
		snprintf(err, errlen,
			 "the worker's state after restoring the stored snapshot "
			 "(tick %" PRIu64 ") differs from it",
			 sn->tick);
		r = -EPROTO;
	}
	if (r == 0)
		inst_note_result(in, res, 0);
	if (r == 0 && sn == NULL) { /* booted as created (on_init): a restore point */
		pthread_mutex_lock(&in->mu);
		if (ilog_set_create(&in->ilog, res) < 0)
			log_warn("instance %s: no memory to keep its creation for Rollback",
				 in->id);
		pthread_mutex_unlock(&in->mu);
	}
	protobuf_c_message_free_unpacked(&fw->base, NULL);
	return r;
}

int inst_restart_boot(struct inst *in)
{
	char err[512] = "";
	int quarantined, stopping, r;

	pthread_mutex_lock(&in->mu);
	quarantined = in->state == MOONPEN__V1__INSTANCE_INFO__STATE__QUARANTINED;
	pthread_mutex_unlock(&in->mu);
	if (quarantined)
		return 1; /* stays without a worker: answers QUARANTINED, can be closed */
	while (sem_wait(&boot_slots) != 0) /* EINTR only */
		;
	pthread_mutex_lock(&in->mu);
	stopping = in->stop;
	pthread_mutex_unlock(&in->mu);
	if (stopping) { /* shut down before its turn: no boot; the store keeps it */
		sem_post(&boot_slots);
		return 0;
	}
	r = boot_checked(in, err, sizeof err);
	if (r == 0)
		r = replay_loaded(in, err, sizeof err);
	sem_post(&boot_slots);
	if (r < 0) {
		inst_quarantine(in, err);
		return 1;
	}
	pthread_mutex_lock(&in->mu);
	in->state = MOONPEN__V1__INSTANCE_INFO__STATE__RUNNING;
	pthread_mutex_unlock(&in->mu);
	log_debug("instance %s restarted in worker %d (%zu stored inputs replayed)", in->id,
		  in->pid, in->replay_n);
	return 1;
}
