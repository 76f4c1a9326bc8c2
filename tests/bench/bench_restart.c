/*
 * Durability, measured on real moonpend daemons (test process; trusts the
 * daemons it starts). Prints figures, asserts nothing about time.
 *
 *  (a) restart: a moonpend (durability process) with N live instances (each
 *      with 20 inputs, a snapshot every 16: a snapshot and 4 inputs to
 *      replay) is SIGKILLed and started again on its state folder; printed:
 *      the time until its API answers, and until every instance has answered
 *      an event (4 client threads);
 *  (b) acknowledged events per second through a real moonpend, for each
 *      durability mode (memory, process, power), with 1 and 8 client threads
 *      (one instance each), in the same run; ratios to memory.
 *
 *   make bench    (or: build/bench/bench_restart [instances [seconds per case]])
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/e2e/durability_run.h"

#define CLIENTS 4

struct job {
	const char *url;
	int from, to, step; /* instances from, from+step, ... < to */
	int inputs;	    /* events per instance (0: just the create) */
	int create;
	atomic_int *errors;
	double until_ms; /* (b): run until then */
	long done;
};

static void die(const char *what)
{
	fprintf(stderr, "bench_restart: %s\n", what);
	exit(1);
}

static int event(mp_client *c, const char *id)
{
	mp_response *r = NULL;
	int ok = mp_event(c, id, "hit", NULL, &r) == 0 &&
		 mp_status_code(r) == MOONPEN__V1__STATUS__CODE__OK;

	if (!ok && r)
		fprintf(stderr, "event %s: %s %s\n", id, tr_code(r), tr_msg(r));

	mp_response_free(r);
	return ok ? 0 : -1;
}

static void *drive(void *arg)
{
	struct job *j = arg;
	mp_client *c = NULL;
	char id[32];

	if (mp_connect(j->url, &c) < 0 || mp_set_timeouts(c, 60000, 60000) < 0) {
		atomic_fetch_add(j->errors, 1);
		return NULL;
	}
	for (int i = j->from; i < j->to; i += j->step) {
		snprintf(id, sizeof id, "r-%d", i);
		if (j->create) {
			mp_create_opts o = {
			    .instance_id = id, .pack_id = "recovery", .seed = (uint64_t)i};
			mp_response *r = NULL;
			if (mp_create(c, &o, &r) < 0 ||
			    mp_status_code(r) != MOONPEN__V1__STATUS__CODE__OK)
				if (atomic_fetch_add(j->errors, 1) == 0)
					fprintf(stderr, "create %s: %s\n", id, tr_msg(r));
			mp_response_free(r);
		}
		for (int k = 0; k < j->inputs; k++)
			if (event(c, id) < 0)
				atomic_fetch_add(j->errors, 1);
	}
	mp_disconnect(c);
	return NULL;
}

/* Runs CLIENTS threads over n instances; the elapsed ms. */
static double over_all(const char *url, int n, int inputs, int create)
{
	struct job j[CLIENTS];
	pthread_t t[CLIENTS];
	atomic_int errors = 0;
	double t0 = td_now_ms();

	for (int i = 0; i < CLIENTS; i++) {
		j[i] = (struct job){.url = url,
				    .from = i,
				    .to = n,
				    .step = CLIENTS,
				    .inputs = inputs,
				    .create = create,
				    .errors = &errors};
		if (pthread_create(&t[i], NULL, drive, &j[i]) != 0)
			die("pthread_create");
	}
	for (int i = 0; i < CLIENTS; i++)
		pthread_join(t[i], NULL);
	if (atomic_load(&errors))
		fprintf(stderr, "bench_restart: %d requests failed\n", atomic_load(&errors));
	return td_now_ms() - t0;
}

static void restart_case(int n)
{
	const char *const extra[] = {"--spare-workers", "4", NULL};
	dr_daemon d;
	double t0, api, all, fill;

	if (dr_init(&d) < 0 || dr_start(&d, "process", extra, NULL) < 0)
		die("moonpend did not start");
	fill = over_all(d.url, n, 20, 1);
	printf("(a) %d instances created with 20 events each in %.0f ms\n", n, fill);
	dr_kill9(&d);
	t0 = td_now_ms();
	if (dr_start(&d, "process", extra, NULL) < 0)
		die("moonpend did not restart");
	api = td_now_ms() - t0;
	all = over_all(d.url, n, 1, 0) + api;
	printf("(a) restart after SIGKILL: API answers after %.0f ms; all %d instances answered "
	       "an event after %.0f ms (%.2f ms per instance)\n",
	       api, n, all, all / n);
	if (dr_stop(&d) != 0)
		fprintf(stderr, "bench_restart: moonpend did not stop cleanly (log %s)\n", d.log);
	if (getenv("BENCH_KEEP")) {
		printf("(a) log kept: %s\n", d.log);
		return;
	}
	dr_remove(&d);
}

static void *pump(void *arg)
{
	struct job *j = arg;
	mp_client *c = NULL;
	char id[32];

	snprintf(id, sizeof id, "r-%d", j->from);
	if (mp_connect(j->url, &c) < 0) {
		atomic_fetch_add(j->errors, 1);
		return NULL;
	}
	while (td_now_ms() < j->until_ms) {
		if (event(c, id) < 0) {
			atomic_fetch_add(j->errors, 1);
			break;
		}
		j->done++;
	}
	mp_disconnect(c);
	return NULL;
}

/* Acknowledged events per second with `threads` clients, one instance each. */
static double rate(const char *mode, int threads, double secs)
{
	struct job j[8];
	pthread_t t[8];
	atomic_int errors = 0;
	dr_daemon d;
	long total = 0;
	double t0;

	if (dr_init(&d) < 0 || dr_start(&d, mode, NULL, NULL) < 0)
		die("moonpend did not start");
	over_all(d.url, threads, 0, 1);
	t0 = td_now_ms();
	for (int i = 0; i < threads; i++) {
		j[i] = (struct job){
		    .url = d.url, .from = i, .errors = &errors, .until_ms = t0 + secs * 1000};
		if (pthread_create(&t[i], NULL, pump, &j[i]) != 0)
			die("pthread_create");
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		total += j[i].done;
	}
	t0 = td_now_ms() - t0;
	if (atomic_load(&errors))
		fprintf(stderr, "bench_restart: %s: %d clients failed\n", mode,
			atomic_load(&errors));
	if (dr_stop(&d) != 0)
		fprintf(stderr, "bench_restart: moonpend did not stop cleanly (log %s)\n", d.log);
	dr_remove(&d);
	return total / (t0 / 1000.0);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1000;
	double secs = argc > 2 ? atof(argv[2]) : 3.0;
	static const char *const modes[] = {"memory", "process", "power"};
	double r[3][2];

	if (n < 1 || secs <= 0)
		die("usage: bench_restart [instances [seconds per case]]");
	restart_case(n);
	for (int m = 0; m < 3 && secs > 0; m++)
		for (int k = 0; k < 2; k++)
			r[m][k] = rate(modes[m], k ? 8 : 1, secs);
	printf("(b) acknowledged events/s (recovery pack, %.1f s per case)\n", secs);
	printf("    %-8s %12s %12s\n", "mode", "1 client", "8 clients");
	for (int m = 0; m < 3; m++)
		printf("    %-8s %8.0f (%.2fx) %8.0f (%.2fx)\n", modes[m], r[m][0],
		       r[m][0] / r[0][0], r[m][1], r[m][1] / r[0][1]);
	return 0;
}
