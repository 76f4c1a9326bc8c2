/*
 * snapshot — packing and checking moonpen.worker.v1.Snapshot bytes (see
 * snapshot.h). Runs in moonpen-worker; the bytes decoded here are untrusted.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/val.h"
#include "common/wire.h"
#include "policy/limits.h"
#include "worker/snapshot.h"

int snap_pack(const snap_t *s, uint8_t **buf, size_t *len)
{
	size_t n = protobuf_c_message_get_packed_size(&s->base);

	*buf = NULL;
	*len = 0;
	if (n > MP_SNAPSHOT_MAX_BYTES)
		return -EFBIG;
	*buf = malloc(n ? n : 1);
	if (*buf == NULL)
		return -ENOMEM;
	*len = protobuf_c_message_pack(&s->base, *buf);
	return 0;
}

int snap_lua_name(const char *s)
{
	static const char *const kw[] = {"and",	  "break", "do",       "else",	"elseif", "end",
					 "false", "for",   "function", "goto",	"if",	  "in",
					 "local", "nil",   "not",      "or",	"repeat", "return",
					 "then",  "true",  "until",    "while", NULL};

	if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
		return 0;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
		      (*p >= '0' && *p <= '9')))
			return 0;
	for (const char *const *k = kw; *k; k++)
		if (strcmp(*k, s) == 0)
			return 0;
	return 1;
}

/* Nonzero for a Lua name (identifier, not a keyword) of at most 256 bytes. */
static int snap_name_ok(const char *s)
{
	return s != NULL && strlen(s) <= 256 && snap_lua_name(s);
}

static int check_timer(const snap_t *s, size_t i, unsigned max_depth, char *err, size_t errlen)
{
	const Moonpen__Worker__V1__SnapTimer *t = s->timers[i];
	char why[200];

	if (t->id == 0 || t->id >= s->next_timer_id) {
		snprintf(err, errlen,
			 "snapshot: timer %zu: id %" PRIu64 " not in 1..next_timer_id-1", i + 1,
			 t->id);
		return -EINVAL;
	}
	for (size_t j = 0; j < i; j++)
		if (s->timers[j]->id == t->id) {
			snprintf(err, errlen, "snapshot: timer id %" PRIu64 " appears twice",
				 t->id);
			return -EINVAL;
		}
	if (t->due <= s->tick || t->due - s->tick > SNAP_MAX_DUE_AHEAD ||
	    t->period > SNAP_MAX_DUE_AHEAD) {
		snprintf(err, errlen,
			 "snapshot: timer %" PRIu64 ": due tick or period out of range", t->id);
		return -EINVAL;
	}
	if (!snap_name_ok(t->fn)) {
		snprintf(err, errlen, "snapshot: timer %" PRIu64 ": fn is not a function name",
			 t->id);
		return -EINVAL;
	}
	if (t->n_args > SNAP_MAX_TIMER_ARGS) {
		snprintf(err, errlen, "snapshot: timer %" PRIu64 ": more than %d arguments", t->id,
			 SNAP_MAX_TIMER_ARGS);
		return -EINVAL;
	}
	for (size_t j = 0; j < t->n_args; j++)
		if (val_check(t->args[j], max_depth, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "snapshot: timer %" PRIu64 ": argument #%zu: %s",
				 t->id, j + 1, why);
			return -EINVAL;
		}
	return 0;
}

/* A debounced firing: due ahead of the tick, an event name, a plain payload. */
static int check_pending(const snap_t *s, const Moonpen__Worker__V1__SnapThrottle *t,
			 unsigned max_depth, char *err, size_t errlen)
{
	size_t n = t->pending_event != NULL ? strlen(t->pending_event) : 0;
	char why[200];

	if (t->pending_due == 0 && n == 0 && t->pending_payload == NULL)
		return 0;
	if (t->pending_due <= s->tick || t->pending_due - s->tick > SNAP_MAX_DUE_AHEAD || n == 0 ||
	    n > 256) {
		snprintf(err, errlen, "snapshot: trigger '%s': bad pending debounce",
			 t->trigger_id);
		return -EINVAL;
	}
	if (t->pending_payload != NULL &&
	    val_check(t->pending_payload, max_depth, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "snapshot: trigger '%s': pending payload: %s", t->trigger_id,
			 why);
		return -EINVAL;
	}
	return 0;
}

