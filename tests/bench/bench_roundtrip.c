/*
 * Event round trip through moonpend (client -> supervisor -> worker -> back),
 * next to a raw NNG two-hop relay (client -> relay process -> echo process ->
 * back) measured in the same run, with the same transport (ipc) and message
 * sizes. Prints p50/p99 latency and throughput, and the ratios.
 *
 *   make bench            (or: build/bench/bench_roundtrip [N])
 */
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/moonpen.h"
#include "tests/support/daemon.h"
#include "tests/support/resp.h"

#define CLIENTS 4

struct stats {
	double p50, p99, rps;
};

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static struct stats summarize(double *lat, int n, double wall_ms)
{
	struct stats s;

	qsort(lat, (size_t)n, sizeof *lat, cmp_d);
	s.p50 = lat[n / 2];
	s.p99 = lat[(int)(n * 0.99)];
	s.rps = n / (wall_ms / 1000.0);
	return s;
}

/* ---- baseline: raw relay ------------------------------------------------------- */

static void die(const char *what, int r)
{
	fprintf(stderr, "%s: %s\n", what, nng_strerror(r));
	exit(1);
}

static void echo_main(const char *url)
{
	nng_socket s;
	nng_msg *m;
	int r;

	if ((r = nng_pair1_open(&s)) != 0 || (r = nng_dial(s, url, NULL, NNG_FLAG_NONBLOCK)) != 0)
		die("echo", r);
	while (nng_recvmsg(s, &m, 0) == 0)
		if (nng_sendmsg(s, m, 0) != 0)
			nng_msg_free(m);
	exit(0);
}

static void relay_main(const char *api, const char *wurl)
{
	nng_socket rep, pair;
	nng_msg *m;
	int r;

	if ((r = nng_rep0_open(&rep)) != 0 || (r = nng_listen(rep, api, NULL, 0)) != 0 ||
	    (r = nng_pair1_open(&pair)) != 0 || (r = nng_listen(pair, wurl, NULL, 0)) != 0)
		die("relay", r);
	while (nng_recvmsg(rep, &m, 0) == 0) {
		/* the supervisor's hops: decode-free forward, wait, forward back */
		if (nng_sendmsg(pair, m, 0) != 0 || nng_recvmsg(pair, &m, 0) != 0)
			exit(1);
		if (nng_sendmsg(rep, m, 0) != 0)
			nng_msg_free(m);
	}
	exit(0);
}

static struct stats bench_raw(const char *dir, int n, size_t req_len)
{
	char api[300], wurl[300];
	double *lat = calloc((size_t)n, sizeof *lat), t0;
	void *buf = calloc(1, req_len);
	nng_socket s;
	pid_t relay, echo;
	struct stats st;
	int i, r;

	snprintf(api, sizeof api, "ipc://%s/raw-api.sock", dir);
	snprintf(wurl, sizeof wurl, "ipc://%s/raw-w.sock", dir);
	/* NNG is not fork-safe: the relay and echo processes are fresh execs */
	if ((relay = fork()) == 0) {
		execl("/proc/self/exe", "bench_roundtrip", "--relay", api, wurl, (char *)NULL);
		_exit(127);
	}
	usleep(200000);
	if ((echo = fork()) == 0) {
		execl("/proc/self/exe", "bench_roundtrip", "--echo", wurl, (char *)NULL);
		_exit(127);
	}
	usleep(200000);
	if ((r = nng_req0_open(&s)) != 0 || (r = nng_dial(s, api, NULL, 0)) != 0)
		die("client", r);
	t0 = td_now_ms();
	for (i = 0; i < n; i++) {
		double a = td_now_ms();
		size_t sz = 0;
		void *out = NULL;
		if (nng_send(s, buf, req_len, 0) != 0 ||
		    nng_recv(s, &out, &sz, NNG_FLAG_ALLOC) != 0)
			die("raw round trip", 0);
		nng_free(out, sz);
		lat[i] = td_now_ms() - a;
	}
	st = summarize(lat, n, td_now_ms() - t0);
	nng_close(s);
	kill(relay, SIGTERM);
	kill(echo, SIGTERM);
	waitpid(relay, NULL, 0);
	waitpid(echo, NULL, 0);
	free(lat);
	free(buf);
	return st;
}

/* ---- moonpend ---------------------------------------------------------------------- */

struct client_arg {
	const char *url;
	char id[32];
	int n;
	double *lat;
};

