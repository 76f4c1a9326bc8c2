/*
 * test_client — libmoonpen against an in-process REP server (inproc://) that
 * answers canned Responses: the Request fields each mp_* call encodes, ids and
 * trace ids, refused replies (wrong id, garbage), timeouts, refused
 * connections, and the exact JSON that mp_response_to_json() prints.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "client/moonpen.h"
#include "common/val_json.h"

#define TEST_URL "inproc://moonpen-test-client"
#define SRV_MAX_REQ 8

enum srv_mode { SRV_ECHO, SRV_BAD_ID, SRV_SILENT, SRV_GARBAGE };

struct srv {
	nng_socket sock;
	pthread_t thr;
	enum srv_mode mode;
	int nreq;				 /* requests to serve */
	Moonpen__V1__Request *reqs[SRV_MAX_REQ]; /* what arrived, decoded */
	mp_response *canned;			 /* reply; its id is set per request */
};

static void srv_reply(struct srv *s, const Moonpen__V1__Request *req)
{
	mp_response plain = MOONPEN__V1__RESPONSE__INIT;
	mp_response *resp = s->canned != NULL ? s->canned : &plain;
	size_t len;
	uint8_t *buf;

	if (s->mode == SRV_GARBAGE) {
		cr_assert_eq(nng_send(s->sock, "\xff\xff\xff", 3, 0), 0);
		return;
	}
	resp->id = req->id + (s->mode == SRV_BAD_ID ? 1 : 0);
	len = moonpen__v1__response__get_packed_size(resp);
	buf = malloc(len + 1);
	moonpen__v1__response__pack(resp, buf);
	cr_assert_eq(nng_send(s->sock, buf, len, 0), 0);
	free(buf);
}

static void *srv_main(void *arg)
{
	struct srv *s = arg;
	int k;

	for (k = 0; k < s->nreq; k++) {
		void *buf = NULL;
		size_t len = 0;

		if (nng_recv(s->sock, &buf, &len, NNG_FLAG_ALLOC) != 0)
			break;
		s->reqs[k] = moonpen__v1__request__unpack(NULL, len, buf);
		nng_free(buf, len);
		if (s->reqs[k] == NULL || s->mode == SRV_SILENT)
			continue;
		srv_reply(s, s->reqs[k]);
	}
	return NULL;
}

static void srv_start(struct srv *s, enum srv_mode mode, int nreq, mp_response *canned)
{
	memset(s, 0, sizeof(*s));
	s->mode = mode;
	s->nreq = nreq;
	s->canned = canned;
	cr_assert_eq(nng_rep0_open(&s->sock), 0);
	cr_assert_eq(nng_socket_set_ms(s->sock, NNG_OPT_RECVTIMEO, 5000), 0);
	cr_assert_eq(nng_listen(s->sock, TEST_URL, NULL, 0), 0);
	cr_assert_eq(pthread_create(&s->thr, NULL, srv_main, s), 0);
}

/* Waits for the server to finish; the decoded requests stay for inspection. */
static void srv_stop(struct srv *s)
{
	pthread_join(s->thr, NULL);
	nng_close(s->sock);
}

static void srv_free(struct srv *s)
{
	int k;

	for (k = 0; k < SRV_MAX_REQ; k++)
		if (s->reqs[k] != NULL)
			protobuf_c_message_free_unpacked(&s->reqs[k]->base, NULL);
}

static mp_client *connect_ok(void)
{
	mp_client *c = NULL;

	cr_assert_eq(mp_connect(TEST_URL, &c), 0);
	cr_assert_not_null(c);
	return c;
}

