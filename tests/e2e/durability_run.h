/*
 * durability_run — the crash-and-compare run shared by tests/e2e/test_durability.c
 * and tests/bench/bench_soak.c (test processes only; trusts the daemons it
 * starts). Header-only: every function is static inline.
 *
 * A durable moonpend (its own state folder) serves n instances of the
 * "recovery" pack (state, timers, the instance RNG, a throttled trigger) to a
 * few client threads sending random ticks and events (fixed seed); it is
 * SIGKILLed at random points and restarted on the same state folder. Every
 * input is recorded with its fate: acknowledged (answered OK: its effects are
 * kept), failed (answered with an error), or in flight at a kill (no answer).
 * After each restart, a barrier tick per instance (queued behind anything still
 * in flight) and GetInstance's `inputs` decide each in-flight input: applied
 * exactly once, or not at all; anything else fails the run. At the end a
 * reference moonpend (durability memory) is fed exactly the applied inputs:
 * every acknowledged input must have had the same effects there, and every
 * instance the same tick and state hash.
 */
#ifndef MOONPEN_TEST_DURABILITY_RUN_H
#define MOONPEN_TEST_DURABILITY_RUN_H

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/moonpen.h"
#include "common/val_json.h"
#include "tests/support/daemon.h"
#include "tests/support/resp.h"

#define DR_PACKS "tests/e2e/packs"
#define DR_MAX_THREADS 16
#define DR_RECV_MS 1500 /* a reply later than this is taken as in flight */

/* ---- a moonpend on a state folder of its own, restartable --------------------------------- */

typedef struct dr_daemon {
	char dir[256]; /* state folder; run/ and moonpend.log inside */
	char run[300], url[320], log[300];
	pid_t pid;
} dr_daemon;

static inline int dr_init(dr_daemon *d)
{
	memset(d, 0, sizeof *d);
	snprintf(d->dir, sizeof d->dir, "/tmp/moonpen-dur.XXXXXX");
	if (mkdtemp(d->dir) == NULL)
		return -1;
	snprintf(d->run, sizeof d->run, "%s/run", d->dir);
	snprintf(d->url, sizeof d->url, "ipc://%s/api.sock", d->run);
	snprintf(d->log, sizeof d->log, "%s/moonpend.log", d->dir);
	return 0;
}

/* Starts moonpend on d's folders (the log is appended to) and waits until its
 * API answers. extra: NULL-terminated flags, may be NULL. 0, or -1 when it
 * exited first (its status in *status when status is not NULL). */
static inline int dr_start(dr_daemon *d, const char *durability, const char *const *extra,
			   int *status)
{
	const char *argv[40] = {"--durability", durability, "--snapshot-every", "16",
				/* a loaded machine must not fail inputs (timeout) */
				"--deadline-ms", "1000"};
	int n = 6, i;
	double end;

	for (i = 0; extra && extra[i] && n < 39; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	d->pid = td_exec(d->url, DR_PACKS, d->run, d->dir, d->log, SIGKILL, argv);
	if (d->pid < 0)
		return -1;
	end = td_now_ms() + (td_slow() ? 120000 : 30000); /* bounds a loaded machine only */
	do {
		int st = 0;
		if (td_api_answers(d->url))
			return 0;
		if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
			d->pid = 0;
			if (status)
				*status = st;
			return -1;
		}
		usleep(5000);
	} while (td_now_ms() < end);
	return -1;
}

static inline void dr_kill9(dr_daemon *d)
{
	if (d->pid > 0) {
		kill(d->pid, SIGKILL);
		waitpid(d->pid, NULL, 0);
	}
	d->pid = 0;
}

