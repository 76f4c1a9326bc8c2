/*
 * End-to-end: the way out of quarantine. An instance whose worker keeps dying
 * is quarantined (restart intensity); it then serves only Close, Restore and
 * Rollback, and a successful Restore or Rollback lets it run again with its
 * restored state. A Restore that fails leaves it quarantined.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "client/moonpen.h"
#include "common/val_json.h"
#include "tests/support/daemon.h"
#include "tests/support/resp.h"

static td D;
static mp_client *C;

static void up(void)
{
	const char *extra[] = {"--restart-max", "2", "--restart-window-ms", "600000", NULL};

	cr_assert_eq(td_start(&D, "tests/e2e/packs", extra), 0);
	cr_assert_eq(mp_connect(D.url, &C), 0);
}

static void down(void)
{
	mp_disconnect(C);
	cr_assert_eq(td_stop(&D, 0), 0, "moonpend did not stop cleanly (log %s)", D.log);
}

static mp_response *call0(const char *id, const char *fn)
{
	mp_response *r = NULL;

	cr_assert_eq(mp_call(C, id, fn, NULL, 0, &r), 0);
	return r;
}

static void expect_code(mp_response *r, const char *code)
{
	cr_expect_str_eq(tr_code(r), code, "%s", tr_msg(r));
	mp_response_free(r);
}

/* Creates id (runaway pack), adds 4 to its counter and returns its state hash. */
static void create_with_four(const char *id, char hash[80])
{
	mp_create_opts o = {.instance_id = id, .pack_id = "runaway", .seed = 3};
	mp_response *r = NULL;
	val_t *v = NULL;
	char err[64];

	cr_assert_eq(mp_create(C, &o, &r), 0);
	expect_code(r, "ok");
	cr_assert_eq(vjson_parse("{\"n\":4}", 8, &v, err, sizeof err), 0);
	cr_assert_eq(mp_event(C, id, "add", v, &r), 0);
	val_free(v);
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	snprintf(hash, 80, "%s", tr_hash(r));
	mp_response_free(r);
}

/* Two calls that each kill two workers: the third restart quarantines. */
static void quarantine(const char *id)
{
	mp_response *r;

	for (int i = 0; i < 2; i++)
		expect_code(call0(id, "backtrack"), "timeout");
	cr_assert_eq(mp_info(C, id, &r), 0);
	cr_assert_eq(r->info->state, MOONPEN__V1__INSTANCE_INFO__STATE__QUARANTINED);
	mp_response_free(r);
	r = call0(id, "total");
	cr_expect_str_eq(tr_code(r), "quarantined");
	mp_response_free(r);
	cr_assert_eq(mp_snapshot(C, id, &r), 0); /* no worker to take one from */
	expect_code(r, "quarantined");
}

static void expect_running_with(const char *id, const char *hash, int64_t total)
{
	mp_response *r;

	cr_assert_eq(mp_info(C, id, &r), 0);
	cr_expect_eq(r->info->state, MOONPEN__V1__INSTANCE_INFO__STATE__RUNNING);
	cr_expect_str_eq(r->info->reason, "");
	mp_response_free(r);
	r = call0(id, "total");
	cr_assert_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	cr_assert_eq(r->result->n_returns, 1);
	cr_expect_eq(r->result->returns[0]->int_value, total);
	cr_expect_str_eq(tr_hash(r), hash);
	mp_response_free(r);
}

Test(quarantine, restore_lifts_it, .init = up, .fini = down, .timeout = 300)
{
	char hash[80];
	mp_response *snap, *r;

	create_with_four("q", hash);
	cr_assert_eq(mp_snapshot(C, "q", &snap), 0);
	cr_assert_str_eq(tr_code(snap), "ok", "%s", tr_msg(snap));
	quarantine("q");
	/* a blob that does not decode: refused, still quarantined */
	cr_assert_eq(mp_restore(C, "q", "junk", 4, &r), 0);
	expect_code(r, "invalid_argument");
	expect_code(call0("q", "total"), "quarantined");
	/* the snapshot taken before the crash loop: running again, same state */
	cr_assert_eq(mp_restore(C, "q", snap->snapshot.data, snap->snapshot.len, &r), 0);
	expect_code(r, "ok");
	mp_response_free(snap);
	expect_running_with("q", hash, 4);
}

Test(quarantine, rollback_lifts_it, .init = up, .fini = down, .timeout = 300)
{
	char hash[80];
	mp_response *r;

	create_with_four("q", hash);
	quarantine("q");
	cr_assert_eq(mp_rollback(C, "q", 0, &r), 0);
	expect_code(r, "ok");
	expect_running_with("q", hash, 4);
	/* and it counts restarts afresh: one more kill is survived */
	expect_code(call0("q", "backtrack"), "timeout");
	expect_running_with("q", hash, 4);
}
