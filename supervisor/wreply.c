/*
 * wreply — checks of a worker's reply (runs in the supervisor; every byte
 * from a worker is hostile). See wreply.h.
 */
#include "supervisor/wreply.h"

#include <string.h>

#include "common/status.h"
#include "common/val.h"
#include "policy/limits.h"

static int values_ok(Moonpen__V1__Value **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (v[i] == NULL || val_check(v[i], MP_MAX_VALUE_DEPTH, NULL, 0) < 0)
			return 0;
	return 1;
}

static int result_ok(Moonpen__V1__Result *res)
{
	size_t i;

	if (!values_ok(res->returns, res->n_returns) ||
	    (res->state_hash.len != 0 && res->state_hash.len != 32))
		return 0;
	for (i = 0; i < res->n_effects; i++) {
		Moonpen__V1__Effect *e = res->effects[i];
		if (!values_ok(e->args, e->n_args))
			return 0;
		val_utf8_scrub(e->api);
		val_utf8_scrub(e->fn);
		val_utf8_scrub(e->trigger_id);
	}
	for (i = 0; i < res->n_logs; i++) {
		val_utf8_scrub(res->logs[i]->level);
		val_utf8_scrub(res->logs[i]->message);
	}
	return 1;
}

int sup_wreply_ok(Moonpen__Worker__V1__FromWorker *fw, uint64_t seq, uint32_t slot)
{
	if (fw->seq != seq || fw->slot != slot || fw->status == NULL)
		return 0;
	if (strcmp(st_name(fw->status->code), "unknown") == 0)
		return 0; /* a code outside the enum */
	val_utf8_scrub(fw->status->message);
	val_utf8_scrub(fw->status->traceback);
	return fw->result == NULL || result_ok(fw->result);
}
