/*
 * inst_history — an instance's history requests: SnapshotInstance,
 * RestoreInstance, Rollback and ExportTrace, and the traces they share with
 * GetIncident (the flight recorder: inst_incident.c). Runs in the supervisor,
 * on the instance's thread (RestoreInstance of a free id: on the API thread,
 * until the instance exists). Requests were checked by reqcheck.c; a snapshot blob from a client
 * is hostile: its size, encoding, format, header and pack are checked here
 * before any worker sees it, and the worker checks its state hash again.
 * Rules: docs/recovery.md ("History"); the module split: inst_priv.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/trace.h"
#include "common/wire.h"
#include "policy/limits.h"
#include "supervisor/inst_priv.h"

typedef Moonpen__Worker__V1__Snapshot snap_hdr;

/* ---- snapshot blobs from clients --------------------------------------------------- */

/* Decodes and checks a client's snapshot blob; finds its pack. 0 with *h
 * (free it) and *pk; else the status code, with err. */
static st_code blob_check(const sup *s, const ProtobufCBinaryData *b, snap_hdr **h, const pack **pk,
			  char *err, size_t errlen)
{
	ProtobufCMessage *m = NULL;
	const char *why = NULL;

	if (b->len == 0 || b->len > MP_SNAPSHOT_MAX_BYTES) {
		snprintf(err, errlen, "snapshot must be 1-%u bytes, got %zu", MP_SNAPSHOT_MAX_BYTES,
			 b->len);
		return MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT;
	}
	if (wire_unpack(&moonpen__worker__v1__snapshot__descriptor, b->data, b->len,
			MP_SNAPSHOT_MAX_BYTES, &m) < 0) {
		snprintf(err, errlen, "snapshot of %zu bytes does not decode", b->len);
		return MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT;
	}
	*h = (snap_hdr *)m;
	if ((*h)->format != 1 || (*h)->state_hash.len != 32 || (*h)->pack_id[0] == '\0' ||
	    (*h)->pack_version[0] == '\0' || (*h)->tick_ms == 0) {
		snprintf(err, errlen,
			 "snapshot header refused (format %u, pack '%.64s' '%.32s', tick_ms %u, "
			 "hash of %zu bytes)",
			 (*h)->format, (*h)->pack_id, (*h)->pack_version, (*h)->tick_ms,
			 (*h)->state_hash.len);
		goto bad;
	}
	*pk = sup_packs_find(s->packs, (*h)->pack_id, (*h)->pack_version, &why);
	if (*pk == NULL) {
		snprintf(err, errlen, "snapshot is of pack %.64s %.32s, which %s%.200s",
			 (*h)->pack_id, (*h)->pack_version,
			 why ? "cannot be loaded: " : "is not installed", why ? why : "");
		protobuf_c_message_free_unpacked(m, NULL);
		return why ? MOONPEN__V1__STATUS__CODE__BAD_PACK
			   : MOONPEN__V1__STATUS__CODE__NOT_FOUND;
	}
	return MOONPEN__V1__STATUS__CODE__OK;
bad:
	protobuf_c_message_free_unpacked(m, NULL);
	return MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT;
}

/* The blob as a snapshot of instance id: the same bytes when it already is,
 * else re-encoded with the header's instance_id replaced (restoring a copy:
 * the worker checks the id; the state hash covers the state only).
 * 0 and *out / *len (malloc'd), or -ENOMEM. */
static int blob_rebind(snap_hdr *h, const ProtobufCBinaryData *b, const char *id, uint8_t **out,
		       size_t *len)
{
	char *orig = h->instance_id;

	if (strcmp(orig, id) == 0) {
		*len = b->len;
		if ((*out = malloc(b->len)) == NULL)
			return -ENOMEM;
		memcpy(*out, b->data, b->len);
		return 0;
	}
	h->instance_id = (char *)id;
	*len = protobuf_c_message_get_packed_size(&h->base);
	*out = malloc(*len ? *len : 1);
	if (*out)
		protobuf_c_message_pack(&h->base, *out);
	h->instance_id = orig;
	return *out ? 0 : -ENOMEM;
}

/* Stores the newest snapshot (covering in->logged entries), if any. */
static void store_newest(struct inst *in)
{
	const ilog_snap *sn = ilog_snap_newest(&in->ilog);

	if (sn && sst_put_snapshot(in->is->s->store, in->id, in->logged, sn->tick, sn->hash,
				   sn->data, sn->len) < 0)
		log_warn("instance %s: the store did not take its snapshot at tick %" PRIu64,
			 in->id, sn->tick);
}

