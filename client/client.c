/*
 * client — libmoonpen: requests to moonpend over an NNG REQ socket.
 *
 * Runs in a game server (and moonpenctl). Replies come from moonpend but are
 * still bytes off a socket: their size is capped at the transport, they are
 * decoded and checked with protobuf_c_message_check(), their id must be the
 * request's, and every Value in them must pass val_check() so that recursive
 * consumers (vjson_to_json, printers) stay bounded.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <sodium.h>

#include "client/moonpen.h"
#include "common/wire.h"
#include "common/status.h"
#include "common/val_json.h"

#define MP_MAX_REPLY_DEPTH 128 /* table nesting accepted in a reply's Values */

struct mp_client {
	nng_socket sock;
	uint64_t next_id;
	char trace[72];	   /* trace id of the last request */
	char lasterr[128]; /* NNG text of the last transport failure */
};

/* ---- errors ----------------------------------------------------------------------- */

static int nng_to_errno(int rv)
{
	switch (rv) {
	case NNG_ETIMEDOUT:
		return -ETIMEDOUT;
	case NNG_ECONNREFUSED:
		return -ECONNREFUSED;
	case NNG_ENOENT:
		return -ENOENT;
	case NNG_ENOMEM:
		return -ENOMEM;
	case NNG_EADDRINVAL:
	case NNG_ENOTSUP:
	case NNG_EINVAL:
		return -EINVAL;
	default:
		return -EIO;
	}
}

static int transport_fail(mp_client *c, const char *what, int rv)
{
	snprintf(c->lasterr, sizeof(c->lasterr), "%s: %s", what, nng_strerror(rv));
	return nng_to_errno(rv);
}

const char *mp_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case -EINVAL:
		return "invalid argument";
	case -ENOMEM:
		return "out of memory";
	case -ECONNREFUSED:
		return "connection refused (is moonpend running?)";
	case -ENOENT:
		return "no such socket (is moonpend running?)";
	case -ETIMEDOUT:
		return "timed out waiting for moonpend";
	case -EIO:
		return "transport error";
	case -EPROTO:
		return "malformed reply from moonpend";
	case -EBADMSG:
		return "reply id does not match the request";
	default:
		return "unknown error";
	}
}

const char *mp_last_error(const mp_client *c)
{
	return c != NULL ? c->lasterr : "";
}

const char *mp_last_trace_id(const mp_client *c)
{
	return c != NULL ? c->trace : "";
}

/* ---- connection ---------------------------------------------------------------------- */

int mp_set_timeouts(mp_client *c, int send_ms, int recv_ms)
{
	nng_duration s = send_ms > 0 ? send_ms : NNG_DURATION_INFINITE;
	nng_duration r = recv_ms > 0 ? recv_ms : NNG_DURATION_INFINITE;
	int rv;

	if (c == NULL)
		return -EINVAL;
	rv = nng_socket_set_ms(c->sock, NNG_OPT_SENDTIMEO, s);
	if (rv == 0)
		rv = nng_socket_set_ms(c->sock, NNG_OPT_RECVTIMEO, r);
	return rv == 0 ? 0 : transport_fail(c, "set timeouts", rv);
}

static int configure(mp_client *c)
{
	int rv;

	/* a reply larger than this is dropped by NNG before we allocate for it */
	rv = nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, MP_RECV_MAX_BYTES);
	if (rv != 0)
		return transport_fail(c, "set recv-size-max", rv);
	/* no timed resend: an event or tick applied twice is a different game */
	rv = nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	if (rv != 0)
		return transport_fail(c, "set resend-time", rv);
	return mp_set_timeouts(c, MP_SEND_TIMEOUT_MS, MP_RECV_TIMEOUT_MS);
}

int mp_connect(const char *url, mp_client **out)
{
	mp_client *c;
	int r, rv;

	*out = NULL;
	if (sodium_init() < 0)
		return -ENOMEM;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	rv = nng_req0_open(&c->sock);
	if (rv != 0) {
		free(c);
		return nng_to_errno(rv);
	}
	r = configure(c);
	if (r < 0)
		goto out;
	rv = nng_dial(c->sock, url != NULL ? url : MP_DEFAULT_URL, NULL, 0);
	if (rv != 0)
		r = transport_fail(c, url != NULL ? url : MP_DEFAULT_URL, rv);
out:
	if (r < 0) {
		nng_close(c->sock);
		free(c);
		return r;
	}
	*out = c;
	return 0;
}

