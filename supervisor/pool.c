/*
 * pool — shared pool workers (runs in the supervisor; a pool worker is as
 * hostile as any other: wchan checks every reply, and one that misbehaves is
 * killed and replaced, its instances restored from their own snapshots).
 *
 * Locks: ps->mu (the list of pools, slot maps, watchers) and p->mu (one
 * worker's channel, held for a whole RPC) are never held together: a death
 * seen under p->mu is told to the other slots' watchers after p->mu is let go,
 * under ps->mu, which comes before any instance's lock (their callbacks take
 * only that).
 */
#include "supervisor/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "policy/limits.h"
#include "supervisor/wchan.h"

#define POOL_MAX_AS_BYTES (4ull << 30) /* cap of a pool worker's Lua caps summed */

struct pool_watch {
	sup_pool_lost_fn lost; /* NULL: nobody to tell */
	void *arg;
};

struct sup_pool {
	struct sup_pool *next; /* ps->pools (ps->mu) */
	sup_pools *ps;
	char pack[MP_MAX_ID_BYTES + 1];
	char name[MP_MAX_ID_BYTES + 32];
	uint64_t inst_mem;	  /* the Lua cap of each instance it hosts */
	uint64_t mem_bytes;	  /* the worker's address-space sizing */
	unsigned char *used;	  /* slot map, pool_size entries (ps->mu) */
	struct pool_watch *watch; /* per slot: told when its worker dies (ps->mu) */
	unsigned users;		  /* slots taken (ps->mu) */

	pthread_mutex_t mu; /* the fields below */
	wchan *w;	    /* NULL: none yet, or the last one died */
	uint64_t gen;	    /* moves on each time a worker is dropped */
};

struct sup_pools {
	sup *s;
	sup_spares *sp;
	pthread_mutex_t mu;
	sup_pool *pools;
};

int sup_pools_new(sup *s, sup_spares *sp, sup_pools **out)
{
	sup_pools *ps = calloc(1, sizeof *ps);

	if (ps == NULL)
		return -ENOMEM;
	ps->s = s;
	ps->sp = sp;
	pthread_mutex_init(&ps->mu, NULL);
	*out = ps;
	return 0;
}

static sup_pool *pool_new(sup_pools *ps, const char *pack_id, uint64_t mem_bytes)
{
	unsigned size = ps->s->cfg.pool_size;
	sup_pool *p = calloc(1, sizeof *p);
	unsigned n = 0;
	sup_pool *q = ps->pools;

	if (p == NULL || (p->used = calloc(size, 1)) == NULL ||
	    (p->watch = calloc(size, sizeof *p->watch)) == NULL) {
		if (p)
			free(p->used);
		free(p);
		return NULL;
	}
	p->ps = ps;
	snprintf(p->pack, sizeof p->pack, "%s", pack_id);
	snprintf(p->name, sizeof p->name, "pool:%s#%u", pack_id, n);
	while (q) { /* the lowest number free for the pack */
		if (strcmp(q->name, p->name) == 0) {
			snprintf(p->name, sizeof p->name, "pool:%s#%u", pack_id, ++n);
			q = ps->pools;
			continue;
		}
		q = q->next;
	}
	p->inst_mem = mem_bytes;
	p->mem_bytes = mem_bytes * size;
	if (p->mem_bytes > POOL_MAX_AS_BYTES || p->mem_bytes / size != mem_bytes)
		p->mem_bytes = POOL_MAX_AS_BYTES;
	p->gen = 1;
	pthread_mutex_init(&p->mu, NULL);
	return p;
}

int sup_pool_join(sup_pools *ps, const char *pack_id, uint64_t mem_bytes, sup_pool_lost_fn lost,
		  void *arg, sup_pool **out, uint32_t *slot)
{
	unsigned size = ps->s->cfg.pool_size, i;
	sup_pool *p;

	pthread_mutex_lock(&ps->mu);
	for (p = ps->pools; p; p = p->next)
		if (strcmp(p->pack, pack_id) == 0 && p->users < size && p->inst_mem == mem_bytes)
			break;
	if (p == NULL && (p = pool_new(ps, pack_id, mem_bytes)) != NULL) {
		p->next = ps->pools;
		ps->pools = p;
	}
	if (p == NULL) {
		pthread_mutex_unlock(&ps->mu);
		return -ENOMEM;
	}
	for (i = 0; i < size && p->used[i]; i++)
		;
	p->used[i] = 1;
	p->watch[i].lost = lost;
	p->watch[i].arg = arg;
	p->users++;
	pthread_mutex_unlock(&ps->mu);
	*out = p;
	*slot = i;
	return 0;
}

static void pool_free(sup_pool *p)
{
	wchan_free(p->w);
	pthread_mutex_destroy(&p->mu);
	free(p->used);
	free(p->watch);
	free(p);
}

