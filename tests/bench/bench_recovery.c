/*
 * Recovery and neighbours, measured on real moonpend daemons (test process;
 * trusts the daemons it starts). Prints figures, asserts nothing about time.
 *
 *  (a) kill -> serving again: SIGKILL of an instance's worker (the pid from
 *      GetInstance), then events until one is answered OK, timed from the
 *      kill; for states of 1 KB, 100 KB and 1 MB (tests/bench/packs/recovery),
 *      with --spare-workers 0 and 1 (one daemon each), p50/p99 over KILLS
 *      kills, next to a plain event round trip measured in the same daemon;
 *  (b) a neighbour's event latency while another instance runs away (Lua
 *      `while true do end`, stopped by the soft deadline; C backtracking in
 *      string.find, killed by the hard deadline), next to the same neighbour
 *      with nobody else busy, in the same run; ratios printed.
 *
 *   make bench            (or: build/bench/bench_recovery [kills])
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "client/moonpen.h"
#include "tests/support/daemon.h"
#include "tests/support/resp.h"
#include "tests/support/stats.h"

#define PACKS "tests/bench/packs"
#define RTT_SAMPLES 500
#define PHASE_MS 3000.0 /* each neighbour phase, over all rounds */
#define ROUNDS 3
#define SOFT_MS "50"	 /* the soft deadline (moonpend's default) */
#define MAX_TRIES 100000 /* events sent after a kill before giving up */

/* ---- requests ------------------------------------------------------------------- */

static mp_client *connect_to(const td *d)
{
	mp_client *c;

	if (mp_connect(d->url, &c) != 0)
		tst_die("connect %s", d->url);
	/* a hard-deadline kill and its restore take over a second */
	if (mp_set_timeouts(c, 10000, 30000) != 0)
		tst_die("mp_set_timeouts");
	return c;
}

/* Sends event name to id; returns the status code (-1: no answer) and, if
 * code_name is not NULL, its name. */
static int event_named(mp_client *c, const char *id, const char *name, char *code_name, size_t len)
{
	mp_response *r;
	int code;

	if (mp_event(c, id, name, NULL, &r) != 0) {
		if (code_name)
			snprintf(code_name, len, "no answer");
		return -1;
	}
	code = (int)mp_status_code(r);
	if (code_name)
		snprintf(code_name, len, "%s", tr_code(r));
	mp_response_free(r);
	return code;
}

static int event(mp_client *c, const char *id, const char *name)
{
	return event_named(c, id, name, NULL, 0);
}

static void event_ok(mp_client *c, const char *id, const char *name)
{
	int code = event(c, id, name);

	if (code != MOONPEN__V1__STATUS__CODE__OK)
		tst_die("event %s on %s: status %d", name, id, code);
}

static void create(mp_client *c, const char *id, const char *pack)
{
	mp_create_opts o = {.instance_id = id, .pack_id = pack, .seed = 1};
	mp_response *r = NULL;

	if (mp_create(c, &o, &r) != 0 || mp_status_code(r) != MOONPEN__V1__STATUS__CODE__OK)
		tst_die("create %s (%s): %s", id, pack, r ? tr_msg(r) : mp_last_error(c));
	mp_response_free(r);
}

/* The confinement of id's worker, as GetInstance reports it. */
static void print_layers(mp_client *c, const char *id)
{
	mp_response *r;
	size_t i;

	if (mp_info(c, id, &r) != 0 || r->info == NULL)
		tst_die("info %s", id);
	printf("workers confined by:");
	for (i = 0; i < r->info->n_layers; i++)
		printf(" %s", r->info->layers[i]);
	for (i = 0; i < r->info->n_missing_layers; i++)
		printf("%s missing: %s", i ? ";" : ",", r->info->missing_layers[i]);
	printf("\n");
	mp_response_free(r);
}

static pid_t worker_of(mp_client *c, const char *id)
{
	mp_response *r;
	pid_t pid;

	if (mp_info(c, id, &r) != 0 || r->info == NULL)
		tst_die("info %s", id);
	pid = (pid_t)r->info->worker_pid;
	mp_response_free(r);
	if (pid <= 0)
		tst_die("info %s: no worker pid", id);
	return pid;
}