static int is_hex32(const char *s)
{
	size_t i;

	if (strlen(s) != 32)
		return 0;
	for (i = 0; i < 32; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* ---- request encoding -------------------------------------------------------------------- */

Test(client, create_encodes_every_field)
{
	const char *keys[] = {"region", "segment"}, *vals[] = {"eu", "vip"};
	mp_create_opts o = {.instance_id = "forest-1",
			    .pack_id = "dungeon-forest",
			    .pack_version = "1.2.0",
			    .seed = 42,
			    .tick_ms = 50,
			    .label_keys = keys,
			    .label_values = vals,
			    .n_labels = 2};
	Moonpen__V1__InstanceInfo info = MOONPEN__V1__INSTANCE_INFO__INIT;
	mp_response canned = MOONPEN__V1__RESPONSE__INIT;
	Moonpen__V1__CreateInstance *ci;
	mp_response *resp = NULL;
	struct srv s;
	mp_client *c;

	info.instance_id = "forest-1";
	info.state = MOONPEN__V1__INSTANCE_INFO__STATE__RUNNING;
	info.worker_pid = 4321;
	canned.info = &info;
	srv_start(&s, SRV_ECHO, 1, &canned);
	c = connect_ok();
	cr_assert_eq(mp_create(c, &o, &resp), 0);
	srv_stop(&s);

	cr_assert_eq(s.reqs[0]->id, 1);
	cr_assert(is_hex32(s.reqs[0]->trace_id), "trace id '%s'", s.reqs[0]->trace_id);
	cr_assert_str_eq(s.reqs[0]->trace_id, mp_last_trace_id(c));
	cr_assert_eq(s.reqs[0]->op_case, MOONPEN__V1__REQUEST__OP_CREATE);
	ci = s.reqs[0]->create;
	cr_assert_str_eq(ci->instance_id, "forest-1");
	cr_assert_str_eq(ci->pack_id, "dungeon-forest");
	cr_assert_str_eq(ci->pack_version, "1.2.0");
	cr_assert_eq(ci->seed, 42);
	cr_assert_eq(ci->tick_ms, 50);
	cr_assert_eq(ci->n_labels, 2);
	cr_assert_str_eq(ci->labels[0]->key, "region");
	cr_assert_str_eq(ci->labels[0]->value, "eu");
	cr_assert_str_eq(ci->labels[1]->key, "segment");
	cr_assert_str_eq(ci->labels[1]->value, "vip");

	cr_assert_eq(resp->id, 1);
	cr_assert_eq(mp_status_code(resp), MOONPEN__V1__STATUS__CODE__OK);
	cr_assert_not_null(resp->info);
	cr_assert_str_eq(resp->info->instance_id, "forest-1");
	cr_assert_eq(resp->info->worker_pid, 4321);
	mp_response_free(resp);
	srv_free(&s);
	mp_disconnect(c);
}

Test(client, event_tick_call_encode_values)
{
	val_t *payload = NULL, *a1 = val_new_int(3), *a2 = val_new_string("x", 1);
	const val_t *args[2] = {a1, a2};
	mp_response *resp = NULL;
	char err[128];
	struct srv s;
	mp_client *c;

	cr_assert_eq(
	    vjson_parse("{\"player\":\"p1\",\"n\":[1,2.5]}", 8, &payload, err, sizeof(err)), 0);
	srv_start(&s, SRV_ECHO, 3, NULL);
	c = connect_ok();
	cr_assert_eq(mp_event(c, "forest-1", "OnLeverSwitch", payload, &resp), 0);
	mp_response_free(resp);
	cr_assert_eq(mp_tick(c, "forest-1", 100, &resp), 0);
	mp_response_free(resp);
	cr_assert_eq(mp_call(c, "forest-1", "get_score", args, 2, &resp), 0);
	mp_response_free(resp);
	srv_stop(&s);

	cr_assert_eq(s.reqs[0]->id, 1);
	cr_assert_eq(s.reqs[0]->op_case, MOONPEN__V1__REQUEST__OP_EVENT);
	cr_assert_str_eq(s.reqs[0]->event->instance_id, "forest-1");
	cr_assert_str_eq(s.reqs[0]->event->name, "OnLeverSwitch");
	cr_assert(val_equal(s.reqs[0]->event->payload, payload));
	cr_assert_eq(s.reqs[1]->id, 2);
	cr_assert_eq(s.reqs[1]->op_case, MOONPEN__V1__REQUEST__OP_TICK);
	cr_assert_str_eq(s.reqs[1]->tick->instance_id, "forest-1");
	cr_assert_eq(s.reqs[1]->tick->count, 100);
	cr_assert_eq(s.reqs[2]->id, 3);
	cr_assert_eq(s.reqs[2]->op_case, MOONPEN__V1__REQUEST__OP_CALL);
	cr_assert_str_eq(s.reqs[2]->call->function, "get_score");
	cr_assert_eq(s.reqs[2]->call->n_args, 2);
	cr_assert(val_equal(s.reqs[2]->call->args[0], a1));
	cr_assert(val_equal(s.reqs[2]->call->args[1], a2));
	cr_assert_str_neq(s.reqs[0]->trace_id, s.reqs[1]->trace_id);
	val_free(payload);
	val_free(a1);
	val_free(a2);
	srv_free(&s);
	mp_disconnect(c);
}

Test(client, simple_ops_encode_op_and_id)
{
	mp_response *resp = NULL;
	struct srv s;
	mp_client *c;

	srv_start(&s, SRV_ECHO, 4, NULL);
	c = connect_ok();
	cr_assert_eq(mp_info(c, "a", &resp), 0);
	mp_response_free(resp);
	cr_assert_eq(mp_list(c, &resp), 0);
	mp_response_free(resp);
	cr_assert_eq(mp_close(c, "b", &resp), 0);
	mp_response_free(resp);
	cr_assert_eq(mp_snapshot(c, "c", &resp), 0);
	mp_response_free(resp);
	srv_stop(&s);

	cr_assert_eq(s.reqs[0]->op_case, MOONPEN__V1__REQUEST__OP_INFO);
	cr_assert_str_eq(s.reqs[0]->info->instance_id, "a");
	cr_assert_eq(s.reqs[1]->op_case, MOONPEN__V1__REQUEST__OP_LIST);
	cr_assert_not_null(s.reqs[1]->list);
	cr_assert_eq(s.reqs[2]->op_case, MOONPEN__V1__REQUEST__OP_CLOSE);
	cr_assert_str_eq(s.reqs[2]->close->instance_id, "b");
	cr_assert_eq(s.reqs[3]->op_case, MOONPEN__V1__REQUEST__OP_SNAPSHOT);
	cr_assert_str_eq(s.reqs[3]->snapshot->instance_id, "c");
	cr_assert_eq(s.reqs[3]->id, 4);
	srv_free(&s);
	mp_disconnect(c);
}

Test(client, request_keeps_caller_trace_id)
{
	Moonpen__V1__Request req = MOONPEN__V1__REQUEST__INIT;
	Moonpen__V1__ListInstances l = MOONPEN__V1__LIST_INSTANCES__INIT;
	Moonpen__V1__Request plain = MOONPEN__V1__REQUEST__INIT;
	mp_response *resp = NULL;
	struct srv s;
	mp_client *c;

	req.trace_id = "trace-abc";
	req.op_case = MOONPEN__V1__REQUEST__OP_LIST;
	req.list = &l;
	plain.op_case = MOONPEN__V1__REQUEST__OP_LIST;
	plain.list = &l;
	srv_start(&s, SRV_ECHO, 2, NULL);
	c = connect_ok();
	cr_assert_eq(mp_request(c, &req, &resp), 0);
	mp_response_free(resp);
	cr_assert_eq(mp_request(c, &plain, &resp), 0);
	mp_response_free(resp);
	srv_stop(&s);

	cr_assert_str_eq(s.reqs[0]->trace_id, "trace-abc");
	cr_assert_eq(req.id, 1);
	cr_assert_str_eq(req.trace_id, "trace-abc");
	cr_assert(is_hex32(s.reqs[1]->trace_id));
	/* the generated trace id went on the wire only: plain is unchanged */
	cr_assert_eq(plain.trace_id, (char *)protobuf_c_empty_string);
	cr_assert_eq(plain.id, 2);
	srv_free(&s);
	mp_disconnect(c);
}

Test(client, missing_arguments_are_einval)
{
	mp_create_opts o = {.instance_id = "x"};
	mp_response *resp = (mp_response *)1;
	mp_client *c;
	struct srv s;

	srv_start(&s, SRV_ECHO, 0, NULL);
	c = connect_ok();
	cr_assert_eq(mp_create(c, &o, &resp), MP_EINVAL);
	cr_assert_null(resp);
	cr_assert_eq(mp_event(c, "x", NULL, NULL, &resp), MP_EINVAL);
	cr_assert_eq(mp_tick(c, NULL, 1, &resp), MP_EINVAL);
	cr_assert_eq(mp_call(c, "x", "f", NULL, 1, &resp), MP_EINVAL);
	srv_stop(&s);
	srv_free(&s);
	mp_disconnect(c);
}

/* ---- refused replies ------------------------------------------------------------------------ */

Test(client, mismatched_reply_id_is_refused)
{
	mp_response *resp = (mp_response *)1;
	struct srv s;
	mp_client *c;

	srv_start(&s, SRV_BAD_ID, 1, NULL);
	c = connect_ok();
	cr_assert_eq(mp_tick(c, "x", 1, &resp), MP_EBADMSG);
	cr_assert_null(resp);
	cr_assert_str_eq(mp_last_error(c), "reply id 2, request id 1");
	cr_assert_str_eq(mp_strerror(MP_EBADMSG), "reply id does not match the request");
	srv_stop(&s);
	srv_free(&s);
	mp_disconnect(c);
}

Test(client, undecodable_reply_is_refused)
{
	mp_response *resp = NULL;
	struct srv s;
	mp_client *c;

	srv_start(&s, SRV_GARBAGE, 1, NULL);
	c = connect_ok();
	cr_assert_eq(mp_tick(c, "x", 1, &resp), MP_EPROTO);
	cr_assert_null(resp);
	srv_stop(&s);
	srv_free(&s);
	mp_disconnect(c);
}

Test(client, reply_with_overdeep_value_is_refused)
{
	mp_response canned = MOONPEN__V1__RESPONSE__INIT;
	Moonpen__V1__Result res = MOONPEN__V1__RESULT__INIT;
	val_t *deep = val_new_int(1), *ret[1];
	mp_response *resp = NULL;
	struct srv s;
	mp_client *c;
	int i;

	for (i = 0; i < 200; i++) {
		val_t *t = val_new_table();

		cr_assert_eq(val_table_push(t, deep), 0);
		deep = t;
	}
	ret[0] = deep;
	res.returns = ret;
	res.n_returns = 1;
	canned.result = &res;
	srv_start(&s, SRV_ECHO, 1, &canned);
	c = connect_ok();
	cr_assert_eq(mp_call(c, "x", "f", NULL, 0, &resp), MP_EPROTO);
	srv_stop(&s);
	val_free(deep);
	srv_free(&s);
	mp_disconnect(c);
}

Test(client, silent_server_times_out)
{
	mp_response *resp = (mp_response *)1;
	struct timespec t0, t1;
	struct srv s;
	mp_client *c;
	long ms;

	srv_start(&s, SRV_SILENT, 1, NULL);
	c = connect_ok();
	cr_assert_eq(mp_set_timeouts(c, 1000, 200), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(mp_tick(c, "x", 1, &resp), MP_ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	cr_assert_null(resp);
	cr_assert(ms >= 150 && ms < 2000, "took %ld ms", ms);
	cr_assert_str_eq(mp_last_error(c), "receive: Timed out");
	srv_stop(&s);
	srv_free(&s);
	mp_disconnect(c);
}

Test(client, nothing_listening_is_refused)
{
	mp_client *c = (mp_client *)1;

	cr_assert_eq(mp_connect("inproc://moonpen-test-nobody", &c), MP_ECONNREFUSED);
	cr_assert_null(c);
	cr_assert_eq(mp_connect("ipc:///nonexistent-dir/moonpen.sock", &c), MP_ECONNREFUSED);
	cr_assert_eq(mp_connect("bogus://x", &c), MP_EINVAL);
	cr_assert_str_eq(mp_strerror(MP_ETIMEDOUT), "timed out waiting for moonpend");
}

/* ---- JSON output ------------------------------------------------------------------------------
 */

static char *dump(const mp_response *r)
{
	json_t *j = mp_response_to_json(r);
	char *s;

	cr_assert_not_null(j);
	s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(j);
	cr_assert_not_null(s);
	return s;
}

Test(client, response_json_result)
{
	mp_response r = MOONPEN__V1__RESPONSE__INIT;
	Moonpen__V1__Status st = MOONPEN__V1__STATUS__INIT;
	Moonpen__V1__Result res = MOONPEN__V1__RESULT__INIT;
	Moonpen__V1__Effect eff = MOONPEN__V1__EFFECT__INIT, *effs[1] = {&eff};
	Moonpen__V1__LogLine log = MOONPEN__V1__LOG_LINE__INIT, *logs[1] = {&log};
	Moonpen__V1__Usage usage = MOONPEN__V1__USAGE__INIT;
	uint8_t hash[3] = {0xab, 0x01, 0xff};
	val_t *args[2], *rets[2];
	char err[64], *s;

	cr_assert_eq(vjson_parse("\"goblin\"", 4, &args[0], err, sizeof(err)), 0);
	cr_assert_eq(
	    vjson_parse("{\"pos\":{\"x\":5,\"y\":0,\"z\":10}}", 4, &args[1], err, sizeof(err)), 0);
	rets[0] = val_new_int(1);
	rets[1] = val_new_bytes("\x01", 1);
	st.code = MOONPEN__V1__STATUS__CODE__SCRIPT_ERROR;
	st.message = "main.lua:3: boom";
	st.traceback = "stack traceback:\n\t[C]: in ?";
	st.retryable = 0;
	eff.api = "ecs";
	eff.fn = "spawn";
	eff.args = args;
	eff.n_args = 2;
	eff.trigger_id = "wave";
	log.level = "info";
	log.message = "wave 1";
	log.tick = 100;
	usage.cpu_us = 12;
	usage.mem_bytes = 4096;
	res.effects = effs;
	res.n_effects = 1;
	res.returns = rets;
	res.n_returns = 2;
	res.logs = logs;
	res.n_logs = 1;
	res.tick = 100;
	res.state_hash.data = hash;
	res.state_hash.len = 3;
	res.usage = &usage;
	r.status = &st;
	r.result = &res;
	s = dump(&r);
	cr_assert_str_eq(s,
			 "{\"status\":{\"code\":\"script_error\",\"message\":\"main.lua:3: boom\","
			 "\"traceback\":\"stack traceback:\\n\\t[C]: in ?\",\"retryable\":false},"
			 "\"effects\":[{\"api\":\"ecs\",\"fn\":\"spawn\",\"args\":[\"goblin\","
			 "{\"pos\":{\"x\":5,\"y\":0,\"z\":10}}],\"trigger_id\":\"wave\"}],"
			 "\"returns\":[1,{\"$bytes\":\"AQ==\"}],"
			 "\"logs\":[{\"level\":\"info\",\"message\":\"wave 1\",\"tick\":100}],"
			 "\"tick\":100,\"state_hash\":\"ab01ff\","
			 "\"usage\":{\"instructions\":0,\"cpu_us\":12,\"mem_bytes\":4096}}");
	free(s);
	val_free(args[0]);
	val_free(args[1]);
	val_free(rets[0]);
	val_free(rets[1]);
}

Test(client, response_json_empty_and_info)
{
	mp_response r = MOONPEN__V1__RESPONSE__INIT;
	Moonpen__V1__InstanceInfo in = MOONPEN__V1__INSTANCE_INFO__INIT, *list[2] = {&in, &in};
	Moonpen__V1__InstanceInfo__LabelsEntry lab = MOONPEN__V1__INSTANCE_INFO__LABELS_ENTRY__INIT;
	Moonpen__V1__InstanceInfo__LabelsEntry *labs[1] = {&lab};
	char *layers[2] = {"seccomp", "no_new_privs"}, *missing[1] = {"user_ns (EPERM)"};
	Moonpen__V1__DeadLetter dl = MOONPEN__V1__DEAD_LETTER__INIT, *dls[1] = {&dl};
	uint8_t hash[2] = {0x0f, 0xa0};
	const char *empty = "{\"status\":{\"code\":\"ok\",\"message\":\"\",\"traceback\":\"\","
			    "\"retryable\":false},\"effects\":[],\"returns\":[],\"logs\":[],"
			    "\"tick\":0,\"state_hash\":\"\",\"usage\":{\"instructions\":0,"
			    "\"cpu_us\":0,\"mem_bytes\":0}";
	const char *info = "{\"instance_id\":\"keys-1\",\"pack_id\":\"key-collection\","
			   "\"pack_version\":\"1.0.0\",\"seed\":7,\"tick_ms\":50,\"tick\":12,"
			   "\"state\":\"quarantined\",\"state_hash\":\"0fa0\","
			   "\"labels\":{\"region\":\"eu\"},\"worker_pid\":99,"
			   "\"layers\":[\"seccomp\",\"no_new_privs\"],\"inputs\":5,\"restarts\":3,"
			   "\"reason\":\"crash loop\",\"isolation\":\"instance\","
			   "\"missing_layers\":[\"user_ns (EPERM)\"],\"snapshot_tick\":10,"
			   "\"snapshot_input\":4,\"log_length\":1,\"snapshots\":2,"
			   "\"dead_letters\":[{\"input\":2,\"tick\":8,\"kind\":\"event\","
			   "\"name\":\"OnBoom\",\"code\":\"worker_crashed\","
			   "\"message\":\"killed by SIGSEGV\"}]}";
	char want[2048], *s;

	s = dump(&r);
	snprintf(want, sizeof(want), "%s}", empty);
	cr_assert_str_eq(s, want);
	free(s);

	lab.key = "region";
	lab.value = "eu";
	in.instance_id = "keys-1";
	in.pack_id = "key-collection";
	in.pack_version = "1.0.0";
	in.seed = 7;
	in.tick_ms = 50;
	in.tick = 12;
	in.state = MOONPEN__V1__INSTANCE_INFO__STATE__QUARANTINED;
	in.state_hash.data = hash;
	in.state_hash.len = 2;
	in.labels = labs;
	in.n_labels = 1;
	in.worker_pid = 99;
	in.layers = layers;
	in.n_layers = 2;
	in.inputs = 5;
	in.restarts = 3;
	in.reason = "crash loop";
	in.isolation = "instance";
	in.missing_layers = missing;
	in.n_missing_layers = 1;
	in.snapshot_tick = 10;
	in.snapshot_input = 4;
	in.log_length = 1;
	in.snapshots = 2;
	dl.input = 2;
	dl.tick = 8;
	dl.kind = "event";
	dl.name = "OnBoom";
	dl.code = MOONPEN__V1__STATUS__CODE__WORKER_CRASHED;
	dl.message = "killed by SIGSEGV";
	in.dead_letters = dls;
	in.n_dead_letters = 1;
	r.info = &in;
	s = dump(&r);
	snprintf(want, sizeof(want), "%s,\"info\":%s}", empty, info);
	cr_assert_str_eq(s, want);
	free(s);

	r.info = NULL;
	r.instances = list;
	r.n_instances = 2;
	s = dump(&r);
	snprintf(want, sizeof(want), "%s,\"instances\":[%s,%s]}", empty, info, info);
	cr_assert_str_eq(s, want);
	free(s);
}

Test(client, status_names)
{
	mp_response r = MOONPEN__V1__RESPONSE__INIT;
	Moonpen__V1__Status st = MOONPEN__V1__STATUS__INIT;

	cr_assert_eq(mp_status_code(&r), MOONPEN__V1__STATUS__CODE__OK);
	st.code = MOONPEN__V1__STATUS__CODE__QUARANTINED;
	r.status = &st;
	cr_assert_eq(mp_status_code(&r), MOONPEN__V1__STATUS__CODE__QUARANTINED);
}

/* ---- queries, snapshots, traces ---------------------------------------------------------- */

Test(client, new_ops_encode_every_field)
{
	mp_response *resp = NULL;
	val_t *v = val_new_int(12);
	uint8_t blob[3] = {9, 8, 7};
	struct srv s;
	mp_client *c;

	srv_start(&s, SRV_ECHO, 7, NULL);
	c = connect_ok();
	cr_assert_eq(mp_host_result(c, "a", 5, v, NULL, &resp), 0);
	mp_response_free(resp);
	cr_assert_eq(mp_host_result(c, "a", 6, NULL, "no path", &resp), 0);
	mp_response_free(resp);
	cr_assert_eq(mp_host_result(c, "a", 7, NULL, NULL, &resp), 0);
	mp_response_free(resp);
	cr_assert_eq(mp_rollback(c, "b", 1234, &resp), 0);
	mp_response_free(resp);
	cr_assert_eq(mp_restore(c, "c", blob, sizeof blob, &resp), 0);
	mp_response_free(resp);
	cr_assert_eq(mp_trace(c, "d", &resp), 0);
	mp_response_free(resp);
	cr_assert_eq(mp_incident(c, "e", &resp), 0);
	mp_response_free(resp);
	srv_stop(&s);

	cr_assert_eq(s.reqs[0]->op_case, MOONPEN__V1__REQUEST__OP_HOST_RESULT);
	cr_assert_str_eq(s.reqs[0]->host_result->instance_id, "a");
	cr_assert_eq(s.reqs[0]->host_result->call_id, 5);
	cr_assert_eq(s.reqs[0]->host_result->answer_case, MOONPEN__V1__HOST_RESULT__ANSWER_VALUE);
	cr_assert_eq(s.reqs[0]->host_result->value->int_value, 12);
	cr_assert_eq(s.reqs[1]->host_result->answer_case, MOONPEN__V1__HOST_RESULT__ANSWER_ERROR);
	cr_assert_str_eq(s.reqs[1]->host_result->error, "no path");
	cr_assert_eq(s.reqs[2]->host_result->answer_case, MOONPEN__V1__HOST_RESULT__ANSWER_VALUE);
	cr_assert_eq(s.reqs[2]->host_result->value->kind_case, MOONPEN__V1__VALUE__KIND_NIL_VALUE);
	cr_assert_eq(s.reqs[3]->op_case, MOONPEN__V1__REQUEST__OP_ROLLBACK);
	cr_assert_str_eq(s.reqs[3]->rollback->instance_id, "b");
	cr_assert_eq(s.reqs[3]->rollback->tick, 1234);
	cr_assert_eq(s.reqs[4]->op_case, MOONPEN__V1__REQUEST__OP_RESTORE);
	cr_assert_str_eq(s.reqs[4]->restore->instance_id, "c");
	cr_assert_eq(s.reqs[4]->restore->snapshot.len, 3);
	cr_assert_eq(memcmp(s.reqs[4]->restore->snapshot.data, blob, 3), 0);
	cr_assert_eq(s.reqs[5]->op_case, MOONPEN__V1__REQUEST__OP_TRACE);
	cr_assert_str_eq(s.reqs[5]->trace->instance_id, "d");
	cr_assert_eq(s.reqs[6]->op_case, MOONPEN__V1__REQUEST__OP_INCIDENT);
	cr_assert_str_eq(s.reqs[6]->incident->instance_id, "e");
	cr_assert_eq(s.reqs[6]->id, 7);
	srv_free(&s);
	val_free(v);
	mp_disconnect(c);
}

Test(client, new_ops_missing_arguments_are_einval)
{
	mp_response *resp = (mp_response *)1;
	mp_client *c;
	struct srv s;

	srv_start(&s, SRV_ECHO, 0, NULL);
	c = connect_ok();
	cr_assert_eq(mp_host_result(c, NULL, 1, NULL, NULL, &resp), MP_EINVAL);
	cr_assert_null(resp);
	cr_assert_eq(mp_rollback(c, NULL, 1, &resp), MP_EINVAL);
	cr_assert_eq(mp_restore(c, "x", NULL, 1, &resp), MP_EINVAL);
	cr_assert_eq(mp_restore(c, "x", "a", 0, &resp), MP_EINVAL);
	cr_assert_eq(mp_trace(c, NULL, &resp), MP_EINVAL);
	cr_assert_eq(mp_incident(c, NULL, &resp), MP_EINVAL);
	srv_stop(&s);
	srv_free(&s);
	mp_disconnect(c);
}

Test(client, response_json_query_snapshot_trace)
{
	mp_response r = MOONPEN__V1__RESPONSE__INIT;
	Moonpen__V1__Status st = MOONPEN__V1__STATUS__INIT;
	Moonpen__V1__HostCall hc = MOONPEN__V1__HOST_CALL__INIT;
	val_t *args[1];
	const char *trace = "{\"format\":1,\"inputs\":[]}";
	uint8_t blob[4] = {0, 1, 2, 3};
	char err[64], *s;

	cr_assert_eq(vjson_parse("{\"from\":[1,2]}", 4, &args[0], err, sizeof(err)), 0);
	st.code = MOONPEN__V1__STATUS__CODE__PENDING;
	st.message = "query 3 (path.find) waits for a HostResult";
	hc.call_id = 3;
	hc.api = "path";
	hc.fn = "find";
	hc.args = args;
	hc.n_args = 1;
	hc.timeout_ms = 5000;
	r.status = &st;
	r.host_call = &hc;
	r.snapshot.data = blob;
	r.snapshot.len = sizeof blob;
	r.trace_json.data = (uint8_t *)trace;
	r.trace_json.len = strlen(trace);
	s = dump(&r);
	cr_assert_str_eq(s,
			 "{\"status\":{\"code\":\"pending\",\"message\":\"query 3 (path.find) "
			 "waits for a HostResult\",\"traceback\":\"\",\"retryable\":false},"
			 "\"effects\":[],\"returns\":[],\"logs\":[],\"tick\":0,\"state_hash\":\"\","
			 "\"usage\":{\"instructions\":0,\"cpu_us\":0,\"mem_bytes\":0},"
			 "\"host_call\":{\"call_id\":3,\"api\":\"path\",\"fn\":\"find\","
			 "\"args\":[{\"from\":[1,2]}],\"timeout_ms\":5000},"
			 "\"snapshot\":\"AAECAw==\",\"trace\":{\"format\":1,\"inputs\":[]}}");
	free(s);
	/* a trace that is not JSON is shown as text */
	r.host_call = NULL;
	r.snapshot.len = 0;
	r.trace_json.data = (uint8_t *)"not json";
	r.trace_json.len = 8;
	s = dump(&r);
	cr_assert(strstr(s, ",\"trace\":\"not json\"}") != NULL, "%s", s);
	free(s);
	val_free(args[0]);
}