static void *client_main(void *p)
{
	struct client_arg *a = p;
	mp_client *c;
	mp_response *r;
	int i;

	if (mp_connect(a->url, &c) != 0)
		exit(1);
	for (i = 0; i < a->n; i++) {
		double t = td_now_ms();
		if (mp_event(c, a->id, "ping", NULL, &r) != 0 ||
		    mp_status_code(r) != MOONPEN__V1__STATUS__CODE__OK) {
			fprintf(stderr, "event failed: %s\n", tr_msg(r));
			exit(1);
		}
		mp_response_free(r);
		a->lat[i] = td_now_ms() - t;
	}
	mp_disconnect(c);
	return NULL;
}

static struct stats bench_moonpend(const char *url, int n, int clients)
{
	struct client_arg a[CLIENTS];
	pthread_t t[CLIENTS];
	double *lat = calloc((size_t)n * (size_t)clients, sizeof *lat), t0;
	struct stats st;
	int i;

	t0 = td_now_ms();
	for (i = 0; i < clients; i++) {
		a[i] = (struct client_arg){.url = url, .n = n, .lat = lat + (size_t)i * (size_t)n};
		snprintf(a[i].id, sizeof a[i].id, "b%d", i);
		pthread_create(&t[i], NULL, client_main, &a[i]);
	}
	for (i = 0; i < clients; i++)
		pthread_join(t[i], NULL);
	st = summarize(lat, n * clients, td_now_ms() - t0);
	free(lat);
	return st;
}

static size_t event_size(void)
{
	Moonpen__V1__Request q = MOONPEN__V1__REQUEST__INIT;
	Moonpen__V1__SendEvent ev = MOONPEN__V1__SEND_EVENT__INIT;

	ev.instance_id = "b0";
	ev.name = "ping";
	q.id = 1;
	q.trace_id = "0123456789abcdef0123456789abcdef";
	q.op_case = MOONPEN__V1__REQUEST__OP_EVENT;
	q.event = &ev;
	return moonpen__v1__request__get_packed_size(&q);
}

int main(int argc, char **argv)
{
	int n, i;
	struct stats raw, one, many;
	mp_client *c;
	mp_response *r;
	td d;

	if (argc == 4 && strcmp(argv[1], "--relay") == 0)
		relay_main(argv[2], argv[3]);
	if (argc == 3 && strcmp(argv[1], "--echo") == 0)
		echo_main(argv[2]);
	n = argc > 1 ? atoi(argv[1]) : 5000;
	if (n < 100)
		n = 100;
	if (td_start(&d, "tests/bench/packs", NULL) != 0 || mp_connect(d.url, &c) != 0)
		return 1;
	for (i = 0; i < CLIENTS; i++) {
		char id[16];
		mp_create_opts o = {.instance_id = id, .pack_id = "bench", .seed = 1};
		snprintf(id, sizeof id, "b%d", i);
		if (mp_create(c, &o, &r) != 0 || mp_status_code(r) != 0)
			return 1;
		mp_response_free(r);
	}
	bench_moonpend(d.url, n / 10, 1); /* warm-up */
	raw = bench_raw(d.dir, n, event_size());
	one = bench_moonpend(d.url, n, 1);
	many = bench_moonpend(d.url, n / CLIENTS, CLIENTS);
	mp_disconnect(c);
	td_stop(&d, 0);

	printf("event round trip, %d requests, ipc transport, 2 CPUs\n", n);
	printf("  %-36s p50 %7.1f us  p99 %7.1f us  %8.0f req/s\n",
	       "raw NNG two-hop relay (baseline)", raw.p50 * 1e3, raw.p99 * 1e3, raw.rps);
	printf("  %-36s p50 %7.1f us  p99 %7.1f us  %8.0f req/s\n", "moonpend, 1 client",
	       one.p50 * 1e3, one.p99 * 1e3, one.rps);
	printf("  %-36s p50 %7.1f us  p99 %7.1f us  %8.0f req/s\n",
	       "moonpend, 4 clients x 4 instances", many.p50 * 1e3, many.p99 * 1e3, many.rps);
	printf("  ratio moonpend/raw: p50 %.2fx  p99 %.2fx  throughput %.2fx (1 client)\n",
	       one.p50 / raw.p50, one.p99 / raw.p99, one.rps / raw.rps);
	return 0;
}