/* Round trip of a plain event, RTT_SAMPLES times. */
static struct stats rtt(mp_client *c, const char *id)
{
	double lat[RTT_SAMPLES];
	int i;

	for (i = 0; i < RTT_SAMPLES; i++) {
		double t = td_now_ms();
		event_ok(c, id, "ping");
		lat[i] = td_now_ms() - t;
	}
	return tst_summarize(lat, RTT_SAMPLES);
}

/* ---- (a) kill -> serving again ------------------------------------------------------ */

/* Waits until pid has ended (a zombie of moonpend counts). */
static void await_death(pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	struct pollfd p;

	if (fd < 0) { /* no pidfd: look every 100 us */
		while (td_alive(pid))
			usleep(100);
		return;
	}
	p.fd = fd;
	p.events = POLLIN;
	while (poll(&p, 1, 10000) < 0 && errno == EINTR)
		;
	close(fd);
}

/* One kill of id's worker. Returns the ms from kill to the first OK event,
 * counts the answers that were not OK before it and names the first of them. */
static double kill_once(mp_client *c, const char *id, int *not_ok, char *first, size_t len)
{
	char code[32];
	pid_t pid = worker_of(c, id);
	double t0;
	int tries;

	t0 = td_now_ms();
	if (kill(pid, SIGKILL) != 0)
		tst_die("kill %d: %s", (int)pid, strerror(errno));
	await_death(pid); /* no event may reach the dying worker */
	for (tries = 0; tries < MAX_TRIES; tries++) {
		if (event_named(c, id, "ping", code, sizeof code) == MOONPEN__V1__STATUS__CODE__OK)
			return td_now_ms() - t0;
		if (first[0] == '\0')
			snprintf(first, len, "%s", code);
		(*not_ok)++;
	}
	tst_die("%s never served again after its worker was killed", id);
}

/* Each instance is created, filled, then only killed and pinged: its input log
 * is as long as the others' (except the last case, whose log holds LOGGED more
 * events: what a restore by replay costs per logged input). */
#define LOGGED 1000
static const struct size_case {
	const char *id, *fill, *label;
	int logged;
} sizes[] = {
    {"s1k", "fill1k", "1 KB", 0},
    {"s100k", "fill100k", "100 KB", 0},
    {"s1m", "fill1m", "1 MB", 0},
    {"s1k-log", "fill1k", "1 KB+log", LOGGED},
};
#define N_SIZES (sizeof sizes / sizeof sizes[0])

struct recovery {
	struct stats base;
	struct stats kill[N_SIZES];
	int not_ok[N_SIZES];
	char first[N_SIZES][32]; /* the first answer that was not OK */
};

/* The instances of one daemon: one per case, filled, plus "rtt". */
static void setup_kills(mp_client *c)
{
	size_t s;
	int k;

	for (s = 0; s < N_SIZES; s++) {
		create(c, sizes[s].id, "recovery");
		event_ok(c, sizes[s].id, sizes[s].fill);
		for (k = 0; k < sizes[s].logged; k++)
			event_ok(c, sizes[s].id, "ping");
	}
	create(c, "rtt", "recovery"); /* its own instance: the others' logs stay short */
	rtt(c, "rtt");		      /* warm-up */
}

/* Both daemons run at once and take turns, kill by kill, so that the load of
 * this shared machine falls on both alike. */
static void bench_kills(mp_client *c[2], int kills, struct recovery rec[2])
{
	double *lat[2];
	size_t s;
	int k, d;

	lat[0] = calloc((size_t)kills, sizeof *lat[0]);
	lat[1] = calloc((size_t)kills, sizeof *lat[1]);
	if (lat[0] == NULL || lat[1] == NULL)
		tst_die("out of memory");
	print_layers(c[0], "rtt");
	for (d = 0; d < 2; d++)
		rec[d].base = rtt(c[d], "rtt");
	for (s = 0; s < N_SIZES; s++) {
		for (d = 0; d < 2; d++) {
			rec[d].not_ok[s] = 0;
			rec[d].first[s][0] = '\0';
		}
		for (k = 0; k < kills; k++)
			for (d = 0; d < 2; d++)
				lat[d][k] = kill_once(c[d], sizes[s].id, &rec[d].not_ok[s],
						      rec[d].first[s], sizeof rec[d].first[s]);
		for (d = 0; d < 2; d++)
			rec[d].kill[s] = tst_summarize(lat[d], kills);
	}
	free(lat[0]);
	free(lat[1]);
}

