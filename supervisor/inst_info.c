/*
 * inst_info — InstanceInfo for GetInstance and ListInstances.
 * Runs in the supervisor; requests were checked by reqcheck.c, worker replies
 * by wchan.c. Locks and the split of the module: supervisor/inst_priv.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/grants.h"
#include "common/log.h"
#include "common/wire.h"
#include "supervisor/inst_priv.h"

/* ---- InstanceInfo ------------------------------------------------------------------- */

static int info_labels(Moonpen__V1__InstanceInfo *fo, const Moonpen__V1__CreateInstance *c)
{
	size_t i;

	if (c->n_labels == 0)
		return 0;
	fo->labels = calloc(c->n_labels, sizeof *fo->labels);
	if (fo->labels == NULL)
		return -ENOMEM;
	for (i = 0; i < c->n_labels; i++) {
		Moonpen__V1__InstanceInfo__LabelsEntry *e = malloc(sizeof *e);
		if (e == NULL)
			return -ENOMEM;
		moonpen__v1__instance_info__labels_entry__init(e);
		fo->labels[fo->n_labels++] = e;
		e->key = strdup(c->labels[i]->key);
		e->value = strdup(c->labels[i]->value);
		if (!e->key || !e->value)
			return -ENOMEM;
	}
	return 0;
}

/* "a,b,c" into a repeated string field (*v, *n). */
static int info_list(char ***v, size_t *n, const char *list)
{
	char buf[512], *save = NULL, *tok;
	size_t cap = 1;
	const char *p;

	for (p = list; *p; p++)
		cap += *p == ',';
	*v = calloc(cap, sizeof **v);
	if (*v == NULL)
		return -ENOMEM;
	snprintf(buf, sizeof buf, "%s", list);
	for (tok = strtok_r(buf, ",", &save); tok && *n < cap; tok = strtok_r(NULL, ",", &save))
		if (((*v)[(*n)++] = strdup(tok)) == NULL)
			return -ENOMEM;
	return 0;
}

static int info_layers(Moonpen__V1__InstanceInfo *fo, const char *layers)
{
	return info_list(&fo->layers, &fo->n_layers, layers);
}

/* Snapshots, log, dead letters, isolation. Caller holds in->mu. */
static int info_recovery(Moonpen__V1__InstanceInfo *fo, const struct inst *in)
{
	const ilog_snap *sn = ilog_snap_newest(&in->ilog);

	fo->snapshot_tick = sn ? sn->tick : 0;
	fo->snapshot_input = sn ? sn->input : 0;
	fo->log_length = (uint32_t)in->ilog.n;
	fo->snapshots = (uint32_t)in->ilog.nsnaps;
	fo->isolation = strdup(in->isolation);
	if (fo->isolation == NULL ||
	    info_list(&fo->missing_layers, &fo->n_missing_layers, in->missing) < 0)
		return -ENOMEM;
	return ilog_dead_to_info(&in->ilog, fo);
}

/* Caller holds in->mu. NULL when out of memory. */
Moonpen__V1__InstanceInfo *inst_make_info(const struct inst *in)
{
	Moonpen__V1__InstanceInfo *fo = malloc(sizeof *fo);
	const Moonpen__V1__CreateInstance *c = in->create->create;

	if (fo == NULL)
		return NULL;
	moonpen__v1__instance_info__init(fo);
	fo->instance_id = strdup(in->id);
	fo->pack_id = strdup(in->pk->mf->id);
	fo->pack_version = strdup(in->pk->mf->version);
	fo->reason = strdup(in->reason);
	fo->state_hash.data = malloc(sizeof in->hash);
	if (!fo->instance_id || !fo->pack_id || !fo->pack_version || !fo->reason ||
	    !fo->state_hash.data || info_labels(fo, c) < 0 || info_layers(fo, in->layers) < 0 ||
	    info_recovery(fo, in) < 0) {
		protobuf_c_message_free_unpacked(&fo->base, NULL);
		return NULL;
	}
	memcpy(fo->state_hash.data, in->hash, sizeof in->hash);
	fo->state_hash.len = sizeof in->hash;
	fo->seed = c->seed;
	fo->tick_ms = in->tick_ms;
	fo->tick = in->tick;
	fo->state = in->state;
	fo->worker_pid = in->pid;
	fo->inputs = in->inputs;
	fo->restarts = in->restarts;
	return fo;
}

void sup_insts_info(sup_insts *is, const char *id, sup_reply *rp)
{
	Moonpen__V1__Response *r;
	struct inst *in;

	pthread_mutex_lock(&is->mu);
	in = inst_find_locked(is, id);
	if (in == NULL) {
		pthread_mutex_unlock(&is->mu);
		return sup_api_fail(rp, MOONPEN__V1__STATUS__CODE__NOT_FOUND, "no instance '%s'",
				    id);
	}
	r = sup_resp_new(MOONPEN__V1__STATUS__CODE__OK, "%s", "");
	pthread_mutex_lock(&in->mu);
	if (r && (r->info = inst_make_info(in)) == NULL) {
		protobuf_c_message_free_unpacked(&r->base, NULL);
		r = NULL;
	}
	pthread_mutex_unlock(&in->mu);
	pthread_mutex_unlock(&is->mu);
	sup_api_reply(rp, r);
}

void sup_insts_list(sup_insts *is, sup_reply *rp)
{
	Moonpen__V1__Response *r = sup_resp_new(MOONPEN__V1__STATUS__CODE__OK, "%s", "");
	struct inst *in;
	unsigned b;

	pthread_mutex_lock(&is->mu);
	if (r && (r->instances = calloc(is->count + 1, sizeof *r->instances)) == NULL) {
		protobuf_c_message_free_unpacked(&r->base, NULL);
		r = NULL;
	}
	for (b = 0; r && b < NBUCKETS; b++)
		for (in = is->buckets[b]; r && in; in = in->hnext) {
			pthread_mutex_lock(&in->mu);
			r->instances[r->n_instances] = inst_make_info(in);
			pthread_mutex_unlock(&in->mu);
			if (r->instances[r->n_instances++] == NULL) {
				protobuf_c_message_free_unpacked(&r->base, NULL);
				r = NULL;
			}
		}
	pthread_mutex_unlock(&is->mu);
	sup_api_reply(rp, r);
}