/* Keeps blob as the instance's only restore point (its log must be empty). */
static int seed_blob(struct inst *in, snap_hdr *h, const ProtobufCBinaryData *b, char *err,
		     size_t errlen)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int r = blob_rebind(h, b, in->id, &data, &len);

	if (r < 0) {
		snprintf(err, errlen, "out of memory");
		return r;
	}
	pthread_mutex_lock(&in->mu);
	r = ilog_snap_add(&in->ilog, data, len, in->id, h->inputs, in->is->s->cfg.keep_snapshots,
			  err, errlen);
	if (r == 0) {
		in->inputs = h->inputs;
		in->create->create->seed = h->seed;
		in->tick_ms = h->tick_ms;
	}
	pthread_mutex_unlock(&in->mu);
	free(data);
	return r;
}

/* ---- RestoreInstance into a free id ---------------------------------------------------- */

/* A CreateInstance for the blob's pack, seed and tick length (decoded from
 * our own encoding: every member is malloc'd as the instance expects). */
static Moonpen__V1__Request *restore_create_req(const char *id, const snap_hdr *h)
{
	Moonpen__V1__CreateInstance c = MOONPEN__V1__CREATE_INSTANCE__INIT;
	Moonpen__V1__Request *q = NULL;

	c.instance_id = (char *)id;
	c.pack_id = h->pack_id;
	c.pack_version = h->pack_version;
	c.seed = h->seed;
	c.tick_ms = h->tick_ms;
	if (inst_create_req(&c, &q) < 0)
		return NULL;
	return q;
}

void inst_restore_new(sup_insts *is, struct job *j)
{
	const Moonpen__V1__RestoreInstance *rq = j->req->restore;
	Moonpen__V1__Request *create;
	const pack *pk = NULL;
	snap_hdr *h = NULL;
	char err[512];
	st_code code = blob_check(is->s, &rq->snapshot, &h, &pk, err, sizeof err);

	if (code != MOONPEN__V1__STATUS__CODE__OK)
		return inst_job_fail(j, code, "restore: %s", err);
	create = restore_create_req(rq->instance_id, h);
	protobuf_c_message_free_unpacked(&h->base, NULL);
	if (create == NULL)
		return inst_job_fail(j, MOONPEN__V1__STATUS__CODE__INTERNAL, "out of memory");
	/* the instance's first job is the restore: serve_create seeds it */
	inst_create_first(is, create, j->req, j->rp);
	free(j);
}

int inst_seed_restore(struct inst *in, struct job *j, char *err, size_t errlen)
{
	const pack *pk = NULL;
	snap_hdr *h = NULL;
	int r;

	if (j->req == NULL || j->req->op_case != MOONPEN__V1__REQUEST__OP_RESTORE)
		return 0;
	if (blob_check(in->is->s, &j->req->restore->snapshot, &h, &pk, err, errlen) != 0)
		return -EINVAL;
	r = seed_blob(in, h, &j->req->restore->snapshot, err, errlen);
	protobuf_c_message_free_unpacked(&h->base, NULL);
	return r;
}

/* After the row of a restored instance is stored (serve_create). */
void inst_store_restored(struct inst *in)
{
	store_newest(in);
}

/* ---- SnapshotInstance ---------------------------------------------------------------- */