/* SIGTERM; the exit status (0 expected), -1 when it did not exit normally. */
static inline int dr_stop(dr_daemon *d)
{
	int st = 0;

	if (d->pid <= 0)
		return -1;
	kill(d->pid, SIGTERM);
	if (waitpid(d->pid, &st, 0) != d->pid)
		return -1;
	d->pid = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static inline void dr_remove(dr_daemon *d)
{
	char cmd[400];

	dr_kill9(d);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", d->dir);
}

/* ---- the run --------------------------------------------------------------------------------- */

enum { DR_UNKNOWN = 0, DR_ACKED = 1, DR_FAILED = 2, DR_APPLIED = 3 /* in flight, applied */ };

typedef struct dr_op {
	unsigned char kind; /* 0 tick, 1 event add, 2 event hit */
	unsigned short arg;
	unsigned char fate;
	char *effects; /* acknowledged: the effects it was answered with */
} dr_op;

typedef struct dr_inst {
	char id[32];
	uint64_t seed;
	dr_op *ops;
	size_t n, cap;
	uint64_t applied; /* inputs known to be applied */
	char hash[130];
	uint64_t tick;
} dr_inst;

typedef struct dr_cfg {
	int instances, threads, kills;
	double min_run_ms, max_run_ms; /* how long each phase runs before its kill */
	const char *durability;	       /* of the crashed moonpend: "process" | "power" */
	unsigned seed;
} dr_cfg;

typedef struct dr_result {
	int kills, inputs, acked, in_flight, in_flight_applied, compared_effects, compared_hashes;
	char fail[600];
} dr_result;

typedef struct dr_run {
	const dr_cfg *cfg;
	dr_result *res;
	dr_daemon d;
	dr_inst *in;
	pthread_mutex_t mu; /* fail */
	atomic_int stop;
} dr_run;

static inline void dr_fail(dr_run *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void dr_fail(dr_run *x, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&x->mu);
	if (x->res->fail[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(x->res->fail, sizeof x->res->fail, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&x->mu);
}

static inline dr_op *dr_push(dr_inst *in, unsigned kind, unsigned arg)
{
	if (in->n == in->cap) {
		size_t ncap = in->cap ? in->cap * 2 : 256;
		dr_op *no = realloc(in->ops, ncap * sizeof *no);
		if (no == NULL)
			abort();
		in->ops = no;
		in->cap = ncap;
	}
	in->ops[in->n] = (dr_op){.kind = (unsigned char)kind, .arg = (unsigned short)arg};
	return &in->ops[in->n++];
}

/* The effects of r, one "api.fn[args]" line each (as tr_effects, which is
 * not thread-safe): malloc'd. */
static inline char *dr_effects(const mp_response *r)
{
	size_t len = 0, i, k;
	char *out = NULL;
	FILE *f = open_memstream(&out, &len);

	if (f == NULL)
		abort();
	for (i = 0; r && r->result && i < r->result->n_effects; i++) {
		const Moonpen__V1__Effect *e = r->result->effects[i];
		json_t *a = json_array();
		char *js;
		for (k = 0; k < e->n_args; k++)
			json_array_append_new(a, vjson_to_json(e->args[k]));
		js = json_dumps(a, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
		fprintf(f, "%s.%s%s\n", e->api, e->fn, js ? js : "?");
		free(js);
		json_decref(a);
	}
	if (fclose(f) != 0 || out == NULL)
		abort();
	return out;
}

/* The state hash of r in lower-case hex ("" when absent), into h[65]. */
static inline void dr_hash(const mp_response *r, char *h)
{
	h[0] = '\0';
	for (size_t i = 0; r && r->result && i < r->result->state_hash.len && i < 32; i++)
		snprintf(h + 2 * i, 3, "%02x", r->result->state_hash.data[i]);
}

/* Sends op to id. 0 and *r, or the transport error. */
static inline int dr_send(mp_client *c, const char *id, const dr_op *op, mp_response **r)
{
	char json[48], err[64];
	val_t *v = NULL;
	int rc;

	if (op->kind == 0)
		return mp_tick(c, id, op->arg, r);
	if (op->kind == 2)
		return mp_event(c, id, "hit", NULL, r);
	snprintf(json, sizeof json, "{\"n\":%u}", op->arg);
	if (vjson_parse(json, 8, &v, err, sizeof err) < 0)
		return -EINVAL;
	rc = mp_event(c, id, "add", v, r);
	val_free(v);
	return rc;
}

/* Sends op (pushed on in) and records its fate. 0, or -1 when it is in
 * flight (no answer). */
static inline int dr_do(dr_run *x, mp_client *c, dr_inst *in, dr_op *op)
{
	mp_response *r = NULL;
	int rc = dr_send(c, in->id, op, &r);

	if (rc < 0)
		return -1; /* DR_UNKNOWN until the restarted instance tells */
	if (mp_status_code(r) == MOONPEN__V1__STATUS__CODE__OK) {
		op->fate = DR_ACKED;
		op->effects = dr_effects(r);
		in->applied++;
		dr_hash(r, in->hash);
		in->tick = r->result ? r->result->tick : 0;
	} else {
		op->fate = DR_FAILED;
		dr_fail(x, "%s: input %zu answered %s: %s", in->id, (size_t)(op - in->ops),
			tr_code(r), tr_msg(r));
	}
	mp_response_free(r);
	return 0;
}

struct dr_thread {
	dr_run *x;
	int t;
	unsigned rng;
};

/* A client thread: random inputs to its own instances until told to stop or
 * an answer does not come (moonpend was killed). */
static inline void *dr_client(void *arg)
{
	struct dr_thread *th = arg;
	dr_run *x = th->x;
	const dr_cfg *c = x->cfg;
	mp_client *cl = NULL;
	int mine = 0;

	if (mp_connect(x->d.url, &cl) < 0 || mp_set_timeouts(cl, DR_RECV_MS, DR_RECV_MS) < 0) {
		dr_fail(x, "thread %d cannot connect", th->t);
		mp_disconnect(cl);
		return NULL;
	}
	for (int i = th->t; i < c->instances; i += c->threads)
		mine++;
	while (!atomic_load(&x->stop) && mine > 0) {
		int k = (int)(rand_r(&th->rng) % (unsigned)mine);
		dr_inst *in = &x->in[th->t + k * c->threads];
		unsigned kind = rand_r(&th->rng) % 3, a = 1 + rand_r(&th->rng) % 50;
		dr_op *op = dr_push(in, kind, kind == 0 ? 1 + a % 3 : a);
		if (dr_do(x, cl, in, op) < 0)
			break;
	}
	mp_disconnect(cl);
	return NULL;
}

static inline int dr_info(dr_run *x, mp_client *cl, const char *id, mp_response **r)
{
	if (mp_info(cl, id, r) < 0 || mp_status_code(*r) != MOONPEN__V1__STATUS__CODE__OK) {
		dr_fail(x, "GetInstance %s failed after a restart: %s", id,
			*r ? tr_msg(*r) : "no answer");
		mp_response_free(*r);
		*r = NULL;
		return -1;
	}
	return 0;
}

/* After a restart (or at the end): a barrier tick per instance, then decides
 * its in-flight input from GetInstance's inputs. */
static inline int dr_settle(dr_run *x)
{
	mp_client *cl = NULL;
	int i, r = 0;

	if (mp_connect(x->d.url, &cl) < 0 || mp_set_timeouts(cl, 30000, 30000) < 0) {
		mp_disconnect(cl);
		dr_fail(x, "cannot connect after a restart");
		return -1;
	}
	for (i = 0; i < x->cfg->instances && r == 0; i++) {
		dr_inst *in = &x->in[i];
		dr_op *last = in->n ? &in->ops[in->n - 1] : NULL;
		dr_op *fly = last && last->fate == DR_UNKNOWN ? last : NULL;
		mp_response *fo = NULL;
		uint64_t got;
		if (dr_do(x, cl, in, dr_push(in, 0, 1)) < 0 || dr_info(x, cl, in->id, &fo) < 0) {
			dr_fail(x, "%s: no answer after a restart", in->id);
			r = -1;
			break;
		}
		fly = fly ? &in->ops[in->n - 2] : NULL; /* ops may have moved */
		got = fo->info->inputs;
		if (fly) {
			x->res->in_flight++;
			if (got == in->applied + 1) {
				fly->fate = DR_APPLIED;
				in->applied++;
				x->res->in_flight_applied++;
			} else if (got == in->applied) {
				fly->fate = DR_FAILED;
			}
		}
		if (got != in->applied) {
			dr_fail(x, "%s: %llu inputs applied after a restart, %llu expected", in->id,
				(unsigned long long)got, (unsigned long long)in->applied);
			r = -1;
		}
		mp_response_free(fo);
	}
	mp_disconnect(cl);
	return r;
}

static inline int dr_create_all(dr_run *x, const char *url)
{
	mp_client *cl = NULL;
	int i, r = 0;

	if (mp_connect(url, &cl) < 0)
		return -1;
	for (i = 0; i < x->cfg->instances && r == 0; i++) {
		mp_create_opts o = {
		    .instance_id = x->in[i].id, .pack_id = "recovery", .seed = x->in[i].seed};
		mp_response *rp = NULL;
		if (mp_create(cl, &o, &rp) < 0 ||
		    mp_status_code(rp) != MOONPEN__V1__STATUS__CODE__OK)
			r = -1;
		if (r < 0)
			dr_fail(x, "create %s: %s", x->in[i].id, rp ? tr_msg(rp) : "no answer");
		mp_response_free(rp);
	}
	mp_disconnect(cl);
	return r;
}

/* One phase: the client threads run for a random time; then moonpend is
 * SIGKILLed (kill nonzero) and the threads collected. */
static inline void dr_phase(dr_run *x, unsigned *rng, int kill)
{
	struct dr_thread th[DR_MAX_THREADS];
	pthread_t t[DR_MAX_THREADS];
	const dr_cfg *c = x->cfg;
	double span = c->max_run_ms - c->min_run_ms;
	double ms = c->min_run_ms + span * (rand_r(rng) % 1000) / 1000.0;
	int i, n = c->threads < DR_MAX_THREADS ? c->threads : DR_MAX_THREADS;

	atomic_store(&x->stop, 0);
	for (i = 0; i < n; i++) {
		th[i] = (struct dr_thread){.x = x, .t = i, .rng = rand_r(rng)};
		if (pthread_create(&t[i], NULL, dr_client, &th[i]) != 0)
			abort();
	}
	usleep((useconds_t)(ms * 1000)); /* a random point of the run, not a wait for a state */
	if (kill) {
		dr_kill9(&x->d);
		x->res->kills++;
	}
	atomic_store(&x->stop, 1);
	for (i = 0; i < n; i++)
		pthread_join(t[i], NULL);
}

/* The reference: a memory moonpend fed exactly the applied inputs. */
static inline int dr_compare(dr_run *x)
{
	dr_daemon ref;
	mp_client *cl = NULL;
	char hash[65];
	int i, r = -1;

	if (dr_init(&ref) < 0 || dr_start(&ref, "memory", NULL, NULL) < 0) {
		dr_fail(x, "the reference moonpend did not start");
		return -1;
	}
	if (dr_create_all(x, ref.url) < 0 || mp_connect(ref.url, &cl) < 0)
		goto out;
	for (i = 0; i < x->cfg->instances; i++) {
		dr_inst *in = &x->in[i];
		mp_response *rp = NULL;
		for (size_t k = 0; k < in->n; k++) {
			dr_op *op = &in->ops[k];
			if (op->fate != DR_ACKED && op->fate != DR_APPLIED)
				continue;
			if (dr_send(cl, in->id, op, &rp) < 0 ||
			    mp_status_code(rp) != MOONPEN__V1__STATUS__CODE__OK) {
				dr_fail(x, "reference: %s input %zu failed", in->id, k);
				goto out;
			}
			x->res->inputs++;
			if (op->effects && strcmp(op->effects, tr_effects(rp)) != 0) {
				dr_fail(x,
					"%s input %zu: effects\n%s\nin the crashed run, in the "
					"reference\n%s",
					in->id, k, op->effects, tr_effects(rp));
				goto out;
			}
			x->res->compared_effects += op->effects != NULL;
			dr_hash(rp, hash);
			if (k + 1 == in->n &&
			    (strcmp(in->hash, hash) != 0 || rp->result->tick != in->tick)) {
				dr_fail(x,
					"%s: final state hash %s tick %llu, reference %s tick %llu",
					in->id, in->hash, (unsigned long long)in->tick, hash,
					(unsigned long long)rp->result->tick);
				goto out;
			}
			x->res->compared_hashes += k + 1 == in->n;
			mp_response_free(rp);
			rp = NULL;
		}
		mp_response_free(rp);
	}
	r = 0;
out:
	mp_disconnect(cl);
	if (dr_stop(&ref) != 0 && r == 0)
		dr_fail(x, "the reference moonpend did not stop cleanly");
	dr_remove(&ref);
	return r;
}

static inline void dr_free(dr_run *x)
{
	for (int i = 0; x->in && i < x->cfg->instances; i++) {
		for (size_t k = 0; k < x->in[i].n; k++)
			free(x->in[i].ops[k].effects);
		free(x->in[i].ops);
	}
	free(x->in);
	pthread_mutex_destroy(&x->mu);
}

/* The whole run. 0, or -1 with res->fail saying why. The daemon's folder is
 * kept (and named in fail) when the run fails. */
static inline int dr_crash_run(const dr_cfg *c, dr_result *res)
{
	dr_run x = {.cfg = c, .res = res};
	unsigned rng = c->seed;
	int i, r = -1;

	memset(res, 0, sizeof *res);
	pthread_mutex_init(&x.mu, NULL);
	x.in = calloc((size_t)c->instances, sizeof *x.in);
	if (x.in == NULL || dr_init(&x.d) < 0)
		abort();
	for (i = 0; i < c->instances; i++) {
		snprintf(x.in[i].id, sizeof x.in[i].id, "dur-%d", i);
		x.in[i].seed = 1000u + (uint64_t)i * 7919u;
	}
	if (dr_start(&x.d, c->durability, NULL, NULL) < 0 || dr_create_all(&x, x.d.url) < 0) {
		dr_fail(&x, "moonpend did not start (log %s)", x.d.log);
		goto out;
	}
	for (i = 0; i <= c->kills && !res->fail[0]; i++) {
		dr_phase(&x, &rng, i < c->kills);
		if (i < c->kills && dr_start(&x.d, c->durability, NULL, NULL) < 0) {
			dr_fail(&x, "moonpend did not restart after kill %d (log %s)", i + 1,
				x.d.log);
			break;
		}
		if (dr_settle(&x) < 0)
			break;
	}
	for (i = 0; i < c->instances; i++)
		for (size_t k = 0; k < x.in[i].n; k++)
			res->acked += x.in[i].ops[k].fate == DR_ACKED;
	if (!res->fail[0] && dr_stop(&x.d) != 0)
		dr_fail(&x, "moonpend did not stop cleanly (log %s)", x.d.log);
	if (!res->fail[0])
		r = dr_compare(&x);
out:
	if (r == 0 && !res->fail[0])
		dr_remove(&x.d);
	else {
		dr_kill9(&x.d);
		snprintf(res->fail + strlen(res->fail), sizeof res->fail - strlen(res->fail),
			 " [state folder %s kept]", x.d.dir);
		r = -1;
	}
	dr_free(&x);
	return r;
}

#endif
