/*
 * moonpen-worker — runs one instance's scripts (slot 0), or a pool of
 * instances (ToWorker.slot, up to ENG_MAX_SLOTS, one engine and lua_State
 * each). Exec'd only by moonpend, with rlimits set and descriptors closed.
 * Trusts only the channel it dials; after step 3 it never opens a file, a
 * socket or a process.
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

/* A worker hosts one instance (slot 0) or a pool (slots 0..ENG_MAX_SLOTS-1),
 * each an engine of its own. */
struct wrk {
	nng_socket sock;
	eng *slots[ENG_MAX_SLOTS];
	size_t live;	 /* occupied slots */
	int done;	 /* exit once the reply is sent */
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

/* What one message is answered with (all owned, freed by reply). */
typedef struct answer {
	eng_out out;
	uint8_t *snapshot;
	size_t snapshot_len;
	int end_slot; /* Close: the slot ends once the reply is sent */
} answer;

static int reply(struct wrk *w, const to_worker *m, answer *a)
{
	from_worker fw = MOONPEN__WORKER__V1__FROM_WORKER__INIT;
	int r;

	fw.seq = m->seq;
	fw.slot = m->slot;
	fw.status = a->out.status;
	fw.result = a->out.result;
	fw.host_call = a->out.host_call;
	fw.snapshot.data = a->snapshot;
	fw.snapshot.len = a->snapshot_len;
	r = wire_send(w->sock, &fw.base);
	if (a->out.status)
		protobuf_c_message_free_unpacked(&a->out.status->base, NULL);
	if (a->out.result)
		protobuf_c_message_free_unpacked(&a->out.result->base, NULL);
	if (a->out.host_call)
		protobuf_c_message_free_unpacked(&a->out.host_call->base, NULL);
	free(a->snapshot);
	return r;
}

static int status_only(answer *a, st_code code, const char *msg)
{
	a->out.status = st_new(code, msg, NULL, 0);
	return a->out.status ? 0 : -ENOMEM;
}

/* ---- dispatch table: message, slot state it needs, handler ------------------------ */

/* A slot ends (Close, or an Init that failed): the worker exits when it was
 * slot 0 and no instance is left (the one-instance worker's life). */
static void slot_end(struct wrk *w, uint32_t slot)
{
	eng_free(w->slots[slot]);
	w->slots[slot] = NULL;
	w->live--;
	if (slot == 0 && w->live == 0)
		w->done = 1;
}

static int on_init(struct wrk *w, const to_worker *m, answer *a)
{
	int r = eng_create(m->init, &w->slots[m->slot], &a->out);

	if (r == 0 && w->slots[m->slot] == NULL && m->slot == 0 && w->live == 0)
		w->done = 1; /* the instance failed to start: answer, then exit */
	if (w->slots[m->slot] != NULL)
		w->live++;
	return r;
}
static int on_event(struct wrk *w, const to_worker *m, answer *a)
{
	return eng_event(w->slots[m->slot], m->event, &a->out);
}
static int on_tick(struct wrk *w, const to_worker *m, answer *a)
{
	return eng_tick(w->slots[m->slot], m->tick->count, &a->out);
}
static int on_call(struct wrk *w, const to_worker *m, answer *a)
{
	return eng_call(w->slots[m->slot], m->call, &a->out);
}
static int on_close(struct wrk *w, const to_worker *m, answer *a)
{
	a->end_slot = 1; /* the slot ends after the reply */
	return eng_close(w->slots[m->slot], &a->out);
}
static int on_host_result(struct wrk *w, const to_worker *m, answer *a)
{
	return eng_host_result(w->slots[m->slot], m->host_result, &a->out);
}
static int on_abort(struct wrk *w, const to_worker *m, answer *a)
{
	return eng_abort(w->slots[m->slot], &a->out);
}
static int on_snapshot(struct wrk *w, const to_worker *m, answer *a)
{
	eng *e = w->slots[m->slot];
	int r = eng_snapshot(e, &a->snapshot, &a->snapshot_len);
	char msg[96];

	if (r == -EBUSY)
		snprintf(msg, sizeof(msg), "input pending on query %llu",
			 (unsigned long long)eng_pending(e));
	else if (r == -EFBIG)
		snprintf(msg, sizeof(msg), "the snapshot exceeds %u bytes", MP_SNAPSHOT_MAX_BYTES);
	else
		snprintf(msg, sizeof(msg), "%s",
			 r == -EINVAL ? "instance is closed" : "snapshot: out of memory");
	if (r == 0)
		return status_only(a, MOONPEN__V1__STATUS__CODE__OK, NULL);
	return status_only(a,
			   r == -EFBIG	  ? MOONPEN__V1__STATUS__CODE__MEMORY_LIMIT
			   : r == -ENOMEM ? MOONPEN__V1__STATUS__CODE__INTERNAL
					  : MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT,
			   msg);
}

static const struct handler {
	Moonpen__Worker__V1__ToWorker__OpCase op;
	int needs_engine; /* 1: only on an occupied slot; 0: only on a free one */
	int (*fn)(struct wrk *, const to_worker *, answer *);
} handlers[] = {
    {MOONPEN__WORKER__V1__TO_WORKER__OP_INIT, 0, on_init},
    {MOONPEN__WORKER__V1__TO_WORKER__OP_EVENT, 1, on_event},
    {MOONPEN__WORKER__V1__TO_WORKER__OP_TICK, 1, on_tick},
    {MOONPEN__WORKER__V1__TO_WORKER__OP_CALL, 1, on_call},
    {MOONPEN__WORKER__V1__TO_WORKER__OP_SNAPSHOT, 1, on_snapshot},
    {MOONPEN__WORKER__V1__TO_WORKER__OP_CLOSE, 1, on_close},
    {MOONPEN__WORKER__V1__TO_WORKER__OP_HOST_RESULT, 1, on_host_result},
    {MOONPEN__WORKER__V1__TO_WORKER__OP_ABORT, 1, on_abort},
};

/* Runs the handler, or answers why the slot cannot take the message. */
static int handle(struct wrk *w, const struct handler *h, const to_worker *m, answer *a)
{
	char msg[96];

	if (m->slot < ENG_MAX_SLOTS && (w->slots[m->slot] != NULL) == h->needs_engine)
		return h->fn(w, m, a);
	if (m->slot >= ENG_MAX_SLOTS)
		snprintf(msg, sizeof(msg), "slot %u is out of range (0..%d)", m->slot,
			 ENG_MAX_SLOTS - 1);
	else if (h->needs_engine)
		snprintf(msg, sizeof(msg), "no instance in slot %u", m->slot);
	else
		snprintf(msg, sizeof(msg), "slot %u already holds an instance", m->slot);
	return status_only(a,
			   m->slot >= ENG_MAX_SLOTS ? MOONPEN__V1__STATUS__CODE__INVALID_ARGUMENT
			   : h->needs_engine	    ? MOONPEN__V1__STATUS__CODE__NOT_FOUND
						    : MOONPEN__V1__STATUS__CODE__ALREADY_EXISTS,
			   msg);
}

/* Serves one message. Returns 0 to go on, negative to exit. */
static int serve_one(struct wrk *w)
{
	ProtobufCMessage *msg = NULL;
	const struct handler *h = NULL;
	const to_worker *m;
	answer a = {0};
	int r = wire_recv(w->sock, &moonpen__worker__v1__to_worker__descriptor,
			  MP_WORKER_MSG_MAX_BYTES, &msg);

	if (r == -ETIMEDOUT)
		return atomic_load(&w->gone) ? -EPIPE : 0; /* idle: go on unless hung up */
	if (r < 0)
		return r; /* channel gone or garbage: the supervisor is not who we talk to */
	m = (const to_worker *)msg;
	for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++)
		if (handlers[i].op == m->op_case)
			h = &handlers[i];
	if (h == NULL) {
		log_error("protocol violation: message %d", (int)m->op_case);
		protobuf_c_message_free_unpacked(msg, NULL);
		return -EPROTO;
	}
	r = handle(w, h, m, &a);
	if (r == 0)
		r = reply(w, m, &a);
	if (a.end_slot)
		slot_end(w, m->slot);
	protobuf_c_message_free_unpacked(msg, NULL);
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
	/* 4. confine: empty root, no_new_privs, capabilities, seccomp (all threads) — before any
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
	/* 6. serve: Init first (per slot), then inputs, until slot 0's instance
	 *    closes with no other left, or the channel goes away */
	while (!w.done && serve_one(&w) == 0)
		;
	for (size_t i = 0; i < ENG_MAX_SLOTS; i++)
		eng_free(w.slots[i]);
	if (!w.done)
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