void inst_serve_snapshot(struct inst *in, struct job *j)
{
	Moonpen__Worker__V1__ToWorker tw = MOONPEN__WORKER__V1__TO_WORKER__INIT;
	Moonpen__Worker__V1__TakeSnapshot ts = MOONPEN__WORKER__V1__TAKE_SNAPSHOT__INIT;
	Moonpen__Worker__V1__FromWorker *fw = NULL;
	Moonpen__V1__Response *r;
	char err[256] = "";
	int rc;

	if (in->pending_call != 0) /* its answers are still to come */
		return inst_job_fail(j, MOONPEN__V1__STATUS__CODE__UNAVAILABLE,
				     "an input is pending on query %" PRIu64 ": snapshot after it",
				     in->pending_call);
	tw.op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_SNAPSHOT;
	tw.snapshot = &ts;
	rc = inst_input_rpc(in, &tw, inst_hard_ms(in, 1), &fw);
	if (rc == -ENOMEM)
		return inst_job_fail(j, MOONPEN__V1__STATUS__CODE__INTERNAL, "out of memory");
	if (rc < 0) {
		snprintf(err, sizeof err, "%s", in->death);
		inst_restore(in, err);
		return inst_job_fail(j, MOONPEN__V1__STATUS__CODE__UNAVAILABLE,
				     "the worker died taking the snapshot (%s); retry", err);
	}
	if (fw->status->code != MOONPEN__V1__STATUS__CODE__OK) {
		snprintf(err, sizeof err, "the worker refused the snapshot: %s",
			 fw->status->message);
	} else {
		pthread_mutex_lock(&in->mu);
		rc = ilog_snap_add(&in->ilog, fw->snapshot.data, fw->snapshot.len, in->id,
				   in->inputs, in->is->s->cfg.keep_snapshots, err, sizeof err);
		pthread_mutex_unlock(&in->mu);
		if (rc == 0) {
			in->snap_due = in->is->s->cfg.snapshot_every;
			store_newest(in);
		}
	}
	if (err[0]) {
		protobuf_c_message_free_unpacked(&fw->base, NULL);
		return inst_job_fail(j, MOONPEN__V1__STATUS__CODE__INTERNAL, "%s", err);
	}
	if ((r = sup_resp_new(MOONPEN__V1__STATUS__CODE__OK, "%s", "")) != NULL) {
		r->snapshot = fw->snapshot; /* moved */
		fw->snapshot.data = NULL;
		fw->snapshot.len = 0;
	}
	protobuf_c_message_free_unpacked(&fw->base, NULL);
	inst_job_done(j, r);
}

/* ---- RestoreInstance over a live instance, Rollback ------------------------------------ */

/* Answers j OK with the instance's tick and state hash and its info. */
/* A successful Restore or Rollback is the operator's way out of quarantine
 * (the other is Close): the instance runs again with a clean restart history. */
static void lift_quarantine(struct inst *in)
{
	int was;

	pthread_mutex_lock(&in->mu);
	was = in->state == MOONPEN__V1__INSTANCE_INFO__STATE__QUARANTINED;
	if (was) {
		in->state = MOONPEN__V1__INSTANCE_INFO__STATE__RUNNING;
		in->reason[0] = '\0';
	}
	pthread_mutex_unlock(&in->mu);
	if (!was)
		return;
	in->n_restart_ms = 0;
	log_info("instance %s: quarantine lifted by the operator", in->id);
	if (sst_set_status(in->is->s->store, in->id, MOONPEN__V1__INSTANCE_INFO__STATE__RUNNING,
			   "") < 0)
		log_error("instance %s: the store did not record the end of its quarantine",
			  in->id);
}

/* Answers a successful Restore or Rollback with the instance's tick and hash. */
static void answer_state(struct inst *in, struct job *j)
{
	Moonpen__V1__Response *r = sup_resp_new(MOONPEN__V1__STATUS__CODE__OK, "%s", "");
	Moonpen__V1__Result *res = malloc(sizeof *res);
	uint8_t *hash = malloc(32);

	lift_quarantine(in);
	if (r == NULL || res == NULL || hash == NULL) {
		free(res);
		free(hash);
		if (r)
			protobuf_c_message_free_unpacked(&r->base, NULL);
		return inst_job_fail(j, MOONPEN__V1__STATUS__CODE__INTERNAL, "out of memory");
	}
	moonpen__v1__result__init(res);
	pthread_mutex_lock(&in->mu);
	res->tick = in->tick;
	memcpy(hash, in->hash, 32);
	r->info = inst_make_info(in);
	pthread_mutex_unlock(&in->mu);
	res->state_hash.data = hash;
	res->state_hash.len = 32;
	r->result = res;
	inst_job_done(j, r);
}

/* The durable store follows a reset to one snapshot (RestoreInstance). */
static void store_reset(struct inst *in)
{
	sst_label *labels = NULL;
	sst_instance row;

	if (in->is->s->store == NULL)
		return;
	if (inst_store_row(in, MOONPEN__V1__INSTANCE_INFO__STATE__RUNNING, NULL, &row, &labels) <
		0 ||
	    sst_put_instance(in->is->s->store, &row, SST_RESET_LOG) < 0) /* keeps the incident */
		log_warn("instance %s: the store did not take its reset", in->id);
	else
		store_newest(in);
	free(labels);
}

