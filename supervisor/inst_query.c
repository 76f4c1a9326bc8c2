/*
 * inst_query — async queries of an instance: the PENDING answer, the matching
 * HostResult, timeouts (rules in supervisor/query.h).
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

/* ---- queries (H2, a.k.a. H4 above; rules in supervisor/query.h) ------------------------
 * An input whose script waits on a host query is answered PENDING and logged;
 * the thread then serves only HostResults and a close (next_job) until the
 * query is answered, fails, or expires. in->pending_call mirrors in->q.call_id
 * for the snapshot rule (snapshot_allowed). */

uint64_t inst_now_ns(void)
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
		inst_log_truncate(in, in->ilog.n - in->q.log_start);
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
	r = inst_input_rpc(in, &tw, inst_hard_ms(in, 1), &fw);
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
	inst_restore(in, why);
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
	inst_restore(in, msg);
	inst_job_fail(j, MOONPEN__V1__STATUS__CODE__WORKER_CRASHED, "%s", msg);
}

/* inst_log_append failed with r (out of memory, or the durable store refused
 * the entry): the input is discarded (out of the log, aborted in the worker)
 * and j answered; UNAVAILABLE for the store: not applied, retry. */
static void query_log_failed(struct inst *in, struct job *j, Moonpen__Worker__V1__FromWorker *fw,
			     int r)
{
	st_code code = r == -ENOMEM ? MOONPEN__V1__STATUS__CODE__INTERNAL
				    : MOONPEN__V1__STATUS__CODE__UNAVAILABLE;
	const char *msg = r == -ENOMEM ? "out of memory"
				       : "the durable store could not record the input; it was "
					 "not applied: retry";

	protobuf_c_message_free_unpacked(&fw->base, NULL);
	query_discard(in, code, msg);
	inst_job_fail(j, code, "%s", msg);
}

/* The worker answered j's input (tw) PENDING on a query (fw): log the input,
 * answer PENDING with the query, wait for its HostResult. */
void inst_query_begin(struct inst *in, struct job *j, Moonpen__Worker__V1__ToWorker *tw,
		      Moonpen__Worker__V1__FromWorker *fw)
{
	uint32_t timeout = in->is->s->cfg.query_timeout_ms;
	char err[256];
	int r;

	if (sup_query_check_call(fw->host_call, err, sizeof err) < 0) {
		protobuf_c_message_free_unpacked(&fw->base, NULL);
		in->q.log_start = in->ilog.n;
		return query_broken(in, j, err);
	}
	sup_query_begin(&in->q, fw->host_call, in->ilog.n, inst_now_ms(), timeout);
	query_set(in);
	if ((r = inst_log_append(in, tw)) < 0)
		return query_log_failed(in, j, fw, r);
	inst_job_done(j, sup_query_pending_reply(fw, timeout));
}

/* The worker died while resuming the input: the input is discarded, the
 * instance restored without it, and the HostResult answered with the death. */
static void query_died(struct inst *in, struct job *j)
{
	Moonpen__Worker__V1__ToWorker tw = MOONPEN__WORKER__V1__TO_WORKER__INIT;
	st_code code = in->death_code;
	char msg[600], why[300];

	snprintf(why, sizeof why, "%s", in->death);
	snprintf(msg, sizeof msg, "query %" PRIu64 " (%s): %.250s; the input was discarded",
		 in->q.call_id, in->q.what, why);
	tw.op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_HOST_RESULT;
	tw.host_result = j->req->host_result;
	if (code != MOONPEN__V1__STATUS__CODE__QUARANTINED)
		inst_record_incident(in, &tw); /* the flight recorder (inst_incident.c) */
	query_unlog(in);
	sup_query_end(&in->q, code, msg);
	query_set(in);
	inst_restore(in, why);
	inst_job_fail(j, code, "%s", msg);
}

/* The input ended after its answers (fw): OK keeps it and its answers in the
 * log; an error (the input changed nothing) takes them out. */
static void query_final(struct inst *in, struct job *j, Moonpen__Worker__V1__ToWorker *tw,
			Moonpen__Worker__V1__FromWorker *fw)
{
	int ok = fw->status->code == MOONPEN__V1__STATUS__CODE__OK, r;

	if (!ok)
		query_unlog(in);
	if (ok && (r = inst_log_append(in, tw)) < 0)
		return query_log_failed(in, j, fw, r);
	sup_query_end(&in->q, MOONPEN__V1__STATUS__CODE__OK, "");
	query_set(in);
	inst_note_result(in, fw->result, ok);
	inst_job_done(j, inst_take_reply(fw));
	inst_maybe_snapshot(in);
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
	r = inst_input_rpc(in, &tw, inst_hard_ms(in, 1), &fw);
	if (r == -ENOMEM) /* the query stays pending: the game server may retry */
		return inst_job_fail(j, MOONPEN__V1__STATUS__CODE__INTERNAL, "%s", "out of memory");
	if (r < 0)
		return query_died(in, j);
	if (fw->status->code != MOONPEN__V1__STATUS__CODE__PENDING)
		return query_final(in, j, &tw, fw);
	if (sup_query_check_call(fw->host_call, err, sizeof err) < 0) {
		protobuf_c_message_free_unpacked(&fw->base, NULL);
		return query_broken(in, j, err);
	}
	if ((r = inst_log_append(in, &tw)) < 0)
		return query_log_failed(in, j, fw, r);
	sup_query_begin(&in->q, fw->host_call, in->q.log_start, inst_now_ms(), timeout);
	query_set(in);
	inst_job_done(j, sup_query_pending_reply(fw, timeout));
}

/* Any HostResult: the pending query's answer, or a clear refusal (a call id
 * that expired, failed, or was never asked). */
void inst_serve_host_result(struct inst *in, struct job *j)
{
	const Moonpen__V1__HostResult *h = j->req->host_result;
	char msg[400];
	st_code code;

	if (sup_query_match(&in->q, in->id, h->call_id, &code, msg, sizeof msg) < 0)
		return inst_job_fail(j, code, "%s", msg);
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
void inst_query_abandon(struct inst *in)
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
		if ((*stop = in->stop) != 0 || inst_pool_heal_due_locked(in))
			break; /* stop; or its pool slot to restore first (inst_next_job) */
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
		if ((now = inst_now_ms()) >= deadline_ms)
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
struct job *inst_next_job(struct inst *in)
{
	struct job *j;
	int stop;

	for (;;) {
		if (in->q.call_id == 0)
			return inst_pop(in);
		j = pop_answer(in, in->q.deadline_ms, &stop);
		if (j != NULL || stop)
			return j;
		if (inst_pool_heal(in)) /* its pool worker died: restored (inst_worker.c) */
			continue;
		query_expire(in);
	}
}