static int check_throttles(const snap_t *s, unsigned max_depth, char *err, size_t errlen)
{
	if (s->n_throttles > SNAP_MAX_THROTTLES) {
		snprintf(err, errlen, "snapshot: too many throttles");
		return -EINVAL;
	}
	for (size_t i = 0; i < s->n_throttles; i++) {
		const Moonpen__Worker__V1__SnapThrottle *t = s->throttles[i];

		if (t->trigger_id == NULL || t->trigger_id[0] == '\0' || t->last_tick < -1 ||
		    (t->last_tick >= 0 && (uint64_t)t->last_tick > s->tick)) {
			snprintf(err, errlen, "snapshot: throttle %zu: bad trigger id or tick",
				 i + 1);
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(s->throttles[j]->trigger_id, t->trigger_id) == 0) {
				snprintf(err, errlen, "snapshot: trigger '%s' throttled twice",
					 t->trigger_id);
				return -EINVAL;
			}
		if (check_pending(s, t, max_depth, err, errlen) < 0)
			return -EINVAL;
	}
	return 0;
}

static int check_header(const snap_t *s, char *err, size_t errlen)
{
	const char *why = NULL;

	if (s->format != SNAP_FORMAT)
		why = "unknown format (this worker reads format 1)";
	else if (s->state_hash.len != 32)
		why = "state_hash is not 32 bytes";
	else if (s->tick_ms == 0 || s->tick_ms > MP_MAX_TICK_MS)
		why = "tick_ms out of range";
	else if (s->n_rng != 4 || (s->rng[0] | s->rng[1] | s->rng[2] | s->rng[3]) == 0)
		why = "rng must be 4 words, not all zero";
	else if (s->next_timer_id == 0 || s->next_call_id == 0)
		why = "next_timer_id and next_call_id start at 1";
	else if (s->n_timers > SNAP_MAX_TIMERS)
		why = "too many timers";
	if (why == NULL)
		return 0;
	snprintf(err, errlen, "snapshot: %s", why);
	return -EINVAL;
}

static int check(const snap_t *s, unsigned max_depth, char *err, size_t errlen)
{
	int r = check_header(s, err, errlen);

	for (size_t i = 0; r == 0 && i < s->n_timers; i++)
		r = check_timer(s, i, max_depth, err, errlen);
	if (r == 0)
		r = check_throttles(s, max_depth, err, errlen);
	return r;
}

int snap_decode(const uint8_t *buf, size_t len, unsigned max_depth, snap_t **out, char *err,
		size_t errlen)
{
	ProtobufCMessage *m = NULL;
	int r;

	*out = NULL;
	if (len > MP_SNAPSHOT_MAX_BYTES) {
		snprintf(err, errlen, "snapshot: %zu bytes exceed the limit of %u", len,
			 MP_SNAPSHOT_MAX_BYTES);
		return -EFBIG;
	}
	r = wire_unpack(&moonpen__worker__v1__snapshot__descriptor, buf, len, MP_SNAPSHOT_MAX_BYTES,
			&m);
	if (r == -ENOMEM) {
		snprintf(err, errlen, "snapshot: out of memory");
		return r;
	}
	if (r < 0) {
		snprintf(err, errlen, "snapshot: not a valid Snapshot message");
		return -EINVAL;
	}
	r = check((snap_t *)m, max_depth, err, errlen);
	if (r < 0) {
		protobuf_c_message_free_unpacked(m, NULL);
		return r;
	}
	*out = (snap_t *)m;
	return 0;
}