/* Swaps the log for an empty one that keeps the dead letters. */
static void log_swap_out(struct inst *in, ilog *old)
{
	pthread_mutex_lock(&in->mu);
	*old = in->ilog;
	memset(&in->ilog, 0, sizeof in->ilog);
	memcpy(in->ilog.dead, old->dead, sizeof old->dead);
	in->ilog.ndead = old->ndead;
	pthread_mutex_unlock(&in->mu);
}

/* The restore failed: back to the old log and settings, and a worker for
 * them (quarantined when that fails too). */
static void restore_back(struct inst *in, ilog *old, uint64_t seed, uint32_t tick_ms,
			 uint64_t inputs)
{
	char err[512];

	pthread_mutex_lock(&in->mu);
	ilog_free(&in->ilog);
	in->ilog = *old;
	in->create->create->seed = seed;
	in->tick_ms = tick_ms;
	in->inputs = inputs;
	pthread_mutex_unlock(&in->mu);
	if (inst_rebuild(in, NULL, err, sizeof err) < 0)
		inst_quarantine(in, err);
}

void inst_serve_restore(struct inst *in, struct job *j)
{
	const ProtobufCBinaryData *b = &j->req->restore->snapshot;
	uint64_t seed = in->create->create->seed, inputs = in->inputs;
	uint32_t tick_ms = in->tick_ms;
	Moonpen__Worker__V1__FromWorker *fw = NULL;
	const pack *pk = NULL;
	snap_hdr *h = NULL;
	char err[512];
	st_code code = blob_check(in->is->s, b, &h, &pk, err, sizeof err);
	ilog old;

	if (code != MOONPEN__V1__STATUS__CODE__OK)
		return inst_job_fail(j, code, "restore: %s", err);
	if (pk != in->pk) {
		inst_job_fail(j, MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT,
			      "restore: snapshot is of pack %.64s %.32s, instance '%s' runs %s %s "
			      "(close it, or restore into a free id)",
			      h->pack_id, h->pack_version, in->id, in->pk->mf->id,
			      in->pk->mf->version);
		return protobuf_c_message_free_unpacked(&h->base, NULL);
	}
	log_swap_out(in, &old);
	if (seed_blob(in, h, b, err, sizeof err) < 0 ||
	    inst_rebuild(in, &fw, err, sizeof err) < 0) {
		protobuf_c_message_free_unpacked(&h->base, NULL);
		restore_back(in, &old, seed, tick_ms, inputs);
		return inst_job_fail(j, MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT,
				     "restore: %s (the instance is unchanged)", err);
	}
	protobuf_c_message_free_unpacked(&h->base, NULL);
	ilog_free(&old);
	in->snap_due = in->is->s->cfg.snapshot_every;
	inst_note_result(in, fw->result, 0);
	protobuf_c_message_free_unpacked(&fw->base, NULL);
	store_reset(in);
	log_info("instance %s reset to a snapshot at tick %" PRIu64, in->id, in->tick);
	answer_state(in, j);
}

/* Inputs among the first k entries after a restore point (all[first..]). */
static uint64_t count_inputs(const ilog *l, size_t first, size_t k)
{
	uint64_t n = 0;
	size_t i;

	for (i = first; i < first + k; i++)
		n += l->all[i].input ? 1 : 0;
	return n;
}

/* The state the plan leads to: the last kept input's result, else the
 * point's own. 0, -ENOENT (the creation's Init outcome is unknown), or
 * -EAGAIN (that input was read back from the store without its outcome:
 * *tick is known, the hash is the rebuilt worker's, see worker_state). */
static int plan_state(const ilog *l, const ilog_snap *sn, size_t keep, uint64_t *tick,
		      uint8_t hash[32])
{
	size_t first = sn ? (size_t)(sn->seq - l->seq0) : 0, i;

	for (i = first + keep; i-- > first;)
		if (l->all[i].input && l->all[i].done) {
			*tick = l->all[i].tick_after;
			memcpy(hash, l->all[i].hash_after, 32);
			return l->all[i].ticks_only ? -EAGAIN : 0;
		}
	if (sn) {
		*tick = sn->tick;
		memcpy(hash, sn->hash, 32);
		return 0;
	}
	*tick = l->create_tick;
	return -ENOENT; /* taken from the rebuilt worker's Init reply */
}

/* The state (tick, hash) of the instance's worker, from the header of a
 * snapshot it takes: after a Rollback to an input whose outcome was not
 * kept. 0, or negative with err filled. */
