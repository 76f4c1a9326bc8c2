/*
 * session — one instance in a real confined worker, for spk run and replay.
 * Runs in spk (not confined: it never runs pack code). The worker is started
 * by wchan exactly as moonpend starts it; its replies were checked by wchan,
 * and their meaning (a PENDING reply carries a query) is checked here.
 */
#include "tools/spk/session.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/wire.h"
#include "policy/limits.h"
#include "supervisor/wchan.h"
#include "supervisor/winit.h"

typedef Moonpen__Worker__V1__ToWorker to_worker;
typedef Moonpen__Worker__V1__FromWorker from_worker;

#define SPK_INSTANCE_ID "spk"

struct spk_sess {
	const pack *pk;
	char run_dir[PATH_MAX];
	char worker[PATH_MAX];
	char wrapper[PATH_MAX]; /* debugging only (--worker-wrapper); "" in normal runs */
	Moonpen__Worker__V1__Init init;
	Moonpen__Worker__V1__Limits lim;
	wchan *w;
	unsigned next_id;
	uint64_t tick;
	uint32_t deadline_ms, hard_factor;
	char snap_id[MP_MAX_ID_BYTES + 1]; /* Init.instance_id while restoring a snapshot */
};

/* moonpen-worker next to spk, or in ../libexec/moonpen (installed layout). */
static int find_worker(char *out, size_t len, char *err, size_t errlen)
{
	static const char *const rel[] = {"moonpen-worker", "../libexec/moonpen/moonpen-worker"};
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	char *slash;
	size_t i;

	if (n <= 0) {
		snprintf(err, errlen, "readlink /proc/self/exe: %s", strerror(errno));
		return -errno;
	}
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	*slash = '\0';
	for (i = 0; i < sizeof rel / sizeof rel[0]; i++) {
		if ((size_t)snprintf(out, len, "%s/%s", exe, rel[i]) < len &&
		    access(out, X_OK) == 0)
			return 0;
	}
	snprintf(err, errlen, "moonpen-worker not found next to %s", exe);
	return -ENOENT;
}

static void fill_init(spk_sess *s, const spk_sess_opts *o)
{
	sup_winit_opts w = {.instance_id = SPK_INSTANCE_ID,
			    .pk = o->pk,
			    .host_api = o->host_api,
			    .host_api_len = o->host_api_len,
			    .seed = o->seed,
			    .tick_ms = o->tick_ms,
			    .deadline_ms = o->deadline_ms};

	sup_winit_fill(&w, &s->init, &s->lim);
}