static void run_recovery(int kills, struct recovery rec[2])
{
	const char *extra[2][5] = {{"--restart-max", "1000", "--spare-workers", "0", NULL},
				   {"--restart-max", "1000", "--spare-workers", "1", NULL}};
	mp_client *c[2];
	td d[2];
	int i;

	for (i = 0; i < 2; i++) {
		if (td_start(&d[i], PACKS, extra[i]) != 0)
			tst_die("moonpend --spare-workers %d did not start (log: %s)", i, d[i].log);
		c[i] = connect_to(&d[i]);
		setup_kills(c[i]);
	}
	bench_kills(c, kills, rec);
	for (i = 0; i < 2; i++) {
		mp_disconnect(c[i]);
		if (td_stop(&d[i], 0) != 0)
			tst_die("moonpend --spare-workers %d did not stop cleanly", i);
	}
}

/* ---- (b) a neighbour next to a runaway instance ----------------------------------- */

struct attacker {
	const td *d;
	const char *fn;
	atomic_int stop;
	atomic_int calls; /* answered calls */
	int once;	  /* one call per phase (a hard-deadline call takes a second) */
	int timeouts, other;
};

static void *attacker_main(void *p)
{
	struct attacker *a = p;
	mp_client *c = connect_to(a->d);

	while (!atomic_load(&a->stop)) {
		mp_response *r;
		if (mp_call(c, "att", a->fn, NULL, 0, &r) != 0) {
			a->other++;
			continue;
		}
		atomic_fetch_add(&a->calls, 1);
		if (mp_status_code(r) == MOONPEN__V1__STATUS__CODE__TIMEOUT)
			a->timeouts++;
		else
			a->other++;
		mp_response_free(r);
		if (a->once)
			break;
	}
	mp_disconnect(c);
	return NULL;
}

/* Latencies of one phase kind, over all rounds. */
struct samples {
	double *lat;
	size_t n, cap;
};

static void add_sample(struct samples *sm, double v)
{
	if (sm->n == sm->cap) {
		size_t cap = sm->cap ? 2 * sm->cap : 1 << 14;
		double *more = realloc(sm->lat, cap * sizeof *more);
		if (more == NULL)
			tst_die("out of memory");
		sm->lat = more;
		sm->cap = cap;
	}
	sm->lat[sm->n++] = v;
}

/* The neighbour's events for ms, with a->fn running away next to it (NULL:
 * nobody else busy), and on until the attacker has had one call answered (a
 * hard-deadline kill and its restore fall inside the phase). The attacker's
 * counts add up over the rounds. */
static void neighbour_phase(mp_client *c, double ms, struct attacker *a, struct samples *sm)
{
	int calls0 = atomic_load(&a->calls);
	double t_end;
	pthread_t t;

	atomic_store(&a->stop, 0);
	if (a->fn && pthread_create(&t, NULL, attacker_main, a) != 0)
		tst_die("pthread_create");
	t_end = td_now_ms() + ms;
	while (td_now_ms() < t_end || (a->fn && atomic_load(&a->calls) == calls0)) {
		double t0 = td_now_ms();
		event_ok(c, "nb", "ping");
		add_sample(sm, td_now_ms() - t0);
	}
	if (a->fn) {
		atomic_store(&a->stop, 1);
		pthread_join(t, NULL);
	}
}

struct neighbour {
	struct stats st[3]; /* alone, soft, hard */
	struct attacker att[3];
};

static const char *const phase_fn[3] = {NULL, "forever", "backtrack"};

/* ROUNDS rounds of the three phases in turn: the machine's other load falls
 * on each alike. */