void sup_pool_close_slot(sup_pool *p, uint32_t slot, uint64_t gen)
{
	Moonpen__Worker__V1__ToWorker tw = MOONPEN__WORKER__V1__TO_WORKER__INIT;
	Moonpen__Worker__V1__Close cl = MOONPEN__WORKER__V1__CLOSE__INIT;
	Moonpen__Worker__V1__FromWorker *fw = NULL;
	char why[64];
	st_code code;

	tw.slot = slot;
	tw.op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_CLOSE;
	tw.close = &cl;
	if (sup_pool_rpc(p, &gen, 0, &tw, MP_HARD_DEADLINE_FLOOR_MS, &fw, &code, why, sizeof why) ==
	    0)
		protobuf_c_message_free_unpacked(&fw->base, NULL);
}

void sup_pool_leave(sup_pools *ps, sup_pool *p, uint32_t slot, uint64_t gen)
{
	sup_pool **pp;
	int last;

	if (gen)
		sup_pool_close_slot(p, slot, gen);
	pthread_mutex_lock(&ps->mu);
	p->used[slot] = 0;
	p->watch[slot].lost = NULL;
	p->watch[slot].arg = NULL;
	last = --p->users == 0;
	if (last) {
		for (pp = &ps->pools; *pp && *pp != p; pp = &(*pp)->next)
			;
		if (*pp)
			*pp = p->next;
	}
	pthread_mutex_unlock(&ps->mu);
	if (last)
		pool_free(p);
}

/* Tells every watched slot but `except` (whose own thread saw the death) that
 * worker pid died. Caller holds no pool lock; the caller's slot keeps p alive. */
static void tell_lost(sup_pool *p, uint32_t except, int pid)
{
	sup_pools *ps = p->ps;
	unsigned i;

	pthread_mutex_lock(&ps->mu);
	for (i = 0; i < ps->s->cfg.pool_size; i++)
		if (i != except && p->used[i] && p->watch[i].lost)
			p->watch[i].lost(p->watch[i].arg, pid);
	pthread_mutex_unlock(&ps->mu);
}

/* A live worker for an Init; *lost the pid of one found dead (else 0). Caller
 * holds p->mu. */
static int ensure_worker(sup_pool *p, int *lost, char *why, size_t whylen)
{
	int r;

	if (p->w && wchan_alive(p->w))
		return 0;
	if (p->w) { /* died idle: drop it */
		*lost = (int)wchan_pid(p->w);
		log_warn("%s: worker %d found dead; its instances will be restored", p->name,
			 *lost);
		wchan_free(p->w);
		p->w = NULL;
		p->gen++;
	}
	r = sup_spares_get(p->ps->sp, p->mem_bytes, 0, &p->w, why, whylen);
	if (r < 0)
		p->w = NULL;
	else
		log_info("%s: worker %d started", p->name, (int)wchan_pid(p->w));
	return r;
}

int sup_pool_rpc(sup_pool *p, uint64_t *gen, int init, Moonpen__Worker__V1__ToWorker *m,
		 uint32_t timeout_ms, Moonpen__Worker__V1__FromWorker **out, st_code *code,
		 char *why, size_t whylen)
{
	const char *death;
	int r = 0, lost = 0;

	*code = MOONPEN__V1__STATUS__CODE__UNAVAILABLE;
	pthread_mutex_lock(&p->mu);
	if (init)
		r = ensure_worker(p, &lost, why, whylen);
	else if (p->w == NULL || *gen != p->gen)
		r = -ESTALE;
	if (r == 0) {
		*gen = p->gen;
		r = wchan_rpc(p->w, m, timeout_ms, out);
		if (r < 0 && r != -ENOMEM) {
			*code = wchan_death(p->w, &death);
			snprintf(why, whylen, "%s", death);
			lost = (int)wchan_pid(p->w);
			log_warn("%s: worker %d lost (%s); its instances will be restored", p->name,
				 lost, death);
			wchan_free(p->w);
			p->w = NULL;
			p->gen++;
		}
	} else if (r == -ESTALE) {
		snprintf(why, whylen, "%s", "the pool worker was replaced");
	}
	pthread_mutex_unlock(&p->mu);
	if (lost)
		tell_lost(p, m->slot, lost);
	return r;
}

int sup_pool_stale(sup_pool *p, uint64_t gen)
{
	int stale;

	pthread_mutex_lock(&p->mu);
	stale = gen != p->gen;
	pthread_mutex_unlock(&p->mu);
	return stale;
}

const char *sup_pool_name(const sup_pool *p)
{
	return p->name;
}

void sup_pool_worker(sup_pool *p, int *pid, char *layers, size_t llen, char *missing, size_t mlen)
{
	pthread_mutex_lock(&p->mu);
	*pid = p->w ? (int)wchan_pid(p->w) : 0;
	snprintf(layers, llen, "%s", p->w ? wchan_layers(p->w) : "");
	snprintf(missing, mlen, "%s", p->w ? wchan_missing(p->w) : "");
	pthread_mutex_unlock(&p->mu);
}

void sup_pools_free(sup_pools *ps)
{
	sup_pool *p, *next;

	if (ps == NULL)
		return;
	for (p = ps->pools; p; p = next) {
		next = p->next;
		pool_free(p);
	}
	pthread_mutex_destroy(&ps->mu);
	free(ps);
}