void mp_disconnect(mp_client *c)
{
	if (c == NULL)
		return;
	nng_close(c->sock);
	free(c);
}

/* ---- one request, one reply ----------------------------------------------------------- */

static void new_trace_id(mp_client *c)
{
	unsigned char raw[16];

	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(c->trace, sizeof(c->trace), raw, sizeof(raw));
}

static int send_request(mp_client *c, const Moonpen__V1__Request *req)
{
	size_t len = moonpen__v1__request__get_packed_size(req);
	uint8_t *buf = malloc(len > 0 ? len : 1);
	int rv;

	if (buf == NULL)
		return -ENOMEM;
	moonpen__v1__request__pack(req, buf);
	rv = nng_send(c->sock, buf, len, 0);
	free(buf);
	return rv == 0 ? 0 : transport_fail(c, "send", rv);
}

static int values_ok(Moonpen__V1__Value *const *v, size_t n)
{
	char err[8];
	size_t i;

	for (i = 0; i < n; i++)
		if (val_check(v[i], MP_MAX_REPLY_DEPTH, err, sizeof(err)) < 0)
			return 0;
	return 1;
}

/* Meaning checks past protobuf_c_message_check(): bounded, valid Values. */
static int reply_ok(const mp_response *r)
{
	const Moonpen__V1__Result *res = r->result;
	size_t i;

	if (!protobuf_c_message_check(&r->base))
		return 0;
	if (r->host_call != NULL && !values_ok(r->host_call->args, r->host_call->n_args))
		return 0;
	if (res == NULL)
		return 1;
	for (i = 0; i < res->n_effects; i++)
		if (!values_ok(res->effects[i]->args, res->effects[i]->n_args))
			return 0;
	return values_ok(res->returns, res->n_returns);
}

static int recv_reply(mp_client *c, uint64_t id, mp_response **out)
{
	mp_response *resp = NULL;
	ProtobufCMessage *m = NULL;
	void *buf = NULL;
	size_t len = 0;
	int rv;

	rv = nng_recv(c->sock, &buf, &len, NNG_FLAG_ALLOC);
	if (rv != 0)
		return transport_fail(c, "receive", rv);
	/* size cap, nesting bound, decode, protobuf_c_message_check */
	if (wire_unpack(&moonpen__v1__response__descriptor, buf, len, MP_RECV_MAX_BYTES, &m) == 0)
		resp = (mp_response *)m;
	nng_free(buf, len);
	if (resp == NULL || !reply_ok(resp)) {
		snprintf(c->lasterr, sizeof(c->lasterr), "reply does not decode");
		mp_response_free(resp);
		return -EPROTO;
	}
	if (resp->id != id) {
		snprintf(c->lasterr, sizeof(c->lasterr), "reply id %llu, request id %llu",
			 (unsigned long long)resp->id, (unsigned long long)id);
		mp_response_free(resp);
		return -EBADMSG;
	}
	*out = resp;
	return 0;
}

int mp_request(mp_client *c, Moonpen__V1__Request *req, mp_response **out)
{
	char *saved;
	int r;

	if (out != NULL)
		*out = NULL;
	if (c == NULL || req == NULL || out == NULL)
		return -EINVAL;
	c->lasterr[0] = '\0';
	req->id = ++c->next_id;
	saved = req->trace_id;
	if (saved == NULL || saved[0] == '\0') {
		new_trace_id(c);
		req->trace_id = c->trace; /* only for packing: req is the caller's */
	} else {
		snprintf(c->trace, sizeof(c->trace), "%s", saved);
	}
	r = send_request(c, req);
	req->trace_id = saved;
	if (r < 0)
		return r;
	return recv_reply(c, req->id, out);
}

void mp_response_free(mp_response *r)
{
	if (r != NULL)
		protobuf_c_message_free_unpacked(&r->base, NULL);
}

Moonpen__V1__Status__Code mp_status_code(const mp_response *r)
{
	if (r == NULL || r->status == NULL)
		return MOONPEN__V1__STATUS__CODE__OK;
	return r->status->code;
}