static void run_neighbour(struct neighbour *nb)
{
	const char *extra[] = {"--restart-max", "1000", "--deadline-ms", SOFT_MS, NULL};
	struct samples sm[3];
	mp_client *c;
	int round, p;
	td d;

	memset(nb, 0, sizeof *nb);
	memset(sm, 0, sizeof sm);
	if (td_start(&d, PACKS, extra) != 0)
		tst_die("moonpend did not start (log: %s)", d.log);
	c = connect_to(&d);
	create(c, "nb", "bench");
	create(c, "att", "attacker");
	rtt(c, "nb"); /* warm-up */
	for (p = 0; p < 3; p++) {
		nb->att[p].d = &d;
		nb->att[p].fn = phase_fn[p];
		nb->att[p].once = p == 2;
	}
	for (round = 0; round < ROUNDS; round++)
		for (p = 0; p < 3; p++)
			neighbour_phase(c, PHASE_MS / ROUNDS, &nb->att[p], &sm[p]);
	for (p = 0; p < 3; p++) {
		nb->st[p] = tst_summarize(sm[p].lat, (int)sm[p].n);
		free(sm[p].lat);
	}
	mp_disconnect(c);
	if (td_stop(&d, 0) != 0)
		tst_die("moonpend did not stop cleanly");
}

/* ---- report ------------------------------------------------------------------------ */

static void print_recovery(const struct recovery rec[2], int kills)
{
	size_t s;
	int spare;

	printf("recovery: SIGKILL of an instance's worker -> next event answered OK, %d kills "
	       "each%s\n",
	       kills, kills < 100 ? " (p99 of fewer than 100 samples is their maximum)" : "");
	for (spare = 0; spare < 2; spare++)
		printf(
		    "  plain event round trip, --spare-workers %d:  p50 %7.1f us  p99 %7.1f us\n",
		    spare, rec[spare].base.p50 * 1e3, rec[spare].base.p99 * 1e3);
	printf("  (\"1 KB+log\": %d more events in the instance's input log)\n", LOGGED);
	printf("  %-9s %-7s %9s %9s %9s %12s  %s\n", "state", "spares", "p50 ms", "p99 ms",
	       "max ms", "p50/RTT p50", "answers not OK before it (first)");
	for (s = 0; s < N_SIZES; s++)
		for (spare = 0; spare < 2; spare++) {
			const struct stats *k = &rec[spare].kill[s];
			printf("  %-9s %-7d %9.2f %9.2f %9.2f %11.0fx  %d (%s)\n", sizes[s].label,
			       spare, k->p50, k->p99, k->max, k->p50 / rec[spare].base.p50,
			       rec[spare].not_ok[s],
			       rec[spare].first[s][0] ? rec[spare].first[s] : "-");
		}
	for (s = 0; s < N_SIZES; s++)
		printf("  %-9s spare 1 / spare 0:  p50 %.2fx  p99 %.2fx\n", sizes[s].label,
		       rec[1].kill[s].p50 / rec[0].kill[s].p50,
		       rec[1].kill[s].p99 / rec[0].kill[s].p99);
}

static void print_phase(const char *what, const struct stats *s, const struct stats *alone,
			const struct attacker *a)
{
	printf("  %-44s n %6d  p50 %7.1f us  p99 %8.1f us  max %8.1f ms", what, s->n, s->p50 * 1e3,
	       s->p99 * 1e3, s->max);
	if (alone)
		printf("  p50 %.2fx  p99 %.2fx", s->p50 / alone->p50, s->p99 / alone->p99);
	if (a)
		printf("  (attacker: %d calls, %d timeout, %d other)", atomic_load(&a->calls),
		       a->timeouts, a->other);
	printf("\n");
}

static void print_neighbour(const struct neighbour *nb)
{
	printf("neighbour: events in a loop, %.0f s per phase in %d rounds, soft deadline %s ms, "
	       "hard deadline %.0f ms\n",
	       PHASE_MS / 1000, ROUNDS, SOFT_MS, td_hard_deadline_ms());
	print_phase("alone", &nb->st[0], NULL, NULL);
	print_phase("+ runaway Lua (soft deadline, hook)", &nb->st[1], &nb->st[0], &nb->att[1]);
	print_phase("+ runaway C (hard deadline, SIGKILL)", &nb->st[2], &nb->st[0], &nb->att[2]);
}

int main(int argc, char **argv)
{
	struct recovery rec[2];
	struct neighbour nb;
	int kills = argc > 1 ? atoi(argv[1]) : 20;

	if (kills < 1 || kills > 10000)
		kills = 20;
	run_recovery(kills, rec);
	run_neighbour(&nb);
	print_recovery(rec, kills);
	print_neighbour(&nb);
	return 0;
}
