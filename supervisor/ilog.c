/*
 * ilog — input log, in-memory snapshots and dead letters of one instance
 * (runs in the supervisor; snapshot blobs come from a worker: hostile).
 */
#include "supervisor/ilog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/wire.h"
#include "policy/limits.h"

/* ents: the entries since the newest snapshot, the tail of all[] (NULL while
 * all[] is: no pointer arithmetic on NULL). */
static void set_ents(ilog *l)
{
	l->ents = l->all ? l->all + (l->nall - l->n) : NULL;
}

/* Room for one more entry at the end of all[]; ents follows it. */
static int grow(ilog *l)
{
	if (l->nall == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 64;
		ilog_ent *ne = realloc(l->all, ncap * sizeof *ne);
		if (ne == NULL)
			return -ENOMEM;
		l->all = ne;
		l->cap = ncap;
	}
	set_ents(l);
	return 0;
}

static void push(ilog *l, const ilog_ent *e)
{
	l->all[l->nall++] = *e;
	l->n++;
	set_ents(l);
}

static int is_input(int op)
{
	return op == MOONPEN__WORKER__V1__TO_WORKER__OP_EVENT ||
	       op == MOONPEN__WORKER__V1__TO_WORKER__OP_TICK ||
	       op == MOONPEN__WORKER__V1__TO_WORKER__OP_CALL;
}

int ilog_append(ilog *l, Moonpen__Worker__V1__ToWorker *tw)
{
	ilog_ent e = {0};

	if (grow(l) < 0)
		return -ENOMEM;
	tw->seq = 0;
	e.input = is_input(tw->op_case);
	e.len = protobuf_c_message_get_packed_size(&tw->base);
	e.data = malloc(e.len ? e.len : 1);
	if (e.data == NULL)
		return -ENOMEM;
	protobuf_c_message_pack(&tw->base, e.data);
	push(l, &e);
	return 0;
}