/* ---- operations ------------------------------------------------------------------------ */

/* Requests are built on the stack, pointing at the caller's strings and
 * Values: nothing here is freed with protobuf_c_message_free_unpacked(). */

static int labels_build(const mp_create_opts *o, Moonpen__V1__CreateInstance *ci)
{
	Moonpen__V1__CreateInstance__LabelsEntry *e;
	size_t i;

	if (o->n_labels == 0)
		return 0;
	if (o->label_keys == NULL || o->label_values == NULL)
		return -EINVAL;
	e = calloc(o->n_labels, sizeof(*e));
	ci->labels = calloc(o->n_labels, sizeof(*ci->labels));
	if (e == NULL || ci->labels == NULL) {
		free(e);
		free(ci->labels);
		ci->labels = NULL;
		return -ENOMEM;
	}
	for (i = 0; i < o->n_labels; i++) {
		moonpen__v1__create_instance__labels_entry__init(&e[i]);
		e[i].key = (char *)o->label_keys[i];
		e[i].value = (char *)o->label_values[i];
		if (e[i].key == NULL || e[i].value == NULL) {
			free(e);
			free(ci->labels);
			ci->labels = NULL;
			return -EINVAL;
		}
		ci->labels[i] = &e[i];
	}
	ci->n_labels = o->n_labels;
	return 0;
}

int mp_create(mp_client *c, const mp_create_opts *opts, mp_response **out)
{
	Moonpen__V1__Request req = MOONPEN__V1__REQUEST__INIT;
	Moonpen__V1__CreateInstance ci = MOONPEN__V1__CREATE_INSTANCE__INIT;
	int r;

	*out = NULL;
	if (opts == NULL || opts->instance_id == NULL || opts->pack_id == NULL)
		return -EINVAL;
	ci.instance_id = (char *)opts->instance_id;
	ci.pack_id = (char *)opts->pack_id;
	if (opts->pack_version != NULL)
		ci.pack_version = (char *)opts->pack_version;
	ci.seed = opts->seed;
	ci.tick_ms = opts->tick_ms;
	r = labels_build(opts, &ci);
	if (r < 0)
		return r;
	req.op_case = MOONPEN__V1__REQUEST__OP_CREATE;
	req.create = &ci;
	r = mp_request(c, &req, out);
	if (ci.n_labels > 0)
		free(ci.labels[0]); /* the entries were one allocation */
	free(ci.labels);
	return r;
}

/* The messages of the requests that name only an instance (and a number: the
 * tick count, the rollback tick); id_request points the request at one. */
struct id_ops {
	Moonpen__V1__GetInstance info;
	Moonpen__V1__CloseInstance close;
	Moonpen__V1__SnapshotInstance snapshot;
	Moonpen__V1__ExportTrace trace;
	Moonpen__V1__GetIncident incident;
	Moonpen__V1__Tick tick;
	Moonpen__V1__Rollback rollback;
};

/* Sets req's op to op's message in m; -EINVAL for an op id_request does not build. */
static int id_op_set(Moonpen__V1__Request *req, Moonpen__V1__Request__OpCase op, struct id_ops *m)
{
	req->op_case = op;
	switch (op) {
	case MOONPEN__V1__REQUEST__OP_INFO:
		req->info = &m->info;
		return 0;
	case MOONPEN__V1__REQUEST__OP_CLOSE:
		req->close = &m->close;
		return 0;
	case MOONPEN__V1__REQUEST__OP_SNAPSHOT:
		req->snapshot = &m->snapshot;
		return 0;
	case MOONPEN__V1__REQUEST__OP_TRACE:
		req->trace = &m->trace;
		return 0;
	case MOONPEN__V1__REQUEST__OP_INCIDENT:
		req->incident = &m->incident;
		return 0;
	case MOONPEN__V1__REQUEST__OP_TICK:
		req->tick = &m->tick;
		return 0;
	case MOONPEN__V1__REQUEST__OP_ROLLBACK:
		req->rollback = &m->rollback;
		return 0;
	default:
		return -EINVAL;
	}
}

/* Sends the request op for instance id; n is the tick count (OP_TICK) or the
 * rollback tick (OP_ROLLBACK), ignored otherwise. */
