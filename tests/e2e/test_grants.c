/*
 * End-to-end: the operator's grants (policy/grants.json) decide which packs
 * may use which host APIs. A create whose pack lists an ungranted API is
 * refused with PERMISSION_DENIED before any worker starts; a granted pack of
 * the same folder is created; a custom --grants file is honoured.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "client/moonpen.h"
#include "tests/support/daemon.h"
#include "tests/support/resp.h"

static td D;
static mp_client *C;

static void down(void)
{
	mp_disconnect(C);
	cr_assert_eq(td_stop(&D, 0), 0, "moonpend did not stop cleanly (log %s)", D.log);
}

static mp_response *create(const char *id, const char *pack)
{
	mp_create_opts o = {.instance_id = id, .pack_id = pack, .seed = 1, .tick_ms = 50};
	mp_response *r = NULL;

	cr_assert_eq(mp_create(C, &o, &r), 0);
	return r;
}

Test(grants, ungranted_api_is_permission_denied, .fini = down)
{
	mp_response *r;

	cr_assert_eq(td_start(&D, "tests/e2e/packs", NULL), 0);
	cr_assert_eq(mp_connect(D.url, &C), 0);
	r = create("u1", "ungranted");
	cr_expect_str_eq(tr_code(r), "permission_denied");
	cr_expect_str_eq(tr_msg(r),
			 "pack 'ungranted' is not granted api 'music' (policy/grants.json)");
	mp_response_free(r);
	r = create("r1", "runaway");
	cr_expect_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	mp_response_free(r);
	/* nothing was left behind for the refused one */
	cr_assert_eq(mp_info(C, "u1", &r), 0);
	cr_expect_str_eq(tr_code(r), "not_found");
	mp_response_free(r);
}

Test(grants, custom_grants_file, .fini = down)
{
	static const char *const extra[] = {"--grants", "tests/e2e/packs/grants_all.json", NULL};
	mp_response *r;

	cr_assert_eq(td_start(&D, "tests/e2e/packs", extra), 0);
	cr_assert_eq(mp_connect(D.url, &C), 0);
	r = create("u1", "ungranted");
	cr_expect_str_eq(tr_code(r), "ok", "%s", tr_msg(r));
	mp_response_free(r);
}
