/*
 * Pool neighbours after a pool worker dies, measured on a real moonpend (test
 * process; trusts the daemon it starts). Prints figures, asserts nothing
 * about time.
 *
 * Three instances of tests/e2e/packs/pooled share one pool worker
 * (--pool-size 3), each with LOG inputs in its log. Each of KILLS rounds:
 * SIGKILL of the pool worker (its pid from GetInstance), an event to p1 (its
 * RPC finds the worker dead: p1 is restored and its event retried), then, as
 * soon as p1 is answered, the first event to the neighbour p2, timed: with
 * neighbours restored at once (now) it finds its slot restored or being
 * restored; with the old lazy restore it paid the whole restore itself. Also
 * timed: from p1's answer until GetInstance shows p3 (sent nothing) on the new
 * worker (given up after SHOW_MS), then p3's first event: the restore it still
 * pays (the lazy restore: all of it, however late it comes). Next to a plain event round trip in
 * the same daemon; p50/p99. p1 kills its worker every round: --restart-max 1000.
 *
 *   build/bench/bench_pool [kills]
 *   BUILD=<another build folder> build/bench/bench_pool   (its moonpend, e.g.
 *   one built from a commit before the change, for the lazy figures)
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "client/moonpen.h"
#include "common/val_json.h"
#include "tests/support/daemon.h"
#include "tests/support/resp.h"
#include "tests/support/stats.h"

#define PACKS "tests/e2e/packs"
#define KILLS 20
#define LOG 60 /* inputs logged per instance before the kills (< snapshot_every) */
#define RTT_SAMPLES 200
#define SHOW_MS 3000.0 /* give up waiting for p3 to show a new worker */

static void print_stats(const char *what, struct stats s)
{
	printf("  %-52s p50 %8.2f ms  p99 %8.2f ms  max %8.2f ms  (n=%d)\n", what, s.p50, s.p99,
	       s.max, s.n);
}

/* add{n:1} to id, OK expected. */
static void add(mp_client *c, const char *id)
{
	char err[64];
	mp_response *r = NULL;
	val_t *v = NULL;

	if (vjson_parse("{\"n\":1}", 8, &v, err, sizeof err) != 0)
		tst_die("payload: %s", err);
	if (mp_event(c, id, "add", v, &r) != 0)
		tst_die("event on %s: %s", id, mp_last_error(c));
	if (mp_status_code(r) != MOONPEN__V1__STATUS__CODE__OK)
		tst_die("event on %s: %s %s", id, tr_code(r), tr_msg(r));
	mp_response_free(r);
	val_free(v);
}

static double timed_add(mp_client *c, const char *id)
{
	double t = td_now_ms();

	add(c, id);
	return td_now_ms() - t;
}

static pid_t worker_of(mp_client *c, const char *id)
{
	mp_response *r;
	pid_t pid;

	if (mp_info(c, id, &r) != 0 || r->info == NULL)
		tst_die("info %s", id);
	pid = (pid_t)r->info->worker_pid;
	mp_response_free(r);
	return pid;
}

/* Waits until pid has ended (a zombie of moonpend counts). */
static void await_death(pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	struct pollfd p;

	if (fd < 0) {
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

/* ms until GetInstance shows id on a live worker other than dead; -1 when it
 * did not within SHOW_MS (the lazy restore never does without a request). */
static double shows_new(mp_client *c, const char *id, pid_t dead, double t0)
{
	pid_t pid;

	for (;;) {
		pid = worker_of(c, id);
		if (pid > 0 && pid != dead && td_alive(pid))
			return td_now_ms() - t0;
		if (td_now_ms() - t0 > SHOW_MS)
			return -1;
		usleep(200);
	}
}

/* One round: kill, p1's event, then p2's first event (*first), the time until
 * p3 shows a new worker (*shown, -1: never), then p3's first event (*late). */
static void round_once(mp_client *c, double *first, double *shown, double *late)
{
	pid_t pool = worker_of(c, "p1");
	double t;

	if (pool <= 0 || kill(pool, SIGKILL) != 0)
		tst_die("kill pool worker %d: %s", (int)pool, strerror(errno));
	await_death(pool);
	add(c, "p1"); /* finds the worker dead: restored, retried */
	t = td_now_ms();
	*first = timed_add(c, "p2");
	*shown = shows_new(c, "p3", pool, t);
	*late = timed_add(c, "p3"); /* (restores it when nothing did) */
}

int main(int argc, char **argv)
{
	const char *extra[] = {"--pool-size", "3", "--restart-max", "1000", NULL},
		   *ids[] = {"p1", "p2", "p3"};
	int kills = argc > 1 ? atoi(argv[1]) : KILLS, i, k, n_shown = 0;
	double first[KILLS * 10], shown[KILLS * 10], late[KILLS * 10], base[RTT_SAMPLES], s;
	mp_client *c;
	td d;

	if (kills < 1 || kills > KILLS * 10)
		tst_die("kills: 1..%d", KILLS * 10);
	if (td_start(&d, PACKS, extra) != 0)
		tst_die("moonpend did not start (log %s)", d.log);
	if (mp_connect(d.url, &c) != 0 || mp_set_timeouts(c, 10000, 30000) != 0)
		tst_die("connect %s", d.url);
	for (i = 0; i < 3; i++) {
		mp_create_opts o = {.instance_id = ids[i], .pack_id = "pooled", .seed = 1};
		mp_response *r = NULL;

		if (mp_create(c, &o, &r) != 0 || mp_status_code(r) != MOONPEN__V1__STATUS__CODE__OK)
			tst_die("create %s: %s", ids[i], r ? tr_msg(r) : mp_last_error(c));
		mp_response_free(r);
		for (k = 0; k < LOG; k++)
			add(c, ids[i]);
	}
	for (i = 0; i < RTT_SAMPLES; i++)
		base[i] = timed_add(c, "p2");
	for (k = 0; k < kills; k++) {
		round_once(c, &first[k], &s, &late[k]);
		if (s >= 0)
			shown[n_shown++] = s;
	}
	printf("pool neighbours after a pool worker kill (moonpend %s, --pool-size 3, %d inputs "
	       "logged each, %d kills)\n",
	       td_bin("moonpend"), LOG, kills);
	print_stats("plain event round trip (p2, no kill)", tst_summarize(base, RTT_SAMPLES));
	print_stats("neighbour p2's first event after p1's answer", tst_summarize(first, kills));
	print_stats("p1's answer -> p3 (sent nothing) shows a new worker",
		    tst_summarize(shown, n_shown));
	print_stats("neighbour p3's first event, once shown (or 3 s)", tst_summarize(late, kills));
	if (n_shown < kills)
		printf("  p3 showed no new worker without a request in %d of %d rounds (lazy "
		       "restore)\n",
		       kills - n_shown, kills);
	mp_disconnect(c);
	return td_stop(&d, 0) == 0 ? 0 : 1;
}