static int worker_state(struct inst *in, uint64_t *tick, uint8_t hash[32], char *err, size_t errlen)
{
	Moonpen__Worker__V1__ToWorker tw = MOONPEN__WORKER__V1__TO_WORKER__INIT;
	Moonpen__Worker__V1__TakeSnapshot ts = MOONPEN__WORKER__V1__TAKE_SNAPSHOT__INIT;
	Moonpen__Worker__V1__FromWorker *fw = NULL;
	ProtobufCMessage *m = NULL;
	int r;

	tw.op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_SNAPSHOT;
	tw.snapshot = &ts;
	r = inst_worker_rpc(in, &tw, inst_hard_ms(in, 1), &fw);
	if (r == 0 && fw->status->code != MOONPEN__V1__STATUS__CODE__OK)
		r = -EPROTO;
	if (r == 0)
		r = wire_unpack(&moonpen__worker__v1__snapshot__descriptor, fw->snapshot.data,
				fw->snapshot.len, MP_SNAPSHOT_MAX_BYTES, &m);
	if (r == 0 && ((snap_hdr *)m)->state_hash.len != 32)
		r = -EBADMSG;
	if (r == 0) {
		*tick = ((snap_hdr *)m)->tick;
		memcpy(hash, ((snap_hdr *)m)->state_hash.data, 32);
	}
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
	if (fw)
		protobuf_c_message_free_unpacked(&fw->base, NULL);
	if (r < 0)
		snprintf(err, errlen, "the worker did not give its state: %s",
			 r == -EPROTO ? "snapshot refused" : strerror(-r));
	return r;
}

void inst_serve_rollback(struct inst *in, struct job *j)
{
	uint64_t tick = j->req->rollback->tick, oldest = 0, ntick = 0, inputs;
	Moonpen__Worker__V1__FromWorker *fw = NULL;
	const ilog_snap *sn = NULL;
	uint8_t hash[32];
	char err[512], why[600];
	size_t keep = 0, dropped;
	int known, ps, r;

	if (ilog_rollback_plan(&in->ilog, tick, &sn, &keep, &oldest) < 0)
		return inst_job_fail(j, MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT,
				     "tick %" PRIu64
				     " is before the oldest kept snapshot (tick %" PRIu64 ")",
				     tick, oldest);
	ps = plan_state(&in->ilog, sn, keep, &ntick, hash);
	known = ps == 0;
	inputs = (sn ? sn->input : 0) +
		 count_inputs(&in->ilog, sn ? (size_t)(sn->seq - in->ilog.seq0) : 0, keep);
	pthread_mutex_lock(&in->mu);
	dropped = ilog_rollback(&in->ilog, sn, keep);
	pthread_mutex_unlock(&in->mu);
	in->logged -= dropped;
	if (sst_truncate(in->is->s->store, in->id, in->logged) < 0)
		log_error("instance %s: the store kept %zu rolled-back inputs", in->id, dropped);
	r = inst_rebuild(in, &fw, err, sizeof err);
	if (r == 0 && ps == -EAGAIN) /* that input's hash was not kept: ask the worker */
		known = (r = worker_state(in, &ntick, hash, err, sizeof err)) == 0;
	if (r < 0) {
		if (fw)
			protobuf_c_message_free_unpacked(&fw->base, NULL);
		snprintf(why, sizeof why, "rollback to tick %" PRIu64 " failed: %.500s", tick, err);
		inst_quarantine(in, why);
		return inst_job_fail(j, MOONPEN__V1__STATUS__CODE__QUARANTINED, "%s", why);
	}
	if (ps == -ENOENT)
		inst_note_result(in, fw->result, 0);
	protobuf_c_message_free_unpacked(&fw->base, NULL);
	pthread_mutex_lock(&in->mu);
	if (known) {
		in->tick = ntick;
		memcpy(in->hash, hash, 32);
	}
	in->inputs = inputs;
	pthread_mutex_unlock(&in->mu);
	in->snap_due = in->ilog.n < in->is->s->cfg.snapshot_every ? in->is->s->cfg.snapshot_every
								  : in->ilog.n + 1;
	log_info("instance %s rolled back to tick %" PRIu64 " (now at tick %" PRIu64
		 ", %zu log entries dropped)",
		 in->id, tick, in->tick, dropped);
	answer_state(in, j);
}

/* ---- traces: ExportTrace, GetIncident ------------------------------------------------- */

