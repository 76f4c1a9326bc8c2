/*
 * moonpen-worker — runs one instance's scripts. Exec'd only by moonpend, with
 * rlimits set and descriptors closed. Trusts only the channel it dials; after
 * step 3 it never opens a file, a socket or a process.
 */
#include <errno.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <jansson.h>
#include <sodium.h>
#include <nng/protocol/pair1/pair.h>

#include "common/log.h"
#include "common/status.h"
#include "common/wire.h"
#include "policy/limits.h"
#include "worker/confine.h"
#include "worker/engine.h"

typedef Moonpen__Worker__V1__ToWorker to_worker;
typedef Moonpen__Worker__V1__FromWorker from_worker;

struct wrk {
	nng_socket sock;
	eng *e;
	int closed;
	atomic_int gone; /* the supervisor closed the channel (NNG's thread sets it) */
};

#define WRK_POLL_MS 200 /* how often an idle worker looks whether its channel is gone */

#ifdef MP_SANITIZED
/* LeakSanitizer's exit scan stops threads with ptrace, which the seccomp policy
 * forbids: the worker's leaks are checked under valgrind (make test-valgrind). */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "detect_leaks=0";
}
#endif

/* ---- replies ------------------------------------------------------------------ */

static int reply(struct wrk *w, uint64_t seq, eng_out *out)
{
	from_worker fw = MOONPEN__WORKER__V1__FROM_WORKER__INIT;
	int r;

	fw.seq = seq;
	fw.status = out->status;
	fw.result = out->result;
	r = wire_send(w->sock, &fw.base);
	if (out->status)
		protobuf_c_message_free_unpacked(&out->status->base, NULL);
	if (out->result)
		protobuf_c_message_free_unpacked(&out->result->base, NULL);
	return r;
}

/* ---- dispatch table: message, when it is allowed, handler ----------------------- */

static int on_init(struct wrk *w, const to_worker *m, eng_out *out)
{
	int r = eng_create(m->init, &w->e, out);

	if (r == 0 && w->e == NULL)
		w->closed = 1; /* the instance failed to start: answer, then exit */
	return r;
}
static int on_event(struct wrk *w, const to_worker *m, eng_out *out)
{
	return eng_event(w->e, m->event, out);
}
static int on_tick(struct wrk *w, const to_worker *m, eng_out *out)
{
	return eng_tick(w->e, m->tick->count, out);
}
static int on_call(struct wrk *w, const to_worker *m, eng_out *out)
{
	return eng_call(w->e, m->call, out);
}
static int on_close(struct wrk *w, const to_worker *m, eng_out *out)
{
	(void)m;
	w->closed = 1;
	return eng_close(w->e, out);
}
static int on_snapshot(struct wrk *w, const to_worker *m, eng_out *out)
{
	(void)w;
	(void)m;
	out->status = st_new(MOONPEN__V1__STATUS__CODE__UNAVAILABLE,
			     "snapshots are not supported by this worker version", NULL, 0);
	return out->status ? 0 : -ENOMEM;
}

static const struct handler {
	Moonpen__Worker__V1__ToWorker__OpCase op;
	int needs_engine; /* 1: only after Init; 0: only before */
	int (*fn)(struct wrk *, const to_worker *, eng_out *);
} handlers[] = {
    {MOONPEN__WORKER__V1__TO_WORKER__OP_INIT, 0, on_init},
    {MOONPEN__WORKER__V1__TO_WORKER__OP_EVENT, 1, on_event},
    {MOONPEN__WORKER__V1__TO_WORKER__OP_TICK, 1, on_tick},
    {MOONPEN__WORKER__V1__TO_WORKER__OP_CALL, 1, on_call},
    {MOONPEN__WORKER__V1__TO_WORKER__OP_SNAPSHOT, 1, on_snapshot},
    {MOONPEN__WORKER__V1__TO_WORKER__OP_CLOSE, 1, on_close},
};

/* Serves one message. Returns 0 to go on, negative to exit. */
static int serve_one(struct wrk *w)
{
	ProtobufCMessage *m = NULL;
	const struct handler *h = NULL;
	eng_out out = {0};
	size_t i;
	int r = wire_recv(w->sock, &moonpen__worker__v1__to_worker__descriptor,
			  MP_WORKER_MSG_MAX_BYTES, &m);

	if (r == -ETIMEDOUT)
		return atomic_load(&w->gone) ? -EPIPE : 0; /* idle: go on unless hung up */
	if (r < 0)
		return r; /* channel gone or garbage: the supervisor is not who we talk to */
	for (i = 0; i < sizeof handlers / sizeof handlers[0]; i++)
		if (handlers[i].op == ((to_worker *)m)->op_case)
			h = &handlers[i];
	if (h == NULL || h->needs_engine != (w->e != NULL)) {
		log_error("protocol violation: message %d %s Init", (int)((to_worker *)m)->op_case,
			  w->e ? "after" : "before");
		protobuf_c_message_free_unpacked(m, NULL);
		return -EPROTO;
	}
	r = h->fn(w, (to_worker *)m, &out);
	if (r == 0)
		r = reply(w, ((to_worker *)m)->seq, &out);
	protobuf_c_message_free_unpacked(m, NULL);
	return r;
}

