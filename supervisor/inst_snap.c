/*
 * inst_snap — in-memory snapshots (every --snapshot-every logged inputs), the
 * retry of an input that killed its worker, and dead letters.
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

/* ---- snapshots and dead letters ------------------------------------------------------ */

/* Snapshots are taken only between inputs: never while an input waits on a
 * query (in->pending_call != 0), whose host results are still to come. */
static int snapshot_allowed(const struct inst *in)
{
	return in->pending_call == 0;
}

/* Stores the snapshot just kept (covering in->logged entries). A failure
 * loses nothing: the store keeps the older snapshot and the inputs since. */
static void snap_store(struct inst *in)
{
	const ilog_snap *sn = ilog_snap_newest(&in->ilog);

	if (sst_put_snapshot(in->is->s->store, in->id, in->logged, sn->tick, sn->hash, sn->data,
			     sn->len) < 0)
		log_warn("instance %s: the store did not take its snapshot at tick %" PRIu64,
			 in->id, sn->tick);
}

/* Asks the worker for a snapshot once snapshot_every inputs are logged, keeps
 * the newest keep_snapshots and empties the log (the snapshot covers it). A
 * worker that cannot snapshot is asked again snapshot_every inputs later. */
void inst_maybe_snapshot(struct inst *in)
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
	r = inst_input_rpc(in, &tw, inst_hard_ms(in, 1), &fw);
	if (r < 0) { /* the log is whole: nothing acknowledged is lost */
		if (r != -ENOMEM)
			inst_restore(in, in->death);
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
		if (r == 0)
			snap_store(in);
	}
	protobuf_c_message_free_unpacked(&fw->base, NULL);
	if (err[0])
		log_debug("instance %s: no snapshot: %s", in->id, err);
}

static void dead_store(struct inst *in, const ilog_dead *d)
{
	sst_dead_letter sd = {.input = d->input,
			      .tick = d->tick,
			      .kind = d->kind,
			      .name = d->name,
			      .code = (int)d->code,
			      .message = d->message};

	if (sst_put_dead_letter(in->is->s->store, in->id, &sd) < 0)
		log_warn("instance %s: the store did not take a dead letter", in->id);
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
	dead_store(in, &d);
	log_warn("instance %s: %s '%s' dead-lettered (input %" PRIu64 ", tick %" PRIu64 "): %s",
		 in->id, d.kind, d.name, d.input, d.tick, msg);
}

/* The worker died under a live input: restore, and send the input once more to
 * the restored worker (the death may not have been its fault); when it kills
 * MP_DEAD_LETTER_KILLS workers, restore again and dead-letter it. 0 with *fw
 * when a retry was answered; negative when j has been answered. */
int inst_retry_input(struct inst *in, struct job *j, Moonpen__Worker__V1__ToWorker *tw, uint32_t ms,
		     Moonpen__Worker__V1__FromWorker **fw)
{
	char msg[300];
	st_code code;
	int kills, r;

	for (kills = 1;; kills++) {
		code = in->death_code;
		snprintf(msg, sizeof msg, "%s", in->death);
		if (code != MOONPEN__V1__STATUS__CODE__QUARANTINED)
			inst_record_incident(in, tw); /* the flight recorder (inst_incident.c) */
		if (code == MOONPEN__V1__STATUS__CODE__QUARANTINED || inst_restore(in, msg) < 0)
			break; /* quarantined: the input is answered with its status */
		if (kills >= MP_DEAD_LETTER_KILLS) {
			dead_letter(in, tw, code, msg);
			snprintf(msg + strlen(msg), sizeof msg - strlen(msg),
				 " (dead-lettered: it killed %d workers)", kills);
			break;
		}
		r = inst_input_rpc(in, tw, ms, fw);
		if (r == 0)
			return 0;
		if (r == -ENOMEM) {
			inst_job_fail(j, MOONPEN__V1__STATUS__CODE__INTERNAL, "%s",
				      "out of memory");
			return r;
		}
	}
	inst_job_fail(j, code, "%s", msg);
	return -EPIPE;
}
