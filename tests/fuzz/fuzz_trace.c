/*
 * fuzz_trace — libFuzzer harness for trace_parse (runs in the fuzzer only).
 * Input: trace JSON (docs/trace-format.md) as spk replay reads it from a file
 * and as moonpend's ExportTrace / GetIncident hand it to clients: hostile.
 * Asserts:
 *   - trace_parse: 0 with a trace, or -EINVAL / -ENOMEM with a NUL-terminated
 *     message and no trace;
 *   - an accepted trace dumps (trace_dumps), the dump parses again, and the
 *     second dump is the same text (the round trip is stable); the header
 *     fields (host_api included), the number of inputs and answers, and
 *     every outcome's log lines (or their absence) survive it;
 *   - every input and answer of an accepted trace converts to the ToWorker /
 *     HostResult that spk replay sends (trace_input_msg, trace_answer_msg):
 *     the parser checked every Value, so only -ENOMEM may fail.
 * Any violation aborts.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static trace *parse_ok(const char *text, size_t len)
{
	trace *t = NULL;
	char err[256];

	if (trace_parse(text, len, &t, err, sizeof err) < 0 || t == NULL)
		abort();
	return t;
}

/* Log lines: absent on both sides (not recorded), or the same. */
static void same_logs(const tr_outcome *a, const tr_outcome *b)
{
	if ((a->logs == NULL) != (b->logs == NULL) || (a->logs && !json_equal(a->logs, b->logs)))
		abort();
}

static void same_header(const trace *a, const trace *b)
{
	size_t i;

	if (strcmp(a->pack_id, b->pack_id) != 0 || strcmp(a->pack_version, b->pack_version) != 0 ||
	    memcmp(a->content_hash, b->content_hash, 32) != 0 || a->seed != b->seed ||
	    a->tick_ms != b->tick_ms || a->has_init != b->has_init ||
	    a->snapshot_len != b->snapshot_len || a->n_inputs != b->n_inputs)
		abort();
	if (a->snapshot_len && memcmp(a->start_snapshot, b->start_snapshot, a->snapshot_len) != 0)
		abort();
	if ((a->host_api == NULL) != (b->host_api == NULL) ||
	    (a->host_api && !json_equal(a->host_api, b->host_api)))
		abort();
	same_logs(&a->init, &b->init);
	for (i = 0; i < a->n_inputs; i++)
		if (a->inputs[i].kind != b->inputs[i].kind ||
		    a->inputs[i].tick != b->inputs[i].tick ||
		    a->inputs[i].n_answers != b->inputs[i].n_answers ||
		    a->inputs[i].out.status != b->inputs[i].out.status)
			abort();
	for (i = 0; i < a->n_inputs; i++)
		same_logs(&a->inputs[i].out, &b->inputs[i].out);
}

/* The messages spk replay builds from each input and answer. */
static void to_messages(const trace *t)
{
	Moonpen__Worker__V1__ToWorker *tw;
	Moonpen__V1__HostResult *hr;
	char err[256];
	size_t i, j;
	int r;

	for (i = 0; i < t->n_inputs; i++) {
		r = trace_input_msg(&t->inputs[i], "fuzz:1", &tw, err, sizeof err);
		if (r == -ENOMEM)
			continue;
		if (r != 0)
			abort();
		protobuf_c_message_free_unpacked(&tw->base, NULL);
		for (j = 0; j < t->inputs[i].n_answers; j++) {
			r = trace_answer_msg(&t->inputs[i].answers[j], "fuzz:1", &hr, err,
					     sizeof err);
			if (r == -ENOMEM)
				continue;
			if (r != 0 || hr->call_id != t->inputs[i].answers[j].call_id)
				abort();
			protobuf_c_message_free_unpacked(&hr->base, NULL);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	trace *t = NULL, *t2;
	char err[256], *d1, *d2;
	int r;

	memset(err, 'x', sizeof err);
	r = trace_parse((const char *)data, size, &t, err, sizeof err);
	if (r < 0) {
		if ((r != -EINVAL && r != -ENOMEM) || t != NULL ||
		    memchr(err, '\0', sizeof err) == NULL)
			abort();
		return 0;
	}
	if (t == NULL)
		abort();
	to_messages(t);
	d1 = trace_dumps(t);
	if (d1 == NULL) /* out of memory only */
		goto out;
	t2 = parse_ok(d1, strlen(d1));
	same_header(t, t2);
	d2 = trace_dumps(t2);
	if (d2 != NULL && strcmp(d1, d2) != 0)
		abort();
	free(d2);
	trace_free(t2);
	free(d1);
out:
	trace_free(t);
	return 0;
}