int spk_sess_new(const spk_sess_opts *o, spk_sess **out, char *err, size_t errlen)
{
	const char *tmp = getenv("TMPDIR");
	spk_sess *s = calloc(1, sizeof *s);
	int r;

	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->pk = o->pk;
	s->deadline_ms = sup_winit_deadline_ms(o->pk, o->deadline_ms);
	snprintf(s->wrapper, sizeof s->wrapper, "%s", o->wrapper ? o->wrapper : "");
	s->hard_factor = MP_HARD_DEADLINE_FACTOR; /* moonpend's default --hard-factor */
	r = find_worker(s->worker, sizeof s->worker, err, errlen);
	if (r < 0)
		goto out;
	snprintf(s->run_dir, sizeof s->run_dir, "%s/spk-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
	if (mkdtemp(s->run_dir) == NULL) { /* mode 0700: the worker sockets live here */
		r = -errno;
		snprintf(err, errlen, "mkdtemp %s: %s", s->run_dir, strerror(errno));
		s->run_dir[0] = '\0';
		goto out;
	}
	fill_init(s, o);
	*out = s;
	return 0;
out:
	spk_sess_free(s);
	return r;
}

const Moonpen__Worker__V1__Init *spk_sess_init(const spk_sess *s)
{
	return &s->init;
}

uint64_t spk_sess_tick(const spk_sess *s)
{
	return s->tick;
}

/* The hard deadline for an input worth `scale` soft deadlines, as moonpend's. */
static uint32_t hard_ms(const spk_sess *s, uint32_t scale)
{
	return sup_hard_ms(s->deadline_ms, scale, s->hard_factor);
}

/* The tick a snapshot was taken at (its header), and the instance it is of
 * in s->snap_id (the Init restores it under that id, as moonpend did: a
 * trace exported by moonpend starts from its snapshot). Tick 0 and the
 * session's id when it cannot be read (the worker will refuse it, saying why). */
static uint64_t snapshot_tick(spk_sess *s, const uint8_t *snap, size_t len)
{
	ProtobufCMessage *m = NULL;
	uint64_t tick = 0;

	snprintf(s->snap_id, sizeof s->snap_id, "%s", SPK_INSTANCE_ID);
	if (wire_unpack(&moonpen__worker__v1__snapshot__descriptor, snap, len,
			MP_SNAPSHOT_MAX_BYTES, &m) == 0) {
		Moonpen__Worker__V1__Snapshot *h = (Moonpen__Worker__V1__Snapshot *)m;
		tick = h->tick;
		if (h->instance_id[0] && strlen(h->instance_id) < sizeof s->snap_id)
			snprintf(s->snap_id, sizeof s->snap_id, "%s", h->instance_id);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	return tick;
}

int spk_sess_boot(spk_sess *s, const uint8_t *snap, size_t snap_len, from_worker **reply, char *err,
		  size_t errlen)
{
	wchan_opts o = {.worker_path = s->worker,
			.run_dir = s->run_dir,
			.id = s->next_id++,
			.mem_bytes = s->lim.mem_bytes,
			.hello_timeout_ms = MP_SPAWN_TIMEOUT_MS,
			.wrapper = s->wrapper};
	to_worker tw = MOONPEN__WORKER__V1__TO_WORKER__INIT;
	const char *why;
	int r;

	wchan_free(s->w);
	s->w = NULL;
	r = wchan_start(&o, &s->w, err, errlen);
	if (r < 0)
		return r;
	s->tick = snap_len ? snapshot_tick(s, snap, snap_len) : 0;
	s->init.snapshot.data = (uint8_t *)snap;
	s->init.snapshot.len = snap_len;
	s->init.instance_id = snap_len ? s->snap_id : SPK_INSTANCE_ID;
	tw.op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_INIT;
	tw.init = &s->init;
	r = wchan_rpc(s->w, &tw, hard_ms(s, 1) + MP_SPAWN_TIMEOUT_MS, reply);
	s->init.snapshot.data = NULL;
	s->init.snapshot.len = 0;
	if (r < 0) {
		wchan_death(s->w, &why);
		snprintf(err, errlen, "worker died on Init: %s", why);
		wchan_free(s->w);
		s->w = NULL;
		return r;
	}
	if ((*reply)->result)
		s->tick = (*reply)->result->tick;
	return 0;
}

/* A PENDING reply must carry its query. */
static int pending(const from_worker *fw)
{
	return fw->status->code == MOONPEN__V1__STATUS__CODE__PENDING;
}

/* Answers the query of fw; *next gets the worker's following reply. */
static int answer_query(spk_sess *s, const from_worker *fw, spk_answer_fn answer, void *arg,
			trace *rec, uint32_t timeout, from_worker **next, char *err, size_t errlen)
{
	to_worker tw = MOONPEN__WORKER__V1__TO_WORKER__INIT;
	Moonpen__V1__HostResult *hr = NULL;
	int r;

	if (fw->host_call == NULL) {
		snprintf(err, errlen, "worker replied PENDING without a query");
		return -EPROTO;
	}
	if (answer == NULL) {
		snprintf(err, errlen, "query %s.%s (call %llu) has no answer", fw->host_call->api,
			 fw->host_call->fn, (unsigned long long)fw->host_call->call_id);
		return -ENOENT;
	}
	r = answer(arg, fw->host_call, &hr, err, errlen);
	if (r == 0 && rec)
		r = trace_add_answer(rec, hr);
	if (r == 0) {
		tw.op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_HOST_RESULT;
		tw.host_result = hr;
		r = wchan_rpc(s->w, &tw, timeout, next);
		if (r == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		r = r == -ENOMEM ? r : r < 0 ? 1 : 0; /* 1: the worker died */
	}
	if (hr)
		protobuf_c_message_free_unpacked(&hr->base, NULL);
	return r;
}

/* The worker died on the input: its outcome is the kill. */
static int killed(spk_sess *s, trace *rec, tr_outcome *got)
{
	const char *why;
	st_code code = wchan_death(s->w, &why);
	int r = trace_outcome_killed(got, code, why);

	if (r == 0 && rec)
		r = trace_end_killed(rec, code, why);
	wchan_free(s->w);
	s->w = NULL;
	return r;
}

int spk_sess_input(spk_sess *s, to_worker *tw, spk_answer_fn answer, void *arg, trace *rec,
		   tr_outcome *got, char *err, size_t errlen)
{
	uint32_t scale = 1, timeout;
	from_worker *fw = NULL, *next;
	int r;

	memset(got, 0, sizeof *got);
	if (s->w == NULL) {
		snprintf(err, errlen, "no worker");
		return -EPIPE;
	}
	if (tw->op_case == MOONPEN__WORKER__V1__TO_WORKER__OP_TICK && tw->tick->count > 1)
		scale = tw->tick->count;
	timeout = hard_ms(s, scale);
	if (rec && trace_begin_input(rec, s->tick, tw) < 0)
		goto nomem;
	r = wchan_rpc(s->w, tw, timeout, &fw);
	while (r == 0 && pending(fw)) {
		r = answer_query(s, fw, answer, arg, rec, timeout, &next, err, errlen);
		protobuf_c_message_free_unpacked(&fw->base, NULL);
		fw = r == 0 ? next : NULL;
		if (r < 0)
			return r;
		if (r == 1)
			r = -EPIPE;
	}
	if (r == -ENOMEM)
		goto nomem;
	if (r < 0 || fw == NULL)
		return killed(s, rec, got) < 0 ? -ENOMEM : 0;
	if (fw->result && fw->status->code == MOONPEN__V1__STATUS__CODE__OK)
		s->tick = fw->result->tick;
	r = trace_outcome_from_reply(got, fw);
	if (r == 0 && rec)
		r = trace_end_input(rec, fw);
	protobuf_c_message_free_unpacked(&fw->base, NULL);
	if (r == 0)
		return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	return -ENOMEM;
}

int spk_sess_snapshot(spk_sess *s, uint8_t **snap, size_t *len, char *err, size_t errlen)
{
	to_worker tw = MOONPEN__WORKER__V1__TO_WORKER__INIT;
	Moonpen__Worker__V1__TakeSnapshot ts = MOONPEN__WORKER__V1__TAKE_SNAPSHOT__INIT;
	from_worker *fw = NULL;
	const char *why;
	int r;

	if (s->w == NULL) {
		snprintf(err, errlen, "no worker");
		return -EPIPE;
	}
	tw.op_case = MOONPEN__WORKER__V1__TO_WORKER__OP_SNAPSHOT;
	tw.snapshot = &ts;
	r = wchan_rpc(s->w, &tw, hard_ms(s, 1), &fw);
	if (r < 0) {
		wchan_death(s->w, &why);
		snprintf(err, errlen, "worker died taking a snapshot: %s", why);
		return r;
	}
	if (fw->status->code != MOONPEN__V1__STATUS__CODE__OK || fw->snapshot.len == 0) {
		snprintf(err, errlen, "snapshot refused: %s", fw->status->message);
		r = -ENOTSUP;
	} else if ((*snap = malloc(fw->snapshot.len)) == NULL) {
		snprintf(err, errlen, "out of memory");
		r = -ENOMEM;
	} else {
		memcpy(*snap, fw->snapshot.data, fw->snapshot.len);
		*len = fw->snapshot.len;
	}
	protobuf_c_message_free_unpacked(&fw->base, NULL);
	return r;
}

void spk_sess_free(spk_sess *s)
{
	if (s == NULL)
		return;
	wchan_free(s->w);
	if (s->run_dir[0] && rmdir(s->run_dir) != 0) {
		/* a socket file left behind: wchan_free removes it, so this is rare */
	}
	free(s);
}