static int id_request(mp_client *c, Moonpen__V1__Request__OpCase op, const char *id, uint64_t n,
		      mp_response **out)
{
	Moonpen__V1__Request req = MOONPEN__V1__REQUEST__INIT;
	struct id_ops m = {
	    .info = MOONPEN__V1__GET_INSTANCE__INIT,
	    .close = MOONPEN__V1__CLOSE_INSTANCE__INIT,
	    .snapshot = MOONPEN__V1__SNAPSHOT_INSTANCE__INIT,
	    .trace = MOONPEN__V1__EXPORT_TRACE__INIT,
	    .incident = MOONPEN__V1__GET_INCIDENT__INIT,
	    .tick = MOONPEN__V1__TICK__INIT,
	    .rollback = MOONPEN__V1__ROLLBACK__INIT,
	};

	*out = NULL;
	if (id == NULL || id_op_set(&req, op, &m) < 0)
		return -EINVAL;
	m.info.instance_id = m.close.instance_id = m.snapshot.instance_id = (char *)id;
	m.trace.instance_id = m.incident.instance_id = (char *)id;
	m.tick.instance_id = m.rollback.instance_id = (char *)id;
	m.tick.count = (uint32_t)n;
	m.rollback.tick = n;
	return mp_request(c, &req, out);
}

int mp_event(mp_client *c, const char *id, const char *name, const val_t *payload,
	     mp_response **out)
{
	Moonpen__V1__Request req = MOONPEN__V1__REQUEST__INIT;
	Moonpen__V1__SendEvent ev = MOONPEN__V1__SEND_EVENT__INIT;

	*out = NULL;
	if (id == NULL || name == NULL)
		return -EINVAL;
	ev.instance_id = (char *)id;
	ev.name = (char *)name;
	ev.payload = (val_t *)payload;
	req.op_case = MOONPEN__V1__REQUEST__OP_EVENT;
	req.event = &ev;
	return mp_request(c, &req, out);
}

int mp_tick(mp_client *c, const char *id, uint32_t count, mp_response **out)
{
	return id_request(c, MOONPEN__V1__REQUEST__OP_TICK, id, count, out);
}

int mp_call(mp_client *c, const char *id, const char *fn, const val_t *const *args, size_t nargs,
	    mp_response **out)
{
	Moonpen__V1__Request req = MOONPEN__V1__REQUEST__INIT;
	Moonpen__V1__Call call = MOONPEN__V1__CALL__INIT;
	size_t i;

	*out = NULL;
	if (id == NULL || fn == NULL || (nargs > 0 && args == NULL))
		return -EINVAL;
	for (i = 0; i < nargs; i++)
		if (args[i] == NULL)
			return -EINVAL; /* a repeated Value cannot hold an absent one */
	call.instance_id = (char *)id;
	call.function = (char *)fn;
	call.args = (val_t **)args;
	call.n_args = nargs;
	req.op_case = MOONPEN__V1__REQUEST__OP_CALL;
	req.call = &call;
	return mp_request(c, &req, out);
}

int mp_info(mp_client *c, const char *id, mp_response **out)
{
	return id_request(c, MOONPEN__V1__REQUEST__OP_INFO, id, 0, out);
}

int mp_list(mp_client *c, mp_response **out)
{
	Moonpen__V1__Request req = MOONPEN__V1__REQUEST__INIT;
	Moonpen__V1__ListInstances l = MOONPEN__V1__LIST_INSTANCES__INIT;

	*out = NULL;
	req.op_case = MOONPEN__V1__REQUEST__OP_LIST;
	req.list = &l;
	return mp_request(c, &req, out);
}

int mp_close(mp_client *c, const char *id, mp_response **out)
{
	return id_request(c, MOONPEN__V1__REQUEST__OP_CLOSE, id, 0, out);
}

int mp_snapshot(mp_client *c, const char *id, mp_response **out)
{
	return id_request(c, MOONPEN__V1__REQUEST__OP_SNAPSHOT, id, 0, out);
}