/* trace_end_input from a kept outcome (a packed Result of an OK input). */
static int end_with(trace *t, const uint8_t *out, size_t len, int init)
{
	Moonpen__Worker__V1__FromWorker fw = MOONPEN__WORKER__V1__FROM_WORKER__INIT;
	Moonpen__V1__Status st = MOONPEN__V1__STATUS__INIT;
	ProtobufCMessage *m = NULL;
	int r = wire_unpack(&moonpen__v1__result__descriptor, out, len, SIZE_MAX, &m);

	if (r < 0)
		return r;
	st.code = MOONPEN__V1__STATUS__CODE__OK;
	fw.status = &st;
	fw.result = (Moonpen__V1__Result *)m;
	r = init ? trace_set_init_reply(t, &fw) : trace_end_input(t, &fw);
	protobuf_c_message_free_unpacked(m, NULL);
	return r;
}

/* Appends entries ents[0..n) (inputs with their outcomes, answers); an input
 * without an outcome is left open (only the last may be: the fatal one). */
static int trace_entries(trace *t, const ilog_ent *ents, size_t n)
{
	const ilog_ent *open = NULL;
	size_t i;
	int r = 0;

	for (i = 0; r == 0 && i < n; i++) {
		ProtobufCMessage *m = NULL;
		Moonpen__Worker__V1__ToWorker *tw;
		if (ents[i].input && open && (r = end_with(t, open->out, open->out_len, 0)) < 0)
			break;
		r = wire_unpack(&moonpen__worker__v1__to_worker__descriptor, ents[i].data,
				ents[i].len, SIZE_MAX, &m);
		if (r < 0)
			break;
		tw = (Moonpen__Worker__V1__ToWorker *)m;
		if (ents[i].input) {
			r = trace_begin_input(t, ents[i].tick, tw);
			open = ents[i].done && ents[i].out ? &ents[i] : NULL;
		} else if (tw->op_case == MOONPEN__WORKER__V1__TO_WORKER__OP_HOST_RESULT) {
			r = trace_add_answer(t, tw->host_result);
		}
		protobuf_c_message_free_unpacked(m, NULL);
	}
	if (r == 0 && open)
		r = end_with(t, open->out, open->out_len, 0);
	return r;
}

int inst_trace_build(const struct inst *in, const uint8_t *snap, size_t snap_len,
		     const uint8_t *init_out, size_t init_out_len, const ilog_ent *ents, size_t n,
		     trace **out)
{
	Moonpen__Worker__V1__Init init;
	Moonpen__Worker__V1__Limits lim;
	trace *t = NULL;
	int r;

	inst_set_init(in, &init, &lim);
	init.snapshot.data = (uint8_t *)snap;
	init.snapshot.len = snap ? snap_len : 0;
	r = trace_from_init(&init, &t);
	if (r == 0 && snap == NULL && init_out)
		r = end_with(t, init_out, init_out_len, 1);
	if (r == 0)
		r = trace_entries(t, ents, n);
	if (r < 0) {
		trace_free(t);
		return r;
	}
	*out = t;
	return 0;
}

void inst_answer_text(struct job *j, char *text)
{
	Moonpen__V1__Response *r;

	if (text == NULL)
		return inst_job_fail(j, MOONPEN__V1__STATUS__CODE__INTERNAL, "out of memory");
	r = sup_resp_new(MOONPEN__V1__STATUS__CODE__OK, "%s", "");
	if (r == NULL) {
		free(text);
		return inst_job_fail(j, MOONPEN__V1__STATUS__CODE__INTERNAL, "out of memory");
	}
	r->trace_json.data = (uint8_t *)text;
	r->trace_json.len = strlen(text);
	inst_job_done(j, r);
}

void inst_serve_trace(struct inst *in, struct job *j)
{
	const ilog *l = &in->ilog;
	const ilog_snap *sn = NULL;
	size_t first = 0;
	trace *t = NULL;
	int r;

	if (ilog_trace_start(l, &sn, &first) < 0)
		return inst_job_fail(
		    j, MOONPEN__V1__STATUS__CODE__UNAVAILABLE,
		    "no kept snapshot of instance '%s' is followed by inputs whose "
		    "outcomes are all known",
		    in->id);
	r = inst_trace_build(in, sn ? sn->data : NULL, sn ? sn->len : 0, l->init_out,
			     l->init_out_len, l->all + first, l->nall - first, &t);
	if (r < 0)
		return inst_job_fail(
		    j, MOONPEN__V1__STATUS__CODE__INTERNAL, "cannot build the trace: %s",
		    r == -ENOMEM ? "out of memory" : "a logged input does not fit");
	inst_answer_text(j, trace_dumps(t));
	trace_free(t);
}
