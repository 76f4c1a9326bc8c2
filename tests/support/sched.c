/*
 * sched — the recovery pack's input schedule (test processes).
 */
#include "tests/support/sched.h"

#include <errno.h>
#include <stdio.h>

#include "common/val_json.h"

int ts_input(mp_client *c, const char *id, int i, mp_response **r)
{
	char json[64], err[64];
	val_t *v = NULL;
	int rc;

	*r = NULL;
	switch (i % 4) {
	case 0:
		return mp_tick(c, id, 3, r);
	case 1:
		snprintf(json, sizeof json, "{\"n\":%d}", i);
		if (vjson_parse(json, 8, &v, err, sizeof err) < 0)
			return -EINVAL;
		rc = mp_event(c, id, "add", v, r);
		val_free(v);
		return rc;
	case 2:
		return mp_event(c, id, "hit", NULL, r);
	default:
		return mp_call(c, id, "total", NULL, 0, r);
	}
}