int mp_host_result(mp_client *c, const char *id, uint64_t call_id, const val_t *value,
		   const char *error, mp_response **out)
{
	Moonpen__V1__Request req = MOONPEN__V1__REQUEST__INIT;
	Moonpen__V1__HostResult h = MOONPEN__V1__HOST_RESULT__INIT;
	Moonpen__V1__Value nil = MOONPEN__V1__VALUE__INIT;
	Moonpen__V1__Nil nilv = MOONPEN__V1__NIL__INIT;

	*out = NULL;
	if (id == NULL)
		return -EINVAL;
	h.instance_id = (char *)id;
	h.call_id = call_id;
	if (error != NULL) {
		h.answer_case = MOONPEN__V1__HOST_RESULT__ANSWER_ERROR;
		h.error = (char *)error;
	} else {
		nil.kind_case = MOONPEN__V1__VALUE__KIND_NIL_VALUE;
		nil.nil_value = &nilv;
		h.answer_case = MOONPEN__V1__HOST_RESULT__ANSWER_VALUE;
		h.value = value != NULL ? (val_t *)value : &nil;
	}
	req.op_case = MOONPEN__V1__REQUEST__OP_HOST_RESULT;
	req.host_result = &h;
	return mp_request(c, &req, out);
}

int mp_rollback(mp_client *c, const char *id, uint64_t tick, mp_response **out)
{
	return id_request(c, MOONPEN__V1__REQUEST__OP_ROLLBACK, id, tick, out);
}

int mp_restore(mp_client *c, const char *id, const void *snapshot, size_t len, mp_response **out)
{
	Moonpen__V1__Request req = MOONPEN__V1__REQUEST__INIT;
	Moonpen__V1__RestoreInstance rs = MOONPEN__V1__RESTORE_INSTANCE__INIT;

	*out = NULL;
	if (id == NULL || snapshot == NULL || len == 0)
		return -EINVAL;
	rs.instance_id = (char *)id;
	rs.snapshot.data = (uint8_t *)snapshot;
	rs.snapshot.len = len;
	req.op_case = MOONPEN__V1__REQUEST__OP_RESTORE;
	req.restore = &rs;
	return mp_request(c, &req, out);
}

int mp_trace(mp_client *c, const char *id, mp_response **out)
{
	return id_request(c, MOONPEN__V1__REQUEST__OP_TRACE, id, 0, out);
}

int mp_incident(mp_client *c, const char *id, mp_response **out)
{
	return id_request(c, MOONPEN__V1__REQUEST__OP_INCIDENT, id, 0, out);
}

/* ---- the reply as JSON ------------------------------------------------------------------- */

