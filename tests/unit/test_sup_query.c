/*
 * test_sup_query — the supervisor's query rules (supervisor/query.c) without
 * a worker: HostCall checks, the PENDING reply, matching HostResults,
 * timeouts and late answers. (The engine's side is tests/unit/test_query.c.)
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "common/status.h"
#include "supervisor/query.h"

static Moonpen__V1__HostCall *call(uint64_t id, const char *api, const char *fn)
{
	Moonpen__V1__HostCall *hc = malloc(sizeof *hc);

	cr_assert_not_null(hc);
	moonpen__v1__host_call__init(hc);
	hc->call_id = id;
	hc->api = strdup(api);
	hc->fn = strdup(fn);
	return hc;
}

Test(sup_query, check_call)
{
	Moonpen__V1__HostCall *hc = call(1, "path", "find");
	Moonpen__V1__Value bad = MOONPEN__V1__VALUE__INIT, *args[1] = {&bad};
	char err[256];

	cr_assert_eq(sup_query_check_call(hc, err, sizeof err), 0);
	cr_assert_eq(sup_query_check_call(NULL, err, sizeof err), -EBADMSG);
	hc->call_id = 0;
	cr_assert_eq(sup_query_check_call(hc, err, sizeof err), -EBADMSG);
	cr_assert_str_eq(err, "PENDING reply without a query (host_call with a call_id)");
	hc->call_id = 1;
	hc->fn[0] = '\xff';
	cr_assert_eq(sup_query_check_call(hc, err, sizeof err), -EBADMSG);
	cr_assert_str_eq(err, "query api/fn must be 1-128 bytes of UTF-8");
	hc->fn[0] = 'f';
	bad.kind_case = MOONPEN__V1__VALUE__KIND_STRING_VALUE;
	bad.string_value = "\xc3";
	hc->args = args;
	hc->n_args = 1;
	cr_assert_eq(sup_query_check_call(hc, err, sizeof err), -EBADMSG);
	cr_assert(strncmp(err, "query argument 1: ", 18) == 0, "%s", err);
	hc->args = NULL;
	hc->n_args = 0;
	protobuf_c_message_free_unpacked(&hc->base, NULL);
}

Test(sup_query, pending_reply_fills_timeout_and_message)
{
	Moonpen__Worker__V1__FromWorker *fw = malloc(sizeof *fw);
	Moonpen__V1__Response *r;

	moonpen__worker__v1__from_worker__init(fw);
	fw->status = st_new(MOONPEN__V1__STATUS__CODE__PENDING, NULL, NULL, 0);
	fw->host_call = call(7, "path", "find");
	r = sup_query_pending_reply(fw, 2500);
	cr_assert_not_null(r);
	cr_assert_eq(r->status->code, MOONPEN__V1__STATUS__CODE__PENDING);
	cr_assert_str_eq(r->status->message, "query 7 (path.find) waits for a HostResult");
	cr_assert_eq(r->host_call->call_id, 7);
	cr_assert_eq(r->host_call->timeout_ms, 2500);
	cr_assert_str_eq(r->host_call->fn, "find");
	protobuf_c_message_free_unpacked(&r->base, NULL);
}

Test(sup_query, match_timeout_and_late_answers)
{
	Moonpen__V1__HostCall *hc = call(5, "path", "find");
	sup_query q;
	st_code code;
	char msg[256];

	memset(&q, 0, sizeof q);
	cr_assert_eq(sup_query_match(&q, "i1", 5, &code, msg, sizeof msg), -ENOENT);
	cr_assert_eq(code, MOONPEN__V1__STATUS__CODE__NOT_FOUND);
	cr_assert_str_eq(msg, "instance 'i1' has no pending query 5");

	sup_query_begin(&q, hc, 3, 1000, 300);
	cr_assert_eq(q.log_start, 3);
	cr_assert_eq(sup_query_match(&q, "i1", 5, &code, msg, sizeof msg), 0);
	cr_assert_eq(sup_query_match(&q, "i1", 6, &code, msg, sizeof msg), -ENOENT);
	cr_assert_eq(code, MOONPEN__V1__STATUS__CODE__NOT_FOUND);
	cr_assert_str_eq(msg, "instance 'i1' waits for query 5 (path.find), not 6");
	cr_assert(!sup_query_expired(&q, 1299));
	cr_assert(sup_query_expired(&q, 1300));

	sup_query_timeout(&q, msg, sizeof msg);
	cr_assert_str_eq(msg, "query 5 (path.find) unanswered after 300 ms; the input was "
			      "discarded");
	cr_assert_eq(q.call_id, 0);
	cr_assert(!sup_query_expired(&q, 99999));
	cr_assert_eq(sup_query_match(&q, "i1", 5, &code, msg, sizeof msg), -ENOENT);
	cr_assert_eq(code, MOONPEN__V1__STATUS__CODE__TIMEOUT);
	cr_assert_str_eq(msg, "query 5 (path.find) unanswered after 300 ms; the input was "
			      "discarded");

	/* an answered query is not remembered; a crashed one is */
	hc->call_id = 6;
	sup_query_begin(&q, hc, 3, 2000, 300);
	sup_query_end(&q, MOONPEN__V1__STATUS__CODE__OK, "");
	cr_assert_eq(sup_query_match(&q, "i1", 6, &code, msg, sizeof msg), -ENOENT);
	cr_assert_eq(code, MOONPEN__V1__STATUS__CODE__NOT_FOUND);
	hc->call_id = 8;
	sup_query_begin(&q, hc, 3, 3000, 300);
	sup_query_end(&q, MOONPEN__V1__STATUS__CODE__WORKER_CRASHED, "query 8: worker died");
	cr_assert_eq(sup_query_match(&q, "i1", 8, &code, msg, sizeof msg), -ENOENT);
	cr_assert_eq(code, MOONPEN__V1__STATUS__CODE__WORKER_CRASHED);
	cr_assert_str_eq(msg, "query 8: worker died");
	protobuf_c_message_free_unpacked(&hc->base, NULL);
}

Test(sup_query, remembers_a_bounded_number)
{
	Moonpen__V1__HostCall *hc = call(1, "a", "b");
	sup_query q;
	st_code code;
	char msg[256];
	uint64_t i;

	memset(&q, 0, sizeof q);
	for (i = 1; i <= SUP_QUERY_GONE + 4; i++) {
		hc->call_id = i;
		sup_query_begin(&q, hc, 0, i, 1);
		sup_query_timeout(&q, msg, sizeof msg);
	}
	cr_assert_eq(sup_query_match(&q, "i", 1, &code, msg, sizeof msg), -ENOENT);
	cr_assert_eq(code, MOONPEN__V1__STATUS__CODE__NOT_FOUND); /* forgotten */
	cr_assert_eq(sup_query_match(&q, "i", SUP_QUERY_GONE + 4, &code, msg, sizeof msg), -ENOENT);
	cr_assert_eq(code, MOONPEN__V1__STATUS__CODE__TIMEOUT);
	protobuf_c_message_free_unpacked(&hc->base, NULL);
}
