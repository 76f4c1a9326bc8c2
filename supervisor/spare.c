/*
 * spare — warm spare workers and the spawner thread (runs in the supervisor;
 * every spare is a wchan whose Hello was checked; a spare may die at any time
 * and is then replaced, never handed out).
 */
#include "supervisor/spare.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"

#define SPARE_CHECK_MS 250    /* how often idle spares are looked at */
#define SPARE_BACKOFF_MS 1000 /* after a failed spawn */

/* A worker asked of the spawner thread; lives on the asker's stack. */
struct spawn_req {
	struct spawn_req *next;
	uint64_t mem_bytes;
	wchan *w;
	int r, done;
	char err[256];
};

struct sup_spares {
	sup *s;
	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* work for the thread, or a request done */
	int stop;
	wchan **ready; /* spares, each spawned with cfg.mem_bytes */
	unsigned nready, want;
	struct spawn_req *reqs;
	struct spawn_req *serving; /* the request being spawned (mu released) */
	uint64_t backoff_until;
	unsigned failures; /* spawns failed in a row (logged once per streak) */
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int spawn(sup *s, uint64_t mem_bytes, wchan **out, char *err, size_t errlen)
{
	wchan_opts o = {.worker_path = s->cfg.worker,
			.run_dir = s->cfg.run_dir,
			.id = atomic_fetch_add(&s->next_worker, 1),
			.mem_bytes = mem_bytes,
			.hello_timeout_ms = s->cfg.spawn_timeout_ms,
			.require = s->cfg.require_layers,
			.wrapper = s->cfg.worker_wrapper};

	return wchan_start(&o, out, err, errlen);
}

/* Drops the spares that died while they waited. Caller holds mu. */
static void drop_dead_locked(sup_spares *sp)
{
	unsigned i, n = 0;

	for (i = 0; i < sp->nready; i++) {
		if (wchan_alive(sp->ready[i])) {
			sp->ready[n++] = sp->ready[i];
			continue;
		}
		log_warn("spare worker %d died while waiting: replaced",
			 (int)wchan_pid(sp->ready[i]));
		wchan_free(sp->ready[i]);
	}
	sp->nready = n;
}

/* Serves one request (mu held on entry and exit, released while spawning). */
static void serve_req_locked(sup_spares *sp)
{
	struct spawn_req *q = sp->reqs;

	sp->reqs = q->next;
	sp->serving = q;
	pthread_mutex_unlock(&sp->mu);
	q->r = spawn(sp->s, q->mem_bytes, &q->w, q->err, sizeof q->err);
	pthread_mutex_lock(&sp->mu);
	sp->serving = NULL;
	q->done = 1;
	pthread_cond_broadcast(&sp->cv);
}

/* Starts one spare (mu held on entry and exit, released while spawning). */
static void refill_locked(sup_spares *sp)
{
	char err[256];
	wchan *w = NULL;
	int r;

	pthread_mutex_unlock(&sp->mu);
	r = spawn(sp->s, sp->s->cfg.mem_bytes, &w, err, sizeof err);
	pthread_mutex_lock(&sp->mu);
	if (r < 0) {
		log_msg(sp->failures++ ? LOG_DEBUG : LOG_WARN, NULL,
			"cannot start a spare worker: %s (retrying every %d ms)", err,
			SPARE_BACKOFF_MS);
		sp->backoff_until = mono_ms() + SPARE_BACKOFF_MS;
		return;
	}
	sp->failures = 0;
	if (sp->stop || sp->nready >= sp->want) {
		wchan_free(w);
	} else {
		sp->ready[sp->nready++] = w;
	}
}

static void wait_locked(sup_spares *sp, unsigned ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&sp->cv, &sp->mu, &ts);
}

static void *spare_main(void *arg)
{
	sup_spares *sp = arg;

	pthread_mutex_lock(&sp->mu);
	while (!sp->stop) {
		drop_dead_locked(sp);
		if (sp->reqs)
			serve_req_locked(sp);
		else if (sp->nready < sp->want && mono_ms() >= sp->backoff_until)
			refill_locked(sp);
		else
			wait_locked(sp, SPARE_CHECK_MS);
	}
	pthread_mutex_unlock(&sp->mu);
	return NULL;
}