/* A JSON string for s (NULL: ""); bytes of a non-UTF-8 string print as '?'. */
static json_t *jstr(const char *s)
{
	json_t *j;
	char *copy;
	size_t i;

	if (s == NULL)
		s = "";
	if (val_utf8_valid(s, strlen(s)))
		return json_string(s);
	copy = strdup(s);
	if (copy == NULL)
		return NULL;
	for (i = 0; copy[i] != '\0'; i++)
		if ((unsigned char)copy[i] >= 0x80)
			copy[i] = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

static json_t *jint(uint64_t n)
{
	return json_integer((json_int_t)n);
}

static json_t *jhex(const ProtobufCBinaryData *b)
{
	char *hex;
	json_t *j;

	if (b == NULL || b->len == 0)
		return json_string("");
	hex = malloc(b->len * 2 + 1);
	if (hex == NULL)
		return NULL;
	sodium_bin2hex(hex, b->len * 2 + 1, b->data, b->len);
	j = json_string(hex);
	free(hex);
	return j;
}

/* Sets o[k] = v, taking v; a NULL v (out of memory) poisons *ok. */
static void put(json_t *o, const char *k, json_t *v, int *ok)
{
	if (v == NULL || json_object_set_new(o, k, v) < 0)
		*ok = 0;
}

static void append(json_t *a, json_t *v, int *ok)
{
	if (v == NULL || json_array_append_new(a, v) < 0)
		*ok = 0;
}

static json_t *values_json(Moonpen__V1__Value *const *v, size_t n)
{
	json_t *a = json_array();
	int ok = a != NULL;
	size_t i;

	for (i = 0; ok && i < n; i++)
		append(a, vjson_to_json(v[i]), &ok);
	if (!ok) {
		json_decref(a);
		return NULL;
	}
	return a;
}

static json_t *status_json(const Moonpen__V1__Status *s)
{
	json_t *o = json_object();
	int ok = o != NULL;

	if (!ok)
		return NULL;
	put(o, "code", json_string(st_name(s != NULL ? s->code : MOONPEN__V1__STATUS__CODE__OK)),
	    &ok);
	put(o, "message", jstr(s != NULL ? s->message : NULL), &ok);
	put(o, "traceback", jstr(s != NULL ? s->traceback : NULL), &ok);
	put(o, "retryable", json_boolean(s != NULL && s->retryable), &ok);
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *effect_json(const Moonpen__V1__Effect *e)
{
	json_t *o = json_object();
	int ok = o != NULL;

	if (!ok)
		return NULL;
	put(o, "api", jstr(e->api), &ok);
	put(o, "fn", jstr(e->fn), &ok);
	put(o, "args", values_json(e->args, e->n_args), &ok);
	put(o, "trigger_id", jstr(e->trigger_id), &ok);
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *log_json(const Moonpen__V1__LogLine *l)
{
	return json_pack("{s:o,s:o,s:o}", "level", jstr(l->level), "message", jstr(l->message),
			 "tick", jint(l->tick));
}

static json_t *usage_json(const Moonpen__V1__Usage *u)
{
	Moonpen__V1__Usage zero = MOONPEN__V1__USAGE__INIT;

	if (u == NULL)
		u = &zero;
	return json_pack("{s:o,s:o,s:o}", "instructions", jint(u->instructions), "cpu_us",
			 jint(u->cpu_us), "mem_bytes", jint(u->mem_bytes));
}

/* effects, returns, logs, tick, state_hash, usage: empty when res is NULL */
static void result_json(json_t *o, const Moonpen__V1__Result *res, int *ok)
{
	Moonpen__V1__Result zero = MOONPEN__V1__RESULT__INIT;
	json_t *effects = json_array(), *logs = json_array();
	size_t i;

	if (res == NULL)
		res = &zero;
	for (i = 0; effects != NULL && i < res->n_effects; i++)
		append(effects, effect_json(res->effects[i]), ok);
	put(o, "effects", effects, ok);
	put(o, "returns", values_json(res->returns, res->n_returns), ok);
	for (i = 0; logs != NULL && i < res->n_logs; i++)
		append(logs, log_json(res->logs[i]), ok);
	put(o, "logs", logs, ok);
	put(o, "tick", jint(res->tick), ok);
	put(o, "state_hash", jhex(&res->state_hash), ok);
	put(o, "usage", usage_json(res->usage), ok);
}

const char *mp_state_name(Moonpen__V1__InstanceInfo__State s)
{
	switch (s) {
	case MOONPEN__V1__INSTANCE_INFO__STATE__STARTING:
		return "starting";
	case MOONPEN__V1__INSTANCE_INFO__STATE__RUNNING:
		return "running";
	case MOONPEN__V1__INSTANCE_INFO__STATE__QUARANTINED:
		return "quarantined";
	case MOONPEN__V1__INSTANCE_INFO__STATE__CLOSED:
		return "closed";
	default:
		return "unknown";
	}
}

static json_t *labels_json(const Moonpen__V1__InstanceInfo *in, int *ok)
{
	json_t *o = json_object();
	size_t i;

	for (i = 0; o != NULL && i < in->n_labels; i++)
		put(o, in->labels[i]->key != NULL ? in->labels[i]->key : "",
		    jstr(in->labels[i]->value), ok);
	return o;
}

static json_t *layers_json(const Moonpen__V1__InstanceInfo *in, int *ok)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a != NULL && i < in->n_layers; i++)
		append(a, jstr(in->layers[i]), ok);
	return a;
}

static json_t *dead_json(const Moonpen__V1__DeadLetter *d)
{
	return json_pack("{s:o,s:o,s:o,s:o,s:s,s:o}", "input", jint(d->input), "tick",
			 jint(d->tick), "kind", jstr(d->kind), "name", jstr(d->name), "code",
			 st_name(d->code), "message", jstr(d->message));
}

/* isolation, missing_layers, snapshots and dead letters of an InstanceInfo */
static void info_recovery_json(json_t *o, const Moonpen__V1__InstanceInfo *in, int *ok)
{
	json_t *missing = json_array(), *dead = json_array();
	size_t i;

	put(o, "isolation", jstr(in->isolation), ok);
	for (i = 0; missing != NULL && i < in->n_missing_layers; i++)
		append(missing, jstr(in->missing_layers[i]), ok);
	put(o, "missing_layers", missing, ok);
	put(o, "snapshot_tick", jint(in->snapshot_tick), ok);
	put(o, "snapshot_input", jint(in->snapshot_input), ok);
	put(o, "log_length", jint(in->log_length), ok);
	put(o, "snapshots", jint(in->snapshots), ok);
	for (i = 0; dead != NULL && i < in->n_dead_letters; i++)
		append(dead, dead_json(in->dead_letters[i]), ok);
	put(o, "dead_letters", dead, ok);
}

static json_t *info_json(const Moonpen__V1__InstanceInfo *in)
{
	json_t *o = json_object();
	int ok = o != NULL;

	if (!ok)
		return NULL;
	put(o, "instance_id", jstr(in->instance_id), &ok);
	put(o, "pack_id", jstr(in->pack_id), &ok);
	put(o, "pack_version", jstr(in->pack_version), &ok);
	put(o, "seed", jint(in->seed), &ok);
	put(o, "tick_ms", jint(in->tick_ms), &ok);
	put(o, "tick", jint(in->tick), &ok);
	put(o, "state", json_string(mp_state_name(in->state)), &ok);
	put(o, "state_hash", jhex(&in->state_hash), &ok);
	put(o, "labels", labels_json(in, &ok), &ok);
	put(o, "worker_pid", json_integer(in->worker_pid), &ok);
	put(o, "layers", layers_json(in, &ok), &ok);
	put(o, "inputs", jint(in->inputs), &ok);
	put(o, "restarts", jint(in->restarts), &ok);
	put(o, "reason", jstr(in->reason), &ok);
	info_recovery_json(o, in, &ok);
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *host_call_json(const Moonpen__V1__HostCall *h)
{
	return json_pack("{s:o,s:o,s:o,s:o,s:o}", "call_id", jint(h->call_id), "api", jstr(h->api),
			 "fn", jstr(h->fn), "args", values_json(h->args, h->n_args), "timeout_ms",
			 jint(h->timeout_ms));
}

static json_t *jbase64(const ProtobufCBinaryData *b)
{
	size_t n = sodium_base64_encoded_len(b->len, sodium_base64_VARIANT_ORIGINAL);
	char *s = malloc(n);
	json_t *j;

	if (s == NULL)
		return NULL;
	sodium_bin2base64(s, n, b->data, b->len, sodium_base64_VARIANT_ORIGINAL);
	j = json_string(s);
	free(s);
	return j;
}

/* The trace as JSON when it parses (bounded by jansson's own depth limit),
 * else as a string of its bytes. */
static json_t *trace_json(const ProtobufCBinaryData *b)
{
	json_error_t e;
	json_t *j = json_loadb((const char *)b->data, b->len, JSON_REJECT_DUPLICATES, &e);
	char *s;

	if (j != NULL)
		return j;
	s = malloc(b->len + 1);
	if (s == NULL)
		return NULL;
	memcpy(s, b->data, b->len);
	s[b->len] = '\0';
	j = jstr(s);
	free(s);
	return j;
}

json_t *mp_response_to_json(const mp_response *r)
{
	json_t *o = json_object(), *list;
	int ok = o != NULL;
	size_t i;

	if (!ok || r == NULL) {
		json_decref(o);
		return NULL;
	}
	put(o, "status", status_json(r->status), &ok);
	result_json(o, r->result, &ok);
	if (r->info != NULL)
		put(o, "info", info_json(r->info), &ok);
	if (r->n_instances > 0) {
		list = json_array();
		for (i = 0; list != NULL && i < r->n_instances; i++)
			append(list, info_json(r->instances[i]), &ok);
		put(o, "instances", list, &ok);
	}
	if (r->host_call != NULL)
		put(o, "host_call", host_call_json(r->host_call), &ok);
	if (r->snapshot.len > 0)
		put(o, "snapshot", jbase64(&r->snapshot), &ok);
	if (r->trace_json.len > 0)
		put(o, "trace", trace_json(&r->trace_json), &ok);
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}