int ilog_append_raw(ilog *l, const uint8_t *data, size_t len)
{
	ilog_ent e = {.len = len};
	ProtobufCMessage *m = NULL;

	if (grow(l) < 0)
		return -ENOMEM;
	/* an entry read back without its outcome: a trace cannot start before it */
	if (wire_unpack(&moonpen__worker__v1__to_worker__descriptor, data, len, SIZE_MAX, &m) ==
	    0) {
		e.input = is_input(((Moonpen__Worker__V1__ToWorker *)m)->op_case);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	e.data = malloc(len ? len : 1);
	if (e.data == NULL)
		return -ENOMEM;
	memcpy(e.data, data, len);
	push(l, &e);
	return 0;
}

int ilog_append_old(ilog *l, const uint8_t *data, size_t len, uint64_t *tick)
{
	ilog_ent e = {.len = len};
	ProtobufCMessage *m = NULL;
	Moonpen__Worker__V1__ToWorker *tw;
	int r = wire_unpack(&moonpen__worker__v1__to_worker__descriptor, data, len, SIZE_MAX, &m);

	if (r < 0)
		return r == -ENOMEM ? r : -EBADMSG;
	tw = (Moonpen__Worker__V1__ToWorker *)m;
	e.input = is_input(tw->op_case);
	if (e.input) {
		uint32_t count = tw->op_case == MOONPEN__WORKER__V1__TO_WORKER__OP_TICK && tw->tick
				     ? tw->tick->count
				     : 0;
		e.done = e.ticks_only = 1;
		e.tick = *tick;
		if (tw->op_case == MOONPEN__WORKER__V1__TO_WORKER__OP_TICK)
			*tick += count ? count : 1;
		e.tick_after = *tick;
	}
	protobuf_c_message_free_unpacked(m, NULL);
	if (grow(l) < 0 || (e.data = malloc(len ? len : 1)) == NULL)
		return -ENOMEM;
	memcpy(e.data, data, len);
	push(l, &e);
	return 0;
}

static void ent_free(ilog_ent *e)
{
	free(e->data);
	free(e->out);
}

void ilog_truncate(ilog *l, size_t n)
{
	while (n-- > 0 && l->n > 0) {
		l->n--;
		l->nall--;
		ent_free(&l->all[l->nall]);
	}
	set_ents(l);
}

int ilog_get(const ilog *l, size_t i, Moonpen__Worker__V1__ToWorker **out)
{
	ProtobufCMessage *m = NULL;
	int r;

	if (i >= l->n)
		return -EINVAL;
	r = wire_unpack(&moonpen__worker__v1__to_worker__descriptor, l->ents[i].data,
			l->ents[i].len, SIZE_MAX, &m);
	if (r < 0)
		return r;
	*out = (Moonpen__Worker__V1__ToWorker *)m;
	return 0;
}

/* Checks the header of a worker's snapshot blob and fills s (data unset). */
static int snap_header(const uint8_t *blob, size_t len, const char *id, ilog_snap *s, char *err,
		       size_t errlen)
{
	ProtobufCMessage *m = NULL;
	Moonpen__Worker__V1__Snapshot *h;
	int r = wire_unpack(&moonpen__worker__v1__snapshot__descriptor, blob, len,
			    MP_SNAPSHOT_MAX_BYTES, &m);

	if (r < 0) {
		snprintf(err, errlen, "snapshot of %zu bytes does not decode", len);
		return r == -ENOMEM ? r : -EBADMSG;
	}
	h = (Moonpen__Worker__V1__Snapshot *)m;
	if (h->format != 1 || strcmp(h->instance_id, id) != 0 || h->state_hash.len != 32) {
		snprintf(err, errlen, "snapshot header refused (format %u, %s hash of %zu bytes)",
			 h->format, strcmp(h->instance_id, id) ? "another instance," : "",
			 h->state_hash.len);
		r = -EBADMSG;
	} else {
		s->tick = h->tick;
		memcpy(s->hash, h->state_hash.data, 32);
	}
	protobuf_c_message_free_unpacked(m, NULL);
	return r;
}

/* Drops the entries before position seq (no restore point needs them). */
static void drop_before(ilog *l, uint64_t seq)
{
	size_t k = seq > l->seq0 ? (size_t)(seq - l->seq0) : 0, i;

	if (k > l->nall - l->n)
		k = l->nall - l->n;
	for (i = 0; i < k; i++) {
		l->out_bytes -= l->all[i].out_len;
		ent_free(&l->all[i]);
	}
	memmove(l->all, l->all + k, (l->nall - k) * sizeof *l->all);
	l->nall -= k;
	l->seq0 += k;
	set_ents(l);
}

static void drop_oldest_point(ilog *l)
{
	if (l->create_ok) {
		l->create_ok = 0;
		free(l->init_out);
		l->init_out = NULL;
		l->init_out_len = 0;
	} else {
		free(l->snaps[0].data);
		memmove(l->snaps, l->snaps + 1, (l->nsnaps - 1) * sizeof *l->snaps);
		l->nsnaps--;
	}
	if (l->nsnaps > 0)
		drop_before(l, l->snaps[0].seq);
}

/* Past ILOG_MAX_OUTCOME_BYTES, forgets the oldest outcomes before the newest
 * snapshot (their inputs stay: Rollback still replays them). */
static void cap_outcomes(ilog *l)
{
	size_t i;

	for (i = 0; l->out_bytes > ILOG_MAX_OUTCOME_BYTES && i < l->nall - l->n; i++) {
		l->out_bytes -= l->all[i].out_len;
		free(l->all[i].out);
		l->all[i].out = NULL;
		l->all[i].out_len = 0;
	}
}

int ilog_snap_add(ilog *l, const uint8_t *blob, size_t len, const char *id, uint64_t input,
		  unsigned keep, char *err, size_t errlen)
{
	ilog_snap s = {0}, *ns;
	int r = snap_header(blob, len, id, &s, err, errlen);

	if (r < 0)
		return r;
	s.input = input;
	s.len = len;
	if ((s.data = malloc(len ? len : 1)) == NULL)
		return -ENOMEM;
	memcpy(s.data, blob, len);
	ns = realloc(l->snaps, (l->nsnaps + 1) * sizeof *ns);
	if (ns == NULL) {
		free(s.data);
		return -ENOMEM;
	}
	l->snaps = ns;
	s.seq = l->seq0 + l->nall;
	l->snaps[l->nsnaps++] = s;
	for (size_t i = l->nall - l->n; i < l->nall; i++) /* now before the newest */
		l->out_bytes += l->all[i].out_len;
	l->n = 0;
	set_ents(l);
	if (keep < 1)
		keep = 1;
	while (l->nsnaps + (l->create_ok ? 1 : 0) > keep) /* forget the oldest point */
		drop_oldest_point(l);
	cap_outcomes(l);
	return 0;
}

const ilog_snap *ilog_snap_newest(const ilog *l)
{
	return l->nsnaps ? &l->snaps[l->nsnaps - 1] : NULL;
}

void ilog_dead_add(ilog *l, const ilog_dead *d)
{
	l->dead[l->ndead % ILOG_MAX_DEAD] = *d;
	l->ndead++;
}

static Moonpen__V1__DeadLetter *dead_msg(const ilog_dead *d)
{
	Moonpen__V1__DeadLetter *m = malloc(sizeof *m);

	if (m == NULL)
		return NULL;
	moonpen__v1__dead_letter__init(m);
	m->input = d->input;
	m->tick = d->tick;
	m->code = d->code;
	m->kind = strdup(d->kind);
	m->name = strdup(d->name);
	m->message = strdup(d->message);
	if (!m->kind || !m->name || !m->message) {
		protobuf_c_message_free_unpacked(&m->base, NULL);
		return NULL;
	}
	return m;
}

int ilog_dead_to_info(const ilog *l, Moonpen__V1__InstanceInfo *info)
{
	size_t kept = l->ndead < ILOG_MAX_DEAD ? l->ndead : ILOG_MAX_DEAD, i;

	if (kept == 0)
		return 0;
	info->dead_letters = calloc(kept, sizeof *info->dead_letters);
	if (info->dead_letters == NULL)
		return -ENOMEM;
	for (i = l->ndead - kept; i < l->ndead; i++) {
		Moonpen__V1__DeadLetter *m = dead_msg(&l->dead[i % ILOG_MAX_DEAD]);
		if (m == NULL)
			return -ENOMEM;
		info->dead_letters[info->n_dead_letters++] = m;
	}
	return 0;
}

void ilog_free(ilog *l)
{
	size_t i;

	for (i = 0; i < l->nall; i++)
		ent_free(&l->all[i]);
	free(l->all);
	free(l->init_out);
	for (i = 0; i < l->nsnaps; i++)
		free(l->snaps[i].data);
	free(l->snaps);
	memset(l, 0, sizeof *l);
}

/* ---- outcomes, rollback, reset, traces (H3) ------------------------------------------ */

static int pack_result(const Moonpen__V1__Result *res, uint8_t **out, size_t *len)
{
	*len = protobuf_c_message_get_packed_size(&res->base);
	*out = malloc(*len ? *len : 1);
	if (*out == NULL)
		return -ENOMEM;
	protobuf_c_message_pack(&res->base, *out);
	return 0;
}

int ilog_set_outcome(ilog *l, const Moonpen__V1__Result *res, uint64_t tick_before)
{
	ilog_ent *e = NULL;
	size_t i;

	for (i = l->n; i-- > 0;)
		if (l->ents[i].input) {
			e = &l->ents[i];
			break;
		}
	if (e == NULL)
		return -ENOENT;
	free(e->out);
	e->out = NULL;
	e->out_len = 0;
	e->done = e->ticks_only = 0;
	if (pack_result(res, &e->out, &e->out_len) < 0)
		return -ENOMEM;
	e->tick = tick_before;
	e->tick_after = res->tick;
	if (res->state_hash.len == sizeof e->hash_after)
		memcpy(e->hash_after, res->state_hash.data, sizeof e->hash_after);
	e->done = 1;
	return 0;
}

int ilog_set_create(ilog *l, const Moonpen__V1__Result *res)
{
	free(l->init_out);
	l->init_out = NULL;
	l->init_out_len = 0;
	l->create_ok = 1;
	l->create_tick = res ? res->tick : 0;
	return res ? pack_result(res, &l->init_out, &l->init_out_len) : 0;
}

/* Index in all[] of the first entry after a restore point (NULL: creation). */
static size_t point_first(const ilog *l, const ilog_snap *sn)
{
	return sn ? (size_t)(sn->seq - l->seq0) : 0;
}

int ilog_rollback_plan(const ilog *l, uint64_t tick, const ilog_snap **snap, size_t *keep,
		       uint64_t *oldest_tick)
{
	size_t i, first, k = 0;

	*snap = NULL;
	for (i = l->nsnaps; i-- > 0;)
		if (l->snaps[i].tick <= tick) {
			*snap = &l->snaps[i];
			break;
		}
	if (*snap == NULL && !(l->create_ok && l->create_tick <= tick)) {
		*oldest_tick = l->create_ok ? l->create_tick : l->nsnaps ? l->snaps[0].tick : 0;
		return -ENOENT;
	}
	first = point_first(l, *snap);
	for (i = first; i < l->nall; i++) {
		const ilog_ent *e = &l->all[i];
		if (e->input && (!e->done || e->tick_after > tick))
			break;
		k = i + 1 - first;
	}
	*keep = k;
	return 0;
}

size_t ilog_rollback(ilog *l, const ilog_snap *snap, size_t keep)
{
	size_t end = point_first(l, snap) + keep, dropped = l->nall - end, i;
	size_t ns = snap ? (size_t)(snap - l->snaps) + 1 : 0;

	for (i = ns; i < l->nsnaps; i++)
		free(l->snaps[i].data);
	l->nsnaps = ns;
	for (i = end; i < l->nall; i++)
		ent_free(&l->all[i]);
	l->nall = end;
	l->n = l->nall - point_first(l, snap);
	set_ents(l);
	l->out_bytes = 0;
	for (i = 0; i < l->nall - l->n; i++)
		l->out_bytes += l->all[i].out_len;
	return dropped;
}

void ilog_reset(ilog *l)
{
	size_t i;

	for (i = 0; i < l->nall; i++)
		ent_free(&l->all[i]);
	for (i = 0; i < l->nsnaps; i++)
		free(l->snaps[i].data);
	l->seq0 += l->nall;
	l->nall = l->n = l->nsnaps = 0;
	l->ents = l->all;
	l->out_bytes = 0;
	l->create_ok = 0;
	free(l->init_out);
	l->init_out = NULL;
	l->init_out_len = 0;
}

int ilog_trace_start(const ilog *l, const ilog_snap **snap, size_t *first)
{
	size_t i = l->nall, p;

	/* i: the lowest index from which every input has its outcome */
	while (i > 0 && (!l->all[i - 1].input || l->all[i - 1].out != NULL))
		i--;
	if (l->create_ok && i == 0) {
		*snap = NULL;
		*first = 0;
		return 0;
	}
	for (p = 0; p < l->nsnaps; p++)
		if (point_first(l, &l->snaps[p]) >= i) {
			*snap = &l->snaps[p];
			*first = point_first(l, *snap);
			return 0;
		}
	return -ENOENT;
}
