/*
 * query — pending host queries of one instance (runs in the supervisor, in
 * the instance's thread). A HostCall comes from a worker and is hostile until
 * sup_query_check_call() accepted it; call ids in HostResults come from game
 * servers and are only compared.
 */
#include "supervisor/query.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/val.h"
#include "policy/limits.h"

static int text_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return n > 0 && n <= MP_MAX_NAME_BYTES && val_utf8_valid(s, n);
}

int sup_query_check_call(const Moonpen__V1__HostCall *hc, char *err, size_t errlen)
{
	char why[200];
	size_t i;

	if (hc == NULL || hc->call_id == 0) {
		snprintf(err, errlen, "PENDING reply without a query (host_call with a call_id)");
		return -EBADMSG;
	}
	if (!text_ok(hc->api) || !text_ok(hc->fn)) {
		snprintf(err, errlen, "query api/fn must be 1-%d bytes of UTF-8",
			 MP_MAX_NAME_BYTES);
		return -EBADMSG;
	}
	if (hc->n_args > MP_MAX_CALL_ARGS) {
		snprintf(err, errlen, "query with %zu arguments (at most %d)", hc->n_args,
			 MP_MAX_CALL_ARGS);
		return -EBADMSG;
	}
	for (i = 0; i < hc->n_args; i++)
		if (hc->args[i] == NULL ||
		    val_check(hc->args[i], MP_MAX_VALUE_DEPTH, why, sizeof why) < 0) {
			snprintf(err, errlen, "query argument %zu: %s", i + 1,
				 hc->args[i] ? why : "missing");
			return -EBADMSG;
		}
	return 0;
}

void sup_query_begin(sup_query *q, const Moonpen__V1__HostCall *hc, size_t log_start,
		     uint64_t now_ms, uint32_t timeout_ms)
{
	q->call_id = hc->call_id;
	q->log_start = log_start;
	q->started_ms = now_ms;
	q->timeout_ms = timeout_ms;
	q->deadline_ms = now_ms + timeout_ms;
	snprintf(q->what, sizeof q->what, "%.64s.%.64s", hc->api, hc->fn);
}

Moonpen__V1__Response *sup_query_pending_reply(Moonpen__Worker__V1__FromWorker *fw,
					       uint32_t timeout_ms)
{
	Moonpen__V1__Response *r = malloc(sizeof *r);
	char *msg;

	if (r == NULL)
		goto out;
	moonpen__v1__response__init(r);
	r->status = fw->status;
	r->host_call = fw->host_call;
	fw->status = NULL;
	fw->host_call = NULL;
	r->host_call->timeout_ms = timeout_ms;
	r->status->retryable = 0;
	if (r->status->message == NULL || r->status->message[0] == '\0') {
		if (asprintf(&msg, "query %" PRIu64 " (%s.%s) waits for a HostResult",
			     r->host_call->call_id, r->host_call->api, r->host_call->fn) < 0) {
			protobuf_c_message_free_unpacked(&r->base, NULL);
			r = NULL;
			goto out;
		}
		if (r->status->message != protobuf_c_empty_string)
			free(r->status->message);
		r->status->message = msg;
	}
out:
	protobuf_c_message_free_unpacked(&fw->base, NULL);
	return r;
}

static const sup_query_gone *find_gone(const sup_query *q, uint64_t call_id)
{
	size_t n = q->ngone < SUP_QUERY_GONE ? q->ngone : SUP_QUERY_GONE, i;

	for (i = 0; i < n; i++)
		if (q->gone[i].call_id == call_id)
			return &q->gone[i];
	return NULL;
}

int sup_query_match(const sup_query *q, const char *inst_id, uint64_t call_id, st_code *code,
		    char *msg, size_t msglen)
{
	const sup_query_gone *g;

	if (q->call_id != 0 && q->call_id == call_id)
		return 0;
	if ((g = find_gone(q, call_id)) != NULL) {
		*code = g->code;
		snprintf(msg, msglen, "%s", g->message);
	} else if (q->call_id != 0) {
		*code = MOONPEN__V1__STATUS__CODE__NOT_FOUND;
		snprintf(msg, msglen,
			 "instance '%s' waits for query %" PRIu64 " (%s), not %" PRIu64, inst_id,
			 q->call_id, q->what, call_id);
	} else {
		*code = MOONPEN__V1__STATUS__CODE__NOT_FOUND;
		snprintf(msg, msglen, "instance '%s' has no pending query %" PRIu64, inst_id,
			 call_id);
	}
	return -ENOENT;
}

int sup_query_expired(const sup_query *q, uint64_t now_ms)
{
	return q->call_id != 0 && now_ms >= q->deadline_ms;
}

void sup_query_end(sup_query *q, st_code code, const char *message)
{
	sup_query_gone *g;

	if (q->call_id == 0)
		return;
	if (code != MOONPEN__V1__STATUS__CODE__OK) {
		g = &q->gone[q->ngone++ % SUP_QUERY_GONE];
		g->call_id = q->call_id;
		g->code = code;
		snprintf(g->message, sizeof g->message, "%s", message);
	}
	q->call_id = 0;
	q->what[0] = '\0';
}

void sup_query_timeout(sup_query *q, char *msg, size_t msglen)
{
	char m[256];

	snprintf(m, sizeof m,
		 "query %" PRIu64 " (%s) unanswered after %" PRIu32 " ms; the input was discarded",
		 q->call_id, q->what, q->timeout_ms);
	snprintf(msg, msglen, "%s", m);
	sup_query_end(q, MOONPEN__V1__STATUS__CODE__TIMEOUT, m);
}