/* ---- start-up steps ------------------------------------------------------------- */

static const char *arg_value(int argc, char **argv, const char *name)
{
	int i;

	for (i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return argv[i + 1];
	return NULL;
}

static int arg_flag(int argc, char **argv, const char *name)
{
	int i;

	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return 1;
	return 0;
}

static void on_hangup(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct wrk *w = arg;

	(void)p;
	(void)ev;
	atomic_store(&w->gone, 1);
}

static int dial(struct wrk *w, const char *url)
{
	int r;

	if ((r = nng_pair1_open(&w->sock)) != 0 ||
	    (r = nng_setopt_size(w->sock, NNG_OPT_RECVMAXSZ, MP_WORKER_MSG_MAX_BYTES)) != 0 ||
	    (r = nng_setopt_ms(w->sock, NNG_OPT_RECVTIMEO, WRK_POLL_MS)) != 0 ||
	    (r = nng_pipe_notify(w->sock, NNG_PIPE_EV_REM_POST, on_hangup, w)) != 0 ||
	    (r = nng_dial(w->sock, url, NULL, 0)) != 0) {
		log_error("dial %s: %s", url, nng_strerror(r));
		return -1;
	}
	return 0;
}

static int hello(struct wrk *w, const wrk_confine_report *rep)
{
	from_worker fw = MOONPEN__WORKER__V1__FROM_WORKER__INIT;
	Moonpen__Worker__V1__Hello h = MOONPEN__WORKER__V1__HELLO__INIT;

	h.pid = (int32_t)getpid();
	h.n_layers = rep->n_layers;
	h.layers = (char **)rep->layers;
	h.n_missing = rep->n_missing;
	h.missing = (char **)rep->missing;
	fw.hello = &h;
	return wire_send(w->sock, &fw.base);
}

int main(int argc, char **argv)
{
	struct wrk w = {0};
	wrk_confine_report rep;
	const char *url = arg_value(argc, argv, "--url");

	/* 1. logs on stderr (a pipe to the supervisor's log) */
	log_init("wrk", LOG_INFO);
	if (url == NULL) {
		fprintf(stderr, "usage: moonpen-worker --url URL --id N (started by moonpend)\n");
		return 2;
	}
	/* 2. one malloc arena: threads must not each reserve 64 MiB under RLIMIT_AS;
	 *    libraries that would open /dev/urandom lazily do it now, unconfined */
	mallopt(M_ARENA_MAX, 1);
	if (sodium_init() < 0) {
		log_error("libsodium cannot start");
		return 3;
	}
	/* jansson would open /dev/urandom for its hash seed on first use: seed it now */
	json_object_seed(randombytes_random() | 1u);
	/* 3. dial the channel the supervisor made for this worker */
	if (dial(&w, url) < 0)
		return 3;
	/* 4. confine: no_new_privs, capabilities, seccomp (all threads) — before any
	 *    byte from the channel is read */
	if (arg_flag(argc, argv, "--no-seccomp"))
		log_warn(
		    "--no-seccomp: this worker runs WITHOUT its syscall allowlist (debugging)");
	if ((arg_flag(argc, argv, "--no-seccomp") ? wrk_confine_debug(&rep) : wrk_confine(&rep)) <
	    0) {
		log_error("confinement failed (%s): refusing to run scripts", rep.error);
		return 4;
	}
	/* 5. say who we are and what confines us */
	if (hello(&w, &rep) < 0)
		return 5;
	/* 6. serve: Init first, then inputs, until Close or the channel goes away */
	while (!w.closed && serve_one(&w) == 0)
		;
	eng_free(w.e);
	if (!w.closed)
		return 6;
	/* 7. closed: the last reply may still sit in NNG's queue, so do not exit under
	 *    it; exit once the supervisor has hung up (it got the reply) */
	while (!atomic_load(&w.gone)) {
		nng_msg *msg;
		if (nng_recvmsg(w.sock, &msg, 0) == 0)
			nng_msg_free(msg);
	}
	return 0;
}
