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

int ilog_append(ilog *l, Moonpen__Worker__V1__ToWorker *tw)
{
	ilog_ent e;

	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 64;
		ilog_ent *ne = realloc(l->ents, ncap * sizeof *ne);
		if (ne == NULL)
			return -ENOMEM;
		l->ents = ne;
		l->cap = ncap;
	}
	tw->seq = 0;
	e.len = protobuf_c_message_get_packed_size(&tw->base);
	e.data = malloc(e.len ? e.len : 1);
	if (e.data == NULL)
		return -ENOMEM;
	protobuf_c_message_pack(&tw->base, e.data);
	l->ents[l->n++] = e;
	return 0;
}

int ilog_append_raw(ilog *l, const uint8_t *data, size_t len)
{
	ilog_ent e = {.len = len};

	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 64;
		ilog_ent *ne = realloc(l->ents, ncap * sizeof *ne);
		if (ne == NULL)
			return -ENOMEM;
		l->ents = ne;
		l->cap = ncap;
	}
	e.data = malloc(len ? len : 1);
	if (e.data == NULL)
		return -ENOMEM;
	memcpy(e.data, data, len);
	l->ents[l->n++] = e;
	return 0;
}

void ilog_truncate(ilog *l, size_t n)
{
	while (n-- > 0 && l->n > 0) {
		l->n--;
		free(l->ents[l->n].data);
	}
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
	l->snaps[l->nsnaps++] = s;
	if (keep < 1)
		keep = 1;
	while (l->nsnaps > keep) { /* forget the oldest */
		free(l->snaps[0].data);
		memmove(l->snaps, l->snaps + 1, (l->nsnaps - 1) * sizeof *l->snaps);
		l->nsnaps--;
	}
	ilog_truncate(l, l->n);
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

	ilog_truncate(l, l->n);
	free(l->ents);
	for (i = 0; i < l->nsnaps; i++)
		free(l->snaps[i].data);
	free(l->snaps);
	memset(l, 0, sizeof *l);
}
