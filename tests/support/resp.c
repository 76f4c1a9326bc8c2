/*
 * resp — compact renderings of responses for assertions (test processes).
 */
#include "tests/support/resp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"
#include "common/val_json.h"

const char *tr_effects(const mp_response *r)
{
	static char buf[65536];
	size_t o = 0, i, k;

	buf[0] = '\0';
	if (r == NULL || r->result == NULL)
		return buf;
	for (i = 0; i < r->result->n_effects && o < sizeof buf; i++) {
		const Moonpen__V1__Effect *e = r->result->effects[i];
		json_t *a = json_array();
		char *s;
		for (k = 0; k < e->n_args; k++)
			json_array_append_new(a, vjson_to_json(e->args[k]));
		s = json_dumps(a, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
		o += (size_t)snprintf(buf + o, sizeof buf - o, "%s.%s%s\n", e->api, e->fn,
				      s ? s : "?");
		free(s);
		json_decref(a);
	}
	return buf;
}

const char *tr_code(const mp_response *r)
{
	return st_name(mp_status_code(r));
}

const char *tr_msg(const mp_response *r)
{
	return r && r->status && r->status->message ? r->status->message : "";
}

const char *tr_hash(const mp_response *r)
{
	static char hex[130];
	size_t i;

	hex[0] = '\0';
	if (r == NULL || r->result == NULL)
		return hex;
	for (i = 0; i < r->result->state_hash.len && i < 64; i++)
		snprintf(hex + 2 * i, 3, "%02x", r->result->state_hash.data[i]);
	return hex;
}