int sup_spares_start(sup *s, sup_spares **out)
{
	sup_spares *sp = calloc(1, sizeof *sp);
	pthread_condattr_t ca;
	int r;

	if (sp == NULL)
		return -ENOMEM;
	sp->s = s;
	sp->want = s->cfg.spare_workers;
	sp->ready = calloc(sp->want + 1, sizeof *sp->ready);
	if (sp->ready == NULL) {
		free(sp);
		return -ENOMEM;
	}
	pthread_mutex_init(&sp->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&sp->cv, &ca);
	pthread_condattr_destroy(&ca);
	r = pthread_create(&sp->thr, NULL, spare_main, sp);
	if (r != 0) {
		pthread_mutex_destroy(&sp->mu);
		pthread_cond_destroy(&sp->cv);
		free(sp->ready);
		free(sp);
		return -r;
	}
	*out = sp;
	return 0;
}

/* A live spare that fits, or NULL. Caller holds mu. */
static wchan *take_locked(sup_spares *sp, uint64_t mem_bytes)
{
	wchan *w;

	drop_dead_locked(sp);
	if (sp->nready == 0 || mem_bytes > sp->s->cfg.mem_bytes)
		return NULL;
	w = sp->ready[--sp->nready];
	pthread_cond_broadcast(&sp->cv); /* start its replacement */
	return w;
}

/* Asks the spawner thread for a worker and waits for it. Caller holds mu. */
static int ask_locked(sup_spares *sp, uint64_t mem_bytes, wchan **out, char *err, size_t errlen)
{
	struct spawn_req q = {.mem_bytes = mem_bytes}, **pp = &sp->reqs;

	while (*pp)
		pp = &(*pp)->next;
	*pp = &q;
	pthread_cond_broadcast(&sp->cv);
	while (!q.done && (!sp->stop || sp->serving == &q))
		pthread_cond_wait(&sp->cv, &sp->mu);
	if (!q.done) { /* stopping: unhook the request, the thread will not serve it */
		for (pp = &sp->reqs; *pp && *pp != &q; pp = &(*pp)->next)
			;
		if (*pp)
			*pp = q.next;
		snprintf(err, errlen, "supervisor is shutting down");
		return -ECANCELED;
	}
	if (q.r < 0)
		snprintf(err, errlen, "%s", q.err);
	else
		*out = q.w;
	return q.r;
}

int sup_spares_get(sup_spares *sp, uint64_t mem_bytes, int in_caller, wchan **out, char *err,
		   size_t errlen)
{
	wchan *w;
	int r;

	pthread_mutex_lock(&sp->mu);
	w = take_locked(sp, mem_bytes);
	if (w == NULL && !in_caller) {
		r = ask_locked(sp, mem_bytes, out, err, errlen);
		pthread_mutex_unlock(&sp->mu);
		return r;
	}
	pthread_mutex_unlock(&sp->mu);
	if (w) {
		*out = w;
		return 0;
	}
	return spawn(sp->s, mem_bytes, out, err, errlen);
}

unsigned sup_spares_ready(sup_spares *sp)
{
	unsigned n;

	pthread_mutex_lock(&sp->mu);
	drop_dead_locked(sp);
	n = sp->nready;
	pthread_mutex_unlock(&sp->mu);
	return n;
}

void sup_spares_stop(sup_spares *sp)
{
	unsigned i;

	if (sp == NULL)
		return;
	pthread_mutex_lock(&sp->mu);
	sp->stop = 1;
	pthread_cond_broadcast(&sp->cv);
	pthread_mutex_unlock(&sp->mu);
	pthread_join(sp->thr, NULL);
	/* requests still queued were woken by the broadcast and unhook themselves;
	 * none may remain when the caller follows the contract */
	for (i = 0; i < sp->nready; i++)
		wchan_free(sp->ready[i]);
	pthread_mutex_destroy(&sp->mu);
	pthread_cond_destroy(&sp->cv);
	free(sp->ready);
	free(sp);
}
